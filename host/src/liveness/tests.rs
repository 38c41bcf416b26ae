//! Liveness over real TCP: two swarms talk through a proxy on loopback that
//! can go silent (it keeps both sockets open and drops every byte, as a
//! network that went away does).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, ping, request_response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Activity, Behaviour, Config, Event};
use crate::FrameCodec;

/// Short periods, so a test takes seconds.
const FAST: Config = Config {
    idle: Duration::from_millis(200),
    probe_timeout: Duration::from_millis(100),
    max_misses: 3,
};

/// A TCP proxy for one connection that counts the bytes it forwards and
/// can go silent.
struct Proxy {
    port: u16,
    silent: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
}

/// Bytes per 10 ms the proxy lets through towards the dialler (a slow
/// downlink), if limited.
type Throttle = Option<usize>;

impl Proxy {
    async fn to(target: u16) -> Self {
        Self::throttled(target, None).await
    }

    async fn throttled(target: u16, downlink: Throttle) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let silent = Arc::new(AtomicBool::new(false));
        let bytes = Arc::new(AtomicU64::new(0));
        let (s, b) = (silent.clone(), bytes.clone());
        tokio::spawn(async move {
            let (inside, _) = listener.accept().await.expect("accept");
            let outside = TcpStream::connect(("127.0.0.1", target))
                .await
                .expect("connect");
            let (ri, wi) = inside.into_split();
            let (ro, wo) = outside.into_split();
            tokio::spawn(pipe(ri, wo, s.clone(), b.clone(), None));
            pipe(ro, wi, s, b, downlink).await;
        });
        Self {
            port,
            silent,
            bytes,
        }
    }

    fn go_silent(&self) {
        self.silent.store(true, Ordering::SeqCst);
    }
}

async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    silent: Arc<AtomicBool>,
    bytes: Arc<AtomicU64>,
    throttle: Throttle,
) {
    let mut buf = vec![0u8; throttle.unwrap_or(64 * 1024)];
    loop {
        if throttle.is_some() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                // Keep the other side open: a cut network closes nothing.
                std::future::pending::<()>().await;
                return;
            }
            Ok(n) => n,
        };
        if silent.load(Ordering::SeqCst) {
            continue;
        }
        bytes.fetch_add(n as u64, Ordering::Relaxed);
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

fn swarm<B: NetworkBehaviour>(behaviour: B) -> Swarm<B> {
    swarm_watched(behaviour, Activity::default())
}

/// A swarm over the hosts' TCP transport, its sockets watched by `activity`.
fn swarm_watched<B: NetworkBehaviour>(behaviour: B, activity: Activity) -> Swarm<B> {
    // Liveness never keeps a connection open by itself: keep idle ones.
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| crate::tcp_transport(key, activity))
        .expect("tcp")
        .with_behaviour(|_| behaviour)
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
        .expect("listen");
    swarm
}

async fn port_of<B: NetworkBehaviour>(swarm: &mut Swarm<B>) -> u16 {
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            for p in address.iter() {
                if let libp2p::multiaddr::Protocol::Tcp(port) = p {
                    return port;
                }
            }
        }
    }
}

/// What a swarm saw while it ran.
#[derive(Debug, Default)]
struct Seen {
    connected: bool,
    dead: Vec<PeerId>,
    closed: usize,
}

fn note(seen: &mut Seen, event: SwarmEvent<Event>) {
    match event {
        SwarmEvent::ConnectionEstablished { .. } => seen.connected = true,
        SwarmEvent::ConnectionClosed { .. } => seen.closed += 1,
        SwarmEvent::Behaviour(Event::Dead { peer, .. }) => seen.dead.push(peer),
        _ => {}
    }
}

/// Drives both swarms for `time`, or until `stop` says so.
async fn drive(
    a: &mut Swarm<Behaviour>,
    b: &mut Swarm<Behaviour>,
    time: Duration,
    seen: &mut (Seen, Seen),
    stop: impl Fn(&(Seen, Seen)) -> bool,
) {
    let deadline = tokio::time::Instant::now() + time;
    while !stop(seen) {
        tokio::select! {
            e = a.select_next_some() => note(&mut seen.0, e),
            e = b.select_next_some() => note(&mut seen.1, e),
            _ = tokio::time::sleep_until(deadline) => return,
        }
    }
}

/// Two liveness swarms, `a` dialling `b` through a proxy.
async fn connected_pair() -> (Swarm<Behaviour>, Swarm<Behaviour>, Proxy, (Seen, Seen)) {
    let watched = || {
        let activity = Activity::default();
        swarm_watched(
            Behaviour::new(FAST).with_activity(activity.clone()),
            activity,
        )
    };
    let (mut a, mut b) = (watched(), watched());
    let port = port_of(&mut b).await;
    let proxy = Proxy::to(port).await;
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", proxy.port)
        .parse()
        .expect("addr");
    a.dial(addr.with(libp2p::multiaddr::Protocol::P2p(*b.local_peer_id())))
        .expect("dial");
    let mut seen = (Seen::default(), Seen::default());
    drive(&mut a, &mut b, Duration::from_secs(10), &mut seen, |s| {
        s.0.connected && s.1.connected
    })
    .await;
    assert!(seen.0.connected && seen.1.connected, "connected: {seen:?}");
    (a, b, proxy, seen)
}

#[tokio::test]
async fn a_peer_that_answers_stays_connected() {
    let (mut a, mut b, proxy, mut seen) = connected_pair().await;
    let before = proxy.bytes.load(Ordering::Relaxed);
    // Ten idle periods.
    drive(&mut a, &mut b, Duration::from_secs(2), &mut seen, |_| false).await;
    assert!(seen.0.dead.is_empty() && seen.1.dead.is_empty(), "{seen:?}");
    assert_eq!((seen.0.closed, seen.1.closed), (0, 0));
    assert!(a.is_connected(b.local_peer_id()));
    let probes = proxy.bytes.load(Ordering::Relaxed) - before;
    assert!(probes > 0, "probes crossed the connection");
    println!("liveness: {probes} bytes in 2 s at a 200 ms idle period");
}

#[tokio::test]
async fn a_connection_that_goes_silent_is_closed_and_reported_on_both_sides() {
    let (mut a, mut b, proxy, mut seen) = connected_pair().await;
    proxy.go_silent();
    drive(&mut a, &mut b, Duration::from_secs(20), &mut seen, |s| {
        s.0.closed > 0 && s.1.closed > 0
    })
    .await;
    assert_eq!(seen.0.dead, [*b.local_peer_id()], "{seen:?}");
    assert_eq!(seen.1.dead, [*a.local_peer_id()], "{seen:?}");
    assert!(!a.is_connected(b.local_peer_id()));
    assert!(!b.is_connected(a.local_peer_id()));
}

#[tokio::test]
async fn a_plain_libp2p_ping_peer_is_probed_and_answers() {
    let mut a = swarm(Behaviour::new(FAST));
    let mut b = swarm(ping::Behaviour::new(
        ping::Config::new().with_interval(Duration::from_millis(300)),
    ));
    let port = port_of(&mut b).await;
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().expect("addr");
    a.dial(addr).expect("dial");
    let (mut dead, mut pongs) = (0, 0);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    loop {
        tokio::select! {
            e = a.select_next_some() => {
                if let SwarmEvent::Behaviour(Event::Dead { .. }) = e {
                    dead += 1;
                }
            }
            e = b.select_next_some() => {
                if let SwarmEvent::Behaviour(ping::Event { result: Ok(_), .. }) = e {
                    pongs += 1;
                }
            }
            _ = tokio::time::sleep_until(deadline) => break,
        }
    }
    assert_eq!(dead, 0, "the ping peer answers our probes");
    assert!(pongs > 0, "and we answer its pings");
    assert!(a.is_connected(b.local_peer_id()));
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Busy {
    liveness: Behaviour,
    bulk: request_response::Behaviour<FrameCodec>,
}

fn busy(activity: Activity) -> Swarm<Busy> {
    let liveness = Behaviour::new(BUSY).with_activity(activity.clone());
    let bulk = request_response::Behaviour::with_codec(
        FrameCodec::new(16, BULK),
        [(
            libp2p::StreamProtocol::new("/hush-test/bulk/1"),
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default().with_request_timeout(Duration::from_secs(60)),
    );
    swarm_watched(Busy { liveness, bulk }, activity)
}

const BULK: usize = 600 * 1024;
/// Dead after 1.2 s without an answer: far less than the seconds a probe's
/// answer waits behind a Yamux window (256 KiB) of data at 100 KB/s, more
/// than the pauses in the flow itself.
const BUSY: Config = Config {
    probe_timeout: Duration::from_millis(400),
    ..FAST
};

/// The peer sends a large response down a slow link (100 KB/s): the echoes
/// of our probes wait behind it for seconds, far past the probe timeout,
/// but bytes keep arriving, so the connection is alive.
#[tokio::test]
async fn a_probe_answer_stuck_behind_a_slow_transfer_does_not_kill_the_connection() {
    let (mut a, mut b) = (busy(Activity::default()), busy(Activity::default()));
    let port = port_of(&mut b).await;
    let proxy = Proxy::throttled(port, Some(1024)).await;
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{}", proxy.port)
        .parse()
        .expect("addr");
    let b_peer = *b.local_peer_id();
    a.behaviour_mut()
        .bulk
        .send_request_with_addresses(&b_peer, vec![1], vec![addr]);
    let started = tokio::time::Instant::now();
    let deadline = started + Duration::from_secs(60);
    let received = loop {
        tokio::select! {
            e = a.select_next_some() => match e {
                SwarmEvent::Behaviour(BusyEvent::Bulk(request_response::Event::Message {
                    message: request_response::Message::Response { response, .. }, ..
                })) => break response.len(),
                SwarmEvent::Behaviour(BusyEvent::Liveness(Event::Dead { silent_for, .. })) => {
                    panic!("the receiver declared it dead after {silent_for:?} while the transfer ran")
                }
                SwarmEvent::Behaviour(BusyEvent::Bulk(request_response::Event::OutboundFailure { error, .. })) => {
                    panic!("the transfer failed: {error}")
                }
                _ => {}
            },
            e = b.select_next_some() => match e {
                SwarmEvent::Behaviour(BusyEvent::Bulk(request_response::Event::Message {
                    message: request_response::Message::Request { channel, .. }, ..
                })) => {
                    let _ = b.behaviour_mut().bulk.send_response(channel, vec![7; BULK]);
                }
                SwarmEvent::Behaviour(BusyEvent::Liveness(Event::Dead { silent_for, .. })) => {
                    panic!("the sender declared it dead after {silent_for:?} while the transfer ran")
                }
                _ => {}
            },
            _ = tokio::time::sleep_until(deadline) => panic!("the transfer did not finish"),
        }
    };
    assert_eq!(received, BULK);
    println!(
        "a slow transfer of {BULK} bytes took {:?} (probe timeout {:?})",
        started.elapsed(),
        BUSY.probe_timeout
    );
}

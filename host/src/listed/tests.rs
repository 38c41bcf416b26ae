use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::future::{Ready, ready};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, StreamProtocol, Swarm, identity, request_response};

use super::*;
use crate::{FrameCodec, tcp_swarm};

/// An upgrade offering `names`, counting how often it is asked for them.
struct Offer {
    names: Vec<StreamProtocol>,
    listed: Arc<AtomicUsize>,
}

impl UpgradeInfo for Offer {
    type Info = StreamProtocol;
    type InfoIter = Vec<StreamProtocol>;

    fn protocol_info(&self) -> Vec<StreamProtocol> {
        self.listed.fetch_add(1, Ordering::Relaxed);
        self.names.clone()
    }
}

impl InboundUpgrade<Stream> for Offer {
    type Output = ();
    type Error = Infallible;
    type Future = Ready<Result<(), Infallible>>;

    fn upgrade_inbound(self, _: Stream, _: StreamProtocol) -> Self::Future {
        ready(Ok(()))
    }
}

/// A handler offering the names its behaviour last handed it, counting
/// the upgrades it makes.
struct Offering {
    names: Vec<StreamProtocol>,
    listed: Arc<AtomicUsize>,
    made: AtomicUsize,
}

impl ConnectionHandler for Offering {
    type FromBehaviour = Vec<StreamProtocol>;
    type ToBehaviour = Infallible;
    type InboundProtocol = Offer;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = Infallible;

    fn listen_protocol(&self) -> SubstreamProtocol<Offer, ()> {
        self.made.fetch_add(1, Ordering::Relaxed);
        SubstreamProtocol::new(
            Offer {
                names: self.names.clone(),
                listed: self.listed.clone(),
            },
            (),
        )
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, Infallible>> {
        Poll::Pending
    }

    fn on_behaviour_event(&mut self, names: Vec<StreamProtocol>) {
        self.names = names;
    }

    fn on_connection_event(&mut self, _: ConnectionEvent<Offer, DeniedUpgrade, (), Infallible>) {}
}

const A: StreamProtocol = StreamProtocol::new("/test/a/1");
const B: StreamProtocol = StreamProtocol::new("/test/b/1");
const C: StreamProtocol = StreamProtocol::new("/test/c/1");

fn offering(names: &[StreamProtocol]) -> (ListedHandler<Offering>, Arc<AtomicUsize>) {
    let listed = Arc::new(AtomicUsize::new(0));
    let handler = ListedHandler::new(Offering {
        names: names.to_vec(),
        listed: listed.clone(),
        made: AtomicUsize::new(0),
    });
    (handler, listed)
}

/// The names the swarm is handed, as it asks for them.
fn offered(handler: &ListedHandler<Offering>) -> Vec<String> {
    UpgradeInfo::protocol_info(handler.listen_protocol().upgrade())
        .map(|name| name.as_ref().to_owned())
        .collect()
}

fn strings(names: &[StreamProtocol]) -> Vec<String> {
    names.iter().map(|n| n.as_ref().to_owned()).collect()
}

#[test]
fn a_handler_nothing_is_handed_to_is_listed_once() {
    let (handler, listed) = offering(&[A, B]);
    assert_eq!(offered(&handler), strings(&[A, B]));
    let first = listed.load(Ordering::Relaxed);
    assert!(first > 0);
    for _ in 0..100 {
        assert_eq!(offered(&handler), strings(&[A, B]));
    }
    assert_eq!(listed.load(Ordering::Relaxed), first);
    // Its upgrade was made for the first listing only.
    assert_eq!(handler.inner.made.load(Ordering::Relaxed), 1);
}

/// A stream negotiated on a listing asks for the inner handler's upgrade,
/// which the handler makes on its next poll, one for each stream.
#[test]
fn the_inner_upgrade_is_made_for_each_stream_that_asks() {
    let (mut handler, _) = offering(&[A, B]);
    assert_eq!(offered(&handler), strings(&[A, B]));
    let made = handler.inner.made.load(Ordering::Relaxed);

    let mut answers = Vec::new();
    for _ in 0..2 {
        let (ask, answer) = futures::channel::oneshot::channel();
        handler.asks.waiting.lock().expect("lock").push(ask);
        answers.push(answer);
    }
    handler.asks.any.store(true, Ordering::Release);
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    assert!(handler.poll(&mut cx).is_pending());
    for mut answer in answers {
        let (upgrade, ()) = answer.try_recv().expect("answered").expect("an upgrade");
        assert_eq!(upgrade.names, vec![A, B]);
    }
    assert_eq!(handler.inner.made.load(Ordering::Relaxed), made + 2);

    // Nothing asked: nothing made.
    assert!(handler.poll(&mut cx).is_pending());
    assert_eq!(handler.inner.made.load(Ordering::Relaxed), made + 2);
}

#[test]
fn a_handler_handed_an_event_is_listed_again() {
    let (mut handler, listed) = offering(&[A, B]);
    assert_eq!(offered(&handler), strings(&[A, B]));

    handler.on_behaviour_event(vec![C]);
    assert_eq!(offered(&handler), strings(&[C]));
    let after_event = listed.load(Ordering::Relaxed);
    assert_eq!(offered(&handler), strings(&[C]));
    assert_eq!(listed.load(Ordering::Relaxed), after_event);

    // Handed an event that changes nothing: listed again, and the same.
    let moved: Multiaddr = "/ip4/127.0.0.1/tcp/9".parse().expect("address");
    handler.on_connection_event(ConnectionEvent::AddressChange(
        libp2p::swarm::handler::AddressChange {
            new_address: &moved,
        },
    ));
    let names = handler.listing.get_mut().names.clone();
    assert_eq!(offered(&handler), strings(&[C]));
    assert!(listed.load(Ordering::Relaxed) > after_event);
    // Compared, not copied again.
    assert!(Arc::ptr_eq(&names, &handler.listing.get_mut().names));
}

/// A set changed from outside any handler (libp2p-stream's
/// `Control::accept`) is offered once the listing is a second old.
#[test]
fn a_set_changed_from_outside_is_listed_again_after_a_second() {
    let (mut handler, listed) = offering(&[A]);
    assert_eq!(offered(&handler), strings(&[A]));
    let first = listed.load(Ordering::Relaxed);
    handler.inner.names = vec![A, B];
    assert_eq!(offered(&handler), strings(&[A]));
    assert_eq!(listed.load(Ordering::Relaxed), first);

    let listing = handler.listing.get_mut();
    listing.made = listing
        .made
        .checked_sub(RELIST_AFTER)
        .expect("a second before the listing");
    assert_eq!(offered(&handler), strings(&[A, B]));
}

#[derive(NetworkBehaviour)]
struct Two {
    first: request_response::Behaviour<FrameCodec>,
    second: request_response::Behaviour<FrameCodec>,
}

fn two(first: StreamProtocol, second: StreamProtocol) -> Listed<Two> {
    let behaviour = |protocol| {
        request_response::Behaviour::with_codec(
            FrameCodec::new(64, 64),
            [(protocol, request_response::ProtocolSupport::Full)],
            request_response::Config::default(),
        )
    };
    Listed(Two {
        first: behaviour(first),
        second: behaviour(second),
    })
}

async fn listening<B: NetworkBehaviour>(swarm: &mut Swarm<B>) -> Multiaddr {
    let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("address");
    swarm.listen_on(loopback).expect("listen");
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            return address;
        }
    }
}

/// Real swarms on loopback: a request on each of two protocols reaches the
/// handler that offers it, through the flat listing and the name lookup.
#[tokio::test]
async fn each_request_reaches_the_handler_of_its_protocol() {
    let server_key = identity::Keypair::generate_ed25519();
    let server_peer = server_key.public().to_peer_id();
    let mut server = tcp_swarm(server_key, two(A, B)).expect("server");
    let mut client = tcp_swarm(identity::Keypair::generate_ed25519(), two(A, B)).expect("client");
    let address = listening(&mut server).await;
    client.add_peer_address(server_peer, address);
    let first = client
        .behaviour_mut()
        .first
        .send_request(&server_peer, b"to a".to_vec());
    let second = client
        .behaviour_mut()
        .second
        .send_request(&server_peer, b"to b".to_vec());

    let mut answers = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    while answers.len() < 2 {
        tokio::select! {
            event = server.select_next_some() => match event {
                SwarmEvent::Behaviour(TwoEvent::First(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. }, ..
                })) => {
                    let mut answer = b"a got ".to_vec();
                    answer.extend(request);
                    server.behaviour_mut().first.send_response(channel, answer).expect("respond");
                }
                SwarmEvent::Behaviour(TwoEvent::Second(request_response::Event::Message {
                    message: request_response::Message::Request { request, channel, .. }, ..
                })) => {
                    let mut answer = b"b got ".to_vec();
                    answer.extend(request);
                    server.behaviour_mut().second.send_response(channel, answer).expect("respond");
                }
                _ => {}
            },
            event = client.select_next_some() => match event {
                SwarmEvent::Behaviour(TwoEvent::First(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response }, ..
                })) => answers.push((request_id == first, response)),
                SwarmEvent::Behaviour(TwoEvent::Second(request_response::Event::Message {
                    message: request_response::Message::Response { request_id, response }, ..
                })) => answers.push((request_id == second, response)),
                SwarmEvent::Behaviour(TwoEvent::First(request_response::Event::OutboundFailure { error, .. }))
                | SwarmEvent::Behaviour(TwoEvent::Second(request_response::Event::OutboundFailure { error, .. })) => {
                    panic!("a request failed: {error}")
                }
                _ => {}
            },
            () = &mut deadline => panic!("no answers in 30 s: {answers:?}"),
        }
    }
    answers.sort();
    assert_eq!(
        answers,
        vec![
            (true, b"a got to a".to_vec()),
            (true, b"b got to b".to_vec())
        ]
    );
}

/// Real swarms on loopback: a protocol the server starts accepting after
/// the connection is up (libp2p-stream's `Control::accept`, a change no
/// handler is told of) is offered on that connection.
#[tokio::test]
async fn a_protocol_accepted_on_an_open_connection_is_offered() {
    let server_key = identity::Keypair::generate_ed25519();
    let server_peer = server_key.public().to_peer_id();
    let mut server =
        tcp_swarm(server_key, Listed(libp2p_stream::Behaviour::new())).expect("server");
    let mut client = tcp_swarm(
        identity::Keypair::generate_ed25519(),
        libp2p_stream::Behaviour::new(),
    )
    .expect("client");
    let address = listening(&mut server).await;
    let mut server_control = server.behaviour().new_control();
    let mut client_control = client.behaviour().new_control();
    tokio::spawn(async move { while server.next().await.is_some() {} });
    client.dial(address).expect("dial");
    let connected = loop {
        if let SwarmEvent::ConnectionEstablished { .. } = client.select_next_some().await {
            break true;
        }
    };
    assert!(connected);
    tokio::spawn(async move { while client.next().await.is_some() {} });

    // Opened now, the stream is refused: nothing offers C yet.
    assert!(client_control.open_stream(server_peer, C).await.is_err());

    let mut incoming = server_control.accept(C).expect("accept C");
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            let mut stream = stream;
            let mut word = [0u8; 5];
            if stream.read_exact(&mut word).await.is_ok() {
                let _ = stream.write_all(&word).await;
            }
        }
    });
    // Asked again until the connection offers it (within `RELIST_AFTER`).
    let deadline = Instant::now() + Duration::from_secs(30);
    let stream = loop {
        match client_control.open_stream(server_peer, C).await {
            Ok(stream) => break stream,
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "not offered yet");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("C was never offered: {e}"),
        }
    };
    let mut stream = stream;
    stream.write_all(b"hello").await.expect("write");
    let mut echo = [0u8; 5];
    stream.read_exact(&mut echo).await.expect("read");
    assert_eq!(&echo, b"hello");
}

#[derive(NetworkBehaviour)]
struct Announcing {
    streams: libp2p_stream::Behaviour,
    identify: libp2p::identify::Behaviour,
}

fn announcing(key: &identity::Keypair) -> Announcing {
    Announcing {
        streams: libp2p_stream::Behaviour::new(),
        identify: libp2p::identify::Behaviour::new(libp2p::identify::Config::new(
            "/hush-test/1".into(),
            key.public(),
        )),
    }
}

/// Real swarms on loopback: a protocol the server starts accepting on an
/// open connection reaches its handlers as a change of its protocols, so
/// identify pushes it to the peer. This is the path the vendored swarm's
/// patch shortens (vendor/libp2p-swarm/HUSH-PATCH.md): an idle connection
/// compares the listing in order and hashes it only when it differs, and a
/// listing that differs must still be told.
#[tokio::test]
async fn a_protocol_accepted_on_an_open_connection_is_announced_to_the_peer() {
    let server_key = identity::Keypair::generate_ed25519();
    let server_peer = server_key.public().to_peer_id();
    let mut server =
        tcp_swarm(server_key.clone(), Listed(announcing(&server_key))).expect("server");
    let client_key = identity::Keypair::generate_ed25519();
    let mut client = tcp_swarm(client_key.clone(), announcing(&client_key)).expect("client");
    let address = listening(&mut server).await;
    let mut server_control = server.behaviour().streams.new_control();
    tokio::spawn(async move { while server.next().await.is_some() {} });
    client.dial(address).expect("dial");

    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let offered_c = |protocols: &[StreamProtocol]| protocols.contains(&C);
    // The protocols the server tells the client of next, among what
    // `wanted` accepts.
    let mut told = async |wanted: &dyn Fn(&[StreamProtocol]) -> bool| {
        tokio::time::timeout_at(deadline, async {
            loop {
                if let SwarmEvent::Behaviour(AnnouncingEvent::Identify(
                    libp2p::identify::Event::Received { peer_id, info, .. },
                )) = client.select_next_some().await
                    && peer_id == server_peer
                    && wanted(&info.protocols)
                {
                    return info.protocols;
                }
            }
        })
        .await
    };
    // First what the server offers on connecting: not C.
    let first = told(&|_| true).await.expect("the server identified itself");
    assert!(!offered_c(&first), "C offered before it was accepted");
    assert!(!first.is_empty());

    let _incoming = server_control.accept(C).expect("accept C");
    // Then, within a listing's age (`RELIST_AFTER`), a push that names C.
    let pushed = told(&offered_c).await.expect("C was never announced");
    // Nothing the server offered before was dropped by the change.
    for protocol in &first {
        assert!(pushed.contains(protocol), "{protocol} no longer offered");
    }
}

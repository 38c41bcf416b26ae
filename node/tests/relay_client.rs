//! The relay client under hush's use of it, with a raw relay beside it.
//!
//! A node drops its circuit listeners when AutoNAT finds it public
//! (`event_loop/reach.rs`, `drop_circuits`), and the reservation behind a
//! listener can still be on its way: asked at start, answered a moment
//! after the node learned it is public. libp2p-relay 0.22's client then
//! met an answer for a listener it had forgotten and panicked
//! (`expect("Relay connection exist")`), taking the node's event loop with
//! it. And a circuit asked for and dropped in the same turn of the loop
//! (before the swarm polled the transport) reached the behaviour after its
//! close: the reservation was made for nobody, and its address confirmed
//! as ours though nothing listened on it. `vendor/libp2p-relay/HUSH-PATCH.md`
//! has both fixes.

use std::time::Duration;

use futures::StreamExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm, SwarmBuilder, noise, relay, tcp, yamux};

fn relay_server() -> Swarm<relay::Behaviour> {
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_behaviour(|key| {
            relay::Behaviour::new(key.public().to_peer_id(), relay::Config::default())
        })
        .expect("relay behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build()
}

fn relay_client() -> Swarm<relay::client::Behaviour> {
    SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp transport")
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .expect("relay client transport")
        .with_behaviour(|_, client| client)
        .expect("relay client behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(30)))
        .build()
}

/// Polls `swarm` alone for `ms`, returning what it told.
async fn poll_alone<B: libp2p::swarm::NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    ms: u64,
) -> Vec<SwarmEvent<B::ToSwarm>> {
    let mut events = Vec::new();
    let until = tokio::time::Instant::now() + Duration::from_millis(ms);
    while let Ok(Some(event)) = tokio::time::timeout_at(until, swarm.next()).await {
        events.push(event);
    }
    events
}

/// A relay listening on loopback, and a node connected to it.
struct Pair {
    relay: Swarm<relay::Behaviour>,
    node: Swarm<relay::client::Behaviour>,
    /// The relay's address, with its peer id.
    relay_addr: Multiaddr,
    /// What the node told, as text.
    told: Vec<String>,
    /// Reservations the relay accepted.
    accepted: usize,
}

impl Pair {
    async fn connected() -> Self {
        let mut relay = relay_server();
        relay
            .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("an address"))
            .expect("listen");
        let addr: Multiaddr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = relay.select_next_some().await {
                break address;
            }
        };
        relay.add_external_address(addr.clone());
        let relay_addr = addr.with(Protocol::P2p(*relay.local_peer_id()));
        let mut node = relay_client();
        node.dial(relay_addr.clone()).expect("dial the relay");
        let mut pair = Self {
            relay,
            node,
            relay_addr,
            told: Vec::new(),
            accepted: 0,
        };
        let (mut node_in, mut relay_in) = (false, false);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !(node_in && relay_in) {
            tokio::select! {
                e = pair.node.select_next_some() => node_in |= matches!(e, SwarmEvent::ConnectionEstablished { .. }),
                e = pair.relay.select_next_some() => relay_in |= matches!(e, SwarmEvent::ConnectionEstablished { .. }),
                () = tokio::time::sleep_until(deadline) => panic!("the node never connected to the relay"),
            }
        }
        pair
    }

    fn circuit(&self) -> Multiaddr {
        self.relay_addr.clone().with(Protocol::P2pCircuit)
    }

    /// Drives both until `done` holds of the pair (at most 10 s).
    async fn drive_until(&mut self, what: &str, done: impl Fn(&Self) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done(self) {
            tokio::select! {
                e = self.node.select_next_some() => self.told.push(format!("{e:?}")),
                e = self.relay.select_next_some() => if matches!(
                    e,
                    SwarmEvent::Behaviour(relay::Event::ReservationReqAccepted { .. })
                ) {
                    self.accepted += 1;
                },
                () = tokio::time::sleep_until(deadline) => panic!("{what} did not happen in 10 s"),
            }
        }
    }

    /// Drives both for `ms`.
    async fn drive_for(&mut self, ms: u64) {
        let until = tokio::time::Instant::now() + Duration::from_millis(ms);
        let _ = tokio::time::timeout_at(until, self.drive_until("", |_| false)).await;
    }

    /// The reservations the node told as its own.
    fn told_accepted(&self) -> usize {
        self.told
            .iter()
            .filter(|e| e.contains("ReservationReqAccepted"))
            .count()
    }

    /// A circuit the node keeps: asked for, its reservation told by both
    /// sides (the relay's event can come after the node's); the node's
    /// client is still usable.
    async fn keep_a_circuit(&mut self) {
        let (told, accepted) = (self.told_accepted(), self.accepted);
        self.node
            .listen_on(self.circuit())
            .expect("listen on a circuit");
        self.drive_until("a kept circuit's reservation", |p| {
            p.told_accepted() > told && p.accepted > accepted
        })
        .await;
    }
}

#[tokio::test]
async fn a_circuit_dropped_while_the_relay_answers_its_reservation_does_not_panic_the_node() {
    let mut pair = Pair::connected().await;
    // The node asks for a reservation; the relay, not polled, has not
    // answered when the node drops the listener.
    let circuit = pair
        .node
        .listen_on(pair.circuit())
        .expect("listen on a circuit");
    for e in poll_alone(&mut pair.node, 300).await {
        pair.told.push(format!("{e:?}"));
    }
    assert!(
        pair.node.remove_listener(circuit),
        "the circuit's listener was open"
    );

    // Now the relay answers, and the node must take it in its stride.
    pair.drive_until("the relay's answer", |p| p.accepted == 1)
        .await;
    pair.drive_for(200).await;
    assert_eq!(
        pair.told_accepted(),
        0,
        "a reservation for a dropped listener is not told as ours: {:?}",
        pair.told
    );
    assert!(
        pair.node.external_addresses().next().is_none(),
        "the dropped circuit is not an address of ours"
    );
    // The stale answer is behind the node, and its client still works.
    pair.keep_a_circuit().await;
    assert_eq!(pair.accepted, 2);
}

#[tokio::test]
async fn a_circuit_asked_for_and_dropped_in_one_turn_reserves_nothing() {
    let mut pair = Pair::connected().await;
    // Asked for and dropped before the swarm is polled again: the
    // request reaches the relay client after the listener's close.
    let circuit = pair
        .node
        .listen_on(pair.circuit())
        .expect("listen on a circuit");
    assert!(pair.node.remove_listener(circuit));
    pair.drive_for(200).await;
    // A circuit the node keeps, asked for after: once its reservation is
    // told, the relay has handled whatever the node sent before it.
    pair.keep_a_circuit().await;
    pair.drive_for(200).await;
    assert_eq!(
        pair.accepted, 1,
        "the relay reserved only the kept circuit: {:?}",
        pair.told
    );
    assert_eq!(pair.told_accepted(), 1);
}

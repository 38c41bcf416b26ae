//! The relay client under hush's use of it, with a raw relay beside it.
//!
//! A node drops its circuit listeners when AutoNAT finds it public
//! (`event_loop/reach.rs`, `drop_circuits`), and the reservation behind a
//! listener can still be on its way: asked at start, answered a moment
//! after the node learned it is public. libp2p-relay 0.22's client then
//! met an answer for a listener it had forgotten and panicked
//! (`expect("Relay connection exist")`), taking the node's event loop with
//! it. `vendor/libp2p-relay/HUSH-PATCH.md` has the fix.

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

#[tokio::test]
async fn a_circuit_dropped_while_the_relay_answers_its_reservation_does_not_panic_the_node() {
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
    let (mut node_in, mut relay_in) = (false, false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !(node_in && relay_in) {
        tokio::select! {
            e = node.select_next_some() => node_in |= matches!(e, SwarmEvent::ConnectionEstablished { .. }),
            e = relay.select_next_some() => relay_in |= matches!(e, SwarmEvent::ConnectionEstablished { .. }),
            () = tokio::time::sleep_until(deadline) => panic!("the node never connected to the relay"),
        }
    }

    // The node asks for a reservation; the relay, not polled, has not
    // answered when the node drops the listener.
    let circuit = node
        .listen_on(relay_addr.with(Protocol::P2pCircuit))
        .expect("listen on a circuit");
    poll_alone(&mut node, 300).await;
    assert!(
        node.remove_listener(circuit),
        "the circuit's listener was open"
    );

    // Now the relay answers, and the node must take it in its stride.
    let mut accepted = false;
    let mut told = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !accepted {
        tokio::select! {
            e = node.select_next_some() => told.push(format!("{e:?}")),
            e = relay.select_next_some() => accepted |= matches!(
                e,
                SwarmEvent::Behaviour(relay::Event::ReservationReqAccepted { .. })
            ),
            () = tokio::time::sleep_until(deadline) => panic!("the relay never answered the reservation"),
        }
    }
    for e in poll_alone(&mut node, 500).await {
        told.push(format!("{e:?}"));
    }
    assert!(
        !told.iter().any(|e| e.contains("ReservationReqAccepted")),
        "a reservation for a dropped listener is not told as ours: {told:?}"
    );
    assert!(
        node.external_addresses().next().is_none(),
        "the dropped circuit is not an address of ours"
    );
}

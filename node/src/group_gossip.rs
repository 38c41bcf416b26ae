//! Gossipsub only with group peers. libp2p's gossipsub tells every peer it
//! gets a connection handler for all of the node's subscriptions (one topic
//! per group it is in). Behind the connection gate that is still every
//! contact: a contact who shares no group with us would learn how many
//! groups we are in and could match their topics with what other nodes
//! announce. So gossipsub gets a handler, and hears of the connection, only
//! for the devices of accounts we share a group with, our own devices and
//! our home relays; every other connection gets a dummy handler and
//! gossipsub never knows it exists.
//!
//! A handler is chosen when a connection is established. When a peer's
//! standing changes, its connections have the wrong handler. A contact who
//! joined one of our groups is dialled again: the new connection gossips,
//! the old one idles out. A peer we no longer share a group with keeps its
//! connection (it may carry other protocols: a revoked device learns it is
//! revoked over it), but gossipsub is told it closed, and nothing its
//! handler hears reaches gossipsub any more: we announce nothing more to it.
//!
//! The two sides choose apart: a connection can have gossipsub's handler on
//! our side and a dummy on the peer's (it did not know us as a group peer
//! yet). Our handler's first stream is then refused and the handler gives
//! up on the connection for good, while gossipsub, which keeps one queue per
//! peer, would go on counting on it: once the peer's own redial (above)
//! idles out, everything for the peer (its mesh forwards, our subscription)
//! waits in a queue no connection drains. So gossipsub's handler is
//! [`Watched`]: a refusal is reported, and gossipsub is told that
//! connection closed, as for a muted one.

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

use either::Either;
use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint, Multiaddr};
use libp2p::gossipsub;
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::handler::{ConnectionEvent, DialUpgradeError};
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, StreamUpgradeError, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};

type Inner = gossipsub::Behaviour;

/// What gossipsub knows of a connection.
#[derive(Debug)]
enum Link {
    /// A dummy handler: gossipsub never heard of it.
    Dummy,
    /// Gossipsub's handler; the endpoint once established.
    Gossip(Option<ConnectedPoint>),
    /// Gossipsub's handler, but gossipsub was told it closed (its peer
    /// left our groups): what the handler hears is dropped.
    Muted,
    /// Gossipsub's handler, which the peer refused (its side has none):
    /// gossipsub was told it closed. Not dialled again by us: the peer
    /// dials when it takes us as a group peer.
    Refused,
}

pub struct GroupGossip {
    inner: Inner,
    /// Group peers' devices, our own devices, our home relays.
    allowed: HashSet<PeerId>,
    /// Every established connection: its peer and what gossipsub knows.
    connections: HashMap<ConnectionId, (PeerId, Link)>,
    /// Peers that may gossip now, connected without it: dialled again.
    to_dial: VecDeque<PeerId>,
}

impl GroupGossip {
    pub fn new(inner: Inner) -> Self {
        Self {
            inner,
            allowed: HashSet::new(),
            connections: HashMap::new(),
            to_dial: VecDeque::new(),
        }
    }

    /// Replaces the peers gossipsub may talk to: a newly allowed peer
    /// connected without gossip is dialled again; the gossiping
    /// connections of a peer no longer allowed are muted.
    pub fn set_allowed(&mut self, allowed: HashSet<PeerId>) {
        let mut mute = Vec::new();
        let mut dial = HashSet::new();
        for (connection, (peer, link)) in &self.connections {
            match (link, allowed.contains(peer)) {
                (Link::Gossip(Some(_)), false) => mute.push(*connection),
                (Link::Dummy | Link::Muted, true) => {
                    dial.insert(*peer);
                }
                _ => {}
            }
        }
        for connection in mute {
            self.mute(connection);
        }
        let gossiping: HashSet<PeerId> = self
            .connections
            .values()
            .filter(|(_, link)| matches!(link, Link::Gossip(_)))
            .map(|(peer, _)| *peer)
            .collect();
        self.to_dial
            .extend(dial.into_iter().filter(|p| !gossiping.contains(p)));
        self.allowed = allowed;
    }

    /// Tells gossipsub the connection closed; it stays open for the rest.
    fn mute(&mut self, connection: ConnectionId) {
        self.close_for_gossip(connection, Link::Muted);
    }

    /// Tells gossipsub a gossiping connection closed, and marks it `now`.
    fn close_for_gossip(&mut self, connection: ConnectionId, now: Link) {
        let Some((peer, link)) = self.connections.remove(&connection) else {
            return;
        };
        if let Link::Gossip(Some(endpoint)) = &link {
            let remaining_established = self.known_to_gossipsub(&peer);
            self.inner
                .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                    peer_id: peer,
                    connection_id: connection,
                    endpoint,
                    cause: None,
                    remaining_established,
                }));
        }
        self.connections.insert(connection, (peer, now));
    }

    /// How many connections to `peer` gossipsub made a handler for and was
    /// not told closed: established or not yet. What stays of them when
    /// one closes: were one not yet established left out, gossipsub would
    /// forget the peer, and then not know it once that one is established.
    fn known_to_gossipsub(&self, peer: &PeerId) -> usize {
        self.connections
            .values()
            .filter(|(p, link)| p == peer && matches!(link, Link::Gossip(_)))
            .count()
    }

    /// How many connections to `peer` gossipsub knows as established.
    fn gossiping_to(&self, peer: &PeerId) -> usize {
        self.connections
            .values()
            .filter(|(p, link)| p == peer && matches!(link, Link::Gossip(Some(_))))
            .count()
    }

    fn handler(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        inner: impl FnOnce(&mut Inner) -> Result<THandler<Inner>, ConnectionDenied>,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.allowed.contains(&peer) {
            let handler = inner(&mut self.inner)?;
            self.connections
                .insert(connection, (peer, Link::Gossip(None)));
            Ok(Either::Left(Watched::new(handler)))
        } else {
            self.connections.insert(connection, (peer, Link::Dummy));
            Ok(Either::Right(dummy::ConnectionHandler))
        }
    }

    fn is_gossiping(&self, connection: &ConnectionId) -> bool {
        matches!(self.connections.get(connection), Some((_, Link::Gossip(_))))
    }
}

impl Deref for GroupGossip {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

impl DerefMut for GroupGossip {
    fn deref_mut(&mut self) -> &mut Inner {
        &mut self.inner
    }
}

impl NetworkBehaviour for GroupGossip {
    type ConnectionHandler = Either<Watched, dummy::ConnectionHandler>;
    type ToSwarm = gossipsub::Event;

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.handler(connection, peer, |inner| {
            inner.handle_established_inbound_connection(connection, peer, local, remote)
        })
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.handler(connection, peer, |inner| {
            inner.handle_established_outbound_connection(connection, peer, addr, role, port_use)
        })
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) => {
                if !self.is_gossiping(&e.connection_id) {
                    return;
                }
                // Counted among the connections gossipsub knows: it sends
                // its subscriptions on the first of them.
                let other_established = self.gossiping_to(&e.peer_id);
                self.connections.insert(
                    e.connection_id,
                    (e.peer_id, Link::Gossip(Some(e.endpoint.clone()))),
                );
                self.inner.on_swarm_event(FromSwarm::ConnectionEstablished(
                    ConnectionEstablished {
                        other_established,
                        ..e
                    },
                ));
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some((_, Link::Gossip(_))) = self.connections.remove(&e.connection_id) {
                    let remaining_established = self.known_to_gossipsub(&e.peer_id);
                    self.inner
                        .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                            remaining_established,
                            ..e
                        }));
                }
            }
            FromSwarm::AddressChange(e) => {
                if self.is_gossiping(&e.connection_id) {
                    self.inner.on_swarm_event(FromSwarm::AddressChange(e));
                }
            }
            FromSwarm::DialFailure(e) => {
                // A later behaviour may refuse a connection this one made a
                // handler for: it never becomes established.
                self.connections.remove(&e.connection_id);
                self.inner.on_swarm_event(FromSwarm::DialFailure(e));
            }
            FromSwarm::ListenFailure(e) => {
                self.connections.remove(&e.connection_id);
                self.inner.on_swarm_event(FromSwarm::ListenFailure(e));
            }
            other => self.inner.on_swarm_event(other),
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(Watch::Refused) => {
                if matches!(
                    self.connections.get(&connection),
                    Some((_, Link::Gossip(Some(_))))
                ) {
                    tracing::debug!(%peer, "a group peer refused gossip on a connection");
                    self.close_for_gossip(connection, Link::Refused);
                }
            }
            Either::Left(Watch::Inner(event)) if self.is_gossiping(&connection) => self
                .inner
                .on_connection_handler_event(peer, connection, event),
            // A muted or refused connection: gossipsub believes it closed.
            Either::Left(Watch::Inner(_)) => {}
            Either::Right(never) => match never {},
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        if let Some(peer) = self.to_dial.pop_front() {
            tracing::debug!(%peer, "dialling a new group peer again, for gossip");
            let opts = DialOpts::peer_id(peer)
                .condition(PeerCondition::Always)
                .build();
            return Poll::Ready(ToSwarm::Dial { opts });
        }
        self.inner.poll(cx).map(|event| event.map_in(Either::Left))
    }
}

type InnerHandler = THandler<Inner>;

/// What a [`Watched`] handler tells the behaviour. Not boxed: gossipsub's
/// events pass straight through, and a box would cost an allocation each.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Watch {
    /// What gossipsub's handler tells gossipsub.
    Inner(THandlerOutEvent<Inner>),
    /// The peer refused gossip on this connection (its side has no handler
    /// for it): gossipsub's handler gave up on it.
    Refused,
}

/// Gossipsub's handler, passed through, except that a refused stream (the
/// peer does not take gossip on this connection) is reported once.
pub struct Watched {
    inner: InnerHandler,
    /// A refusal not reported yet.
    refused: bool,
}

impl Watched {
    fn new(inner: InnerHandler) -> Self {
        Self {
            inner,
            refused: false,
        }
    }
}

impl ConnectionHandler for Watched {
    type FromBehaviour = <InnerHandler as ConnectionHandler>::FromBehaviour;
    type ToBehaviour = Watch;
    type InboundProtocol = <InnerHandler as ConnectionHandler>::InboundProtocol;
    type OutboundProtocol = <InnerHandler as ConnectionHandler>::OutboundProtocol;
    type InboundOpenInfo = <InnerHandler as ConnectionHandler>::InboundOpenInfo;
    type OutboundOpenInfo = <InnerHandler as ConnectionHandler>::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Watch>> {
        if std::mem::take(&mut self.refused) {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(Watch::Refused));
        }
        self.inner
            .poll(cx)
            .map(|event| event.map_custom(Watch::Inner))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Watch>> {
        self.inner
            .poll_close(cx)
            .map(|event| event.map(Watch::Inner))
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.inner.on_behaviour_event(event);
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        if let ConnectionEvent::DialUpgradeError(DialUpgradeError {
            error: StreamUpgradeError::NegotiationFailed,
            ..
        }) = &event
        {
            self.refused = true;
        }
        self.inner.on_connection_event(event);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;
    use libp2p::{Swarm, SwarmBuilder, identify, noise, ping, tcp, yamux};

    use super::*;

    /// Group gossip beside other protocols, as on a node: a connection
    /// without gossip still speaks the others, and identify remembers the
    /// addresses a redial goes to.
    #[derive(libp2p::swarm::NetworkBehaviour)]
    struct Both {
        gossip: GroupGossip,
        ping: ping::Behaviour,
        identify: identify::Behaviour,
    }

    fn swarm() -> Swarm<Both> {
        SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|key| Both {
                gossip: GroupGossip::new(
                    hush_host::gossipsub_behaviour().expect("gossipsub config"),
                ),
                ping: ping::Behaviour::new(
                    ping::Config::new().with_interval(Duration::from_millis(200)),
                ),
                identify: identify::Behaviour::new(
                    identify::Config::new("/hush-test/1".into(), key.public()).with_cache_size(8),
                ),
            })
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build()
    }

    /// Drives both swarms until `done` holds (or panics after 20 s).
    async fn until(
        step: &str,
        a: &mut Swarm<Both>,
        b: &mut Swarm<Both>,
        mut done: impl FnMut(&Swarm<Both>, &SwarmEvent<BothEvent>, bool) -> bool,
    ) {
        let deadline = tokio::time::sleep(Duration::from_secs(20));
        tokio::pin!(deadline);
        loop {
            let (event, at_a) = tokio::select! {
                event = a.select_next_some() => (event, true),
                event = b.select_next_some() => (event, false),
                () = &mut deadline => panic!("the swarms did not get there in 20 s: {step}"),
            };
            if done(a, &event, at_a) {
                return;
            }
        }
    }

    /// A dials B while B does not know A as a group peer yet: A's side
    /// gossips, B's side is a dummy. B learns of A and dials again; the two
    /// gossip over the new connection, which later closes. A must not go
    /// on counting on the first connection, where B never reads: B would
    /// stay a subscribed peer (a mesh peer) to A, a hole every message to B
    /// falls into, while B does not know A at all.
    #[tokio::test]
    async fn a_connection_the_peer_refuses_gossip_on_is_not_counted_on() {
        let (mut a, mut b) = (swarm(), swarm());
        let (a_id, b_id) = (*a.local_peer_id(), *b.local_peer_id());
        let topic = gossipsub::IdentTopic::new("/hush/group/2/test");
        a.behaviour_mut()
            .gossip
            .subscribe(&topic)
            .expect("subscribe");
        b.behaviour_mut()
            .gossip
            .subscribe(&topic)
            .expect("subscribe");
        a.behaviour_mut().gossip.set_allowed(HashSet::from([b_id]));
        b.listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("address"))
            .expect("listen");
        let address = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = b.select_next_some().await {
                break address;
            }
        };
        a.listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("address"))
            .expect("listen");
        a.add_peer_address(b_id, address.clone());
        b.add_peer_address(
            a_id,
            loop {
                if let SwarmEvent::NewListenAddr { address, .. } = a.select_next_some().await {
                    break address;
                }
            },
        );
        a.dial(address).expect("dial");
        // A announces its topic on the new connection; B refuses the stream.
        // (Gossipsub itself tells of it only without the fix.) And B learns
        // A's addresses, for its redial.
        let (mut refused, mut identified) = (false, false);
        until("a refused connection", &mut a, &mut b, |a, event, at_a| {
            refused |= matches!(
                event,
                SwarmEvent::Behaviour(BothEvent::Gossip(
                    gossipsub::Event::GossipsubNotSupported { .. }
                ))
            ) || a
                .behaviour()
                .gossip
                .connections
                .values()
                .any(|(_, l)| matches!(l, Link::Refused));
            identified |= !at_a
                && matches!(
                    event,
                    SwarmEvent::Behaviour(BothEvent::Identify(identify::Event::Received { .. }))
                );
            refused && identified
        })
        .await;
        // B takes A as a group peer: it dials again, and the two gossip.
        b.behaviour_mut().gossip.set_allowed(HashSet::from([a_id]));
        let mut second = None;
        until(
            "a second connection",
            &mut a,
            &mut b,
            |_, event, at_a| match event {
                SwarmEvent::ConnectionEstablished { connection_id, .. } if !at_a => {
                    second = Some(*connection_id);
                    false
                }
                SwarmEvent::Behaviour(BothEvent::Gossip(gossipsub::Event::Subscribed {
                    peer_id,
                    ..
                })) => at_a && *peer_id == b_id,
                _ => false,
            },
        )
        .await;
        assert!(
            a.behaviour()
                .gossip
                .all_peers()
                .any(|(p, topics)| *p == b_id && !topics.is_empty()),
            "B's subscription came over the second connection"
        );
        // The second connection closes; the first stays open.
        b.close_connection(second.expect("B dialled a second connection"));
        until("the second closed", &mut a, &mut b, |_, event, at_a| {
            at_a && matches!(event, SwarmEvent::ConnectionClosed { .. })
        })
        .await;
        assert!(a.is_connected(&b_id), "the first connection is still open");
        assert!(
            !a.behaviour().gossip.all_peers().any(|(p, _)| *p == b_id),
            "gossipsub still counts on a connection the peer refused"
        );
    }

    /// A second connection is made (its handler exists) while the first
    /// closes, before the second is established: gossipsub must still know
    /// the peer once the second is. Told "none remain" for the first, it
    /// forgot the peer, and then never knew it on the second (libp2p:
    /// "peer doesn't exist in connected peer list").
    #[test]
    fn a_connection_closing_while_the_next_is_being_made_keeps_the_peer() {
        let mut gossip =
            GroupGossip::new(hush_host::gossipsub_behaviour().expect("gossipsub config"));
        let peer = PeerId::random();
        gossip.set_allowed(HashSet::from([peer]));
        let address: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().expect("address");
        let endpoint = ConnectedPoint::Listener {
            local_addr: address.clone(),
            send_back_addr: address.clone(),
        };
        let (first, second) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        let established = |connection_id, other_established| {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id: peer,
                connection_id,
                endpoint: &endpoint,
                failed_addresses: &[],
                other_established,
            })
        };
        let made = gossip.handle_established_inbound_connection(first, peer, &address, &address);
        assert!(matches!(made, Ok(Either::Left(_))), "a group peer gossips");
        gossip.on_swarm_event(established(first, 0));
        let made = gossip.handle_established_inbound_connection(second, peer, &address, &address);
        assert!(matches!(made, Ok(Either::Left(_))));
        gossip.on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
            peer_id: peer,
            connection_id: first,
            endpoint: &endpoint,
            cause: None,
            remaining_established: 0,
        }));
        gossip.on_swarm_event(established(second, 0));
        assert!(
            gossip.all_peers().any(|(p, _)| *p == peer),
            "gossipsub forgot a peer it has a connection to"
        );
    }
}

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
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
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
        let Some((peer, link)) = self.connections.remove(&connection) else {
            return;
        };
        if let Link::Gossip(Some(endpoint)) = &link {
            let remaining_established = self.gossiping_to(&peer);
            self.inner
                .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                    peer_id: peer,
                    connection_id: connection,
                    endpoint,
                    cause: None,
                    remaining_established,
                }));
        }
        self.connections.insert(connection, (peer, Link::Muted));
    }

    /// How many connections to `peer` gossipsub knows as open.
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
            Ok(Either::Left(handler))
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
    type ConnectionHandler = Either<THandler<Inner>, dummy::ConnectionHandler>;
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
                    let remaining_established = self.gossiping_to(&e.peer_id);
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
            Either::Left(event) if self.is_gossiping(&connection) => self
                .inner
                .on_connection_handler_event(peer, connection, event),
            // A muted connection: gossipsub believes it closed.
            Either::Left(_) => {}
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

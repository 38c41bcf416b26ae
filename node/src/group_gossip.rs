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
//! standing changes, its connections have the wrong handler: a contact who
//! joined one of our groups is dialled again (the new connection gossips;
//! the old one idles out), and the gossiping connections of a peer we no
//! longer share a group with are closed (the next one does not gossip).

use std::collections::{HashMap, HashSet, VecDeque};
use std::ops::{Deref, DerefMut};
use std::task::{Context, Poll};

use either::Either;
use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::gossipsub;
use libp2p::swarm::behaviour::{ConnectionClosed, ConnectionEstablished};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm, dummy,
};

type Inner = gossipsub::Behaviour;

pub struct GroupGossip {
    inner: Inner,
    /// Group peers' devices, our own devices, our home relays.
    allowed: HashSet<PeerId>,
    /// Every established connection: its peer, and whether it got the
    /// gossipsub handler.
    connections: HashMap<ConnectionId, (PeerId, bool)>,
    /// Gossiping connections of peers that may no longer gossip.
    to_close: VecDeque<(PeerId, ConnectionId)>,
    /// Peers that may gossip now, connected without it: dialled again.
    to_dial: VecDeque<PeerId>,
}

impl GroupGossip {
    pub fn new(inner: Inner) -> Self {
        Self {
            inner,
            allowed: HashSet::new(),
            connections: HashMap::new(),
            to_close: VecDeque::new(),
            to_dial: VecDeque::new(),
        }
    }

    /// Replaces the peers gossipsub may talk to: a newly allowed peer that
    /// is connected without gossip is dialled again, the gossiping
    /// connections of a peer no longer allowed are closed.
    pub fn set_allowed(&mut self, allowed: HashSet<PeerId>) {
        let mut dial = HashSet::new();
        for (connection, (peer, gossiping)) in &self.connections {
            match (*gossiping, allowed.contains(peer)) {
                (true, false) => self.to_close.push_back((*peer, *connection)),
                (false, true) => {
                    dial.insert(*peer);
                }
                _ => {}
            }
        }
        let gossiping: HashSet<PeerId> = self
            .connections
            .values()
            .filter(|(_, g)| *g)
            .map(|(p, _)| *p)
            .collect();
        self.to_dial
            .extend(dial.into_iter().filter(|p| !gossiping.contains(p)));
        self.allowed = allowed;
    }

    /// Whether a connection to `peer` gets the gossipsub handler.
    fn takes(&self, peer: &PeerId) -> bool {
        self.allowed.contains(peer)
    }

    /// The peer's other connections that gossip.
    fn gossiping_to(&self, peer: &PeerId, except: ConnectionId) -> usize {
        self.connections
            .iter()
            .filter(|(c, (p, g))| **c != except && p == peer && *g)
            .count()
    }

    fn handler(
        &mut self,
        connection: ConnectionId,
        peer: PeerId,
        inner: impl FnOnce(&mut Inner) -> Result<THandler<Inner>, ConnectionDenied>,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.takes(&peer) {
            let handler = inner(&mut self.inner)?;
            self.connections.insert(connection, (peer, true));
            Ok(Either::Left(handler))
        } else {
            self.connections.insert(connection, (peer, false));
            Ok(Either::Right(dummy::ConnectionHandler))
        }
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
                if self.connections.get(&e.connection_id).is_some_and(|c| c.1) {
                    // Counted among the connections gossipsub knows: it
                    // sends its subscriptions on the first of them.
                    let other_established = self.gossiping_to(&e.peer_id, e.connection_id);
                    self.inner.on_swarm_event(FromSwarm::ConnectionEstablished(
                        ConnectionEstablished {
                            other_established,
                            ..e
                        },
                    ));
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some((_, true)) = self.connections.remove(&e.connection_id) {
                    let remaining_established = self.gossiping_to(&e.peer_id, e.connection_id);
                    self.inner
                        .on_swarm_event(FromSwarm::ConnectionClosed(ConnectionClosed {
                            remaining_established,
                            ..e
                        }));
                }
                self.to_close.retain(|(_, c)| *c != e.connection_id);
            }
            FromSwarm::AddressChange(e) => {
                if self.connections.get(&e.connection_id).is_some_and(|c| c.1) {
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
            Either::Left(event) => self
                .inner
                .on_connection_handler_event(peer, connection, event),
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
        if let Some((peer_id, connection)) = self.to_close.pop_front() {
            tracing::debug!(peer = %peer_id, "closing a connection whose gossip no longer fits the peer");
            return Poll::Ready(ToSwarm::CloseConnection {
                peer_id,
                connection: CloseConnection::One(connection),
            });
        }
        self.inner.poll(cx).map(|event| event.map_in(Either::Left))
    }
}

//! The connection gate: a node serves its protocols only to peers it has a
//! reason to talk to. An inbound connection from any other peer is refused
//! right after the Noise handshake, before any behaviour sees it: no
//! gossipsub subscriptions are sent to it (they would name the node's
//! groups), no identify, no request is answered, and its presence is not
//! revealed by anything but the handshake itself.
//!
//! Allowed inbound: the devices the contact book knows (contacts', group
//! peers' and our own), our home relays, peers we dialled ourselves and
//! are connected to (a relay's AutoNAT dial-back, a hole punch), and
//! anyone while a link code is open (the joining device is not known
//! yet; the link protocol authenticates it). Outbound connections are ours
//! and always allowed.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm, dummy,
};

/// Why a connection was refused (in the swarm's `IncomingConnectionError`).
#[derive(Debug)]
pub struct NotKnown;

impl std::fmt::Display for NotKnown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not a contact's, group peer's, own or relay device")
    }
}

impl std::error::Error for NotKnown {}

#[derive(Debug, Default)]
pub struct Gate {
    /// Known devices and home relays (set by the event loop).
    allowed: HashSet<PeerId>,
    /// A link code is open: anyone may connect.
    open: bool,
    /// Our outbound connections per peer.
    dialled: HashMap<PeerId, usize>,
}

impl Gate {
    /// Replaces the allowed peers.
    pub fn set_allowed(&mut self, allowed: HashSet<PeerId>) {
        self.allowed = allowed;
    }

    /// Opens or closes the gate to everyone (a link code is outstanding).
    pub fn set_open(&mut self, open: bool) {
        self.open = open;
    }

    fn admits(&self, peer: &PeerId) -> bool {
        self.open || self.allowed.contains(peer) || self.dialled.contains_key(peer)
    }
}

impl NetworkBehaviour for Gate {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _connection: ConnectionId,
        peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if self.admits(&peer) {
            Ok(dummy::ConnectionHandler)
        } else {
            tracing::debug!(%peer, %remote, "refused a connection from an unknown peer");
            Err(ConnectionDenied::new(NotKnown))
        }
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) if e.endpoint.is_dialer() => {
                *self.dialled.entry(e.peer_id).or_default() += 1;
            }
            FromSwarm::ConnectionClosed(e) if e.endpoint.is_dialer() => {
                if let Some(n) = self.dialled.get_mut(&e.peer_id) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.dialled.remove(&e.peer_id);
                    }
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}

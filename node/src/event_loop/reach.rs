//! Reachability: AutoNAT tells whether others can dial us; while they
//! cannot (or we do not know yet), we hold a circuit reservation at each
//! home relay and advertise the circuit addresses. Peers that meet over a
//! circuit upgrade to a direct connection with DCUtR where the NATs allow.
//! mDNS finds contacts on the local network.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::{PeerId, autonat, dcutr, mdns, relay};

use super::EventLoop;
use crate::view::Reachability;

/// A failed reservation is tried again after this long.
const RESERVE_RETRY: Duration = Duration::from_secs(10);

#[derive(Debug, Default)]
pub(crate) struct Reach {
    nat: Option<autonat::NatStatus>,
    /// Our circuit listeners, per home relay.
    circuits: HashMap<PeerId, ListenerId>,
    /// Relays that accepted a reservation.
    reserved: HashSet<PeerId>,
    next_reserve: Option<Instant>,
    /// Open connections per peer: (direct, relayed).
    connections: HashMap<PeerId, (u32, u32)>,
    lan: HashSet<PeerId>,
    punched: HashSet<PeerId>,
}

impl Reach {
    fn public(&self) -> bool {
        matches!(self.nat, Some(autonat::NatStatus::Public(_)))
    }
}

impl EventLoop {
    /// Holds a circuit at every home relay, unless we are known public.
    pub(super) fn reserve_circuits(&mut self) {
        if self.reach.public() {
            return;
        }
        let relays: Vec<(PeerId, libp2p::Multiaddr)> =
            self.home.iter().map(|r| (r.peer, r.addr.clone())).collect();
        for (peer, addr) in relays {
            if self.reach.circuits.contains_key(&peer) {
                continue;
            }
            match self.swarm.listen_on(addr.with(Protocol::P2pCircuit)) {
                Ok(id) => {
                    self.reach.circuits.insert(peer, id);
                }
                Err(e) => tracing::debug!(relay = %peer, error = %e, "could not ask for a circuit"),
            }
        }
        self.reach.next_reserve = None;
    }

    fn drop_circuits(&mut self) {
        for (_, id) in self.reach.circuits.drain() {
            self.swarm.remove_listener(id);
        }
        self.reach.reserved.clear();
    }

    /// A listener closed: if it was a circuit, try again later.
    pub(super) fn circuit_closed(&mut self, listener: ListenerId) {
        let before = self.reach.circuits.len();
        self.reach.circuits.retain(|peer, id| {
            let keep = *id != listener;
            if !keep {
                tracing::info!(relay = %peer, "circuit reservation ended; asking again later");
            }
            keep
        });
        if self.reach.circuits.len() != before {
            self.reach.next_reserve = Some(Instant::now() + RESERVE_RETRY);
        }
    }

    /// A reservation waiting to be asked again goes now (the network
    /// seems to be back).
    pub(super) fn reserve_circuits_soon(&mut self) {
        if self.reach.next_reserve.is_some() {
            self.reach.next_reserve = Some(Instant::now());
        }
    }

    pub(super) fn reach_tick(&mut self) {
        if self
            .reach
            .next_reserve
            .is_some_and(|at| Instant::now() >= at)
        {
            self.reserve_circuits();
        }
    }

    pub(super) fn on_autonat(&mut self, event: autonat::Event) {
        let autonat::Event::StatusChanged { new, .. } = event else {
            return;
        };
        tracing::info!(status = ?new, "NAT status");
        let public = matches!(new, autonat::NatStatus::Public(_));
        self.reach.nat = Some(new);
        if public {
            self.drop_circuits();
        } else {
            self.reserve_circuits();
        }
    }

    pub(super) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted { relay_peer_id, .. } => {
                tracing::info!(relay = %relay_peer_id, "circuit reservation accepted");
                self.reach.reserved.insert(relay_peer_id);
            }
            other => tracing::debug!(event = ?other, "relay client"),
        }
    }

    pub(super) fn on_dcutr(&mut self, event: dcutr::Event) {
        match event.result {
            Ok(_) => {
                tracing::info!(peer = %event.remote_peer_id, "hole punch succeeded: direct connection");
                self.reach.punched.insert(event.remote_peer_id);
            }
            Err(e) => {
                tracing::info!(peer = %event.remote_peer_id, error = %e, "hole punch failed; staying on the relay")
            }
        }
    }

    pub(super) fn on_mdns(&mut self, event: mdns::Event) {
        let mdns::Event::Discovered(found) = event else {
            return;
        };
        let now = self.host_clock.now();
        for (peer, addr) in found {
            let Some((_, keys)) = self.engine.contacts.device_by_peer(&peer) else {
                continue;
            };
            tracing::debug!(%peer, %addr, "contact found on the LAN");
            self.swarm.add_peer_address(peer, addr);
            self.reach.lan.insert(peer);
            self.engine.routes.reached(&keys.device_id);
            self.engine.outbox.wake(&keys.device_id, now);
            if !self.swarm.is_connected(&peer) {
                let _ = self.swarm.dial(peer);
            }
        }
    }

    pub(super) fn connection_opened(&mut self, peer: PeerId, endpoint: &ConnectedPoint) {
        let counts = self.reach.connections.entry(peer).or_default();
        if endpoint.is_relayed() {
            counts.1 += 1;
        } else {
            counts.0 += 1;
        }
    }

    pub(super) fn connection_closed(&mut self, peer: PeerId, endpoint: &ConnectedPoint) {
        if let Some(counts) = self.reach.connections.get_mut(&peer) {
            if endpoint.is_relayed() {
                counts.1 = counts.1.saturating_sub(1);
            } else {
                counts.0 = counts.0.saturating_sub(1);
            }
            if *counts == (0, 0) {
                self.reach.connections.remove(&peer);
            }
        }
    }

    pub(super) fn reachability(&self) -> Reachability {
        let name_of = |peer: &PeerId| {
            let (account, _) = self.engine.contacts.device_by_peer(peer)?;
            self.engine.contacts.name_of(&account).cloned()
        };
        let mut direct = Vec::new();
        let mut relayed = Vec::new();
        for (peer, (d, r)) in &self.reach.connections {
            let Some(name) = name_of(peer) else { continue };
            if *d > 0 {
                direct.push(name);
            } else if *r > 0 {
                relayed.push(name);
            }
        }
        direct.sort();
        relayed.sort();
        let mut lan: Vec<String> = self.reach.lan.iter().filter_map(name_of).collect();
        lan.sort();
        let mut hole_punched: Vec<String> = self.reach.punched.iter().filter_map(name_of).collect();
        hole_punched.sort();
        let (nat, public_address) = match &self.reach.nat {
            Some(autonat::NatStatus::Public(addr)) => ("public", Some(addr.to_string())),
            Some(autonat::NatStatus::Private) => ("private", None),
            _ => ("unknown", None),
        };
        Reachability {
            nat: nat.to_owned(),
            public_address,
            relayed_via: self
                .listen_addresses
                .iter()
                .filter(|a| a.iter().any(|p| matches!(p, Protocol::P2pCircuit)))
                .map(|a| a.to_string())
                .collect(),
            direct,
            relayed,
            lan,
            hole_punched,
            sharing_presence: self.presence.sharing(),
        }
    }
}

//! Reachability: AutoNAT tells whether others can dial us; while they
//! cannot (or we do not know yet), we hold a circuit reservation at each
//! home relay and advertise the circuit addresses. Peers that meet over a
//! circuit upgrade to a direct connection with DCUtR where the NATs allow.
//! mDNS (only with `--mdns`) finds contacts on the local network: each run
//! announces a random peer id, so the LAN learns that a hush node runs at
//! an address but not which device it is. A node that hears an
//! announcement dials the address, learns the real device in the Noise
//! handshake and keeps the connection only if it is a contact's (or one of
//! our own) devices.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::{PeerId, autonat, dcutr, mdns, relay};

use super::EventLoop;
use crate::view::Reachability;

/// A failed reservation is tried again after this long.
const RESERVE_RETRY: Duration = Duration::from_secs(10);
/// An address heard on the LAN is dialled again after this long at most.
const LAN_REDIAL: Duration = Duration::from_secs(60);
/// LAN addresses remembered as dialled, and LAN dials in flight, at most.
const MAX_LAN_TRIED: usize = 256;
const MAX_LAN_DIALS: usize = 32;

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
    /// Addresses announced on the LAN now, with the known device found
    /// there (if one was).
    lan_heard: HashMap<libp2p::Multiaddr, Option<PeerId>>,
    /// Dials of addresses heard on the LAN, not connected yet.
    lan_dials: HashMap<ConnectionId, libp2p::Multiaddr>,
    /// When each LAN address was last dialled.
    lan_tried: HashMap<libp2p::Multiaddr, Instant>,
    /// The contact book's generation when the LAN was last looked at: a
    /// new contact may be behind an address already dismissed.
    lan_generation: u64,
    lan_next_check: Option<Instant>,
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
        let relays: Vec<(PeerId, libp2p::Multiaddr)> = self
            .home
            .iter()
            .filter(|r| !r.retired)
            .map(|r| (r.peer, r.addr.clone()))
            .collect();
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
        let now = Instant::now();
        if !self.reach.lan_heard.is_empty() && self.reach.lan_next_check.is_none_or(|at| now >= at)
        {
            self.reach.lan_next_check = Some(now + Duration::from_secs(1));
            self.lan_dial_due();
        }
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

    /// Hush nodes announce themselves on the LAN under random ids: note
    /// their addresses (the id is meaningless) and dial the new ones.
    pub(super) fn on_mdns(&mut self, event: mdns::Event) {
        let (found, expired) = match event {
            mdns::Event::Discovered(found) => (found, false),
            mdns::Event::Expired(gone) => (gone, true),
        };
        for (_, mut addr) in found {
            // The address ends with the random id it was announced under:
            // dial without it, to meet whoever really listens there.
            if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
                addr.pop();
            }
            if expired {
                self.reach.lan_heard.remove(&addr);
            } else if self.reach.lan_heard.len() < MAX_LAN_TRIED
                && !self.listen_addresses.contains(&addr)
            {
                self.reach.lan_heard.entry(addr).or_insert(None);
            }
        }
        self.lan_dial_due();
    }

    /// Dials every address heard on the LAN that is not a known device we
    /// are connected to, at most once a minute each; after the contact book
    /// changed, at once.
    fn lan_dial_due(&mut self) {
        let now = Instant::now();
        let generation = self.engine.contacts.generation();
        let reach = &mut self.reach;
        if reach.lan_generation != generation {
            reach.lan_generation = generation;
            reach.lan_tried.clear();
        }
        reach
            .lan_tried
            .retain(|_, at| now.duration_since(*at) < LAN_REDIAL);
        for (addr, found) in &reach.lan_heard {
            if found.is_some_and(|peer| self.swarm.is_connected(&peer))
                || reach.lan_tried.contains_key(addr)
                || reach.lan_dials.len() >= MAX_LAN_DIALS
            {
                continue;
            }
            reach.lan_tried.insert(addr.clone(), now);
            let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
            let id = opts.connection_id();
            match self.swarm.dial(opts) {
                Ok(()) => {
                    tracing::debug!(%addr, "dialling a hush node heard on the LAN");
                    reach.lan_dials.insert(id, addr.clone());
                }
                Err(e) => tracing::debug!(%addr, error = %e, "could not dial a LAN address"),
            }
        }
    }

    /// A connection opened: if it is a LAN dial, keep it only for a known
    /// device (a contact's or ours), and remember the address for it.
    pub(super) fn lan_connected(&mut self, peer: PeerId, connection: ConnectionId) {
        let Some(addr) = self.reach.lan_dials.remove(&connection) else {
            return;
        };
        if self.engine.contacts.device_by_peer(&peer).is_none() {
            tracing::debug!(%addr, "the node heard on the LAN is not a contact: closing");
            self.swarm.close_connection(connection);
            return;
        }
        tracing::debug!(%peer, %addr, "contact found on the LAN");
        if let Some(found) = self.reach.lan_heard.get_mut(&addr) {
            *found = Some(peer);
        }
        self.swarm.add_peer_address(peer, addr);
        self.reach.lan.insert(peer);
    }

    pub(super) fn lan_dial_failed(&mut self, connection: ConnectionId) {
        self.reach.lan_dials.remove(&connection);
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

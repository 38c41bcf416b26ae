//! Connections that died without closing, and the way back.
//!
//! Every connection runs `hush_host::liveness`: one that stops answering
//! its probes is closed, and the usual close handling follows (the relay
//! shows as not connected in `status`, requests on it fail and are retried
//! or moved to the mailbox path, presence starts its grace period). Here
//! the node adds what a closed connection alone does not say:
//!
//! - a contact device whose connection died is unreachable *now*: new mail
//!   goes through its relays at once, not after a dial times out;
//! - the peers lost this way are remembered for a while; when anything
//!   says the network is back (any connection opens, or our interfaces'
//!   addresses change) they are redialled at once, and home relays waiting
//!   out a backoff are asked again at once, as is a circuit reservation.
//!
//! ```text
//!  probe fails ×3 ─▶ Dead ─▶ closed ─▶ relay: not connected, drain retries (≤ 4 s apart)
//!                      │             ─▶ contact: unreachable → relays; presence grace
//!                      └─▶ lost ─(a connection opens / addresses change)─▶ redial all, retry now
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};

use super::EventLoop;

/// Peers lost to a silent connection are redialled on signs of the
/// network for this long.
const LOST_FOR: Duration = Duration::from_secs(10 * 60);
/// Lost peers remembered at most (only home relays and contacts' devices
/// are remembered at all).
const MAX_LOST: usize = 1024;
/// Signs of the network coming back are acted on at most this often
/// (every redial that succeeds is such a sign).
const BACK_AT_MOST_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Default)]
pub(crate) struct Lost {
    /// Peer → when its connection was found dead.
    peers: HashMap<PeerId, Instant>,
    last_back: Option<Instant>,
}

impl EventLoop {
    /// A connection went silent; `hush_host::liveness` is closing it.
    pub(super) fn connection_dead(&mut self, peer: PeerId, silent_for: Duration) {
        let relay = self.home.iter().any(|r| r.peer == peer);
        let device = self
            .engine
            .contacts
            .device_by_peer(&peer)
            .map(|(_, keys)| keys.device_id);
        tracing::info!(
            %peer,
            silent_ms = u64::try_from(silent_for.as_millis()).unwrap_or(u64::MAX),
            home_relay = relay,
            contact = device.is_some(),
            "connection went silent; closed"
        );
        if let Some(device) = device {
            let ctx = ctx!(self);
            self.engine.mark_unreachable(ctx, device);
        }
        if (relay || device.is_some()) && self.lost.peers.len() < MAX_LOST {
            self.lost.peers.insert(peer, Instant::now());
        }
    }

    /// A connection to `peer` opened: it is no longer lost, and the path
    /// to the others may be back too.
    pub(super) fn peer_answered(&mut self, peer: &PeerId) {
        self.lost.peers.remove(peer);
        self.network_back("a peer answered");
    }

    /// Something says the network may be back: redial every lost peer
    /// and end the home relays' backoff.
    pub(super) fn network_back(&mut self, why: &str) {
        let now = Instant::now();
        self.lost
            .peers
            .retain(|_, at| now.saturating_duration_since(*at) < LOST_FOR);
        let waiting = self.home.iter().any(|r| !r.mailbox.is_connected());
        if self.lost.peers.is_empty() && !waiting {
            return;
        }
        if self
            .lost
            .last_back
            .is_some_and(|at| now.saturating_duration_since(at) < BACK_AT_MOST_EVERY)
        {
            return;
        }
        self.lost.last_back = Some(now);
        tracing::debug!(why, lost = self.lost.peers.len(), "redialling lost peers");
        let clock_now = self.host_clock.now();
        let mut dials: Vec<DialOpts> = Vec::new();
        for relay in self.home.iter_mut().filter(|r| !r.mailbox.is_connected()) {
            relay.mailbox.retry_now(clock_now);
            dials.push(
                DialOpts::peer_id(relay.peer)
                    .addresses(vec![relay.addr.clone()])
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
            );
        }
        let lost: Vec<PeerId> = self.lost.peers.keys().copied().collect();
        for peer in lost {
            let Some((_, keys)) = self.engine.contacts.device_by_peer(&peer) else {
                continue;
            };
            let addresses = self.dial_addresses(&keys.device_id);
            dials.push(
                DialOpts::peer_id(peer)
                    .addresses(addresses)
                    .condition(PeerCondition::DisconnectedAndNotDialing)
                    .build(),
            );
        }
        for dial in dials {
            if let Err(e) = self.swarm.dial(dial) {
                tracing::trace!(error = %e, "no redial");
            }
        }
        self.reserve_circuits_soon();
    }
}

//! The relay's announcement in the DHT (issue 19): a `RelayRecord` signed
//! with the relay's key, put every 30 minutes, and again soon after the
//! DHT around it grew (a relay that started alone reaches the others as
//! they join). A private relay (`announce = false`) puts none.

use ed25519_dalek::SigningKey;
use hush_protocol::Wire;
use hush_protocol::relay::{
    Announcement, RELAY_RECORD_REFRESH_MS, RELAY_RECORD_TTL_MS, RelayRecord,
};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, kad};

use super::Relay;

/// After the DHT grew, the record is put again at most this often.
const GROWN_AGAIN_MS: u64 = 5_000;

pub(super) struct Announcer {
    signing: SigningKey,
    what: Announcement,
    next_ms: u64,
    last_ms: Option<u64>,
    /// DHT peers known at the last put.
    peers: u64,
}

impl std::fmt::Debug for Announcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Announcer")
            .field("addrs", &self.what.addrs)
            .finish_non_exhaustive()
    }
}

impl Announcer {
    /// Announces `what`, at its addresses (the operator's
    /// `announce_addresses`) or else at the addresses the relay listens on:
    /// the public ones if any (a relay on a wildcard address also listens
    /// on loopback and LANs), else all.
    pub(super) fn new(
        signing: SigningKey,
        mut what: Announcement,
        listening: &[Multiaddr],
    ) -> Self {
        if what.addrs.is_empty() {
            let bare: Vec<Multiaddr> = listening
                .iter()
                .map(|a| {
                    a.iter()
                        .filter(|p| !matches!(p, Protocol::P2p(_)))
                        .collect()
                })
                .collect();
            let public: Vec<&Multiaddr> = bare.iter().filter(|a| is_public(a)).collect();
            what.addrs = if public.is_empty() {
                bare.iter().map(ToString::to_string).collect()
            } else {
                public.iter().map(ToString::to_string).collect()
            };
        }
        Self {
            signing,
            what,
            next_ms: 0,
            last_ms: None,
            peers: 0,
        }
    }

    /// Whether to put the record now (`mono_ms`), with `peers` in the DHT.
    pub(super) fn due(&self, mono_ms: u64, peers: u64) -> bool {
        let grown = peers > self.peers
            && self
                .last_ms
                .is_none_or(|last| mono_ms.saturating_sub(last) >= GROWN_AGAIN_MS);
        mono_ms >= self.next_ms || grown
    }

    /// The record to put now, signed at `unix_ms`.
    /// `accepting`: whether the relay takes new mailboxes now.
    pub(super) fn record(
        &mut self,
        (mono_ms, unix_ms): (u64, u64),
        peers: u64,
        accepting: bool,
    ) -> kad::Record {
        self.next_ms = mono_ms + RELAY_RECORD_REFRESH_MS;
        self.last_ms = Some(mono_ms);
        self.peers = peers;
        self.what.accepting = accepting;
        let record = RelayRecord::sign(&self.signing, &self.what, unix_ms);
        let key = RelayRecord::dht_key(&record.key);
        let mut out = kad::Record::new(key.to_vec(), record.to_bytes());
        out.expires =
            Some(std::time::Instant::now() + std::time::Duration::from_millis(RELAY_RECORD_TTL_MS));
        out
    }
}

/// Whether an address is one others on the internet could dial.
fn is_public(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| match p {
        Protocol::Ip4(ip) => {
            !(ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified())
        }
        Protocol::Ip6(ip) => {
            !(ip.is_loopback() || ip.is_unspecified() || (ip.segments()[0] & 0xfe00) == 0xfc00)
        }
        Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) => true,
        _ => false,
    })
}

impl Relay {
    /// Puts this relay's signed record in the DHT when it is due.
    pub(super) fn announce(&mut self, now: hush_protocol::Now, dht_peers: u64) {
        let Some(announcer) = self.announcer.as_mut() else {
            return;
        };
        if !announcer.due(now.mono_ms, dht_peers) {
            return;
        }
        // Full disks take no new mailboxes.
        let accepting = self.engine.disk_has_room(1 << 20);
        let record = announcer.record((now.mono_ms, now.unix_ms), dht_peers, accepting);
        if let Err(e) = self
            .swarm
            .behaviour_mut()
            .kad
            .put_record(record, kad::Quorum::One)
        {
            tracing::warn!(error = %e, "could not put this relay's record in the DHT");
        } else {
            tracing::debug!(dht_peers, "announced this relay in the DHT");
        }
    }
}

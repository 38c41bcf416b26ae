//! Relay announcements: the signed record each public relay keeps in the
//! DHT (issue 19), and the rule a node picks its home relays by.
//!
//! ```text
//!  relay ──put (every 30 min)──▶ DHT key blake3-derive("hush 2026-12 relay record", relay key)
//!  node  ──closest peers to its mailbox id──▶ candidates ──get each record──▶ verify, fresh,
//!        accepting ──▶ rank by rendezvous hash, one per operator group ──▶ 3 home relays
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::codec::{DecodeError, Reader, Wire, Writer};

/// A relay record is refreshed this often ...
pub const RELAY_RECORD_REFRESH_MS: u64 = 30 * 60 * 1000;
/// ... and is dropped (by the DHT and by nodes) this long after it was
/// signed: a relay that stops refreshing drops out within two hours.
pub const RELAY_RECORD_TTL_MS: u64 = 2 * 3600 * 1000;
/// A record signed this far in the future is refused.
pub const MAX_RELAY_RECORD_SKEW_MS: u64 = 5 * 60 * 1000;
/// Addresses one record lists, at most, each at most this long.
pub const MAX_RELAY_ADDRS: usize = 8;
pub const MAX_RELAY_ADDR_LEN: usize = 256;
/// Longest software version string.
pub const MAX_RELAY_VERSION_LEN: usize = 32;
/// Largest encoded record.
pub const MAX_RELAY_RECORD_LEN: usize = 4
    + 1
    + 32
    + 2
    + MAX_RELAY_ADDRS * (4 + MAX_RELAY_ADDR_LEN)
    + 8
    + 4
    + 1
    + 4
    + MAX_RELAY_VERSION_LEN
    + 8
    + 64;

const MAGIC: &[u8; 4] = b"hRly";
const VERSION: u8 = 1;
const CONTEXT: &[u8] = b"hush relay record v1";

/// What a relay tells the network about itself, signed with its libp2p
/// Ed25519 key (the one its PeerId names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayRecord {
    /// The relay's Ed25519 public key.
    pub key: [u8; 32],
    /// Where it listens (multiaddrs without `/p2p/`).
    pub addrs: Vec<String>,
    pub retention_secs: u64,
    pub max_item_len: u32,
    /// Whether it takes mailboxes of nodes that pick it now.
    pub accepting: bool,
    /// The relay's software version.
    pub version: String,
    /// When it was signed (Unix ms).
    pub issued_at_ms: u64,
    pub signature: [u8; 64],
}

/// The fields a relay announces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Announcement {
    pub addrs: Vec<String>,
    pub retention_secs: u64,
    pub max_item_len: u32,
    pub accepting: bool,
    pub version: String,
}

impl RelayRecord {
    /// Where the record of the relay with public key `key` is kept.
    pub fn dht_key(key: &[u8; 32]) -> [u8; 32] {
        blake3::derive_key("hush 2026-12 relay record", key)
    }

    /// Signs `what` at `now_ms` (addresses past the bounds are left out).
    pub fn sign(signing: &SigningKey, what: &Announcement, now_ms: u64) -> Self {
        let mut version = what.version.clone();
        version.truncate(MAX_RELAY_VERSION_LEN);
        let mut record = Self {
            key: signing.verifying_key().to_bytes(),
            addrs: what
                .addrs
                .iter()
                .filter(|a| a.len() <= MAX_RELAY_ADDR_LEN)
                .take(MAX_RELAY_ADDRS)
                .cloned()
                .collect(),
            retention_secs: what.retention_secs,
            max_item_len: what.max_item_len,
            accepting: what.accepting,
            version,
            issued_at_ms: now_ms,
            signature: [0; 64],
        };
        record.signature = signing.sign(&record.signed_bytes()).to_bytes();
        record
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.raw(CONTEXT);
        self.encode_fields(&mut w);
        w.into_bytes()
    }

    fn encode_fields(&self, w: &mut Writer) {
        w.raw(&self.key);
        w.list(&self.addrs, |w, a| w.str(a));
        w.u64(self.retention_secs);
        w.u32(self.max_item_len);
        w.u8(u8::from(self.accepting));
        w.str(&self.version);
        w.u64(self.issued_at_ms);
    }

    /// Whether the relay's key really signed it.
    pub fn verify(&self) -> bool {
        VerifyingKey::from_bytes(&self.key).is_ok_and(|k| {
            k.verify_strict(
                &self.signed_bytes(),
                &Signature::from_bytes(&self.signature),
            )
            .is_ok()
        })
    }

    /// Whether it is current at `now_ms`: signed at most
    /// [`RELAY_RECORD_TTL_MS`] ago and not from the future.
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        self.issued_at_ms <= now_ms.saturating_add(MAX_RELAY_RECORD_SKEW_MS)
            && now_ms.saturating_sub(self.issued_at_ms) < RELAY_RECORD_TTL_MS
    }

    /// A value the DHT may keep under `key`: a record that verifies and is
    /// kept under its own key. (Freshness is the reader's to check: the
    /// DHT drops it after [`RELAY_RECORD_TTL_MS`].)
    pub fn accepts(key: &[u8], value: &[u8]) -> bool {
        Self::from_bytes(value).is_ok_and(|r| key == Self::dht_key(&r.key).as_slice() && r.verify())
    }
}

impl Wire for RelayRecord {
    const NAME: &'static str = "relay record";

    fn encode(&self, w: &mut Writer) {
        w.raw(MAGIC);
        w.u8(VERSION);
        self.encode_fields(w);
        w.raw(&self.signature);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        if r.remaining() > MAX_RELAY_RECORD_LEN {
            return Err(DecodeError::TooLong {
                what: Self::NAME,
                len: r.remaining(),
                max: MAX_RELAY_RECORD_LEN,
            });
        }
        let magic: [u8; 4] = r.array()?;
        if &magic != MAGIC {
            return Err(DecodeError::Invalid {
                what: Self::NAME,
                reason: "not a relay record",
            });
        }
        r.version(Self::NAME, VERSION)?;
        Ok(Self {
            key: r.array()?,
            addrs: r.list("relay addresses", MAX_RELAY_ADDRS, |r| {
                Ok(r.str("relay address", MAX_RELAY_ADDR_LEN)?.to_owned())
            })?,
            retention_secs: r.u64()?,
            max_item_len: r.u32()?,
            accepting: match r.u8()? {
                0 => false,
                1 => true,
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "accepting",
                        tag,
                    });
                }
            },
            version: r.str("relay version", MAX_RELAY_VERSION_LEN)?.to_owned(),
            issued_at_ms: r.u64()?,
            signature: r.array()?,
        })
    }
}

/// A relay a node could pick: its rank for the node's mailbox (see
/// [`rank`]: smaller is better) and the operator group its address falls
/// in (see [`operator_group`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate<T> {
    pub relay: T,
    pub rank: [u8; 32],
    pub group: Vec<u8>,
}

/// A relay's rank for a mailbox (rendezvous hashing): `blake3_derive_key(
/// "hush 2026-12 home relay rank", relay key ‖ mailbox id)`. Among the
/// relays the DHT names closest to the mailbox, the lowest ranks are the
/// home relays: every relay in that neighbourhood is as likely to be
/// picked, so a relay that happens to sit alone in a wide stretch of the
/// key space is not picked by everyone near it (measured: the busiest of
/// 100 relays holds 1.4–1.7 times the mean instead of 2–2.3 by distance
/// alone), and a relay that joins or leaves moves only the mailboxes whose
/// neighbourhood it is in.
pub fn rank(relay_key: &[u8; 32], mailbox: &crate::MailboxId) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_derive_key("hush 2026-12 home relay rank");
    hasher.update(relay_key);
    hasher.update(&mailbox.0);
    *hasher.finalize().as_bytes()
}

/// Picks at most `n` home relays: the lowest rank first (ties by the
/// relay's own order), at most one per operator group, so whoever controls
/// one address block gets at most one of a node's relays however many it
/// runs.
pub fn choose_home_relays<T: Ord + Clone>(mut candidates: Vec<Candidate<T>>, n: usize) -> Vec<T> {
    candidates.sort_by(|a, b| a.rank.cmp(&b.rank).then(a.relay.cmp(&b.relay)));
    let mut groups: Vec<Vec<u8>> = Vec::new();
    let mut chosen = Vec::new();
    for c in candidates {
        if chosen.len() == n {
            break;
        }
        if groups.contains(&c.group) {
            continue;
        }
        groups.push(c.group);
        chosen.push(c.relay);
    }
    chosen
}

/// The operator group of a relay at `ip` (port `port`): the /16 of a
/// public IPv4 address, the /32 of a public IPv6 one; a loopback or private
/// address is its own group with its port (such networks belong to whoever
/// runs them, and tests run many relays on one machine).
pub fn operator_group(ip: std::net::IpAddr, port: u16) -> Vec<u8> {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(v4) if !(v4.is_loopback() || v4.is_private() || v4.is_link_local()) => {
            let o = v4.octets();
            vec![4, o[0], o[1]]
        }
        IpAddr::V6(v6) if !(v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00) => {
            let mut g = vec![6];
            g.extend_from_slice(&v6.octets()[..4]);
            g
        }
        other => {
            let mut g = vec![0];
            match other {
                IpAddr::V4(v4) => g.extend_from_slice(&v4.octets()),
                IpAddr::V6(v6) => g.extend_from_slice(&v6.octets()),
            }
            g.extend_from_slice(&port.to_be_bytes());
            g
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn what() -> Announcement {
        Announcement {
            addrs: vec!["/ip4/203.0.113.7/tcp/7001".into()],
            retention_secs: 3600,
            max_item_len: 65_536,
            accepting: true,
            version: "0.1.0".into(),
        }
    }

    #[test]
    fn a_record_verifies_under_its_own_key_only_and_expires() {
        let key = SigningKey::from_bytes(&[3; 32]);
        let record = RelayRecord::sign(&key, &what(), 1_000_000);
        let bytes = record.to_bytes();
        assert_eq!(RelayRecord::from_bytes(&bytes).unwrap(), record);
        assert!(record.verify());
        let dht_key = RelayRecord::dht_key(&record.key);
        assert!(RelayRecord::accepts(&dht_key, &bytes));
        // Under another relay's key, or changed after signing: refused.
        assert!(!RelayRecord::accepts(
            &RelayRecord::dht_key(&[9; 32]),
            &bytes
        ));
        let mut forged = record.clone();
        forged.addrs = vec!["/ip4/198.51.100.1/tcp/1".into()];
        assert!(!forged.verify());
        assert!(!RelayRecord::accepts(&dht_key, &forged.to_bytes()));
        // Fresh for two hours.
        assert!(record.is_fresh(1_000_000 + RELAY_RECORD_TTL_MS - 1));
        assert!(!record.is_fresh(1_000_000 + RELAY_RECORD_TTL_MS));
        assert!(!record.is_fresh(0), "signed in the future");
    }

    #[test]
    fn home_relays_are_the_closest_one_per_operator_group() {
        let c = |relay: u8, rank: u8, group: u8| Candidate {
            relay,
            rank: [rank; 32],
            group: vec![group],
        };
        let candidates = vec![c(1, 5, 1), c(2, 1, 2), c(3, 2, 2), c(4, 3, 3), c(5, 4, 4)];
        // 3 is closer than 4 but shares 2's group.
        assert_eq!(choose_home_relays(candidates.clone(), 3), [2, 4, 5]);
        assert_eq!(choose_home_relays(candidates, 10), [2, 4, 5, 1]);
    }

    /// A sybil operator running many relays in one /16 is one group.
    #[test]
    fn one_address_block_is_one_operator() {
        let ip = |s: &str| s.parse().unwrap();
        assert_eq!(
            operator_group(ip("203.0.1.1"), 1),
            operator_group(ip("203.0.200.9"), 2)
        );
        assert_ne!(
            operator_group(ip("203.0.1.1"), 1),
            operator_group(ip("203.1.1.1"), 1)
        );
        assert_ne!(
            operator_group(ip("127.0.0.1"), 1),
            operator_group(ip("127.0.0.1"), 2)
        );
    }
}

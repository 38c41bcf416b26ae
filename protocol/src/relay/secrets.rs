//! The relay's per-process secrets: owner challenges and sender tags made
//! with them mean nothing after a restart.

/// A challenge is good for this long.
pub const CHALLENGE_LIFETIME_SECS: u64 = 600;
/// A challenge may be dated this far in the future (clock steps).
const CHALLENGE_FUTURE_SECS: u64 = 5;

pub(super) struct Secrets {
    challenge_key: [u8; 32],
    tag_key: [u8; 32],
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    pub(super) fn new(challenge_key: [u8; 32], tag_key: [u8; 32]) -> Self {
        Self {
            challenge_key,
            tag_key,
        }
    }

    /// A challenge for owner requests: the time it was made, and a MAC over
    /// it, so the relay need not remember which it handed out.
    pub(super) fn challenge(&self, at_secs: u64) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..8].copy_from_slice(&at_secs.to_be_bytes());
        let mac = blake3::keyed_hash(&self.challenge_key, &at_secs.to_be_bytes());
        out[8..].copy_from_slice(&mac.as_bytes()[..24]);
        out
    }

    pub(super) fn is_fresh(&self, challenge: &[u8; 32], now_secs: u64) -> bool {
        let mut stamp = [0u8; 8];
        stamp.copy_from_slice(&challenge[..8]);
        let at = u64::from_be_bytes(stamp);
        at <= now_secs + CHALLENGE_FUTURE_SECS
            && now_secs.saturating_sub(at) <= CHALLENGE_LIFETIME_SECS
            && {
                // Constant-time comparison of the MAC part.
                let expected = self.challenge(at);
                expected
                    .iter()
                    .zip(challenge.iter())
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                    == 0
            }
    }

    /// An unlinkable tag for the sending peer, for per-sender quotas. It is
    /// keyed with a secret that dies with the process, so a stored tag says
    /// nothing about who deposited once the relay restarts.
    /// Its lowest bit is 0: a stranger's (see [`Secrets::holder_tag`]).
    pub(super) fn sender_tag(&self, sender: &[u8]) -> u64 {
        self.tag(b"peer", sender) & !1
    }

    /// The tag of a deposit right's holder (a contact of the mailbox
    /// owner), the same for all its connections. Its lowest bit is 1.
    pub(super) fn holder_tag(&self, holder: &[u8; 16]) -> u64 {
        self.tag(b"holder", holder) | 1
    }

    fn tag(&self, kind: &[u8], who: &[u8]) -> u64 {
        let hash = blake3::Hasher::new_keyed(&self.tag_key)
            .update(kind)
            .update(who)
            .finalize();
        let mut word = [0u8; 8];
        word.copy_from_slice(&hash.as_bytes()[..8]);
        u64::from_be_bytes(word)
    }
}

/// Whether a sender tag is a deposit right holder's.
pub(super) fn is_holder(tag: u64) -> bool {
    tag & 1 == 1
}

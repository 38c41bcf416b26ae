//! Identifier newtypes. Every id has a canonical text form (`Display`) that
//! `FromStr` parses back.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {what}: {reason}")]
pub struct ParseIdError {
    pub what: &'static str,
    pub reason: &'static str,
}

/// Writes `bytes` (`N / 2` of them) in lower-case hex, without allocating:
/// ids are formatted for every event and view a message makes.
fn write_hex<const N: usize>(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    let mut text = [0u8; N];
    hex::encode_to_slice(bytes, &mut text).map_err(|_| fmt::Error)?;
    f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
}

macro_rules! key_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            pub const fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_hex::<64>(f, &self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), &hex::encode(self.0)[..12])
            }
        }

        impl FromStr for $name {
            type Err = ParseIdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let mut out = [0u8; 32];
                hex::decode_to_slice(s, &mut out).map_err(|_| ParseIdError {
                    what: $what,
                    reason: "expected 64 hexadecimal characters",
                })?;
                Ok(Self(out))
            }
        }
    };
}

key_id!(
    /// A user's account: the Ed25519 public key that signs the device list.
    AccountId,
    "account id"
);
key_id!(
    /// A device: the Ed25519 public key of its libp2p identity (its PeerId).
    DeviceId,
    "device id"
);
key_id!(
    /// A group: derived from its creator and a random nonce (see
    /// `GroupOp`); its gossipsub topic and conversation derive from it.
    GroupId,
    "group id"
);
key_id!(
    /// A conversation: for 1:1 chats, derived from both account ids.
    ConversationId,
    "conversation id"
);

impl ConversationId {
    /// The 1:1 conversation between two accounts; the same from either side.
    pub fn direct(a: &AccountId, b: &AccountId) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        let mut hasher = blake3::Hasher::new_derive_key("hush 2026 direct conversation id");
        hasher.update(&lo.0);
        hasher.update(&hi.0);
        Self(*hasher.finalize().as_bytes())
    }

    /// A group's conversation: its messages are stored under this id.
    pub fn group(group: &GroupId) -> Self {
        let mut hasher = blake3::Hasher::new_derive_key("hush 2026-11 group conversation id");
        hasher.update(&group.0);
        Self(*hasher.finalize().as_bytes())
    }
}

/// A 128-bit message id: 48-bit milliseconds since the Unix epoch, a 16-bit
/// hybrid-logical-clock counter, then 64 random bits. Ids sort by time.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct MessageId(pub u128);

impl MessageId {
    pub const fn from_parts(millis: u64, counter: u16, random: u64) -> Self {
        let millis = (millis & 0xFFFF_FFFF_FFFF) as u128;
        Self((millis << 80) | ((counter as u128) << 64) | random as u128)
    }
    pub const fn millis(&self) -> u64 {
        (self.0 >> 80) as u64
    }
    pub const fn counter(&self) -> u16 {
        (self.0 >> 64) as u16
    }
    pub const fn random(&self) -> u64 {
        self.0 as u64
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex::<32>(f, &self.0.to_be_bytes())
    }
}

impl fmt::Debug for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MessageId({self})")
    }
}

impl FromStr for MessageId {
    type Err = ParseIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 {
            return Err(ParseIdError {
                what: "message id",
                reason: "expected 32 hexadecimal characters",
            });
        }
        u128::from_str_radix(s, 16)
            .map(Self)
            .map_err(|_| ParseIdError {
                what: "message id",
                reason: "expected 32 hexadecimal characters",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn message_id_text_round_trips_and_sorts(a: u128, b: u128) {
            let (x, y) = (MessageId(a), MessageId(b));
            prop_assert_eq!(x.to_string().parse::<MessageId>().unwrap(), x);
            prop_assert_eq!(x.cmp(&y), x.to_string().cmp(&y.to_string()));
            // The text form stored and shown everywhere: 32 lower-case
            // hex digits, leading zeros kept.
            prop_assert_eq!(x.to_string(), format!("{a:032x}"));
        }

        #[test]
        fn message_id_parts_round_trip(ms in 0u64..(1 << 48), c: u16, r: u64) {
            let id = MessageId::from_parts(ms, c, r);
            prop_assert_eq!((id.millis(), id.counter(), id.random()), (ms, c, r));
        }

        #[test]
        fn account_id_text_round_trips(bytes: [u8; 32]) {
            let id = AccountId(bytes);
            prop_assert_eq!(id.to_string().parse::<AccountId>().unwrap(), id);
            prop_assert_eq!(id.to_string(), hex::encode(bytes));
        }
    }

    #[test]
    fn direct_conversation_is_symmetric() {
        let (a, b) = (AccountId([1; 32]), AccountId([2; 32]));
        assert_eq!(
            ConversationId::direct(&a, &b),
            ConversationId::direct(&b, &a)
        );
        assert_ne!(
            ConversationId::direct(&a, &b),
            ConversationId::direct(&a, &a)
        );
    }
}

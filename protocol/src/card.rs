//! The contact card: one copy-pasteable line that introduces an account.
//!
//! Text form: `hush1` followed by base58 of `card bytes ‖ checksum`, where
//! the checksum is the first 4 bytes of `blake3(card bytes)`. A mistyped card
//! fails the checksum; a tampered one fails the account signature.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::ids::AccountId;
use crate::keys::{AccountKey, DeviceList, SignatureError, verify_account_signature};

pub const CARD_PREFIX: &str = "hush1";
const CARD_VERSION: u8 = 1;
const CARD_CONTEXT: &[u8] = b"hush contact card v1";
const CHECKSUM_LEN: usize = 4;
/// Longest display name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// Most addresses (and most relays) a card lists.
pub const MAX_CARD_ADDRESSES: usize = 8;
/// Longest address, in bytes.
pub const MAX_ADDRESS_LEN: usize = 256;
/// Longest card text accepted, in characters.
pub const MAX_CARD_TEXT_LEN: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CardError {
    #[error("a contact card starts with \"{CARD_PREFIX}\"; check that the whole line was copied")]
    MissingPrefix,
    #[error("the contact card is {len} characters, over the limit of {MAX_CARD_TEXT_LEN}")]
    TooLong { len: usize },
    #[error(
        "the contact card contains characters that are not base58; check that it was copied exactly"
    )]
    NotBase58,
    #[error(
        "the contact card's checksum does not match: it was mistyped or cut; copy it again in full"
    )]
    BadChecksum,
    #[error("the contact card could not be decoded: {0}")]
    Decode(#[from] DecodeError),
    #[error("the contact card's signature is invalid: {0}")]
    Signature(#[from] SignatureError),
}

/// What one account publishes about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactCard {
    /// The name the owner suggests; the one who adds the card picks their own.
    pub name: String,
    pub device_list: DeviceList,
    /// Multiaddrs the owner's devices listen on (reachable directly).
    pub addresses: Vec<String>,
    /// The owner's home relays (multiaddrs); empty until relays exist.
    pub relays: Vec<String>,
    /// The account key's signature over everything above.
    pub signature: [u8; 64],
}

impl ContactCard {
    pub fn sign(
        key: &AccountKey,
        name: String,
        device_list: DeviceList,
        addresses: Vec<String>,
        relays: Vec<String>,
    ) -> Self {
        let mut card = Self {
            name,
            device_list,
            addresses,
            relays,
            signature: [0; 64],
        };
        card.signature = key.sign(CARD_CONTEXT, &card.signed_bytes());
        card
    }

    pub fn account(&self) -> AccountId {
        self.device_list.account
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.str(&self.name);
        self.device_list.encode(&mut w);
        let strs = |w: &mut Writer, s: &String| w.str(s);
        w.list(&self.addresses, strs);
        w.list(&self.relays, strs);
        w.into_bytes()
    }

    /// Checks both signatures: the card's and its device list's.
    pub fn verify(&self) -> Result<(), CardError> {
        self.device_list.verify()?;
        verify_account_signature(
            &self.account(),
            CARD_CONTEXT,
            &self.signed_bytes(),
            &self.signature,
            "contact card",
        )?;
        Ok(())
    }
}

impl Wire for ContactCard {
    const NAME: &'static str = "contact card";

    fn encode(&self, w: &mut Writer) {
        w.u8(CARD_VERSION);
        w.raw(&self.signed_bytes());
        w.raw(&self.signature);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, CARD_VERSION)?;
        let name = r.str("card name", MAX_NAME_LEN)?.to_owned();
        let device_list = DeviceList::decode(r)?;
        let addr = |r: &mut Reader<'_>| Ok(r.str("card address", MAX_ADDRESS_LEN)?.to_owned());
        let addresses = r.list("card addresses", MAX_CARD_ADDRESSES, addr)?;
        let relays = r.list("card relays", MAX_CARD_ADDRESSES, addr)?;
        let signature = r.array()?;
        Ok(Self {
            name,
            device_list,
            addresses,
            relays,
            signature,
        })
    }
}

impl fmt::Display for ContactCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut bytes = self.to_bytes();
        let checksum = blake3::hash(&bytes);
        bytes.extend_from_slice(&checksum.as_bytes()[..CHECKSUM_LEN]);
        write!(f, "{CARD_PREFIX}{}", bs58::encode(bytes).into_string())
    }
}

impl FromStr for ContactCard {
    type Err = CardError;

    /// Parses and verifies a card's text form.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.len() > MAX_CARD_TEXT_LEN {
            return Err(CardError::TooLong { len: s.len() });
        }
        let body = s
            .strip_prefix(CARD_PREFIX)
            .ok_or(CardError::MissingPrefix)?;
        let bytes = bs58::decode(body)
            .into_vec()
            .map_err(|_| CardError::NotBase58)?;
        if bytes.len() < CHECKSUM_LEN {
            return Err(CardError::BadChecksum);
        }
        let (card, checksum) = bytes.split_at(bytes.len() - CHECKSUM_LEN);
        if blake3::hash(card).as_bytes()[..CHECKSUM_LEN] != *checksum {
            return Err(CardError::BadChecksum);
        }
        let card = Self::from_bytes(card)?;
        card.verify()?;
        Ok(card)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::DeviceId;
    use crate::keys::DeviceKeys;
    use proptest::prelude::*;

    fn card(name: &str, addresses: Vec<String>) -> ContactCard {
        let key = AccountKey::from_seed([3; 32]);
        let list = DeviceList::sign(
            &key,
            1,
            vec![DeviceKeys {
                device_id: DeviceId([4; 32]),
                olm_ed25519: [5; 32],
                olm_curve25519: [6; 32],
                mailbox_key: [7; 32],
            }],
        );
        ContactCard::sign(&key, name.into(), list, addresses, vec![])
    }

    #[test]
    fn card_text_round_trips() {
        let c = card("alice", vec!["/ip4/127.0.0.1/tcp/4001".into()]);
        let text = c.to_string();
        assert!(text.starts_with(CARD_PREFIX));
        assert_eq!(text.parse::<ContactCard>().unwrap(), c);
    }

    #[test]
    fn mistyped_card_is_rejected() {
        let text = card("alice", vec![]).to_string();
        let mut chars: Vec<char> = text.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'a' { 'b' } else { 'a' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(
            typo.parse::<ContactCard>(),
            Err(CardError::BadChecksum)
        ));
        assert!(matches!(
            text[..text.len() - 3].parse::<ContactCard>(),
            Err(CardError::BadChecksum)
        ));
        assert!(matches!(
            "bob".parse::<ContactCard>(),
            Err(CardError::MissingPrefix)
        ));
    }

    #[test]
    fn tampered_card_with_valid_checksum_is_rejected() {
        let mut c = card("alice", vec![]);
        c.addresses.push("/ip4/6.6.6.6/tcp/1".into());
        // Re-encode with a fresh checksum: only the signature can catch it.
        let text = c.to_string();
        assert!(matches!(
            text.parse::<ContactCard>(),
            Err(CardError::Signature(_))
        ));
    }

    proptest! {
        #[test]
        fn card_round_trips(name in "[a-z ]{0,64}", addrs in proptest::collection::vec("[/a-z0-9.]{1,40}", 0..8)) {
            let c = card(&name, addrs);
            prop_assert_eq!(ContactCard::from_bytes(&c.to_bytes()).unwrap(), c.clone());
            prop_assert_eq!(c.to_string().parse::<ContactCard>().unwrap(), c);
        }

        #[test]
        fn card_decoder_never_panics(text in ".{0,600}") {
            let _ = text.parse::<ContactCard>();
        }
    }
}

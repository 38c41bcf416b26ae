//! Account keys and the signed device list.
//!
//! An account is an Ed25519 key; it signs the list of its devices. Each
//! device entry names the device's libp2p key (its [`DeviceId`]) and its Olm
//! identity keys, so a peer encrypts to every device on the list and checks
//! that a stream really comes from one of them.

use std::fmt;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::ids::{AccountId, DeviceId};

/// Most devices one account may list.
pub const MAX_DEVICES: usize = 16;
const DEVICE_LIST_VERSION: u8 = 2;
const DEVICE_LIST_CONTEXT: &[u8] = b"hush device list v1";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("the {what} is not signed by the key it claims")]
    BadSignature { what: &'static str },
    #[error("the {what} names a key that is not a valid Ed25519 point")]
    BadKey { what: &'static str },
}

/// The account's secret signing key. Its `Debug` never prints the secret.
#[derive(Clone)]
pub struct AccountKey(SigningKey);

impl AccountKey {
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&seed))
    }
    pub fn seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }
    pub fn id(&self) -> AccountId {
        AccountId(self.0.verifying_key().to_bytes())
    }
    /// Signs `context ‖ message`, so a signature for one purpose is never
    /// valid for another.
    pub fn sign(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        let mut buf = Vec::with_capacity(context.len() + message.len());
        buf.extend_from_slice(context);
        buf.extend_from_slice(message);
        self.0.sign(&buf).to_bytes()
    }
}

impl fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountKey({:?}, secret: <redacted>)", self.id())
    }
}

/// Checks a signature made by [`AccountKey::sign`].
pub fn verify_account_signature(
    account: &AccountId,
    context: &[u8],
    message: &[u8],
    signature: &[u8; 64],
    what: &'static str,
) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(&account.0).map_err(|_| SignatureError::BadKey { what })?;
    let mut buf = Vec::with_capacity(context.len() + message.len());
    buf.extend_from_slice(context);
    buf.extend_from_slice(message);
    key.verify_strict(&buf, &Signature::from_bytes(signature))
        .map_err(|_| SignatureError::BadSignature { what })
}

/// One device on an account's device list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceKeys {
    /// The device's libp2p Ed25519 key; its PeerId derives from it.
    pub device_id: DeviceId,
    /// The device's Olm Ed25519 identity key (signs its one-time keys).
    pub olm_ed25519: [u8; 32],
    /// The device's Olm Curve25519 identity key (Olm sessions are keyed by it).
    pub olm_curve25519: [u8; 32],
    /// The device's X25519 mailbox key: senders seal what they deposit at
    /// its relays to it, so a relay sees no sender (see `SealedEnvelope`).
    pub mailbox_key: [u8; 32],
}

impl DeviceKeys {
    fn encode(&self, w: &mut Writer) {
        w.raw(&self.device_id.0);
        w.raw(&self.olm_ed25519);
        w.raw(&self.olm_curve25519);
        w.raw(&self.mailbox_key);
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            device_id: DeviceId(r.array()?),
            olm_ed25519: r.array()?,
            olm_curve25519: r.array()?,
            mailbox_key: r.array()?,
        })
    }
}

/// An account's devices, signed by the account key. A list with a later
/// `issued_at_ms` replaces an earlier one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceList {
    pub account: AccountId,
    pub issued_at_ms: u64,
    pub devices: Vec<DeviceKeys>,
    pub signature: [u8; 64],
}

impl DeviceList {
    pub fn sign(key: &AccountKey, issued_at_ms: u64, devices: Vec<DeviceKeys>) -> Self {
        let mut list = Self {
            account: key.id(),
            issued_at_ms,
            devices,
            signature: [0; 64],
        };
        list.signature = key.sign(DEVICE_LIST_CONTEXT, &list.signed_bytes());
        list
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.raw(&self.account.0);
        w.u64(self.issued_at_ms);
        w.list(&self.devices, |w, d| d.encode(w));
        w.into_bytes()
    }

    pub fn verify(&self) -> Result<(), SignatureError> {
        verify_account_signature(
            &self.account,
            DEVICE_LIST_CONTEXT,
            &self.signed_bytes(),
            &self.signature,
            "device list",
        )
    }

    pub fn device(&self, id: &DeviceId) -> Option<&DeviceKeys> {
        self.devices.iter().find(|d| d.device_id == *id)
    }
}

impl Wire for DeviceList {
    const NAME: &'static str = "device list";

    fn encode(&self, w: &mut Writer) {
        w.u8(DEVICE_LIST_VERSION);
        w.raw(&self.signed_bytes());
        w.raw(&self.signature);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.version(Self::NAME, DEVICE_LIST_VERSION)?;
        let account = AccountId(r.array()?);
        let issued_at_ms = r.u64()?;
        let devices = r.list("device list entries", MAX_DEVICES, DeviceKeys::decode)?;
        if devices.is_empty() {
            return Err(DecodeError::Invalid {
                what: Self::NAME,
                reason: "an account has at least one device",
            });
        }
        let signature = r.array()?;
        Ok(Self {
            account,
            issued_at_ms,
            devices,
            signature,
        })
    }
}

/// A number two users compare (out loud, or by scanning) to know they hold
/// each other's real account keys: 12 groups of 5 digits, the same on both sides.
pub fn safety_number(a: &AccountId, b: &AccountId) -> String {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut hasher = blake3::Hasher::new_derive_key("hush 2026 safety number");
    hasher.update(&lo.0);
    hasher.update(&hi.0);
    let mut out = hasher.finalize_xof();
    let mut groups = Vec::with_capacity(12);
    for _ in 0..12 {
        let mut chunk = [0u8; 5];
        out.fill(&mut chunk);
        let n = u64::from_be_bytes([0, 0, 0, chunk[0], chunk[1], chunk[2], chunk[3], chunk[4]]);
        groups.push(format!("{:05}", n % 100_000));
    }
    groups.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u8) -> DeviceKeys {
        DeviceKeys {
            device_id: DeviceId([n; 32]),
            olm_ed25519: [n + 1; 32],
            olm_curve25519: [n + 2; 32],
            mailbox_key: [n + 3; 32],
        }
    }

    #[test]
    fn device_list_signs_verifies_and_round_trips() {
        let key = AccountKey::from_seed([7; 32]);
        let list = DeviceList::sign(&key, 42, vec![device(1), device(9)]);
        list.verify().unwrap();
        let decoded = DeviceList::from_bytes(&list.to_bytes()).unwrap();
        assert_eq!(decoded, list);

        let mut forged = list.clone();
        forged.devices.push(device(20));
        assert!(forged.verify().is_err());
    }

    #[test]
    fn safety_number_is_symmetric() {
        let (a, b) = (AccountId([1; 32]), AccountId([2; 32]));
        assert_eq!(safety_number(&a, &b), safety_number(&b, &a));
        assert_eq!(safety_number(&a, &b).len(), 12 * 5 + 11);
    }
}

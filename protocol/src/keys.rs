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
pub const MAX_DEVICES: usize = 10;
/// Lists whose entries carry no proofs (still read; see [`Proof::Legacy`]).
const DEVICE_LIST_V2: u8 = 2;
/// Lists whose every entry carries its device's proof.
const DEVICE_LIST_VERSION: u8 = 3;
const DEVICE_LIST_CONTEXT: &[u8] = b"hush device list v1";
const DEVICE_ENTRY_CONTEXT: &[u8] = b"hush device entry v1";

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
    /// What the device key signs to put this entry on `account`'s list.
    pub fn entry_bytes(&self, account: &AccountId) -> Vec<u8> {
        let mut w = Writer::default();
        w.raw(DEVICE_ENTRY_CONTEXT);
        w.raw(&account.0);
        self.encode(&mut w);
        w.into_bytes()
    }

    /// The device's proof that it belongs on `account`'s list: its key
    /// (`device_key`, whose public half is the device id) signs the entry.
    pub fn prove(&self, account: &AccountId, device_key: &SigningKey) -> [u8; 64] {
        device_key.sign(&self.entry_bytes(account)).to_bytes()
    }

    /// [`DeviceKeys::prove`] with the device key's 32-byte secret; `None`
    /// if that key is not this entry's device.
    pub fn prove_with_secret(&self, account: &AccountId, secret: &[u8; 32]) -> Option<[u8; 64]> {
        let key = SigningKey::from_bytes(secret);
        (key.verifying_key().to_bytes() == self.device_id.0).then(|| self.prove(account, &key))
    }

    /// The entry's 128 bytes (as on a device list).
    pub fn to_array(&self) -> [u8; 128] {
        let mut out = [0; 128];
        out[..32].copy_from_slice(&self.device_id.0);
        out[32..64].copy_from_slice(&self.olm_ed25519);
        out[64..96].copy_from_slice(&self.olm_curve25519);
        out[96..].copy_from_slice(&self.mailbox_key);
        out
    }

    /// The entry from its 128 bytes.
    pub fn from_array(bytes: &[u8; 128]) -> Self {
        let part = |i: usize| {
            let mut out = [0; 32];
            out.copy_from_slice(&bytes[i * 32..(i + 1) * 32]);
            out
        };
        Self {
            device_id: DeviceId(part(0)),
            olm_ed25519: part(1),
            olm_curve25519: part(2),
            mailbox_key: part(3),
        }
    }

    pub(crate) fn encode(&self, w: &mut Writer) {
        w.raw(&self.device_id.0);
        w.raw(&self.olm_ed25519);
        w.raw(&self.olm_curve25519);
        w.raw(&self.mailbox_key);
    }
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
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
    /// Each device's proof ([`DeviceKeys::prove`]), in the order of
    /// `devices`; empty in a list from before proofs (version 2).
    pub proofs: Vec<[u8; 64]>,
    pub signature: [u8; 64],
}

/// What a device entry's proof says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The device signed the entry for this account.
    Proven,
    /// A list from before proofs: the account alone vouches for it.
    Legacy,
    /// A proof that does not verify: the entry is not the device's.
    Forged,
}

impl DeviceList {
    /// The ids of the devices it lists, in its order.
    pub fn ids(&self) -> impl Iterator<Item = DeviceId> + '_ {
        self.devices.iter().map(|d| d.device_id)
    }

    /// A list without proofs (as before version 3): what an account can
    /// sign alone. Receivers trust its entries less (see [`Proof`]).
    pub fn sign(key: &AccountKey, issued_at_ms: u64, devices: Vec<DeviceKeys>) -> Self {
        Self::sign_proven(key, issued_at_ms, devices, Vec::new())
    }

    /// A list whose entries carry their devices' proofs (one per device,
    /// in order; see [`DeviceKeys::prove`]).
    pub fn sign_proven(
        key: &AccountKey,
        issued_at_ms: u64,
        devices: Vec<DeviceKeys>,
        proofs: Vec<[u8; 64]>,
    ) -> Self {
        let mut list = Self {
            account: key.id(),
            issued_at_ms,
            devices,
            proofs,
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
        if !self.proofs.is_empty() {
            w.list(&self.proofs, |w, p| w.raw(p));
        }
        w.into_bytes()
    }

    /// What the proof of the entry `device` says (`Forged` for a device not
    /// on the list).
    pub fn proof(&self, device: &DeviceKeys) -> Proof {
        if self.proofs.is_empty() {
            return Proof::Legacy;
        }
        let Some(i) = self.devices.iter().position(|d| d == device) else {
            return Proof::Forged;
        };
        let (Some(proof), Ok(key)) = (
            self.proofs.get(i),
            VerifyingKey::from_bytes(&device.device_id.0),
        ) else {
            return Proof::Forged;
        };
        match key.verify_strict(
            &device.entry_bytes(&self.account),
            &Signature::from_bytes(proof),
        ) {
            Ok(()) => Proof::Proven,
            Err(_) => Proof::Forged,
        }
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
        w.u8(if self.proofs.is_empty() {
            DEVICE_LIST_V2
        } else {
            DEVICE_LIST_VERSION
        });
        w.raw(&self.signed_bytes());
        w.raw(&self.signature);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8()?;
        if version != DEVICE_LIST_V2 && version != DEVICE_LIST_VERSION {
            return Err(DecodeError::UnknownVersion {
                what: Self::NAME,
                version,
            });
        }
        let account = AccountId(r.array()?);
        let issued_at_ms = r.u64()?;
        let devices = r.list("device list entries", MAX_DEVICES, DeviceKeys::decode)?;
        if devices.is_empty() {
            return Err(DecodeError::Invalid {
                what: Self::NAME,
                reason: "an account has at least one device",
            });
        }
        let proofs = if version == DEVICE_LIST_VERSION {
            let proofs = r.list("device proofs", MAX_DEVICES, |r| r.array())?;
            if proofs.len() != devices.len() {
                return Err(DecodeError::Invalid {
                    what: Self::NAME,
                    reason: "one proof per device",
                });
            }
            proofs
        } else {
            Vec::new()
        };
        let signature = r.array()?;
        Ok(Self {
            account,
            issued_at_ms,
            devices,
            proofs,
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
    fn proven_lists_round_trip_and_legacy_ones_still_read() {
        let key = AccountKey::from_seed([7; 32]);
        let device_key = SigningKey::from_bytes(&[8; 32]);
        let mut entry = device(1);
        entry.device_id = DeviceId(device_key.verifying_key().to_bytes());
        let proof = entry.prove(&key.id(), &device_key);
        let list = DeviceList::sign_proven(&key, 5, vec![entry, device(9)], vec![proof, [0; 64]]);
        list.verify().unwrap();
        let decoded = DeviceList::from_bytes(&list.to_bytes()).unwrap();
        assert_eq!(decoded, list);
        assert_eq!(decoded.proof(&entry), Proof::Proven);
        assert_eq!(decoded.proof(&device(9)), Proof::Forged);
        let legacy = DeviceList::sign(&key, 5, vec![entry]);
        assert_eq!(legacy.to_bytes()[0], 2, "written as before proofs");
        let legacy = DeviceList::from_bytes(&legacy.to_bytes()).unwrap();
        legacy.verify().unwrap();
        assert_eq!(legacy.proof(&entry), Proof::Legacy);
        // One proof per device, or it does not decode.
        let mut short = list.clone();
        short.proofs.pop();
        assert!(DeviceList::from_bytes(&short.to_bytes()).is_err());
    }

    #[test]
    fn safety_number_is_symmetric() {
        let (a, b) = (AccountId([1; 32]), AccountId([2; 32]));
        assert_eq!(safety_number(&a, &b), safety_number(&b, &a));
        assert_eq!(safety_number(&a, &b).len(), 12 * 5 + 11);
    }
}

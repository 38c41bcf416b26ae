//! Deposit rights: a mailbox owner's signed leave for a contact to deposit.

use ed25519_dalek::{Signature, VerifyingKey};

use super::MailboxId;
use crate::codec::{DecodeError, Reader, Wire, Writer};
use crate::ids::DeviceId;

const RIGHT_CONTEXT: &[u8] = b"hush deposit right v1";

/// A mailbox owner's leave for one holder (a contact) to deposit into its
/// mailbox: the device key's Ed25519 signature over
/// `"hush deposit right v1" ‖ MailboxId(device) ‖ holder`. The owner sends it
/// to its contacts over Olm; a relay checks it with the device id alone (no
/// state), puts the mail in the contacts' share of the mailbox, and counts
/// it per `holder` instead of per connection. `holder` is an opaque tag the
/// owner picks per contact; it names nobody to the relay.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DepositRight {
    pub device: DeviceId,
    pub holder: [u8; 16],
    pub signature: [u8; 64],
}

impl std::fmt::Debug for DepositRight {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DepositRight")
            .field("device", &self.device)
            .field("holder", &hex::encode(self.holder))
            .finish_non_exhaustive()
    }
}

impl DepositRight {
    /// The bytes the device signs.
    pub fn signed_bytes(mailbox: &MailboxId, holder: &[u8; 16]) -> Vec<u8> {
        let mut buf = Vec::with_capacity(RIGHT_CONTEXT.len() + 48);
        buf.extend_from_slice(RIGHT_CONTEXT);
        buf.extend_from_slice(&mailbox.0);
        buf.extend_from_slice(holder);
        buf
    }

    /// Grants `holder` the right to deposit into the mailbox of the device
    /// whose key is `key`.
    pub fn grant(key: &ed25519_dalek::SigningKey, holder: [u8; 16]) -> Self {
        use ed25519_dalek::Signer;
        let device = DeviceId(key.verifying_key().to_bytes());
        let signature = key
            .sign(&Self::signed_bytes(&MailboxId::of(&device), &holder))
            .to_bytes();
        Self {
            device,
            holder,
            signature,
        }
    }

    /// The mailbox this right opens.
    pub fn mailbox(&self) -> MailboxId {
        MailboxId::of(&self.device)
    }

    /// Whether the device really signed it.
    pub fn verify(&self) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.device.0) else {
            return false;
        };
        key.verify_strict(
            &Self::signed_bytes(&self.mailbox(), &self.holder),
            &Signature::from_bytes(&self.signature),
        )
        .is_ok()
    }
}

impl Wire for DepositRight {
    const NAME: &'static str = "deposit right";

    fn encode(&self, w: &mut Writer) {
        w.raw(&self.device.0);
        w.raw(&self.holder);
        w.raw(&self.signature);
    }

    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            device: DeviceId(r.array()?),
            holder: r.array()?,
            signature: r.array()?,
        })
    }
}

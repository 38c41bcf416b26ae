//! Opening what arrives for this device: an envelope is checked, attributed
//! to a known device (by the connection it came on, or for mail from a
//! relay by the Curve25519 key inside it), decrypted, and its payload must
//! name the same account and device. An envelope stored before no longer
//! decrypts (its message key is spent), so it is recognised by its digest.
//!
//! Between acceptance and the commit that stores it, an envelope's digest
//! is "in progress": another copy arriving meanwhile is neither stored
//! twice nor refused for good.

use std::collections::HashSet;
use std::hash::Hash;

use crate::device::{ContactBook, SeenKey};
use crate::{AccountId, DeviceId, DeviceKeys, Envelope, OlmDevice, Payload, RejectReason, Wire};

/// Where an envelope came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<P> {
    /// Straight from the sender's device, on a connection with this peer.
    Direct(P),
    /// From one of our mailboxes at a relay.
    Mailbox,
}

/// An envelope that opened and is from whom it says.
#[derive(Debug)]
pub struct Opened {
    pub account: AccountId,
    pub keys: DeviceKeys,
    pub payload: Payload,
    /// Stored with what the payload carries; in progress until then.
    pub digest: [u8; 32],
    /// Where the digest is stored.
    pub seen: SeenKey,
}

/// What became of an envelope that was not refused.
#[derive(Debug)]
pub enum Arrival {
    New(Box<Opened>),
    /// A copy is being committed right now.
    InProgress,
    /// Stored before (its digest is on disk).
    AlreadyStored,
}

/// The envelopes accepted but not yet stored.
#[derive(Debug, Default)]
pub struct Inbox {
    receiving: HashSet<[u8; 32]>,
}

impl Inbox {
    /// Checks, attributes and decrypts one envelope for `me`. `seen` tells
    /// whether a digest is stored (an error there refuses the envelope as
    /// `Unavailable`: the sender tries again).
    pub fn open<P: Copy + Eq + Hash, A, E>(
        &mut self,
        me: &DeviceId,
        source: Source<P>,
        bytes: &[u8],
        contacts: &ContactBook<P, A>,
        olm: &mut OlmDevice,
        seen: impl FnOnce(&SeenKey) -> Result<bool, E>,
    ) -> Result<Arrival, RejectReason> {
        let envelope = Envelope::from_bytes(bytes).map_err(|_| RejectReason::Malformed)?;
        if envelope.recipient != *me {
            return Err(RejectReason::WrongRecipient);
        }
        let digest = Envelope::digest(bytes);
        let key = SeenKey::of_envelope(&envelope, digest);
        if self.receiving.contains(&digest) {
            return Ok(Arrival::InProgress);
        }
        let (sender, peer) = match &source {
            Source::Direct(peer) => (contacts.device_by_peer(peer), Some(peer)),
            Source::Mailbox => (contacts.device_by_curve(&envelope.sender_key), None),
        };
        let (account, keys) = sender.ok_or_else(|| {
            if contacts.is_revoked_own(peer, &envelope.sender_key) {
                RejectReason::Revoked
            } else {
                RejectReason::UnknownSender
            }
        })?;
        if keys.olm_curve25519 != envelope.sender_key {
            return Err(RejectReason::UnknownSender);
        }
        let plaintext = match olm.decrypt(&envelope) {
            Ok(plaintext) => plaintext,
            Err(_) => {
                let stored = seen(&key).map_err(|_| RejectReason::Unavailable)?;
                return if stored {
                    Ok(Arrival::AlreadyStored)
                } else {
                    Err(RejectReason::Undecryptable)
                };
            }
        };
        let payload = Payload::from_padded(&plaintext).map_err(|_| RejectReason::Malformed)?;
        if payload.sender_account != account || payload.sender_device != keys.device_id {
            return Err(RejectReason::UnknownSender);
        }
        self.receiving.insert(digest);
        Ok(Arrival::New(Box::new(Opened {
            account,
            keys,
            payload,
            digest,
            seen: key,
        })))
    }

    /// The commit holding this envelope finished (or failed): the store
    /// answers for it from now on.
    pub fn settled(&mut self, digest: &[u8; 32]) {
        self.receiving.remove(digest);
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;
    use crate::device::{CardReach, ContactRecord};
    use crate::{AccountKey, Body, ContactCard, DeviceList, MessageId};

    struct Device {
        olm: OlmDevice,
        keys: DeviceKeys,
        account: AccountKey,
        card: ContactCard,
    }

    fn device(n: u8) -> Device {
        let olm = OlmDevice::new();
        let keys = DeviceKeys {
            device_id: DeviceId([n; 32]),
            olm_ed25519: olm.ed25519_key(),
            olm_curve25519: olm.curve25519_key(),
            mailbox_key: [n; 32],
        };
        let account = AccountKey::from_seed([n; 32]);
        let list = DeviceList::sign(&account, 1, vec![keys]);
        let card = ContactCard::sign(&account, format!("d{n}"), list, vec![], vec![]);
        Device {
            olm,
            keys,
            account,
            card,
        }
    }

    /// Bob's book with alice in it; peer ids are the device byte.
    fn book_with(contact: &Device) -> ContactBook<u8, ()> {
        let mut book = ContactBook::default();
        let record = ContactRecord {
            name: "alice".into(),
            card: contact.card.to_string(),
            account: contact.card.account(),
            send_receipts: true,
            added_at_ms: 0,
        };
        let reach = CardReach {
            devices: vec![(contact.keys.device_id, contact.keys.device_id.0[0])],
            addresses: vec![],
            relays: vec![],
        };
        book.insert(record, contact.card.clone(), reach);
        book
    }

    fn text(from: &Device, account: AccountKey, n: u128) -> Vec<u8> {
        Payload {
            sender_account: account.id(),
            sender_device: from.keys.device_id,
            id: MessageId(n),
            body: Body::Text(format!("hello {n}")),
        }
        .to_padded()
    }

    fn pair() -> (Device, Device) {
        let (mut alice, mut bob) = (device(1), device(2));
        let bundle = bob.olm.one_time_key_bundle(bob.keys.device_id);
        alice.olm.start_session(&bundle, &bob.keys).unwrap();
        (alice, bob)
    }

    fn never(_: &SeenKey) -> Result<bool, Infallible> {
        Ok(false)
    }

    #[test]
    fn a_message_opens_once_then_is_in_progress_then_known_by_its_digest() {
        let (mut alice, mut bob) = pair();
        let book = book_with(&alice);
        let mut inbox = Inbox::default();
        let padded = text(&alice, alice.account.clone(), 1);
        let bytes = alice.olm.encrypt(&bob.keys, &padded).unwrap().to_bytes();
        let me = bob.keys.device_id;
        let opened = match inbox.open(&me, Source::Direct(1), &bytes, &book, &mut bob.olm, never) {
            Ok(Arrival::New(opened)) => opened,
            other => panic!("{other:?}"),
        };
        assert_eq!(opened.account, alice.card.account());
        assert_eq!(opened.payload.body, Body::Text("hello 1".into()));
        // The same bytes from the relay while the first copy commits.
        let again = inbox.open(&me, Source::Mailbox, &bytes, &book, &mut bob.olm, never);
        assert!(matches!(again, Ok(Arrival::InProgress)));
        inbox.settled(&opened.digest);
        // Stored: recognised by the digest (the message key is spent),
        // kept after the Olm chain's place of the message.
        assert_eq!(opened.seen.digest, opened.digest);
        assert_ne!(opened.seen.prefix[4..], [0; 12], "the chain and its index");
        let stored = |k: &SeenKey| Ok::<_, Infallible>(*k == opened.seen);
        let known = inbox.open(&me, Source::Mailbox, &bytes, &book, &mut bob.olm, stored);
        assert!(matches!(known, Ok(Arrival::AlreadyStored)));
        // Not stored (lost in a crash before the commit): undecryptable,
        // so the sender restarts the session and sends it again.
        let lost = inbox.open(&me, Source::Mailbox, &bytes, &book, &mut bob.olm, never);
        assert_eq!(lost.err(), Some(RejectReason::Undecryptable));
        // The store failing: try again later.
        let failing = |_: &SeenKey| Err::<bool, ()>(());
        let busy = inbox.open(&me, Source::Mailbox, &bytes, &book, &mut bob.olm, failing);
        assert_eq!(busy.err(), Some(RejectReason::Unavailable));
    }

    #[test]
    fn a_chains_envelopes_are_kept_side_by_side_in_the_order_sent() {
        let (mut alice, bob) = pair();
        let keys: Vec<SeenKey> = (1..=5)
            .map(|n| {
                let padded = text(&alice, alice.account.clone(), n);
                let envelope = alice.olm.encrypt(&bob.keys, &padded).unwrap();
                SeenKey::of_envelope(&envelope, Envelope::digest(&envelope.to_bytes()))
            })
            .collect();
        // One chain: the same 8-byte prefix, then the index, so the keys
        // sort in the order sent whatever their digests.
        assert!(keys.iter().all(|k| k.prefix[..8] == keys[0].prefix[..8]));
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        // A junk message still has a key (its sender's part alone).
        let mut junk = alice
            .olm
            .encrypt(&bob.keys, &text(&alice, alice.account.clone(), 6))
            .unwrap();
        junk.ciphertext = vec![0xff; 8];
        let key = SeenKey::of_envelope(&junk, [9; 32]);
        assert_eq!(key.prefix[4..], [0; 12]);
        assert_eq!(key.prefix[..4], junk.sender_key[..4]);
    }

    #[test]
    fn strangers_forgers_and_misdirected_envelopes_are_refused() {
        let (mut alice, mut bob) = pair();
        let book = book_with(&alice);
        let mut inbox = Inbox::default();
        let me = bob.keys.device_id;
        let mut open = |bytes: &[u8], source, olm: &mut OlmDevice| {
            inbox.open(&me, source, bytes, &book, olm, never).err()
        };
        let padded = text(&alice, alice.account.clone(), 1);
        let bytes = alice.olm.encrypt(&bob.keys, &padded).unwrap().to_bytes();
        assert_eq!(
            open(b"\x01junk", Source::Mailbox, &mut bob.olm),
            Some(RejectReason::Malformed)
        );
        // For another device.
        let mut other = Envelope::from_bytes(&bytes).unwrap();
        other.recipient = DeviceId([9; 32]);
        assert_eq!(
            open(&other.to_bytes(), Source::Mailbox, &mut bob.olm),
            Some(RejectReason::WrongRecipient)
        );
        // On a connection that is not alice's device.
        assert_eq!(
            open(&bytes, Source::Direct(7), &mut bob.olm),
            Some(RejectReason::UnknownSender)
        );
        // From a device nobody added, through the relay.
        let mut mallory = device(3);
        let bundle = bob.olm.one_time_key_bundle(me);
        mallory.olm.start_session(&bundle, &bob.keys).unwrap();
        let stranger = mallory.olm.encrypt(&bob.keys, &padded).unwrap().to_bytes();
        assert_eq!(
            open(&stranger, Source::Mailbox, &mut bob.olm),
            Some(RejectReason::UnknownSender)
        );
        // Alice's device claiming to write for another account.
        let forged = text(&alice, mallory.account.clone(), 2);
        let forged = alice.olm.encrypt(&bob.keys, &forged).unwrap().to_bytes();
        assert_eq!(
            open(&forged, Source::Direct(1), &mut bob.olm),
            Some(RejectReason::UnknownSender)
        );
    }
}

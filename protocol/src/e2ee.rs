//! Pairwise end-to-end encryption: Olm (Double Ratchet) sessions from
//! vodozemac, one set per peer device, keyed by the peer's Curve25519
//! identity key.
//!
//! [`OlmDevice`] holds the device's Olm account and sessions in memory and
//! records which of them changed; the node pickles exactly those into storage
//! in the same transaction as the messages they encrypted or decrypted.
//! vodozemac draws its own randomness (from the OS), the one exception to
//! this crate's rule that randomness is passed in.

use std::collections::{HashMap, HashSet};

use thiserror::Error;
use vodozemac::olm::{
    Account, AccountPickle, OlmMessage, PreKeyMessage, Session, SessionConfig, SessionPickle,
};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};

use crate::envelope::{Envelope, KeyBundle, OlmKind};
use crate::ids::DeviceId;
use crate::keys::DeviceKeys;

/// Sessions kept per peer device; the oldest beyond this are dropped.
pub const MAX_SESSIONS_PER_DEVICE: usize = 4;

#[derive(Debug, Error)]
pub enum E2eeError {
    #[error("no Olm session with this device yet: fetch a one-time key first")]
    NoSession,
    #[error("the one-time key bundle is not from the expected device")]
    WrongDevice,
    #[error("the one-time key bundle's signature is invalid")]
    BadBundleSignature,
    #[error("the one-time key could not start a session: {0}")]
    SessionCreation(#[from] vodozemac::olm::SessionCreationError),
    #[error("encryption failed: {0}")]
    Encrypt(#[from] vodozemac::olm::EncryptionError),
    #[error("the envelope is not a valid Olm message: {0}")]
    Malformed(#[from] vodozemac::DecodeError),
    #[error("no session decrypts the envelope (tampered, replayed, or from a lost session)")]
    Undecryptable,
    #[error("stored Olm state could not be unpickled: {0}")]
    Pickle(#[from] vodozemac::PickleError),
    #[error("a stored key is invalid: {0}")]
    Key(#[from] vodozemac::KeyError),
}

/// State that changed since the last [`OlmDevice::take_changes`], pickled
/// (encrypted with the pickle key) and ready to store.
#[derive(Debug, Default)]
pub struct OlmChanges {
    pub account: Option<String>,
    pub sessions: Vec<([u8; 32], Vec<String>)>,
}

impl OlmChanges {
    pub fn is_empty(&self) -> bool {
        self.account.is_none() && self.sessions.is_empty()
    }
}

pub struct OlmDevice {
    account: Account,
    sessions: HashMap<[u8; 32], Vec<Session>>,
    account_changed: bool,
    changed_sessions: HashSet<[u8; 32]>,
}

impl std::fmt::Debug for OlmDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OlmDevice")
            .field("curve25519", &self.account.curve25519_key().to_base64())
            .field("peers", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

impl Default for OlmDevice {
    fn default() -> Self {
        Self::new()
    }
}

impl OlmDevice {
    pub fn new() -> Self {
        Self {
            account: Account::new(),
            sessions: HashMap::new(),
            account_changed: true,
            changed_sessions: HashSet::new(),
        }
    }

    /// Restores a device from pickles made by [`OlmDevice::take_changes`].
    pub fn restore(
        account: &str,
        sessions: impl IntoIterator<Item = ([u8; 32], Vec<String>)>,
        pickle_key: &[u8; 32],
    ) -> Result<Self, E2eeError> {
        let account = Account::from_pickle(AccountPickle::from_encrypted(account, pickle_key)?);
        let mut restored = HashMap::new();
        for (key, pickles) in sessions {
            let list = pickles
                .iter()
                .map(|p| {
                    Ok(Session::from_pickle(SessionPickle::from_encrypted(
                        p, pickle_key,
                    )?))
                })
                .collect::<Result<Vec<_>, E2eeError>>()?;
            restored.insert(key, list);
        }
        Ok(Self {
            account,
            sessions: restored,
            account_changed: false,
            changed_sessions: HashSet::new(),
        })
    }

    pub fn ed25519_key(&self) -> [u8; 32] {
        *self.account.ed25519_key().as_bytes()
    }

    pub fn curve25519_key(&self) -> [u8; 32] {
        self.account.curve25519_key().to_bytes()
    }

    pub fn has_session(&self, peer_curve25519: &[u8; 32]) -> bool {
        self.sessions
            .get(peer_curve25519)
            .is_some_and(|s| !s.is_empty())
    }

    /// Forgets every session with a peer (e.g. after it reported it can no
    /// longer decrypt them); the next message starts a new one.
    pub fn drop_sessions(&mut self, peer_curve25519: &[u8; 32]) {
        if self.sessions.remove(peer_curve25519).is_some() {
            self.changed_sessions.insert(*peer_curve25519);
        }
    }

    /// Mints a fresh one-time key and signs it, for a peer that asked.
    pub fn one_time_key_bundle(&mut self, device_id: DeviceId) -> KeyBundle {
        let created = self.account.generate_one_time_keys(1).created;
        self.account.mark_keys_as_published();
        self.account_changed = true;
        // generate_one_time_keys(1) always creates exactly one key.
        let one_time_key = created
            .first()
            .map(|k| k.to_bytes())
            .unwrap_or_else(|| self.account.curve25519_key().to_bytes());
        self.bundle(device_id, one_time_key)
    }

    /// Mints `count` one-time keys for a relay to hand out. vodozemac keeps
    /// the secrets of the newest few thousand, far more than the relays hold.
    pub fn one_time_key_bundles(&mut self, device_id: DeviceId, count: usize) -> Vec<KeyBundle> {
        let created = self.account.generate_one_time_keys(count).created;
        self.account.mark_keys_as_published();
        self.account_changed = true;
        created
            .into_iter()
            .map(|k| self.bundle(device_id, k.to_bytes()))
            .collect()
    }

    /// Makes a new fallback key (the previous one stays usable) and signs
    /// it: what a relay hands out once the one-time keys are gone.
    pub fn new_fallback_key_bundle(&mut self, device_id: DeviceId) -> KeyBundle {
        self.account.generate_fallback_key();
        let key = self
            .account
            .fallback_key()
            .into_values()
            .next()
            .map(|k| k.to_bytes())
            .unwrap_or_else(|| self.account.curve25519_key().to_bytes());
        self.account.mark_keys_as_published();
        self.account_changed = true;
        self.bundle(device_id, key)
    }

    fn bundle(&self, device_id: DeviceId, one_time_key: [u8; 32]) -> KeyBundle {
        let identity_key = self.curve25519_key();
        let signed = KeyBundle::signed_bytes(&device_id, &identity_key, &one_time_key);
        KeyBundle {
            device_id,
            identity_key,
            one_time_key,
            signature: self.account.sign(&signed).to_bytes(),
        }
    }

    /// Starts an outbound session from a peer's bundle, after checking that
    /// the bundle comes from `expected`, a device on a verified device list.
    pub fn start_session(
        &mut self,
        bundle: &KeyBundle,
        expected: &DeviceKeys,
    ) -> Result<(), E2eeError> {
        if bundle.device_id != expected.device_id || bundle.identity_key != expected.olm_curve25519
        {
            return Err(E2eeError::WrongDevice);
        }
        let signer = Ed25519PublicKey::from_slice(&expected.olm_ed25519)?;
        let signature = Ed25519Signature::from_slice(&bundle.signature)
            .map_err(|_| E2eeError::BadBundleSignature)?;
        let signed = KeyBundle::signed_bytes(
            &bundle.device_id,
            &bundle.identity_key,
            &bundle.one_time_key,
        );
        signer
            .verify(&signed, &signature)
            .map_err(|_| E2eeError::BadBundleSignature)?;
        let session = self.account.create_outbound_session(
            SessionConfig::version_1(),
            Curve25519PublicKey::from_bytes(bundle.identity_key),
            Curve25519PublicKey::from_bytes(bundle.one_time_key),
        )?;
        self.insert_session(bundle.identity_key, session);
        Ok(())
    }

    fn insert_session(&mut self, peer: [u8; 32], session: Session) {
        let list = self.sessions.entry(peer).or_default();
        list.insert(0, session);
        list.truncate(MAX_SESSIONS_PER_DEVICE);
        self.changed_sessions.insert(peer);
    }

    /// Encrypts a padded payload for one device with the newest session.
    pub fn encrypt(&mut self, to: &DeviceKeys, plaintext: &[u8]) -> Result<Envelope, E2eeError> {
        let session = self
            .sessions
            .get_mut(&to.olm_curve25519)
            .and_then(|s| s.first_mut())
            .ok_or(E2eeError::NoSession)?;
        let (kind, ciphertext) = match session.encrypt(plaintext)? {
            OlmMessage::PreKey(m) => (OlmKind::PreKey, m.to_bytes()),
            OlmMessage::Normal(m) => (OlmKind::Normal, m.to_bytes()),
        };
        self.changed_sessions.insert(to.olm_curve25519);
        Ok(Envelope {
            recipient: to.device_id,
            sender_key: self.curve25519_key(),
            kind,
            ciphertext,
        })
    }

    /// Decrypts an envelope. On error nothing changed.
    pub fn decrypt(&mut self, envelope: &Envelope) -> Result<Vec<u8>, E2eeError> {
        let peer = envelope.sender_key;
        let message = OlmMessage::from_parts(envelope.kind as usize, &envelope.ciphertext)?;
        let sessions = self.sessions.entry(peer).or_default();
        if let OlmMessage::PreKey(pre_key) = &message {
            // A resent first message belongs to a session we already made.
            let id = pre_key.session_id();
            if let Some(i) = sessions.iter().position(|s| s.session_id() == id) {
                let plaintext = sessions[i]
                    .decrypt(&message)
                    .map_err(|_| E2eeError::Undecryptable)?;
                self.changed_sessions.insert(peer);
                return Ok(plaintext);
            }
            return self.create_inbound(peer, pre_key);
        }
        for i in 0..sessions.len() {
            if let Ok(plaintext) = sessions[i].decrypt(&message) {
                // Keep the session that works first in line.
                let session = sessions.remove(i);
                sessions.insert(0, session);
                self.changed_sessions.insert(peer);
                return Ok(plaintext);
            }
        }
        Err(E2eeError::Undecryptable)
    }

    fn create_inbound(
        &mut self,
        peer: [u8; 32],
        pre_key: &PreKeyMessage,
    ) -> Result<Vec<u8>, E2eeError> {
        let result = self
            .account
            .create_inbound_session(
                SessionConfig::version_1(),
                Curve25519PublicKey::from_bytes(peer),
                pre_key,
            )
            .map_err(|_| E2eeError::Undecryptable)?;
        self.account_changed = true;
        self.insert_session(peer, result.session);
        Ok(result.plaintext)
    }

    /// Whether anything changed since the last [`OlmDevice::take_changes`].
    pub fn has_changes(&self) -> bool {
        self.account_changed || !self.changed_sessions.is_empty()
    }

    /// Pickles what changed since the last call.
    pub fn take_changes(&mut self, pickle_key: &[u8; 32]) -> OlmChanges {
        let account = std::mem::take(&mut self.account_changed)
            .then(|| self.account.pickle().encrypt(pickle_key));
        let sessions = self
            .changed_sessions
            .drain()
            .map(|peer| {
                let pickles = self
                    .sessions
                    .get(&peer)
                    .map(|list| {
                        list.iter()
                            .map(|s| s.pickle().encrypt(pickle_key))
                            .collect()
                    })
                    .unwrap_or_default();
                (peer, pickles)
            })
            .collect();
        OlmChanges { account, sessions }
    }
}

/// The Olm chain an envelope's message belongs to (its ratchet key) and
/// its index in that chain, read from the message's clear header; `None`
/// if the message does not parse.
pub fn chain_position(envelope: &Envelope) -> Option<([u8; 32], u64)> {
    let message = OlmMessage::from_parts(envelope.kind as usize, &envelope.ciphertext).ok()?;
    let message = match &message {
        OlmMessage::PreKey(pre_key) => pre_key.message(),
        OlmMessage::Normal(message) => message,
    };
    Some((message.ratchet_key().to_bytes(), message.chain_index()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys_of(device: &OlmDevice, id: u8) -> DeviceKeys {
        DeviceKeys {
            device_id: DeviceId([id; 32]),
            olm_ed25519: device.ed25519_key(),
            olm_curve25519: device.curve25519_key(),
            mailbox_key: [id; 32],
        }
    }

    #[test]
    fn two_devices_talk_both_ways_and_survive_pickling() {
        let (mut alice, mut bob) = (OlmDevice::new(), OlmDevice::new());
        let (alice_keys, bob_keys) = (keys_of(&alice, 1), keys_of(&bob, 2));
        let bundle = bob.one_time_key_bundle(bob_keys.device_id);
        alice.start_session(&bundle, &bob_keys).unwrap();

        let first = alice.encrypt(&bob_keys, b"hello").unwrap();
        assert_eq!(first.kind, OlmKind::PreKey);
        assert_eq!(bob.decrypt(&first).unwrap(), b"hello");
        // The same envelope again is a replay: refused.
        assert!(bob.decrypt(&first).is_err());

        // Pickle both, restore, and keep talking.
        let key = [9u8; 32];
        let restore = |d: &mut OlmDevice| {
            let changes = d.take_changes(&key);
            OlmDevice::restore(&changes.account.unwrap(), changes.sessions, &key).unwrap()
        };
        let (mut alice, mut bob) = (restore(&mut alice), restore(&mut bob));
        let reply = bob.encrypt(&alice_keys, b"hi alice").unwrap();
        assert_eq!(reply.kind, OlmKind::Normal);
        assert_eq!(alice.decrypt(&reply).unwrap(), b"hi alice");
        let next = alice.encrypt(&bob_keys, b"again").unwrap();
        assert_eq!(next.kind, OlmKind::Normal);
        assert_eq!(bob.decrypt(&next).unwrap(), b"again");
    }

    #[test]
    fn tampered_envelope_is_refused_and_changes_nothing() {
        let (mut alice, mut bob) = (OlmDevice::new(), OlmDevice::new());
        let bob_keys = keys_of(&bob, 2);
        let bundle = bob.one_time_key_bundle(bob_keys.device_id);
        alice.start_session(&bundle, &bob_keys).unwrap();
        let mut e = alice.encrypt(&bob_keys, b"hello").unwrap();
        let last = e.ciphertext.len() - 1;
        e.ciphertext[last] ^= 1;
        assert!(bob.decrypt(&e).is_err());
        e.ciphertext[last] ^= 1;
        assert_eq!(bob.decrypt(&e).unwrap(), b"hello");
    }

    #[test]
    fn forged_bundle_is_refused() {
        let (mut alice, mut bob, mallory) = (OlmDevice::new(), OlmDevice::new(), OlmDevice::new());
        let bob_keys = keys_of(&bob, 2);
        let mut bundle = bob.one_time_key_bundle(bob_keys.device_id);
        bundle.one_time_key = mallory.curve25519_key();
        assert!(matches!(
            alice.start_session(&bundle, &bob_keys),
            Err(E2eeError::BadBundleSignature)
        ));
    }

    #[test]
    fn relay_hosted_keys_start_sessions_and_the_fallback_key_serves_many() {
        let mut bob = OlmDevice::new();
        let bob_keys = keys_of(&bob, 2);
        let bundles = bob.one_time_key_bundles(bob_keys.device_id, 3);
        assert_eq!(bundles.len(), 3);
        let fallback = bob.new_fallback_key_bundle(bob_keys.device_id);
        let mut senders = Vec::new();
        for bundle in bundles.iter().chain([&fallback, &fallback]) {
            let mut sender = OlmDevice::new();
            sender.start_session(bundle, &bob_keys).unwrap();
            senders.push(sender);
        }
        for (i, sender) in senders.iter_mut().enumerate() {
            let e = sender.encrypt(&bob_keys, &[i as u8]).unwrap();
            assert_eq!(bob.decrypt(&e).unwrap(), [i as u8]);
        }
        // A one-time key works once only.
        let mut late = OlmDevice::new();
        late.start_session(&bundles[0], &bob_keys).unwrap();
        let e = late.encrypt(&bob_keys, b"x").unwrap();
        assert!(bob.decrypt(&e).is_err());
    }
}

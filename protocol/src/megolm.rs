//! Group encryption: Megolm sessions from vodozemac.
//!
//! Each member device encrypts its group messages with its own outbound
//! session ([`MegolmOutbound`]) and hands the session key to every member
//! device over Olm; a receiver turns that key into an inbound session
//! ([`MegolmInbound`]). A key shared at message index `i` decrypts messages
//! `i` and later only, so a member who joins later reads nothing older, and
//! a new session after a removal is one the removed member never gets.

use thiserror::Error;
use vodozemac::megolm::{
    ExportedSessionKey, GroupSession, GroupSessionPickle, InboundGroupSession,
    InboundGroupSessionPickle, MegolmMessage, SessionConfig, SessionKey,
};

#[derive(Debug, Error)]
pub enum MegolmError {
    #[error("the session key is malformed: {0}")]
    BadKey(#[from] vodozemac::megolm::SessionKeyDecodeError),
    #[error("the group message is not valid Megolm: {0}")]
    Malformed(#[from] vodozemac::DecodeError),
    #[error(
        "the group message does not decrypt with its session (tampered, or from before the key we hold)"
    )]
    Undecryptable,
    #[error("a stored Megolm session could not be unpickled: {0}")]
    Pickle(#[from] vodozemac::PickleError),
}

/// The 32-byte name of a Megolm session, as group messages carry it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; 32]);

impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionId({})", hex::encode(&self.0[..8]))
    }
}

/// The [`SessionId`] of a vodozemac session id.
pub fn megolm_session_id(vodozemac_id: &str) -> SessionId {
    SessionId(
        *blake3::Hasher::new_derive_key("hush 2026-11 megolm session id")
            .update(vodozemac_id.as_bytes())
            .finalize()
            .as_bytes(),
    )
}

/// Our device's sending session for one group.
pub struct MegolmOutbound {
    session: GroupSession,
}

impl std::fmt::Debug for MegolmOutbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegolmOutbound")
            .field("index", &self.session.message_index())
            .finish_non_exhaustive()
    }
}

impl Default for MegolmOutbound {
    fn default() -> Self {
        Self::new()
    }
}

impl MegolmOutbound {
    pub fn new() -> Self {
        Self {
            session: GroupSession::new(SessionConfig::version_1()),
        }
    }

    pub fn id(&self) -> SessionId {
        megolm_session_id(&self.session.session_id())
    }

    /// How many messages this session has encrypted.
    pub fn message_index(&self) -> u32 {
        self.session.message_index()
    }

    /// The key at the current index: what members get over Olm.
    pub fn session_key(&self) -> Vec<u8> {
        self.session.session_key().to_bytes()
    }

    pub fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8> {
        self.session.encrypt(plaintext).to_bytes()
    }

    pub fn pickle(&self, pickle_key: &[u8; 32]) -> String {
        self.session.pickle().encrypt(pickle_key)
    }

    pub fn restore(pickle: &str, pickle_key: &[u8; 32]) -> Result<Self, MegolmError> {
        Ok(Self {
            session: GroupSession::from_pickle(GroupSessionPickle::from_encrypted(
                pickle, pickle_key,
            )?),
        })
    }
}

/// A member device's session, as a receiver holds it.
pub struct MegolmInbound {
    session: InboundGroupSession,
}

impl std::fmt::Debug for MegolmInbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MegolmInbound").finish_non_exhaustive()
    }
}

impl MegolmInbound {
    pub fn new(session_key: &[u8]) -> Result<Self, MegolmError> {
        let key = SessionKey::from_bytes(session_key)?;
        Ok(Self {
            session: InboundGroupSession::new(&key, SessionConfig::version_1()),
        })
    }

    pub fn id(&self) -> SessionId {
        megolm_session_id(&self.session.session_id())
    }

    /// Decrypts; returns the plaintext and the message's index.
    pub fn decrypt(&mut self, ciphertext: &[u8]) -> Result<(Vec<u8>, u32), MegolmError> {
        let message = MegolmMessage::from_bytes(ciphertext)?;
        let decrypted = self
            .session
            .decrypt(&message)
            .map_err(|_| MegolmError::Undecryptable)?;
        Ok((decrypted.plaintext, decrypted.message_index))
    }

    pub fn pickle(&self, pickle_key: &[u8; 32]) -> String {
        self.session.pickle().encrypt(pickle_key)
    }

    /// The session from the first index this copy can read (to hand it
    /// to another device of the same account).
    pub fn export(&self) -> Vec<u8> {
        self.session.export_at_first_known_index().to_bytes()
    }

    /// A session [`MegolmInbound::export`] made.
    pub fn import(exported: &[u8]) -> Result<Self, MegolmError> {
        let key = ExportedSessionKey::from_bytes(exported)?;
        Ok(Self {
            session: InboundGroupSession::import(&key, SessionConfig::version_1()),
        })
    }

    pub fn restore(pickle: &str, pickle_key: &[u8; 32]) -> Result<Self, MegolmError> {
        Ok(Self {
            session: InboundGroupSession::from_pickle(InboundGroupSessionPickle::from_encrypted(
                pickle, pickle_key,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_key_reads_only_what_follows() {
        let mut out = MegolmOutbound::new();
        let early = out.encrypt(b"before you joined");
        let key = out.session_key();
        let late = out.encrypt(b"after");
        let mut inbound = MegolmInbound::new(&key).unwrap();
        assert_eq!(inbound.id(), out.id());
        assert_eq!(inbound.decrypt(&late).unwrap(), (b"after".to_vec(), 1));
        assert!(inbound.decrypt(&early).is_err());
        let pk = [5; 32];
        let mut restored = MegolmInbound::restore(&inbound.pickle(&pk), &pk).unwrap();
        assert!(restored.decrypt(&late).is_ok());
        let mut out2 = MegolmOutbound::restore(&out.pickle(&pk), &pk).unwrap();
        assert_eq!(out2.message_index(), 2);
        let next = out2.encrypt(b"x");
        assert!(restored.decrypt(&next).is_ok());
    }

    #[test]
    fn an_exported_session_reads_what_its_source_could() {
        let mut out = MegolmOutbound::new();
        let first = out.encrypt(b"one");
        let inbound = MegolmInbound::new(&out.session_key()).unwrap();
        let second = out.encrypt(b"two");
        let mut copy = MegolmInbound::import(&inbound.export()).unwrap();
        assert_eq!(copy.id(), inbound.id());
        assert_eq!(copy.decrypt(&second).unwrap().0, b"two");
        assert!(
            copy.decrypt(&first).is_err(),
            "nothing before the exported index"
        );
        assert!(MegolmInbound::import(b"junk").is_err());
    }

    #[test]
    fn a_new_session_is_unreadable_with_the_old_key() {
        let old = MegolmOutbound::new();
        let mut inbound = MegolmInbound::new(&old.session_key()).unwrap();
        let mut new = MegolmOutbound::new();
        assert!(inbound.decrypt(&new.encrypt(b"secret")).is_err());
    }
}

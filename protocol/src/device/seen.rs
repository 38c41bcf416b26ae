//! Where a received message's digest is kept, so a copy of it is known
//! again without reading it: a [`SeenKey`].

use crate::SessionId;
use crate::envelope::Envelope;

/// The store's key for a received message's digest: the digest after a
/// prefix naming the chain the message belongs to and its place there.
///
/// Digests are random, so a table keyed by them alone takes every insert
/// on a page of its own: a commit of 128 received messages rewrote about
/// as many pages. With the prefix, the messages of one Olm chain (or one
/// Megolm session) sit side by side, in the order they were sent, and a
/// commit touches a page or two per chain. The digest still decides: a
/// key matches only the very same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeenKey {
    /// The chain (8 bytes) and the place in it (8, big-endian).
    pub prefix: [u8; 16],
    pub digest: [u8; 32],
}

impl SeenKey {
    /// A direct envelope's: its sender's and its Olm chain's keys (4 bytes
    /// of each), and its index in that chain. An envelope whose Olm message
    /// does not parse (it will not decrypt either) has the sender's part
    /// alone.
    pub fn of_envelope(envelope: &Envelope, digest: [u8; 32]) -> Self {
        let mut prefix = [0; 16];
        prefix[..4].copy_from_slice(&envelope.sender_key[..4]);
        if let Some((ratchet, index)) = crate::e2ee::chain_position(envelope) {
            prefix[4..8].copy_from_slice(&ratchet[..4]);
            prefix[8..].copy_from_slice(&index.to_be_bytes());
        }
        Self { prefix, digest }
    }

    /// A group message's: its Megolm session (8 bytes; a session carries at
    /// most a hundred messages before it is replaced). Channel messages
    /// share the zero session.
    pub fn of_group(session: &SessionId, digest: [u8; 32]) -> Self {
        let mut prefix = [0; 16];
        prefix[..8].copy_from_slice(&session.0[..8]);
        Self { prefix, digest }
    }
}

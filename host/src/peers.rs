//! Peer ids and device ids.

use std::io;

use hush_protocol::DeviceId;
use libp2p::{Multiaddr, PeerId, identity};

/// The libp2p keypair of a device, from its stored secret.
pub fn device_keypair(secret: [u8; 32]) -> Result<identity::Keypair, io::Error> {
    let mut secret = secret;
    identity::Keypair::ed25519_from_bytes(&mut secret).map_err(io::Error::other)
}

/// The peer id in an address's `/p2p/` part (a relay's full address).
pub fn peer_in(addr: &Multiaddr) -> Option<PeerId> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::P2p(id) => Some(id),
        _ => None,
    })
}

/// The PeerId a device id stands for.
pub fn peer_id(device: &DeviceId) -> Option<PeerId> {
    let key = identity::ed25519::PublicKey::try_from_bytes(&device.0).ok()?;
    Some(identity::PublicKey::from(key).to_peer_id())
}

/// The device id a PeerId stands for (its Ed25519 key is inlined in it).
pub fn device_of_peer(peer: &PeerId) -> Option<DeviceId> {
    let hash: &libp2p::multihash::Multihash<64> = peer.as_ref();
    // Identity multihash: the digest is the protobuf-encoded public key.
    if hash.code() != 0 {
        return None;
    }
    let key = identity::PublicKey::try_decode_protobuf(hash.digest()).ok()?;
    Some(DeviceId(key.try_into_ed25519().ok()?.to_bytes()))
}

/// The device id of a libp2p Ed25519 keypair.
pub fn device_id(keypair: &identity::Keypair) -> Option<DeviceId> {
    let key = keypair.public().try_into_ed25519().ok()?;
    Some(DeviceId(key.to_bytes()))
}

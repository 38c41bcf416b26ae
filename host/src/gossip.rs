//! Gossipsub as hush runs it (group messages), the same for nodes and relays.

use std::io;
use std::time::Duration;

use hush_protocol::{GOSSIP_PROTOCOL_PREFIX, GroupMessage, MAX_GROUP_MESSAGE_LEN};
use libp2p::gossipsub;

/// Gossipsub as hush runs it, for nodes and relays alike.
///
/// - Anonymous: messages carry no author, sequence number or signature
///   (the Megolm ciphertext inside is signed), so a relay cannot tell which
///   member published.
/// - Message ids are the content hash ([`GroupMessage::digest`]): the same
///   bytes are one message, however many paths bring them.
/// - `validate_messages`: nothing is forwarded until the application
///   accepted it; what does not decode as a group message is rejected,
///   which costs the sender peer score.
/// - A small mesh (3, between 2 and 5): groups are many and small relative
///   to gossip's design point, and every extra mesh peer is another copy of
///   each message on the wire.
pub fn gossipsub_behaviour() -> Result<gossipsub::Behaviour, io::Error> {
    let config = gossipsub::ConfigBuilder::default()
        .protocol_id_prefix(GOSSIP_PROTOCOL_PREFIX)
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(GroupMessage::digest(&m.data).to_vec())
        })
        .max_transmit_size(MAX_GROUP_MESSAGE_LEN + 1024)
        .mesh_n(3)
        .mesh_n_low(2)
        .mesh_n_high(5)
        .mesh_outbound_min(1)
        .gossip_lazy(3)
        // Message ids are offered (IHAVE) in the one heartbeat after a
        // message arrives, not three: the mesh and the relays' history
        // already carry it, and three rounds of 32-byte ids to three peers
        // cost half a message's size again per member.
        .history_gossip(1)
        // IHAVE to `gossip_lazy` peers, not a quarter of all peers on the
        // topic: members hold Olm connections to many other members, and at
        // 100 members a quarter is 25 peers a heartbeat.
        .gossip_factor(0.0)
        .heartbeat_interval(Duration::from_millis(500))
        .duplicate_cache_time(Duration::from_secs(120))
        .flood_publish(false)
        .build()
        .map_err(io::Error::other)?;
    let mut behaviour =
        gossipsub::Behaviour::new(gossipsub::MessageAuthenticity::Anonymous, config)
            .map_err(io::Error::other)?;
    let thresholds = gossipsub::PeerScoreThresholds::default();
    // Many members may share one address (a household, a carrier NAT, one
    // machine on loopback): the colocation penalty starts later than
    // libp2p's default of 10, and not at all for loopback.
    let mut params = gossipsub::PeerScoreParams {
        ip_colocation_factor_threshold: 32.0,
        ..gossipsub::PeerScoreParams::default()
    };
    params.ip_colocation_factor_whitelist.extend([
        std::net::IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
        std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ]);
    behaviour
        .with_peer_score(params, thresholds)
        .map_err(io::Error::other)?;
    Ok(behaviour)
}

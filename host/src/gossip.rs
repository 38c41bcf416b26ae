//! Gossipsub as hush runs it (group messages), the same for nodes and relays.

use std::io;
use std::time::Duration;

use hush_protocol::{GOSSIP_PROTOCOL_PREFIX, GroupMessage, MAX_GROUP_MESSAGE_LEN};
use libp2p::gossipsub;

/// What a peer may send in one gossipsub frame, as gossipsub checks it.
///
/// Gossipsub 0.50 checks the reader's whole buffer against this limit, not
/// the frame: a frame read together with the first bytes of the next one
/// (the reader takes 8 KiB at a time) counts as both. With the limit at the
/// largest frame (a group message of [`MAX_GROUP_MESSAGE_LEN`] and its
/// protobuf framing), any largest message followed by more broke the
/// stream, and everything queued behind it was lost. So: the largest frame
/// plus one read. A group message itself is still held to
/// [`MAX_GROUP_MESSAGE_LEN`] when it is decoded.
const MAX_FRAME: usize = MAX_GROUP_MESSAGE_LEN + 1024 + READ_CHUNK;
/// What gossipsub's reader (`asynchronous_codec`) reads at a time.
const READ_CHUNK: usize = 8 * 1024;

/// Message ids in one IHAVE or IWANT: 400 ids of 32 bytes (34 with their
/// protobuf framing) make 13.6 KB, under the 16 KiB of control a peer
/// accepts in one frame (gossipsub's `max_control_message_size`; a frame
/// with more is refused, and the stream with it).
const MAX_IDS_PER_CONTROL: usize = 400;
/// How long a peer that pruned us from its mesh (or that we pruned) waits
/// before a graft (libp2p: 60 s).
const PRUNE_BACKOFF: Duration = Duration::from_secs(15);
/// Broken promises (an IHAVE'd message not sent within 3 s of our IWANT)
/// a peer may have on record before they cost it score (libp2p: 0).
const BROKEN_PROMISES_TOLERATED: f64 = 6.0;
/// How long a message id is remembered, so that the same message arriving
/// again is dropped unread.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
// A sender's last resend of a group message no member confirmed falls
// inside the window: where the message did arrive, the copy is dropped.
const _: () = assert!(
    hush_protocol::device::RESEND_AFTER_MS[hush_protocol::device::RESEND_AFTER_MS.len() - 1]
        < DUPLICATE_WINDOW.as_millis() as u64
);

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
///   each message on the wire. Not 2: a member then gets each message 1.8
///   times, not 2.7 (about 11 % less CPU a delivery), but in about one run
///   in five of `hush bench group --members 50` one member or a few fell
///   out of the mesh for seconds and got messages only through IHAVE,
///   hundreds of milliseconds late (docs/benchmarks.md).
pub fn gossipsub_behaviour() -> Result<gossipsub::Behaviour, io::Error> {
    let config = gossipsub::ConfigBuilder::default()
        .protocol_id_prefix(GOSSIP_PROTOCOL_PREFIX)
        .validation_mode(gossipsub::ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            gossipsub::MessageId::from(GroupMessage::digest(&m.data).to_vec())
        })
        .max_transmit_size(MAX_FRAME)
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
        // At most this many message ids in one IHAVE or IWANT: libp2p's
        // default (5,000 ids, 170 KB) is over what a peer accepts.
        .max_control_messages_sent(MAX_IDS_PER_CONTROL)
        // A message waits this long in a peer's queue before it is dropped
        // (libp2p: 1 s for a forward). On a loaded device, as when many
        // members join at once, a forward 1-5 s late still beats one lost:
        // the IHAVE repair offers it for one heartbeat only.
        .forward_queue_duration(Duration::from_secs(5))
        // A member another pruned from its mesh may graft it again after
        // this (libp2p: 60 s). Members are few and known, and a full mesh
        // prunes often: with a minute's backoff from each peer that
        // pruned it, a loaded member could find every peer on the topic
        // backed off and stay outside the mesh (then only IHAVE reaches
        // it, and what that misses is lost to it).
        .prune_backoff(PRUNE_BACKOFF)
        .heartbeat_interval(Duration::from_millis(500))
        .duplicate_cache_time(DUPLICATE_WINDOW)
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
    //
    // A member that answers an IWANT late (a loaded device, its queue full)
    // broke a promise and is scored down (P7); a negative score takes it out
    // of every mesh with a backoff. The first few per decay window are
    // tolerated, as in other deployments under real load.
    let mut params = gossipsub::PeerScoreParams {
        ip_colocation_factor_threshold: 32.0,
        behaviour_penalty_threshold: BROKEN_PROMISES_TOLERATED,
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::swarm::SwarmEvent;
    use libp2p::{Multiaddr, Swarm, SwarmBuilder, gossipsub, noise, tcp, yamux};

    use super::*;

    fn swarm() -> Swarm<gossipsub::Behaviour> {
        SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("tcp transport")
            .with_behaviour(|_| gossipsub_behaviour().expect("gossipsub config"))
            .expect("behaviour")
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build()
    }

    /// Messages of the largest size a group message may have, back to back:
    /// the reader buffers the next frame's first bytes behind a whole one,
    /// and gossipsub 0.50 checks the whole buffer against
    /// `max_transmit_size` (not the frame), so with a limit at the largest
    /// frame it dropped the stream and the messages behind it.
    #[tokio::test]
    async fn largest_group_messages_back_to_back_all_arrive() {
        let (mut a, mut b) = (swarm(), swarm());
        let topic = gossipsub::IdentTopic::new("/hush/group/2/test");
        a.behaviour_mut().subscribe(&topic).expect("subscribe");
        b.behaviour_mut().subscribe(&topic).expect("subscribe");
        let loopback: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("address");
        b.listen_on(loopback).expect("listen");
        let address = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = b.select_next_some().await {
                break address;
            }
        };
        a.dial(address).expect("dial");
        const COUNT: usize = 40;
        let mut published = 0;
        let mut received = HashSet::new();
        let deadline = tokio::time::sleep(Duration::from_secs(60));
        tokio::pin!(deadline);
        while received.len() < COUNT {
            tokio::select! {
                event = a.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossipsub::Event::Subscribed { .. }) = event {
                        // B is on the topic: all at once, as a burst of
                        // channel messages goes.
                        while published < COUNT {
                            let mut data = vec![0u8; MAX_GROUP_MESSAGE_LEN];
                            data[..8].copy_from_slice(&(published as u64).to_le_bytes());
                            a.behaviour_mut()
                                .publish(topic.clone(), data)
                                .expect("publish");
                            published += 1;
                        }
                    }
                }
                event = b.select_next_some() => {
                    if let SwarmEvent::Behaviour(gossipsub::Event::Message { message_id, propagation_source, .. }) = event {
                        b.behaviour_mut().report_message_validation_result(
                            &message_id,
                            &propagation_source,
                            gossipsub::MessageAcceptance::Accept,
                        );
                        received.insert(message_id);
                    }
                }
                () = &mut deadline => break,
            }
        }
        assert_eq!(
            received.len(),
            COUNT,
            "{published} messages published, {} arrived",
            received.len()
        );
    }
}

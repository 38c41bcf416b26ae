//! The libp2p side: transports, the hush request-response protocols and
//! their length-limited frame codec.
//!
//! | protocol         | request        | response      |
//! |------------------|----------------|---------------|
//! | `/hush/direct/2` | `BatchOrder` ‖ `EnvelopeBatch` | `AckBatch` (two in flight, handled in order) |
//! | `/hush/direct/1` | `EnvelopeBatch`| `AckBatch`    |
//! | `/hush/keys/1`   | `KeyRequest`   | `KeyBundle`   |
//! | `/hush/mailbox/1`| `MailboxRequest` | `MailboxResponse` (to relays only) |
//! | `/hush/presence/1` | `PresencePush` | `PresencePush` |
//! | `/hush/group/1`  | `HistoryRequest` | `HistoryResponse` (to relays only) |
//! | `/hush/link/1`   | Noise frame    | Noise frame (linking a device; `hush_protocol::link`) |
//! | `/hush/blob/1`   | framed `BlobRequest`s | framed `BlobResponse`s, in order, on one stream (files) |
//!
//! Gossipsub (`/hush/gossip/1`) carries group messages: anonymous (no
//! author, no sequence number: the Megolm ciphertext says who wrote it),
//! message ids from content hashes, every message validated by the
//! application before it is forwarded, peer scoring on.
//! Beside them: Kademlia on `/hush/kad/1` (client mode; relays are the
//! servers) for presence records, circuit relay v2 client, DCUtR and AutoNAT
//! for NAT traversal, mDNS for the LAN, Identify, and liveness probes
//! (`hush_host::liveness`, libp2p's ping protocol) that close connections
//! whose network silently went away. Blocked contacts' devices are refused
//! at the connection (`allow_block_list`).
//! The frame codec, the protocol names and the gossipsub configuration are
//! shared with the relay (`hush-host`).

use std::io;
use std::time::Duration;

use hush_host::{DIAL_TIMEOUT, Listed, Woken, liveness, tcp_transport};
pub use hush_host::{
    DIRECT_PROTOCOL, DIRECT_PROTOCOL_ORDERED, DirectCodec, DirectRequest, DirectResponse,
    FrameCodec, HISTORY_PROTOCOL, IDENTIFY_PROTOCOL, KAD_PROTOCOL, KEYS_PROTOCOL, LINK_PROTOCOL,
    MAILBOX_PROTOCOL, PRESENCE_PROTOCOL, device_id, device_keypair, gossipsub_behaviour, peer_id,
    peer_in,
};
use hush_protocol::link::MAX_LINK_FRAME;
use hush_protocol::{
    MAX_CONTROL_LEN, MAX_HISTORY_FRAME, MAX_MAILBOX_FRAME, MAX_PRESENCE_RECORD_LEN,
};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    PeerId, Swarm, SwarmBuilder, allow_block_list, autonat, dcutr, identify, identity, kad, mdns,
    noise, relay, request_response, yamux,
};

/// A mailbox request may wait this long (a large deposit to a busy relay).
pub const MAILBOX_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a request may wait for its response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent streams per connection and protocol.
pub const MAX_CONCURRENT_STREAMS: usize = 256;
/// Connections idle this long are closed. Longer than the presence
/// heartbeat, so connections to online contacts stay up.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// A presence lookup in the DHT gives up after this long.
pub const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The node's behaviours. The derive nests their connection handlers in
/// field order, the first field deepest, and listing their inbound
/// protocols walks one nested iterator per level (`docs/benchmarks.md`,
/// "Handlers that list nothing deepest"). libp2p asks for that listing
/// each time a connection's task goes idle; [`NodeSwarm`] wraps this in
/// `hush_host::Listed`, which walks it only when it may have changed. So
/// after the two that must come first, the fields go from those that list
/// no protocol on a member's connection to those that list two. Nothing
/// else depends on their order.
#[derive(NetworkBehaviour)]
pub struct Behaviour {
    /// Devices of blocked contacts: their connections are refused (first,
    /// so no other behaviour sees them).
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    /// Inbound connections only from known devices and relays (second,
    /// for the same reason; see `crate::gate`).
    pub gate: crate::gate::Gate,
    // No inbound protocol on a member's connection: asked of relays only
    // (mailbox, history; Kademlia in client mode), on relayed connections
    // only (DCUtR), or no handler at all (mDNS).
    pub mailbox: Woken<request_response::Behaviour<FrameCodec>>,
    pub history: Woken<request_response::Behaviour<FrameCodec>>,
    pub kad: Woken<kad::Behaviour<kad::store::MemoryStore>>,
    pub dcutr: Woken<Toggle<dcutr::Behaviour>>,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    // One protocol each.
    pub keys: Woken<request_response::Behaviour<FrameCodec>>,
    pub presence: Woken<request_response::Behaviour<FrameCodec>>,
    pub link: Woken<request_response::Behaviour<FrameCodec>>,
    pub relay_client: Woken<relay::client::Behaviour>,
    pub autonat: Woken<autonat::Behaviour>,
    pub liveness: Woken<liveness::Behaviour>,
    /// Raw streams: `/hush/blob/1` (file transfer, `crate::files::transfer`).
    pub stream: Woken<libp2p_stream::Behaviour>,
    // Two each.
    pub direct: Woken<request_response::Behaviour<DirectCodec>>,
    pub identify: Woken<identify::Behaviour>,
    /// Gossipsub, with group peers, our devices and relays only (see
    /// `crate::group_gossip`).
    pub gossipsub: crate::group_gossip::GroupGossip,
}

/// A node's swarm: its behaviours, with their inbound protocols listed
/// only when they may have changed (`hush_host::listed`).
pub type NodeSwarm = Swarm<Listed<Behaviour>>;

/// Switches of the swarm a node builds.
#[derive(Debug, Clone, Copy)]
pub struct SwarmOptions {
    /// Find contacts on the LAN with mDNS.
    pub mdns: bool,
    /// Upgrade circuits to direct connections (DCUtR); off for a hidden
    /// node, whose IP only its relays see.
    pub hole_punch: bool,
}

fn request_response_config() -> request_response::Config {
    request_response::Config::default()
        .with_request_timeout(REQUEST_TIMEOUT)
        .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS)
}

/// The link protocol: a running node answers (`Inbound`); a device
/// joining asks (`Outbound`, see `crate::link`).
pub fn link_behaviour(
    support: request_response::ProtocolSupport,
) -> request_response::Behaviour<FrameCodec> {
    request_response::Behaviour::with_codec(
        FrameCodec::new(MAX_LINK_FRAME, MAX_LINK_FRAME),
        [(LINK_PROTOCOL, support)],
        request_response_config().with_max_concurrent_streams(4),
    )
}

/// Kademlia as a node runs it: a client of the relays' DHT that publishes
/// its own presence records (no republishing of others', no server role,
/// no provider records: their republishing job, a timer polled on every
/// wake-up of the swarm, would only ever find none).
pub(crate) fn kad_behaviour(peer: PeerId) -> kad::Behaviour<kad::store::MemoryStore> {
    let mut config = kad::Config::new(KAD_PROTOCOL);
    config
        .set_query_timeout(KAD_QUERY_TIMEOUT)
        .set_publication_interval(None)
        .set_replication_interval(None)
        .set_provider_publication_interval(None)
        .set_max_packet_size(16 * 1024);
    let store = kad::store::MemoryStore::with_config(
        peer,
        kad::store::MemoryStoreConfig {
            max_records: 64,
            max_value_bytes: MAX_PRESENCE_RECORD_LEN,
            max_providers_per_key: 0,
            max_provided_keys: 0,
        },
    );
    let mut kad = kad::Behaviour::with_config(peer, store, config);
    kad.set_mode(Some(kad::Mode::Client));
    kad
}

/// Builds the swarm for a device key: TCP (Noise, Yamux; its sockets
/// watched for liveness), QUIC, and the relay client transport.
pub fn build_swarm(
    keypair: identity::Keypair,
    options: SwarmOptions,
) -> Result<NodeSwarm, io::Error> {
    let activity = liveness::Activity::default();
    let liveness = liveness::Behaviour::default().with_activity(activity.clone());
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_quic()
        .with_other_transport(|key| tcp_transport(key, activity))
        .map_err(io::Error::other)?
        // `/dns4/`, `/dns6/`, `/dnsaddr/` names (a relay that moves keeps
        // its name), resolved with the system's resolver and hosts file.
        .with_dns()?
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(io::Error::other)?
        .with_behaviour(|key, relay_client| {
            let peer = key.public().to_peer_id();
            let gossipsub = gossipsub_behaviour()?;
            let mdns = if options.mdns {
                // A random id per run: the LAN learns an address, not the
                // device (see `event_loop::reach`).
                mdns::tokio::Behaviour::new(mdns::Config::default(), PeerId::random())
                    .map_err(
                        |e| tracing::warn!(error = %e, "mDNS is unavailable; LAN discovery is off"),
                    )
                    .ok()
            } else {
                None
            };
            Ok(Listed(Behaviour {
                blocked: allow_block_list::Behaviour::default(),
                gate: crate::gate::Gate::default(),
                direct: Woken::new(request_response::Behaviour::with_codec(
                    DirectCodec,
                    [
                        (
                            DIRECT_PROTOCOL_ORDERED,
                            request_response::ProtocolSupport::Full,
                        ),
                        (DIRECT_PROTOCOL, request_response::ProtocolSupport::Full),
                    ],
                    request_response_config(),
                )),
                keys: Woken::new(request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_CONTROL_LEN, MAX_CONTROL_LEN),
                    [(KEYS_PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response_config(),
                )),
                mailbox: Woken::new(request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_MAILBOX_FRAME, MAX_MAILBOX_FRAME),
                    [(
                        MAILBOX_PROTOCOL,
                        request_response::ProtocolSupport::Outbound,
                    )],
                    request_response_config().with_request_timeout(MAILBOX_REQUEST_TIMEOUT),
                )),
                presence: Woken::new(request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_PRESENCE_RECORD_LEN, MAX_PRESENCE_RECORD_LEN + 8),
                    [(PRESENCE_PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response_config().with_request_timeout(Duration::from_secs(10)),
                )),
                history: Woken::new(request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_HISTORY_FRAME, MAX_HISTORY_FRAME),
                    [(
                        HISTORY_PROTOCOL,
                        request_response::ProtocolSupport::Outbound,
                    )],
                    request_response_config(),
                )),
                link: Woken::new(link_behaviour(request_response::ProtocolSupport::Inbound)),
                gossipsub: crate::group_gossip::GroupGossip::new(gossipsub),
                kad: Woken::new(kad_behaviour(peer)),
                relay_client: Woken::new(relay_client),
                dcutr: Woken::new(Toggle::from(
                    options.hole_punch.then(|| dcutr::Behaviour::new(peer)),
                )),
                autonat: Woken::new(autonat::Behaviour::new(
                    peer,
                    autonat::Config {
                        boot_delay: Duration::from_secs(2),
                        retry_interval: Duration::from_secs(30),
                        refresh_interval: Duration::from_secs(5 * 60),
                        throttle_server_period: Duration::from_secs(10),
                        // Home networks and test namespaces use private ranges.
                        only_global_ips: false,
                        ..autonat::Config::default()
                    },
                )),
                mdns: Toggle::from(mdns),
                // Identify tells every peer let in our addresses: only
                // the ones we share (`crate::addresses`, made external
                // addresses by the event loop), never every interface's.
                identify: Woken::new(identify::Behaviour::new(
                    identify::Config::new(IDENTIFY_PROTOCOL.to_owned(), key.public())
                        .with_hide_listen_addrs(true),
                )),
                liveness: Woken::new(liveness),
                stream: Woken::new(libp2p_stream::Behaviour::new()),
            }))
        })
        .map_err(io::Error::other)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .with_connection_timeout(DIAL_TIMEOUT)
        .build();
    Ok(swarm)
}

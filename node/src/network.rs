//! The libp2p side: transports, the hush request-response protocols and
//! their length-limited frame codec.
//!
//! | protocol         | request        | response      |
//! |------------------|----------------|---------------|
//! | `/hush/direct/1` | `EnvelopeBatch`| `AckBatch`    |
//! | `/hush/keys/1`   | `KeyRequest`   | `KeyBundle`   |
//! | `/hush/mailbox/1`| `MailboxRequest` | `MailboxResponse` (to relays only) |
//! | `/hush/presence/1` | `PresencePush` | `PresencePush` |
//! | `/hush/group/1`  | `HistoryRequest` | `HistoryResponse` (to relays only) |
//!
//! Gossipsub (`/hush/gossip/1`) carries group messages: anonymous (no
//! author, no sequence number: the Megolm ciphertext says who wrote it),
//! message ids from content hashes, every message validated by the
//! application before it is forwarded, peer scoring on.
//! Beside them: Kademlia on `/hush/kad/1` (client mode; relays are the
//! servers) for presence records, circuit relay v2 client, DCUtR and AutoNAT
//! for NAT traversal, mDNS for the LAN, Identify and Ping.
//! One request per stream; each side writes its frame and closes. Frames
//! are decoded into typed values by the event loop, after the size check here.

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use hush_protocol::{
    DeviceId, GroupMessage, MAX_ACK_BATCH_LEN, MAX_BATCH_LEN, MAX_CONTROL_LEN,
    MAX_GROUP_MESSAGE_LEN, MAX_HISTORY_FRAME, MAX_MAILBOX_FRAME, MAX_PRESENCE_RECORD_LEN,
};
use libp2p::swarm::NetworkBehaviour;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{
    PeerId, StreamProtocol, Swarm, SwarmBuilder, autonat, dcutr, gossipsub, identify, identity,
    kad, mdns, noise, ping, relay, request_response, tcp, yamux,
};

pub const DIRECT_PROTOCOL: StreamProtocol = StreamProtocol::new("/hush/direct/1");
pub const KEYS_PROTOCOL: StreamProtocol = StreamProtocol::new("/hush/keys/1");
pub const MAILBOX_PROTOCOL: StreamProtocol = StreamProtocol::new("/hush/mailbox/1");
pub const PRESENCE_PROTOCOL: StreamProtocol = StreamProtocol::new("/hush/presence/1");
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/hush/kad/1");
pub const HISTORY_PROTOCOL: StreamProtocol = StreamProtocol::new("/hush/group/1");
pub const GOSSIP_PROTOCOL_PREFIX: &str = "/hush/gossip";
pub const IDENTIFY_PROTOCOL: &str = "/hush/id/1";
/// A mailbox request may wait this long: a fetch is held open by the relay
/// for up to [`MAIL_WAIT`] when there is no mail.
pub const MAILBOX_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a relay may hold a fetch open waiting for mail.
pub const MAIL_WAIT: Duration = Duration::from_secs(20);
/// How long a request may wait for its response.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// Concurrent streams per connection and protocol.
pub const MAX_CONCURRENT_STREAMS: usize = 256;
/// Connections idle this long are closed. Longer than the presence
/// heartbeat, so connections to online contacts stay up.
pub const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(120);
/// A presence lookup in the DHT gives up after this long.
pub const KAD_QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads one whole, non-empty frame of at most `max_request` /
/// `max_response` bytes.
#[derive(Debug, Clone, Copy)]
pub struct FrameCodec {
    max_request: usize,
    max_response: usize,
}

impl FrameCodec {
    pub const fn new(max_request: usize, max_response: usize) -> Self {
        Self {
            max_request,
            max_response,
        }
    }
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut buf = Vec::new();
    io.take(max as u64 + 1).read_to_end(&mut buf).await?;
    if buf.len() > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame over the limit of {max} bytes"),
        ));
    }
    if buf.is_empty() {
        // Every hush frame starts with a version byte: an empty one means
        // the peer closed the stream without answering.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the peer closed the stream without a frame",
        ));
    }
    Ok(buf)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, frame: &[u8]) -> io::Result<()> {
    io.write_all(frame).await?;
    io.close().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_request).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.max_response).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &r).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        r: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &r).await
    }
}

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub direct: request_response::Behaviour<FrameCodec>,
    pub keys: request_response::Behaviour<FrameCodec>,
    pub mailbox: request_response::Behaviour<FrameCodec>,
    pub presence: request_response::Behaviour<FrameCodec>,
    pub history: request_response::Behaviour<FrameCodec>,
    pub gossipsub: gossipsub::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub relay_client: relay::client::Behaviour,
    pub dcutr: dcutr::Behaviour,
    pub autonat: autonat::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
}

/// Switches of the swarm a node builds.
#[derive(Debug, Clone, Copy)]
pub struct SwarmOptions {
    /// Find contacts on the LAN with mDNS.
    pub mdns: bool,
}

fn request_response_config() -> request_response::Config {
    request_response::Config::default()
        .with_request_timeout(REQUEST_TIMEOUT)
        .with_max_concurrent_streams(MAX_CONCURRENT_STREAMS)
}

/// Kademlia as a node runs it: a client of the relays' DHT that publishes
/// its own presence records (no republishing of others', no server role).
fn kad_behaviour(peer: PeerId) -> kad::Behaviour<kad::store::MemoryStore> {
    let mut config = kad::Config::new(KAD_PROTOCOL);
    config
        .set_query_timeout(KAD_QUERY_TIMEOUT)
        .set_publication_interval(None)
        .set_replication_interval(None)
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

/// Builds the swarm for a device key: TCP and QUIC, Noise, Yamux, and the
/// relay client transport.
pub fn build_swarm(
    keypair: identity::Keypair,
    options: SwarmOptions,
) -> Result<Swarm<Behaviour>, io::Error> {
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(io::Error::other)?
        .with_quic()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .map_err(io::Error::other)?
        .with_behaviour(|key, relay_client| {
            let peer = key.public().to_peer_id();
            let gossipsub = gossipsub_behaviour()?;
            let mdns = if options.mdns {
                mdns::tokio::Behaviour::new(mdns::Config::default(), peer)
                    .map_err(
                        |e| tracing::warn!(error = %e, "mDNS is unavailable; LAN discovery is off"),
                    )
                    .ok()
            } else {
                None
            };
            Ok(Behaviour {
                direct: request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_BATCH_LEN, MAX_ACK_BATCH_LEN),
                    [(DIRECT_PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response_config(),
                ),
                keys: request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_CONTROL_LEN, MAX_CONTROL_LEN),
                    [(KEYS_PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response_config(),
                ),
                mailbox: request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_MAILBOX_FRAME, MAX_MAILBOX_FRAME),
                    [(
                        MAILBOX_PROTOCOL,
                        request_response::ProtocolSupport::Outbound,
                    )],
                    request_response_config().with_request_timeout(MAILBOX_REQUEST_TIMEOUT),
                ),
                presence: request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_PRESENCE_RECORD_LEN, MAX_PRESENCE_RECORD_LEN + 8),
                    [(PRESENCE_PROTOCOL, request_response::ProtocolSupport::Full)],
                    request_response_config().with_request_timeout(Duration::from_secs(10)),
                ),
                history: request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_HISTORY_FRAME, MAX_HISTORY_FRAME),
                    [(
                        HISTORY_PROTOCOL,
                        request_response::ProtocolSupport::Outbound,
                    )],
                    request_response_config(),
                ),
                gossipsub,
                kad: kad_behaviour(peer),
                relay_client,
                dcutr: dcutr::Behaviour::new(peer),
                autonat: autonat::Behaviour::new(
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
                ),
                mdns: Toggle::from(mdns),
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_PROTOCOL.to_owned(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
            })
        })
        .map_err(io::Error::other)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}

/// The libp2p keypair of a device, from its stored secret.
pub fn device_keypair(secret: [u8; 32]) -> Result<identity::Keypair, io::Error> {
    let mut secret = secret;
    identity::Keypair::ed25519_from_bytes(&mut secret).map_err(io::Error::other)
}

/// The peer id in an address's `/p2p/` part (a relay's full address).
pub fn peer_in(addr: &libp2p::Multiaddr) -> Option<PeerId> {
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

/// The device id of a libp2p Ed25519 keypair.
pub fn device_id(keypair: &identity::Keypair) -> Option<DeviceId> {
    let key = keypair.public().try_into_ed25519().ok()?;
    Some(DeviceId(key.to_bytes()))
}

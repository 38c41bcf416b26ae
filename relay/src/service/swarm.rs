//! The relay's swarm: every protocol it serves and their limits.

use std::time::Duration;

use hush_host::{
    DIAL_TIMEOUT, FrameCodec, HISTORY_PROTOCOL, IDENTIFY_PROTOCOL, MAILBOX_PROTOCOL,
    gossipsub_behaviour, liveness, tcp_transport,
};
use hush_protocol::relay::MAX_DHT_RECORDS;
use hush_protocol::{
    MAX_FETCH_WAIT_MS, MAX_HISTORY_FRAME, MAX_MAILBOX_FRAME, MAX_PRESENCE_RECORD_LEN,
};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::{Swarm, SwarmBuilder, autonat, connection_limits, identify, identity, kad, relay};

use super::{Behaviour, KAD_PROTOCOL, MAX_CONNECTIONS, MAX_CONNECTIONS_PER_PEER, RelayError};

/// Circuit relay limits for nodes behind NAT: enough for chat and for the
/// hole punch that replaces the circuit, not for bulk transfer.
fn relay_config() -> relay::Config {
    let per_minute = |n| std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN);
    relay::Config {
        max_reservations: 4096,
        max_reservations_per_peer: 4,
        reservation_duration: Duration::from_secs(60 * 60),
        reservation_rate_limiters: Vec::new(),
        max_circuits: 1024,
        max_circuits_per_peer: 8,
        max_circuit_duration: Duration::from_secs(10 * 60),
        max_circuit_bytes: 8 << 20,
        circuit_src_rate_limiters: Vec::new(),
    }
    // Per peer, not per IP: many users share one address behind NAT.
    .reservation_rate_per_peer(per_minute(30), Duration::from_secs(60))
    .circuit_src_per_peer(per_minute(60), Duration::from_secs(60))
}

pub(super) fn build(
    keypair: identity::Keypair,
    bootstrap: bool,
    registry: &mut prometheus_client::registry::Registry,
) -> Result<Swarm<Behaviour>, RelayError> {
    let net = |e: &dyn std::fmt::Display| RelayError::Network(e.to_string());
    let activity = liveness::Activity::default();
    let liveness = liveness::Behaviour::default().with_activity(activity.clone());
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_quic()
        .with_other_transport(|key| tcp_transport(key, activity))
        .map_err(|e| net(&e))?
        // Other relays by name (`/dns4/…` in `bootstrap`).
        .with_dns()
        .map_err(|e| net(&e))?
        .with_bandwidth_metrics(registry)
        .with_behaviour(|key| {
            let peer_id = key.public().to_peer_id();
            let gossipsub = gossipsub_behaviour()?;
            let mut kad_config = kad::Config::new(KAD_PROTOCOL);
            if !bootstrap {
                // A lone relay: nothing to bootstrap from until others
                // find it (identify adds them).
                kad_config.set_periodic_bootstrap_interval(None);
            }
            // Every value put here is checked first (see `on_kad`).
            kad_config
                .set_record_filtering(kad::StoreInserts::FilterBoth)
                .set_max_packet_size(16 * 1024);
            let store = kad::store::MemoryStore::with_config(
                peer_id,
                kad::store::MemoryStoreConfig {
                    max_records: MAX_DHT_RECORDS,
                    max_value_bytes: MAX_PRESENCE_RECORD_LEN,
                    max_providers_per_key: 0,
                    max_provided_keys: 0,
                },
            );
            let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
            kad.set_mode(Some(kad::Mode::Server));
            let mut relay = relay::Behaviour::new(peer_id, relay_config());
            relay.set_status(Some(relay::Status::Enable));
            Ok(Behaviour {
                history: request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_HISTORY_FRAME, MAX_HISTORY_FRAME),
                    [(HISTORY_PROTOCOL, ProtocolSupport::Inbound)],
                    request_response::Config::default().with_max_concurrent_streams(64),
                ),
                gossipsub,
                mailbox: request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_MAILBOX_FRAME, MAX_MAILBOX_FRAME),
                    [(MAILBOX_PROTOCOL, ProtocolSupport::Inbound)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_millis(
                            u64::from(MAX_FETCH_WAIT_MS) + 30_000,
                        ))
                        .with_max_concurrent_streams(256),
                ),
                kad,
                relay,
                autonat: autonat::Behaviour::new(
                    peer_id,
                    autonat::Config {
                        only_global_ips: false,
                        ..autonat::Config::default()
                    },
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    IDENTIFY_PROTOCOL.to_owned(),
                    key.public(),
                )),
                liveness,
                limits: connection_limits::Behaviour::new(
                    connection_limits::ConnectionLimits::default()
                        .with_max_established(Some(MAX_CONNECTIONS))
                        .with_max_established_per_peer(Some(MAX_CONNECTIONS_PER_PEER)),
                ),
                stream: libp2p_stream::Behaviour::new(),
            })
        })
        .map_err(|e| net(&e))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .with_connection_timeout(DIAL_TIMEOUT)
        .build();
    Ok(swarm)
}

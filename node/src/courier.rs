//! The courier: what this node asks of other people's relays (deposits for
//! a contact's devices, one-time-key claims) goes over a short-lived libp2p
//! identity of its own, never the node's long-term PeerId, so a relay
//! cannot join a deposit or a claim to the device that made it (other than
//! by IP address; see `docs/threat-model.md`). A courier is a small swarm
//! (TCP, QUIC, DNS; only `/hush/mailbox/1`, outbound); it is replaced by a
//! fresh one with a new random key once it has lived `ROTATE_AFTER` and
//! has nothing in flight, so one identity covers a burst of work, not a
//! life.

use std::collections::HashMap;
use std::io;
use std::time::{Duration, Instant};

use hush_host::tcp_transport;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, identity};

use crate::network::{FrameCodec, MAILBOX_PROTOCOL, MAILBOX_REQUEST_TIMEOUT};
use hush_protocol::MAX_MAILBOX_FRAME;

/// A courier identity serves at most this long (then the next request
/// goes from a fresh one).
pub const ROTATE_AFTER: Duration = Duration::from_secs(10 * 60);
/// Its connections close this long after their last request.
const IDLE_CONNECTION: Duration = Duration::from_secs(30);

type Mailbox = request_response::Behaviour<FrameCodec>;

/// A courier swarm and the requests it carries, each with what the host
/// needs to handle its answer.
pub struct Courier<T> {
    swarm: Swarm<Mailbox>,
    born: Instant,
    requests: HashMap<OutboundRequestId, T>,
}

impl<T> Courier<T> {
    /// A courier with a fresh random identity.
    pub fn new() -> Result<Self, io::Error> {
        let keypair = identity::Keypair::generate_ed25519();
        let swarm = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_quic()
            .with_other_transport(|key| {
                tcp_transport(key, hush_host::liveness::Activity::default())
            })
            .map_err(io::Error::other)?
            .with_dns()?
            .with_behaviour(|_| {
                request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_MAILBOX_FRAME, MAX_MAILBOX_FRAME),
                    [(
                        MAILBOX_PROTOCOL,
                        request_response::ProtocolSupport::Outbound,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(MAILBOX_REQUEST_TIMEOUT),
                )
            })
            .map_err(|e| io::Error::other(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION))
            .build();
        Ok(Self {
            swarm,
            born: Instant::now(),
            requests: HashMap::new(),
        })
    }

    /// The identity relays see now.
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Whether this identity is old and idle: the host replaces it.
    pub fn is_spent(&self, now: Instant) -> bool {
        self.requests.is_empty() && now.duration_since(self.born) >= ROTATE_AFTER
    }

    /// Sends `request` to `relay` at `addr`; `what` comes back with its
    /// answer.
    pub fn send(&mut self, relay: PeerId, addr: Multiaddr, request: Vec<u8>, what: T) {
        let id =
            self.swarm
                .behaviour_mut()
                .send_request_with_addresses(&relay, request, vec![addr]);
        self.requests.insert(id, what);
    }

    /// The next answer (or failure) of a request, with what it was for.
    pub async fn next(&mut self) -> (T, Result<Vec<u8>, String>) {
        use futures::StreamExt;
        use request_response::{Event as E, Message as M};
        loop {
            let event = self.swarm.select_next_some().await;
            let (id, answer) = match event {
                SwarmEvent::Behaviour(E::Message {
                    message:
                        M::Response {
                            request_id,
                            response,
                        },
                    ..
                }) => (request_id, Ok(response)),
                SwarmEvent::Behaviour(E::OutboundFailure {
                    request_id, error, ..
                }) => (
                    request_id,
                    Err(format!("the relay could not be reached: {error}")),
                ),
                _ => continue,
            };
            if let Some(what) = self.requests.remove(&id) {
                return (what, answer);
            }
        }
    }
}

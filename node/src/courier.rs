//! The courier: what this node asks of other people's relays (deposits for
//! a contact's devices, one-time-key claims) and of the DHT about other
//! people (presence lookups) goes over a short-lived libp2p identity of its
//! own, never the node's long-term PeerId, so a relay cannot join a
//! deposit, a claim or a lookup to the device that made it (other than by
//! IP address; see `docs/threat-model.md`). A courier is a small swarm
//! (TCP, QUIC, DNS; `/hush/mailbox/1` outbound and Kademlia in client
//! mode); it is replaced by a fresh one with a new random key once it has
//! lived `ROTATE_AFTER` and has nothing in flight, so one identity covers a
//! burst of work, not a life.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use hush_host::tcp_transport;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, SwarmBuilder, identity, kad};

use crate::network::{FrameCodec, MAILBOX_PROTOCOL, MAILBOX_REQUEST_TIMEOUT, kad_behaviour};
use hush_protocol::MAX_MAILBOX_FRAME;

/// A courier identity serves at most this long (then the next request
/// goes from a fresh one).
pub const ROTATE_AFTER: Duration = Duration::from_secs(10 * 60);
/// Its connections close this long after their last request.
const IDLE_CONNECTION: Duration = Duration::from_secs(30);

#[derive(NetworkBehaviour)]
pub struct CourierBehaviour {
    mailbox: request_response::Behaviour<FrameCodec>,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

/// What the courier brings back.
#[derive(Debug)]
pub enum CourierEvent<T> {
    /// A relay's answer to a request (or why there is none), with what the
    /// request was for.
    Answer(T, Result<Vec<u8>, String>),
    /// A record a lookup found (more may follow until `LookupDone`).
    Found(kad::QueryId, Vec<u8>),
    /// The lookup is over.
    LookupDone(kad::QueryId),
    /// The DHT's peers closest to a key (`closest_peers`), as far as the
    /// query got, and how many requests the lookup made.
    Closest(kad::QueryId, Vec<PeerId>, u32),
}

/// A courier swarm and the requests it carries, each with what the host
/// needs to handle its answer.
pub struct Courier<T> {
    swarm: Swarm<CourierBehaviour>,
    born: Instant,
    requests: HashMap<OutboundRequestId, T>,
    lookups: HashSet<kad::QueryId>,
    ready: VecDeque<CourierEvent<T>>,
}

impl<T> Courier<T> {
    /// A courier with a fresh random identity, which finds the DHT through
    /// `seeds` (relays: ours and our contacts').
    pub fn new(seeds: &[(PeerId, Multiaddr)]) -> Result<Self, io::Error> {
        let keypair = identity::Keypair::generate_ed25519();
        let mut swarm = SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_quic()
            .with_other_transport(|key| {
                tcp_transport(key, hush_host::liveness::Activity::default())
            })
            .map_err(io::Error::other)?
            .with_dns()?
            .with_behaviour(|key| CourierBehaviour {
                mailbox: request_response::Behaviour::with_codec(
                    FrameCodec::new(MAX_MAILBOX_FRAME, MAX_MAILBOX_FRAME),
                    [(
                        MAILBOX_PROTOCOL,
                        request_response::ProtocolSupport::Outbound,
                    )],
                    request_response::Config::default()
                        .with_request_timeout(MAILBOX_REQUEST_TIMEOUT),
                ),
                kad: kad_behaviour(key.public().to_peer_id()),
            })
            .map_err(|e| io::Error::other(e.to_string()))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION))
            .build();
        for (peer, addr) in seeds {
            swarm.behaviour_mut().kad.add_address(peer, addr.clone());
        }
        Ok(Self {
            swarm,
            born: Instant::now(),
            requests: HashMap::new(),
            lookups: HashSet::new(),
            ready: VecDeque::new(),
        })
    }

    /// The identity relays see now.
    pub fn peer_id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Whether this identity is old and idle: the host replaces it.
    pub fn is_spent(&self, now: Instant) -> bool {
        self.requests.is_empty()
            && self.lookups.is_empty()
            && now.duration_since(self.born) >= ROTATE_AFTER
    }

    /// Sends `request` to `relay` at `addr`; `what` comes back with its
    /// answer.
    pub fn send(&mut self, relay: PeerId, addr: Multiaddr, request: Vec<u8>, what: T) {
        let id = self
            .swarm
            .behaviour_mut()
            .mailbox
            .send_request_with_addresses(&relay, request, vec![addr]);
        self.requests.insert(id, what);
    }

    /// Looks a record up in the DHT.
    pub fn get_record(&mut self, key: kad::RecordKey) -> kad::QueryId {
        let id = self.swarm.behaviour_mut().kad.get_record(key);
        self.lookups.insert(id);
        id
    }

    /// Asks the DHT which of its peers (relays) are closest to `key`.
    pub fn closest_peers(&mut self, key: Vec<u8>) -> kad::QueryId {
        self.swarm.behaviour_mut().kad.get_closest_peers(key)
    }

    /// Ends a lookup early (a record it found will do).
    pub fn finish(&mut self, id: &kad::QueryId) {
        if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(id) {
            query.finish();
        }
    }

    /// The next thing the courier brings back.
    pub async fn next(&mut self) -> CourierEvent<T> {
        use futures::StreamExt;
        use request_response::{Event as E, Message as M};
        loop {
            if let Some(event) = self.ready.pop_front() {
                return event;
            }
            let event = self.swarm.select_next_some().await;
            let (id, answer) = match event {
                SwarmEvent::Behaviour(CourierBehaviourEvent::Mailbox(E::Message {
                    message:
                        M::Response {
                            request_id,
                            response,
                        },
                    ..
                })) => (request_id, Ok(response)),
                SwarmEvent::Behaviour(CourierBehaviourEvent::Mailbox(E::OutboundFailure {
                    request_id,
                    error,
                    ..
                })) => (
                    request_id,
                    Err(format!("the relay could not be reached: {error}")),
                ),
                SwarmEvent::Behaviour(CourierBehaviourEvent::Kad(
                    kad::Event::OutboundQueryProgressed {
                        id,
                        result,
                        step,
                        stats,
                    },
                )) => {
                    match result {
                        kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                            self.ready
                                .push_back(CourierEvent::Found(id, found.record.value));
                        }
                        kad::QueryResult::GetClosestPeers(Ok(kad::GetClosestPeersOk {
                            peers,
                            ..
                        }))
                        | kad::QueryResult::GetClosestPeers(Err(
                            kad::GetClosestPeersError::Timeout { peers, .. },
                        )) => {
                            let peers = peers.into_iter().map(|p| p.peer_id).collect();
                            let requests = stats.num_requests();
                            self.ready
                                .push_back(CourierEvent::Closest(id, peers, requests));
                        }
                        _ => {}
                    }
                    if step.last && self.lookups.remove(&id) {
                        self.ready.push_back(CourierEvent::LookupDone(id));
                    }
                    continue;
                }
                _ => continue,
            };
            if let Some(what) = self.requests.remove(&id) {
                return CourierEvent::Answer(what, answer);
            }
        }
    }
}

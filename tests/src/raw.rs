//! A raw libp2p client that speaks one hush protocol with whatever bytes a
//! test gives it: a stranger, an attacker, or a stand-in for a second
//! implementation.

use std::time::Duration;

use futures::StreamExt;
use hush_node::FrameCodec;
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identity};

pub type Client = Swarm<request_response::Behaviour<FrameCodec>>;

/// A client with a fresh identity.
pub fn client(protocol: StreamProtocol) -> Client {
    client_with(identity::Keypair::generate_ed25519(), protocol)
}

/// A client with the given identity.
pub fn client_with(keypair: identity::Keypair, protocol: StreamProtocol) -> Client {
    swarm(
        keypair,
        request_response::Behaviour::with_codec(
            // It writes whatever it likes and accepts any answer.
            FrameCodec::new(8 * 1024 * 1024, 8 * 1024 * 1024),
            [(protocol, ProtocolSupport::Outbound)],
            request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
        ),
    )
}

/// A TCP + Noise + Yamux swarm running `behaviour`.
fn swarm<B: NetworkBehaviour>(keypair: identity::Keypair, behaviour: B) -> Swarm<B> {
    hush_host::tcp_swarm(keypair, behaviour).expect("a tcp swarm")
}

/// Sends one request; `Ok(response)` or `Err(failure text)`.
pub async fn ask(
    swarm: &mut Client,
    peer: PeerId,
    addr: &Multiaddr,
    frame: Vec<u8>,
) -> Result<Vec<u8>, String> {
    ask_all(swarm, peer, addr, vec![frame])
        .await
        .pop()
        .unwrap_or_else(|| Err("no answer".to_owned()))
}

/// Sends every frame at once (each on its own stream); the answers in
/// the frames' order, each `Ok(response)` or `Err(failure text)`.
pub async fn ask_all(
    swarm: &mut Client,
    peer: PeerId,
    addr: &Multiaddr,
    frames: Vec<Vec<u8>>,
) -> Vec<Result<Vec<u8>, String>> {
    swarm.add_peer_address(peer, addr.clone());
    let ids: Vec<_> = frames
        .into_iter()
        .map(|frame| swarm.behaviour_mut().send_request(&peer, frame))
        .collect();
    let mut answers: std::collections::HashMap<_, Result<Vec<u8>, String>> =
        std::collections::HashMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while answers.len() < ids.len() {
        let Ok(event) = tokio::time::timeout_at(deadline, swarm.select_next_some()).await else {
            break;
        };
        match event {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) => {
                answers.insert(request_id, Ok(response));
            }
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) => {
                answers.insert(request_id, Err(error.to_string()));
            }
            _ => {}
        }
    }
    ids.iter()
        .map(|id| {
            answers
                .remove(id)
                .unwrap_or_else(|| Err("no answer within 40 s".to_owned()))
        })
        .collect()
}

/// A gossipsub peer configured as hush nodes are (anonymous messages,
/// content ids), with a fresh identity: a stranger on a group's topic.
pub fn gossip_client() -> Swarm<libp2p::gossipsub::Behaviour> {
    gossip_client_with(identity::Keypair::generate_ed25519())
}

/// [`gossip_client`] with the given identity.
pub fn gossip_client_with(keypair: identity::Keypair) -> Swarm<libp2p::gossipsub::Behaviour> {
    swarm(
        keypair,
        hush_node::gossipsub_behaviour().expect("gossipsub"),
    )
}

/// An account of one device whose libp2p key is `keypair`'s, and its
/// valid contact card (no addresses, no relays): a raw client someone
/// added as a contact, so their node lets it connect.
pub fn known_identity(seed: u8, name: &str) -> (identity::Keypair, String) {
    use hush_protocol::{
        AccountKey, ContactCard, DeviceId, DeviceKeys, DeviceList, MailboxSecret, OlmDevice,
    };
    let account = AccountKey::from_seed([seed; 32]);
    let device_seed = [seed.wrapping_add(1); 32];
    let signing = ed25519_dalek::SigningKey::from_bytes(&device_seed);
    let keypair = identity::Keypair::ed25519_from_bytes(device_seed).expect("an ed25519 key");
    let olm = OlmDevice::new();
    let device = DeviceKeys {
        device_id: DeviceId(signing.verifying_key().to_bytes()),
        olm_ed25519: olm.ed25519_key(),
        olm_curve25519: olm.curve25519_key(),
        mailbox_key: MailboxSecret::derive(&device_seed).public_key(),
    };
    let proof = device.prove(&account.id(), &signing);
    let list = DeviceList::sign_proven(&account, hush_node::now_ms(), vec![device], vec![proof]);
    let card = ContactCard::sign(&account, name.to_owned(), list, Vec::new(), Vec::new());
    (keypair, card.to_string())
}

/// A raw client that can also dial relay circuit addresses
/// (`…/p2p/RELAY/p2p-circuit/p2p/PEER`).
#[derive(NetworkBehaviour)]
pub struct CircuitBehaviour {
    relay: libp2p::relay::client::Behaviour,
    pub direct: request_response::Behaviour<FrameCodec>,
}

/// [`client_with`] over TCP and relay circuits.
pub fn circuit_client(
    keypair: identity::Keypair,
    protocol: StreamProtocol,
) -> Swarm<CircuitBehaviour> {
    libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .expect("tcp")
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .expect("relay client")
        .with_behaviour(|_, relay| CircuitBehaviour {
            relay,
            direct: request_response::Behaviour::with_codec(
                FrameCodec::new(8 * 1024 * 1024, 8 * 1024 * 1024),
                [(protocol, ProtocolSupport::Outbound)],
                request_response::Config::default().with_request_timeout(Duration::from_secs(30)),
            ),
        })
        .expect("behaviour")
        .build()
}

/// [`ask`] for a [`circuit_client`]: dials `addr` (a circuit address
/// ending in `/p2p/PEER`), sends one request; `Ok(response)` or
/// `Err(failure text)`.
pub async fn ask_circuit(
    swarm: &mut Swarm<CircuitBehaviour>,
    peer: PeerId,
    addr: &Multiaddr,
    frame: Vec<u8>,
) -> Result<Vec<u8>, String> {
    swarm.add_peer_address(peer, addr.clone());
    let id = swarm.behaviour_mut().direct.send_request(&peer, frame);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| "no answer within 40 s".to_owned())?;
        match event {
            SwarmEvent::Behaviour(CircuitBehaviourEvent::Direct(
                request_response::Event::Message {
                    message:
                        request_response::Message::Response {
                            request_id,
                            response,
                        },
                    ..
                },
            )) if request_id == id => return Ok(response),
            SwarmEvent::Behaviour(CircuitBehaviourEvent::Direct(
                request_response::Event::OutboundFailure {
                    request_id, error, ..
                },
            )) if request_id == id => return Err(error.to_string()),
            _ => {}
        }
    }
}

/// What a raw DHT server saw: the peer ids that connected to it, and how
/// many record lookups it was asked.
#[derive(Debug, Default)]
pub struct DhtSeen {
    pub peers: Vec<PeerId>,
    pub lookups: usize,
}

/// A Kademlia server on `/hush/kad/1` at a loopback port, run on the
/// current tokio runtime: a stand-in for a relay that logs who asks the
/// DHT what (the real relay cannot: libp2p does not say who sent a
/// lookup). Returns its address (with `/p2p/`) and what it sees.
pub async fn dht_logger() -> (String, std::sync::Arc<std::sync::Mutex<DhtSeen>>) {
    use libp2p::kad;
    let keypair = identity::Keypair::generate_ed25519();
    let peer = keypair.public().to_peer_id();
    let mut config = kad::Config::new(hush_host::KAD_PROTOCOL);
    config.set_query_timeout(Duration::from_secs(10));
    let mut behaviour =
        kad::Behaviour::with_config(peer, kad::store::MemoryStore::new(peer), config);
    behaviour.set_mode(Some(kad::Mode::Server));
    let mut swarm = swarm(keypair, behaviour);
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
        .expect("listen");
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    let seen = std::sync::Arc::new(std::sync::Mutex::new(DhtSeen::default()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let event = swarm.select_next_some().await;
            let Ok(mut seen) = log.lock() else { return };
            match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => seen.peers.push(peer_id),
                SwarmEvent::Behaviour(kad::Event::InboundRequest {
                    request: kad::InboundRequest::GetRecord { .. },
                }) => seen.lookups += 1,
                _ => {}
            }
        }
    });
    (format!("{addr}/p2p/{peer}"), seen)
}

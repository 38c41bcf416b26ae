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
    swarm.add_peer_address(peer, addr.clone());
    let id = swarm.behaviour_mut().send_request(&peer, frame);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    loop {
        let event = tokio::time::timeout_at(deadline, swarm.select_next_some())
            .await
            .map_err(|_| "no answer within 40 s".to_owned())?;
        match event {
            SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            }) if request_id == id => return Ok(response),
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure {
                request_id,
                error,
                ..
            }) if request_id == id => return Err(error.to_string()),
            _ => {}
        }
    }
}

/// A gossipsub peer configured as hush nodes are (anonymous messages,
/// content ids), with a fresh identity: a stranger on a group's topic.
pub fn gossip_client() -> Swarm<libp2p::gossipsub::Behaviour> {
    swarm(
        identity::Keypair::generate_ed25519(),
        hush_node::gossipsub_behaviour().expect("gossipsub"),
    )
}

//! The TCP transport both hosts run, and a bare swarm for tools: benches
//! and test peers that speak one hush protocol over TCP, Noise and Yamux
//! without a node around it.

use std::io;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::Boxed;
use libp2p::core::upgrade::Version;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{PeerId, Swarm, SwarmBuilder, Transport, identity, noise, tcp, yamux};

use crate::liveness::Activity;

/// TCP (nodelay), Noise, Yamux, as libp2p's builder makes it, with every
/// socket watched by `activity` (see `liveness`): give the same
/// `activity` to the liveness behaviour. (The error type is the one
/// `SwarmBuilder::with_other_transport` takes.)
pub fn tcp_transport(
    keypair: &identity::Keypair,
    activity: Activity,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, Box<dyn std::error::Error + Send + Sync>> {
    Ok(
        tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
            .map(move |socket, endpoint| activity.watch(socket, &endpoint))
            .upgrade(Version::V1Lazy)
            .authenticate(noise::Config::new(keypair)?)
            .multiplex(yamux::Config::default())
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
    )
}

/// A TCP (nodelay) + Noise + Yamux swarm for `keypair` running `behaviour`.
pub fn tcp_swarm<B: NetworkBehaviour>(
    keypair: identity::Keypair,
    behaviour: B,
) -> Result<Swarm<B>, io::Error> {
    Ok(SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )
        .map_err(io::Error::other)?
        .with_behaviour(|_| behaviour)
        .map_err(|e| io::Error::other(e.to_string()))?
        .build())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::swarm::{SwarmEvent, dummy};
    use libp2p::{Multiaddr, identity};

    use super::tcp_swarm;

    const LOOPBACK: &str = "/ip4/127.0.0.1/tcp/0";
    /// Only a bound on a hang: every step takes milliseconds.
    const STUCK: Duration = Duration::from_secs(20);

    /// Listens on a new loopback port; the address once it is up.
    async fn listen(swarm: &mut libp2p::Swarm<dummy::Behaviour>) -> Multiaddr {
        swarm
            .listen_on(LOOPBACK.parse().expect("an address"))
            .expect("listens");
        let up = async {
            loop {
                if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                    return address;
                }
            }
        };
        tokio::time::timeout(STUCK, up)
            .await
            .expect("the listener comes up")
    }

    /// Nothing more happens: the swarm's task waits on its wakers.
    async fn settle(swarm: &mut libp2p::Swarm<dummy::Behaviour>) {
        let quiet = Duration::from_millis(200);
        let event = tokio::time::timeout(quiet, swarm.select_next_some()).await;
        assert!(event.is_err(), "an idle swarm has no event: {event:?}");
    }

    /// The vendored libp2p-swarm polls its transport only when the
    /// transport woke it or was handed a listener or a dial
    /// (`vendor/libp2p-swarm/HUSH-PATCH.md`). A swarm left idle must still
    /// bring up a listener added meanwhile and accept a connection to it.
    #[tokio::test]
    async fn an_idle_swarm_still_listens_and_accepts_connections() {
        let mut server = tcp_swarm(identity::Keypair::generate_ed25519(), dummy::Behaviour)
            .expect("a swarm builds");
        let mut client = tcp_swarm(identity::Keypair::generate_ed25519(), dummy::Behaviour)
            .expect("a swarm builds");
        listen(&mut server).await;
        settle(&mut server).await;
        // A listener added to the idle swarm is polled and comes up.
        let second = listen(&mut server).await;
        settle(&mut server).await;
        // A connection to it wakes the server through its transport.
        let client_peer = *client.local_peer_id();
        client.dial(second).expect("dials");
        let accepted = tokio::time::timeout(STUCK, async {
            loop {
                tokio::select! {
                    event = server.select_next_some() => {
                        if let SwarmEvent::ConnectionEstablished { peer_id, .. } = event {
                            return peer_id;
                        }
                    }
                    _ = client.select_next_some() => {}
                }
            }
        })
        .await
        .expect("the idle server accepts the connection");
        assert_eq!(accepted, client_peer);
    }
}

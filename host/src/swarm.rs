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

//! A bare swarm for tools: benches and test peers that speak one hush
//! protocol over TCP, Noise and Yamux without a node around it.

use std::io;

use libp2p::swarm::NetworkBehaviour;
use libp2p::{Swarm, SwarmBuilder, identity, noise, tcp, yamux};

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

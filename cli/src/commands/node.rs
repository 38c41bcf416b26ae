//! `hush node run`: the node daemon in the foreground.

use anyhow::{Context, Result, bail};
use hush_node::{Home, Node, NodeConfig};
use libp2p::Multiaddr;

use crate::args::NodeRunArgs;

/// The node's settings from its flags, checked before anything starts.
pub fn settings(args: NodeRunArgs) -> Result<NodeConfig> {
    if args.presence_ttl < 2 {
        bail!("--presence-ttl must be at least 2 seconds (records are refreshed every half of it)");
    }
    let listen = args
        .listen
        .iter()
        .map(|a| {
            a.parse::<Multiaddr>().with_context(|| {
                format!("invalid listen address {a:?}: expected a multiaddr such as /ip4/127.0.0.1/tcp/4001")
            })
        })
        .collect::<Result<_>>()?;
    let relays = args
        .relay
        .iter()
        .map(|a| {
            a.parse::<Multiaddr>().with_context(|| {
                format!("invalid relay address {a:?}: use the full address `hush relay run` prints, ending in /p2p/<relay id>")
            })
        })
        .collect::<Result<_>>()?;
    Ok(NodeConfig {
        listen,
        relays,
        mail_poll: std::time::Duration::from_millis(args.poll_ms),
        presence_ttl: std::time::Duration::from_secs(args.presence_ttl),
        presence_grace: std::time::Duration::from_secs(args.presence_grace),
        mdns: !args.no_mdns,
        ..NodeConfig::default()
    })
}

/// Runs the node until Ctrl-C or SIGTERM, then stops it gracefully.
pub async fn run(home: &Home, config: NodeConfig) -> Result<()> {
    if !home.db_path().exists() {
        bail!(
            "{} has no hush identity: create one with `hush --home {} init --name NAME`",
            home.dir().display(),
            home.dir().display()
        );
    }
    let node = Node::start(home, config).await?;
    let server = hush_node::serve(node.clone(), home.socket_path()).await?;
    let status = node.status().await?;
    tracing::info!(
        name = %status.name,
        peer = %status.peer_id,
        listen = ?status.listen_addresses,
        api = %server.path().display(),
        "node running; stop it with Ctrl-C"
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("could not watch for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    drop(server);
    node.shutdown().await;
    Ok(())
}

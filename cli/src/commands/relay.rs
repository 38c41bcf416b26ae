//! `hush relay run`: a relay in the foreground.

use anyhow::{Context, Result};

use crate::args::RelayRunArgs;

/// The relay's settings: flags over `HUSH_RELAY_*` variables over the
/// config file over the defaults, checked before anything starts.
pub fn settings(args: RelayRunArgs) -> Result<hush_relay::Config> {
    // Flags over the environment (HUSH_RELAY_*) over the file.
    let mut config = hush_relay::Config::load(args.config.as_deref(), std::env::vars())?;
    if !args.listen.is_empty() {
        config.listen = args.listen;
    }
    if let Some(data) = args.data {
        config.data = data;
    }
    if let Some(secs) = args.retention_secs {
        config.retention_secs = secs;
    }
    if args.metrics.is_some() {
        config.metrics = args.metrics;
    }
    config.bootstrap.extend(args.bootstrap);
    config.validate()?;
    Ok(config)
}

/// `--check-config`: the settings the relay would run with.
pub fn print_checked(config: &hush_relay::Config) {
    println!("configuration OK");
    println!("listen:    {}", config.listen.join(", "));
    println!("data:      {}", config.data.display());
    println!("retention: {} s", config.retention_secs);
    match config.metrics {
        Some(addr) => println!("metrics:   http://{addr}/metrics (and /healthz, /readyz)"),
        None => println!("metrics:   off"),
    }
    if !config.bootstrap.is_empty() {
        println!("bootstrap: {}", config.bootstrap.join(", "));
    }
}

/// Runs the relay until Ctrl-C or SIGTERM.
pub async fn run(config: hush_relay::Config) -> Result<()> {
    // Watched before anything says we are up: a SIGTERM right after
    // READY=1 must stop the relay cleanly, not kill it.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("could not watch for SIGTERM")?;
    let (relay, started) = hush_relay::Relay::start(config).await?;
    println!("hush relay {}", started.peer_id);
    for addr in &started.addresses {
        println!("address: {addr}");
    }
    if let Some(metrics) = started.metrics {
        println!("metrics: http://{metrics}/metrics");
    }
    println!("Give nodes one of these addresses with `hush node run --relay ADDRESS`.");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // Under systemd (`Type=notify`): started once listening; nothing
    // happens without NOTIFY_SOCKET.
    notify_systemd(sd_notify::NotifyState::Ready);
    relay
        .run(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("stopping");
            notify_systemd(sd_notify::NotifyState::Stopping);
        })
        .await;
    Ok(())
}

fn notify_systemd(state: sd_notify::NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "could not tell systemd the relay's state");
    }
}

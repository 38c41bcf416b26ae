//! `hush node run`: the node daemon in the foreground.

use anyhow::{Context, Result, bail};
use hush_node::{
    DEFAULT_AUTO_FETCH_MIB, DEFAULT_KEEP_SENT_DAYS, DEFAULT_MAX_FILE_MIB, Home, Node, NodeConfig,
};
use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

use crate::args::NodeRunArgs;

/// `HOME/config.toml`: the settings a node last started with. Every key is
/// optional; a flag given to `node run` wins over the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodeFile {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_failover_secs: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_ttl: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_grace: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mdns: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub announce: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_fetch_mib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_file_mib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_sent_days: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_cmd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notify_with_text: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desktop_notify: Option<bool>,
}

impl NodeFile {
    /// The file in `home`, or an empty one if there is none.
    pub fn read(home: &Home) -> Result<Self> {
        let path = home.config_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
        };
        toml::from_str(&text).with_context(|| {
            format!(
                "{} is not valid (fix the line named below, or delete the file to start from the defaults)",
                path.display()
            )
        })
    }

    /// Flags over the file.
    fn merged(self, args: NodeRunArgs) -> Self {
        Self {
            listen: (!args.listen.is_empty())
                .then_some(args.listen)
                .or(self.listen),
            relay: (!args.relay.is_empty())
                .then_some(args.relay)
                .or(self.relay),
            bootstrap: (!args.bootstrap.is_empty())
                .then_some(args.bootstrap)
                .or(self.bootstrap),
            relay_failover_secs: args.relay_failover_secs.or(self.relay_failover_secs),
            poll_ms: args.poll_ms.or(self.poll_ms),
            presence_ttl: args.presence_ttl.or(self.presence_ttl),
            presence_grace: args.presence_grace.or(self.presence_grace),
            mdns: if args.mdns {
                Some(true)
            } else if args.no_mdns {
                Some(false)
            } else {
                self.mdns
            },
            announce: (!args.announce.is_empty())
                .then_some(args.announce)
                .or(self.announce),
            hidden: if args.hidden {
                Some(true)
            } else if args.no_hidden {
                Some(false)
            } else {
                self.hidden
            },
            auto_fetch_mib: args.auto_fetch_mib.or(self.auto_fetch_mib),
            max_file_mib: args.max_file_mib.or(self.max_file_mib),
            keep_sent_days: args.keep_sent_days.or(self.keep_sent_days),
            notify_cmd: args.notify_cmd.or(self.notify_cmd),
            notify_with_text: args
                .notify_with_text
                .map(|s| matches!(s, crate::args::OnOff::On))
                .or(self.notify_with_text),
            desktop_notify: args
                .desktop_notify
                .map(|s| matches!(s, crate::args::OnOff::On))
                .or(self.desktop_notify),
        }
    }

    /// Writes the file (mode 0600, replaced whole).
    fn write(&self, home: &Home) -> Result<()> {
        let path = home.config_path();
        let text = format!(
            "# The settings `hush node run` last started with; flags override them.\n{}",
            toml::to_string(self).context("could not write the node's settings")?
        );
        let temp = path.with_extension("toml.new");
        {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temp)
                .with_context(|| format!("could not write {}", temp.display()))?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
        }
        std::fs::rename(&temp, &path)
            .with_context(|| format!("could not write {}", path.display()))?;
        Ok(())
    }
}

/// Parses a list of multiaddrs, naming the first bad one and what to do.
fn multiaddrs(list: &Option<Vec<String>>, what: &str, hint: &str) -> Result<Vec<Multiaddr>> {
    list.iter()
        .flatten()
        .map(|a| {
            a.parse::<Multiaddr>()
                .with_context(|| format!("{what} {a:?}: {hint}"))
        })
        .collect()
}

/// The node's settings: its flags over `HOME/config.toml` over the
/// defaults, checked before anything starts.
pub fn settings(home: &Home, args: NodeRunArgs) -> Result<(NodeConfig, NodeFile)> {
    let file = NodeFile::read(home)?.merged(args);
    let presence_ttl = file.presence_ttl.unwrap_or(300);
    if presence_ttl < 2 {
        bail!("--presence-ttl must be at least 2 seconds (records are refreshed every half of it)");
    }
    let listen = multiaddrs(
        &file.listen,
        "invalid listen address",
        "expected a multiaddr such as /ip4/127.0.0.1/tcp/4001",
    )?;
    let relays = multiaddrs(
        &file.relay,
        "invalid relay address",
        "use the full address `hush relay run` prints, ending in /p2p/<relay id>",
    )?;
    let bootstrap = multiaddrs(
        &file.bootstrap,
        "invalid --bootstrap address",
        "use a relay's full address, as `hush relay run` prints it, ending in /p2p/<relay id>",
    )?;
    let announce = multiaddrs(
        &file.announce,
        "invalid --announce address",
        "expected a multiaddr such as /ip4/203.0.113.5/tcp/4001",
    )?;
    let failover_secs = file
        .relay_failover_secs
        .unwrap_or(hush_node::DEFAULT_RELAY_FAILOVER.as_secs());
    if failover_secs == 0 {
        bail!(
            "--relay-failover-secs must be at least 1: a relay is replaced only after it stopped answering for that long"
        );
    }
    let hidden = file.hidden.unwrap_or(false);
    if hidden && (!listen.is_empty() || file.mdns == Some(true)) {
        bail!(
            "--hidden opens no listener and announces nothing: remove `listen` and `mdns = true` from {} (or run without --hidden)",
            home.config_path().display()
        );
    }
    let config = NodeConfig {
        listen,
        relays,
        bootstrap,
        relay_failover: std::time::Duration::from_secs(failover_secs),
        announce,
        hidden,
        mail_poll: std::time::Duration::from_millis(file.poll_ms.unwrap_or(1000)),
        presence_ttl: std::time::Duration::from_secs(presence_ttl),
        presence_grace: std::time::Duration::from_secs(file.presence_grace.unwrap_or(30)),
        mdns: file.mdns.unwrap_or(false),
        auto_fetch_bytes: mib(
            file.auto_fetch_mib.unwrap_or(DEFAULT_AUTO_FETCH_MIB),
            "--auto-fetch-mib",
        )?,
        max_file_bytes: mib(
            file.max_file_mib.unwrap_or(DEFAULT_MAX_FILE_MIB),
            "--max-file-mib",
        )?,
        notify: Some(hush_node::notify::NotifyConfig {
            command: file.notify_cmd.clone().filter(|c| !c.trim().is_empty()),
            // On by default, unless a notify command (often `notify-send`)
            // already announces messages.
            desktop: file
                .desktop_notify
                .unwrap_or(file.notify_cmd.as_ref().is_none_or(|c| c.trim().is_empty())),
            with_text: file.notify_with_text.unwrap_or(false),
        })
        .filter(hush_node::notify::NotifyConfig::is_on),
        keep_sent: match file.keep_sent_days.unwrap_or(DEFAULT_KEEP_SENT_DAYS) {
            0 => None,
            days if days > 36_500 => {
                bail!("--keep-sent-days {days} is more than a century: use 0 to keep them")
            }
            days => Some(std::time::Duration::from_secs(days * 24 * 3600)),
        },
        ..NodeConfig::default()
    };
    Ok((config, file))
}

/// `n` MiB in bytes, if that is a size hush handles.
fn mib(n: u64, flag: &str) -> Result<u64> {
    let most = hush_protocol::blob::MAX_FILE_LEN >> 20;
    if n > most {
        bail!("{flag} {n} is over the largest file hush carries ({most} MiB)");
    }
    Ok(n << 20)
}

/// Runs the node until Ctrl-C or SIGTERM, then stops it gracefully.
pub async fn run(home: &Home, config: NodeConfig, mut file: NodeFile) -> Result<()> {
    // Watched before the API answers: a SIGTERM as soon as it does must
    // stop the node cleanly, not kill it.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("could not watch for SIGTERM")?;
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
    // Started: these are the last good settings (with the home relays in
    // use, also when they came from earlier runs). Relays found through
    // the DHT stay in the home's database only: written here they would
    // come back as given (pinned) ones.
    if !status.relays.is_empty() && status.relays.iter().all(|r| r.chosen == "pinned") {
        file.relay = Some(status.relays.iter().map(|r| r.address.clone()).collect());
    }
    if let Err(e) = file.write(home) {
        tracing::warn!(error = %e, "could not keep the node's settings in config.toml");
    }
    tracing::info!(
        name = %status.name,
        peer = %status.peer_id,
        listen = ?status.listen_addresses,
        api = %server.path().display(),
        "node running; stop it with Ctrl-C"
    );
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    drop(server);
    node.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(flags: &[&str]) -> NodeRunArgs {
        let mut all = vec!["hush", "node", "run"];
        all.extend_from_slice(flags);
        match crate::args::Cli::parse_from(all).command {
            crate::args::Command::Node(crate::args::NodeCommand::Run(args)) => args,
            _ => unreachable!("node run"),
        }
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        std::fs::write(
            home.config_path(),
            "listen = [\"/ip4/127.0.0.1/tcp/4001\"]\npresence_grace = 7\nmdns = false\n",
        )
        .unwrap();
        let (config, file) = settings(&home, args(&["--presence-grace", "9"])).unwrap();
        assert_eq!(config.presence_grace.as_secs(), 9, "the flag wins");
        assert_eq!(config.listen.len(), 1, "from the file");
        assert!(!config.mdns, "from the file");
        assert_eq!(config.mail_poll.as_millis(), 1000, "the default");
        assert_eq!(file.presence_grace, Some(9));
        // What is written back reads back the same.
        file.write(&home).unwrap();
        assert_eq!(NodeFile::read(&home).unwrap(), file);
    }

    #[test]
    fn mdns_is_off_unless_asked_and_announce_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        let (config, _) = settings(&home, args(&[])).unwrap();
        assert!(!config.mdns, "off by default");
        let (config, file) = settings(
            &home,
            args(&["--mdns", "--announce", "/ip4/192.168.1.9/tcp/4001"]),
        )
        .unwrap();
        assert!(config.mdns);
        assert_eq!(config.announce.len(), 1);
        file.write(&home).unwrap();
        let (config, _) = settings(&home, args(&[])).unwrap();
        assert!(config.mdns, "kept in the file");
        assert_eq!(config.announce.len(), 1, "kept in the file");
        let (config, _) = settings(&home, args(&["--no-mdns"])).unwrap();
        assert!(!config.mdns, "the flag wins");
        let (config, file) = settings(&home, args(&["--no-mdns", "--hidden"])).unwrap();
        assert!(config.hidden);
        file.write(&home).unwrap();
        assert!(settings(&home, args(&[])).unwrap().0.hidden, "kept");
        assert!(!settings(&home, args(&["--no-hidden"])).unwrap().0.hidden);
        std::fs::write(
            home.config_path(),
            "listen = [\"/ip4/127.0.0.1/tcp/4001\"]\n",
        )
        .unwrap();
        assert!(
            settings(&home, args(&["--hidden"])).is_err(),
            "--hidden opens no listener, whatever the file says"
        );
        assert!(settings(&home, args(&["--announce", "192.168.1.9"])).is_err());
    }

    #[test]
    fn a_bad_file_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::new(dir.path());
        std::fs::write(home.config_path(), "poll_ms = 5\nlisten_on = []\n").unwrap();
        let err = format!("{:#}", settings(&home, args(&[])).unwrap_err());
        assert!(err.contains("line 2") && err.contains("listen_on"), "{err}");
    }
}

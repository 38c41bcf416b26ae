//! The relay's configuration: a TOML file, with command-line flags on top.
//!
//! ```toml
//! listen = ["/ip4/0.0.0.0/tcp/7001", "/ip4/0.0.0.0/udp/7001/quic-v1"]
//! data = "/var/lib/hush-relay"
//! retention_secs = 2592000          # 30 days
//! metrics = "127.0.0.1:9464"
//! bootstrap = ["/ip4/203.0.113.7/tcp/7001/p2p/12D3Koo…"]   # IP addresses only
//!
//! [quotas]
//! max_item_bytes = 98427           # the largest sealed envelope
//! mailbox_items = 10000
//! mailbox_bytes = 268435456
//! sender_items = 2000
//! stranger_items = 200
//! stranger_bytes = 1073741824
//! stranger_items_per_ip_minute = 600
//! disk_bytes = 10737418240
//! one_time_keys_per_device = 100
//!
//! [limits]
//! connections_per_ip = 256
//! dht_puts_per_peer_minute = 30
//! dht_puts_per_ip_minute = 600
//! topics_per_ip = 4096
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hush_protocol::MAX_SEALED_LEN;
use serde::Deserialize;
use thiserror::Error;

/// Unfetched mail is kept this long unless configured otherwise.
pub const DEFAULT_RETENTION_SECS: u64 = 30 * 24 * 3600;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("could not read the config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the config file {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("invalid setting {field}: {reason}")]
    Invalid { field: &'static str, reason: String },
}

pub use hush_protocol::relay::Quotas;

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Multiaddrs to listen on.
    pub listen: Vec<String>,
    /// Folder for the database and the relay's identity.
    pub data: PathBuf,
    /// How long unfetched mail is kept, in seconds (advertised to nodes).
    pub retention_secs: u64,
    /// Where Prometheus metrics are served over HTTP (`/metrics`); off if unset.
    pub metrics: Option<SocketAddr>,
    /// Other relays to join the DHT through (multiaddrs with `/p2p/`).
    pub bootstrap: Vec<String>,
    pub quotas: Quotas,
    pub limits: Limits,
}

/// Limits per peer and per address on what is not mail (mail's are in
/// [`Quotas`]).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Open connections from one IP address at most; more are closed.
    pub connections_per_ip: u32,
    /// DHT records one peer id may store here per minute.
    pub dht_puts_per_peer_minute: u32,
    /// DHT records one IP address may store here per minute.
    pub dht_puts_per_ip_minute: u32,
    /// Group topics kept at the asking of one IP address (an IPv6 /64) at
    /// most; a topic nobody uses for the retention period is dropped.
    pub topics_per_ip: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connections_per_ip: 256,
            dht_puts_per_peer_minute: hush_protocol::relay::DHT_PUTS_PER_PEER_MINUTE,
            dht_puts_per_ip_minute: hush_protocol::relay::DHT_PUTS_PER_IP_MINUTE,
            topics_per_ip: hush_protocol::relay::DEFAULT_TOPICS_PER_ADDRESS,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: vec![
                "/ip4/0.0.0.0/tcp/7001".to_owned(),
                "/ip4/0.0.0.0/udp/7001/quic-v1".to_owned(),
            ],
            data: PathBuf::from("hush-relay"),
            retention_secs: DEFAULT_RETENTION_SECS,
            metrics: None,
            bootstrap: Vec::new(),
            quotas: Quotas::default(),
            limits: Limits::default(),
        }
    }
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source,
        })
    }

    /// Checks the settings make sense together.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field, reason: &str| {
            Err(ConfigError::Invalid {
                field,
                reason: reason.to_owned(),
            })
        };
        if self.listen.is_empty() {
            return invalid("listen", "give at least one address to listen on");
        }
        if self.retention_secs == 0 {
            return invalid("retention_secs", "must be at least 1 second");
        }
        let q = &self.quotas;
        if q.max_item_bytes < 256 || q.max_item_bytes > MAX_SEALED_LEN as u64 {
            return Err(ConfigError::Invalid {
                field: "quotas.max_item_bytes",
                reason: format!("must be between 256 and {MAX_SEALED_LEN}"),
            });
        }
        if q.one_time_keys_per_device == 0 {
            return invalid(
                "quotas.one_time_keys_per_device",
                "must be at least 1 (nodes upload 20 at a time)",
            );
        }
        if q.mailbox_items == 0 || q.sender_items == 0 || q.mailbox_bytes < q.max_item_bytes {
            return invalid(
                "quotas",
                "mailbox_items and sender_items must be at least 1, and mailbox_bytes at least max_item_bytes",
            );
        }
        if q.disk_bytes < q.mailbox_bytes {
            return invalid("quotas.disk_bytes", "must be at least mailbox_bytes");
        }
        if q.stranger_bytes < q.max_item_bytes {
            return invalid(
                "quotas.stranger_bytes",
                "must be at least max_item_bytes (0 strangers' mail means no first contact ever reaches your users)",
            );
        }
        let l = &self.limits;
        if l.connections_per_ip == 0 {
            return invalid("limits.connections_per_ip", "must be at least 1");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in this module's documentation and the annotated one in
    /// the operators' guide parse and pass the checks as written.
    #[test]
    fn the_documented_examples_parse_and_validate() {
        let module: String = include_str!("config.rs")
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(1)
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| l.trim_start_matches("//!").split('#').next().unwrap_or(""))
            .map(|l| format!("{}\n", l.trim()))
            .collect();
        let guide = include_str!("../../docs/relay-operators.md");
        let annotated: String = guide
            .split("```toml")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap_or_default()
            .to_owned();
        for text in [module, annotated] {
            let config: Config = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
            assert_eq!(config.quotas, Quotas::default(), "{text}");
            assert_eq!(config.limits, Limits::default(), "{text}");
            config.validate().unwrap();
        }
    }

    #[test]
    fn the_documented_example_parses() {
        let text = r#"
            listen = ["/ip4/127.0.0.1/tcp/7001"]
            data = "/tmp/r1"
            retention_secs = 60
            metrics = "127.0.0.1:9464"
            [quotas]
            mailbox_items = 5
        "#;
        let config: Config = toml::from_str(text).unwrap();
        assert_eq!(config.retention_secs, 60);
        assert_eq!(config.quotas.mailbox_items, 5);
        assert_eq!(config.quotas.sender_items, Quotas::default().sender_items);
        config.validate().unwrap();
    }

    #[test]
    fn unknown_and_bad_settings_are_refused() {
        assert!(toml::from_str::<Config>("listn = []").is_err());
        let config = Config {
            retention_secs: 0,
            ..Config::default()
        };
        assert!(config.validate().is_err());
    }
}

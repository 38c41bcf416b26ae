//! The relay's configuration: a TOML file, with command-line flags on top.
//!
//! ```toml
//! listen = ["/ip4/0.0.0.0/tcp/7001", "/ip4/0.0.0.0/udp/7001/quic-v1"]
//! data = "/var/lib/hush-relay"
//! retention_secs = 2592000          # 30 days
//! metrics = "127.0.0.1:9464"
//! bootstrap = ["/ip4/203.0.113.7/tcp/7001/p2p/12D3Koo…"]   # IP addresses only
//! announce = true                  # publish this relay in the DHT for nodes to pick
//! announce_addresses = ["/ip4/203.0.113.9/tcp/7001"]   # what to publish
//! db_cache_bytes = 67108864        # memory for the databases' page caches
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
//!
//! [history]
//! topic_messages = 10000
//! topic_bytes = 67108864
//! retention_secs = 2592000
//!
//! [push]
//! enabled = true                   # wake offline devices at their push endpoints
//! min_interval_secs = 60           # at most one wake-up per device per minute
//! allow_hosts = []                 # e.g. ["ntfy.sh"]; empty: any public host
//! allow_http = false
//! allow_private = false            # endpoints on loopback or private addresses
//! max_devices = 100000
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hush_protocol::MAX_SEALED_LEN;
use serde::Deserialize;
use thiserror::Error;

/// Unfetched mail is kept this long unless configured otherwise.
pub const DEFAULT_RETENTION_SECS: u64 = 30 * 24 * 3600;
/// Memory for redb's page caches unless configured otherwise (64 MiB).
pub const DEFAULT_DB_CACHE_BYTES: u64 = 64 * 1024 * 1024;
/// The least `db_cache_bytes` taken (4 MiB).
const MIN_DB_CACHE_BYTES: u64 = 4 * 1024 * 1024;

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
    #[error(
        "the environment variable {var} is not a relay setting: use HUSH_RELAY_<KEY> or \
         HUSH_RELAY_QUOTAS_<KEY> / HUSH_RELAY_LIMITS_<KEY> / HUSH_RELAY_HISTORY_<KEY> / HUSH_RELAY_PUSH_<KEY> with a key from docs/relay-operators.md"
    )]
    UnknownVariable { var: String },
    #[error("the settings from the environment ({vars}) are not valid")]
    Environment {
        vars: String,
        #[source]
        source: toml::de::Error,
    },
}

/// Environment variables that override settings start with this.
pub const ENV_PREFIX: &str = "HUSH_RELAY_";
/// Settings that are lists: their variables hold comma-separated items.
const LIST_KEYS: [&str; 4] = ["listen", "bootstrap", "announce_addresses", "allow_hosts"];
/// The sections whose settings variables name as `HUSH_RELAY_<SECTION>_<KEY>`.
const SECTIONS: [&str; 5] = ["quotas", "limits", "history", "files", "push"];

pub use hush_protocol::relay::{PushRules, Quotas};

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
    /// Publish a signed record of this relay in the DHT, so nodes without
    /// home relays may pick it (`false`: a private relay, used only by
    /// nodes given its address).
    pub announce: bool,
    /// The addresses the record lists (without `/p2p/`); empty: the
    /// listen addresses, the public ones if there are any.
    pub announce_addresses: Vec<String>,
    /// Memory for redb's page caches: three quarters for `relay.redb`, a
    /// quarter for `history.redb` (pages read, and pages written but not
    /// yet synced). What does not fit is read from the files again.
    pub db_cache_bytes: u64,
    pub quotas: Quotas,
    pub limits: Limits,
    pub history: HistoryLimits,
    /// Files held for offline recipients (`[files]`).
    pub files: crate::blobs::FileLimits,
    /// Waking offline devices at their push endpoints (`[push]`).
    pub push: PushRules,
}

/// Group history kept for groups' topics (what members who were offline
/// page through).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HistoryLimits {
    /// Messages kept per topic at most; the oldest go first.
    pub topic_messages: u64,
    /// Bytes kept per topic at most; the oldest go first. History counts
    /// in `quotas.disk_bytes` with the mail.
    pub topic_bytes: u64,
    /// Messages older than this are dropped; the top-level
    /// `retention_secs` if unset.
    pub retention_secs: Option<u64>,
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self {
            topic_messages: hush_protocol::relay::MAX_TOPIC_MESSAGES,
            topic_bytes: hush_protocol::relay::MAX_TOPIC_BYTES,
            retention_secs: None,
        }
    }
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
            announce: true,
            announce_addresses: Vec::new(),
            db_cache_bytes: DEFAULT_DB_CACHE_BYTES,
            quotas: Quotas::default(),
            limits: Limits::default(),
            history: HistoryLimits::default(),
            files: crate::blobs::FileLimits::default(),
            push: PushRules::default(),
        }
    }
}

impl Config {
    /// The settings from the file (if any) with the environment's
    /// overrides on top: `HUSH_RELAY_RETENTION_SECS=60`,
    /// `HUSH_RELAY_QUOTAS_MAILBOX_ITEMS=500`,
    /// `HUSH_RELAY_LISTEN=/ip4/0.0.0.0/tcp/7001,/ip4/0.0.0.0/udp/7001/quic-v1`.
    /// Variables with the prefix that name no setting are refused.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                // Checked whole first, so a file error names its line.
                toml::from_str::<Config>(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source,
                })?;
                toml::from_str::<toml::Table>(&text).map_err(|source| ConfigError::Parse {
                    path: path.to_owned(),
                    source,
                })?
            }
            None => toml::Table::new(),
        };
        let mut vars: Vec<String> = Vec::new();
        for (var, value) in env {
            let Some(key) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let key = key.to_ascii_lowercase();
            let (section, key) = match key.split_once('_') {
                Some((section, rest)) if SECTIONS.contains(&section) => {
                    (Some(section), rest.to_owned())
                }
                _ => (None, key),
            };
            let parsed = if LIST_KEYS.contains(&key.as_str()) {
                toml::Value::Array(
                    value
                        .split(',')
                        .map(str::trim)
                        .filter(|v| !v.is_empty())
                        .map(|v| toml::Value::String(v.to_owned()))
                        .collect(),
                )
            } else if let Ok(n) = value.trim().parse::<i64>() {
                toml::Value::Integer(n)
            } else if let Ok(b) = value.trim().parse::<bool>() {
                toml::Value::Boolean(b)
            } else {
                toml::Value::String(value)
            };
            let target = match section {
                Some(section) => match table
                    .entry(section)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                {
                    toml::Value::Table(t) => t,
                    _ => return Err(ConfigError::UnknownVariable { var }),
                },
                None => &mut table,
            };
            target.insert(key, parsed);
            vars.push(var);
        }
        let config = Config::deserialize(toml::Value::Table(table)).map_err(|source| {
            // An unknown key: name the variable that brought it.
            let message = source.to_string();
            let unknown = message
                .split_once("unknown field `")
                .and_then(|(_, rest)| rest.split_once('`'))
                .map(|(field, _)| field.to_owned());
            let var = unknown.and_then(|field| {
                vars.iter().find(|v| {
                    let key = v[ENV_PREFIX.len()..].to_ascii_lowercase();
                    key == field
                        || SECTIONS.iter().any(|s| {
                            key.strip_prefix(s).and_then(|k| k.strip_prefix('_'))
                                == Some(field.as_str())
                        })
                })
            });
            match var {
                Some(var) => ConfigError::UnknownVariable { var: var.clone() },
                None => ConfigError::Environment {
                    vars: vars.join(", "),
                    source,
                },
            }
        })?;
        Ok(config)
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
        if self.announce_addresses.len() > hush_protocol::relay::MAX_RELAY_ADDRS
            || self.announce_addresses.iter().any(|a| {
                a.parse::<libp2p::Multiaddr>().map_or(true, |m| {
                    m.iter()
                        .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
                })
            })
        {
            return Err(ConfigError::Invalid {
                field: "announce_addresses",
                reason: format!(
                    "give at most {} multiaddrs, without /p2p/ (the relay adds its id)",
                    hush_protocol::relay::MAX_RELAY_ADDRS
                ),
            });
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
        if self.files.total_bytes.is_some_and(|t| t > q.disk_bytes) {
            return invalid(
                "files.total_bytes",
                "must be at most quotas.disk_bytes (files count in the disk budget with mail and group history; raise disk_bytes or lower total_bytes)",
            );
        }
        if self.db_cache_bytes < MIN_DB_CACHE_BYTES {
            return invalid(
                "db_cache_bytes",
                "must be at least 4194304 (4 MiB); a smaller cache reads the same pages from disk again and again",
            );
        }
        let l = &self.limits;
        if l.connections_per_ip == 0 {
            return invalid("limits.connections_per_ip", "must be at least 1");
        }
        let h = &self.history;
        if h.topic_messages == 0 {
            return invalid("history.topic_messages", "must be at least 1");
        }
        let largest = hush_protocol::MAX_GROUP_MESSAGE_LEN as u64;
        if h.topic_bytes < largest {
            return Err(ConfigError::Invalid {
                field: "history.topic_bytes",
                reason: format!("must be at least {largest} (the largest group message)"),
            });
        }
        if h.retention_secs == Some(0) {
            return invalid("history.retention_secs", "must be at least 1 second");
        }
        let p = &self.push;
        if p.min_interval_secs == 0 {
            return invalid(
                "push.min_interval_secs",
                "must be at least 1 second (a device is woken at most once per interval)",
            );
        }
        if let Some(host) = p.allow_hosts.iter().find(|h| {
            hush_protocol::PushUrl::parse(&format!("https://{}/", h.trim_start_matches('.')))
                .is_err()
        }) {
            return Err(ConfigError::Invalid {
                field: "push.allow_hosts",
                reason: format!("{host:?} is not a host name (give names like \"ntfy.sh\")"),
            });
        }
        Ok(())
    }

    /// The group history rules these settings make.
    pub fn history_rules(&self) -> crate::history::HistoryRules {
        crate::history::HistoryRules {
            topic_messages: self.history.topic_messages,
            topic_bytes: self.history.topic_bytes,
            retention_secs: self.history.retention_secs.unwrap_or(self.retention_secs),
            cache_bytes: self.history_cache_bytes(),
        }
    }

    /// The share of `db_cache_bytes` for `relay.redb`.
    pub fn store_cache_bytes(&self) -> usize {
        usize::try_from(self.db_cache_bytes - self.db_cache_bytes / 4).unwrap_or(usize::MAX)
    }

    /// The share of `db_cache_bytes` for `history.redb`.
    fn history_cache_bytes(&self) -> usize {
        usize::try_from(self.db_cache_bytes / 4).unwrap_or(usize::MAX)
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

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn environment_variables_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("relay.toml");
        std::fs::write(&file, "retention_secs = 60\n[quotas]\nmailbox_items = 5\n").unwrap();
        let config = Config::load(
            Some(&file),
            vars(&[
                ("HUSH_RELAY_QUOTAS_MAILBOX_ITEMS", "7"),
                ("HUSH_RELAY_LIMITS_CONNECTIONS_PER_IP", "9"),
                ("HUSH_RELAY_HISTORY_TOPIC_MESSAGES", "300"),
                (
                    "HUSH_RELAY_LISTEN",
                    "/ip4/127.0.0.1/tcp/1, /ip4/127.0.0.1/tcp/2",
                ),
                ("HUSH_RELAY_METRICS", "127.0.0.1:9464"),
                ("HUSH_RELAY_DATA", "/var/lib/hush-relay"),
                ("HUSH_RELAY_DB_CACHE_BYTES", "33554432"),
                ("HUSH_LOG", "info"),
            ]),
        )
        .unwrap();
        assert_eq!(config.retention_secs, 60, "from the file");
        assert_eq!(config.quotas.mailbox_items, 7);
        assert_eq!(config.limits.connections_per_ip, 9);
        assert_eq!(config.history.topic_messages, 300);
        let config_push = Config::load(
            None,
            vars(&[
                ("HUSH_RELAY_PUSH_ALLOW_HOSTS", "ntfy.sh, push.example.org"),
                ("HUSH_RELAY_PUSH_MIN_INTERVAL_SECS", "30"),
                ("HUSH_RELAY_PUSH_ENABLED", "false"),
            ]),
        )
        .unwrap()
        .push;
        assert_eq!(config_push.allow_hosts, ["ntfy.sh", "push.example.org"]);
        assert_eq!(config_push.min_interval_secs, 30);
        assert!(!config_push.enabled);
        let rules = config.history_rules();
        assert_eq!(
            (rules.topic_messages, rules.retention_secs),
            (300, 60),
            "history retention follows retention_secs unless set"
        );
        assert_eq!(
            config.listen,
            ["/ip4/127.0.0.1/tcp/1", "/ip4/127.0.0.1/tcp/2"]
        );
        assert_eq!(config.metrics, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(config.data, PathBuf::from("/var/lib/hush-relay"));
        assert_eq!(
            (config.store_cache_bytes(), rules.cache_bytes),
            (24 << 20, 8 << 20),
            "the cache is shared three to one"
        );
        // Without a file, on top of the defaults.
        let config = Config::load(None, vars(&[("HUSH_RELAY_RETENTION_SECS", "5")])).unwrap();
        assert_eq!(config.retention_secs, 5);
        assert_eq!(config.quotas, Quotas::default());
    }

    #[test]
    fn an_environment_variable_that_names_no_setting_is_refused_by_name() {
        for var in ["HUSH_RELAY_RETENTION", "HUSH_RELAY_QUOTAS_MAILBOX_ITEMZ"] {
            let err = Config::load(
                None,
                vars(&[("HUSH_RELAY_LISTEN", "/ip4/127.0.0.1/tcp/1"), (var, "3")]),
            )
            .unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
        let err = Config::load(None, vars(&[("HUSH_RELAY_PUSH_ENABLD", "true")])).unwrap_err();
        assert!(err.to_string().contains("HUSH_RELAY_PUSH_ENABLD"), "{err}");
        let err = Config::load(None, vars(&[("HUSH_RELAY_RETENTION_SECS", "soon")])).unwrap_err();
        assert!(matches!(err, ConfigError::Environment { .. }), "{err}");
    }

    #[test]
    fn unknown_and_bad_settings_are_refused() {
        assert!(toml::from_str::<Config>("listn = []").is_err());
        let config = Config {
            retention_secs: 0,
            ..Config::default()
        };
        assert!(config.validate().is_err());
        let config = Config {
            db_cache_bytes: 1 << 20,
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("db_cache_bytes"), "{err}");
    }
}

//! Group history rules: which topics a relay keeps, what it accepts on
//! them, and how a history request is answered. The messages themselves
//! live in the host's history store.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::{GroupMessage, HistoryRequest, HistoryResponse, MAX_HISTORY_ITEMS, TopicKey, Wire};

/// Topics kept at most.
pub const MAX_TOPICS: usize = 100_000;
/// Messages kept per topic at most (the oldest go first).
pub const MAX_TOPIC_MESSAGES: u64 = 10_000;
/// Bytes of messages kept per topic at most (the oldest go first).
pub const MAX_TOPIC_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes one history page carries, about.
pub const HISTORY_PAGE_BYTES: usize = 1024 * 1024;
/// Topics kept at the asking of one address (an IPv4 address, an IPv6 /64)
/// unless configured otherwise.
pub const DEFAULT_TOPICS_PER_ADDRESS: u32 = 4096;

/// What to do with a message published on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// Not a group message, or not signed by the topic's publish key:
    /// reject it (it costs the sender peer score).
    Reject,
    /// Well-formed: accept it (gossip forwards it), and store it in the
    /// topic's history if `keep`, until `expires_at_ms` if it has an end
    /// (a disappearing message).
    Accept {
        keep: bool,
        expires_at_ms: Option<u64>,
    },
}

/// What a history request asks of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryAction {
    /// Answer at once.
    Answer(HistoryResponse),
    /// Start keeping this topic (subscribe, register it in the store), then
    /// answer [`HistoryResponse::Keeping`].
    Keep(String),
    /// Land what was published on the topic, then answer with up to
    /// `limit` messages after `after` (at most [`HISTORY_PAGE_BYTES`]).
    Page {
        topic: String,
        after: u64,
        limit: usize,
    },
}

/// The topics this relay keeps the history of, with the publish key each
/// names, who asked first and when each was last used.
#[derive(Debug)]
pub struct TopicBook {
    kept: HashMap<String, Kept>,
    /// Topics kept at the asking of each address.
    by_origin: HashMap<Origin, u32>,
    per_origin: u32,
}

#[derive(Debug)]
struct Kept {
    key: TopicKey,
    origin: Option<Origin>,
    /// Last asked for or published on (Unix ms); `None` until the first
    /// [`TopicBook::expire`] after a restart, which starts the count.
    used_ms: Option<u64>,
}

/// Where a `Keep` came from: an IPv4 address, or an IPv6 address's /64
/// (one subscriber's usual share).
type Origin = [u8; 16];

fn origin_of(ip: IpAddr) -> Origin {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => {
            let mut o = v6.octets();
            o[8..].fill(0);
            o
        }
    }
}

impl Default for TopicBook {
    fn default() -> Self {
        Self::new(std::iter::empty(), DEFAULT_TOPICS_PER_ADDRESS)
    }
}

impl TopicBook {
    /// The topics kept so far (names that are not group topics, from an
    /// older version, are left out: nothing can be published on them), and
    /// how many new ones one address may have kept.
    pub fn new(kept: impl IntoIterator<Item = String>, per_origin: u32) -> Self {
        Self {
            kept: kept
                .into_iter()
                .filter_map(|t| {
                    let key = TopicKey::parse(&t)?;
                    let kept = Kept {
                        key,
                        origin: None,
                        used_ms: None,
                    };
                    Some((t, kept))
                })
                .collect(),
            by_origin: HashMap::new(),
            per_origin,
        }
    }

    pub fn is_kept(&self, topic: &str) -> bool {
        self.kept.contains_key(topic)
    }

    /// Drops the topics nobody asked for or published on for `idle_ms`
    /// (the relay's retention: what they held has expired by then); their
    /// names, for the host to forget.
    pub fn expire(&mut self, now_ms: u64, idle_ms: u64) -> Vec<String> {
        let mut gone = Vec::new();
        for (topic, k) in &mut self.kept {
            match k.used_ms {
                None => k.used_ms = Some(now_ms),
                Some(used) if now_ms.saturating_sub(used) >= idle_ms => gone.push(topic.clone()),
                Some(_) => {}
            }
        }
        for topic in &gone {
            if let Some(origin) = self.kept.remove(topic).and_then(|k| k.origin)
                && let Some(n) = self.by_origin.get_mut(&origin)
            {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.by_origin.remove(&origin);
                }
            }
        }
        gone
    }

    fn touch(&mut self, topic: &str, now_ms: u64) -> bool {
        match self.kept.get_mut(topic) {
            Some(k) => {
                k.used_ms = Some(k.used_ms.map_or(now_ms, |u| u.max(now_ms)));
                true
            }
            None => false,
        }
    }

    /// A history request. Anyone may ask: what is kept is Megolm
    /// ciphertext that only the holders of the topic's publish key could
    /// put there.
    /// `origin`: the asking connection's address, if the host knows it
    /// (each address has new topics kept up to its share).
    pub fn handle_request(
        &mut self,
        now_ms: u64,
        origin: Option<IpAddr>,
        bytes: &[u8],
    ) -> HistoryAction {
        match HistoryRequest::from_bytes(bytes) {
            Err(e) => HistoryAction::Answer(HistoryResponse::Refused {
                reason: format!("malformed request: {e}"),
            }),
            Ok(HistoryRequest::Keep { topic }) => {
                if self.touch(&topic, now_ms) {
                    return HistoryAction::Answer(HistoryResponse::Keeping);
                }
                let Some(key) = TopicKey::parse(&topic) else {
                    return HistoryAction::Answer(HistoryResponse::Refused {
                        reason: format!(
                            "not a group topic: expected {}<publish key in hex>",
                            crate::TOPIC_PREFIX
                        ),
                    });
                };
                let origin = origin.map(origin_of);
                let theirs = origin.map_or(0, |o| self.by_origin.get(&o).copied().unwrap_or(0));
                if self.kept.len() >= MAX_TOPICS {
                    HistoryAction::Answer(HistoryResponse::Refused {
                        reason: "this relay keeps the history of as many groups as it can".into(),
                    })
                } else if theirs >= self.per_origin {
                    HistoryAction::Answer(HistoryResponse::Refused {
                        reason: "this relay keeps the history of as many groups for your address as it allows".into(),
                    })
                } else {
                    if let Some(o) = origin {
                        *self.by_origin.entry(o).or_default() += 1;
                    }
                    let kept = Kept {
                        key,
                        origin,
                        used_ms: Some(now_ms),
                    };
                    self.kept.insert(topic.clone(), kept);
                    HistoryAction::Keep(topic)
                }
            }
            Ok(HistoryRequest::Fetch {
                topic,
                after,
                limit,
            }) => {
                if self.touch(&topic, now_ms) {
                    HistoryAction::Page {
                        topic,
                        after,
                        limit: usize::from(limit).clamp(1, MAX_HISTORY_ITEMS),
                    }
                } else {
                    HistoryAction::Answer(HistoryResponse::Page {
                        items: Vec::new(),
                        more: false,
                    })
                }
            }
        }
    }

    /// A message published on `topic`: accepted only if the topic's
    /// publish key signed it (and then the topic is in use).
    pub fn handle_publication(&mut self, now_ms: u64, topic: &str, bytes: &[u8]) -> Publication {
        let key = match self.kept.get(topic) {
            Some(k) => Some(k.key),
            None => TopicKey::parse(topic),
        };
        let signed = key.and_then(|key| {
            GroupMessage::from_bytes(bytes)
                .ok()
                .filter(|message| key.verify(message))
        });
        match signed {
            Some(message) => Publication::Accept {
                keep: self.touch(topic, now_ms),
                expires_at_ms: message.expires_at_ms,
            },
            None => Publication::Reject,
        }
    }
}

//! Group history rules: which topics a relay keeps, what it accepts on
//! them, and how a history request is answered. The messages themselves
//! live in the host's history store.

use std::collections::HashMap;

use crate::{GroupMessage, HistoryRequest, HistoryResponse, MAX_HISTORY_ITEMS, TopicKey, Wire};

/// Topics kept at most.
pub const MAX_TOPICS: usize = 100_000;
/// Messages kept per topic at most (the oldest go first).
pub const MAX_TOPIC_MESSAGES: u64 = 10_000;
/// Bytes of messages kept per topic at most (the oldest go first).
pub const MAX_TOPIC_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes one history page carries, about.
pub const HISTORY_PAGE_BYTES: usize = 1024 * 1024;

/// What to do with a message published on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// Not a group message, or not signed by the topic's publish key:
    /// reject it (it costs the sender peer score).
    Reject,
    /// Well-formed: accept it (gossip forwards it), and store it in the
    /// topic's history if `keep`.
    Accept { keep: bool },
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
/// names.
#[derive(Debug, Default)]
pub struct TopicBook {
    kept: HashMap<String, TopicKey>,
}

impl TopicBook {
    /// The topics kept so far (names that are not group topics, from an
    /// older version, are left out: nothing can be published on them).
    pub fn new(kept: impl IntoIterator<Item = String>) -> Self {
        Self {
            kept: kept
                .into_iter()
                .filter_map(|t| TopicKey::parse(&t).map(|k| (t, k)))
                .collect(),
        }
    }

    pub fn is_kept(&self, topic: &str) -> bool {
        self.kept.contains_key(topic)
    }

    /// A history request. Anyone may ask: what is kept is Megolm
    /// ciphertext that only the holders of the topic's publish key could
    /// put there.
    pub fn handle_request(&mut self, bytes: &[u8]) -> HistoryAction {
        match HistoryRequest::from_bytes(bytes) {
            Err(e) => HistoryAction::Answer(HistoryResponse::Refused {
                reason: format!("malformed request: {e}"),
            }),
            Ok(HistoryRequest::Keep { topic }) => {
                if self.kept.contains_key(&topic) {
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
                if self.kept.len() >= MAX_TOPICS {
                    HistoryAction::Answer(HistoryResponse::Refused {
                        reason: "this relay keeps the history of as many groups as it can".into(),
                    })
                } else {
                    self.kept.insert(topic.clone(), key);
                    HistoryAction::Keep(topic)
                }
            }
            Ok(HistoryRequest::Fetch {
                topic,
                after,
                limit,
            }) => {
                if self.kept.contains_key(&topic) {
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
    /// publish key signed it.
    pub fn handle_publication(&self, topic: &str, bytes: &[u8]) -> Publication {
        let key = match self.kept.get(topic) {
            Some(key) => Some(*key),
            None => TopicKey::parse(topic),
        };
        let signed = key.is_some_and(|key| {
            GroupMessage::from_bytes(bytes).is_ok_and(|message| key.verify(&message))
        });
        if signed {
            Publication::Accept {
                keep: self.kept.contains_key(topic),
            }
        } else {
            Publication::Reject
        }
    }
}

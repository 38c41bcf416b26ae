//! Group history's store: what the relay keeps of the topics the engine's
//! [`TopicBook`](hush_protocol::relay::TopicBook) decided to keep (Megolm
//! ciphertext: the relay cannot read it), paged out to members catching up
//! from their cursor.
//!
//! Its own redb file (`history.redb`), written once per tick in one
//! transaction. Bounded: [`MAX_TOPIC_MESSAGES`] per topic (the oldest go
//! first), and the relay's retention period.

use std::collections::HashMap;
use std::path::Path;

use hush_protocol::HistoryResponse;
use hush_protocol::relay::{HISTORY_PAGE_BYTES, MAX_TOPIC_MESSAGES};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::store::StoreError;

/// topic name → (next sequence number, oldest kept).
const TOPICS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("topics");
/// (topic name, sequence number) → (stored at ms, group message bytes).
const MESSAGES: TableDefinition<(&str, u64), (u64, &[u8])> = TableDefinition::new("messages");

#[derive(Debug, Default, Clone, Copy)]
struct Topic {
    next: u64,
    oldest: u64,
}

pub struct History {
    db: Database,
    topics: HashMap<String, Topic>,
    /// Written on the next flush.
    pending: Vec<(String, u64, u64, Vec<u8>)>,
    retention_ms: u64,
}

impl History {
    pub fn open(path: &Path, retention_secs: u64) -> Result<Self, StoreError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(TOPICS)?;
        txn.open_table(MESSAGES)?;
        txn.commit()?;
        let mut topics = HashMap::new();
        {
            let txn = db.begin_read()?;
            let table = txn.open_table(TOPICS)?;
            for row in table.iter()? {
                let (k, v) = row?;
                let (next, oldest) = v.value();
                topics.insert(k.value().to_owned(), Topic { next, oldest });
            }
        }
        Ok(Self {
            db,
            topics,
            pending: Vec::new(),
            retention_ms: retention_secs.saturating_mul(1000),
        })
    }

    pub fn topics(&self) -> impl Iterator<Item = &String> {
        self.topics.keys()
    }

    /// Starts keeping a topic (the engine decided it may).
    pub fn keep(&mut self, topic: &str) {
        self.topics
            .entry(topic.to_owned())
            .or_insert(Topic { next: 1, oldest: 1 });
    }

    /// Queues a message published on a kept topic.
    pub fn add(&mut self, topic: &str, bytes: Vec<u8>, now_ms: u64) {
        let Some(t) = self.topics.get_mut(topic) else {
            return;
        };
        let seq = t.next;
        t.next += 1;
        self.pending.push((topic.to_owned(), seq, now_ms, bytes));
    }

    /// Writes what was added since the last flush, and drops what is over
    /// the per-topic cap or older than the retention period.
    pub fn flush(&mut self, now_ms: u64) -> Result<usize, StoreError> {
        if self.pending.is_empty() {
            return Ok(0);
        }
        let pending = std::mem::take(&mut self.pending);
        let written = pending.len();
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        let txn = self.db.begin_write()?;
        {
            let mut topics = txn.open_table(TOPICS)?;
            let mut messages = txn.open_table(MESSAGES)?;
            let mut touched: Vec<String> = Vec::new();
            for (topic, seq, at, bytes) in &pending {
                messages.insert((topic.as_str(), *seq), (*at, bytes.as_slice()))?;
                if !touched.contains(topic) {
                    touched.push(topic.clone());
                }
            }
            for topic in touched {
                let Some(t) = self.topics.get_mut(&topic) else {
                    continue;
                };
                while t.oldest < t.next {
                    let over = t.next - t.oldest > MAX_TOPIC_MESSAGES;
                    let key = (topic.as_str(), t.oldest);
                    let expired = messages.get(key)?.is_some_and(|v| v.value().0 < cutoff);
                    if !over && !expired {
                        break;
                    }
                    messages.remove(key)?;
                    t.oldest += 1;
                }
                topics.insert(topic.as_str(), (t.next, t.oldest))?;
            }
        }
        txn.commit()?;
        Ok(written)
    }

    /// Up to `limit` messages after `after`, oldest first.
    pub fn page(
        &self,
        topic: &str,
        after: u64,
        limit: usize,
    ) -> Result<HistoryResponse, StoreError> {
        if !self.topics.contains_key(topic) {
            return Ok(HistoryResponse::Page {
                items: Vec::new(),
                more: false,
            });
        }
        let txn = self.db.begin_read()?;
        let table = txn.open_table(MESSAGES)?;
        let mut items = Vec::new();
        let mut bytes = 0;
        let mut more = false;
        for row in table.range((topic, after.saturating_add(1))..=(topic, u64::MAX))? {
            let (k, v) = row?;
            if items.len() >= limit || bytes >= HISTORY_PAGE_BYTES {
                more = true;
                break;
            }
            let data = v.value().1.to_vec();
            bytes += data.len();
            items.push((k.value().1, data));
        }
        Ok(HistoryResponse::Page { items, more })
    }
}

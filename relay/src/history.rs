//! Group history's store: what the relay keeps of the topics the engine's
//! [`TopicBook`](hush_protocol::relay::TopicBook) decided to keep (Megolm
//! ciphertext: the relay cannot read it), paged out to members catching up
//! from their cursor.
//!
//! Its own redb file (`history.redb`), written once per tick in one
//! transaction. Bounded: [`MAX_TOPIC_MESSAGES`] and [`MAX_TOPIC_BYTES`] per
//! topic (the oldest go first), the relay's retention period, and the
//! relay's disk budget, which history shares with mail (the host admits a
//! message only if the budget has room for it).

use std::collections::HashMap;
use std::path::Path;

use hush_protocol::HistoryResponse;
use hush_protocol::relay::{HISTORY_PAGE_BYTES, MAX_TOPIC_BYTES, MAX_TOPIC_MESSAGES};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use crate::store::StoreError;

/// topic name → (next sequence number, oldest kept).
const TOPICS: TableDefinition<&str, (u64, u64)> = TableDefinition::new("topics");
/// (topic name, sequence number) → (stored at ms, group message bytes).
const MESSAGES: TableDefinition<(&str, u64), (u64, &[u8])> = TableDefinition::new("messages");
/// (end in Unix ms, topic name, sequence number) → (): messages their
/// sender gave an end (disappearing messages), in the order they go.
const ENDS: TableDefinition<(u64, &str, u64), ()> = TableDefinition::new("ends");

/// A message waiting for the next flush.
#[derive(Debug)]
struct Queued {
    topic: String,
    seq: u64,
    stored_at_ms: u64,
    bytes: Vec<u8>,
    /// When it goes (a disappearing message), if before the retention.
    end: Option<u64>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Topic {
    next: u64,
    oldest: u64,
    /// Bytes of message kept (counted at open, then as they come and go).
    bytes: u64,
}

/// How much group history a relay keeps, per topic and in time
/// (`[history]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRules {
    /// Messages kept per topic at most; the oldest go first.
    pub topic_messages: u64,
    /// Bytes kept per topic at most; the oldest go first.
    pub topic_bytes: u64,
    /// Messages older than this are dropped.
    pub retention_secs: u64,
    /// Memory for redb's page cache of `history.redb`.
    pub cache_bytes: usize,
}

impl Default for HistoryRules {
    fn default() -> Self {
        Self {
            topic_messages: MAX_TOPIC_MESSAGES,
            topic_bytes: MAX_TOPIC_BYTES,
            retention_secs: crate::config::DEFAULT_RETENTION_SECS,
            cache_bytes: crate::config::DEFAULT_DB_CACHE_BYTES as usize / 4,
        }
    }
}

pub struct History {
    db: Database,
    topics: HashMap<String, Topic>,
    /// Written on the next flush.
    pending: Vec<Queued>,
    /// The earliest end of a message kept (`None`: none has one).
    next_end: Option<u64>,
    /// Bytes of messages kept and queued.
    total: u64,
    retention_ms: u64,
    topic_messages: u64,
    topic_bytes: u64,
}

impl History {
    pub fn open(path: &Path, rules: HistoryRules) -> Result<Self, StoreError> {
        let db = redb::Builder::new()
            .set_cache_size(rules.cache_bytes)
            .create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(TOPICS)?;
        txn.open_table(MESSAGES)?;
        txn.open_table(ENDS)?;
        txn.commit()?;
        let next_end = {
            let txn = db.begin_read()?;
            let ends = txn.open_table(ENDS)?;
            ends.first()?.map(|(k, _)| k.value().0)
        };
        let mut topics: HashMap<String, Topic> = HashMap::new();
        {
            let txn = db.begin_read()?;
            let table = txn.open_table(TOPICS)?;
            for row in table.iter()? {
                let (k, v) = row?;
                let (next, oldest) = v.value();
                topics.insert(
                    k.value().to_owned(),
                    Topic {
                        next,
                        oldest,
                        bytes: 0,
                    },
                );
            }
            let messages = txn.open_table(MESSAGES)?;
            for row in messages.iter()? {
                let (k, v) = row?;
                if let Some(t) = topics.get_mut(k.value().0) {
                    t.bytes += v.value().1.len() as u64;
                }
            }
        }
        let total = topics.values().map(|t| t.bytes).sum();
        Ok(Self {
            db,
            topics,
            pending: Vec::new(),
            next_end,
            total,
            retention_ms: rules.retention_secs.saturating_mul(1000),
            topic_messages: rules.topic_messages,
            topic_bytes: rules.topic_bytes,
        })
    }

    /// Bytes of history kept, and queued to be.
    pub fn bytes(&self) -> u64 {
        self.total
    }

    pub fn topics(&self) -> impl Iterator<Item = &String> {
        self.topics.keys()
    }

    /// Starts keeping a topic (the engine decided it may).
    pub fn keep(&mut self, topic: &str) {
        self.topics.entry(topic.to_owned()).or_insert(Topic {
            next: 1,
            oldest: 1,
            bytes: 0,
        });
    }

    /// Queues a message published on a kept topic; one with an end goes
    /// from the history then.
    pub fn add(&mut self, topic: &str, bytes: Vec<u8>, now_ms: u64, ends_at_ms: Option<u64>) {
        let Some(t) = self.topics.get_mut(topic) else {
            return;
        };
        let seq = t.next;
        t.next += 1;
        self.total += bytes.len() as u64;
        self.pending.push(Queued {
            topic: topic.to_owned(),
            seq,
            stored_at_ms: now_ms,
            bytes,
            end: ends_at_ms,
        });
    }

    /// Writes what was added since the last flush, and drops what is over
    /// the per-topic cap or older than the retention period.
    pub fn flush(&mut self, now_ms: u64) -> Result<usize, StoreError> {
        let ends_due = self.next_end.is_some_and(|at| at <= now_ms);
        if self.pending.is_empty() && !ends_due {
            return Ok(0);
        }
        let pending = std::mem::take(&mut self.pending);
        let written = pending.len();
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        let txn = self.db.begin_write()?;
        {
            let mut topics = txn.open_table(TOPICS)?;
            let mut messages = txn.open_table(MESSAGES)?;
            let mut ends = txn.open_table(ENDS)?;
            let mut touched: Vec<String> = Vec::new();
            for Queued {
                topic,
                seq,
                stored_at_ms: at,
                bytes,
                end,
            } in &pending
            {
                messages.insert((topic.as_str(), *seq), (*at, bytes.as_slice()))?;
                if let Some(end) = end {
                    ends.insert((*end, topic.as_str(), *seq), ())?;
                    self.next_end = Some(self.next_end.map_or(*end, |n| n.min(*end)));
                }
                if let Some(t) = self.topics.get_mut(topic) {
                    t.bytes += bytes.len() as u64;
                }
                if !touched.contains(topic) {
                    touched.push(topic.clone());
                }
            }
            for topic in touched {
                let Some(t) = self.topics.get_mut(&topic) else {
                    continue;
                };
                while t.oldest < t.next {
                    let over =
                        t.next - t.oldest > self.topic_messages || t.bytes > self.topic_bytes;
                    let key = (topic.as_str(), t.oldest);
                    let (expired, len) = match messages.get(key)? {
                        Some(v) => (v.value().0 < cutoff, v.value().1.len() as u64),
                        // Gone at its end already: a gap to step over.
                        None => (true, 0),
                    };
                    if !over && !expired {
                        break;
                    }
                    messages.remove(key)?;
                    t.bytes = t.bytes.saturating_sub(len);
                    self.total = self.total.saturating_sub(len);
                    t.oldest += 1;
                }
                topics.insert(topic.as_str(), (t.next, t.oldest))?;
            }
            if ends_due {
                self.drop_ended(now_ms, &mut topics, &mut messages, &mut ends)?;
            }
        }
        txn.commit()?;
        Ok(written)
    }

    /// Deletes the messages whose end has come (some may be gone already,
    /// over a cap or the retention); the oldest kept of a topic moves past
    /// them.
    fn drop_ended(
        &mut self,
        now_ms: u64,
        topics: &mut redb::Table<'_, &str, (u64, u64)>,
        messages: &mut redb::Table<'_, (&str, u64), (u64, &[u8])>,
        ends: &mut redb::Table<'_, (u64, &str, u64), ()>,
    ) -> Result<(), StoreError> {
        let mut due: Vec<(u64, String, u64)> = Vec::new();
        for row in ends.range((0, "", 0)..)? {
            let (k, _) = row?;
            let (end, topic, seq) = k.value();
            if end > now_ms {
                break;
            }
            due.push((end, topic.to_owned(), seq));
        }
        for (end, topic, seq) in &due {
            ends.remove((*end, topic.as_str(), *seq))?;
            let Some(t) = self.topics.get_mut(topic) else {
                continue;
            };
            if let Some(removed) = messages.remove((topic.as_str(), *seq))? {
                let len = removed.value().1.len() as u64;
                t.bytes = t.bytes.saturating_sub(len);
                self.total = self.total.saturating_sub(len);
            }
            let before = t.oldest;
            while t.oldest < t.next && messages.get((topic.as_str(), t.oldest))?.is_none() {
                t.oldest += 1;
            }
            if t.oldest != before {
                topics.insert(topic.as_str(), (t.next, t.oldest))?;
            }
        }
        self.next_end = ends.first()?.map(|(k, _)| k.value().0);
        if !due.is_empty() {
            tracing::debug!(count = due.len(), "group messages dropped at their end");
        }
        Ok(())
    }

    /// Deletes what is past the retention period in every topic (a quiet
    /// topic's too: [`History::flush`] sweeps only the topics written to),
    /// and forgets the topics in `dropped` with all they hold.
    pub fn maintain(&mut self, now_ms: u64, dropped: &[String]) -> Result<(), StoreError> {
        // What is queued first: a seq missing from redb is then a gap (a
        // message gone at its end), never one still to be written.
        self.flush(now_ms)?;
        let cutoff = now_ms.saturating_sub(self.retention_ms);
        let txn = self.db.begin_write()?;
        {
            let mut topics = txn.open_table(TOPICS)?;
            let mut messages = txn.open_table(MESSAGES)?;
            for topic in dropped {
                let Some(t) = self.topics.remove(topic) else {
                    continue;
                };
                for seq in t.oldest..t.next {
                    messages.remove((topic.as_str(), seq))?;
                }
                topics.remove(topic.as_str())?;
                self.total = self.total.saturating_sub(t.bytes);
            }
            for (topic, t) in &mut self.topics {
                let before = t.oldest;
                while t.oldest < t.next {
                    let key = (topic.as_str(), t.oldest);
                    let Some((at, len)) = messages
                        .get(key)?
                        .map(|v| (v.value().0, v.value().1.len() as u64))
                    else {
                        // Gone at its end already: a gap to step over.
                        t.oldest += 1;
                        continue;
                    };
                    if at >= cutoff {
                        break;
                    }
                    messages.remove(key)?;
                    t.bytes = t.bytes.saturating_sub(len);
                    self.total = self.total.saturating_sub(len);
                    t.oldest += 1;
                }
                if t.oldest != before {
                    topics.insert(topic.as_str(), (t.next, t.oldest))?;
                }
            }
        }
        txn.commit()?;
        // What was queued for a dropped topic goes too.
        let kept = &self.topics;
        let mut total = self.total;
        self.pending.retain(|q| {
            let keep = kept.contains_key(&q.topic);
            if !keep {
                total = total.saturating_sub(q.bytes.len() as u64);
            }
            keep
        });
        self.total = total;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(retention_secs: u64) -> HistoryRules {
        HistoryRules {
            retention_secs,
            ..HistoryRules::default()
        }
    }

    fn seqs(history: &History, topic: &str) -> Vec<u64> {
        let HistoryResponse::Page { items, .. } = history.page(topic, 0, 100).expect("page") else {
            panic!("not a page");
        };
        items.iter().map(|(seq, _)| *seq).collect()
    }

    /// Disappearing group messages go from the history at their end, long
    /// before the retention; a gap they leave does not stop the oldest
    /// from moving on, and what comes after is kept.
    #[test]
    fn a_message_with_an_end_goes_from_the_history_then() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.redb");
        let mut history = History::open(&path, rules(3600)).expect("open");
        history.keep("t");
        history.add("t", vec![1; 10], 1_000, None);
        history.add("t", vec![2; 10], 1_000, Some(5_000));
        history.add("t", vec![3; 10], 1_000, Some(2_000));
        history.add("t", vec![4; 10], 1_000, None);
        history.flush(1_000).expect("flush");
        assert_eq!(seqs(&history, "t"), [1, 2, 3, 4]);
        history.flush(2_000).expect("flush");
        assert_eq!(seqs(&history, "t"), [1, 2, 4]);
        assert_eq!(history.bytes(), 30);
        drop(history);
        // The ends are on disk: a restarted relay drops the rest in time.
        let mut history = History::open(&path, rules(3600)).expect("reopen");
        history.flush(5_000).expect("flush");
        assert_eq!(seqs(&history, "t"), [1, 4]);
        assert_eq!(history.bytes(), 20);
        // The sweep past the retention steps over the gaps.
        history.add("t", vec![5; 10], 3_700_000, None);
        history.maintain(3_700_000, &[]).expect("maintain");
        assert_eq!(seqs(&history, "t"), [5]);
        assert_eq!(history.bytes(), 10);
    }

    #[test]
    fn a_quiet_topic_loses_what_expired_and_a_dropped_topic_everything() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.redb");
        let mut history = History::open(&path, rules(10)).expect("open");
        for topic in ["quiet", "dropped"] {
            history.keep(topic);
            history.add(topic, vec![1; 100], 1_000, None);
            history.add(topic, vec![2; 100], 8_000, None);
        }
        history.flush(8_000).expect("flush");
        assert_eq!(history.bytes(), 400);
        // Nothing more is published: only the sweep removes the first
        // message of "quiet" (past 10 s), and "dropped" goes whole.
        history.add("dropped", vec![3; 100], 12_000, None);
        history
            .maintain(12_000, &["dropped".to_owned()])
            .expect("maintain");
        assert_eq!(history.bytes(), 100);
        assert_eq!(history.topics().collect::<Vec<_>>(), ["quiet"]);
        drop(history);
        let history = History::open(&path, rules(10)).expect("reopen");
        assert_eq!(history.bytes(), 100);
        let HistoryResponse::Page { items, .. } = history.page("quiet", 0, 10).expect("page")
        else {
            panic!("not a page");
        };
        assert_eq!(items.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [2]);
        assert_eq!(history.topics().count(), 1);
    }

    #[test]
    fn a_topic_keeps_at_most_its_byte_cap_and_its_bytes_are_counted_at_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.redb");
        let cap = 4 * 1024 * 1024;
        let rules = HistoryRules {
            topic_bytes: cap,
            ..rules(3600)
        };
        let mut history = History::open(&path, rules).expect("open");
        history.keep("t");
        let message = vec![7u8; 1024 * 1024];
        let count = cap / (1024 * 1024) + 6;
        for _ in 0..count {
            history.add("t", message.clone(), 1_000, None);
        }
        assert_eq!(history.bytes(), count * 1024 * 1024, "queued counts");
        history.flush(1_000).expect("flush");
        assert_eq!(history.bytes(), cap, "the oldest went");
        drop(history);
        let history = History::open(&path, rules).expect("reopen");
        assert_eq!(history.bytes(), cap);
        let HistoryResponse::Page { items, .. } = history.page("t", 0, 1).expect("page") else {
            panic!("not a page");
        };
        assert_eq!(items[0].0, 7, "the first six were dropped");
    }

    #[test]
    fn a_topic_keeps_at_most_its_configured_message_count() {
        let dir = tempfile::tempdir().expect("temp dir");
        let rules = HistoryRules {
            topic_messages: 5,
            ..rules(3600)
        };
        let mut history = History::open(&dir.path().join("h.redb"), rules).expect("open");
        history.keep("t");
        for i in 0..12u8 {
            history.add("t", vec![i; 10], 1_000, None);
        }
        history.flush(1_000).expect("flush");
        assert_eq!(history.bytes(), 50);
        let HistoryResponse::Page { items, .. } = history.page("t", 0, 100).expect("page") else {
            panic!("not a page");
        };
        let seqs: Vec<u64> = items.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, [8, 9, 10, 11, 12]);
    }
}

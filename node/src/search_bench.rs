//! `hush bench search`: a synthetic history stored and indexed through the
//! node's own store, then a fixed mix of queries.
//!
//! The history is deterministic (seeded): words drawn from a 50,000-word
//! vocabulary with a Zipf distribution (s = 1.07, like natural language),
//! message lengths log-normal (median about 7 words, a long tail to 80),
//! 60 conversations (50 contacts, 10 groups of 8) of Zipf-distributed
//! activity, over two years. Messages are stored `batch` per transaction
//! (256 unless told), durably, as the node stores what arrives in one
//! batch; the rates count the time in the store only (making the messages
//! up is not timed).

use std::path::Path;
use std::time::Instant;

use hush_host::sealed_db::DbKey;
use hush_protocol::{AccountId, ConversationId, MessageId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::records::{MessageKind, MessageRecord, Status};
use crate::search::Query;
use crate::store::{Durability, Op, SearchFilter, Store, StoreError};

const VOCABULARY: usize = 50_000;
const ZIPF_S: f64 = 1.07;
const CONVERSATIONS: usize = 60;
const GROUPS_FROM: usize = 50;
const GROUP_SIZE: u8 = 8;
/// Messages per transaction unless told: about what the node commits at
/// once while it drains a relay (a 1 MiB fetch page holds about a
/// thousand short texts) or takes a burst from a peer.
pub const DEFAULT_BATCH: usize = 256;
const QUERIES_PER_KIND: usize = 50;
const RESULTS: usize = 20;
const TWO_YEARS_MS: u64 = 2 * 365 * 86_400_000;
const START_MS: u64 = 1_700_000_000_000;

/// What `hush bench search` prints.
#[derive(Debug, Clone, Serialize)]
pub struct SearchBench {
    pub messages: usize,
    pub batch: usize,
    /// Stored durably, sealed and indexed, in the same transactions.
    pub index_msgs_per_s: f64,
    /// Stored durably and sealed, not indexed.
    pub sealed_store_msgs_per_s: f64,
    /// Stored durably, neither sealed nor indexed: the floor.
    pub plain_store_msgs_per_s: f64,
    /// How many times longer a sealed insert takes than a plain one.
    pub sealed_over_plain: f64,
    pub query_p50_ms: f64,
    pub query_p99_ms: f64,
    /// Per kind of query: (kind, p50 ms, p99 ms, mean hits).
    pub queries: Vec<QueryKind>,
    /// The index's tables (stored bytes, B-tree overhead, fragmentation),
    /// per message.
    pub index_bytes_per_msg: f64,
    /// The indexed, sealed database's size.
    pub db_bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct QueryKind {
    pub kind: &'static str,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub mean_hits: f64,
}

/// The synthetic history's vocabulary and distributions.
struct Corpus {
    words: Vec<String>,
    /// Cumulative Zipf weights of the words.
    word_cdf: Vec<f64>,
    conversation_cdf: Vec<f64>,
}

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ne", "ru", "sa", "te", "vi", "do", "pa", "e", "o", "an", "el", "is", "ur",
    "ba", "go", "hu", "ji", "ko", "ly", "ma", "ti",
];

fn cdf(n: usize, s: f64) -> Vec<f64> {
    let mut total = 0.0;
    let mut out = Vec::with_capacity(n);
    for rank in 1..=n {
        total += 1.0 / (rank as f64).powf(s);
        out.push(total);
    }
    out
}

fn draw(cdf: &[f64], rng: &mut StdRng) -> usize {
    let x = rng.gen_range(0.0..cdf.last().copied().unwrap_or(1.0));
    cdf.partition_point(|c| *c < x).min(cdf.len() - 1)
}

impl Corpus {
    fn new() -> Self {
        // Word n spelt in base 24 of syllables: frequent words are short.
        let words = (0..VOCABULARY)
            .map(|mut n| {
                let mut w = String::new();
                loop {
                    w.push_str(SYLLABLES[n % SYLLABLES.len()]);
                    n /= SYLLABLES.len();
                    if n == 0 {
                        break;
                    }
                    n -= 1;
                }
                w
            })
            .collect();
        Self {
            words,
            word_cdf: cdf(VOCABULARY, ZIPF_S),
            conversation_cdf: cdf(CONVERSATIONS, 1.0),
        }
    }

    fn text(&self, rng: &mut StdRng) -> String {
        // Log-normal length: exp(N(1.9, 0.8)).
        let (u1, u2): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.r#gen());
        let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        let len = (1.9 + 0.8 * normal).exp().round().clamp(1.0, 80.0) as usize;
        let mut text = String::new();
        for i in 0..len {
            if i > 0 {
                text.push(' ');
            }
            let word = &self.words[draw(&self.word_cdf, rng)];
            if i == 0 {
                let mut chars = word.chars();
                text.extend(chars.next().map(|c| c.to_ascii_uppercase()));
                text.push_str(chars.as_str());
            } else {
                text.push_str(word);
            }
        }
        text.push(if rng.gen_ratio(1, 5) { '?' } else { '.' });
        text
    }

    /// Message `n` of the history.
    fn message(&self, n: usize, total: usize, rng: &mut StdRng) -> (ConversationId, MessageRecord) {
        let c = draw(&self.conversation_cdf, rng);
        let conversation = conversation(c);
        let author = if c >= GROUPS_FROM {
            rng.gen_range(0..GROUP_SIZE)
        } else {
            rng.gen_range(0..2)
        };
        let at = START_MS + (n as u64 * TWO_YEARS_MS) / total.max(1) as u64;
        let message = MessageRecord {
            id: MessageId(n as u128 + 1),
            from: AccountId([author; 32]),
            outgoing: author == 0,
            text: self.text(rng),
            status: Status::Delivered,
            sent_at_ms: at,
            stored_at_ms: at,
            timer_secs: None,
            kind: MessageKind::Message,
        };
        (conversation, message)
    }
}

fn conversation(c: usize) -> ConversationId {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&(c as u64).to_be_bytes());
    ConversationId(id)
}

/// Stores `total` messages; returns messages per second and a sample of
/// stored texts (for phrase queries).
fn fill(
    store: &Store,
    corpus: &Corpus,
    total: usize,
    batch: usize,
    progress: &mut dyn FnMut(&str, usize),
    label: &str,
) -> Result<(f64, Vec<String>), StoreError> {
    let mut rng = StdRng::seed_from_u64(2026);
    let mut sample = Vec::new();
    // Only the store's work is timed, not making up the messages.
    let mut storing = std::time::Duration::ZERO;
    let mut n = 0;
    while n < total {
        let ops: Vec<Op> = (n..(n + batch).min(total))
            .map(|i| {
                let (c, m) = corpus.message(i, total, &mut rng);
                if i % 997 == 0 {
                    sample.push(m.text.clone());
                }
                Op::PutMessage(c, m)
            })
            .collect();
        n += ops.len();
        let started = Instant::now();
        store.apply(ops, Durability::Now)?;
        storing += started.elapsed();
        if n % 100_000 < batch {
            progress(label, n);
        }
    }
    let started = Instant::now();
    store.checkpoint()?;
    storing += started.elapsed();
    Ok((total as f64 / storing.as_secs_f64(), sample))
}

fn percentile_ms(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The queries of the mix, by kind.
fn queries(corpus: &Corpus, sample: &[String]) -> Vec<(&'static str, String, SearchFilter)> {
    let mut rng = StdRng::seed_from_u64(17);
    let none = SearchFilter::default;
    let mut out = Vec::new();
    for i in 0..QUERIES_PER_KIND {
        let word = |rng: &mut StdRng, from: usize, to: usize| {
            corpus.words[rng.gen_range(from..to)].clone()
        };
        out.push(("rare word", word(&mut rng, 10_000, 40_000), none()));
        out.push(("common word", word(&mut rng, 0, 10), none()));
        let two = format!("{} {}", word(&mut rng, 20, 500), word(&mut rng, 20, 500));
        out.push(("two words", two, none()));
        let phrase = sample
            .get(i * sample.len().max(1) / QUERIES_PER_KIND)
            .map(|t| t.split(' ').take(2).collect::<Vec<_>>().join(" "))
            .unwrap_or_default();
        out.push(("phrase", format!("\"{phrase}\""), none()));
        let stem: String = word(&mut rng, 100, 2_000).chars().take(3).collect();
        out.push(("prefix", format!("{stem}*"), none()));
        let in_chat = SearchFilter {
            conversation: Some(conversation(rng.gen_range(0..5))),
            ..none()
        };
        out.push(("common word, one contact", word(&mut rng, 0, 10), in_chat));
    }
    out
}

/// Runs the benchmark in `dir` (three databases made and measured in
/// turn); `progress` hears (phase, messages stored).
pub fn run(
    dir: &Path,
    messages: usize,
    batch: usize,
    progress: &mut dyn FnMut(&str, usize),
) -> Result<SearchBench, StoreError> {
    let batch = batch.max(1);
    let corpus = Corpus::new();
    let key = DbKey::from_bytes(rand::random());
    let indexed_path = dir.join("indexed.redb");
    let store = Store::open_measured(&indexed_path, Some(&key), true)?;
    let (index_rate, sample) = fill(&store, &corpus, messages, batch, progress, "indexed")?;

    let mut times: Vec<(&'static str, f64, usize)> = Vec::new();
    for (kind, text, filter) in queries(&corpus, &sample) {
        let Ok(query) = Query::parse(&text) else {
            continue;
        };
        let started = Instant::now();
        let hits = store.search(&query, &filter, 0, RESULTS)?;
        times.push((kind, started.elapsed().as_secs_f64() * 1e3, hits.len()));
    }
    let index_bytes = store.index_bytes()?;
    drop(store);
    let db_bytes = file_len(&indexed_path);

    let store = Store::open_measured(&dir.join("sealed.redb"), Some(&key), false)?;
    let (sealed_rate, _) = fill(&store, &corpus, messages, batch, progress, "sealed")?;
    drop(store);

    let store = Store::open_measured(&dir.join("plain.redb"), None, false)?;
    let (plain_rate, _) = fill(&store, &corpus, messages, batch, progress, "plain")?;
    drop(store);

    let mut all: Vec<f64> = times.iter().map(|t| t.1).collect();
    all.sort_by(f64::total_cmp);
    let mut kinds: Vec<&'static str> = times.iter().map(|t| t.0).collect();
    kinds.dedup();
    kinds.truncate(6);
    let queries = kinds
        .iter()
        .map(|kind| {
            let of_kind: Vec<&(&str, f64, usize)> = times.iter().filter(|t| t.0 == *kind).collect();
            let mut ms: Vec<f64> = of_kind.iter().map(|t| t.1).collect();
            ms.sort_by(f64::total_cmp);
            QueryKind {
                kind,
                p50_ms: percentile_ms(&ms, 0.5),
                p99_ms: percentile_ms(&ms, 0.99),
                mean_hits: of_kind.iter().map(|t| t.2 as f64).sum::<f64>()
                    / of_kind.len().max(1) as f64,
            }
        })
        .collect();
    Ok(SearchBench {
        messages,
        batch,
        index_msgs_per_s: index_rate,
        sealed_store_msgs_per_s: sealed_rate,
        plain_store_msgs_per_s: plain_rate,
        sealed_over_plain: plain_rate / sealed_rate,
        query_p50_ms: percentile_ms(&all, 0.5),
        query_p99_ms: percentile_ms(&all, 0.99),
        queries,
        index_bytes_per_msg: index_bytes as f64 / messages.max(1) as f64,
        db_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_small_run_finds_what_every_kind_of_query_asks() {
        let dir = tempfile::tempdir().unwrap();
        let report = run(dir.path(), 5_000, 100, &mut |_, _| {}).unwrap();
        assert_eq!(report.queries.len(), 6);
        for kind in &report.queries {
            if kind.kind != "rare word" && kind.kind != "prefix" {
                assert!(kind.mean_hits > 0.0, "{} found nothing", kind.kind);
            }
        }
        assert!(report.index_bytes_per_msg > 0.0);
    }
}

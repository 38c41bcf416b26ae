//! The full-text index, kept in the database beside the messages it
//! indexes and written in the same transactions (so a crash never leaves
//! the two apart), sealed at rest like every other table.
//!
//! Layout (see `docs/search.md`):
//! - `search_recent`: (segment, term) → every posting of that term among
//!   the documents one write batch added. A batch's entries are new keys
//!   at the end of the table, written in term order without reading
//!   anything: a few sequential pages per commit, however scattered its
//!   words are in the alphabet.
//! - `search_postings`: (term, first document) → a block of up to
//!   [`BLOCK_POSTINGS`] postings of that term, in document order. Every
//!   [`RECENT_SEGMENTS`] batches the recent segments are merged in here,
//!   term by term in order, so each page of the big table is rewritten
//!   once per merge rather than once per batch. A lookup reads a term's
//!   blocks (one range) and its entry in each recent segment.
//! - `search_docs`: document number → (conversation, message id).
//! - counters in `meta` (`search_counters`, five `u64` big-endian): the
//!   next document number, the number of documents and of their words
//!   (BM25's average length), the oldest recent segment not merged and the
//!   next segment number.
//!
//! Besides its words, a document is indexed under three reserved terms
//! (they start with a control character no word can hold): its
//! conversation, its author and its day, so that filters are postings
//! like words.

use std::collections::{BinaryHeap, HashMap};

use hush_protocol::{AccountId, ConversationId, MessageId, Wire};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use super::{FILES, MESSAGES, META, StoreError, decode};
use crate::records::{FileRecord, MessageRecord};
use crate::search::{Clause, Query, Snippet, snippet, tokens};

pub(super) const POSTINGS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("search_postings");
pub(super) const RECENT: TableDefinition<(u64, &str), &[u8]> =
    TableDefinition::new("search_recent");
pub(super) const DOCS: TableDefinition<u64, &[u8]> = TableDefinition::new("search_docs");

const COUNTERS_KEY: &str = "search_counters";

/// The index's counters, one `meta` value (one write per batch).
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    next_doc: u64,
    docs: u64,
    words: u64,
    /// The oldest recent segment not merged yet, and the next to write.
    recent_from: u64,
    recent_next: u64,
}

impl Counters {
    fn load(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Self, StoreError> {
        let Some(v) = meta.get(COUNTERS_KEY)? else {
            return Ok(Self::default());
        };
        let b = v.value();
        if b.len() != 40 {
            return Err(StoreError::IndexDamaged("the counters are not 40 bytes"));
        }
        let at = |i: usize| {
            let mut n = [0u8; 8];
            n.copy_from_slice(&b[i * 8..i * 8 + 8]);
            u64::from_be_bytes(n)
        };
        Ok(Self {
            next_doc: at(0),
            docs: at(1),
            words: at(2),
            recent_from: at(3),
            recent_next: at(4),
        })
    }

    fn store(
        &self,
        meta: &mut redb::Table<'_, &'static str, &'static [u8]>,
    ) -> Result<(), StoreError> {
        let mut b = [0u8; 40];
        for (i, n) in [
            self.next_doc,
            self.docs,
            self.words,
            self.recent_from,
            self.recent_next,
        ]
        .into_iter()
        .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&n.to_be_bytes());
        }
        meta.insert(COUNTERS_KEY, b.as_slice())?;
        Ok(())
    }
}

/// Recent segments kept before they are merged into the main postings.
const RECENT_SEGMENTS: u64 = 64;
/// Most postings one recent entry may hold (one batch's documents).
const MAX_RECENT_POSTINGS: u64 = 1 << 20;

/// Postings per block: small enough that appending rewrites little, large
/// enough that a common word is a few hundred sequential reads.
const BLOCK_POSTINGS: usize = 128;
/// Most distinct terms one prefix expands to (the first in term order).
pub const MAX_PREFIX_TERMS: usize = 512;

const BM25_K1: f32 = 1.2;
const BM25_B: f32 = 0.75;

/// The reserved term under which a recent segment keeps its documents'
/// places (first document, then 48 bytes per document): moved to
/// `search_docs` when merged, so a commit writes one index table.
const PLACES_TERM: &str = "\u{0}";

/// Reserved term prefixes of the filters.
const CONVERSATION_TERM: char = '\u{1}';
const AUTHOR_TERM: char = '\u{2}';
const DAY_TERM: char = '\u{3}';
const MS_PER_DAY: u64 = 86_400_000;

fn conversation_term(c: &ConversationId) -> String {
    format!("{CONVERSATION_TERM}{}", hex::encode(c.0))
}

fn author_term(a: &AccountId) -> String {
    format!("{AUTHOR_TERM}{}", hex::encode(a.0))
}

fn day_term(ms: u64) -> String {
    format!("{DAY_TERM}{:08}", ms / MS_PER_DAY)
}

/// The text a message is indexed by: its words and its file's name.
fn indexed_text(message: &MessageRecord, file: Option<&str>) -> String {
    match file {
        Some(name) => format!("{}\n{name}", message.text),
        None => message.text.clone(),
    }
}

fn file_name(file: &FileRecord) -> Option<String> {
    hush_protocol::blob::FileManifest::from_bytes(&file.manifest)
        .ok()
        .map(|m| m.name)
}

/// A document's length in one byte: exact to 128 words, then in steps of
/// 16 up to 2,160 (BM25 needs only its rough size).
fn norm(words: usize) -> u8 {
    if words <= 128 {
        words as u8
    } else {
        (128 + (words - 128) / 16).min(255) as u8
    }
}

fn words_of(norm: u8) -> f32 {
    if norm <= 128 {
        f32::from(norm)
    } else {
        128.0 + f32::from(norm - 128) * 16.0
    }
}

/// One document's entry in a term's postings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Posting {
    doc: u64,
    /// How often the term occurs (at most 255).
    tf: u8,
    norm: u8,
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// A block: its postings' count, then per posting the gap from the one
/// before (the first from the block's key), tf and norm.
fn encode_block(first: u64, postings: &[Posting]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + postings.len() * 3);
    put_varint(&mut out, postings.len() as u64);
    let mut prev = first;
    for p in postings {
        put_varint(&mut out, p.doc - prev);
        out.push(p.tf);
        out.push(p.norm);
        prev = p.doc;
    }
    out
}

fn decode_block(first: u64, bytes: &[u8], out: &mut Vec<Posting>) -> Result<(), StoreError> {
    decode_postings(first, bytes, BLOCK_POSTINGS as u64, out)
}

fn decode_postings(
    first: u64,
    bytes: &[u8],
    most: u64,
    out: &mut Vec<Posting>,
) -> Result<(), StoreError> {
    let damaged = || StoreError::IndexDamaged("a postings block does not decode");
    let mut at = 0;
    let count = take_varint(bytes, &mut at).ok_or_else(damaged)?;
    if count > most {
        return Err(damaged());
    }
    let mut doc = first;
    for _ in 0..count {
        doc = doc
            .checked_add(take_varint(bytes, &mut at).ok_or_else(damaged)?)
            .ok_or_else(damaged)?;
        let tf = *bytes.get(at).ok_or_else(damaged)?;
        let norm = *bytes.get(at + 1).ok_or_else(damaged)?;
        at += 2;
        out.push(Posting { doc, tf, norm });
    }
    Ok(())
}

/// A recent entry: its first document, then its postings as a block.
fn encode_recent(postings: &[Posting]) -> Vec<u8> {
    let first = postings.first().map_or(0, |p| p.doc);
    let mut out = Vec::with_capacity(10 + postings.len() * 3);
    put_varint(&mut out, first);
    out.extend(encode_block(first, postings));
    out
}

fn decode_recent(bytes: &[u8], out: &mut Vec<Posting>) -> Result<(), StoreError> {
    let mut at = 0;
    let first = take_varint(bytes, &mut at).ok_or(StoreError::IndexDamaged(
        "a recent postings entry does not decode",
    ))?;
    decode_postings(first, &bytes[at..], MAX_RECENT_POSTINGS, out)
}

/// A message to index, gathered while a batch's ops are applied.
struct NewDoc {
    conversation: ConversationId,
    message: MessageRecord,
}

/// The index changes of one write batch. Additions are gathered and
/// applied together at the end (one rewrite of each term's last block per
/// batch, in term order); a removal first applies what was gathered.
#[derive(Default)]
pub(super) struct Indexer {
    docs: Vec<NewDoc>,
    /// File names of messages stored in this batch.
    files: HashMap<(ConversationId, u128), String>,
}

impl Indexer {
    pub(super) fn add(&mut self, conversation: ConversationId, message: &MessageRecord) {
        self.docs.push(NewDoc {
            conversation,
            message: message.clone(),
        });
    }

    pub(super) fn file(&mut self, conversation: ConversationId, id: MessageId, file: &FileRecord) {
        if let Some(name) = file_name(file) {
            self.files.insert((conversation, id.0), name);
        }
    }

    /// Adds the gathered messages to the index.
    pub(super) fn flush(&mut self, txn: &WriteTransaction) -> Result<(), StoreError> {
        if self.docs.is_empty() {
            self.files.clear();
            return Ok(());
        }
        let mut meta = txn.open_table(META)?;
        let mut c = Counters::load(&meta)?;
        let mut places = Vec::with_capacity(10 + self.docs.len() * 48);
        put_varint(&mut places, c.next_doc);
        let mut postings: HashMap<String, Vec<Posting>> = HashMap::new();
        for new in self.docs.drain(..) {
            let key = (new.conversation, new.message.id.0);
            let file = self.files.get(&key).map(String::as_str);
            let text = indexed_text(&new.message, file);
            let doc = c.next_doc;
            c.next_doc += 1;
            c.docs += 1;
            let tokens = tokens(&text);
            c.words += tokens.len() as u64;
            let norm = norm(tokens.len());
            let mut tf: HashMap<String, u8> = HashMap::new();
            for t in tokens {
                let n = tf.entry(t.term).or_default();
                *n = n.saturating_add(1);
            }
            tf.insert(conversation_term(&new.conversation), 1);
            tf.insert(author_term(&new.message.from), 1);
            tf.insert(day_term(new.message.sent_at_ms), 1);
            for (term, tf) in tf {
                postings
                    .entry(term)
                    .or_default()
                    .push(Posting { doc, tf, norm });
            }
            places.extend_from_slice(&new.conversation.0);
            places.extend_from_slice(&new.message.id.0.to_be_bytes());
        }
        self.files.clear();
        {
            let mut recent = txn.open_table(RECENT)?;
            recent.insert((c.recent_next, PLACES_TERM), places.as_slice())?;
            let mut terms: Vec<(String, Vec<Posting>)> = postings.into_iter().collect();
            terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (term, postings) in terms {
                recent.insert(
                    (c.recent_next, term.as_str()),
                    encode_recent(&postings).as_slice(),
                )?;
            }
        }
        c.recent_next += 1;
        c.store(&mut meta)?;
        if c.recent_next - c.recent_from >= RECENT_SEGMENTS {
            drop(meta);
            merge(txn)?;
        }
        Ok(())
    }

    /// Takes the messages of a conversation (each with its file) out of the
    /// index: the conversation's documents are its reserved term's
    /// postings; each one's terms come from its message again.
    pub(super) fn remove_conversation(
        &mut self,
        txn: &WriteTransaction,
        conversation: &ConversationId,
        gone: &[(MessageRecord, Option<FileRecord>)],
    ) -> Result<(), StoreError> {
        self.flush(txn)?;
        merge(txn)?;
        let by_id: HashMap<u128, &(MessageRecord, Option<FileRecord>)> =
            gone.iter().map(|g| (g.0.id.0, g)).collect();
        let mut table = txn.open_table(POSTINGS)?;
        let mut docs = txn.open_table(DOCS)?;
        let own = conversation_term(conversation);
        let mut of_conversation = Vec::new();
        for row in table.range((own.as_str(), 0)..=(own.as_str(), u64::MAX))? {
            let (k, v) = row?;
            decode_block(k.value().1, v.value(), &mut of_conversation)?;
        }
        let mut removed_docs = 0;
        let mut removed_words = 0;
        let mut block = Vec::with_capacity(BLOCK_POSTINGS);
        for doc in of_conversation.iter().map(|p| p.doc) {
            let place = docs.remove(doc)?.map(|v| v.value().to_vec());
            let id = place
                .as_deref()
                .and_then(|p| p.get(32..48))
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map(u128::from_be_bytes);
            let Some((message, file)) = id.and_then(|id| by_id.get(&id).copied()) else {
                continue;
            };
            let name = file.as_ref().and_then(file_name);
            let tokens = tokens(&indexed_text(message, name.as_deref()));
            removed_docs += 1;
            removed_words += tokens.len() as u64;
            let mut terms: Vec<String> = tokens.into_iter().map(|t| t.term).collect();
            terms.push(own.clone());
            terms.push(author_term(&message.from));
            terms.push(day_term(message.sent_at_ms));
            terms.sort_unstable();
            terms.dedup();
            for term in &terms {
                let found = table
                    .range((term.as_str(), 0)..=(term.as_str(), doc))?
                    .next_back()
                    .transpose()?
                    .map(|(k, v)| (k.value().1, v.value().to_vec()));
                let Some((first, bytes)) = found else {
                    continue;
                };
                block.clear();
                decode_block(first, &bytes, &mut block)?;
                block.retain(|p| p.doc != doc);
                table.remove((term.as_str(), first))?;
                if let Some(head) = block.first() {
                    table.insert(
                        (term.as_str(), head.doc),
                        encode_block(head.doc, &block).as_slice(),
                    )?;
                }
            }
        }
        let mut meta = txn.open_table(META)?;
        let mut c = Counters::load(&meta)?;
        c.docs = c.docs.saturating_sub(removed_docs);
        c.words = c.words.saturating_sub(removed_words);
        c.store(&mut meta)?;
        Ok(())
    }
}

/// Moves every recent segment's postings into the main postings, term by
/// term in order.
fn merge(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let mut c = Counters::load(&meta)?;
    let (from, next) = (c.recent_from, c.recent_next);
    if from == next {
        return Ok(());
    }
    // Segments in order: each term's postings come out in document order.
    let mut by_term: HashMap<String, Vec<Posting>> = HashMap::new();
    {
        let recent = txn.open_table(RECENT)?;
        let mut docs = txn.open_table(DOCS)?;
        for row in recent.range((from, "")..)? {
            let (k, v) = row?;
            let term = k.value().1;
            if term == PLACES_TERM {
                for (doc, place) in segment_places(v.value())? {
                    docs.insert(doc, place)?;
                }
                continue;
            }
            let list = by_term.entry(term.to_owned()).or_default();
            decode_recent(v.value(), list)?;
        }
    }
    txn.delete_table(RECENT)?;
    txn.open_table(RECENT)?;
    let mut terms: Vec<(String, Vec<Posting>)> = by_term.into_iter().collect();
    terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut table = txn.open_table(POSTINGS)?;
    let mut block = Vec::with_capacity(BLOCK_POSTINGS);
    for (term, new) in terms {
        append(&mut table, &term, &new, &mut block)?;
    }
    c.recent_from = next;
    c.store(&mut meta)?;
    Ok(())
}

/// Where document `doc` points: (conversation, message id), from its
/// recent segment (`unmerged`: first document and segment, in order) or
/// from `search_docs`; `None` if it is not there (removed).
fn place_of(
    doc: u64,
    unmerged: &[(u64, u64)],
    recent: &impl ReadableTable<(u64, &'static str), &'static [u8]>,
    docs: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Option<([u8; 32], u128)>, StoreError> {
    let place = match unmerged.partition_point(|(first, _)| *first <= doc) {
        0 => docs.get(doc)?.map(|v| v.value().to_vec()),
        i => match recent.get((unmerged[i - 1].1, PLACES_TERM))? {
            Some(v) => segment_places(v.value())?
                .find(|(d, _)| *d == doc)
                .map(|(_, p)| p.to_vec()),
            None => None,
        },
    };
    let Some(place) = place else {
        return Ok(None);
    };
    let (Ok(conversation), Ok(id)) = (
        <[u8; 32]>::try_from(place.get(..32).unwrap_or_default()),
        <[u8; 16]>::try_from(place.get(32..).unwrap_or_default()),
    ) else {
        return Err(StoreError::IndexDamaged(
            "a document's place is not 48 bytes",
        ));
    };
    Ok(Some((conversation, u128::from_be_bytes(id))))
}

/// The (document, place) pairs of a segment's places entry.
fn segment_places(bytes: &[u8]) -> Result<impl Iterator<Item = (u64, &[u8])>, StoreError> {
    let mut at = 0;
    let first = take_varint(bytes, &mut at)
        .ok_or(StoreError::IndexDamaged("a segment's places do not decode"))?;
    let rest = &bytes[at..];
    if !rest.len().is_multiple_of(48) {
        return Err(StoreError::IndexDamaged("a segment's places do not decode"));
    }
    Ok(rest.chunks_exact(48).zip(first..).map(|(p, d)| (d, p)))
}

/// Appends `new` (in document order, after every posting stored) to
/// `term`'s last block, starting new blocks as they fill.
fn append(
    table: &mut redb::Table<'_, (&'static str, u64), &'static [u8]>,
    term: &str,
    new: &[Posting],
    block: &mut Vec<Posting>,
) -> Result<(), StoreError> {
    block.clear();
    let last = {
        let mut range = table.range((term, 0)..=(term, u64::MAX))?;
        match range.next_back().transpose()? {
            Some((k, v)) => {
                let first = k.value().1;
                decode_block(first, v.value(), block)?;
                Some(first)
            }
            None => None,
        }
    };
    let mut first = last.unwrap_or_else(|| new.first().map_or(0, |p| p.doc));
    for p in new {
        if block.len() == BLOCK_POSTINGS {
            table.insert((term, first), encode_block(first, block).as_slice())?;
            block.clear();
            first = p.doc;
        }
        block.push(*p);
    }
    table.insert((term, first), encode_block(first, block).as_slice())?;
    Ok(())
}

/// What a search is narrowed to, beside its words.
#[derive(Debug, Clone, Default)]
pub struct SearchFilter {
    pub conversation: Option<ConversationId>,
    pub from: Option<AccountId>,
    /// Sent at or after (Unix ms).
    pub since_ms: Option<u64>,
    /// Sent before (Unix ms).
    pub until_ms: Option<u64>,
}

/// One result, best first.
#[derive(Debug, Clone)]
pub struct SearchHit {
    pub conversation: ConversationId,
    pub message: MessageRecord,
    pub score: f32,
    pub snippet: Snippet,
}

/// A sorted list of documents with their score for one clause.
type Scored = Vec<(u64, f32)>;

struct Searcher {
    postings: redb::ReadOnlyTable<(&'static str, u64), &'static [u8]>,
    recent: redb::ReadOnlyTable<(u64, &'static str), &'static [u8]>,
    /// The recent segments not merged yet.
    segments: std::ops::Range<u64>,
    docs: f32,
    average: f32,
    buffer: Vec<Posting>,
}

impl Searcher {
    /// A term's postings: the merged ones, then each recent segment's (all
    /// newer), so in document order.
    fn postings(&mut self, term: &str, out: &mut Vec<Posting>) -> Result<(), StoreError> {
        for row in self.postings.range((term, 0)..=(term, u64::MAX))? {
            let (k, v) = row?;
            decode_block(k.value().1, v.value(), out)?;
        }
        for segment in self.segments.clone() {
            if let Some(v) = self.recent.get((segment, term))? {
                decode_recent(v.value(), out)?;
            }
        }
        Ok(())
    }

    /// The distinct terms from `from` on (in term order) while `keep`
    /// holds, at most `most`, merged and recent.
    fn terms_from(
        &self,
        from: &str,
        keep: impl Fn(&str) -> bool,
        most: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut terms = std::collections::BTreeSet::new();
        let mut last: Option<String> = None;
        for row in self.postings.range((from, 0)..)? {
            let (k, _) = row?;
            let term = k.value().0;
            if !keep(term) || terms.len() >= most {
                break;
            }
            if last.as_deref() != Some(term) {
                last = Some(term.to_owned());
                terms.insert(term.to_owned());
            }
        }
        for segment in self.segments.clone() {
            for row in self.recent.range((segment, from)..(segment + 1, ""))? {
                let (k, _) = row?;
                let term = k.value().1;
                if !keep(term) {
                    break;
                }
                terms.insert(term.to_owned());
            }
        }
        Ok(terms.into_iter().take(most).collect())
    }

    /// One term's documents with their BM25 score.
    fn scored(&mut self, term: &str) -> Result<Scored, StoreError> {
        let mut postings = std::mem::take(&mut self.buffer);
        postings.clear();
        self.postings(term, &mut postings)?;
        let scored = self.score(&postings);
        self.buffer = postings;
        Ok(scored)
    }

    fn score(&self, postings: &[Posting]) -> Scored {
        let df = postings.len() as f32;
        let idf = (1.0 + (self.docs - df + 0.5) / (df + 0.5)).ln().max(0.0);
        postings
            .iter()
            .map(|p| {
                let tf = f32::from(p.tf);
                let length = words_of(p.norm) / self.average.max(1.0);
                let s =
                    idf * tf * (BM25_K1 + 1.0) / (tf + BM25_K1 * (1.0 - BM25_B + BM25_B * length));
                (p.doc, s)
            })
            .collect()
    }

    /// Every document holding a term that starts with `prefix`, with its
    /// best score among them.
    fn prefixed(&mut self, prefix: &str) -> Result<Scored, StoreError> {
        let terms = self.terms_from(prefix, |t| t.starts_with(prefix), MAX_PREFIX_TERMS)?;
        let mut all = Scored::new();
        for term in &terms {
            all.extend(self.scored(term)?);
        }
        all.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        all.dedup_by_key(|d| d.0);
        Ok(all)
    }

    /// The documents of every day term from `since` to `until`.
    fn days(&mut self, since_ms: u64, until_ms: u64) -> Result<Scored, StoreError> {
        let (from, to) = (day_term(since_ms), day_term(until_ms));
        let days = self.terms_from(&from, |t| t <= to.as_str(), usize::MAX)?;
        let mut postings = Vec::new();
        for day in &days {
            self.postings(day, &mut postings)?;
        }
        let mut docs: Scored = postings.iter().map(|p| (p.doc, 0.0)).collect();
        docs.sort_unstable_by_key(|d| d.0);
        Ok(docs)
    }

    fn filter(&mut self, term: &str) -> Result<Scored, StoreError> {
        let mut postings = Vec::new();
        self.postings(term, &mut postings)?;
        Ok(postings.iter().map(|p| (p.doc, 0.0)).collect())
    }
}

/// The documents in both lists, their scores added.
fn intersect(a: &Scored, b: &Scored) -> Scored {
    let (small, large) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    let mut out = Vec::with_capacity(small.len());
    if large.len() > small.len() * 16 {
        // Few against many: look each one up.
        let mut from = 0;
        for &(doc, s) in small {
            match large[from..].binary_search_by_key(&doc, |d| d.0) {
                Ok(i) => {
                    out.push((doc, s + large[from + i].1));
                    from += i + 1;
                }
                Err(i) => from += i,
            }
        }
    } else {
        let (mut i, mut j) = (0, 0);
        while i < small.len() && j < large.len() {
            match small[i].0.cmp(&large[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    out.push((small[i].0, small[i].1 + large[j].1));
                    i += 1;
                    j += 1;
                }
            }
        }
    }
    out
}

impl super::Store {
    /// The bytes the index's tables take in the database (stored, their
    /// B-tree pages' overhead, and fragmentation).
    pub fn index_bytes(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        fn total(stats: redb::TableStats) -> u64 {
            stats.stored_bytes() + stats.metadata_bytes() + stats.fragmented_bytes()
        }
        let txn = self.db.begin_read()?;
        Ok(total(txn.open_table(POSTINGS)?.stats()?)
            + total(txn.open_table(RECENT)?.stats()?)
            + total(txn.open_table(DOCS)?.stats()?))
    }

    /// Messages matching `query` and `filter`, best first (BM25; the more
    /// recently indexed first among equal scores), skipping `offset`.
    pub fn search(
        &self,
        query: &Query,
        filter: &SearchFilter,
        offset: usize,
        limit: usize,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let txn = self.db.begin_read()?;
        let meta = txn.open_table(META)?;
        let c = Counters::load(&meta)?;
        let docs = c.docs;
        if docs == 0 || limit == 0 {
            return Ok(Vec::new());
        }
        let mut s = Searcher {
            postings: txn.open_table(POSTINGS)?,
            recent: txn.open_table(RECENT)?,
            segments: c.recent_from..c.recent_next,
            docs: docs as f32,
            average: c.words as f32 / docs as f32,
            buffer: Vec::new(),
        };
        let mut lists: Vec<Scored> = Vec::new();
        for clause in &query.clauses {
            match clause {
                Clause::Word(term) => lists.push(s.scored(term)?),
                Clause::Phrase(terms) => {
                    for term in terms {
                        lists.push(s.scored(term)?);
                    }
                }
                Clause::Prefix(prefix) => lists.push(s.prefixed(prefix)?),
            }
        }
        if let Some(c) = &filter.conversation {
            lists.push(s.filter(&conversation_term(c))?);
        }
        if let Some(a) = &filter.from {
            lists.push(s.filter(&author_term(a))?);
        }
        if filter.since_ms.is_some() || filter.until_ms.is_some() {
            let since = filter.since_ms.unwrap_or(0);
            let until = filter.until_ms.unwrap_or(u64::MAX / 2);
            lists.push(s.days(since, until)?);
        }
        lists.sort_unstable_by_key(Vec::len);
        let mut lists = lists.into_iter();
        let Some(mut matched) = lists.next() else {
            return Ok(Vec::new());
        };
        for list in lists {
            if matched.is_empty() {
                break;
            }
            matched = intersect(&matched, &list);
        }
        // Best score first, then the later document.
        let mut heap: BinaryHeap<(u32, u64)> = matched
            .into_iter()
            .map(|(doc, score)| (score.max(0.0).to_bits(), doc))
            .collect();
        let places = txn.open_table(DOCS)?;
        // Documents not merged yet have their place in their segment:
        // (first document, segment), in order.
        let mut unmerged: Vec<(u64, u64)> = Vec::new();
        for segment in s.segments.clone() {
            if let Some(v) = s.recent.get((segment, PLACES_TERM))? {
                let mut at = 0;
                if let Some(first) = take_varint(v.value(), &mut at) {
                    unmerged.push((first, segment));
                }
            }
        }
        let messages = txn.open_table(MESSAGES)?;
        let files = txn.open_table(FILES)?;
        let phrases = query.clauses.iter().any(|c| matches!(c, Clause::Phrase(_)));
        let mut skipped = 0;
        let mut hits = Vec::new();
        while let Some((score, doc)) = heap.pop() {
            let Some((conversation, id)) = place_of(doc, &unmerged, &s.recent, &places)? else {
                continue;
            };
            let Some(row) = messages.get((&conversation, id))? else {
                tracing::warn!(doc, "a search document names a message that is gone");
                continue;
            };
            let message: MessageRecord = decode("message", row.value())?;
            let at = message.sent_at_ms;
            if filter.since_ms.is_some_and(|s| at < s) || filter.until_ms.is_some_and(|u| at >= u) {
                continue;
            }
            let name = match files.get((&conversation, id))? {
                Some(f) => file_name(&decode::<FileRecord>("file", f.value())?),
                None => None,
            };
            let text = indexed_text(&message, name.as_deref());
            if phrases && !query.phrases_match(&text) {
                continue;
            }
            if skipped < offset {
                skipped += 1;
                continue;
            }
            hits.push(SearchHit {
                conversation: ConversationId(conversation),
                snippet: snippet(query, &text),
                message,
                score: f32::from_bits(score),
            });
            if hits.len() == limit {
                break;
            }
        }
        Ok(hits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_round_trip() {
        let postings: Vec<Posting> = (0..BLOCK_POSTINGS as u64)
            .map(|i| Posting {
                doc: 1_000 + i * i,
                tf: (i % 7) as u8,
                norm: (i % 200) as u8,
            })
            .collect();
        let bytes = encode_block(1_000, &postings);
        let mut back = Vec::new();
        decode_block(1_000, &bytes, &mut back).unwrap();
        assert_eq!(back, postings);
        assert!(decode_block(0, &bytes[..bytes.len() - 1], &mut Vec::new()).is_err());
        assert!(decode_block(0, &[0xff; 12], &mut Vec::new()).is_err());
    }

    #[test]
    fn norms_keep_the_rough_length() {
        assert_eq!(words_of(norm(10)), 10.0);
        assert!((words_of(norm(1_000)) - 1_000.0).abs() <= 16.0);
        assert_eq!(norm(100_000), 255);
    }

    #[test]
    fn intersections_add_scores_both_ways() {
        let a: Scored = vec![(1, 1.0), (5, 1.0), (9, 1.0)];
        let b: Scored = (0..100).map(|d| (d, 0.5)).collect();
        assert_eq!(intersect(&a, &b), [(1, 1.5), (5, 1.5), (9, 1.5)]);
        assert_eq!(intersect(&b, &a), [(1, 1.5), (5, 1.5), (9, 1.5)]);
        let c: Scored = vec![(5, 2.0), (6, 2.0)];
        assert_eq!(intersect(&a, &c), [(5, 3.0)]);
    }
}

#[cfg(test)]
#[path = "search/tests.rs"]
mod store_tests;

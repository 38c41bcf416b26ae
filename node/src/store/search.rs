//! The full-text index, kept in the database beside the messages it
//! indexes and written in the same transactions (so a crash never leaves
//! the two apart), sealed at rest like every other table.
//!
//! Layout (see `docs/search.md`; the encodings are in [`codec`]):
//! - `search_segments`: segment number → everything one write batch added
//!   to the index, as one value: its documents' places, then each term
//!   with its postings, in term order. A commit adds one key at the end of
//!   the table and reads nothing, however many words its messages hold.
//! - `search_postings`: (term, first document) → a block of up to
//!   [`BLOCK_POSTINGS`] postings of that term, in document order. When
//!   [`RECENT_SEGMENTS`] segments or [`RECENT_BYTES`] have gathered they
//!   are merged in here, term by term in order, so each page of the big
//!   table is rewritten once per merge rather than once per batch. A
//!   lookup reads a term's blocks (one range) and binary-searches each
//!   recent segment.
//! - `search_docs`: document number → (conversation, message id), filled
//!   from the segments' places when they are merged.
//! - counters in `meta` (`search_counters`, six `u64` big-endian): the
//!   next document number, the number of documents and of their words
//!   (BM25's average length), the oldest segment not merged, the next
//!   segment number, and the bytes of the segments not merged.
//!
//! Besides its words, a document is indexed under three reserved terms
//! (they start with a control character no word can hold): its
//! conversation, its author and its day, so that filters are postings
//! like words.

mod codec;

use std::collections::{BTreeMap, BinaryHeap, HashMap};

use hush_protocol::{AccountId, ConversationId, MessageId, Wire};
use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};

use self::codec::{
    BLOCK_POSTINGS, PLACE_LEN, Posting, Segment, decode_block, encode_block, encode_segment,
};
use super::{FILES, MESSAGES, META, StoreError, decode};
use crate::records::{FileRecord, MessageRecord};
use crate::search::{Clause, Query, Snippet, snippet, tokens};

pub(super) const POSTINGS: TableDefinition<(&str, u64), &[u8]> =
    TableDefinition::new("search_postings");
pub(super) const SEGMENTS: TableDefinition<u64, &[u8]> = TableDefinition::new("search_segments");
pub(super) const DOCS: TableDefinition<u64, &[u8]> = TableDefinition::new("search_docs");
/// The recent table of format 2 ((segment, term) → postings).
const FORMAT_2_RECENT: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("search_recent");

const COUNTERS_KEY: &str = "search_counters";
const COUNTERS: usize = 6;

/// The index's counters, one `meta` value (one write per batch).
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    next_doc: u64,
    docs: u64,
    words: u64,
    /// The oldest segment not merged yet, and the next to write.
    recent_from: u64,
    recent_next: u64,
    /// The bytes of the segments not merged yet.
    recent_bytes: u64,
}

impl Counters {
    fn load(meta: &impl ReadableTable<&'static str, &'static [u8]>) -> Result<Self, StoreError> {
        let Some(v) = meta.get(COUNTERS_KEY)? else {
            return Ok(Self::default());
        };
        let b = v.value();
        if b.len() != COUNTERS * 8 {
            return Err(StoreError::IndexDamaged("the counters are not 48 bytes"));
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
            recent_bytes: at(5),
        })
    }

    fn store(
        &self,
        meta: &mut redb::Table<'_, &'static str, &'static [u8]>,
    ) -> Result<(), StoreError> {
        let mut b = [0u8; COUNTERS * 8];
        for (i, n) in [
            self.next_doc,
            self.docs,
            self.words,
            self.recent_from,
            self.recent_next,
            self.recent_bytes,
        ]
        .into_iter()
        .enumerate()
        {
            b[i * 8..i * 8 + 8].copy_from_slice(&n.to_be_bytes());
        }
        meta.insert(COUNTERS_KEY, b.as_slice())?;
        Ok(())
    }

    /// Whether the recent segments are due to be merged.
    fn merge_due(&self) -> bool {
        self.recent_next - self.recent_from >= RECENT_SEGMENTS || self.recent_bytes >= RECENT_BYTES
    }
}

/// Empties the index (and drops format 2's recent table), to index the
/// history again.
pub(super) fn clear(txn: &WriteTransaction) -> Result<(), StoreError> {
    txn.delete_table(FORMAT_2_RECENT)?;
    txn.delete_table(SEGMENTS)?;
    txn.delete_table(POSTINGS)?;
    txn.delete_table(DOCS)?;
    txn.open_table(META)?.remove(COUNTERS_KEY)?;
    txn.open_table(SEGMENTS)?;
    txn.open_table(POSTINGS)?;
    txn.open_table(DOCS)?;
    Ok(())
}

/// Recent segments kept before they are merged into the main postings...
const RECENT_SEGMENTS: u64 = 64;
/// ... or their bytes, whichever comes first: a query reads every recent
/// segment, so large batches (a history import) merge sooner.
const RECENT_BYTES: u64 = 1 << 20;
/// Most distinct terms one prefix expands to (the first in term order).
pub const MAX_PREFIX_TERMS: usize = 512;

const BM25_K1: f32 = 1.2;
const BM25_B: f32 = 0.75;

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

/// Adds `posting` to `term`'s list, copying the term only if it is new.
fn add_posting(terms: &mut BTreeMap<String, Vec<Posting>>, term: &str, posting: Posting) {
    match terms.get_mut(term) {
        Some(list) => list.push(posting),
        None => {
            terms.insert(term.to_owned(), vec![posting]);
        }
    }
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

    /// Adds the gathered messages to the index: one new segment.
    pub(super) fn flush(&mut self, txn: &WriteTransaction) -> Result<(), StoreError> {
        if self.docs.is_empty() {
            self.files.clear();
            return Ok(());
        }
        let mut meta = txn.open_table(META)?;
        let mut c = Counters::load(&meta)?;
        let first = c.next_doc;
        let mut places = Vec::with_capacity(self.docs.len() * PLACE_LEN);
        let mut terms: BTreeMap<String, Vec<Posting>> = BTreeMap::new();
        let mut own: Vec<String> = Vec::new();
        // A batch is mostly one conversation and a few authors: their
        // terms (hex of 32 bytes each) are made once.
        let mut conversations: HashMap<ConversationId, String> = HashMap::new();
        let mut authors: HashMap<AccountId, String> = HashMap::new();
        for new in self.docs.drain(..) {
            let key = (new.conversation, new.message.id.0);
            let file = self.files.get(&key).map(String::as_str);
            let text = indexed_text(&new.message, file);
            let doc = c.next_doc;
            c.next_doc += 1;
            c.docs += 1;
            own.clear();
            own.extend(tokens(&text).into_iter().map(|t| t.term));
            c.words += own.len() as u64;
            let norm = norm(own.len());
            own.sort_unstable();
            // Each reserved term once (they differ from every word).
            let reserved = Posting { doc, tf: 1, norm };
            let conversation = conversations
                .entry(new.conversation)
                .or_insert_with(|| conversation_term(&new.conversation));
            add_posting(&mut terms, conversation, reserved);
            let author = authors
                .entry(new.message.from)
                .or_insert_with(|| author_term(&new.message.from));
            add_posting(&mut terms, author, reserved);
            add_posting(&mut terms, &day_term(new.message.sent_at_ms), reserved);
            // Equal words are adjacent: count each run once.
            let mut i = 0;
            while i < own.len() {
                let run = own[i..].iter().take_while(|t| **t == own[i]).count();
                let tf = u8::try_from(run).unwrap_or(u8::MAX);
                let posting = Posting { doc, tf, norm };
                match terms.get_mut(own[i].as_str()) {
                    Some(list) => list.push(posting),
                    None => {
                        terms.insert(std::mem::take(&mut own[i]), vec![posting]);
                    }
                }
                i += run;
            }
            places.extend_from_slice(&new.conversation.0);
            places.extend_from_slice(&new.message.id.0.to_be_bytes());
        }
        self.files.clear();
        let segment = encode_segment(first, &places, &terms);
        txn.open_table(SEGMENTS)?
            .insert(c.recent_next, segment.as_slice())?;
        c.recent_next += 1;
        c.recent_bytes += segment.len() as u64;
        c.store(&mut meta)?;
        if c.merge_due() {
            drop(meta);
            merge(txn)?;
        }
        Ok(())
    }

    /// Takes the messages of a conversation (each with its file) out of the
    /// index: the conversation's documents are its reserved term's
    /// postings; each one's terms come from its message again.
    /// Takes `gone`, messages of one conversation, out of the index (a
    /// whole conversation, or messages that disappeared).
    pub(super) fn remove_messages(
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
            let place = docs.get(doc)?.map(|v| v.value().to_vec());
            let id = place
                .as_deref()
                .and_then(|p| p.get(32..48))
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map(u128::from_be_bytes);
            let Some((message, file)) = id.and_then(|id| by_id.get(&id).copied()) else {
                continue;
            };
            docs.remove(doc)?;
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
/// term in order, and their places into `search_docs`.
fn merge(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut meta = txn.open_table(META)?;
    let mut c = Counters::load(&meta)?;
    if c.recent_from == c.recent_next {
        return Ok(());
    }
    // Segments in order: each term's postings come out in document order.
    let mut by_term: BTreeMap<String, Vec<Posting>> = BTreeMap::new();
    {
        let segments = txn.open_table(SEGMENTS)?;
        let mut docs = txn.open_table(DOCS)?;
        for row in segments.range(c.recent_from..c.recent_next)? {
            let (_, v) = row?;
            let bytes = v.value();
            let segment = Segment::parse(bytes)?;
            for (doc, place) in segment.places(bytes) {
                docs.insert(doc, place)?;
            }
            segment.each_term(bytes, |term, postings| {
                match by_term.get_mut(term) {
                    Some(list) => list.append(postings),
                    None => {
                        by_term.insert(term.to_owned(), std::mem::take(postings));
                    }
                }
                Ok(())
            })?;
        }
    }
    txn.delete_table(SEGMENTS)?;
    txn.open_table(SEGMENTS)?;
    let mut table = txn.open_table(POSTINGS)?;
    let mut block = Vec::with_capacity(BLOCK_POSTINGS);
    for (term, new) in &by_term {
        append(&mut table, term, new, &mut block)?;
    }
    c.recent_from = c.recent_next;
    c.recent_bytes = 0;
    c.store(&mut meta)?;
    Ok(())
}

/// The segments not merged yet, parsed once per search.
struct Recent {
    segments: Vec<(redb::AccessGuard<'static, &'static [u8]>, Segment)>,
}

impl Recent {
    fn load(
        table: &redb::ReadOnlyTable<u64, &'static [u8]>,
        range: std::ops::Range<u64>,
    ) -> Result<Self, StoreError> {
        let mut segments = Vec::new();
        for n in range {
            if let Some(v) = table.get(n)? {
                let segment = Segment::parse(v.value())?;
                segments.push((v, segment));
            }
        }
        Ok(Self { segments })
    }

    fn postings(&self, term: &str, out: &mut Vec<Posting>) -> Result<(), StoreError> {
        for (v, segment) in &self.segments {
            segment.postings(v.value(), term, out)?;
        }
        Ok(())
    }

    /// Document `doc`'s place, if a recent segment holds it.
    fn place(&self, doc: u64) -> Option<&[u8]> {
        let i = self.segments.partition_point(|(_, s)| s.docs().end <= doc);
        let (v, segment) = self.segments.get(i)?;
        segment.place(v.value(), doc)
    }
}

/// Where document `doc` points: (conversation, message id), from its
/// recent segment or from `search_docs`; `None` if it is not there
/// (removed).
fn place_of(
    doc: u64,
    recent: &Recent,
    docs: &impl ReadableTable<u64, &'static [u8]>,
) -> Result<Option<([u8; 32], u128)>, StoreError> {
    let place = match recent.place(doc) {
        Some(p) => p.to_vec(),
        None => match docs.get(doc)? {
            Some(v) => v.value().to_vec(),
            None => return Ok(None),
        },
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
    recent: Recent,
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
        self.recent.postings(term, out)
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
        for (v, segment) in &self.recent.segments {
            for term in segment.terms_from(v.value(), from).take(most) {
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
            + total(txn.open_table(SEGMENTS)?.stats()?)
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
            recent: Recent::load(&txn.open_table(SEGMENTS)?, c.recent_from..c.recent_next)?,
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
        let messages = txn.open_table(MESSAGES)?;
        let files = txn.open_table(FILES)?;
        let phrases = query.clauses.iter().any(|c| matches!(c, Clause::Phrase(_)));
        let mut skipped = 0;
        let mut hits = Vec::new();
        while let Some((score, doc)) = heap.pop() {
            let Some((conversation, id)) = place_of(doc, &s.recent, &places)? else {
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

//! The index through the store: what is found, in which order, with which
//! filters, and that it follows the messages it indexes.

use hush_protocol::{AccountId, ConversationId, MessageId};

use super::super::{Durability, Op, Store};
use super::SearchFilter;
use crate::records::{FileRecord, FileState, MessageKind, MessageRecord, Status};
use crate::search::Query;
use hush_host::sealed_db::DbKey;

const ALICE: AccountId = AccountId([1; 32]);
const BOB: AccountId = AccountId([2; 32]);
const BOB_CHAT: ConversationId = ConversationId([10; 32]);
const CLUB: ConversationId = ConversationId([11; 32]);
const DAY: u64 = 86_400_000;

fn message(id: u128, from: AccountId, text: &str, sent_at_ms: u64) -> MessageRecord {
    MessageRecord {
        id: MessageId(id),
        from,
        outgoing: from == ALICE,
        text: text.into(),
        status: Status::Delivered,
        sent_at_ms,
        stored_at_ms: sent_at_ms,
        timer_secs: None,
        kind: MessageKind::Message,
    }
}

fn open(dir: &tempfile::TempDir) -> Store {
    Store::open(&dir.path().join("hush.redb"), &DbKey::from_bytes([5; 32])).unwrap()
}

fn put(store: &Store, messages: Vec<(ConversationId, MessageRecord)>) {
    let ops = messages
        .into_iter()
        .map(|(c, m)| Op::PutMessage(c, m))
        .collect();
    store.apply(ops, Durability::Now).unwrap();
}

fn texts(store: &Store, query: &str, filter: &SearchFilter) -> Vec<String> {
    let query = Query::parse(query).unwrap();
    store
        .search(&query, filter, 0, 50)
        .unwrap()
        .into_iter()
        .map(|h| h.message.text)
        .collect()
}

fn all() -> SearchFilter {
    SearchFilter::default()
}

fn history(store: &Store) {
    put(
        store,
        vec![
            (
                BOB_CHAT,
                message(1, BOB, "Lunch at the lighthouse on Friday?", 10 * DAY),
            ),
            (
                BOB_CHAT,
                message(2, ALICE, "yes, lunch! see you at noon", 10 * DAY + 5),
            ),
            (
                BOB_CHAT,
                message(3, BOB, "Grüße aus Köln, café crème", 11 * DAY),
            ),
            (
                CLUB,
                message(4, BOB, "the club meets at the lighthouse", 12 * DAY),
            ),
            (
                CLUB,
                message(
                    5,
                    ALICE,
                    "meeting notes: lighthouse lighthouse lighthouse",
                    13 * DAY,
                ),
            ),
            (CLUB, message(6, ALICE, "日本語のメッセージ", 14 * DAY)),
        ],
    );
}

#[test]
fn words_are_ranked_by_bm25() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    history(&store);
    let found = texts(&store, "lighthouse", &all());
    // Three times in a short message beats once.
    assert_eq!(found[0], "meeting notes: lighthouse lighthouse lighthouse");
    assert_eq!(found.len(), 3);
    assert!(texts(&store, "submarine", &all()).is_empty());
}

#[test]
fn equal_scores_put_the_newer_first() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    put(
        &store,
        (1..=3)
            .map(|i| (BOB_CHAT, message(i, BOB, "same words here", i as u64)))
            .collect(),
    );
    let query = Query::parse("words").unwrap();
    let ids: Vec<u128> = store
        .search(&query, &all(), 0, 10)
        .unwrap()
        .iter()
        .map(|h| h.message.id.0)
        .collect();
    assert_eq!(ids, [3, 2, 1]);
}

#[test]
fn diacritics_case_and_cjk_match() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    history(&store);
    assert_eq!(
        texts(&store, "GRUSSE koln", &all()),
        ["Grüße aus Köln, café crème"]
    );
    assert_eq!(
        texts(&store, "Cafe", &all()),
        ["Grüße aus Köln, café crème"]
    );
    assert_eq!(texts(&store, "日本語", &all()), ["日本語のメッセージ"]);
    assert!(texts(&store, "語本", &all()).is_empty());
}

#[test]
fn phrases_prefixes_and_all_words() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    history(&store);
    assert_eq!(
        texts(&store, "\"see you\"", &all()),
        ["yes, lunch! see you at noon"]
    );
    assert!(texts(&store, "\"you see\"", &all()).is_empty());
    let mut meet = texts(&store, "meet*", &all());
    meet.sort();
    assert_eq!(
        meet,
        [
            "meeting notes: lighthouse lighthouse lighthouse",
            "the club meets at the lighthouse"
        ]
    );
    // Every word must be there.
    assert_eq!(
        texts(&store, "lunch lighthouse", &all()),
        ["Lunch at the lighthouse on Friday?"]
    );
}

#[test]
fn filters_narrow_by_conversation_author_and_date() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    history(&store);
    let in_club = SearchFilter {
        conversation: Some(CLUB),
        ..all()
    };
    assert_eq!(texts(&store, "lighthouse", &in_club).len(), 2);
    let by_bob = SearchFilter {
        from: Some(BOB),
        ..all()
    };
    let mut found = texts(&store, "lighthouse", &by_bob);
    found.sort();
    assert_eq!(
        found,
        [
            "Lunch at the lighthouse on Friday?",
            "the club meets at the lighthouse"
        ]
    );
    let days = SearchFilter {
        since_ms: Some(11 * DAY),
        until_ms: Some(13 * DAY),
        ..all()
    };
    assert_eq!(
        texts(&store, "lighthouse", &days),
        ["the club meets at the lighthouse"]
    );
    // Exact bounds inside a day.
    let minutes = SearchFilter {
        since_ms: Some(10 * DAY + 1),
        ..all()
    };
    assert_eq!(
        texts(&store, "lunch", &minutes),
        ["yes, lunch! see you at noon"]
    );
}

#[test]
fn pages_do_not_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    put(
        &store,
        (1..=300)
            .map(|i| {
                (
                    BOB_CHAT,
                    message(i, BOB, &format!("report number {i}"), i as u64),
                )
            })
            .collect(),
    );
    let query = Query::parse("report").unwrap();
    let mut seen = std::collections::HashSet::new();
    for page in 0..3 {
        let hits = store.search(&query, &all(), page * 100, 100).unwrap();
        assert_eq!(hits.len(), 100);
        for h in hits {
            assert!(seen.insert(h.message.id.0));
        }
    }
    assert!(store.search(&query, &all(), 300, 100).unwrap().is_empty());
}

#[test]
fn a_deleted_conversation_leaves_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    history(&store);
    store
        .apply(vec![Op::DeleteConversation(CLUB)], Durability::Now)
        .unwrap();
    assert_eq!(
        texts(&store, "lighthouse", &all()),
        ["Lunch at the lighthouse on Friday?"]
    );
    assert!(texts(&store, "日本語", &all()).is_empty());
    // And stays consistent for what comes after.
    put(
        &store,
        vec![(CLUB, message(7, BOB, "back at the lighthouse", 20 * DAY))],
    );
    assert_eq!(texts(&store, "lighthouse", &all()).len(), 2);
}

/// A message that disappears is listed in the expiry order from when its
/// timer runs out, and deleting it takes it out of everything: the
/// message, its file, its unread mark, receipts, outbox entries, the index.
#[test]
fn a_disappeared_message_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    history(&store);
    let mut timed = message(8, BOB, "a secret lighthouse", 13 * DAY);
    timed.timer_secs = Some(60);
    let mut kept = message(9, BOB, "the lighthouse stays", 13 * DAY);
    kept.timer_secs = None;
    let file = FileRecord {
        manifest: Vec::new(),
        outgoing: false,
        source: hush_protocol::DeviceId([2; 32]),
        state: FileState::Offered,
        path: None,
        error: None,
    };
    let outbox = crate::records::OutboxRecord {
        kind: hush_protocol::device::OutboxKind::Message,
        conversation: BOB_CHAT,
        recipient: BOB,
        device: hush_protocol::DeviceId([2; 32]),
        payload: Vec::new(),
        envelope: None,
        created_at_ms: 0,
    };
    store
        .apply(
            vec![
                Op::PutMessage(BOB_CHAT, timed),
                Op::PutMessage(BOB_CHAT, kept),
                Op::PutFile(BOB_CHAT, MessageId(8), file),
                Op::PutGroupReceipt(BOB_CHAT, MessageId(8), BOB, 1),
                Op::PutOutbox((MessageId(8), hush_protocol::DeviceId([2; 32])), outbox),
            ],
            Durability::Now,
        )
        .unwrap();
    assert!(store.expired(13 * DAY + 59_999, 10).unwrap().is_empty());
    let due = store.expired(13 * DAY + 60_000, 10).unwrap();
    assert_eq!(due, [(BOB_CHAT, MessageId(8))]);
    assert_eq!(texts(&store, "secret", &all()), ["a secret lighthouse"]);
    store
        .apply(
            vec![Op::DeleteMessages(BOB_CHAT, vec![MessageId(8)])],
            Durability::Now,
        )
        .unwrap();
    assert!(store.message(&BOB_CHAT, MessageId(8)).unwrap().is_none());
    assert!(store.file(&BOB_CHAT, MessageId(8)).unwrap().is_none());
    assert!(!store.unread(&BOB_CHAT).unwrap().contains(&MessageId(8)));
    assert!(store.outbox().unwrap().is_empty());
    assert!(
        store
            .group_receipts(&BOB_CHAT, MessageId(8))
            .unwrap()
            .is_empty()
    );
    assert!(store.expired(u64::MAX, 10).unwrap().is_empty());
    assert!(texts(&store, "secret", &all()).is_empty());
    // The rest of the conversation is as it was, in the index too.
    assert_eq!(
        texts(&store, "lighthouse", &all()).len(),
        4,
        "{:?}",
        texts(&store, "lighthouse", &all())
    );
    assert!(store.message(&BOB_CHAT, MessageId(9)).unwrap().is_some());
}

#[test]
fn a_message_stored_twice_is_indexed_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    history(&store);
    history(&store);
    assert_eq!(texts(&store, "lighthouse", &all()).len(), 3);
}

#[test]
fn the_index_survives_reopening() {
    let dir = tempfile::tempdir().unwrap();
    history(&open(&dir));
    let store = open(&dir);
    assert_eq!(texts(&store, "lighthouse", &all()).len(), 3);
}

#[test]
fn big_postings_span_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    for batch in 0..5u128 {
        put(
            &store,
            (0..100)
                .map(|i| {
                    let id = batch * 100 + i + 1;
                    let extra = if id % 50 == 0 { " rare" } else { "" };
                    (
                        BOB_CHAT,
                        message(id, BOB, &format!("common{extra}"), id as u64),
                    )
                })
                .collect(),
        );
    }
    assert_eq!(texts(&store, "rare", &all()).len(), 10);
    let query = Query::parse("common").unwrap();
    assert_eq!(store.search(&query, &all(), 0, 200).unwrap().len(), 200);
    assert_eq!(store.search(&query, &all(), 450, 200).unwrap().len(), 50);
    assert_eq!(texts(&store, "common rare", &all()).len(), 10);
}

#[test]
fn a_home_from_before_the_index_is_indexed_when_opened() {
    use redb::{Database, TableDefinition};
    const OLD_MESSAGES: TableDefinition<(&[u8; 32], u128), &[u8]> =
        TableDefinition::new("messages");
    let dir = tempfile::tempdir().unwrap();
    {
        // Format 1: plaintext, no format key, no index.
        let db = Database::create(dir.path().join("hush.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut messages = txn.open_table(OLD_MESSAGES).unwrap();
            for (c, m) in [
                (BOB_CHAT, message(1, BOB, "an old lighthouse story", DAY)),
                (CLUB, message(2, ALICE, "older still", DAY)),
            ] {
                let bytes = postcard::to_allocvec(&m).unwrap();
                messages.insert((&c.0, m.id.0), bytes.as_slice()).unwrap();
            }
        }
        txn.commit().unwrap();
    }
    let store = open(&dir);
    assert_eq!(
        texts(&store, "lighthouse", &all()),
        ["an old lighthouse story"]
    );
    assert_eq!(
        super::super::upgrade::format(&store.db).unwrap(),
        super::super::upgrade::FORMAT
    );
    // Indexed once: opening again adds nothing.
    drop(store);
    let store = open(&dir);
    assert_eq!(texts(&store, "old*", &all()).len(), 2);
}

/// Format 2 kept each recent posting list under its own key in
/// `search_recent`; such an index is rebuilt in the current layout.
#[test]
fn a_home_with_the_format_2_index_is_reindexed_when_opened() {
    use redb::{ReadableDatabase, TableDefinition};
    const RECENT_2: TableDefinition<(u64, &str), &[u8]> = TableDefinition::new("search_recent");
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    put(
        &store,
        vec![
            (BOB_CHAT, message(1, BOB, "the harbour at dawn", DAY)),
            (CLUB, message(2, ALICE, "dawn patrol", DAY)),
        ],
    );
    let txn = store.db.begin_write().unwrap();
    {
        // What format 2 left: its own counters (40 bytes), its recent
        // table, no segments.
        let mut meta = txn.open_table(super::super::META).unwrap();
        meta.insert("format", 2u32.to_be_bytes().as_slice())
            .unwrap();
        meta.insert("search_counters", [0u8; 40].as_slice())
            .unwrap();
        txn.open_table(RECENT_2)
            .unwrap()
            .insert((0, "dawn"), [1u8, 1, 0, 1, 1].as_slice())
            .unwrap();
    }
    txn.delete_table(super::SEGMENTS).unwrap();
    txn.commit().unwrap();
    drop(store);
    let store = open(&dir);
    assert_eq!(texts(&store, "dawn", &all()).len(), 2);
    assert_eq!(texts(&store, "harbour", &all()), ["the harbour at dawn"]);
    assert_eq!(
        super::super::upgrade::format(&store.db).unwrap(),
        super::super::upgrade::FORMAT
    );
    let txn = store.db.begin_read().unwrap();
    assert!(
        txn.open_table(RECENT_2).is_err(),
        "the old table is dropped"
    );
}

#[test]
fn a_home_from_a_newer_hush_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let txn = store.db.begin_write().unwrap();
    txn.open_table(super::super::META)
        .unwrap()
        .insert("format", 99u32.to_be_bytes().as_slice())
        .unwrap();
    txn.commit().unwrap();
    drop(store);
    let err = Store::open(&dir.path().join("hush.redb"), &DbKey::from_bytes([5; 32])).unwrap_err();
    assert!(
        matches!(
            err,
            super::super::StoreError::TooNew {
                found: 99,
                supported: super::super::upgrade::FORMAT
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade hush"));
}

/// Enough batches that recent segments are merged into the main postings
/// (more than once), with some left recent: every query sees both.
#[test]
fn merged_and_recent_postings_answer_together() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir);
    let mut id = 0u128;
    for batch in 0..75u64 {
        let messages = (0..10)
            .map(|i| {
                id += 1;
                let conversation = if i % 2 == 0 { BOB_CHAT } else { CLUB };
                let text = format!("tide{batch} wave{i} everywhere");
                (conversation, message(id, BOB, &text, batch * DAY))
            })
            .collect();
        put(&store, messages);
    }
    assert_eq!(texts(&store, "everywhere", &all()).len(), 50);
    let query = Query::parse("everywhere").unwrap();
    assert_eq!(store.search(&query, &all(), 0, 200).unwrap().len(), 200);
    assert_eq!(store.search(&query, &all(), 700, 200).unwrap().len(), 50);
    assert_eq!(texts(&store, "tide3", &all()).len(), 10);
    assert_eq!(texts(&store, "tide74", &all()).len(), 10);
    // Prefixes and days span both tiers.
    let query = Query::parse("tide7*").unwrap();
    assert_eq!(store.search(&query, &all(), 0, 200).unwrap().len(), 60);
    let days = SearchFilter {
        since_ms: Some(30 * DAY),
        until_ms: Some(70 * DAY),
        conversation: Some(CLUB),
        ..all()
    };
    let query = Query::parse("wave1").unwrap();
    assert_eq!(store.search(&query, &days, 0, 200).unwrap().len(), 40);
    // A removal reaches merged and recent postings.
    store
        .apply(vec![Op::DeleteConversation(CLUB)], Durability::Now)
        .unwrap();
    assert!(texts(&store, "wave1", &all()).is_empty());
    assert_eq!(
        store
            .search(&Query::parse("everywhere").unwrap(), &all(), 0, 1000)
            .unwrap()
            .len(),
        375
    );
    drop(store);
    let store = open(&dir);
    assert_eq!(texts(&store, "tide74", &all()).len(), 5);
}

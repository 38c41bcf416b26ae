use super::*;
use crate::records::Status;
use hush_protocol::device::{DeviceLookup, SeenKey};

fn key() -> DbKey {
    DbKey::from_bytes([9; 32])
}

fn clock(store: &Store) -> Option<u128> {
    store.clock().unwrap().map(|id| id.0)
}

#[test]
fn a_batch_only_the_log_holds_is_applied_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    drop(Store::open(&path, &key()).unwrap());
    // What a crash leaves: the log synced, redb's commit of the same
    // batch never made durable.
    let (mut wal, found) = Wal::open(&path.with_extension("wal"), WAL_CAPACITY).unwrap();
    assert!(found.is_empty());
    wal.restart(1);
    let batch = postcard::to_allocvec(&vec![Op::PutClock(MessageId(42))]).unwrap();
    wal.append(&key().seal(WAL_AD, &batch), true).unwrap();
    drop(wal);

    let store = Store::open(&path, &key()).unwrap();
    assert_eq!(clock(&store), Some(42));
    // Applied once and made durable: the next batch goes on from there.
    store
        .apply(vec![Op::PutClock(MessageId(43))], Durability::Now)
        .unwrap();
    drop(store);
    let store = Store::open(&path, &key()).unwrap();
    assert_eq!(clock(&store), Some(43));
}

#[test]
fn a_batch_the_database_refuses_is_taken_back_out_of_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    let store = Store::open(&path, &key()).unwrap();
    // A message record that does not decode: raising its status fails in
    // redb's transaction (on the writer thread), after the log already
    // took the batch and synced it.
    let (conv, id) = (ConversationId([3; 32]), MessageId(5));
    let txn = store.db.begin_write().unwrap();
    txn.open_table(MESSAGES)
        .unwrap()
        .insert((&conv.0, id.0), [0xff_u8; 3].as_slice())
        .unwrap();
    txn.commit().unwrap();
    let refused = store.apply(
        vec![
            Op::PutClock(MessageId(9)),
            Op::RaiseStatus(conv, id, Status::Delivered),
        ],
        Durability::Now,
    );
    assert!(
        matches!(refused, Err(StoreError::Corrupt { .. })),
        "{refused:?}"
    );
    assert_eq!(clock(&store), None, "nothing of the batch is in redb");
    // What a crash now would replay: nothing (the refused batch, replayed,
    // would fail the same way and keep the home from opening).
    let logged = || -> Vec<Vec<Op>> {
        let (_, records) = Wal::open(&path.with_extension("wal"), WAL_CAPACITY).unwrap();
        records
            .iter()
            .map(|r| postcard::from_bytes(&key().open(WAL_AD, &r.payload).unwrap()).unwrap())
            .collect()
    };
    assert!(logged().is_empty());
    // The next batch takes the refused one's place.
    store
        .apply(vec![Op::PutClock(MessageId(10))], Durability::Now)
        .unwrap();
    assert!(
        matches!(logged().as_slice(), [ops] if matches!(ops.as_slice(), [Op::PutClock(MessageId(10))]))
    );
    drop(store);
    let store = Store::open(&path, &key()).unwrap();
    assert_eq!(clock(&store), Some(10));
}

#[test]
fn records_redb_already_holds_are_not_applied_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    let store = Store::open(&path, &key()).unwrap();
    store
        .apply(vec![Op::PutClock(MessageId(1))], Durability::Now)
        .unwrap();
    // Made durable in redb (which records the log position), but the
    // log not restarted, as if the process died between the two.
    store.db.begin_write().unwrap().commit().unwrap();
    store
        .apply(vec![Op::PutClock(MessageId(2))], Durability::Lazy)
        .unwrap();
    store.db.begin_write().unwrap().commit().unwrap();
    // Overwrite the clock outside the log: replaying either record
    // would bring an old value back.
    let txn = store.db.begin_write().unwrap();
    txn.open_table(META)
        .unwrap()
        .insert(CLOCK_KEY, 7u128.to_be_bytes().as_slice())
        .unwrap();
    txn.commit().unwrap();
    assert!(store.wal.lock().unwrap().used() > 0);
    // Closing checkpoints but writes nothing into the log: both records
    // are still there to be read.
    drop(store);

    let store = Store::open(&path, &key()).unwrap();
    assert_eq!(clock(&store), Some(7));
}

#[test]
fn a_batch_too_big_for_the_log_is_committed_durably_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    let store = Store::open(&path, &key()).unwrap();
    let big = "x".repeat(WAL_CAPACITY as usize);
    store
        .apply(vec![Op::PutOlmAccount(big.clone())], Durability::Now)
        .unwrap();
    store
        .apply(vec![Op::PutClock(MessageId(5))], Durability::Now)
        .unwrap();
    drop(store);
    let store = Store::open(&path, &key()).unwrap();
    assert_eq!(store.olm_account().unwrap().len(), big.len());
    assert_eq!(clock(&store), Some(5));
}

#[test]
fn a_full_log_is_checkpointed_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    let store = Store::open(&path, &key()).unwrap();
    let pickle = "p".repeat(100_000);
    for i in 0..100u128 {
        store
            .apply(
                vec![
                    Op::PutOlmAccount(pickle.clone()),
                    Op::PutClock(MessageId(i)),
                ],
                Durability::Now,
            )
            .unwrap();
    }
    assert!(store.wal.lock().unwrap().used() < WAL_CAPACITY);
    drop(store);
    assert_eq!(clock(&Store::open(&path, &key()).unwrap()), Some(99));
}

/// Tables keyed by `&[u8; 32]` (compared with memcmp, encoded without an
/// allocation) read homes written when they were keyed by `[u8; 32]`:
/// redb names both types `[u8;32]` and encodes them the same.
#[test]
fn a_home_written_with_array_keys_reads_with_reference_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    let conversation = [3u8; 32];
    let record = super::ops::MessageRecordV3 {
        id: MessageId(9),
        from: AccountId([4; 32]),
        outgoing: false,
        text: "from an older home".into(),
        status: Status::Delivered,
        sent_at_ms: 1,
        stored_at_ms: 2,
    };
    {
        const OLD_SEEN: TableDefinition<[u8; 32], u64> = TableDefinition::new("seen_envelopes");
        const OLD_MESSAGES: TableDefinition<([u8; 32], u128), &[u8]> =
            TableDefinition::new("messages");
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(OLD_SEEN)
            .unwrap()
            .insert([7u8; 32], 5)
            .unwrap();
        txn.open_table(OLD_MESSAGES)
            .unwrap()
            .insert((conversation, 9), encode(&record).as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    let store = Store::open(&path, &key()).unwrap();
    let seen = |digest: [u8; 32]| SeenKey {
        prefix: [1; 16],
        digest,
    };
    assert!(store.seen(&seen([7; 32])).unwrap());
    assert!(!store.seen(&seen([8; 32])).unwrap());
    let history = store
        .history(&ConversationId(conversation), None, 10)
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].text, "from an older home");
    store
        .apply(vec![Op::PutSeen([8; 32], 6)], Durability::Now)
        .unwrap();
    assert!(store.seen(&seen([8; 32])).unwrap());
}

/// Digests kept under their chain's prefix are found by the whole key
/// only; those of an older home (the digest alone) by the digest; both
/// are pruned by age.
#[test]
fn received_digests_are_kept_by_chain_and_pruned_with_the_older_ones() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hush.redb"), &key()).unwrap();
    let legacy = |store: &Store| store.legacy_seen.load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        !legacy(&store),
        "a new home never reads the digests-alone table"
    );
    let key_of = |chain: u8, at: u64, digest: u8| SeenKey {
        prefix: {
            let mut p = [chain; 16];
            p[8..].copy_from_slice(&at.to_be_bytes());
            p
        },
        digest: [digest; 32],
    };
    let (a, b) = (key_of(1, 1, 7), key_of(1, 2, 8));
    store
        .apply(
            vec![
                Op::PutSeenKey(a.prefix, a.digest, 10),
                Op::PutSeenKey(b.prefix, b.digest, 20),
                Op::PutSeen([9; 32], 5),
            ],
            Durability::Now,
        )
        .unwrap();
    assert!(store.seen(&a).unwrap() && store.seen(&b).unwrap());
    // The same digest in another place of the chain is another message.
    assert!(!store.seen(&key_of(1, 3, 7)).unwrap());
    assert!(store.seen(&key_of(4, 4, 9)).unwrap(), "an older digest");
    assert!(
        DeviceLookup::seen(&store.snapshot().unwrap(), &key_of(4, 4, 9)).unwrap(),
        "an older digest, through a snapshot"
    );
    assert_eq!(store.prune_seen(15).unwrap(), 2);
    assert!(!store.seen(&a).unwrap() && !store.seen(&key_of(4, 4, 9)).unwrap());
    assert!(store.seen(&b).unwrap());
    assert!(!legacy(&store), "pruned empty: not read any more");
}

#[test]
fn a_plaintext_home_is_sealed_in_place_with_what_its_log_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    {
        // A home made before the store was sealed: a plaintext database and
        // a batch only its log holds (a crash before the checkpoint).
        let plain = Store::from_db(Database::create(&path).unwrap(), &path, None, false).unwrap();
        plain
            .apply(vec![Op::PutClock(MessageId(7))], Durability::Now)
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    assert!(
        contains(&before, b"meta"),
        "a plaintext home names its tables"
    );
    let store = Store::open(&path, &key()).unwrap();
    assert_eq!(clock(&store), Some(7), "the log's batch survived");
    drop(store);
    let after = std::fs::read(&path).unwrap();
    assert!(!contains(&after, b"meta"), "nothing in the clear");
    assert!(!path.with_extension("redb.sealing").exists());
    // And it opens again, sealed, only with its key.
    assert_eq!(clock(&Store::open(&path, &key()).unwrap()), Some(7));
    assert!(Store::open(&path, &DbKey::from_bytes([1; 32])).is_err());
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_contacts_grant_is_kept_across_restarts_and_goes_with_its_right() {
    use hush_protocol::{AccountId, PairwiseKey, Wire};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    let device = DeviceId([4; 32]);
    // Any signed right will do: one of another pairwise mailbox.
    let right = PairwiseKey::derive(&[5; 32], &AccountId([3; 32]), 1)
        .grant([1; 16])
        .right;
    let grant = PairwiseKey::derive(&[4; 32], &AccountId([2; 32]), 7).grant([1; 16]);
    let store = Store::open(&path, &key()).unwrap();
    store
        .apply(
            vec![
                Op::PutRight(device, right),
                Op::PutGrant(device, grant.to_bytes()),
                Op::PutDrained(1_234),
            ],
            Durability::Now,
        )
        .unwrap();
    drop(store);
    let store = Store::open(&path, &key()).unwrap();
    assert_eq!(store.rights().unwrap(), [(device, right)]);
    assert_eq!(store.grants().unwrap(), [(device, grant)]);
    assert_eq!(store.drained_at().unwrap(), Some(1_234));
    // Forgetting the device's right forgets its mailbox too.
    store
        .apply(vec![Op::DeleteRight(device)], Durability::Now)
        .unwrap();
    assert!(store.rights().unwrap().is_empty());
    assert!(store.grants().unwrap().is_empty());
}

#[test]
fn unfinished_uploads_written_with_a_batch_are_there_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    drop(Store::open(&path, &key()).unwrap());
    // The batch of a file's send, as a crash leaves it: in the log only.
    let uploads: Vec<(u128, Vec<u8>)> = vec![(7, vec![1; 38]), (7, vec![2; 38])];
    let (mut wal, _) = Wal::open(&path.with_extension("wal"), WAL_CAPACITY).unwrap();
    wal.restart(1);
    let batch = postcard::to_allocvec(&vec![Op::PutPendingUploads(uploads.clone())]).unwrap();
    wal.append(&key().seal(WAL_AD, &batch), true).unwrap();
    drop(wal);
    let store = Store::open(&path, &key()).unwrap();
    assert_eq!(store.pending_uploads().unwrap(), uploads);
    // At most the newest MAX_PENDING_UPLOADS are kept; none clears them.
    let many: Vec<(u128, Vec<u8>)> = (0..MAX_PENDING_UPLOADS as u128 + 5)
        .map(|i| (i, vec![3; 38]))
        .collect();
    store
        .apply(vec![Op::PutPendingUploads(many.clone())], Durability::Now)
        .unwrap();
    assert_eq!(store.pending_uploads().unwrap(), many[5..]);
    store
        .apply(vec![Op::PutPendingUploads(Vec::new())], Durability::Now)
        .unwrap();
    assert!(store.pending_uploads().unwrap().is_empty());
}

#[test]
fn statuses_are_read_in_the_order_asked_with_none_for_messages_not_stored() {
    use hush_protocol::device::{MessageKind, MessageRecord};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hush.redb"), &key()).unwrap();
    let conversation = ConversationId([5; 32]);
    let record = |id: u128, status| MessageRecord {
        id: MessageId(id),
        from: AccountId([4; 32]),
        outgoing: true,
        text: "hi".into(),
        status,
        sent_at_ms: 1,
        stored_at_ms: 2,
        timer_secs: None,
        kind: MessageKind::Message,
    };
    store
        .apply(
            vec![
                Op::PutMessage(conversation, record(1, Status::Sent)),
                Op::PutMessage(conversation, record(2, Status::Read)),
            ],
            Durability::Now,
        )
        .unwrap();
    let other = ConversationId([6; 32]);
    let asked = [
        (conversation, MessageId(2)),
        (other, MessageId(1)),
        (conversation, MessageId(3)),
        (conversation, MessageId(1)),
    ];
    assert_eq!(
        store.statuses(&asked).unwrap(),
        [Some(Status::Read), None, None, Some(Status::Sent)]
    );
}

/// A batch's snapshot answers as the store did when it was taken, from
/// tables opened once; the store itself answers as it is now.
#[test]
fn a_snapshot_reads_the_store_as_committed_when_it_was_taken() {
    use hush_protocol::device::{DeviceLookup, MessageKind, MessageRecord};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hush.redb"), &key()).unwrap();
    let conversation = ConversationId([5; 32]);
    let record = |id: u128| MessageRecord {
        id: MessageId(id),
        from: AccountId([4; 32]),
        outgoing: false,
        text: "hi".into(),
        status: Status::Delivered,
        sent_at_ms: 1,
        stored_at_ms: 2,
        timer_secs: None,
        kind: MessageKind::Message,
    };
    let seen = SeenKey {
        prefix: [1; 16],
        digest: [2; 32],
    };
    store
        .apply(
            vec![
                Op::PutMessage(conversation, record(1)),
                Op::PutSeenKey(seen.prefix, seen.digest, 3),
                Op::PutSeen([9; 32], 3),
            ],
            Durability::Now,
        )
        .unwrap();
    let snapshot = store.snapshot().unwrap();
    store
        .apply(
            vec![Op::PutMessage(conversation, record(2))],
            Durability::Now,
        )
        .unwrap();
    let first = snapshot.message(&conversation, MessageId(1)).unwrap();
    assert_eq!(first.map(|m| m.text), Some("hi".to_owned()));
    assert!(
        snapshot
            .message(&conversation, MessageId(2))
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .message(&conversation, MessageId(2))
            .unwrap()
            .is_some()
    );
    assert!(snapshot.seen(&seen).unwrap());
    let before = SeenKey {
        prefix: [7; 16],
        digest: [9; 32],
    };
    assert!(snapshot.seen(&before).unwrap(), "an older home's digest");
    assert_eq!(
        snapshot
            .statuses(&[(conversation, MessageId(1)), (conversation, MessageId(2))])
            .unwrap(),
        [Some(Status::Delivered), None]
    );
}

/// A file record whose manifest names the blob `root`.
fn file_record(root: u8, state: crate::records::FileState) -> crate::records::FileRecord {
    use hush_protocol::Wire;
    use hush_protocol::blob::{BlobRoot, Compression, FileKey, FileManifest};
    let manifest = FileManifest {
        root: BlobRoot([root; 32]),
        key: FileKey([9; 32]),
        size: 10,
        sealed_len: 10,
        compression: Compression::None,
        name: format!("f{root}.bin"),
        mime: String::new(),
        thumbnail: None,
    };
    crate::records::FileRecord {
        manifest: manifest.to_bytes(),
        outgoing: false,
        source: hush_protocol::DeviceId([2; 32]),
        state,
        path: None,
        error: None,
    }
}

#[test]
fn a_file_is_found_by_its_message_id_and_by_its_blob_in_any_conversation() {
    use crate::records::FileState;
    use hush_protocol::blob::BlobRoot;
    use hush_protocol::device::{MessageKind, MessageRecord};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hush.redb"), &key()).unwrap();
    let (bob, group) = (ConversationId([1; 32]), ConversationId([7; 32]));
    let message = |id: u128| MessageRecord {
        id: MessageId(id),
        from: AccountId([4; 32]),
        outgoing: false,
        text: String::new(),
        status: Status::Delivered,
        sent_at_ms: 1,
        stored_at_ms: 2,
        timer_secs: None,
        kind: MessageKind::Message,
    };
    // The same blob came in 1:1 (8) and in the group (10).
    store
        .apply(
            vec![
                Op::PutMessage(bob, message(8)),
                Op::PutMessage(group, message(9)),
                Op::PutMessage(group, message(10)),
                Op::PutFile(bob, MessageId(8), file_record(1, FileState::Offered)),
                Op::PutFile(group, MessageId(9), file_record(2, FileState::Complete)),
                Op::PutFile(group, MessageId(10), file_record(1, FileState::Offered)),
            ],
            Durability::Now,
        )
        .unwrap();
    let (conversation, found) = store.file_by_id(MessageId(9)).unwrap().unwrap();
    assert_eq!((conversation, found.state), (group, FileState::Complete));
    assert_eq!(store.file_by_id(MessageId(8)).unwrap().unwrap().0, bob);
    assert!(store.file_by_id(MessageId(11)).unwrap().is_none());
    let of = |root: u8| -> Vec<(ConversationId, MessageId)> {
        let files = store.files_with_root(&BlobRoot([root; 32])).unwrap();
        files.into_iter().map(|(c, id, _)| (c, id)).collect()
    };
    assert_eq!(of(1), [(bob, MessageId(8)), (group, MessageId(10))]);
    assert_eq!(of(2), [(group, MessageId(9))]);
    assert!(of(3).is_empty());

    // A state changed: still one entry per file.
    store
        .apply(
            vec![Op::PutFile(
                bob,
                MessageId(8),
                file_record(1, FileState::Complete),
            )],
            Durability::Now,
        )
        .unwrap();
    assert_eq!(of(1).len(), 2);

    // Gone with its message, or with its whole conversation.
    store
        .apply(
            vec![Op::DeleteMessages(bob, vec![MessageId(8)])],
            Durability::Now,
        )
        .unwrap();
    assert!(store.file_by_id(MessageId(8)).unwrap().is_none());
    assert_eq!(of(1), [(group, MessageId(10))]);
    store
        .apply(vec![Op::DeleteConversation(group)], Durability::Now)
        .unwrap();
    assert!(store.file_by_id(MessageId(9)).unwrap().is_none());
    assert!(store.file_by_id(MessageId(10)).unwrap().is_none());
    assert!(of(1).is_empty() && of(2).is_empty());
    assert!(store.files().unwrap().is_empty());
}

#[test]
fn a_home_of_format_4_finds_its_files_by_id_and_blob_once_opened() {
    use crate::records::FileState;
    use hush_protocol::blob::BlobRoot;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    let store = Store::open(&path, &key()).unwrap();
    let conv = ConversationId([4; 32]);
    store
        .apply(
            vec![Op::PutFile(
                conv,
                MessageId(3),
                file_record(6, FileState::Shared),
            )],
            Durability::Now,
        )
        .unwrap();
    // What format 4 left: the file, neither index.
    let txn = store.db.begin_write().unwrap();
    txn.delete_table(FILE_IDS).unwrap();
    txn.delete_table(FILE_ROOTS).unwrap();
    txn.open_table(META)
        .unwrap()
        .insert("format", 4u32.to_be_bytes().as_slice())
        .unwrap();
    txn.commit().unwrap();
    assert!(store.file_by_id(MessageId(3)).is_err());
    drop(store);

    let store = Store::open(&path, &key()).unwrap();
    let (found, file) = store.file_by_id(MessageId(3)).unwrap().unwrap();
    assert_eq!((found, file.state), (conv, FileState::Shared));
    let by_root = store.files_with_root(&BlobRoot([6; 32])).unwrap();
    assert_eq!(by_root.len(), 1);
    assert_eq!((by_root[0].0, by_root[0].1), (conv, MessageId(3)));
}

/// Not a test: how long a file takes to find among 10,000 whose manifests
/// carry 8 KiB previews, by a scan of the files and through the indexes
/// (`cargo test --release -p hush-node --lib measure_file_lookups --
/// --ignored --nocapture`; docs/benchmarks.md).
#[test]
#[ignore]
fn measure_file_lookups() {
    use crate::records::FileState;
    use hush_protocol::Wire;
    use hush_protocol::blob::{BlobRoot, FileManifest};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("hush.redb"), &key()).unwrap();
    for chunk in 0..10u128 {
        let ops = (0..1000u128)
            .map(|i| {
                let id = chunk * 1000 + i;
                let mut file = file_record(0, FileState::Offered);
                let mut manifest = FileManifest::from_bytes(&file.manifest).unwrap();
                manifest.root = BlobRoot(blake3::hash(&id.to_be_bytes()).into());
                manifest.thumbnail = Some(vec![7; 8192]);
                file.manifest = manifest.to_bytes();
                Op::PutFile(ConversationId([(id % 50) as u8; 32]), MessageId(id), file)
            })
            .collect();
        store.apply(ops, Durability::Now).unwrap();
    }
    let wanted = [5000u128, 9999, 1];
    for _ in 0..3 {
        let t = std::time::Instant::now();
        for id in wanted {
            let files = store.files().unwrap();
            assert!(files.iter().any(|(_, m, _)| m.0 == id));
        }
        let scan = t.elapsed() / 3;
        let t = std::time::Instant::now();
        for id in wanted {
            assert!(store.file_by_id(MessageId(id)).unwrap().is_some());
        }
        let by_id = t.elapsed() / 3;
        let t = std::time::Instant::now();
        for id in wanted {
            let root = BlobRoot(blake3::hash(&id.to_be_bytes()).into());
            assert_eq!(store.files_with_root(&root).unwrap().len(), 1);
        }
        let by_root = t.elapsed() / 3;
        eprintln!("scan {scan:?} · by id {by_id:?} · by blob {by_root:?}");
    }
}

/// Our unconfirmed group messages outlive a restart, oldest first, and go
/// when dropped (applied twice, as the log may, the same).
#[test]
fn unconfirmed_group_messages_are_kept_across_a_restart_until_dropped() {
    use crate::records::UnconfirmedRecord;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    let record = |n: u8| UnconfirmedRecord {
        group: GroupId([n; 32]),
        topic: format!("/hush/group/2/{n}"),
        bytes: vec![n; 700],
    };
    let store = Store::open(&path, &key()).unwrap();
    let put = || {
        vec![
            Op::PutUnconfirmed(MessageId(7), record(7)),
            Op::PutUnconfirmed(MessageId(3), record(3)),
        ]
    };
    store.apply(put(), Durability::Now).unwrap();
    store.apply(put(), Durability::Now).unwrap();
    drop(store);

    let store = Store::open(&path, &key()).unwrap();
    let kept = store.unconfirmed().unwrap();
    let ids: Vec<u128> = kept.iter().map(|(id, _)| id.0).collect();
    assert_eq!(ids, [3, 7]);
    assert_eq!(kept[0].1.bytes, vec![3; 700]);
    assert_eq!(kept[1].1.topic, "/hush/group/2/7");
    store
        .apply(vec![Op::DeleteUnconfirmed(MessageId(3))], Durability::Now)
        .unwrap();
    store
        .apply(vec![Op::DeleteUnconfirmed(MessageId(3))], Durability::Now)
        .unwrap();
    let ids: Vec<u128> = store
        .unconfirmed()
        .unwrap()
        .iter()
        .map(|(id, _)| id.0)
        .collect();
    assert_eq!(ids, [7]);
}

#[test]
fn group_messages_kept_for_other_members_are_there_after_a_restart_sealed() {
    use hush_protocol::GroupId;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hush.redb");
    let kept = |n: u8| crate::records::KeptRecord {
        group: GroupId([n; 32]),
        session: [n; 32],
        index: u32::from(n),
        bytes: vec![0xa5 ^ n; 700],
    };
    let store = Store::open(&path, &key()).unwrap();
    assert!(store.kept_group_messages().unwrap().is_empty());
    store
        .apply(
            vec![Op::PutKeptGroupMessages(vec![kept(1), kept(2)])],
            Durability::Now,
        )
        .unwrap();
    drop(store);
    let store = Store::open(&path, &key()).unwrap();
    let read: Vec<(u32, Vec<u8>)> = store
        .kept_group_messages()
        .unwrap()
        .into_iter()
        .map(|k| (k.index, k.bytes))
        .collect();
    assert_eq!(read, [(1, vec![0xa4; 700]), (2, vec![0xa7; 700])]);
    // At rest they are sealed like everything else in the home.
    drop(store);
    let file = std::fs::read(&path).unwrap();
    assert!(!contains(&file, &[0xa4; 64]));
    // None left: the entry goes.
    let store = Store::open(&path, &key()).unwrap();
    store
        .apply(vec![Op::PutKeptGroupMessages(Vec::new())], Durability::Now)
        .unwrap();
    assert!(store.kept_group_messages().unwrap().is_empty());
}

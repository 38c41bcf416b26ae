use hush_protocol::relay::Removal;

use super::*;

fn item(mailbox: u8, seq: u64, at: u64) -> StoredMail {
    StoredMail {
        mailbox: MailboxId([mailbox; 32]),
        seq,
        stored_at_ms: at,
        sender_tag: 9,
        sealed: vec![seq as u8; 40],
        expires_at_ms: None,
    }
}

fn deposits(mailbox: u8, seqs: std::ops::RangeInclusive<u64>) -> Vec<RelayWrite> {
    seqs.map(|s| RelayWrite::Deposit(item(mailbox, s, s * 10)))
        .collect()
}

fn seqs(store: &Store, mailbox: u8) -> Vec<u64> {
    let (page, _) = store
        .page(&MailboxId([mailbox; 32]), 0, 1000, 1 << 30)
        .unwrap();
    page.iter().map(|i| i.0).collect()
}

fn delete(mailbox: u8, seq: u64) -> RelayWrite {
    RelayWrite::Delete(MailboxId([mailbox; 32]), seq, Removal::Acked)
}

#[test]
fn deposits_fetch_in_order_and_delete_with_their_digest() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("relay.redb")).unwrap();
    store.apply(deposits(1, 1..=5)).unwrap();
    store
        .apply(vec![RelayWrite::Deposit(item(2, 6, 60))])
        .unwrap();
    let (page, more) = store.page(&MailboxId([1; 32]), 0, 3, 1 << 20).unwrap();
    assert_eq!(page.iter().map(|i| i.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(more);
    let (rest, more) = store.page(&MailboxId([1; 32]), 3, 10, 1 << 20).unwrap();
    assert_eq!(rest.iter().map(|i| i.0).collect::<Vec<_>>(), [4, 5]);
    assert!(!more);
    let d = DepositDigest::of(&item(1, 2, 0).sealed);
    assert_eq!(
        store.stored(&[d, DepositDigest([0; 32])]).unwrap(),
        [true, false]
    );
    // Another mailbox cannot delete it.
    let applied = store.apply(vec![delete(2, 2)]).unwrap();
    assert!(applied.deleted.is_empty());
    let applied = store.apply(vec![delete(1, 2)]).unwrap();
    assert_eq!(
        applied.deleted,
        vec![(MailboxId([1; 32]), 40, 9, Removal::Acked)]
    );
    assert_eq!(store.stored(&[d]).unwrap(), [false]);
    assert_eq!(
        store.expired(35, 0, 10).unwrap(),
        vec![(MailboxId([1; 32]), 1), (MailboxId([1; 32]), 3)]
    );
    assert_eq!(store.usage().unwrap().len(), 5);
}

/// Mail its sender gave an expiry is listed for dropping from then on,
/// whether it is only in the log or in redb, and once deleted (acked, or
/// dropped) it is listed no more.
#[test]
fn mail_with_an_expiry_is_dropped_then_from_the_log_and_from_redb() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("relay.redb")).unwrap();
    let timed = |seq, at| {
        RelayWrite::Deposit(StoredMail {
            expires_at_ms: Some(at),
            ..item(1, seq, 10)
        })
    };
    store.apply(vec![timed(1, 1_000), timed(2, 5_000)]).unwrap();
    store.settle();
    store.pause_indexer(true);
    store
        .apply(vec![timed(3, 2_000), RelayWrite::Deposit(item(1, 4, 10))])
        .unwrap();
    // Nothing is past the retention (cutoff 0): only the expiries count.
    let due = |now| -> Vec<u64> {
        let mut seqs: Vec<u64> = store
            .expired(0, now, 10)
            .unwrap()
            .iter()
            .map(|e| e.1)
            .collect();
        seqs.sort_unstable();
        seqs
    };
    assert!(due(999).is_empty());
    assert_eq!(due(1_000), [1]);
    assert_eq!(due(4_999), [1, 3]);
    assert_eq!(due(u64::MAX), [1, 2, 3]);
    // One acked before it expired, one dropped: neither is listed again.
    store
        .apply(vec![
            delete(1, 1),
            RelayWrite::Delete(MailboxId([1; 32]), 3, Removal::Expired),
        ])
        .unwrap();
    assert_eq!(due(u64::MAX), [2]);
    store.pause_indexer(false);
    store.settle();
    assert_eq!(due(u64::MAX), [2]);
    drop(store);
    // And after a restart (the log replayed or not).
    let store = Store::open(&dir.path().join("relay.redb")).unwrap();
    let dropped: Vec<u64> = store
        .expired(0, u64::MAX, 10)
        .unwrap()
        .iter()
        .map(|e| e.1)
        .collect();
    assert_eq!(dropped, [2]);
    assert_eq!(seqs(&store, 1), [2, 4]);
}

/// Every read answers the same whether a batch is still only in the log
/// (the overlay) or already in redb, and deletions of items in redb are
/// hidden until the indexer applies them.
#[test]
fn reads_see_logged_mail_before_and_after_the_indexer_applies_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("relay.redb")).unwrap();
    store.apply(deposits(1, 1..=3)).unwrap();
    store.settle();
    store.pause_indexer(true);
    let mut writes = deposits(1, 4..=6);
    writes.push(RelayWrite::NextSeq(7));
    store.apply(writes).unwrap();
    let check = |store: &Store, expect: &[u64]| {
        assert_eq!(seqs(store, 1), expect);
        let usage = store.usage().unwrap();
        assert_eq!(usage.len(), expect.len());
        let expired: Vec<u64> = store
            .expired(u64::MAX, 0, 100)
            .unwrap()
            .iter()
            .map(|e| e.1)
            .collect();
        assert_eq!(expired, expect);
        let digests: Vec<_> = (1..=6)
            .map(|s| DepositDigest::of(&item(1, s, 0).sealed))
            .collect();
        let stored = store.stored(&digests).unwrap();
        let want: Vec<bool> = (1..=6).map(|s| expect.contains(&s)).collect();
        assert_eq!(stored, want);
        assert_eq!(store.next_seq().unwrap(), 7);
    };
    check(&store, &[1, 2, 3, 4, 5, 6]);
    // A page across the two: three from redb, then the overlay.
    let (page, more) = store.page(&MailboxId([1; 32]), 2, 2, 1 << 20).unwrap();
    assert_eq!(
        (page.iter().map(|i| i.0).collect::<Vec<_>>(), more),
        (vec![3, 4], true)
    );

    // Delete one in redb, one in the overlay; another mailbox's delete of
    // an overlay item finds nothing.
    assert!(store.apply(vec![delete(2, 5)]).unwrap().deleted.is_empty());
    let applied = store
        .apply(vec![delete(1, 2), delete(1, 5), delete(1, 5)])
        .unwrap();
    assert_eq!(applied.deleted.len(), 2);
    check(&store, &[1, 3, 4, 6]);
    store.pause_indexer(false);
    store.settle();
    check(&store, &[1, 3, 4, 6]);
    assert!(store.apply(vec![delete(1, 2)]).unwrap().deleted.is_empty());
}

/// The ack comes after the log's sync; a crash before the indexer ran
/// loses nothing: the next open replays the log into redb.
#[test]
fn a_crash_before_the_indexer_runs_loses_no_acknowledged_mail() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.redb");
    let store = Store::open(&path).unwrap();
    store.apply(deposits(1, 1..=3)).unwrap();
    store.settle();
    store.pause_indexer(true);
    let mut writes = deposits(1, 4..=6);
    writes.push(delete(1, 1));
    writes.push(RelayWrite::NextSeq(7));
    store.apply(writes).unwrap();
    store.crash();

    let store = Store::open(&path).unwrap();
    assert_eq!(seqs(&store, 1), [2, 3, 4, 5, 6]);
    assert_eq!(store.next_seq().unwrap(), 7);
    // And it goes on from there, through another crash.
    store.pause_indexer(true);
    store.apply(deposits(1, 7..=7)).unwrap();
    store.apply(vec![delete(1, 2)]).unwrap();
    store.crash();
    let store = Store::open(&path).unwrap();
    assert_eq!(seqs(&store, 1), [3, 4, 5, 6, 7]);
    drop(store);
    // A clean close leaves redb complete: nothing is replayed.
    let store = Store::open(&path).unwrap();
    assert_eq!(seqs(&store, 1), [3, 4, 5, 6, 7]);
}

/// With logs of 4 KiB, a few hundred deposits fill each many times: the
/// writer waits for the indexer before reusing one, and nothing is lost,
/// whether the store closes or crashes.
#[test]
fn the_logs_take_turns_and_nothing_is_lost_when_they_fill() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.redb");
    let store =
        Store::open_with(&path, 4096, crate::config::DEFAULT_DB_CACHE_BYTES as usize).unwrap();
    for s in 1..=300 {
        store.apply(deposits(3, s..=s)).unwrap();
    }
    assert_eq!(seqs(&store, 3), (1..=300).collect::<Vec<_>>());
    // (Paused, the writer could wait for it forever once a log fills.)
    store.settle();
    store.pause_indexer(true);
    store.apply(deposits(3, 301..=310)).unwrap();
    store.crash();
    let store =
        Store::open_with(&path, 4096, crate::config::DEFAULT_DB_CACHE_BYTES as usize).unwrap();
    assert_eq!(seqs(&store, 3), (1..=310).collect::<Vec<_>>());
}

/// A batch larger than a whole log goes to redb directly, after what the
/// logs held before it.
#[test]
fn a_batch_larger_than_a_log_goes_straight_into_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.redb");
    let store =
        Store::open_with(&path, 4096, crate::config::DEFAULT_DB_CACHE_BYTES as usize).unwrap();
    store.apply(deposits(4, 1..=2)).unwrap();
    store.apply(deposits(4, 3..=100)).unwrap();
    store.apply(vec![delete(4, 1)]).unwrap();
    assert_eq!(seqs(&store, 4), (2..=100).collect::<Vec<_>>());
    store.crash();
    let store =
        Store::open_with(&path, 4096, crate::config::DEFAULT_DB_CACHE_BYTES as usize).unwrap();
    assert_eq!(seqs(&store, 4), (2..=100).collect::<Vec<_>>());
}

#[test]
fn log_records_decode_to_what_was_encoded_and_reject_truncation() {
    let writes = vec![
        MailWrite::Deposit(Arc::new(item(1, 7, 70))),
        MailWrite::Delete(MailboxId([2; 32]), 3),
        MailWrite::NextSeq(8),
    ];
    let bytes = overlay::encode(&writes);
    assert_eq!(overlay::decode(&bytes).unwrap(), writes);
    for cut in [1, 20, bytes.len() - 1] {
        assert!(overlay::decode(&bytes[..cut]).is_err(), "cut at {cut}");
    }
    assert!(overlay::decode(&[9]).is_err());
}

#[test]
fn keys_are_handed_out_once_then_the_fallback() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("relay.redb")).unwrap();
    let device = DeviceId([3; 32]);
    let (one, two) = (OneTimeKey([1; 32]), OneTimeKey([2; 32]));
    store
        .apply(vec![RelayWrite::PutKeys {
            device,
            one_time: vec![(one, vec![1]), (two, vec![2])],
            fallback: vec![9],
        }])
        .unwrap();
    assert_eq!(store.keys_left(&device).unwrap(), 2);
    let (key, bundle) = store.hosted_key(&device, &|_| false).unwrap().unwrap();
    assert_eq!((key, bundle), (Some(one), vec![1]));
    let (key, _) = store.hosted_key(&device, &|k| *k == one).unwrap().unwrap();
    assert_eq!(key, Some(two));
    store
        .apply(vec![
            RelayWrite::TakeKey { device, key: one },
            RelayWrite::TakeKey { device, key: two },
        ])
        .unwrap();
    assert_eq!(
        store.hosted_key(&device, &|_| false).unwrap(),
        Some((None, vec![9]))
    );
    assert_eq!(
        store.hosted_key(&DeviceId([4; 32]), &|_| false).unwrap(),
        None
    );
    // The identity is made once and then kept.
    assert_eq!(store.identity().unwrap(), store.identity().unwrap());
}

#[test]
fn a_dropped_device_loses_its_keys_and_stays_dropped_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.redb");
    let device = DeviceId([3; 32]);
    {
        let store = Store::open(&path).unwrap();
        store
            .apply(vec![RelayWrite::PutKeys {
                device,
                one_time: vec![(OneTimeKey([1; 32]), vec![1])],
                fallback: vec![9],
            }])
            .unwrap();
        store.apply(vec![RelayWrite::Drop { device }]).unwrap();
        assert_eq!(store.hosted_key(&device, &|_| false).unwrap(), None);
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.dropped().unwrap(), [device]);
    assert_eq!(store.keys_left(&device).unwrap(), 0);
}

/// A deletion logged after the indexer took a pile removes the item from
/// that pile's part at once, and keeps hiding redb's copy after the part
/// is let go.
#[test]
fn a_deletion_of_mail_in_a_pile_being_indexed_stays_hidden() {
    let mut overlay = Overlay::default();
    let first: Vec<_> = (1..=3)
        .map(|s| MailWrite::Deposit(Arc::new(item(1, s, 0))))
        .collect();
    overlay.add(&first);
    assert_eq!(overlay.seal(), 1);
    overlay.add(&[
        MailWrite::Deposit(Arc::new(item(1, 4, 0))),
        MailWrite::Delete(MailboxId([1; 32]), 2),
    ]);
    let live = |o: &Overlay| {
        o.mailbox_items(&MailboxId([1; 32]), 0)
            .map(|i| i.seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(live(&overlay), [1, 3, 4]);
    assert!(!overlay.has_digest(&DepositDigest::of(&item(1, 2, 0).sealed)));
    assert_eq!(overlay.indexed(1).len(), 1);
    assert_eq!(live(&overlay), [4]);
    assert!(overlay.is_deleted(2));
    assert_eq!(overlay.items(0).count(), 1);
    // Sealing again takes the rest; nothing is left after it is indexed.
    assert_eq!(overlay.seal(), 1);
    overlay.indexed(1);
    assert!(!overlay.is_deleted(2) && overlay.items(0).count() == 0);
}

#[test]
fn the_log_counters_follow_the_indexer() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("relay.redb")).unwrap();
    store.pause_indexer(true);
    store.apply(deposits(1, 1..=3)).unwrap();
    let logged = store.log_stats();
    assert!(logged.unindexed_bytes > 3 * 40, "{logged:?}");
    assert_eq!((logged.index_commits, logged.writer_waits), (0, 0));
    store.pause_indexer(false);
    store.settle();
    let indexed = store.log_stats();
    assert_eq!(indexed.unindexed_bytes, 0);
    assert_eq!(indexed.index_commits, 1);
}

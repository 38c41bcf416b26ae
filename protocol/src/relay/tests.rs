//! The relay engine on a fake clock, over the in-memory store.

use ed25519_dalek::{Signer, SigningKey};

use super::*;
use crate::{
    Auth, DepositItem, DepositResult, DeviceId, KeyBundle, MailboxId, MailboxRequest,
    MailboxResponse, Now, OwnerRequest, Refusal, SealedEnvelope, Wire,
};

/// One relay: the engine, its store, and the answers it gave (by the
/// request number the test used as reply token).
struct Relay {
    engine: RelayEngine<u32>,
    store: MemoryMailStore,
    now: Now,
    answers: Vec<(u32, MailboxResponse)>,
}

impl Relay {
    fn new(quotas: Quotas) -> Self {
        let store = MemoryMailStore::default();
        let now = Now::new(0, 1_800_000_000_000);
        let rules = RelayRules {
            quotas,
            retention_secs: 3600,
            push: Default::default(),
        };
        let engine = RelayEngine::load(rules, [[1; 32], [2; 32]], &store, now).unwrap();
        Self {
            engine,
            store,
            now,
            answers: Vec::new(),
        }
    }

    fn request(&mut self, token: u32, sender: &[u8], request: &MailboxRequest) {
        self.engine
            .handle_request(self.now, sender, &request.to_bytes(), token, &self.store);
        self.collect();
    }

    /// Commits until nothing is left to write.
    fn commit(&mut self) {
        while let Some(writes) = self.engine.poll_commit() {
            let result = self.store.apply(writes);
            self.engine.handle_committed(result, &self.store);
            self.collect();
        }
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now.plus_ms(ms);
        self.engine.handle_timeout(self.now, &self.store);
        self.collect();
    }

    fn collect(&mut self) {
        while let Some(answer) = self.engine.poll_reply() {
            self.answers.push(answer);
        }
    }

    fn answer(&mut self, token: u32) -> Option<MailboxResponse> {
        let i = self.answers.iter().position(|(t, _)| *t == token)?;
        Some(self.answers.remove(i).1)
    }

    fn challenge(&mut self) -> [u8; 32] {
        self.request(u32::MAX, b"owner", &MailboxRequest::Info);
        match self.answer(u32::MAX) {
            Some(MailboxResponse::Info { challenge, .. }) => challenge,
            other => panic!("no challenge: {other:?}"),
        }
    }

    fn owner(&mut self, token: u32, key: &SigningKey, request: OwnerRequest) {
        let challenge = self.challenge();
        let request = signed(key, challenge, request);
        self.request(token, b"owner", &request);
    }
}

fn signed(key: &SigningKey, challenge: [u8; 32], request: OwnerRequest) -> MailboxRequest {
    let signature = key.sign(&Auth::signed_bytes(&challenge, &request.body_bytes()));
    MailboxRequest::Owner {
        auth: Box::new(Auth {
            device: DeviceId(key.verifying_key().to_bytes()),
            challenge,
            signature: signature.to_bytes(),
        }),
        request,
    }
}

/// A key bundle of `device` with one-time key `otk` (the relay does not
/// check the Olm signature).
fn key_bundle(device: DeviceId, otk: u8) -> KeyBundle {
    KeyBundle {
        device_id: device,
        identity_key: [3; 32],
        one_time_key: [otk; 32],
        signature: [0; 64],
    }
}

fn owner_key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn mailbox_of(key: &SigningKey) -> MailboxId {
    MailboxId::of(&DeviceId(key.verifying_key().to_bytes()))
}

/// A well-formed sealed envelope with `n` in it (the relay cannot open it).
fn sealed(n: u32, len: usize) -> Vec<u8> {
    let mut ciphertext = vec![0u8; len];
    ciphertext[..4].copy_from_slice(&n.to_be_bytes());
    SealedEnvelope {
        encapped: [7; 32],
        ciphertext,
    }
    .to_bytes()
}

fn deposit(mailbox: MailboxId, items: impl IntoIterator<Item = u32>) -> MailboxRequest {
    MailboxRequest::Deposit {
        right: None,
        items: items
            .into_iter()
            .map(|n| DepositItem::new(mailbox, sealed(n, 64)))
            .collect(),
    }
}

fn results(response: Option<MailboxResponse>) -> Vec<DepositResult> {
    match response {
        Some(MailboxResponse::Deposited { results }) => results,
        other => panic!("not a deposit answer: {other:?}"),
    }
}

fn fetch(after: u64, wait_ms: u32) -> OwnerRequest {
    OwnerRequest::Fetch {
        after,
        limit: 100,
        wait_ms,
    }
}

fn items(response: Option<MailboxResponse>) -> Vec<u64> {
    match response {
        Some(MailboxResponse::Items { items, .. }) => items.into_iter().map(|(s, _)| s).collect(),
        other => panic!("not a page: {other:?}"),
    }
}

#[test]
fn a_deposit_is_acked_only_after_its_commit() {
    let mut relay = Relay::new(Quotas::default());
    let mailbox = mailbox_of(&owner_key(1));
    relay.request(1, b"alice", &deposit(mailbox, [1, 2]));
    assert_eq!(relay.answer(1), None, "acked before the commit");
    let writes = relay.engine.poll_commit().unwrap();
    assert!(
        writes.iter().any(|w| matches!(w, RelayWrite::NextSeq(3))),
        "{writes:?}"
    );
    assert_eq!(relay.engine.poll_commit(), None, "one commit at a time");
    let applied = relay.store.apply(writes);
    relay.engine.handle_committed(applied, &relay.store);
    relay.collect();
    assert_eq!(
        results(relay.answer(1)),
        [DepositResult::Stored, DepositResult::Stored]
    );
    assert_eq!(relay.store.len(), 2);
    assert_eq!(relay.engine.stats().deposits, 2);
    assert_eq!(relay.engine.stats().stored_messages, 2);
}

#[test]
fn a_failed_commit_refuses_what_it_held_and_a_retry_is_stored_once() {
    let mut relay = Relay::new(Quotas::default());
    let mailbox = mailbox_of(&owner_key(1));
    relay.request(1, b"alice", &deposit(mailbox, [1]));
    let writes = relay.engine.poll_commit().unwrap();
    // A resend while the first copy commits: answered with it.
    relay.request(2, b"alice", &deposit(mailbox, [1]));
    relay.store.fail_next_commit = true;
    let failed = relay.store.apply(writes);
    relay.engine.handle_committed(failed, &relay.store);
    relay.collect();
    assert_eq!(
        results(relay.answer(1)),
        [DepositResult::Refused(Refusal::Unavailable)]
    );
    assert_eq!(
        results(relay.answer(2)),
        [DepositResult::Refused(Refusal::Unavailable)]
    );
    assert!(relay.store.is_empty());
    assert_eq!(relay.engine.stats().stored_messages, 0, "usage recounted");
    relay.request(3, b"alice", &deposit(mailbox, [1]));
    relay.commit();
    assert_eq!(results(relay.answer(3)), [DepositResult::Stored]);
    relay.request(4, b"alice", &deposit(mailbox, [1]));
    assert_eq!(results(relay.answer(4)), [DepositResult::Duplicate]);
    assert_eq!(relay.store.len(), 1);
}

#[test]
fn quotas_refuse_with_the_quota_that_was_hit() {
    let quotas = Quotas {
        mailbox_items: 4,
        sender_items: 2,
        max_item_bytes: 300,
        ..Quotas::default()
    };
    let mut relay = Relay::new(quotas);
    let mailbox = mailbox_of(&owner_key(1));
    relay.request(1, b"mallory", &deposit(mailbox, [1, 2, 3]));
    relay.commit();
    assert_eq!(
        results(relay.answer(1)),
        [
            DepositResult::Stored,
            DepositResult::Stored,
            DepositResult::Refused(Refusal::SenderQuota)
        ]
    );
    // Another sender still has its share, up to the mailbox's quota.
    relay.request(2, b"alice", &deposit(mailbox, [4, 5, 6]));
    relay.commit();
    assert_eq!(
        results(relay.answer(2)),
        [
            DepositResult::Stored,
            DepositResult::Stored,
            DepositResult::Refused(Refusal::MailboxFull)
        ]
    );
    let big = MailboxRequest::Deposit {
        right: None,
        items: vec![
            DepositItem::new(mailbox_of(&owner_key(2)), sealed(7, 400)),
            DepositItem::new(mailbox, vec![9]),
        ],
    };
    relay.request(3, b"alice", &big);
    assert_eq!(
        results(relay.answer(3)),
        [
            DepositResult::Refused(Refusal::TooLarge),
            DepositResult::Refused(Refusal::Malformed)
        ],
        "refusals that store nothing are answered at once"
    );
    let stats = relay.engine.stats();
    assert_eq!(stats.refusals[Refusal::SenderQuota as usize], 1);
    assert_eq!(stats.refusals[Refusal::MailboxFull as usize], 1);
    assert_eq!(stats.refusals[Refusal::TooLarge as usize], 1);
}

#[test]
fn the_relay_fills_up_as_a_whole() {
    let quotas = Quotas {
        disk_bytes: 300,
        ..Quotas::default()
    };
    let mut relay = Relay::new(quotas);
    let requests = (0..3).map(|i| deposit(mailbox_of(&owner_key(i)), [u32::from(i)]));
    for (token, request) in (1..).zip(requests) {
        relay.request(token, b"alice", &request);
    }
    relay.commit();
    assert_eq!(results(relay.answer(1)), [DepositResult::Stored]);
    assert_eq!(results(relay.answer(2)), [DepositResult::Stored]);
    assert_eq!(
        results(relay.answer(3)),
        [DepositResult::Refused(Refusal::RelayFull)]
    );
}

#[test]
fn only_the_owner_fetches_and_acks_and_an_ack_frees_the_quota() {
    let quotas = Quotas {
        mailbox_items: 2,
        ..Quotas::default()
    };
    let mut relay = Relay::new(quotas);
    let bob = owner_key(1);
    let mallory = owner_key(2);
    relay.request(1, b"alice", &deposit(mailbox_of(&bob), [1, 2]));
    relay.commit();
    results(relay.answer(1));
    // A stale challenge, a signature by another key, a challenge made up.
    let challenge = relay.challenge();
    relay.advance((CHALLENGE_LIFETIME_SECS + 1) * 1000);
    relay.request(2, b"bob", &signed(&bob, challenge, fetch(0, 0)));
    assert_eq!(
        relay.answer(2),
        Some(MailboxResponse::refused(Refusal::StaleChallenge))
    );
    let challenge = relay.challenge();
    let mut forged = signed(&mallory, challenge, fetch(0, 0));
    if let MailboxRequest::Owner { auth, .. } = &mut forged {
        auth.device = DeviceId(bob.verifying_key().to_bytes());
    }
    relay.request(3, b"mallory", &forged);
    assert_eq!(
        relay.answer(3),
        Some(MailboxResponse::refused(Refusal::NotOwner))
    );
    assert_eq!(
        relay.engine.poll_event(),
        Some(RelayEvent::ForgedOwnerRequest)
    );
    relay.request(4, b"bob", &signed(&bob, [9; 32], fetch(0, 0)));
    assert_eq!(
        relay.answer(4),
        Some(MailboxResponse::refused(Refusal::StaleChallenge))
    );
    // Mallory's own mailbox is empty, and her ack deletes nothing of bob's.
    relay.owner(5, &mallory, fetch(0, 0));
    assert_eq!(items(relay.answer(5)), Vec::<u64>::new());
    relay.owner(6, &mallory, OwnerRequest::Ack { seqs: vec![1, 2] });
    relay.commit();
    assert!(matches!(
        relay.answer(6),
        Some(MailboxResponse::Acked { .. })
    ));
    assert_eq!(relay.store.len(), 2);

    relay.owner(7, &bob, fetch(0, 0));
    assert_eq!(items(relay.answer(7)), [1, 2]);
    relay.request(8, b"alice", &deposit(mailbox_of(&bob), [3]));
    assert_eq!(
        results(relay.answer(8)),
        [DepositResult::Refused(Refusal::MailboxFull)]
    );
    relay.owner(9, &bob, OwnerRequest::Ack { seqs: vec![1, 2] });
    assert_eq!(relay.answer(9), None, "answered after the delete commits");
    relay.commit();
    assert_eq!(relay.answer(9), Some(MailboxResponse::Acked { removed: 2 }));
    assert_eq!(relay.engine.stats().delivered, 2);
    relay.request(10, b"alice", &deposit(mailbox_of(&bob), [3]));
    relay.commit();
    assert_eq!(results(relay.answer(10)), [DepositResult::Stored]);
}

#[test]
fn a_waiting_fetch_is_answered_by_new_mail_or_its_deadline() {
    let mut relay = Relay::new(Quotas::default());
    let bob = owner_key(1);
    relay.owner(1, &bob, fetch(0, 5_000));
    assert_eq!(relay.answer(1), None, "held open");
    assert!(relay.engine.poll_timeout() <= relay.now.mono_ms + 5_000);
    relay.request(2, b"alice", &deposit(mailbox_of(&bob), [1]));
    assert_eq!(relay.answer(1), None, "not before the mail is durable");
    relay.commit();
    assert_eq!(items(relay.answer(1)), [1]);
    results(relay.answer(2));

    relay.owner(3, &bob, fetch(1, 5_000));
    relay.advance(4_999);
    assert_eq!(relay.answer(3), None);
    relay.advance(1);
    assert_eq!(items(relay.answer(3)), Vec::<u64>::new());
    // A newer fetch replaces a waiting one, which is answered empty.
    relay.owner(4, &bob, fetch(1, 5_000));
    relay.owner(5, &bob, fetch(1, 5_000));
    assert_eq!(items(relay.answer(4)), Vec::<u64>::new());
    assert_eq!(relay.answer(5), None);
}

#[test]
fn a_one_time_key_is_handed_out_once_then_the_fallback() {
    let mut relay = Relay::new(Quotas::default());
    let bob = owner_key(1);
    let device = DeviceId(bob.verifying_key().to_bytes());
    let bundle = |otk: u8| key_bundle(device, otk);
    relay.request(1, b"carol", &MailboxRequest::ClaimKey { device });
    assert_eq!(
        relay.answer(1),
        Some(MailboxResponse::refused(Refusal::NoKeys))
    );
    let upload = OwnerRequest::PutKeys {
        one_time: vec![bundle(1), bundle(2)],
        fallback: bundle(9),
    };
    relay.owner(2, &bob, upload);
    relay.commit();
    assert_eq!(
        relay.answer(2),
        Some(MailboxResponse::KeysStored { one_time: 2 })
    );
    // Two claims before any commit get two different keys.
    relay.request(3, b"carol", &MailboxRequest::ClaimKey { device });
    relay.request(4, b"dave", &MailboxRequest::ClaimKey { device });
    assert_eq!(relay.answer(3), None, "handed out only once deleted");
    relay.commit();
    let key = |r: Option<MailboxResponse>| match r {
        Some(MailboxResponse::Key(b)) => b.one_time_key[0],
        other => panic!("no key: {other:?}"),
    };
    let mut got = [key(relay.answer(3)), key(relay.answer(4))];
    got.sort_unstable();
    assert_eq!(got, [1, 2]);
    relay.request(5, b"erin", &MailboxRequest::ClaimKey { device });
    assert_eq!(key(relay.answer(5)), 9, "the fallback, at once");
    // Keys of another device are refused.
    let foreign = OwnerRequest::PutKeys {
        one_time: vec![bundle(1)],
        fallback: KeyBundle {
            device_id: DeviceId([5; 32]),
            ..bundle(9)
        },
    };
    relay.owner(6, &bob, foreign);
    assert!(matches!(
        relay.answer(6),
        Some(MailboxResponse::Refused {
            reason: Refusal::Malformed,
            ..
        })
    ));
}

/// A disappearing message its sender gave an expiry is dropped then,
/// within a second, long before the retention period ends; mail without
/// one stays.
#[test]
fn mail_past_the_expiry_its_sender_gave_is_dropped_within_a_second() {
    let mut relay = Relay::new(Quotas::default());
    let bob = mailbox_of(&owner_key(1));
    let expires = relay.now.unix_ms + 5_000;
    let request = MailboxRequest::Deposit {
        right: None,
        items: vec![
            DepositItem {
                expires_at_ms: Some(expires),
                ..DepositItem::new(bob, sealed(1, 64))
            },
            DepositItem::new(bob, sealed(2, 64)),
        ],
    };
    relay.request(1, b"alice", &request);
    relay.commit();
    relay.advance(4_000);
    relay.commit();
    assert_eq!(relay.store.len(), 2);
    relay.advance(2_000);
    relay.commit();
    assert_eq!(relay.store.len(), 1, "the timed item went, the other stays");
    assert_eq!(relay.engine.stats().expired, 1);
}

#[test]
fn mail_past_retention_is_deleted() {
    let mut relay = Relay::new(Quotas::default());
    let bob = owner_key(1);
    relay.request(1, b"alice", &deposit(mailbox_of(&bob), [1]));
    relay.commit();
    relay.advance(1_000);
    relay.commit();
    assert_eq!(relay.store.len(), 1);
    relay.advance(3_600_000);
    relay.commit();
    assert!(relay.store.is_empty());
    assert_eq!(relay.engine.stats().expired, 1);
    assert_eq!(relay.engine.stats().stored_messages, 0);
}

#[test]
fn topics_are_kept_up_to_the_cap_and_only_group_messages_accepted() {
    let mut topics = TopicBook::default();
    let t1 = crate::PublishKey::from_secret(&[1; 32]).topic();
    let t2 = crate::PublishKey::from_secret(&[2; 32]).topic();
    let keep = crate::HistoryRequest::Keep { topic: t1.clone() };
    assert_eq!(
        topics.handle_request(0, None, &keep.to_bytes()),
        HistoryAction::Keep(t1.clone())
    );
    assert_eq!(
        topics.handle_request(0, None, &keep.to_bytes()),
        HistoryAction::Answer(crate::HistoryResponse::Keeping)
    );
    assert_eq!(
        topics.handle_publication(0, &t1, b"junk"),
        Publication::Reject
    );
    let unknown = crate::HistoryRequest::Fetch {
        topic: t2,
        after: 0,
        limit: 0,
    };
    assert!(matches!(
        topics.handle_request(0, None, &unknown.to_bytes()),
        HistoryAction::Answer(crate::HistoryResponse::Page { .. })
    ));
    let fetch = crate::HistoryRequest::Fetch {
        topic: t1.clone(),
        after: 3,
        limit: 0,
    };
    assert_eq!(
        topics.handle_request(0, None, &fetch.to_bytes()),
        HistoryAction::Page {
            topic: t1.clone(),
            after: 3,
            limit: 1
        }
    );
    assert!(matches!(
        topics.handle_request(0, None, b"\xff"),
        HistoryAction::Answer(crate::HistoryResponse::Refused { .. })
    ));
}

/// Attack (issue 13, item 7): a stranger claims a device's one-time keys
/// one after another until only the fallback key is left, so every first
/// contact after that gets the (reused) fallback.
#[test]
fn a_stranger_draining_one_time_keys_gets_a_few_per_minute_then_the_fallback() {
    let mut relay = Relay::new(Quotas::default());
    let bob = owner_key(1);
    let device = DeviceId(bob.verifying_key().to_bytes());
    let bundle = |otk: u8| key_bundle(device, otk);
    let upload = OwnerRequest::PutKeys {
        one_time: (1..=50).map(bundle).collect(),
        fallback: bundle(99),
    };
    relay.owner(1, &bob, upload);
    relay.commit();
    assert!(relay.answer(1).is_some());
    let mut one_time = 0;
    for token in 10..60 {
        relay.request(token, b"mallory", &MailboxRequest::ClaimKey { device });
        relay.commit();
        match relay.answer(token) {
            Some(MailboxResponse::Key(b)) if b.one_time_key[0] != 99 => one_time += 1,
            Some(MailboxResponse::Key(_)) => {}
            other => panic!("no key at all: {other:?}"),
        }
    }
    assert_eq!(one_time, KEY_CLAIMS_PER_MINUTE, "the rest got the fallback");
    // A minute later, one-time keys are handed out again.
    relay.advance(60_000);
    relay.request(70, b"carol", &MailboxRequest::ClaimKey { device });
    relay.commit();
    assert!(matches!(relay.answer(70), Some(MailboxResponse::Key(b)) if b.one_time_key[0] != 99));
}

/// Attack (issue 13, item 7, history without a byte budget): whatever is
/// published on kept topics was stored outside the disk budget, so a
/// stranger publishing junk grew the relay's disk without bound. Group
/// history now counts in `disk_bytes` with mail: it fills the same budget,
/// and the host keeps history only while the budget has room.
#[test]
fn group_history_counts_in_the_disk_budget() {
    let quotas = Quotas {
        disk_bytes: 300,
        ..Quotas::default()
    };
    let mut relay = Relay::new(quotas);
    assert!(relay.engine.disk_has_room(300));
    relay.engine.set_other_bytes(250);
    assert!(!relay.engine.disk_has_room(51), "history fills the budget");
    relay.request(1, b"alice", &deposit(mailbox_of(&owner_key(1)), [1]));
    relay.commit();
    assert_eq!(
        results(relay.answer(1)),
        [DepositResult::Refused(Refusal::RelayFull)]
    );
}

#[test]
fn a_stranger_publishing_on_a_kept_topic_gets_nothing_into_its_history() {
    // A group's topic is no secret from whoever saw it on the wire (a
    // removed member, a relay, anyone subscribed). A stranger publishes a
    // well-formed group message on it, under a session of its own, signed
    // by a key of its own (or not signed at all).
    let members = crate::PublishKey::from_secret(&[5; 32]);
    let topic = members.topic();
    let mut topics = TopicBook::default();
    let keep = crate::HistoryRequest::Keep {
        topic: topic.clone(),
    };
    assert_eq!(
        topics.handle_request(0, None, &keep.to_bytes()),
        HistoryAction::Keep(topic.clone())
    );
    let mut session = crate::MegolmOutbound::new();
    let ciphertext = session.encrypt(b"junk for every member's pending table");
    let strangers = crate::PublishKey::from_secret(&[6; 32]);
    let forged = strangers.seal(session.id(), ciphertext.clone());
    let unsigned = crate::GroupMessage {
        signature: [0; 64],
        ..forged.clone()
    };
    for junk in [forged, unsigned] {
        assert_eq!(
            topics.handle_publication(0, &topic, &junk.to_bytes()),
            Publication::Reject,
            "the relay kept (and forwarded) a stranger's message"
        );
    }
    // A member's message, signed by the epoch's key, is kept.
    let sealed = members.seal(session.id(), ciphertext);
    assert_eq!(
        topics.handle_publication(0, &topic, &sealed.to_bytes()),
        Publication::Accept {
            keep: true,
            expires_at_ms: None
        }
    );
    // Only group topics are kept: a made-up name is refused.
    let made_up = crate::HistoryRequest::Keep {
        topic: "/hush/group/2/not-a-key".into(),
    };
    assert!(matches!(
        topics.handle_request(0, None, &made_up.to_bytes()),
        HistoryAction::Answer(crate::HistoryResponse::Refused { .. })
    ));
}

/// Attack (issue 13, item 7): one machine deposits as a stranger from a
/// fresh peer id per request (peer ids are free), so the per-sender share
/// never applies. Its address is the same: at most a few strangers' items
/// per address a minute get in, then `Unavailable` (try later).
#[test]
fn one_address_behind_many_fresh_peer_ids_deposits_its_share_a_minute() {
    let mut relay = Relay::new(Quotas {
        stranger_items_per_ip_minute: 5,
        ..Quotas::default()
    });
    let mailbox = mailbox_of(&owner_key(1));
    let ip = |n: u8| Some(std::net::IpAddr::from([192, 0, 2, n]));
    for peer in 0..10u32 {
        let sender = peer.to_be_bytes();
        let request = deposit(mailbox, [peer]).to_bytes();
        relay
            .engine
            .handle_request_from(relay.now, &sender, ip(1), &request, peer, &relay.store);
        relay.collect();
    }
    relay.commit();
    let answers: Vec<DepositResult> = (0..10).flat_map(|t| results(relay.answer(t))).collect();
    let stored = answers
        .iter()
        .filter(|r| **r == DepositResult::Stored)
        .count();
    assert_eq!(stored, 5, "{answers:?}");
    assert!(
        answers[5..]
            .iter()
            .all(|r| *r == DepositResult::Refused(Refusal::Unavailable))
    );
    // Another address is not held back; the first gets its share again a
    // minute later.
    for (token, addr) in [(20u32, ip(2)), (21, ip(1))] {
        if token == 21 {
            relay.advance(60_000);
        }
        let request = deposit(mailbox, [token]).to_bytes();
        relay
            .engine
            .handle_request_from(relay.now, b"fresh", addr, &request, token, &relay.store);
        relay.collect();
        relay.commit();
        assert_eq!(results(relay.answer(token)), [DepositResult::Stored]);
    }
}

/// Attack (issue 13, item 7): topic names are free (any fresh key names
/// one), so a stranger asks a relay to keep topic after topic until it
/// keeps as many as it may, and real groups' `Keep` is refused from then
/// on. One address now keeps at most its share, and a topic nobody asks
/// for or publishes on goes after the retention period.
#[test]
fn a_stranger_keeping_made_up_topics_fills_only_its_addresses_share() {
    let mut topics = TopicBook::new(std::iter::empty(), 5);
    let attacker = Some(std::net::IpAddr::from([198, 51, 100, 1]));
    let honest = Some(std::net::IpAddr::from([203, 0, 113, 9]));
    let keep = |n: u8| {
        let topic = crate::PublishKey::from_secret(&[n; 32]).topic();
        (
            crate::HistoryRequest::Keep {
                topic: topic.clone(),
            }
            .to_bytes(),
            topic,
        )
    };
    let mut kept = 0;
    for n in 0..50 {
        let (request, topic) = keep(n);
        if topics.handle_request(0, attacker, &request) == HistoryAction::Keep(topic) {
            kept += 1;
        }
    }
    assert_eq!(kept, 5, "one address keeps its share");
    let (request, topic) = keep(200);
    assert_eq!(
        topics.handle_request(0, honest, &request),
        HistoryAction::Keep(topic.clone()),
        "a real group still gets its topic kept"
    );
    // The attacker's topics see no use; the real group fetches now and
    // then. After the idle period only the real group's topic is left.
    let day = 24 * 3600 * 1000;
    let fetch = crate::HistoryRequest::Fetch {
        topic: topic.clone(),
        after: 0,
        limit: 10,
    };
    for d in 1..=3 {
        let _ = topics.handle_request(d * day, honest, &fetch.to_bytes());
    }
    let gone = topics.expire(3 * day + 1, 2 * day);
    assert_eq!(gone.len(), 5);
    assert!(topics.is_kept(&topic));
    // ... and the attacker's address has its share back.
    let (request, topic) = keep(100);
    assert_eq!(
        topics.handle_request(3 * day + 2, attacker, &request),
        HistoryAction::Keep(topic)
    );
}

#[test]
fn a_blocked_contacts_revoked_right_no_longer_opens_the_contacts_share() {
    let quotas = Quotas {
        stranger_items: 2,
        ..Quotas::default()
    };
    let mut relay = Relay::new(quotas.clone());
    let owner = owner_key(1);
    let mailbox = mailbox_of(&owner);
    let right = crate::DepositRight::grant(&owner, [9; 16]);
    let with_right = |from: u32| MailboxRequest::Deposit {
        right: Some(right),
        items: (from..from + 3)
            .map(|n| DepositItem::new(mailbox, sealed(n, 64)))
            .collect(),
    };
    // The contact's right: its mail is a contact's, beyond the strangers'
    // share.
    relay.request(1, b"harasser", &with_right(0));
    relay.commit();
    assert_eq!(results(relay.answer(1)), [DepositResult::Stored; 3]);
    // The owner blocks it: the right counts for nothing from now on.
    relay.owner(
        2,
        &owner,
        OwnerRequest::Revoke {
            holders: vec![[9; 16]],
        },
    );
    relay.commit();
    assert_eq!(
        relay.answer(2),
        Some(MailboxResponse::Revoked { holders: 1 })
    );
    relay.request(3, b"harasser", &with_right(10));
    relay.commit();
    assert_eq!(
        results(relay.answer(3)),
        [
            DepositResult::Stored,
            DepositResult::Stored,
            DepositResult::Refused(Refusal::StrangerQuota)
        ],
        "only the strangers' share is open to it"
    );
    // Kept across a restart.
    let rules = RelayRules {
        quotas,
        retention_secs: 3600,
        push: Default::default(),
    };
    relay.engine = RelayEngine::load(rules, [[1; 32], [2; 32]], &relay.store, relay.now).unwrap();
    relay.request(4, b"harasser", &with_right(20));
    relay.commit();
    assert_eq!(
        results(relay.answer(4)),
        [DepositResult::Refused(Refusal::StrangerQuota); 3]
    );
    // Unblocked: the right opens the contacts' share again.
    relay.owner(5, &owner, OwnerRequest::Revoke { holders: vec![] });
    relay.commit();
    assert_eq!(
        relay.answer(5),
        Some(MailboxResponse::Revoked { holders: 0 })
    );
    relay.request(6, b"harasser", &with_right(30));
    relay.commit();
    assert_eq!(results(relay.answer(6)), [DepositResult::Stored; 3]);
}

#[test]
fn only_the_owner_revokes_rights_to_its_mailbox() {
    let quotas = Quotas {
        stranger_items: 1,
        ..Quotas::default()
    };
    let mut relay = Relay::new(quotas);
    let owner = owner_key(1);
    let right = crate::DepositRight::grant(&owner, [9; 16]);
    // Someone else signs a revocation: it names its own mailbox only.
    relay.owner(
        1,
        &owner_key(2),
        OwnerRequest::Revoke {
            holders: vec![[9; 16]],
        },
    );
    relay.commit();
    assert_eq!(
        relay.answer(1),
        Some(MailboxResponse::Revoked { holders: 1 })
    );
    let request = MailboxRequest::Deposit {
        right: Some(right),
        items: (0..2)
            .map(|n| DepositItem::new(mailbox_of(&owner), sealed(n, 64)))
            .collect(),
    };
    relay.request(2, b"contact", &request);
    relay.commit();
    assert_eq!(results(relay.answer(2)), [DepositResult::Stored; 2]);
}

mod batch;
mod drop;
mod push;

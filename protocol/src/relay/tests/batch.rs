//! Batches over an owner's own mailbox and its pairwise ones: only keys
//! the owner proves it holds are read, a set named by digest is only the
//! owner's and only under its challenge, and a merged page misses nothing.

use super::*;
use crate::{BatchItem, BatchRequest, KeySet};

pub(super) fn id(key: &SigningKey) -> DeviceId {
    DeviceId(key.verifying_key().to_bytes())
}

/// A batch by `owner` over `set`, each key signing the set's proof unless
/// `forged_by` stands in for it.
pub(super) fn batch(
    owner: &SigningKey,
    challenge: [u8; 32],
    set: &[&SigningKey],
    forged_by: Option<&SigningKey>,
    request: BatchRequest,
) -> MailboxRequest {
    let keys: Vec<DeviceId> = set.iter().map(|k| id(k)).collect();
    let digest = KeySet::digest(&challenge, &id(owner), &keys);
    let proof = KeySet::proof_bytes(&digest);
    let proofs = set
        .iter()
        .map(|k| forged_by.unwrap_or(k).sign(&proof).to_bytes())
        .collect();
    named(owner, challenge, KeySet::Full { keys, proofs }, request)
}

pub(super) fn named(
    owner: &SigningKey,
    challenge: [u8; 32],
    keys: KeySet,
    request: BatchRequest,
) -> MailboxRequest {
    let signature = owner.sign(&Auth::signed_bytes(&challenge, &request.body_bytes(&keys)));
    MailboxRequest::Batch {
        auth: Box::new(Auth {
            device: id(owner),
            challenge,
            signature: signature.to_bytes(),
        }),
        keys,
        request,
    }
}

fn page(response: Option<MailboxResponse>) -> (Vec<(u16, u64)>, bool) {
    match response {
        Some(MailboxResponse::Batch { items, more, .. }) => (
            items
                .into_iter()
                .map(|(i, s, _): BatchItem| (i, s))
                .collect(),
            more,
        ),
        other => panic!("not a batch page: {other:?}"),
    }
}

fn all_after(after: u64) -> BatchRequest {
    BatchRequest::Fetch { after, limit: 100 }
}

#[test]
fn a_batch_reads_the_owners_mailboxes_in_one_order_and_acks_each_in_its_own() {
    let mut relay = Relay::new(Quotas::default());
    let (bob, pa, pc) = (owner_key(1), owner_key(2), owner_key(3));
    relay.request(1, b"alice", &deposit(mailbox_of(&pa), [1, 2]));
    relay.request(2, b"x", &deposit(mailbox_of(&bob), [3]));
    relay.request(3, b"carol", &deposit(mailbox_of(&pc), [4]));
    relay.request(4, b"alice", &deposit(mailbox_of(&pa), [5]));
    relay.commit();
    let challenge = relay.challenge();
    relay.request(
        5,
        b"bob",
        &batch(&bob, challenge, &[&pa, &pc], None, all_after(0)),
    );
    let (items, more) = page(relay.answer(5));
    assert_eq!(items, [(1, 1), (1, 2), (0, 3), (2, 4), (1, 5)]);
    assert!(!more);
    // Small pages: each ends where every mailbox is complete, so reading
    // on from its last item skips nothing.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let limit = BatchRequest::Fetch { after, limit: 2 };
        relay.request(6, b"bob", &batch(&bob, challenge, &[&pa, &pc], None, limit));
        let (items, more) = page(relay.answer(6));
        after = items.last().map_or(after, |(_, s)| *s);
        seen.extend(items);
        if !more {
            break;
        }
    }
    assert_eq!(seen, [(1, 1), (1, 2), (0, 3), (2, 4), (1, 5)]);
    // Later batches name the set by its digest; acks name each item's
    // mailbox by index.
    let digest = KeySet::digest(&challenge, &id(&bob), &[id(&pa), id(&pc)]);
    let ack = BatchRequest::Ack {
        items: vec![(1, 1), (1, 2), (0, 3), (2, 4), (1, 5)],
    };
    relay.request(
        7,
        b"bob",
        &named(&bob, challenge, KeySet::Known(digest), ack),
    );
    relay.commit();
    assert_eq!(relay.answer(7), Some(MailboxResponse::Acked { removed: 5 }));
    assert!(relay.store.is_empty());
}

#[test]
fn a_batch_naming_a_mailbox_key_it_does_not_hold_reads_nothing() {
    let mut relay = Relay::new(Quotas::default());
    let (bob, mallory, bobs_pairwise) = (owner_key(1), owner_key(9), owner_key(2));
    relay.request(1, b"alice", &deposit(mailbox_of(&bobs_pairwise), [1]));
    relay.commit();
    let challenge = relay.challenge();
    // mallory lists bob's pairwise key, proving it with her own key.
    let stolen = batch(
        &mallory,
        challenge,
        &[&bobs_pairwise],
        Some(&mallory),
        all_after(0),
    );
    relay.request(2, b"mallory", &stolen);
    assert!(matches!(
        relay.answer(2),
        Some(MailboxResponse::Refused {
            reason: Refusal::NotOwner,
            ..
        })
    ));
    // Nor can she ack (delete) it.
    let ack = BatchRequest::Ack {
        items: vec![(1, 1)],
    };
    relay.request(
        3,
        b"mallory",
        &batch(&mallory, challenge, &[&bobs_pairwise], Some(&mallory), ack),
    );
    relay.commit();
    assert_eq!(relay.store.len(), 1, "bob's mail is still there");
    // bob, who holds the key, reads it.
    relay.request(
        4,
        b"bob",
        &batch(&bob, challenge, &[&bobs_pairwise], None, all_after(0)),
    );
    assert_eq!(page(relay.answer(4)).0, [(1, 1)]);
}

#[test]
fn a_key_set_named_by_digest_opens_only_for_its_owner_under_its_challenge() {
    let mut relay = Relay::new(Quotas::default());
    let (bob, mallory, pairwise) = (owner_key(1), owner_key(9), owner_key(2));
    relay.request(1, b"alice", &deposit(mailbox_of(&pairwise), [1]));
    relay.commit();
    let challenge = relay.challenge();
    relay.request(
        2,
        b"bob",
        &batch(&bob, challenge, &[&pairwise], None, all_after(0)),
    );
    assert_eq!(page(relay.answer(2)).0, [(1, 1)]);
    let digest = KeySet::digest(&challenge, &id(&bob), &[id(&pairwise)]);
    // mallory saw the digest go by and names it under her own signature.
    relay.request(
        3,
        b"mallory",
        &named(&mallory, challenge, KeySet::Known(digest), all_after(0)),
    );
    assert!(matches!(
        relay.answer(3),
        Some(MailboxResponse::Refused {
            reason: Refusal::StaleChallenge,
            ..
        })
    ));
    // bob under a newer challenge sends the set in full again.
    relay.advance(1_000);
    let newer = relay.challenge();
    relay.request(
        4,
        b"bob",
        &named(&bob, newer, KeySet::Known(digest), all_after(0)),
    );
    assert!(matches!(
        relay.answer(4),
        Some(MailboxResponse::Refused {
            reason: Refusal::StaleChallenge,
            ..
        })
    ));
}

/// A key set costs the relay one signature check a key: an address that
/// sends large made-up sets over and over gets its share of checks a
/// minute, then `Unavailable`; an owner on another address is not held up.
#[test]
fn one_address_sending_huge_key_sets_gets_its_share_of_checks_a_minute() {
    use crate::relay::SET_KEYS_PER_IP_MINUTE;
    let mut relay = Relay::new(Quotas::default());
    let keys: Vec<SigningKey> = (0..128u8)
        .map(|n| SigningKey::from_bytes(&[n; 32]))
        .collect();
    let set: Vec<&SigningKey> = keys.iter().collect();
    let challenge = relay.challenge();
    let attacker = Some(std::net::IpAddr::from([192, 0, 2, 1]));
    let per_set = set.len() as u32;
    let mut refused = 0;
    for n in 0..(SET_KEYS_PER_IP_MINUTE / per_set + 5) {
        // A fresh signer each time: every set is new to the relay.
        let mut seed = [7u8; 32];
        seed[..4].copy_from_slice(&n.to_be_bytes());
        let signer = SigningKey::from_bytes(&seed);
        let request = batch(&signer, challenge, &set, None, all_after(0)).to_bytes();
        relay
            .engine
            .handle_request_from(relay.now, b"x", attacker, &request, n, &relay.store);
        relay.collect();
        if let Some(MailboxResponse::Refused {
            reason: Refusal::Unavailable,
            ..
        }) = relay.answer(n)
        {
            refused += 1;
        }
    }
    assert_eq!(refused, 5, "past its share, the address waits a minute");
    let owner = Some(std::net::IpAddr::from([198, 51, 100, 7]));
    let bob = owner_key(1);
    let request = batch(&bob, challenge, &set[..3], None, all_after(0)).to_bytes();
    relay
        .engine
        .handle_request_from(relay.now, b"bob", owner, &request, 9_999, &relay.store);
    relay.collect();
    assert!(matches!(
        relay.answer(9_999),
        Some(MailboxResponse::Batch { .. })
    ));
    // A minute later the address has its share again.
    relay.advance(60_000);
    let challenge = relay.challenge();
    let request = batch(&bob, challenge, &set, None, all_after(0)).to_bytes();
    relay
        .engine
        .handle_request_from(relay.now, b"x", attacker, &request, 10_000, &relay.store);
    relay.collect();
    assert!(matches!(
        relay.answer(10_000),
        Some(MailboxResponse::Batch { .. })
    ));
}

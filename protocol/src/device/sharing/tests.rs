//! Presence between two or three books on a fake clock, with real sealed
//! records (signed by the device key, encrypted under the presence key).

use ed25519_dalek::SigningKey;

use super::*;
use crate::device::{CardReach, ContactBook, ContactRecord};
use crate::{AccountKey, ContactCard, DeviceList};

const TTL_MS: u64 = 60_000;
const GRACE_MS: u64 = 10_000;

struct Peer {
    account: AccountId,
    keys: DeviceKeys,
    card: ContactCard,
    book: PresenceBook<String>,
    contacts: ContactBook<DeviceId, String>,
}

fn reach(card: &ContactCard) -> CardReach<DeviceId, String> {
    crate::device::testkit::reach(card)
}

fn peer(seed: u8, name: &str, now: Now) -> Peer {
    let key = AccountKey::from_seed([seed; 32]);
    let device_secret = [seed + 100; 32];
    let device = DeviceId(
        SigningKey::from_bytes(&device_secret)
            .verifying_key()
            .to_bytes(),
    );
    let keys = DeviceKeys {
        device_id: device,
        olm_ed25519: [seed; 32],
        olm_curve25519: [seed; 32],
        mailbox_key: [seed; 32],
    };
    let list = DeviceList::sign(&key, 1, vec![keys]);
    let card = ContactCard::sign(&key, name.to_owned(), list, vec![], vec![]);
    let me = PresenceSelf {
        account: key.id(),
        device,
        device_secret,
    };
    let timing = PresenceTiming {
        ttl_ms: TTL_MS,
        grace_ms: GRACE_MS,
    };
    Peer {
        account: key.id(),
        keys,
        card,
        book: PresenceBook::load(me, timing, None, Vec::new(), now),
        contacts: ContactBook::default(),
    }
}

fn record_of(name: &str, card: &ContactCard) -> ContactRecord {
    ContactRecord {
        name: name.to_owned(),
        card: card.to_string(),
        account: card.account(),
        send_receipts: true,
        added_at_ms: 0,
    }
}

/// Everyone a contact of everyone, with each other's presence keys.
fn world(names: &[&str]) -> (Vec<Peer>, Now) {
    let now = Now::new(1_000, 1_800_000_000_000);
    let mut peers: Vec<Peer> = names
        .iter()
        .enumerate()
        .map(|(i, n)| peer(i as u8 + 1, n, now))
        .collect();
    let cards: Vec<(String, ContactCard)> = names
        .iter()
        .zip(&peers)
        .map(|(n, p)| ((*n).to_owned(), p.card.clone()))
        .collect();
    for p in &mut peers {
        for (name, card) in &cards {
            if card.account() != p.account {
                p.contacts
                    .insert(record_of(name, card), card.clone(), reach(card));
            }
        }
    }
    // Keys go around (over Olm, in the node).
    for i in 0..peers.len() {
        let accounts: Vec<AccountId> = peers.iter().map(|p| p.account).collect();
        let me = peers[i].account;
        for a in accounts.iter().filter(|a| **a != me) {
            peers[i].book.share_key_with(a);
        }
        let shared: Vec<(AccountId, PresenceKey)> = drain(&mut peers[i].book)
            .into_iter()
            .filter_map(|e| match e {
                PresenceEffect::ShareKey { account, key } => Some((account, key)),
                _ => None,
            })
            .collect();
        let from = peers[i].account;
        for (to, key) in shared {
            let j = peers.iter().position(|p| p.account == to).unwrap();
            peers[i].book.key_sent(&to, key.epoch());
            let Peer { book, contacts, .. } = &mut peers[j];
            book.handle_key(now, contacts, &from, &key, &[], &[]);
            drain(book);
        }
    }
    (peers, now)
}

fn drain(book: &mut PresenceBook<String>) -> Vec<PresenceEffect> {
    std::iter::from_fn(|| book.poll_effect()).collect()
}

/// What `from` announced, as the record it put in the DHT.
fn announced(from: &mut Peer, now: Now, state: PresenceState) -> SealedPresence {
    assert!(
        from.book
            .announce(now, state, &["/ip4/10.0.0.1/tcp/1".into()], &[])
    );
    drain(&mut from.book)
        .into_iter()
        .find_map(|e| match e {
            PresenceEffect::Put { record, .. } => Some(record),
            _ => None,
        })
        .expect("a record for the DHT")
}

fn accept(
    to: &mut Peer,
    from_account: AccountId,
    from_keys: DeviceKeys,
    record: &SealedPresence,
    now: Now,
) -> Accepted<String> {
    let Peer { book, contacts, .. } = to;
    book.accept(
        now,
        contacts,
        &from_account,
        &from_keys,
        record,
        false,
        |a| Some(a.to_owned()),
    )
}

#[test]
fn a_contact_is_online_from_its_record_and_offline_once_the_grace_period_is_over() {
    let (mut p, now) = world(&["alice", "bob"]);
    let (alice, alice_keys) = (p[0].account, p[0].keys);
    let record = announced(&mut p[0], now, PresenceState::Online);
    assert_eq!(
        accept(&mut p[1], alice, alice_keys, &record, now),
        Accepted::Applied(vec!["/ip4/10.0.0.1/tcp/1".into()], None)
    );
    let changed = drain(&mut p[1].book);
    assert!(
        changed
            .iter()
            .any(|e| matches!(e, PresenceEffect::Changed { online: true, .. }))
    );
    // The same record again is nothing new.
    assert_eq!(
        accept(&mut p[1], alice, alice_keys, &record, now),
        Accepted::Known
    );
    // Connected, then the connection drops: online through the grace period.
    let Peer { book, contacts, .. } = &mut p[1];
    book.connected(now, contacts, &alice, alice_keys.device_id, &[]);
    let later = now.plus_ms(1_000);
    p[1].book.disconnected(later, &alice, &alice_keys.device_id);
    drain(&mut p[1].book);
    let Peer { book, contacts, .. } = &mut p[1];
    book.handle_tick(later.plus_ms(GRACE_MS - 1), contacts);
    assert!(
        book.summary(later, contacts, &alice).online,
        "no flap inside the grace period"
    );
    book.handle_tick(later.plus_ms(GRACE_MS + 1), contacts);
    let effects = drain(book);
    assert!(effects
        .iter()
        .any(|e| matches!(e, PresenceEffect::Changed { online: false, last_seen_ms, .. } if *last_seen_ms == later.unix_ms)));
    assert!(
        !book
            .summary(later.plus_ms(GRACE_MS + 1), contacts, &alice)
            .online
    );
}

#[test]
fn a_record_for_another_device_or_under_an_unknown_key_is_refused() {
    let (mut p, now) = world(&["alice", "bob", "carol"]);
    let (alice, alice_keys) = (p[0].account, p[0].keys);
    let carol_keys = p[2].keys;
    let record = announced(&mut p[0], now, PresenceState::Online);
    // Carol replays alice's record as hers.
    let carol = p[2].account;
    assert_eq!(
        accept(&mut p[1], carol, carol_keys, &record, now),
        Accepted::Refused(Refusal::Unreadable)
    );
    // A stranger's book reads nothing of hers; nor does a new contact's
    // before her key arrives.
    let (mut stranger, _) = world(&["mallory"]);
    assert_eq!(
        accept(&mut stranger[0], alice, alice_keys, &record, now),
        Accepted::Refused(Refusal::NotAContact)
    );
    let card = p[0].card.clone();
    stranger[0]
        .contacts
        .insert(record_of("alice", &card), card.clone(), reach(&card));
    assert_eq!(
        accept(&mut stranger[0], alice, alice_keys, &record, now),
        Accepted::Refused(Refusal::NoKey)
    );
}

#[test]
fn turning_sharing_off_for_one_contact_retires_the_key_and_tells_only_the_others_the_new_one() {
    let (mut p, now) = world(&["alice", "bob", "carol"]);
    let (bob, carol) = (p[1].account, p[2].account);
    let bob_device = p[1].keys.device_id;
    let old = announced(&mut p[0], now, PresenceState::Online);
    let all = [bob, carol];
    p[0].book.set_sharing(
        now,
        Some(bob),
        false,
        &all,
        |a| if *a == bob { vec![bob_device] } else { vec![] },
        &[],
        &[],
    );
    let effects = drain(&mut p[0].book);
    // bob's device hears the old key's last word: offline, never seen.
    let goodbye = effects
        .iter()
        .find_map(|e| match e {
            PresenceEffect::Push {
                device,
                record: Some(r),
            } if *device == bob_device => Some(r.clone()),
            _ => None,
        })
        .expect("a goodbye to bob");
    let alice = p[0].account;
    let alice_keys = p[0].keys;
    assert!(matches!(
        accept(&mut p[1], alice, alice_keys, &goodbye, now.plus_ms(1)),
        Accepted::Applied(..)
    ));
    // Only carol gets the new key.
    let shared: Vec<(AccountId, u32)> = effects
        .iter()
        .filter_map(|e| match e {
            PresenceEffect::ShareKey { account, key } => Some((*account, key.epoch())),
            _ => None,
        })
        .collect();
    assert_eq!(shared, [(carol, 2)]);
    // What alice publishes now, bob cannot read; carol can once she has
    // the key.
    p[0].book.key_sent(&carol, 2);
    let new = announced(&mut p[0], now.plus_ms(2), PresenceState::Online);
    assert_ne!(new, old);
    assert_eq!(
        accept(&mut p[1], alice, alice_keys, &new, now.plus_ms(3)),
        Accepted::Refused(Refusal::Unreadable)
    );
    assert!(!p[0].book.shares_with(&bob));
    assert!(p[0].book.shares_with(&carol));
}

#[test]
fn reconnects_push_our_record_at_most_once_a_second() {
    let (mut p, now) = world(&["alice", "bob"]);
    let (bob, bob_device) = (p[1].account, p[1].keys.device_id);
    let pushes = |book: &mut PresenceBook<String>| {
        drain(book)
            .iter()
            .filter(|e| matches!(e, PresenceEffect::Push { .. }))
            .count()
    };
    let Peer { book, contacts, .. } = &mut p[0];
    book.connected(now, contacts, &bob, bob_device, &[]);
    assert_eq!(pushes(book), 1);
    book.connected(
        now.plus_ms(PUSH_INTERVAL_MS - 1),
        contacts,
        &bob,
        bob_device,
        &[],
    );
    assert_eq!(pushes(book), 0, "a flapping connection is not a flood");
    book.connected(
        now.plus_ms(PUSH_INTERVAL_MS),
        contacts,
        &bob,
        bob_device,
        &[],
    );
    assert_eq!(pushes(book), 1);
}

#[test]
fn after_a_rotation_connected_contacts_get_a_record_under_the_new_key_at_once() {
    // Another device of alice's account may have handed carol the new key
    // already: she must not wait a heartbeat for a record she can read.
    let (mut p, now) = world(&["alice", "bob", "carol"]);
    let (bob, carol) = (p[1].account, p[2].account);
    let carol_device = p[2].keys.device_id;
    p[0].book.set_sharing(
        now,
        Some(bob),
        false,
        &[bob, carol],
        |_| vec![],
        &["/ip4/10.0.0.1/tcp/1".into()],
        &[(carol, carol_device)],
    );
    let effects = drain(&mut p[0].book);
    let key = effects
        .iter()
        .find_map(|e| match e {
            PresenceEffect::ShareKey { account, key } if *account == carol => Some(key.clone()),
            _ => None,
        })
        .expect("the new key for carol");
    let pushed = effects
        .iter()
        .find_map(|e| match e {
            PresenceEffect::Push {
                device,
                record: Some(r),
            } if *device == carol_device => Some(r.clone()),
            _ => None,
        })
        .expect("a record pushed to carol's device");
    let (alice, alice_keys) = (p[0].account, p[0].keys);
    let Peer { book, contacts, .. } = &mut p[2];
    book.handle_key(now, contacts, &alice, &key, &[], &[]);
    assert!(matches!(
        accept(&mut p[2], alice, alice_keys, &pushed, now.plus_ms(1)),
        Accepted::Applied(..)
    ));
}

#[test]
fn a_group_peer_who_is_not_a_contact_is_pushed_no_record_and_given_none() {
    let (mut p, now) = world(&["alice", "bob"]);
    let (bob, bob_keys, bob_card) = (p[1].account, p[1].keys, p[1].card.clone());
    // Alice knows bob only as a member of a group they share (he was a
    // contact once: she still holds his key).
    let mut contacts = ContactBook::default();
    contacts.insert_peer(
        record_of("bob", &bob_card),
        bob_card.clone(),
        reach(&bob_card),
    );
    p[0].contacts = contacts;
    drain(&mut p[0].book);
    // His device connects (a group's mesh): nothing is pushed to it.
    let Peer { book, contacts, .. } = &mut p[0];
    book.connected(now, contacts, &bob, bob_keys.device_id, &[]);
    let pushed = drain(book);
    assert!(
        !pushed
            .iter()
            .any(|e| matches!(e, PresenceEffect::Push { .. })),
        "pushed to a non-contact: {pushed:?}"
    );
    // His own push is not read, and the answer carries no record of ours.
    let his = announced(&mut p[1], now, PresenceState::Online);
    let Peer { book, contacts, .. } = &mut p[0];
    let (accepted, answer) = book.handle_push(
        now,
        contacts,
        &bob,
        &bob_keys,
        Some(&his),
        true,
        &["/ip4/10.0.0.2/tcp/1".into()],
        |a| Some(a.to_owned()),
    );
    assert_eq!(accepted, Accepted::Refused(Refusal::NotAContact));
    assert_eq!(answer, None);
    assert!(!book.summary(now, contacts, &bob).online);
}

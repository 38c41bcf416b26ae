//! Pairwise mailboxes (issue 18, item 1): each contact deposits into a
//! mailbox of its own at our relay, which the relay cannot tie to the
//! others, to our device, or to the contact.

use super::*;
use crate::{DepositRight, GENERATION_MS};

/// The items deposited at the relay, each with the right it came with.
fn deposited(net: &Net) -> impl Iterator<Item = (&crate::DepositItem, Option<DepositRight>)> {
    net.relay_log
        .iter()
        .filter_map(|r| match r {
            MailboxRequest::Deposit { right, items } => Some((items, *right)),
            _ => None,
        })
        .flat_map(|(items, right)| items.iter().map(move |i| (i, right)))
}

/// The deposits the relay got: (mailbox, right) per item.
fn deposits(net: &Net) -> Vec<(MailboxId, Option<DepositRight>)> {
    deposited(net)
        .map(|(i, right)| (i.mailbox, right))
        .collect()
}

/// alice and carol are bob's contacts; bob (relayed) wrote to both, so
/// each holds his grant; then bob goes offline.
fn bob_away() -> Net {
    let mut net = Net::with_relay(&["alice", "bob", "carol"], &["bob"]);
    net.advance(POLL_MS);
    net.upload_keys(1);
    net.send(1, "alice", "hi alice");
    net.send(1, "carol", "hi carol");
    net.devs[1].online = false;
    net
}

#[test]
fn two_contacts_writing_to_one_device_leave_nothing_a_relay_can_link() {
    let mut net = bob_away();
    net.send(0, "bob", "from alice");
    net.send(2, "bob", "from carol");
    net.advance_10(FIRST_RETRY_MS);
    let seen = deposits(&net);
    assert_eq!(seen.len(), 2, "both messages wait at bob's relay");
    let bob = net.devs[1].keys.device_id;
    let (a, c) = (seen[0], seen[1]);
    // Two mailboxes, neither the one bob's card names (his device's).
    assert_ne!(a.0, c.0);
    assert!(a.0 != MailboxId::of(&bob) && c.0 != MailboxId::of(&bob));
    // Each deposit proves a right, signed by a key that is neither bob's
    // device key nor the other's, under a holder tag of its own.
    let (ra, rc) = (a.1.expect("alice's right"), c.1.expect("carol's right"));
    assert!(ra.verify() && rc.verify());
    assert!(ra.device != bob && rc.device != bob && ra.device != rc.device);
    assert_ne!(ra.holder, rc.holder);
    assert_eq!(
        net.relay_store.mailboxes(),
        [a.0, c.0],
        "stored under the pairwise mailboxes"
    );
    // bob is back: one batch reads both, and the relay keeps nothing.
    net.devs[1].online = true;
    net.advance_10(POLL_MS);
    assert_eq!(
        net.devs[1].disk.incoming(),
        ["from alice", "from carol"],
        "bob reads both"
    );
    assert!(net.relay_store.is_empty(), "acked from their own mailboxes");
}

#[test]
fn a_grant_is_used_through_the_next_generation_then_the_devices_own_mailbox() {
    let mut net = bob_away();
    let bob = net.devs[1].keys.device_id;
    // A generation later, alice's grant still holds: bob fetches it too.
    net.devs[1].online = true;
    net.advance(GENERATION_MS);
    net.devs[1].online = false;
    net.send(0, "bob", "next generation");
    net.advance_10(FIRST_RETRY_MS);
    let seen = deposits(&net);
    assert!(seen[0].0 != MailboxId::of(&bob), "still the pairwise one");
    net.devs[1].online = true;
    net.advance_10(POLL_MS);
    assert_eq!(net.devs[1].disk.incoming(), ["next generation"]);
    // Two generations on, with no new grant (bob wrote nothing since):
    // alice falls back to the mailbox bob's card names, and nothing is
    // lost.
    net.advance(GENERATION_MS);
    net.devs[1].online = false;
    net.send(0, "bob", "old grant");
    net.advance_10(FIRST_RETRY_MS);
    let seen = deposits(&net);
    assert_eq!(seen.last().map(|d| d.0), Some(MailboxId::of(&bob)));
    net.devs[1].online = true;
    net.advance_10(POLL_MS);
    assert_eq!(
        net.devs[1].disk.incoming(),
        ["next generation", "old grant"]
    );
    assert!(net.relay_store.is_empty());
}

#[test]
fn a_contacts_mail_is_sealed_under_its_deposit_key_and_an_older_grant_still_reaches_bob() {
    let mut net = bob_away();
    let bob = net.devs[1].keys.device_id;
    let grant = net.devs[0].disk.grants[&bob];
    let key = grant
        .deposit_key
        .expect("bob's grant carries a deposit key");
    // carol holds a grant of the first format (an owner before deposit
    // keys gave it): she seals to its HPKE key.
    let carols_grant = net.devs[2].disk.grants[&bob];
    let older = crate::MailboxGrant {
        deposit_key: None,
        ..carols_grant
    };
    net.call(2, |e, _, _| e.restore_grant(bob, older));
    net.send(0, "bob", "under the deposit key");
    net.send(2, "bob", "to the mailbox key");
    net.advance_10(FIRST_RETRY_MS);
    let seals: Vec<Vec<u8>> = deposited(&net).map(|(i, _)| i.sealed.clone()).collect();
    assert_eq!(seals.len(), 2);
    assert!(key.open(&grant.mailbox(), &seals[0]).is_ok(), "alice's");
    let carols_key = carols_grant.deposit_key.expect("carol's grant had one");
    assert!(
        carols_key.open(&older.mailbox(), &seals[1]).is_err(),
        "carol's is not under the deposit key: bob opens it with HPKE"
    );
    net.devs[1].online = true;
    net.advance_10(POLL_MS);
    assert_eq!(
        net.devs[1].disk.incoming(),
        ["under the deposit key", "to the mailbox key"]
    );
    assert!(net.relay_store.is_empty());
}

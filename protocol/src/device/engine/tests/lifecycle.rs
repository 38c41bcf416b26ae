//! A contact's life after it was added: removed, blocked, verified.

use super::*;
use crate::device::{ContactTrust, keys_fingerprint};

/// bob's card as alice's engine knows it, with one more device: what a
/// newer card of his (a new device, or keys an attacker slipped in with
/// his account key) looks like.
fn card_with_another_device(net: &Net, bob: usize, seed: u8) -> (ContactCard, DeviceKeys) {
    let account = AccountKey::from_seed([bob as u8 + 1; 32]);
    let signing = SigningKey::from_bytes(&[seed; 32]);
    let olm = OlmDevice::new();
    let extra = DeviceKeys {
        device_id: DeviceId(signing.verifying_key().to_bytes()),
        olm_ed25519: olm.ed25519_key(),
        olm_curve25519: olm.curve25519_key(),
        mailbox_key: MailboxSecret::derive(&[seed; 32]).public_key(),
    };
    let old = &net.devs[bob];
    let proofs = vec![
        old.keys.prove(&account.id(), &old.signing),
        extra.prove(&account.id(), &signing),
    ];
    let list = DeviceList::sign_proven(&account, 2, vec![old.keys, extra], proofs);
    let card = ContactCard::sign(&account, "bob".into(), list, vec![], vec![]);
    (card, extra)
}

#[test]
fn a_blocked_contact_cannot_get_a_message_into_our_history() {
    let mut net = Net::new(&["alice", "bob"]);
    net.send(1, "alice", "before");
    net.call(0, |e, ctx, _| e.block_contact(ctx, "bob", true))
        .unwrap();
    assert!(
        net.devs[0]
            .engine
            .contacts
            .is_blocked(&net.devs[1].engine.me().account)
    );
    // Straight to alice's engine (the host refuses the connection too).
    net.send(1, "alice", "after the block");
    assert_eq!(net.devs[0].disk.incoming(), ["before"]);
    // Taken and dropped: no delivered receipt tells bob anything.
    assert_eq!(
        statuses(&net.devs[1]),
        [
            ("before".to_owned(), Status::Delivered),
            ("after the block".to_owned(), Status::Delivered),
        ]
    );
    assert!(!net.devs[0].notices.iter().any(
        |n| matches!(n, DeviceNotice::Message { message, .. } if message.text == "after the block")
    ));
    // Unblocked: what comes next is taken again.
    net.call(0, |e, ctx, _| e.block_contact(ctx, "bob", false))
        .unwrap();
    assert!(net.devs[0].engine.revoked_holders().is_empty());
    net.send(1, "alice", "unblocked");
    assert_eq!(net.devs[0].disk.incoming(), ["before", "unblocked"]);
}

#[test]
fn a_blocked_contacts_mail_through_our_relay_is_dropped_and_deleted() {
    let mut net = Net::with_relay(&["alice", "bob"], &["alice"]);
    net.advance(POLL_MS);
    net.upload_keys(0);
    net.call(0, |e, ctx, _| e.block_contact(ctx, "bob", true))
        .unwrap();
    net.devs[0].online = false;
    net.send(1, "alice", "left at your relay");
    net.advance_10(FIRST_RETRY_MS);
    assert_eq!(
        net.relay_store.len(),
        1,
        "bob's mail waits at alice's relay"
    );
    net.devs[0].online = true;
    net.advance_10(POLL_MS);
    assert!(net.devs[0].disk.incoming().is_empty());
    assert!(
        net.relay_store.is_empty(),
        "taken, so the relay keeps nothing"
    );
}

#[test]
fn sending_to_a_blocked_contact_is_refused_and_what_was_queued_waits_for_the_unblock() {
    let mut net = Net::new(&["alice", "bob"]);
    // Queued, bob out of reach, when the user blocks him.
    net.devs[1].online = false;
    net.send(0, "bob", "queued");
    net.call(0, |e, ctx, _| e.block_contact(ctx, "bob", true))
        .unwrap();
    net.devs[1].online = true;
    net.advance(crate::device::MAX_RETRY_MS);
    assert!(net.devs[1].disk.incoming().is_empty(), "held while blocked");
    let refused = net.call(0, |e, ctx, _| e.send_text(ctx, "bob", "new".into()));
    assert_eq!(refused, Err(SendError::Blocked { name: "bob".into() }));
    net.call(0, |e, ctx, _| e.block_contact(ctx, "bob", false))
        .unwrap();
    net.drive();
    assert_eq!(net.devs[1].disk.incoming(), ["queued"]);
}

#[test]
fn a_removed_contact_is_a_stranger_both_ways() {
    let mut net = Net::new(&["alice", "bob"]);
    net.send(0, "bob", "hello");
    net.send(1, "alice", "hi");
    // Something still queued for bob when alice removes him.
    net.devs[1].online = false;
    net.send(0, "bob", "never sent");
    let removed = net
        .call(0, |e, ctx, _| e.remove_contact(ctx.now, "bob", false))
        .unwrap();
    assert_eq!(removed.record.name, "bob");
    assert!(!removed.group_peer);
    net.devs[1].online = true;
    net.drive();
    let alice = &net.devs[0];
    assert!(
        alice.disk.outbox.is_empty(),
        "what was queued for him is gone"
    );
    assert!(
        !alice
            .engine
            .olm
            .has_session(&net.devs[1].keys.olm_curve25519)
    );
    assert_eq!(alice.engine.contacts.len(), 0);
    assert_eq!(net.devs[1].disk.incoming(), ["hello"]);
    // His messages are refused now.
    net.send(1, "alice", "still there?");
    assert_eq!(
        net.devs[0].disk.incoming(),
        ["hi"],
        "history kept, nothing new"
    );
    // And alice cannot write to him.
    let refused = net.call(0, |e, ctx, _| e.send_text(ctx, "bob", "x".into()));
    assert!(matches!(refused, Err(SendError::UnknownContact { .. })));
    assert_eq!(
        net.call(0, |e, ctx, _| e.remove_contact(ctx.now, "bob", false))
            .unwrap_err(),
        ContactError::Unknown { name: "bob".into() }
    );
}

#[test]
fn a_verified_contacts_new_keys_are_flagged_until_verified_again() {
    let mut net = Net::new(&["alice", "bob"]);
    let bob = net.devs[1].engine.me().account;
    let (_, trust) = net
        .call(0, |e, _, _| e.verify_contact("bob", true))
        .unwrap();
    assert_eq!(
        trust.verified,
        Some(keys_fingerprint(&net.devs[1].card)),
        "the keys on the card the user compared"
    );
    assert!(!net.devs[0].engine.contacts.keys_changed(&bob));
    // A newer card with a device the user never saw.
    let (card, _) = card_with_another_device(&net, 1, 77);
    let text = card.to_string();
    net.call(0, |e, ctx, _| {
        e.update_contact(ctx, "bob".into(), card, text)
    })
    .unwrap();
    assert!(net.devs[0].engine.contacts.keys_changed(&bob));
    assert!(
        net.devs[0]
            .notices
            .iter()
            .any(|n| matches!(n, DeviceNotice::KeysChanged { contact } if contact == "bob")),
        "the user is told"
    );
    // Compared again and verified: the flag goes.
    net.call(0, |e, _, _| e.verify_contact("bob", true))
        .unwrap();
    assert!(!net.devs[0].engine.contacts.keys_changed(&bob));
    // Taking the mark away leaves nothing to flag.
    let (_, trust) = net
        .call(0, |e, _, _| e.verify_contact("bob", false))
        .unwrap();
    assert_eq!(trust, ContactTrust::default());
}

#[test]
fn an_unverified_contacts_new_keys_are_not_flagged() {
    let mut net = Net::new(&["alice", "bob"]);
    let (card, _) = card_with_another_device(&net, 1, 78);
    let text = card.to_string();
    net.call(0, |e, ctx, _| {
        e.update_contact(ctx, "bob".into(), card, text)
    })
    .unwrap();
    assert!(
        !net.devs[0]
            .notices
            .iter()
            .any(|n| matches!(n, DeviceNotice::KeysChanged { .. }))
    );
}

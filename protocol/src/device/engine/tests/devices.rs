//! Several devices per account (issue 15): a linked device's card is
//! pushed to contacts, who then send to every device on it.

use super::*;

/// Links a second device (seed 40) to device `of`'s account: the new list
/// and card (signed by the account), and the new device in the net, with
/// the same contacts. Returns the new device's index and the card.
fn link_second_device(net: &mut Net, of: usize, name: &str) -> (usize, ContactCard) {
    let account_seed = of as u8 + 1;
    let key = AccountKey::from_seed([account_seed; 32]);
    let mut second = device_of(account_seed, 40, name, false);
    let first = net.devs[of].keys;
    let first_proof = first.prove(&key.id(), &net.devs[of].signing);
    let second_proof = second.keys.prove(&key.id(), &second.signing);
    let list = DeviceList::sign_proven(
        &key,
        net.devs[of].card.device_list.issued_at_ms + 1,
        vec![first, second.keys],
        vec![first_proof, second_proof],
    );
    let card = ContactCard::sign(&key, name.to_owned(), list, vec![], vec![]);
    for c in net.devs[of].engine.contacts.contacts() {
        let record = c.record.clone();
        second
            .engine
            .contacts
            .insert(record, c.card.clone(), reach(&c.card));
    }
    second.card = card.clone();
    net.devs[of].card = card.clone();
    net.devs.push(second);
    (net.devs.len() - 1, card)
}

fn card_of(net: &Net, at: usize, contact: &str) -> ContactCard {
    net.devs[at]
        .engine
        .contacts
        .contact(contact)
        .unwrap()
        .card
        .clone()
}

#[test]
fn a_pushed_card_puts_a_linked_device_on_the_list_and_mail_reaches_both() {
    let mut net = Net::new(&["alice", "bob"]);
    let (alice2, card) = link_second_device(&mut net, 0, "alice");
    net.call(0, |e, ctx, _| e.push_card(ctx, &card));
    net.drive();
    assert_eq!(card_of(&net, 1, "alice"), card, "bob took alice's new card");
    net.send(1, "alice", "to both of you");
    for at in [0, alice2] {
        assert_eq!(
            net.devs[at].disk.texts(),
            [(true, "to both of you".to_owned(), Status::Delivered)],
            "device {at} has bob's message"
        );
    }
    // And the new device sends as alice: bob takes it from the listed device.
    net.send(alice2, "bob", "from the laptop");
    assert!(net.devs[1].disk.texts().contains(&(
        true,
        "from the laptop".to_owned(),
        Status::Delivered
    )));
}

#[test]
fn a_replayed_older_card_does_not_roll_back_the_device_list() {
    let mut net = Net::new(&["alice", "bob"]);
    let old = card_of(&net, 1, "alice");
    let (_, card) = link_second_device(&mut net, 0, "alice");
    net.call(0, |e, ctx, _| e.push_card(ctx, &card));
    net.drive();
    // The older card (one device) pushed again: bob keeps the newer list.
    net.call(0, |e, ctx, _| e.push_card(ctx, &old));
    net.drive();
    assert_eq!(card_of(&net, 1, "alice"), card);
}

#[test]
fn a_contact_pushing_another_accounts_card_changes_nothing() {
    let mut net = Net::new(&["alice", "bob", "mallory"]);
    let alice_card = card_of(&net, 1, "alice");
    let mallory_card = card_of(&net, 1, "mallory");
    // mallory pushes alice's card as her own: bob would learn that mallory
    // is alice (or send mallory's mail to alice's devices).
    net.call(2, |e, ctx, _| e.push_card(ctx, &alice_card));
    net.drive();
    assert_eq!(card_of(&net, 1, "mallory"), mallory_card);
    assert_eq!(card_of(&net, 1, "alice"), alice_card);
}

/// alice with a second device, both knowing the account's card (as their
/// hosts tell them at start).
pub(super) fn alice_with_two_devices(names: &[&str]) -> (Net, usize, ContactCard) {
    let mut net = Net::new(names);
    let (alice2, card) = link_second_device(&mut net, 0, "alice");
    for at in [0, alice2] {
        net.call(at, |e, ctx, _| e.set_own_card(ctx, card.clone()));
    }
    net.call(0, |e, ctx, _| e.push_card(ctx, &card));
    net.drive();
    (net, alice2, card)
}

fn texts_with(net: &Net, at: usize, with: usize) -> Vec<(bool, String, Status)> {
    let conversation = ConversationId::direct(
        &net.devs[at].engine.me().account,
        &net.devs[with].engine.me().account,
    );
    net.devs[at]
        .disk
        .messages
        .iter()
        .filter(|((c, _), _)| *c == conversation)
        .map(|(_, m)| (!m.outgoing, m.text.clone(), m.status))
        .collect()
}

#[test]
fn what_one_device_sends_shows_on_the_others_and_the_read_receipt_raises_it_there_too() {
    let (mut net, alice2, _) = alice_with_two_devices(&["alice", "bob"]);
    net.send(0, "bob", "sent from the desktop");
    assert_eq!(
        texts_with(&net, alice2, 1),
        [(false, "sent from the desktop".to_owned(), Status::Sent)],
        "the laptop shows it as sent by alice"
    );
    // bob reads it: his read receipt goes to every device of alice's.
    net.call(1, |e, ctx, disk| e.mark_read(ctx, disk, "alice"))
        .unwrap()
        .unwrap();
    net.drive();
    for at in [0, alice2] {
        assert_eq!(
            texts_with(&net, at, 1),
            [(false, "sent from the desktop".to_owned(), Status::Read)],
            "device {at}"
        );
    }
}

#[test]
fn reading_on_one_device_marks_the_conversation_read_on_the_others() {
    let (mut net, alice2, _) = alice_with_two_devices(&["alice", "bob"]);
    net.send(1, "alice", "read me once");
    let conversation = ConversationId::direct(
        &net.devs[0].engine.me().account,
        &net.devs[1].engine.me().account,
    );
    let id = net.devs[alice2]
        .disk
        .messages
        .keys()
        .find(|(c, _)| *c == conversation)
        .map(|(_, id)| *id)
        .expect("the laptop has bob's message");
    net.call(0, |e, ctx, disk| e.mark_read(ctx, disk, "bob"))
        .unwrap()
        .unwrap();
    net.drive();
    assert!(net.devs[alice2].disk.read.contains(&(conversation, id)));
}

#[test]
fn a_device_linked_later_becomes_known_to_the_other_devices() {
    let (mut net, alice2, card) = alice_with_two_devices(&["alice", "bob"]);
    // A third device: the desktop signs a list with all three.
    let key = AccountKey::from_seed([1; 32]);
    let third = device_of(1, 41, "alice", false);
    let mut devices = card.device_list.devices.clone();
    let mut proofs = card.device_list.proofs.clone();
    devices.push(third.keys);
    proofs.push(third.keys.prove(&key.id(), &third.signing));
    let list = DeviceList::sign_proven(&key, card.device_list.issued_at_ms + 1, devices, proofs);
    let newer = ContactCard::sign(&key, "alice".into(), list, vec![], vec![]);
    net.devs.push(third);
    net.call(0, |e, ctx, _| {
        e.set_own_card(ctx, newer.clone());
        e.push_card(ctx, &newer);
    });
    net.drive();
    let own = net.devs[alice2].engine.contacts.own().unwrap();
    assert_eq!(own.card, newer, "the laptop took the account's newer list");
}

#[test]
fn a_contact_cannot_plant_messages_as_sent_by_us() {
    let (mut net, alice2, _) = alice_with_two_devices(&["alice", "bob"]);
    let alice = net.devs[0].engine.me().account;
    let bob = net.devs[1].engine.me().account;
    // bob sends alice what only her own devices send: "you wrote this".
    let item = crate::SyncItem::Sent {
        with: bob,
        id: MessageId::from_parts(1_800_000_000_000, 0, 7),
        text: "I owe bob 100 euros".into(),
    };
    net.call(1, |e, ctx, _| {
        e.send_control(ctx, &alice, OutboxKind::Account, Body::Sync(item))
    })
    .unwrap();
    net.drive();
    for at in [0, alice2] {
        assert!(
            texts_with(&net, at, 1)
                .iter()
                .all(|(_, t, _)| t != "I owe bob 100 euros"),
            "device {at} took a planted message"
        );
    }
}

/// alice's first device signs a list without `revoked` and tells everyone.
fn revoke(net: &mut Net, card: &ContactCard, revoked: usize) -> ContactCard {
    let key = AccountKey::from_seed([1; 32]);
    let gone = net.devs[revoked].keys.device_id;
    let keep: Vec<(DeviceKeys, [u8; 64])> = card
        .device_list
        .devices
        .iter()
        .zip(&card.device_list.proofs)
        .filter(|(d, _)| d.device_id != gone)
        .map(|(d, p)| (*d, *p))
        .collect();
    let list = DeviceList::sign_proven(
        &key,
        card.device_list.issued_at_ms + 1,
        keep.iter().map(|(d, _)| *d).collect(),
        keep.iter().map(|(_, p)| *p).collect(),
    );
    let newer = ContactCard::sign(&key, "alice".into(), list, vec![], vec![]);
    net.devs[0].card = newer.clone();
    net.call(0, |e, ctx, _| {
        e.set_own_card(ctx, newer.clone());
        e.push_card(ctx, &newer);
    });
    net.drive();
    newer
}

#[test]
fn a_revoked_device_gets_nothing_more_and_learns_it_when_it_next_sends() {
    let (mut net, laptop, card) = alice_with_two_devices(&["alice", "bob"]);
    net.send(1, "alice", "before");
    assert_eq!(net.devs[laptop].disk.incoming(), ["before"]);
    let newer = revoke(&mut net, &card, laptop);
    assert_eq!(
        card_of(&net, 1, "alice"),
        newer,
        "bob took the list without it"
    );

    net.send(1, "alice", "after");
    assert_eq!(net.devs[0].disk.incoming(), ["before", "after"]);
    assert_eq!(
        net.devs[laptop].disk.incoming(),
        ["before"],
        "nothing new for it"
    );

    // The laptop writes: bob refuses it, the desktop answers "revoked".
    net.send(laptop, "bob", "from a stolen laptop");
    assert!(
        !net.devs[1]
            .disk
            .incoming()
            .contains(&"from a stolen laptop".to_owned())
    );
    assert!(net.devs[laptop].engine.is_revoked());
    let refused = net.call(laptop, |e, ctx, _| e.send_text(ctx, "bob", "again".into()));
    assert!(matches!(refused, Err(SendError::Revoked)), "{refused:?}");
    assert!(!net.devs[0].engine.is_revoked());
}

#[test]
fn a_contact_answering_revoked_cannot_make_us_stop() {
    let mut net = Net::new(&["alice", "bob"]);
    net.devs[1].online = false;
    let id = net
        .call(0, |e, ctx, _| {
            e.send_text(ctx, "bob", "are you there".into())
        })
        .unwrap();
    net.drive();
    let bob = net.devs[1].keys.device_id;
    let forged = AckBatch {
        acks: vec![DirectAck::Rejected(RejectReason::Revoked)],
    }
    .to_bytes();
    net.call(0, |e, ctx, disk| {
        e.handle_acks(ctx, disk, &[(id, bob)], &forged)
    });
    assert!(
        !net.devs[0].engine.is_revoked(),
        "only our own devices may say so"
    );
    let again = net.call(0, |e, ctx, _| e.send_text(ctx, "bob", "still here".into()));
    assert!(again.is_ok());
}

/// Attack (issue 15, "a contact offline during a revocation"): alice
/// revokes her stolen laptop while bob is offline. bob comes back and
/// writes at once: the laptop, still running, must not get it. bob's
/// sends to alice wait until his relay's mailbox (which holds alice's
/// new card) was read.
#[test]
fn a_contact_offline_during_a_revocation_sends_nothing_to_the_revoked_device() {
    let mut net = Net::with_relay(&["alice", "bob"], &["bob"]);
    let (laptop, card) = link_second_device(&mut net, 0, "alice");
    for at in [0, laptop] {
        net.call(at, |e, ctx, _| e.set_own_card(ctx, card.clone()));
    }
    net.call(0, |e, ctx, _| e.push_card(ctx, &card));
    net.drive();
    assert_eq!(card_of(&net, 1, "alice"), card);
    net.advance(POLL_MS);
    net.upload_keys(1);

    net.devs[1].online = false;
    revoke(&mut net, &card, laptop);
    // The new card waits at bob's relay.
    net.advance_10(FIRST_RETRY_MS);
    assert_eq!(card_of(&net, 1, "alice"), card, "bob has not read it yet");

    // bob's node starts again: its sends wait for the first drain (or 15 s).
    net.devs[1].online = true;
    net.call(1, |e, ctx, _| e.hold_until_drained(ctx, 15_000));
    net.send(1, "alice", "the safe code is 4711");
    assert!(
        net.devs[laptop].disk.incoming().is_empty(),
        "the revoked laptop read {:?}",
        net.devs[laptop].disk.incoming()
    );
    net.advance_10(POLL_MS);
    assert_ne!(card_of(&net, 1, "alice"), card, "bob took the new list");
    assert_eq!(net.devs[0].disk.incoming(), ["the safe code is 4711"]);
    assert!(net.devs[laptop].disk.incoming().is_empty());
}

#[test]
fn sends_held_at_start_go_when_no_relay_answers_in_time() {
    let (mut net, laptop, _) = alice_with_two_devices(&["alice", "bob"]);
    net.call(1, |e, ctx, _| e.hold_until_drained(ctx, 15_000));
    net.send(1, "alice", "held");
    assert!(net.devs[0].disk.incoming().is_empty(), "it waits");
    // bob has no relay that could drain: after the grace it goes anyway.
    net.advance(15_000);
    for at in [0, laptop] {
        assert_eq!(net.devs[at].disk.incoming(), ["held"], "device {at}");
    }
}

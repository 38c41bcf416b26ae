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

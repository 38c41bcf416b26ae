//! Attack (issue 13, item 5): a group invitation carries a member's card,
//! and an account signs its own device list, so a member can list a device
//! of someone else. Registering that card must not take the device away
//! from the contact it belongs to.

use super::*;
use crate::DeviceList;

#[test]
fn a_group_card_listing_a_contacts_device_cannot_hijack_it() {
    // alice knows bob and carol; carol knows mallory; alice does not.
    let mut net = Net::new(&["alice", "bob", "carol", "mallory"]);
    net.devs[0].engine.contacts.remove("mallory");
    let (bob_keys, mallory_keys) = (net.devs[1].keys, net.devs[3].keys);
    // mallory's card as the group will carry it: her device, and bob's.
    let mallory_key = AccountKey::from_seed([4; 32]);
    let list = DeviceList::sign(&mallory_key, 2, vec![mallory_keys, bob_keys]);
    let forged = ContactCard::sign(&mallory_key, "mallory".into(), list, vec![], vec![]);
    let carol_card = net.devs[3]
        .engine
        .contacts
        .contact("carol")
        .unwrap()
        .card
        .clone();
    net.call(3, |e, ctx, _| {
        e.with_groups(ctx, |g, ctx| {
            g.create(ctx, "g".into(), forged)?;
            g.invite(ctx, "g", carol_card, true)
        })
    })
    .unwrap();
    net.drive();
    net.call(2, |e, ctx, _| e.with_groups(ctx, |g, ctx| g.join(ctx, "g")))
        .unwrap();
    net.drive();
    let alice_card = net.devs[2]
        .engine
        .contacts
        .contact("alice")
        .unwrap()
        .card
        .clone();
    net.call(2, |e, ctx, _| {
        e.with_groups(ctx, |g, ctx| g.invite(ctx, "g", alice_card, false))
    })
    .unwrap();
    net.drive();
    let mallory = mallory_key.id();
    let id = net.devs[0].engine.groups.resolve("g").unwrap();
    assert!(
        net.devs[0]
            .engine
            .groups
            .group(&id)
            .unwrap()
            .state()
            .members
            .contains_key(&mallory),
        "alice holds the group, mallory's card in it"
    );
    // bob writes to alice as ever: it is still bob writing.
    net.send(1, "alice", "still me");
    assert_eq!(net.devs[0].disk.incoming(), ["still me"]);
    // And what alice sends bob goes to bob.
    net.send(0, "bob", "to bob");
    assert!(
        net.devs[1]
            .disk
            .texts()
            .iter()
            .any(|(_, t, _)| t == "to bob")
    );
}

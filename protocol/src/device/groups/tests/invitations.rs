//! What an invitee is sent, and in what order: the epoch's publish key
//! before the op set that carries its invitation, so that it can join on
//! the group's channel and write as soon as it joins.

use super::*;

/// An invitee reads its invitation and joins at once, before anything
/// else its inviter sent has been handled (as a node may, when the
/// invitation and its key come in separate batches): its join still goes
/// once on the channel, not over Olm to every member (which needs a
/// connection and an Olm session with each: in a 100-member setup, about
/// 1,200 of its 1,331 Olm op messages).
#[test]
fn a_join_as_soon_as_the_invitation_is_read_goes_on_the_channel() {
    let mut net = Net::new(&["alice", "bob", "carol", "dave"], config());
    let id = net.create_friends(0);
    for who in [1, 2] {
        net.invite_to_friends(0, who, false);
        net.drive();
        net.join_friends(who);
    }
    net.invite_to_friends(0, 3, false);
    let dave = net.members[3].key.id();
    // Alice's messages to dave, handled one at a time; dave joins as soon
    // as he can.
    let mut joined = false;
    while let Some(k) = net.olm.iter().position(|(_, to, _)| *to == dave) {
        let (from, to, payload) = net.olm.remove(k).expect("just found");
        net.deliver_control(from, to, payload);
        if net
            .call(3, |book, ctx, _| book.join(ctx, "friends"))
            .is_ok()
        {
            joined = true;
            break;
        }
    }
    assert!(joined, "dave never saw his invitation");
    let over_olm = net
        .olm
        .iter()
        .filter(|(from, _, p)| {
            *from == 3 && matches!(&p.body, Body::Group(c) if matches!(c.kind, ControlKind::Ops(_)))
        })
        .count();
    assert_eq!(over_olm, 0, "dave's join went over Olm to members");
    assert!(
        net.topic.iter().any(|(from, ..)| *from == 3),
        "dave's join was not published on the channel"
    );
    net.drive();
    for m in &net.members {
        let joined = m.book.group(&id).unwrap().state().joined().count();
        assert_eq!(joined, 4, "{} sees {joined} joined", m.name);
    }
}

/// The key goes before the op set. A member who was removed and is
/// invited again already knows the group, and the key comes from an admin
/// that neither made the epoch (the remover did) nor shows in its old
/// state as its inviter: the key waits for the invitation instead of
/// being refused, and the member can write as soon as it joins.
#[test]
fn a_member_invited_again_by_another_admin_can_write_at_once() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let id = net.group_of_all(0);
    let carol = net.members[2].key.id();
    net.promote_in_friends(0, 1);
    net.remove_from_friends(0, 2);
    assert_eq!(net.standing(2, id), Standing::Removed);
    // Alice (who would hand carol the key as the epoch's maker) is away:
    // bob's key is the only one.
    net.members[0].held = true;
    net.members[0].deaf = true;
    net.invite_to_friends(1, 2, false);
    // Carol takes the key she is given: she never has to ask for it.
    let asked = std::cell::Cell::new(0);
    net.drive_dropping(|from, _, p| {
        if from == 2
            && matches!(&p.body, Body::Group(c) if matches!(c.kind, ControlKind::PublishKeyRequest { .. }))
        {
            asked.set(asked.get() + 1);
        }
        false
    });
    assert_eq!(asked.get(), 0, "carol asked for the key she was given");
    net.join_friends(2);
    for i in [1, 2] {
        let state = net.members[i].book.group(&id).unwrap().state();
        assert!(state.is_joined(&carol), "member {i} sees carol back");
    }
    assert_eq!(
        net.publish_key(2, id).0,
        net.publish_key(1, id).0,
        "carol does not hold the current epoch's key"
    );
    net.send(2, "back");
    assert!(
        net.members[1].disk.texts(id).contains(&"back".to_owned()),
        "bob did not read carol's message"
    );
}

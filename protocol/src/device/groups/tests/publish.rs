//! Publish keys (issue 13, item 3): who may publish on a group's topic,
//! how the key rotates with membership, and how a member that missed it
//! gets it.

use super::*;

fn is_publish_key(kind: &ControlKind) -> bool {
    matches!(kind, ControlKind::PublishKey { .. })
}

/// Attack: a removed member keeps the publish key it held and goes on
/// publishing (junk under sessions of its own) where the group reads.
/// After the removal the group publishes on a new epoch's topic, whose key
/// the removed member never gets; what it signs with its old key is
/// rejected there.
#[test]
fn a_removed_member_cannot_publish_on_the_topic_the_group_moved_to() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let id = net.group_of_all(0);
    let (old_topic, old_key) = net.publish_key(2, id);
    let carol = net.members[2].key.id();
    net.call(0, |book, ctx, _| {
        book.member_change(ctx, "friends", Action::Remove { account: carol })
    })
    .unwrap();
    net.drive();
    let (new_topic, _) = net.publish_key(0, id);
    assert_ne!(new_topic, old_topic, "the removal began a new epoch");
    assert_eq!(net.publish_key(1, id).0, new_topic, "bob moved with it");
    assert!(
        !net.members[2]
            .book
            .group(&id)
            .unwrap()
            .topics()
            .any(|t| t == new_topic),
        "carol got the new key"
    );
    // carol signs junk with the key she has and publishes it on the new
    // topic: bob rejects it (as every relay does).
    let mut session = crate::MegolmOutbound::new();
    let junk = old_key.seal(session.id(), session.encrypt(b"junk"));
    net.deliver_topic(2, 1, &new_topic, &junk.to_bytes());
    let last = net.members[1].validations.last().copied();
    assert_eq!(last.map(|v| v.2), Some(Acceptance::Reject));
    // The group goes on, on the new topic.
    net.send(0, "after carol");
    assert!(
        net.members[1]
            .disk
            .texts(id)
            .contains(&"after carol".to_owned())
    );
    assert!(
        !net.members[2]
            .disk
            .texts(id)
            .contains(&"after carol".to_owned())
    );
}

/// Attack: a member hands the others a publish key of its own making for
/// the current epoch, so that they publish on a topic only it and they
/// know, away from everyone else. Only the epoch's maker's key is taken.
#[test]
fn a_member_cannot_move_others_to_a_topic_of_its_own_making() {
    let mut net = Net::new(&["alice", "bob", "mallory"], config());
    let id = net.group_of_all(0);
    let (topic, _) = net.publish_key(1, id);
    let epoch = net.members[1]
        .book
        .group(&id)
        .unwrap()
        .state()
        .epoch()
        .unwrap()
        .op;
    let own = crate::PublishKey::from_secret(&[66; 32]);
    let mallory = (net.members[2].key.id(), net.members[2].device);
    let control = GroupControl {
        group: id,
        kind: ControlKind::PublishKey {
            epoch,
            key: Box::new(own.clone()),
        },
    };
    net.call(1, |book, ctx, disk| {
        book.handle_control(ctx, disk, mallory.0, mallory.1, control);
    });
    net.drive();
    let g = net.members[1].book.group(&id).unwrap();
    assert_eq!(g.topic(), Some(topic.as_str()));
    assert!(!g.topics().any(|t| t == own.topic()));
}

/// A member whose copy of the key was lost asks the epoch's maker for it
/// after a while, and gets it.
#[test]
fn a_member_missing_the_current_key_asks_its_maker_and_gets_it() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let id = net.group_of_all(0);
    let carol = net.members[2].key.id();
    net.call(0, |book, ctx, _| {
        book.member_change(ctx, "friends", Action::Remove { account: carol })
    })
    .unwrap();
    // The new key to bob is lost on the way.
    let lost = net
        .control_to(1, is_publish_key)
        .expect("the new key on its way to bob");
    net.olm.remove(lost);
    assert!(net.control_to(1, is_publish_key).is_none());
    net.drive();
    let (new_topic, _) = net.publish_key(0, id);
    assert_ne!(net.publish_key(1, id).0, new_topic);
    // The tick notices the key is missing; SYNC_AFTER_MS later bob asks
    // alice, the epoch's maker.
    net.advance(1);
    assert!(
        !net.olm.iter().any(|(from, _, _)| *from == 1),
        "asked at once"
    );
    net.advance(SYNC_AFTER_MS);
    net.drive();
    assert_eq!(net.publish_key(1, id).0, new_topic);
    net.send(1, "back on the new topic");
    assert!(
        net.members[0]
            .disk
            .texts(id)
            .contains(&"back on the new topic".to_owned())
    );
}

/// A member that has not heard of the new epoch yet publishes on the one
/// before; the others still read it there.
#[test]
fn a_member_behind_by_an_epoch_is_still_read() {
    let mut net = Net::new(&["alice", "bob", "carol", "dave"], config());
    let id = net.group_of_all(0);
    net.members[3].held = true;
    let carol = net.members[2].key.id();
    net.call(0, |book, ctx, _| {
        book.member_change(ctx, "friends", Action::Remove { account: carol })
    })
    .unwrap();
    net.drive();
    let old = net.publish_key(3, id).0;
    assert_ne!(net.publish_key(0, id).0, old);
    net.call(3, |book, ctx, _| {
        book.send(ctx, "friends", "from the old epoch".into())
    })
    .unwrap();
    net.members[3].held = false;
    net.drive();
    for i in [0, 1] {
        assert!(
            net.members[i]
                .disk
                .texts(id)
                .contains(&"from the old epoch".to_owned())
        );
    }
    assert_eq!(net.publish_key(3, id).0, net.publish_key(0, id).0);
}

/// A relay that stores what the publish key did not sign gets nothing
/// read: a history item without the topic's signature is skipped.
#[test]
fn a_history_item_not_signed_for_its_topic_is_skipped() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let (topic, _) = net.publish_key(1, id);
    let real = net.publish(0, "real");
    net.topic.clear();
    let stranger = crate::PublishKey::from_secret(&[77; 32]);
    let mut session = crate::MegolmOutbound::new();
    let junk = stranger.seal(session.id(), session.encrypt(b"junk"));
    let relay = DeviceId([9; 32]);
    net.call(1, |book, ctx, disk| {
        let page = vec![(1, junk.to_bytes()), (2, real)];
        book.handle_history_page(ctx, disk, relay, id, &topic, page, false);
    });
    net.drive();
    assert_eq!(net.members[1].disk.texts(id), ["real".to_owned()]);
    assert!(
        net.members[1].disk.pending.is_empty(),
        "the junk waits for a key"
    );
    assert_eq!(
        net.members[1].book.history_cursor(&id, &topic, &relay),
        Some(2)
    );
}

/// A member that has no publish key yet (its copy was lost) is told to try
/// again, and nothing is stored that could not be published; once the key
/// comes (asked for on the tick), the message goes.
#[test]
fn sending_without_a_publish_key_is_refused_until_it_comes() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.create_friends(0);
    net.invite_to_friends(0, 1, false);
    let lost = net
        .control_to(1, is_publish_key)
        .expect("the key on its way to bob");
    net.olm.remove(lost);
    net.drive();
    net.join_friends(1);
    let refused = net.call(1, |book, ctx, _| {
        book.send(ctx, "friends", "too soon".into())
    });
    assert!(
        matches!(refused, Err(GroupCommandError::NoPublishKey { .. })),
        "{refused:?}"
    );
    assert!(net.members[1].disk.texts(id).is_empty());
    net.advance(1);
    net.advance(SYNC_AFTER_MS);
    net.drive();
    net.send(1, "now");
    assert_eq!(net.members[0].disk.texts(id), ["now".to_owned()]);
}

/// An admin who is not the epoch's maker sends its invitee the key it
/// holds with the invitation: the invitee can write as soon as it joins,
/// even if the maker's copy is late.
#[test]
fn an_invitee_gets_the_key_from_whoever_invited_it() {
    let mut net = Net::new(&["alice", "bob", "dave"], config());
    let id = net.create_friends(0);
    net.invite_to_friends(0, 1, true);
    net.drive();
    net.join_friends(1);
    net.invite_to_friends(1, 2, false);
    // The maker's (alice's) copy for dave never arrives.
    let dave = net.members[2].key.id();
    let dropped = net.drive_dropping(|from, to, payload| {
        from == 0
            && *to == dave
            && matches!(&payload.body, Body::Group(c) if is_publish_key(&c.kind))
    });
    assert_eq!(dropped, 1, "alice, the maker, sent dave the key too");
    net.join_friends(2);
    net.send(2, "hello from dave");
    assert_eq!(
        net.members[0].disk.texts(id),
        ["hello from dave".to_owned()]
    );
}

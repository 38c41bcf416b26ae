//! Attacks on a member's group engine (issue 13): room key theft, sync
//! floods, junk ops, dates far ahead, pending-table floods, outbox filling.

use super::*;

fn is_room_key(kind: &ControlKind) -> bool {
    matches!(kind, ControlKind::RoomKey { .. })
}

/// alice, bob and mallory in "friends"; alice writes "one", and her room
/// key goes to bob and mallory: the net (the key still queued), the group,
/// and mallory's copy.
fn alices_first_room_key() -> (Net, GroupId, GroupControl) {
    let mut net = Net::new(&["alice", "bob", "mallory"], config());
    let id = net.group_of_all(0);
    net.call(0, |book, ctx, _| book.send(ctx, "friends", "one".into()))
        .unwrap();
    let at = net
        .control_to(2, is_room_key)
        .expect("alice's room key on its way to mallory");
    let to_mallory = net.control_at(at);
    (net, id, to_mallory)
}

/// Attack (issue 13, item 6): a member who holds another member's room
/// key presents it as its own, so the group binds that session to the
/// attacker and drops the real sender's messages as "not from the
/// session's owner".
#[test]
fn a_member_presenting_anothers_room_key_as_its_own_cannot_silence_them() {
    let (mut net, id, to_mallory) = alices_first_room_key();
    let mallory = net.members[2].key.id();
    let ControlKind::RoomKey { key, .. } = to_mallory.kind else {
        unreachable!("picked a room key");
    };
    net.drive();
    assert!(net.members[1].disk.texts(id).contains(&"one".to_owned()));
    // mallory hands bob alice's key as hers; she cannot write a claim
    // under alice's session, so she writes one under a session of hers.
    let device = net.members[2].device;
    let mut own = crate::MegolmOutbound::new();
    let claim = own.encrypt(&crate::room_key_claim(&id, &mallory, &device));
    let forged = GroupControl {
        group: id,
        kind: ControlKind::RoomKey { key, claim },
    };
    net.call(1, |book, ctx, disk| {
        book.handle_control(ctx, disk, mallory, device, forged);
    });
    net.drive();
    // alice goes on under the same session: bob still reads her.
    net.send(0, "two");
    assert!(
        net.members[1].disk.texts(id).contains(&"two".to_owned()),
        "{:?}",
        net.members[1].disk.texts(id)
    );
}

/// Attack (issue 13, item 6, the race): mallory gets alice's room key at
/// the same moment bob does, and hands it to bob as hers *before* alice's
/// own copy reaches him (alice's goes through a relay, mallory's direct).
/// The first presenter owned the session, so bob dropped every message
/// alice sent under it. A room key now carries a claim only the session's
/// maker can write (a Megolm message naming it), so mallory's presentation
/// is refused and alice's, arriving later, counts.
#[test]
fn a_member_racing_the_owners_room_key_cannot_claim_its_session() {
    let (mut net, id, to_mallory) = alices_first_room_key();
    let mallory = net.members[2].key.id();
    // alice's copy for bob is late; mallory's arrives first.
    let at = net
        .control_to(1, is_room_key)
        .expect("alice's room key on its way to bob");
    let late = net.olm.remove(at).expect("found");
    let device = net.members[2].device;
    net.call(1, |book, ctx, disk| {
        book.handle_control(ctx, disk, mallory, device, to_mallory);
    });
    net.olm.push_back(late);
    net.drive();
    assert_eq!(net.members[1].disk.texts(id), ["one".to_owned()]);
    net.send(0, "two");
    assert_eq!(
        net.members[1].disk.texts(id),
        ["one".to_owned(), "two".to_owned()]
    );
}

/// Attack (issue 13, item 2): a member asks for the whole op set again and
/// again; each `SyncRequest` made the admin queue every op to it, without
/// limit, filling the admin's outbox.
#[test]
fn a_member_flooding_sync_requests_gets_the_op_set_once_per_window() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let (bob, device) = (net.members[1].key.id(), net.members[1].device);
    net.olm.clear();
    for _ in 0..50 {
        let request = GroupControl {
            group: id,
            kind: ControlKind::SyncRequest,
        };
        net.call(0, |book, ctx, disk| {
            book.handle_control(ctx, disk, bob, device, request);
        });
    }
    let answers = net.olm.iter().filter(|(from, _, _)| *from == 0).count();
    assert_eq!(
        answers, 1,
        "one answer (of one control message) for 50 requests"
    );
    // Later on, a new request is answered again.
    net.olm.clear();
    net.now = net.now.plus_ms(SYNC_AFTER_MS);
    let request = GroupControl {
        group: id,
        kind: ControlKind::SyncRequest,
    };
    net.call(0, |book, ctx, disk| {
        book.handle_control(ctx, disk, bob, device, request);
    });
    assert_eq!(net.olm.len(), 1);
}

/// Attack: someone who is no member (a contact of alice, say) asks over
/// Olm with heads that hold nothing, to be answered with the group's ops
/// (every member's card). Nothing goes to it.
#[test]
fn a_stranger_asking_with_heads_over_olm_gets_no_ops() {
    let mut net = Net::new(&["alice", "bob", "mallory"], config());
    let id = net.create_friends(0);
    net.invite_to_friends(0, 1, false);
    net.drive();
    net.join_friends(1);
    let (mallory, device) = (net.members[2].key.id(), net.members[2].device);
    net.olm.clear();
    let ask = GroupControl {
        group: id,
        kind: ControlKind::Heads(vec![[7; 32]]),
    };
    net.call(0, |book, ctx, disk| {
        book.handle_control(ctx, disk, mallory, device, ask);
    });
    assert!(net.olm.is_empty(), "nothing to mallory: {:?}", net.olm);
}

/// Attack: a member asks with junk heads over Olm again and again; each
/// answer is alice's heads' ops, once per window, like `SyncRequest`.
#[test]
fn a_member_flooding_heads_asks_gets_one_answer_per_window() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let (bob, device) = (net.members[1].key.id(), net.members[1].device);
    net.olm.clear();
    for n in 0..50u8 {
        let ask = GroupControl {
            group: id,
            kind: ControlKind::Heads(vec![[n; 32]]),
        };
        net.call(0, |book, ctx, disk| {
            book.handle_control(ctx, disk, bob, device, ask);
        });
    }
    let answers = net.olm.iter().filter(|(from, _, _)| *from == 0).count();
    assert_eq!(answers, 1, "one answer for 50 asks");
}

/// Attack (issue 13, item 2, junk ops): anyone who can send us group
/// control (a contact, a member of another group) signs ops for a group
/// with accounts the group never named; each was stored forever, towards
/// the cap at which the group refuses every change.
#[test]
fn signed_ops_by_accounts_the_group_never_named_are_not_kept() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let parents = net.heads_of(0, id);
    let junk: Vec<GroupOp> = (0..20u8)
        .map(|i| {
            let key = AccountKey::from_seed([200 + i; 32]);
            GroupOp::sign(
                &key,
                id,
                MessageId(u128::from(i) + 1),
                parents.clone(),
                Action::Leave,
            )
        })
        .collect();
    let before = net.members[0].book.group(&id).unwrap().ops().len();
    let (bob, device) = (net.members[1].key.id(), net.members[1].device);
    let control = GroupControl {
        group: id,
        kind: ControlKind::Ops(junk),
    };
    net.call(0, |book, ctx, disk| {
        book.handle_control(ctx, disk, bob, device, control);
    });
    assert_eq!(net.members[0].book.group(&id).unwrap().ops().len(), before);
}

/// Attack (on the hold for joins that overtook their invitation): a
/// member floods signed ops by accounts the group never named, each on a
/// parent nobody holds, so each looks like a join whose invitation is
/// still on its way. They are held in memory only, and no more than the
/// bound however many come; none enters the group's op set.
#[test]
fn junk_ops_on_parents_nobody_holds_are_held_only_up_to_the_bound() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let before = net.members[0].book.group(&id).unwrap().ops().len();
    let (bob, device) = (net.members[1].key.id(), net.members[1].device);
    for batch in 0..20u32 {
        let junk: Vec<GroupOp> = (0..100u32)
            .map(|i| {
                let n = batch * 100 + i;
                let mut seed = [7u8; 32];
                seed[..4].copy_from_slice(&n.to_le_bytes());
                let key = AccountKey::from_seed(seed);
                let mut parent = [0xeeu8; 32];
                parent[..4].copy_from_slice(&n.to_le_bytes());
                GroupOp::sign(
                    &key,
                    id,
                    MessageId(u128::from(n) + 1),
                    vec![parent],
                    Action::Join,
                )
            })
            .collect();
        let control = GroupControl {
            group: id,
            kind: ControlKind::Ops(junk),
        };
        net.call(0, |book, ctx, disk| {
            book.handle_control(ctx, disk, bob, device, control);
        });
    }
    let book = &net.members[0].book;
    assert!(book.early_ops_held() > 0, "held while they may be early");
    assert!(
        book.early_ops_held() <= crate::device::groups::receive::MAX_EARLY_OPS,
        "{} held",
        book.early_ops_held()
    );
    assert_eq!(book.group(&id).unwrap().ops().len(), before);
    net.advance(crate::device::groups::receive::EARLY_OPS_FOR_MS + 100);
    assert_eq!(net.members[0].book.early_ops_held(), 0, "let go once stale");
}

/// `count` ops by bob (no admin) removing `account`, each with its own
/// date, all naming `parents`: none takes effect.
fn bob_removes(
    net: &Net,
    id: GroupId,
    parents: Vec<crate::OpHash>,
    account: AccountId,
    count: u128,
) -> Vec<GroupOp> {
    (0..count)
        .map(|i| {
            GroupOp::sign(
                &net.members[1].key,
                id,
                MessageId(u128::MAX - i),
                parents.clone(),
                Action::Remove { account },
            )
        })
        .collect()
}

/// bob (an admin) signs `ops` and sends them to alice and carol.
fn from_bob(net: &mut Net, id: GroupId, ops: Vec<GroupOp>) {
    let (bob, device) = (net.members[1].key.id(), net.members[1].device);
    let control = GroupControl {
        group: id,
        kind: ControlKind::Ops(ops),
    };
    for i in [0, 2] {
        let control = control.clone();
        net.call(i, |book, ctx, disk| {
            book.handle_control(ctx, disk, bob, device, control);
        });
    }
    net.drive();
}

/// Attack (issue 13, item 1): an admin dates a removal a century ahead.
/// Folded by date alone it came after any later re-invitation, so the
/// removed member could never be invited back.
#[test]
fn a_removal_dated_far_ahead_does_not_block_a_reinvitation() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let id = net.group_of_all(0);
    let carol = net.members[2].key.id();
    net.promote_in_friends(0, 1);
    let parents = net.heads_of(1, id);
    let year_2100 = MessageId::from_parts(4_102_444_800_000, 0, 7);
    let removal = GroupOp::sign(
        &net.members[1].key,
        id,
        year_2100,
        parents,
        Action::Remove { account: carol },
    );
    from_bob(&mut net, id, vec![removal]);
    assert_eq!(net.standing(2, id), Standing::Removed);
    net.invite_to_friends(0, 2, false);
    net.drive();
    net.join_friends(2);
    for i in 0..3 {
        let state = net.members[i].book.group(&id).unwrap().state();
        assert!(state.is_joined(&carol), "member {i} sees carol back");
    }
}

/// Attack (issue 13, item 2, per-author cap): a member signs thousands of
/// ops that take no effect (a non-admin removing people); each was kept
/// for good, towards the cap at which the group refuses every change.
#[test]
fn a_members_ops_that_take_no_effect_are_capped() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let id = net.group_of_all(0);
    let alice = net.members[0].key.id();
    let before = net.members[0].book.group(&id).unwrap().ops().len();
    let parents = net.heads_of(1, id);
    let junk = bob_removes(&net, id, parents, alice, 300);
    for chunk in junk.chunks(100) {
        from_bob(&mut net, id, chunk.to_vec());
    }
    let kept = net.members[0].book.group(&id).unwrap().ops().len() - before;
    assert!(
        kept <= MAX_IDLE_OPS_PER_AUTHOR as usize,
        "kept {kept} junk ops"
    );
    // The group still works: alice invites, nobody is frozen out.
    assert!(
        net.members[0]
            .book
            .group(&id)
            .unwrap()
            .state()
            .is_admin(&alice)
    );
}

/// Attack (issue 13, item 3, pending flood): junk under made-up sessions
/// filled the one table of messages waiting for their key (10,000 over
/// all groups); then a real message whose key was late was dropped, and
/// the history cursor moved past it. Now each group and session has its
/// own share, and a message that finds no room stays unread at the relay.
#[test]
fn junk_under_made_up_sessions_cannot_make_a_late_message_be_lost() {
    let mut net = Net::new(&["alice", "bob"], config());
    let friends = net.group_of_all(0);
    let card = net.members[0].card.clone();
    let club = net
        .call(0, |book, ctx, _| book.create(ctx, "club".into(), card))
        .unwrap();
    let bob_card = net.members[1].card.clone();
    net.call(0, |book, ctx, _| book.invite(ctx, "club", bob_card, false))
        .unwrap();
    net.drive();
    net.call(1, |book, ctx, _| book.join(ctx, "club")).unwrap();
    net.drive();
    // 10,000 junk messages on the friends topic, each under its own
    // session, from a source peer (alice's device relays them).
    // A member (or a member removed in the last few epochs) holds the
    // publish key, so the relays let this through.
    let (topic, key) = net.publish_key(0, friends);
    for n in 0..pending::MAX_PENDING as u32 {
        let session = SessionId(*blake3::hash(&n.to_be_bytes()).as_bytes());
        let junk = key.seal(session, n.to_be_bytes().to_vec());
        net.deliver_topic(0, 1, &topic, &junk.to_bytes());
    }
    // A relay's history page of friends with one more: no room, so the
    // cursor stays before it.
    let relay = DeviceId([9; 32]);
    let more = key.seal(SessionId([7; 32]), vec![1]);
    net.call(1, |book, ctx, disk| {
        let page = vec![(5, more.to_bytes())];
        book.handle_history_page(ctx, disk, relay, friends, &topic, page, true);
    });
    assert_eq!(
        net.members[1].book.history_cursor(&friends, &topic, &relay),
        Some(0),
        "read again next time"
    );
    // alice writes in club; her new session's key is late for bob.
    net.members[1].held = true;
    net.call(0, |book, ctx, _| book.send(ctx, "club", "late key".into()))
        .unwrap();
    let (_, _, club_topic, bytes) = net.topic.pop_back().expect("published");
    net.topic.clear();
    net.call(1, |book, ctx, disk| {
        book.handle_history_page(ctx, disk, relay, club, &club_topic, vec![(8, bytes)], false);
    });
    net.members[1].held = false;
    net.drive();
    assert_eq!(net.members[1].disk.texts(club), ["late key".to_owned()]);
}

/// Attack (issue 13, item 2, outbox filling): a member's message of many
/// ops its author made without knowing of our invitations was passed on
/// to each of our invitees as one message per op; a few such messages
/// filled our outbox. They now go as one message per invitee.
#[test]
fn ops_passed_on_to_invitees_go_in_one_message_each() {
    let mut net = Net::new(&["alice", "bob", "carol", "dave"], config());
    let id = net.create_friends(0);
    net.invite_to_friends(0, 1, false);
    net.drive();
    net.join_friends(1);
    let bob = net.members[1].key.id();
    // What bob knows now; alice then invites carol and dave, who do not
    // answer (their messages wait).
    let parents = net.heads_of(1, id);
    net.members[2].held = true;
    net.members[3].held = true;
    for i in [2, 3] {
        let card = net.members[i].card.clone();
        net.call(0, |book, ctx, _| book.invite(ctx, "friends", card, false))
            .unwrap();
    }
    net.olm.clear();
    let alice = net.members[0].key.id();
    let ops = bob_removes(&net, id, parents, alice, 40);
    let device = net.members[1].device;
    let control = GroupControl {
        group: id,
        kind: ControlKind::Ops(ops),
    };
    net.call(0, |book, ctx, disk| {
        book.handle_control(ctx, disk, bob, device, control);
    });
    for i in [2, 3] {
        let to = net.members[i].key.id();
        let messages = net.olm.iter().filter(|(_, t, _)| *t == to).count();
        assert_eq!(messages, 1, "member {i} got {messages} messages");
    }
}

//! Our messages no member confirmed are published again.

use super::*;
use crate::device::groups::RESEND_AFTER_MS;

/// How often member `i` published `bytes` so far.
fn times_published(net: &Net, i: usize, bytes: &[u8]) -> usize {
    net.published
        .iter()
        .filter(|(from, _, b)| *from == i && b == bytes)
        .count()
}

/// Moves the clock to `ms` after the start of the test in ticks of a
/// second, delivering everything after each.
fn run_until(net: &mut Net, start: u64, ms: u64) {
    while net.now.mono_ms < start + ms {
        net.advance(1_000);
        net.drive();
    }
}

/// Loss: alice's link goes silent as she publishes, so the message reaches
/// no member and no relay. Nobody else can notice, so she must: with no
/// receipt for it, she publishes it again.
#[test]
fn a_message_lost_on_the_way_to_every_member_is_published_again_until_one_confirms_it() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let id = net.group_of_all(0);
    let start = net.now.mono_ms;
    let lost = net.publish(0, "into the silence");
    net.topic.clear();
    net.drive();
    assert_eq!(net.members[1].disk.texts(id), Vec::<String>::new());
    run_until(&mut net, start, RESEND_AFTER_MS[0] - 1_000);
    assert_eq!(times_published(&net, 0, &lost), 1, "not before its time");
    run_until(&mut net, start, RESEND_AFTER_MS[0]);
    assert_eq!(times_published(&net, 0, &lost), 2);
    for member in [1, 2] {
        assert_eq!(net.members[member].disk.texts(id), ["into the silence"]);
    }
    // Their receipts confirm it: nothing goes out again.
    run_until(&mut net, start, RESEND_AFTER_MS[2] + 10_000);
    assert_eq!(times_published(&net, 0, &lost), 2);
    assert_eq!(net.members[0].book.unconfirmed.len(), 0);
    assert!(
        net.members[0].disk.unconfirmed.is_empty(),
        "dropped once confirmed"
    );
}

#[test]
fn a_message_members_received_is_published_once() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let start = net.now.mono_ms;
    let bytes = net.publish(0, "hello");
    net.drive();
    assert_eq!(net.members[1].disk.texts(id), ["hello"]);
    run_until(&mut net, start, RESEND_AFTER_MS[2] + 10_000);
    assert_eq!(times_published(&net, 0, &bytes), 1);
    assert_eq!(net.members[0].book.unconfirmed.len(), 0);
}

/// With nobody to confirm (every member away, or the message lost each
/// time), it goes out at each of the three times, then no more.
#[test]
fn an_unconfirmed_message_is_published_again_three_times_then_left_to_the_relays() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let start = net.now.mono_ms;
    net.members[1].deaf = true;
    let bytes = net.publish(0, "anyone?");
    net.drive();
    run_until(&mut net, start, RESEND_AFTER_MS[2] + 60_000);
    assert_eq!(times_published(&net, 0, &bytes), 1 + RESEND_AFTER_MS.len());
    assert_eq!(net.members[0].book.unconfirmed.len(), 0);
    assert!(
        net.members[0].disk.unconfirmed.is_empty(),
        "dropped after the last"
    );
    assert_eq!(net.members[1].disk.texts(id), Vec::<String>::new());
}

#[test]
fn a_group_left_sends_nothing_again() {
    let mut net = Net::new(&["alice", "bob"], config());
    net.group_of_all(0);
    let start = net.now.mono_ms;
    let bytes = net.publish(0, "bye");
    net.topic.clear();
    net.call(0, |book, ctx, _| book.leave(ctx, "friends"))
        .unwrap();
    net.drive();
    run_until(&mut net, start, RESEND_AFTER_MS[2] + 10_000);
    assert_eq!(times_published(&net, 0, &bytes), 1);
}

/// Alice wrote while offline, then left the group. Leaving stops what
/// she had not sent (as a restart does: the store lets it go), so when
/// her link comes back the message waiting for a peer must not go out
/// after her; her leave itself must.
#[test]
fn a_message_waiting_for_a_peer_when_we_leave_is_not_sent_after_it() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let start = net.now.mono_ms;
    net.members[0].offline = true;
    net.call(0, |book, ctx, _| {
        book.send(ctx, "friends", "never mind".to_owned())
    })
    .unwrap();
    net.drive();
    net.call(0, |book, ctx, _| book.leave(ctx, "friends"))
        .unwrap();
    net.drive();
    assert!(net.members[0].disk.unconfirmed.is_empty(), "left: dropped");
    net.members[0].offline = false;
    run_until(&mut net, start, RESEND_AFTER_MS[2] + 10_000);
    assert_eq!(net.members[1].disk.texts(id), Vec::<String>::new());
    let alice = net.members[0].key.id();
    let bob = net.members[1].book.group(&id).expect("bob's group");
    assert!(
        !bob.state().members.contains_key(&alice),
        "her leave went out once a peer was there"
    );
}

/// Alice wrote while offline and was removed meanwhile: the message
/// waiting for a peer must not go out once her link is back (the members
/// would refuse it), and the store lets it go.
#[test]
fn a_message_waiting_for_a_peer_when_we_are_removed_is_not_sent() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(1);
    let start = net.now.mono_ms;
    net.members[0].offline = true;
    net.call(0, |book, ctx, _| {
        book.send(ctx, "friends", "still here?".to_owned())
    })
    .unwrap();
    net.drive();
    let waiting = net.members[0].tried.clone();
    assert_eq!(waiting.len(), 1, "it found no peer");
    net.remove_from_friends(1, 0);
    let alice = net.members[0].key.id();
    let hers = net.members[0].book.group(&id).expect("alice's group");
    assert!(!hers.state().members.contains_key(&alice), "she learned it");
    net.members[0].offline = false;
    run_until(&mut net, start, RESEND_AFTER_MS[2] + 10_000);
    assert_eq!(times_published(&net, 0, &waiting[0]), 0);
    assert!(net.members[0].disk.unconfirmed.is_empty(), "dropped");
}

/// The status of alice's message `id` in her store.
fn status(net: &Net, group: GroupId, id: MessageId) -> Status {
    let conversation = ConversationId::group(&group);
    net.members[0].disk.messages[&(conversation, id)].status
}

/// No peer on the topic for longer than the resends take (alice is
/// offline): the message reads `pending`, waits for a peer, tried on each
/// tick and never twice in one, and stays in the store; once a peer takes
/// it, it reads `sent` (told once), and a member's receipt lets the store
/// drop it.
#[test]
fn a_message_no_peer_takes_for_minutes_waits_in_the_store_until_a_member_confirms_it() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let start = net.now.mono_ms;
    net.members[0].offline = true;
    let sent = net
        .call(0, |book, ctx, _| {
            book.send(ctx, "friends", "nobody here".to_owned())
        })
        .unwrap();
    let ticks = (RESEND_AFTER_MS[2] + 60_000) / 1_000;
    for _ in 0..ticks {
        net.now = net.now.plus_ms(1_000);
        net.call(0, |book, ctx, _| book.handle_tick(ctx));
    }
    let bytes = net
        .watches
        .iter()
        .find(|(_, m)| **m == sent)
        .map(|(b, _)| b.clone())
        .expect("published with a watch");
    let tries = net.members[0].tried.iter().filter(|b| **b == bytes).count();
    assert_eq!(tries as u64, 1 + ticks, "tried once a tick");
    assert!(
        net.members[0].disk.unconfirmed.contains_key(&sent),
        "kept in the store while no peer took it"
    );
    assert_eq!(status(&net, id, sent), Status::Pending);
    assert!(!net.members[0].book.is_out(&sent));
    // A peer at last: the next try reaches bob, whose receipt confirms it.
    net.members[0].offline = false;
    let later = net.now.mono_ms - start + 5_000;
    run_until(&mut net, start, later);
    assert_eq!(net.members[1].disk.texts(id), ["nobody here"]);
    assert_eq!(status(&net, id, sent), Status::Sent);
    let told = net.members[0]
        .notices
        .iter()
        .filter(|n| matches!(n, GroupNotice::Sent { id, .. } if *id == sent))
        .count();
    assert_eq!(told, 1, "sent is told once");
    assert!(net.members[0].disk.unconfirmed.is_empty());
    assert_eq!(net.members[0].book.unconfirmed.len(), 0);
}

/// Restart: alice's node stopped after a message was lost on the way and
/// before any resend. Started again, it finds the message in the store
/// and publishes it at once (not 15 s later); bob's receipt drops it.
#[test]
fn a_message_the_store_kept_goes_out_after_a_restart_until_a_member_confirms_it() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let start = net.now.mono_ms;
    let sent = net
        .call(0, |book, ctx, _| {
            book.send(ctx, "friends", "lost as the node stopped".to_owned())
        })
        .unwrap();
    let (_, _, _, bytes) = net.topic.pop_back().expect("published");
    net.topic.clear();
    let record = net.members[0]
        .disk
        .unconfirmed
        .get(&sent)
        .cloned()
        .expect("stored with the message");
    assert_eq!(record.bytes, bytes);
    net.call(0, |book, _, _| {
        book.restore_unconfirmed(sent, record, Some(Status::Sent))
    });
    run_until(&mut net, start, 2_000);
    assert_eq!(times_published(&net, 0, &bytes), 2);
    assert_eq!(net.members[1].disk.texts(id), ["lost as the node stopped"]);
    run_until(&mut net, start, RESEND_AFTER_MS[2] + 10_000);
    assert_eq!(times_published(&net, 0, &bytes), 2, "confirmed: not again");
    assert!(net.members[0].disk.unconfirmed.is_empty());
}

/// A message the store still holds for a group left since (the drop had
/// not committed when the node stopped) is dropped, not published.
#[test]
fn a_message_kept_for_a_group_left_is_not_sent_after_a_restart() {
    let mut net = Net::new(&["alice", "bob"], config());
    net.group_of_all(0);
    let start = net.now.mono_ms;
    let sent = net
        .call(0, |book, ctx, _| {
            book.send(ctx, "friends", "bye".to_owned())
        })
        .unwrap();
    let (_, _, _, bytes) = net.topic.pop_back().expect("published");
    let record = net.members[0].disk.unconfirmed[&sent].clone();
    net.call(0, |book, ctx, _| book.leave(ctx, "friends"))
        .unwrap();
    assert!(net.members[0].disk.unconfirmed.is_empty(), "left: dropped");
    net.members[0].disk.unconfirmed.insert(sent, record.clone());
    net.call(0, |book, _, _| {
        book.restore_unconfirmed(sent, record, Some(Status::Sent))
    });
    assert!(net.members[0].disk.unconfirmed.is_empty());
    run_until(&mut net, start, RESEND_AFTER_MS[2] + 10_000);
    assert_eq!(times_published(&net, 0, &bytes), 1);
}

/// Attack: a member who never got a message sends a receipt for an id
/// close to it (the same millisecond and counter) to stop its resend.
/// Only the exact id confirms: its 64 random bits cannot be guessed.
#[test]
fn a_receipt_for_a_guessed_id_does_not_stop_the_resend() {
    let mut net = Net::new(&["alice", "bob", "mallory"], config());
    let id = net.group_of_all(0);
    let start = net.now.mono_ms;
    let message = net
        .call(0, |book, ctx, _| {
            book.send(ctx, "friends", "into the silence".to_owned())
        })
        .unwrap();
    let (_, _, _, lost) = net.topic.pop_back().expect("published");
    net.topic.clear();
    let guessed = MessageId(message.0 ^ 1);
    let mallory = (net.members[2].key.id(), net.members[2].device);
    let receipt = GroupControl {
        group: id,
        kind: ControlKind::Receipt {
            kind: ReceiptKind::Delivered,
            ids: vec![guessed],
        },
    };
    net.call(0, |book, ctx, disk| {
        book.handle_control(ctx, disk, mallory.0, mallory.1, receipt);
    });
    run_until(&mut net, start, RESEND_AFTER_MS[0]);
    assert_eq!(times_published(&net, 0, &lost), 2);
    assert_eq!(net.members[1].disk.texts(id), ["into the silence"]);
}

/// A message whose batch never committed (the disk failed) was never
/// published, and its ratchet step is not on disk: it must not go out
/// later either, or a restart would use its message index twice.
#[test]
fn a_message_whose_commit_failed_is_never_published() {
    let mut net = Net::new(&["alice", "bob"], config());
    net.group_of_all(0);
    let start = net.now.mono_ms;
    let now = net.now;
    let m = &mut net.members[0];
    let mut ctx = Ctx {
        now,
        clock: &mut m.clock,
        rng: &mut m.rng,
    };
    m.book
        .send(&mut ctx, "friends", "never stored".to_owned())
        .unwrap();
    // The batch fails: its writes and what follows them are dropped.
    let lost: Vec<Vec<u8>> = std::iter::from_fn(|| m.book.poll_effect())
        .filter_map(|e| match e {
            GroupEffect::After(GroupAfter::Publish { bytes, .. }) => Some(bytes),
            _ => None,
        })
        .collect();
    assert_eq!(lost.len(), 1);
    run_until(&mut net, start, RESEND_AFTER_MS[2] + 10_000);
    assert_eq!(times_published(&net, 0, &lost[0]), 0);
}

/// A message the store still holds but our history no longer does (its
/// disappearing timer ran out while the node was stopped) is dropped, not
/// published again.
#[test]
fn a_kept_message_gone_from_our_history_is_not_sent_after_a_restart() {
    let mut net = Net::new(&["alice", "bob"], config());
    net.group_of_all(0);
    let start = net.now.mono_ms;
    let sent = net
        .call(0, |book, ctx, _| {
            book.send(ctx, "friends", "gone".to_owned())
        })
        .unwrap();
    let (_, _, _, bytes) = net.topic.pop_back().expect("published");
    net.topic.clear();
    let record = net.members[0].disk.unconfirmed[&sent].clone();
    net.call(0, |book, _, _| book.restore_unconfirmed(sent, record, None));
    assert!(net.members[0].disk.unconfirmed.is_empty());
    // Its watch from before the "restart" was replaced by nothing: the
    // resends of the running book still go, so only count to the first.
    run_until(&mut net, start, RESEND_AFTER_MS[0] - 1_000);
    assert_eq!(times_published(&net, 0, &bytes), 1);
}

/// Loss: nobody confirmed alice's message, and when its last resend came
/// her link was down, so no peer took that one either. The message waits
/// for a peer in memory; the store must keep it too, or a restart before
/// a peer comes back loses it. Once a peer takes the last try, the store
/// lets it go (what the relays on the topic hold is theirs to deliver).
#[test]
fn a_last_resend_no_peer_took_stays_in_the_store_until_one_does() {
    let mut net = Net::new(&["alice", "bob"], config());
    net.group_of_all(0);
    let start = net.now.mono_ms;
    net.members[1].deaf = true;
    let bytes = net.publish(0, "anyone?");
    let sent = net.watches[&bytes];
    net.drive();
    run_until(&mut net, start, RESEND_AFTER_MS[2] - 1_000);
    assert_eq!(times_published(&net, 0, &bytes), RESEND_AFTER_MS.len());
    net.members[0].offline = true;
    run_until(&mut net, start, RESEND_AFTER_MS[2] + 60_000);
    assert_eq!(
        times_published(&net, 0, &bytes),
        RESEND_AFTER_MS.len(),
        "the last try found no peer"
    );
    assert!(
        net.members[0].disk.unconfirmed.contains_key(&sent),
        "kept in the store while no peer took the last try"
    );
    net.members[0].offline = false;
    run_until(&mut net, start, RESEND_AFTER_MS[2] + 70_000);
    assert_eq!(times_published(&net, 0, &bytes), 1 + RESEND_AFTER_MS.len());
    assert_eq!(net.members[0].book.unconfirmed.len(), 0);
    assert!(
        net.members[0].disk.unconfirmed.is_empty(),
        "dropped once a peer took the last"
    );
}

/// A node offline long enough for its waiting queue to fill (messages of
/// others it forwards, its channel's): a message of its own still waits
/// for a peer and goes out as soon as one is there, not at its resend
/// time (or never, after its last).
#[test]
fn our_message_waits_for_a_peer_even_with_the_waiting_queue_full() {
    use crate::device::groups::resend::MAX_UNPUBLISHED;

    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    net.members[0].offline = true;
    let (topic, _) = net.publish_key(0, id);
    for i in 0..MAX_UNPUBLISHED {
        let filler = (i as u64).to_be_bytes().to_vec();
        net.members[0]
            .book
            .unpublished(id, topic.clone(), filler, None);
    }
    net.call(0, |book, ctx, _| {
        book.send(ctx, "friends", "still here".to_owned())
    })
    .unwrap();
    net.members[0].offline = false;
    let start = net.now.mono_ms;
    run_until(&mut net, start, 2_000);
    assert_eq!(net.members[1].disk.texts(id), ["still here"]);
}

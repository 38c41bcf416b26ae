//! A message missed on the topic is read from the relays' history, or
//! from a member that read it.

use super::*;
use crate::device::KeptRecord;
use crate::device::groups::gaps::{CATCH_UP_EVERY_MS, CATCH_UP_WAIT_MS};
use crate::device::groups::recent::{ANSWER_GAP_MS, RECENT_BYTES, RECENT_MESSAGES};

/// Alice sends "one", publishes "two" which bob never hears, sends
/// "three"; the bytes of "two".
fn bob_misses_the_second(net: &mut Net) -> Vec<u8> {
    net.send(0, "one");
    let lost = net.publish(0, "two");
    net.topic.clear();
    net.send(0, "three");
    lost
}

#[test]
fn a_message_missed_on_the_topic_is_read_from_the_relays_after_a_short_wait() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let (topic, _) = net.publish_key(1, id);
    bob_misses_the_second(&mut net);
    assert_eq!(net.members[1].disk.texts(id), ["one", "three"]);
    assert!(
        net.members[1].catch_ups.is_empty(),
        "a gap may be a message still on its way"
    );
    net.advance(CATCH_UP_WAIT_MS);
    assert_eq!(net.members[1].catch_ups, [(id, topic)]);
    // Asked once. Bob has it in the end all the same: alice, asked too,
    // answers with it (and, with no receipt for it, sends it again).
    net.advance(CATCH_UP_EVERY_MS);
    assert_eq!(net.members[1].catch_ups.len(), 1);
    assert!(net.members[0].catch_ups.is_empty(), "alice missed nothing");
    net.drive();
    assert_eq!(net.members[1].disk.texts(id), ["one", "two", "three"]);
}

#[test]
fn a_message_late_within_the_wait_asks_nothing() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let (topic, _) = net.publish_key(1, id);
    let late = bob_misses_the_second(&mut net);
    net.deliver_topic(0, 1, &topic, &late);
    net.advance(CATCH_UP_WAIT_MS);
    assert_eq!(net.members[1].disk.texts(id), ["one", "two", "three"]);
    assert!(net.members[1].catch_ups.is_empty());
}

/// A member that skips Megolm indices on purpose (or a topic that loses a
/// message every second) makes a member read the relays' history at most
/// once every half minute, not once per gap.
#[test]
fn a_sender_skipping_indices_costs_one_catch_up_every_half_minute() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    net.send(0, "first");
    let seconds = 90;
    for i in 0..seconds {
        let _ = net.publish(0, "skipped");
        net.topic.clear();
        net.send(0, &format!("read {i}"));
        net.advance(1_000);
    }
    net.advance(CATCH_UP_EVERY_MS);
    let asked = net.members[1].catch_ups.len() as u64;
    assert!(asked >= 1, "the gaps were seen");
    // Once every half minute over 90 s and the half minute after: 4.
    // Without the spacing it was 30 (one per gap, each 3 s after it).
    assert!(asked <= 4, "{asked} catch-ups in {seconds} s");
    // Each catch-up asked alice too, for the skipped ones since the last.
    let missed = |k: &ControlKind| matches!(k, ControlKind::Missed { .. });
    let mut asks = 0;
    while let Some(at) = net.control_to(0, missed) {
        net.olm.remove(at);
        asks += 1;
    }
    assert!(asks as u64 <= asked, "{asks} asks of alice");
    let read = net.members[1].disk.texts(id);
    assert!(read.len() > seconds as usize, "{read:?}");
}

/// A group of the three; the first sends "one", "two" (which only the
/// third reads) and "three": the group, and the bytes of "two".
fn only_the_third_reads_the_second(net: &mut Net) -> (GroupId, Vec<u8>) {
    let id = net.group_of_all(0);
    let (topic, _) = net.publish_key(1, id);
    net.send(0, "one");
    let lost = net.publish(0, "two");
    net.topic.clear();
    net.deliver_topic(0, 2, &topic, &lost);
    net.send(0, "three");
    (id, lost)
}

/// Carol reads what bob missed; alice, who sent it, cannot answer (her
/// node is away): 3 s after the gap bob asks alice and carol, and carol's
/// copy is what he reads. Before members kept and answered, a node
/// without relays lacked such a message for good.
#[test]
fn a_message_no_relay_brings_is_read_from_a_member_who_has_it() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let (id, _) = only_the_third_reads_the_second(&mut net);
    assert_eq!(net.members[1].disk.texts(id), ["one", "three"]);
    assert_eq!(net.members[2].disk.texts(id), ["one", "two", "three"]);
    net.members[0].held = true;
    net.advance(CATCH_UP_WAIT_MS);
    net.drive();
    assert_eq!(net.members[1].disk.texts(id), ["one", "two", "three"]);
    assert!(
        net.control_to(0, |k| matches!(k, ControlKind::Missed { .. }))
            .is_some(),
        "alice was asked too"
    );
}

/// Bob missed "two"; mallory, a member bob never asked, hands him
/// messages anyway (a flood of genuine old ones, say): unread. Asked, an
/// answer brings no more messages than were asked for.
#[test]
fn found_messages_from_a_member_never_asked_are_not_read() {
    let mut net = Net::new(&["alice", "bob", "mallory"], config());
    let (id, lost) = only_the_third_reads_the_second(&mut net);
    let mallory = (net.members[2].key.id(), net.members[2].device);
    let found = GroupControl {
        group: id,
        kind: ControlKind::Found(vec![lost.clone()]),
    };
    net.call(1, |book, ctx, disk| {
        book.handle_control(ctx, disk, mallory.0, mallory.1, found.clone());
    });
    assert_eq!(net.members[1].disk.texts(id), ["one", "three"], "not asked");
    // Bob asks (alice and mallory, the only others); alice is away.
    net.members[0].held = true;
    net.advance(CATCH_UP_WAIT_MS);
    net.drive();
    assert_eq!(net.members[1].disk.texts(id), ["one", "two", "three"]);
    // Asked for one message, mallory's second answer is not read.
    let four = net.publish(0, "four");
    net.topic.clear();
    let again = GroupControl {
        group: id,
        kind: ControlKind::Found(vec![four]),
    };
    net.call(1, |book, ctx, disk| {
        book.handle_control(ctx, disk, mallory.0, mallory.1, again);
    });
    assert_eq!(net.members[1].disk.texts(id), ["one", "two", "three"]);
}

/// Mallory, a member, asks alice for her messages again and again (to
/// make her send and encrypt without end): one answer per
/// [`ANSWER_GAP_MS`]. Eve, invited but not joined (so not a reader of
/// the group yet), gets none.
#[test]
fn asking_for_missed_messages_again_and_again_is_answered_once_per_gap() {
    let mut net = Net::new(&["alice", "bob", "mallory", "eve"], config());
    let id = net.create_friends(0);
    for i in [1, 2] {
        net.invite_to_friends(0, i, false);
        net.drive();
        net.join_friends(i);
    }
    net.invite_to_friends(0, 3, false);
    net.drive();
    net.send(0, "one");
    net.send(0, "two");
    let session = *net.members[1]
        .book
        .inbound
        .keys()
        .next()
        .expect("bob holds alice's session");
    let ask = GroupControl {
        group: id,
        kind: ControlKind::Missed {
            session,
            // Index 0 made the room key's claim.
            indices: vec![0, 1, 2],
        },
    };
    let is_found = |k: &ControlKind| matches!(k, ControlKind::Found(_));
    for (who, name) in [(3, "eve"), (2, "mallory")] {
        let (account, device) = (net.members[who].key.id(), net.members[who].device);
        for _ in 0..100 {
            net.call(0, |book, ctx, disk| {
                book.handle_control(ctx, disk, account, device, ask.clone());
            });
        }
        let answers = founds_to(&net, account);
        let expected = usize::from(name == "mallory");
        assert_eq!(answers, expected, "{name}: {answers} answers to 100 asks");
    }
    let at = net.control_to(2, is_found).expect("mallory's answer");
    let ControlKind::Found(messages) = net.control_at(at).kind else {
        unreachable!("picked a found");
    };
    assert_eq!(messages.len(), 2, "the two messages asked for");
    net.advance(ANSWER_GAP_MS);
    let (account, device) = (net.members[2].key.id(), net.members[2].device);
    net.call(0, |book, ctx, disk| {
        book.handle_control(ctx, disk, account, device, ask.clone());
    });
    assert_eq!(founds_to(&net, account), 2, "answered again after the gap");
}

/// The answers (`Found`) on their way to `account`.
fn founds_to(net: &Net, account: AccountId) -> usize {
    net.olm
        .iter()
        .filter(|(_, to, p)| {
            *to == account
                && matches!(&p.body, Body::Group(c) if matches!(c.kind, ControlKind::Found(_)))
        })
        .count()
}

/// Bob asked mallory; she answers for "friends" with a message of another
/// group bob and she are in (so it would decrypt): skipped, not stored in
/// "friends".
#[test]
fn a_found_message_of_another_group_is_not_read_as_this_ones() {
    let mut net = Net::new(&["alice", "bob", "mallory"], config());
    let id = net.group_of_all(0);
    // "others", made by mallory, with bob in it; her message there.
    let card = net.members[2].card.clone();
    let other = net
        .call(2, |book, ctx, _| book.create(ctx, "others".into(), card))
        .unwrap();
    let bobs = net.members[1].card.clone();
    net.call(2, |book, ctx, _| book.invite(ctx, "others", bobs, false))
        .unwrap();
    net.drive();
    net.call(1, |book, ctx, _| book.join(ctx, "others"))
        .unwrap();
    net.drive();
    net.call(2, |book, ctx, _| {
        book.send(ctx, "others", "elsewhere".into())
    })
    .unwrap();
    net.drive();
    let (_, _, elsewhere) = net.published.last().expect("published").clone();
    assert_eq!(net.members[1].disk.texts(other), ["elsewhere"]);
    // Bob misses alice's "two" in "friends" and asks alice and mallory.
    net.send(0, "one");
    let _lost = net.publish(0, "two");
    net.topic.clear();
    net.send(0, "three");
    net.members[0].held = true;
    net.members[2].held = true;
    net.advance(CATCH_UP_WAIT_MS);
    net.drive();
    let (account, device) = (net.members[2].key.id(), net.members[2].device);
    let forged = GroupControl {
        group: id,
        kind: ControlKind::Found(vec![elsewhere]),
    };
    net.call(1, |book, ctx, disk| {
        book.handle_control(ctx, disk, account, device, forged);
    });
    assert_eq!(net.members[1].disk.texts(id), ["one", "three"]);
    assert_eq!(net.members[1].disk.texts(other), ["elsewhere"]);
}

/// However many messages a member reads, it keeps at most
/// [`RECENT_MESSAGES`] of them, and at most [`RECENT_BYTES`].
#[test]
fn the_messages_kept_for_other_members_stay_within_their_bound() {
    let mut net = Net::new(&["alice", "bob"], config());
    let _ = net.group_of_all(0);
    for i in 0..RECENT_MESSAGES + 40 {
        net.send(0, &format!("message {i}"));
    }
    assert_eq!(net.members[1].book.recent.len(), RECENT_MESSAGES);
    let long = "x".repeat(crate::MAX_TEXT_LEN);
    for _ in 0..(RECENT_BYTES / crate::MAX_TEXT_LEN + 8) {
        net.send(0, &long);
    }
    assert!(net.members[1].book.recent.bytes() <= RECENT_BYTES);
    assert!(net.members[0].book.recent.bytes() <= RECENT_BYTES);
}

/// Bob misses a message of alice's session and one of carol's in the same
/// catch-up; carol is away, so alice is asked about both (hers as their
/// maker, carol's as the other member) and answers about both. With one
/// answer per asker and group, not per session, bob got only one.
#[test]
fn a_member_asked_about_two_sessions_at_once_answers_about_both() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let id = net.group_of_all(0);
    net.send(0, "alice one");
    net.send(2, "carol one");
    let _ = net.publish(0, "alice two");
    let _ = net.publish(2, "carol two");
    // Only alice reads carol's "two"; bob reads neither.
    let (_, _, topic, carols) = net.topic.pop_back().expect("carol's two");
    net.topic.clear();
    net.deliver_topic(2, 0, &topic, &carols);
    net.send(0, "alice three");
    net.send(2, "carol three");
    let read = net.members[1].disk.texts(id);
    assert!(!read.contains(&"alice two".to_owned()) && !read.contains(&"carol two".to_owned()));
    net.members[2].held = true;
    net.advance(CATCH_UP_WAIT_MS);
    net.drive();
    let read = net.members[1].disk.texts(id);
    for text in ["alice two", "carol two"] {
        assert!(read.contains(&text.to_owned()), "{text}: {read:?}");
    }
}

/// What a member keeps for others goes to the store when its node stops
/// and comes back when it starts (`KeptRecord`s, oldest first): after the
/// round trip the member still answers an ask from them, and a node that
/// no longer holds the group (it left, or was removed) takes none back.
#[test]
fn kept_messages_come_back_after_a_restart_only_for_groups_still_held() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let (id, lost) = only_the_third_reads_the_second(&mut net);
    let kept = net.members[2].book.kept_messages();
    assert!(kept.iter().any(|k| k.group == id && k.bytes == lost));
    let order = |kept: &[KeptRecord]| -> Vec<(u32, Vec<u8>)> {
        kept.iter().map(|k| (k.index, k.bytes.clone())).collect()
    };
    // Carol's node stops and starts: its memory is gone, the store's
    // copy comes back.
    net.members[2].book.recent = Default::default();
    assert!(net.members[2].book.kept_messages().is_empty());
    net.members[2].book.restore_kept(kept.clone());
    assert_eq!(order(&net.members[2].book.kept_messages()), order(&kept));
    // Given back again (a failed commit reloads the groups), they replace
    // what is kept rather than add to it.
    net.members[2].book.restore_kept(kept.clone());
    assert_eq!(order(&net.members[2].book.kept_messages()), order(&kept));
    net.members[0].held = true;
    net.advance(CATCH_UP_WAIT_MS);
    net.drive();
    assert_eq!(net.members[1].disk.texts(id), ["one", "two", "three"]);

    let mut stranger = member(9, "dave", config());
    stranger.book.restore_kept(kept);
    assert!(stranger.book.kept_messages().is_empty());
}

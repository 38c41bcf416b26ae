//! Our last message, missed by one member while the others confirmed it,
//! is handed to that member over Olm.

use super::*;
use crate::device::groups::tails::HAND_AFTER_MS;

/// Moves the clock on in ticks of a second to `ms` after `start`,
/// delivering everything after each.
fn run_until(net: &mut Net, start: u64, ms: u64) {
    while net.now.mono_ms < start + ms {
        net.advance(1_000);
        net.drive();
    }
}

/// alice, bob and carol in one group; carol hears nothing on the topic
/// while alice writes her last message, which bob reads.
fn carol_misses_alices_last(net: &mut Net) -> GroupId {
    let id = net.group_of_all(0);
    net.send(0, "hello");
    net.members[2].deaf = true;
    net.send(0, "the last");
    net.members[2].deaf = false;
    assert_eq!(net.members[1].disk.texts(id), ["hello", "the last"]);
    assert_eq!(net.members[2].disk.texts(id), ["hello"]);
    id
}

/// Nothing after it shows carol a gap, and bob's receipt stops alice's
/// resends: before, carol read it only when alice wrote again.
#[test]
fn the_last_message_one_member_missed_on_the_topic_reaches_it_from_its_sender() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let start = net.now.mono_ms;
    let id = carol_misses_alices_last(&mut net);
    run_until(&mut net, start, HAND_AFTER_MS - 1_000);
    assert_eq!(
        net.members[2].disk.texts(id),
        ["hello"],
        "not before its time"
    );
    run_until(&mut net, start, HAND_AFTER_MS + 2_000);
    assert_eq!(net.members[2].disk.texts(id), ["hello", "the last"]);
    // Confirmed by everyone now: nothing is owed, nothing goes again.
    run_until(&mut net, start, 3 * HAND_AFTER_MS);
    assert_eq!(net.members[0].book.tails.len(), 0);
    assert_eq!(net.members[2].disk.texts(id), ["hello", "the last"]);
}

/// A member the host finds unconnected (offline) is not handed anything:
/// its relays' history brings it back, not a copy through its mailbox.
#[test]
fn a_member_that_missed_our_message_while_unreachable_is_not_handed_it() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let start = net.now.mono_ms;
    let id = carol_misses_alices_last(&mut net);
    net.members[2].offline = true;
    let found = |k: &ControlKind| matches!(k, ControlKind::Found(_));
    for _ in 0..(HAND_AFTER_MS / 1_000 + 2) {
        net.advance(1_000);
        assert!(net.control_to(2, found).is_none(), "nothing for carol");
        net.drive();
    }
    assert!(net.now.mono_ms >= start + HAND_AFTER_MS);
    assert_eq!(net.members[0].book.tails.len(), 0, "given up on");
    assert_eq!(net.members[2].disk.texts(id), ["hello"]);
}

/// Members that read every message are owed nothing, and no `Found` goes
/// out.
#[test]
fn messages_every_member_confirmed_are_handed_to_nobody() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let start = net.now.mono_ms;
    let id = net.group_of_all(0);
    net.send(0, "one");
    net.send(0, "two");
    run_until(&mut net, start, 5_000);
    assert_eq!(net.members[0].book.tails.len(), 0, "all confirmed");
    let found = |k: &ControlKind| matches!(k, ControlKind::Found(_));
    for _ in 0..(HAND_AFTER_MS / 1_000 + 2) {
        net.advance(1_000);
        assert!(net.control_to(1, found).is_none());
        assert!(net.control_to(2, found).is_none());
        net.drive();
    }
    assert_eq!(net.members[2].disk.texts(id), ["one", "two"]);
}

/// Mallory, a member, hands carol alice's message carol missed, unasked:
/// only a session's maker may hand its messages over unasked, so carol
/// does not read it from mallory.
#[test]
fn a_member_handing_over_another_members_message_unasked_is_ignored() {
    let mut net = Net::new(&["alice", "mallory", "carol"], config());
    let id = net.group_of_all(0);
    net.send(0, "hello");
    net.members[2].deaf = true;
    let last = net.publish(0, "the last");
    net.drive();
    net.members[2].deaf = false;
    let mallory = (net.members[1].key.id(), net.members[1].device);
    let found = GroupControl {
        group: id,
        kind: ControlKind::Found(vec![last]),
    };
    net.call(2, |book, ctx, disk| {
        book.handle_control(ctx, disk, mallory.0, mallory.1, found);
    });
    assert_eq!(net.members[2].disk.texts(id), ["hello"]);
    assert!(
        net.members[2]
            .notes
            .iter()
            .any(|(_, what)| what.contains("did not ask")),
        "{:?}",
        net.members[2].notes
    );
}

/// A sender writing fast while its first message still waits for one
/// member: the ids of the thousands confirmed behind it do not pile up.
#[test]
fn what_a_fast_sender_remembers_stays_bounded() {
    let mut net = Net::new(&["alice", "bob", "carol"], config());
    let start = net.now.mono_ms;
    carol_misses_alices_last(&mut net);
    for i in 0..7_000 {
        net.send(0, &format!("{i}"));
        if i % 1_000 == 999 {
            // Receipts flush on the tick; 14 s in all, the first not due.
            net.advance(2_000);
            net.drive();
        }
    }
    assert!(net.now.mono_ms < start + HAND_AFTER_MS);
    let tails = &net.members[0].book.tails;
    assert!(tails.len() <= 1_024, "{}", tails.len());
    assert!(tails.order_len() <= 4 * 1_024 + 1, "{}", tails.order_len());
}

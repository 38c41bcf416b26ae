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

/// No peer on the topic yet: the message waits for one (published on each
/// tick), and its resends do not pile up beside it.
#[test]
fn a_message_still_waiting_for_a_peer_is_not_queued_twice() {
    let mut net = Net::new(&["alice", "bob"], config());
    let id = net.group_of_all(0);
    let start = net.now.mono_ms;
    let bytes = net.publish(0, "nobody here");
    let (_, _, topic, _) = net.topic.pop_back().expect("published");
    net.call(0, |book, _, _| book.unpublished(id, topic, bytes.clone()));
    for _ in 0..(RESEND_AFTER_MS[0] / 1_000 + 1) {
        // Every tick's try finds no peer either.
        let before = net.topic.len();
        net.now = net.now.plus_ms(1_000);
        net.call(0, |book, ctx, _| book.handle_tick(ctx));
        let tries: Vec<_> = net
            .topic
            .drain(before..)
            .filter(|(_, _, _, b)| *b == bytes)
            .collect();
        assert_eq!(tries.len(), 1, "tried once a tick");
        for (_, group, topic, bytes) in tries {
            net.call(0, |book, _, _| book.unpublished(group, topic, bytes));
        }
    }
    assert!(net.now.mono_ms >= start + RESEND_AFTER_MS[0]);
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

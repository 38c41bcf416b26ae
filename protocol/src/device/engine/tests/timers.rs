//! Disappearing messages in 1:1 conversations: the timer travels inside
//! the encrypted messages, either side may change it (the later change
//! wins), and every message carries the timer of its conversation.

use super::*;
use crate::device::MessageKind;

/// The timer entries a device shows, in id order: (outgoing, timer set).
fn timer_entries(d: &Dev) -> Vec<(bool, Option<u32>)> {
    d.disk
        .messages
        .values()
        .filter_map(|m| match m.kind {
            MessageKind::Timer(secs) => Some((m.outgoing, secs)),
            MessageKind::Message => None,
        })
        .collect()
}

fn timer_of(net: &Net, at: usize, with: usize) -> Option<u32> {
    let account = net.devs[with].engine.me().account;
    net.devs[at].engine.timer_of(&account)
}

/// The timers of the texts a device stored: (text, timer).
fn timed_texts(d: &Dev) -> Vec<(String, Option<u32>)> {
    d.disk
        .messages
        .values()
        .filter(|m| m.kind == MessageKind::Message)
        .map(|m| (m.text.clone(), m.timer_secs))
        .collect()
}

#[test]
fn a_timer_set_on_one_side_times_both_sides_messages() {
    let mut net = Net::new(&["alice", "bob"]);
    let id = net
        .call(0, |e, ctx, _| e.set_timer(ctx, "bob", Some(3600)))
        .unwrap();
    net.drive();
    assert_eq!(timer_of(&net, 0, 1), Some(3600));
    assert_eq!(timer_of(&net, 1, 0), Some(3600), "bob took alice's timer");
    // Both conversations show the change; bob's delivered receipt raised
    // alice's entry like a message's.
    assert_eq!(timer_entries(&net.devs[0]), [(true, Some(3600))]);
    assert_eq!(timer_entries(&net.devs[1]), [(false, Some(3600))]);
    assert_eq!(
        net.devs[0].disk.messages.values().next().map(|m| m.status),
        Some(Status::Delivered)
    );
    assert_eq!(
        net.devs[0].disk.messages.values().next().map(|m| m.id),
        Some(id)
    );
    net.send(0, "bob", "gone in an hour");
    net.send(1, "alice", "mine too");
    for d in &net.devs {
        assert_eq!(
            timed_texts(d),
            [
                ("gone in an hour".to_owned(), Some(3600)),
                ("mine too".to_owned(), Some(3600))
            ]
        );
        for m in d
            .disk
            .messages
            .values()
            .filter(|m| m.kind == MessageKind::Message)
        {
            assert_eq!(m.expires_at_ms(), Some(m.sent_at_ms + 3_600_000));
        }
    }
    // Off again: later messages are kept.
    net.call(1, |e, ctx, _| e.set_timer(ctx, "alice", None))
        .unwrap();
    net.drive();
    assert_eq!(timer_of(&net, 0, 1), None);
    net.send(0, "bob", "this one stays");
    assert_eq!(
        timed_texts(&net.devs[1]).last(),
        Some(&("this one stays".to_owned(), None))
    );
}

#[test]
fn when_both_sides_change_the_timer_at_once_the_later_change_wins_on_both() {
    let mut net = Net::new(&["alice", "bob"]);
    // Neither hears the other before both changed it.
    let first = net
        .call(0, |e, ctx, _| e.set_timer(ctx, "bob", Some(60)))
        .unwrap();
    net.advance(0);
    let second = net
        .call(1, |e, ctx, _| e.set_timer(ctx, "alice", Some(7 * 86_400)))
        .unwrap();
    net.drive();
    let winner = if second > first {
        Some(7 * 86_400)
    } else {
        Some(60)
    };
    assert_eq!(timer_of(&net, 0, 1), winner);
    assert_eq!(timer_of(&net, 1, 0), winner);
    // Both changes show on both sides, in id order.
    assert_eq!(timer_entries(&net.devs[0]).len(), 2);
    assert_eq!(timer_entries(&net.devs[1]).len(), 2);
}

#[test]
fn a_message_that_expired_before_it_arrived_is_acked_but_never_stored() {
    let mut net = Net::new(&["alice", "bob"]);
    net.call(0, |e, ctx, _| e.set_timer(ctx, "bob", Some(5)))
        .unwrap();
    net.drive();
    net.devs[1].online = false;
    net.send(0, "bob", "too late");
    // Bob comes back after the message's five seconds ran out.
    net.advance(10_000);
    net.devs[1].online = true;
    net.advance(60_000);
    assert!(timed_texts(&net.devs[1]).is_empty(), "bob never shows it");
    assert!(
        net.devs[0].disk.outbox.is_empty(),
        "and alice stops sending it"
    );
}

#[test]
fn a_timer_for_someone_not_a_contact_is_refused() {
    let mut net = Net::new(&["alice", "bob"]);
    let err = net.call(0, |e, ctx, _| e.set_timer(ctx, "carol", Some(60)));
    assert!(matches!(err, Err(SendError::UnknownContact { .. })));
    assert_eq!(timer_of(&net, 0, 1), None);
}

#[test]
fn forgotten_messages_are_no_longer_sent() {
    let mut net = Net::new(&["alice", "bob"]);
    net.devs[1].online = false;
    let id = net.send(0, "bob", "never mind");
    assert!(!net.devs[0].engine.outbox.keys_of(id).is_empty());
    net.devs[0].engine.forget_messages(&[id]);
    assert!(net.devs[0].engine.outbox.keys_of(id).is_empty());
    net.devs[1].online = true;
    net.advance(60_000);
    assert!(timed_texts(&net.devs[1]).is_empty());
}

/// Mail left at a relay for an offline contact carries the message's end
/// (and nothing else of the timer): the relay drops it then, and the
/// contact, back online, never gets it.
#[test]
fn a_disappearing_message_left_at_a_relay_is_dropped_there_when_it_ends() {
    let mut net = Net::with_relay(&["alice", "bob"], &["bob"]);
    net.advance(POLL_MS);
    net.upload_keys(1);
    net.call(0, |e, ctx, _| e.set_timer(ctx, "bob", Some(30)))
        .unwrap();
    net.drive();
    net.devs[1].online = false;
    net.send(0, "bob", "for thirty seconds");
    net.advance_10(FIRST_RETRY_MS);
    assert_eq!(net.relay_store.len(), 1, "alice left it at bob's relay");
    net.advance_10(5_000);
    assert!(
        net.relay_store.is_empty(),
        "the relay dropped it when it ended"
    );
    net.devs[1].online = true;
    net.advance_10(POLL_MS);
    assert!(timed_texts(&net.devs[1]).is_empty());
}

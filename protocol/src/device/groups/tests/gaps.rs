//! A message missed on the topic is read from the relays' history.

use super::*;
use crate::device::groups::gaps::{CATCH_UP_EVERY_MS, CATCH_UP_WAIT_MS};

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
    // Asked once: what the relays' history does not bring is lost to it.
    net.advance(CATCH_UP_EVERY_MS);
    assert_eq!(net.members[1].catch_ups.len(), 1);
    assert!(net.members[0].catch_ups.is_empty(), "alice missed nothing");
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
    assert_eq!(net.members[1].disk.texts(id).len(), seconds as usize + 1);
}

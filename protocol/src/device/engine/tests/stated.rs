//! A device's own statement of its home relays (issue 19, item 3): its
//! contacts leave its mail there, over what its account's card says, and
//! only the device itself, and only something newer, moves it.

use super::*;
use crate::device::StatedRelays;
use crate::{HomeRelays, MAX_PRESENCE_SKEW_MS};

fn stated(at_ms: u64) -> HomeRelays {
    HomeRelays {
        issued_at_ms: at_ms,
        relays: vec!["/ip4/127.0.0.1/tcp/7001/p2p/relay".into()],
    }
}

/// alice and bob; bob's card names no relay, and he has one now (found
/// through the DHT after the card went out).
fn bob_without_relays_on_his_card() -> Net {
    let mut net = Net::new(&["alice", "bob"]);
    net.devs[1].drain = Some(HomeMailbox::new(net.now, POLL_MS).polling());
    net.advance(POLL_MS);
    net.upload_keys(1);
    net
}

#[test]
fn a_device_that_states_new_relays_gets_its_mail_there_without_a_new_card() {
    let mut net = bob_without_relays_on_his_card();
    let bob = net.devs[1].keys.device_id;
    // While bob's statement is unknown, alice has nowhere to leave his mail.
    net.send(0, "bob", "hello");
    net.devs[1].online = false;
    net.send(0, "bob", "before");
    net.advance_10(FIRST_RETRY_MS);
    assert!(net.relay_store.is_empty(), "no relay on bob's card");
    assert!(!net.devs[0].engine.has_relays(&bob));
    // bob comes back and tells his contacts where his relays are.
    net.devs[1].online = true;
    net.advance_10(FIRST_RETRY_MS);
    let now = net.now;
    net.call(1, |e, ctx, _| {
        e.push_relays(ctx, &["/ip4/127.0.0.1/tcp/7001/p2p/relay".into()]);
    });
    net.drive();
    assert!(
        net.devs[0].engine.has_relays(&bob),
        "alice took bob's statement"
    );
    assert!(
        net.devs[0]
            .disk
            .home_relays
            .get(&bob)
            .is_some_and(|s| s.issued_at_ms == now.unix_ms),
        "and stored it"
    );
    // bob goes away again: alice's next message waits at his relay, and
    // he reads it there.
    net.devs[1].online = false;
    net.send(0, "bob", "after");
    net.advance_10(FIRST_RETRY_MS);
    assert!(!net.relay_store.is_empty(), "left at the relay bob stated");
    net.devs[1].online = true;
    net.advance_10(POLL_MS);
    assert!(net.devs[1].disk.incoming().contains(&"after".to_owned()));
}

#[test]
fn a_replayed_older_statement_does_not_move_a_devices_relays_back() {
    let mut net = Net::new(&["alice", "bob"]);
    let bob = net.devs[1].keys.device_id;
    let at = net.now.unix_ms;
    let newer = net.call(0, |e, ctx, _| e.take_home_relays(ctx, bob, stated(at)));
    assert_eq!(newer, StatedRelays::Taken);
    let replay = net.call(0, |e, ctx, _| e.take_home_relays(ctx, bob, stated(at - 1)));
    assert_eq!(replay, StatedRelays::Old, "an older statement is a replay");
    let again = net.call(0, |e, ctx, _| e.take_home_relays(ctx, bob, stated(at)));
    assert_eq!(again, StatedRelays::Old);
    // A later record naming the same relays changes (and writes) nothing.
    let writes = net.devs[0].disk.home_relays.clone();
    let refresh = net.call(0, |e, ctx, _| e.take_home_relays(ctx, bob, stated(at + 1)));
    assert_eq!(refresh, StatedRelays::Same);
    assert_eq!(net.devs[0].disk.home_relays, writes);
}

#[test]
fn a_statement_dated_in_the_future_cannot_pin_a_devices_relays() {
    let mut net = Net::new(&["alice", "bob"]);
    let bob = net.devs[1].keys.device_id;
    let far = net.now.unix_ms + MAX_PRESENCE_SKEW_MS + 1;
    let taken = net.call(0, |e, ctx, _| e.take_home_relays(ctx, bob, stated(far)));
    assert_eq!(taken, StatedRelays::Refused);
    assert!(!net.devs[0].engine.has_relays(&bob));
}

#[test]
fn a_statement_for_a_device_on_no_card_we_hold_is_refused() {
    let mut net = Net::new(&["alice", "bob"]);
    let stranger = dev(9, "mallory").keys.device_id;
    let at = net.now.unix_ms;
    let taken = net.call(0, |e, ctx, _| e.take_home_relays(ctx, stranger, stated(at)));
    assert_eq!(taken, StatedRelays::Refused);
    assert!(net.devs[0].disk.home_relays.is_empty());
}

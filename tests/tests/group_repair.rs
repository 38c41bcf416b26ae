//! A group message one member missed, repaired by the other members in a
//! group without relays (`protocol/src/device/groups/recent.rs`): real node
//! processes, a member frozen with `SIGSTOP` while the others talk.

use std::time::Duration;

use hush_tests::group::{create, group_message, invite, join, send, wait_history, wait_members};
use hush_tests::{User, introduce, wait_for};

fn signal(user: &User, signal: &str) {
    let pid = user.pid().expect("the node runs").to_string();
    let sent = std::process::Command::new("kill")
        .args([signal, &pid])
        .status();
    assert!(
        sent.is_ok_and(|s| s.success()),
        "could not send {signal} to {}",
        user.name
    );
}

fn texts(user: &User, group: &str) -> Vec<String> {
    user.group_history(group)
        .into_iter()
        .map(|(_, t)| t)
        .collect()
}

/// Alice, bob and carol in a group without relays; carol's node freezes
/// (a suspended laptop) long enough for the others to find her
/// connections dead, and alice writes "two", which bob reads and
/// confirms (so alice never sends it again). Then `meanwhile` runs,
/// carol wakes, and alice writes until carol reads something after
/// "two": carol must then read "two" itself, once, after "one".
fn carol_misses_two_while_frozen(meanwhile: impl FnOnce(&mut User, &mut User)) {
    let (mut alice, mut bob, mut carol) =
        (User::new("alice"), User::new("bob"), User::new("carol"));
    for u in [&mut alice, &mut bob, &mut carol] {
        u.start();
    }
    introduce(&alice, &bob);
    introduce(&alice, &carol);
    let group = create(&alice, "no relays");
    invite(&alice, &group, "bob", false);
    invite(&alice, &group, "carol", false);
    join(&bob, &group);
    join(&carol, &group);
    for u in [&alice, &bob, &carol] {
        wait_members(u, &group, 3);
    }
    send(&alice, &group, "one");
    for u in [&bob, &carol] {
        wait_history(u, &group, 1);
    }

    signal(&carol, "-STOP");
    // Liveness closes a silent connection after about 13 s.
    std::thread::sleep(Duration::from_secs(16));
    let two = send(&alice, &group, "two");
    let _ = wait_history(&bob, &group, 2);
    wait_for(
        "bob's receipt for \"two\" at alice",
        Duration::from_secs(30),
        || (group_message(&alice, &group, &two)?["delivered"].as_u64() >= Some(1)).then_some(()),
    );
    meanwhile(&mut alice, &mut bob);
    signal(&carol, "-CONT");

    let mut later = 0;
    wait_for(
        "carol to read a message sent after she woke",
        Duration::from_secs(60),
        || {
            later += 1;
            send(&alice, &group, &format!("later {later}"));
            std::thread::sleep(Duration::from_secs(2));
            texts(&carol, &group)
                .iter()
                .any(|t| t.starts_with("later"))
                .then_some(())
        },
    );
    let read = wait_for(
        "carol to read \"two\" from the members",
        Duration::from_secs(40),
        || {
            let read = texts(&carol, &group);
            read.contains(&"two".to_owned()).then_some(read)
        },
    );
    assert_eq!(read.iter().filter(|t| *t == "two").count(), 1, "{read:?}");
    assert_eq!(read.first().map(String::as_str), Some("one"), "{read:?}");
}

/// Carol has nowhere to read "two" from but the other members: 3 s after
/// the gap shows she asks alice and bob, and reads it from their answer.
/// Before members kept and answered, carol lacked "two" for good.
#[test]
fn a_message_a_frozen_member_missed_in_a_group_without_relays_reaches_it_from_the_members() {
    carol_misses_two_while_frozen(|_, _| {});
}

/// The same, but alice's and bob's nodes stop and start again while
/// carol sleeps (an upgrade, a reboot): what they kept for other members
/// is stored when a node stops and read back when it starts, so they
/// still answer. Before, a restart forgot it, and carol lacked "two".
#[test]
fn a_message_a_frozen_member_missed_reaches_it_from_members_whose_nodes_restarted() {
    carol_misses_two_while_frozen(|alice, bob| {
        for u in [alice, bob] {
            u.stop();
            u.start();
        }
    });
}

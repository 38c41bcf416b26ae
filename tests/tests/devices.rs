//! Several devices per account (issue 15), through the real binary: link a
//! device with a one-time code, backfill, mail from a contact on both
//! devices, a message from the new device, and codes that must fail.

use std::io::{BufRead, BufReader};
use std::process::Child;
use std::time::Duration;

use hush_tests::{User, introduce, pair, wait_for};
use serde_json::Value;

/// `hush device link --json` running on `user`: the code (first line),
/// and the process, which prints the linked device when it joined.
fn start_link(
    user: &User,
    extra: &[&str],
) -> (String, Child, BufReader<std::process::ChildStdout>) {
    let mut args = vec!["device", "link", "--json"];
    args.extend_from_slice(extra);
    let mut child = user.command(&args).spawn().expect("spawn device link");
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("read the code");
    let code: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("device link printed {line:?}: {e}"));
    let code = code["code"].as_str().expect("a code").to_owned();
    assert!(code.starts_with("hush-link1"), "{code}");
    (code, child, out)
}

/// alice's laptop: linked with all history, its node running.
fn linked_laptop(alice: &User) -> User {
    let mut laptop = User::empty("alice-laptop");
    let (code, mut link, _out) = start_link(alice, &[]);
    laptop.json(&["device", "join", &code, "--name", "laptop", "--json"]);
    assert!(link.wait().expect("ends").success());
    laptop.start();
    laptop
}

/// Waits until bob's card of alice lists her two devices (pushed to him).
fn bob_knows_two_devices(bob: &User) {
    wait_for(
        "bob to know alice's two devices",
        Duration::from_secs(30),
        || (bob.json(&["contact", "list", "--json"])[0]["devices"] == 2).then_some(()),
    );
}

/// With alice's first device stopped, bob sees her online through her
/// laptop (every device seals presence with the account's one key).
fn bob_sees_alice_online(bob: &User) {
    wait_for(
        "bob to see alice online through the laptop",
        Duration::from_secs(60),
        || {
            let p = bob.json(&["presence", "alice", "--refresh", "--json"]);
            (p["state"] == "online").then_some(())
        },
    );
}

/// Waits until `user`'s conversation with `with` holds `text`.
fn wait_text(user: &User, with: &str, text: &str) {
    wait_for(
        &format!("{} to have {text:?}", user.name),
        Duration::from_secs(30),
        || texts(user, with).iter().any(|t| t == text).then_some(()),
    );
}

fn texts(user: &User, with: &str) -> Vec<String> {
    user.history(with)
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn devices(user: &User) -> Vec<Value> {
    match user.json(&["device", "list", "--json"]) {
        Value::Array(list) => list,
        other => panic!("device list is not an array: {other}"),
    }
}

#[test]
fn a_linked_device_gets_the_history_and_mail_to_the_account_reaches_both_devices() {
    let (alice, bob) = pair();
    for text in ["one", "two", "three"] {
        alice.json(&["send", "bob", text, "--wait", "delivered", "--json"]);
    }
    bob.json(&["send", "alice", "four", "--wait", "delivered", "--json"]);

    let mut laptop = User::empty("alice-laptop");
    let (code, mut link, mut out) = start_link(&alice, &[]);
    let joined = laptop.json(&["device", "join", &code, "--name", "laptop", "--json"]);
    assert_eq!(joined["contacts"], 1, "{joined}");
    assert_eq!(joined["messages"], 4, "{joined}");
    assert_eq!(joined["account_key"], false, "{joined}");
    let mut line = String::new();
    out.read_line(&mut line).expect("the linked line");
    let linked: Value = serde_json::from_str(&line).expect("linked JSON");
    assert_eq!(linked["name"], "laptop");
    assert!(link.wait().expect("device link ends").success());

    laptop.start();
    assert_eq!(texts(&laptop, "bob"), ["one", "two", "three", "four"]);
    for user in [&alice, &laptop] {
        let list = devices(user);
        assert_eq!(list.len(), 2, "{}: {list:?}", user.name);
        assert!(list.iter().any(|d| d["name"] == "laptop"));
    }
    // bob learns the new list by himself (pushed over Olm).
    wait_for(
        "bob to know alice's two devices",
        Duration::from_secs(30),
        || {
            let list = bob.json(&["contact", "list", "--json"]);
            (list[0]["devices"] == 2).then_some(())
        },
    );
    wait_for(
        "alice's desktop to see the laptop online",
        Duration::from_secs(30),
        || {
            devices(&alice)
                .into_iter()
                .find(|d| d["name"] == "laptop" && d["last_seen"] == "online")
        },
    );
    bob.json(&["send", "alice", "to both", "--wait", "delivered", "--json"]);
    for user in [&alice, &laptop] {
        wait_text(user, "bob", "to both");
    }
    // The new device writes as alice.
    let sent = laptop.json(&[
        "send",
        "bob",
        "from the laptop",
        "--wait",
        "delivered",
        "--json",
    ]);
    assert_eq!(sent["status"], "delivered");
    let from_laptop = bob
        .history("alice")
        .into_iter()
        .find(|m| m["text"] == "from the laptop")
        .expect("bob has it");
    assert_eq!(from_laptop["from"], "alice", "{from_laptop}");
    // Its card is the account's: the same account as alice's first device.
    assert_eq!(
        laptop.json(&["id", "--json"])["account"],
        alice.json(&["id", "--json"])["account"]
    );
    // alice's first device stops: the account is online while the laptop
    // is (both seal presence with the account's one key).
    let mut alice = alice;
    alice.stop();
    bob_sees_alice_online(&bob);
}

#[test]
fn wrong_reused_and_unreachable_link_codes_fail_and_change_no_home() {
    let (mut alice, _bob) = pair();
    // A code replaced by a newer one is wrong for the old device now.
    let (first, mut link1, _) = start_link(&alice, &["--no-wait"]);
    assert!(link1.wait().expect("ends").success());
    let (second, mut link2, _) = start_link(&alice, &["--no-wait"]);
    assert!(link2.wait().expect("ends").success());
    let stranger = User::empty("stranger");
    let run = stranger.run(&["device", "join", &first, "--name", "x"]);
    assert!(!run.ok(), "a replaced code must fail: {run:?}");
    assert!(run.stderr.contains("code"), "{}", run.stderr);
    assert!(!stranger.home.join("hush.redb").exists());
    assert_eq!(devices(&alice).len(), 1);

    // A damaged code is refused before anything is tried.
    let mut damaged = second.clone();
    damaged.push('x');
    let run = stranger.run(&["device", "join", &damaged, "--name", "x"]);
    assert!(!run.ok());
    assert!(run.stderr.contains("damaged"), "{}", run.stderr);

    // The right code works once...
    let laptop = User::empty("laptop");
    laptop.json(&["device", "join", &second, "--name", "laptop", "--json"]);
    assert_eq!(devices(&alice).len(), 2);
    // ...and never again.
    let run = stranger.run(&["device", "join", &second, "--name", "again"]);
    assert!(!run.ok(), "a used code must fail: {run:?}");
    assert!(!stranger.home.join("hush.redb").exists());
    assert_eq!(devices(&alice).len(), 2);

    // A home that has an identity is never overwritten.
    let (third, mut link3, _) = start_link(&alice, &["--no-wait"]);
    assert!(link3.wait().expect("ends").success());
    let run = laptop.run(&["device", "join", &third, "--name", "twice"]);
    assert!(!run.ok());
    assert!(run.stderr.contains("already"), "{}", run.stderr);

    // With the old device's node stopped, the join says so.
    alice.stop();
    let run = stranger.run(&["device", "join", &third, "--name", "x", "--timeout", "20"]);
    assert!(!run.ok());
    assert!(run.stderr.contains("reach"), "{}", run.stderr);
    assert!(!stranger.home.join("hush.redb").exists());
}

#[test]
fn a_device_joined_with_history_none_gets_contacts_but_no_messages() {
    let (alice, _bob) = pair();
    alice.json(&["send", "bob", "old news", "--wait", "delivered", "--json"]);
    let laptop = User::empty("laptop");
    let (code, mut link, _out) = start_link(&alice, &[]);
    let mut laptop = laptop;
    let joined = laptop.json(&[
        "device",
        "join",
        &code,
        "--name",
        "laptop",
        "--history",
        "none",
        "--json",
    ]);
    assert_eq!(joined["contacts"], 1);
    assert_eq!(joined["messages"], 0);
    assert!(link.wait().expect("ends").success());
    laptop.start();
    assert!(texts(&laptop, "bob").is_empty());
}

#[test]
fn the_old_device_killed_during_the_backfill_leaves_no_half_linked_device() {
    let (mut alice, _bob) = pair();
    // A history big enough that its pages take a moment: 300 × 16 KiB.
    let text = "h".repeat(16 * 1024);
    for _ in 0..300 {
        let run = alice.run_with_stdin(&["send", "bob", "-"], &text);
        assert!(run.ok(), "{run:?}");
    }
    let laptop = User::empty("laptop");
    let (code, _link, _out) = start_link(&alice, &["--no-wait"]);
    let mut join = laptop
        .command(&["device", "join", &code, "--name", "laptop", "--json"])
        .spawn()
        .expect("spawn join");
    // Kill the old device once pages have started to land.
    let staging = laptop.home.join(".linking").join("hush.redb");
    wait_for("the backfill to start", Duration::from_secs(30), || {
        let started = std::fs::metadata(&staging).is_ok_and(|m| m.len() > 1024 * 1024);
        let done = laptop.home.join("hush.redb").exists();
        (started || done).then_some(())
    });
    alice.kill9();
    let status = join.wait().expect("join ends");
    let mut stderr = String::new();
    if let Some(mut pipe) = join.stderr.take() {
        use std::io::Read;
        let _ = pipe.read_to_string(&mut stderr);
    }
    if status.success() {
        // It finished before the kill: then it is whole.
        eprintln!("note: the join finished before the old device was killed");
    } else {
        assert!(stderr.contains("old device"), "{stderr}");
        assert!(!laptop.home.join("hush.redb").exists(), "half-linked");
        assert!(!laptop.home.join(".linking").exists());
    }
    // The old device restarts as it was (or with the new device listed,
    // if the join finished), and linking again works.
    alice.start();
    let listed = devices(&alice).len();
    assert_eq!(listed, if status.success() { 2 } else { 1 });
    if !status.success() {
        let (code, mut link, _out) = start_link(&alice, &[]);
        let joined = laptop.json(&["device", "join", &code, "--name", "laptop", "--json"]);
        assert_eq!(joined["messages"], 300, "{joined}");
        assert!(link.wait().expect("ends").success());
        assert_eq!(devices(&alice).len(), 2);
    }
}

#[test]
fn what_one_device_sends_or_reads_shows_on_the_other() {
    let (alice, bob) = pair();
    let laptop = linked_laptop(&alice);
    bob_knows_two_devices(&bob);
    // Sent from the desktop: the laptop shows it as alice's.
    alice.json(&[
        "send",
        "bob",
        "from the desktop",
        "--wait",
        "delivered",
        "--json",
    ]);
    wait_for(
        "the laptop to show the desktop's message",
        Duration::from_secs(30),
        || {
            laptop
                .history("bob")
                .into_iter()
                .find(|m| m["text"] == "from the desktop")
                .filter(|m| m["from"] == "alice")
        },
    );
    // And the other way round.
    laptop.json(&[
        "send",
        "bob",
        "from the laptop",
        "--wait",
        "delivered",
        "--json",
    ]);
    wait_text(&alice, "bob", "from the laptop");
    // bob reads: both devices see "read".
    bob.json(&["read", "alice", "--json"]);
    for user in [&alice, &laptop] {
        wait_for(
            &format!("{} to see read", user.name),
            Duration::from_secs(30),
            || {
                user.history("bob")
                    .iter()
                    .all(|m| m["from"] != "alice" || m["status"] == "read")
                    .then_some(())
            },
        );
    }
    // bob writes; alice reads on the laptop; the desktop has it read too.
    bob.json(&[
        "send",
        "alice",
        "read me anywhere",
        "--wait",
        "delivered",
        "--json",
    ]);
    wait_for(
        "both devices to have bob's message",
        Duration::from_secs(30),
        || {
            (texts(&alice, "bob").contains(&"read me anywhere".to_owned())
                && texts(&laptop, "bob").contains(&"read me anywhere".to_owned()))
            .then_some(())
        },
    );
    laptop.json(&["read", "bob", "--json"]);
    wait_for(
        "the desktop to have it read",
        Duration::from_secs(30),
        || {
            alice
                .history("bob")
                .into_iter()
                .find(|m| m["text"] == "read me anywhere" && m["status"] == "read")
        },
    );
}

#[test]
fn a_revoked_device_gets_nothing_more_and_cannot_send() {
    let (alice, bob) = pair();
    let laptop = linked_laptop(&alice);
    bob_knows_two_devices(&bob);
    // Sessions between alice's devices exist once they synced something.
    alice.json(&["send", "bob", "hello", "--wait", "delivered", "--json"]);
    wait_text(&laptop, "bob", "hello");

    let revoked = alice.json(&["device", "revoke", "laptop", "--json"]);
    assert_eq!(revoked["name"], "laptop");
    assert_eq!(devices(&alice).len(), 1);
    wait_for("bob to drop the laptop", Duration::from_secs(30), || {
        (bob.json(&["contact", "list", "--json"])[0]["devices"] == 1).then_some(())
    });
    bob.json(&[
        "send",
        "alice",
        "after the revocation",
        "--wait",
        "delivered",
        "--json",
    ]);
    wait_text(&alice, "bob", "after the revocation");
    // The laptop tries to write: nothing gets through, and it learns it is
    // revoked from alice's desktop.
    laptop.run(&["send", "bob", "from the stolen laptop"]);
    wait_for(
        "the laptop to know it is revoked",
        Duration::from_secs(30),
        || (laptop.json(&["status", "--json"])["revoked"] == true).then_some(()),
    );
    let run = laptop.run(&["send", "bob", "again"]);
    assert!(!run.ok());
    assert!(run.stderr.contains("revoked"), "{}", run.stderr);
    std::thread::sleep(Duration::from_secs(2));
    assert!(!texts(&laptop, "bob").contains(&"after the revocation".to_owned()));
    assert!(!texts(&bob, "alice").contains(&"from the stolen laptop".to_owned()));
    // The desktop cannot revoke itself.
    let run = alice.run(&["device", "revoke", "first device"]);
    assert!(!run.ok());
}

#[test]
fn a_device_that_was_off_catches_up_and_status_shows_the_gap() {
    let (alice, bob) = pair();
    let mut laptop = linked_laptop(&alice);
    bob_knows_two_devices(&bob);
    alice.json(&["send", "bob", "first", "--wait", "delivered", "--json"]);
    wait_for("alice to be fully synced", Duration::from_secs(30), || {
        (alice.json(&["status", "--json"])["sync_waiting"] == 0
            && texts(&laptop, "bob").contains(&"first".to_owned()))
        .then_some(())
    });
    laptop.stop();
    for text in ["while the laptop was off", "and another"] {
        alice.json(&["send", "bob", text, "--wait", "delivered", "--json"]);
    }
    let status = alice.json(&["status", "--json"]);
    assert_eq!(status["sync_waiting"], 2, "{status}");
    laptop.start();
    wait_for("the laptop to catch up", Duration::from_secs(60), || {
        let t = texts(&laptop, "bob");
        (t.contains(&"while the laptop was off".to_owned())
            && t.contains(&"and another".to_owned()))
        .then_some(())
    });
    wait_for(
        "alice to be fully synced again",
        Duration::from_secs(30),
        || (alice.json(&["status", "--json"])["sync_waiting"] == 0).then_some(()),
    );
}

#[test]
fn a_contact_added_blocked_or_removed_on_one_device_is_on_the_other_too() {
    let (alice, _bob) = pair();
    let laptop = linked_laptop(&alice);
    let contact_on = |user: &User, name: &str| -> Option<Value> {
        user.json(&["contact", "list", "--json"])
            .as_array()
            .and_then(|l| l.iter().find(|c| c["name"] == name).cloned())
    };
    // carol is added on the desktop after the link.
    let mut carol = User::new("carol");
    carol.start();
    hush_tests::introduce(&alice, &carol);
    wait_for("the laptop to know carol", Duration::from_secs(30), || {
        contact_on(&laptop, "carol")
    });
    wait_for(
        "carol to know alice's two devices",
        Duration::from_secs(30),
        || (carol.json(&["contact", "list", "--json"])[0]["devices"] == 2).then_some(()),
    );
    carol.json(&[
        "send",
        "alice",
        "hi from carol",
        "--wait",
        "delivered",
        "--json",
    ]);
    for user in [&alice, &laptop] {
        wait_text(user, "carol", "hi from carol");
    }
    // Blocked on the laptop: blocked on the desktop too.
    laptop.json(&["contact", "block", "carol", "--json"]);
    wait_for(
        "the desktop to block carol",
        Duration::from_secs(30),
        || contact_on(&alice, "carol").filter(|c| c["blocked"] == true),
    );
    // Removed on the desktop: gone from the laptop.
    alice.json(&["contact", "remove", "carol", "--json"]);
    wait_for(
        "the laptop to forget carol",
        Duration::from_secs(30),
        || contact_on(&laptop, "carol").is_none().then_some(()),
    );
}

/// alice's group "friends" with bob (an admin, her contact) and carol
/// (bob's contact only, not alice's), each having written once.
fn group_of_three() -> (User, User, User, String) {
    let (alice, bob) = pair();
    let mut carol = User::new("carol");
    carol.start();
    introduce(&bob, &carol);
    let group = alice.run(&["group", "create", "friends"]);
    assert!(group.ok(), "{group:?}");
    let group = group.stdout.trim().to_owned();
    let r = alice.run(&["group", "invite", &group, "bob", "--admin"]);
    assert!(r.ok(), "{r:?}");
    wait_for("bob's invitation", Duration::from_secs(40), || {
        bob.run(&["group", "join", &group]).ok().then_some(())
    });
    wait_for("bob to be an admin", Duration::from_secs(30), || {
        let v = bob.json(&["group", "members", &group, "--json"]);
        (v["group"]["you"] == "admin").then_some(())
    });
    let r = bob.run(&["group", "invite", &group, "carol"]);
    assert!(r.ok(), "{r:?}");
    wait_for("carol's invitation", Duration::from_secs(40), || {
        carol.run(&["group", "join", &group]).ok().then_some(())
    });
    for user in [&alice, &bob, &carol] {
        // A member's session goes to those it knows joined.
        wait_for(
            &format!("{} to see three members", user.name),
            Duration::from_secs(40),
            || {
                let v = user.json(&["group", "members", &group, "--json"]);
                (v["group"]["members"] == 3).then_some(())
            },
        );
    }
    for user in [&alice, &bob, &carol] {
        let text = format!("before the link, {}", user.name);
        let r = user.run(&["group", "send", &group, &text, "--json"]);
        assert!(r.ok(), "{r:?}");
    }
    for user in [&alice, &bob, &carol] {
        for from in ["alice", "bob", "carol"] {
            wait_group_text(user, &group, &format!("before the link, {from}"));
        }
    }
    (alice, bob, carol, group)
}

fn wait_group_text(user: &User, group: &str, text: &str) {
    wait_for(
        &format!("{} to read {text:?}", user.name),
        Duration::from_secs(60),
        || {
            user.group_history(group)
                .iter()
                .any(|(_, t)| t == text)
                .then_some(())
        },
    );
}

#[test]
fn a_linked_device_reads_and_writes_in_the_groups_of_the_account() {
    let (alice, bob, carol, group) = group_of_three();
    let laptop = linked_laptop(&alice);
    wait_for(
        "the laptop to hold the group",
        Duration::from_secs(30),
        || {
            laptop
                .run(&["group", "members", &group, "--json"])
                .ok()
                .then_some(())
        },
    );
    // The history from before the link came with it.
    let history: Vec<String> = laptop
        .group_history(&group)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    for from in ["alice", "bob", "carol"] {
        let text = format!("before the link, {from}");
        assert!(history.contains(&text), "{text:?} not in {history:?}");
    }
    // Everyone, alice's contact or not, learns the laptop from the group
    // itself, and takes its messages.
    wait_for(
        "the laptop to be a device of alice in the group",
        Duration::from_secs(60),
        || {
            let r = laptop.run(&["group", "send", &group, "from the laptop", "--json"]);
            r.ok().then_some(())
        },
    );
    for user in [&alice, &bob, &carol] {
        wait_group_text(user, &group, "from the laptop");
    }
    // And what any member writes now reaches the laptop.
    for user in [&bob, &carol, &alice] {
        let text = format!("after the link, {}", user.name);
        let r = user.run(&["group", "send", &group, &text, "--json"]);
        assert!(r.ok(), "{r:?}");
        wait_group_text(&laptop, &group, &text);
    }
}

#[test]
fn a_revoked_device_reads_no_group_message_sent_after() {
    let (alice, bob, carol, group) = group_of_three();
    let laptop = linked_laptop(&alice);
    bob_knows_two_devices(&bob);
    for user in [&bob, &carol] {
        let text = format!("while linked, {}", user.name);
        wait_for(
            &format!("{} to send to the laptop too", user.name),
            Duration::from_secs(60),
            || {
                // Until the group lists the laptop, a member's session is
                // not sent to it: send again until it reads one.
                let r = user.run(&["group", "send", &group, &text]);
                assert!(r.ok(), "{r:?}");
                std::thread::sleep(Duration::from_secs(1));
                laptop
                    .group_history(&group)
                    .iter()
                    .any(|(_, t)| *t == text)
                    .then_some(())
            },
        );
    }

    alice.json(&["device", "revoke", "laptop", "--json"]);
    wait_for("bob to drop the laptop", Duration::from_secs(30), || {
        (bob.json(&["contact", "list", "--json"])[0]["devices"] == 1).then_some(())
    });
    // carol (not alice's contact) learns it from the group: everyone
    // starts new sessions the laptop never gets.
    wait_for(
        "carol to hold alice's list without the laptop",
        Duration::from_secs(30),
        || {
            let v = carol.json(&["group", "members", &group, "--json"]);
            let members = v["members"].as_array()?.clone();
            let alice = members.iter().find(|m| m["name"] == "alice")?;
            (alice["devices"].as_array()?.len() == 1).then_some(())
        },
    );
    for user in [&bob, &carol, &alice] {
        let text = format!("after, from {}", user.name);
        let r = user.run(&["group", "send", &group, &text]);
        assert!(r.ok(), "{r:?}");
    }
    for (reader, from) in [
        (&alice, "bob"),
        (&alice, "carol"),
        (&bob, "alice"),
        (&carol, "alice"),
    ] {
        wait_group_text(reader, &group, &format!("after, from {from}"));
    }
    std::thread::sleep(Duration::from_secs(2));
    let seen = laptop.group_history(&group);
    assert!(
        seen.iter().all(|(_, t)| !t.starts_with("after")),
        "the revoked laptop read {seen:?}"
    );
}

#[test]
fn after_a_removal_both_devices_rotate_to_the_same_presence_key() {
    let (mut alice, bob) = pair();
    let mut carol = User::new("carol");
    carol.start();
    hush_tests::introduce(&alice, &carol);
    let mut laptop = linked_laptop(&alice);
    bob_knows_two_devices(&bob);
    // carol is removed on the desktop while the laptop is off: the desktop
    // rotates its presence key and bob takes the new one. The laptop
    // rotates when it hears of the removal, later, and must land on the
    // same key, or bob (one key per account) could not read its records.
    laptop.stop();
    alice.json(&["contact", "remove", "carol", "--json"]);
    laptop.start();
    wait_for(
        "the laptop to forget carol",
        Duration::from_secs(60),
        || {
            let list = laptop.json(&["contact", "list", "--json"]);
            list.as_array()?
                .iter()
                .all(|c| c["name"] != "carol")
                .then_some(())
        },
    );
    alice.stop();
    bob_sees_alice_online(&bob);
}

#[test]
fn presence_sharing_settings_reach_every_device() {
    let (alice, _bob) = pair();
    let mut carol = User::new("carol");
    carol.start();
    introduce(&alice, &carol);
    let you_share = |user: &User, contact: &str| {
        user.json(&["presence", contact, "--json"])["you_share"].as_bool()
    };
    // Set before the link: handed over with the contact.
    let r = alice.run(&["contact", "set", "carol", "--share-presence", "off"]);
    assert!(r.ok(), "{r:?}");
    let laptop = linked_laptop(&alice);
    assert_eq!(you_share(&laptop, "carol"), Some(false));
    assert_eq!(you_share(&laptop, "bob"), Some(true));
    // Changed after it, on either device: synced to the other.
    let r = alice.run(&["contact", "set", "bob", "--share-presence", "off"]);
    assert!(r.ok(), "{r:?}");
    wait_for(
        "the laptop to stop sharing with bob",
        Duration::from_secs(30),
        || (you_share(&laptop, "bob") == Some(false)).then_some(()),
    );
    let r = laptop.run(&["contact", "set", "carol", "--share-presence", "on"]);
    assert!(r.ok(), "{r:?}");
    wait_for(
        "alice's desktop to share with carol again",
        Duration::from_secs(30),
        || (you_share(&alice, "carol") == Some(true)).then_some(()),
    );
}

#[test]
fn a_revoked_devices_mailbox_is_dropped_at_the_home_relay() {
    let mut relay = hush_tests::RelayProc::start("");
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    for u in [&mut alice, &mut bob] {
        u.start_with(&["--relay", relay.address.as_str()]);
    }
    introduce(&alice, &bob);
    let laptop = linked_laptop(&alice);
    bob_knows_two_devices(&bob);
    // The relay is down when alice revokes: it is asked again once it is
    // back.
    relay.stop();
    alice.json(&["device", "revoke", "laptop", "--json"]);
    relay.restart();
    wait_for(
        "the relay to drop the laptop's mailbox",
        Duration::from_secs(90),
        || (relay.metric("hush_relay_dropped_mailboxes")? == 1.0).then_some(()),
    );
    // What the laptop asks the relay for now is refused.
    wait_for(
        "the laptop's fetch to be refused",
        Duration::from_secs(60),
        || (relay.metric("hush_relay_refusals_total{reason=\"dropped\"}")? >= 1.0).then_some(()),
    );
    drop(laptop);
}

//! A contact's life after it was added, through the real binary: block,
//! unblock, remove, verify, and a verified contact whose keys change.

use std::time::Duration;

use hush_protocol::{ContactCard, DeviceId, DeviceKeys, DeviceList, MailboxSecret, OlmDevice};
use hush_tests::{Events, RelayProc, User, introduce, pair, wait_for};

fn contact(user: &User, name: &str) -> serde_json::Value {
    let list = user.json(&["contact", "list", "--json"]);
    list.as_array()
        .and_then(|l| l.iter().find(|c| c["name"] == name))
        .cloned()
        .unwrap_or_else(|| panic!("{name} is not among {}'s contacts: {list}", user.name))
}

fn texts(user: &User, with: &str) -> Vec<String> {
    user.history(with)
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn block_and_remove_end_delivery_both_ways() {
    let (alice, bob) = pair();
    let sent = alice.json(&["send", "bob", "hello", "--wait", "delivered", "--json"]);
    assert_eq!(sent["status"], "delivered");

    let blocked = alice.json(&["contact", "block", "bob", "--json"]);
    assert_eq!(blocked["blocked"], true);
    assert_eq!(contact(&alice, "bob")["blocked"], true);
    // bob's message does not get through (his node keeps it queued: he is
    // not told he is blocked).
    let run = bob.run(&[
        "send",
        "alice",
        "while blocked",
        "--wait",
        "delivered",
        "--timeout",
        "3",
    ]);
    assert_eq!(run.code, Some(3), "timed out, still queued: {run:?}");
    assert_eq!(texts(&alice, "bob"), ["hello"]);
    // alice cannot write to him.
    let run = alice.run(&["send", "bob", "x"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("you blocked \"bob\""), "{run:?}");

    // Unblocked: what bob queued arrives; nothing was lost.
    let run = alice.run(&["contact", "unblock", "bob"]);
    assert!(run.ok(), "{run:?}");
    wait_for("bob's queued message", Duration::from_secs(20), || {
        texts(&alice, "bob")
            .contains(&"while blocked".to_owned())
            .then_some(())
    });

    // Removed (with the conversation): bob is a stranger to alice.
    let removed = alice.json(&["contact", "remove", "bob", "--delete-history", "--json"]);
    assert_eq!(removed["name"], "bob");
    assert_eq!(
        alice.json(&["contact", "list", "--json"]),
        serde_json::json!([])
    );
    let run = alice.run(&["history", "bob"]);
    assert_eq!(run.code, Some(1), "no such contact: {run:?}");
    let run = alice.run(&["send", "bob", "x"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let run = bob.run(&[
        "send",
        "alice",
        "after removal",
        "--wait",
        "delivered",
        "--timeout",
        "3",
    ]);
    assert_ne!(run.code, Some(0), "refused: {run:?}");
    // Added again, the old conversation is gone and the new one works.
    let run = alice.run(&["contact", "add", "bob", &bob.card()]);
    assert!(run.ok(), "{run:?}");
    let sent = alice.json(&["send", "bob", "again", "--wait", "delivered", "--json"]);
    assert_eq!(sent["status"], "delivered");
    assert!(!texts(&alice, "bob").contains(&"hello".to_owned()));
}

/// bob's card with one more device on it, signed with his account key:
/// what a new device of his, or keys slipped in by whoever stole his
/// account key, looks like to alice.
fn card_with_another_device(bob: &User) -> String {
    let card: ContactCard = bob.card().parse().expect("bob's card");
    let account = hush_node::account_key(&hush_node::Home::new(&bob.home))
        .expect("bob's home")
        .expect("bob's key");
    let signing = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let olm = OlmDevice::new();
    let extra = DeviceKeys {
        device_id: DeviceId(signing.verifying_key().to_bytes()),
        olm_ed25519: olm.ed25519_key(),
        olm_curve25519: olm.curve25519_key(),
        mailbox_key: MailboxSecret::derive(&[7; 32]).public_key(),
    };
    let mut devices = card.device_list.devices.clone();
    let mut proofs = card.device_list.proofs.clone();
    devices.push(extra);
    proofs.push(extra.prove(&account.id(), &signing));
    let list =
        DeviceList::sign_proven(&account, card.device_list.issued_at_ms + 1, devices, proofs);
    ContactCard::sign(&account, card.name, list, card.addresses, card.relays).to_string()
}

#[test]
fn a_verified_contacts_key_change_is_flagged_until_verified_again() {
    let (alice, mut bob) = pair();
    let verified = alice.json(&["contact", "verify", "bob", "--json"]);
    assert_eq!(verified["verified"], true);
    assert_eq!(verified["keys_changed"], false);
    let list = alice.run(&["contact", "list"]);
    assert!(list.stdout.contains("(verified)"), "{list:?}");

    let events = Events::follow(&alice);
    // Live once a change of ours shows up in it.
    events.wait_for("the stream to be live", |e| {
        e["type"] == "contact_verified" || {
            let _ = alice.run(&["contact", "verify", "bob"]);
            false
        }
    });
    bob.stop();
    let card = card_with_another_device(&bob);
    let run = alice.run(&["contact", "update", "bob", &card]);
    assert!(run.ok(), "{run:?}");
    events.wait_for("a keys_changed event", |e| {
        e["type"] == "keys_changed" && e["contact"] == "bob"
    });
    let c = contact(&alice, "bob");
    assert_eq!(
        (c["verified"].clone(), c["keys_changed"].clone()),
        (true.into(), true.into())
    );
    assert_eq!(c["device_ids"].as_array().map(Vec::len), Some(2), "{c}");
    let list = alice.run(&["contact", "list"]);
    assert!(list.stdout.contains("KEYS CHANGED"), "{list:?}");
    assert_eq!(list.stdout.matches("    device ").count(), 2, "{list:?}");
    // Loud in send (text and JSON) and history.
    let run = alice.run(&["send", "bob", "are you still you?"]);
    assert!(run.ok(), "{run:?}");
    assert!(
        run.stderr.contains("WARNING: bob's keys changed"),
        "{run:?}"
    );
    let sent = alice.json(&["send", "bob", "again", "--json"]);
    assert_eq!(sent["keys_changed"], true);
    let run = alice.run(&["history", "bob"]);
    assert!(
        run.stderr.contains("WARNING: bob's keys changed"),
        "{run:?}"
    );
    // bob's own device is still on the card: what he sends arrives,
    // flagged.
    bob.start();
    let sent = bob.json(&["send", "alice", "still me", "--wait", "delivered", "--json"]);
    assert_eq!(sent["status"], "delivered");
    events.wait_for("bob's message, flagged", |e| {
        e["type"] == "message" && e["message"]["text"] == "still me" && e["keys_changed"] == true
    });

    // Compared again: verified, no flag.
    let verified = alice.json(&["contact", "verify", "bob", "--json"]);
    assert_eq!(verified["keys_changed"], false);
    let run = alice.run(&["send", "bob", "ok"]);
    assert!(!run.stderr.contains("WARNING"), "{run:?}");
    let unverified = alice.json(&["contact", "unverify", "bob", "--json"]);
    assert_eq!(unverified["verified"], false);
}

/// What the shell gets on Tab, options left out (the fish protocol of
/// `hush completions fish`: the line after `--`, one candidate per line).
fn tab(user: &User, line: &[&str]) -> Vec<String> {
    let home = user.home.to_str().expect("utf-8 home");
    let out = std::process::Command::new(hush_tests::hush_bin())
        .env("_HUSH_COMPLETE", "fish")
        .args(["--", "hush", "--home", home])
        .args(line)
        .output()
        .expect("run hush");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or_default().to_owned())
        .filter(|c| !c.starts_with('-'))
        .collect()
}

#[test]
fn tab_completes_contact_and_group_names_from_the_running_node() {
    let (alice, bob) = pair();
    let carol = User::new("carol");
    let run = alice.run(&["contact", "add", "carol", &carol.card()]);
    assert!(run.ok(), "{run:?}");
    let run = alice.run(&["group", "create", "climbing"]);
    assert!(run.ok(), "{run:?}");
    assert_eq!(tab(&alice, &["send", ""]), ["bob", "carol"]);
    assert_eq!(tab(&alice, &["contact", "block", "c"]), ["carol"]);
    assert_eq!(tab(&alice, &["group", "send", "cl"]), ["climbing"]);
    assert!(tab(&alice, &["contact", ""]).contains(&"verify".to_owned()));
    // A home whose node is not running: no names, no error.
    assert!(tab(&carol, &["send", ""]).is_empty());
    drop(bob);
}

/// A blocked (or removed) contact's deposit right no longer counts at our
/// home relay: the relay holds it as revoked, and takes it back on unblock.
#[test]
fn blocking_revokes_the_contacts_deposit_right_at_our_relay() {
    let relay = RelayProc::start("");
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    alice.start_with(&["--relay", &relay.address]);
    bob.start();
    introduce(&alice, &bob);
    let revoked = |n: f64| {
        wait_for(
            &format!("{n} revoked rights at the relay"),
            Duration::from_secs(20),
            || (relay.metric("hush_relay_revoked_holders")? == n).then_some(()),
        );
    };
    revoked(0.0);
    assert!(alice.run(&["contact", "block", "bob"]).ok());
    revoked(1.0);
    assert!(alice.run(&["contact", "unblock", "bob"]).ok());
    revoked(0.0);
    assert!(alice.run(&["contact", "block", "bob"]).ok());
    // Kept by the relay across a restart of alice's node.
    alice.stop();
    alice.start_with(&["--relay", &relay.address]);
    revoked(1.0);
    // Removed: still refused (the block goes, the right stays revoked).
    assert!(alice.run(&["contact", "remove", "bob"]).ok());
    revoked(1.0);
    // Taken back: the right counts again.
    assert!(alice.run(&["contact", "add", "bob", &bob.card()]).ok());
    revoked(0.0);
    bob.stop();
}

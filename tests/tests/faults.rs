//! Restarts, crashes, and bad input: nothing lost, nothing shown twice.

use std::time::Duration;

use hush_tests::{User, pair, wait_for};

fn texts(user: &User, with: &str) -> Vec<String> {
    user.history(with)
        .iter()
        .map(|m| m["text"].as_str().expect("text").to_owned())
        .collect()
}

#[test]
fn restart_of_both_nodes_keeps_history_and_sessions() {
    let (mut alice, mut bob) = pair();
    let a = alice.json(&[
        "send",
        "bob",
        "before restart",
        "--wait",
        "delivered",
        "--json",
    ]);
    bob.json(&[
        "send",
        "alice",
        "reply before restart",
        "--wait",
        "delivered",
        "--json",
    ]);
    alice.stop();
    bob.stop();
    alice.start();
    bob.start();

    assert_eq!(
        texts(&bob, "alice"),
        ["before restart", "reply before restart"]
    );
    assert_eq!(
        alice
            .status_of("bob", a["id"].as_str().expect("id"))
            .as_deref(),
        Some("delivered")
    );

    let after = alice.json(&[
        "send",
        "bob",
        "after restart",
        "--wait",
        "delivered",
        "--json",
    ]);
    assert_eq!(after["status"], "delivered");
    let back = bob.json(&[
        "send",
        "alice",
        "welcome back",
        "--wait",
        "delivered",
        "--json",
    ]);
    assert_eq!(back["status"], "delivered");
    assert_eq!(
        texts(&alice, "bob"),
        [
            "before restart",
            "reply before restart",
            "after restart",
            "welcome back"
        ]
    );
    // The Olm sessions came back from disk: nobody had to start a new one.
    for user in [&alice, &bob] {
        assert!(
            !user.node_log().contains("starting a new one"),
            "{} lost its session: {}",
            user.name,
            user.node_log()
        );
    }
}

#[test]
fn sender_killed_right_after_send_still_delivers_exactly_once() {
    let (mut alice, mut bob) = pair();
    alice.json(&["send", "bob", "warm-up", "--wait", "delivered", "--json"]);

    // Bob offline: the message can only be in alice's outbox when she dies.
    bob.stop();
    let offline = alice.json(&["send", "bob", "while you were away", "--json"]);
    assert_eq!(offline["status"], "pending");
    alice.kill9();

    // Bob online: kill alice right after `send` returns, mid-delivery.
    bob.start();
    alice.start();
    let mut ids = vec![offline["id"].as_str().expect("id").to_owned()];
    for i in 0..5 {
        let sent = alice.json(&["send", "bob", &format!("burst {i}"), "--json"]);
        ids.push(sent["id"].as_str().expect("id").to_owned());
    }
    alice.kill9();
    alice.start();

    for id in &ids {
        alice.wait_status("bob", id, "delivered");
    }
    let got = texts(&bob, "alice");
    let mut expected = vec!["warm-up".to_owned(), "while you were away".to_owned()];
    expected.extend((0..5).map(|i| format!("burst {i}")));
    assert_eq!(got, expected, "every message exactly once, in order");
    assert_eq!(alice.json(&["status", "--json"])["outbox"], 0);
}

#[test]
fn receiver_killed_mid_stream_loses_nothing() {
    let (alice, mut bob) = pair();
    alice.json(&["send", "bob", "warm-up", "--wait", "delivered", "--json"]);
    let mut ids = Vec::new();
    for i in 0..20 {
        let sent = alice.json(&["send", "bob", &format!("m{i}"), "--json"]);
        ids.push(sent["id"].as_str().expect("id").to_owned());
        if i == 10 {
            bob.kill9();
        }
    }
    bob.start();
    for id in &ids {
        alice.wait_status("bob", id, "delivered");
    }
    let got = texts(&bob, "alice");
    assert_eq!(got.len(), 21, "{got:?}");
    let mut sorted = got.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 21, "no duplicates: {got:?}");
}

fn assert_fails(run: &hush_tests::Run, needle: &str) {
    assert!(!run.ok(), "expected failure: {run:?}");
    assert!(
        run.stderr.to_lowercase().contains(&needle.to_lowercase()),
        "stderr should mention {needle:?}: {run:?}"
    );
}

#[test]
fn bad_input_fails_clearly_and_loses_nothing() {
    let (alice, bob) = pair();
    alice.json(&["send", "bob", "kept", "--wait", "delivered", "--json"]);
    let bob_card = bob.card();
    let alice_card = alice.card();

    assert_fails(
        &alice.run(&["send", "carol", "hi"]),
        "no contact named \"carol\"",
    );
    assert_fails(&alice.run(&["history", "carol"]), "contact list");
    assert_fails(&alice.run(&["read", "carol"]), "no contact named");
    assert_fails(
        &alice.run(&["contact", "add", "bob", &bob_card]),
        "already exists",
    );
    assert_fails(
        &alice.run(&["contact", "add", "bobby", &bob_card]),
        "already a contact",
    );
    assert_fails(
        &alice.run(&["contact", "add", "me", &alice_card]),
        "your own",
    );
    assert_fails(&alice.run(&["contact", "add", "x", "not a card"]), "hush1");
    // One character changed: the checksum catches it.
    let mut typo: Vec<char> = bob_card.chars().collect();
    let i = typo.len() / 2;
    typo[i] = if typo[i] == 'z' { 'y' } else { 'z' };
    let typo: String = typo.into_iter().collect();
    assert_fails(&alice.run(&["contact", "add", "x", &typo]), "checksum");
    assert_fails(
        &alice.run(&["contact", "add", "x", &bob_card[..bob_card.len() - 10]]),
        "checksum",
    );
    let long = "x".repeat(16 * 1024 + 1);
    assert_fails(&alice.run(&["send", "bob", &long]), "over the limit");
    assert_fails(&alice.run(&["send", "bob", ""]), "empty");
    assert_fails(&alice.run(&["init", "--name", "again"]), "already");

    let stopped = User::new("carol");
    assert_fails(&stopped.run(&["send", "bob", "hi"]), "node run");
    let run = stopped.run(&["contact", "list"]);
    assert_fails(&run, "not running");
    assert_eq!(run.code, Some(4), "exit code 4: the node is not running");
    assert_fails(
        &stopped.run(&["init", "--name", "carol"]),
        "already holds a hush identity",
    );
    assert_fails(
        &stopped.run(&["node", "run", "--listen", "not-a-multiaddr"]),
        "invalid listen address",
    );
    let run = stopped.run(&["node", "run", "--listen", "/ip4/127.0.0.1/udp/1/nonsense"]);
    assert!(!run.ok(), "{run:?}");
    let fresh = tempfile::tempdir().expect("temp dir");
    let run = std::process::Command::new(hush_tests::hush_bin())
        .arg("--home")
        .arg(fresh.path().join("nobody"))
        .args(["node", "run"])
        .output()
        .expect("run hush");
    assert!(!run.status.success());
    assert!(String::from_utf8_lossy(&run.stderr).contains("init --name"));

    // Nothing was lost, and the node still works.
    assert_eq!(texts(&bob, "alice"), ["kept"]);
    assert_eq!(
        alice
            .json(&["contact", "list", "--json"])
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    alice.json(&["send", "bob", "still fine", "--wait", "delivered", "--json"]);
    wait_for("bob to get it", Duration::from_secs(20), || {
        (texts(&bob, "alice").len() == 2).then_some(())
    });
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("create copy dir");
    for entry in std::fs::read_dir(from).expect("read home") {
        let entry = entry.expect("dir entry");
        let name = entry.file_name();
        if name == "hush.sock" {
            continue;
        }
        std::fs::copy(entry.path(), to.join(&name)).expect("copy file");
    }
}

#[test]
fn replayed_envelope_is_recognised_and_not_shown_twice() {
    let (mut alice, mut bob) = pair();
    alice.json(&["send", "bob", "warm-up", "--wait", "delivered", "--json"]);

    // An envelope waits in alice's outbox for offline bob; snapshot her home.
    bob.stop();
    let sent = alice.json(&["send", "bob", "say it once", "--json"]);
    let id = sent["id"].as_str().expect("id").to_owned();
    alice.stop();
    let snapshot = tempfile::tempdir().expect("temp dir");
    copy_dir(&alice.home, snapshot.path());

    // Delivered normally.
    bob.start();
    alice.start();
    alice.wait_status("bob", &id, "delivered");
    assert_eq!(texts(&bob, "alice"), ["warm-up", "say it once"]);

    // Alice's stale copy sends the very same envelope bytes again: bob
    // recognises them (no decryption, no second copy) and acks them as stored.
    alice.stop();
    std::fs::remove_dir_all(&alice.home).expect("remove home");
    copy_dir(snapshot.path(), &alice.home);
    alice.start();
    // The snapshot holds the entry as pending: it can only become delivered
    // (with the outbox empty) through bob's ack of the replayed bytes.
    alice.wait_status("bob", &id, "delivered");
    assert_eq!(alice.json(&["status", "--json"])["outbox"], 0);
    assert_eq!(texts(&bob, "alice"), ["warm-up", "say it once"]);
    assert!(
        !bob.node_log().contains("starting a new one")
            && !alice.node_log().contains("starting a new one"),
        "a replay must not break the session"
    );
    // And the session still works both ways.
    bob.json(&[
        "send",
        "alice",
        "heard you once",
        "--wait",
        "delivered",
        "--json",
    ]);
    alice.json(&["send", "bob", "good", "--wait", "delivered", "--json"]);
}

#[test]
fn a_clean_stop_leaves_everything_in_hush_redb_alone() {
    let (alice, mut bob) = pair();
    for i in 0..3 {
        alice.json(&[
            "send",
            "bob",
            &format!("m{i}"),
            "--wait",
            "delivered",
            "--json",
        ]);
    }
    bob.stop();
    // A backup of hush.redb alone, restored: the write-ahead log is gone.
    std::fs::remove_file(bob.home.join("hush.wal")).expect("remove hush.wal");
    bob.start();
    assert_eq!(texts(&bob, "alice"), ["m0", "m1", "m2"]);
    // The Olm sessions came back too: the conversation goes on.
    alice.json(&["send", "bob", "m3", "--wait", "delivered", "--json"]);
    bob.json(&["send", "alice", "back", "--wait", "delivered", "--json"]);
    assert_eq!(texts(&bob, "alice"), ["m0", "m1", "m2", "m3", "back"]);
}

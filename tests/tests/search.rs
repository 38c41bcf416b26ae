//! Search, export and upgrades of the local store (issue 17), through the
//! CLI of real node processes.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use hush_tests::{User, pair, wait_for};
use serde_json::Value;

fn hits(user: &User, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["search"];
    all.extend_from_slice(args);
    all.push("--json");
    user.json(&all).as_array().cloned().unwrap_or_default()
}

fn texts(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| h["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn search_finds_both_sides_filters_and_marks_and_export_keeps_everything() {
    let (alice, bob) = pair();
    let sent = [
        (&alice, "Lunch at the lighthouse on Friday?"),
        (&bob, "Grüße aus Köln, café crème"),
        (&alice, "see you at the lighthouse at noon"),
    ];
    for (from, text) in sent {
        let to = if from.name == "alice" { "bob" } else { "alice" };
        let run = from.run(&["send", to, text, "--wait", "delivered"]);
        assert!(run.ok(), "{run:?}");
    }
    wait_for(
        "alice to have bob's message",
        Duration::from_secs(30),
        || (alice.history("bob").len() == 3).then_some(()),
    );

    let found = hits(&alice, &["lighthouse"]);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found
            .iter()
            .all(|h| h["conversation"] == "bob" && h["kind"] == "contact")
    );
    // Accents and case fold both ways.
    assert_eq!(
        texts(&hits(&alice, &["CAFE", "koln"])),
        ["Grüße aus Köln, café crème"]
    );
    assert_eq!(hits(&alice, &["cafe"])[0]["from"], "bob");
    assert_eq!(
        texts(&hits(&alice, &["\"see you\""])),
        ["see you at the lighthouse at noon"]
    );
    assert!(hits(&alice, &["\"you see\""]).is_empty());
    assert_eq!(hits(&alice, &["lightho*", "--contact", "bob"]).len(), 2);
    assert!(hits(&alice, &["lighthouse", "--from", "bob"]).is_empty());
    assert_eq!(hits(&alice, &["lighthouse", "--from", "me"]).len(), 2);
    assert!(hits(&alice, &["lighthouse", "--until", "2000-01-01"]).is_empty());
    assert_eq!(
        hits(&alice, &["lighthouse", "--since", "2000-01-01"]).len(),
        2
    );
    // Pages do not overlap.
    let first = hits(&alice, &["lighthouse", "--limit", "1"]);
    let second = hits(&alice, &["lighthouse", "--limit", "1", "--offset", "1"]);
    assert_ne!(first[0]["id"], second[0]["id"]);
    // The match is marked in the snippet.
    let h = &hits(&alice, &["friday"])[0];
    let (start, end) = (
        h["marks"][0][0].as_u64().unwrap(),
        h["marks"][0][1].as_u64().unwrap(),
    );
    assert_eq!(
        &h["snippet"].as_str().unwrap()[start as usize..end as usize],
        "Friday"
    );
    let run = alice.run(&["search", "friday"]);
    assert!(run.ok() && run.stdout.contains("[Friday]"), "{run:?}");

    // Bad searches fail clearly.
    let run = alice.run(&["search", "*"]);
    assert!(!run.ok() && run.stderr.contains("prefix"), "{run:?}");
    let run = alice.run(&["search", "x", "--contact", "carol"]);
    assert!(!run.ok() && run.stderr.contains("carol"), "{run:?}");
    let run = alice.run(&["search", "x", "--since", "tomorrow"]);
    assert!(!run.ok() && run.stderr.contains("YYYY-MM-DD"), "{run:?}");

    // Export: every message, as JSON, with a warning that it is plaintext.
    let run = alice.run(&["export", "--json"]);
    assert!(run.ok() && run.stderr.contains("plaintext"), "{run:?}");
    let export: Value = serde_json::from_str(&run.stdout).expect("export is JSON");
    assert_eq!(export["name"], "alice");
    let conversation = &export["conversations"][0];
    assert_eq!(conversation["kind"], "contact");
    assert_eq!(conversation["name"], "bob");
    let exported: Vec<&str> = conversation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(exported, sent.map(|s| s.1), "oldest first");
    let run = alice.run(&["export", "--contact", "carol", "--json"]);
    assert!(!run.ok() && run.stderr.contains("carol"), "{run:?}");
}

/// The index is written in the transaction that stores each message: a
/// node killed again and again while a burst arrives finds every message
/// it holds, once, and nothing it does not hold.
#[test]
fn index_matches_the_messages_after_kill9_during_a_burst() {
    let (alice, mut bob) = pair();
    let mut ids = Vec::new();
    for i in 0..120 {
        let sent = alice.json(&[
            "send",
            "bob",
            &format!("burst item{i} of the storm"),
            "--json",
        ]);
        ids.push(sent["id"].as_str().expect("id").to_owned());
        if i % 40 == 20 {
            bob.kill9();
            bob.start();
        }
    }
    for id in &ids {
        alice.wait_status("bob", id, "delivered");
    }
    bob.kill9();
    bob.start();
    let history: Vec<String> = bob
        .json(&["history", "alice", "--limit", "1000", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(history.len(), 120);
    let found = hits(&bob, &["storm", "--limit", "200"]);
    let found_ids: HashSet<&str> = found.iter().map(|h| h["id"].as_str().unwrap()).collect();
    assert_eq!(found.len(), 120, "each message found once");
    assert_eq!(found_ids, history.iter().map(String::as_str).collect());
    for i in [0, 21, 61, 119] {
        let one = hits(&bob, &[&format!("item{i}")]);
        assert_eq!(texts(&one), [format!("burst item{i} of the storm")]);
    }
}

fn copy_home(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("home folder");
    for entry in std::fs::read_dir(from).expect("fixture home") {
        let entry = entry.expect("fixture file");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy fixture file");
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).expect("chmod home");
}

fn fixture_user(name: &str, port: u16) -> User {
    let mut user = User::empty(name);
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/home-b3d99db");
    copy_home(&fixture.join(name), &user.home);
    // The ports the fixture's cards name.
    user.port = port;
    user
}

/// Homes made by hush at b3d99db (the start of issue 17; plaintext, no
/// format version, no index) open sealed, searchable, with their history,
/// contacts, Olm sessions and group.
#[test]
fn homes_from_before_the_store_issue_open_migrated_with_history_and_sessions() {
    let mut alice = fixture_user("alice", 47301);
    let mut bob = fixture_user("bob", 47302);
    alice.start();
    bob.start();

    let history = alice.history("bob");
    assert_eq!(history.len(), 8, "{history:?}");
    assert!(
        history
            .iter()
            .any(|m| m["text"] == "the fixture remembers the lighthouse")
    );
    assert_eq!(
        texts(&hits(&alice, &["lighthouse"])),
        ["the fixture remembers the lighthouse"]
    );
    assert_eq!(
        texts(&hits(&bob, &["koln"])),
        ["Grüße aus Köln, café crème"]
    );
    assert_eq!(texts(&hits(&bob, &["日本語"])), ["日本語のメッセージ"]);
    assert_eq!(alice.json(&["status", "--json"])["at_rest"], "key file");
    // The old sessions still carry messages both ways.
    for (from, to, text) in [
        (&alice, "bob", "after the upgrade"),
        (&bob, "alice", "still here"),
    ] {
        let run = from.run(&["send", to, text, "--wait", "delivered", "--timeout", "60"]);
        assert!(run.ok(), "{run:?}");
    }
    assert!(
        bob.history("alice")
            .iter()
            .any(|m| m["text"] == "after the upgrade")
    );
    let group = bob.group_history("fixture-club");
    assert!(
        group
            .iter()
            .any(|(_, text)| text == "group hello from the fixture"),
        "{group:?}"
    );
    let run = alice.run(&[
        "group",
        "send",
        "fixture-club",
        "the group survived",
        "--wait",
        "delivered",
    ]);
    assert!(run.ok(), "{run:?}");
    let found = hits(&bob, &["survived", "--group", "fixture-club"]);
    assert_eq!(texts(&found), ["the group survived"]);
    assert_eq!(found[0]["kind"], "group");
    assert_eq!(found[0]["conversation"], "fixture-club");
    assert_eq!(found[0]["from"], "alice");
    assert!(hits(&bob, &["survived", "--contact", "alice"]).is_empty());

    // Nothing of the history is left in the clear.
    alice.stop();
    bob.stop();
    for home in [&alice.home, &bob.home] {
        for entry in std::fs::read_dir(home).unwrap().filter_map(Result::ok) {
            if entry.file_name() == "node.log" || !entry.path().is_file() {
                continue;
            }
            let bytes = std::fs::read(entry.path()).unwrap();
            for needle in ["lighthouse", "fixture-club", "alice"] {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{needle:?} in the clear in {}",
                    entry.path().display()
                );
            }
        }
    }
}

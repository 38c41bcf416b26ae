//! Disappearing messages (issue 18, item 5) between real nodes: the timer
//! one side sets reaches the other inside the encrypted messages, and once
//! it runs out the message is gone from both sides' history, search and
//! files. (Relays dropping such mail: `relays.rs`; groups: `groups.rs`.)

use std::time::Duration;

use hush_tests::{User, pair, wait_for};
use serde_json::Value;

/// The entries of `user`'s conversation with `with` whose text is `text`.
fn entries(user: &User, with: &str, text: &str) -> Vec<Value> {
    user.history(with)
        .into_iter()
        .filter(|m| m["text"] == text)
        .collect()
}

fn search(user: &User, words: &str) -> Vec<Value> {
    user.json(&["search", words, "--json"])
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn timer_entries(user: &User, with: &str) -> Vec<Value> {
    user.history(with)
        .into_iter()
        .filter(|m| m["kind"] == "timer")
        .collect()
}

#[test]
fn a_disappearing_message_vanishes_from_both_sides_history_search_and_files() {
    let (alice, bob) = pair();
    let set = alice.run(&["contact", "set", "bob", "--disappear", "6s"]);
    assert!(set.ok(), "{set:?}");
    assert!(set.stdout.contains("6 seconds"), "{set:?}");
    // Bob's side takes the timer and both conversations show the change.
    wait_for("bob to take alice's timer", Duration::from_secs(30), || {
        let list = bob.json(&["contact", "list", "--json"]);
        (list[0]["disappear_secs"] == 6).then_some(())
    });
    for (user, with) in [(&alice, "bob"), (&bob, "alice")] {
        let changes = timer_entries(user, with);
        assert_eq!(changes.len(), 1, "{}: {changes:?}", user.name);
        assert_eq!(changes[0]["timer_secs"], 6);
        assert_eq!(changes[0]["from"], "alice");
    }
    let shown = bob.run(&["history", "alice"]);
    assert!(
        shown
            .stdout
            .contains("set disappearing messages to 6 seconds"),
        "{shown:?}"
    );

    let text = "the lighthouse key is under the mat";
    let run = alice.run(&["send", "bob", text, "--wait", "delivered"]);
    assert!(run.ok(), "{run:?}");
    // Bob's reply carries the timer too (his side has it now).
    let reply = "understood, lighthouse";
    let run = bob.run(&["send", "alice", reply, "--wait", "delivered"]);
    assert!(run.ok(), "{run:?}");
    // A file, fetched by bob's node into his files folder.
    let dir = tempfile::tempdir().expect("temp dir");
    let note = dir.path().join("note.txt");
    std::fs::write(&note, b"a file that goes with the timer").expect("write");
    let sent = alice.json(&[
        "send",
        "bob",
        "--file",
        note.to_str().expect("utf-8"),
        "--wait",
        "delivered",
        "--json",
    ]);
    let file_id = sent["id"].as_str().expect("id").to_owned();
    let saved = wait_for(
        "bob's node to fetch the file",
        Duration::from_secs(30),
        || {
            let files = bob.json(&["file", "list", "--json"]);
            let file = files
                .as_array()?
                .iter()
                .find(|f| f["id"] == file_id)?
                .clone();
            (file["state"] == "complete").then(|| file["path"].as_str().map(str::to_owned))?
        },
    );
    assert!(std::path::Path::new(&saved).exists());
    for (user, with) in [(&alice, "bob"), (&bob, "alice")] {
        for t in [text, reply] {
            let found = entries(user, with, t);
            assert_eq!(found.len(), 1, "{} has {t:?}: {found:?}", user.name);
            assert_eq!(found[0]["timer_secs"], 6, "{found:?}");
            assert!(found[0]["disappears_at"].is_string(), "{found:?}");
        }
        assert_eq!(search(user, "lighthouse").len(), 2, "{}", user.name);
    }

    // The timer runs out: everything of them goes on both sides.
    for (user, with) in [(&alice, "bob"), (&bob, "alice")] {
        wait_for(
            &format!("the messages to disappear on {}'s side", user.name),
            Duration::from_secs(40),
            || {
                let left = user
                    .history(with)
                    .into_iter()
                    .filter(|m| m["kind"] == "message")
                    .count();
                (left == 0).then_some(())
            },
        );
        assert!(search(user, "lighthouse").is_empty(), "{}", user.name);
        // The change of the timer stays, as in Signal.
        assert_eq!(timer_entries(user, with).len(), 1);
    }
    let files = bob.json(&["file", "list", "--json"]);
    assert!(
        files
            .as_array()
            .is_none_or(|f| f.iter().all(|f| f["id"] != file_id)),
        "{files}"
    );
    assert!(
        !std::path::Path::new(&saved).exists(),
        "bob's node deleted the file it saved"
    );
    assert!(note.exists(), "alice's own file stays where she keeps it");

    // Off again: what follows stays.
    let off = bob.run(&["contact", "set", "alice", "--disappear", "off"]);
    assert!(off.ok(), "{off:?}");
    let run = bob.run(&["send", "alice", "this one stays", "--wait", "delivered"]);
    assert!(run.ok(), "{run:?}");
    let kept = entries(&alice, "bob", "this one stays");
    assert_eq!(kept.len(), 1);
    assert!(kept[0]["timer_secs"].is_null(), "{kept:?}");
}

#[test]
fn a_timer_that_is_not_a_duration_is_refused_with_what_to_give() {
    let (alice, _bob) = pair();
    for bad in ["0s", "soon", "53w"] {
        let run = alice.run(&["contact", "set", "bob", "--disappear", bad]);
        assert!(!run.ok(), "{bad}: {run:?}");
        assert!(
            run.stderr.contains("30s") || run.stderr.contains("year"),
            "{bad}: {run:?}"
        );
    }
    let run = alice.run(&["contact", "set", "nobody", "--disappear", "1h"]);
    assert!(!run.ok());
    assert!(run.stderr.contains("no contact named"), "{run:?}");
}

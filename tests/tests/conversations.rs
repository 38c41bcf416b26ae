//! What a chat client needs of the API (issue 21, item 2): the
//! conversation list with unread counts and the newest message, and
//! history pages forward from a message (`--after`).

use std::time::Duration;

use hush_tests::{User, introduce, wait_for};

fn send(from: &User, to: &str, text: &str) -> String {
    let receipt = from.json(&[
        "send",
        to,
        text,
        "--wait",
        "delivered",
        "--timeout",
        "30",
        "--json",
    ]);
    assert_eq!(receipt["status"], "delivered", "{receipt}");
    receipt["id"].as_str().expect("an id").to_owned()
}

#[test]
fn conversations_list_unread_counts_and_the_newest_message_most_recent_first() {
    let (mut alice, mut bob, mut carol) =
        (User::new("alice"), User::new("bob"), User::new("carol"));
    alice.start();
    bob.start();
    carol.start();
    introduce(&alice, &bob);
    introduce(&alice, &carol);
    assert!(alice.run(&["group", "create", "climbing"]).ok());
    let first = send(&bob, "alice", "one");
    let second = send(&bob, "alice", "two");
    send(&carol, "alice", "hello from carol");
    let list = wait_for("three conversations", Duration::from_secs(10), || {
        let list = alice.json(&["conversations", "--json"]);
        (list.as_array()?.len() == 3).then_some(list)
    });
    let names: Vec<&str> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(names, ["carol", "bob", "climbing"], "{list}");
    assert_eq!(list[0]["unread"], 1);
    assert_eq!(list[0]["last"]["text"], "hello from carol");
    assert_eq!(list[1]["unread"], 2);
    assert_eq!(list[1]["last"]["id"], second.as_str());
    assert_eq!(list[2]["kind"], "group");
    assert!(list[2]["last"].is_null(), "{list}");
    // Read, the count goes; muted, the list says so.
    alice.json(&["read", "bob", "--json"]);
    alice.run(&["contact", "set", "bob", "--mute", "on"]);
    let list = alice.json(&["conversations", "--json"]);
    assert_eq!(list[1]["unread"], 0, "{list}");
    assert_eq!(list[1]["muted"], true, "{list}");
    // A client that saw the first message catches up from it.
    let after = alice.json(&["history", "bob", "--after", &first, "--json"]);
    let ids: Vec<&str> = after
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| m["id"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(ids, [second.as_str()]);
    let both = alice.run(&["history", "bob", "--after", &first, "--before", &second]);
    assert!(!both.ok(), "--before and --after together are refused");
}

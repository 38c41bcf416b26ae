//! What a chat client needs of the API (issue 21, item 2): the
//! conversation list with unread counts and the newest message, and
//! history pages forward from a message (`--after`).

use std::time::Duration;

use hush_tests::{User, introduce, wait_for};

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
    let first = bob.send_delivered("alice", "one");
    let second = bob.send_delivered("alice", "two");
    carol.send_delivered("alice", "hello from carol");
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

/// The `text` of the message events among `events`, in order.
fn texts(events: &[serde_json::Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "message")
        .map(|e| e["message"]["text"].as_str().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn a_client_that_was_away_resumes_its_events_from_its_cursor_and_misses_nothing() {
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    alice.start();
    bob.start();
    introduce(&alice, &bob);
    // A client sees a message, with its cursor, then goes away. (It
    // subscribes with a cursor of no run: the node replays all it keeps,
    // after a gap event, so the probe is there however late it starts.)
    bob.send_delivered("alice", "probe");
    let probe = hush_tests::Events::follow_after(&alice, "0-0");
    let mut probe_cursor = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while probe_cursor.is_empty() && std::time::Instant::now() < deadline {
        if let Some(e) = probe.next(Duration::from_millis(500))
            && e["type"] == "message"
            && e["message"]["text"] == "probe"
        {
            probe_cursor = e["cursor"].as_str().expect("a cursor").to_owned();
        }
    }
    assert!(
        !probe_cursor.is_empty(),
        "the probe's event came with its cursor"
    );
    drop(probe);
    // Away: two messages arrive with nobody listening.
    bob.send_delivered("alice", "while away 1");
    bob.send_delivered("alice", "while away 2");
    let back = hush_tests::Events::follow_after(&alice, &probe_cursor);
    let mut events = Vec::new();
    while texts(&events).len() < 2 {
        let event = back
            .next(Duration::from_secs(30))
            .expect("the missed events");
        events.push(event);
    }
    assert_eq!(
        texts(&events),
        ["while away 1", "while away 2"],
        "{events:?}"
    );
    assert!(!events.iter().any(|e| e["type"] == "gap"), "{events:?}");
    // A cursor of another run says events may be lost.
    let stale = hush_tests::Events::follow_after(&alice, "1-1");
    let event = stale.next(Duration::from_secs(30)).expect("an event");
    assert_eq!(event["type"], "gap", "{event}");
}

#[test]
fn events_and_answers_share_one_connection() {
    use std::io::{BufRead, BufReader, Write};
    let mut alice = User::new("alice");
    alice.start();
    let socket = alice.home.join("hush.sock");
    let mut stream = std::os::unix::net::UnixStream::connect(&socket).expect("the API socket");
    let mut lines = BufReader::new(stream.try_clone().expect("a second handle")).lines();
    writeln!(
        stream,
        r#"{{"jsonrpc":"2.0","id":1,"method":"events.subscribe"}}"#
    )
    .expect("write");
    let answer: serde_json::Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("JSON");
    assert_eq!(answer["result"]["subscribed"], true, "{answer}");
    // Still a request connection: a status request is answered on it.
    writeln!(stream, r#"{{"jsonrpc":"2.0","id":2,"method":"status"}}"#).expect("write");
    let status = loop {
        let line = lines.next().expect("a line").expect("read");
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        if value["id"] == 2 {
            break value;
        }
    };
    assert_eq!(status["result"]["name"], "alice", "{status}");
    writeln!(
        stream,
        r#"{{"jsonrpc":"2.0","id":3,"method":"events.subscribe"}}"#
    )
    .expect("write");
    let twice = loop {
        let line = lines.next().expect("a line").expect("read");
        let value: serde_json::Value = serde_json::from_str(&line).expect("JSON");
        if value["id"] == 3 {
            break value;
        }
    };
    assert!(
        twice["error"].is_object(),
        "one subscription per connection: {twice}"
    );
}

//! The user flow from the README, through the real binary, two processes.

use hush_tests::{User, pair};

#[test]
fn two_users_chat_with_receipts() {
    let (alice, bob) = pair();

    let sent = alice.json(&["send", "bob", "hello", "--wait", "delivered", "--json"]);
    let id = sent["id"].as_str().expect("id").to_owned();
    assert_eq!(sent["status"], "delivered");
    assert_eq!(id.len(), 32);

    let history = bob.history("alice");
    assert_eq!(history.len(), 1);
    let m = &history[0];
    assert_eq!(m["id"], id.as_str());
    assert_eq!(m["from"], "alice");
    assert_eq!(m["text"], "hello");
    assert_eq!(m["status"], "delivered");
    assert!(m["sent_at"].as_str().is_some_and(|s| s.ends_with('Z')));

    // The plain-text form prints the id and status too.
    let run = alice.run(&["send", "bob", "second", "--wait", "delivered"]);
    assert!(run.ok(), "{run:?}");
    assert!(run.stdout.trim().ends_with(" delivered"), "{run:?}");

    let run = bob.run(&["read", "alice"]);
    assert!(run.ok(), "{run:?}");
    assert!(run.stdout.contains("Marked 2"), "{run:?}");
    alice.wait_status("bob", &id, "read");
    assert!(bob.history("alice").iter().all(|m| m["status"] == "read"));

    // A reply: sorts after what it answers, in both histories.
    let reply = bob.json(&["send", "alice", "hi alice", "--wait", "delivered", "--json"]);
    let reply_id = reply["id"].as_str().expect("id");
    assert!(reply_id > id.as_str());
    let alice_view = alice.history("bob");
    assert_eq!(alice_view.len(), 3);
    assert_eq!(alice_view[2]["text"], "hi alice");
    assert_eq!(alice_view[2]["from"], "bob");
    assert_eq!(alice_view[0]["from"], "alice");

    // `--wait read` waits for the read receipt.
    let waiting = std::thread::scope(|s| {
        let h = s.spawn(|| alice.run(&["send", "bob", "read me", "--wait", "read", "--json"]));
        alice_wait_until_delivered_then_bob_reads(&alice, &bob);
        h.join().expect("send thread")
    });
    assert!(waiting.ok(), "{waiting:?}");
    assert_eq!(waiting.json()["status"], "read");

    let contacts = alice.json(&["contact", "list", "--json"]);
    let bob_contacts = bob.json(&["contact", "list", "--json"]);
    assert_eq!(contacts[0]["name"], "bob");
    assert_eq!(
        contacts[0]["safety_number"],
        bob_contacts[0]["safety_number"]
    );

    let status = alice.json(&["status", "--json"]);
    assert_eq!(status["outbox"], 0);
    assert_eq!(status["contacts"], 1);

    // Keys and messages are readable by the user only.
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&alice.home), 0o700);
    assert_eq!(mode(&alice.home.join("hush.redb")), 0o600);
    assert_eq!(mode(&alice.home.join("hush.wal")), 0o600);
    assert_eq!(mode(&alice.home.join("hush.sock")), 0o600);
}

fn alice_wait_until_delivered_then_bob_reads(alice: &User, bob: &User) {
    hush_tests::wait_for(
        "the message to reach bob",
        std::time::Duration::from_secs(30),
        || {
            bob.history("alice")
                .iter()
                .any(|m| m["text"] == "read me")
                .then_some(())
        },
    );
    let _ = alice;
    let run = bob.run(&["read", "alice"]);
    assert!(run.ok(), "{run:?}");
}

#[test]
fn history_pages_back_with_before() {
    let (alice, bob) = pair();
    let mut ids = Vec::new();
    for i in 0..7 {
        let sent = alice.json(&["send", "bob", &format!("message {i}"), "--json"]);
        ids.push(sent["id"].as_str().expect("id").to_owned());
    }
    let last = ids.last().expect("ids").clone();
    alice.wait_status("bob", &last, "delivered");
    hush_tests::wait_for(
        "bob to have all 7",
        std::time::Duration::from_secs(30),
        || (bob.history("alice").len() == 7).then_some(()),
    );

    let page = |before: Option<&str>| -> Vec<String> {
        let mut args = vec!["history", "alice", "--json", "--limit", "3"];
        if let Some(b) = before {
            args.extend(["--before", b]);
        }
        bob.json(&args)
            .as_array()
            .expect("array")
            .iter()
            .map(|m| m["text"].as_str().expect("text").to_owned())
            .collect()
    };
    assert_eq!(page(None), ["message 4", "message 5", "message 6"]);
    assert_eq!(page(Some(&ids[4])), ["message 1", "message 2", "message 3"]);
    assert_eq!(page(Some(&ids[1])), ["message 0"]);
    assert!(page(Some(&ids[0])).is_empty());

    let run = bob.run(&["history", "alice", "--before", "not-an-id"]);
    assert!(!run.ok());
    assert!(run.stderr.contains("before"), "{run:?}");
}

#[test]
fn demo_runs_and_exits_zero() {
    let run = std::process::Command::new(hush_tests::hush_bin())
        .arg("demo")
        .output()
        .expect("run hush demo");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "demo failed: {stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("delivered"), "{stdout}");
    // The offline part: left at bob's relay, drained, receipted.
    assert!(stdout.contains("left at his relay"), "{stdout}");
    assert!(stdout.contains("bob has it"), "{stdout}");
    assert!(stdout.contains("Demo finished"), "{stdout}");
}

/// Ctrl-C in the demo or a bench stops it, its nodes and their processes,
/// and removes its temporary folder (a 50-member bench leaves hundreds of
/// MiB there); it says so and exits non-zero.
#[test]
fn an_interrupted_demo_or_bench_removes_its_temporary_folder() {
    use std::time::{Duration, Instant};
    for (args, prefix) in [
        (&["demo"][..], "hush-demo-"),
        (
            &["bench", "group", "--members", "3", "--messages", "100000"][..],
            "hush-bench-",
        ),
    ] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let log = tempfile::NamedTempFile::new().expect("log file");
        let mut child = std::process::Command::new(hush_tests::hush_bin())
            .args(args)
            .env("TMPDIR", tmp.path())
            .stdout(std::process::Stdio::null())
            .stderr(log.reopen().expect("reopen the log"))
            .spawn()
            .expect("start hush");
        let folders = || -> Vec<std::path::PathBuf> {
            std::fs::read_dir(tmp.path())
                .expect("read the temp dir")
                .filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .map(|e| e.path())
                .collect()
        };
        // Under way: its folder holds a node's home.
        let deadline = Instant::now() + Duration::from_secs(60);
        while !folders()
            .iter()
            .any(|f| std::fs::read_dir(f).is_ok_and(|mut d| d.next().is_some()))
        {
            assert!(Instant::now() < deadline, "{args:?} made no folder");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(500));
        let kill = std::process::Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(kill.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for hush") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{args:?} still ran 30 s after Ctrl-C");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = std::fs::read_to_string(log.path()).expect("read the log");
        assert_eq!(status.code(), Some(130), "{args:?} when interrupted");
        assert!(stderr.contains("interrupted"), "{args:?}: {stderr}");
        assert_eq!(
            folders(),
            Vec::<std::path::PathBuf>::new(),
            "{args:?} left its folder"
        );
        // The demo's nodes and relay went with it: nothing still runs in
        // (or holds files in) its folder.
        let ps = std::process::Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .expect("run ps");
        let ps = String::from_utf8_lossy(&ps.stdout);
        let left: Vec<_> = ps
            .lines()
            .filter(|l| l.contains(&*tmp.path().to_string_lossy()))
            .collect();
        assert!(left.is_empty(), "{args:?} left processes: {left:?}");
    }
}

#[test]
fn read_receipts_can_be_switched_off_per_contact() {
    let (alice, bob) = pair();
    let run = bob.run(&["contact", "receipts", "alice", "off"]);
    assert!(run.ok(), "{run:?}");
    let listed = bob.json(&["contact", "list", "--json"]);
    assert_eq!(listed[0]["send_receipts"], false);

    let sent = alice.json(&[
        "send",
        "bob",
        "private read",
        "--wait",
        "delivered",
        "--json",
    ]);
    let id = sent["id"].as_str().expect("id");
    assert!(bob.run(&["read", "alice"]).ok());
    assert_eq!(bob.history("alice")[0]["status"], "read");

    // Bob's envelopes reach alice in order: once this later message is
    // delivered, a receipt queued before it would have arrived too.
    bob.json(&[
        "send",
        "alice",
        "after reading",
        "--wait",
        "delivered",
        "--json",
    ]);
    assert_eq!(alice.status_of("bob", id).as_deref(), Some("delivered"));

    // Switched back on, the next read is reported.
    assert!(bob.run(&["contact", "receipts", "alice", "on"]).ok());
    let sent = alice.json(&[
        "send",
        "bob",
        "public read",
        "--wait",
        "delivered",
        "--json",
    ]);
    assert!(bob.run(&["read", "alice"]).ok());
    alice.wait_status("bob", sent["id"].as_str().expect("id"), "read");
    let run = bob.run(&["contact", "receipts", "carol", "off"]);
    assert!(
        !run.ok() && run.stderr.contains("no contact named"),
        "{run:?}"
    );
}

#[test]
fn events_stream_new_messages_and_statuses() {
    let (alice, bob) = pair();
    let events = hush_tests::Events::follow(&bob);
    // The subscription is live once the stream answers: send until an
    // event shows up (the first send may race the subscription).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    let mut i = 0;
    while !seen
        .iter()
        .any(|e: &serde_json::Value| e["type"] == "message")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no message event: {seen:?}"
        );
        alice.json(&[
            "send",
            "bob",
            &format!("ping {i}"),
            "--wait",
            "delivered",
            "--json",
        ]);
        i += 1;
        while let Some(e) = events.next(std::time::Duration::from_millis(500)) {
            seen.push(e);
        }
    }
    let message = seen
        .iter()
        .find(|e| e["type"] == "message")
        .expect("message event");
    assert_eq!(message["contact"], "alice");
    assert!(
        message["message"]["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("ping"))
    );
    assert!(bob.run(&["read", "alice"]).ok());
    let read = events
        .next(std::time::Duration::from_secs(10))
        .expect("a status event");
    assert_eq!(read["type"], "status");
    assert_eq!(read["status"], "read");
}

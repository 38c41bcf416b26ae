//! The store at rest (issue 17): what a copy of a home's database gives
//! away without its key.

use std::path::Path;
use std::time::Duration;

use hush_tests::{pair, wait_for};

/// Every file under `dir` (recursively), with its path.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => {
                    if let Ok(bytes) = std::fs::read(&path) {
                        out.push((path, bytes));
                    }
                }
                _ => {}
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// `grep -a` over a home, running and stopped: no message text, no
/// contact's name, no card, in any file.
#[test]
fn grep_over_a_home_finds_no_message_name_or_card() {
    let (mut alice, mut bob) = pair();
    let text = "the spare key is under the third flowerpot";
    let run = alice.run(&["send", "bob", text, "--wait", "delivered"]);
    assert!(run.ok(), "{run:?}");
    let reply = "thanks, see you at quarter past nine";
    assert!(
        bob.run(&["send", "alice", reply, "--wait", "delivered"])
            .ok()
    );
    wait_for("alice to read bob's reply", Duration::from_secs(30), || {
        alice
            .history("bob")
            .iter()
            .any(|m| m["text"] == reply)
            .then_some(())
    });
    let (alice_card, bob_card) = (alice.card(), bob.card());
    let needles: [(&str, &[u8]); 5] = [
        ("a message", text.as_bytes()),
        ("a reply", reply.as_bytes()),
        ("a contact's name", b"alice"),
        ("alice's card", alice_card.as_bytes()),
        ("bob's card", bob_card.as_bytes()),
    ];
    for stopped in [false, true] {
        if stopped {
            alice.stop();
            bob.stop();
        }
        for home in [&alice.home, &bob.home] {
            for (path, bytes) in files_under(home) {
                // The harness keeps each node's stderr there (it names the
                // home's own path, `…/alice/hush.sock`); hush writes no log
                // into the home.
                if path.file_name().is_some_and(|n| n == "node.log") {
                    continue;
                }
                for (what, needle) in needles {
                    assert!(
                        !contains(&bytes, needle),
                        "{what} in the clear in {} (stopped: {stopped})",
                        path.display()
                    );
                }
            }
        }
    }
}

/// The passphrase that protects the database key: given at init, needed
/// to start, changed and removed without rewriting the database.
#[test]
fn a_passphrase_protects_the_key_and_changes_without_rewriting_the_database() {
    let mut user = hush_tests::User::empty("carol");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let (first, second, wrong) = (
        write("first", "first passphrase\n"),
        write("second", "another one"),
        write("wrong", "not it"),
    );
    let run = user.run(&["init", "--name", "carol", "--passphrase-file", &first]);
    assert!(run.ok(), "{run:?}");
    let key_file = std::fs::read(user.home.join("hush.key")).unwrap();
    assert!(key_file.starts_with(b"hushkey"), "the key is wrapped");

    // Without it, or with a wrong one: a clear error, a non-zero exit.
    let listen = user.listen_addr();
    let node = |user: &hush_tests::User, extra: &[&str]| {
        let mut args = vec!["node", "run", "--no-mdns", "--listen", listen.as_str()];
        args.extend_from_slice(extra);
        user.run(&args)
    };
    let run = node(&user, &[]);
    assert!(!run.ok(), "{run:?}");
    assert!(run.stderr.contains("--passphrase-file"), "{}", run.stderr);
    let started = std::time::Instant::now();
    let run = node(&user, &["--passphrase-file", &wrong]);
    assert!(!run.ok(), "{run:?}");
    assert!(run.stderr.contains("wrong passphrase"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(20));

    user.start_with(&["--passphrase-file", &first]);
    let status = user.json(&["status", "--json"]);
    assert_eq!(status["at_rest"], "passphrase", "{status}");
    user.stop();
    let db_before = std::fs::read(user.home.join("hush.redb")).unwrap();

    // Changed: the old one no longer opens it, the new one does; the
    // database file is the same bytes.
    let run = user.run(&[
        "passphrase",
        "change",
        "--passphrase-file",
        &first,
        "--new-passphrase-file",
        &second,
    ]);
    assert!(run.ok(), "{run:?}");
    assert_eq!(
        std::fs::read(user.home.join("hush.redb")).unwrap(),
        db_before
    );
    assert!(!node(&user, &["--passphrase-file", &first]).ok());
    let run = user.run(&["id", "--json", "--passphrase-file", &second]);
    assert!(run.ok(), "{run:?}");

    // Removed: the node starts without one, and says it is unprotected.
    let run = user.run(&["passphrase", "remove", "--passphrase-file", &second]);
    assert!(run.ok(), "{run:?}");
    user.start();
    let status = user.json(&["status", "--json"]);
    assert_eq!(status["at_rest"], "key file", "{status}");
}

/// A byte changed in the database file (a tampered or damaged copy) is
/// reported as a damaged block, with what to do, never read as data and
/// never a panic.
#[test]
fn a_flipped_byte_in_the_database_is_reported_not_read() {
    let (mut alice, _bob) = pair();
    let run = alice.run(&["send", "bob", "before the flip", "--wait", "delivered"]);
    assert!(run.ok(), "{run:?}");
    alice.stop();
    let path = alice.home.join("hush.redb");
    let mut bytes = std::fs::read(&path).unwrap();
    // One byte in every block after the header and the first block's two
    // copies (64 + 2 × 4,144 bytes), in the middle of its ciphertext.
    let mut at = 64 + 2 * 4144 + 2000;
    while at < bytes.len() {
        bytes[at] ^= 0x20;
        at += 4144;
    }
    std::fs::write(&path, bytes).unwrap();
    for args in [
        &["id"][..],
        &["node", "run", "--no-mdns", "--listen", &alice.listen_addr()],
    ] {
        let run = alice.run(args);
        assert!(!run.ok(), "hush {args:?} read a damaged database: {run:?}");
        assert!(
            run.stderr.contains("does not authenticate") && run.stderr.contains("block"),
            "hush {args:?} should name the damaged block: {run:?}"
        );
        assert!(!run.stderr.contains("panicked"), "{run:?}");
    }
}

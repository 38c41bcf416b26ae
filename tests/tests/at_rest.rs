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

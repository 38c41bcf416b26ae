//! Local notifications (issue 21, item 3): `hush node run --notify-cmd`
//! runs once per new message, never with the text unless asked, and not
//! for muted conversations.

use std::collections::BTreeSet;
use std::time::Duration;

use hush_tests::{User, introduce, wait_for};

/// The lines the notify command wrote: `kind|from|conversation|id|text`.
fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn notify_cmd_runs_once_per_message_hides_the_text_and_skips_muted_conversations() {
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    let log = alice.home.with_file_name("notified.log");
    let command = format!(
        "printf '%s|%s|%s|%s|%s\\n' \"$HUSH_KIND\" \"$HUSH_FROM\" \"$HUSH_CONVERSATION\" \"$HUSH_ID\" \"${{HUSH_TEXT-hidden}}\" >> '{}'",
        log.display()
    );
    alice.start_with(&["--notify-cmd", &command]);
    bob.start();
    introduce(&alice, &bob);
    let one = bob.send_delivered("alice", "one");
    let two = bob.send_delivered("alice", "two");
    // Ours never notify.
    alice.send_delivered("bob", "from alice");
    wait_for("two notifications", Duration::from_secs(20), || {
        (lines(&log).len() >= 2).then_some(())
    });
    let want: BTreeSet<String> = [&one, &two]
        .iter()
        .map(|id| format!("message|bob|bob|{id}|hidden"))
        .collect();
    assert_eq!(lines(&log).into_iter().collect::<BTreeSet<_>>(), want);

    // Muted: nothing for bob's next message; unmuted, the one after.
    let muted = alice.json(&["contact", "set", "bob", "--mute", "on", "--json"]);
    assert_eq!(muted["muted"], true, "{muted}");
    let quiet = bob.send_delivered("alice", "three");
    alice.run(&["contact", "set", "bob", "--mute", "off"]);
    let four = bob.send_delivered("alice", "four");
    wait_for(
        "the notification after unmuting",
        Duration::from_secs(20),
        || lines(&log).iter().any(|l| l.contains(&four)).then_some(()),
    );
    let all = lines(&log);
    assert!(!all.iter().any(|l| l.contains(&quiet)), "muted: {all:?}");
    assert_eq!(all.len(), 3, "once per message: {all:?}");

    // With the text, when asked (saved for later runs); escapes from
    // others arrive defused.
    alice.stop();
    alice.start_with(&["--notify-with-text", "on"]);
    let five = bob.send_delivered("alice", "five \u{1b}[2J");
    wait_for(
        "the notification with text",
        Duration::from_secs(20),
        || lines(&log).into_iter().find(|l| l.contains(&five)),
    );
    let line = lines(&log)
        .into_iter()
        .find(|l| l.contains(&five))
        .expect("its line");
    assert_eq!(line, format!("message|bob|bob|{five}|five \u{FFFD}[2J"));
}

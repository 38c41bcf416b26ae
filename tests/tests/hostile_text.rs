//! Attack (issue 13, item 8): a contact sends text that is a terminal
//! command (clear the screen, write the clipboard, reverse the line). The
//! receiver's `hush history` shows it escaped; `--json` keeps it exact.

use hush_tests::pair;

const ATTACK: &str = "look\u{1b}[2J\u{1b}]52;c;cHduZWQ=\u{7} \u{202e}gnp.exe\r!";

#[test]
fn terminal_commands_in_a_message_are_shown_escaped_not_run() {
    let (alice, bob) = pair();
    let sent = alice.json(&["send", "bob", ATTACK, "--json"]);
    let id = sent["id"].as_str().expect("id").to_owned();
    alice.wait_status("bob", &id, "delivered");

    let shown = bob.run(&["history", "alice"]);
    assert!(shown.ok(), "{shown:?}");
    let unsafe_chars: Vec<char> = shown
        .stdout
        .chars()
        .filter(|c| (c.is_control() && *c != '\n') || *c == '\u{202e}')
        .collect();
    assert!(
        unsafe_chars.is_empty(),
        "printed raw: {unsafe_chars:?} in {:?}",
        shown.stdout
    );
    assert!(
        shown
            .stdout
            .contains("look\\x1b[2J\\x1b]52;c;cHduZWQ=\\x07 \\u{202e}gnp.exe\\x0d!"),
        "{:?}",
        shown.stdout
    );

    let exact = bob.json(&["history", "alice", "--json"]);
    assert_eq!(exact[0]["text"], ATTACK, "--json keeps the exact text");
}

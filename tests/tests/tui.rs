//! `hush tui` driven in tmux (issue 21, item 1): it opens a conversation,
//! shows its history, sends what is typed, shows replies and the delivered
//! mark live, escapes what others send, survives a resize and a node
//! restart, and gives the terminal back on Ctrl-C; its commands search,
//! verify a contact with a safety number and QR code, send a file and
//! invite to a group; times show in the local time zone.

use std::process::Command;
use std::time::Duration;

use hush_tests::{User, hush_bin, pair, wait_for};

/// alice and bob, contacts with their nodes running; `None` (the test
/// skips, and says so) without tmux.
fn chatting() -> Option<(User, User)> {
    if !Tmux::available() {
        eprintln!("skipping: tmux is not installed (`.ci/run` installs it)");
        return None;
    }
    Some(pair())
}

/// A tmux session, killed when dropped.
struct Tmux {
    name: String,
}

impl Tmux {
    fn available() -> bool {
        Command::new("tmux")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// A session named after the test (tests of one binary run at once).
    fn start(tag: &str, command: &str) -> Self {
        let name = format!("hush-tui-{}-{tag}", std::process::id());
        let ok = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "100",
                "-y",
                "30",
                command,
            ])
            .status()
            .expect("tmux runs");
        assert!(ok.success(), "tmux new-session");
        Self { name }
    }

    fn keys(&self, keys: &[&str]) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(keys)
            .status()
            .expect("tmux runs");
        assert!(ok.success(), "tmux send-keys");
    }

    fn screen(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn wait_for(&self, what: &str, text: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !self.screen().contains(text) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what} on the screen within 30 s:\n{}",
                self.screen()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn resize(&self, x: u16, y: u16) {
        let ok = Command::new("tmux")
            .args([
                "resize-window",
                "-t",
                &self.name,
                "-x",
                &x.to_string(),
                "-y",
                &y.to_string(),
            ])
            .status()
            .expect("tmux runs");
        assert!(ok.success(), "tmux resize-window");
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .status();
    }
}

#[test]
fn the_tui_chats_live_survives_a_resize_and_a_restart_and_gives_the_terminal_back() {
    let Some((mut alice, bob)) = chatting() else {
        return;
    };
    bob.send_delivered("alice", "hello alice");
    let command = format!(
        "{} --home '{}' tui --open bob; echo TERMINAL-BACK; stty -a | grep -o -- '-icanon' ; sleep 60",
        hush_bin().display(),
        alice.home.display()
    );
    let tmux = Tmux::start("chat", &command);
    tmux.wait_for("the history", "hello alice");
    tmux.wait_for("bob shown online", "● bob");
    // What alice types goes to bob; the delivered mark shows live.
    tmux.keys(&["hi bob", "Enter"]);
    wait_for(
        "bob to have alice's message",
        Duration::from_secs(30),
        || {
            bob.history("alice")
                .iter()
                .any(|m| m["text"] == "hi bob")
                .then_some(())
        },
    );
    tmux.wait_for("the delivered mark", "hi bob ✓✓");
    // A reply, with an escape sequence, shows live and escaped.
    bob.send_delivered("alice", "\u{1b}[2Jred");
    tmux.wait_for("bob's reply, escaped", "bob: \\x1b[2Jred");
    // Resized to 80×24: still drawn.
    tmux.resize(80, 24);
    tmux.wait_for("the conversation after a resize", "hi bob");
    // The node restarts: the screen says so, then goes on.
    alice.stop();
    tmux.wait_for("the offline mark", "[offline]");
    alice.start();
    bob.send_delivered("alice", "after the restart");
    tmux.wait_for("a message after the restart", "after the restart");
    // Ctrl-C gives the terminal back (cooked mode, main screen).
    tmux.keys(&["C-c"]);
    tmux.wait_for("the shell after the tui", "TERMINAL-BACK");
    let screen = tmux.screen();
    assert!(
        !screen.contains("-icanon"),
        "the terminal is left in raw mode: {screen}"
    );
}

/// `HH:MM` of an RFC 3339 UTC time, `minutes` later.
fn shifted_clock(rfc3339: &str, minutes: i64) -> String {
    let hh: i64 = rfc3339[11..13].parse().expect("hour");
    let mm: i64 = rfc3339[14..16].parse().expect("minute");
    let total = (hh * 60 + mm + minutes).rem_euclid(24 * 60);
    format!("{:02}:{:02}", total / 60, total % 60)
}

#[test]
fn the_tuis_commands_search_verify_send_a_file_and_invite_in_local_time() {
    let Some((alice, bob)) = chatting() else {
        return;
    };
    let id = bob.send_delivered("alice", "the quick brown fox");
    let sent_at = alice
        .history("bob")
        .iter()
        .find(|m| m["id"] == id.as_str())
        .and_then(|m| m["sent_at"].as_str().map(str::to_owned))
        .expect("the message in alice's history");
    let created = alice.run(&["group", "create", "team"]);
    assert!(created.ok(), "{created:?}");
    // UTC+5:30 as a POSIX TZ string (no zone files needed).
    let command = format!(
        "TZ=IST-5:30 {} --home '{}' tui --open bob; sleep 60",
        hush_bin().display(),
        alice.home.display()
    );
    let tmux = Tmux::start("commands", &command);
    let local = format!("{} bob: the quick brown fox", shifted_clock(&sent_at, 330));
    tmux.wait_for("the message in local time", &local);
    assert!(!tmux.screen().contains("times UTC"), "{}", tmux.screen());
    tmux.wait_for("bob's presence in the title", "bob · online");

    tmux.keys(&["/help", "Enter"]);
    tmux.wait_for("the help panel", "/verify");
    tmux.keys(&["Escape"]);

    // Search, then open the hit's conversation from the panel.
    tmux.keys(&["/search brown", "Enter"]);
    tmux.wait_for("the search panel", "search: brown");
    tmux.wait_for("the hit", "bob · bob");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the conversation again", "the quick brown fox");

    // The safety number as digits and a QR code; v marks bob verified.
    tmux.keys(&["/verify", "Enter"]);
    tmux.wait_for("the safety number", "safety number with bob");
    let contacts = alice.json(&["contact", "list", "--json"]);
    let safety = contacts[0]["safety_number"]
        .as_str()
        .expect("safety number");
    let first_group = safety.split_whitespace().next().expect("digits");
    tmux.wait_for("its digits", first_group);
    tmux.wait_for("the QR code", "▄▄▄▄▄▄▄");
    // The whole code fits at 80×24 (its last row is the quiet zone's).
    tmux.resize(80, 24);
    tmux.wait_for("the whole code at 80×24", "▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀▀");
    tmux.resize(100, 30);
    tmux.keys(&["v"]);
    tmux.wait_for("the verified mark", "verified ✓");
    let contacts = alice.json(&["contact", "list", "--json"]);
    assert_eq!(contacts[0]["verified"], true, "{contacts}");
    tmux.keys(&["Escape"]);

    // A file, with a caption: bob gets it.
    let file = alice.home.with_file_name("notes.txt");
    std::fs::write(&file, "notes for bob").expect("a file");
    tmux.keys(&[&format!("/file {} -- the notes", file.display()), "Enter"]);
    wait_for("bob to get the file", Duration::from_secs(30), || {
        bob.history("alice")
            .iter()
            .any(|m| m["file"]["name"] == "notes.txt" && m["text"] == "the notes")
            .then_some(())
    });
    tmux.wait_for("the file message", "[file notes.txt");

    // A line starting with // is text.
    tmux.keys(&["//not a command", "Enter"]);
    wait_for("bob to get the slash text", Duration::from_secs(30), || {
        bob.history("alice")
            .iter()
            .any(|m| m["text"] == "/not a command")
            .then_some(())
    });

    // In the group's conversation (the next one down), /invite asks bob in.
    tmux.keys(&["Down"]);
    tmux.wait_for("the group open", "┐┌team");
    tmux.keys(&["/invite bob", "Enter"]);
    tmux.wait_for("the invitation", "invited bob to team");
    wait_for("bob's invitation", Duration::from_secs(40), || {
        let groups = bob.json(&["group", "list", "--json"]);
        groups
            .as_array()?
            .iter()
            .any(|g| g["name"] == "team" && g["you"] == "invited")
            .then_some(())
    });
}

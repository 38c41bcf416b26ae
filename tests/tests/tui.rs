//! `hush tui` driven in tmux (issue 21, item 1): it opens a conversation,
//! shows its history, sends what is typed, shows replies and the delivered
//! mark live, escapes what others send, survives a resize and a node
//! restart, and gives the terminal back on Ctrl-C.

use std::process::Command;
use std::time::Duration;

use hush_tests::{User, hush_bin, introduce, wait_for};

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

    fn start(command: &str) -> Self {
        let name = format!("hush-tui-{}", std::process::id());
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
    if !Tmux::available() {
        eprintln!("skipping: tmux is not installed (`.ci/run` installs it)");
        return;
    }
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    alice.start();
    bob.start();
    introduce(&alice, &bob);
    bob.send_delivered("alice", "hello alice");
    let command = format!(
        "{} --home '{}' tui --open bob; echo TERMINAL-BACK; stty -a | grep -o -- '-icanon' ; sleep 60",
        hush_bin().display(),
        alice.home.display()
    );
    let tmux = Tmux::start(&command);
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

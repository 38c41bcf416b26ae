//! Local notifications (issue 21, item 3): `hush node run --notify-cmd`
//! runs once per new message, never with the text unless asked, and not
//! for muted conversations; desktop notifications go over the session bus
//! (a private `dbus-daemon`, watched with `dbus-monitor`).

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

/// A private session bus (`dbus-daemon`), killed when dropped.
struct SessionBus {
    daemon: std::process::Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl SessionBus {
    fn start() -> Option<Self> {
        use std::io::BufRead;
        let dir = tempfile::tempdir().expect("temp dir");
        let mut daemon = std::process::Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--print-address=1"])
            .arg(format!(
                "--address=unix:path={}",
                dir.path().join("bus").display()
            ))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let stdout = daemon.stdout.take()?;
        let mut address = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut address)
            .ok()?;
        Some(Self {
            daemon,
            address: address.trim().to_owned(),
            _dir: dir,
        })
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}

#[test]
fn a_desktop_notification_goes_over_the_session_bus_naming_the_writer_not_the_text() {
    let Some(bus) = SessionBus::start() else {
        eprintln!("skipping: dbus-daemon is not installed (`.ci/run` installs it)");
        return;
    };
    let watched = tempfile::NamedTempFile::new().expect("temp file");
    let Ok(mut monitor) = std::process::Command::new("dbus-monitor")
        .args(["--address", &bus.address])
        .arg("interface='org.freedesktop.Notifications'")
        .stdout(watched.reopen().expect("reopen"))
        .stderr(std::process::Stdio::null())
        .spawn()
    else {
        eprintln!("skipping: dbus-monitor is not installed (`.ci/run` installs it)");
        return;
    };
    let seen = || std::fs::read_to_string(watched.path()).unwrap_or_default();
    wait_for("dbus-monitor to watch", Duration::from_secs(10), || {
        seen().contains("NameAcquired").then_some(())
    });
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    alice.start_with_env(
        &[("DBUS_SESSION_BUS_ADDRESS", &bus.address)],
        &["--desktop-notify", "on"],
    );
    bob.start();
    introduce(&alice, &bob);
    bob.send_delivered("alice", "the secret plan");
    let call = wait_for("a Notify call on the bus", Duration::from_secs(20), || {
        let text = seen();
        text.contains("member=Notify").then_some(text)
    });
    let _ = monitor.kill();
    let _ = monitor.wait();
    assert!(call.contains("string \"hush\""), "{call}");
    assert!(call.contains("string \"hush · bob\""), "{call}");
    assert!(call.contains("string \"new message\""), "{call}");
    assert!(
        !call.contains("secret"),
        "the text went to the desktop: {call}"
    );
}

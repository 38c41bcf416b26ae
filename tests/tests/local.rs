//! Attacks from the same machine (issue 13, item 9).

use std::os::unix::fs::PermissionsExt;

use hush_tests::User;

/// Another local user who can write the home folder could swap the
/// database or plant a socket the CLI talks to: the node refuses to start.
#[test]
fn a_home_folder_other_users_can_write_is_refused() {
    let alice = User::new("alice");
    std::fs::set_permissions(&alice.home, std::fs::Permissions::from_mode(0o777))
        .expect("chmod the home");
    let listen = alice.listen_addr();
    let run = alice.run(&["node", "run", "--listen", &listen]);
    assert!(
        !run.ok(),
        "the node started in a world-writable home: {run:?}"
    );
    assert!(run.stderr.contains("chmod 700"), "{run:?}");
    // Fixed as the message says, it starts.
    std::fs::set_permissions(&alice.home, std::fs::Permissions::from_mode(0o700))
        .expect("chmod the home back");
    let mut alice = alice;
    alice.start();
    assert!(alice.run(&["status"]).ok());

    // `hush events` follows the node; when the node stops, it says so and
    // exits with 4 (a script's `hush events | …` loop can restart it).
    let mut events = std::process::Command::new(hush_tests::hush_bin())
        .arg("--home")
        .arg(&alice.home)
        .args(["events", "--json"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn hush events");
    std::thread::sleep(std::time::Duration::from_millis(500));
    alice.stop();
    let status = hush_tests::wait_for("events to exit", std::time::Duration::from_secs(20), || {
        events.try_wait().ok().flatten()
    });
    assert_eq!(status.code(), Some(4), "events exits 4 when the node stops");
}

/// A message given on the command line shows in `ps` and the shell
/// history of the machine; `hush send NAME -` reads it from standard input.
#[test]
fn a_message_can_come_from_standard_input_not_the_command_line() {
    let (alice, bob) = hush_tests::pair();
    let run = alice.run_with_stdin(&["send", "bob", "-", "--json"], "not in ps\n");
    assert!(run.ok(), "{run:?}");
    let id = run.json()["id"].as_str().expect("id").to_owned();
    alice.wait_status("bob", &id, "delivered");
    let texts: Vec<String> = bob
        .history("alice")
        .iter()
        .map(|m| m["text"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(texts, ["not in ps"]);
}

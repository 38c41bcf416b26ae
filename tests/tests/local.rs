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

/// A home folder whose path is too long for a Unix socket (108 bytes)
/// serves its API from `$XDG_RUNTIME_DIR`; without one, the node says what
/// to do.
#[test]
fn a_home_with_a_very_long_path_serves_its_api_from_the_runtime_dir() {
    use std::process::{Command, Stdio};
    let base = tempfile::tempdir().expect("temp dir");
    let home = base.path().join("a".repeat(60)).join("b".repeat(60));
    let runtime = tempfile::tempdir().expect("runtime dir");
    let hush = |args: &[&str], runtime_dir: Option<&std::path::Path>| {
        let mut c = Command::new(hush_tests::hush_bin());
        c.arg("--home")
            .arg(&home)
            .args(args)
            .env_remove("XDG_RUNTIME_DIR");
        if let Some(dir) = runtime_dir {
            c.env("XDG_RUNTIME_DIR", dir);
        }
        c
    };
    assert!(
        hush(&["init", "--name", "longhome"], None)
            .status()
            .expect("init")
            .success()
    );
    let listen = format!("/ip4/127.0.0.1/tcp/{}", hush_tests::free_port());
    let run = ["node", "run", "--listen", listen.as_str(), "--no-mdns"];
    let out = hush(&run, None).output().expect("node run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("XDG_RUNTIME_DIR"), "{stderr}");

    let mut node = hush(&run, Some(runtime.path()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("node run");
    let status = hush_tests::wait_for("the API", std::time::Duration::from_secs(30), || {
        let out = hush(&["status", "--json"], Some(runtime.path()))
            .output()
            .ok()?;
        out.status.success().then_some(out.stdout)
    });
    let status: serde_json::Value = serde_json::from_slice(&status).expect("status");
    assert_eq!(status["name"], "longhome");
    let _ = node.kill();
    let _ = node.wait();
}

/// `hush node run` keeps the settings it started with in HOME/config.toml
/// and, without flags, runs with them again.
#[test]
fn node_run_without_flags_reuses_the_last_good_settings() {
    let mut alice = User::new("alice");
    alice.start_with(&["--presence-grace", "7", "--poll-ms", "250"]);
    alice.stop();
    let config = std::fs::read_to_string(alice.home.join("config.toml")).expect("config.toml");
    assert!(config.contains("presence_grace = 7"), "{config}");
    assert!(config.contains("poll_ms = 250"), "{config}");
    // Started again with only the harness's own flags: the file's settings
    // stay (and are written back unchanged).
    alice.start();
    alice.stop();
    let again = std::fs::read_to_string(alice.home.join("config.toml")).expect("config.toml");
    assert_eq!(again, config);
}

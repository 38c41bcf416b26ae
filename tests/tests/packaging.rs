//! What `dist/` ships: the systemd units pass `systemd-analyze verify`, and
//! the relay speaks systemd's readiness protocol (`Type=notify`).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hush_tests::hush_bin;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the repository")
}

/// Both units, with `/usr/local/bin/hush` pointed at the binary under test,
/// verify without a warning.
#[test]
fn the_systemd_units_verify_cleanly() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("SKIPPED: systemd-analyze is not installed (Debian: apt-get install systemd)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    for unit in ["hush-relay.service", "hush-node.service"] {
        let text = std::fs::read_to_string(repo().join("dist").join(unit)).expect("unit file");
        assert!(
            text.contains("/usr/local/bin/hush"),
            "{unit} runs the installed binary"
        );
        let local = dir.path().join(unit);
        std::fs::write(
            &local,
            text.replace("/usr/local/bin/hush", &hush_bin().display().to_string()),
        )
        .expect("write the unit");
        let out = Command::new("systemd-analyze")
            .args(["verify", "--man=no"])
            .arg(&local)
            .output()
            .expect("run systemd-analyze");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{unit}: {stderr}");
        let complaints: Vec<&str> = stderr.lines().filter(|l| l.contains(unit)).collect();
        assert!(complaints.is_empty(), "{unit}: {complaints:?}");
    }
    let relay = std::fs::read_to_string(repo().join("dist/hush-relay.service")).expect("unit");
    for line in [
        "Type=notify",
        "DynamicUser=yes",
        "ProtectSystem=strict",
        "--check-config",
    ] {
        assert!(relay.contains(line), "the relay unit has {line}");
    }
}

/// Under `Type=notify` systemd waits for READY=1 (the relay listens) and
/// is told STOPPING=1 on SIGTERM.
#[test]
fn the_relay_tells_systemd_when_it_is_ready_and_when_it_stops() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(1)))
        .expect("timeout");
    let mut relay = Command::new(hush_bin())
        .args(["relay", "run", "--listen", "/ip4/127.0.0.1/tcp/0", "--data"])
        .arg(dir.path().join("data"))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("HUSH_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the relay");
    let mut said = String::new();
    let wait_for_state = |state: &str, said: &mut String| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !said.contains(state) && Instant::now() < deadline {
            let mut buf = [0u8; 512];
            if let Ok(n) = socket.recv(&mut buf) {
                said.push_str(&String::from_utf8_lossy(&buf[..n]));
                said.push('\n');
            }
        }
        assert!(said.contains(state), "no {state} in {said:?}");
    };
    wait_for_state("READY=1", &mut said);
    let _ = Command::new("kill")
        .args(["-TERM", &relay.id().to_string()])
        .status();
    wait_for_state("STOPPING=1", &mut said);
    let status = relay.wait().expect("the relay exits");
    assert!(status.success(), "{status}");
}

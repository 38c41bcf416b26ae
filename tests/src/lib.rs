//! Test harness: runs the real `hush` binary as separate processes.
//!
//! The binary is built once per test process (`cargo build -p hush-cli`,
//! same profile as the tests), or taken from `HUSH_BIN`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod group;
pub mod netns;
pub mod raw;

/// The `hush` binary under test.
pub fn hush_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("HUSH_BIN") {
            return PathBuf::from(bin);
        }
        // target/<profile>/deps/<test exe> → target/<profile>/hush
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("tests run from target/<profile>/deps")
            .to_owned();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--locked", "-p", "hush-cli", "--bin", "hush"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the hush binary");
        assert!(status.success(), "building the hush binary failed");
        profile_dir.join("hush")
    })
}

/// A port on 127.0.0.1 that was free a moment ago.
/// A port free to listen on, below Linux's ephemeral range (32768 up):
/// a port from that range can be taken, between this check and the
/// listener, as the local port of some other test's outgoing connection.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Each test binary starts somewhere else in 20000..32000.
    let start = 20_000 + (std::process::id() % 1000) as u16 * 12;
    let _ = NEXT.compare_exchange(0, start, Ordering::Relaxed, Ordering::Relaxed);
    for _ in 0..12_000 {
        let port = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20_000 + port.wrapping_sub(20_000) % 12_000;
        let udp = std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok();
        if udp && TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Polls `check` every 20 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory (VmRSS) of a process, in KiB; 0 if unknown.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The result of one `hush` command.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// One user's home folder, and the node running from it.
pub struct User {
    pub name: String,
    pub home: PathBuf,
    pub port: u16,
    node: Option<Child>,
    _dir: tempfile::TempDir,
}

impl User {
    /// A fresh home with an identity (`hush init`).
    pub fn new(name: &str) -> Self {
        let user = Self::empty(name);
        let run = user.run(&["init", "--name", name]);
        assert!(run.ok(), "init failed: {run:?}");
        user
    }

    /// A home folder path with nothing in it yet (for `hush device join`).
    pub fn empty(name: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hush-test-")
            .tempdir()
            .expect("temp dir");
        let home = dir.path().join(name);
        Self {
            name: name.to_owned(),
            home,
            port: free_port(),
            node: None,
            _dir: dir,
        }
    }

    pub fn listen_addr(&self) -> String {
        format!("/ip4/127.0.0.1/tcp/{}", self.port)
    }

    /// `hush --home HOME ARGS…`, its output piped.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(hush_bin());
        command
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .env("HUSH_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs `hush --home HOME ARGS…` to completion (at most 60 s).
    pub fn run(&self, args: &[&str]) -> Run {
        let mut child = self
            .command(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn hush");
        // Read both pipes while it runs: a large output must not block it.
        let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                if let Some(mut pipe) = pipe {
                    let _ = pipe.read_to_end(&mut buf);
                }
                String::from_utf8_lossy(&buf).into_owned()
            })
        };
        let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
        let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for hush") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "hush {args:?} did not finish within 60 s\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Run {
            code: status.code(),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
        }
    }

    /// Runs `hush --home HOME ARGS…` with `input` on its standard input.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn hush");
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input.as_bytes()).expect("write stdin");
        }
        let out = child.wait_with_output().expect("wait for hush");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs a command that must succeed and print JSON.
    /// (On failure, with the end of the node's log: a node that stopped
    /// says why there.)
    pub fn json(&self, args: &[&str]) -> Value {
        let run = self.run(args);
        if !run.ok() {
            panic!("hush {args:?} failed: {run:?}\n{}", self.log_tail());
        }
        run.json()
    }

    /// Starts `hush node run` and waits until its API answers.
    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// Starts `hush node run EXTRA…` (e.g. `--relay ADDR`) and waits until
    /// its API answers.
    pub fn start_with(&mut self, extra: &[&str]) {
        let listen = self.listen_addr();
        self.spawn_node(&[], Some(&listen), extra, &[]);
    }

    /// [`User::start_with`], with these environment variables set for the
    /// node (e.g. its own session bus).
    pub fn start_with_env(&mut self, env: &[(&str, &str)], extra: &[&str]) {
        let listen = self.listen_addr();
        self.spawn_node(&[], Some(&listen), extra, env);
    }

    /// Starts `hush node run --hidden EXTRA…`: no listener of its own.
    pub fn start_hidden(&mut self, extra: &[&str]) {
        let mut args = vec!["--hidden"];
        args.extend_from_slice(extra);
        self.spawn_node(&[], None, &args, &[]);
    }

    /// Starts the node inside network namespace `netns` (`ip netns exec`),
    /// listening on every interface there at this user's port. The CLI
    /// still reaches it: the API is a Unix socket in the home folder.
    pub fn start_in_netns(&mut self, netns: &str, extra: &[&str]) {
        let listen = format!("/ip4/0.0.0.0/tcp/{}", self.port);
        self.spawn_node(&["ip", "netns", "exec", netns], Some(&listen), extra, &[]);
    }

    fn spawn_node(
        &mut self,
        prefix: &[&str],
        listen: Option<&str>,
        extra: &[&str],
        env: &[(&str, &str)],
    ) {
        assert!(self.node.is_none(), "{} is already running", self.name);
        let log = std::fs::File::create(self.home.join("node.log")).expect("node log file");
        let mut command = match prefix.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(hush_bin());
                c
            }
            None => Command::new(hush_bin()),
        };
        let child = command
            .arg("--home")
            .arg(&self.home)
            .args(["node", "run"])
            .args(listen.map(|l| ["--listen", l]).into_iter().flatten())
            .args(extra)
            // mDNS multicasts on every real interface: tests stay on
            // loopback and in the namespaces they build (it is off by
            // default; this keeps a config file from turning it on).
            .args(
                (!extra.contains(&"--no-mdns") && !extra.contains(&"--mdns"))
                    .then_some("--no-mdns"),
            )
            // No desktop notifications on the machine running the tests
            // (unless a test asks, with a bus of its own).
            .args(
                (!extra.contains(&"--desktop-notify"))
                    .then_some(["--desktop-notify", "off"])
                    .into_iter()
                    .flatten(),
            )
            .env("HUSH_LOG", test_log("info"))
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn hush node run");
        self.node = Some(child);
        wait_for("the node API", Duration::from_secs(30), || {
            if let Some(status) = self.node.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                panic!(
                    "{}'s node exited early ({status}): {}",
                    self.name,
                    self.node_log()
                );
            }
            self.run(&["status", "--json"]).ok().then_some(())
        });
    }

    /// The node process's pid, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.node.as_ref().map(Child::id)
    }

    /// The last 40 lines of the node's log, headed by whose it is: a
    /// node that stopped, or stopped answering, says why there.
    fn log_tail(&self) -> String {
        let log = self.node_log();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(40)..].join("\n");
        // A panic's backtrace fills the tail: its message first.
        let panic = lines
            .iter()
            .position(|l| l.contains("panicked at"))
            .map(|at| lines[at..lines.len().min(at + 3)].join("\n"))
            .map_or(String::new(), |p| {
                format!("{}'s node panicked:\n{p}\n", self.name)
            });
        format!("{panic}{}'s node log, last 40 lines:\n{tail}", self.name)
    }

    pub fn node_log(&self) -> String {
        std::fs::read_to_string(self.home.join("node.log")).unwrap_or_default()
    }

    /// Stops the node gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.node.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            wait_for("the node to stop", Duration::from_secs(20), || {
                child.try_wait().ok().flatten()
            });
        }
    }

    /// Kills the node with SIGKILL: no chance to flush anything.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.node.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn card(&self) -> String {
        self.json(&["id", "--json"])["card"]
            .as_str()
            .expect("card in id --json")
            .to_owned()
    }

    pub fn history(&self, with: &str) -> Vec<Value> {
        match self.json(&["history", with, "--json", "--limit", "1000"]) {
            Value::Array(messages) => messages,
            other => panic!("history is not an array: {other}"),
        }
    }

    /// A group's history as (message id, text), oldest first.
    pub fn group_history(&self, group: &str) -> Vec<(String, String)> {
        let list = self.json(&["group", "history", group, "--json", "--limit", "1000"]);
        list.as_array()
            .expect("group history is a list")
            .iter()
            .map(|m| {
                (
                    m["id"].as_str().unwrap_or_default().to_owned(),
                    m["text"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The status of message `id` in the conversation with `with`.
    pub fn status_of(&self, with: &str, id: &str) -> Option<String> {
        self.history(with)
            .into_iter()
            .find(|m| m["id"] == id)
            .and_then(|m| m["status"].as_str().map(str::to_owned))
    }

    /// Sends `text` to `to` and waits until it is delivered; its id.
    pub fn send_delivered(&self, to: &str, text: &str) -> String {
        self.send_until(to, text, "delivered")
    }

    /// Sends `text` to `to` and waits until it is `sent` (at `to`'s relays,
    /// when `to` is away); its id.
    pub fn send_sent(&self, to: &str, text: &str) -> String {
        self.send_until(to, text, "sent")
    }

    /// Sends `text` to `to` and waits until it reaches `status`; its id.
    pub fn send_until(&self, to: &str, text: &str, status: &str) -> String {
        let receipt = self.json(&[
            "send",
            to,
            text,
            "--wait",
            status,
            "--timeout",
            "30",
            "--json",
        ]);
        assert_eq!(receipt["status"], status, "{receipt}");
        receipt["id"].as_str().expect("an id").to_owned()
    }

    pub fn wait_status(&self, with: &str, id: &str, status: &str) {
        wait_for(
            &format!("{}'s message {id} to be {status}", self.name),
            Duration::from_secs(30),
            || (self.status_of(with, id).as_deref() == Some(status)).then_some(()),
        );
    }
}

impl Drop for User {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            // Its folder goes with it: what the node said is kept in the
            // failed test's output, where CI shows it.
            print_log_tail(&format!("{}'s node", self.name), &self.node_log());
        }
    }
}

/// How many of its last lines a failed test prints of each log.
const LOG_TAIL_LINES: usize = 80;

/// Prints the end of `log` to the test's output (on a failure).
fn print_log_tail(whose: &str, log: &str) {
    let lines: Vec<&str> = log.lines().collect();
    let from = lines.len().saturating_sub(LOG_TAIL_LINES);
    eprintln!(
        "---- {whose} log, its last {} of {} lines ----",
        lines.len() - from,
        lines.len()
    );
    for line in &lines[from..] {
        eprintln!("{line}");
    }
}

/// Two users with running nodes who have added each other.
pub fn pair() -> (User, User) {
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    alice.start();
    bob.start();
    introduce(&alice, &bob);
    (alice, bob)
}

/// A `hush relay run` process with its own data folder and ports.
pub struct RelayProc {
    pub data: PathBuf,
    pub port: u16,
    pub metrics_port: u16,
    /// The address nodes use (`/ip4/127.0.0.1/tcp/PORT/p2p/ID`).
    pub address: String,
    extra: Vec<String>,
    /// The relay's `HUSH_LOG`.
    log_filter: String,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

/// The `HUSH_LOG` filter of a node or relay the tests start: `default`,
/// unless `HUSH_TEST_LOG` names another (to follow a flaky test into
/// libp2p, say `HUSH_TEST_LOG=info,yamux=trace`).
fn test_log(default: &str) -> String {
    std::env::var("HUSH_TEST_LOG").unwrap_or_else(|_| default.to_owned())
}

impl RelayProc {
    /// Starts a relay; `config` is the text of a TOML config file (may be empty).
    pub fn start(config: &str) -> Self {
        Self::start_with(config, &[])
    }

    pub fn start_with(config: &str, extra: &[&str]) -> Self {
        Self::start_logging(config, extra, "info")
    }

    /// [`RelayProc::start_with`], its log filtered by `log_filter` (a
    /// `HUSH_LOG` value: what a relay operator would keep).
    pub fn start_logging(config: &str, extra: &[&str], log_filter: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("hush-relay-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(dir.path().join("relay.toml"), config).expect("relay config");
        let mut relay = Self {
            data: dir.path().join("data"),
            port: free_port(),
            metrics_port: free_port(),
            address: String::new(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            log_filter: log_filter.to_owned(),
            child: None,
            _dir: dir,
        };
        relay.restart();
        relay
    }

    /// Starts the relay process again (same data folder and ports).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "the relay is already running");
        let config = self.data.with_file_name("relay.toml");
        let log = std::fs::File::create(self.data.with_file_name("relay.log")).expect("relay log");
        let mut child = Command::new(hush_bin())
            .args(["relay", "run", "--config"])
            .arg(&config)
            .arg("--data")
            .arg(&self.data)
            .args(["--listen", &format!("/ip4/127.0.0.1/tcp/{}", self.port)])
            .args(["--metrics", &format!("127.0.0.1:{}", self.metrics_port)])
            .args(&self.extra)
            .env("HUSH_LOG", test_log(&self.log_filter))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("spawn hush relay run");
        let stdout = child.stdout.take().expect("relay stdout");
        self.child = Some(child);
        // The first `address:` line is the one to use.
        let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
        let address = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.strip_prefix("address: ") {
                        break addr.to_owned();
                    }
                }
                _ => panic!(
                    "the relay exited before printing its address: {}",
                    self.log()
                ),
            }
        };
        // Keep draining stdout so the relay never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.address = address;
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.with_file_name("relay.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Stops the relay gracefully (SIGTERM).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            wait_for("the relay to stop", Duration::from_secs(20), || {
                child.try_wait().ok().flatten()
            });
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `GET PATH` on the metrics address: the whole HTTP answer, if any.
    pub fn http_get(&self, path: &str) -> Option<String> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: relay\r\n\r\n").as_bytes())
            .ok()?;
        let mut text = String::new();
        stream.read_to_string(&mut text).ok()?;
        Some(text)
    }

    /// One metric from `/metrics` (labels included in `name`), if served.
    pub fn metric(&self, name: &str) -> Option<f64> {
        let text = self.http_get("/metrics")?;
        text.lines().find_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            (key == name).then(|| value.parse().ok()).flatten()
        })
    }

    /// Waits until the relay holds exactly `n` messages.
    pub fn wait_stored(&self, n: u64) {
        wait_for(
            &format!("the relay to hold {n} messages"),
            Duration::from_secs(30),
            || (self.metric("hush_relay_stored_messages") == Some(n as f64)).then_some(()),
        );
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            print_log_tail(&format!("the relay at port {}", self.port), &self.log());
        }
    }
}

/// Adds each user's card to the other (both nodes running).
pub fn introduce(a: &User, b: &User) {
    let (a_card, b_card) = (a.card(), b.card());
    let run = a.run(&["contact", "add", &b.name, &b_card]);
    assert!(run.ok(), "{} adds {}: {run:?}", a.name, b.name);
    let run = b.run(&["contact", "add", &a.name, &a_card]);
    assert!(run.ok(), "{} adds {}: {run:?}", b.name, a.name);
}

/// `hush events --json` of a user, read on a thread.
pub struct Events {
    child: std::process::Child,
    rx: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Events {
    /// Starts following `user`'s events.
    pub fn follow(user: &User) -> Self {
        Self::follow_with(user, &[])
    }

    /// Starts following `user`'s events after the event with `cursor`.
    pub fn follow_after(user: &User, cursor: &str) -> Self {
        Self::follow_with(user, &["--after", cursor])
    }

    fn follow_with(user: &User, extra: &[&str]) -> Self {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let mut child = Command::new(hush_bin())
            .arg("--home")
            .arg(&user.home)
            .args(["events", "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn hush events");
        let stdout = child.stdout.take().expect("events stdout");
        let (tx, rx) = std::sync::mpsc::sync_channel(256);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line)
                    && tx.send(v).is_err()
                {
                    break;
                }
            }
        });
        Self { child, rx }
    }

    /// Waits (at most 30 s) for an event `is` accepts; `is` also sees
    /// `null` every half second without events, so it can nudge what it
    /// waits for.
    pub fn wait_for(&self, what: &str, is: impl Fn(&serde_json::Value) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            match self.rx.recv_timeout(Duration::from_millis(500)) {
                Ok(event) if is(&event) => return,
                Ok(event) => seen.push(event),
                Err(_) => {
                    if is(&serde_json::Value::Null) {
                        return;
                    }
                }
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no {what} within 30 s; saw {seen:?}"
            );
        }
    }
}

impl Events {
    /// The next event, if one comes within `timeout`.
    pub fn next(&self, timeout: Duration) -> Option<serde_json::Value> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! Network namespaces for tests that need several hosts, routers or a
//! network that fails: built with iproute2 and iptables, removed on drop.
//! Without the privileges (root, CAP_NET_ADMIN) tests say so and skip.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::{hush_bin, wait_for};

/// Runs `program ARGS…`, returning its error text on failure.
pub fn sh(program: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Runs `ARGS…` inside namespace `name`.
pub fn ns(name: &str, args: &[&str]) -> Result<(), String> {
    let mut full = vec!["netns", "exec", name];
    full.extend_from_slice(args);
    sh("ip", &full)
}

static NETWORKS: AtomicU32 = AtomicU32::new(0);

/// A set of namespaces with names unique to this process and network,
/// deleted (with everything in them) on drop.
pub struct Namespaces {
    id: u32,
    names: Vec<String>,
}

impl Default for Namespaces {
    fn default() -> Self {
        Self::new()
    }
}

impl Namespaces {
    pub fn new() -> Self {
        Self {
            id: NETWORKS.fetch_add(1, Ordering::Relaxed),
            names: Vec::new(),
        }
    }

    /// The full name of the namespace playing `role`.
    pub fn name(&self, role: &str) -> String {
        format!("hush{}n{}-{role}", std::process::id(), self.id)
    }

    /// Adds the namespace for `role`, with its loopback up.
    pub fn add(&mut self, role: &str) -> Result<String, String> {
        let name = self.name(role);
        sh("ip", &["netns", "add", &name])?;
        self.names.push(name.clone());
        ns(&name, &["ip", "link", "set", "lo", "up"])?;
        Ok(name)
    }

    /// A veth pair between two namespaces: `(namespace, interface,
    /// address/prefix)` for each end; both ends up.
    pub fn link(&self, a: (&str, &str, &str), b: (&str, &str, &str)) -> Result<(), String> {
        static LINKS: AtomicU32 = AtomicU32::new(0);
        let n = LINKS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}n{}", std::process::id() % 100_000, self.id);
        let (ta, tb) = (format!("h{tag}x{n}"), format!("h{tag}y{n}"));
        sh(
            "ip",
            &["link", "add", &ta, "type", "veth", "peer", "name", &tb],
        )?;
        for ((space, iface, addr), temp) in [(a, &ta), (b, &tb)] {
            sh("ip", &["link", "set", temp, "netns", space])?;
            ns(space, &["ip", "link", "set", temp, "name", iface])?;
            ns(space, &["ip", "addr", "add", addr, "dev", iface])?;
            ns(space, &["ip", "link", "set", iface, "up"])?;
        }
        Ok(())
    }
}

impl Namespaces {
    /// A bridge `bridge` (up) in namespace `space`: a LAN switch.
    pub fn bridge(&self, space: &str, bridge: &str) -> Result<(), String> {
        ns(space, &["ip", "link", "add", bridge, "type", "bridge"])?;
        ns(space, &["ip", "link", "set", bridge, "up"])
    }

    /// A host on a bridge: a veth pair with one end in `(space, bridge)`,
    /// enslaved to the bridge, and the other in `host` as `iface` with
    /// `addr`/prefix; both ends up.
    pub fn plug(
        &self,
        (space, bridge): (&str, &str),
        (host, iface, addr): (&str, &str, &str),
    ) -> Result<(), String> {
        static PLUGS: AtomicU32 = AtomicU32::new(0);
        let n = PLUGS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}n{}", std::process::id() % 100_000, self.id);
        let (tb, th) = (format!("b{tag}x{n}"), format!("b{tag}y{n}"));
        sh(
            "ip",
            &["link", "add", &tb, "type", "veth", "peer", "name", &th],
        )?;
        sh("ip", &["link", "set", &tb, "netns", space])?;
        ns(space, &["ip", "link", "set", &tb, "master", bridge])?;
        ns(space, &["ip", "link", "set", &tb, "up"])?;
        sh("ip", &["link", "set", &th, "netns", host])?;
        ns(host, &["ip", "link", "set", &th, "name", iface])?;
        ns(host, &["ip", "addr", "add", addr, "dev", iface])?;
        ns(host, &["ip", "link", "set", iface, "up"])
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = sh("ip", &["netns", "del", name]);
        }
    }
}

fn can_build_namespaces() -> Result<(), String> {
    // Tests of one binary probe at the same time: each its own name.
    static PROBES: AtomicU32 = AtomicU32::new(0);
    let probe = format!(
        "hush{}-probe{}",
        std::process::id(),
        PROBES.fetch_add(1, Ordering::Relaxed)
    );
    sh("ip", &["netns", "add", &probe])?;
    let nat = ns(&probe, &["iptables", "-t", "nat", "-L", "-n"]);
    let _ = sh("ip", &["netns", "del", &probe]);
    nat
}

/// Whether the test must skip (it prints why).
pub fn skip_without_namespaces() -> bool {
    match can_build_namespaces() {
        Ok(()) => false,
        Err(why) => {
            println!(
                "SKIPPED: this test needs root (CAP_NET_ADMIN), iproute2 and iptables to build \
                 network namespaces; `.ci/run` installs them. Reason: {why}"
            );
            true
        }
    }
}

/// A relay process inside a namespace, killed on drop.
pub struct RelayInNs {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl RelayInNs {
    /// `hush relay run` in `netns`, listening on each of `listen`.
    pub fn start(netns: &str, listen: &[String]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("relay.log");
        let diagnostics = dir.path().join("relay.err");
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", netns])
            .arg(hush_bin())
            .args(["relay", "run"]);
        for addr in listen {
            command.args(["--listen", addr]);
        }
        let child = command
            .arg("--data")
            .arg(dir.path().join("data"))
            .env("HUSH_LOG", "info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("relay log"))
            .stderr(std::fs::File::create(&diagnostics).expect("relay log"))
            .spawn()
            .expect("spawn the relay");
        Self {
            child,
            log,
            _dir: dir,
        }
    }

    /// The relay's full address on one of its interfaces.
    pub fn address(&self, ip: &str) -> String {
        wait_for("the relay's address", Duration::from_secs(30), || {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            log.lines()
                .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("/ip4/")))
                .find(|a| a.starts_with(&format!("/ip4/{ip}/tcp/")) && a.contains("/p2p/"))
                .map(str::to_owned)
        })
    }

    /// What the relay printed and logged.
    pub fn log(&self) -> String {
        let mut out = std::fs::read_to_string(&self.log).unwrap_or_default();
        out.push_str(&std::fs::read_to_string(self.log.with_extension("err")).unwrap_or_default());
        out
    }
}

impl Drop for RelayInNs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! `hush bench liveness`: what the liveness probe costs one idle
//! connection, in bytes per second on the wire.
//!
//! Two swarms in this process, each running only `hush_host::liveness`
//! with the settings nodes and relays use, connected over loopback TCP
//! (Noise, Yamux) and left idle. The kernel's own counters for the
//! dialler's socket (`ss -ti`: payload bytes and segments both ways, pure
//! ACKs included) are read once the handshake is over and again after the
//! measured period; the wire figure adds 52 bytes of IPv4 and TCP header
//! (with timestamps) per segment. Ethernet would add 38 bytes per frame
//! (header, FCS, preamble and gap) on top.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use hush_host::liveness;
use libp2p::swarm::SwarmEvent;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::{Multiaddr, Swarm, SwarmBuilder};
use serde_json::json;

/// IPv4 (20) and TCP (20, plus 12 of timestamp option) headers.
const HEADER_BYTES: u64 = 52;

type Probing = Toggle<liveness::Behaviour>;

/// `probing`: with liveness; without, the same connection as a baseline
/// (what Yamux itself sends on an idle connection: a ping every 10 s).
fn swarm(probing: bool) -> Result<Swarm<Probing>> {
    // The hosts' own TCP transport, sockets watched as on nodes and relays.
    let activity = liveness::Activity::default();
    let behaviour = liveness::Behaviour::default().with_activity(activity.clone());
    Ok(SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_other_transport(|key| hush_host::tcp_transport(key, activity))?
        .with_behaviour(|_| Toggle::from(probing.then_some(behaviour)))?
        // Liveness never keeps a connection open; an idle node's
        // connection to its relay stays up for other reasons.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build())
}

/// Payload bytes and segments, both directions, of the TCP socket with
/// local port `port` (from `ss -tinH`).
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    bytes: u64,
    segments: u64,
}

impl Counters {
    fn since(self, before: Self) -> Self {
        Self {
            bytes: self.bytes.saturating_sub(before.bytes),
            segments: self.segments.saturating_sub(before.segments),
        }
    }

    /// Bytes on the wire per second over `secs`.
    fn wire_per_s(self, secs: u64) -> f64 {
        (self.bytes + self.segments * HEADER_BYTES) as f64 / secs as f64
    }
}

fn counters(port: u16) -> Result<Counters> {
    let filter = format!("( sport = :{port} )");
    let out = Command::new("ss")
        .args(["-tinH", "state", "established", &filter])
        .output()
        .context("could not run `ss` (iproute2); install it to run this bench")?;
    if !out.status.success() {
        bail!("ss failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| -> u64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let c = Counters {
        bytes: field("bytes_sent:") + field("bytes_received:"),
        segments: field("segs_out:") + field("segs_in:"),
    };
    if c.segments == 0 {
        bail!("ss shows no established socket on port {port}:\n{text}");
    }
    Ok(c)
}

/// Two swarms connected over loopback; `port` is the dialler's local port.
struct Pair {
    a: Swarm<Probing>,
    b: Swarm<Probing>,
    port: u16,
}

impl Pair {
    async fn connect(probing: bool) -> Result<Self> {
        let (mut a, mut b) = (swarm(probing)?, swarm(probing)?);
        b.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
        let target: Multiaddr = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = b.select_next_some().await {
                break address;
            }
        };
        a.dial(target)?;
        let port = loop {
            let event = tokio::select! {
                e = a.select_next_some() => e,
                e = b.select_next_some() => e,
            };
            // The listener sees the dialler's address: its port is the
            // local port of the dialler's socket.
            if let SwarmEvent::ConnectionEstablished {
                endpoint: libp2p::core::ConnectedPoint::Listener { send_back_addr, .. },
                ..
            } = event
            {
                break tcp_port(&send_back_addr)
                    .context("the dialler's address has no TCP port")?;
            }
        };
        Ok(Self { a, b, port })
    }

    /// The next event of either swarm; an error if the connection closed.
    async fn next(&mut self) -> Result<()> {
        let event = tokio::select! {
            e = self.a.select_next_some() => e,
            e = self.b.select_next_some() => e,
        };
        match event {
            SwarmEvent::ConnectionClosed { cause, .. } => {
                bail!("the idle connection closed: {cause:?}")
            }
            SwarmEvent::Behaviour(liveness::Event::Dead { silent_for, .. }) => {
                bail!("a live connection was declared dead after {silent_for:?} of silence")
            }
            _ => Ok(()),
        }
    }
}

/// Drives both pairs for `time`.
async fn idle(probed: &mut Pair, baseline: &mut Pair, time: Duration) -> Result<()> {
    let sleep = tokio::time::sleep(time);
    tokio::pin!(sleep);
    loop {
        tokio::select! {
            r = probed.next() => r?,
            r = baseline.next() => r?,
            () = &mut sleep => return Ok(()),
        }
    }
}

pub async fn liveness(secs: u64, json: bool) -> Result<()> {
    let mut probed = Pair::connect(true).await?;
    let mut baseline = Pair::connect(false).await?;
    // Past the handshakes and the first exchanges.
    idle(&mut probed, &mut baseline, Duration::from_secs(2)).await?;
    let before = (counters(probed.port)?, counters(baseline.port)?);
    idle(&mut probed, &mut baseline, Duration::from_secs(secs)).await?;
    let with = counters(probed.port)?.since(before.0);
    let without = counters(baseline.port)?.since(before.1);
    let (total, base) = (with.wire_per_s(secs), without.wire_per_s(secs));
    let config = liveness::Config::default();
    if json {
        println!(
            "{}",
            json!({
                "seconds": secs,
                "idle_ms": config.idle.as_millis() as u64,
                "probe_timeout_ms": config.probe_timeout.as_millis() as u64,
                "max_misses": config.max_misses,
                "detection_bound_ms": config.detection_bound().as_millis() as u64,
                "payload_bytes": with.bytes,
                "segments": with.segments,
                "wire_bytes_per_s": total,
                "baseline_wire_bytes_per_s": base,
                "probe_wire_bytes_per_s": total - base,
            })
        );
    } else {
        println!(
            "one idle connection for {secs} s (a probe after {:?} idle, dead after {} failed \
             probes of {:?}: within {:?} of silence):",
            config.idle,
            config.max_misses,
            config.probe_timeout,
            config.detection_bound()
        );
        println!(
            "  with probes:    {} payload bytes in {} segments = {total:.1} bytes/s on the wire",
            with.bytes, with.segments
        );
        println!(
            "  without probes: {} payload bytes in {} segments = {base:.1} bytes/s (Yamux's own ping)",
            without.bytes, without.segments
        );
        println!(
            "  the probes cost {:.1} bytes/s, both directions together (+ {HEADER_BYTES} bytes of \
             IPv4/TCP header per segment counted)",
            total - base
        );
    }
    Ok(())
}

fn tcp_port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        libp2p::multiaddr::Protocol::Tcp(port) => Some(port),
        _ => None,
    })
}

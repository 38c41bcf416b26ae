//! Prometheus metrics, served as text on `GET /metrics`.
//!
//! Counters and gauges are atomics the service updates from the engine's
//! [`RelayStats`] after each step; the HTTP side is a
//! deliberately small server: one request per connection, a 4 KiB request
//! limit, a 5 second deadline, and at most 16 connections at a time.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hush_protocol::Refusal;
use hush_protocol::relay::RelayStats;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

const REFUSALS: [(Refusal, &str); Refusal::COUNT] = [
    (Refusal::Malformed, "malformed"),
    (Refusal::NotOwner, "not_owner"),
    (Refusal::StaleChallenge, "stale_challenge"),
    (Refusal::MailboxFull, "mailbox_full"),
    (Refusal::SenderQuota, "sender_quota"),
    (Refusal::RelayFull, "relay_full"),
    (Refusal::TooLarge, "too_large"),
    (Refusal::Unavailable, "unavailable"),
    (Refusal::NoKeys, "no_keys"),
    (Refusal::StrangerQuota, "stranger_quota"),
];

#[derive(Debug, Default)]
pub struct Metrics {
    pub stored_messages: AtomicU64,
    pub stored_bytes: AtomicU64,
    pub deposits: AtomicU64,
    pub duplicates: AtomicU64,
    pub fetches: AtomicU64,
    pub delivered: AtomicU64,
    pub expired: AtomicU64,
    pub keys_claimed: AtomicU64,
    pub connections: AtomicU64,
    pub commits: AtomicU64,
    pub dht_peers: AtomicU64,
    pub history_bytes: AtomicU64,
    pub history_dropped: AtomicU64,
    pub dht_puts_refused: AtomicU64,
    pub mail_log_unindexed_bytes: AtomicU64,
    pub mail_log_index_commits: AtomicU64,
    pub mail_log_waits: AtomicU64,
    pub dead_connections: AtomicU64,
    pub reservations: AtomicU64,
    pub circuits: AtomicU64,
    /// Listening and serving (`/readyz`).
    ready: std::sync::atomic::AtomicBool,
    /// From a deposit's arrival to its answer (after the durable write).
    deposit_seconds: Histogram,
    refusals: [AtomicU64; Refusal::COUNT],
}

impl Metrics {
    /// Takes the engine's counters.
    pub fn record(&self, stats: &RelayStats) {
        let set = |metric: &AtomicU64, value: u64| metric.store(value, Ordering::Relaxed);
        set(&self.stored_messages, stats.stored_messages);
        set(&self.stored_bytes, stats.stored_bytes);
        set(&self.deposits, stats.deposits);
        set(&self.duplicates, stats.duplicates);
        set(&self.fetches, stats.fetches);
        set(&self.delivered, stats.delivered);
        set(&self.expired, stats.expired);
        set(&self.keys_claimed, stats.keys_claimed);
        set(&self.commits, stats.commits);
        for (metric, value) in self.refusals.iter().zip(stats.refusals) {
            set(metric, value);
        }
    }

    /// Takes the mail logs' counters.
    pub fn record_log(&self, stats: &crate::store::LogStats) {
        let set = |metric: &AtomicU64, value: u64| metric.store(value, Ordering::Relaxed);
        set(&self.mail_log_unindexed_bytes, stats.unindexed_bytes);
        set(&self.mail_log_index_commits, stats.index_commits);
        set(&self.mail_log_waits, stats.writer_waits);
    }

    /// A group message on a kept topic was not kept: the disk budget is
    /// full.
    pub fn history_dropped(&self) {
        self.history_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// The circuit relay's usage now.
    pub fn record_circuits(&self, reservations: usize, circuits: usize) {
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        self.reservations
            .store(as_u64(reservations), Ordering::Relaxed);
        self.circuits.store(as_u64(circuits), Ordering::Relaxed);
    }

    /// A deposit was answered `elapsed` after it arrived.
    pub fn deposit_answered(&self, elapsed: Duration) {
        self.deposit_seconds.observe(elapsed);
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A connection went silent and was closed (see `hush_host::liveness`).
    pub fn dead_connection(&self) {
        self.dead_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A DHT put over the per-peer or per-address rate.
    pub fn dht_puts_refused(&self) {
        self.dht_puts_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: &AtomicU64| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        };
        metric(
            "hush_relay_stored_messages",
            "gauge",
            "Sealed envelopes waiting in mailboxes.",
            &self.stored_messages,
        );
        metric(
            "hush_relay_stored_bytes",
            "gauge",
            "Bytes of sealed envelopes waiting in mailboxes.",
            &self.stored_bytes,
        );
        metric(
            "hush_relay_deposits_total",
            "counter",
            "Envelopes durably stored.",
            &self.deposits,
        );
        metric(
            "hush_relay_duplicate_deposits_total",
            "counter",
            "Deposits of envelopes already stored.",
            &self.duplicates,
        );
        metric(
            "hush_relay_fetches_total",
            "counter",
            "Mailbox fetch requests answered.",
            &self.fetches,
        );
        metric(
            "hush_relay_delivered_total",
            "counter",
            "Envelopes acked (and deleted) by their owner.",
            &self.delivered,
        );
        metric(
            "hush_relay_expired_total",
            "counter",
            "Envelopes deleted unfetched after the retention period.",
            &self.expired,
        );
        metric(
            "hush_relay_keys_claimed_total",
            "counter",
            "One-time or fallback keys handed out.",
            &self.keys_claimed,
        );
        metric(
            "hush_relay_connections",
            "gauge",
            "Open libp2p connections.",
            &self.connections,
        );
        metric(
            "hush_relay_reservations",
            "gauge",
            "Peers holding a circuit reservation here (limit 4096).",
            &self.reservations,
        );
        metric(
            "hush_relay_circuits",
            "gauge",
            "Circuits open through this relay between two peers (limit 1024).",
            &self.circuits,
        );
        metric(
            "hush_relay_dead_connections_total",
            "counter",
            "Connections closed because the peer stopped answering liveness probes (its network went away without closing them).",
            &self.dead_connections,
        );
        metric(
            "hush_relay_commits_total",
            "counter",
            "Durable write batches.",
            &self.commits,
        );
        metric(
            "hush_relay_mail_log_unindexed_bytes",
            "gauge",
            "Deposits and deletions synced to the mail logs but not yet moved into relay.redb.",
            &self.mail_log_unindexed_bytes,
        );
        metric(
            "hush_relay_mail_log_index_commits_total",
            "counter",
            "Commits that moved mail from the logs into relay.redb.",
            &self.mail_log_index_commits,
        );
        metric(
            "hush_relay_mail_log_waits_total",
            "counter",
            "Write batches that waited because both mail logs were full (the disk or CPU cannot keep up).",
            &self.mail_log_waits,
        );
        metric(
            "hush_relay_dht_peers",
            "gauge",
            "Peers in the Kademlia routing table.",
            &self.dht_peers,
        );
        metric(
            "hush_relay_dht_puts_refused_total",
            "counter",
            "DHT records refused: over the per-peer or per-address rate.",
            &self.dht_puts_refused,
        );
        metric(
            "hush_relay_history_bytes",
            "gauge",
            "Bytes of group history kept (they count in disk_bytes).",
            &self.history_bytes,
        );
        metric(
            "hush_relay_history_dropped_total",
            "counter",
            "Group messages on kept topics not kept because the disk budget was full.",
            &self.history_dropped,
        );
        self.deposit_seconds.render(
            &mut out,
            "hush_relay_deposit_seconds",
            "Time from a deposit's arrival to its answer (stored durably, or refused).",
        );
        let _ = writeln!(
            out,
            "# HELP hush_build_info The running hush version (always 1).\n\
             # TYPE hush_build_info gauge\n\
             hush_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let _ = writeln!(
            out,
            "# HELP hush_relay_refusals_total Requests or deposits refused, by reason."
        );
        let _ = writeln!(out, "# TYPE hush_relay_refusals_total counter");
        for (reason, label) in REFUSALS {
            let count = self
                .refusals
                .get(reason as usize)
                .map_or(0, |c| c.load(Ordering::Relaxed));
            let _ = writeln!(
                out,
                "hush_relay_refusals_total{{reason=\"{label}\"}} {count}"
            );
        }
        out
    }
}

/// The HTTP endpoint for monitoring: `/metrics` (Prometheus text),
/// `/healthz` (200 while the process serves) and `/readyz` (200 once the
/// relay listens and serves, 503 before and while it stops). Stops when
/// dropped.
pub struct Server {
    address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        let address = listener.local_addr()?;
        let task = tokio::spawn(serve(listener, metrics));
        Ok(Self { address, task })
    }

    /// Where it listens (the port chosen, if 0 was asked for).
    pub fn address(&self) -> SocketAddr {
        self.address
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What to answer a request line with: status and body.
fn answer(request: &str, metrics: &Metrics) -> (&'static str, String) {
    let path = request
        .strip_prefix("GET ")
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("");
    match path {
        "/metrics" => ("200 OK", metrics.render()),
        "/healthz" => ("200 OK", "ok\n".to_owned()),
        "/readyz" if metrics.is_ready() => ("200 OK", "ready\n".to_owned()),
        "/readyz" => (
            "503 Service Unavailable",
            "not ready: starting (opening the store, binding addresses) or stopping\n".to_owned(),
        ),
        _ => (
            "404 Not Found",
            "try /metrics, /healthz or /readyz\n".to_owned(),
        ),
    }
}

async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let permits = Arc::new(Semaphore::new(16));
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let answer = async {
                let mut buf = vec![0u8; 4096];
                let mut len = 0;
                while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
                    let n = stream.read(&mut buf[len..]).await?;
                    if n == 0 {
                        break;
                    }
                    len += n;
                }
                let request = String::from_utf8_lossy(&buf[..len]);
                let (status, body) = answer(&request, &metrics);
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            };
            let _ = tokio::time::timeout(Duration::from_secs(5), answer).await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deposit_latency_is_a_cumulative_histogram() {
        let metrics = Metrics::default();
        for ms in [0, 3, 3, 40, 7000] {
            metrics.deposit_answered(Duration::from_millis(ms));
        }
        let text = metrics.render();
        for line in [
            "hush_relay_deposit_seconds_bucket{le=\"0.001\"} 1",
            "hush_relay_deposit_seconds_bucket{le=\"0.005\"} 3",
            "hush_relay_deposit_seconds_bucket{le=\"0.05\"} 4",
            "hush_relay_deposit_seconds_bucket{le=\"5\"} 4",
            "hush_relay_deposit_seconds_bucket{le=\"+Inf\"} 5",
            "hush_relay_deposit_seconds_count 5",
            "hush_relay_deposit_seconds_sum 7.046",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }

    #[test]
    fn readyz_is_503_until_the_relay_serves_and_again_while_it_stops() {
        let metrics = Metrics::default();
        let get = |path: &str| answer(&format!("GET {path} HTTP/1.1\r\n\r\n"), &metrics).0;
        assert_eq!(get("/healthz"), "200 OK");
        assert_eq!(get("/readyz"), "503 Service Unavailable");
        metrics.set_ready(true);
        assert_eq!(get("/readyz"), "200 OK");
        assert!(
            answer("GET /metrics HTTP/1.1\r\n", &metrics)
                .1
                .contains("hush_relay_connections")
        );
        metrics.set_ready(false);
        assert_eq!(get("/readyz"), "503 Service Unavailable");
        assert_eq!(get("/elsewhere"), "404 Not Found");
        assert_eq!(
            answer("POST /readyz HTTP/1.1\r\n", &metrics).0,
            "404 Not Found"
        );
    }
}

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// A Prometheus histogram of durations: counts per bucket (not
/// cumulative; summed when rendered), their sum and count.
#[derive(Debug, Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKETS.len()],
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| secs <= *b) {
            self.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, count) in BUCKETS.iter().zip(&self.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        let _ = writeln!(out, "{name}_count {count}");
    }
}

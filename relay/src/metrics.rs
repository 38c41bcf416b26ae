//! Prometheus metrics, served in the OpenMetrics text format on
//! `GET /metrics`, through `prometheus-client`: the relay's own (see
//! docs/relay-operators.md), libp2p's (swarm, Kademlia, circuit relay,
//! gossipsub, identify: `libp2p_*`) and the transport's bandwidth.
//!
//! The relay's counters and gauges are atomics the service updates from the
//! engine's [`RelayStats`] after each step, read by a [`Collector`] on each
//! scrape; the latency histograms are `prometheus-client` histograms. The
//! HTTP side is a deliberately small server: one request per connection, a
//! 4 KiB request limit, a 5 second deadline, and at most 16 connections at
//! a time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use hush_protocol::Refusal;
use hush_protocol::relay::RelayStats;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
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
    (Refusal::Dropped, "dropped"),
    (Refusal::PushRefused, "push_refused"),
];

/// Upper bounds of the deposit latency buckets, in seconds.
const DEPOSIT_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];
/// Fetches may be held open up to 20 s while the mailbox is empty (older
/// nodes; batches are never held).
const FETCH_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0,
];

/// The relay's own counters and gauges, as the service last set them.
#[derive(Debug, Default)]
pub struct Values {
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
    pub hosted_key_devices: AtomicU64,
    pub hosted_keys: AtomicU64,
    pub revoked_holders: AtomicU64,
    pub dropped_mailboxes: AtomicU64,
    pub files: AtomicU64,
    pub file_bytes: AtomicU64,
    pub file_bytes_served: AtomicU64,
    pub push_devices: AtomicU64,
    pub pushes_sent: AtomicU64,
    pub pushes_failed: AtomicU64,
    pub pushes_dropped: AtomicU64,
    refusals: [AtomicU64; Refusal::COUNT],
}

/// Every metric of the relay, and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    pub values: Arc<Values>,
    /// Listening and serving (`/readyz`).
    ready: AtomicBool,
    /// From a deposit's arrival to its answer (after the durable write).
    deposit_seconds: Histogram,
    /// From a fetch's arrival to its answer (a held fetch counts its wait).
    fetch_seconds: Histogram,
    registry: Mutex<Registry>,
}

impl Default for Metrics {
    fn default() -> Self {
        let values = Arc::new(Values::default());
        let deposit_seconds = Histogram::new(DEPOSIT_BUCKETS);
        let fetch_seconds = Histogram::new(FETCH_BUCKETS);
        let mut registry = Registry::default();
        registry.register_collector(Box::new(values.clone()));
        registry.register(
            "hush_relay_deposit_seconds",
            "Time from a deposit's arrival to its answer (stored durably, or refused)",
            deposit_seconds.clone(),
        );
        registry.register(
            "hush_relay_fetch_seconds",
            "Time from a mailbox fetch's arrival to its answer (a fetch held open while the mailbox is empty counts its wait, up to 20 s)",
            fetch_seconds.clone(),
        );
        Self {
            values,
            ready: AtomicBool::new(false),
            deposit_seconds,
            fetch_seconds,
            registry: Mutex::new(registry),
        }
    }
}

impl Metrics {
    /// The registry, to add libp2p's metrics to (at start).
    pub fn registry(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the engine's counters.
    pub fn record(&self, stats: &RelayStats) {
        let v = &self.values;
        set(&v.stored_messages, stats.stored_messages);
        set(&v.stored_bytes, stats.stored_bytes);
        set(&v.deposits, stats.deposits);
        set(&v.duplicates, stats.duplicates);
        set(&v.fetches, stats.fetches);
        set(&v.delivered, stats.delivered);
        set(&v.expired, stats.expired);
        set(&v.keys_claimed, stats.keys_claimed);
        set(&v.commits, stats.commits);
        set(&v.revoked_holders, stats.revoked_holders);
        set(&v.dropped_mailboxes, stats.dropped_mailboxes);
        set(&v.push_devices, stats.push_devices);
        set(&v.pushes_dropped, stats.pushes_dropped);
        for (metric, value) in v.refusals.iter().zip(stats.refusals) {
            set(metric, value);
        }
    }

    /// Takes the mail logs' counters.
    pub fn record_log(&self, stats: &crate::store::LogStats) {
        let v = &self.values;
        set(&v.mail_log_unindexed_bytes, stats.unindexed_bytes);
        set(&v.mail_log_index_commits, stats.index_commits);
        set(&v.mail_log_waits, stats.writer_waits);
    }

    /// Devices with one-time or fallback keys here, and one-time keys held.
    pub fn record_hosted_keys(&self, devices: u64, keys: u64) {
        set(&self.values.hosted_key_devices, devices);
        set(&self.values.hosted_keys, keys);
    }

    /// A group message on a kept topic was not kept: the disk budget is
    /// full.
    pub fn history_dropped(&self) {
        self.values.history_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Files held for offline recipients, their bytes, and the bytes
    /// served of them since the start.
    pub fn record_files(&self, files: u64, bytes: u64, served: u64) {
        set(&self.values.files, files);
        set(&self.values.file_bytes, bytes);
        set(&self.values.file_bytes_served, served);
    }

    /// The circuit relay's usage now.
    pub fn record_circuits(&self, reservations: usize, circuits: usize) {
        let as_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        set(&self.values.reservations, as_u64(reservations));
        set(&self.values.circuits, as_u64(circuits));
    }

    /// A deposit was answered `elapsed` after it arrived.
    pub fn deposit_answered(&self, elapsed: Duration) {
        self.deposit_seconds.observe(elapsed.as_secs_f64());
    }

    /// A fetch was answered `elapsed` after it arrived.
    pub fn fetch_answered(&self, elapsed: Duration) {
        self.fetch_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// A connection went silent and was closed (see `hush_host::liveness`).
    pub fn dead_connection(&self) {
        self.values.dead_connections.fetch_add(1, Ordering::Relaxed);
    }

    /// A wake-up was POSTed and answered 2xx (`true`), or not.
    pub fn push_done(&self, ok: bool) {
        let counter = match ok {
            true => &self.values.pushes_sent,
            false => &self.values.pushes_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A DHT put over the per-peer or per-address rate.
    pub fn dht_puts_refused(&self) {
        self.values.dht_puts_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry()) {
            tracing::warn!(error = %e, "could not encode the metrics");
        }
        out
    }
}

fn set(metric: &AtomicU64, value: u64) {
    metric.store(value, Ordering::Relaxed);
}

/// The relay's own metrics: (name without `_total`, type, help, value).
type Row<'a> = (&'static str, MetricType, &'static str, &'a AtomicU64);

impl Values {
    fn rows(&self) -> [Row<'_>; 31] {
        use MetricType::{Counter, Gauge};
        [
            (
                "hush_relay_stored_messages",
                Gauge,
                "Sealed envelopes waiting in mailboxes.",
                &self.stored_messages,
            ),
            (
                "hush_relay_stored_bytes",
                Gauge,
                "Bytes of sealed envelopes waiting in mailboxes.",
                &self.stored_bytes,
            ),
            (
                "hush_relay_deposits",
                Counter,
                "Envelopes durably stored.",
                &self.deposits,
            ),
            (
                "hush_relay_duplicate_deposits",
                Counter,
                "Deposits of envelopes already stored.",
                &self.duplicates,
            ),
            (
                "hush_relay_fetches",
                Counter,
                "Mailbox fetch requests answered.",
                &self.fetches,
            ),
            (
                "hush_relay_delivered",
                Counter,
                "Envelopes acked (and deleted) by their owner.",
                &self.delivered,
            ),
            (
                "hush_relay_expired",
                Counter,
                "Envelopes deleted unfetched after the retention period.",
                &self.expired,
            ),
            (
                "hush_relay_keys_claimed",
                Counter,
                "One-time or fallback keys handed out.",
                &self.keys_claimed,
            ),
            (
                "hush_relay_hosted_key_devices",
                Gauge,
                "Devices whose one-time or fallback keys this relay hosts.",
                &self.hosted_key_devices,
            ),
            (
                "hush_relay_hosted_keys",
                Gauge,
                "One-time keys hosted here, all devices together (limit: quotas.one_time_keys_per_device each).",
                &self.hosted_keys,
            ),
            (
                "hush_relay_revoked_holders",
                Gauge,
                "Deposit rights mailbox owners revoked here (blocked or removed contacts), all mailboxes together (limit 65536).",
                &self.revoked_holders,
            ),
            (
                "hush_relay_dropped_mailboxes",
                Gauge,
                "Mailboxes of devices their account revoked: refused for good, their mail unreadable until it expires (limit 1048576).",
                &self.dropped_mailboxes,
            ),
            (
                "hush_relay_push_devices",
                Gauge,
                "Devices registered to be woken at a push endpoint while offline (limit: push.max_devices).",
                &self.push_devices,
            ),
            (
                "hush_relay_pushes_sent",
                Counter,
                "Wake-ups POSTed to push endpoints and answered 2xx.",
                &self.pushes_sent,
            ),
            (
                "hush_relay_pushes_failed",
                Counter,
                "Wake-ups that failed: the endpoint was unreachable, private, slow or answered an error.",
                &self.pushes_failed,
            ),
            (
                "hush_relay_pushes_dropped",
                Counter,
                "Wake-ups dropped because too many were waiting to be sent.",
                &self.pushes_dropped,
            ),
            (
                "hush_relay_files",
                Gauge,
                "Files (encrypted blobs) held for offline recipients, whole or being uploaded.",
                &self.files,
            ),
            (
                "hush_relay_file_bytes",
                Gauge,
                "Bytes of the files held (limit: files.total_bytes; each uploader files.per_uploader_bytes).",
                &self.file_bytes,
            ),
            (
                "hush_relay_file_bytes_served",
                Counter,
                "Bytes of files served to recipients since the relay started.",
                &self.file_bytes_served,
            ),
            (
                "hush_relay_connections",
                Gauge,
                "Open libp2p connections.",
                &self.connections,
            ),
            (
                "hush_relay_reservations",
                Gauge,
                "Peers holding a circuit reservation here (limit 4096).",
                &self.reservations,
            ),
            (
                "hush_relay_circuits",
                Gauge,
                "Circuits open through this relay between two peers (limit 1024).",
                &self.circuits,
            ),
            (
                "hush_relay_dead_connections",
                Counter,
                "Connections closed because the peer stopped answering liveness probes (its network went away without closing them).",
                &self.dead_connections,
            ),
            (
                "hush_relay_commits",
                Counter,
                "Durable write batches.",
                &self.commits,
            ),
            (
                "hush_relay_mail_log_unindexed_bytes",
                Gauge,
                "Deposits and deletions synced to the mail logs but not yet moved into relay.redb.",
                &self.mail_log_unindexed_bytes,
            ),
            (
                "hush_relay_mail_log_index_commits",
                Counter,
                "Commits that moved mail from the logs into relay.redb.",
                &self.mail_log_index_commits,
            ),
            (
                "hush_relay_mail_log_waits",
                Counter,
                "Write batches that waited because both mail logs were full (the disk or CPU cannot keep up).",
                &self.mail_log_waits,
            ),
            (
                "hush_relay_dht_peers",
                Gauge,
                "Peers in the Kademlia routing table.",
                &self.dht_peers,
            ),
            (
                "hush_relay_dht_puts_refused",
                Counter,
                "DHT records refused: over the per-peer or per-address rate.",
                &self.dht_puts_refused,
            ),
            (
                "hush_relay_history_bytes",
                Gauge,
                "Bytes of group history kept (they count in disk_bytes).",
                &self.history_bytes,
            ),
            (
                "hush_relay_history_dropped",
                Counter,
                "Group messages on kept topics not kept because the disk budget was full.",
                &self.history_dropped,
            ),
        ]
    }
}

impl Collector for Values {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, kind, help, value) in self.rows() {
            let value = value.load(Ordering::Relaxed);
            let metric = encoder.encode_descriptor(name, help, None, kind)?;
            match kind {
                MetricType::Counter => ConstCounter::new(value).encode(metric)?,
                _ => ConstGauge::new(value).encode(metric)?,
            }
        }
        let build = ConstGauge::new(1u64);
        let mut metric = encoder.encode_descriptor(
            "hush_build_info",
            "The running hush version (always 1).",
            None,
            build.metric_type(),
        )?;
        let labels = [("version", env!("CARGO_PKG_VERSION"))];
        build.encode(metric.encode_family(&labels)?)?;
        let mut metric = encoder.encode_descriptor(
            "hush_relay_refusals",
            "Requests or deposits refused, by reason.",
            None,
            MetricType::Counter,
        )?;
        for (reason, label) in REFUSALS {
            let count = self
                .refusals
                .get(reason as usize)
                .map_or(0, |c| c.load(Ordering::Relaxed));
            let labels = [("reason", label)];
            ConstCounter::new(count).encode(metric.encode_family(&labels)?)?;
        }
        Ok(())
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
                    "HTTP/1.1 {status}\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
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
            "hush_relay_deposit_seconds_bucket{le=\"5.0\"} 4",
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

    #[test]
    fn counters_gauges_and_labels_render_as_openmetrics() {
        let metrics = Metrics::default();
        metrics.record_circuits(3, 1);
        metrics.record_hosted_keys(2, 37);
        metrics.dead_connection();
        let text = metrics.render();
        for line in [
            "# TYPE hush_relay_circuits gauge",
            "hush_relay_circuits 1",
            "hush_relay_hosted_keys 37",
            "# TYPE hush_relay_dead_connections counter",
            "hush_relay_dead_connections_total 1",
            "hush_relay_refusals_total{reason=\"mailbox_full\"} 0",
            "hush_build_info{version=\"",
            "# TYPE hush_relay_fetch_seconds histogram",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}

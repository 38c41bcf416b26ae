//! Sends the engine's wake-ups (`RelayEngine::poll_push`): one HTTP/1.1
//! POST each, over TLS (rustls, with the Mozilla roots of `webpki-roots`)
//! for `https://` endpoints. At most [`MAX_IN_FLIGHT`] run at once, each on
//! a blocking thread and within [`POST_DEADLINE`]; the engine holds the
//! rest.
//!
//! The endpoint's name is resolved here, at send time, and unless
//! `push.allow_private` is set every address it resolves to must be public
//! ([`is_public`]): a name that points into the relay's own network (or
//! was made to, after registration) is not posted to.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hush_protocol::relay::{PushRules, is_public};
use hush_protocol::{PushTarget, PushUrl};
use thiserror::Error;

use crate::metrics::Metrics;

/// Wake-ups being posted at once, at most.
pub const MAX_IN_FLIGHT: usize = 16;
/// Longest one wake-up may take, connecting included.
pub const POST_DEADLINE: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Most of the answer read: its status line is all that matters.
const MAX_ANSWER_BYTES: usize = 1024;

#[derive(Debug, Error)]
pub enum PushError {
    #[error("the endpoint is not a valid URL: {0}")]
    Url(&'static str),
    #[error("could not resolve the endpoint's host: {0}")]
    Resolve(#[source] std::io::Error),
    #[error("the endpoint's host resolves only to private or local addresses")]
    Private,
    #[error("could not connect to the endpoint: {0}")]
    Connect(#[source] std::io::Error),
    #[error("TLS with the endpoint failed: {0}")]
    Tls(String),
    #[error("the endpoint's answer could not be read: {0}")]
    Io(#[source] std::io::Error),
    #[error("the endpoint took longer than {} s", POST_DEADLINE.as_secs())]
    Deadline,
    #[error("the endpoint did not answer HTTP")]
    NotHttp,
    #[error("the endpoint answered HTTP {0}")]
    Status(u16),
}

/// Endpoints that said they are gone, waiting for the relay's loop (at
/// most this many; more wait for the next 404 or 410).
const MAX_GONE: usize = 1024;

/// Posts wake-ups off the relay's loop.
pub struct Pusher {
    allow_private: bool,
    tls: Arc<rustls::ClientConfig>,
    in_flight: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
    /// Targets whose endpoint answered 404 or 410.
    gone: Arc<std::sync::Mutex<Vec<PushTarget>>>,
}

impl Pusher {
    pub fn new(rules: &PushRules, metrics: Arc<Metrics>) -> Result<Self, PushError> {
        Ok(Self {
            allow_private: rules.allow_private,
            tls: Arc::new(tls_config()?),
            in_flight: Arc::default(),
            metrics,
            gone: Arc::default(),
        })
    }

    /// The targets whose endpoint answered that it is gone since the last
    /// call (for `RelayEngine::handle_push_gone`).
    pub fn take_gone(&self) -> Vec<PushTarget> {
        std::mem::take(&mut *self.gone.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Whether another wake-up may start now.
    pub fn has_room(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) < MAX_IN_FLIGHT
    }

    /// Posts `target`'s wake-up on a blocking thread; the outcome goes to
    /// the metrics and the log (never the endpoint's URL: it is often a
    /// secret of its own).
    pub fn send(&self, target: PushTarget) {
        let slot = InFlight::take(&self.in_flight);
        let (tls, metrics, gone) = (self.tls.clone(), self.metrics.clone(), self.gone.clone());
        let allow_private = self.allow_private;
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let result = post(&target, &tls, allow_private);
            if matches!(result, Err(PushError::Status(404 | 410))) {
                let mut gone = gone.lock().unwrap_or_else(|p| p.into_inner());
                if gone.len() < MAX_GONE {
                    gone.push(target);
                }
            }
            metrics.push_done(result.is_ok());
            match result {
                Ok(status) => tracing::debug!(status, "push wake-up sent"),
                Err(error) => tracing::info!(%error, "push wake-up failed"),
            }
        });
    }
}

/// One wake-up counted in flight until dropped (also if its thread
/// unwinds).
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn take(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn tls_config() -> Result<rustls::ClientConfig, PushError> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| PushError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// POSTs one wake-up; the answer's status when it is 2xx.
pub fn post(
    target: &PushTarget,
    tls: &Arc<rustls::ClientConfig>,
    allow_private: bool,
) -> Result<u16, PushError> {
    let deadline = Instant::now() + POST_DEADLINE;
    let url = PushUrl::parse(&target.endpoint).map_err(PushError::Url)?;
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(PushError::Resolve)?
        .filter(|a| allow_private || is_public(a.ip()))
        .collect();
    if addrs.is_empty() {
        return Err(PushError::Private);
    }
    let tcp = connect(&addrs, deadline)?;
    let request = request(&url, &target.wake_body());
    let status = if url.https {
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|e| PushError::Tls(e.to_string()))?;
        let conn = rustls::ClientConnection::new(tls.clone(), name)
            .map_err(|e| PushError::Tls(e.to_string()))?;
        exchange(rustls::StreamOwned::new(conn, tcp), &request, deadline)?
    } else {
        exchange(tcp, &request, deadline)?
    };
    match status {
        200..=299 => Ok(status),
        other => Err(PushError::Status(other)),
    }
}

fn connect(addrs: &[SocketAddr], deadline: Instant) -> Result<TcpStream, PushError> {
    let mut last = None;
    for addr in addrs.iter().take(4) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PushError::Deadline);
        }
        match TcpStream::connect_timeout(addr, CONNECT_TIMEOUT.min(left)) {
            Ok(tcp) => {
                let _ = tcp.set_nodelay(true);
                return Ok(tcp);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(PushError::Connect(last.unwrap_or_else(|| {
        std::io::Error::other("no address to connect to")
    })))
}

/// The request's bytes: a POST with the JSON body, `TTL` and `Urgency` for
/// Web Push / UnifiedPush servers, and `Connection: close`.
fn request(url: &PushUrl, body: &str) -> Vec<u8> {
    let host = match url.host.contains(':') {
        true => format!("[{}]", url.host),
        false => url.host.clone(),
    };
    let default_port = if url.https { 443 } else { 80 };
    let host = match url.port == default_port {
        true => host,
        false => format!("{host}:{}", url.port),
    };
    format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: hush-relay\r\n\
         Content-Type: application/json\r\nContent-Length: {len}\r\nTTL: 86400\r\n\
         Urgency: high\r\nConnection: close\r\n\r\n{body}",
        path = url.path,
        len = body.len(),
    )
    .into_bytes()
}

/// Writes the request and reads the answer's status code.
fn exchange<S: Read + Write + Timeouts>(
    mut stream: S,
    request: &[u8],
    deadline: Instant,
) -> Result<u16, PushError> {
    stream.set_timeouts(deadline)?;
    stream.write_all(request).map_err(io_or_deadline)?;
    stream.flush().map_err(io_or_deadline)?;
    let mut answer = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        if Instant::now() >= deadline {
            return Err(PushError::Deadline);
        }
        stream.set_timeouts(deadline)?;
        let n = stream.read(&mut buf).map_err(io_or_deadline)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
        if answer.len() > MAX_ANSWER_BYTES {
            break;
        }
    }
    status_of(&answer).ok_or(PushError::NotHttp)
}

fn io_or_deadline(e: std::io::Error) -> PushError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => PushError::Deadline,
        _ => PushError::Io(e),
    }
}

/// The status code of `HTTP/1.x NNN …`.
fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_ascii_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let code = parts.next()?;
    (code.len() == 3).then(|| code.parse().ok()).flatten()
}

/// Read and write timeouts up to a deadline, on the socket underneath.
trait Timeouts {
    fn set_timeouts(&mut self, deadline: Instant) -> Result<(), PushError>;
}

impl Timeouts for TcpStream {
    fn set_timeouts(&mut self, deadline: Instant) -> Result<(), PushError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(PushError::Deadline);
        }
        self.set_read_timeout(Some(left)).map_err(PushError::Io)?;
        self.set_write_timeout(Some(left)).map_err(PushError::Io)
    }
}

impl Timeouts for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn set_timeouts(&mut self, deadline: Instant) -> Result<(), PushError> {
        self.sock.set_timeouts(deadline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot HTTP server on loopback: answers `status` and returns
    /// what it was sent.
    fn server(status: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            loop {
                let n = conn.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if body.len() >= len {
                        break;
                    }
                }
            }
            conn.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                .unwrap();
            String::from_utf8(got).unwrap()
        });
        (port, handle)
    }

    fn target(port: u16) -> PushTarget {
        PushTarget {
            endpoint: format!("http://127.0.0.1:{port}/up/abc?x=1"),
            token: [0x5a; 16],
        }
    }

    #[test]
    fn a_wake_up_is_a_post_with_the_token_alone() {
        let (port, server) = server("201 Created");
        let tls = Arc::new(tls_config().unwrap());
        assert_eq!(post(&target(port), &tls, true).unwrap(), 201);
        let got = server.join().unwrap();
        assert!(got.starts_with("POST /up/abc?x=1 HTTP/1.1\r\n"), "{got}");
        assert!(
            got.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
            "{got}"
        );
        let body = got.split_once("\r\n\r\n").unwrap().1;
        assert_eq!(body, target(port).wake_body());
    }

    #[test]
    fn an_error_status_is_a_failure() {
        let (port, server) = server("404 Not Found");
        let tls = Arc::new(tls_config().unwrap());
        assert!(matches!(
            post(&target(port), &tls, true),
            Err(PushError::Status(404))
        ));
        server.join().unwrap();
    }

    #[test]
    fn a_name_resolving_into_the_relays_network_is_not_posted_to() {
        // `localhost` passes the registration check (it is a name), and
        // resolves to loopback only when the wake-up is sent.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let target = PushTarget {
            endpoint: format!("https://localhost:{port}/hook"),
            token: [1; 16],
        };
        let tls = Arc::new(tls_config().unwrap());
        assert!(matches!(
            post(&target, &tls, false),
            Err(PushError::Private)
        ));
        assert!(listener.accept().is_err(), "the relay connected");
    }

    #[tokio::test]
    async fn an_endpoint_answering_gone_is_handed_back_for_the_engine() {
        let (port, server) = server("410 Gone");
        let rules = PushRules {
            allow_private: true,
            ..PushRules::default()
        };
        let pusher = Pusher::new(&rules, Arc::new(Metrics::default())).unwrap();
        pusher.send(target(port));
        let mut gone = Vec::new();
        for _ in 0..100 {
            gone = pusher.take_gone();
            if !gone.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(gone, [target(port)]);
        server.join().unwrap();
    }

    #[test]
    fn status_lines_parse() {
        assert_eq!(status_of(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_of(b"HTTP/1.0 500\r\n"), Some(500));
        assert_eq!(status_of(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_of(b"HTTP/1.1 2000 x\r\n"), None);
    }
}

//! Any byte that arrives on a TCP connection proves the peer is alive.
//!
//! Probes alone are not enough on a slow link: while the peer sends us a
//! large response, its echo of our probe waits behind that data in its
//! send queue (Yamux, then the kernel's buffer, several megabytes with
//! autotuning), and at 1 Mbit/s a megabyte ahead of it is eight seconds.
//! So the TCP transport wraps every socket to note when it last read
//! anything ([`Activity::watch`]), and each connection's liveness handler
//! counts that as hearing from the peer.
//!
//! The transport knows the socket's addresses but not yet which libp2p
//! connection it will become; the handler is made later, with the same
//! remote address. [`Activity`] hands a watched socket's clock to the
//! handler that asks with that address. Connections it does not know
//! (QUIC, relayed circuits, other transports) are probed as before.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncWrite};
use libp2p::Multiaddr;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;

/// Watched sockets not yet claimed by a handler are forgotten after this
/// long (the connection was refused, or its handshake failed).
const UNCLAIMED_FOR: Duration = Duration::from_secs(60);
/// Watched sockets waiting to be claimed, at most; beyond it new sockets
/// are not watched (their connections are probed as if not TCP).
const MAX_UNCLAIMED: usize = 16_384;

/// When a socket last read a byte: milliseconds since [`epoch`], 0 for
/// never.
pub type LastRead = Arc<AtomicU64>;

/// The instant [`LastRead`] values count from.
pub fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_ms() -> u64 {
    u64::try_from(epoch().elapsed().as_millis())
        .unwrap_or(u64::MAX)
        .saturating_add(1)
}

/// The instant a [`LastRead`] value stands for, if any.
pub fn instant_of(last_read_ms: u64) -> Option<Instant> {
    (last_read_ms > 0).then(|| epoch() + Duration::from_millis(last_read_ms - 1))
}

/// Watched sockets waiting for their connection's handler, by remote
/// address. Clones share it: one for the transport, one for the behaviour.
#[derive(Debug, Clone, Default)]
pub struct Activity {
    unclaimed: Arc<Mutex<Unclaimed>>,
}

#[derive(Debug, Default)]
struct Unclaimed {
    by_remote: HashMap<SocketAddr, Vec<(Instant, LastRead)>>,
    count: usize,
}

impl Unclaimed {
    fn forget_old(&mut self, now: Instant) {
        let mut count = 0;
        self.by_remote.retain(|_, list| {
            list.retain(|(at, _)| now.saturating_duration_since(*at) < UNCLAIMED_FOR);
            count += list.len();
            !list.is_empty()
        });
        self.count = count;
    }
}

impl Activity {
    /// Wraps a socket the TCP transport opened or accepted (`endpoint`
    /// says which and with whom), so the liveness handler of its
    /// connection sees when it last read.
    pub fn watch<S>(&self, socket: S, endpoint: &ConnectedPoint) -> Watched<S> {
        let last_read = LastRead::default();
        if let Some(remote) = socket_addr(endpoint.get_remote_address()) {
            let now = Instant::now();
            let mut unclaimed = self.lock();
            if unclaimed.count >= MAX_UNCLAIMED {
                unclaimed.forget_old(now);
            }
            if unclaimed.count < MAX_UNCLAIMED {
                unclaimed
                    .by_remote
                    .entry(remote)
                    .or_default()
                    .push((now, last_read.clone()));
                unclaimed.count += 1;
            }
        }
        Watched {
            inner: socket,
            last_read,
        }
    }

    /// The clock of the watched socket to `remote`, for the handler of the
    /// connection that was just established over it.
    pub fn claim(&self, remote: &Multiaddr) -> Option<LastRead> {
        let remote = socket_addr(remote)?;
        let mut unclaimed = self.lock();
        let list = unclaimed.by_remote.get_mut(&remote)?;
        // The newest: an older one to the same address most likely is a
        // connection whose handshake failed.
        let (_, last_read) = list.pop()?;
        if list.is_empty() {
            unclaimed.by_remote.remove(&remote);
        }
        unclaimed.count = unclaimed.count.saturating_sub(1);
        Some(last_read)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Unclaimed> {
        // Nothing here can leave the map half-updated: a poisoned lock is
        // still usable.
        self.unclaimed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The IP address and TCP port of a direct TCP address; `None` for
/// anything else (QUIC, relayed circuits, DNS names).
fn socket_addr(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut ip: Option<IpAddr> = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(a.into()),
            Protocol::Ip6(a) => ip = Some(a.into()),
            Protocol::Tcp(p) => port = Some(p),
            Protocol::P2p(_) => {}
            _ => return None,
        }
    }
    Some(SocketAddr::new(ip?, port?))
}

/// A socket that notes when it last read anything.
#[derive(Debug)]
pub struct Watched<S> {
    inner: S,
    last_read: LastRead,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let read = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = read
            && n > 0
        {
            self.last_read.store(now_ms(), Ordering::Relaxed);
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libp2p::core::Endpoint;
    use libp2p::core::transport::PortUse;

    fn dialer(addr: &str) -> ConnectedPoint {
        ConnectedPoint::Dialer {
            address: addr.parse().expect("addr"),
            role_override: Endpoint::Dialer,
            port_use: PortUse::Reuse,
        }
    }

    #[test]
    fn a_watched_socket_is_claimed_once_by_its_address() {
        let activity = Activity::default();
        let _watched = activity.watch((), &dialer("/ip4/10.0.0.1/tcp/7001"));
        let peer =
            "/ip4/10.0.0.1/tcp/7001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        assert!(activity.claim(&peer.parse().expect("addr")).is_some());
        assert!(
            activity.claim(&peer.parse().expect("addr")).is_none(),
            "once"
        );
        // Relayed circuits and QUIC are not TCP sockets of ours.
        let circuit = "/ip4/10.0.0.1/tcp/7001/p2p-circuit/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";
        assert!(socket_addr(&circuit.parse().expect("addr")).is_none());
        assert!(socket_addr(&"/ip4/10.0.0.1/udp/1/quic-v1".parse().expect("addr")).is_none());
    }

    #[test]
    fn unclaimed_sockets_are_bounded() {
        let activity = Activity::default();
        for port in 0..(MAX_UNCLAIMED as u32 + 10) {
            let addr = format!("/ip4/10.0.{}.{}/tcp/1", port / 256 % 256, port % 256);
            let _ = activity.watch((), &dialer(&addr));
        }
        assert!(activity.lock().count <= MAX_UNCLAIMED);
    }
}

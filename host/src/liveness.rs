//! Liveness: every connection proves now and then that the peer is still
//! there, and one that cannot is closed.
//!
//! A connection whose network silently went away (a Wi-Fi gone, a laptop
//! suspended, a NAT that forgot its mapping) looks open to both ends until
//! TCP gives up, which takes many minutes; meanwhile requests on it time
//! out one by one and presence says "online". This behaviour replaces
//! libp2p's `ping` (and speaks its wire protocol, `/ipfs/ping/1.0.0`: 32
//! random bytes, echoed) with rules made for that:
//!
//! ```text
//!  heard ──idle (7 s; listener 8.4 s)──▶ probe ──2 s──▶ probe ──2 s──▶ probe ──2 s──▶ dead: closed
//!    ▲                                   │ answered, or a probe of theirs arrives            (event)
//!    └───────────────────────────────────┘
//! ```
//!
//! Probes go on one stream per connection and may overlap (the peer echoes
//! them in order), so a probe that waits behind a slow one is still sent
//! on time. Hearing the peer's own probe counts as hearing from it, and the
//! listener waits a fifth longer than the dialler: while idle, only the
//! dialler's probe and its answer cross the connection (measured cost in
//! `docs/benchmarks.md`). On TCP connections whose transport is watched
//! ([`Activity`]), any byte read proves the peer alive too, so a probe's
//! answer stuck behind a large transfer on a slow link does not kill a
//! connection that is busy delivering; probing goes on meanwhile, and is
//! how the sending side hears from us. The rules are in [`Schedule`] (no
//! IO).

mod activity;
mod schedule;
#[cfg(test)]
mod tests;

pub use activity::{Activity, LastRead, Watched};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::ReadyUpgrade;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::{
    ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
};
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId,
    FromSwarm, NetworkBehaviour, Stream, StreamUpgradeError, SubstreamProtocol, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{PeerId, StreamProtocol};

pub use schedule::{Config, Schedule, Side, Step};

/// The wire protocol: libp2p's ping.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/ipfs/ping/1.0.0");
const PROBE_LEN: usize = 32;
/// Probes awaiting their echo at most; beyond it a probe is counted as
/// sent but not written (a peer that never answers). While a transfer
/// holds the answers back, probes go every `probe_timeout`: 64 of them
/// cover two minutes of delay at the default 2 s.
const MAX_UNANSWERED: usize = 64;
/// Answers to the peer's probes waiting to be written, at most (bytes);
/// a peer that probes faster than we can answer loses its probe stream.
const MAX_UNWRITTEN_ANSWERS: usize = MAX_UNANSWERED * PROBE_LEN;

/// What the behaviour reports.
#[derive(Debug, Clone)]
pub enum Event {
    /// Nothing came back for `silent_for`: the connection is being closed.
    Dead {
        peer: PeerId,
        connection: ConnectionId,
        silent_for: Duration,
    },
}

/// Probes every connection; closes and reports the dead ones.
pub struct Behaviour {
    config: Config,
    activity: Option<Activity>,
    events: VecDeque<ToSwarm<Event, Infallible>>,
}

impl Behaviour {
    pub fn new(config: Config) -> Self {
        Self {
            config,
            activity: None,
            events: VecDeque::new(),
        }
    }

    /// Counts any byte a TCP connection reads as hearing from the peer
    /// (the transport must wrap its sockets with the same `activity`; see
    /// [`tcp_transport`](crate::tcp_transport)).
    pub fn with_activity(mut self, activity: Activity) -> Self {
        self.activity = Some(activity);
        self
    }

    fn handler(&self, side: Side, remote: &Multiaddr) -> Handler {
        let last_read = self.activity.as_ref().and_then(|a| a.claim(remote));
        Handler::new(self.config, side, last_read)
    }
}

impl Default for Behaviour {
    fn default() -> Self {
        Self::new(Config::default())
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Event;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(self.handler(Side::Listener, remote))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        remote: &Multiaddr,
        role_override: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // A hole punch makes one of the two diallers act as the listener.
        let side = match role_override {
            Endpoint::Dialer => Side::Dialer,
            Endpoint::Listener => Side::Listener,
        };
        Ok(self.handler(side, remote))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        Dead { silent_for }: THandlerOutEvent<Self>,
    ) {
        self.events.push_back(ToSwarm::GenerateEvent(Event::Dead {
            peer,
            connection,
            silent_for,
        }));
        self.events.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::One(connection),
        });
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Event, THandlerInEvent<Self>>> {
        match self.events.pop_front() {
            Some(event) => Poll::Ready(event),
            None => Poll::Pending,
        }
    }
}

/// The handler's one report: this connection is dead.
#[derive(Debug, Clone, Copy)]
pub struct Dead {
    silent_for: Duration,
}

/// A stream with 32-byte probes going one way and echoes the other.
struct Probes {
    stream: Stream,
    /// Bytes still to write.
    out: Vec<u8>,
    /// Bytes read towards the next 32-byte probe or echo.
    read: [u8; PROBE_LEN],
    filled: usize,
    /// Written since the last flush that finished: only then is the
    /// stream flushed (the handler is polled on every event of its
    /// connection, and a flush of nothing still takes yamux's lock).
    unflushed: bool,
}

impl Probes {
    fn new(mut stream: Stream) -> Self {
        stream.ignore_for_keep_alive();
        Self {
            stream,
            out: Vec::new(),
            read: [0; PROBE_LEN],
            filled: 0,
            unflushed: false,
        }
    }

    /// Writes what is queued; `Err` when the stream broke.
    fn poll_write(&mut self, cx: &mut Context<'_>) -> std::io::Result<()> {
        while !self.out.is_empty() {
            match Pin::new(&mut self.stream).poll_write(cx, &self.out) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::WriteZero.into()),
                Poll::Ready(Ok(n)) => {
                    self.out.drain(..n);
                    self.unflushed = true;
                }
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(()),
            }
        }
        if !self.unflushed {
            return Ok(());
        }
        match Pin::new(&mut self.stream).poll_flush(cx) {
            Poll::Ready(Err(e)) => Err(e),
            Poll::Ready(Ok(())) => {
                self.unflushed = false;
                Ok(())
            }
            Poll::Pending => Ok(()),
        }
    }

    /// The next whole 32 bytes read, if any; `Err` when the stream broke
    /// or ended.
    fn poll_read(&mut self, cx: &mut Context<'_>) -> std::io::Result<Option<[u8; PROBE_LEN]>> {
        while self.filled < PROBE_LEN {
            match Pin::new(&mut self.stream).poll_read(cx, &mut self.read[self.filled..]) {
                Poll::Ready(Ok(0)) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
                Poll::Ready(Ok(n)) => self.filled += n,
                Poll::Ready(Err(e)) => return Err(e),
                Poll::Pending => return Ok(None),
            }
        }
        self.filled = 0;
        Ok(Some(self.read))
    }
}

enum Outbound {
    None,
    Opening,
    Open(Box<Probes>),
    /// The peer does not speak the protocol: we cannot probe it.
    Unsupported,
}

/// One connection's prober and answerer.
pub struct Handler {
    schedule: Schedule,
    /// Wakes the handler at the schedule's next step: tokio's timer, which
    /// the runtime's own threads drive (as libp2p's are, through hush's
    /// `futures-timer` in `timer/`). Made on the first poll, inside the
    /// runtime.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The deadline `timer` is set for.
    timer_at: Option<Instant>,
    outbound: Outbound,
    /// Probes sent and not yet echoed, oldest first.
    unanswered: VecDeque<[u8; PROBE_LEN]>,
    /// Probes due but not written yet (the stream is opening).
    queued: usize,
    /// The probe stream was never asked for. It is opened as soon as the
    /// connection is: opening it later means waiting for the peer's
    /// confirmation, which a transfer from the peer would hold back
    /// (and the peer, busy sending, needs our probes to hear from us).
    fresh: bool,
    /// The peer's probes, which we echo (the newest stream it opened).
    inbound: Option<Probes>,
    /// Found dead and reported: nothing more to do.
    dead: bool,
    /// When the connection's socket last read anything, and the value
    /// seen last (TCP connections whose transport is watched).
    last_read: Option<(LastRead, u64)>,
}

impl Handler {
    fn new(config: Config, side: Side, last_read: Option<LastRead>) -> Self {
        Self {
            last_read: last_read.map(|l| (l, 0)),
            schedule: Schedule::new(config, side, Instant::now()),
            timer: None,
            timer_at: None,
            outbound: Outbound::None,
            unanswered: VecDeque::new(),
            queued: 0,
            fresh: true,
            inbound: None,
            dead: false,
        }
    }

    fn write_probe(&mut self) {
        if self.unanswered.len() >= MAX_UNANSWERED {
            return;
        }
        if let Outbound::Open(probes) = &mut self.outbound {
            let payload: [u8; PROBE_LEN] = rand::random();
            probes.out.extend_from_slice(&payload);
            self.unanswered.push_back(payload);
        } else {
            self.queued = (self.queued + 1).min(MAX_UNANSWERED);
        }
    }

    /// Echoes the peer's probes; each one is proof it is alive.
    fn poll_inbound(&mut self, cx: &mut Context<'_>) {
        let Some(probes) = self.inbound.as_mut() else {
            return;
        };
        let result = (|| -> std::io::Result<()> {
            loop {
                probes.poll_write(cx)?;
                match probes.poll_read(cx)? {
                    Some(payload) => {
                        self.schedule.heard(Instant::now());
                        if probes.out.len() >= MAX_UNWRITTEN_ANSWERS {
                            return Err(std::io::Error::other(
                                "the peer probes faster than its probes can be answered",
                            ));
                        }
                        probes.out.extend_from_slice(&payload);
                    }
                    None => return probes.poll_write(cx),
                }
            }
        })();
        if let Err(e) = result {
            tracing::trace!(error = %e, "inbound probe stream ended");
            self.inbound = None;
        }
    }

    /// Writes our probes and matches their echoes.
    fn poll_outbound(&mut self, cx: &mut Context<'_>) {
        let Outbound::Open(probes) = &mut self.outbound else {
            return;
        };
        let result = (|| -> std::io::Result<()> {
            loop {
                probes.poll_write(cx)?;
                let Some(echo) = probes.poll_read(cx)? else {
                    return Ok(());
                };
                if self.unanswered.pop_front() != Some(echo) {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "the echo does not match the probe",
                    ));
                }
                self.schedule.heard(Instant::now());
            }
        })();
        if let Err(e) = result {
            tracing::debug!(error = %e, "probe stream ended; opening another");
            self.outbound = Outbound::None;
            self.unanswered.clear();
        }
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = Infallible;
    type ToBehaviour = Dead;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ())
    }

    fn on_behaviour_event(&mut self, event: Infallible) {
        match event {}
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        if self.dead {
            return Poll::Pending;
        }
        self.poll_inbound(cx);
        self.poll_outbound(cx);
        if let Some((last_read, seen)) = &mut self.last_read {
            let now = last_read.load(std::sync::atomic::Ordering::Relaxed);
            if now != *seen {
                *seen = now;
                if let Some(at) = activity::instant_of(now) {
                    self.schedule.active(at);
                }
            }
        }
        if matches!(self.outbound, Outbound::Unsupported) {
            // Nothing to probe with; the peer's own probes still answered.
            return Poll::Pending;
        }
        loop {
            match self.schedule.poll(Instant::now()) {
                Step::WaitUntil(at) => {
                    // Only when the deadline moved: this runs on every
                    // event of the connection.
                    let deadline = tokio::time::Instant::from_std(at);
                    let timer = self
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                    if self.timer_at != Some(at) {
                        self.timer_at = Some(at);
                        timer.as_mut().reset(deadline);
                    }
                    if timer.as_mut().poll(cx).is_pending() {
                        break;
                    }
                    self.timer_at = None;
                }
                Step::Probe => {
                    self.write_probe();
                    self.poll_outbound(cx);
                }
                Step::Dead { silent_for } => {
                    self.dead = true;
                    return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(Dead {
                        silent_for,
                    }));
                }
            }
        }
        if matches!(self.outbound, Outbound::None) && (self.queued > 0 || self.fresh) {
            self.fresh = false;
            self.outbound = Outbound::Opening;
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest {
                protocol: SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ()),
            });
        }
        Poll::Pending
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: stream,
                ..
            }) => {
                self.inbound = Some(Probes::new(stream));
            }
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                ..
            }) => {
                self.outbound = Outbound::Open(Box::new(Probes::new(stream)));
                for _ in 0..std::mem::take(&mut self.queued) {
                    self.write_probe();
                }
            }
            ConnectionEvent::DialUpgradeError(DialUpgradeError { error, .. }) => {
                self.outbound = match error {
                    StreamUpgradeError::NegotiationFailed => Outbound::Unsupported,
                    _ => Outbound::None,
                };
            }
            _ => {}
        }
    }
}

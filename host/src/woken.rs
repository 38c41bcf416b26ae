//! A behaviour that is polled, and whose connection handlers are polled,
//! only when they have something to do.
//!
//! libp2p polls every handler of a connection each time the connection's
//! task wakes: a gossip frame arriving for one protocol polls the handlers
//! of all the others too (request-response's six, identify, Kademlia, the
//! relay client, liveness, …), and each then polls its own streams and
//! timers to find nothing. On a member of a busy group that was 8 % of its
//! CPU (docs/benchmarks.md, "Handlers polled when woken"). The swarm does
//! the same with behaviours: each time its task wakes it polls all of them,
//! and Kademlia, AutoNAT and the relay client each read the clock or poll
//! their timers to find nothing (about 1.5 % of the same member's CPU).
//!
//! [`Woken`] wraps a behaviour and gives it, and each of its handlers, a
//! waker of its own. The inner behaviour or handler is polled only when:
//! - that waker fired (one of its streams, channels or timers is ready);
//! - something was handed to it: for a handler `on_behaviour_event` or
//!   `on_connection_event` (a new stream, a protocol change, an error);
//!   for the behaviour any call through `&mut` (the swarm's
//!   `on_swarm_event`, `on_connection_handler_event` and connection
//!   hooks, and every method the node calls on it, which reach it through
//!   `DerefMut`);
//! - its last poll returned an event (it may have more);
//! - it was never polled.
//!
//! That is the contract of `Future::poll`: a behaviour or handler that
//! returned `Pending` has registered the waker it was given with whatever
//! will make progress, and whatever else changes it comes through a call
//! this wrapper sees. One that returned `Pending` counting on being polled
//! again anyway would stall here; the node's end-to-end tests run every
//! behaviour and handler it has through this.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, NetworkBehaviour, SubstreamProtocol,
    THandlerInEvent, ToSwarm,
};

use crate::wrapped::handler_wrapper;

/// `B`, polled only when woken, with its connection handlers polled only
/// when woken (see the module). Derefs to `B`, so its methods are called
/// as before.
pub struct Woken<B> {
    inner: B,
    gate: Gate,
}

handler_wrapper!(Woken, WokenHandler);

impl<B> Woken<B> {
    pub fn new(inner: B) -> Self {
        Self {
            inner,
            gate: Gate::new(),
        }
    }

    fn inner(&self) -> &B {
        &self.inner
    }

    /// Every call that may change the behaviour comes through here: it is
    /// polled on the swarm's next turn.
    fn inner_mut(&mut self) -> &mut B {
        self.gate.due();
        &mut self.inner
    }
}

impl<B: NetworkBehaviour> Woken<B> {
    fn poll_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<B::ToSwarm, THandlerInEvent<B>>> {
        let inner = &mut self.inner;
        self.gate.poll(cx, |cx| inner.poll(cx))
    }
}

/// Polls what it guards only when woken, handed something or ready last
/// time (see the module).
struct Gate {
    flag: Arc<Flag>,
    /// Wakes `flag`; what the guarded behaviour or handler is polled with.
    waker: Waker,
    /// The task waker last given to `flag`: compared here on every poll,
    /// handed over (under the flag's lock) only when it changed.
    task: Option<Waker>,
}

impl Gate {
    fn new() -> Self {
        let flag = Arc::new(Flag {
            due: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        let waker = Waker::from(flag.clone());
        Self {
            flag,
            waker,
            task: None,
        }
    }

    /// Polled on the next turn, woken or not.
    fn due(&self) {
        self.flag.due.store(true, Ordering::Release);
    }

    /// `poll` with the gate's own waker, if woken or handed something
    /// since the last; else `Pending`. `cx`'s waker is what a wake of the
    /// gate wakes from now on.
    fn poll<T>(
        &mut self,
        cx: &mut Context<'_>,
        poll: impl FnOnce(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        if !self.task.as_ref().is_some_and(|t| t.will_wake(cx.waker())) {
            self.flag.register(cx.waker());
            self.task = Some(cx.waker().clone());
        }
        // Cleared before the poll: a wake during it sets it again.
        if !self.flag.due.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let event = poll(&mut Context::from_waker(&self.waker));
        if event.is_ready() {
            self.due();
        }
        event
    }
}

/// Whether a handler must be polled, and the connection task to wake when
/// it must.
struct Flag {
    due: AtomicBool,
    task: Mutex<Option<Waker>>,
}

impl Flag {
    /// The connection task to wake from now on.
    fn register(&self, waker: &Waker) {
        // A poisoned lock only means a waker panicked mid-wake; the slot
        // is still a valid `Option<Waker>`.
        *self.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(waker.clone());
    }
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Release: what made the handler ready happens before its poll,
        // which reads `due` with Acquire.
        self.due.store(true, Ordering::Release);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(task) = task.as_ref() {
            task.wake_by_ref();
        }
    }
}

/// A connection handler polled only when woken (see the module).
pub struct WokenHandler<H> {
    inner: H,
    gate: Gate,
}

impl<H> WokenHandler<H> {
    fn new(inner: H) -> Self {
        Self {
            inner,
            gate: Gate::new(),
        }
    }
}

impl<H: ConnectionHandler> ConnectionHandler for WokenHandler<H> {
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = H::InboundProtocol;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        self.inner.listen_protocol()
    }

    fn connection_keep_alive(&self) -> bool {
        self.inner.connection_keep_alive()
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<
        ConnectionHandlerEvent<Self::OutboundProtocol, Self::OutboundOpenInfo, Self::ToBehaviour>,
    > {
        let inner = &mut self.inner;
        self.gate.poll(cx, |cx| inner.poll(cx))
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.inner.on_behaviour_event(event);
        // The connection's task polls its handler after handing it an
        // event (libp2p-swarm's `task.rs`), so no wake is needed.
        self.gate.due();
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<
            Self::InboundProtocol,
            Self::OutboundProtocol,
            Self::InboundOpenInfo,
            Self::OutboundOpenInfo,
        >,
    ) {
        self.inner.on_connection_event(event);
        self.gate.due();
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::AtomicUsize;

    use futures::StreamExt;
    use futures::channel::mpsc;
    use libp2p::core::upgrade::DeniedUpgrade;

    use super::*;

    /// A handler that counts its polls and reports each item its channel
    /// brings, or each number the behaviour hands it; it wakes itself
    /// while polled `self_wakes` times (as one does that yields after a
    /// budget).
    struct Counting {
        polls: Arc<AtomicUsize>,
        items: mpsc::Receiver<u32>,
        handed: Vec<u32>,
        self_wakes: usize,
    }

    impl ConnectionHandler for Counting {
        type FromBehaviour = u32;
        type ToBehaviour = u32;
        type InboundProtocol = DeniedUpgrade;
        type OutboundProtocol = DeniedUpgrade;
        type InboundOpenInfo = ();
        type OutboundOpenInfo = Infallible;

        fn listen_protocol(&self) -> SubstreamProtocol<DeniedUpgrade, ()> {
            SubstreamProtocol::new(DeniedUpgrade, ())
        }

        fn poll(
            &mut self,
            cx: &mut Context<'_>,
        ) -> Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, u32>> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            if self.self_wakes > 0 {
                self.self_wakes -= 1;
                cx.waker().wake_by_ref();
            }
            if let Some(n) = self.handed.pop() {
                return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(n));
            }
            match self.items.poll_next_unpin(cx) {
                Poll::Ready(Some(n)) => Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(n)),
                _ => Poll::Pending,
            }
        }

        fn on_behaviour_event(&mut self, n: u32) {
            self.handed.push(n);
        }

        fn on_connection_event(
            &mut self,
            _: ConnectionEvent<DeniedUpgrade, DeniedUpgrade, (), Infallible>,
        ) {
        }
    }

    /// Counts how often the connection's task was woken.
    #[derive(Default)]
    struct Task(AtomicUsize);

    impl Wake for Task {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A wrapped `Counting` that wakes itself `self_wakes` times, its
    /// poll count, the sender of its channel, and the task it is polled
    /// from.
    fn counting(
        self_wakes: usize,
    ) -> (
        WokenHandler<Counting>,
        Arc<AtomicUsize>,
        mpsc::Sender<u32>,
        Arc<Task>,
    ) {
        let polls = Arc::new(AtomicUsize::new(0));
        let (items, rx) = mpsc::channel(8);
        let handler = WokenHandler::new(Counting {
            polls: polls.clone(),
            items: rx,
            handed: Vec::new(),
            self_wakes,
        });
        (handler, polls, items, Arc::new(Task::default()))
    }

    fn reported(poll: Poll<ConnectionHandlerEvent<DeniedUpgrade, Infallible, u32>>) -> Option<u32> {
        match poll {
            Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(n)) => Some(n),
            _ => None,
        }
    }

    #[test]
    fn a_handler_is_polled_only_when_woken_handed_something_or_ready() {
        let (mut handler, polls, mut items, task) = counting(0);
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);

        // Never polled: polled once, then not while nothing happens.
        assert_eq!(reported(handler.poll(&mut cx)), None);
        for _ in 0..10 {
            assert_eq!(reported(handler.poll(&mut cx)), None);
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1);

        // Its channel wakes it: the task is woken and the item comes out.
        items.try_send(7).expect("send");
        assert_eq!(task.0.load(Ordering::Relaxed), 1);
        assert_eq!(reported(handler.poll(&mut cx)), Some(7));
        // After an event it is polled again, finds nothing, and rests.
        assert_eq!(reported(handler.poll(&mut cx)), None);
        assert_eq!(reported(handler.poll(&mut cx)), None);
        assert_eq!(polls.load(Ordering::Relaxed), 3);

        // Handed an event by the behaviour: polled on the next turn.
        handler.on_behaviour_event(9);
        assert_eq!(reported(handler.poll(&mut cx)), Some(9));
        assert_eq!(reported(handler.poll(&mut cx)), None);
        assert_eq!(polls.load(Ordering::Relaxed), 5);

        // Two items at once: both come out, one per poll.
        items.try_send(1).expect("send");
        items.try_send(2).expect("send");
        assert_eq!(reported(handler.poll(&mut cx)), Some(1));
        assert_eq!(reported(handler.poll(&mut cx)), Some(2));
        assert_eq!(reported(handler.poll(&mut cx)), None);
        assert_eq!(reported(handler.poll(&mut cx)), None);
        assert_eq!(polls.load(Ordering::Relaxed), 8);
    }

    #[test]
    fn a_wake_during_the_poll_is_not_lost() {
        let (mut handler, polls, _items, task) = counting(2);
        let waker = Waker::from(task.clone());
        let mut cx = Context::from_waker(&waker);
        for _ in 0..10 {
            assert_eq!(reported(handler.poll(&mut cx)), None);
        }
        // The first poll, then one for each wake it made of itself.
        assert_eq!(polls.load(Ordering::Relaxed), 3);
        assert_eq!(task.0.load(Ordering::Relaxed), 2);
    }

    /// A behaviour that counts its polls and reports each item its channel
    /// brings, or each number handed to it through a method.
    struct Polled {
        polls: Arc<AtomicUsize>,
        items: mpsc::Receiver<u32>,
        handed: Vec<u32>,
    }

    impl Polled {
        fn hand(&mut self, n: u32) {
            self.handed.push(n);
        }
    }

    impl NetworkBehaviour for Polled {
        type ConnectionHandler = libp2p::swarm::dummy::ConnectionHandler;
        type ToSwarm = u32;

        fn handle_established_inbound_connection(
            &mut self,
            _: libp2p::swarm::ConnectionId,
            _: libp2p::PeerId,
            _: &libp2p::Multiaddr,
            _: &libp2p::Multiaddr,
        ) -> Result<Self::ConnectionHandler, libp2p::swarm::ConnectionDenied> {
            Ok(libp2p::swarm::dummy::ConnectionHandler)
        }

        fn handle_established_outbound_connection(
            &mut self,
            _: libp2p::swarm::ConnectionId,
            _: libp2p::PeerId,
            _: &libp2p::Multiaddr,
            _: libp2p::core::Endpoint,
            _: libp2p::core::transport::PortUse,
        ) -> Result<Self::ConnectionHandler, libp2p::swarm::ConnectionDenied> {
            Ok(libp2p::swarm::dummy::ConnectionHandler)
        }

        fn on_swarm_event(&mut self, _: libp2p::swarm::FromSwarm) {}

        fn on_connection_handler_event(
            &mut self,
            _: libp2p::PeerId,
            _: libp2p::swarm::ConnectionId,
            event: libp2p::swarm::THandlerOutEvent<Self>,
        ) {
            libp2p::core::util::unreachable(event)
        }

        fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<u32, THandlerInEvent<Self>>> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            if let Some(n) = self.handed.pop() {
                return Poll::Ready(ToSwarm::GenerateEvent(n));
            }
            match self.items.poll_next_unpin(cx) {
                Poll::Ready(Some(n)) => Poll::Ready(ToSwarm::GenerateEvent(n)),
                _ => Poll::Pending,
            }
        }
    }

    fn generated(poll: Poll<ToSwarm<u32, THandlerInEvent<Polled>>>) -> Option<u32> {
        match poll {
            Poll::Ready(ToSwarm::GenerateEvent(n)) => Some(n),
            _ => None,
        }
    }

    #[test]
    fn a_behaviour_is_polled_only_when_woken_called_or_ready() {
        let polls = Arc::new(AtomicUsize::new(0));
        let (mut items, rx) = mpsc::channel(8);
        let mut behaviour = Woken::new(Polled {
            polls: polls.clone(),
            items: rx,
            handed: Vec::new(),
        });
        let task = Arc::new(Task::default());
        let waker = Waker::from(task.clone());
        // One turn of the swarm's task: the behaviour's poll, and what it
        // generated.
        let turn = |behaviour: &mut Woken<Polled>| {
            generated(NetworkBehaviour::poll(
                behaviour,
                &mut Context::from_waker(&waker),
            ))
        };

        // Never polled: polled once, then not while nothing happens.
        for _ in 0..10 {
            assert_eq!(turn(&mut behaviour), None);
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1);

        // Its channel wakes it: the swarm's task is woken, the item comes
        // out, and it is polled once more to find nothing.
        items.try_send(7).expect("send");
        assert_eq!(task.0.load(Ordering::Relaxed), 1);
        assert_eq!(turn(&mut behaviour), Some(7));
        assert_eq!(turn(&mut behaviour), None);
        assert_eq!(turn(&mut behaviour), None);
        assert_eq!(polls.load(Ordering::Relaxed), 3);

        // A method called on it through the wrapper (as the node calls
        // Kademlia's or request-response's), which wakes nothing: polled
        // on the next turn all the same.
        behaviour.hand(9);
        assert_eq!(task.0.load(Ordering::Relaxed), 1);
        assert_eq!(turn(&mut behaviour), Some(9));
        assert_eq!(turn(&mut behaviour), None);
        assert_eq!(polls.load(Ordering::Relaxed), 5);

        // Handed a swarm event: polled again.
        let moved: libp2p::Multiaddr = "/ip4/127.0.0.1/tcp/9".parse().expect("address");
        NetworkBehaviour::on_swarm_event(
            &mut behaviour,
            libp2p::swarm::FromSwarm::NewExternalAddrCandidate(
                libp2p::swarm::NewExternalAddrCandidate { addr: &moved },
            ),
        );
        assert_eq!(turn(&mut behaviour), None);
        assert_eq!(turn(&mut behaviour), None);
        assert_eq!(polls.load(Ordering::Relaxed), 6);

        // Read through `&` only: nothing to poll.
        assert!(behaviour.handed.is_empty());
        assert_eq!(turn(&mut behaviour), None);
        assert_eq!(polls.load(Ordering::Relaxed), 6);
    }
}

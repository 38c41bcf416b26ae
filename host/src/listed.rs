//! A behaviour whose inbound protocols are listed when they may have
//! changed, not each time a connection's task goes idle.
//!
//! libp2p-swarm asks a connection's handler for its inbound protocols each
//! time the connection's task has nothing more to do (`Connection::poll`),
//! walks them and hashes each to learn whether the set changed (libp2p
//! issue #4284). A node's handler is the derive's chain of 18 handlers,
//! nested in `Either`s and `SelectUpgrade`s, so each listing descends that
//! chain once for every one of its protocols. On a member of a busy group
//! that listing was about 9 % of its CPU (docs/benchmarks.md, "Protocols
//! listed when they may have changed"). The swarm hush builds
//! (vendor/libp2p-swarm, `HUSH-PATCH.md`) compares the listing in order
//! with the last one and hashes it only when it differs; this wrapper
//! makes the listing itself cheap.
//!
//! [`Listed`] wraps the whole behaviour. Its handler keeps a flat copy of
//! its inner handler's protocol names and hands the swarm that copy. It
//! lists the inner handler's protocols again only when they may have
//! changed:
//! - the inner handler was handed something (`on_behaviour_event`,
//!   `on_connection_event`). Every handler hush runs changes its
//!   protocols only then: Kademlia's mode comes from its behaviour, and
//!   gossipsub disables itself on a stream event;
//! - [`RELIST_AFTER`] has passed since the last listing, for a set that
//!   changes from outside any handler (libp2p-stream's
//!   `Control::accept`, which the node calls once, at start).
//!
//! Nor does a listing build the inner handler's upgrade (the tree of every
//! handler's upgrade, which libp2p-stream makes under a lock and
//! request-response with a copy of its names). The swarm is handed a
//! [`ListedUpgrade`], only the copy of the names. When a stream is
//! negotiated on it, the inner handler makes its upgrade on its next poll
//! (the stream's future wakes the connection's task for that), and the
//! protocol the remote chose is looked up in it by name. So a copy that
//! is out of date refuses a stream ([`Refused::Unlisted`]) and never hands
//! it to the wrong handler.
//!
//! ```text
//!  connection idle ─▶ listen_protocol: handed something, or copy ≥ 1 s old?
//!                       yes ─▶ the inner upgrade's names, copied if they differ
//!                     ─▶ ListedUpgrade { names } ─▶ the swarm hashes the names
//!  stream negotiated ─▶ upgrade_inbound(chosen): ask pushed, task woken
//!  handler polled ─▶ inner.listen_protocol() for each ask ─▶ answered
//!  the stream's future ─▶ chosen name in the inner upgrade? ─▶ its upgrade
//!                                                  no ─▶ Refused::Unlisted
//! ```

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use futures::future::Either;
use libp2p::core::upgrade::{InboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{
    ConnectionEvent, FullyNegotiatedInbound, InboundUpgradeSend, ListenUpgradeError,
    UpgradeInfoSend,
};
use libp2p::swarm::{
    ConnectionHandler, ConnectionHandlerEvent, NetworkBehaviour, Stream, SubstreamProtocol,
    THandlerInEvent, ToSwarm,
};

use crate::wrapped::handler_wrapper;

/// A listing is made again at least this often.
pub const RELIST_AFTER: Duration = Duration::from_secs(1);

/// `B`, with its connection handlers' inbound protocols listed only when
/// they may have changed (see the module). Derefs to `B`.
pub struct Listed<B>(pub B);

handler_wrapper!(Listed, ListedHandler);

impl<B> Listed<B> {
    fn inner(&self) -> &B {
        &self.0
    }

    fn inner_mut(&mut self) -> &mut B {
        &mut self.0
    }
}

impl<B: NetworkBehaviour> Listed<B> {
    fn poll_inner(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<B::ToSwarm, THandlerInEvent<B>>> {
        self.0.poll(cx)
    }
}

/// The protocol names an inner handler last listed, in its order.
type Names = Arc<[Box<str>]>;

struct Listing {
    names: Names,
    /// The inner handler's timeout for an inbound stream's upgrade.
    timeout: Duration,
    /// Handed something since `names` was made.
    stale: bool,
    made: Instant,
}

/// Inbound streams negotiated on a listing, waiting for the inner
/// handler's upgrade (`U`) and its open info (`I`): the handler makes one
/// for each on its next poll.
struct Asks<U, I> {
    any: AtomicBool,
    waiting: Mutex<Vec<oneshot::Sender<(U, I)>>>,
}

/// A connection handler whose inbound protocols are listed only when they
/// may have changed (see the module).
pub struct ListedHandler<H: ConnectionHandler> {
    inner: H,
    /// Made again from `listen_protocol`, which takes `&self`.
    listing: RefCell<Listing>,
    asks: Arc<Asks<H::InboundProtocol, H::InboundOpenInfo>>,
}

impl<H: ConnectionHandler> ListedHandler<H> {
    fn new(inner: H) -> Self {
        Self {
            inner,
            listing: RefCell::new(Listing {
                names: Arc::new([]),
                timeout: Duration::ZERO,
                stale: true,
                made: Instant::now(),
            }),
            asks: Arc::new(Asks {
                any: AtomicBool::new(false),
                waiting: Mutex::new(Vec::new()),
            }),
        }
    }

    fn handed(&mut self) {
        self.listing.get_mut().stale = true;
    }
}

impl<H: ConnectionHandler> ConnectionHandler for ListedHandler<H> {
    type FromBehaviour = H::FromBehaviour;
    type ToBehaviour = H::ToBehaviour;
    type InboundProtocol = ListedUpgrade<H::InboundProtocol, H::InboundOpenInfo>;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        let mut listing = self.listing.borrow_mut();
        if listing.stale || listing.made.elapsed() >= RELIST_AFTER {
            let protocol = self.inner.listen_protocol();
            listing.timeout = *protocol.timeout();
            // Compared first: the set rarely changes, and a new copy costs
            // an allocation for each name.
            let mut infos = protocol.upgrade().protocol_info();
            let unchanged = listing
                .names
                .iter()
                .all(|name| infos.next().is_some_and(|info| info.as_ref() == &**name))
                && infos.next().is_none();
            if !unchanged {
                listing.names = protocol
                    .upgrade()
                    .protocol_info()
                    .map(|info| Box::from(info.as_ref()))
                    .collect();
            }
            listing.stale = false;
            listing.made = Instant::now();
        }
        SubstreamProtocol::new(
            ListedUpgrade {
                names: listing.names.clone(),
                asks: self.asks.clone(),
            },
            (),
        )
        .with_timeout(listing.timeout)
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
        // Acquire: the asks pushed before the flag was set are seen.
        if self.asks.any.swap(false, Ordering::AcqRel) {
            // A poisoned lock only means a holder panicked; the list is
            // still a valid `Vec`.
            let waiting =
                std::mem::take(&mut *self.asks.waiting.lock().unwrap_or_else(|e| e.into_inner()));
            for ask in waiting {
                // An error is a stream given up meanwhile.
                let _ = ask.send(self.inner.listen_protocol().into_upgrade());
            }
        }
        self.inner.poll(cx)
    }

    fn poll_close(&mut self, cx: &mut Context<'_>) -> Poll<Option<Self::ToBehaviour>> {
        self.inner.poll_close(cx)
    }

    fn on_behaviour_event(&mut self, event: Self::FromBehaviour) {
        self.handed();
        self.inner.on_behaviour_event(event);
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
        self.handed();
        let event = match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: (protocol, info),
                ..
            }) => {
                ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info })
            }
            ConnectionEvent::ListenUpgradeError(ListenUpgradeError { error, .. }) => match error {
                Either::Left((error, info)) => {
                    ConnectionEvent::ListenUpgradeError(ListenUpgradeError { info, error })
                }
                // The inner handler never saw this stream.
                Either::Right(_) => return,
            },
            ConnectionEvent::FullyNegotiatedOutbound(e) => {
                ConnectionEvent::FullyNegotiatedOutbound(e)
            }
            ConnectionEvent::DialUpgradeError(e) => ConnectionEvent::DialUpgradeError(e),
            ConnectionEvent::AddressChange(e) => ConnectionEvent::AddressChange(e),
            ConnectionEvent::LocalProtocolsChange(e) => ConnectionEvent::LocalProtocolsChange(e),
            ConnectionEvent::RemoteProtocolsChange(e) => ConnectionEvent::RemoteProtocolsChange(e),
            // The enum is `non_exhaustive`. Every variant of the libp2p-swarm
            // in Cargo.lock is above; one it adds must be passed on here.
            _ => return,
        };
        self.inner.on_connection_event(event);
    }
}

/// A listing's names, offered for an inbound stream. The inner handler's
/// upgrade (`U`, with its open info `I`) is made only once a stream has
/// chosen one of them.
pub struct ListedUpgrade<U, I> {
    names: Names,
    asks: Arc<Asks<U, I>>,
}

/// A protocol name from a listing.
#[derive(Clone)]
pub struct ListedName {
    names: Names,
    index: usize,
}

impl AsRef<str> for ListedName {
    fn as_ref(&self) -> &str {
        self.names.get(self.index).map_or("", |name| name)
    }
}

/// A listing's names, one by one.
pub struct ListedNames {
    names: Names,
    next: usize,
}

impl Iterator for ListedNames {
    type Item = ListedName;

    fn next(&mut self) -> Option<ListedName> {
        let index = self.next;
        if index >= self.names.len() {
            return None;
        }
        self.next += 1;
        Some(ListedName {
            names: self.names.clone(),
            index,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.names.len().saturating_sub(self.next);
        (left, Some(left))
    }
}

/// Why a stream negotiated on a listing was not handed to the inner
/// handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The inner handler no longer offers the protocol the remote chose
    /// (the listing was out of date).
    Unlisted,
    /// The connection's handler went away first.
    Closed,
}

impl<U, I> UpgradeInfo for ListedUpgrade<U, I> {
    type Info = ListedName;
    type InfoIter = ListedNames;

    fn protocol_info(&self) -> ListedNames {
        ListedNames {
            names: self.names.clone(),
            next: 0,
        }
    }
}

impl<U, I> InboundUpgrade<Stream> for ListedUpgrade<U, I>
where
    U: InboundUpgradeSend,
    I: Send + 'static,
{
    type Output = (U::Output, I);
    type Error = Either<(U::Error, I), Refused>;
    type Future = Upgrading<U, I>;

    fn upgrade_inbound(self, stream: Stream, chosen: ListedName) -> Upgrading<U, I> {
        let (ask, answer) = oneshot::channel();
        self.asks
            .waiting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(ask);
        // Release: the push above is seen by the handler that reads it.
        self.asks.any.store(true, Ordering::Release);
        Upgrading {
            state: UpgradingState::Asking {
                stream: Some(stream),
                chosen,
                answer,
                woke: false,
            },
        }
    }
}

/// An inbound stream's upgrade: first the inner handler's upgrade is asked
/// for (made on the handler's next poll), then it runs.
pub struct Upgrading<U: InboundUpgradeSend, I> {
    state: UpgradingState<U, I>,
}

enum UpgradingState<U: InboundUpgradeSend, I> {
    Asking {
        stream: Option<Stream>,
        chosen: ListedName,
        answer: oneshot::Receiver<(U, I)>,
        /// The connection's task was woken to poll the handler.
        woke: bool,
    },
    Running {
        future: Pin<Box<U::Future>>,
        info: Option<I>,
    },
}

// No field is pinned in place: the inner future is boxed.
impl<U: InboundUpgradeSend, I> Unpin for Upgrading<U, I> {}

impl<U: InboundUpgradeSend, I> Future for Upgrading<U, I> {
    type Output = Result<(U::Output, I), Either<(U::Error, I), Refused>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                UpgradingState::Asking {
                    stream,
                    chosen,
                    answer,
                    woke,
                } => {
                    let (upgrade, info) = match Pin::new(answer).poll(cx) {
                        Poll::Ready(Ok(made)) => made,
                        Poll::Ready(Err(oneshot::Canceled)) => {
                            return Poll::Ready(Err(Either::Right(Refused::Closed)));
                        }
                        Poll::Pending => {
                            // This runs on the connection's task, which
                            // polls its handler next time round.
                            if !std::mem::replace(woke, true) {
                                cx.waker().wake_by_ref();
                            }
                            return Poll::Pending;
                        }
                    };
                    let chosen = chosen.as_ref();
                    let Some(inner) = upgrade.protocol_info().find(|i| i.as_ref() == chosen) else {
                        return Poll::Ready(Err(Either::Right(Refused::Unlisted)));
                    };
                    let Some(stream) = stream.take() else {
                        return Poll::Ready(Err(Either::Right(Refused::Closed)));
                    };
                    this.state = UpgradingState::Running {
                        future: Box::pin(upgrade.upgrade_inbound(stream, inner)),
                        info: Some(info),
                    };
                }
                UpgradingState::Running { future, info } => {
                    let outcome = match future.as_mut().poll(cx) {
                        Poll::Ready(outcome) => outcome,
                        Poll::Pending => return Poll::Pending,
                    };
                    let Some(info) = info.take() else {
                        // Polled again after it finished.
                        return Poll::Ready(Err(Either::Right(Refused::Closed)));
                    };
                    return Poll::Ready(match outcome {
                        Ok(output) => Ok((output, info)),
                        Err(error) => Err(Either::Left((error, info))),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;

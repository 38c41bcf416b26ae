//! A behaviour whose inbound protocols are listed when they may have
//! changed, not each time a connection's task goes idle.
//!
//! libp2p-swarm asks a connection's handler for its inbound protocols each
//! time the connection's task has nothing more to do (`Connection::poll`),
//! walks them and hashes each to learn whether the set changed (libp2p
//! issue #4284). A node's handler is the derive's chain of 18 handlers,
//! nested in `Either`s and `SelectUpgrade`s, so each listing descends that
//! chain once for every one of its protocols. On a member of a busy group
//! that walk was about 5 % of its CPU (docs/benchmarks.md, "Protocols
//! listed when they may have changed").
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
//! An inbound stream is still upgraded by the inner handler's own upgrade,
//! made for it as before. The copy only names the protocols offered; the
//! one the remote chose is looked up in the inner upgrade by its name, so
//! a copy that is out of date refuses a protocol rather than hands a
//! stream to the wrong one.

use std::cell::RefCell;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::TryFutureExt;
use futures::future::{self, Either, MapErr, Ready};
use libp2p::core::upgrade::{InboundUpgrade, UpgradeInfo};
use libp2p::swarm::handler::{
    ConnectionEvent, FullyNegotiatedInbound, InboundUpgradeSend, ListenUpgradeError,
    UpgradeInfoSend,
};
use libp2p::swarm::{ConnectionHandler, ConnectionHandlerEvent, Stream, SubstreamProtocol};

use crate::wrapped::handler_wrapper;

/// A listing is made again at least this often.
pub const RELIST_AFTER: Duration = Duration::from_secs(1);

/// `B`, with its connection handlers' inbound protocols listed only when
/// they may have changed (see the module). Derefs to `B`.
pub struct Listed<B>(pub B);

handler_wrapper!(Listed, ListedHandler);

/// The protocol names an inner handler last listed, in its order.
type Names = Arc<[Box<str>]>;

struct Listing {
    names: Names,
    /// Handed something since `names` was made.
    stale: bool,
    made: Instant,
}

/// A connection handler whose inbound protocols are listed only when they
/// may have changed (see the module).
pub struct ListedHandler<H> {
    inner: H,
    /// Made again from `listen_protocol`, which takes `&self`.
    listing: RefCell<Listing>,
}

impl<H> ListedHandler<H> {
    fn new(inner: H) -> Self {
        Self {
            inner,
            listing: RefCell::new(Listing {
                names: Arc::new([]),
                stale: true,
                made: Instant::now(),
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
    type InboundProtocol = ListedUpgrade<H::InboundProtocol>;
    type OutboundProtocol = H::OutboundProtocol;
    type InboundOpenInfo = H::InboundOpenInfo;
    type OutboundOpenInfo = H::OutboundOpenInfo;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol, Self::InboundOpenInfo> {
        let protocol = self.inner.listen_protocol();
        let mut listing = self.listing.borrow_mut();
        if listing.stale || listing.made.elapsed() >= RELIST_AFTER {
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
        let names = listing.names.clone();
        protocol.map_upgrade(|inner| ListedUpgrade { inner, names })
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
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info }) => {
                ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound { protocol, info })
            }
            ConnectionEvent::ListenUpgradeError(ListenUpgradeError { info, error }) => {
                match error {
                    Either::Left(error) => {
                        ConnectionEvent::ListenUpgradeError(ListenUpgradeError { info, error })
                    }
                    // The inner handler never saw this stream.
                    Either::Right(Unlisted) => return,
                }
            }
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

/// The inner handler's upgrade, offering the names of the last listing.
pub struct ListedUpgrade<U> {
    inner: U,
    names: Names,
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

/// The remote chose a protocol the inner handler no longer offers (the
/// listing it was offered from was out of date).
#[derive(Debug, Clone, Copy)]
pub struct Unlisted;

impl<U> UpgradeInfo for ListedUpgrade<U> {
    type Info = ListedName;
    type InfoIter = ListedNames;

    fn protocol_info(&self) -> ListedNames {
        ListedNames {
            names: self.names.clone(),
            next: 0,
        }
    }
}

type Upgrading<U> = Either<
    MapErr<
        <U as InboundUpgradeSend>::Future,
        fn(<U as InboundUpgradeSend>::Error) -> Either<<U as InboundUpgradeSend>::Error, Unlisted>,
    >,
    Ready<
        Result<
            <U as InboundUpgradeSend>::Output,
            Either<<U as InboundUpgradeSend>::Error, Unlisted>,
        >,
    >,
>;

impl<U: InboundUpgradeSend> InboundUpgrade<Stream> for ListedUpgrade<U> {
    type Output = U::Output;
    type Error = Either<U::Error, Unlisted>;
    type Future = Upgrading<U>;

    fn upgrade_inbound(self, stream: Stream, chosen: ListedName) -> Self::Future {
        let chosen = chosen.as_ref();
        match self
            .inner
            .protocol_info()
            .find(|info| info.as_ref() == chosen)
        {
            Some(info) => Either::Left(
                self.inner
                    .upgrade_inbound(stream, info)
                    .map_err(Either::Left as fn(_) -> _),
            ),
            None => Either::Right(future::ready(Err(Either::Right(Unlisted)))),
        }
    }
}

#[cfg(test)]
mod tests;

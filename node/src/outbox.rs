//! The outbox is a part of the device engine
//! (`hush_protocol::device::Outbox`): its states and transitions, retry
//! backoff and in-order batching live there. The node fills in its request
//! and relay ids. The durable side is the `outbox` table.

use libp2p::PeerId;
use libp2p::request_response::OutboundRequestId;

pub use hush_protocol::device::MAX_OUTBOX_ENTRIES;

/// Envelopes for one device go out as one batch request at a time, in the
/// order they were encrypted. Olm keeps at most 40 skipped message keys per
/// chain, so envelopes must not overtake each other by more than that:
/// with one request in flight they cannot overtake at all, and after a
/// failed request the whole device backs off
/// (`Outbox::retry_device_later`).
pub const MAX_BATCH_ENVELOPES: usize = hush_protocol::MAX_BATCH_ENVELOPES;

pub type Outbox = hush_protocol::device::Outbox<OutboundRequestId, PeerId>;

//! The outbox is a part of the device engine
//! (`hush_protocol::device::Outbox`): its states and transitions, retry
//! backoff and in-order batching live there. The node fills in its request
//! and relay ids. The durable side is the `outbox` table.

use libp2p::PeerId;
use libp2p::request_response::OutboundRequestId;

pub type Outbox = hush_protocol::device::Outbox<OutboundRequestId, PeerId>;

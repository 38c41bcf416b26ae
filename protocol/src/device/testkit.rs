//! What the device parts' in-memory harnesses share: a card resolved the
//! way a test host names peers (a device by its own id; every relay a card
//! names is the one test relay).

use crate::device::CardReach;
use crate::{ContactCard, DeviceId};

/// The one relay of the harnesses, as the test hosts name it.
pub const RELAY: DeviceId = DeviceId([0xEE; 32]);

/// A card in the test hosts' terms (no addresses).
pub fn reach<A: Default>(card: &ContactCard) -> CardReach<DeviceId, A> {
    CardReach {
        devices: card
            .device_list
            .devices
            .iter()
            .map(|d| (d.device_id, d.device_id))
            .collect(),
        addresses: Vec::new(),
        relays: card.relays.iter().map(|_| (RELAY, A::default())).collect(),
    }
}

//! What the circuit relay is used for, counted for the metrics.

use libp2p::{PeerId, relay};

/// The circuit relay's usage, for the metrics: peers holding a
/// reservation (a renewal is not a new one; at most the relay behaviour's
/// own limit, 4096) and open circuits.
#[derive(Debug, Default)]
pub(super) struct CircuitUsage {
    pub(super) reservations: std::collections::HashSet<PeerId>,
    pub(super) circuits: usize,
}

impl CircuitUsage {
    pub(super) fn on_event(&mut self, event: &relay::Event) {
        match event {
            relay::Event::ReservationReqAccepted { src_peer_id, .. } => {
                self.reservations.insert(*src_peer_id);
            }
            relay::Event::ReservationClosed { src_peer_id }
            | relay::Event::ReservationTimedOut { src_peer_id } => {
                self.reservations.remove(src_peer_id);
            }
            relay::Event::CircuitReqAccepted { .. } => self.circuits += 1,
            relay::Event::CircuitClosed { .. } => {
                self.circuits = self.circuits.saturating_sub(1);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_count_peers_and_circuits_count_open_ones() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut usage = CircuitUsage::default();
        for renewed in [false, true] {
            usage.on_event(&relay::Event::ReservationReqAccepted {
                src_peer_id: a,
                renewed,
            });
        }
        usage.on_event(&relay::Event::ReservationReqAccepted {
            src_peer_id: b,
            renewed: false,
        });
        assert_eq!(usage.reservations.len(), 2, "a renewal is not a new one");
        usage.on_event(&relay::Event::ReservationTimedOut { src_peer_id: a });
        assert_eq!(usage.reservations.len(), 1);
        usage.on_event(&relay::Event::CircuitReqAccepted {
            src_peer_id: a,
            dst_peer_id: b,
        });
        assert_eq!(usage.circuits, 1);
        for _ in 0..2 {
            usage.on_event(&relay::Event::CircuitClosed {
                src_peer_id: a,
                dst_peer_id: b,
                error: None,
            });
        }
        assert_eq!(usage.circuits, 0, "never below zero");
    }
}

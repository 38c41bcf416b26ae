//! The group control codec's bounds.

use super::*;

/// A want round-trips; one naming more than [`MAX_WANTS`] ops is refused;
/// a full one, as a channel message's padded payload, fits 4 KiB (a
/// `Heads` of 256 takes 16 KiB).
#[test]
fn a_want_round_trips_within_its_bound_and_fits_4_kib() {
    let id = GroupId([3; 32]);
    let full = GroupControl {
        group: id,
        kind: ControlKind::Want((0..MAX_WANTS).map(|i| [i as u8; 32]).collect()),
    };
    assert_eq!(GroupControl::from_bytes(&full.to_bytes()).unwrap(), full);
    let over = GroupControl {
        group: id,
        kind: ControlKind::Want(vec![[1; 32]; MAX_WANTS + 1]),
    };
    assert!(GroupControl::from_bytes(&over.to_bytes()).is_err());
    let payload = crate::Payload {
        sender_account: crate::AccountId([1; 32]),
        sender_device: DeviceId([2; 32]),
        id: MessageId(u128::MAX),
        body: crate::Body::Group(full),
    };
    assert_eq!(payload.to_padded().len(), 4096);
}

/// An ask for missed messages and its answer round-trip; one naming more
/// than [`MAX_MISSED`] indices, or carrying more than [`MAX_FOUND`]
/// messages, is refused.
#[test]
fn a_missed_ask_and_its_found_answer_round_trip_within_their_bounds() {
    let id = GroupId([3; 32]);
    let session = crate::SessionId([4; 32]);
    let ask = |n: usize| GroupControl {
        group: id,
        kind: ControlKind::Missed {
            session,
            indices: (0..n as u32).collect(),
        },
    };
    let answer = |n: usize| GroupControl {
        group: id,
        kind: ControlKind::Found(vec![vec![7; 700]; n]),
    };
    for full in [ask(MAX_MISSED), answer(MAX_FOUND)] {
        assert_eq!(GroupControl::from_bytes(&full.to_bytes()).unwrap(), full);
    }
    for over in [ask(MAX_MISSED + 1), answer(MAX_FOUND + 1)] {
        assert!(GroupControl::from_bytes(&over.to_bytes()).is_err());
    }
}

//! What the device fuzz target checks (fuzz/fuzz_targets/device_engine.rs),
//! as a property test that runs with the others: arbitrary input from the
//! network never panics the engine, and nothing made up is stored as a
//! message.

use proptest::prelude::*;

use super::*;
use crate::{DepositResult, GroupControl};

fn input() -> impl Strategy<Value = Vec<(u8, Vec<u8>)>> {
    proptest::collection::vec(
        (any::<u8>(), proptest::collection::vec(any::<u8>(), 0..300)),
        1..24,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn arbitrary_network_input_never_panics_or_forges_a_message(input in input()) {
        let mut net = Net::with_relay(&["alice", "bob"], &["alice"]);
        net.send(0, "bob", "a real one");
        let alice = net.devs[0].keys.device_id;
        let stranger = DeviceId([9; 32]);
        let account = net.devs[0].engine.me().account;
        let group = net
            .call(1, |e, ctx, _| {
                let card = e.contacts.contact("alice").map(|c| c.card.clone()).unwrap();
                e.with_groups(ctx, |g, ctx| g.create(ctx, "g".into(), card))
            })
            .unwrap();
        let before = net.devs[1].disk.messages.len();
        for (selector, bytes) in input {
            net.call(1, |e, ctx, disk| match selector % 9 {
                0 => drop(e.handle_batch(ctx, disk, alice, &bytes)),
                1 => drop(e.handle_batch(ctx, disk, stranger, &bytes)),
                2 => drop(e.receive(ctx, disk, crate::device::Source::Mailbox, &bytes)),
                3 => drop(e.handle_mail(ctx, disk, 0, vec![(1, Ok(bytes.clone()))])),
                4 => {
                    let keys = e.outbox.for_device(&alice);
                    e.handle_acks(ctx, disk, &keys, &bytes);
                }
                5 => e.with_groups(ctx, |g, ctx| {
                    let topic = g.group(&group).and_then(|g| g.topic()).unwrap_or_default().to_owned();
                    g.handle_topic_message(ctx, disk, &topic, 1, alice, false, &bytes);
                    g.handle_topic_message(ctx, disk, &topic, 2, stranger, true, &bytes);
                }),
                6 => {
                    if let Ok(control) = GroupControl::from_bytes(&bytes) {
                        e.with_groups(ctx, |g, ctx| {
                            g.handle_control(ctx, disk, account, alice, control);
                        });
                    }
                }
                7 => {
                    let answer = KeyBundle::from_bytes(&bytes).map_err(|e| e.to_string());
                    e.handle_claimed(ctx, RELAY, alice, answer);
                }
                _ => {
                    let keys = e.outbox.for_device(&alice);
                    let results = bytes
                        .iter()
                        .map(|b| if b % 2 == 0 { DepositResult::Stored } else { DepositResult::Duplicate })
                        .collect();
                    e.handle_deposited(ctx, disk, RELAY, alice, &keys, Ok(results));
                }
            });
        }
        let incoming = net.devs[1].disk.messages.values().filter(|m| !m.outgoing).count();
        prop_assert_eq!(incoming, before, "nothing made up was stored");
    }
}

//! The device engine driven with arbitrary network input: batches from a
//! contact's connection and a stranger's, mail pages, acks, key requests
//! and answers, deposits' answers, topic messages, group control and relay
//! history. It never panics, and nothing made up is stored as a message
//! (that would be a forged Olm or Megolm message).
#![no_main]

use std::convert::Infallible;

use hush_protocol::device::{
    CardReach, ContactBook, ContactRecord, Ctx, DeviceEffect, DeviceEngine, DeviceLookup,
    DeviceSelf, DeviceWrite, GroupBook, GroupConfig, GroupEffect, GroupSelf, GroupWrite,
    MessageClock, MessageRecord, PendingRecord, RightIssuer, Source,
};
use hush_protocol::{
    AccountKey, ContactCard, ConversationId, DepositResult, DeviceId, DeviceKeys, DeviceList,
    GroupControl, KeyBundle, MessageId, Now, OlmDevice, SessionId, Wire,
};
use libfuzzer_sys::fuzz_target;
use rand::SeedableRng;
use rand::rngs::StdRng;

struct Nothing;

impl DeviceLookup for Nothing {
    type Error = Infallible;
    fn seen(&self, _: &[u8; 32]) -> Result<bool, Infallible> {
        Ok(false)
    }
    fn message(
        &self,
        _: &ConversationId,
        _: MessageId,
    ) -> Result<Option<MessageRecord>, Infallible> {
        Ok(None)
    }
    fn pending(&self, _: &SessionId) -> Result<Vec<([u8; 32], PendingRecord)>, Infallible> {
        Ok(Vec::new())
    }
    fn outgoing(&self, _: &ConversationId, _: &[MessageId]) -> Result<Vec<MessageId>, Infallible> {
        Ok(Vec::new())
    }
    fn unread(&self, _: &ConversationId) -> Result<Vec<MessageId>, Infallible> {
        Ok(Vec::new())
    }
}

fn reach(card: &ContactCard) -> CardReach<u8, ()> {
    CardReach {
        devices: card
            .device_list
            .devices
            .iter()
            .map(|d| (d.device_id, d.device_id.0[0]))
            .collect(),
        addresses: vec![],
        relays: card.relays.iter().map(|_| (7, ())).collect(),
    }
}

fn keys_of(seed: u8, olm: &OlmDevice) -> DeviceKeys {
    DeviceKeys {
        device_id: DeviceId([seed; 32]),
        olm_ed25519: olm.ed25519_key(),
        olm_curve25519: olm.curve25519_key(),
        mailbox_key: [seed; 32],
    }
}

fuzz_target!(|data: &[u8]| {
    let alice_olm = OlmDevice::new();
    let alice_key = AccountKey::from_seed([1; 32]);
    let alice_list = DeviceList::sign(&alice_key, 1, vec![keys_of(1, &alice_olm)]);
    let alice = ContactCard::sign(
        &alice_key,
        "alice".into(),
        alice_list,
        vec![],
        vec!["r".into()],
    );
    let olm = OlmDevice::new();
    let bob_key = AccountKey::from_seed([2; 32]);
    let bob = keys_of(2, &olm);
    let mut contacts = ContactBook::default();
    let record = ContactRecord {
        name: "alice".into(),
        card: alice.to_string(),
        account: alice.account(),
        send_receipts: true,
        added_at_ms: 0,
    };
    contacts.insert(record, alice.clone(), reach(&alice));
    let groups = GroupBook::new(
        GroupSelf {
            key: bob_key.clone(),
            device: bob.device_id,
            pickle_key: [2; 32],
        },
        GroupConfig::default(),
        reach,
    );
    let me = DeviceSelf {
        account: bob_key.id(),
        keys: bob,
        issuer: RightIssuer::new([2; 32]),
    };
    let mut engine = DeviceEngine::<u8, (), u64, u64>::new(me, olm, contacts, groups, reach);
    let mut clock = MessageClock::default();
    let mut rng = StdRng::seed_from_u64(0);
    let now = Now::new(1_000, 1_800_000_000_000);
    let mut ctx = Ctx {
        now,
        clock: &mut clock,
        rng: &mut rng,
    };
    let store = Nothing;
    let group = engine
        .with_groups(&mut ctx, |g, ctx| g.create(ctx, "g".into(), alice.clone()))
        .ok();
    let _ = engine.send_text(&mut ctx, "alice", "hi".into());
    for chunk in data.split(|b| *b == 0xFF) {
        let Some((&selector, bytes)) = chunk.split_first() else {
            continue;
        };
        match selector % 10 {
            0 => drop(engine.handle_batch(&mut ctx, &store, 1, bytes)),
            1 => drop(engine.handle_batch(&mut ctx, &store, 9, bytes)),
            2 => drop(engine.receive(&mut ctx, &store, Source::Mailbox, bytes)),
            3 => drop(engine.handle_mail(&mut ctx, &store, 0, vec![(1, Ok(bytes.to_vec()))])),
            4 => {
                let keys: Vec<_> = engine.outbox.for_device(&DeviceId([1; 32]));
                engine.handle_acks(&mut ctx, &store, &keys, bytes);
            }
            5 => {
                engine.with_groups(&mut ctx, |g, ctx| {
                    let topic = group
                        .and_then(|id| g.group(&id))
                        .and_then(|g| g.topic())
                        .unwrap_or_default()
                        .to_owned();
                    g.handle_topic_message(ctx, &store, &topic, 1, 1, false, bytes);
                    g.handle_topic_message(ctx, &store, "elsewhere", 2, 9, true, bytes);
                });
            }
            6 => {
                if let Ok(control) = GroupControl::from_bytes(bytes) {
                    let account = alice.account();
                    engine.with_groups(&mut ctx, |g, ctx| {
                        g.handle_control(ctx, &store, account, DeviceId([1; 32]), control);
                    });
                }
            }
            7 => {
                if let Some(id) = group {
                    let items = vec![(1, bytes.to_vec())];
                    engine.with_groups(&mut ctx, |g, ctx| {
                        let topic = g.group(&id).and_then(|g| g.topic()).unwrap_or_default();
                        let topic = topic.to_owned();
                        g.handle_history_page(ctx, &store, 7, id, &topic, items, true);
                    });
                }
            }
            8 => {
                let _ = engine.handle_key_request(now, 1, bytes);
                let _ = engine.handle_key_request(now, 9, bytes);
                let answer = KeyBundle::from_bytes(bytes).map_err(|e| e.to_string());
                engine.handle_claimed(&mut ctx, 7, DeviceId([1; 32]), answer);
            }
            _ => {
                let keys: Vec<_> = engine.outbox.for_device(&DeviceId([1; 32]));
                let results = bytes
                    .iter()
                    .map(|b| {
                        if b % 2 == 0 {
                            DepositResult::Stored
                        } else {
                            DepositResult::Duplicate
                        }
                    })
                    .collect();
                engine.handle_deposited(&mut ctx, &store, 7, DeviceId([1; 32]), &keys, Ok(results));
            }
        }
        while let Some(effect) = engine.poll_effect() {
            match effect {
                DeviceEffect::Write(DeviceWrite::Message(_, m)) => {
                    assert!(m.outgoing, "a made-up message was stored");
                }
                DeviceEffect::Group(GroupEffect::Write(GroupWrite::Message(_, m))) => {
                    assert!(m.outgoing, "a made-up group message was stored");
                }
                _ => {}
            }
        }
    }
});

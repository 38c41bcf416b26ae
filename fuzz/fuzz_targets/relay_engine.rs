//! The relay engine driven by arbitrary requests from a few senders, with
//! commits, failed commits and time passing in between: it never panics,
//! answers every request exactly once, and never counts more mail than the
//! store holds.
#![no_main]

use hush_protocol::Now;
use hush_protocol::relay::{MailLookup, MemoryMailStore, Quotas, RelayEngine, RelayRules};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut store = MemoryMailStore::default();
    let rules = RelayRules {
        quotas: Quotas {
            mailbox_items: 8,
            sender_items: 4,
            ..Quotas::default()
        },
        retention_secs: 60,
    };
    let mut now = Now::new(0, 1_800_000_000_000);
    let Ok(mut engine) = RelayEngine::<u32>::load(rules, [[1; 32], [2; 32]], &store, now) else {
        return;
    };
    let mut asked = 0u32;
    let mut answered = 0u32;
    // Each chunk: one control byte, then a request's bytes.
    for chunk in data.split(|b| *b == 0xfe) {
        let Some((&control, request)) = chunk.split_first() else {
            continue;
        };
        match control % 4 {
            0 | 1 => {
                asked += 1;
                let sender = [control % 3];
                engine.handle_request(now, &sender, request, asked, &store);
            }
            2 => {
                if let Some(writes) = engine.poll_commit() {
                    store.fail_next_commit = control & 0x40 != 0;
                    let result = store.apply(writes);
                    engine.handle_committed(result, &store);
                }
            }
            _ => {
                now = now.plus_ms(u64::from(control) * 1000);
                engine.handle_timeout(now, &store);
            }
        }
        while engine.poll_reply().is_some() {
            answered += 1;
        }
        while engine.poll_event().is_some() {}
    }
    // Land everything and let every held fetch time out.
    for _ in 0..4 {
        if let Some(writes) = engine.poll_commit() {
            let result = store.apply(writes);
            engine.handle_committed(result, &store);
        }
        now = now.plus_ms(60_000);
        engine.handle_timeout(now, &store);
        while engine.poll_reply().is_some() {
            answered += 1;
        }
    }
    assert_eq!(asked, answered, "every request is answered once");
    let stored = store.usage().map(|u| u.len() as u64).unwrap_or(0);
    assert_eq!(engine.stats().stored_messages, stored);
});

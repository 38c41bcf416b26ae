//! The device's inbox with arbitrary bytes from a contact's connection, a
//! stranger's, and a relay mailbox: it never panics, and nothing made up
//! opens as a message (that would be a forged Olm message).
#![no_main]

use std::convert::Infallible;

use hush_protocol::device::{Arrival, CardReach, ContactBook, ContactRecord, Inbox, Source};
use hush_protocol::{AccountKey, ContactCard, DeviceId, DeviceKeys, DeviceList, OlmDevice};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut olm = OlmDevice::new();
    let alice = OlmDevice::new();
    let alice_keys = DeviceKeys {
        device_id: DeviceId([1; 32]),
        olm_ed25519: alice.ed25519_key(),
        olm_curve25519: alice.curve25519_key(),
        mailbox_key: [1; 32],
    };
    let account = AccountKey::from_seed([1; 32]);
    let list = DeviceList::sign(&account, 1, vec![alice_keys]);
    let card = ContactCard::sign(&account, "alice".into(), list, vec![], vec![]);
    let record = ContactRecord {
        name: "alice".into(),
        card: card.to_string(),
        account: card.account(),
        send_receipts: true,
        added_at_ms: 0,
    };
    let mut book = ContactBook::<u8, ()>::default();
    let reach = CardReach {
        devices: vec![(alice_keys.device_id, 1)],
        addresses: vec![],
        relays: vec![],
    };
    book.insert(record, card, reach);
    let me = DeviceId([2; 32]);
    let mut inbox = Inbox::default();
    for source in [Source::Direct(1), Source::Direct(9), Source::Mailbox] {
        let seen = |_: &[u8; 32]| Ok::<bool, Infallible>(false);
        let arrival = inbox.open(&me, source, data, &book, &mut olm, seen);
        assert!(!matches!(arrival, Ok(Arrival::New(_))));
    }
});

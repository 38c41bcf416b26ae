//! Contact card decoders, text and binary: never panic.
#![no_main]

use hush_protocol::{ContactCard, Wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(card) = ContactCard::from_bytes(data) {
        assert_eq!(card.to_bytes(), data);
        let _ = card.verify();
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<ContactCard>();
        let _ = format!("hush1{text}").parse::<ContactCard>();
    }
});

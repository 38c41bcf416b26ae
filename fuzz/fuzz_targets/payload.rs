//! The padded payload decoder (what comes out of Olm): never panics.
#![no_main]

use hush_protocol::Payload;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Payload::from_padded(data) {
        // Padding is canonical: re-padding gives a valid, equal payload.
        assert_eq!(Payload::from_padded(&p.to_padded()).ok(), Some(p));
    }
});

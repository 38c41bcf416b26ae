//! Envelope, ack and key-bundle decoders: never panic; what decodes
//! re-encodes to the same bytes.
#![no_main]

use hush_protocol::{DirectAck, Envelope, KeyBundle, Wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Envelope::from_bytes(data) {
        assert_eq!(e.to_bytes(), data);
    }
    if let Ok(a) = DirectAck::from_bytes(data) {
        assert_eq!(a.to_bytes(), data);
    }
    if let Ok(b) = KeyBundle::from_bytes(data) {
        assert_eq!(b.to_bytes(), data);
    }
});

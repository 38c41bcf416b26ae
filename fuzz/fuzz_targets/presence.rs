//! The presence decoders (sealed record, push, inner record): never panic;
//! what decodes re-encodes to the same bytes; a sealed record the fuzzer
//! made up never opens under a key it does not know.
#![no_main]

use hush_protocol::{Presence, PresenceKey, PresencePush, SealedPresence, Wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = PresenceKey::from_parts(1, [0x5a; 32]);
    if let Ok(sealed) = SealedPresence::from_bytes(data) {
        assert_eq!(sealed.to_bytes(), data);
        // Forging a Poly1305 tag by chance is not expected.
        assert!(sealed.open(&key, 1_795_430_096_789).is_err());
    }
    if let Ok(push) = PresencePush::from_bytes(data) {
        assert_eq!(push.to_bytes(), data);
    }
    if let Ok(presence) = Presence::from_bytes(data) {
        assert_eq!(presence.to_bytes(), data);
    }
});

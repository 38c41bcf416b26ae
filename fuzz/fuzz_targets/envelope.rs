//! The direct-protocol decoders (envelope batch, envelope, ack batch, ack,
//! key bundle): never panic; what decodes re-encodes to the same bytes.
#![no_main]

use hush_protocol::{AckBatch, DirectAck, Envelope, EnvelopeBatch, KeyBundle, Wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = EnvelopeBatch::from_bytes(data) {
        assert_eq!(batch.to_bytes(), data);
        for e in &batch.envelopes {
            if let Ok(envelope) = Envelope::from_bytes(e) {
                assert_eq!(&envelope.to_bytes(), e);
            }
        }
    }
    if let Ok(e) = Envelope::from_bytes(data) {
        assert_eq!(e.to_bytes(), data);
    }
    if let Ok(a) = AckBatch::from_bytes(data) {
        assert_eq!(a.to_bytes(), data);
    }
    if let Ok(a) = DirectAck::from_bytes(data) {
        assert_eq!(a.to_bytes(), data);
    }
    if let Ok(b) = KeyBundle::from_bytes(data) {
        assert_eq!(b.to_bytes(), data);
    }
});

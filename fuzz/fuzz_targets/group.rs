//! The group decoders (control message, op, published message): never
//! panic; what decodes re-encodes to the same bytes; a made-up op never
//! verifies, and folding whatever decodes never panics.
#![no_main]

use hush_protocol::{
    ControlKind, GroupControl, GroupMessage, GroupOp, GroupState, PublishKey, TopicKey, Wire,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(control) = GroupControl::from_bytes(data) {
        assert_eq!(control.to_bytes(), data);
        if let ControlKind::Ops(ops) = &control.kind {
            for op in ops {
                // Forging an Ed25519 signature by chance is not expected.
                assert!(op.verify().is_err());
            }
            let _ = GroupState::fold(control.group, ops);
        }
    }
    if let Ok(op) = GroupOp::from_bytes(data) {
        assert_eq!(op.to_bytes(), data);
    }
    if let Ok(message) = GroupMessage::from_bytes(data) {
        assert_eq!(message.to_bytes(), data);
        // A signature nobody made never verifies.
        let key = PublishKey::from_secret(&[7; 32]);
        let sealed = key.seal(message.session, message.ciphertext.clone());
        assert!(key.public().verify(&sealed));
        if sealed.signature != message.signature {
            assert!(!key.public().verify(&message));
        }
        // Nor does a tag nobody made pass a member's check.
        if message != sealed {
            assert!(!key.is_authentic(&message));
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Some(key) = TopicKey::parse(text)
    {
        assert_eq!(key.topic(), text);
    }
});

//! The mailbox protocol decoders (request, response, sealed envelope):
//! never panic; what decodes re-encodes to the same bytes; an owner
//! request's auth and a deposit right never verify for bytes the fuzzer
//! made up.
#![no_main]

use hush_protocol::{DepositRight, MailboxRequest, MailboxResponse, SealedEnvelope, Wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = MailboxRequest::from_bytes(data) {
        assert_eq!(request.to_bytes(), data);
        if let MailboxRequest::Owner { auth, request } = &request {
            // Forging an Ed25519 signature by chance is not expected.
            assert!(!auth.verify(&request.body_bytes()));
        }
        if let MailboxRequest::Deposit {
            right: Some(right), ..
        } = &request
        {
            assert!(!right.verify());
        }
    }
    if let Ok(right) = DepositRight::from_bytes(data) {
        assert_eq!(right.to_bytes(), data);
        assert!(!right.verify());
    }
    if let Ok(response) = MailboxResponse::from_bytes(data) {
        assert_eq!(response.to_bytes(), data);
    }
    if let Ok(sealed) = SealedEnvelope::from_bytes(data) {
        assert_eq!(sealed.to_bytes(), data);
    }
});

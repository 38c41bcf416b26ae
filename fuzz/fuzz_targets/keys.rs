//! The key decoders (device list, key request): never panic; what decodes
//! re-encodes to the same bytes; a made-up device list, or a made-up
//! device proof, never verifies.
#![no_main]

use hush_protocol::{DeviceList, KeyRequest, Proof, Wire};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(list) = DeviceList::from_bytes(data) {
        assert_eq!(list.to_bytes(), data);
        // Forging an Ed25519 signature by chance is not expected.
        assert!(list.verify().is_err());
        for device in &list.devices {
            assert_ne!(list.proof(device), Proof::Proven);
        }
    }
    if let Ok(request) = KeyRequest::from_bytes(data) {
        assert_eq!(request.to_bytes(), data);
    }
});

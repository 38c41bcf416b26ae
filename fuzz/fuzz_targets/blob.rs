//! The file decoders (manifest, blob request and response, upload offer
//! and answer) and a group's
//! verification: never panic; requests and responses re-encode to the same
//! bytes; a manifest decodes to itself once re-encoded (its name is made
//! safe on the way, so the bytes may differ the first time); a response's
//! groups are checked against a real file's root without panicking, and
//! nothing random passes.
#![no_main]

use hush_protocol::Wire;
use hush_protocol::blob::{
    BlobRequest, BlobResponse, BlobUpload, FileKey, FileManifest, GROUP_PLAIN_LEN, Sealer,
    UploadAnswer, accept_groups, safe_file_name, verify_group,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(request) = BlobRequest::from_bytes(data) {
        assert_eq!(request.to_bytes(), data);
        let _ = request.check();
    }
    if let Ok(upload) = BlobUpload::from_bytes(data) {
        assert_eq!(upload.to_bytes(), data);
    }
    if let Ok(answer) = UploadAnswer::from_bytes(data) {
        assert_eq!(answer.to_bytes(), data);
    }
    if let Ok(manifest) = FileManifest::from_bytes(data) {
        let again = FileManifest::from_bytes(&manifest.to_bytes()).expect("re-decodes");
        assert_eq!(again, manifest);
        assert_eq!(safe_file_name(&manifest.name), manifest.name);
        assert!(!manifest.name.contains('/') && !manifest.name.starts_with('.'));
    }
    // A small real file, three groups.
    let len = 2 * GROUP_PLAIN_LEN + 5;
    let mut sealer = Sealer::new(FileKey([1; 32]), len).expect("in range");
    while !sealer.is_done() {
        let n = sealer.next_plain_len() as usize;
        sealer.seal(&vec![7; n]).expect("sealed");
    }
    let tree = sealer.finish().expect("whole");
    if let Ok(response) = BlobResponse::from_bytes(data) {
        assert_eq!(response.to_bytes(), data);
        if let BlobResponse::Groups(groups) = response {
            let request = BlobRequest {
                root: tree.root(),
                len: tree.len(),
                first: groups.first().map_or(0, |g| g.index),
                count: groups.len().clamp(1, 16) as u16,
            };
            assert!(groups.is_empty() || accept_groups(&request, groups).is_err());
        }
    }
    // Any bytes as a group at any place: refused, never a panic.
    if data.len() >= 16 {
        let index = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
        let total = u64::from_le_bytes(data[8..16].try_into().expect("8 bytes"));
        let proof: Vec<[u8; 32]> = data[16..]
            .chunks_exact(32)
            .take(30)
            .filter_map(|c| c.try_into().ok())
            .collect();
        assert!(verify_group(&tree.root(), total, index, &data[16..], &proof).is_err());
    }
});

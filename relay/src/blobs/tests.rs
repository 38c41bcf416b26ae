//! The relay's file budget against uploaders who would fill it.

use super::*;

fn blobs(dir: &Path, limits: FileLimits, disk_bytes: u64) -> Arc<RelayBlobs> {
    RelayBlobs::open(dir.join("blobs"), &limits, 3600, disk_bytes).unwrap()
}

fn offer(n: u8, len: u64) -> BlobUpload {
    BlobUpload {
        root: BlobRoot([n; 32]),
        len,
    }
}

const GIB: u64 = 1 << 30;

/// Attack: peer ids cost nothing, so one machine that makes a new one per
/// upload fills the relay's whole file budget, and the files of its real
/// users are refused until the retention runs out.
#[test]
fn a_stranger_with_many_peer_ids_cannot_fill_the_file_budget() {
    let dir = tempfile::tempdir().unwrap();
    let relay = blobs(dir.path(), FileLimits::default(), 100 * GIB);
    let attacker: IpAddr = "203.0.113.9".parse().unwrap();
    let mut taken = 0;
    for n in 0..8u8 {
        let peer = PeerId::random();
        if relay.reserve(peer, Some(attacker), &offer(n, GIB)).is_ok() {
            taken += 1;
            relay.release(&BlobRoot([n; 32]), true);
        }
    }
    assert_eq!(taken, 4, "one address holds at most per_ip_bytes (4 GiB)");
    // A user elsewhere still gets room.
    let user: IpAddr = "198.51.100.7".parse().unwrap();
    assert!(
        relay
            .reserve(PeerId::random(), Some(user), &offer(100, GIB))
            .is_ok()
    );
}

#[test]
fn files_and_mail_share_the_disk_budget() {
    let dir = tempfile::tempdir().unwrap();
    let relay = blobs(dir.path(), FileLimits::default(), 3 * GIB);
    relay.set_other_bytes(2 * GIB);
    let peer = PeerId::random();
    assert_eq!(
        relay.reserve(peer, None, &offer(1, GIB + 1)).err(),
        Some(UploadRefusal::Quota),
        "mail holds 2 of the 3 GiB: a file over 1 GiB does not fit"
    );
    assert!(relay.reserve(peer, None, &offer(2, GIB)).is_ok());
    assert_eq!(
        relay.bytes(),
        GIB,
        "counted at once, for the service to see"
    );
}

#[test]
fn an_uploader_address_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let ip: IpAddr = "203.0.113.9".parse().unwrap();
    {
        let relay = blobs(dir.path(), FileLimits::default(), 100 * GIB);
        let Ok(Reserved::Upload(entry)) = relay.reserve(PeerId::random(), Some(ip), &offer(1, GIB))
        else {
            panic!("refused");
        };
        let root = BlobRoot([1; 32]);
        write_meta(&meta_path(&relay.dir, &root), &root, &entry).unwrap();
        std::fs::write(relay.dir.join(format!("{root}.part")), b"").unwrap();
    }
    let relay = blobs(dir.path(), FileLimits::default(), 100 * GIB);
    for n in 2..5u8 {
        assert!(
            relay
                .reserve(PeerId::random(), Some(ip), &offer(n, GIB))
                .is_ok()
        );
    }
    assert_eq!(
        relay
            .reserve(PeerId::random(), Some(ip), &offer(9, GIB))
            .err(),
        Some(UploadRefusal::Quota)
    );
}

//! The content layer against `blake3::hash` itself, and what a lying
//! source can try.

use std::collections::HashMap;

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::codec::Wire;

/// A file of `len` bytes sealed whole: its ciphertext and tree.
fn sealed(len: u64, seed: u64) -> (FileKey, Vec<u8>, Vec<u8>, Tree) {
    let mut rng = StdRng::seed_from_u64(seed);
    let plain: Vec<u8> = (0..len).map(|i| (i * 31 + seed) as u8).collect();
    let key = FileKey::random(&mut rng);
    let mut sealer = Sealer::new(key.clone(), len).unwrap();
    let mut cipher = Vec::new();
    let mut at = 0usize;
    while !sealer.is_done() {
        let n = sealer.next_plain_len() as usize;
        let (index, group) = sealer.seal(&plain[at..at + n]).unwrap();
        assert_eq!(index * GROUP_LEN, cipher.len() as u64);
        cipher.extend_from_slice(&group);
        at += n;
    }
    assert_eq!(cipher.len() as u64, sealer.cipher_len());
    let tree = sealer.finish().unwrap();
    (key, plain, cipher, tree)
}

fn group_of(cipher: &[u8], index: u64) -> &[u8] {
    let start = (index * GROUP_LEN) as usize;
    let end = (start + GROUP_LEN as usize).min(cipher.len());
    &cipher[start..end]
}

/// Sizes around every edge: empty, one BLAKE3 chunk, one group, a group
/// boundary in plaintext and in ciphertext, and trees that are not full.
const SIZES: [u64; 12] = [
    0,
    1,
    1024,
    1025,
    GROUP_PLAIN_LEN - 1,
    GROUP_PLAIN_LEN,
    GROUP_PLAIN_LEN + 1,
    2 * GROUP_PLAIN_LEN,
    3 * GROUP_PLAIN_LEN + 7,
    5 * GROUP_PLAIN_LEN,
    8 * GROUP_PLAIN_LEN + 1,
    13 * GROUP_PLAIN_LEN + 4096,
];

#[test]
fn the_root_is_the_ciphertexts_blake3_hash_and_every_group_verifies_and_opens() {
    for len in SIZES {
        let (key, plain, cipher, tree) = sealed(len, len);
        assert_eq!(
            tree.root().0,
            *blake3::hash(&cipher).as_bytes(),
            "root of {len}"
        );
        let count = groups(cipher.len() as u64);
        let mut opened = Vec::new();
        for index in 0..count {
            let group = group_of(&cipher, index);
            let proof = tree.proof(index).unwrap();
            verify_group(&tree.root(), tree.len(), index, group, &proof)
                .unwrap_or_else(|e| panic!("{len} bytes, group {index}: {e}"));
            opened.extend(open_group(&key, index, index + 1 == count, group).unwrap());
        }
        assert_eq!(opened, plain, "round trip of {len}");
    }
}

#[test]
fn a_lying_source_is_caught_at_the_group() {
    let len = 5 * GROUP_PLAIN_LEN + 100;
    let (_, _, cipher, tree) = sealed(len, 1);
    let root = tree.root();
    let total = tree.len();
    let (index, group) = (2, group_of(&cipher, 2));
    let proof = tree.proof(index).unwrap();
    // A flipped bit anywhere in the group.
    for at in [0, 1000, group.len() - 1] {
        let mut bad = group.to_vec();
        bad[at] ^= 1;
        assert_eq!(
            verify_group(&root, total, index, &bad, &proof),
            Err(BlobError::Mismatch { index })
        );
    }
    // The right bytes of another group, or offered as another group.
    assert!(verify_group(&root, total, index, group_of(&cipher, 1), &proof).is_err());
    assert!(verify_group(&root, total, 3, group, &tree.proof(3).unwrap()).is_err());
    // A damaged or shortened proof, a truncated group, a wrong length.
    let mut damaged = proof.clone();
    damaged[0][5] ^= 1;
    assert!(verify_group(&root, total, index, group, &damaged).is_err());
    assert!(verify_group(&root, total, index, group, &proof[1..]).is_err());
    assert!(matches!(
        verify_group(&root, total, index, &group[..100], &proof),
        Err(BlobError::WrongLength { .. })
    ));
    // The length comes from the manifest with the root: a group checked
    // under another length is refused where that length changes its place
    // or size (where it changes neither, the group is still the file's).
    let last = groups(total) - 1;
    let last_proof = tree.proof(last).unwrap();
    let tail = group_of(&cipher, last);
    assert!(verify_group(&root, total, last, tail, &last_proof).is_ok());
    assert!(verify_group(&root, total - 50, last, tail, &last_proof).is_err());
    assert!(verify_group(&root, total + GROUP_LEN, last, tail, &last_proof).is_err());
    assert!(matches!(
        verify_group(&root, total, 99, group, &proof),
        Err(BlobError::NoSuchGroup { .. })
    ));
    // A one-group file: the proof must be empty and the hash the root.
    let (_, _, small, small_tree) = sealed(10, 2);
    let mut bad = small.clone();
    bad[3] ^= 1;
    assert!(verify_group(&small_tree.root(), small.len() as u64, 0, &bad, &[]).is_err());
}

#[test]
fn a_group_opens_only_under_its_key_at_its_place() {
    let len = 3 * GROUP_PLAIN_LEN + 5;
    let (key, _, cipher, _) = sealed(len, 3);
    let group = group_of(&cipher, 1);
    assert!(open_group(&key, 1, false, group).is_ok());
    assert_eq!(
        open_group(&key, 2, false, group),
        Err(BlobError::Undecryptable { index: 2 })
    );
    assert!(open_group(&FileKey([9; 32]), 1, false, group).is_err());
    // The last group flagged as not last (a file cut short) does not open.
    let last = group_of(&cipher, 3);
    assert!(open_group(&key, 3, true, last).is_ok());
    assert!(open_group(&key, 3, false, last).is_err());
}

/// A known answer (made with chacha20poly1305 0.10, before the crate was
/// upgraded): protocol.md's group nonce and cipher, byte for byte, so a
/// file sent by an older build opens in this one and a second
/// implementation can check itself.
#[test]
fn a_group_seals_to_the_known_answer() {
    let key = FileKey([9; 32]);
    let sealed = seal_group(&key, 5, true, b"the last group of a file");
    assert_eq!(
        hex::encode(&sealed),
        "cdb39f42757cb9c23136bd35ec6b9128aa8dc6fdf97007129229b884cf89ee4c8295928c13b69100"
    );
    assert_eq!(
        open_group(&key, 5, true, &sealed).as_deref(),
        Ok(&b"the last group of a file"[..])
    );
}

#[test]
fn lengths_are_checked() {
    assert_eq!(ciphertext_len(0), Ok(TAG_LEN));
    assert_eq!(ciphertext_len(GROUP_PLAIN_LEN), Ok(GROUP_LEN + TAG_LEN));
    assert!(matches!(
        ciphertext_len(MAX_FILE_LEN + 1),
        Err(BlobError::TooLarge { .. })
    ));
    let mut sealer = Sealer::new(FileKey([1; 32]), 10).unwrap();
    assert!(matches!(
        sealer.seal(&[0; 9]),
        Err(BlobError::WrongLength { .. })
    ));
    sealer.seal(&[0; 10]).unwrap();
    assert!(matches!(
        sealer.seal(&[]),
        Err(BlobError::NoSuchGroup { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Any size: the root is BLAKE3's, and a random group verifies only
    /// with its own bytes.
    #[test]
    fn any_size_verifies_group_by_group(len in 0u64..(20 * GROUP_PLAIN_LEN), pick in any::<u64>()) {
        let (_, _, cipher, tree) = sealed(len, pick);
        prop_assert_eq!(tree.root().0, *blake3::hash(&cipher).as_bytes());
        let count = groups(cipher.len() as u64);
        let index = pick % count;
        let proof = tree.proof(index).unwrap();
        let group = group_of(&cipher, index);
        prop_assert!(verify_group(&tree.root(), tree.len(), index, group, &proof).is_ok());
        let mut bad = group.to_vec();
        let at = (pick as usize / 7) % bad.len();
        bad[at] ^= 0x40;
        prop_assert!(verify_group(&tree.root(), tree.len(), index, &bad, &proof).is_err());
    }
}

fn manifest() -> FileManifest {
    FileManifest {
        root: BlobRoot([1; 32]),
        key: FileKey([2; 32]),
        size: 1000,
        sealed_len: 1000,
        compression: Compression::None,
        name: "holiday.mp4".into(),
        mime: "video/mp4".into(),
        thumbnail: Some(vec![7; 100]),
    }
}

#[test]
fn a_manifest_round_trips_and_absurd_ones_are_refused() {
    let m = manifest();
    assert_eq!(FileManifest::from_bytes(&m.to_bytes()).unwrap(), m);
    for bad in [
        FileManifest {
            size: MAX_FILE_LEN + 1,
            sealed_len: MAX_FILE_LEN + 1,
            ..manifest()
        },
        FileManifest {
            sealed_len: 10,
            ..manifest()
        },
        FileManifest {
            mime: "text/plain\n".into(),
            ..manifest()
        },
        FileManifest {
            thumbnail: Some(vec![0; MAX_THUMBNAIL_LEN + 1]),
            ..manifest()
        },
    ] {
        assert!(
            FileManifest::from_bytes(&bad.to_bytes()).is_err(),
            "{bad:?} was taken"
        );
    }
}

#[test]
fn names_from_a_manifest_cannot_leave_the_files_folder_or_hide() {
    for (sent, kept) in [
        ("../../.bashrc", "bashrc"),
        ("/etc/passwd", "passwd"),
        ("..\\..\\boot.ini", "boot.ini"),
        ("..", "file"),
        ("", "file"),
        ("photo\u{202e}gpj.exe", "photogpj.exe"),
        ("a\u{1b}[2Jb.txt", "a[2Jb.txt"),
        ("  report.pdf ", "report.pdf"),
    ] {
        let m = FileManifest {
            name: sent.into(),
            ..manifest()
        };
        assert_eq!(
            FileManifest::from_bytes(&m.to_bytes()).unwrap().name,
            kept,
            "{sent:?}"
        );
    }
    let long = "é".repeat(400);
    let kept = safe_file_name(&long);
    assert!(kept.len() <= MAX_FILE_NAME_LEN && kept.chars().all(|c| c == 'é'));
}

#[test]
fn a_source_serves_verified_ranges_and_a_lying_one_is_caught() {
    let len = 40 * GROUP_PLAIN_LEN + 9;
    let (_, _, cipher, tree) = sealed(len, 4);
    let request = BlobRequest {
        root: tree.root(),
        len: tree.len(),
        first: 38,
        count: 3,
    };
    assert_eq!(
        BlobRequest::from_bytes(&request.to_bytes()).unwrap(),
        request
    );
    let read = |i: u64| Ok(group_of(&cipher, i).to_vec());
    let BlobResponse::Groups(groups) = serve(&tree, &request, read) else {
        panic!("not served");
    };
    let response = BlobResponse::Groups(groups.clone());
    assert_eq!(
        BlobResponse::from_bytes(&response.to_bytes()).unwrap(),
        response
    );
    let got = accept_groups(&request, groups.clone()).unwrap();
    assert_eq!(
        got.iter().map(|g| g.index).collect::<Vec<_>>(),
        [38, 39, 40]
    );
    for g in &got {
        assert_eq!(g.hash, leaf(g.index, &g.bytes), "the hash it proved with");
    }
    // A flipped bit, groups out of order, or more than asked: refused.
    let mut flipped = groups.clone();
    flipped[1].bytes[0] ^= 1;
    assert_eq!(
        accept_groups(&request, flipped),
        Err(BlobError::Mismatch { index: 39 })
    );
    let mut swapped = groups.clone();
    swapped.swap(0, 1);
    assert!(accept_groups(&request, swapped).is_err());
    // Out of range, too many, or another blob: not served.
    for bad in [
        BlobRequest {
            first: 40,
            count: 2,
            ..request
        },
        BlobRequest {
            count: MAX_GROUPS_PER_REQUEST + 1,
            first: 0,
            ..request
        },
        BlobRequest {
            root: BlobRoot([0; 32]),
            ..request
        },
    ] {
        assert_eq!(
            serve(&tree, &bad, read),
            BlobResponse::Refused(BlobRefusal::BadRange)
        );
    }
}

/// How a simulated source answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Peer {
    Honest(u8),
    /// Flips a bit in every group it sends.
    Liar,
    /// Does not hold the blob.
    Empty,
    /// Sends only the first group of each range.
    Stingy,
}

/// Runs a download from `peers` to the end (or until it stalls): the
/// groups stored, and how many requests each peer got.
fn download(len: u64, peers: &[Peer]) -> (Fetcher<Peer>, Vec<u8>, Vec<u8>, HashMap<Peer, usize>) {
    let (_, _, cipher, tree) = sealed(len, 11);
    let mut fetcher = Fetcher::new(tree.root(), tree.len(), 0..groups(tree.len()));
    for p in peers {
        fetcher.add_source(*p);
    }
    let mut stored = vec![0u8; cipher.len()];
    let mut asked: HashMap<Peer, usize> = HashMap::new();
    let mut now = 0;
    for _ in 0..10_000 {
        // Everything the fetcher will send now, answered in turn.
        let mut batch = Vec::new();
        while let Some(r) = fetcher.poll_request(now) {
            assert!(batch.len() <= MAX_IN_FLIGHT_PER_SOURCE * peers.len());
            batch.push(r);
        }
        if batch.is_empty() && (fetcher.is_done() || fetcher.is_stalled()) {
            break;
        }
        for (id, peer, request) in batch {
            *asked.entry(peer).or_default() += 1;
            let read = |i: u64| Ok(group_of(&cipher, i).to_vec());
            let response = match peer {
                Peer::Empty => BlobResponse::Refused(BlobRefusal::NotHere),
                _ => serve(&tree, &request, read),
            };
            let response = match (peer, response) {
                (Peer::Liar, BlobResponse::Groups(mut g)) => {
                    g.iter_mut().for_each(|g| g.bytes[0] ^= 1);
                    BlobResponse::Groups(g)
                }
                (Peer::Stingy, BlobResponse::Groups(mut g)) => {
                    g.truncate(1);
                    BlobResponse::Groups(g)
                }
                (_, r) => r,
            };
            if let Fetched::Check { request, groups } = fetcher.on_response(now, id, response) {
                // Stored group by group as each proves itself, up to the
                // first that does not.
                let mut count = 0;
                let mut lie = None;
                for (position, group) in groups.into_iter().enumerate() {
                    match accept_group(&request, position, group) {
                        Ok(g) => {
                            let at = (g.index * GROUP_LEN) as usize;
                            stored[at..at + g.bytes.len()].copy_from_slice(&g.bytes);
                            count += 1;
                        }
                        Err(e) => {
                            lie = Some(e);
                            break;
                        }
                    }
                }
                fetcher.on_checked(now, id, count, lie.as_ref());
            }
        }
        now += 100;
    }
    (fetcher, stored, cipher, asked)
}

#[test]
fn a_download_completes_from_several_sources_at_once() {
    let (fetcher, stored, cipher, asked) =
        download(200 * GROUP_PLAIN_LEN, &[Peer::Honest(1), Peer::Honest(2)]);
    assert!(fetcher.is_done());
    assert_eq!(stored, cipher);
    assert!(
        asked[&Peer::Honest(1)] >= 3 && asked[&Peer::Honest(2)] >= 3,
        "{asked:?}"
    );
}

#[test]
fn a_lying_source_is_dropped_and_its_ranges_come_from_another() {
    let (fetcher, stored, cipher, asked) = download(
        60 * GROUP_PLAIN_LEN,
        &[Peer::Liar, Peer::Empty, Peer::Stingy, Peer::Honest(1)],
    );
    assert!(fetcher.is_done());
    assert_eq!(stored, cipher, "nothing of the liar's was stored");
    assert_eq!(fetcher.bad_sources().collect::<Vec<_>>(), [&Peer::Liar]);
    assert!(
        asked[&Peer::Liar] <= MAX_IN_FLIGHT_PER_SOURCE,
        "asked once per slot, then never"
    );
    assert_eq!(asked[&Peer::Empty], 1);
}

#[test]
fn with_only_liars_the_download_stalls_instead_of_storing_anything() {
    let (fetcher, stored, _, _) = download(10 * GROUP_PLAIN_LEN, &[Peer::Liar, Peer::Empty]);
    assert!(fetcher.is_stalled());
    assert!(!fetcher.all_lied(), "one source only lacks it");
    assert!(stored.iter().all(|b| *b == 0));
}

#[test]
fn a_source_that_lacked_the_blob_is_asked_again_when_told() {
    let (_, _, _, tree) = sealed(3 * GROUP_PLAIN_LEN, 13);
    let mut fetcher = Fetcher::new(tree.root(), tree.len(), 0..groups(tree.len()));
    fetcher.add_source(1u8);
    let (id, _, _) = fetcher.poll_request(0).unwrap();
    fetcher.on_response(0, id, BlobResponse::Refused(BlobRefusal::NotHere));
    assert!(fetcher.is_stalled() && !fetcher.all_lied());
    fetcher.ask_again();
    assert!(fetcher.poll_request(0).is_some());
}

#[test]
fn a_failed_request_is_asked_again_after_a_pause() {
    let (_, _, _, tree) = sealed(3 * GROUP_PLAIN_LEN, 12);
    let mut fetcher = Fetcher::new(tree.root(), tree.len(), 0..groups(tree.len()));
    fetcher.add_source(1u8);
    let (id, _, first) = fetcher.poll_request(0).unwrap();
    fetcher.on_failure(0, id);
    assert!(fetcher.poll_request(10).is_none(), "left alone for a while");
    let (_, _, again) = fetcher.poll_request(SOURCE_BACKOFF_MS).unwrap();
    assert_eq!(again, first);
}

#[test]
fn a_tree_rebuilds_from_its_leaves() {
    for len in SIZES {
        let (_, _, cipher, tree) = sealed(len, 5);
        let single = (tree.len() <= GROUP_LEN).then_some(&cipher[..]);
        let again = Tree::new(tree.len(), &tree.leaves(), single).unwrap();
        assert_eq!(again.root(), tree.root(), "{len}");
    }
}

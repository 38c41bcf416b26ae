//! Downloads that stop and resume, and files opened whole or not at all.

use hush_protocol::blob::{
    BlobRequest, FileKey, GROUP_PLAIN_LEN, Sealer, Tree, VerifiedGroup, accept_groups, serve,
};

use super::*;

/// A file sealed whole: its manifest, plaintext, ciphertext and tree.
fn sealed(
    plain: Vec<u8>,
    name: &str,
    compression: Compression,
    size: u64,
) -> (FileManifest, Vec<u8>, Tree) {
    let key = FileKey([5; 32]);
    let mut sealer = Sealer::new(key.clone(), plain.len() as u64).unwrap();
    let mut cipher = Vec::new();
    let mut at = 0;
    while !sealer.is_done() {
        let n = sealer.next_plain_len() as usize;
        cipher.extend(sealer.seal(&plain[at..at + n]).unwrap().1);
        at += n;
    }
    let tree = sealer.finish().unwrap();
    let manifest = FileManifest {
        root: tree.root(),
        key,
        size,
        sealed_len: plain.len() as u64,
        compression,
        name: name.into(),
        mime: String::new(),
        thumbnail: None,
    };
    (manifest, cipher, tree)
}

/// An uncompressed file sealed whole (see [`sealed`]).
fn sealed_as_is(plain: Vec<u8>, name: &str) -> (FileManifest, Vec<u8>, Tree) {
    let size = plain.len() as u64;
    sealed(plain, name, Compression::None, size)
}

/// Fetches `indexes` from the whole ciphertext as a source would serve
/// them, verified.
fn fetch(tree: &Tree, cipher: &[u8], first: u64, count: u16) -> Vec<VerifiedGroup> {
    let request = BlobRequest {
        root: tree.root(),
        len: tree.len(),
        first,
        count,
    };
    let read = |i: u64| {
        let start = (i * GROUP_LEN) as usize;
        Ok(cipher[start..(start + GROUP_LEN as usize).min(cipher.len())].to_vec())
    };
    match serve(tree, &request, read) {
        hush_protocol::blob::BlobResponse::Groups(groups) => {
            accept_groups(&request, groups).unwrap()
        }
        other => panic!("not served: {other:?}"),
    }
}

fn plain(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[test]
fn a_download_stopped_halfway_resumes_and_opens_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (blobs, files) = (dir.path().join("blobs"), dir.path().join("files"));
    let original = plain(10 * GROUP_PLAIN_LEN as usize + 123);
    let (manifest, cipher, tree) = sealed_as_is(original.clone(), "holiday.mp4");
    let total = groups(tree.len());
    {
        let mut partial = PartialBlob::open(&blobs, tree.root(), tree.len()).unwrap();
        assert_eq!(partial.missing(), total);
        partial.write(&fetch(&tree, &cipher, 0, 5)).unwrap();
        assert_eq!(partial.missing(), total - 5);
        // The process dies here (no clean close).
    }
    let mut partial = PartialBlob::open(&blobs, tree.root(), tree.len()).unwrap();
    assert_eq!(
        partial.missing(),
        total - 5,
        "nothing verified is fetched again"
    );
    assert_eq!(partial.next_missing(3), [5, 6, 7]);
    while partial.missing() > 0 {
        let next = partial.next_missing(16);
        partial
            .write(&fetch(&tree, &cipher, next[0], next.len() as u16))
            .unwrap();
    }
    assert_eq!(partial.bytes_done(), tree.len());
    let path = partial.open_into(&manifest, &files).unwrap();
    assert_eq!(path, files.join("holiday.mp4"));
    assert_eq!(std::fs::read(&path).unwrap(), original);
    let left: Vec<_> = std::fs::read_dir(&blobs).unwrap().collect();
    assert!(left.is_empty(), "the download's files are gone");
    // The same name again gets its own.
    let again = PartialBlob::open(&blobs, tree.root(), tree.len()).unwrap();
    let mut again = again;
    again.write(&fetch(&tree, &cipher, 0, 11)).unwrap();
    assert_eq!(
        again.open_into(&manifest, &files).unwrap(),
        files.join("holiday (2).mp4")
    );
}

#[test]
fn a_compressed_file_opens_to_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let original = b"hush hush hush ".repeat(20_000);
    let packed = zstd::encode_all(&original[..], 3).unwrap();
    assert!(packed.len() < original.len() / 10);
    let (manifest, cipher, tree) = sealed(
        packed,
        "notes.txt",
        Compression::Zstd,
        original.len() as u64,
    );
    let mut partial =
        PartialBlob::open(&dir.path().join("blobs"), tree.root(), tree.len()).unwrap();
    partial
        .write(&fetch(&tree, &cipher, 0, groups(tree.len()) as u16))
        .unwrap();
    let path = partial
        .open_into(&manifest, &dir.path().join("files"))
        .unwrap();
    assert_eq!(std::fs::read(path).unwrap(), original);
}

#[test]
fn bytes_damaged_on_disk_or_a_wrong_size_open_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (blobs, files) = (dir.path().join("blobs"), dir.path().join("files"));
    let original = plain(3 * GROUP_PLAIN_LEN as usize);
    let (manifest, cipher, tree) = sealed_as_is(original.clone(), "a.bin");
    let all = groups(tree.len()) as u16;
    let mut partial = PartialBlob::open(&blobs, tree.root(), tree.len()).unwrap();
    partial.write(&fetch(&tree, &cipher, 0, all)).unwrap();
    // A byte flips on disk after it was verified, while the download is
    // open: opening finds it and the download starts again.
    let part = blobs.join(format!("{}.part", tree.root()));
    let flip = |part: &Path| {
        let mut bytes = std::fs::read(part).unwrap();
        bytes[70_000] ^= 1;
        std::fs::write(part, bytes).unwrap();
    };
    flip(&part);
    assert!(matches!(
        partial.open_into(&manifest, &files),
        Err(FileError::Damaged)
    ));
    let mut partial = PartialBlob::open(&blobs, tree.root(), tree.len()).unwrap();
    assert_eq!(partial.missing(), u64::from(all), "it starts again");
    partial.write(&fetch(&tree, &cipher, 0, all)).unwrap();
    // Damaged while the download was closed: found when it resumes, and
    // only that group is fetched again.
    drop(partial);
    flip(&part);
    let mut partial = PartialBlob::open(&blobs, tree.root(), tree.len()).unwrap();
    assert_eq!(partial.next_missing(4), [1]);
    partial.write(&fetch(&tree, &cipher, 1, 1)).unwrap();
    // A manifest that lies about the size: nothing under the name.
    let lying = FileManifest {
        size: 5,
        ..manifest.clone()
    };
    assert!(matches!(
        partial.open_into(&lying, &files),
        Err(FileError::WrongSize { .. })
    ));
    let named: Vec<_> = std::fs::read_dir(&files)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(named.is_empty(), "{named:?}");
}

#[test]
fn a_plaintext_download_is_the_file_itself_and_a_lost_write_is_fetched_again() {
    let dir = tempfile::tempdir().unwrap();
    let (blobs, files) = (dir.path().join("blobs"), dir.path().join("files"));
    let original = plain(6 * GROUP_PLAIN_LEN as usize + 99);
    let (manifest, cipher, tree) = sealed_as_is(original.clone(), "film.mp4");
    let total = groups(tree.len());
    {
        let mut partial = PartialBlob::for_manifest(&blobs, &manifest).unwrap();
        for group in fetch(&tree, &cipher, 0, 4) {
            assert!(partial.write_group(&group).unwrap());
        }
        // Killed here: nothing synced, nothing lost (the page cache keeps it).
    }
    let plain_path = blobs.join(format!("{}.plain", tree.root()));
    let on_disk = std::fs::read(&plain_path).unwrap();
    assert_eq!(on_disk.len(), original.len(), "the plaintext, at its size");
    assert_eq!(
        on_disk[..4 * GROUP_PLAIN_LEN as usize],
        original[..4 * GROUP_PLAIN_LEN as usize],
        "decrypted in place"
    );
    assert_eq!(
        fetched_on_disk(&blobs, &tree.root(), tree.len()),
        4 * GROUP_LEN
    );
    // A power cut kept group 2's hash but not its bytes.
    let file = OpenOptions::new().write(true).open(&plain_path).unwrap();
    file.write_all_at(&[0; 100], 2 * GROUP_PLAIN_LEN + 7)
        .unwrap();
    drop(file);
    let mut partial = PartialBlob::for_manifest(&blobs, &manifest).unwrap();
    assert_eq!(
        partial.next_missing(10),
        (4..total)
            .chain([2])
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        "only the group whose bytes were lost is fetched again"
    );
    for index in partial.next_missing(10) {
        partial.write(&fetch(&tree, &cipher, index, 1)).unwrap();
    }
    let path = partial.open_into(&manifest, &files).unwrap();
    assert_eq!(path, files.join("film.mp4"));
    assert_eq!(std::fs::read(&path).unwrap(), original);
    let left: Vec<_> = std::fs::read_dir(&blobs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(
        left,
        [format!("{}.tree", tree.root())],
        "the download's files are gone but its tree"
    );
    // The file is served from where it was saved, sealed again: what a
    // fetcher gets verifies and is the same ciphertext.
    let source = BlobSource::received(&blobs, &tree.root(), &path, manifest.key.clone())
        .unwrap()
        .expect("served");
    assert_eq!(source.len(), tree.len());
    for first in [0, 4] {
        let request = BlobRequest {
            root: tree.root(),
            len: tree.len(),
            first,
            count: 3,
        };
        let hush_protocol::blob::BlobResponse::Groups(groups) = source.serve(&request) else {
            panic!("not served");
        };
        let got = accept_groups(&request, groups).unwrap();
        for g in got {
            let at = (g.index * GROUP_LEN) as usize;
            assert_eq!(g.bytes, cipher[at..at + g.bytes.len()]);
        }
    }
    // Changed since: what changed is not served (nothing that would not
    // verify leaves this device); a file of another length, nothing at all.
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(b"edited", 5 * GROUP_PLAIN_LEN).unwrap();
    drop(file);
    let request = BlobRequest {
        root: tree.root(),
        len: tree.len(),
        first: 4,
        count: 3,
    };
    let hush_protocol::blob::BlobResponse::Groups(groups) = source.serve(&request) else {
        panic!("group 4 is unchanged");
    };
    assert_eq!(groups.len(), 1, "group 5 changed: not served");
    std::fs::write(&path, b"short").unwrap();
    assert!(
        BlobSource::received(&blobs, &tree.root(), &path, manifest.key.clone())
            .unwrap()
            .is_none()
    );
    // A sender whose groups do not open with the manifest's key: refused
    // as it is stored, nothing written.
    let wrong = FileManifest {
        key: FileKey([6; 32]),
        ..manifest
    };
    let mut partial = PartialBlob::for_manifest(&blobs, &wrong).unwrap();
    assert!(matches!(
        partial.write_group(&fetch(&tree, &cipher, 0, 1)[0]),
        Err(FileError::Blob(BlobError::Undecryptable { index: 0 }))
    ));
    assert_eq!(partial.missing(), total);
}

#[test]
fn an_incomplete_download_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let original = plain(2 * GROUP_PLAIN_LEN as usize);
    let (manifest, cipher, tree) = sealed_as_is(original.clone(), "b.bin");
    let mut partial =
        PartialBlob::open(&dir.path().join("blobs"), tree.root(), tree.len()).unwrap();
    partial.write(&fetch(&tree, &cipher, 0, 1)).unwrap();
    assert!(matches!(
        partial.open_into(&manifest, &dir.path().join("files")),
        Err(FileError::Incomplete { missing: 2, .. })
    ));
}

#[test]
fn a_manifest_with_the_wrong_key_says_so_and_keeps_the_download() {
    let dir = tempfile::tempdir().unwrap();
    let (blobs, files) = (dir.path().join("blobs"), dir.path().join("files"));
    let original = plain(GROUP_PLAIN_LEN as usize + 10);
    let (manifest, cipher, tree) = sealed_as_is(original.clone(), "c.bin");
    let mut partial = PartialBlob::open(&blobs, tree.root(), tree.len()).unwrap();
    partial.write(&fetch(&tree, &cipher, 0, 2)).unwrap();
    let wrong = FileManifest {
        key: FileKey([6; 32]),
        ..manifest
    };
    assert!(matches!(
        partial.open_into(&wrong, &files),
        Err(FileError::Blob(BlobError::Undecryptable { index: 0 }))
    ));
    let partial = PartialBlob::open(&blobs, tree.root(), tree.len()).unwrap();
    assert_eq!(
        partial.missing(),
        0,
        "the bytes are right: nothing to fetch again"
    );
}

/// Sends the file at `path` from one home's blobs to another's download
/// and opens it there, through the range protocol.
fn send_and_fetch(path: &Path, from: &Path, to: &Path) -> (FileManifest, PathBuf) {
    let mut rng = rand::thread_rng();
    let manifest = seal_file(path, &from.join("blobs"), None, &mut rng).unwrap();
    let source = BlobSource::open(&from.join("blobs"), &manifest.root)
        .unwrap()
        .expect("the sender holds it");
    assert_eq!(source.len(), manifest.cipher_len());
    let mut partial = PartialBlob::for_manifest(&to.join("blobs"), &manifest).unwrap();
    while partial.missing() > 0 {
        let next = partial.next_missing(16);
        let request = BlobRequest {
            root: manifest.root,
            len: manifest.cipher_len(),
            first: next[0],
            count: next.len() as u16,
        };
        let hush_protocol::blob::BlobResponse::Groups(groups) = source.serve(&request) else {
            panic!("not served");
        };
        partial
            .write(&accept_groups(&request, groups).unwrap())
            .unwrap();
    }
    let opened = partial.open_into(&manifest, &to.join("files")).unwrap();
    (manifest, opened)
}

#[test]
fn a_sealed_file_is_served_and_opens_identical_compressed_or_not() {
    let dir = tempfile::tempdir().unwrap();
    let (alice, bob) = (dir.path().join("alice"), dir.path().join("bob"));
    std::fs::create_dir_all(&alice).unwrap();
    let text = alice.join("notes.txt");
    std::fs::write(&text, b"the same line again\n".repeat(50_000)).unwrap();
    let (manifest, opened) = send_and_fetch(&text, &alice, &bob);
    assert_eq!(manifest.compression, Compression::Zstd);
    assert!(manifest.sealed_len < manifest.size / 10);
    assert_eq!(manifest.mime, "text/plain");
    assert_eq!(
        std::fs::read(opened).unwrap(),
        std::fs::read(&text).unwrap()
    );

    // A photo is sealed as it is; so is a file zstd cannot shrink.
    let photo = alice.join("photo.JPG");
    std::fs::write(&photo, plain(3 * GROUP_PLAIN_LEN as usize + 17)).unwrap();
    let (manifest, opened) = send_and_fetch(&photo, &alice, &bob);
    assert_eq!(
        (manifest.compression, manifest.mime.as_str()),
        (Compression::None, "image/jpeg")
    );
    assert_eq!(
        std::fs::read(opened).unwrap(),
        std::fs::read(&photo).unwrap()
    );
    let noise = alice.join("noise.bin");
    let random: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&noise, &random).unwrap();
    let (_, opened) = send_and_fetch(&noise, &alice, &bob);
    assert_eq!(std::fs::read(opened).unwrap(), random);

    // Small and empty files: one group, no tree.
    for (name, bytes) in [("tiny.txt", b"hi".to_vec()), ("empty.dat", Vec::new())] {
        let path = alice.join(name);
        std::fs::write(&path, &bytes).unwrap();
        let (_, opened) = send_and_fetch(&path, &alice, &bob);
        assert_eq!(std::fs::read(opened).unwrap(), bytes);
    }
    // No temporaries are left beside the blobs.
    let hidden: Vec<_> = std::fs::read_dir(alice.join("blobs"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(hidden.is_empty(), "{hidden:?}");
}

#[test]
fn a_source_with_a_damaged_tree_or_without_the_blob_serves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = dir.path().join("blobs");
    // A photo: sealed as it is, so five groups and a tree.
    let path = dir.path().join("a.jpg");
    std::fs::write(&path, plain(5 * GROUP_PLAIN_LEN as usize)).unwrap();
    let manifest = seal_file(&path, &blobs, None, &mut rand::thread_rng()).unwrap();
    assert!(
        BlobSource::open(&blobs, &BlobRoot([0; 32]))
            .unwrap()
            .is_none()
    );
    let tree = blobs.join(format!("{}.tree", manifest.root));
    let mut bytes = std::fs::read(&tree).unwrap();
    bytes[40] ^= 1;
    std::fs::write(&tree, bytes).unwrap();
    assert!(matches!(
        BlobSource::open(&blobs, &manifest.root),
        Err(FileError::Damaged)
    ));
}

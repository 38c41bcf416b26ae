//! Downloads that stop and resume, and files opened whole or not at all.

use hush_protocol::blob::{
    BlobRequest, FileKey, GROUP_PLAIN_LEN, Sealer, Tree, accept_groups, serve,
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

/// Fetches `indexes` from the whole ciphertext as a source would serve
/// them, verified.
fn fetch(tree: &Tree, cipher: &[u8], first: u64, count: u16) -> Vec<(u64, Vec<u8>)> {
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
    let (manifest, cipher, tree) = sealed(
        original.clone(),
        "holiday.mp4",
        Compression::None,
        original.len() as u64,
    );
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
    let (manifest, cipher, tree) = sealed(
        original.clone(),
        "a.bin",
        Compression::None,
        original.len() as u64,
    );
    let all = groups(tree.len()) as u16;
    let mut partial = PartialBlob::open(&blobs, tree.root(), tree.len()).unwrap();
    partial.write(&fetch(&tree, &cipher, 0, all)).unwrap();
    // A byte flips on disk after it was verified.
    let part = blobs.join(format!("{}.part", tree.root()));
    let mut bytes = std::fs::read(&part).unwrap();
    bytes[70_000] ^= 1;
    std::fs::write(&part, bytes).unwrap();
    let partial = PartialBlob::open(&blobs, tree.root(), tree.len()).unwrap();
    assert!(matches!(
        partial.open_into(&manifest, &files),
        Err(FileError::Damaged)
    ));
    let mut partial = PartialBlob::open(&blobs, tree.root(), tree.len()).unwrap();
    assert_eq!(partial.missing(), u64::from(all), "it starts again");
    partial.write(&fetch(&tree, &cipher, 0, all)).unwrap();
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
fn an_incomplete_download_does_not_open() {
    let dir = tempfile::tempdir().unwrap();
    let original = plain(2 * GROUP_PLAIN_LEN as usize);
    let (manifest, cipher, tree) = sealed(
        original.clone(),
        "b.bin",
        Compression::None,
        original.len() as u64,
    );
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
    let (manifest, cipher, tree) = sealed(
        original.clone(),
        "c.bin",
        Compression::None,
        original.len() as u64,
    );
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

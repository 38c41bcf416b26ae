//! File messages: the offer reaches every device of the contact and our
//! own, stored beside the message; a manifest that lies about its size
//! never gets in.

use super::*;
use crate::FileOffer;
use crate::blob::{BlobRoot, Compression, FileKey, FileManifest};
use crate::device::FileState;

fn offer(caption: &str) -> FileOffer {
    FileOffer {
        manifest: FileManifest {
            root: BlobRoot([7; 32]),
            key: FileKey([9; 32]),
            size: 100_000,
            sealed_len: 100_000,
            compression: Compression::None,
            name: "holiday.jpg".into(),
            mime: "image/jpeg".into(),
            thumbnail: Some(vec![1, 2, 3]),
        },
        caption: caption.into(),
    }
}

#[test]
fn a_file_offer_reaches_the_contact_beside_its_caption() {
    let mut net = Net::new(&["alice", "bob"]);
    let sent = offer("the beach");
    let id = net
        .call(0, |e, ctx, _| {
            e.send_file(ctx, "bob", sent.clone(), "/home/a/holiday.jpg".into())
        })
        .unwrap();
    net.drive();
    let alice = net.devs[0].keys.device_id;
    let (_, mine) = net.devs[0]
        .disk
        .files
        .iter()
        .next()
        .expect("alice's record");
    assert_eq!(mine.state, FileState::Shared);
    assert_eq!(mine.path.as_deref(), Some("/home/a/holiday.jpg"));
    let ((_, got_id), theirs) = net.devs[1].disk.files.iter().next().expect("bob's record");
    assert_eq!(*got_id, id);
    assert!(!theirs.outgoing);
    assert_eq!(theirs.state, FileState::Offered);
    assert_eq!(theirs.source, alice, "fetched from the device that sent it");
    assert_eq!(
        FileManifest::from_bytes(&theirs.manifest).unwrap(),
        sent.manifest
    );
    assert_eq!(net.devs[1].disk.incoming(), ["the beach"]);
    assert!(net.devs[1].notices.iter().any(|n| matches!(
        n,
        DeviceNotice::Message { file: Some(f), .. } if f.state == FileState::Offered
    )));
    assert_eq!(
        statuses(&net.devs[0]),
        [("the beach".to_owned(), Status::Delivered)]
    );
}

#[test]
fn a_caption_over_the_text_limit_is_refused() {
    let mut net = Net::new(&["alice", "bob"]);
    let long = offer(&"x".repeat(MAX_TEXT_LEN + 1));
    let sent = net.call(0, |e, ctx, _| e.send_file(ctx, "bob", long, String::new()));
    assert!(matches!(sent, Err(SendError::TextTooLong { .. })));
}

#[test]
fn a_manifest_with_an_absurd_size_is_refused_and_nothing_is_stored() {
    let mut net = Net::new(&["alice", "bob"]);
    net.send(0, "bob", "hello");
    let mut lie = offer("");
    lie.manifest.size = u64::MAX;
    lie.manifest.sealed_len = u64::MAX;
    let bob = net.devs[0]
        .engine
        .contacts
        .contact("bob")
        .unwrap()
        .card
        .account();
    net.call(0, |e, ctx, _| {
        e.send_control(ctx, &bob, OutboxKind::Message, Body::File(Box::new(lie)))
    })
    .unwrap();
    net.drive();
    assert!(net.devs[1].disk.files.is_empty());
    assert_eq!(net.devs[1].disk.incoming(), ["hello"]);
}

#[test]
fn our_other_device_records_a_file_we_sent_and_fetches_it_from_us() {
    let (mut net, laptop, _) = super::devices::alice_with_two_devices(&["alice", "bob"]);
    let id = net
        .call(0, |e, ctx, _| {
            e.send_file(ctx, "bob", offer("for you"), "/tmp/x".into())
        })
        .unwrap();
    net.drive();
    let phone = net.devs[0].keys.device_id;
    let (key, record) = net.devs[laptop]
        .disk
        .files
        .iter()
        .next()
        .expect("the laptop's copy");
    assert_eq!(key.1, id);
    assert!(record.outgoing);
    assert_eq!(record.source, phone);
    assert_eq!(record.state, FileState::Offered);
    // Both of bob's views agree: one file, from the phone.
    assert_eq!(net.devs[1].disk.files.len(), 1);
}

#[test]
fn a_manifest_naming_a_path_outside_the_files_folder_is_stored_with_a_safe_name() {
    let mut net = Net::new(&["alice", "bob"]);
    let mut hostile = offer("");
    hostile.manifest.name = "../../.bashrc\u{1b}[2J".into();
    let bob = net.devs[0]
        .engine
        .contacts
        .contact("bob")
        .unwrap()
        .card
        .account();
    net.call(0, |e, ctx, _| {
        e.send_control(
            ctx,
            &bob,
            OutboxKind::Message,
            Body::File(Box::new(hostile)),
        )
    })
    .unwrap();
    net.drive();
    let (_, file) = net.devs[1].disk.files.iter().next().expect("bob's record");
    let kept = FileManifest::from_bytes(&file.manifest).unwrap();
    assert_eq!(kept.name, "bashrc[2J");
}

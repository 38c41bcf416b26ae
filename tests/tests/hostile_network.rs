//! Hostile peers against a real node process. A stranger is refused at the
//! connection (the gate): it gets no answer on any protocol. A peer the
//! node lets in (a contact's device, here a raw client whose card bob
//! added) sends garbage, forged and oversized frames: each is refused, the
//! node stays up, memory stays bounded, and nothing shows up in anyone's
//! history.

use hush_node::{DIRECT_PROTOCOL, DIRECT_PROTOCOL_ORDERED, KEYS_PROTOCOL};
use hush_protocol::{
    AckBatch, BatchOrder, ContactCard, DirectAck, Envelope, EnvelopeBatch, KeyRequest,
    MAX_BATCH_LEN, OlmKind, RejectReason, Wire,
};
use hush_tests::raw::{ask, ask_all, client, client_with, known_identity};
use hush_tests::rss_kib;
use libp2p::{Multiaddr, identity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_forged_and_oversized_frames_are_refused() {
    let (alice, bob) = hush_tests::pair();
    alice.json(&[
        "send",
        "bob",
        "before the attack",
        "--wait",
        "delivered",
        "--json",
    ]);
    let card: ContactCard = bob.card().parse().expect("bob's card");
    let device = card.device_list.devices[0].device_id;
    let key = identity::ed25519::PublicKey::try_from_bytes(&device.0).expect("device key");
    let peer = identity::PublicKey::from(key).to_peer_id();
    let addr: Multiaddr = bob.listen_addr().parse().expect("multiaddr");
    let pid = bob.pid().expect("bob's node runs");

    // A stranger's connection is refused before any protocol runs.
    let mut stranger = client(DIRECT_PROTOCOL);
    let refused = ask(&mut stranger, peer, &addr, vec![0xAB; 100]).await;
    assert!(refused.is_err(), "a stranger got an answer: {refused:?}");

    // mallory is a contact of bob's (whatever she sends, her node is let in).
    let (key, card) = known_identity(50, "mallory");
    let added = bob.run(&["contact", "add", "mallory", &card]);
    assert!(added.ok(), "{added:?}");
    let mut direct = client_with(key.clone(), DIRECT_PROTOCOL);

    // Garbage: an empty ack batch (nothing was acked, nothing stored).
    let answer = ask(&mut direct, peer, &addr, vec![0xAB; 100])
        .await
        .expect("an answer");
    assert_eq!(AckBatch::from_bytes(&answer), Ok(AckBatch { acks: vec![] }));

    // A well-formed envelope from a sender bob does not know, and one
    // addressed to another device (in one batch, in that order): each refused for its reason.
    let forged = Envelope {
        recipient: device,
        sender_key: [7; 32],
        kind: OlmKind::PreKey,
        ciphertext: vec![1; 200],
    };
    let elsewhere = Envelope {
        recipient: hush_protocol::DeviceId([9; 32]),
        ..forged.clone()
    };
    let batch = EnvelopeBatch {
        envelopes: vec![forged.to_bytes(), elsewhere.to_bytes()],
    };
    let answer = ask(&mut direct, peer, &addr, batch.to_bytes())
        .await
        .expect("an answer");
    assert_eq!(
        AckBatch::from_bytes(&answer),
        Ok(AckBatch {
            acks: vec![
                DirectAck::Rejected(RejectReason::UnknownSender),
                DirectAck::Rejected(RejectReason::WrongRecipient),
            ]
        })
    );

    // Oversized frames: the stream is dropped unread past the limit, again
    // and again, without the node's memory growing with them.
    let before = rss_kib(pid);
    for _ in 0..40 {
        let result = ask(&mut direct, peer, &addr, vec![0u8; MAX_BATCH_LEN + 4096]).await;
        assert!(
            result.is_err(),
            "an oversized frame got an answer: {result:?}"
        );
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 64 * 1024,
        "node memory grew from {before} KiB to {after} KiB after oversized frames"
    );

    // Strangers get no one-time keys (they are not even let in).
    let mut keys = client(KEYS_PROTOCOL);
    let result = ask(&mut keys, peer, &addr, KeyRequest.to_bytes()).await;
    assert!(result.is_err(), "a stranger got a one-time key: {result:?}");

    // The node is fine, and nothing reached anyone's history.
    let status = bob.json(&["status", "--json"]);
    assert_eq!(status["contacts"], 2);
    let texts: Vec<_> = bob
        .history("alice")
        .iter()
        .map(|m| m["text"].clone())
        .collect();
    assert_eq!(texts, ["before the attack"]);
    send_after_the_attack(&alice);
}

/// On `/hush/direct/2` a batch names the one it follows, and the node
/// holds it until that one was handled. A contact naming batches it never
/// sends gets every one answered all the same (each held at most briefly,
/// no more than two at a time), a frame shorter than its header gets no
/// answer, and the node keeps delivering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_naming_ones_never_sent_are_all_answered_and_hold_nothing() {
    let (alice, bob) = hush_tests::pair();
    let card: ContactCard = bob.card().parse().expect("bob's card");
    let device = card.device_list.devices[0].device_id;
    let key = identity::ed25519::PublicKey::try_from_bytes(&device.0).expect("device key");
    let peer = identity::PublicKey::from(key).to_peer_id();
    let addr: Multiaddr = bob.listen_addr().parse().expect("multiaddr");
    let (key, card) = known_identity(51, "mallory");
    let added = bob.run(&["contact", "add", "mallory", &card]);
    assert!(added.ok(), "{added:?}");
    let mut ordered = client_with(key, DIRECT_PROTOCOL_ORDERED);

    // Twelve batches at once, each following a batch never sent.
    let frames: Vec<Vec<u8>> = (0..12u64)
        .map(|i| {
            let order = BatchOrder {
                seq: 100 + i,
                after: 1_000 + i,
            };
            let mut frame = order.to_bytes().to_vec();
            frame.extend_from_slice(&[0xAB; 64]);
            frame
        })
        .collect();
    let answers = ask_all(&mut ordered, peer, &addr, frames).await;
    for answer in answers {
        let answer = answer.expect("every batch answered");
        // Garbage after the header: an empty ack batch, as on `/1`.
        assert_eq!(AckBatch::from_bytes(&answer), Ok(AckBatch { acks: vec![] }));
    }

    // Shorter than its header: the stream fails.
    let short = ask(&mut ordered, peer, &addr, vec![0; BatchOrder::LEN - 1]).await;
    assert!(short.is_err(), "a short frame got an answer: {short:?}");

    // The node keeps delivering (alice's node and bob's speak `/2`).
    send_after_the_attack(&alice);
}

/// alice's message to bob after an attack on his node, delivered.
fn send_after_the_attack(alice: &hush_tests::User) {
    let sent = alice.json(&[
        "send",
        "bob",
        "after the attack",
        "--wait",
        "delivered",
        "--json",
    ]);
    assert_eq!(sent["status"], "delivered", "{sent}");
}

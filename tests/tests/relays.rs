//! Offline delivery through real relay processes: first contact while the
//! recipient is offline, crash and loss of relays, quotas, retention, and
//! what a relay refuses to strangers.

use std::time::Duration;

use hush_node::MAILBOX_PROTOCOL;
use hush_protocol::{
    Auth, ContactCard, DepositResult, DeviceId, MailboxId, MailboxRequest, MailboxResponse,
    OwnerRequest, Refusal, SealedEnvelope, Wire,
};
use hush_tests::raw::{ask, client};
use hush_tests::{RelayProc, User, introduce, rss_kib, wait_for};
use libp2p::{Multiaddr, PeerId};

/// Alice and bob know each other; bob's node runs with `relays` as its
/// home relays, then stops. No message has been exchanged: there is no
/// Olm session yet.
fn bob_offline_with(relays: &[&RelayProc]) -> (User, User) {
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    let mut args = Vec::new();
    for relay in relays {
        args.extend(["--relay", relay.address.as_str()]);
    }
    bob.start_with(&args);
    alice.start();
    introduce(&alice, &bob);
    wait_keys_stocked(&bob);
    // Each has the other's deposit right (it goes only directly).
    wait_outbox_empty(&alice);
    wait_outbox_empty(&bob);
    bob.stop();
    (alice, bob)
}

/// Waits until nothing waits in `user`'s outbox.
fn wait_outbox_empty(user: &User) {
    wait_for(
        &format!("{}'s outbox to empty", user.name),
        Duration::from_secs(20),
        || (user.json(&["status", "--json"])["outbox"].as_u64() == Some(0)).then_some(()),
    );
}

/// Waits until `user`'s node has one-time keys at every home relay.
fn wait_keys_stocked(user: &User) {
    wait_for(
        &format!("{}'s keys at the home relays", user.name),
        Duration::from_secs(20),
        || {
            let status = user.json(&["status", "--json"]);
            let relays = status["relays"].as_array()?.clone();
            (!relays.is_empty()
                && relays
                    .iter()
                    .all(|r| r["keys_left"].as_u64().is_some_and(|n| n > 0)))
            .then_some(())
        },
    );
}

fn texts(user: &User, with: &str) -> Vec<String> {
    user.history(with)
        .iter()
        .map(|m| m["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn wait_texts(user: &User, with: &str, expected: &[String]) {
    wait_for(
        &format!(
            "{} to have {} messages from {with}",
            user.name,
            expected.len()
        ),
        Duration::from_secs(40),
        || (texts(user, with).len() >= expected.len()).then_some(()),
    );
    // Give duplicates a moment to show up, if any were coming.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(texts(user, with), expected, "{}", user.node_log());
}

#[test]
fn offline_delivery_first_contact_and_a_restart_of_everything() {
    let mut relay = RelayProc::start("");
    let (mut alice, mut bob) = bob_offline_with(&[&relay]);

    // First contact while bob is offline: alice's node claims one of bob's
    // one-time keys from his relay, and each message is `sent` once the
    // relay has it durably.
    let expected: Vec<String> = (0..20).map(|i| format!("while you were out {i}")).collect();
    let ids: Vec<String> = expected
        .iter()
        .map(|t| alice.send_until("bob", t, "sent"))
        .collect();
    relay.wait_stored(20);

    // Everything restarts: alice, then the relay. Bob comes back alone.
    alice.stop();
    relay.stop();
    relay.restart();
    relay.wait_stored(20);
    bob.start();
    wait_texts(&bob, "alice", &expected);
    relay.wait_stored(0);

    // Alice comes back and hears it was all delivered (bob's delivered
    // receipts waited at... her node directly, or her outbox resent).
    alice.start();
    for id in &ids {
        alice.wait_status("bob", id, "delivered");
    }
    assert_eq!(alice.json(&["status", "--json"])["outbox"], 0);
    // And the conversation goes on directly, both ways.
    bob.send_until("alice", "back online", "delivered");
    alice.send_until("bob", "welcome back", "delivered");
}

#[test]
fn a_relay_killed_mid_ingest_keeps_every_acked_deposit() {
    let mut relay = RelayProc::start("");
    let (mut alice, mut bob) = bob_offline_with(&[&relay]);
    // Open the session first, so the burst is pure ingest.
    alice.send_until("bob", "first", "sent");

    let expected: Vec<String> = std::iter::once("first".to_owned())
        .chain((0..300).map(|i| format!("burst {i}")))
        .collect();
    for text in &expected[1..] {
        let run = alice.run(&["send", "bob", text]);
        assert!(run.ok(), "{run:?}");
    }
    // Kill the relay in the middle of it, without warning.
    wait_for(
        "the relay to be mid-ingest",
        Duration::from_secs(30),
        || (relay.metric("hush_relay_stored_messages")? > 1.0).then_some(()),
    );
    relay.kill9();
    relay.restart();
    // Alice's node retries what was not acked; wait until all is `sent`.
    wait_for("every message to be sent", Duration::from_secs(60), || {
        alice
            .history("bob")
            .iter()
            .all(|m| m["status"] == "sent")
            .then_some(())
    });
    // Alice goes away: now bob gets only what the relay kept.
    alice.stop();
    bob.start();
    wait_texts(&bob, "alice", &expected);
}

#[test]
fn one_of_three_relays_lost_with_its_disk_loses_nothing() {
    let mut relays: Vec<RelayProc> = (0..3).map(|_| RelayProc::start("")).collect();
    let (mut alice, mut bob) = bob_offline_with(&[&relays[0], &relays[1], &relays[2]]);
    let expected: Vec<String> = (0..10).map(|i| format!("replicated {i}")).collect();
    for text in &expected {
        alice.send_until("bob", text, "sent");
    }
    for relay in &relays {
        relay.wait_stored(10);
    }
    alice.stop();
    relays[1].kill9();
    std::fs::remove_dir_all(&relays[1].data).expect("delete the relay's data");
    bob.start();
    // Each message once, though two relays hand out a copy of each.
    wait_texts(&bob, "alice", &expected);
    relays[0].wait_stored(0);
    relays[2].wait_stored(0);
}

#[test]
fn a_full_mailbox_is_reported_to_the_sender_and_nothing_is_lost() {
    let relay = RelayProc::start("[quotas]\nsender_items = 3\n");
    let (mut alice, mut bob) = bob_offline_with(&[&relay]);
    for i in 0..3 {
        alice.send_until("bob", &format!("fits {i}"), "sent");
    }
    let run = alice.run(&[
        "send",
        "bob",
        "one too many",
        "--wait",
        "sent",
        "--timeout",
        "5",
    ]);
    assert_eq!(run.code, Some(5), "refused by the relay: {run:?}");
    assert!(
        run.stderr.contains("bob's relay"),
        "the refusal is not shown: {run:?}"
    );
    assert!(relay.metric("hush_relay_refusals_total{reason=\"sender_quota\"}") >= Some(1.0));
    // Every deposit's answer time is in the histogram.
    assert!(relay.metric("hush_relay_deposit_seconds_count") >= Some(4.0));
    assert!(relay.metric("hush_relay_deposit_seconds_bucket{le=\"+Inf\"}") >= Some(4.0));
    // Bob drains his mailbox; the refused message waited in alice's
    // outbox and now gets through.
    bob.start();
    let expected: Vec<String> = (0..3)
        .map(|i| format!("fits {i}"))
        .chain(["one too many".to_owned()])
        .collect();
    wait_texts(&bob, "alice", &expected);
    alice.stop();
}

#[test]
fn unfetched_mail_expires_after_the_retention_period() {
    let relay = RelayProc::start("retention_secs = 2\n");
    let (mut alice, mut bob) = bob_offline_with(&[&relay]);
    alice.send_until("bob", "short-lived", "sent");
    relay.wait_stored(1);
    alice.stop();
    wait_for("the mail to expire", Duration::from_secs(20), || {
        (relay.metric("hush_relay_expired_total")? >= 1.0).then_some(())
    });
    relay.wait_stored(0);
    bob.start();
    std::thread::sleep(Duration::from_secs(2));
    assert!(texts(&bob, "alice").is_empty());
    // Alice's node still has it queued (never delivered): when both are
    // online it goes directly.
    alice.start();
    wait_texts(&bob, "alice", &["short-lived".to_owned()]);
}

/// A disappearing message left at the relay for an offline contact goes
/// from the relay when it ends (the relay learns that end and nothing else
/// of the timer), long before the retention period; the change of the
/// timer, which does not disappear, stays and reaches bob.
#[test]
fn a_relay_drops_a_disappearing_message_when_it_ends() {
    let relay = RelayProc::start("");
    let (alice, mut bob) = bob_offline_with(&[&relay]);
    let set = alice.run(&["contact", "set", "bob", "--disappear", "5s"]);
    assert!(set.ok(), "{set:?}");
    alice.send_until("bob", "gone before you read it", "sent");
    relay.wait_stored(2);
    wait_for(
        "the relay to drop the message",
        Duration::from_secs(30),
        || (relay.metric("hush_relay_expired_total")? >= 1.0).then_some(()),
    );
    relay.wait_stored(1);
    bob.start();
    wait_for("bob to hear of the timer", Duration::from_secs(40), || {
        bob.history("alice")
            .iter()
            .any(|m| m["kind"] == "timer" && m["timer_secs"] == 5)
            .then_some(())
    });
    std::thread::sleep(Duration::from_secs(1));
    let history = bob.history("alice");
    assert!(
        history.iter().all(|m| m["kind"] != "message"),
        "{history:?}"
    );
}

/// Attack (issue 18, item 2): a relay that logs the peer id of every
/// mailbox request would join a deposit and a key claim for bob to the
/// device that made them: before the courier, alice's node made both under
/// its own long-term PeerId. Now they come from a short-lived identity of
/// hers that the relay has never seen otherwise.
#[test]
fn deposits_and_key_claims_reach_a_relay_from_a_short_lived_identity() {
    let relay = RelayProc::start_logging("", &[], "info,hush_relay::service=trace");
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    bob.start_with(&["--relay", relay.address.as_str()]);
    wait_keys_stocked(&bob);
    let bob_peer = bob.json(&["status", "--json"])["peer_id"]
        .as_str()
        .expect("peer id")
        .to_owned();
    let bob_card = bob.card();
    bob.stop();
    alice.start();
    let added = alice.run(&["contact", "add", "bob", &bob_card]);
    assert!(added.ok(), "{added:?}");
    let alice_peer = alice.json(&["status", "--json"])["peer_id"]
        .as_str()
        .expect("peer id")
        .to_owned();
    // No session with bob yet: alice claims one of his keys at his relay,
    // then deposits there.
    alice.send_until("bob", "sealed, and from nobody the relay knows", "sent");
    relay.wait_stored(1);
    let log = without_colours(&relay.log());
    let senders: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mailbox request"))
        .filter_map(|l| l.split("peer=").nth(1)?.split_whitespace().next())
        .collect();
    assert!(
        senders.iter().all(|p| *p != alice_peer),
        "the relay saw alice's own peer id: {senders:?}"
    );
    let others: Vec<&&str> = senders.iter().filter(|p| **p != bob_peer).collect();
    assert!(
        others.len() >= 2,
        "a key claim and a deposit from another identity: {senders:?}\n{log}"
    );
    bob.start();
    let added = bob.run(&["contact", "add", "alice", &alice.card()]);
    assert!(added.ok(), "{added:?}");
    wait_texts(
        &bob,
        "alice",
        &["sealed, and from nobody the relay knows".to_owned()],
    );
}

/// Issue 18, item 1: with one mailbox per device, a relay that logs saw
/// every contact's deposits go to the same mailbox id, the one the card
/// names, which anyone holding the card can compute.
#[test]
fn two_contacts_writing_to_one_user_deposit_into_mailboxes_a_relay_cannot_link() {
    let relay = RelayProc::start_logging("", &[], "info,hush_relay::service=trace");
    let (mut bob, mut alice, mut carol) =
        (User::new("bob"), User::new("alice"), User::new("carol"));
    bob.start_with(&["--relay", relay.address.as_str()]);
    wait_keys_stocked(&bob);
    alice.start();
    carol.start();
    // Contacts while all are online: bob hands each a pairwise mailbox.
    introduce(&alice, &bob);
    introduce(&carol, &bob);
    wait_outbox_empty(&bob);
    bob.stop();
    alice.send_until("bob", "from alice", "sent");
    carol.send_until("bob", "from carol", "sent");
    relay.wait_stored(2);
    let log = without_colours(&relay.log());
    let mut mailboxes: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("deposit item"))
        .filter_map(|l| l.split("mailbox=").nth(1)?.split_whitespace().next())
        .collect();
    mailboxes.sort_unstable();
    mailboxes.dedup();
    let (device, _) = device_of(&bob);
    let public = MailboxId::of(&device).to_string();
    assert_eq!(mailboxes.len(), 2, "one mailbox per contact: {mailboxes:?}");
    assert!(
        !mailboxes.contains(&public.as_str()),
        "the card's mailbox {public} was used: {mailboxes:?}"
    );
    bob.start_with(&["--relay", relay.address.as_str()]);
    wait_texts(&bob, "alice", &["from alice".to_owned()]);
    wait_texts(&bob, "carol", &["from carol".to_owned()]);
    relay.wait_stored(0);
}

/// Bob's device id and libp2p peer id, from his card.
fn device_of(user: &User) -> (DeviceId, PeerId) {
    let card: ContactCard = user.card().parse().expect("card");
    let device = card.device_list.devices[0].device_id;
    let key = libp2p::identity::ed25519::PublicKey::try_from_bytes(&device.0).expect("key");
    (device, libp2p::identity::PublicKey::from(key).to_peer_id())
}

async fn mailbox(
    client: &mut hush_tests::raw::Client,
    relay: &RelayProc,
    request: MailboxRequest,
) -> MailboxResponse {
    let addr: Multiaddr = relay.address.parse().expect("relay address");
    let answer = ask(client, relay_peer(&addr), &addr, request.to_bytes())
        .await
        .expect("the relay answers");
    MailboxResponse::from_bytes(&answer).expect("a well-formed answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_fetches_and_a_stranger_cannot_starve_first_contact() {
    let relay = RelayProc::start("");
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    let mut carol = User::new("carol");
    bob.start_with(&["--relay", &relay.address]);
    alice.start();
    carol.start();
    introduce(&alice, &bob);
    introduce(&carol, &bob);
    wait_keys_stocked(&bob);
    bob.stop();
    alice.send_until("bob", "for bob only", "sent");
    let (device, _) = device_of(&bob);
    let mut stranger = client(MAILBOX_PROTOCOL);

    let MailboxResponse::Info { challenge, .. } =
        mailbox(&mut stranger, &relay, MailboxRequest::Info).await
    else {
        panic!("no challenge");
    };
    let fetch = OwnerRequest::Fetch {
        after: 0,
        limit: 10,
        wait_ms: 0,
    };
    // Bob's device id with a signature that is not his.
    let forged = MailboxRequest::Owner {
        auth: Box::new(Auth {
            device,
            challenge,
            signature: [7; 64],
        }),
        request: fetch.clone(),
    };
    let answer = mailbox(&mut stranger, &relay, forged).await;
    assert!(
        matches!(
            answer,
            MailboxResponse::Refused {
                reason: Refusal::NotOwner,
                ..
            }
        ),
        "{answer:?}"
    );
    // The stranger's own valid signature, claiming bob's device: also no.
    let key = libp2p::identity::Keypair::generate_ed25519();
    let ack = OwnerRequest::Ack {
        seqs: vec![1, 2, 3],
    };
    let signature = key
        .sign(&Auth::signed_bytes(&challenge, &ack.body_bytes()))
        .expect("sign");
    let wrong_key = MailboxRequest::Owner {
        auth: Box::new(Auth {
            device,
            challenge,
            signature: signature.try_into().expect("64 bytes"),
        }),
        request: ack,
    };
    let answer = mailbox(&mut stranger, &relay, wrong_key).await;
    assert!(
        matches!(
            answer,
            MailboxResponse::Refused {
                reason: Refusal::NotOwner,
                ..
            }
        ),
        "{answer:?}"
    );
    // Garbage is refused with an error, not a dropped stream or a crash.
    let addr: Multiaddr = relay.address.parse().expect("addr");
    let answer = ask(
        &mut stranger,
        relay_peer(&addr),
        &addr,
        vec![1, 3, 0xff, 0xff],
    )
    .await
    .expect("an answer");
    assert!(matches!(
        MailboxResponse::from_bytes(&answer),
        Ok(MailboxResponse::Refused {
            reason: Refusal::Malformed,
            ..
        })
    ));
    assert_eq!(relay.metric("hush_relay_stored_messages"), Some(1.0));

    // The stranger claims every one-time key bob left at the relay, until
    // only the fallback key comes back (the same one again and again) ...
    let mut last = None;
    for claimed in 0.. {
        let answer = mailbox(&mut stranger, &relay, MailboxRequest::ClaimKey { device }).await;
        let MailboxResponse::Key(bundle) = answer else {
            panic!("{answer:?}");
        };
        if last.as_ref() == Some(&bundle) {
            break;
        }
        last = Some(bundle);
        assert!(claimed < 1000, "keys never ran out");
    }
    // ... yet carol's first message to bob, on the fallback key, arrives.
    carol.send_until("bob", "hi bob, it is carol", "sent");
    bob.start();
    wait_texts(&bob, "carol", &["hi bob, it is carol".to_owned()]);
    wait_texts(&bob, "alice", &["for bob only".to_owned()]);
}

/// Attack (issue 13, item 4, mailbox blocking): with bob's card, anyone
/// can fill his mailbox at his relay from fresh peer ids (a per-sender
/// quota does not stop a hundred senders), and every contact of bob's then
/// got `MailboxFull` for the 30 days the junk is kept. A contact's mail
/// carries bob's deposit right and lands in the contacts' share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_flood_from_100_fresh_peer_ids_does_not_block_a_contacts_mail() {
    let relay = RelayProc::start(
        "[quotas]\nmailbox_items = 1000\nsender_items = 20\nstranger_items = 200\n",
    );
    let pid = relay.pid().expect("relay runs");
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    bob.start_with(&["--relay", &relay.address]);
    alice.start();
    introduce(&alice, &bob);
    wait_keys_stocked(&bob);
    // bob's deposit right went to alice when he added her.
    wait_outbox_empty(&bob);
    bob.send_until("alice", "hello alice", "delivered");
    bob.stop();

    let card: ContactCard = bob.card().parse().expect("card");
    let device = card.device_list.devices[0];
    let mailbox = MailboxId::of(&device.device_id);
    let addr: Multiaddr = relay.address.parse().expect("addr");
    let peer = relay_peer(&addr);
    let before = rss_kib(pid);
    let mut stored = 0;
    for stranger in 0..100u32 {
        // A fresh peer id each time: 20 items each, 2000 in all, twice
        // the mailbox.
        let mut flooder = client(MAILBOX_PROTOCOL);
        let items = (0..20u32)
            .map(|n| {
                let junk = [stranger.to_be_bytes(), n.to_be_bytes()].concat();
                let sealed =
                    SealedEnvelope::seal(&device.mailbox_key, &mailbox, &junk).expect("seal");
                hush_protocol::DepositItem::new(mailbox, sealed)
            })
            .collect();
        let request = MailboxRequest::Deposit { right: None, items };
        let answer = ask(&mut flooder, peer, &addr, request.to_bytes())
            .await
            .expect("the relay answers");
        if let Ok(MailboxResponse::Deposited { results }) = MailboxResponse::from_bytes(&answer) {
            stored += results
                .iter()
                .filter(|r| matches!(r, DepositResult::Stored))
                .count();
        }
    }
    let after = rss_kib(pid);
    assert_eq!(stored, 200, "strangers fill only their share");
    // The counters are set after the event loop handled the batch, a moment
    // after the answer left: wait for the last one to show.
    wait_for(
        "1800 stranger refusals counted",
        Duration::from_secs(10),
        || {
            (relay.metric("hush_relay_refusals_total{reason=\"stranger_quota\"}") == Some(1800.0))
                .then_some(())
        },
    );
    assert!(
        after < before + 32 * 1024,
        "relay memory grew from {before} KiB to {after} KiB under the flood"
    );
    alice.send_until("bob", "through the flood", "sent");
    bob.start();
    wait_texts(
        &bob,
        "alice",
        &["hello alice".to_owned(), "through the flood".to_owned()],
    );
}

fn relay_peer(addr: &Multiaddr) -> PeerId {
    hush_node::peer_in(addr).expect("relay peer id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_deposits_hits_the_quotas_not_the_relays_memory() {
    // A small disk budget, so the flood fills it quickly.
    let relay = RelayProc::start(
        "[quotas]\nmailbox_bytes = 1048576\nsender_items = 100000\ndisk_bytes = 4194304\n",
    );
    let pid = relay.pid().expect("relay runs");
    let addr: Multiaddr = relay.address.parse().expect("addr");
    let peer = relay_peer(&addr);
    let mut flooder = client(MAILBOX_PROTOCOL);
    let secret = hush_protocol::MailboxSecret::derive(&[1; 32]);
    let template = hush_protocol::SealedEnvelope::seal(
        &secret.public_key(),
        &hush_protocol::MailboxId([0; 32]),
        &vec![0u8; 4000],
    )
    .expect("seal");
    let mut counter = 0u64;
    let mut deposit = |mailboxes: u64| {
        let items = (0..64)
            .map(|_| {
                counter += 1;
                let mut sealed = template.clone();
                let at = sealed.len() - 24;
                sealed[at..at + 8].copy_from_slice(&counter.to_be_bytes());
                let mut id = [0u8; 32];
                id[..8].copy_from_slice(&(counter % mailboxes).to_be_bytes());
                hush_protocol::DepositItem::new(hush_protocol::MailboxId(id), sealed)
            })
            .collect();
        MailboxRequest::Deposit { right: None, items }.to_bytes()
    };
    // Warm up, then measure.
    for _ in 0..5 {
        ask(&mut flooder, peer, &addr, deposit(8))
            .await
            .expect("answer");
    }
    let before = rss_kib(pid);
    let mut refused_full = 0;
    for round in 0..300 {
        let answer = ask(
            &mut flooder,
            peer,
            &addr,
            deposit(if round % 2 == 0 { 8 } else { 100_000 }),
        )
        .await
        .expect("the relay keeps answering");
        if let Ok(MailboxResponse::Deposited { results }) = MailboxResponse::from_bytes(&answer) {
            refused_full += results
                .iter()
                .filter(|r| {
                    matches!(
                        r,
                        hush_protocol::DepositResult::Refused(
                            Refusal::RelayFull | Refusal::MailboxFull
                        )
                    )
                })
                .count();
        }
        if round % 50 == 0 {
            // Oversized frames are cut off unread.
            let huge = vec![0u8; hush_protocol::MAX_MAILBOX_FRAME + 1024];
            assert!(ask(&mut flooder, peer, &addr, huge).await.is_err());
        }
    }
    let after = rss_kib(pid);
    assert!(refused_full > 0, "the disk budget never filled");
    let stored = relay
        .metric("hush_relay_stored_bytes")
        .expect("stored bytes");
    assert!(
        stored <= 4_194_304.0,
        "stored {stored} bytes over the budget"
    );
    assert!(
        after < before + 48 * 1024,
        "relay memory grew from {before} KiB to {after} KiB under the flood"
    );
    // And it still serves everyone else.
    let answer = mailbox(&mut flooder, &relay, MailboxRequest::Info).await;
    assert!(matches!(answer, MailboxResponse::Info { .. }));
}

#[test]
fn relays_find_each_other_through_the_dht() {
    let first = RelayProc::start("");
    let second = RelayProc::start_with("", &["--bootstrap", &first.address]);
    let third = RelayProc::start_with("", &["--bootstrap", &second.address]);
    // The first relay was told of nobody; it learns of the others when they
    // join, and the third learns of the first through the second.
    for relay in [&first, &second, &third] {
        wait_for(
            "a relay to know both others",
            Duration::from_secs(30),
            || (relay.metric("hush_relay_dht_peers")? >= 2.0).then_some(()),
        );
    }
}

#[test]
fn a_contact_who_adds_a_relay_later_is_reached_after_a_card_update() {
    let relay = RelayProc::start("");
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    alice.start();
    bob.start();
    introduce(&alice, &bob);
    alice.send_until("bob", "before the relay", "delivered");
    // Bob gets a home relay; alice's copy of his card does not name it.
    bob.stop();
    bob.start_with(&["--relay", &relay.address]);
    let card = bob.card();
    // The wrong card, an unknown name: refused with clear errors.
    let run = alice.run(&["contact", "update", "bob", &alice.card()]);
    assert!(
        !run.ok() && run.stderr.contains("another account"),
        "{run:?}"
    );
    let run = alice.run(&["contact", "update", "carol", &card]);
    assert!(
        !run.ok() && run.stderr.contains("no contact named"),
        "{run:?}"
    );
    let run = alice.run(&["contact", "update", "bob", &card]);
    assert!(run.ok(), "{run:?}");
    wait_keys_stocked(&bob);
    bob.stop();
    alice.send_until("bob", "left at your new relay", "sent");
    alice.stop();
    bob.start();
    wait_texts(
        &bob,
        "alice",
        &[
            "before the relay".to_owned(),
            "left at your new relay".to_owned(),
        ],
    );
}

/// What an operator and a load balancer reach for: `/healthz`, `/readyz`
/// and `hush_build_info` beside `/metrics`, JSON logs, and `--check-config`
/// finding a bad key with its line.
#[test]
fn health_endpoints_answer_and_check_config_names_the_bad_line_and_key() {
    // Logs as JSON lines too, for log collectors.
    let relay = RelayProc::start_with("", &["--log-format", "json"]);
    let healthz = relay.http_get("/healthz").expect("an answer");
    assert!(healthz.starts_with("HTTP/1.1 200 OK"), "{healthz}");
    // Ready once its loop serves (a moment after it printed its addresses).
    wait_for("the relay to be ready", Duration::from_secs(10), || {
        let answer = relay.http_get("/readyz")?;
        answer.starts_with("HTTP/1.1 200 OK").then_some(())
    });
    let version = format!(
        "hush_build_info{{version=\"{}\"}}",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(relay.metric(&version), Some(1.0));
    let started = relay
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|l| l["message"] == "relay started");
    assert!(
        started.is_some_and(|l| l["level"] == "INFO"),
        "{}",
        relay.log()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let check = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).expect("write the config");
        std::process::Command::new(hush_tests::hush_bin())
            .args(["relay", "run", "--check-config", "--config"])
            .arg(&file)
            .output()
            .expect("run hush")
    };
    let out = check(
        "bad.toml",
        "retention_secs = 60\n\n[quotas]\nmailbox_itemz = 5\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("line 4") && stderr.contains("mailbox_itemz"),
        "{stderr}"
    );
    let out = check("good.toml", "retention_secs = 60\n");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains("configuration OK") && stdout.contains("retention: 60 s"),
        "{stdout}"
    );
}

/// A relay's and a node's log, written where no terminal reads it (a
/// file here; under systemd, the journal), is plain text: colour codes
/// there are escape bytes an operator reads around, or greps through.
#[test]
fn logs_written_to_a_file_carry_no_colour_codes() {
    let relay = RelayProc::start("");
    let mut alice = User::new("alice");
    alice.start_with(&["--relay", &relay.address]);
    wait_for(
        "both logs to say something",
        Duration::from_secs(10),
        || {
            (relay.log().contains("relay started") && alice.node_log().contains("node running"))
                .then_some(())
        },
    );
    for (whose, log) in [
        ("the relay's", relay.log()),
        ("the node's", alice.node_log()),
    ] {
        assert!(
            !log.contains('\x1b'),
            "{whose} log has escape codes:\n{log}"
        );
    }
}

/// A relay named by DNS (`/dns4/localhost/…`) instead of an IP address is
/// used like any other: it can move without breaking every card naming it.
#[test]
fn a_relay_named_by_dns_is_used() {
    let relay = RelayProc::start("");
    let named = relay.address.replace("/ip4/127.0.0.1/", "/dns4/localhost/");
    assert_ne!(named, relay.address, "{}", relay.address);
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    bob.start_with(&["--relay", &named]);
    alice.start();
    wait_keys_stocked(&bob);
    let status = bob.json(&["status", "--json"]);
    assert_eq!(status["relays"][0]["address"], named.as_str(), "{status}");
    assert!(bob.card().len() > 10);
    introduce(&alice, &bob);
    wait_outbox_empty(&bob);
    bob.stop();
    // Offline mail for bob goes to the relay by its name.
    alice.send_until("bob", "through a named relay", "sent");
    bob.start_with(&["--relay", &named]);
    wait_for("bob to read his mail", Duration::from_secs(30), || {
        bob.history("alice")
            .iter()
            .any(|m| m["text"] == "through a named relay")
            .then_some(())
    });
    // The relay's own metrics and libp2p's, one OpenMetrics exposition.
    let metrics = relay.http_get("/metrics").expect("metrics");
    for family in [
        "application/openmetrics-text",
        "libp2p_swarm_connections_established_total{",
        "libp2p_bandwidth_bytes_total{",
        "libp2p_identify_received_total",
        "hush_relay_fetch_seconds_count",
        "hush_relay_hosted_keys ",
        "hush_relay_hosted_key_devices 1",
    ] {
        assert!(metrics.contains(family), "{family} in {metrics}");
    }
    assert!(relay.metric("hush_relay_fetch_seconds_count") >= Some(1.0));
}

/// `text` without terminal colour sequences (`ESC [ … m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

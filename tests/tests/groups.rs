//! Group chat across real node processes and a real relay: exactly-once,
//! same-order delivery; catch-up from the relay's history after being
//! offline; a removed member reads nothing new; concurrent invitations by
//! two admins converge; a stranger publishing on the topic is ignored; the
//! errors users meet.

use std::time::Duration;

use hush_tests::group::{
    create, group_message, group_view, invite, join, send, wait_history, wait_members,
    wait_standing,
};
use hush_tests::{RelayProc, User, introduce, wait_for};
use serde_json::Value;

fn start_all(relay: &RelayProc, users: &mut [&mut User]) {
    for u in users.iter_mut() {
        u.start_with(&["--relay", relay.address.as_str()]);
    }
}

fn refused(user: &User, args: &[&str], expect: &str) {
    let r = user.run(args);
    assert!(!r.ok(), "{args:?} should fail: {r:?}");
    assert!(
        r.stderr.contains(expect),
        "{args:?}: expected {expect:?} in the error, got {r:?}"
    );
}

#[test]
fn three_members_exactly_once_in_order_offline_catch_up_and_removal() {
    let relay = RelayProc::start("");
    let (mut alice, mut bob, mut carol) =
        (User::new("alice"), User::new("bob"), User::new("carol"));
    start_all(&relay, &mut [&mut alice, &mut bob, &mut carol]);
    introduce(&alice, &bob);
    introduce(&alice, &carol);

    let group = create(&alice, "friends");
    assert_eq!(group.len(), 64, "the group id is printed: {group}");
    refused(
        &alice,
        &["group", "invite", &group, "zed"],
        "not one of your contacts",
    );
    invite(&alice, &group, "bob", false);
    invite(&alice, &group, "carol", false);
    wait_standing(&carol, &group, "invited");
    refused(
        &carol,
        &["group", "send", &group, "too early"],
        "join it first",
    );
    join(&bob, &group);
    join(&carol, &group);
    for u in [&alice, &bob, &carol] {
        wait_members(u, &group, 3);
    }
    // bob and carol are not each other's contacts: the group made them peers.
    let members = bob.json(&["group", "members", &group, "--json"]);
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(3),
        "{members}"
    );
    refused(&bob, &["group", "remove", &group, "carol"], "only an admin");

    // Everyone talks; everyone ends with the same messages, once each, in
    // the same order.
    let mut sent = Vec::new();
    for round in 0..3 {
        for u in [&alice, &bob, &carol] {
            sent.push(send(u, &group, &format!("{} says {round}", u.name)));
        }
    }
    let reference = wait_history(&alice, &group, sent.len());
    for u in [&bob, &carol] {
        let h = wait_history(u, &group, sent.len());
        assert_eq!(
            h, reference,
            "{} sees another order or other messages",
            u.name
        );
    }
    let mut ids: Vec<&String> = reference.iter().map(|(id, _)| id).collect();
    ids.dedup();
    assert_eq!(
        ids.len(),
        sent.len(),
        "each message exactly once: {reference:?}"
    );
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted, "history is ordered by message id");

    // Receipts: alice's first message reached both others.
    wait_for(
        "receipts for alice's first message",
        Duration::from_secs(30),
        || {
            let first = group_message(&alice, &group, &sent[0])?;
            (first["delivered"].as_u64() == Some(2)).then_some(())
        },
    );

    // carol goes offline; the others talk; she catches up from the relay.
    carol.stop();
    let a = send(&alice, &group, "while carol was away 1");
    let b = send(&bob, &group, "while carol was away 2");
    wait_history(&bob, &group, sent.len() + 2);
    carol.start_with(&["--relay", relay.address.as_str()]);
    let h = wait_history(&carol, &group, sent.len() + 2);
    let texts: Vec<&str> = h.iter().map(|(_, t)| t.as_str()).collect();
    assert!(
        texts.contains(&"while carol was away 1") && texts.contains(&"while carol was away 2"),
        "{texts:?}"
    );
    assert_eq!(
        h,
        alice.group_history(&group),
        "carol caught up in the same order"
    );
    let _ = (a, b);

    // alice removes carol: carol's node learns it, and reads nothing new.
    let r = alice.run(&["group", "remove", &group, "carol"]);
    assert!(r.ok(), "remove: {r:?}");
    wait_standing(&carol, &group, "removed");
    wait_members(&bob, &group, 2);
    let before = carol.group_history(&group).len();
    let secret = "after carol left: the surprise party";
    send(&alice, &group, secret);
    send(&bob, &group, "bob agrees");
    let bob_h = wait_history(&bob, &group, before + 2);
    assert!(bob_h.iter().any(|(_, t)| t == secret));
    // The removal began a new epoch: its messages go on a topic whose
    // publish key carol never got, so they do not even reach her node.
    // (Give gossip the time it took to reach bob once more.)
    std::thread::sleep(Duration::from_secs(2));
    let carol_h = carol.group_history(&group);
    assert_eq!(
        carol_h.len(),
        before,
        "carol stored nothing new: {carol_h:?}"
    );
    assert!(!carol_h.iter().any(|(_, t)| t == secret));
    assert!(!carol.node_log().contains(secret));
    refused(&carol, &["group", "send", &group, "let me in"], "removed");
    refused(&carol, &["group", "join", &group], "removed");
}

#[test]
fn concurrent_invitations_by_two_admins_converge() {
    let relay = RelayProc::start("");
    let mut alice = User::new("alice");
    let mut bob = User::new("bob");
    let mut carol = User::new("carol");
    let mut dave = User::new("dave");
    start_all(&relay, &mut [&mut alice, &mut bob, &mut carol, &mut dave]);
    introduce(&alice, &bob);
    introduce(&alice, &carol);
    introduce(&bob, &dave);

    let group = create(&alice, "team");
    invite(&alice, &group, "bob", true);
    join(&bob, &group);
    wait_members(&alice, &group, 2);
    wait_for("bob to be an admin", Duration::from_secs(30), || {
        (group_view(&bob, &group)?["you"] == "admin").then_some(())
    });

    // Both admins invite at the same moment, neither knowing of the other's.
    std::thread::scope(|s| {
        s.spawn(|| invite(&alice, &group, "carol", false));
        s.spawn(|| invite(&bob, &group, "dave", false));
    });
    join(&carol, &group);
    join(&dave, &group);
    let views: Vec<Value> = [&alice, &bob, &carol, &dave]
        .iter()
        .map(|u| wait_members(u, &group, 4))
        .collect();
    // The same state everywhere: same version, same members.
    let members = |u: &User| {
        let v = u.json(&["group", "members", &group, "--json"]);
        let mut list: Vec<String> = v["members"]
            .as_array()
            .expect("members")
            .iter()
            .map(|m| format!("{} {} {}", m["account"], m["role"], m["status"]))
            .collect();
        list.sort();
        list
    };
    let reference = members(&alice);
    for (u, v) in [&bob, &carol, &dave].iter().zip(&views[1..]) {
        assert_eq!(
            v["version"], views[0]["version"],
            "{} has another version",
            u.name
        );
        assert_eq!(members(u), reference, "{} has other members", u.name);
    }
    // And they can all talk: dave (bob's contact only) reaches carol
    // (alice's contact only).
    send(&dave, &group, "hello from dave");
    wait_for("carol to read dave", Duration::from_secs(40), || {
        carol
            .group_history(&group)
            .iter()
            .any(|(_, t)| t == "hello from dave")
            .then_some(())
    });
}

/// A peer that is not a member of the group but is a group peer of a
/// member (a raw gossipsub client in this process, with a card alice added
/// and invited into another of her groups) learns the group's topic when
/// it dials her (a member announces all its subscriptions to the peers it
/// gossips with) and publishes well-formed group messages on it, under its
/// own Megolm session, without the topic's publish key: the member it is
/// connected to rejects them (neither stores, nor keeps them waiting for a
/// key, nor forwards them), and the group goes on working. (Before the
/// connection gate any stranger could do this, and any contact before
/// gossip went only to group peers: see
/// `a_stranger_who_dials_a_member_is_disconnected_and_learns_no_topic` and
/// `a_contact_outside_the_group_learns_no_topic`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_member_publishing_on_the_topic_is_rejected() {
    use futures::StreamExt;
    use hush_protocol::{
        AccountId, Body, DeviceId, MegolmOutbound, MessageId, Payload, PublishKey, Wire,
    };
    use libp2p::gossipsub::{Event as Gossip, IdentTopic};
    use libp2p::swarm::SwarmEvent;

    let (_relay, alice, bob, group) = club_of_two();
    send(&alice, &group, "hello bob");
    wait_history(&bob, &group, 1);

    let (key, card) = hush_tests::raw::known_identity(40, "mallory");
    let added = alice.run(&["contact", "add", "mallory", &card]);
    assert!(added.ok(), "{added:?}");
    let decoy = create(&alice, "decoy");
    invite(&alice, &decoy, "mallory", false);
    let mut mallory = hush_tests::raw::gossip_client_with(key);
    dial_from(&mut mallory, &alice);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    // Both of alice's groups: the club's topic and the decoy's.
    let mut topics = Vec::new();
    while topics.len() < 2 {
        let event = tokio::time::timeout_at(deadline, mallory.select_next_some())
            .await
            .expect("alice never announced her group topics to mallory");
        if let SwarmEvent::Behaviour(Gossip::Subscribed { topic, .. }) = event {
            let topic = IdentTopic::new(topic.into_string());
            if !topics.iter().any(|t: &IdentTopic| t.hash() == topic.hash()) {
                mallory
                    .behaviour_mut()
                    .subscribe(&topic)
                    .expect("subscribe");
                topics.push(topic);
            }
        }
    }
    // A key of mallory's own: the signature does not match the topic.
    let own_key = PublishKey::from_secret(&[13; 32]);
    const IGNORED: &str = "not signed by its topic's publish key; rejected";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let mut published = 0;
    let mut sessions = Vec::new();
    while !alice.node_log().contains(IGNORED) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice's node never logged mallory's message ({published} published)"
        );
        let mut session = MegolmOutbound::new();
        sessions.push(hex(&session.id().0[..8]));
        let payload = Payload {
            sender_account: AccountId([7; 32]),
            sender_device: DeviceId([7; 32]),
            id: MessageId(u128::from(published as u64 + 1) << 16),
            body: Body::Text(format!("forged by mallory {published}")),
        };
        let bytes = own_key
            .seal(session.id(), session.encrypt(&payload.to_padded()))
            .to_bytes();
        let topic = topics[published % topics.len()].clone();
        if mallory.behaviour_mut().publish(topic, bytes).is_ok() {
            published += 1;
        }
        let pause = tokio::time::sleep(Duration::from_millis(300));
        tokio::pin!(pause);
        loop {
            tokio::select! {
                _ = mallory.select_next_some() => {}
                _ = &mut pause => break,
            }
        }
    }
    assert!(published > 0);

    // The group still works, and mallory's message is nowhere: not stored,
    // not kept for a key, not forwarded to bob.
    send(&alice, &group, "still just us");
    let bob_history = wait_history(&bob, &group, 2);
    for (who, h) in [("alice", alice.group_history(&group)), ("bob", bob_history)] {
        let texts: Vec<&str> = h.iter().map(|(_, t)| t.as_str()).collect();
        assert_eq!(texts, ["hello bob", "still just us"], "{who}'s history");
    }
    for (who, log) in [("alice", alice.node_log()), ("bob", bob.node_log())] {
        for session in &sessions {
            assert!(
                !log.contains(session.as_str()),
                "{who} kept mallory's message (session {session}) waiting for a key:\n{log}"
            );
        }
        assert!(!log.contains("forged"), "{who}'s log names the forgery");
    }
    assert!(
        !bob.node_log().contains(IGNORED),
        "bob got mallory's message: alice forwarded it"
    );
}

/// A stranger (a raw gossipsub client with a fresh identity) dials a
/// group member's address: before the connection gate, the member
/// announced its subscriptions, the group's topic among them, to anyone
/// who connected (the test above relied on it). Now the connection is
/// refused after the handshake and no subscription reaches the stranger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_who_dials_a_member_is_disconnected_and_learns_no_topic() {
    use futures::StreamExt;
    use libp2p::gossipsub::Event as Gossip;
    use libp2p::swarm::SwarmEvent;

    let (_relay, alice, bob, group) = club_of_two();

    let mut stranger = hush_tests::raw::gossip_client();
    dial_from(&mut stranger, &alice);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, stranger.select_next_some())
            .await
            .expect("the stranger's connection was neither refused nor closed");
        match event {
            SwarmEvent::Behaviour(Gossip::Subscribed { topic, .. }) => {
                panic!("alice announced topic {topic} to a stranger")
            }
            SwarmEvent::ConnectionClosed { .. } | SwarmEvent::OutgoingConnectionError { .. } => {
                break;
            }
            _ => {}
        }
    }
    assert_eq!(stranger.connected_peers().count(), 0);
    // The group goes on for its members.
    send(&alice, &group, "members only");
    wait_history(&bob, &group, 1);
}

/// Attack (issue 18, item 3): a contact of alice who is in none of her
/// groups connects to her node (the gate lets a contact in) and listens
/// for gossipsub subscriptions, which name one topic per group she is in.
/// Gossip goes only to group peers: she offers the contact no gossipsub at
/// all (its own subscription finds no gossipsub on her side), and it
/// learns no topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_outside_the_group_learns_no_topic() {
    use futures::StreamExt;
    use libp2p::gossipsub::{Event as Gossip, IdentTopic};
    use libp2p::swarm::SwarmEvent;

    let (_relay, alice, bob, group) = club_of_two();
    let (keypair, card) = hush_tests::raw::known_identity(61, "carol");
    let added = alice.run(&["contact", "add", "carol", &card]);
    assert!(added.ok(), "{added:?}");
    let mut carol = hush_tests::raw::gossip_client_with(keypair);
    // Something of her own to announce: her handler opens a gossip stream
    // to alice, and hears whether alice speaks gossipsub to her.
    carol
        .behaviour_mut()
        .subscribe(&IdentTopic::new("/hush/test/probe"))
        .expect("subscribe");
    dial_from(&mut carol, &alice);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let event = tokio::time::timeout_at(deadline, carol.select_next_some())
            .await
            .expect("carol heard neither subscriptions nor that gossip is off");
        match event {
            SwarmEvent::Behaviour(Gossip::Subscribed { topic, .. }) => {
                panic!("alice announced topic {topic} to a contact outside the group")
            }
            SwarmEvent::Behaviour(Gossip::GossipsubNotSupported { .. }) => break,
            SwarmEvent::ConnectionClosed { cause, .. } => {
                panic!("alice closed a contact's connection: {cause:?}")
            }
            _ => {}
        }
    }
    // The group goes on for its members.
    send(&alice, &group, "members only");
    wait_history(&bob, &group, 1);
}

/// An admin sets the group's disappearing timer: members see the change,
/// their messages carry it and vanish from every member's history when it
/// runs out. A member who is not an admin is refused.
#[test]
fn a_groups_disappearing_timer_is_set_by_an_admin_and_empties_every_history() {
    let relay = RelayProc::start_logging("", &[], "info,hush_relay::history=debug");
    let (alice, bob, group) = club_of_two_at(&relay);
    let refused = bob.run(&["group", "set", &group, "--disappear", "1h"]);
    assert!(!refused.ok(), "{refused:?}");
    assert!(refused.stderr.contains("admin"), "{refused:?}");
    let set = alice.run(&["group", "set", &group, "--disappear", "5s", "--json"]);
    assert!(set.ok(), "{set:?}");
    assert_eq!(set.json()["disappear_secs"], 5);
    wait_for("bob to take the timer", Duration::from_secs(30), || {
        (group_view(&bob, &group)?["disappear_secs"] == 5).then_some(())
    });
    send(&bob, &group, "five seconds of fame");
    // The change of the timer, then the message.
    wait_history(&alice, &group, 2);
    for user in [&alice, &bob] {
        let history = user.json(&["group", "history", &group, "--json"]);
        let entries = history.as_array().expect("a list");
        assert!(
            entries
                .iter()
                .any(|m| m["kind"] == "timer" && m["timer_secs"] == 5),
            "{}: {history}",
            user.name
        );
        assert!(
            entries
                .iter()
                .any(|m| m["text"] == "five seconds of fame" && m["timer_secs"] == 5),
            "{}: {history}",
            user.name
        );
    }
    // The relay keeps the group's ciphertext for members catching up.
    wait_for(
        "the relay to keep the group's history",
        Duration::from_secs(30),
        || {
            relay
                .metric("hush_relay_history_bytes")
                .filter(|b| *b > 0.0)
        },
    );
    for user in [&alice, &bob] {
        wait_for(
            &format!("the message to vanish on {}'s side", user.name),
            Duration::from_secs(40),
            || {
                let history = user.json(&["group", "history", &group, "--json"]);
                history
                    .as_array()?
                    .iter()
                    .all(|m| m["kind"] != "message")
                    .then_some(())
            },
        );
    }
    // It drops the timed message at its end too (it can read the end,
    // nothing else of the timer).
    wait_for(
        "the relay to drop the timed message",
        Duration::from_secs(30),
        || {
            relay
                .log()
                .contains("group messages dropped at their end")
                .then_some(())
        },
    );
}

/// A raw gossip client dials `user`'s node.
fn dial_from(client: &mut libp2p::Swarm<libp2p::gossipsub::Behaviour>, user: &User) {
    let addr: libp2p::Multiaddr = user.listen_addr().parse().expect("addr");
    client.dial(addr).expect("dial");
}

/// A relay, alice and bob (contacts) and their group "club" (its id),
/// both members.
fn club_of_two() -> (RelayProc, User, User, String) {
    let relay = RelayProc::start("");
    let (alice, bob, group) = club_of_two_at(&relay);
    (relay, alice, bob, group)
}

/// [`club_of_two`] at a given relay.
fn club_of_two_at(relay: &RelayProc) -> (User, User, String) {
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    start_all(relay, &mut [&mut alice, &mut bob]);
    introduce(&alice, &bob);
    let group = create(&alice, "club");
    invite(&alice, &group, "bob", false);
    join(&bob, &group);
    wait_members(&alice, &group, 2);
    wait_members(&bob, &group, 2);
    (alice, bob, group)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Two nodes in this process (the library, real libp2p, real redb),
/// contacts of each other, in alice's group "busy" that bob joined.
async fn busy_pair(dir: &std::path::Path) -> (hush_node::Node, hush_node::Node, String) {
    use hush_node::{Home, Node, NodeConfig};
    let start = |name: &'static str| {
        let home = Home::new(dir.join(name));
        async move {
            hush_node::init(&home, name, hush_node::now_ms()).unwrap();
            let mut config =
                NodeConfig::default().with_listen("/ip4/127.0.0.1/tcp/0".parse().unwrap());
            config.mdns = false;
            Node::start(&home, config).await.unwrap()
        }
    };
    let (alice, bob) = (start("alice").await, start("bob").await);
    alice
        .add_contact("bob", &bob.card().await.unwrap())
        .await
        .unwrap();
    bob.add_contact("alice", &alice.card().await.unwrap())
        .await
        .unwrap();
    let group = alice.group_create("busy").await.unwrap().id;
    alice.group_invite(&group, "bob", false).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while bob.group_join(&group).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "bob never saw the invitation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    while alice.group_members(&group).await.unwrap().group.members < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "alice never saw bob join"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (alice, bob, group)
}

fn two_threads() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A member's node shows a busy group's messages before their batch is
/// on disk, and commits them together. A client that reads right after
/// an event (history, the conversation list, search: bots do) still finds
/// the message the event told of. Each event at bob is followed at once
/// by the three reads.
#[test]
fn a_client_reading_right_after_a_group_message_event_finds_the_message() {
    use hush_node::{Event, Page, rpc::SearchParams};
    let dir = tempfile::tempdir().unwrap();
    two_threads().block_on(async {
        let (alice, bob, group) = busy_pair(dir.path()).await;
        let mut events = bob.subscribe();
        let sent = 40;
        let sender = alice.clone();
        let group_sent = group.clone();
        tokio::spawn(async move {
            for i in 0..sent {
                sender
                    .group_send(&group_sent, &format!("word{i} of a busy group"))
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let mut seen = 0;
        while seen < sent {
            let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
                .await
                .expect("bob got every message within 30 s")
                .unwrap();
            let Event::GroupMessage { message, .. } = &event.event else {
                continue;
            };
            seen += 1;
            let history = bob
                .group_history(&group, Page::Before(None), 1000)
                .await
                .unwrap();
            assert!(
                history.iter().any(|m| m.message.id == message.id),
                "message {seen} is in the history read right after its event"
            );
            let list = bob.conversations().await.unwrap();
            let busy = list.iter().find(|c| c.name == "busy").unwrap();
            assert!(
                busy.unread >= seen,
                "the conversation list counts {} unread after {seen} events",
                busy.unread
            );
            let word = message.text.split(' ').next().unwrap().to_owned();
            let hits = bob
                .search(SearchParams {
                    query: word.clone(),
                    ..SearchParams::default()
                })
                .await
                .unwrap();
            assert!(
                hits.iter().any(|h| h.id == message.id),
                "a search for {word:?} right after its event finds it"
            );
        }
    });
}

/// The author of a busy group is told each message's receipt counts as
/// they land, at most four times a second per group (the receipts of many
/// messages come together): whatever waits is told on a later tick, so
/// every message's last count, `delivered` 1 (bob), reaches a client.
#[test]
fn every_message_of_a_busy_group_has_its_last_receipt_count_told() {
    use std::collections::HashMap;

    use hush_node::Event;
    let dir = tempfile::tempdir().unwrap();
    two_threads().block_on(async {
        let (alice, _bob, group) = busy_pair(dir.path()).await;
        let mut events = alice.subscribe();
        let mut sent = Vec::new();
        for i in 0..40 {
            let receipt = alice
                .group_send(&group, &format!("message {i}"))
                .await
                .unwrap();
            sent.push(receipt.id);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut delivered: HashMap<String, usize> = HashMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while sent.iter().any(|id| delivered.get(id) != Some(&1)) {
            let event = tokio::time::timeout_at(deadline, events.recv())
                .await
                .unwrap_or_else(|_| {
                    let untold: Vec<_> = sent
                        .iter()
                        .filter(|id| delivered.get(*id) != Some(&1))
                        .collect();
                    panic!("no count of 1 told within 60 s for {untold:?}")
                })
                .unwrap();
            if let Event::GroupReceipt {
                id, delivered: n, ..
            } = &event.event
            {
                delivered.insert(id.clone(), *n);
            }
        }
    });
}

/// A member writes to the group while it can reach nobody (its relay and
/// the other member are down), then quits. Started again once the others
/// are back, its node must still send what it wrote: the message is in its
/// own history, and nobody else has it.
#[test]
fn a_group_message_written_offline_and_the_node_restarted_reaches_the_members() {
    let (mut relay, mut alice, mut bob, group) = club_of_two();
    let r = alice.run(&["group", "send", &group, "before", "--json"]);
    assert_eq!(
        r.json()["status"],
        "sent",
        "bob and the relay took it: {r:?}"
    );
    wait_history(&bob, &group, 1);
    bob.stop();
    relay.stop();
    let offline = "written while nobody was reachable";
    let r = alice.run(&["group", "send", &group, offline, "--json"]);
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.json()["status"], "pending", "nobody took it: {r:?}");
    let id = r.json()["id"].as_str().expect("id").to_owned();
    assert_eq!(alice.group_history(&group).len(), 2, "alice's own history");
    alice.stop();

    relay.restart();
    bob.start_with(&["--relay", relay.address.as_str()]);
    alice.start_with(&["--relay", relay.address.as_str()]);
    let back = std::time::Instant::now();
    let h = wait_history(&bob, &group, 2);
    eprintln!("bob had it {:?} after alice started again", back.elapsed());
    assert!(
        h.iter().any(|(_, t)| t == offline),
        "bob got what alice wrote offline: {h:?}"
    );
    assert_eq!(h, alice.group_history(&group), "the same history");
    wait_for(
        "alice's message to read sent",
        Duration::from_secs(20),
        || (group_message(&alice, &group, &id)?["status"] != "pending").then_some(()),
    );
}

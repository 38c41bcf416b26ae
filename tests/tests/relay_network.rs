//! The relay network (issue 19): relays announce themselves in the DHT,
//! a node given only a bootstrap address picks its own home relays among
//! the announced ones near its mailbox, and replaces one that stops
//! answering (telling its contacts, and reading the old one if it comes
//! back).

use std::time::Duration;

use hush_protocol::relay::rank;
use hush_protocol::{ContactCard, MailboxId};
use hush_tests::{RelayProc, User, introduce, wait_for};
use libp2p::PeerId;

/// The relay id at the end of an address.
fn peer_of(addr: &str) -> PeerId {
    addr.rsplit("/p2p/")
        .next()
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("no /p2p/ in {addr}"))
}

/// `user`'s home relays as `hush relays --json` lists them.
fn home_relays(user: &User) -> Vec<(PeerId, String)> {
    let relays = user.json(&["relays", "--json"]);
    relays
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            let addr = r["address"].as_str().expect("address");
            (peer_of(addr), r["chosen"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

/// The `n` of `relays` of the lowest rank for `user`'s mailbox (in a DHT
/// this small every relay is in the mailbox's neighbourhood).
fn best_ranked(user: &User, relays: &[&RelayProc], n: usize) -> Vec<PeerId> {
    let card: ContactCard = user.card().parse().expect("card");
    let mailbox = MailboxId::of(&card.device_list.devices[0].device_id);
    let mut peers: Vec<PeerId> = relays.iter().map(|r| peer_of(&r.address)).collect();
    peers.sort_by_key(|p| {
        let key = libp2p::identity::PublicKey::try_decode_protobuf(p.as_ref().digest())
            .ok()
            .and_then(|k| k.try_into_ed25519().ok())
            .expect("an Ed25519 relay id")
            .to_bytes();
        rank(&key, &mailbox)
    });
    peers.truncate(n);
    peers.sort();
    peers
}

#[test]
fn a_node_with_only_a_bootstrap_address_picks_its_home_relays_among_the_announced() {
    let first = RelayProc::start("");
    let joined: Vec<RelayProc> = (0..3)
        .map(|_| RelayProc::start_with("", &["--bootstrap", &first.address]))
        .collect();
    let private = RelayProc::start_with("announce = false\n", &["--bootstrap", &first.address]);
    let announced: Vec<&RelayProc> = std::iter::once(&first).chain(&joined).collect();
    for relay in announced.iter().chain([&&private]) {
        wait_for(
            "every relay to know the others",
            Duration::from_secs(30),
            || (relay.metric("hush_relay_dht_peers")? >= 4.0).then_some(()),
        );
    }
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    bob.start_with(&["--bootstrap", &first.address]);
    let chosen = home_relays(&bob);
    let mut peers: Vec<PeerId> = chosen.iter().map(|(p, _)| *p).collect();
    peers.sort();
    assert_eq!(
        peers,
        best_ranked(&bob, &announced, 3),
        "the three announced relays ranked best for bob's mailbox"
    );
    assert!(chosen.iter().all(|(_, how)| how == "dht"), "{chosen:?}");
    assert!(
        !peers.contains(&peer_of(&private.address)),
        "a private relay is never picked"
    );
    // Offline mail goes through them; the choice holds across a restart.
    alice.start();
    introduce(&alice, &bob);
    wait_for("bob's keys at his relays", Duration::from_secs(30), || {
        let status = bob.json(&["status", "--json"]);
        let relays = status["relays"].as_array()?.clone();
        relays
            .iter()
            .all(|r| r["keys_left"].as_u64().is_some_and(|n| n > 0))
            .then_some(())
    });
    outbox_empties(&bob);
    bob.stop();
    alice.send_sent("bob", "through relays the DHT chose");
    bob.start();
    assert_eq!(home_relays(&bob), chosen, "the same relays after a restart");
    wait_for("bob to read his mail", Duration::from_secs(40), || {
        bob.history("alice")
            .iter()
            .any(|m| m["text"] == "through relays the DHT chose")
            .then_some(())
    });
}

#[test]
fn with_no_relay_to_pick_the_node_starts_and_says_why() {
    let private = RelayProc::start("announce = false\n");
    let mut bob = User::new("bob");
    bob.start_with(&["--bootstrap", &private.address]);
    let status = bob.json(&["status", "--json"]);
    assert_eq!(
        status["relays"].as_array().map(Vec::len),
        Some(0),
        "{status}"
    );
    let why = status["relay_search"].as_str().unwrap_or_default();
    assert!(why.contains("--relay"), "status says what to do: {status}");
    let run = bob.run(&["relays"]);
    assert!(run.ok() && run.stdout.contains("no home relays"), "{run:?}");
}

/// Five announced relays in one DHT (the first, and four that joined
/// through it), each knowing the others.
fn five_relays() -> (RelayProc, Vec<RelayProc>) {
    let first = RelayProc::start("");
    let joined: Vec<RelayProc> = (0..4)
        .map(|_| RelayProc::start_with("", &["--bootstrap", &first.address]))
        .collect();
    for relay in std::iter::once(&first).chain(&joined) {
        wait_for(
            "every relay to know the others",
            Duration::from_secs(30),
            || (relay.metric("hush_relay_dht_peers")? >= 4.0).then_some(()),
        );
    }
    (first, joined)
}

fn outbox_empties(user: &User) {
    wait_for("the outbox to empty", Duration::from_secs(30), || {
        (user.json(&["status", "--json"])["outbox"].as_u64() == Some(0)).then_some(())
    });
}

/// The relays of `user` not retired.
fn active(user: &User) -> Vec<PeerId> {
    let mut peers: Vec<PeerId> = home_relays(user)
        .into_iter()
        .filter(|(_, how)| how != "retired")
        .map(|(p, _)| p)
        .collect();
    peers.sort();
    peers
}

#[test]
fn a_home_relay_killed_for_good_is_replaced_and_a_contact_with_the_old_card_still_delivers() {
    let (first, mut joined) = five_relays();
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    bob.start_with(&["--bootstrap", &first.address, "--relay-failover-secs", "2"]);
    let before = active(&bob);
    assert_eq!(before.len(), 3, "{:?}", home_relays(&bob));
    // alice holds bob's card as it is now: it names these three.
    alice.start();
    introduce(&alice, &bob);
    outbox_empties(&bob);
    // One of bob's relays dies for good (not the bootstrap one: a search
    // still finds the DHT through the others either way).
    let dead = joined
        .iter()
        .position(|r| before.contains(&peer_of(&r.address)))
        .expect("a joined relay among bob's");
    let dead_peer = peer_of(&joined[dead].address);
    // carol was given that relay with --relay: hers is never replaced.
    let mut carol = User::new("carol");
    carol.start_with(&[
        "--relay",
        &joined[dead].address,
        "--bootstrap",
        &first.address,
        "--relay-failover-secs",
        "2",
    ]);
    joined[dead].kill9();
    wait_for(
        "bob to replace the dead relay",
        Duration::from_secs(90),
        || {
            let now = active(&bob);
            (now.len() == 3 && !now.contains(&dead_peer)).then_some(now)
        },
    );
    wait_for(
        "carol's relay to be silent for twice the failover period",
        Duration::from_secs(60),
        || {
            let relays = carol.json(&["relays", "--json"]);
            (relays[0]["unanswered_secs"].as_u64()? >= 4).then_some(())
        },
    );
    assert_eq!(
        home_relays(&carol),
        [(dead_peer, "pinned".to_owned())],
        "a pinned relay is never replaced"
    );
    let after = active(&bob);
    let listed = home_relays(&bob);
    assert!(
        listed.contains(&(dead_peer, "retired".to_owned())),
        "the dead relay is still read, as retired: {listed:?}"
    );
    let new = *after
        .iter()
        .find(|p| !before.contains(p))
        .expect("one relay is new");
    let new_relay = std::iter::once(&first)
        .chain(&joined)
        .find(|r| peer_of(&r.address) == new)
        .expect("the new relay is one of ours");
    // alice was told while both were online; her card still names the old
    // three. bob goes offline and alice writes: the new set gets it.
    outbox_empties(&bob);
    bob.stop();
    let deposits = new_relay.metric("hush_relay_deposits_total").unwrap_or(0.0);
    alice.send_sent("bob", "after the failover");
    wait_for(
        "the new relay to hold alice's message",
        Duration::from_secs(30),
        || (new_relay.metric("hush_relay_deposits_total")? > deposits).then_some(()),
    );
    // The replacement holds across a restart, and bob reads his mail.
    bob.start();
    assert_eq!(active(&bob), after, "the same relays after a restart");
    wait_for("bob to read his mail", Duration::from_secs(40), || {
        bob.history("alice")
            .iter()
            .any(|m| m["text"] == "after the failover")
            .then_some(())
    });
}

/// Sends `signal` (`STOP`, `CONT`) to a relay's process.
fn signal(relay: &RelayProc, signal: &str) {
    let pid = relay.pid().expect("the relay runs").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{signal} {pid}");
}

#[test]
fn a_replaced_relay_that_comes_back_is_read_to_the_end() {
    let (first, joined) = five_relays();
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    bob.start_with(&["--bootstrap", &first.address, "--relay-failover-secs", "2"]);
    let before = active(&bob);
    alice.start();
    introduce(&alice, &bob);
    outbox_empties(&bob);
    // Mail waits at each of bob's three relays while he is away.
    bob.stop();
    alice.send_sent("bob", "kept by three");
    let held = joined
        .iter()
        .find(|r| before.contains(&peer_of(&r.address)))
        .expect("a joined relay among bob's");
    wait_for(
        "the relay to hold the message",
        Duration::from_secs(30),
        || (held.metric("hush_relay_stored_messages")? >= 1.0).then_some(()),
    );
    // It hangs (it takes connections and answers nothing) while bob
    // comes back: he reads the other two, and replaces it.
    signal(held, "STOP");
    bob.start();
    wait_for("bob to read his mail", Duration::from_secs(40), || {
        bob.history("alice")
            .iter()
            .any(|m| m["text"] == "kept by three")
            .then_some(())
    });
    let held_peer = peer_of(&held.address);
    wait_for(
        "bob to replace the silent relay",
        Duration::from_secs(120),
        || {
            home_relays(&bob)
                .contains(&(held_peer, "retired".to_owned()))
                .then_some(())
        },
    );
    // It comes back: bob reads it to the end (its copy is a duplicate of
    // what he has), and then lets it go.
    signal(held, "CONT");
    held.wait_stored(0);
    wait_for(
        "the retired relay to be let go",
        Duration::from_secs(30),
        || {
            home_relays(&bob)
                .iter()
                .all(|(p, _)| *p != held_peer)
                .then_some(())
        },
    );
    let texts: Vec<_> = bob
        .history("alice")
        .into_iter()
        .filter(|m| m["text"] == "kept by three")
        .collect();
    assert_eq!(texts.len(), 1, "read once");
}

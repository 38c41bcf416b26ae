//! `hush node run --hidden`: no listener of its own. A contact reaches it
//! through a circuit at its home relay; a stranger who dials that circuit
//! address is refused.

use std::time::Duration;

use hush_node::DIRECT_PROTOCOL;
use hush_protocol::ContactCard;
use hush_tests::raw::{ask_circuit, circuit_client, known_identity};
use hush_tests::{RelayProc, User, introduce, wait_for};
use libp2p::{Multiaddr, PeerId, identity};

fn circuit_addresses(user: &User) -> Vec<String> {
    let card: ContactCard = user.card().parse().expect("a card");
    card.addresses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_node_is_reached_through_a_circuit_by_a_contact_and_not_by_a_stranger() {
    let relay = RelayProc::start("");
    let (mut alice, mut bob) = (User::new("alice"), User::new("bob"));
    alice.start_hidden(&["--relay", relay.address.as_str()]);
    bob.start_with(&["--relay", relay.address.as_str()]);

    // alice listens on nothing but her circuit, and shares only that.
    let circuits = wait_for("alice's circuit", Duration::from_secs(30), || {
        let listening = alice.json(&["status", "--json"])["listen_addresses"].clone();
        let listening: Vec<String> = serde_json::from_value(listening).ok()?;
        (!listening.is_empty()).then_some(listening)
    });
    assert!(
        circuits.iter().all(|a| a.contains("/p2p-circuit")),
        "alice listens beyond her circuit: {circuits:?}"
    );
    let shared = wait_for(
        "alice's card names her circuit",
        Duration::from_secs(30),
        || {
            let shared = circuit_addresses(&alice);
            (!shared.is_empty()).then_some(shared)
        },
    );
    assert!(
        shared.iter().all(|a| a.contains("/p2p-circuit")),
        "alice's card: {shared:?}"
    );

    // bob, a contact, reaches her over the circuit (and stays on it: no
    // hole punch for a hidden node).
    introduce(&alice, &bob);
    let sent = bob.json(&["send", "alice", "through the relay", "--json"]);
    bob.wait_status("alice", sent["id"].as_str().expect("id"), "delivered");
    wait_for(
        "bob's relayed connection to alice",
        Duration::from_secs(30),
        || {
            let reach = bob.json(&["status", "--json"])["reachability"].clone();
            let relayed = reach["relayed"].to_string();
            relayed.contains("alice").then_some(())
        },
    );
    let reach = bob.json(&["status", "--json"])["reachability"].clone();
    assert!(
        !reach["direct"].to_string().contains("alice"),
        "bob holds a direct connection to hidden alice: {reach}"
    );

    // A stranger who has her card dials the circuit: refused.
    let card: ContactCard = alice.card().parse().expect("alice's card");
    let device = card.device_list.devices[0].device_id;
    let key = identity::ed25519::PublicKey::try_from_bytes(&device.0).expect("device key");
    let peer = PeerId::from(identity::PublicKey::from(key));
    let addr: Multiaddr = shared[0].parse().expect("circuit address");
    let mut stranger = circuit_client(identity::Keypair::generate_ed25519(), DIRECT_PROTOCOL);
    let answer = ask_circuit(&mut stranger, peer, &addr, vec![0xAB; 100]).await;
    assert!(answer.is_err(), "a stranger got an answer: {answer:?}");
    // The same request, from a device alice knows, is answered over the
    // same circuit: the refusal was the gate's, not the path's.
    let (key, card) = known_identity(60, "carol");
    let added = alice.run(&["contact", "add", "carol", &card]);
    assert!(added.ok(), "{added:?}");
    let mut carol = circuit_client(key, DIRECT_PROTOCOL);
    let answer = ask_circuit(&mut carol, peer, &addr, vec![0xAB; 100]).await;
    assert!(
        answer.is_ok(),
        "a contact got no answer over the circuit: {answer:?}"
    );
}

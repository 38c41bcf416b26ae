//! `hush bench gossip --members N`: the floor under `hush bench group`'s
//! CPU per delivery. N bare libp2p swarms in this process, on loopback TCP
//! with Noise and Yamux and hush's gossipsub settings
//! ([`hush_host::gossipsub_behaviour`]), all on one topic. Every pair is
//! connected, or with `--peers K` each member dials K/2 others at random,
//! so that members hold about K connections, as a group's members hold
//! about 19 at 50 (they dial a few members each, and those they talk to
//! over Olm). The first publishes
//! `messages` group messages the size `bench group` publishes (a 256-byte
//! text, Megolm-encrypted and signed with the topic's publish key), one
//! every `--interval-ms`; the others validate each (gossipsub forwards
//! nothing before that) and count it. No engine, no events, no receipts.
//!
//! Three rounds on the same swarms:
//! - `gossip`: each message accepted unread: what gossipsub, the transport
//!   and the runtime cost per delivery;
//! - `gossip_and_crypto`: each message read as a member reads it (decoded,
//!   the publish key's signature checked as a member checks it, by
//!   signing again; Megolm-decrypted, which checks the session's
//!   signature; the payload decoded) before it is accepted;
//! - `gossip_crypto_and_store`: read as above, then kept as a member keeps
//!   it, in a store of its own made as a home's is (sealed, indexed) and
//!   committed as the node commits received group messages
//!   ([`hush_node::member_floor`]): the floor a member's delivery cannot
//!   go under, whatever the node does around it.
//!
//! Per round: `cpu_us_per_delivery` (the process's CPU time from the first
//! publish to the last arrival, over the deliveries), `cpu_cores_busy`,
//! `p50_ms`/`p99_ms` (publish → validated at a member) and `missing`
//! (not arrived 10 s after the last publish); `idle_cores_busy` over two
//! quiet seconds before the first round.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use hush_node::member_floor::MemberStore;
use hush_protocol::{
    AccountId, Body, DeviceId, GroupId, GroupMessage, MegolmInbound, MegolmOutbound, MessageId,
    Payload, PublishKey, SessionId, Wire,
};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, Swarm};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::bench::percentile;

const TEXT_LEN: usize = 256;
/// How long arrivals may trail the last publish before they count missing.
const LATE: Duration = Duration::from_secs(10);

/// What a member does with each message it receives.
struct Reader {
    /// A member holds the epoch's publish secret and checks a message's
    /// tag ([`PublishKey::is_authentic`]), as the node does.
    key: PublishKey,
    session: MegolmInbound,
}

/// What a member reads of a message: the session it came under and what
/// it says.
struct Read {
    session: SessionId,
    payload: Payload,
}

impl Reader {
    /// Reads `data` as a member would: `None` if any check fails.
    fn read(&mut self, data: &[u8]) -> Option<Read> {
        let message = GroupMessage::from_bytes(data).ok()?;
        if !self.key.is_authentic(&message) {
            return None;
        }
        let (plaintext, _) = self.session.decrypt(&message.ciphertext).ok()?;
        let payload = Payload::from_padded(&plaintext).ok()?;
        Some(Read {
            session: message.session,
            payload,
        })
    }
}

/// What each member does with a message in a round (see the module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Round {
    Gossip = 0,
    Crypto = 1,
    Store = 2,
}

impl Round {
    fn load(shared: &AtomicU8) -> Self {
        match shared.load(Ordering::Relaxed) {
            0 => Self::Gossip,
            1 => Self::Crypto,
            _ => Self::Store,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Gossip => "gossip",
            Self::Crypto => "gossip_and_crypto",
            Self::Store => "gossip_crypto_and_store",
        }
    }
}

/// The group the floor's members keep messages under.
const GROUP: GroupId = GroupId([7; 32]);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// An arrival at a member: which message (its id, the digest), when.
type Arrival = ([u8; 32], Instant);

fn swarm() -> Result<Swarm<gossipsub::Behaviour>> {
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    Ok(hush_host::tcp_swarm(
        keypair,
        hush_host::gossipsub_behaviour()?,
    )?)
}

/// The connections to make, as (dialer, listener): every pair, or for
/// each member `peers / 2` others at random (a pair at most once).
fn links(members: usize, peers: Option<usize>) -> Vec<(usize, usize)> {
    use rand::seq::SliceRandom;
    let Some(peers) = peers else {
        return (0..members)
            .flat_map(|j| (0..j).map(move |i| (j, i)))
            .collect();
    };
    let mut rng = rand::thread_rng();
    let mut pairs = std::collections::BTreeSet::new();
    for i in 0..members {
        let others: Vec<usize> = (0..members).filter(|&j| j != i).collect();
        for &j in others.choose_multiple(&mut rng, peers.div_ceil(2)) {
            pairs.insert((i.max(j), i.min(j)));
        }
    }
    pairs.into_iter().collect()
}

/// Drives one member's swarm: publishes what comes on `publish`, validates
/// what arrives (reading it, and keeping it in `store`, as the round says),
/// reports arrivals.
async fn member(
    mut swarm: Swarm<gossipsub::Behaviour>,
    mut reader: Reader,
    mut store: MemberStore,
    round: Arc<AtomicU8>,
    mut publish: mpsc::Receiver<Vec<u8>>,
    arrivals: mpsc::Sender<Arrival>,
) {
    let mut store_failed = false;
    let topic = IdentTopic::new(reader.key.topic());
    loop {
        tokio::select! {
            next = publish.recv() => {
                let Some(bytes) = next else { return };
                if let Err(e) = swarm.behaviour_mut().publish(topic.clone(), bytes) {
                    eprintln!("bench gossip: a publish failed: {e}");
                }
            }
            event = swarm.select_next_some() => {
                let SwarmEvent::Behaviour(gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    message,
                }) = event
                else {
                    continue;
                };
                // The message's id is its digest (`hush_host::gossipsub_behaviour`).
                let digest = <[u8; 32]>::try_from(message_id.0.as_slice()).ok();
                let accept = match Round::load(&round) {
                    Round::Gossip => true,
                    Round::Crypto => reader.read(&message.data).is_some(),
                    Round::Store => match (reader.read(&message.data), digest) {
                        (Some(read), Some(digest)) => {
                            let kept = store.receive(&GROUP, &read.session, digest, read.payload, now_ms());
                            if let Err(e) = kept
                                && !std::mem::replace(&mut store_failed, true)
                            {
                                eprintln!("bench gossip: a member's store failed: {e}");
                            }
                            true
                        }
                        _ => false,
                    },
                };
                let acceptance = if accept {
                    MessageAcceptance::Accept
                } else {
                    MessageAcceptance::Reject
                };
                let now = Instant::now();
                if let Some(id) = digest {
                    // Full only if the bench stopped reading: counted missing.
                    let _ = arrivals.try_send((id, now));
                }
                swarm.behaviour_mut().report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    acceptance,
                );
            }
        }
    }
}

pub async fn gossip(
    members: usize,
    peers: Option<usize>,
    messages: usize,
    interval_ms: u64,
    as_json: bool,
) -> Result<()> {
    if members < 2 {
        bail!("a group bench needs at least 2 members; pass --members 2 or more");
    }
    if peers.is_some_and(|k| k >= members) {
        bail!("--peers must be under --members (leave it out to connect every pair)");
    }
    let publish_key = PublishKey::from_secret(&[9; 32]);
    let mut outbound = MegolmOutbound::new();
    let session_key = outbound.session_key();
    let round = Arc::new(AtomicU8::new(Round::Gossip as u8));
    let dir = tempfile::Builder::new()
        .prefix("hush-bench-gossip-")
        .tempdir()
        .context("making a folder for the members' stores")?;
    // Room for a whole round's arrivals (read only once it is published).
    let (arrived_tx, mut arrived) = mpsc::channel(messages.max(1) * members);

    // Listen, then connect every pair, or each to a few at random.
    let mut swarms = Vec::with_capacity(members);
    let mut addresses: Vec<Multiaddr> = Vec::with_capacity(members);
    for _ in 0..members {
        let mut s = swarm()?;
        s.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
        let address = loop {
            if let SwarmEvent::NewListenAddr { address, .. } = s.select_next_some().await {
                break address;
            }
        };
        s.behaviour_mut()
            .subscribe(&IdentTopic::new(publish_key.topic()))
            .context("subscribing to the bench topic")?;
        addresses.push(address);
        swarms.push(s);
    }
    let links = links(members, peers);
    for &(dialer, listener) in &links {
        swarms[dialer].dial(addresses[listener].clone())?;
    }
    let mut publishers = Vec::with_capacity(members);
    for (i, s) in swarms.into_iter().enumerate() {
        let store = MemberStore::create(&dir.path().join(format!("member-{i}.redb")))
            .context("making a member's store")?;
        let reader = Reader {
            key: publish_key.clone(),
            session: MegolmInbound::new(&session_key)?,
        };
        let (tx, rx) = mpsc::channel(messages.max(1));
        publishers.push(tx);
        tokio::spawn(member(
            s,
            reader,
            store,
            round.clone(),
            rx,
            arrived_tx.clone(),
        ));
    }
    eprintln!(
        "bench gossip: {members} swarms, {} connections dialled; letting the mesh form",
        links.len()
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    let idle_before = crate::bench_group::cpu_ticks();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_cores =
        crate::bench_group::cpu_ticks().saturating_sub(idle_before) as f64 * 10.0 / 2000.0;

    let first = &publishers[0];
    let mut rounds = serde_json::Map::new();
    let mut next = 0usize;
    for this in [Round::Gossip, Round::Crypto, Round::Store] {
        round.store(this as u8, Ordering::Relaxed);
        // Drop what a previous round left (late copies are not delivered twice).
        while arrived.try_recv().is_ok() {}
        let cpu_before = crate::bench_group::cpu_ticks();
        let started = Instant::now();
        let mut sent_at = HashMap::with_capacity(messages);
        let mut tick = tokio::time::interval(Duration::from_millis(interval_ms.max(1)));
        for _ in 0..messages {
            tick.tick().await;
            let payload = Payload {
                sender_account: AccountId([1; 32]),
                sender_device: DeviceId([1; 32]),
                id: MessageId(next as u128),
                body: Body::Text("x".repeat(TEXT_LEN)),
            };
            let bytes = publish_key
                .seal(outbound.id(), outbound.encrypt(&payload.to_padded()))
                .to_bytes();
            sent_at.insert(GroupMessage::digest(&bytes), Instant::now());
            first
                .send(bytes)
                .await
                .context("the publishing member stopped")?;
            next += 1;
        }
        let expected = messages * (members - 1);
        let mut latencies = Vec::with_capacity(expected);
        let deadline = tokio::time::Instant::now() + LATE;
        let mut last = Instant::now();
        while latencies.len() < expected {
            match tokio::time::timeout_at(deadline, arrived.recv()).await {
                Ok(Some((id, at))) => {
                    if let Some(sent) = sent_at.get(&id) {
                        latencies.push(at.duration_since(*sent).as_micros() as u64);
                        last = at;
                    }
                }
                Ok(None) | Err(_) => break,
            }
        }
        let cpu_ms = crate::bench_group::cpu_ticks().saturating_sub(cpu_before) * 10;
        let wall_ms = last.duration_since(started).as_millis().max(1) as u64;
        latencies.sort_unstable();
        let delivered = latencies.len();
        rounds.insert(
            this.name().into(),
            json!({
                "deliveries": delivered,
                "missing": expected - delivered,
                "p50_ms": percentile(&latencies, 0.50) as f64 / 1000.0,
                "p99_ms": percentile(&latencies, 0.99) as f64 / 1000.0,
                "cpu_cores_busy": (cpu_ms as f64 / wall_ms as f64 * 100.0).round() / 100.0,
                "cpu_us_per_delivery": cpu_ms * 1000 / delivered.max(1) as u64,
            }),
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let report = json!({
        "members": members,
        "peers_mean": (links.len() * 2) as f64 / members as f64,
        "messages": messages,
        "interval_ms": interval_ms,
        "idle_cores_busy": (idle_cores * 100.0).round() / 100.0,
        "rounds": Value::Object(rounds),
    });
    if as_json {
        println!("{report}");
        return Ok(());
    }
    println!(
        "{members} bare gossipsub swarms, {messages} group messages a round, one per {interval_ms} ms ({} cores busy idle)",
        report["idle_cores_busy"]
    );
    for (name, round) in report["rounds"].as_object().into_iter().flatten() {
        println!(
            "{name}: {} µs CPU per delivery, {} cores busy, p50 {} ms, p99 {} ms, {} missing",
            round["cpu_us_per_delivery"],
            round["cpu_cores_busy"],
            round["p50_ms"],
            round["p99_ms"],
            round["missing"]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(key: &PublishKey, session: &mut MegolmOutbound) -> Vec<u8> {
        let payload = Payload {
            sender_account: AccountId([1; 32]),
            sender_device: DeviceId([1; 32]),
            id: MessageId(1),
            body: Body::Text("x".repeat(TEXT_LEN)),
        };
        key.seal(session.id(), session.encrypt(&payload.to_padded()))
            .to_bytes()
    }

    #[test]
    fn members_hold_about_the_peers_asked_for_and_every_pair_without() {
        assert_eq!(links(5, None).len(), 10);
        let few = links(50, Some(19));
        let mut degree = [0usize; 50];
        for &(a, b) in &few {
            assert_ne!(a, b);
            degree[a] += 1;
            degree[b] += 1;
        }
        // Each dials 10: 500 dials, fewer pairs where two chose each other.
        assert!((400..=500).contains(&few.len()), "{}", few.len());
        assert!(degree.iter().all(|&d| d >= 10));
    }

    /// The crypto round must pay for every check a member makes, so it
    /// must also refuse what a member refuses.
    #[test]
    fn the_reader_reads_only_what_a_member_would() {
        let key = PublishKey::from_secret(&[9; 32]);
        let mut session = MegolmOutbound::new();
        let mut reader = Reader {
            key: key.clone(),
            session: MegolmInbound::new(&session.session_key()).expect("session key"),
        };
        let read = reader.read(&message(&key, &mut session)).expect("read");
        assert_eq!(read.session, session.id());
        assert_eq!(read.payload.id, MessageId(1));
        let stranger = PublishKey::from_secret(&[8; 32]);
        assert!(reader.read(&message(&stranger, &mut session)).is_none());
        let mut other = MegolmOutbound::new();
        assert!(reader.read(&message(&key, &mut other)).is_none());
    }
}

//! Lookup hops in the relays' DHT, measured round by round (`hush bench
//! network` reports them as `lookup_hops_*`).
//!
//! libp2p's Kademlia says how many requests a lookup made, not how many
//! rounds: it sends a new request whenever an answer comes in. This probe
//! makes the same lookup over the same relays, in rounds: each round asks
//! the α = 3 closest peers not yet asked (`FIND_NODE` on `/hush/kad/1`,
//! answered from each relay's real routing table), and the lookup ends
//! after a round that found nobody closer to the key than the closest
//! known. Its hops are the rounds it took: the network round trips a
//! lookup of the mailbox's neighbourhood waits for, one after the other.
//!
//! The messages are Kademlia's protobuf (`dht.proto` of libp2p-kad: field
//! 1 `type`, 2 `key`, 8 `closerPeers`; a peer's field 1 `id`, 2 `addrs`),
//! each framed by an unsigned-varint length, written and read here by hand:
//! only the fields a `FIND_NODE` needs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::kad::KBucketKey;
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::{mpsc, oneshot};

/// Peers asked in parallel per round (libp2p's default parallelism).
const ALPHA: usize = 3;
/// The neighbourhood a lookup finds (Kademlia's k).
const K: usize = 20;
/// Longest answer read, in bytes (libp2p-kad's own limit).
const MAX_ANSWER: usize = 16 * 1024;
/// One `FIND_NODE` may take this long.
const ASK_TIMEOUT: Duration = Duration::from_secs(10);
/// Rounds at most (a lookup that has not ended by then is cut off).
const MAX_ROUNDS: usize = 32;
const FIND_NODE: u64 = 4;

/// Asks relays `FIND_NODE` from a throwaway identity.
pub(crate) struct Prober {
    control: libp2p_stream::Control,
    dial: mpsc::Sender<(PeerId, Multiaddr, oneshot::Sender<bool>)>,
    _driver: tokio::task::JoinHandle<()>,
}

impl Prober {
    pub(crate) fn new() -> Result<Self> {
        let activity = hush_host::liveness::Activity::default();
        let swarm = libp2p::SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_other_transport(|key| hush_host::tcp_transport(key, activity))?
            .with_behaviour(|_| libp2p_stream::Behaviour::new())?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let control = swarm.behaviour().new_control();
        let (dial, dials) = mpsc::channel(64);
        let driver = tokio::spawn(drive(swarm, dials));
        Ok(Self {
            control,
            dial,
            _driver: driver,
        })
    }

    /// How many rounds a lookup of `key` from `start` takes.
    pub(crate) async fn hops(&self, start: (PeerId, Multiaddr), key: &[u8]) -> Result<usize> {
        let target = KBucketKey::new(key.to_vec());
        let distance = |peer: &PeerId| KBucketKey::from(*peer).distance(&target);
        // Known peers by distance to the key, with where to reach them.
        let mut known: BTreeMap<_, (PeerId, Multiaddr)> = BTreeMap::new();
        known.insert(distance(&start.0), start);
        let mut asked: HashSet<PeerId> = HashSet::new();
        for round in 1..=MAX_ROUNDS {
            let closest_before = known.keys().next().copied();
            let batch: Vec<(PeerId, Multiaddr)> = known
                .values()
                .take(K)
                .filter(|(p, _)| !asked.contains(p))
                .take(ALPHA)
                .cloned()
                .collect();
            if batch.is_empty() {
                return Ok(round - 1);
            }
            asked.extend(batch.iter().map(|(p, _)| *p));
            let answers =
                futures::future::join_all(batch.into_iter().map(|peer| self.find_node(peer, key)))
                    .await;
            for (peer, addr) in answers.into_iter().flatten().flatten() {
                known.entry(distance(&peer)).or_insert((peer, addr));
            }
            if known.keys().next().copied() == closest_before {
                // Nobody closer: the lookup has its neighbourhood.
                return Ok(round);
            }
        }
        Ok(MAX_ROUNDS)
    }

    /// `peer`'s answer to `FIND_NODE key`: the peers it names, each with
    /// its first TCP address.
    async fn find_node(
        &self,
        (peer, addr): (PeerId, Multiaddr),
        key: &[u8],
    ) -> Result<Vec<(PeerId, Multiaddr)>> {
        let (tx, rx) = oneshot::channel();
        self.dial.send((peer, addr, tx)).await?;
        if !rx.await.unwrap_or(false) {
            bail!("could not reach {peer}");
        }
        let mut control = self.control.clone();
        let asked = async {
            let mut stream = control.open_stream(peer, hush_host::KAD_PROTOCOL).await?;
            stream.write_all(&frame(&find_node(key))).await?;
            stream.flush().await?;
            let len = read_varint(&mut stream).await?;
            if len > MAX_ANSWER as u64 {
                bail!("an answer of {len} bytes");
            }
            let mut answer = vec![0; len as usize];
            stream.read_exact(&mut answer).await?;
            closer_peers(&answer)
        };
        tokio::time::timeout(ASK_TIMEOUT, asked)
            .await
            .context("no answer in time")?
    }
}

/// Runs the probe's swarm: dials on request, says when connected.
async fn drive(
    mut swarm: Swarm<libp2p_stream::Behaviour>,
    mut dials: mpsc::Receiver<(PeerId, Multiaddr, oneshot::Sender<bool>)>,
) {
    let mut waiting: HashMap<PeerId, Vec<oneshot::Sender<bool>>> = HashMap::new();
    loop {
        tokio::select! {
            dial = dials.recv() => {
                let Some((peer, addr, reply)) = dial else { return };
                if swarm.is_connected(&peer) {
                    let _ = reply.send(true);
                    continue;
                }
                let first = !waiting.contains_key(&peer);
                waiting.entry(peer).or_default().push(reply);
                if first && swarm.dial(addr.with_p2p(peer).unwrap_or_else(|a| a)).is_err()
                    && let Some(replies) = waiting.remove(&peer)
                {
                    for r in replies {
                        let _ = r.send(false);
                    }
                }
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    for r in waiting.remove(&peer_id).unwrap_or_default() {
                        let _ = r.send(true);
                    }
                }
                SwarmEvent::OutgoingConnectionError { peer_id: Some(peer), .. } => {
                    for r in waiting.remove(&peer).unwrap_or_default() {
                        let _ = r.send(false);
                    }
                }
                _ => {}
            },
        }
    }
}

/// `type = FIND_NODE, key = key`.
fn find_node(key: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(key.len() + 8);
    put_varint(&mut m, 1 << 3);
    put_varint(&mut m, FIND_NODE);
    put_varint(&mut m, (2 << 3) | 2);
    put_varint(&mut m, key.len() as u64);
    m.extend_from_slice(key);
    m
}

fn frame(message: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(message.len() + 4);
    put_varint(&mut f, message.len() as u64);
    f.extend_from_slice(message);
    f
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

async fn read_varint(stream: &mut libp2p::Stream) -> Result<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let mut b = [0u8; 1];
        stream.read_exact(&mut b).await?;
        v |= u64::from(b[0] & 0x7f) << shift;
        if b[0] & 0x80 == 0 {
            return Ok(v);
        }
    }
    bail!("a length prefix longer than 64 bits")
}

/// A protobuf field at a time: (field number, its bytes or varint).
struct Fields<'a> {
    rest: &'a [u8],
}

enum Value<'a> {
    /// A varint field (FIND_NODE answers carry only their type so).
    Varint,
    Bytes(&'a [u8]),
}

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.rest.split_first().context("a varint cut short")?;
            self.rest = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("a varint longer than 64 bits")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.rest.len() < n {
            bail!("a field cut short");
        }
        let (taken, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(taken)
    }

    fn next(&mut self) -> Result<Option<(u64, Value<'a>)>> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let tag = self.varint()?;
        let value = match tag & 7 {
            0 => {
                self.varint()?;
                Value::Varint
            }
            1 => Value::Bytes(self.take(8)?),
            2 => {
                let len = usize::try_from(self.varint()?)?;
                Value::Bytes(self.take(len)?)
            }
            5 => Value::Bytes(self.take(4)?),
            other => bail!("wire type {other}"),
        };
        Ok(Some((tag >> 3, value)))
    }
}

/// The `closerPeers` of an answer, each with its first TCP address.
fn closer_peers(message: &[u8]) -> Result<Vec<(PeerId, Multiaddr)>> {
    let mut peers = Vec::new();
    let mut fields = Fields { rest: message };
    while let Some((field, value)) = fields.next()? {
        let (8, Value::Bytes(peer)) = (field, value) else {
            continue;
        };
        let mut id = None;
        let mut addr = None;
        let mut inner = Fields { rest: peer };
        while let Some((field, value)) = inner.next()? {
            match (field, value) {
                (1, Value::Bytes(bytes)) => id = PeerId::from_bytes(bytes).ok(),
                (2, Value::Bytes(bytes)) if addr.is_none() => {
                    addr = Multiaddr::try_from(bytes.to_vec()).ok().filter(|a| {
                        a.iter()
                            .any(|p| matches!(p, libp2p::multiaddr::Protocol::Tcp(_)))
                    });
                }
                _ => {}
            }
        }
        if let (Some(id), Some(addr)) = (id, addr) {
            peers.push((id, addr));
        }
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_find_node_answer_reads_back_as_written() {
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/7001".parse().expect("an address");
        let mut p = Vec::new();
        put_varint(&mut p, (1 << 3) | 2);
        put_varint(&mut p, peer.to_bytes().len() as u64);
        p.extend_from_slice(&peer.to_bytes());
        put_varint(&mut p, (2 << 3) | 2);
        put_varint(&mut p, addr.to_vec().len() as u64);
        p.extend_from_slice(&addr.to_vec());
        put_varint(&mut p, 3 << 3);
        put_varint(&mut p, 1);
        let mut m = find_node(b"key");
        put_varint(&mut m, (8 << 3) | 2);
        put_varint(&mut m, p.len() as u64);
        m.extend_from_slice(&p);
        assert_eq!(closer_peers(&m).expect("decodes"), [(peer, addr)]);
        assert!(closer_peers(&m[..m.len() - 1]).is_err(), "cut short");
    }
}

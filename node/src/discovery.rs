//! Home relays found through the DHT (issue 19): a node started with
//! `--bootstrap` and no home relays asks the relays' DHT for the relays
//! closest to its mailbox id, reads each one's signed announcement
//! (`RelayRecord`), asks the announced, fresh, accepting ones for a
//! challenge (so it knows they answer at the address they announce), and
//! keeps the best ranked for its mailbox (rendezvous hashing, `rank`), one
//! per operator group (`choose_home_relays`). It
//! goes over a courier (a throwaway identity), so the relays it asks learn
//! nothing of the device.
//!
//! ```text
//!  bootstrap ─▶ closest peers to MailboxId(device) ─▶ for each: GET relay record
//!     ─▶ verify (its own key), fresh, accepting ─▶ Info at the announced address
//!     ─▶ lowest rendezvous rank, one per /16 ─▶ 3 home relays (saved)
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hush_protocol::relay::{Candidate, RelayRecord, choose_home_relays, operator_group, rank};
use hush_protocol::{MailboxId, MailboxRequest, MailboxResponse, Wire};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId, identity, kad};

use crate::courier::{Courier, CourierEvent};
use crate::network::peer_in;

/// How long the whole search may take before the node starts without
/// home relays.
pub const DISCOVERY_TIMEOUT: Duration = Duration::from_secs(30);

/// What a search for home relays found.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// The home relays (full addresses with `/p2p/`), the best first.
    pub chosen: Vec<String>,
    /// Relays the DHT named closest (and the bootstrap ones).
    pub closest: usize,
    /// Of those, with a record taken (signed, fresh, accepting).
    pub announced: usize,
    /// Of those, answering at their address.
    pub answering: usize,
    /// Requests the DHT lookup of the closest relays made.
    pub requests: u32,
    /// How long the search took.
    pub took: Duration,
}

/// The home relays (full addresses with `/p2p/`) the DHT offers for
/// `mailbox`, at most `n`, the best first; empty when none could be found
/// (the reason is logged).
pub async fn find_home_relays(
    bootstrap: &[Multiaddr],
    mailbox: MailboxId,
    n: usize,
) -> Vec<String> {
    search(bootstrap, mailbox, n).await.chosen
}

/// A relay to take the place of one that stopped answering: the best
/// ranked for `mailbox` that answers, is none of `avoid` (the relays held
/// now, answering or not), and shares no operator group with the ones
/// kept (`keep`, full addresses); `None` if the DHT offers none.
pub async fn find_replacement(
    seeds: &[Multiaddr],
    mailbox: MailboxId,
    keep: &[Multiaddr],
    avoid: &[PeerId],
) -> Option<String> {
    let kept: Vec<Candidate<PeerId>> = keep
        .iter()
        .filter_map(|a| {
            let (ip, port) = ip_port(a)?;
            Some(Candidate {
                relay: peer_in(a)?,
                // First in line: their groups are taken before any other.
                rank: [0; 32],
                group: operator_group(ip, port),
            })
        })
        .collect();
    let want = kept.len() + 1;
    let found = search_with(seeds, mailbox, want, kept, avoid).await;
    found.chosen.into_iter().find(|a| {
        a.parse::<Multiaddr>()
            .ok()
            .and_then(|a| peer_in(&a))
            .is_some_and(|p| !avoid.contains(&p))
    })
}

/// [`find_home_relays`], with what the search saw on the way.
pub async fn search(bootstrap: &[Multiaddr], mailbox: MailboxId, n: usize) -> Search {
    search_with(bootstrap, mailbox, n, Vec::new(), &[]).await
}

/// The search, with relays already chosen (`kept`, ranked first) and
/// relays never to choose (`avoid`).
async fn search_with(
    bootstrap: &[Multiaddr],
    mailbox: MailboxId,
    n: usize,
    kept: Vec<Candidate<PeerId>>,
    avoid: &[PeerId],
) -> Search {
    let started = Instant::now();
    let deadline = started + DISCOVERY_TIMEOUT;
    let seeds: Vec<(PeerId, Multiaddr)> = bootstrap
        .iter()
        .filter_map(|a| Some((peer_in(a)?, a.clone())))
        .collect();
    let mut courier = match Courier::<PeerId>::new(&seeds) {
        Ok(courier) => courier,
        Err(e) => {
            tracing::warn!(error = %e, "could not start looking for home relays");
            return Search::default();
        }
    };
    // The DHT's neighbourhood of the mailbox; the bootstrap relays only if
    // the DHT named none (a network of one or two relays): everyone's
    // bootstrap relays would otherwise be everyone's home relays.
    let (mut peers, requests) = closest(&mut courier, mailbox, deadline).await;
    if peers.is_empty() {
        peers = seeds.iter().map(|(p, _)| *p).collect();
    }
    peers.sort_unstable();
    peers.dedup();
    peers.retain(|p| !avoid.contains(p));
    let records = records(&mut courier, &peers, deadline).await;
    let announced = records.len();
    let reachable = answering(&mut courier, records, deadline).await;
    let kept_peers: Vec<PeerId> = kept.iter().map(|c| c.relay).collect();
    let candidates: Vec<Candidate<PeerId>> = kept
        .into_iter()
        .chain(reachable.iter().filter_map(|(peer, addr)| {
            let (ip, port) = ip_port(addr)?;
            Some(Candidate {
                relay: *peer,
                rank: rank(&ed25519_key(peer)?, &mailbox),
                group: operator_group(ip, port),
            })
        }))
        .collect();
    let chosen: Vec<String> = choose_home_relays(candidates, n)
        .into_iter()
        .filter(|peer| !kept_peers.contains(peer))
        .filter_map(|peer| {
            let addr = reachable.get(&peer)?;
            Some(addr.clone().with(Protocol::P2p(peer)).to_string())
        })
        .collect();
    tracing::info!(
        found = reachable.len(),
        chosen = chosen.len(),
        "home relays found through the DHT"
    );
    Search {
        chosen,
        closest: peers.len(),
        announced,
        answering: reachable.len(),
        requests,
        took: started.elapsed(),
    }
}

/// The relays the DHT knows closest to `mailbox`, and the requests the
/// lookup made.
async fn closest(
    courier: &mut Courier<PeerId>,
    mailbox: MailboxId,
    deadline: Instant,
) -> (Vec<PeerId>, u32) {
    let query = courier.closest_peers(mailbox.0.to_vec());
    loop {
        match next(courier, deadline).await {
            Some(CourierEvent::Closest(id, peers, requests)) if id == query => {
                return (peers, requests);
            }
            Some(_) => continue,
            None => {
                tracing::warn!("the DHT did not answer who is closest in time");
                return (Vec::new(), 0);
            }
        }
    }
}

/// The announcement of each of `peers` that verifies under the peer's own
/// key, is fresh and takes new mailboxes.
async fn records(
    courier: &mut Courier<PeerId>,
    peers: &[PeerId],
    deadline: Instant,
) -> HashMap<PeerId, RelayRecord> {
    let mut lookups = HashMap::new();
    for peer in peers {
        if let Some(key) = ed25519_key(peer) {
            let id = courier.get_record(kad::RecordKey::new(&RelayRecord::dht_key(&key)));
            lookups.insert(id, (*peer, key));
        }
    }
    let mut found = HashMap::new();
    while !lookups.is_empty() {
        match next(courier, deadline).await {
            Some(CourierEvent::Found(id, value)) => {
                let Some((peer, key)) = lookups.get(&id).copied() else {
                    continue;
                };
                let now = crate::node::now_ms();
                match RelayRecord::from_bytes(&value) {
                    Ok(r) if r.key == key && r.verify() && r.is_fresh(now) && r.accepting => {
                        found.insert(peer, r);
                        courier.finish(&id);
                    }
                    Ok(_) => {
                        tracing::debug!(%peer, "a relay record not taken (forged, stale or full)")
                    }
                    Err(e) => tracing::debug!(%peer, error = %e, "a malformed relay record"),
                }
            }
            Some(CourierEvent::LookupDone(id)) => {
                lookups.remove(&id);
            }
            Some(_) => {}
            None => break,
        }
    }
    found
}

/// Of the announced relays, those that answer a challenge at an address
/// they announce (the first that does), by peer.
async fn answering(
    courier: &mut Courier<PeerId>,
    records: HashMap<PeerId, RelayRecord>,
    deadline: Instant,
) -> HashMap<PeerId, Multiaddr> {
    let mut asked = HashMap::new();
    for (peer, record) in records {
        let Some(addr) = record
            .addrs
            .iter()
            .filter_map(|a| a.parse::<Multiaddr>().ok())
            .find(|a| ip_port(a).is_some())
        else {
            continue;
        };
        courier.send(peer, addr.clone(), MailboxRequest::Info.to_bytes(), peer);
        asked.insert(peer, addr);
    }
    let mut answered = HashMap::new();
    let mut waiting = asked.len();
    while waiting > 0 {
        match next(courier, deadline).await {
            Some(CourierEvent::Answer(peer, answer)) => {
                waiting -= 1;
                let info = answer
                    .ok()
                    .and_then(|b| MailboxResponse::from_bytes(&b).ok());
                match (info, asked.remove(&peer)) {
                    (Some(MailboxResponse::Info { .. }), Some(addr)) => {
                        answered.insert(peer, addr);
                    }
                    _ => tracing::debug!(%peer, "an announced relay did not answer at its address"),
                }
            }
            Some(_) => {}
            None => break,
        }
    }
    answered
}

async fn next(courier: &mut Courier<PeerId>, deadline: Instant) -> Option<CourierEvent<PeerId>> {
    tokio::time::timeout_at(deadline.into(), courier.next())
        .await
        .ok()
}

/// The Ed25519 key a PeerId names (every relay's is one).
fn ed25519_key(peer: &PeerId) -> Option<[u8; 32]> {
    let multihash = peer.as_ref();
    let key = identity::PublicKey::try_decode_protobuf(multihash.digest()).ok()?;
    Some(key.try_into_ed25519().ok()?.to_bytes())
}

fn ip_port(addr: &Multiaddr) -> Option<(std::net::IpAddr, u16)> {
    let mut ip = None;
    for part in addr.iter() {
        match part {
            Protocol::Ip4(v4) => ip = Some(std::net::IpAddr::V4(v4)),
            Protocol::Ip6(v6) => ip = Some(std::net::IpAddr::V6(v6)),
            Protocol::Tcp(port) | Protocol::Udp(port) => return Some((ip?, port)),
            _ => {}
        }
    }
    None
}

//! Joining an account as a new device (`hush device join CODE`): the new
//! device's side of the link (the old device's is
//! `event_loop::linking`). Everything handed over is written to a database
//! beside the home (`.linking/`), which becomes the home's only once the
//! whole handover is stored: a link that fails leaves the home as it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use hush_protocol::link::{
    LinkCode, LinkError, LinkGroupKind, LinkInitiator, LinkMessage, LinkReply, LinkRequest,
    LinkStep,
};
use hush_protocol::{
    AccountId, AccountKey, ContactCard, ConversationId, DeviceId, DeviceList, GroupId, GroupOp,
    MegolmInbound, MessageId, OlmDevice, Wire,
};
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::SwarmEvent;
use libp2p::{Multiaddr, PeerId, Swarm};

use crate::error::NodeError;
use crate::home::Home;
use crate::identity::{own_entry, validate_name};
use crate::records::{
    ContactRecord, ContactTrust, GroupRecord, IdentityRecord, InboundRecord, MessageKind,
    MessageRecord, OwnDevice, PublishKeyRecord, Status,
};
use crate::store::{Durability, Op, Store};

/// What the new device asks for and how long it waits.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    /// This device's name on the account (`--name`).
    pub name: String,
    /// Messages sent from then on (ms since the epoch); 0: all, `u64::MAX`:
    /// none.
    pub history_since_ms: u64,
    /// The whole link gives up after this long.
    pub timeout: Duration,
}

/// What a finished join brought.
#[derive(Debug, Clone)]
pub struct Joined {
    pub account: AccountId,
    pub account_name: String,
    pub device: DeviceId,
    pub contacts: usize,
    pub messages: usize,
    pub account_key: bool,
}

/// A joining device's swarm: the link protocol, over TCP, QUIC, or a
/// circuit through the old device's relay.
#[derive(libp2p::swarm::NetworkBehaviour)]
struct JoinBehaviour {
    relay: libp2p::relay::client::Behaviour,
    link: request_response::Behaviour<hush_host::FrameCodec>,
}

fn join_swarm(keypair: libp2p::identity::Keypair) -> Result<Swarm<JoinBehaviour>, NodeError> {
    let err = |e: String| NodeError::Identity(std::io::Error::other(e));
    let swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )
        .map_err(|e| err(e.to_string()))?
        .with_quic()
        .with_dns()
        .map_err(|e| err(e.to_string()))?
        .with_relay_client(libp2p::noise::Config::new, libp2p::yamux::Config::default)
        .map_err(|e| err(e.to_string()))?
        .with_behaviour(|_, relay| JoinBehaviour {
            relay,
            link: crate::network::link_behaviour(request_response::ProtocolSupport::Outbound),
        })
        .map_err(|e| err(e.to_string()))?
        .with_swarm_config(|c| c.with_idle_connection_timeout(std::time::Duration::from_secs(30)))
        .with_connection_timeout(hush_host::DIAL_TIMEOUT)
        .build();
    Ok(swarm)
}

/// Links a new, empty `home` to the account whose device printed `code`.
pub async fn join(home: &Home, code: &str, options: JoinOptions) -> Result<Joined, NodeError> {
    let code: LinkCode = code.parse()?;
    validate_name(&options.name)?;
    if hush_host::now_ms() >= code.expires_at_ms {
        return Err(LinkError::Expired.into());
    }
    if home.db_path().exists() && Store::open(&home.db_path(), &home.db_key()?)?.has_identity()? {
        return Err(NodeError::AlreadyInitialized {
            path: home.dir().to_owned(),
        });
    }
    let existed = home.dir().exists();
    home.create().map_err(|source| NodeError::Home {
        path: home.dir().to_owned(),
        source,
    })?;
    let staging = Staging::new(home)?;
    let outcome = tokio::time::timeout(options.timeout, run(&staging, &code, &options)).await;
    if !matches!(outcome, Ok(Ok(_))) {
        staging.discard();
        if !existed {
            // Made for this join: gone with it (only if still empty).
            let _ = std::fs::remove_dir(home.dir());
        }
    }
    match outcome {
        Ok(Ok(joined)) => {
            staging.publish(home)?;
            Ok(joined)
        }
        Ok(Err(e)) => Err(e),
        Err(_) => Err(NodeError::LinkFailed(format!(
            "the old device did not finish handing over within {} s; nothing was kept: run `hush device link` there and join again",
            options.timeout.as_secs()
        ))),
    }
}

/// The database a join fills, beside the home until it is complete.
struct Staging {
    dir: PathBuf,
    /// The home's database key: the staged database becomes the home's.
    key: hush_host::sealed_db::DbKey,
}

impl Staging {
    fn new(home: &Home) -> Result<Self, NodeError> {
        let dir = home.dir().join(".linking");
        // What a join that was killed left behind.
        let _ = std::fs::remove_dir_all(&dir);
        hush_host::create_private_dir(&dir).map_err(|source| NodeError::Home {
            path: dir.clone(),
            source,
        })?;
        let db = dir.join(crate::home::DB_FILE);
        crate::identity::create_private_file(&db).map_err(|source| NodeError::Home {
            path: db.clone(),
            source,
        })?;
        Ok(Self {
            dir,
            key: home.db_key()?,
        })
    }

    fn db(&self) -> PathBuf {
        self.dir.join(crate::home::DB_FILE)
    }

    /// Moves the complete database into the home.
    fn publish(self, home: &Home) -> Result<(), NodeError> {
        let moved = rename(&self.db(), &home.db_path()).and_then(|()| {
            let wal = self.db().with_extension("wal");
            if wal.exists() {
                rename(&wal, &home.db_path().with_extension("wal"))
            } else {
                Ok(())
            }
        });
        if let Err(source) = moved {
            return Err(NodeError::Home {
                path: home.dir().to_owned(),
                source,
            });
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        Ok(())
    }

    fn discard(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rename(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::rename(from, to)
}

/// The handshake, the handover, and the new device's identity, all into
/// the staging database.
async fn run(
    staging: &Staging,
    code: &LinkCode,
    options: &JoinOptions,
) -> Result<Joined, NodeError> {
    let device_secret: [u8; 32] = rand::random();
    let pickle_key: [u8; 32] = rand::random();
    let mut olm = OlmDevice::new();
    let keypair = hush_host::device_keypair(device_secret).map_err(NodeError::Identity)?;
    let peer = hush_host::peer_id(&code.device)
        .ok_or_else(|| NodeError::LinkFailed("the link code names no valid device".into()))?;
    let addresses = code
        .addresses
        .iter()
        .filter_map(|a| a.parse::<Multiaddr>().ok())
        .collect();
    let mut link = Link {
        swarm: join_swarm(keypair)?,
        peer,
        addresses,
    };

    let (mut initiator, hello) = LinkInitiator::start(code)?;
    let answer = link.ask_first(hello).await?;
    let offer = initiator.offer(&answer)?;
    let mut record = IdentityRecord {
        name: offer.name.clone(),
        account: offer.account,
        account_seed: None,
        device_secret,
        pickle_key,
        device_list_issued_at_ms: 0,
        created_at_ms: hush_host::now_ms(),
        device_list: Vec::new(),
        card: String::new(),
        devices: Vec::new(),
        // The old device pushes the new card; this one does too, at its
        // first start, in case the old one stopped before it could.
        pushed_list_at_ms: 0,
    };
    let (device, proof) = own_entry(&record, &olm)?;
    let request = LinkRequest {
        device,
        proof,
        name: options.name.clone(),
        history_since_ms: options.history_since_ms,
    };
    let frame = initiator.request(&request)?;
    let LinkReply::Grant {
        device_list,
        card,
        account_seed,
        relays,
        names,
        presence,
    } = initiator.open(&link.ask(frame).await?)?
    else {
        return Err(NodeError::LinkFailed(
            "the old device did not grant the link".into(),
        ));
    };
    check_grant(&offer.account, &device_list, &card, &device)?;
    if let Some(seed) = &account_seed
        && AccountKey::from_seed(seed.0).id() != offer.account
    {
        return Err(NodeError::LinkFailed(
            "the account key handed over is not the account's".into(),
        ));
    }
    record.account_seed = account_seed.as_ref().map(|s| s.0);
    record.device_list = device_list.to_bytes();
    record.device_list_issued_at_ms = device_list.issued_at_ms;
    record.card = card;
    record.devices = names
        .into_iter()
        .map(|n| OwnDevice {
            device: n.device,
            name: n.name,
            linked_at_ms: n.linked_at_ms,
        })
        .collect();

    let store = Store::open(&staging.db(), &staging.key)?;
    let mut ops = vec![Op::PutRelays(relays)];
    // The account's presence key: contacts keep one per account.
    if let Some((share, key, seed)) = presence {
        ops.push(Op::PutOwnPresence(crate::records::OwnPresenceRecord {
            share,
            epoch: key.epoch(),
            key: *key.secret(),
        }));
        store.put_presence_seed(&seed.0)?;
    }
    store.apply(ops, Durability::Lazy)?;
    let contacts = fetch_contacts(&mut link, &mut initiator, &store, &offer.account).await?;
    let messages = fetch_messages(&mut link, &mut initiator, &store, &offer.account).await?;
    fetch_groups(&mut link, &mut initiator, &store, &pickle_key).await?;
    let messages = messages + fetch_group_messages(&mut link, &mut initiator, &store).await?;
    let pickle = olm.take_changes(&pickle_key).account.unwrap_or_default();
    store.create_identity(&record, &pickle)?;
    store.checkpoint()?;
    drop(store);

    let done = LinkStep::Done {
        contacts: u32::try_from(contacts).unwrap_or(u32::MAX),
        messages: u32::try_from(messages).unwrap_or(u32::MAX),
    };
    let frame = initiator.step(&done)?;
    match initiator.open(&link.ask(frame).await?)? {
        LinkReply::Finished => {}
        _ => {
            return Err(NodeError::LinkFailed(
                "the old device did not confirm the link".into(),
            ));
        }
    }
    Ok(Joined {
        account: offer.account,
        account_name: offer.name,
        device: device.device_id,
        contacts,
        messages,
        account_key: record.account_seed.is_some(),
    })
}

/// The granted list must be the account's, signed, and list this device
/// as it asked; the card must carry that list.
fn check_grant(
    account: &AccountId,
    list: &DeviceList,
    card: &str,
    device: &hush_protocol::DeviceKeys,
) -> Result<(), NodeError> {
    let bad = |why: &str| NodeError::LinkFailed(format!("the old device's grant {why}"));
    if list.account != *account || list.verify().is_err() {
        return Err(bad("is not signed by the account"));
    }
    if list.device(&device.device_id) != Some(device) {
        return Err(bad("does not list this device"));
    }
    let card: ContactCard = card
        .parse()
        .map_err(|_| bad("carries a card that does not verify"))?;
    if card.account() != *account || card.device_list != *list {
        return Err(bad("carries a card of another list"));
    }
    Ok(())
}

/// One kind of handover, page by page: asks for what follows the last
/// item taken, checks that every item moves forward, and stores each page
/// as it comes. `take` turns an item into ops and says where it stands
/// (`None`: skipped).
async fn fetch<C, T>(
    link: &mut Link,
    initiator: &mut LinkInitiator,
    store: &Store,
    what: &'static str,
    step: impl Fn(Option<C>) -> LinkStep,
    page: impl Fn(LinkReply) -> Option<(Vec<T>, bool)>,
    mut take: impl FnMut(T, &mut Vec<Op>) -> Option<C>,
) -> Result<(), NodeError>
where
    C: Copy + Ord,
{
    let failed = |why: &str| NodeError::LinkFailed(format!("{why} ({what})"));
    let mut after: Option<C> = None;
    loop {
        let frame = initiator.step(&step(after))?;
        let reply = initiator.open(&link.ask(frame).await?)?;
        let (items, more) =
            page(reply).ok_or_else(|| failed("the old device answered out of turn"))?;
        let mut ops = Vec::with_capacity(items.len());
        let mut last = after;
        for item in items {
            let Some(at) = take(item, &mut ops) else {
                continue;
            };
            if last.is_some_and(|l| at <= l) {
                return Err(failed("the items came out of order"));
            }
            last = Some(at);
        }
        store.apply(ops, Durability::Lazy)?;
        if !more {
            return Ok(());
        }
        if last == after {
            return Err(failed("a page did not move on"));
        }
        after = last;
    }
}

/// The contacts, with what the user decided about them.
async fn fetch_contacts(
    link: &mut Link,
    initiator: &mut LinkInitiator,
    store: &Store,
    me: &AccountId,
) -> Result<usize, NodeError> {
    let mut count = 0;
    let step = |after| LinkStep::Contacts { after };
    let page = |reply| match reply {
        LinkReply::Contacts { items, more } => Some((items, more)),
        _ => None,
    };
    fetch(link, initiator, store, "contacts", step, page, |c, ops| {
        let Ok(card) = c.card.parse::<ContactCard>() else {
            tracing::warn!(contact = %c.name, "a contact's card handed over does not verify; skipped");
            return None;
        };
        let account = card.account();
        if account == *me {
            return None;
        }
        ops.push(Op::PutContact(ContactRecord {
            name: c.name,
            card: c.card,
            account,
            send_receipts: c.send_receipts,
            added_at_ms: c.added_at_ms,
        }));
        let trust = ContactTrust {
            blocked: c.blocked,
            verified: c.verified,
            removed: false,
        };
        if !trust.is_default() {
            ops.push(Op::PutTrust(account, trust));
        }
        ops.push(Op::PutPresence(account, c.presence));
        if let Some((secs, set_by)) = c.timer {
            ops.push(Op::PutTimer(account, secs, MessageId(set_by)));
        }
        count += 1;
        Some(account)
    })
    .await?;
    Ok(count)
}

/// The 1:1 history.
async fn fetch_messages(
    link: &mut Link,
    initiator: &mut LinkInitiator,
    store: &Store,
    me: &AccountId,
) -> Result<usize, NodeError> {
    let step = |after: Option<([u8; 32], u128)>| LinkStep::Messages {
        after: after.map(|(a, id)| (AccountId(a), id)),
    };
    let page = |reply| match reply {
        LinkReply::Messages { items, more } => Some((items, more)),
        _ => None,
    };
    let conversation = |a: &[u8; 32]| ConversationId::direct(me, &AccountId(*a));
    fetch_history(link, initiator, store, "messages", step, page, conversation).await
}

/// The groups' history (after the groups themselves).
async fn fetch_group_messages(
    link: &mut Link,
    initiator: &mut LinkInitiator,
    store: &Store,
) -> Result<usize, NodeError> {
    let step = |after: Option<([u8; 32], u128)>| LinkStep::GroupMessages {
        after: after.map(|(g, id)| (GroupId(g), id)),
    };
    let page = |reply| match reply {
        LinkReply::GroupMessages { items, more } => Some((items, more)),
        _ => None,
    };
    let conversation = |g: &[u8; 32]| ConversationId::group(&GroupId(*g));
    fetch_history(
        link,
        initiator,
        store,
        "group messages",
        step,
        page,
        conversation,
    )
    .await
}

/// Pages of messages, each stored under `conversation` of its key.
async fn fetch_history(
    link: &mut Link,
    initiator: &mut LinkInitiator,
    store: &Store,
    what: &'static str,
    step: impl Fn(Option<([u8; 32], u128)>) -> LinkStep,
    page: impl Fn(LinkReply) -> Option<(Vec<LinkMessage>, bool)>,
    conversation: impl Fn(&[u8; 32]) -> ConversationId,
) -> Result<usize, NodeError> {
    let mut count = 0;
    fetch(link, initiator, store, what, step, page, |m, ops| {
        let at = (m.conversation, m.id);
        let status = match m.status {
            0 => Status::Pending,
            1 => Status::Sent,
            2 => Status::Delivered,
            _ => Status::Read,
        };
        ops.push(Op::PutMessage(
            conversation(&m.conversation),
            MessageRecord {
                id: MessageId(m.id),
                from: m.from,
                outgoing: m.outgoing,
                text: m.text,
                status,
                sent_at_ms: m.sent_at_ms,
                stored_at_ms: m.stored_at_ms,
                timer_secs: m.timer_secs,
                kind: match m.timer_change {
                    Some(secs) => MessageKind::Timer(secs),
                    None => MessageKind::Message,
                },
            },
        ));
        count += 1;
        Some(at)
    })
    .await?;
    Ok(count)
}

/// The account's groups: records, ops, publish keys, and Megolm sessions
/// (pickled with this device's key).
async fn fetch_groups(
    link: &mut Link,
    initiator: &mut LinkInitiator,
    store: &Store,
    pickle_key: &[u8; 32],
) -> Result<(), NodeError> {
    let step = |after| LinkStep::Groups { after };
    let page = |reply| match reply {
        LinkReply::Groups { items, more } => Some((items, more)),
        _ => None,
    };
    fetch(link, initiator, store, "groups", step, page, |item, ops| {
        let group = item.group;
        match item.kind {
            LinkGroupKind::Record { left } => {
                let record = GroupRecord {
                    left,
                    ..GroupRecord::default()
                };
                ops.push(Op::PutGroup(group, record));
            }
            LinkGroupKind::Op(bytes) => match GroupOp::from_bytes(&bytes) {
                Ok(op) if op.group == group => {
                    ops.push(Op::PutMembershipChange(group, op.hash(), bytes));
                }
                _ => tracing::warn!(%group, "a group op handed over does not decode; skipped"),
            },
            LinkGroupKind::PublishKey { epoch, secret } => {
                let record = PublishKeyRecord {
                    secret,
                    cursors: Vec::new(),
                    received_ms: hush_host::now_ms(),
                };
                ops.push(Op::PutPublishKey(group, epoch, record));
            }
            LinkGroupKind::Session {
                account,
                device,
                exported,
            } => match MegolmInbound::import(&exported) {
                Ok(session) => {
                    let record = InboundRecord {
                        group,
                        account,
                        device,
                        pickle: session.pickle(pickle_key),
                    };
                    ops.push(Op::PutInbound(session.id().0, record));
                }
                Err(_) => {
                    tracing::warn!(%group, "a Megolm session handed over does not import; skipped");
                }
            },
        }
        Some((group, item.index))
    })
    .await
}

/// The connection to the old device: one request at a time.
struct Link {
    swarm: Swarm<JoinBehaviour>,
    peer: PeerId,
    /// Where the code says it is.
    addresses: Vec<Multiaddr>,
}

/// The pauses between tries of the first request while the old device
/// cannot be reached: a circuit through its relay, or a NAT's mapping,
/// may be a moment from ready when the code is typed in. Later requests
/// go over the connection the first one made.
const REACH_PAUSES: [Duration; 3] = [
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(4),
];

impl Link {
    /// [`Self::ask`] for the first request: tried again after each of
    /// [`REACH_PAUSES`] while the old device cannot be reached (a request
    /// whose connection never came up was never sent).
    async fn ask_first(&mut self, frame: Vec<u8>) -> Result<Vec<u8>, NodeError> {
        for pause in REACH_PAUSES {
            self.give_addresses();
            match self.request(frame.clone()).await {
                Err(request_response::OutboundFailure::DialFailure) => {
                    tracing::info!(
                        "could not reach the old device yet; trying again in {} s",
                        pause.as_secs()
                    );
                    tokio::time::sleep(pause).await;
                }
                answer => return answer.map_err(link_failure),
            }
        }
        self.give_addresses();
        self.ask(frame).await
    }

    /// The code's addresses to the swarm, again before each try: a dial
    /// that failed forgets the addresses it tried.
    fn give_addresses(&mut self) {
        for address in &self.addresses {
            self.swarm.add_peer_address(self.peer, address.clone());
        }
    }

    /// Sends a frame and waits for the old device's answer.
    async fn ask(&mut self, frame: Vec<u8>) -> Result<Vec<u8>, NodeError> {
        self.request(frame).await.map_err(link_failure)
    }

    async fn request(
        &mut self,
        frame: Vec<u8>,
    ) -> Result<Vec<u8>, request_response::OutboundFailure> {
        let id: OutboundRequestId = self
            .swarm
            .behaviour_mut()
            .link
            .send_request(&self.peer, frame);
        loop {
            let event = self.swarm.select_next_some().await;
            use request_response::{Event as E, Message as M};
            match event {
                SwarmEvent::Behaviour(JoinBehaviourEvent::Link(E::Message {
                    message:
                        M::Response {
                            request_id,
                            response,
                        },
                    ..
                })) if request_id == id => return Ok(response),
                SwarmEvent::Behaviour(JoinBehaviourEvent::Link(E::OutboundFailure {
                    request_id,
                    error,
                    ..
                })) if request_id == id => return Err(error),
                _ => {}
            }
        }
    }
}

/// What a failed request of the link tells the user.
fn link_failure(error: request_response::OutboundFailure) -> NodeError {
    NodeError::LinkFailed(match error {
                        request_response::OutboundFailure::DialFailure => {
                            "could not reach the old device: is its node running (`hush node run`), and is its address in the code reachable from here?".to_owned()
                        }
                        request_response::OutboundFailure::ConnectionClosed => {
                            "the connection to the old device closed during the link (did its node stop?); nothing was kept here: run `hush device link` there again".to_owned()
                        }
                        request_response::OutboundFailure::Io(_) => {
                            "the old device refused the link: the code is wrong, used, or expired (its log says which); run `hush device link` there again".to_owned()
                        }
                        other => format!("the old device did not answer: {other}"),
                    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An old device at `port` from `after` on: it answers every link
    /// request with the request's own bytes.
    async fn old_device_up_after(keypair: libp2p::identity::Keypair, port: u16, after: Duration) {
        tokio::time::sleep(after).await;
        let behaviour = crate::network::link_behaviour(request_response::ProtocolSupport::Inbound);
        let mut swarm = hush_host::tcp_swarm(keypair, behaviour).expect("swarm");
        swarm
            .listen_on(
                format!("/ip4/127.0.0.1/tcp/{port}")
                    .parse()
                    .expect("address"),
            )
            .expect("listen");
        loop {
            if let SwarmEvent::Behaviour(request_response::Event::Message {
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            }) = swarm.select_next_some().await
            {
                let _ = swarm.behaviour_mut().send_response(channel, request);
            }
        }
    }

    #[tokio::test]
    async fn a_join_reaches_an_old_device_that_comes_up_a_moment_after_it_tries() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let old = libp2p::identity::Keypair::generate_ed25519();
        let peer = old.public().to_peer_id();
        // Nothing listens there for the first try (refused at once).
        let server = tokio::spawn(old_device_up_after(old, port, Duration::from_millis(1500)));
        let mut link = Link {
            swarm: join_swarm(libp2p::identity::Keypair::generate_ed25519()).expect("swarm"),
            peer,
            addresses: vec![
                format!("/ip4/127.0.0.1/tcp/{port}")
                    .parse()
                    .expect("address"),
            ],
        };
        let answer = link.ask_first(b"hello".to_vec()).await;
        server.abort();
        assert_eq!(answer.expect("the old device answered"), b"hello");
    }
}

//! Two or more device engines in memory on a fake clock, with real Olm:
//! batches, acks, key requests and their answers go from one engine to
//! another as the host would carry them; writes land in a memory store, and
//! what follows a commit happens right after it.

use std::collections::{BTreeMap, HashSet, VecDeque};

use ed25519_dalek::{Signer, SigningKey};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::device::{
    ContactBook, DeviceLookup, DrainStep, FIRST_RETRY_MS, GroupBook, GroupConfig, GroupSelf,
    HomeMailbox, MessageClock, PageHandled, PageStart, PendingRecord,
};
use crate::relay::{MemoryMailStore, Quotas, RelayEngine, RelayRules};
use crate::{
    AccountKey, Auth, DeviceList, MailboxId, MailboxRequest, MailboxResponse, MailboxSecret, Now,
    OwnerRequest,
};

use crate::device::testkit::RELAY;
/// How often a home mailbox is polled when nothing is held open.
const POLL_MS: u64 = 1_000;

mod devices;
mod files;
mod hijack;
mod hostile;
mod lifecycle;
mod pairwise;
mod relay;
mod stated;
mod timers;

type Engine = DeviceEngine<DeviceId, (), u64, u64>;

fn reach(card: &ContactCard) -> CardReach<DeviceId, ()> {
    crate::device::testkit::reach(card)
}

#[derive(Default)]
struct Disk {
    seen: HashSet<crate::device::SeenKey>,
    messages: BTreeMap<(ConversationId, MessageId), MessageRecord>,
    read: HashSet<(ConversationId, MessageId)>,
    outbox: BTreeMap<OutboxKey, OutboxRecord>,
    rights: BTreeMap<DeviceId, DepositRight>,
    grants: BTreeMap<DeviceId, crate::MailboxGrant>,
    home_relays: BTreeMap<DeviceId, crate::HomeRelays>,
    files: BTreeMap<(ConversationId, MessageId), FileRecord>,
}

impl DeviceLookup for Disk {
    type Error = std::convert::Infallible;
    fn seen(&self, key: &crate::device::SeenKey) -> Result<bool, Self::Error> {
        Ok(self.seen.contains(key))
    }
    fn message(
        &self,
        conversation: &ConversationId,
        id: MessageId,
    ) -> Result<Option<MessageRecord>, Self::Error> {
        Ok(self.messages.get(&(*conversation, id)).cloned())
    }
    fn pending(&self, _: &crate::SessionId) -> Result<Vec<([u8; 32], PendingRecord)>, Self::Error> {
        Ok(Vec::new())
    }
    fn outgoing(
        &self,
        c: &ConversationId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageId>, Self::Error> {
        Ok(ids
            .iter()
            .filter(|id| self.messages.get(&(*c, **id)).is_some_and(|m| m.outgoing))
            .copied()
            .collect())
    }
    fn unread(&self, c: &ConversationId) -> Result<Vec<MessageId>, Self::Error> {
        Ok(self
            .messages
            .iter()
            .filter(|((conv, id), m)| conv == c && !m.outgoing && !self.read.contains(&(*c, *id)))
            .map(|((_, id), _)| *id)
            .collect())
    }
}

impl Disk {
    fn write(&mut self, write: DeviceWrite) {
        match write {
            DeviceWrite::Outbox(key, record) => {
                self.outbox.insert(key, record);
            }
            DeviceWrite::DropOutbox(key) => {
                self.outbox.remove(&key);
            }
            DeviceWrite::Message(c, record) => {
                self.messages.entry((c, record.id)).or_insert(record);
            }
            DeviceWrite::RaiseStatus(c, id, status) => {
                if let Some(m) = self.messages.get_mut(&(c, id)) {
                    m.status = m.status.max(status);
                }
            }
            DeviceWrite::MarkRead(c, ids) => self.read.extend(ids.into_iter().map(|id| (c, id))),
            DeviceWrite::Contact(_) => {}
            DeviceWrite::Seen(digest, _) => {
                self.seen.insert(digest);
            }
            DeviceWrite::DepositRight(device, right) => {
                self.rights.insert(device, right);
            }
            DeviceWrite::MailboxGrant(device, grant) => {
                self.grants.insert(device, grant);
            }
            DeviceWrite::HomeRelays(device, stated) => {
                self.home_relays.insert(device, stated);
            }
            DeviceWrite::ForgetContact {
                devices, history, ..
            } => {
                for device in devices {
                    self.rights.remove(&device);
                    self.grants.remove(&device);
                    self.home_relays.remove(&device);
                }
                if let Some(c) = history {
                    self.messages.retain(|(conv, _), _| *conv != c);
                }
            }
            DeviceWrite::Trust(..) => {}
            DeviceWrite::File(c, id, file) => {
                self.files.insert((c, id), file);
            }
            DeviceWrite::Timer(..) => {}
        }
    }

    /// The texts received, in id order.
    fn incoming(&self) -> Vec<String> {
        self.messages
            .values()
            .filter(|m| !m.outgoing)
            .map(|m| m.text.clone())
            .collect()
    }

    /// Texts stored, by direction: (incoming, text, status).
    fn texts(&self) -> Vec<(bool, String, Status)> {
        self.messages
            .values()
            .map(|m| (!m.outgoing, m.text.clone(), m.status))
            .collect()
    }
}

struct Dev {
    /// Signs owner requests to our home relay (the device's libp2p key).
    signing: SigningKey,
    mailbox: MailboxSecret,
    /// Our drain loop at the relay, when the device has one.
    drain: Option<HomeMailbox>,
    /// The pairwise mailboxes the last fetch named, and where each item
    /// read and not yet acked lives (as the node keeps them).
    mail_keys: Vec<std::sync::Arc<crate::PairwiseKey>>,
    unacked: BTreeMap<u64, MailboxId>,
    /// Off: nothing reaches the device, and its requests fail.
    online: bool,
    keys: DeviceKeys,
    card: ContactCard,
    engine: Engine,
    disk: Disk,
    clock: MessageClock,
    rng: StdRng,
    notices: Vec<DeviceNotice>,
}

fn dev(seed: u8, name: &str) -> Dev {
    dev_with(seed, name, false)
}

/// A device; `relayed`: with a home relay (named on its card).
fn dev_with(seed: u8, name: &str, relayed: bool) -> Dev {
    device_of(seed, seed, name, relayed)
}

/// Device `device_seed` of the account `account_seed`, alone on its list.
fn device_of(account_seed: u8, device_seed: u8, name: &str, relayed: bool) -> Dev {
    let seed = device_seed;
    let key = AccountKey::from_seed([account_seed; 32]);
    let signing = SigningKey::from_bytes(&[seed; 32]);
    let mailbox = MailboxSecret::derive(&[seed; 32]);
    let olm = OlmDevice::new();
    let keys = DeviceKeys {
        device_id: DeviceId(signing.verifying_key().to_bytes()),
        olm_ed25519: olm.ed25519_key(),
        olm_curve25519: olm.curve25519_key(),
        mailbox_key: mailbox.public_key(),
    };
    let proof = keys.prove(&key.id(), &signing);
    let list = DeviceList::sign_proven(&key, 1, vec![keys], vec![proof]);
    let relays = if relayed {
        vec!["relay".to_owned()]
    } else {
        vec![]
    };
    let card = ContactCard::sign(&key, name.to_owned(), list, vec![], relays);
    let groups = GroupBook::new(
        GroupSelf {
            account: key.id(),
            key: Some(key.clone()),
            device: keys.device_id,
            pickle_key: [seed; 32],
        },
        GroupConfig::default(),
        reach,
    );
    let me = DeviceSelf {
        account: key.id(),
        keys,
        issuer: RightIssuer::new([seed; 32]),
    };
    Dev {
        signing,
        mailbox,
        drain: relayed.then(|| HomeMailbox::new(Now::new(1_000, 0), POLL_MS).polling()),
        mail_keys: Vec::new(),
        unacked: BTreeMap::new(),
        online: true,
        keys,
        card,
        engine: Engine::new(me, olm, ContactBook::default(), groups, reach),
        disk: Disk::default(),
        clock: MessageClock::default(),
        rng: StdRng::seed_from_u64(u64::from(seed)),
        notices: Vec::new(),
    }
}

/// What a request to the relay was for.
#[derive(Debug)]
enum Ask {
    /// A deposit by a stranger of the test (its answer is ignored).
    Junk,
    Claim(DeviceId),
    Deposit(DeviceId, Vec<OutboxKey>),
    Info,
    Fetch,
    Ack,
    PutKeys,
}

/// What travels between the engines and the relay.
#[derive(Debug)]
enum Wire_ {
    Relay {
        from: usize,
        ask: Ask,
        bytes: Vec<u8>,
    },
    Batch {
        from: usize,
        to: usize,
        request: u64,
        bytes: Vec<u8>,
    },
    Acks {
        to: usize,
        request: u64,
        bytes: Vec<u8>,
    },
    KeyRequest {
        from: usize,
        to: usize,
        request: u64,
    },
    KeyAnswer {
        to: usize,
        request: u64,
        bundle: Option<KeyBundle>,
    },
}

struct Net {
    devs: Vec<Dev>,
    relay: RelayEngine<(usize, Ask)>,
    relay_store: MemoryMailStore,
    /// Every request the relay got, as it got it: what a relay that logs
    /// learns.
    relay_log: Vec<MailboxRequest>,
    now: Now,
    next_request: u64,
    wire: VecDeque<Wire_>,
    /// Every batch that went out: (to, bytes), to replay.
    sent_batches: Vec<(usize, Vec<u8>)>,
}

impl Net {
    /// Devices that are each other's contacts.
    fn new(names: &[&str]) -> Self {
        Self::with_relay(names, &[])
    }

    /// Devices that are each other's contacts; those in `relayed` have the
    /// relay as their home relay.
    fn with_relay(names: &[&str], relayed: &[&str]) -> Self {
        let mut devs: Vec<Dev> = names
            .iter()
            .enumerate()
            .map(|(i, n)| dev_with(i as u8 + 1, n, relayed.contains(n)))
            .collect();
        let cards: Vec<(String, ContactCard)> = names
            .iter()
            .zip(&devs)
            .map(|(n, d)| ((*n).to_owned(), d.card.clone()))
            .collect();
        for d in &mut devs {
            for (name, card) in &cards {
                if card.account() == d.engine.me().account {
                    continue;
                }
                let record = ContactRecord {
                    name: name.clone(),
                    card: card.to_string(),
                    account: card.account(),
                    send_receipts: true,
                    added_at_ms: 0,
                };
                d.engine.contacts.insert(record, card.clone(), reach(card));
            }
        }
        let now = Now {
            mono_ms: 1_000,
            unix_ms: 1_800_000_000_000,
        };
        let relay_store = MemoryMailStore::default();
        let rules = RelayRules {
            quotas: Quotas::default(),
            retention_secs: 3600,
            push: Default::default(),
        };
        let relay = RelayEngine::load(rules, [[1; 32], [2; 32]], &relay_store, now).unwrap();
        let mut net = Self {
            devs,
            relay,
            relay_store,
            relay_log: Vec::new(),
            now,
            next_request: 0,
            wire: VecDeque::new(),
            sent_batches: Vec::new(),
        };
        net.exchange_rights();
        net
    }

    /// Every device gives every contact its deposit right, while all are
    /// online (as when they added each other's cards).
    fn exchange_rights(&mut self) {
        let accounts: Vec<AccountId> = self.devs.iter().map(|d| d.engine.me().account).collect();
        for i in 0..self.devs.len() {
            for account in accounts.iter().filter(|a| **a != accounts[i]) {
                self.call(i, |e, ctx, _| e.grant_right(ctx, account));
            }
        }
        self.drive();
    }

    fn by_device(&self, device: &DeviceId) -> usize {
        self.devs
            .iter()
            .position(|d| d.keys.device_id == *device)
            .expect("a device of the test")
    }

    fn call<T>(&mut self, i: usize, f: impl FnOnce(&mut Engine, &mut Ctx<'_>, &Disk) -> T) -> T {
        let now = self.now;
        let d = &mut self.devs[i];
        let mut ctx = Ctx {
            now,
            clock: &mut d.clock,
            rng: &mut d.rng,
        };
        let out = f(&mut d.engine, &mut ctx, &d.disk);
        self.collect(i);
        out
    }

    /// Does what device `i`'s engine asked: writes now, the rest of what a
    /// commit releases right after.
    fn collect(&mut self, i: usize) {
        loop {
            let mut after = Vec::new();
            while let Some(effect) = self.devs[i].engine.poll_effect() {
                match effect {
                    DeviceEffect::Write(w) => self.devs[i].disk.write(w),
                    DeviceEffect::After(a) => after.push(a),
                    DeviceEffect::Notice(n) => self.devs[i].notices.push(*n),
                    DeviceEffect::RequestKey(device) => {
                        let request = self.request();
                        self.devs[i].engine.outbox.key_requested(request, device);
                        let to = self.by_device(&device);
                        self.wire.push_back(Wire_::KeyRequest {
                            from: i,
                            to,
                            request,
                        });
                    }
                    DeviceEffect::SendBatch {
                        device,
                        keys,
                        batch,
                    } => {
                        let request = self.request();
                        self.devs[i].engine.outbox.start_flight(request, keys);
                        let to = self.by_device(&device);
                        self.sent_batches.push((to, batch.clone()));
                        self.wire.push_back(Wire_::Batch {
                            from: i,
                            to,
                            request,
                            bytes: batch,
                        });
                    }
                    DeviceEffect::ClaimKey { relay, device, .. } => {
                        assert_eq!(relay, RELAY);
                        let bytes = MailboxRequest::ClaimKey { device }.to_bytes();
                        self.wire.push_back(Wire_::Relay {
                            from: i,
                            ask: Ask::Claim(device),
                            bytes,
                        });
                    }
                    DeviceEffect::Deposit {
                        relay,
                        device,
                        keys,
                        request,
                        ..
                    } => {
                        assert_eq!(relay, RELAY);
                        self.wire.push_back(Wire_::Relay {
                            from: i,
                            ask: Ask::Deposit(device, keys),
                            bytes: request,
                        });
                    }
                    DeviceEffect::Group(crate::device::GroupEffect::Write(
                        crate::device::GroupWrite::Message(c, record),
                    )) => self.devs[i].disk.write(DeviceWrite::Message(c, record)),
                    DeviceEffect::PresenceKey { .. }
                    | DeviceEffect::OwnCard(_)
                    | DeviceEffect::Revoked
                    | DeviceEffect::OwnContact(_)
                    | DeviceEffect::Group(_)
                    | DeviceEffect::Note(..) => {}
                }
            }
            if after.is_empty() {
                return;
            }
            let now = self.now;
            let d = &mut self.devs[i];
            for a in after {
                match a {
                    DeviceAfter::Dispatch(key) => {
                        let mut ctx = Ctx {
                            now,
                            clock: &mut d.clock,
                            rng: &mut d.rng,
                        };
                        d.engine.dispatched(&mut ctx, key);
                    }
                    DeviceAfter::Received(digest) => d.engine.settled(&digest),
                    DeviceAfter::Notice(n) => d.notices.push(*n),
                }
            }
        }
    }

    fn request(&mut self) -> u64 {
        self.next_request += 1;
        self.next_request
    }

    /// Carries everything on the wire until nothing moves.
    fn drive(&mut self) {
        for _ in 0..10_000 {
            let Some(message) = self.wire.pop_front() else {
                return;
            };
            match message {
                Wire_::Relay { from, ask, bytes } => {
                    if let Ok(request) = MailboxRequest::from_bytes(&bytes) {
                        self.relay_log.push(request);
                    }
                    let sender = [from as u8];
                    let store = &self.relay_store;
                    self.relay
                        .handle_request(self.now, &sender, &bytes, (from, ask), store);
                    self.run_relay();
                }
                Wire_::Batch {
                    from, to, request, ..
                } if !self.devs[to].online => {
                    let Some(keys) = self.devs[from].engine.outbox.end_flight(&request) else {
                        continue;
                    };
                    self.call(from, |e, ctx, _| e.handle_send_failed(ctx, &keys));
                }
                Wire_::KeyRequest { from, to, request } if !self.devs[to].online => {
                    let outbox = &mut self.devs[from].engine.outbox;
                    let Some(device) = outbox.key_request_ended(&request) else {
                        continue;
                    };
                    self.call(from, |e, ctx, _| {
                        e.mark_unreachable(ctx, device);
                        e.key_arrived(ctx, &device, false);
                    });
                }
                Wire_::Batch {
                    from,
                    to,
                    request,
                    bytes,
                } => {
                    let peer = self.devs[from].keys.device_id;
                    let answer =
                        self.call(to, |e, ctx, disk| e.handle_batch(ctx, disk, peer, &bytes));
                    let acks = match answer {
                        BatchAnswer::Now(acks) | BatchAnswer::AfterCommit(acks) => acks,
                    };
                    self.wire.push_back(Wire_::Acks {
                        to: from,
                        request,
                        bytes: acks.to_bytes(),
                    });
                }
                Wire_::Acks { to, request, bytes } => {
                    let Some(keys) = self.devs[to].engine.outbox.end_flight(&request) else {
                        continue;
                    };
                    self.call(to, |e, ctx, disk| e.handle_acks(ctx, disk, &keys, &bytes));
                }
                Wire_::KeyRequest { from, to, request } => {
                    let peer = self.devs[from].keys.device_id;
                    let now = self.now;
                    let bundle = self.devs[to]
                        .engine
                        .handle_key_request(now, peer, &crate::KeyRequest.to_bytes())
                        .ok();
                    self.wire.push_back(Wire_::KeyAnswer {
                        to: from,
                        request,
                        bundle,
                    });
                }
                Wire_::KeyAnswer {
                    to,
                    request,
                    bundle,
                } => {
                    let Some(device) = self.devs[to].engine.outbox.key_request_ended(&request)
                    else {
                        continue;
                    };
                    self.call(to, |e, ctx, _| {
                        let started = bundle
                            .ok_or_else(|| "no key".to_owned())
                            .and_then(|b| e.start_session(&device, &b));
                        e.key_arrived(ctx, &device, started.is_ok());
                    });
                }
            }
        }
        panic!("the devices never went quiet");
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now.plus_ms(ms);
        let store = &self.relay_store;
        self.relay.handle_timeout(self.now, store);
        self.run_relay();
        for i in 0..self.devs.len() {
            self.call(i, |e, ctx, _| e.handle_tick(ctx));
            let now = self.now;
            let online = self.devs[i].online;
            let step = match &mut self.devs[i].drain {
                Some(drain) if online => drain.poll(now),
                _ => None,
            };
            if let Some(step) = step {
                self.drain_step(i, step);
            }
        }
        self.drive();
    }

    fn send(&mut self, from: usize, to: &str, text: &str) -> MessageId {
        let id = self
            .call(from, |e, ctx, _| e.send_text(ctx, to, text.to_owned()))
            .unwrap();
        self.drive();
        id
    }
}

fn statuses(d: &Dev) -> Vec<(String, Status)> {
    d.disk
        .texts()
        .into_iter()
        .filter(|(incoming, _, _)| !incoming)
        .map(|(_, t, s)| (t, s))
        .collect()
}

#[test]
fn a_message_is_delivered_and_read_with_statuses_in_order() {
    let mut net = Net::new(&["alice", "bob"]);
    net.send(0, "bob", "hello bob");
    // bob stored it once, alice heard `delivered` from the ack.
    assert_eq!(
        net.devs[1].disk.texts(),
        [(true, "hello bob".to_owned(), Status::Delivered)]
    );
    assert_eq!(
        statuses(&net.devs[0]),
        [("hello bob".to_owned(), Status::Delivered)]
    );
    assert!(net.devs[0].disk.outbox.is_empty(), "nothing left to send");
    assert!(matches!(
        net.devs[0].notices.as_slice(),
        [DeviceNotice::Status {
            status: Status::Delivered,
            ..
        }]
    ));
    assert!(matches!(
        net.devs[1].notices.as_slice(),
        [DeviceNotice::Message { contact, .. }] if contact == "alice"
    ));
    // bob reads it: a read receipt goes back and raises the status.
    let read = net
        .call(1, |e, ctx, disk| e.mark_read(ctx, disk, "alice"))
        .unwrap()
        .unwrap();
    assert_eq!(read, 1);
    net.drive();
    assert_eq!(
        statuses(&net.devs[0]),
        [("hello bob".to_owned(), Status::Read)]
    );
    assert!(net.devs[1].disk.outbox.is_empty(), "the receipt was acked");
    // Replies go over the same sessions, both ways.
    net.send(1, "alice", "hi alice");
    assert_eq!(
        statuses(&net.devs[1]),
        [("hi alice".to_owned(), Status::Delivered)]
    );
}

#[test]
fn a_device_that_handles_requests_in_order_gets_two_at_a_time_and_every_message_once() {
    let mut net = Net::new(&["alice", "bob"]);
    net.send(0, "bob", "hello");
    let bob = net.devs[1].keys.device_id;
    // bob answered on `/hush/direct/2` (the host learns it from the answer).
    net.devs[0].engine.outbox.set_ordered(bob, true);
    let texts: Vec<String> = (0..300).map(|i| format!("m{i:03}")).collect();
    for text in &texts {
        net.call(0, |e, ctx, _| e.send_text(ctx, "bob", text.clone()))
            .unwrap();
    }
    assert_eq!(net.wire.len(), 2, "two requests in flight, the rest waits");
    net.drive();
    let mut expected = vec!["hello".to_owned()];
    expected.extend(texts);
    assert_eq!(net.devs[1].disk.incoming(), expected);
    assert!(net.devs[0].disk.outbox.is_empty());
    assert!(
        statuses(&net.devs[0])
            .iter()
            .all(|(_, s)| *s == Status::Delivered)
    );
    // What waited went in full batches, never more than 128.
    let sizes: Vec<usize> = net
        .sent_batches
        .iter()
        .map(|(_, b)| EnvelopeBatch::from_bytes(b).unwrap().envelopes.len())
        .collect();
    assert!(sizes.iter().all(|n| *n <= MAX_BATCH_ENVELOPES));
    assert!(sizes.contains(&MAX_BATCH_ENVELOPES));
}

#[test]
fn a_replayed_batch_is_acknowledged_as_a_duplicate_and_stored_once() {
    let mut net = Net::new(&["alice", "bob"]);
    net.send(0, "bob", "only once");
    let (to, bytes) = net.sent_batches.last().cloned().unwrap();
    let alice = net.devs[0].keys.device_id;
    let answer = net.call(to, |e, ctx, disk| e.handle_batch(ctx, disk, alice, &bytes));
    assert_eq!(
        answer,
        BatchAnswer::Now(AckBatch {
            acks: vec![DirectAck::Duplicate]
        })
    );
    assert_eq!(net.devs[1].disk.texts().len(), 1);
}

#[test]
fn a_recipient_that_lost_our_session_gets_a_new_one_and_the_message_once() {
    let mut net = Net::new(&["alice", "bob"]);
    net.send(0, "bob", "first");
    // bob loses the session (say, restored from an old backup).
    let alice_curve = net.devs[0].keys.olm_curve25519;
    net.devs[1].engine.olm.drop_sessions(&alice_curve);
    net.send(0, "bob", "second");
    // Refused as undecryptable: alice drops the session and tries later.
    assert_eq!(
        statuses(&net.devs[0])[1],
        ("second".to_owned(), Status::Pending)
    );
    assert!(
        !net.devs[0]
            .engine
            .olm
            .has_session(&net.devs[1].keys.olm_curve25519)
    );
    net.advance(FIRST_RETRY_MS * 2);
    net.advance(FIRST_RETRY_MS * 4);
    let texts: Vec<String> = net.devs[1]
        .disk
        .texts()
        .into_iter()
        .map(|(_, t, _)| t)
        .collect();
    assert_eq!(
        texts.iter().filter(|t| *t == "second").count(),
        1,
        "{texts:?}"
    );
    assert_eq!(
        statuses(&net.devs[0])[1],
        ("second".to_owned(), Status::Delivered)
    );
}

#[test]
fn a_stranger_gets_no_key_and_its_envelopes_are_refused() {
    let mut net = Net::new(&["alice", "bob"]);
    let mut mallory = dev(66, "mallory");
    let bob = net.devs[1].keys;
    let refused = net.devs[1].engine.handle_key_request(
        net.now,
        mallory.keys.device_id,
        &crate::KeyRequest.to_bytes(),
    );
    assert_eq!(refused.unwrap_err(), crate::device::KeyDecision::Stranger);
    // mallory got a key another way (bob's earlier bundle, say) and writes.
    let bundle = net.devs[1].engine.olm.one_time_key_bundle(bob.device_id);
    mallory.engine.olm.start_session(&bundle, &bob).unwrap();
    let padded = Payload {
        sender_account: mallory.engine.me().account,
        sender_device: mallory.keys.device_id,
        id: MessageId(1),
        body: Body::Text("let me in".into()),
    }
    .to_padded();
    let envelope = mallory
        .engine
        .olm
        .encrypt(&bob, &padded)
        .unwrap()
        .to_bytes();
    let batch = EnvelopeBatch {
        envelopes: vec![envelope],
    }
    .to_bytes();
    let from = mallory.keys.device_id;
    let answer = net.call(1, |e, ctx, disk| e.handle_batch(ctx, disk, from, &batch));
    assert_eq!(
        answer,
        BatchAnswer::Now(AckBatch {
            acks: vec![DirectAck::Rejected(RejectReason::UnknownSender)]
        })
    );
    assert!(net.devs[1].disk.messages.is_empty());
}

#[test]
fn three_devices_talk_pairwise_without_crossed_sessions() {
    let mut net = Net::new(&["alice", "bob", "carol"]);
    net.send(0, "bob", "a→b");
    net.send(0, "carol", "a→c");
    net.send(1, "carol", "b→c");
    net.send(2, "alice", "c→a");
    let incoming = |i: usize| -> Vec<String> {
        let mut t = net.devs[i].disk.incoming();
        t.sort();
        t
    };
    assert_eq!(incoming(0), ["c→a"]);
    assert_eq!(incoming(1), ["a→b"]);
    assert_eq!(incoming(2), ["a→c", "b→c"]);
    for d in &net.devs {
        assert!(d.disk.outbox.is_empty());
        assert!(statuses(d).iter().all(|(_, s)| *s == Status::Delivered));
    }
}

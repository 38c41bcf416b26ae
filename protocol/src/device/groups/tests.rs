//! Several group engines in memory on a fake clock: control messages go
//! from one to another (Olm itself is the outbox's business, tested with
//! it), topic messages to every subscribed member, writes into a memory
//! store, and what follows a commit right after it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::*;
use crate::ControlKind;
use crate::device::{MessageClock, MessageKind, MessageRecord, PendingRecord, Status};
use crate::{
    AccountKey, Action, Body, DeviceKeys, DeviceList, GroupControl, GroupMessage,
    MAX_IDLE_OPS_PER_AUTHOR, MessageId, Now, Payload,
};

mod channel;
mod check_ins;
mod gaps;
mod hostile;
mod invitations;
mod lacks;
mod messages;
mod publish;
mod resend;
mod tails;

type Book = GroupBook<DeviceId, (), u64>;

fn reach(card: &ContactCard) -> CardReach<DeviceId, ()> {
    crate::device::testkit::reach(card)
}

/// What one member's host stored.
#[derive(Default)]
struct Disk {
    seen: HashSet<crate::device::SeenKey>,
    messages: BTreeMap<(ConversationId, MessageId), MessageRecord>,
    pending: BTreeMap<(crate::SessionId, [u8; 32]), PendingRecord>,
    read: HashSet<(ConversationId, MessageId)>,
    receipts: BTreeMap<(MessageId, AccountId), ReceiptKind>,
    files: BTreeMap<(ConversationId, MessageId), crate::device::FileRecord>,
    unconfirmed: BTreeMap<MessageId, crate::device::UnconfirmedRecord>,
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
    fn pending(
        &self,
        session: &crate::SessionId,
    ) -> Result<Vec<([u8; 32], PendingRecord)>, Self::Error> {
        Ok(self
            .pending
            .iter()
            .filter(|((s, _), _)| s == session)
            .map(|((_, d), r)| (*d, r.clone()))
            .collect())
    }
    fn outgoing(
        &self,
        conversation: &ConversationId,
        ids: &[MessageId],
    ) -> Result<Vec<MessageId>, Self::Error> {
        Ok(ids
            .iter()
            .filter(|id| {
                self.messages
                    .get(&(*conversation, **id))
                    .is_some_and(|m| m.outgoing)
            })
            .copied()
            .collect())
    }
    fn unread(&self, conversation: &ConversationId) -> Result<Vec<MessageId>, Self::Error> {
        Ok(self
            .messages
            .iter()
            .filter(|((c, id), m)| {
                c == conversation && !m.outgoing && !self.read.contains(&(*c, *id))
            })
            .map(|((_, id), _)| *id)
            .collect())
    }
}

impl Disk {
    fn write(&mut self, write: GroupWrite) {
        match write {
            GroupWrite::Seen(digest, _) => {
                self.seen.insert(digest);
            }
            GroupWrite::Message(conversation, record) => {
                self.messages
                    .entry((conversation, record.id))
                    .or_insert(record);
            }
            GroupWrite::Pending(session, digest, record) => {
                self.pending.insert((session, digest), record);
            }
            GroupWrite::DropPending(session, digest) => {
                self.pending.remove(&(session, digest));
            }
            GroupWrite::MarkRead(conversation, ids) => {
                self.read
                    .extend(ids.into_iter().map(|id| (conversation, id)));
            }
            GroupWrite::Receipt(_, message, account, kind) => {
                self.receipts.insert((message, account), kind);
            }
            GroupWrite::File(conversation, id, file) => {
                self.files.insert((conversation, id), file);
            }
            GroupWrite::Unconfirmed(id, record) => {
                self.unconfirmed.insert(id, record);
            }
            GroupWrite::DropUnconfirmed(id) => {
                self.unconfirmed.remove(&id);
            }
            GroupWrite::Status(conversation, id, status) => {
                if let Some(m) = self.messages.get_mut(&(conversation, id)) {
                    m.status = m.status.max(status);
                }
            }
            GroupWrite::Op(..)
            | GroupWrite::Record(..)
            | GroupWrite::Inbound(..)
            | GroupWrite::DropInbound(_)
            | GroupWrite::PublishKey(..)
            | GroupWrite::DropPublishKey(..) => {}
        }
    }

    fn texts(&self, id: GroupId) -> Vec<String> {
        let conversation = ConversationId::group(&id);
        self.messages
            .iter()
            .filter(|((c, _), _)| *c == conversation)
            .map(|(_, m)| m.text.clone())
            .collect()
    }
}

struct Member {
    name: &'static str,
    key: AccountKey,
    device: DeviceId,
    card: ContactCard,
    book: Book,
    disk: Disk,
    clock: MessageClock,
    rng: StdRng,
    /// Control messages to this member wait while it is held.
    held: bool,
    /// No peer on the topic takes what it publishes (its tries are in
    /// `tried`).
    offline: bool,
    tried: Vec<Vec<u8>>,
    /// Topic messages to this member are lost while it is deaf (as if not
    /// subscribed yet).
    deaf: bool,
    notices: Vec<GroupNotice>,
    /// What the book said for the log, as (severity, text).
    notes: Vec<(Severity, &'static str)>,
    validations: Vec<(u64, DeviceId, Acceptance)>,
    /// The relays' history this member asked to read: (group, topic).
    catch_ups: Vec<(GroupId, String)>,
}

fn member(seed: u8, name: &'static str, config: GroupConfig) -> Member {
    let key = AccountKey::from_seed([seed; 32]);
    let device = DeviceId([seed; 32]);
    let keys = DeviceKeys {
        device_id: device,
        olm_ed25519: [seed; 32],
        olm_curve25519: [seed; 32],
        mailbox_key: [seed; 32],
    };
    let list = DeviceList::sign(&key, 1, vec![keys]);
    let card = ContactCard::sign(&key, name.to_owned(), list, vec![], vec![]);
    let me = GroupSelf {
        account: key.id(),
        key: Some(key.clone()),
        device,
        pickle_key: [seed; 32],
    };
    Member {
        name,
        key,
        device,
        card,
        book: Book::new(me, config, reach),
        disk: Disk::default(),
        clock: MessageClock::default(),
        rng: StdRng::seed_from_u64(u64::from(seed)),
        held: false,
        deaf: false,
        offline: false,
        tried: Vec::new(),
        notices: Vec::new(),
        notes: Vec::new(),
        validations: Vec::new(),
        catch_ups: Vec::new(),
    }
}

/// A control message on its way: (from, to, payload).
type Control = (usize, AccountId, Payload);

struct Net {
    members: Vec<Member>,
    now: Now,
    olm: VecDeque<Control>,
    /// Published topic messages: (from, group, topic, bytes).
    topic: VecDeque<(usize, GroupId, String, Vec<u8>)>,
    /// Every topic message published so far: (from, topic, bytes).
    published: Vec<(usize, String, Vec<u8>)>,
    /// The id of each of our messages published with a watch, by bytes.
    watches: HashMap<Vec<u8>, MessageId>,
    next_message: u64,
    /// Shuffles control messages before delivery when set.
    shuffle: Option<StdRng>,
}

impl Net {
    fn new(names: &[&'static str], config: GroupConfig) -> Self {
        let members = names
            .iter()
            .enumerate()
            .map(|(i, name)| member(i as u8 + 1, name, config))
            .collect();
        Self {
            members,
            now: Now {
                mono_ms: 1_000,
                unix_ms: 1_800_000_000_000,
            },
            olm: VecDeque::new(),
            topic: VecDeque::new(),
            published: Vec::new(),
            watches: HashMap::new(),
            next_message: 0,
            shuffle: None,
        }
    }

    fn index(&self, account: &AccountId) -> usize {
        self.members
            .iter()
            .position(|m| m.key.id() == *account)
            .expect("a member of the test")
    }

    /// Runs `f` on member `i` with a context, then collects its effects.
    fn call<T>(&mut self, i: usize, f: impl FnOnce(&mut Book, &mut Ctx<'_>, &Disk) -> T) -> T {
        let now = self.now;
        let m = &mut self.members[i];
        let mut ctx = Ctx {
            now,
            clock: &mut m.clock,
            rng: &mut m.rng,
        };
        let out = f(&mut m.book, &mut ctx, &m.disk);
        self.collect(i);
        out
    }

    /// Does what member `i`'s engine asked: writes now, then what follows
    /// the commit.
    fn collect(&mut self, i: usize) {
        loop {
            let mut after = Vec::new();
            while let Some(effect) = self.members[i].book.poll_effect() {
                match effect {
                    GroupEffect::Write(w) => self.members[i].disk.write(w),
                    GroupEffect::Send { to, payload } => self.olm.push_back((i, to, payload)),
                    GroupEffect::Publish {
                        group,
                        topic,
                        bytes,
                        watch,
                    } => self.hand_to_gossip(i, group, topic, bytes, watch),
                    GroupEffect::Validate {
                        message,
                        peer,
                        acceptance,
                    } => self.members[i]
                        .validations
                        .push((message, peer, acceptance)),
                    GroupEffect::After(a) => after.push(a),
                    GroupEffect::CatchUp { group, topic } => {
                        self.members[i].catch_ups.push((group, topic))
                    }
                    // Connected unless offline, as a host finds it.
                    GroupEffect::Hand {
                        to, group, bytes, ..
                    } => {
                        if !self.members[self.index(&to)].offline {
                            self.call(i, |book, ctx, _| book.hand(ctx, to, group, bytes));
                        }
                    }
                    GroupEffect::PeersChanged
                    | GroupEffect::Dial(_)
                    | GroupEffect::Subscribe { .. }
                    | GroupEffect::Unsubscribe { .. }
                    | GroupEffect::Fetch { .. } => {}
                    GroupEffect::Note(_, severity, what) => {
                        self.members[i].notes.push((severity, what))
                    }
                }
            }
            if after.is_empty() {
                return;
            }
            for a in after {
                let m = &mut self.members[i];
                match a {
                    GroupAfter::Publish {
                        group,
                        topic,
                        bytes,
                        watch,
                    } => {
                        if let Some(message) = watch {
                            m.book.watch_published(
                                self.now,
                                message,
                                group,
                                topic.clone(),
                                bytes.clone(),
                            );
                        }
                        self.hand_to_gossip(i, group, topic, bytes, watch);
                    }
                    GroupAfter::PendingStored(session, digest) => {
                        m.book.pending_stored(session, digest)
                    }
                    GroupAfter::Settled(digest) => m.book.settled(&digest),
                    GroupAfter::ReceiptCounts(..) => {}
                    GroupAfter::Notice(n) => m.notices.push(*n),
                }
            }
        }
    }

    /// What the host does with a message to publish: gossip takes it (it
    /// goes on the topic), or, while member `i` is offline, finds no peer
    /// (the engine keeps it for the next tick).
    fn hand_to_gossip(
        &mut self,
        i: usize,
        group: GroupId,
        topic: String,
        bytes: Vec<u8>,
        watch: Option<MessageId>,
    ) {
        if let Some(message) = watch {
            self.watches.insert(bytes.clone(), message);
        }
        let m = &mut self.members[i];
        if m.offline {
            m.tried.push(bytes.clone());
            m.book.unpublished(group, topic, bytes, watch);
            return;
        }
        if let Some(message) = watch {
            m.book.taken(group, message);
        }
        self.published.push((i, topic.clone(), bytes.clone()));
        self.topic.push_back((i, group, topic, bytes));
    }

    /// Delivers every control and topic message until none is left (held
    /// members' control messages stay queued).
    fn drive(&mut self) {
        self.drive_dropping(|_, _, _| false);
    }

    /// [`Net::drive`], losing the control messages `lost` picks (from, to,
    /// payload); returns how many were lost.
    fn drive_dropping(&mut self, lost: impl Fn(usize, &AccountId, &Payload) -> bool) -> usize {
        let mut dropped = 0;
        for _ in 0..10_000 {
            if let Some(rng) = &mut self.shuffle {
                self.olm.make_contiguous().shuffle(rng);
            }
            let ready = self
                .olm
                .iter()
                .position(|(_, to, _)| !self.members[self.index(to)].held);
            if let Some(k) = ready {
                let (from, to, payload) = self.olm.remove(k).expect("just found");
                if lost(from, &to, &payload) {
                    dropped += 1;
                } else {
                    self.deliver_control(from, to, payload);
                }
                continue;
            }
            let Some((from, id, topic, bytes)) = self.topic.pop_front() else {
                return dropped;
            };
            // Gossip reaches whoever is subscribed to the topic.
            for to in 0..self.members.len() {
                if to != from
                    && !self.members[to].deaf
                    && self.members[to]
                        .book
                        .group(&id)
                        .is_some_and(|g| !g.has_left() && g.topics().any(|t| t == topic))
                {
                    self.deliver_topic(from, to, &topic, &bytes);
                }
            }
        }
        panic!("the members never went quiet");
    }

    fn deliver_control(&mut self, from: usize, to: AccountId, payload: Payload) {
        let Body::Group(control) = payload.body else {
            panic!("groups send only group control");
        };
        let (account, device) = (self.members[from].key.id(), self.members[from].device);
        let to = self.index(&to);
        self.call(to, |book, ctx, disk| {
            book.handle_control(ctx, disk, account, device, control);
        });
    }

    fn deliver_topic(&mut self, from: usize, to: usize, topic: &str, bytes: &[u8]) {
        self.next_message += 1;
        let message = self.next_message;
        let peer = self.members[from].device;
        self.call(to, |book, ctx, disk| {
            book.handle_topic_message(ctx, disk, topic, message, peer, false, bytes);
        });
    }

    /// Where in the queue the first control message to member `to` of the
    /// kind `pick` is.
    fn control_to(&self, to: usize, pick: impl Fn(&ControlKind) -> bool) -> Option<usize> {
        let to = self.members[to].key.id();
        self.olm.iter().position(|(_, t, payload)| {
            *t == to && matches!(&payload.body, Body::Group(c) if pick(&c.kind))
        })
    }

    /// The control message at `at` in the queue.
    fn control_at(&self, at: usize) -> GroupControl {
        match &self.olm[at].2.body {
            Body::Group(control) => control.clone(),
            _ => panic!("groups send only group control"),
        }
    }

    /// The topic member `i` publishes on in group `id`, and the key that
    /// signs for it (what a member holds).
    fn publish_key(&self, i: usize, id: GroupId) -> (String, crate::PublishKey) {
        let g = self.members[i].book.group(&id).expect("in the group");
        let key = g.publish_key_for_tests().expect("holds a publish key");
        (key.topic(), key)
    }

    fn advance(&mut self, ms: u64) {
        self.now = self.now.plus_ms(ms);
        for i in 0..self.members.len() {
            self.call(i, |book, ctx, _| book.handle_tick(ctx));
        }
    }

    /// `creator` makes a group "friends" (nobody else in it yet).
    fn create_friends(&mut self, creator: usize) -> GroupId {
        let card = self.members[creator].card.clone();
        self.call(creator, |book, ctx, _| {
            book.create(ctx, "friends".into(), card)
        })
        .unwrap()
    }

    /// Member `by` invites member `who` into "friends" (nothing delivered
    /// yet).
    fn invite_to_friends(&mut self, by: usize, who: usize, admin: bool) {
        let card = self.members[who].card.clone();
        self.call(by, |book, ctx, _| book.invite(ctx, "friends", card, admin))
            .unwrap();
    }

    /// Member `by` makes member `who` an admin of "friends", and
    /// everything is delivered.
    fn promote_in_friends(&mut self, by: usize, who: usize) {
        let account = self.members[who].key.id();
        self.call(by, |book, ctx, _| {
            book.member_change(ctx, "friends", Action::Promote { account })
        })
        .unwrap();
        self.drive();
    }

    /// Member `by` removes member `who` from "friends", and everything is
    /// delivered.
    fn remove_from_friends(&mut self, by: usize, who: usize) {
        let account = self.members[who].key.id();
        self.call(by, |book, ctx, _| {
            book.member_change(ctx, "friends", Action::Remove { account })
        })
        .unwrap();
        self.drive();
    }

    /// The parents member `i`'s next op in group `id` would name.
    fn heads_of(&self, i: usize, id: GroupId) -> Vec<crate::OpHash> {
        let m = &self.members[i];
        m.book.group(&id).unwrap().ops().heads(id, &m.key.id())
    }

    /// Member `i` joins "friends", and everything is delivered.
    fn join_friends(&mut self, i: usize) {
        self.call(i, |book, ctx, _| book.join(ctx, "friends"))
            .unwrap();
        self.drive();
    }

    /// `creator` makes a group "friends" and every other member joins it
    /// (the validations of the ops on the way are forgotten).
    fn group_of_all(&mut self, creator: usize) -> GroupId {
        let id = self.create_friends(creator);
        for i in (0..self.members.len()).filter(|i| *i != creator) {
            self.invite_to_friends(creator, i, false);
            self.drive();
            self.join_friends(i);
        }
        for m in &mut self.members {
            m.validations.clear();
        }
        id
    }

    fn send(&mut self, i: usize, text: &str) -> MessageId {
        let id = self
            .call(i, |book, ctx, _| book.send(ctx, "friends", text.to_owned()))
            .unwrap();
        self.drive();
        id
    }

    /// Member `i` sends `text`: the bytes it publishes (delivered on the
    /// next [`Net::drive`]).
    fn publish(&mut self, i: usize, text: &str) -> Vec<u8> {
        self.call(i, |book, ctx, _| book.send(ctx, "friends", text.to_owned()))
            .unwrap();
        let (_, _, _, bytes) = self.topic.back().expect("published after the commit");
        bytes.clone()
    }

    fn standing(&self, i: usize, id: GroupId) -> Standing {
        let m = &self.members[i];
        m.book.group(&id).unwrap().standing(&m.key.id())
    }
}

fn config() -> GroupConfig {
    GroupConfig {
        rotate_messages: 100,
        rotate_after_ms: 3_600_000,
        member_limit: 16,
        lack_heads_max: crate::device::groups::LACK_HEADS_MAX,
    }
}

//! Presence, the host side: feeds [`hush_protocol::device::PresenceBook`]
//! (our key and who gets it, our records, what contacts' records say; see
//! its docs for the rules) from the swarm and the user, and does what it
//! asks: DHT puts and lookups (Kademlia), pushes on `/hush/presence/1`,
//! our key to contacts through the outbox, events. It also answers
//! `presence` calls, waiting for lookups at most [`LOOKUP_WAIT`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hush_protocol::device::{
    Accepted, PresenceBook, PresenceEffect, PresenceSelf, PresenceTiming, PresenceWrite, World,
};
use hush_protocol::{
    AccountId, Body, DeviceId, DeviceKeys, PresencePush, PresenceState, SealedPresence, Wire,
};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::{Multiaddr, PeerId, kad};

use super::{After, EventLoop, millis};
use crate::error::NodeError;
use crate::identity::Me;
use crate::node::Reply;
use crate::records::{OutboxKind, OwnPresenceRecord, PresenceRecord};
use crate::store::Op;
use crate::view::{Event, PresenceView, rfc3339};

/// A `presence` call waits this long for DHT lookups at most.
const LOOKUP_WAIT: Duration = Duration::from_secs(5);
/// Presence lookups in flight at most (one per contact device).
const MAX_LOOKUPS: usize = 256;
/// `presence` calls waiting for lookups at most.
const MAX_WAITERS: usize = 64;

/// Presence timing, from the node config.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PresenceConfig {
    /// How long a record is valid; refreshed every half of it.
    pub ttl: Duration,
    /// How long a contact stays online after its connection drops.
    pub grace: Duration,
}

#[derive(Debug)]
struct Waiter {
    reply: Reply<PresenceView>,
    account: AccountId,
    deadline: Instant,
}

/// A presence lookup: on the courier's Kademlia (a short-lived identity),
/// or on the node's own when there is no courier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum LookupId {
    Swarm(kad::QueryId),
    Courier(kad::QueryId),
}

/// The presence part and the requests in flight for it.
pub(crate) struct PresenceHost {
    book: PresenceBook<Multiaddr>,
    lookups: HashMap<LookupId, (AccountId, DeviceId)>,
    waiters: Vec<Waiter>,
    pushes: HashMap<OutboundRequestId, (AccountId, DeviceId)>,
    puts: usize,
}

impl PresenceHost {
    pub(crate) fn load(
        config: PresenceConfig,
        me: &Me,
        own: Option<OwnPresenceRecord>,
        contacts: Vec<(AccountId, PresenceRecord)>,
        now: hush_protocol::Now,
    ) -> Self {
        let me_ = PresenceSelf {
            account: me.account,
            device: me.device_id(),
            device_secret: me.device_secret,
        };
        let timing = PresenceTiming {
            ttl_ms: millis(config.ttl),
            grace_ms: millis(config.grace),
        };
        let mut book = PresenceBook::load(me_, timing, own, contacts, now);
        book.set_relays(&me.relays);
        Self {
            book,
            lookups: HashMap::new(),
            waiters: Vec::new(),
            pushes: HashMap::new(),
            puts: 0,
        }
    }

    /// Our home relays, stated in our records from the next one on.
    pub(crate) fn set_relays(&mut self, relays: &[String]) {
        self.book.set_relays(relays);
    }

    /// The account's presence seed: rotations derive from it.
    pub(crate) fn set_seed(&mut self, seed: [u8; 32]) {
        self.book.set_seed(seed);
    }

    /// What presence holds about a contact (handed to a device we link).
    pub(crate) fn record(&self, account: &AccountId) -> Option<&PresenceRecord> {
        self.book.record(account)
    }

    pub(crate) fn sharing(&self) -> bool {
        self.book.sharing()
    }

    /// A blocked contact as stored: it never gets our key or records.
    pub(crate) fn restore_blocked(&mut self, account: AccountId) {
        self.book.restore_blocked(account);
    }

    /// Addresses a contact device announced in its latest record.
    pub(crate) fn addresses_of(&self, device: &DeviceId) -> &[Multiaddr] {
        self.book.addresses_of(device)
    }
}

impl EventLoop {
    /// Does what presence asked, in order.
    pub(super) fn drive_presence(&mut self) {
        while let Some(effect) = self.presence.book.poll_effect() {
            match effect {
                PresenceEffect::Write(PresenceWrite::Own(own)) => {
                    self.batch.ops.push(Op::PutOwnPresence(own));
                }
                PresenceEffect::Write(PresenceWrite::Contact(account, record)) => {
                    self.batch.ops.push(Op::PutPresence(account, record));
                }
                PresenceEffect::Write(PresenceWrite::Forget(account)) => {
                    self.batch.ops.push(Op::DeletePresence(account));
                }
                PresenceEffect::Put {
                    locator,
                    record,
                    ttl_ms,
                } => self.put_record(locator, &record, ttl_ms),
                PresenceEffect::Push { device, record } => self.send_push(device, record),
                PresenceEffect::LookUp {
                    account,
                    device,
                    locator,
                } => {
                    if self.presence.lookups.len() >= MAX_LOOKUPS
                        || self.presence.lookups.values().any(|(_, d)| *d == device)
                    {
                        continue;
                    }
                    let key = kad::RecordKey::new(&locator);
                    let id = match self.courier() {
                        Some(courier) => LookupId::Courier(courier.get_record(key)),
                        None => LookupId::Swarm(self.swarm.behaviour_mut().kad.get_record(key)),
                    };
                    self.presence.lookups.insert(id, (account, device));
                    let now = self.host_clock.now();
                    self.presence.book.looking_up(now, device);
                }
                PresenceEffect::ShareKey { account, key } => {
                    let epoch = key.epoch();
                    let body = Body::PresenceKey(key);
                    let queued =
                        self.engine
                            .send_control(ctx!(self), &account, OutboxKind::Control, body);
                    self.drive();
                    match queued {
                        Ok(_) => self.presence.book.key_sent(&account, epoch),
                        Err(e) => tracing::warn!(error = %e, "could not queue our presence key"),
                    }
                }
                PresenceEffect::Changed {
                    account,
                    online,
                    last_seen_ms,
                } => {
                    if let Some(name) = self.engine.contacts.name_of(&account) {
                        self.events.send(Event::Presence {
                            contact: name.clone(),
                            state: state_name(online).to_owned(),
                            last_seen: (last_seen_ms > 0).then(|| rfc3339(last_seen_ms)),
                        });
                    }
                }
            }
        }
    }

    /// What our cards and records announce (`crate::addresses`): relay
    /// circuit addresses first (they work from anywhere), then announced
    /// and confirmed external ones, then what we listen on, never a
    /// loopback or private address of a wildcard listener.
    pub(super) fn advertised_addresses(&self) -> Vec<Multiaddr> {
        self.address_policy
            .shared(&self.listen_addresses, self.swarm.external_addresses())
    }

    /// Makes the direct addresses we share (announced, named in
    /// `--listen`, global) the swarm's external addresses, which is all
    /// identify reports (it hides plain listen addresses).
    pub(super) fn share_direct_addresses(&mut self) {
        for addr in self.advertised_addresses() {
            if !crate::addresses::is_circuit(&addr)
                && !self.swarm.external_addresses().any(|a| *a == addr)
            {
                self.swarm.add_external_address(addr);
            }
        }
    }

    pub(super) fn shared_address_strings(&self) -> Vec<String> {
        self.advertised_addresses()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// The contact devices we are connected to now (not group peers: they
    /// get no presence).
    fn connected_contacts(&self) -> Vec<(AccountId, DeviceId)> {
        let contacts = &self.engine.contacts;
        self.swarm
            .connected_peers()
            .filter_map(|p| contacts.device_by_peer(p))
            .filter(|(account, _)| contacts.is_contact(account))
            .map(|(account, keys)| (account, keys.device_id))
            .collect()
    }

    /// The devices of a contact we are connected to now.
    fn connected_devices(&self, account: &AccountId) -> Vec<DeviceId> {
        let devices = self.engine.contacts.devices_of(account);
        devices
            .into_iter()
            .filter(|(_, peer)| self.swarm.is_connected(peer))
            .map(|(device, _)| device)
            .collect()
    }

    /// The relays through which to find the DHT: ours and our contacts'.
    pub(super) fn dht_seeds(&self) -> Vec<(PeerId, Multiaddr)> {
        let mut relays: Vec<(PeerId, Multiaddr)> =
            self.home.iter().map(|r| (r.peer, r.addr.clone())).collect();
        for contact in self.engine.contacts.contacts() {
            relays.extend(contact.relays.iter().cloned());
        }
        relays
    }

    /// After start: find the DHT through our home relays (to publish our
    /// own record; lookups of others go from the courier, which finds it
    /// through our contacts' relays too), publish (on the first tick), and
    /// look up every contact that shares with us.
    pub(super) fn presence_start(&mut self) {
        let relays: Vec<(PeerId, Multiaddr)> =
            self.home.iter().map(|r| (r.peer, r.addr.clone())).collect();
        for (peer, addr) in relays {
            self.swarm.behaviour_mut().kad.add_address(&peer, addr);
        }
        let _ = self.swarm.behaviour_mut().kad.bootstrap();
        for account in self.engine.contacts.accounts() {
            self.presence.book.look_up(&self.engine.contacts, &account);
        }
        self.drive_presence();
    }

    /// Puts a record in the DHT under `locator`.
    fn put_record(&mut self, locator: [u8; 32], record: &SealedPresence, ttl_ms: u64) {
        let key = kad::RecordKey::new(&locator);
        let mut record = kad::Record::new(key, record.to_bytes());
        record.expires = Instant::now().checked_add(Duration::from_millis(ttl_ms));
        match self
            .swarm
            .behaviour_mut()
            .kad
            .put_record(record, kad::Quorum::One)
        {
            Ok(_) => self.presence.puts += 1,
            Err(e) => tracing::debug!(error = %e, "could not store our presence record"),
        }
    }

    /// Sends a `PresencePush` to a contact device.
    fn send_push(&mut self, device: DeviceId, record: Option<SealedPresence>) {
        let Some((account, keys)) = self.engine.contacts.of_device(&device) else {
            return;
        };
        let Some(peer) = self.engine.contacts.peer_of(&keys.device_id) else {
            return;
        };
        let addresses = self.dial_addresses(&keys.device_id);
        let id = self
            .swarm
            .behaviour_mut()
            .presence
            .send_request_with_addresses(&peer, PresencePush { record }.to_bytes(), addresses);
        self.presence.pushes.insert(id, (account, keys.device_id));
    }

    /// A contact device connected: trade records.
    pub(super) fn presence_connected(&mut self, peer: &PeerId) {
        let Some((account, keys)) = self.engine.contacts.device_by_peer(peer) else {
            return;
        };
        let (now, addresses) = (self.host_clock.now(), self.shared_address_strings());
        self.presence.book.connected(
            now,
            &self.engine.contacts,
            &account,
            keys.device_id,
            &addresses,
        );
        self.drive_presence();
    }

    /// The last connection to a contact device closed.
    pub(super) fn presence_disconnected(&mut self, peer: &PeerId) {
        let Some((account, keys)) = self.engine.contacts.device_by_peer(peer) else {
            return;
        };
        let now = self.host_clock.now();
        self.presence
            .book
            .disconnected(now, &account, &keys.device_id);
    }

    pub(super) fn on_presence(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                peer,
                message: M::Request {
                    channel, request, ..
                },
                ..
            } => self.on_presence_push(peer, &request, channel),
            E::Message {
                peer,
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                self.presence.pushes.remove(&request_id);
                if let Ok(PresencePush {
                    record: Some(record),
                }) = PresencePush::from_bytes(&response)
                    && let Some((account, keys)) = self.engine.contacts.device_by_peer(&peer)
                {
                    self.accept_presence(&account, &keys, &record);
                }
            }
            E::OutboundFailure { request_id, .. } => {
                self.presence.pushes.remove(&request_id);
            }
            E::InboundFailure { .. } | E::ResponseSent { .. } => {}
        }
    }

    fn on_presence_push(
        &mut self,
        peer: PeerId,
        request: &[u8],
        channel: ResponseChannel<Vec<u8>>,
    ) {
        let mut answer = None;
        if let Some((account, keys)) = self.engine.contacts.device_by_peer(&peer) {
            let record = PresencePush::from_bytes(request)
                .ok()
                .and_then(|push| push.record);
            let (now, addresses) = (self.host_clock.now(), self.shared_address_strings());
            let connected = self.swarm.is_connected(&peer);
            let (accepted, ours) = self.presence.book.handle_push(
                now,
                &self.engine.contacts,
                &account,
                &keys,
                record.as_ref(),
                connected,
                &addresses,
                |a| a.parse().ok(),
            );
            self.apply_accepted(peer, accepted);
            answer = ours;
        }
        // Strangers get an empty answer, the same as a contact we do not
        // share with.
        let _ = self
            .swarm
            .behaviour_mut()
            .presence
            .send_response(channel, PresencePush { record: answer }.to_bytes());
    }

    /// Applies a contact device's record; whether it was genuine.
    fn accept_presence(
        &mut self,
        account: &AccountId,
        keys: &DeviceKeys,
        sealed: &SealedPresence,
    ) -> bool {
        let Some(peer) = self.engine.contacts.peer_of(&keys.device_id) else {
            return false;
        };
        let now = self.host_clock.now();
        let connected = self.swarm.is_connected(&peer);
        let accepted = self.presence.book.accept(
            now,
            &self.engine.contacts,
            account,
            keys,
            sealed,
            connected,
            |a| a.parse().ok(),
        );
        self.apply_accepted(peer, accepted)
    }

    fn apply_accepted(&mut self, peer: PeerId, accepted: Accepted<Multiaddr>) -> bool {
        let genuine = match accepted {
            Accepted::Refused(why) => {
                tracing::debug!(%peer, ?why, "presence record refused");
                false
            }
            Accepted::Known => true,
            Accepted::Applied(addresses, relays) => {
                for addr in addresses {
                    self.swarm.add_peer_address(peer, addr);
                }
                let device = self.engine.contacts.device_by_peer(&peer);
                if let (Some(stated), Some((_, keys))) = (relays, device) {
                    self.engine
                        .take_home_relays(ctx!(self), keys.device_id, stated);
                    self.drive();
                }
                true
            }
        };
        self.drive_presence();
        genuine
    }

    pub(super) fn presence_view(&self, account: &AccountId) -> Option<PresenceView> {
        let name = self.engine.contacts.name_of(account)?.clone();
        let now = self.host_clock.now();
        let s = self
            .presence
            .book
            .summary(now, &self.engine.contacts, account);
        let last_seen_ms = (s.last_seen_ms > 0).then_some(s.last_seen_ms);
        Some(PresenceView {
            contact: name,
            state: state_name(s.online).to_owned(),
            last_seen: last_seen_ms.map(rfc3339),
            last_seen_ms,
            devices_online: s.devices_online,
            you_share: s.you_share,
        })
    }

    /// `presence NAME`: answers from what we know, after a fresh DHT lookup
    /// when asked to refresh or when the contact is not known online.
    pub(super) fn query_presence(
        &mut self,
        contact: &str,
        refresh: bool,
        reply: Reply<PresenceView>,
    ) {
        let Some(account) = self
            .engine
            .contacts
            .contact(contact)
            .map(|c| c.card.account())
        else {
            let _ = reply.send(Err(NodeError::UnknownContact {
                name: contact.to_owned(),
            }));
            return;
        };
        let online = self
            .presence_view(&account)
            .is_some_and(|v| v.state == "online");
        if (refresh || !online) && self.presence.waiters.len() < MAX_WAITERS {
            self.presence.book.look_up(&self.engine.contacts, &account);
            self.drive_presence();
            // A lookup already on its way for this contact will do too.
            if self.presence.lookups.values().any(|(a, _)| *a == account) {
                self.presence.waiters.push(Waiter {
                    reply,
                    account,
                    deadline: Instant::now() + LOOKUP_WAIT,
                });
                return;
            }
        }
        if let Some(view) = self.presence_view(&account) {
            let _ = reply.send(Ok(view));
        }
    }

    pub(super) fn on_kad(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        } = event
        else {
            return;
        };
        match result {
            kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found)))
                if self.presence_found(LookupId::Swarm(id), &found.record.value) =>
            {
                // The first genuine record will do.
                if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                    query.finish();
                }
            }
            kad::QueryResult::PutRecord(result) if step.last => {
                self.presence.puts = self.presence.puts.saturating_sub(1);
                if let Err(e) = result {
                    tracing::debug!(error = %e, "presence record reached no relay");
                }
            }
            _ => {}
        }
        if step.last {
            self.lookup_done(LookupId::Swarm(id));
        }
    }

    /// A record a lookup found: whether it is a genuine record of the
    /// device looked up (taken; the lookup may stop).
    pub(super) fn presence_found(&mut self, lookup: LookupId, value: &[u8]) -> bool {
        let Some((account, device)) = self.presence.lookups.get(&lookup).copied() else {
            return false;
        };
        let keys = self
            .engine
            .contacts
            .device(&account, &device)
            .map(|(_, k)| k);
        SealedPresence::from_bytes(value)
            .ok()
            .zip(keys)
            .is_some_and(|(sealed, keys)| self.accept_presence(&account, &keys, &sealed))
    }

    /// A lookup is over: the `presence` calls waiting for it are answered.
    pub(super) fn lookup_done(&mut self, lookup: LookupId) {
        self.presence.lookups.remove(&lookup);
        self.answer_waiters(false);
    }

    /// Answers `presence` calls whose lookups are done (or all, when
    /// `all`, or those past their deadline).
    fn answer_waiters(&mut self, all: bool) {
        let now = Instant::now();
        let waiters = std::mem::take(&mut self.presence.waiters);
        for w in waiters {
            let pending = self
                .presence
                .lookups
                .values()
                .any(|(account, _)| *account == w.account);
            if pending && !all && now < w.deadline {
                self.presence.waiters.push(w);
                continue;
            }
            match self.presence_view(&w.account) {
                Some(view) => {
                    let _ = w.reply.send(Ok(view));
                }
                None => {
                    let _ = w.reply.send(Err(NodeError::UnknownContact {
                        name: w.account.to_string(),
                    }));
                }
            }
        }
    }

    /// What presence has due (heartbeat, expiry, lookups), and waiters
    /// past their deadline.
    pub(super) fn presence_tick(&mut self) {
        let now = self.host_clock.now();
        if self.presence.book.heartbeat_due(now) {
            let (addresses, connected) = (self.shared_address_strings(), self.connected_contacts());
            self.presence.book.publish(now, &addresses, &connected);
        }
        self.presence.book.handle_tick(now, &self.engine.contacts);
        self.drive_presence();
        if !self.presence.waiters.is_empty() {
            self.answer_waiters(false);
        }
    }

    /// Graceful stop: an offline record to connected contacts and the DHT.
    /// Returns once they answered or after `wait`.
    pub(super) async fn presence_goodbye(&mut self, wait: Duration) {
        use futures::StreamExt;
        let now = self.host_clock.now();
        let (addresses, connected) = (self.shared_address_strings(), self.connected_contacts());
        let announced =
            self.presence
                .book
                .announce(now, PresenceState::Offline, &addresses, &connected);
        self.drive_presence();
        if !announced {
            return;
        }
        let deadline = tokio::time::Instant::now() + wait;
        while !self.presence.pushes.is_empty() || self.presence.puts > 0 {
            match tokio::time::timeout_at(deadline, self.swarm.select_next_some()).await {
                Ok(event) => self.on_swarm_event(event),
                Err(_) => break,
            }
        }
        self.answer_waiters(true);
    }

    /// A contact sent its presence key.
    pub(super) fn on_presence_key(
        &mut self,
        account: &AccountId,
        key: &hush_protocol::PresenceKey,
    ) {
        let now = self.host_clock.now();
        let (connected, addresses) = (
            self.connected_devices(account),
            self.shared_address_strings(),
        );
        self.presence.book.handle_key(
            now,
            &self.engine.contacts,
            account,
            key,
            &connected,
            &addresses,
        );
        self.drive_presence();
    }

    /// Sends our current key to a contact we share with, if it lacks it.
    pub(super) fn share_key_with(&mut self, account: &AccountId) {
        self.presence.book.share_key_with(account);
        self.drive_presence();
    }

    /// Runs a change of who shares our presence with what it needs to
    /// know, then does what presence asked.
    pub(super) fn presence_change(
        &mut self,
        all: &[AccountId],
        change: impl FnOnce(
            &mut hush_protocol::device::PresenceBook<libp2p::Multiaddr>,
            hush_protocol::Now,
            &World<'_>,
        ),
    ) {
        let connected: HashMap<AccountId, Vec<DeviceId>> = all
            .iter()
            .map(|a| (*a, self.connected_devices(a)))
            .collect();
        let connected_of = move |a: &AccountId| connected.get(a).cloned().unwrap_or_default();
        let (addresses, contacts) = (self.shared_address_strings(), self.connected_contacts());
        let world = World {
            all,
            connected_of: &connected_of,
            addresses: &addresses,
            connected: &contacts,
        };
        change(&mut self.presence.book, self.host_clock.now(), &world);
        self.drive_presence();
    }

    /// Switches sharing for one contact (`Some(name)`) or for everyone.
    pub(super) fn set_presence_sharing(
        &mut self,
        contact: Option<&str>,
        on: bool,
        reply: Reply<Option<PresenceView>>,
    ) {
        let account = match contact {
            Some(name) => match self.engine.contacts.contact(name) {
                Some(c) => Some(c.card.account()),
                None => {
                    let _ = reply.send(Err(NodeError::UnknownContact {
                        name: name.to_owned(),
                    }));
                    return;
                }
            },
            None => None,
        };
        self.share_presence(account, on, reply);
    }

    /// Switches sharing for the contact `account` or for everyone, and
    /// tells our other devices (unless they told us): each rotates to the
    /// same key (derived from the account's presence seed), so a contact
    /// cut off on one device is cut off on all.
    pub(super) fn share_presence(
        &mut self,
        account: Option<AccountId>,
        on: bool,
        reply: Reply<Option<PresenceView>>,
    ) {
        if account.is_some_and(|a| !self.engine.contacts.is_contact(&a)) {
            let _ = reply.send(Ok(None));
            return;
        }
        let all = self.engine.contacts.accounts();
        self.presence_change(&all, |book, now, world| {
            book.set_sharing(
                now,
                account,
                on,
                world.all,
                world.connected_of,
                world.addresses,
                world.connected,
            );
        });
        if !self.applying_own_change {
            let item = hush_protocol::SyncItem::Presence {
                with: account,
                share: on,
            };
            self.engine.tell_own_devices(ctx!(self), item);
            self.drive();
        }
        let view = account.and_then(|a| self.presence_view(&a));
        self.batch.after.push(After::ReplyPresence(reply, view));
    }
}

const fn state_name(online: bool) -> &'static str {
    if online { "online" } else { "offline" }
}

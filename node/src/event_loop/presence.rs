//! Presence: our record in the DHT and pushed to online contacts, and what
//! we know of each contact's devices.
//!
//! Publishing: every heartbeat (half the TTL, at most a minute) the node
//! puts a fresh online record under its locator and pushes it to the contact
//! devices it is connected to; on graceful stop it pushes and puts an
//! offline one. Contacts learn a device is online from such a record (never
//! from a bare connection), and it stays online while connected, or until
//! the record expires. When the connection drops without an offline record,
//! the device stays online for the grace period, so a short disconnect does
//! not flap; then it is offline, last seen at the drop.
//!
//! Privacy: a contact gets our presence key only while we share with it and
//! the global switch is on. Switching either off rotates the key, shares the
//! new one with those still allowed, and overwrites the old locator with a
//! "never seen" record.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hush_protocol::device::{PresenceTiming, PresenceWatch, Sighting};
use hush_protocol::{
    AccountId, Body, DeviceId, DeviceKeys, MAX_PRESENCE_ADDRESSES, Presence, PresenceKey,
    PresencePush, PresenceState, SealedPresence, Wire,
};
use libp2p::request_response::{self, OutboundRequestId, ResponseChannel};
use libp2p::{Multiaddr, PeerId, kad};

use super::{After, EventLoop, millis};
use crate::error::NodeError;
use crate::node::{Reply, now_ms};
use crate::records::{OutboxKind, OwnPresenceRecord, PresenceRecord};
use crate::store::Op;
use crate::view::{Event, PresenceView, rfc3339};

/// The heartbeat is half the TTL, but at least this often, so connections
/// to online contacts never sit idle long enough to be closed.
const MAX_HEARTBEAT: Duration = Duration::from_secs(60);
/// A contact device gets our record on (re)connection at most this often.
const PUSH_INTERVAL: Duration = Duration::from_secs(1);
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

pub(crate) struct PresenceBook {
    config: PresenceConfig,
    own: OwnPresenceRecord,
    key: PresenceKey,
    contacts: HashMap<AccountId, PresenceRecord>,
    /// Each contact device's presence (the engine part: grace, expiry).
    watch: PresenceWatch<Multiaddr>,
    next_heartbeat: Instant,
    lookups: HashMap<kad::QueryId, (AccountId, DeviceId)>,
    waiters: Vec<Waiter>,
    pushed: HashMap<DeviceId, Instant>,
    pushes: HashMap<OutboundRequestId, (AccountId, DeviceId)>,
    puts: usize,
}

impl PresenceBook {
    pub(crate) fn load(
        config: PresenceConfig,
        own: Option<OwnPresenceRecord>,
        contacts: Vec<(AccountId, PresenceRecord)>,
    ) -> (Self, Option<Op>) {
        let (own, op) = match own {
            Some(own) => (own, None),
            None => {
                let key = PresenceKey::generate(1);
                let own = OwnPresenceRecord {
                    share: true,
                    epoch: key.epoch(),
                    key: *key.secret(),
                };
                (own.clone(), Some(Op::PutOwnPresence(own)))
            }
        };
        let key = PresenceKey::from_parts(own.epoch, own.key);
        let book = Self {
            config,
            own,
            key,
            contacts: contacts.into_iter().collect(),
            watch: PresenceWatch::new(PresenceTiming {
                ttl_ms: millis(config.ttl),
                grace_ms: millis(config.grace),
            }),
            next_heartbeat: Instant::now(),
            lookups: HashMap::new(),
            waiters: Vec::new(),
            pushed: HashMap::new(),
            pushes: HashMap::new(),
            puts: 0,
        };
        (book, op)
    }

    fn heartbeat(&self) -> Duration {
        (self.config.ttl / 2).min(MAX_HEARTBEAT)
    }

    pub(crate) fn sharing(&self) -> bool {
        self.own.share
    }

    /// Addresses a contact device announced in its latest record.
    pub(crate) fn addresses_of(&self, device: &DeviceId) -> &[Multiaddr] {
        self.watch.addresses_of(device)
    }

    fn shares_with(&self, account: &AccountId) -> bool {
        self.own.share && self.contacts.get(account).is_none_or(|c| c.share)
    }

    fn their_key(&self, account: &AccountId) -> Option<PresenceKey> {
        let (epoch, key) = self.contacts.get(account)?.their_key?;
        Some(PresenceKey::from_parts(epoch, key))
    }
}

impl EventLoop {
    /// Our record as of now, or None while the global switch is off.
    fn own_record(&self, state: PresenceState) -> Option<SealedPresence> {
        if !self.presence.own.share {
            return None;
        }
        Some(self.seal_record(state, &self.presence.key.clone(), true))
    }

    /// Our record now; `seen` false makes a "never seen, no addresses"
    /// record (to retire a key).
    fn seal_record(&self, state: PresenceState, key: &PresenceKey, seen: bool) -> SealedPresence {
        let now = now_ms();
        let ttl = u64::try_from(self.presence.config.ttl.as_millis()).unwrap_or(u64::MAX);
        let addresses = self
            .advertised_addresses()
            .into_iter()
            .filter(|_| seen)
            .take(MAX_PRESENCE_ADDRESSES)
            .map(|a| a.to_string())
            .collect();
        let presence = Presence {
            account: self.me.account,
            device: self.me.device_id(),
            state,
            issued_at_ms: now,
            expires_at_ms: now.saturating_add(ttl),
            last_seen_ms: if seen { now } else { 0 },
            addresses,
        };
        presence.seal(&self.me.device_secret, key)
    }

    /// Relay circuit addresses first (they work from anywhere), then
    /// confirmed external ones, then what we listen on.
    pub(super) fn advertised_addresses(&self) -> Vec<Multiaddr> {
        let mut out: Vec<Multiaddr> = Vec::new();
        let circuits = self
            .listen_addresses
            .iter()
            .filter(|a| is_circuit(a))
            .cloned();
        let external = self.swarm.external_addresses().cloned();
        let direct = self
            .listen_addresses
            .iter()
            .filter(|a| !is_circuit(a))
            .cloned();
        for a in circuits.chain(external).chain(direct) {
            if !out.contains(&a) {
                out.push(a);
            }
        }
        out
    }

    /// After start: find the DHT through our relays and our contacts',
    /// publish, and look up every contact that shares with us.
    pub(super) fn presence_start(&mut self) {
        let mut relays: Vec<(PeerId, Multiaddr)> =
            self.home.iter().map(|r| (r.peer, r.addr.clone())).collect();
        for contact in self.engine.contacts.contacts() {
            relays.extend(contact.relays.iter().cloned());
        }
        for (peer, addr) in relays {
            self.swarm.behaviour_mut().kad.add_address(&peer, addr);
        }
        let _ = self.swarm.behaviour_mut().kad.bootstrap();
        self.presence.next_heartbeat = Instant::now();
        let accounts: Vec<AccountId> = self.engine.contacts.accounts();
        for account in accounts {
            self.look_up(&account);
        }
    }

    /// Starts a DHT lookup for each device of a contact that shares with us.
    fn look_up(&mut self, account: &AccountId) -> usize {
        let Some(key) = self.presence.their_key(account) else {
            return 0;
        };
        let devices: Vec<DeviceId> = self
            .engine
            .contacts
            .known(account)
            .map(|c| {
                c.card
                    .device_list
                    .devices
                    .iter()
                    .map(|d| d.device_id)
                    .collect()
            })
            .unwrap_or_default();
        let mut started = 0;
        for device in devices {
            if self.presence.lookups.len() >= MAX_LOOKUPS
                || self.presence.lookups.values().any(|(_, d)| *d == device)
            {
                continue;
            }
            let locator = kad::RecordKey::new(&key.locator(&device));
            let id = self.swarm.behaviour_mut().kad.get_record(locator);
            self.presence.lookups.insert(id, (*account, device));
            self.presence.watch.looked_up(self.host_clock.now(), device);
            started += 1;
        }
        started
    }

    /// Puts our record in the DHT under `key`'s locator.
    fn put_record(&mut self, record: &SealedPresence, key: &PresenceKey) {
        let locator = kad::RecordKey::new(&key.locator(&self.me.device_id()));
        let expires = Instant::now() + self.presence.config.ttl;
        let mut record = kad::Record::new(locator, record.to_bytes());
        record.expires = Some(expires);
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

    /// Heartbeat: a fresh record in the DHT and to every connected contact
    /// device we share with.
    fn publish(&mut self) {
        self.presence.next_heartbeat = Instant::now() + self.presence.heartbeat();
        self.announce(PresenceState::Online);
    }

    /// Puts our record for `state` in the DHT and pushes it to every
    /// connected contact device; false while sharing is off.
    fn announce(&mut self, state: PresenceState) -> bool {
        let Some(record) = self.own_record(state) else {
            return false;
        };
        let key = self.presence.key.clone();
        self.put_record(&record, &key);
        let peers: Vec<PeerId> = self
            .swarm
            .connected_peers()
            .filter(|p| self.engine.contacts.is_known_peer(p))
            .copied()
            .collect();
        for peer in peers {
            self.push_to(peer, Some(record.clone()), true);
        }
        true
    }

    /// Sends `record` (ours, or nothing, to ask for theirs) to a contact
    /// device, unless we do not share with it; `force` skips the rate limit.
    fn push_to(&mut self, peer: PeerId, record: Option<SealedPresence>, force: bool) {
        let Some((account, keys)) = self.engine.contacts.device_by_peer(&peer) else {
            return;
        };
        let record = record.filter(|_| self.presence.shares_with(&account));
        let wants_theirs = self.presence.their_key(&account).is_some();
        if record.is_none() && !wants_theirs {
            return;
        }
        let now = Instant::now();
        if !force
            && self
                .presence
                .pushed
                .get(&keys.device_id)
                .is_some_and(|at| now.duration_since(*at) < PUSH_INTERVAL)
        {
            return;
        }
        self.presence.pushed.insert(keys.device_id, now);
        self.send_push(peer, record);
    }

    /// Sends a `PresencePush` to a contact device, whatever the sharing
    /// settings (callers decide).
    fn send_push(&mut self, peer: PeerId, record: Option<SealedPresence>) {
        let Some((account, keys)) = self.engine.contacts.device_by_peer(&peer) else {
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

    /// The devices of a contact we are connected to now.
    fn connected_devices(&self, account: &AccountId) -> Vec<PeerId> {
        self.engine
            .contacts
            .known(account)
            .map(|c| {
                c.card
                    .device_list
                    .devices
                    .iter()
                    .filter_map(|d| self.engine.contacts.peer_of(&d.device_id))
                    .filter(|p| self.swarm.is_connected(p))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A contact device connected: trade records (theirs tells us it is
    /// online; ours tells it we are).
    pub(super) fn presence_connected(&mut self, peer: &PeerId) {
        let Some((_, keys)) = self.engine.contacts.device_by_peer(peer) else {
            return;
        };
        self.presence.watch.connected(&keys.device_id);
        let record = self.own_record(PresenceState::Online);
        self.push_to(*peer, record, false);
    }

    /// The last connection to a contact device closed: unless it said
    /// goodbye, it stays online for the grace period.
    pub(super) fn presence_disconnected(&mut self, peer: &PeerId) {
        let Some((account, keys)) = self.engine.contacts.device_by_peer(peer) else {
            return;
        };
        let now = self.host_clock.now();
        if self.presence.watch.disconnected(now, &keys.device_id)
            && let Some(c) = self.presence.contacts.get_mut(&account)
        {
            c.last_seen_ms = now.unix_ms;
        }
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
        let contact = self.engine.contacts.device_by_peer(&peer);
        let mut answer = None;
        if let Some((account, keys)) = contact {
            if let Ok(PresencePush {
                record: Some(record),
            }) = PresencePush::from_bytes(request)
            {
                self.accept_presence(&account, &keys, &record);
            }
            if self.presence.shares_with(&account) {
                answer = self.own_record(PresenceState::Online);
                self.presence.pushed.insert(keys.device_id, Instant::now());
            }
        }
        // Strangers get an empty answer, the same as a contact we do not
        // share with.
        let _ = self
            .swarm
            .behaviour_mut()
            .presence
            .send_response(channel, PresencePush { record: answer }.to_bytes());
    }

    /// Opens and applies a contact device's record if it is genuine, newer
    /// than the last one, and for that device. Returns whether it was.
    fn accept_presence(
        &mut self,
        account: &AccountId,
        keys: &DeviceKeys,
        sealed: &SealedPresence,
    ) -> bool {
        let Some(key) = self.presence.their_key(account) else {
            return false;
        };
        let presence = match sealed.open(&key, now_ms()) {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(error = %e, "presence record refused");
                return false;
            }
        };
        if presence.account != *account || presence.device != keys.device_id {
            tracing::debug!("presence record of another device refused");
            return false;
        }
        let before = self.contact_presence(account);
        let peer = self.engine.contacts.peer_of(&keys.device_id);
        let connected = peer.is_some_and(|p| self.swarm.is_connected(&p));
        let addresses: Vec<Multiaddr> = presence
            .addresses
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        let now = self.host_clock.now();
        match self
            .presence
            .watch
            .accept(now, &presence, addresses.clone(), connected)
        {
            Sighting::Replay => return false,
            Sighting::Known => return true,
            Sighting::Applied => {}
        }
        if let Some(peer) = peer {
            for addr in addresses {
                self.swarm.add_peer_address(peer, addr);
            }
        }
        let record = self.presence.contacts.entry(*account).or_default();
        let seen = match presence.state {
            PresenceState::Online => now_ms(),
            PresenceState::Offline => presence.last_seen_ms,
        };
        record.last_seen_ms = record.last_seen_ms.max(seen);
        self.presence_changed(account, before);
        true
    }

    /// Emits an event (and stores last seen) if the contact's aggregate
    /// state differs from `before`.
    fn presence_changed(&mut self, account: &AccountId, before: (bool, usize)) {
        let after = self.contact_presence(account);
        if after.0 == before.0 {
            return;
        }
        let Some(name) = self.engine.contacts.name_of(account).cloned() else {
            return;
        };
        let record = self.presence.contacts.entry(*account).or_default();
        if after.0 {
            record.last_seen_ms = record.last_seen_ms.max(now_ms());
        }
        let last_seen = (record.last_seen_ms > 0).then(|| rfc3339(record.last_seen_ms));
        self.batch
            .ops
            .push(Op::PutPresence(*account, record.clone()));
        let _ = self.events.send(Event::Presence {
            contact: name,
            state: state_name(after.0).to_owned(),
            last_seen,
        });
    }

    /// (online, devices online) of a contact.
    fn contact_presence(&self, account: &AccountId) -> (bool, usize) {
        let online = self
            .engine
            .contacts
            .known(account)
            .map(|c| {
                c.card
                    .device_list
                    .devices
                    .iter()
                    .filter(|d| self.presence.watch.is_online(&d.device_id))
                    .count()
            })
            .unwrap_or(0);
        (online > 0, online)
    }

    pub(super) fn presence_view(&self, account: &AccountId) -> Option<PresenceView> {
        let name = self.engine.contacts.name_of(account)?.clone();
        let (online, devices_online) = self.contact_presence(account);
        let last_seen_ms = if online {
            Some(now_ms())
        } else {
            self.presence
                .contacts
                .get(account)
                .map(|c| c.last_seen_ms)
                .filter(|ms| *ms > 0)
        };
        Some(PresenceView {
            contact: name,
            state: state_name(online).to_owned(),
            last_seen: last_seen_ms.map(rfc3339),
            last_seen_ms,
            devices_online,
            you_share: self.presence.shares_with(account),
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
        let online = self.contact_presence(&account).0;
        // A lookup already on its way for this contact will do too.
        if (refresh || !online)
            && self.presence.waiters.len() < MAX_WAITERS
            && (self.look_up(&account) > 0
                || self.presence.lookups.values().any(|(a, _)| *a == account))
        {
            self.presence.waiters.push(Waiter {
                reply,
                account,
                deadline: Instant::now() + LOOKUP_WAIT,
            });
            return;
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
            kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                let Some((account, device)) = self.presence.lookups.get(&id).copied() else {
                    return;
                };
                let accepted = SealedPresence::from_bytes(&found.record.value)
                    .ok()
                    .zip(
                        self.engine
                            .contacts
                            .device(&account, &device)
                            .map(|(_, k)| k),
                    )
                    .is_some_and(|(sealed, keys)| self.accept_presence(&account, &keys, &sealed));
                if accepted {
                    // The first genuine record will do.
                    if let Some(mut query) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                        query.finish();
                    }
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
            self.presence.lookups.remove(&id);
            self.answer_waiters(false);
        }
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

    /// Heartbeat, expiry of contacts' records and grace periods, lookups of
    /// contacts about to expire, waiters past their deadline.
    pub(super) fn presence_tick(&mut self) {
        let now = Instant::now();
        if now >= self.presence.next_heartbeat {
            self.publish();
        }
        let clock = self.host_clock.now();
        // Grouped by contact: its state changes once, when its last online
        // device goes.
        let mut gone: HashMap<AccountId, usize> = HashMap::new();
        for device in self.presence.watch.expire(clock) {
            match self.engine.contacts.of_device(&device) {
                Some((account, _)) => *gone.entry(account).or_default() += 1,
                None => self.presence.watch.forget(&device),
            }
        }
        for (account, n) in gone {
            let (_, still) = self.contact_presence(&account);
            self.presence_changed(&account, (true, still + n));
        }
        for device in self.presence.watch.to_refresh(clock) {
            if let Some((account, _)) = self.engine.contacts.of_device(&device) {
                self.look_up(&account);
            }
        }
        if !self.presence.waiters.is_empty() {
            self.answer_waiters(false);
        }
    }

    /// Graceful stop: an offline record to connected contacts and the DHT.
    /// Returns once they answered or after `wait`.
    pub(super) async fn presence_goodbye(&mut self, wait: Duration) {
        use futures::StreamExt;
        if !self.announce(PresenceState::Offline) {
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

    /// A contact sent its presence key: keep the newest, then look it up.
    pub(super) fn on_presence_key(&mut self, account: &AccountId, key: &PresenceKey) {
        let record = self.presence.contacts.entry(*account).or_default();
        if record
            .their_key
            .is_some_and(|(epoch, _)| epoch >= key.epoch())
        {
            return;
        }
        record.their_key = Some((key.epoch(), *key.secret()));
        self.batch
            .ops
            .push(Op::PutPresence(*account, record.clone()));
        self.look_up(account);
        // If it is connected, ask it directly too.
        for peer in self.connected_devices(account) {
            let record = self.own_record(PresenceState::Online);
            self.push_to(peer, record, true);
        }
    }

    /// Sends our current key to a contact we share with, if it lacks it.
    pub(super) fn share_key_with(&mut self, account: &AccountId) {
        if !self.presence.shares_with(account) {
            return;
        }
        let epoch = self.presence.key.epoch();
        let record = self.presence.contacts.entry(*account).or_default();
        if record.shared_epoch >= epoch {
            return;
        }
        let body = Body::PresenceKey(self.presence.key.clone());
        let queued = self
            .engine
            .send_control(ctx!(self), account, OutboxKind::Control, body);
        self.drive();
        match queued {
            Ok(_) => {
                let record = self.presence.contacts.entry(*account).or_default();
                record.shared_epoch = epoch;
                self.batch
                    .ops
                    .push(Op::PutPresence(*account, record.clone()));
            }
            Err(e) => tracing::warn!(error = %e, "could not queue our presence key"),
        }
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
        let was_shared: Vec<AccountId> = self
            .engine
            .contacts
            .accounts()
            .into_iter()
            .filter(|a| self.presence.shares_with(a))
            .collect();
        match account {
            Some(account) => {
                let record = self.presence.contacts.entry(account).or_default();
                record.share = on;
                self.batch
                    .ops
                    .push(Op::PutPresence(account, record.clone()));
            }
            None => self.presence.own.share = on,
        }
        let lost: Vec<AccountId> = was_shared
            .into_iter()
            .filter(|a| !self.presence.shares_with(a))
            .collect();
        if !lost.is_empty() {
            self.rotate_presence_key(&lost);
        }
        self.batch
            .ops
            .push(Op::PutOwnPresence(self.presence.own.clone()));
        let accounts: Vec<AccountId> = self.engine.contacts.accounts();
        for account in &accounts {
            self.share_key_with(account);
        }
        if on {
            self.publish();
        }
        let view = account.and_then(|a| self.presence_view(&a));
        self.batch.after.push(After::ReplyPresence(reply, view));
    }

    /// Someone lost access: retire the key. The old locator gets a "never
    /// seen" record, those who lost access are told we are offline (with
    /// the old key, the last one they can read), and everyone still allowed
    /// gets the new key.
    fn rotate_presence_key(&mut self, lost: &[AccountId]) {
        let old = self.presence.key.clone();
        let tombstone = self.seal_record(PresenceState::Offline, &old, false);
        self.put_record(&tombstone, &old);
        for account in lost {
            for peer in self.connected_devices(account) {
                // Sent even though we no longer share with them: it is the
                // old key's last word.
                self.send_push(peer, Some(tombstone.clone()));
            }
        }
        let key = old.rotate();
        self.presence.own.epoch = key.epoch();
        self.presence.own.key = *key.secret();
        self.presence.key = key;
    }
}

fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter()
        .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2pCircuit))
}

const fn state_name(online: bool) -> &'static str {
    if online { "online" } else { "offline" }
}

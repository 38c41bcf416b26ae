//! The node's side of relays: draining our own mailboxes, keeping our
//! one-time keys stocked there, and leaving mail at a contact's relays when
//! the contact's device cannot be reached.
//!
//! ```text
//!  our home relay:   Info ─▶ Batch Fetch(after=cursor) ─▶ items ─▶ store ─▶ Ack
//!                                ▲  (polled at random points: drain.rs) │
//!                                └──────────────────────────────────────┘
//!  contact's relays: Deposit(sealed envelopes, in order) ─▶ `sent`
//!                    ClaimKey(device) ─▶ KeyBundle ─▶ new Olm session
//! ```
//!
//! Envelopes left at relays stay in the outbox (as `sent`) until the
//! device acks them directly or sends a delivered receipt: if it comes
//! online before draining its mailbox, the direct path resends them in
//! order, so Olm never sees a later message long before an earlier one.

use std::sync::Arc;
use std::time::Duration;

use hush_protocol::Now;
use hush_protocol::device::{HomeMailbox, fallback_due};
use hush_protocol::{
    Auth, DeviceId, DeviceList, KeyBundle, MailboxRequest, MailboxResponse, OwnerRequest, Wire,
};
use libp2p::request_response;
use libp2p::{Multiaddr, PeerId};

use super::drain::{FetchSet, SentSet};
use super::{After, EventLoop, millis};
use crate::network::peer_in;

use crate::store::{Op, OutboxKey};
use crate::view::RelayView;

/// One-time keys uploaded at a time, when a home relay runs low (below
/// `hush_protocol::device::KEYS_LOW`).
const KEYS_UPLOAD: usize = 20;
/// One of our home relays, and where its drain loop stands (a device
/// engine part, `HomeMailbox`).
#[derive(Debug)]
pub(super) struct HomeRelay {
    pub(super) peer: PeerId,
    pub(super) addr: Multiaddr,
    pub(super) mailbox: HomeMailbox,
    /// The pairwise mailboxes its batches name, and where read mail lives.
    pub(super) set: FetchSet,
    /// Replaced after it stopped answering (`failover.rs`): still read, in
    /// case it comes back with mail, but named nowhere.
    pub(super) retired: bool,
    /// Retired and read to the end: not read again.
    pub(super) spent: bool,
    /// Since when (mono ms) it has answered no challenge or fetch; `None`
    /// while it answers.
    pub(super) unanswered_since: Option<u64>,
    /// Our push registration there (`push.rs`).
    pub(super) push: super::push::PushSlot,
}

impl HomeRelay {
    pub(super) fn new(peer: PeerId, addr: Multiaddr, now: Now, poll: Duration) -> Self {
        Self {
            peer,
            addr,
            mailbox: HomeMailbox::new(now, millis(poll))
                .with_jitter_seed(rand::random())
                .polling(),
            set: FetchSet::default(),
            retired: false,
            spent: false,
            unanswered_since: None,
            push: super::push::PushSlot::default(),
        }
    }

    /// Each address that parses and names its relay, in order.
    pub(super) fn parse_all(addrs: &[String], now: Now, poll: Duration) -> Vec<Self> {
        addrs
            .iter()
            .filter_map(|a| {
                let addr: Multiaddr = a.parse().ok()?;
                Some(Self::new(peer_in(&addr)?, addr, now, poll))
            })
            .collect()
    }

    /// It answered a challenge or a fetch.
    pub(super) fn answered(&mut self) {
        self.unanswered_since = None;
    }

    /// A challenge or fetch failed at `now_ms`.
    fn unanswered(&mut self, now_ms: u64) {
        self.unanswered_since.get_or_insert(now_ms);
    }
}

/// What a `/hush/mailbox/1` request was for.
#[derive(Debug)]
pub(super) enum MailRequest {
    Info(usize),
    /// A batch fetch, with the key set it named.
    Fetch(usize, Arc<SentSet>),
    Ack(usize),
    PutKeys(usize),
    /// The revoked holders sent (see `HomeMailbox::revocation_due`).
    Revoke(usize, Vec<[u8; 16]>),
    /// Our account revoked devices: their mailboxes go.
    DropRevoked(usize),
    /// Our push registration (`push.rs`), with the token it carried.
    SetPush(usize, Option<[u8; 16]>),
    Deposit {
        relay: PeerId,
        device: DeviceId,
        keys: Vec<OutboxKey>,
    },
    Claim {
        relay: PeerId,
        device: DeviceId,
    },
}

impl MailRequest {
    /// The home relay slot the request went to (none: someone else's relay).
    fn home_slot(&self) -> Option<usize> {
        match self {
            Self::Info(i)
            | Self::Fetch(i, _)
            | Self::Ack(i)
            | Self::PutKeys(i)
            | Self::Revoke(i, _)
            | Self::DropRevoked(i)
            | Self::SetPush(i, _) => Some(*i),
            Self::Deposit { .. } | Self::Claim { .. } => None,
        }
    }
}

impl EventLoop {
    /// Our home relays now (not the retired ones still read).
    pub(super) fn active_relays(&self) -> Vec<PeerId> {
        self.home
            .iter()
            .filter(|r| !r.retired)
            .map(|r| r.peer)
            .collect()
    }

    pub(super) fn relay_views(&self) -> Vec<RelayView> {
        let now = self.host_clock.now();
        self.home
            .iter()
            .filter(|r| !r.spent)
            .map(|r| RelayView {
                address: r.addr.to_string(),
                chosen: if r.retired {
                    "retired"
                } else if self.me.relays_found {
                    "dht"
                } else {
                    "pinned"
                }
                .to_owned(),
                unanswered_secs: r
                    .unanswered_since
                    .map(|since| now.mono_ms.saturating_sub(since) / 1000),
                connected: r.mailbox.is_connected(),
                push: self.push_endpoint.is_some().then(|| r.push.describe()),
                keys_left: r.mailbox.keys_left(),
                last_error: r.mailbox.last_error().map(str::to_owned),
            })
            .collect()
    }

    pub(super) fn relay_connected(&mut self, peer: &PeerId, connected: bool) {
        let now = self.host_clock.now();
        for relay in self.home.iter_mut().filter(|r| r.peer == *peer) {
            relay.mailbox.set_connected(now, connected);
        }
    }

    /// Reads every mailbox again from the start (mail we could not place
    /// before, e.g. from someone just added as a contact, is still there).
    pub(super) fn reread_mail(&mut self) {
        let now = self.host_clock.now();
        for relay in &mut self.home {
            relay.mailbox.reread(now);
        }
    }

    /// Starts the drain loop of each home relay that is due, and replaces
    /// one that stopped answering (`failover.rs`).
    pub(super) fn relay_tick(&mut self) {
        self.failover_tick();
        self.push_tick();
        let now = self.host_clock.now();
        for i in 0..self.home.len() {
            if self.home[i].spent {
                continue;
            }
            if let Some(step) = self.home[i].mailbox.poll(now) {
                self.drain_step(i, step);
            }
            if let Some(holders) = self.home[i].mailbox.revocation_due(now) {
                let request = OwnerRequest::Revoke {
                    holders: holders.clone(),
                };
                match self.signed(i, request) {
                    Some(request) => {
                        self.home_request(i, request, MailRequest::Revoke(i, holders));
                    }
                    None => self.home[i]
                        .mailbox
                        .revoke_failed(now, "could not sign a revocation".into()),
                }
            }
        }
    }

    /// Our account revoked the devices `old` lists and `new` does not: our
    /// home relays (theirs too: the account's devices share them) drop
    /// their mailboxes and hosted keys, and refuse them from now on. The
    /// pair is stored, so a relay that cannot be reached now is asked
    /// again when it next answers, and at every start.
    pub(super) fn drop_revoked_mailboxes(&mut self, old: &DeviceList, new: &DeviceList) {
        if let Err(e) = self
            .store
            .add_revocation_lists(old.to_bytes(), new.to_bytes())
        {
            tracing::warn!(error = %e, "could not store the revocation for the relays");
        }
        for i in 0..self.home.len() {
            self.send_drops(i);
        }
    }

    /// Sends every stored revocation to home relay `i` (the relay drops
    /// what it has not yet; the rest it answers as done).
    pub(super) fn send_drops(&mut self, i: usize) {
        let pairs = match self.store.revocation_lists() {
            Ok(pairs) => pairs,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the stored revocations");
                return;
            }
        };
        for (old, new) in pairs {
            let (Ok(old), Ok(new)) = (DeviceList::from_bytes(&old), DeviceList::from_bytes(&new))
            else {
                continue;
            };
            let request = MailboxRequest::DropRevoked {
                old: Box::new(old),
                new: Box::new(new),
            };
            self.home_request(i, request, MailRequest::DropRevoked(i));
        }
    }

    /// Our home relays refuse the deposit rights of blocked contacts.
    pub(super) fn want_revoked(&mut self) {
        let holders = self.engine.revoked_holders();
        for relay in &mut self.home {
            relay.mailbox.want_revoked(holders.clone());
        }
    }

    /// A deposit or key claim at a contact's relay: over the courier's
    /// short-lived identity (the relay cannot tell it is ours), or from
    /// the swarm if there is no courier.
    pub(super) fn ask_other_relay(
        &mut self,
        relay: PeerId,
        addr: libp2p::Multiaddr,
        request: Vec<u8>,
        kind: MailRequest,
    ) {
        match self.courier() {
            Some(courier) => courier.send(relay, addr, request, kind),
            None => {
                let id = self
                    .swarm
                    .behaviour_mut()
                    .mailbox
                    .send_request_with_addresses(&relay, request, vec![addr]);
                self.mail_requests.insert(id, kind);
            }
        }
    }

    /// The courier, made now if there is none (with the relays we know as
    /// its way into the DHT).
    pub(super) fn courier(&mut self) -> Option<&mut crate::courier::Courier<MailRequest>> {
        if self.courier.is_none() {
            let seeds = self.dht_seeds();
            self.courier = super::new_courier(&seeds);
        }
        self.courier.as_mut()
    }

    /// What the courier brought: a relay's answer, or what a presence
    /// lookup found.
    pub(super) fn on_courier_event(&mut self, event: crate::courier::CourierEvent<MailRequest>) {
        use crate::courier::CourierEvent;
        match event {
            CourierEvent::Answer(kind, answer) => {
                let answer = answer.and_then(|bytes| {
                    MailboxResponse::from_bytes(&bytes)
                        .map_err(|e| format!("the relay's answer could not be decoded: {e}"))
                });
                self.on_mail_answer(kind, answer);
            }
            CourierEvent::Found(id, value) => {
                let lookup = super::presence::LookupId::Courier(id);
                if self.presence_found(lookup, &value)
                    && let Some(courier) = self.courier.as_mut()
                {
                    courier.finish(&id);
                }
            }
            CourierEvent::LookupDone(id) => {
                self.lookup_done(super::presence::LookupId::Courier(id));
            }
            // The loop's courier asks for no closest peers (discovery
            // runs before the loop starts).
            CourierEvent::Closest(..) => {}
        }
    }

    pub(super) fn home_request(&mut self, i: usize, request: MailboxRequest, kind: MailRequest) {
        let Some(relay) = self.home.get(i) else {
            return;
        };
        let (peer, addr) = (relay.peer, relay.addr.clone());
        let id = self
            .swarm
            .behaviour_mut()
            .mailbox
            .send_request_with_addresses(&peer, request.to_bytes(), vec![addr]);
        self.mail_requests.insert(id, kind);
    }

    /// Signs an owner request over the relay's current challenge.
    pub(super) fn signed(&self, i: usize, request: OwnerRequest) -> Option<MailboxRequest> {
        let challenge = self.home.get(i)?.mailbox.challenge()?;
        let signed = Auth::signed_bytes(&challenge, &request.body_bytes());
        let signature = self.me.keypair.sign(&signed).ok()?;
        let auth = Auth {
            device: self.me.device_id(),
            challenge,
            signature: signature.try_into().ok()?,
        };
        Some(MailboxRequest::Owner {
            auth: Box::new(auth),
            request,
        })
    }

    pub(super) fn upload_keys(&mut self, i: usize, request: OwnerRequest) {
        match self.signed(i, request) {
            Some(request) => self.home_request(i, request, MailRequest::PutKeys(i)),
            None => self.upload_failed(i),
        }
    }

    pub(super) fn upload_failed(&mut self, i: usize) {
        if let Some(relay) = self.home.get_mut(i) {
            relay.mailbox.upload_failed(None);
        }
    }

    /// Mints one-time keys (and the fallback key, once) for a home relay
    /// that is running low; they go out once their secrets are on disk.
    pub(super) fn restock_keys(&mut self, i: usize) {
        let now = self.host_clock.now().unix_ms;
        let device = self.me.device_id();
        let stored = self
            .store
            .fallback_bundle()
            .ok()
            .flatten()
            .and_then(|b| KeyBundle::from_bytes(&b).ok());
        let made = self.store.fallback_made_at().ok().flatten();
        let ran_out = self.home.iter().any(|r| r.mailbox.ran_out());
        // A new fallback key weekly, and after a relay ran out of one-time
        // keys: whoever drained them does not keep a key everyone shares.
        let (fallback, made) = match (stored, made) {
            (Some(bundle), Some(made)) if !fallback_due(Some(made), now, ran_out) => (bundle, made),
            _ => {
                let bundle = self.engine.olm.new_fallback_key_bundle(device);
                self.batch.ops.push(Op::PutFallback(bundle.to_bytes(), now));
                for relay in &mut self.home {
                    relay.mailbox.fallback_replaced();
                }
                tracing::info!("new fallback key for the home relays");
                (bundle, now)
            }
        };
        let Some(relay) = self.home.get_mut(i) else {
            return;
        };
        if !relay.mailbox.start_restock(made) {
            return;
        }
        let one_time = self.engine.olm.one_time_key_bundles(device, KEYS_UPLOAD);
        self.batch.after.push(After::UploadKeys(
            i,
            OwnerRequest::PutKeys { one_time, fallback },
        ));
    }

    pub(super) fn on_mailbox(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        let (kind, answer) = match event {
            E::Message {
                peer,
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some(kind) = self.mail_requests.remove(&request_id) else {
                    return;
                };
                if !self.answers_home(&kind, &peer) {
                    return;
                }
                let answer = MailboxResponse::from_bytes(&response)
                    .map_err(|e| format!("the relay's answer could not be decoded: {e}"));
                (kind, answer)
            }
            E::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                let Some(kind) = self.mail_requests.remove(&request_id) else {
                    return;
                };
                if !self.answers_home(&kind, &peer) {
                    return;
                }
                (
                    kind,
                    Err(format!("the relay could not be reached: {error}")),
                )
            }
            _ => return,
        };
        self.on_mail_answer(kind, answer);
    }

    /// Whether an answer from `peer` to a request for home relay slot `i`
    /// is that slot's: a slot taken by another relay since (`failover.rs`)
    /// drops what its old relay still answers.
    fn answers_home(&self, kind: &MailRequest, peer: &PeerId) -> bool {
        match kind.home_slot() {
            Some(i) => self.home.get(i).is_some_and(|r| r.peer == *peer),
            None => true,
        }
    }

    /// What to do with a relay's answer (or the failure to get one).
    fn on_mail_answer(&mut self, kind: MailRequest, answer: Result<MailboxResponse, String>) {
        match (kind, answer) {
            (MailRequest::Info(i), Ok(MailboxResponse::Info { challenge, .. })) => {
                if self.drops_due.remove(&i) {
                    // It did not take a revocation before: it answers now.
                    self.send_drops(i);
                }
                let now = self.host_clock.now();
                if let Some(relay) = self.home.get_mut(i) {
                    relay.answered();
                    let step = relay.mailbox.challenge_arrived(now, challenge);
                    self.drain_step(i, step);
                }
            }
            (
                MailRequest::Fetch(i, set),
                Ok(MailboxResponse::Batch {
                    items,
                    more,
                    keys_left,
                }),
            ) => self.on_items(i, set, items, more, keys_left),
            (MailRequest::Ack(_), Ok(MailboxResponse::Acked { .. })) => {}
            (MailRequest::SetPush(i, sent), answer) => self.on_push_answer(i, sent, answer),
            (MailRequest::Revoke(i, holders), Ok(MailboxResponse::Revoked { .. })) => {
                tracing::info!(
                    relay = i,
                    revoked = holders.len(),
                    "a home relay took our revoked deposit rights"
                );
                if let Some(relay) = self.home.get_mut(i) {
                    relay.mailbox.revoked(holders);
                }
            }
            (MailRequest::DropRevoked(i), Ok(MailboxResponse::Dropped { devices })) => {
                tracing::info!(
                    relay = i,
                    devices,
                    "a home relay dropped the revoked devices' mailboxes"
                );
            }
            (MailRequest::PutKeys(i), Ok(MailboxResponse::KeysStored { one_time })) => {
                if let Some(relay) = self.home.get_mut(i) {
                    relay.mailbox.keys_stored(one_time);
                }
                tracing::info!(relay = i, one_time, "one-time keys stocked at a home relay");
            }
            (
                MailRequest::Deposit {
                    relay,
                    device,
                    keys,
                },
                answer,
            ) => {
                let answer = match answer {
                    Ok(MailboxResponse::Deposited { results }) => Ok(results),
                    other => {
                        let error = describe(other);
                        tracing::debug!(%relay, %error, "deposit failed");
                        Err(error)
                    }
                };
                let store = self.store.clone();
                self.engine
                    .handle_deposited(ctx!(self), &*store, relay, device, &keys, answer);
                self.drive();
            }
            (MailRequest::Claim { relay, device }, answer) => {
                let answer = match answer {
                    Ok(MailboxResponse::Key(bundle)) => Ok(bundle),
                    other => Err(describe(other)),
                };
                if let Err(e) = &answer {
                    tracing::info!(%relay, error = %e, "could not get a key from a relay");
                }
                self.engine
                    .handle_claimed(ctx!(self), relay, device, answer);
                self.drive();
            }
            (kind, answer) => {
                let error = describe(answer);
                let Some(i) = kind.home_slot() else {
                    return;
                };
                tracing::info!(relay = i, %error, "home relay request failed");
                let now = self.host_clock.now();
                if let Some(relay) = self.home.get_mut(i) {
                    match kind {
                        MailRequest::Info(_) | MailRequest::Fetch(..) => {
                            relay.unanswered(now.mono_ms);
                            relay.mailbox.failed(now, error);
                        }
                        MailRequest::PutKeys(_) => relay.mailbox.upload_failed(Some(error)),
                        MailRequest::DropRevoked(i) => {
                            relay.mailbox.noted_error(error);
                            self.drops_due.insert(i);
                        }
                        MailRequest::Revoke(..) => relay.mailbox.revoke_failed(now, error),
                        _ => relay.mailbox.noted_error(error),
                    }
                }
            }
        }
    }
}

pub(super) fn describe(answer: Result<MailboxResponse, String>) -> String {
    match answer {
        Ok(MailboxResponse::Refused { message, .. }) => format!("the relay refused: {message}"),
        Ok(other) => format!("unexpected answer from the relay: {other:?}")
            .chars()
            .take(200)
            .collect(),
        Err(e) => e,
    }
}

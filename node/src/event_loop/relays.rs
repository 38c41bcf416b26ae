//! The node's side of relays: draining our own mailboxes, keeping our
//! one-time keys stocked there, and leaving mail at a contact's relays when
//! the contact's device cannot be reached.
//!
//! ```text
//!  our home relay:   Info ─▶ Fetch(after=cursor) ─▶ Items ─▶ store ─▶ Ack
//!                                ▲   (held open up to MAIL_WAIT) │
//!                                └───────────────────────────────┘
//!  contact's relays: Deposit(sealed envelopes, in order) ─▶ `sent`
//!                    ClaimKey(device) ─▶ KeyBundle ─▶ new Olm session
//! ```
//!
//! Envelopes left at relays stay in the outbox (as `sent`) until the
//! device acks them directly or sends a delivered receipt: if it comes
//! online before draining its mailbox, the direct path resends them in
//! order, so Olm never sees a later message long before an earlier one.

use std::time::Duration;

use hush_protocol::Now;
use hush_protocol::device::{DrainStep, HomeMailbox, PageHandled, PageStart, fallback_due};
use hush_protocol::{
    Auth, DeviceId, DeviceList, KeyBundle, MAX_MAILBOX_ITEMS, MailboxId, MailboxRequest,
    MailboxResponse, MailboxSecret, OwnerRequest, SealError, Wire,
};
use libp2p::request_response;
use libp2p::{Multiaddr, PeerId};

use super::{After, EventLoop, millis};
use crate::network::{MAIL_WAIT, peer_in};

use crate::store::{Op, OutboxKey};
use crate::view::RelayView;

/// Items asked for per fetch.
const FETCH_LIMIT: u16 = 256;
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
}

impl HomeRelay {
    pub(super) fn parse_all(addrs: &[String], now: Now, poll: Duration) -> Vec<Self> {
        addrs
            .iter()
            .filter_map(|a| {
                let addr: Multiaddr = a.parse().ok()?;
                Some(Self {
                    peer: peer_in(&addr)?,
                    addr,
                    mailbox: HomeMailbox::new(now, millis(poll)).with_jitter_seed(rand::random()),
                })
            })
            .collect()
    }
}

/// What a `/hush/mailbox/1` request was for.
#[derive(Debug)]
pub(super) enum MailRequest {
    Info(usize),
    Fetch(usize),
    Ack(usize),
    PutKeys(usize),
    /// The revoked holders sent (see `HomeMailbox::revocation_due`).
    Revoke(usize, Vec<[u8; 16]>),
    /// Our account revoked devices: their mailboxes go.
    DropRevoked(usize),
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

impl EventLoop {
    pub(super) fn relay_views(&self) -> Vec<RelayView> {
        self.home
            .iter()
            .map(|r| RelayView {
                address: r.addr.to_string(),
                connected: r.mailbox.is_connected(),
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

    /// Starts the drain loop of each home relay that is due.
    pub(super) fn relay_tick(&mut self) {
        let now = self.host_clock.now();
        for i in 0..self.home.len() {
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

    /// Sends what a home relay's drain loop asks for.
    fn drain_step(&mut self, i: usize, step: DrainStep) {
        match step {
            DrainStep::AskChallenge => {
                self.home_request(i, MailboxRequest::Info, MailRequest::Info(i));
            }
            DrainStep::Fetch { after, wait } => {
                let request = OwnerRequest::Fetch {
                    after,
                    limit: FETCH_LIMIT,
                    wait_ms: if wait {
                        u32::try_from(MAIL_WAIT.as_millis()).unwrap_or(u32::MAX)
                    } else {
                        0
                    },
                };
                match self.signed(i, request) {
                    Some(request) => {
                        self.home_request(i, request, MailRequest::Fetch(i));
                    }
                    None => {
                        let now = self.host_clock.now();
                        if let Some(relay) = self.home.get_mut(i) {
                            relay.mailbox.failed(now, "could not sign a fetch".into());
                        }
                    }
                }
            }
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
        }
    }

    fn home_request(&mut self, i: usize, request: MailboxRequest, kind: MailRequest) {
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
    fn signed(&self, i: usize, request: OwnerRequest) -> Option<MailboxRequest> {
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

    pub(super) fn ack_mail(&mut self, i: usize, seqs: Vec<u64>) {
        for chunk in seqs.chunks(MAX_MAILBOX_ITEMS * 4) {
            if let Some(request) = self.signed(
                i,
                OwnerRequest::Ack {
                    seqs: chunk.to_vec(),
                },
            ) {
                self.home_request(i, request, MailRequest::Ack(i));
            }
        }
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
    fn restock_keys(&mut self, i: usize) {
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
                let answer = MailboxResponse::from_bytes(&response)
                    .map_err(|e| format!("the relay's answer could not be decoded: {e}"));
                (kind, answer)
            }
            E::OutboundFailure {
                request_id, error, ..
            } => {
                let Some(kind) = self.mail_requests.remove(&request_id) else {
                    return;
                };
                (
                    kind,
                    Err(format!("the relay could not be reached: {error}")),
                )
            }
            _ => return,
        };
        self.on_mail_answer(kind, answer);
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
                    let step = relay.mailbox.challenge_arrived(now, challenge);
                    self.drain_step(i, step);
                }
            }
            (
                MailRequest::Fetch(i),
                Ok(MailboxResponse::Items {
                    items,
                    more,
                    keys_left,
                }),
            ) => self.on_items(i, items, more, keys_left),
            (MailRequest::Ack(_), Ok(MailboxResponse::Acked { .. })) => {}
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
                let i = match kind {
                    MailRequest::Info(i)
                    | MailRequest::Fetch(i)
                    | MailRequest::Ack(i)
                    | MailRequest::PutKeys(i)
                    | MailRequest::Revoke(i, _)
                    | MailRequest::DropRevoked(i) => i,
                    MailRequest::Deposit { .. } | MailRequest::Claim { .. } => return,
                };
                tracing::info!(relay = i, %error, "home relay request failed");
                let now = self.host_clock.now();
                if let Some(relay) = self.home.get_mut(i) {
                    match kind {
                        MailRequest::Info(_) | MailRequest::Fetch(_) => {
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

    /// Stores a page of mail; acks what is durable, and reads on.
    fn on_items(&mut self, i: usize, items: Vec<(u64, Vec<u8>)>, more: bool, keys_left: u32) {
        let now = self.host_clock.now();
        let Some(relay) = self.home.get_mut(i) else {
            return;
        };
        let last = items.last().map(|(seq, _)| *seq);
        let start_cursor = match relay.mailbox.page_arrived(now, last, more) {
            PageStart::Discard => return,
            PageStart::Handle { from, prefetch } => {
                // More is waiting: the next page is asked for now, so the
                // relay reads and sends it while this one is decrypted and
                // stored.
                if let Some(step) = prefetch {
                    self.drain_step(i, step);
                }
                from
            }
        };
        let mailbox = MailboxId::of(&self.me.device_id());
        let got_any = !items.is_empty();
        let opened = open_all(&self.me.mailbox, &mailbox, items);
        let store = self.store.clone();
        let page = self
            .engine
            .handle_mail(ctx!(self), &*store, start_cursor, opened);
        self.drive();
        if !page.ack_now.is_empty() {
            self.ack_mail(i, page.ack_now);
        }
        if !page.ack_after.is_empty() {
            self.batch.after.push(After::MailAck(i, page.ack_after));
        }
        let (cursor, stalled) = (page.cursor, page.stalled);
        let Some(relay) = self.home.get_mut(i) else {
            return;
        };
        let expired = relay.mailbox.strangers(now, &page.strangers);
        if !expired.is_empty() {
            tracing::info!(
                count = expired.len(),
                "deleting mail from non-contacts that waited past its grace"
            );
            self.ack_mail(i, expired);
        }
        let Some(relay) = self.home.get_mut(i) else {
            return;
        };
        let handled = PageHandled {
            cursor,
            keys_left,
            stalled,
            got_any,
            more,
        };
        let step = relay.mailbox.page_handled(now, handled);
        if relay.mailbox.is_drained() {
            // Cards pushed to us while we were away are taken: sends held
            // at start for them go now.
            self.engine.mailbox_drained(ctx!(self));
            self.drive();
        }
        if let Some(step) = step {
            self.drain_step(i, step);
        }
        self.restock_keys(i);
    }
}

/// Opens a page of sealed envelopes (an X25519 agreement each), split over
/// two threads: the page is bounded (≤ 256 items), so this holds the loop
/// for a few milliseconds at most, half as long as opening them in turn.
fn open_all(
    secret: &MailboxSecret,
    mailbox: &MailboxId,
    items: Vec<(u64, Vec<u8>)>,
) -> Vec<(u64, Result<Vec<u8>, SealError>)> {
    let open = |part: &[(u64, Vec<u8>)]| -> Vec<(u64, Result<Vec<u8>, SealError>)> {
        part.iter()
            .map(|(seq, sealed)| (*seq, secret.open(mailbox, sealed)))
            .collect()
    };
    if items.len() < 16 {
        return open(&items);
    }
    let (first, second) = items.split_at(items.len() / 2);
    std::thread::scope(|scope| {
        let later = scope.spawn(|| open(second));
        let mut opened = open(first);
        match later.join() {
            Ok(rest) => opened.extend(rest),
            // The helper thread cannot panic on its own; if it did, open
            // the rest here.
            Err(_) => opened.extend(open(second)),
        }
        opened
    })
}

fn describe(answer: Result<MailboxResponse, String>) -> String {
    match answer {
        Ok(MailboxResponse::Refused { message, .. }) => format!("the relay refused: {message}"),
        Ok(other) => format!("unexpected answer from the relay: {other:?}")
            .chars()
            .take(200)
            .collect(),
        Err(e) => e,
    }
}

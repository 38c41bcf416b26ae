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

use std::collections::HashMap;
use std::time::Duration;

use hush_protocol::Now;
use hush_protocol::device::{
    DrainStep, HomeMailbox, OutboxKind, PageHandled, PageStart, Received, Source,
};
use hush_protocol::{
    AccountId, Auth, DepositResult, DeviceId, KeyBundle, MAX_MAILBOX_FRAME, MAX_MAILBOX_ITEMS,
    MailboxId, MailboxRequest, MailboxResponse, MailboxSecret, MessageId, OwnerRequest,
    ReceiptKind, Refusal, RejectReason, SealError, SealedEnvelope, Wire,
};
use libp2p::request_response;
use libp2p::{Multiaddr, PeerId};

use super::{After, EventLoop, millis};
use crate::network::{MAIL_WAIT, peer_in};

use crate::store::{Op, OutboxKey};
use crate::view::{Event, RelayView};

/// Items asked for per fetch.
const FETCH_LIMIT: u16 = 256;
/// One-time keys uploaded at a time, when a home relay runs low (below
/// `hush_protocol::device::KEYS_LOW`).
const KEYS_UPLOAD: usize = 20;
/// Bytes of sealed envelopes one deposit carries, about.
const DEPOSIT_BYTES: usize = MAX_MAILBOX_FRAME / 2;
/// A relay that refused for lack of room is asked again this much later.
const FULL_RELAY_RETRY: Duration = Duration::from_secs(30);

/// One of our home relays, and where its drain loop stands (a device
/// engine part, `HomeMailbox`).
#[derive(Debug)]
pub(super) struct HomeRelay {
    pub(super) peer: PeerId,
    pub(super) addr: Multiaddr,
    mailbox: HomeMailbox,
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
                    mailbox: HomeMailbox::new(now, millis(poll)),
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
        for relay in self.home.iter_mut().filter(|r| r.peer == *peer) {
            relay.mailbox.set_connected(connected);
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
        let Some(relay) = self.home.get_mut(i) else {
            return;
        };
        if !relay.mailbox.start_restock() {
            return;
        }
        let device = self.me.device_id();
        let one_time = self.engine.olm.one_time_key_bundles(device, KEYS_UPLOAD);
        let stored = self
            .store
            .fallback_bundle()
            .ok()
            .flatten()
            .and_then(|b| KeyBundle::from_bytes(&b).ok());
        let fallback = match stored {
            Some(bundle) => bundle,
            None => {
                let bundle = self.engine.olm.new_fallback_key_bundle(device);
                self.batch.ops.push(Op::PutFallback(bundle.to_bytes()));
                bundle
            }
        };
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
        match (kind, answer) {
            (MailRequest::Info(i), Ok(MailboxResponse::Info { challenge, .. })) => {
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
                self.engine.routes.end_deposit(device, relay);
                match answer {
                    Ok(MailboxResponse::Deposited { results }) if results.len() == keys.len() => {
                        self.on_deposited(relay, device, &keys, &results);
                    }
                    other => {
                        let error = describe(other);
                        tracing::debug!(%relay, %error, "deposit failed");
                        self.back_off_relay(relay, None);
                    }
                }
            }
            (MailRequest::Claim { relay, device }, answer) => {
                self.engine.outbox.key_claim_ended(&device);
                let started = match answer {
                    Ok(MailboxResponse::Key(bundle)) => self.engine.start_session(&device, &bundle),
                    other => Err(describe(other)),
                };
                if let Err(e) = &started {
                    tracing::info!(%relay, error = %e, "could not get a key from a relay");
                    self.back_off_relay(relay, None);
                }
                self.engine
                    .key_arrived(ctx!(self), &device, started.is_ok());
                self.drive();
            }
            (kind, answer) => {
                let error = describe(answer);
                let i = match kind {
                    MailRequest::Info(i)
                    | MailRequest::Fetch(i)
                    | MailRequest::Ack(i)
                    | MailRequest::PutKeys(i) => i,
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
        let mut ack_now = Vec::new();
        let mut ack_after = Vec::new();
        let mut delivered: HashMap<AccountId, Vec<MessageId>> = HashMap::new();
        let mut cursor = start_cursor;
        let got_any = !items.is_empty();
        let mut stalled = false;
        let opened = open_all(&self.me.mailbox, &mailbox, items);
        for (seq, envelope) in opened {
            let envelope = match envelope {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(seq, error = %e, "mail that does not open for us; deleting it");
                    ack_now.push(seq);
                    cursor = cursor.max(seq);
                    continue;
                }
            };
            let store = &*self.store;
            let received = self
                .engine
                .receive(ctx!(self), store, Source::Mailbox, &envelope);
            self.drive();
            match received {
                Ok(Received::Queued { text, .. }) => {
                    ack_after.push(seq);
                    if let Some((account, id)) = text {
                        delivered.entry(account).or_default().push(id);
                    }
                }
                Ok(Received::InProgress) => ack_after.push(seq),
                Ok(Received::AlreadyStored) => ack_now.push(seq),
                Err(RejectReason::Unavailable) => {
                    stalled = true;
                    break;
                }
                Err(reason @ (RejectReason::WrongRecipient | RejectReason::Malformed)) => {
                    tracing::warn!(seq, ?reason, "malformed mail; deleting it");
                    ack_now.push(seq);
                }
                Err(reason) => {
                    // From someone not (yet) a contact, or from a session we
                    // lost: leave it at the relay (re-read when a contact is
                    // added or on restart; it expires with the retention).
                    tracing::info!(
                        seq,
                        ?reason,
                        "mail we cannot place yet; leaving it at the relay"
                    );
                }
            }
            cursor = cursor.max(seq);
        }
        for (account, ids) in delivered {
            self.engine
                .queue_receipts(ctx!(self), &account, ReceiptKind::Delivered, &ids);
            self.drive();
        }
        if !ack_now.is_empty() {
            self.ack_mail(i, ack_now);
        }
        if !ack_after.is_empty() {
            self.batch.after.push(After::MailAck(i, ack_after));
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
        if let Some(step) = relay.mailbox.page_handled(now, handled) {
            self.drain_step(i, step);
        }
        self.restock_keys(i);
    }

    fn relays_of(&self, device: &DeviceId) -> Vec<(PeerId, Multiaddr)> {
        self.engine
            .contacts
            .of_device(device)
            .and_then(|(account, _)| self.engine.contacts.known(&account))
            .map(|c| c.relays.clone())
            .unwrap_or_default()
    }

    fn relay_ready(&self, relay: &PeerId) -> bool {
        self.engine.routes.relay_ready(self.host_clock.now(), relay)
    }

    fn back_off_relay(&mut self, relay: PeerId, at_least: Option<Duration>) {
        let at_least = at_least.map_or(0, millis);
        self.engine
            .routes
            .back_off_relay(self.host_clock.now(), relay, at_least);
    }

    /// Asks one of the device's relays for a one-time key.
    pub(super) fn claim_key(&mut self, device: DeviceId) {
        let relays = self.relays_of(&device);
        let Some((relay, addr)) = relays
            .iter()
            .find(|(p, _)| self.relay_ready(p))
            .or(relays.first())
            .cloned()
        else {
            self.engine.outbox.key_claim_ended(&device);
            return;
        };
        let id = self
            .swarm
            .behaviour_mut()
            .mailbox
            .send_request_with_addresses(
                &relay,
                MailboxRequest::ClaimKey { device }.to_bytes(),
                vec![addr],
            );
        self.mail_requests
            .insert(id, MailRequest::Claim { relay, device });
    }

    /// Leaves the device's queued envelopes at each of its relays, in
    /// order: every relay gets them from the first one it lacks.
    pub(super) fn deposit_pump(&mut self, device: &DeviceId) {
        let Some(mailbox_key) = self
            .engine
            .contacts
            .of_device(device)
            .map(|(_, k)| k.mailbox_key)
        else {
            return;
        };
        let mailbox = MailboxId::of(device);
        for (relay, addr) in self.relays_of(device) {
            if self.engine.routes.is_depositing(*device, relay) || !self.relay_ready(&relay) {
                continue;
            }
            let from = self.engine.routes.deposit_from(*device, relay);
            let mut keys = Vec::new();
            let mut items = Vec::new();
            let mut bytes = 0;
            for (key, entry) in self.engine.outbox.queued_from(*device, from) {
                if entry.record().kind == OutboxKind::Control {
                    // Control payloads (our presence key) go only directly:
                    // they must not take a slot of the contact's mailbox.
                    continue;
                }
                if entry.sent_to().contains(&relay) {
                    if keys.is_empty() {
                        continue;
                    }
                    break;
                }
                if !entry.is_waiting() {
                    break;
                }
                let Some(envelope) = entry.envelope() else {
                    // Not encrypted yet (no session): it goes when it is.
                    break;
                };
                if entry.sealed().is_none() {
                    match SealedEnvelope::seal(&mailbox_key, &mailbox, envelope) {
                        Ok(sealed) => entry.set_sealed(sealed),
                        Err(e) => {
                            tracing::warn!(%device, error = %e, "cannot seal for this device");
                            break;
                        }
                    }
                }
                let Some(sealed) = entry.sealed() else {
                    break;
                };
                if items.len() >= MAX_MAILBOX_ITEMS
                    || (bytes + sealed.len() > DEPOSIT_BYTES && !items.is_empty())
                {
                    break;
                }
                bytes += sealed.len() + 40;
                items.push((mailbox, sealed.clone()));
                keys.push(*key);
            }
            if items.is_empty() {
                continue;
            }
            let id = self
                .swarm
                .behaviour_mut()
                .mailbox
                .send_request_with_addresses(
                    &relay,
                    MailboxRequest::Deposit { items }.to_bytes(),
                    vec![addr],
                );
            self.engine.routes.start_deposit(*device, relay);
            self.mail_requests.insert(
                id,
                MailRequest::Deposit {
                    relay,
                    device: *device,
                    keys,
                },
            );
        }
    }

    fn on_deposited(
        &mut self,
        relay: PeerId,
        device: DeviceId,
        keys: &[OutboxKey],
        results: &[DepositResult],
    ) {
        let mut refused = None;
        let resend_direct_at = self
            .engine
            .routes
            .direct_again_at(self.host_clock.now(), &device);
        let mut prefix = true;
        for (key, result) in keys.iter().zip(results) {
            match result {
                DepositResult::Stored | DepositResult::Duplicate => {
                    if prefix {
                        self.engine.routes.held_up_to(device, relay, key.0);
                    }
                    // Tried directly again only once the device may be back.
                    let first = self
                        .engine
                        .outbox
                        .get_mut(key)
                        .is_some_and(|entry| entry.held_by(relay, resend_direct_at));
                    if first {
                        self.on_sent(*key);
                    }
                }
                DepositResult::Refused(reason) => {
                    prefix = false;
                    refused.get_or_insert(*reason);
                    if !reason.is_transient() {
                        self.report_refusal(*key, &relay, *reason);
                    }
                }
            }
        }
        match refused {
            Some(reason) if !reason.is_transient() => {
                self.back_off_relay(relay, Some(FULL_RELAY_RETRY));
            }
            Some(_) => self.back_off_relay(relay, None),
            None => {
                self.engine.routes.relay_ok(&relay);
                // More may be queued behind this batch.
                self.deposit_pump(&device);
            }
        }
    }

    /// A relay of the recipient holds the envelope durably: `sent`.
    fn on_sent(&mut self, key: OutboxKey) {
        self.problems.remove(&key);
        let store = &*self.store;
        self.engine.sent(store, key);
        self.drive();
    }

    fn report_refusal(&mut self, key: OutboxKey, relay: &PeerId, reason: Refusal) {
        let Some(entry) = self.engine.outbox.get(&key) else {
            return;
        };
        let contact = self
            .engine
            .contacts
            .name_of(&entry.record().recipient)
            .cloned()
            .unwrap_or_default();
        let text = match reason {
            Refusal::MailboxFull => {
                format!("{contact}'s relay is full (their mailbox there is at its quota)")
            }
            Refusal::SenderQuota => format!(
                "{contact}'s relay holds as many of your messages as it allows until {contact} fetches them"
            ),
            Refusal::RelayFull => format!("{contact}'s relay is out of storage"),
            other => format!(
                "{contact}'s relay refused the message: {}",
                other.describe()
            ),
        };
        if self.problems.get(&key) == Some(&text) {
            return;
        }
        tracing::warn!(id = %key.0, %relay, problem = %text, "a relay refused a message; it stays queued");
        self.problems.insert(key, text.clone());
        let _ = self.events.send(Event::Undeliverable {
            contact,
            id: key.0.to_string(),
            relay: relay.to_string(),
            reason: text,
        });
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

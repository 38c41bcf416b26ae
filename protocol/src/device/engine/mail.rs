//! Mail through relays: leaving a contact device's envelopes at its relays
//! when it cannot be reached, claiming its one-time key there, and placing
//! the mail our own relays hold for us.
//!
//! Envelopes left at relays stay in the outbox (as `sent`) until the
//! device acks them directly or sends a delivered receipt: if it comes
//! online before draining its mailbox, the direct path resends them in
//! order, so Olm never sees a later message long before an earlier one.

use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hash;

use super::{DeviceEffect, DeviceEngine, DeviceNotice, Received};
use crate::device::{Ctx, DeviceLookup, OutboxKey, OutboxKind, Severity, Source};
use crate::{
    AccountId, DepositItem, DepositResult, DeviceId, KeyBundle, MAX_MAILBOX_FRAME,
    MAX_MAILBOX_ITEMS, MailboxId, MailboxRequest, MessageId, Payload, ReceiptKind, Refusal,
    RejectReason, SealError, SealedEnvelope, Wire,
};

/// Bytes of sealed envelopes one deposit carries, about.
const DEPOSIT_BYTES: usize = MAX_MAILBOX_FRAME / 2;
/// A relay that refused for lack of room is asked again this much later.
pub const FULL_RELAY_RETRY_MS: u64 = 30_000;

/// What became of a page of our own mail.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailPage {
    /// Delete these now: stored before, or never placeable (not for us,
    /// malformed).
    pub ack_now: Vec<u64>,
    /// Delete these once the current batch committed.
    pub ack_after: Vec<u64>,
    /// Read up to here.
    pub cursor: u64,
    /// The store could not answer: stop reading, try again later.
    pub stalled: bool,
    /// From senders who are not contacts: left at the relay for a grace
    /// period (see [`HomeMailbox::strangers`](crate::device::HomeMailbox::strangers)).
    pub strangers: Vec<u64>,
}

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// Asks one of the device's relays (a ready one if any) for its
    /// one-time key.
    pub(super) fn claim_key(&mut self, ctx: &Ctx<'_>, device: DeviceId) {
        let relays = self.relays_of(&device);
        let ready = relays
            .iter()
            .find(|(p, _)| self.routes.relay_ready(ctx.now, p))
            .or(relays.first())
            .cloned();
        match ready {
            Some((relay, addr)) => self.effects.push_back(DeviceEffect::ClaimKey {
                relay,
                addr,
                device,
            }),
            None => self.outbox.key_claim_ended(&device),
        }
    }

    /// The answer to a key claim at `relay`.
    pub fn handle_claimed(
        &mut self,
        ctx: &mut Ctx<'_>,
        relay: P,
        device: DeviceId,
        answer: Result<KeyBundle, String>,
    ) {
        self.outbox.key_claim_ended(&device);
        let started = answer.and_then(|bundle| self.start_session(&device, &bundle));
        if started.is_err() {
            self.note(Severity::Info, "could not get a key from a relay");
            self.routes.back_off_relay(ctx.now, relay, 0);
        }
        self.key_arrived(ctx, &device, started.is_ok());
    }

    /// Leaves the device's queued envelopes at each of its relays, in
    /// order: every relay gets them from the first one it lacks.
    pub(super) fn deposit(&mut self, ctx: &Ctx<'_>, device: &DeviceId) {
        let Some(device_key) = self.contacts.of_device(device).map(|(_, k)| k.mailbox_key) else {
            return;
        };
        // The pairwise mailbox the device gave us while its grant lasts,
        // else its own (what its card names).
        let grant = self
            .grants
            .get(device)
            .filter(|grant| grant.usable_at(ctx.now.unix_ms))
            .copied();
        let (mailbox, right) = match &grant {
            Some(grant) => (grant.mailbox(), Some(grant.right)),
            None => (MailboxId::of(device), self.rights.get(device).copied()),
        };
        let seal = |envelope: &[u8]| match &grant {
            Some(grant) => grant.seal(envelope),
            None => SealedEnvelope::seal(&device_key, &mailbox, envelope),
        };
        for (relay, addr) in self.relays_of(device) {
            if self.routes.is_depositing(*device, relay)
                || !self.routes.relay_ready(ctx.now, &relay)
            {
                continue;
            }
            let from = self.routes.deposit_from(*device, relay);
            let mut keys = Vec::new();
            let mut items = Vec::new();
            let mut bytes = 0;
            let mut unsealable = false;
            for (key, entry) in self.outbox.queued_from(*device, from) {
                if entry.record().kind == OutboxKind::Control {
                    // Control payloads (our presence key, our deposit
                    // right) go only directly:
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
                if entry.sealed(&mailbox).is_none() {
                    match seal(envelope) {
                        Ok(sealed) => entry.set_sealed(mailbox, sealed),
                        Err(_) => {
                            unsealable = true;
                            break;
                        }
                    }
                }
                let Some(sealed) = entry.sealed(&mailbox) else {
                    break;
                };
                if items.len() >= MAX_MAILBOX_ITEMS
                    || (bytes + sealed.len() > DEPOSIT_BYTES && !items.is_empty())
                {
                    break;
                }
                bytes += sealed.len() + 48;
                // A disappearing message's end is all the relay learns of
                // it: it drops the mail then.
                let expires_at_ms = Payload::timer_of_padded(&entry.record().payload)
                    .map(|secs| key.0.millis().saturating_add(u64::from(secs) * 1000));
                items.push(DepositItem {
                    mailbox,
                    sealed: sealed.clone(),
                    expires_at_ms,
                });
                keys.push(key);
            }
            if unsealable {
                self.note(Severity::Warn, "cannot seal mail for a contact device");
            }
            if items.is_empty() {
                continue;
            }
            self.routes.start_deposit(*device, relay);
            self.effects.push_back(DeviceEffect::Deposit {
                relay,
                addr,
                device: *device,
                keys,
                request: MailboxRequest::Deposit { right, items }.to_bytes(),
            });
        }
    }

    /// The answer to a deposit at `relay` of `keys` for `device` (one
    /// result per key, or why there is none).
    pub fn handle_deposited<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        relay: P,
        device: DeviceId,
        keys: &[OutboxKey],
        answer: Result<Vec<DepositResult>, String>,
    ) {
        self.routes.end_deposit(device, relay);
        let results = match answer {
            Ok(results) if results.len() == keys.len() => results,
            _ => {
                self.note(Severity::Debug, "a deposit failed");
                self.routes.back_off_relay(ctx.now, relay, 0);
                return;
            }
        };
        let mut refused = None;
        let resend_direct_at = self.routes.direct_again_at(ctx.now, &device);
        let mut prefix = true;
        for (key, result) in keys.iter().zip(results) {
            match result {
                DepositResult::Stored | DepositResult::Duplicate => {
                    if prefix {
                        self.routes.held_up_to(device, relay, key.0);
                    }
                    // Tried directly again only once the device may be back.
                    let first = self
                        .outbox
                        .get_mut(key)
                        .is_some_and(|entry| entry.held_by(relay, resend_direct_at));
                    if first {
                        self.sent(lookup, *key);
                    }
                }
                DepositResult::Refused(reason) => {
                    prefix = false;
                    refused.get_or_insert(reason);
                    if !reason.is_transient() {
                        self.report_refusal(*key, relay, reason);
                    }
                }
            }
        }
        match refused {
            Some(reason) if !reason.is_transient() => {
                self.routes
                    .back_off_relay(ctx.now, relay, FULL_RELAY_RETRY_MS);
            }
            Some(_) => self.routes.back_off_relay(ctx.now, relay, 0),
            None => {
                self.routes.relay_ok(&relay);
                // More may be queued behind this batch.
                self.deposit(ctx, &device);
            }
        }
    }

    /// Tells the user, once per entry and reason, that a relay refused it.
    fn report_refusal(&mut self, key: OutboxKey, relay: P, reason: Refusal) {
        let Some(entry) = self.outbox.get(&key) else {
            return;
        };
        let contact = self
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
            Refusal::StrangerQuota => format!(
                "{contact}'s relay takes only a little mail from people {contact} has not added; ask {contact} to add you"
            ),
            other => format!(
                "{contact}'s relay refused the message: {}",
                other.describe()
            ),
        };
        if self.problems.get(&key) == Some(&text) {
            return;
        }
        self.problems.insert(key, text.clone());
        self.effects.push_back(DeviceEffect::Notice(Box::new(
            DeviceNotice::Undeliverable {
                contact,
                id: key.0,
                relay: relay.to_string(),
                reason: text,
            },
        )));
    }

    /// A page of our own mail, opened (each item's sequence number and
    /// envelope, or why it did not open), read from `from` on: each is
    /// placed like an envelope that came directly, and new texts get a
    /// delivered receipt (the sender heard no ack).
    pub fn handle_mail<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        from: u64,
        opened: Vec<(u64, Result<Vec<u8>, SealError>)>,
    ) -> MailPage {
        let mut page = MailPage {
            cursor: from,
            ..MailPage::default()
        };
        let mut delivered: BTreeMap<AccountId, Vec<MessageId>> = BTreeMap::new();
        for (seq, envelope) in opened {
            let Ok(envelope) = envelope else {
                self.note(
                    Severity::Warn,
                    "mail that does not open for us; deleting it",
                );
                page.ack_now.push(seq);
                page.cursor = page.cursor.max(seq);
                continue;
            };
            match self.receive(ctx, lookup, Source::Mailbox, &envelope) {
                Ok(Received::Queued { text, .. }) => {
                    page.ack_after.push(seq);
                    if let Some((account, id)) = text {
                        delivered.entry(account).or_default().push(id);
                    }
                }
                Ok(Received::InProgress) => page.ack_after.push(seq),
                Ok(Received::AlreadyStored) => page.ack_now.push(seq),
                Err(RejectReason::Unavailable) => {
                    page.stalled = true;
                    break;
                }
                Err(RejectReason::WrongRecipient | RejectReason::Malformed) => {
                    self.note(Severity::Warn, "malformed mail; deleting it");
                    page.ack_now.push(seq);
                }
                Err(RejectReason::UnknownSender) => {
                    // From someone not (yet) a contact: it waits at the
                    // relay a while (re-read when a contact is added), then
                    // goes.
                    self.note(
                        Severity::Info,
                        "mail from someone who is not a contact; leaving it at the relay for now",
                    );
                    page.strangers.push(seq);
                }
                Err(_) => {
                    // From a session we lost: leave it at the relay (re-read
                    // on restart; it expires with the retention).
                    self.note(
                        Severity::Info,
                        "mail we cannot decrypt yet; leaving it at the relay",
                    );
                }
            }
            page.cursor = page.cursor.max(seq);
        }
        for (account, ids) in delivered {
            self.queue_receipts(ctx, &account, ReceiptKind::Delivered, &ids);
        }
        page
    }
}

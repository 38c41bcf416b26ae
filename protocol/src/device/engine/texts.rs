//! What the user writes and reads in a 1:1 conversation: texts out,
//! receipts, and the conversation marked read.

use std::fmt;
use std::hash::Hash;

use super::{DeviceAfter, DeviceEffect, DeviceEngine, DeviceNotice, DeviceWrite};
use crate::device::{
    Ctx, DeviceLookup, FileRecord, FileState, MessageKind, MessageRecord, OutboxKind, SendError,
    Severity, Status,
};
use crate::{
    AccountId, Body, ConversationId, FileOffer, MAX_RECEIPT_IDS, MAX_TEXT_LEN, MessageId, Payload,
    ReceiptKind, SyncItem, Wire,
};

/// What the user sends in a 1:1 conversation.
enum Outgoing {
    Text(String),
    /// The offer and the path the file was read from.
    File(Box<FileOffer>, String),
}

impl<P, A, Q, M> DeviceEngine<P, A, Q, M>
where
    P: Copy + Eq + Hash + fmt::Display,
    A: Clone,
    Q: Hash + Eq,
{
    /// Stores an outgoing text and queues it to every device of the
    /// contact named `contact`.
    pub fn send_text(
        &mut self,
        ctx: &mut Ctx<'_>,
        contact: &str,
        text: String,
    ) -> Result<MessageId, SendError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(SendError::TextTooLong { len: text.len() });
        }
        if text.is_empty() {
            return Err(SendError::EmptyText);
        }
        self.send_message(ctx, contact, Outgoing::Text(text))
    }

    /// Stores an outgoing file message (its blob is sealed and stored by
    /// the host already; `path` is where it was read from) and queues it
    /// to every device of the contact named `contact`.
    pub fn send_file(
        &mut self,
        ctx: &mut Ctx<'_>,
        contact: &str,
        offer: FileOffer,
        path: String,
    ) -> Result<MessageId, SendError> {
        if offer.caption.len() > MAX_TEXT_LEN {
            return Err(SendError::TextTooLong {
                len: offer.caption.len(),
            });
        }
        self.send_message(ctx, contact, Outgoing::File(Box::new(offer), path))
    }

    /// The account of the contact named `contact`, if this device may
    /// write to it now (not revoked, the contact known and not blocked).
    pub(super) fn writable_contact(&self, contact: &str) -> Result<AccountId, SendError> {
        if self.revoked {
            return Err(SendError::Revoked);
        }
        let account = self
            .contacts
            .contact(contact)
            .map(|c| c.card.account())
            .ok_or_else(|| SendError::UnknownContact {
                name: contact.to_owned(),
            })?;
        if self.contacts.is_blocked(&account) {
            return Err(SendError::Blocked {
                name: contact.to_owned(),
            });
        }
        Ok(account)
    }

    fn send_message(
        &mut self,
        ctx: &mut Ctx<'_>,
        contact: &str,
        outgoing: Outgoing,
    ) -> Result<MessageId, SendError> {
        let account = self.writable_contact(contact)?;
        self.grant_right(ctx, &account);
        let id = ctx.next_id();
        let timer = self.timer_of(&account);
        let body = match &outgoing {
            Outgoing::Text(text) => Body::Text(text.clone()),
            Outgoing::File(offer, _) => Body::File(offer.clone()),
        }
        .timed(timer);
        let payload = Payload {
            sender_account: self.me.account,
            sender_device: self.me.device_id(),
            id,
            body,
        };
        self.enqueue(ctx, &account, OutboxKind::Message, &payload)?;
        let conversation = ConversationId::direct(&self.me.account, &account);
        let (text, file, copy) = match outgoing {
            Outgoing::Text(text) => {
                // Our other devices get a copy (only a clone when there are some).
                let copy = self.contacts.has_other_devices().then(|| SyncItem::Sent {
                    with: account,
                    id,
                    text: text.clone(),
                });
                (text, None, copy)
            }
            Outgoing::File(offer, path) => {
                let file = FileRecord {
                    manifest: offer.manifest.to_bytes(),
                    outgoing: true,
                    source: self.me.device_id(),
                    state: FileState::Shared,
                    path: Some(path),
                    error: None,
                };
                let caption = offer.caption.clone();
                let copy = self
                    .contacts
                    .has_other_devices()
                    .then(|| SyncItem::SentFile {
                        with: account,
                        id,
                        offer,
                    });
                (caption, Some(file), copy)
            }
        };
        let record = MessageRecord {
            id,
            from: self.me.account,
            outgoing: true,
            text,
            status: Status::Pending,
            sent_at_ms: id.millis(),
            stored_at_ms: ctx.now.unix_ms,
            timer_secs: timer,
            kind: MessageKind::Message,
        };
        self.write_message(conversation, record, file);
        if let Some(item) = copy {
            let item = match timer {
                Some(secs) => SyncItem::Timed {
                    secs,
                    item: Box::new(item),
                },
                None => item,
            };
            self.tell_own_devices(ctx, item);
        }
        Ok(id)
    }

    /// Stores a message, and the file it carries beside it.
    pub(super) fn write_message(
        &mut self,
        conversation: ConversationId,
        record: MessageRecord,
        file: Option<FileRecord>,
    ) {
        let id = record.id;
        self.effects
            .push_back(DeviceEffect::Write(DeviceWrite::Message(
                conversation,
                record,
            )));
        if let Some(file) = file {
            self.effects
                .push_back(DeviceEffect::Write(DeviceWrite::File(
                    conversation,
                    id,
                    file,
                )));
        }
    }

    /// Queues receipts for `ids` to every device of `account` (at most
    /// [`MAX_RECEIPT_IDS`] ids per payload).
    pub fn queue_receipts(
        &mut self,
        ctx: &mut Ctx<'_>,
        account: &AccountId,
        kind: ReceiptKind,
        ids: &[MessageId],
    ) {
        for ids in ids.chunks(MAX_RECEIPT_IDS) {
            let body = Body::Receipt {
                kind,
                ids: ids.to_vec(),
            };
            if self
                .send_control(ctx, account, OutboxKind::Receipt, body)
                .is_err()
            {
                self.note(Severity::Warn, "could not queue a receipt");
            }
        }
    }

    /// Marks the conversation with `contact` read: its status events, and
    /// read receipts if the contact gets them. Returns how many.
    pub fn mark_read<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        contact: &str,
    ) -> Result<Result<usize, SendError>, L::Error> {
        let Some(c) = self.contacts.contact(contact) else {
            return Ok(Err(SendError::UnknownContact {
                name: contact.to_owned(),
            }));
        };
        let (account, send_receipts) = (c.card.account(), c.record.send_receipts);
        let conversation = ConversationId::direct(&self.me.account, &account);
        let unread = lookup.unread(&conversation)?;
        if unread.is_empty() {
            return Ok(Ok(0));
        }
        self.effects
            .push_back(DeviceEffect::Write(DeviceWrite::MarkRead(
                conversation,
                unread.clone(),
            )));
        for id in &unread {
            let notice = DeviceNotice::Status {
                contact: contact.to_owned(),
                id: *id,
                status: Status::Read,
            };
            self.effects
                .push_back(DeviceEffect::After(DeviceAfter::Notice(Box::new(notice))));
        }
        if send_receipts {
            self.queue_receipts(ctx, &account, ReceiptKind::Read, &unread);
        }
        for ids in unread.chunks(MAX_RECEIPT_IDS) {
            let item = SyncItem::Read {
                with: account,
                ids: ids.to_vec(),
            };
            self.tell_own_devices(ctx, item);
        }
        Ok(Ok(unread.len()))
    }
}

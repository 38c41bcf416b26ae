//! Sending group messages (Megolm, with rotation) and receipts.

use std::collections::BTreeSet;
use std::fmt;
use std::hash::Hash;

use super::Severity;
use super::{
    DeviceLookup, GroupAfter, GroupBook, GroupCommandError, GroupEffect, GroupWrite,
    RECEIPT_BATCH_MS, Standing,
};

use crate::device::{Ctx, FileRecord, FileState, MessageRecord, SeenKey};
use crate::{
    AccountId, Body, ControlKind, ConversationId, FileOffer, GroupId, GroupMessage, MAX_TEXT_LEN,
    MegolmInbound, MegolmOutbound, MessageId, Payload, ReceiptKind, Wire, room_key_claim,
};

/// Our next sending session of a group, its key shared ahead of the
/// current one's end (see `ensure_outbound`). In memory only: lost with a
/// restart, the rotation then makes a new one as if none had been shared
/// (its key, at the members, is never used).
pub(super) struct NextSession {
    pub(super) outbound: MegolmOutbound,
    /// Its key and claim (at index 0), as they go to each member.
    key: Vec<u8>,
    claim: Vec<u8>,
    /// The joined members its key went to so far.
    pub(super) members: BTreeSet<AccountId>,
}

/// The index of a session rotated after `rotate` messages at which the
/// next one's key goes out: a fifth of the count ahead, at least one.
pub(super) const fn shares_next_at(rotate: u32) -> u32 {
    let ahead = if rotate / 5 > 1 { rotate / 5 } else { 1 };
    rotate.saturating_sub(ahead)
}

impl<P, A, M> GroupBook<P, A, M>
where
    P: Copy + Eq + Hash + fmt::Display,
{
    /// Encrypts and stores one message; it is published after the commit.
    pub fn send(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: &str,
        text: String,
    ) -> Result<MessageId, GroupCommandError> {
        if text.len() > MAX_TEXT_LEN {
            return Err(GroupCommandError::TextTooLong { len: text.len() });
        }
        if text.is_empty() {
            return Err(GroupCommandError::EmptyText);
        }
        self.send_body(ctx, group, Body::Text(text.clone()), text, None)
    }

    /// Encrypts and stores a file message (its blob sealed and stored by
    /// the host already; `path` is where it was read from); published
    /// after the commit. Members fetch the file from this device.
    pub fn send_file(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: &str,
        offer: FileOffer,
        path: String,
    ) -> Result<MessageId, GroupCommandError> {
        if offer.caption.len() > MAX_TEXT_LEN {
            return Err(GroupCommandError::TextTooLong {
                len: offer.caption.len(),
            });
        }
        let file = FileRecord {
            manifest: offer.manifest.to_bytes(),
            outgoing: true,
            source: self.me.device,
            state: FileState::Shared,
            path: Some(path),
            error: None,
        };
        let caption = offer.caption.clone();
        self.send_body(ctx, group, Body::File(Box::new(offer)), caption, Some(file))
    }

    fn send_body(
        &mut self,
        ctx: &mut Ctx<'_>,
        group: &str,
        body: Body,
        text: String,
        file: Option<FileRecord>,
    ) -> Result<MessageId, GroupCommandError> {
        let id = self.resolve(group)?;
        let me = self.account();
        match self.groups[&id].standing(&me) {
            Standing::Admin | Standing::Member => {}
            Standing::Removed => {
                return Err(GroupCommandError::Removed {
                    group: group.to_owned(),
                });
            }
            Standing::Invited => {
                return Err(GroupCommandError::NotIn {
                    group: group.to_owned(),
                    hint: "you are invited: join it first with `hush group join`",
                });
            }
            Standing::Left => {
                return Err(GroupCommandError::NotIn {
                    group: group.to_owned(),
                    hint: "you left it; an admin must invite you again",
                });
            }
        }
        // Members take topic messages from the devices on our card in the
        // group: a device linked since is not on it (yet), and what it
        // published would be ignored.
        let listed = self.groups[&id]
            .state
            .members
            .get(&me)
            .is_some_and(|m| m.card.device_list.device(&self.me.device).is_some());
        if !listed {
            return Err(GroupCommandError::NotGroupDevice {
                group: group.to_owned(),
            });
        }
        if self.groups[&id].topic().is_none() {
            // Checked before the ratchet moves: nothing is stored that
            // could not be published.
            return Err(GroupCommandError::NoPublishKey {
                group: group.to_owned(),
            });
        }
        self.ensure_outbound(ctx, id);
        let message_id = ctx.next_id();
        let timer = self.groups[&id].state.timer;
        let payload = Payload {
            sender_account: me,
            sender_device: self.me.device,
            id: message_id,
            body: body.timed(timer),
        };
        let unknown = || GroupCommandError::UnknownGroup {
            name: group.to_owned(),
        };
        let g = self.groups.get_mut(&id).ok_or_else(unknown)?;
        let outbound = g.outbound.as_mut().ok_or_else(unknown)?;
        let session = outbound.id();
        let index = outbound.message_index();
        let ciphertext = outbound.encrypt(&payload.to_padded());
        // The advanced ratchet is stored with the message, before anything
        // is published: a message index is never used twice.
        let write = g.write_record(&self.me.pickle_key);
        let conversation = g.conversation();
        // Relays drop a disappearing message from the topic's history at
        // its end.
        let ends = timer.map(|secs| message_id.millis().saturating_add(u64::from(secs) * 1000));
        let sealed = g.seal(session, ciphertext, ends);
        let now = ctx.now.unix_ms;
        self.effects.extend([
            GroupEffect::Write(write),
            GroupEffect::Write(GroupWrite::Message(
                conversation,
                MessageRecord {
                    id: message_id,
                    from: me,
                    outgoing: true,
                    text,
                    // `Sent` once a peer on the topic takes it
                    // ([`GroupBook::taken`]).
                    status: crate::device::Status::Pending,
                    sent_at_ms: message_id.millis(),
                    stored_at_ms: now,
                    timer_secs: timer,
                    kind: crate::device::MessageKind::Message,
                },
            )),
        ]);
        if let Some(file) = file {
            self.effects.push_back(GroupEffect::Write(GroupWrite::File(
                conversation,
                message_id,
                file,
            )));
        }
        if let Some((topic, message)) = sealed {
            let bytes = message.to_bytes();
            self.keep_recent(id, session, index, &bytes);
            self.effects.extend([
                GroupEffect::Write(GroupWrite::Seen(
                    SeenKey::of_group(&message.session, GroupMessage::digest(&bytes)),
                    now,
                )),
                // Kept until a member confirms it, across a restart too
                // (`resend.rs`).
                GroupEffect::Write(GroupWrite::Unconfirmed(
                    message_id,
                    crate::device::UnconfirmedRecord {
                        group: id,
                        topic: topic.clone(),
                        bytes: bytes.clone(),
                    },
                )),
                GroupEffect::After(GroupAfter::Publish {
                    group: id,
                    topic,
                    bytes,
                    watch: Some(message_id),
                }),
            ]);
        }
        Ok(message_id)
    }

    /// Makes a new outbound session when the old one is due (a member
    /// left or was removed, N messages, T time) and shares its key with
    /// every joined member over Olm. Members who joined since the key went
    /// out get the current session from its current index instead: they
    /// read what comes next, nothing before, and the others need nothing
    /// new (one key per new member, not one per member).
    ///
    /// A session rotated for its count is replaced by one whose key went
    /// out over the last fifth of the count (`share_next_session`): the
    /// key goes over Olm, the messages over the topic, and a key sent with
    /// the first message under it would often arrive after it (the
    /// message then waits, kept on disk, for the key). One shared ahead is
    /// used only if everyone it went to is still in the group; members it
    /// has not reached yet get it from its current index, as newcomers do.
    fn ensure_outbound(&mut self, ctx: &mut Ctx<'_>, id: GroupId) {
        let config = self.config;
        let claim_text = room_key_claim(&id, &self.account(), &self.me.device);
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        // Sets, not lists: at 300 members two walks of one list per entry
        // of the other were 180,000 comparisons a message.
        let members: BTreeSet<AccountId> = g.state.joined().map(|(a, _)| *a).collect();
        let gone = g
            .record
            .outbound_members
            .iter()
            .any(|a| !members.contains(a));
        let age = ctx.now.unix_ms.saturating_sub(g.record.outbound_created_ms);
        let due = match &g.outbound {
            None => true,
            Some(o) => {
                o.message_index() >= config.rotate_messages || age >= config.rotate_after_ms || gone
            }
        };
        if due {
            let next = g
                .next
                .take()
                .filter(|next| next.members.iter().all(|a| members.contains(a)));
            let (outbound, had) = match next {
                Some(next) => (next.outbound, next.members.into_iter().collect()),
                None => (MegolmOutbound::new(), Vec::new()),
            };
            g.outbound = Some(outbound);
            g.record.outbound_created_ms = ctx.now.unix_ms;
            g.record.outbound_members = had;
        }
        let Some(outbound) = g.outbound.as_mut() else {
            return;
        };
        let had: BTreeSet<&AccountId> = g.record.outbound_members.iter().collect();
        let added: Vec<AccountId> = members
            .iter()
            .filter(|a| !had.contains(a))
            .copied()
            .collect();
        g.record.outbound_members = members.iter().copied().collect();
        if !added.is_empty() {
            // The key from the current index; the claim takes that index:
            // only we can write it.
            let fresh = outbound.message_index() == 0;
            let key = outbound.session_key();
            let claim = outbound.encrypt(&claim_text);
            if fresh {
                self.keep_own_copy(id, &key);
            }
            self.share_session(ctx, id, &key, &claim, added);
        }
        self.share_next_session(ctx, id, &members, &claim_text);
    }

    /// Makes the next session once the current one reaches
    /// [`shares_next_at`], and sends its key to the joined members that
    /// lack it, in even parts over the messages left before the rotation:
    /// a large group's keys do not all go out with one message.
    fn share_next_session(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        members: &BTreeSet<AccountId>,
        claim_text: &[u8],
    ) {
        let rotate = self.config.rotate_messages;
        let Some(g) = self.groups.get_mut(&id) else {
            return;
        };
        let Some(index) = g.outbound.as_ref().map(MegolmOutbound::message_index) else {
            return;
        };
        if index < shares_next_at(rotate) {
            return;
        }
        let made = g.next.is_none();
        let next = g.next.get_or_insert_with(|| {
            let mut outbound = MegolmOutbound::new();
            let key = outbound.session_key();
            let claim = outbound.encrypt(claim_text);
            NextSession {
                outbound,
                key,
                claim,
                members: BTreeSet::new(),
            }
        });
        let lacking = members.iter().filter(|a| !next.members.contains(a)).count();
        let messages_left = rotate.saturating_sub(index).max(1) as usize;
        let now: Vec<AccountId> = members
            .iter()
            .filter(|a| !next.members.contains(a))
            .take(lacking.div_ceil(messages_left))
            .copied()
            .collect();
        next.members.extend(&now);
        if now.is_empty() && !made {
            return;
        }
        let (key, claim) = (next.key.clone(), next.claim.clone());
        if made {
            self.keep_own_copy(id, &key);
        }
        if !now.is_empty() {
            self.share_session(ctx, id, &key, &claim, now);
        }
    }

    /// Keeps our own inbound copy of a session we made: our other devices
    /// and our own history read it.
    fn keep_own_copy(&mut self, id: GroupId, key: &[u8]) {
        if let Ok(session) = MegolmInbound::new(key) {
            let me = self.account();
            self.keep_inbound(id, me, self.me.device, session);
        }
        // Ordinary (a busy group rotates every 100 messages): not news
        // for the log a node's operator reads.
        self.note(id, Severity::Debug, "new Megolm session for the group");
    }

    /// Sends a session's key (with its claim) to `to` over Olm, to our own
    /// other devices too when `to` holds us.
    fn share_session(
        &mut self,
        ctx: &mut Ctx<'_>,
        id: GroupId,
        key: &[u8],
        claim: &[u8],
        to: Vec<AccountId>,
    ) {
        let me = self.account();
        // Our own other devices read it too: a fresh session (they had the
        // earlier ones from the link or from this), or our account's card
        // in the group gained a device (see `DeviceChanges`).
        let own = (self.own_devices && to.contains(&me)).then_some(me);
        for account in to.into_iter().filter(|a| *a != me).chain(own) {
            let kind = ControlKind::RoomKey {
                key: key.to_vec(),
                claim: claim.to_vec(),
            };
            self.send_control(ctx, account, id, kind);
        }
    }

    /// Marks the group's unread messages read; read receipts go to their
    /// authors with the next receipt batch. Returns how many.
    pub fn mark_read<L: DeviceLookup>(
        &mut self,
        ctx: &mut Ctx<'_>,
        lookup: &L,
        id: GroupId,
    ) -> Result<usize, L::Error> {
        let conversation = ConversationId::group(&id);
        let unread = lookup.unread(&conversation)?;
        if unread.is_empty() {
            return Ok(0);
        }
        for message in &unread {
            if let Ok(Some(r)) = lookup.message(&conversation, *message)
                && !r.outgoing
            {
                self.queue_receipt(ctx, r.from, id, ReceiptKind::Read, *message);
            }
        }
        let count = unread.len();
        self.effects
            .push_back(GroupEffect::Write(GroupWrite::MarkRead(
                conversation,
                unread,
            )));
        Ok(count)
    }

    pub(super) fn queue_receipt(
        &mut self,
        ctx: &mut Ctx<'_>,
        author: AccountId,
        group: GroupId,
        kind: ReceiptKind,
        message: MessageId,
    ) {
        self.receipts
            .entry((author, group, kind))
            .or_default()
            .push(message);
        if self.receipts_due_ms.is_none() {
            let jitter = ctx.rng.next_u64() % (RECEIPT_BATCH_MS + 1);
            self.receipts_due_ms = Some(ctx.now.mono_ms + RECEIPT_BATCH_MS + jitter);
        }
    }

    /// Sends the receipts gathered (on the tick when due, and on shutdown).
    pub fn flush_receipts(&mut self, ctx: &mut Ctx<'_>) {
        self.receipts_due_ms = None;
        let mut receipts: Vec<_> = std::mem::take(&mut self.receipts).into_iter().collect();
        receipts.sort_by_key(|((account, group, kind), _)| (*account, *group, *kind as u8));
        for ((account, group, kind), ids) in receipts {
            for ids in ids.chunks(crate::MAX_RECEIPT_IDS) {
                let kind = ControlKind::Receipt {
                    kind,
                    ids: ids.to_vec(),
                };
                self.send_control(ctx, account, group, kind);
            }
        }
    }
}

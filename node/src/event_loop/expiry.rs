//! Disappearing messages: once a second the loop takes the messages whose
//! timer ran out from the store's expiry order and deletes them with all
//! that hangs on them (text, file, search entries, receipts, what still
//! waits in the outbox), and the files this device holds for them.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hush_protocol::{ConversationId, MessageId};

use super::EventLoop;
use super::commit::After;
use crate::node::now_ms;
use crate::store::Op;
use crate::view::Event;

/// Most messages deleted per sweep (the rest go on the next ticks).
const MAX_EXPIRED_PER_SWEEP: usize = 256;
/// A deletion still listed this long after it was queued is queued again
/// (its batch failed to commit).
const REQUEUE_AFTER: Duration = Duration::from_secs(10);
/// How often the store's expiry order is read (the loop's tick is faster;
/// reading it on every tick was a tenth of an idle node's CPU).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Messages whose deletion is queued but not yet committed, and when:
/// not queued again meanwhile; and when the next sweep is due.
#[derive(Debug, Default)]
pub(super) struct Expiry {
    queued: HashMap<(ConversationId, MessageId), Instant>,
    next_sweep: Option<Instant>,
}

impl EventLoop {
    pub(super) fn expiry_tick(&mut self) {
        let now = Instant::now();
        if self.expiry.next_sweep.is_some_and(|at| now < at) {
            return;
        }
        self.expiry.next_sweep = Some(now + SWEEP_EVERY);
        let due = match self.store.expired(now_ms(), MAX_EXPIRED_PER_SWEEP) {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the messages due to disappear");
                return;
            }
        };
        // What the store no longer lists is deleted on disk: forget it.
        // What is still listed long after it was queued was lost with a
        // failed commit: queued again.
        let listed: HashSet<(ConversationId, MessageId)> = due.iter().copied().collect();
        self.expiry
            .queued
            .retain(|k, at| listed.contains(k) && now.duration_since(*at) < REQUEUE_AFTER);
        let mut by_conversation: Vec<(ConversationId, Vec<MessageId>)> = Vec::new();
        for (conversation, id) in due {
            if self.expiry.queued.contains_key(&(conversation, id)) {
                continue;
            }
            self.expiry.queued.insert((conversation, id), now);
            match by_conversation.iter_mut().find(|(c, _)| *c == conversation) {
                Some((_, ids)) => ids.push(id),
                None => by_conversation.push((conversation, vec![id])),
            }
        }
        for (conversation, ids) in by_conversation {
            self.expire(conversation, ids);
        }
    }

    /// Deletes messages of one conversation whose timer ran out.
    fn expire(&mut self, conversation: ConversationId, ids: Vec<MessageId>) {
        self.engine.forget_messages(&ids);
        for id in &ids {
            match self.store.file(&conversation, *id) {
                Ok(Some(file)) => self.drop_file_of_expired(*id, &file),
                Ok(None) => {}
                Err(e) => tracing::warn!(error = %e, "could not read a disappearing file"),
            }
        }
        tracing::debug!(count = ids.len(), "messages disappeared");
        let name = self.conversation_name(&conversation);
        let event = Event::Disappeared {
            conversation: name,
            ids: ids.iter().map(ToString::to_string).collect(),
        };
        self.batch.ops.push(Op::DeleteMessages(conversation, ids));
        self.batch.after.push(After::Emit(Box::new(event)));
    }

    /// The contact's or group's name a conversation is shown under.
    pub(super) fn conversation_name(&self, conversation: &ConversationId) -> String {
        if let Some(g) = self
            .engine
            .groups
            .groups()
            .find(|g| g.conversation() == *conversation)
        {
            return g.state().name.clone();
        }
        self.engine
            .contacts
            .contacts()
            .find(|c| ConversationId::direct(&self.me.account, &c.card.account()) == *conversation)
            .map(|c| c.record.name.clone())
            .unwrap_or_default()
    }
}

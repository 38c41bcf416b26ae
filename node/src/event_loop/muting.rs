//! Muted conversations and local notifications (`--notify-cmd`): a new
//! message of a conversation that is not muted runs the command once it is
//! stored (see `crate::notify`).

use hush_protocol::{ConversationId, GroupId};

use super::EventLoop;
use super::commit::After;
use crate::error::NodeError;
use crate::node::{MuteTarget, Reply};
use crate::notify::Notification;
use crate::store::Op;
use crate::view::Event;

impl EventLoop {
    /// `hush contact set NAME --mute`, `hush group set GROUP --mute`.
    pub(super) fn mute(&mut self, target: MuteTarget, on: bool, reply: Reply<bool>) {
        let conversation = match &target {
            MuteTarget::Contact(name) => match self.engine.contacts.contact(name) {
                Some(c) => ConversationId::direct(&self.me.account, &c.record.account),
                None => {
                    let _ = reply.send(Err(NodeError::UnknownContact { name: name.clone() }));
                    return;
                }
            },
            MuteTarget::Group(group) => match self.engine.groups.resolve(group) {
                Ok(id) => ConversationId::group(&id),
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                    return;
                }
            },
        };
        if on {
            self.muted.insert(conversation);
        } else {
            self.muted.remove(&conversation);
        }
        self.batch.ops.push(Op::PutMuted(conversation, on));
        self.batch.after.push(After::ReplyMuted(reply, on));
    }

    /// Runs the notify command for `event` if it is a new message of a
    /// conversation that is not muted.
    pub(super) fn notify(&self, event: &Event) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let Some(notification) = Notification::of(event) else {
            return;
        };
        let conversation = match event {
            Event::Message { contact, .. } => self
                .engine
                .contacts
                .contact(contact)
                .map(|c| ConversationId::direct(&self.me.account, &c.record.account)),
            Event::GroupMessage { group_id, .. } => group_id
                .parse::<GroupId>()
                .ok()
                .map(|g| ConversationId::group(&g)),
            _ => None,
        };
        if conversation.is_some_and(|c| self.muted.contains(&c)) {
            return;
        }
        notifier.notify(notification);
    }
}

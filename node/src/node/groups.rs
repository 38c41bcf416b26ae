//! Groups through the [`Node`] handle: each call is a command to the
//! event loop, whose group book decides (see `event_loop::groups`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

use super::{Command, MAX_HISTORY_LIMIT, Node, Reply, check_timer};
use crate::error::NodeError;
use crate::event_loop::GroupCommand;
use crate::journal::Journaled;
use crate::records::Status;
use crate::view::{Event, GroupMembersView, GroupMessageView, GroupView, SendReceipt};

impl Node {
    async fn group(
        &self,
        make: impl FnOnce(Reply<GroupView>) -> GroupCommand,
    ) -> Result<GroupView, NodeError> {
        self.call(|reply| Command::Group(make(reply))).await
    }

    /// Creates a group; you are its first admin.
    pub async fn group_create(&self, name: &str) -> Result<GroupView, NodeError> {
        let name = name.to_owned();
        self.group(|reply| GroupCommand::Create { name, reply })
            .await
    }

    /// Invites a contact (as an admin with `admin`).
    pub async fn group_invite(
        &self,
        group: &str,
        contact: &str,
        admin: bool,
    ) -> Result<GroupView, NodeError> {
        let (group, contact) = (group.to_owned(), contact.to_owned());
        self.group(|reply| GroupCommand::Invite {
            group,
            contact,
            admin,
            reply,
        })
        .await
    }

    pub async fn group_join(&self, group: &str) -> Result<GroupView, NodeError> {
        let group = group.to_owned();
        self.group(|reply| GroupCommand::Join { group, reply })
            .await
    }

    /// Leaves a group, or declines an invitation, or forgets a group you
    /// were removed from.
    pub async fn group_leave(&self, group: &str) -> Result<GroupView, NodeError> {
        let group = group.to_owned();
        self.group(|reply| GroupCommand::Leave { group, reply })
            .await
    }

    pub async fn group_remove(&self, group: &str, member: &str) -> Result<GroupView, NodeError> {
        let (group, member) = (group.to_owned(), member.to_owned());
        self.group(|reply| GroupCommand::Remove {
            group,
            member,
            reply,
        })
        .await
    }

    /// An admin sets how long members' messages last (seconds; `None`:
    /// kept).
    pub async fn group_timer(
        &self,
        group: &str,
        secs: Option<u32>,
    ) -> Result<GroupView, NodeError> {
        check_timer(secs)?;
        let group = group.to_owned();
        self.group(|reply| GroupCommand::SetTimer { group, secs, reply })
            .await
    }

    pub async fn group_promote(&self, group: &str, member: &str) -> Result<GroupView, NodeError> {
        let (group, member) = (group.to_owned(), member.to_owned());
        self.group(|reply| GroupCommand::Promote {
            group,
            member,
            reply,
        })
        .await
    }

    pub async fn group_send(&self, group: &str, text: &str) -> Result<SendReceipt, NodeError> {
        let (group, text) = (group.to_owned(), text.to_owned());
        self.call(|reply| Command::Group(GroupCommand::Send { group, text, reply }))
            .await
    }

    /// Sends and waits until `count` other members have it (or `timeout`).
    pub async fn group_send_and_wait(
        &self,
        group: &str,
        text: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<SendReceipt, NodeError> {
        let events = self.subscribe();
        let receipt = self.group_send(group, text).await?;
        Self::group_wait(receipt, events, count, timeout).await
    }

    pub(super) async fn group_wait(
        mut receipt: SendReceipt,
        mut events: broadcast::Receiver<Arc<Journaled>>,
        count: usize,
        timeout: Duration,
    ) -> Result<SendReceipt, NodeError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Ok(journaled)) => {
                    if let Event::GroupReceipt { id, delivered, .. } = &journaled.event
                        && *id == receipt.id
                        && *delivered >= count
                    {
                        receipt.status = Status::Delivered;
                        return Ok(receipt);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {}
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err(NodeError::Stopped),
                Err(_) => {
                    receipt.timed_out = true;
                    return Ok(receipt);
                }
            }
        }
    }

    pub async fn group_list(&self) -> Result<Vec<GroupView>, NodeError> {
        self.call(|reply| Command::Group(GroupCommand::List { reply }))
            .await
    }

    pub async fn group_members(&self, group: &str) -> Result<GroupMembersView, NodeError> {
        let group = group.to_owned();
        self.call(|reply| Command::Group(GroupCommand::Members { group, reply }))
            .await
    }

    /// Up to `limit` messages before `before` (or the newest), oldest first.
    pub async fn group_history(
        &self,
        group: &str,
        page: crate::store::Page,
        limit: usize,
    ) -> Result<Vec<GroupMessageView>, NodeError> {
        let group = group.to_owned();
        let limit = limit.min(MAX_HISTORY_LIMIT);
        self.call(|reply| {
            Command::Group(GroupCommand::History {
                group,
                page,
                limit,
                reply,
            })
        })
        .await
    }

    /// Marks a group's messages read (and tells their authors).
    pub async fn group_mark_read(&self, group: &str) -> Result<usize, NodeError> {
        let group = group.to_owned();
        self.call(|reply| Command::Group(GroupCommand::MarkRead { group, reply }))
            .await
    }
}

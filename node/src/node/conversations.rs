//! Reading conversations through the [`Node`] handle: the list with
//! unread counts and newest messages (`conversations`) and a contact's
//! history page by page. Both read the store directly (never through the
//! event loop); only the group list asks the loop.

use std::collections::HashMap;

use hush_protocol::{AccountId, ConversationId};

use super::{MAX_HISTORY_LIMIT, Node};
use crate::error::NodeError;
use crate::store::Page;
use crate::view::{ConversationView, MessageView};

impl Node {
    /// A page of the conversation with `contact` (see [`Page`]), oldest
    /// first.
    pub fn history(
        &self,
        contact: &str,
        page: Page,
        limit: usize,
    ) -> Result<Vec<MessageView>, NodeError> {
        let record = self.contact(contact)?;
        let conversation = ConversationId::direct(&self.me.account, &record.account);
        let messages = self
            .store
            .page(&conversation, page, limit.min(MAX_HISTORY_LIMIT))?;
        Ok(messages
            .iter()
            .map(|m| {
                let from = if m.outgoing {
                    self.me.name.clone()
                } else {
                    record.name.clone()
                };
                let file = self
                    .store
                    .file(&conversation, m.id)
                    .ok()
                    .flatten()
                    .map(|f| {
                        crate::event_loop::file_view(
                            m.id,
                            &f,
                            record.name.clone(),
                            from.clone(),
                            None,
                            &self.files.blobs,
                        )
                    });
                MessageView::new(m, from).with_file(file)
            })
            .collect())
    }

    /// Every conversation (contacts and groups) with its unread count and
    /// newest message, the most recent first; those without messages
    /// last, by name.
    pub async fn conversations(&self) -> Result<Vec<ConversationView>, NodeError> {
        self.landed().await?;
        let contacts = self.store.contacts()?;
        let names: HashMap<AccountId, String> = contacts
            .iter()
            .map(|c| (c.account, c.name.clone()))
            .collect();
        let name_of = |account: &AccountId| -> String {
            if *account == self.me.account {
                return self.me.name.clone();
            }
            names
                .get(account)
                .cloned()
                .unwrap_or_else(|| account.to_string()[..12].to_owned())
        };
        let muted: std::collections::HashSet<ConversationId> =
            self.store.muted()?.into_iter().collect();
        let mut list = Vec::new();
        let mut view = |kind: &str, name: String, group_id, conversation: ConversationId| {
            let last = self
                .store
                .history(&conversation, None, 1)?
                .pop()
                .map(|m| MessageView::new(&m, name_of(&m.from)));
            list.push(ConversationView {
                kind: kind.to_owned(),
                name,
                group_id,
                unread: self.store.unread_count(&conversation)?,
                muted: muted.contains(&conversation),
                last,
            });
            Ok::<(), NodeError>(())
        };
        for c in &contacts {
            let conversation = ConversationId::direct(&self.me.account, &c.account);
            view("contact", c.name.clone(), None, conversation)?;
        }
        for g in self.group_list().await? {
            let Ok(id) = g.id.parse::<hush_protocol::GroupId>() else {
                continue;
            };
            view("group", g.name, Some(g.id), ConversationId::group(&id))?;
        }
        list.sort_by(|a, b| {
            let at = |c: &ConversationView| c.last.as_ref().map(|m| m.sent_at_ms);
            at(b).cmp(&at(a)).then_with(|| a.name.cmp(&b.name))
        });
        Ok(list)
    }
}

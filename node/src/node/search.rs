//! Searching the local history through the [`Node`] handle. The query runs
//! on a blocking thread against the store (never in the event loop, which
//! keeps serving the network); the loop is asked only for names.

use std::collections::HashMap;

use hush_protocol::{AccountId, ConversationId, GroupId};

use super::{Command, Node};
use crate::error::NodeError;
use crate::rpc::SearchParams;
use crate::search::{MAX_SEARCH_LIMIT, Query};
use crate::store::{SearchFilter, SearchHit};
use crate::view::{SearchHitView, rfc3339};

impl Node {
    /// Messages of every conversation (or the one filtered) that match
    /// `params.query`, best first.
    pub async fn search(&self, params: SearchParams) -> Result<Vec<SearchHitView>, NodeError> {
        self.landed().await?;
        let query = Query::parse(&params.query)?;
        let groups = self.group_list().await?;
        let contacts = self.store.contacts()?;
        // Every conversation this device has, by id: (kind, name).
        let mut places: HashMap<ConversationId, (&'static str, String)> = HashMap::new();
        for c in &contacts {
            let id = ConversationId::direct(&self.me.account, &c.account);
            places.insert(id, ("contact", c.name.clone()));
        }
        for g in &groups {
            if let Ok(id) = g.id.parse::<GroupId>() {
                places.insert(ConversationId::group(&id), ("group", g.name.clone()));
            }
        }
        let mut filter = SearchFilter {
            since_ms: params.since_ms,
            until_ms: params.until_ms,
            ..SearchFilter::default()
        };
        if let Some(name) = &params.contact {
            filter.conversation = Some(self.conversation_with(name)?);
        }
        if let Some(name) = &params.group {
            let found = groups
                .iter()
                .find(|g| &g.name == name || &g.id == name)
                .and_then(|g| g.id.parse::<GroupId>().ok())
                .ok_or_else(|| NodeError::UnknownGroup { name: name.clone() })?;
            filter.conversation = Some(ConversationId::group(&found));
        }
        if let Some(name) = &params.from {
            filter.from = Some(if name == &self.me.name || name == "me" {
                self.me.account
            } else {
                self.contact(name)?.account
            });
        }
        let limit = params.limit.unwrap_or(20).min(MAX_SEARCH_LIMIT);
        let offset = params.offset.unwrap_or(0);
        let store = self.store.clone();
        let hits: Vec<SearchHit> =
            tokio::task::spawn_blocking(move || store.search(&query, &filter, offset, limit))
                .await
                .map_err(|_| NodeError::Stopped)??;

        let accounts: Vec<AccountId> = hits.iter().map(|h| h.message.from).collect();
        let names = self
            .call(|reply| Command::Names { accounts, reply })
            .await?;
        Ok(hits
            .into_iter()
            .zip(names)
            .map(|(hit, from)| {
                let (kind, conversation) = places
                    .get(&hit.conversation)
                    .cloned()
                    .unwrap_or(("gone", String::new()));
                SearchHitView {
                    id: hit.message.id.to_string(),
                    kind: kind.to_owned(),
                    conversation,
                    from,
                    outgoing: hit.message.outgoing,
                    sent_at: rfc3339(hit.message.sent_at_ms),
                    sent_at_ms: hit.message.sent_at_ms,
                    text: hit.message.text,
                    score: hit.score,
                    snippet: hit.snippet.text,
                    marks: hit.snippet.marks,
                }
            })
            .collect())
    }
}

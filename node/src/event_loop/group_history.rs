//! Group history at the home relays (protocol.md §11.7): asking them to
//! keep our groups' topics, reading what they hold from our cursors (when
//! a relay connects, on a new topic, and after a message missed on the
//! topic), and handing the pages to the group engine.

use hush_protocol::{GroupId, HistoryRequest, HistoryResponse, MAX_HISTORY_ITEMS, Wire};
use libp2p::PeerId;
use libp2p::request_response;

use super::EventLoop;

impl EventLoop {
    /// A home relay connected: make sure it keeps our groups' history, and
    /// catch up from it.
    pub(super) fn groups_relay_connected(&mut self, relay: PeerId) {
        for (id, topic) in self.group_topics() {
            self.keep_history(relay, id, &topic);
        }
    }

    /// Asks `relay` to keep one of the group's topics and for what it
    /// holds since our cursor.
    pub(super) fn keep_history(&mut self, relay: PeerId, id: GroupId, topic: &str) {
        let Some(after) = self.engine.groups.history_cursor(&id, topic, &relay) else {
            return;
        };
        let keep = HistoryRequest::Keep {
            topic: topic.to_owned(),
        };
        self.swarm
            .behaviour_mut()
            .history
            .send_request(&relay, keep.to_bytes());
        self.fetch_history(relay, id, topic.to_owned(), after);
    }

    pub(super) fn fetch_history(&mut self, relay: PeerId, id: GroupId, topic: String, after: u64) {
        let fetch = HistoryRequest::Fetch {
            topic: topic.clone(),
            after,
            limit: MAX_HISTORY_ITEMS as u16,
        };
        let request = self
            .swarm
            .behaviour_mut()
            .history
            .send_request(&relay, fetch.to_bytes());
        self.groups
            .history_requests
            .insert(request, (relay, id, topic));
    }

    pub(super) fn on_history(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        match event {
            E::Message {
                message:
                    M::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                let Some((relay, id, topic)) = self.groups.history_requests.remove(&request_id)
                else {
                    return;
                };
                match HistoryResponse::from_bytes(&response) {
                    Ok(HistoryResponse::Page { items, more }) => {
                        let store = self.store.clone();
                        self.with_groups(|g, ctx| {
                            g.handle_history_page(ctx, &*store, relay, id, &topic, items, more);
                        });
                    }
                    Ok(HistoryResponse::Refused { reason }) => {
                        tracing::warn!(%relay, %reason, "home relay refused to keep group history");
                    }
                    Ok(HistoryResponse::Keeping) => {}
                    Err(e) => tracing::debug!(%relay, error = %e, "malformed history response"),
                }
            }
            E::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((relay, _, _)) = self.groups.history_requests.remove(&request_id) {
                    tracing::debug!(%relay, error = %error, "group history request failed");
                }
            }
            _ => {}
        }
    }
}

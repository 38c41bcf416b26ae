//! Linking a new device, the old device's side (`hush device link`): the
//! one-time code, the Noise handshake keyed by it, the handover pages, and
//! taking the new device list once the new device stored everything. The
//! new device's side is `crate::link`. Protocol: docs/protocol.md §12.

use std::time::{Duration, Instant};

use hush_protocol::link::{
    AccountSeed, DeviceName, LINK_VALID_MS, LinkCode, LinkContact, LinkGroupItem, LinkGroupKind,
    LinkMessage, LinkOffer, LinkReceived, LinkReply, LinkRequest, LinkResponder, LinkStep,
    MAX_LINK_ADDRESSES, PresenceSeed, contacts_page_len, group_items_page_len, messages_page_len,
};
use hush_protocol::{
    AccountId, ContactCard, ConversationId, DeviceList, GroupId, MAX_DEVICES, MegolmInbound,
    MessageId, Wire,
};
use libp2p::{PeerId, request_response};

use super::EventLoop;
use super::devices::own_devices;
use crate::error::NodeError;
use crate::node::Reply;
use crate::records::{MessageKind, OwnDevice};
use crate::view::{Event, LinkCodeView, LinkedView, rfc3339};

/// Messages read from the store per page, before the page is cut to
/// what fits one frame.
const MESSAGES_PER_READ: usize = 512;

/// The link code in flight, if any (one at a time).
#[derive(Default)]
pub(super) struct LinkHost {
    offer: Option<Offer>,
    /// `hush device link` calls waiting for the new device.
    waiting: Vec<Reply<LinkedView>>,
    /// When each of our other devices was last connected (this run).
    pub(super) last_seen: std::collections::HashMap<hush_protocol::DeviceId, u64>,
}

struct Offer {
    responder: LinkResponder,
    with_account_key: bool,
    /// The whole link, handover included, ends by then.
    deadline: Instant,
    granted: Option<Granted>,
}

/// The new device's request, accepted: the list and card made for it,
/// taken as ours once it confirms.
struct Granted {
    request: LinkRequest,
    list: DeviceList,
    card: ContactCard,
}

impl EventLoop {
    /// Whether a link code is outstanding (the gate lets the joining
    /// device in).
    pub(super) fn link_offer_open(&self) -> bool {
        self.link.offer.is_some()
    }

    /// Makes a new link code (one at a time: a new one replaces the last).
    pub(super) fn link_start(&mut self, with_account_key: bool, reply: Reply<LinkCodeView>) {
        let made = self.new_offer(with_account_key);
        let _ = reply.send(made);
    }

    fn new_offer(&mut self, with_account_key: bool) -> Result<LinkCodeView, NodeError> {
        if self.me.account_key().is_none() {
            return Err(NodeError::NoAccountKey);
        }
        let count = self.me.device_list.devices.len();
        if count >= MAX_DEVICES {
            return Err(NodeError::TooManyDevices { count });
        }
        let expires_at_ms = self.host_clock.now().unix_ms + LINK_VALID_MS;
        let code = LinkCode {
            device: self.me.device_id(),
            secret: rand::random(),
            expires_at_ms,
            addresses: link_addresses(&self.listen_addresses),
        };
        let offer = LinkOffer {
            account: self.me.account,
            name: self.me.name.clone(),
        };
        let responder = LinkResponder::new(&code, offer)?;
        if self.link.offer.is_some() {
            tracing::info!("a new link code replaces the last one");
            self.link_failed("a newer link code replaced this one");
        }
        self.link.offer = Some(Offer {
            responder,
            with_account_key,
            deadline: Instant::now() + Duration::from_millis(LINK_VALID_MS),
            granted: None,
        });
        Ok(LinkCodeView {
            code: code.to_string(),
            expires_at: rfc3339(expires_at_ms),
            with_account_key,
        })
    }

    /// Waits until the device the current code is for has joined.
    pub(super) fn link_wait(&mut self, reply: Reply<LinkedView>) {
        if self.link.offer.is_none() {
            let _ = reply.send(Err(NodeError::LinkFailed(
                "no link code is waiting: run `hush device link`".into(),
            )));
            return;
        }
        self.link.waiting.push(reply);
    }

    /// Drops a code whose time is up, and tells whoever waits.
    pub(super) fn link_tick(&mut self) {
        let now = self.host_clock.now().unix_ms;
        let expired = self
            .link
            .offer
            .as_ref()
            .is_some_and(|o| Instant::now() >= o.deadline || o.responder.is_spent(now));
        if expired {
            self.link.offer = None;
            self.link_failed("the link code expired (or was tried too often) before a device joined; run `hush device link` again");
        }
    }

    fn link_failed(&mut self, why: &str) {
        for reply in self.link.waiting.drain(..) {
            let _ = reply.send(Err(NodeError::LinkFailed(why.to_owned())));
        }
    }

    pub(super) fn on_link(&mut self, event: request_response::Event<Vec<u8>, Vec<u8>>) {
        use request_response::{Event as E, Message as M};
        let E::Message {
            peer,
            message: M::Request {
                request, channel, ..
            },
            ..
        } = event
        else {
            return;
        };
        match self.link_frame(peer, &request) {
            Ok(answer) => {
                if self
                    .swarm
                    .behaviour_mut()
                    .link
                    .send_response(channel, answer)
                    .is_err()
                {
                    tracing::info!(%peer, "the device linking went away");
                }
            }
            // No answer: the new device's request fails and says so.
            Err(e) => tracing::warn!(%peer, error = %e, "a link attempt failed"),
        }
    }

    /// One frame of the new device: the answer to send back.
    fn link_frame(&mut self, peer: PeerId, frame: &[u8]) -> Result<Vec<u8>, NodeError> {
        let device = hush_host::device_of_peer(&peer)
            .ok_or_else(|| NodeError::LinkFailed("the peer has no Ed25519 key".into()))?;
        let now = self.host_clock.now().unix_ms;
        let offer = self
            .link
            .offer
            .as_mut()
            .ok_or_else(|| NodeError::LinkFailed("no link code is waiting".into()))?;
        match offer.responder.receive(now, device, frame)? {
            LinkReceived::Answer(answer) => Ok(answer),
            LinkReceived::Request(request) => {
                let (grant, granted) = self.grant(request)?;
                let offer = self.offer_mut()?;
                offer.granted = Some(granted);
                Ok(offer.responder.reply(&grant)?)
            }
            LinkReceived::Step(step) => {
                let reply = match step {
                    LinkStep::Contacts { after } => self.contacts_page(after),
                    LinkStep::Messages { after } => self.messages_page(after)?,
                    LinkStep::Groups { after } => self.groups_page(after)?,
                    LinkStep::GroupMessages { after } => self.group_messages_page(after)?,
                    LinkStep::Done { contacts, messages } => {
                        self.take_linked(contacts, messages)?;
                        LinkReply::Finished
                    }
                };
                let offer = self.offer_mut()?;
                let answer = offer.responder.reply(&reply)?;
                if offer.responder.is_finished() {
                    self.link.offer = None;
                }
                Ok(answer)
            }
        }
    }

    fn offer_mut(&mut self) -> Result<&mut Offer, NodeError> {
        self.link
            .offer
            .as_mut()
            .ok_or_else(|| NodeError::LinkFailed("the link code is gone".into()))
    }

    /// The new list (ours plus the new device), the card made with it, and
    /// what goes with them.
    fn grant(&mut self, request: LinkRequest) -> Result<(LinkReply, Granted), NodeError> {
        let key = self.me.account_key().ok_or(NodeError::NoAccountKey)?;
        let old = &self.me.device_list;
        if old.devices.len() >= MAX_DEVICES {
            return Err(NodeError::TooManyDevices {
                count: old.devices.len(),
            });
        }
        let mut devices = old.devices.clone();
        let mut proofs = old.proofs.clone();
        devices.retain(|d| d.device_id != request.device.device_id);
        proofs.truncate(devices.len());
        devices.push(request.device);
        proofs.push(request.proof);
        let issued_at_ms = self
            .host_clock
            .now()
            .unix_ms
            .max(old.issued_at_ms.saturating_add(1));
        let list = DeviceList::sign_proven(key, issued_at_ms, devices, proofs);
        let addresses = self.shared_address_strings();
        let card = self
            .me
            .card_with(&list, &addresses)
            .ok_or(NodeError::NoAccountKey)?;
        let with_key = self.offer_mut()?.with_account_key;
        let seed = if with_key {
            self.store.identity()?.account_seed.map(AccountSeed)
        } else {
            None
        };
        let mut names = self.device_names()?;
        names.push(DeviceName {
            device: request.device.device_id,
            name: request.name.clone(),
            linked_at_ms: self.host_clock.now().unix_ms,
        });
        let presence_seed = PresenceSeed(self.store.presence_seed()?);
        let presence = self.store.own_presence()?.map(|p| {
            let key = hush_protocol::PresenceKey::from_parts(p.epoch, p.key);
            (p.share, key, presence_seed)
        });
        let reply = LinkReply::Grant {
            device_list: Box::new(list.clone()),
            card: card.to_string(),
            account_seed: seed,
            relays: self.me.relays.clone(),
            names,
            presence,
        };
        tracing::info!(device = %request.device.device_id, name = %request.name, "a new device asks to join; handing over");
        Ok((
            reply,
            Granted {
                request,
                list,
                card,
            },
        ))
    }

    /// Our devices' names as stored (this device first named "first
    /// device" if it was never named).
    fn device_names(&self) -> Result<Vec<DeviceName>, NodeError> {
        let record = self.store.identity()?;
        Ok(own_devices(&record, &self.me.device_list)
            .into_iter()
            .map(|d| DeviceName {
                device: d.device,
                name: d.name,
                linked_at_ms: d.linked_at_ms,
            })
            .collect())
    }

    fn contacts_page(&self, after: Option<AccountId>) -> LinkReply {
        let mut contacts: Vec<_> = self
            .engine
            .contacts
            .contacts()
            .filter(|c| after.is_none_or(|a| c.record.account > a))
            .collect();
        contacts.sort_by_key(|c| c.record.account);
        let mut items: Vec<LinkContact> = contacts
            .into_iter()
            .map(|c| {
                let trust = self.engine.contacts.trust(&c.record.account);
                LinkContact {
                    name: c.record.name.clone(),
                    card: c.record.card.clone(),
                    send_receipts: c.record.send_receipts,
                    added_at_ms: c.record.added_at_ms,
                    blocked: trust.blocked,
                    verified: trust.verified,
                    presence: self
                        .presence
                        .record(&c.record.account)
                        .cloned()
                        .unwrap_or_default(),
                    timer: self
                        .engine
                        .timer(&c.record.account)
                        .map(|t| (t.secs, t.set_by.0)),
                }
            })
            .collect();
        let n = contacts_page_len(&items);
        let more = items.len() > n;
        items.truncate(n);
        LinkReply::Contacts { items, more }
    }

    /// The next page of 1:1 messages: by contact account, then by id,
    /// from the first message sent at or after the time the new device
    /// asked for (a message id starts with its sending time, so that is
    /// where the range starts).
    fn messages_page(&self, after: Option<(AccountId, u128)>) -> Result<LinkReply, NodeError> {
        let mut accounts: Vec<[u8; 32]> = self
            .engine
            .contacts
            .accounts()
            .iter()
            .map(|a| a.0)
            .collect();
        accounts.sort();
        let me = self.me.account;
        let (items, more) = self.history_page(&accounts, after.map(|(a, id)| (a.0, id)), |a| {
            ConversationId::direct(&me, &AccountId(*a))
        })?;
        Ok(LinkReply::Messages { items, more })
    }

    /// The next page of group messages (every group handed over), like
    /// [`EventLoop::messages_page`].
    fn group_messages_page(&self, after: Option<(GroupId, u128)>) -> Result<LinkReply, NodeError> {
        let mut groups: Vec<[u8; 32]> = self
            .store
            .groups()?
            .into_iter()
            .map(|(id, _, _)| id.0)
            .collect();
        groups.sort();
        let (items, more) = self.history_page(&groups, after.map(|(g, id)| (g.0, id)), |g| {
            ConversationId::group(&GroupId(*g))
        })?;
        Ok(LinkReply::GroupMessages { items, more })
    }

    /// A page of history over `conversations` (sorted keys, each naming a
    /// conversation through `conversation`): by key, then by id, from the
    /// first message sent at or after the time the new device asked for,
    /// after `after`.
    fn history_page(
        &self,
        conversations: &[[u8; 32]],
        after: Option<([u8; 32], u128)>,
        conversation: impl Fn(&[u8; 32]) -> ConversationId,
    ) -> Result<(Vec<LinkMessage>, bool), NodeError> {
        let since = self.link_since();
        let mut items: Vec<LinkMessage> = Vec::new();
        if since == u64::MAX {
            return Ok((items, false));
        }
        let floor = MessageId::from_parts(since, 0, 0).0;
        let mut more = false;
        for key in conversations {
            let from = match after {
                Some((a, _)) if *key < a => continue,
                Some((a, id)) if *key == a => match id.checked_add(1) {
                    Some(next) => next.max(floor),
                    None => continue,
                },
                _ => floor,
            };
            let room = MESSAGES_PER_READ - items.len();
            let rows = self.store.messages_from(&conversation(key), from, room)?;
            let full = rows.len() >= room;
            items.extend(rows.into_iter().map(|m| LinkMessage {
                conversation: *key,
                id: m.id.0,
                from: m.from,
                outgoing: m.outgoing,
                text: m.text,
                status: m.status as u8,
                sent_at_ms: m.sent_at_ms,
                stored_at_ms: m.stored_at_ms,
                timer_secs: m.timer_secs,
                timer_change: match m.kind {
                    MessageKind::Timer(secs) => Some(secs),
                    MessageKind::Message => None,
                },
            }));
            if full {
                more = true;
                break;
            }
        }
        let n = messages_page_len(&items);
        if items.len() > n {
            more = true;
            items.truncate(n);
        }
        Ok((items, more))
    }

    /// The next page of the account's groups: each group's record, ops,
    /// publish keys and Megolm sessions (exported from the first index we
    /// can read), numbered within the group.
    fn groups_page(&self, after: Option<(GroupId, u32)>) -> Result<LinkReply, NodeError> {
        let mut groups = self.store.groups()?;
        groups.sort_by_key(|(id, _, _)| id.0);
        let keys = self.store.publish_keys()?;
        let sessions = self.store.inbound_sessions()?;
        let mut items: Vec<LinkGroupItem> = Vec::new();
        let mut stopped = false;
        for (id, record, ops) in groups {
            let from = match after {
                Some((g, _)) if id.0 < g.0 => continue,
                Some((g, i)) if g == id => i.saturating_add(1) as usize,
                _ => 0,
            };
            let mut all = vec![LinkGroupKind::Record { left: record.left }];
            all.extend(ops.into_iter().map(LinkGroupKind::Op));
            all.extend(
                keys.iter()
                    .filter(|(g, _, _)| *g == id)
                    .map(|(_, epoch, k)| LinkGroupKind::PublishKey {
                        epoch: *epoch,
                        secret: k.secret,
                    }),
            );
            for (_, r) in sessions.iter().filter(|(_, r)| r.group == id) {
                match MegolmInbound::restore(&r.pickle, &self.me.pickle_key) {
                    Ok(session) => all.push(LinkGroupKind::Session {
                        account: r.account,
                        device: r.device,
                        exported: session.export(),
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "a stored Megolm session does not unpickle; not handed over")
                    }
                }
            }
            items.extend(
                all.into_iter()
                    .enumerate()
                    .skip(from)
                    .map(|(i, kind)| LinkGroupItem {
                        group: id,
                        index: u32::try_from(i).unwrap_or(u32::MAX),
                        kind,
                    }),
            );
            if items.len() >= MESSAGES_PER_READ {
                stopped = true;
                break;
            }
        }
        let n = group_items_page_len(&items);
        let more = stopped || items.len() > n;
        items.truncate(n);
        Ok(LinkReply::Groups { items, more })
    }

    /// From when the new device wants history.
    fn link_since(&self) -> u64 {
        self.link
            .offer
            .as_ref()
            .and_then(|o| o.granted.as_ref())
            .map_or(u64::MAX, |g| g.request.history_since_ms)
    }

    /// The new device stored everything: its list becomes ours, and every
    /// contact gets the new card.
    fn take_linked(&mut self, contacts: u32, messages: u32) -> Result<(), NodeError> {
        let granted = self
            .offer_mut()?
            .granted
            .take()
            .ok_or_else(|| NodeError::LinkFailed("done before the request".into()))?;
        let mut record = self.store.identity()?;
        let mut devices = own_devices(&record, &self.me.device_list);
        let now = self.host_clock.now().unix_ms;
        devices.push(OwnDevice {
            device: granted.request.device.device_id,
            name: granted.request.name.clone(),
            linked_at_ms: now,
        });
        record.device_list = granted.list.to_bytes();
        record.device_list_issued_at_ms = granted.list.issued_at_ms;
        record.devices = devices;
        record.pushed_list_at_ms = granted.list.issued_at_ms;
        self.store.put_identity(&record)?;
        self.me.device_list = granted.list;
        self.engine.set_own_card(ctx!(self), granted.card.clone());
        self.engine.push_card(ctx!(self), &granted.card);
        self.drive();
        let view = LinkedView {
            device: granted.request.device.device_id.to_string(),
            name: granted.request.name.clone(),
            contacts,
            messages,
        };
        tracing::info!(device = %view.device, name = %view.name, contacts, messages, "a new device joined the account");
        self.events.send(Event::DeviceLinked {
            device: view.device.clone(),
            name: view.name.clone(),
        });
        for reply in self.link.waiting.drain(..) {
            let _ = reply.send(Ok(view.clone()));
        }
        Ok(())
    }
}

/// Where a new device can reach us, for the link code: direct addresses
/// first, then circuits through our relays (a device behind another NAT
/// links through them), at most [`MAX_LINK_ADDRESSES`].
fn link_addresses(listen: &[libp2p::Multiaddr]) -> Vec<String> {
    let circuit = |a: &libp2p::Multiaddr| {
        a.iter()
            .any(|p| matches!(p, libp2p::multiaddr::Protocol::P2pCircuit))
    };
    let (mut direct, circuits): (Vec<_>, Vec<_>) = listen.iter().partition(|a| !circuit(a));
    // Keep room for one circuit when there is one.
    let room = MAX_LINK_ADDRESSES - usize::from(!circuits.is_empty());
    direct.truncate(room);
    direct
        .into_iter()
        .chain(circuits)
        .take(MAX_LINK_ADDRESSES)
        .map(|a| a.to_string())
        .collect()
}

//! The client and server halves of the mailbox protocol together, on a
//! fake clock: a relay engine over its in-memory store, and one device's
//! drain loop (`HomeMailbox`) with its mailbox key, exchanging real request
//! and response bytes. Nothing here opens a socket or reads a clock.

use std::collections::VecDeque;

use ed25519_dalek::{Signer, SigningKey};
use hush_protocol::device::{DrainStep, HomeMailbox, PageHandled, PageStart};
use hush_protocol::relay::{MemoryMailStore, Quotas, RelayEngine, RelayRules};
use hush_protocol::{
    Auth, DepositResult, DepositRight, DeviceId, MailboxId, MailboxRequest, MailboxResponse,
    MailboxSecret, Now, OwnerRequest, SealedEnvelope, Wire,
};

const TICK_MS: u64 = 100;
const POLL_MS: u64 = 1_000;

/// What a request to the relay was, so its answer finds its way back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sent {
    Deposit(u32),
    Info,
    Fetch,
    Ack,
}

/// The receiving device: its keys, its drain loop and what it stored.
struct Bob {
    key: SigningKey,
    mailbox_secret: MailboxSecret,
    drain: HomeMailbox,
    stored: Vec<u32>,
    /// Storing stalls once at this message (the store is busy).
    stall_at: Option<u32>,
    online: bool,
}

impl Bob {
    fn device(&self) -> DeviceId {
        DeviceId(self.key.verifying_key().to_bytes())
    }

    fn mailbox(&self) -> MailboxId {
        MailboxId::of(&self.device())
    }

    fn signed(&self, request: OwnerRequest) -> MailboxRequest {
        let challenge = self.drain.challenge().unwrap_or([0; 32]);
        let signature = self
            .key
            .sign(&Auth::signed_bytes(&challenge, &request.body_bytes()));
        MailboxRequest::Owner {
            auth: Box::new(Auth {
                device: self.device(),
                challenge,
                signature: signature.to_bytes(),
            }),
            request,
        }
    }
}

/// A request on its way to the relay: sender, reply token, bytes.
type InFlight = (&'static [u8], (u64, Sent), Vec<u8>);

struct World {
    now: Now,
    relay: RelayEngine<(u64, Sent)>,
    store: MemoryMailStore,
    bob: Bob,
    wire: VecDeque<InFlight>,
    next_token: u64,
    /// Alice's deposits not yet acknowledged as stored: number → sealed.
    alice_unsent: Vec<(u32, Vec<u8>)>,
    alice_waiting: Vec<(u32, Vec<u8>)>,
}

impl World {
    fn new() -> Self {
        let now = Now::new(0, 1_800_000_000_000);
        let store = MemoryMailStore::default();
        let rules = RelayRules {
            quotas: Quotas::default(),
            retention_secs: 3600,
            push: Default::default(),
        };
        let relay = RelayEngine::load(rules, [[1; 32], [2; 32]], &store, now).unwrap();
        let secret = [9u8; 32];
        let bob = Bob {
            key: SigningKey::from_bytes(&secret),
            mailbox_secret: MailboxSecret::derive(&secret),
            drain: HomeMailbox::new(now, POLL_MS),
            stored: Vec::new(),
            stall_at: None,
            online: false,
        };
        Self {
            now,
            relay,
            store,
            bob,
            wire: VecDeque::new(),
            next_token: 0,
            alice_unsent: Vec::new(),
            alice_waiting: Vec::new(),
        }
    }

    /// Alice leaves messages `range` for bob, sealed to his mailbox key.
    fn alice_sends(&mut self, range: std::ops::Range<u32>) {
        let mailbox = self.bob.mailbox();
        let key = self.bob.mailbox_secret.public_key();
        for n in range {
            let sealed = SealedEnvelope::seal(&key, &mailbox, &n.to_be_bytes()).unwrap();
            self.alice_unsent.push((n, sealed));
        }
    }

    fn send(&mut self, from: &'static [u8], sent: Sent, request: &MailboxRequest) {
        self.next_token += 1;
        self.wire
            .push_back((from, (self.next_token, sent), request.to_bytes()));
    }

    fn bob_step(&mut self, step: DrainStep) {
        let (sent, request) = match step {
            DrainStep::AskChallenge => (Sent::Info, MailboxRequest::Info),
            DrainStep::Fetch { after, wait } => {
                let fetch = OwnerRequest::Fetch {
                    after,
                    limit: 256,
                    wait_ms: if wait { 20_000 } else { 0 },
                };
                (Sent::Fetch, self.bob.signed(fetch))
            }
        };
        self.send(b"bob", sent, &request);
    }

    /// Bob handles a page as the node does: open, store in order, ack what
    /// is stored; stop at a stall.
    fn bob_page(&mut self, items: Vec<(u64, Vec<u8>)>, more: bool, keys_left: u32) {
        let last = items.last().map(|(s, _)| *s);
        let from = match self.bob.drain.page_arrived(self.now, last, more) {
            PageStart::Discard => return,
            PageStart::Handle { from, prefetch } => {
                if let Some(step) = prefetch {
                    self.bob_step(step);
                }
                from
            }
        };
        let mut cursor = from;
        let mut stalled = false;
        let mut acks = Vec::new();
        let got_any = !items.is_empty();
        for (seq, sealed) in items {
            let plain = self
                .bob
                .mailbox_secret
                .open(&self.bob.mailbox(), &sealed)
                .unwrap();
            let n = u32::from_be_bytes(plain.try_into().unwrap());
            if self.bob.stall_at == Some(n) {
                self.bob.stall_at = None;
                stalled = true;
                break;
            }
            if !self.bob.stored.contains(&n) {
                self.bob.stored.push(n);
            }
            acks.push(seq);
            cursor = cursor.max(seq);
        }
        if !acks.is_empty() {
            let ack = self.bob.signed(OwnerRequest::Ack { seqs: acks });
            self.send(b"bob", Sent::Ack, &ack);
        }
        let handled = PageHandled {
            cursor,
            keys_left,
            stalled,
            got_any,
            more,
        };
        if let Some(step) = self.bob.drain.page_handled(self.now, handled) {
            self.bob_step(step);
        }
    }

    fn deliver(&mut self, token: (u64, Sent), response: MailboxResponse) {
        match (token.1, response) {
            (Sent::Deposit(_), MailboxResponse::Deposited { results }) => {
                let batch = std::mem::take(&mut self.alice_waiting);
                for ((n, sealed), result) in batch.into_iter().zip(results) {
                    if matches!(result, DepositResult::Refused(_)) {
                        self.alice_unsent.push((n, sealed));
                    }
                }
                self.alice_unsent.sort_by_key(|(n, _)| *n);
            }
            (Sent::Info, MailboxResponse::Info { challenge, .. }) => {
                let step = self.bob.drain.challenge_arrived(self.now, challenge);
                self.bob_step(step);
            }
            (
                Sent::Fetch,
                MailboxResponse::Items {
                    items,
                    more,
                    keys_left,
                },
            ) => self.bob_page(items, more, keys_left),
            (Sent::Ack, MailboxResponse::Acked { .. }) => {}
            (sent, other) => panic!("{sent:?} answered with {other:?}"),
        }
    }

    /// Runs the world for `ms` of fake time, a tick at a time.
    fn run(&mut self, ms: u64) {
        let until = self.now.mono_ms + ms;
        while self.now.mono_ms < until {
            // Alice keeps one deposit of up to 16 in flight.
            if self.alice_waiting.is_empty() && !self.alice_unsent.is_empty() {
                let n = self.alice_unsent.len().min(16);
                self.alice_waiting = self.alice_unsent.drain(..n).collect();
                let items = self
                    .alice_waiting
                    .iter()
                    .map(|(_, s)| hush_protocol::DepositItem::new(self.bob.mailbox(), s.clone()))
                    .collect();
                let first = self.alice_waiting[0].0;
                self.send(
                    b"alice",
                    Sent::Deposit(first),
                    &MailboxRequest::Deposit {
                        // bob's contact: its mail is not a stranger's.
                        right: Some(DepositRight::grant(&self.bob.key, [1; 16])),
                        items,
                    },
                );
            }
            if self.bob.online
                && let Some(step) = self.bob.drain.poll(self.now)
            {
                self.bob_step(step);
            }
            // Everything on the wire arrives; the relay commits; answers
            // come back; until nothing moves.
            loop {
                while let Some((from, token, bytes)) = self.wire.pop_front() {
                    self.relay
                        .handle_request(self.now, from, &bytes, token, &self.store);
                }
                if let Some(writes) = self.relay.poll_commit() {
                    let result = self.store.apply(writes);
                    self.relay.handle_committed(result, &self.store);
                }
                let mut moved = false;
                while let Some((token, response)) = self.relay.poll_reply() {
                    moved = true;
                    self.deliver(token, response);
                }
                if !moved && self.wire.is_empty() && !self.relay.is_committing() {
                    break;
                }
            }
            self.now = self.now.plus_ms(TICK_MS);
            self.relay.handle_timeout(self.now, &self.store);
            while let Some((token, response)) = self.relay.poll_reply() {
                self.deliver(token, response);
            }
        }
    }
}

#[test]
fn mail_left_while_offline_is_drained_in_order_once_acked_and_deleted() {
    let mut world = World::new();
    // Two full pages of 256 and a part.
    world.alice_sends(0..300);
    // One deposit of 16 in flight per tick: 19 ticks.
    world.run(2_500);
    assert!(world.alice_unsent.is_empty() && world.alice_waiting.is_empty());
    assert_eq!(world.store.len(), 300, "all of it waits at the relay");
    world.bob.online = true;
    world.run(2_000);
    assert_eq!(world.bob.stored, (0..300).collect::<Vec<_>>());
    assert!(world.store.is_empty(), "acked mail is deleted");
    // Drained: a fetch is held open, and new mail answers it at once.
    world.alice_sends(300..301);
    world.run(TICK_MS);
    assert_eq!(world.bob.stored.last(), Some(&300));
    assert_eq!(world.relay.stats().delivered, 301);
}

#[test]
fn a_stall_mid_drain_loses_and_reorders_nothing() {
    let mut world = World::new();
    world.alice_sends(0..300);
    world.run(2_500);
    // In the first page, while the second is already on its way.
    world.bob.stall_at = Some(200);
    world.bob.online = true;
    world.run(3_000);
    assert_eq!(world.bob.stored, (0..300).collect::<Vec<_>>());
    assert!(world.store.is_empty());
}

#[test]
fn a_failed_relay_commit_is_retried_and_nothing_is_lost() {
    let mut world = World::new();
    world.bob.online = true;
    world.run(1_000);
    world.alice_sends(0..40);
    world.store.fail_next_commit = true;
    world.run(3_000);
    assert_eq!(world.bob.stored, (0..40).collect::<Vec<_>>());
    assert!(world.store.is_empty());
}

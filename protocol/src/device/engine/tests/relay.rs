//! The harness with a relay engine: deposits, key claims, and the drain
//! loop of a device's home mailbox (`HomeMailbox`), as the node runs them.

use super::*;
use crate::{BatchItem, BatchRequest, KeySet, Refusal, SealedEnvelope};

impl Net {
    /// Lets `ms` pass ten times (retries, polls).
    pub(super) fn advance_10(&mut self, ms: u64) {
        for _ in 0..10 {
            self.advance(ms);
        }
    }

    /// A stranger's raw deposit at the relay, answered and committed.
    fn stranger_deposits(&mut self, sender: &[u8], request: &MailboxRequest) {
        let store = &self.relay_store;
        let bytes = request.to_bytes();
        self.relay
            .handle_request(self.now, sender, &bytes, (0, Ask::Junk), store);
        self.run_relay();
    }

    /// Commits what the relay asks and hands its answers back.
    pub(super) fn run_relay(&mut self) {
        loop {
            if let Some(writes) = self.relay.poll_commit() {
                let result = self.relay_store.apply(writes);
                self.relay.handle_committed(result, &self.relay_store);
            }
            let mut moved = false;
            while let Some(((to, ask), response)) = self.relay.poll_reply() {
                moved = true;
                self.relay_answer(to, ask, response);
            }
            if !moved && !self.relay.is_committing() {
                return;
            }
        }
    }

    fn relay_answer(&mut self, i: usize, ask: Ask, response: MailboxResponse) {
        if !self.devs[i].online {
            // The connection is gone: the request failed.
            let now = self.now;
            if let Some(drain) = &mut self.devs[i].drain {
                drain.failed(now, "offline".into());
            }
            return;
        }
        match (ask, response) {
            (Ask::Junk, _) => {}
            (Ask::Claim(device), response) => {
                let answer = match response {
                    MailboxResponse::Key(bundle) => Ok(bundle),
                    other => Err(format!("{other:?}")),
                };
                self.call(i, |e, ctx, _| e.handle_claimed(ctx, RELAY, device, answer));
            }
            (Ask::Deposit(device, keys), response) => {
                let answer = match response {
                    MailboxResponse::Deposited { results } => Ok(results),
                    other => Err(format!("{other:?}")),
                };
                self.call(i, |e, ctx, disk| {
                    e.handle_deposited(ctx, disk, RELAY, device, &keys, answer);
                });
            }
            (Ask::Info, MailboxResponse::Info { challenge, .. }) => {
                let now = self.now;
                if let Some(step) = self.devs[i]
                    .drain
                    .as_mut()
                    .map(|d| d.challenge_arrived(now, challenge))
                {
                    self.drain_step(i, step);
                }
            }
            (
                Ask::Fetch,
                MailboxResponse::Batch {
                    items,
                    more,
                    keys_left,
                },
            ) => self.mail_page(i, items, more, keys_left),
            (Ask::Ack, MailboxResponse::Acked { .. }) => {}
            (Ask::PutKeys, MailboxResponse::KeysStored { one_time }) => {
                if let Some(drain) = &mut self.devs[i].drain {
                    drain.keys_stored(one_time);
                }
            }
            (ask, other) => panic!("{ask:?} answered with {other:?}"),
        }
    }

    /// The relay again, empty, with these quotas.
    fn use_quotas(&mut self, quotas: Quotas) {
        let rules = RelayRules {
            quotas,
            retention_secs: 3600,
            push: Default::default(),
        };
        self.relay = RelayEngine::load(rules, [[1; 32], [2; 32]], &self.relay_store, self.now)
            .expect("a relay over an empty store");
    }

    /// Device `i`'s current challenge at the relay (zeros before it has one).
    fn challenge(&self, i: usize) -> [u8; 32] {
        self.devs[i]
            .drain
            .as_ref()
            .and_then(|r| r.challenge())
            .unwrap_or([0; 32])
    }

    /// An owner request of device `i`, signed over its current challenge.
    fn signed(&self, i: usize, request: OwnerRequest) -> MailboxRequest {
        let d = &self.devs[i];
        let challenge = self.challenge(i);
        let signature = d
            .signing
            .sign(&Auth::signed_bytes(&challenge, &request.body_bytes()));
        MailboxRequest::Owner {
            auth: Box::new(Auth {
                device: d.keys.device_id,
                challenge,
                signature: signature.to_bytes(),
            }),
            request,
        }
    }

    /// A batch of device `i` over its own mailbox and the pairwise ones
    /// its last fetch named, with the set in full.
    fn batch(&self, i: usize, request: BatchRequest) -> MailboxRequest {
        let d = &self.devs[i];
        let challenge = self.challenge(i);
        let ids: Vec<DeviceId> = d.mail_keys.iter().map(|k| k.key()).collect();
        let digest = KeySet::digest(&challenge, &d.keys.device_id, &ids);
        let proof = KeySet::proof_bytes(&digest);
        let keys = KeySet::Full {
            proofs: d.mail_keys.iter().map(|k| k.sign(&proof)).collect(),
            keys: ids,
        };
        let signature = d
            .signing
            .sign(&Auth::signed_bytes(&challenge, &request.body_bytes(&keys)));
        MailboxRequest::Batch {
            auth: Box::new(Auth {
                device: d.keys.device_id,
                challenge,
                signature: signature.to_bytes(),
            }),
            keys,
            request,
        }
    }

    pub(super) fn drain_step(&mut self, i: usize, step: DrainStep) {
        let (ask, request) = match step {
            DrainStep::AskChallenge => (Ask::Info, MailboxRequest::Info),
            DrainStep::Fetch { after, .. } => {
                let now = self.now.unix_ms;
                let d = &mut self.devs[i];
                d.mail_keys = d.engine.pairwise_mailboxes(now, None);
                let fetch = BatchRequest::Fetch { after, limit: 256 };
                (Ask::Fetch, self.batch(i, fetch))
            }
        };
        self.wire.push_back(Wire_::Relay {
            from: i,
            ask,
            bytes: request.to_bytes(),
        });
    }

    /// A page of device `i`'s mail, handled as the node does: open, place
    /// through the engine, ack what is stored (the commit is immediate
    /// here), read on.
    fn mail_page(&mut self, i: usize, items: Vec<BatchItem>, more: bool, keys_left: u32) {
        let now = self.now;
        let last = items.last().map(|(_, s, _)| *s);
        let Some(drain) = self.devs[i].drain.as_mut() else {
            return;
        };
        let from = match drain.page_arrived(now, last, more) {
            PageStart::Discard => return,
            PageStart::Handle { from, prefetch } => {
                if let Some(step) = prefetch {
                    self.drain_step(i, step);
                }
                from
            }
        };
        let got_any = !items.is_empty();
        let d = &mut self.devs[i];
        let own = MailboxId::of(&d.keys.device_id);
        let mut opened = Vec::new();
        for (index, seq, sealed) in items {
            let (mailbox, open) = match usize::from(index).checked_sub(1) {
                None => (own, d.mailbox.open(&own, &sealed)),
                Some(k) => {
                    let key = &d.mail_keys[k];
                    (key.mailbox(), key.open(&sealed))
                }
            };
            d.unacked.insert(seq, mailbox);
            opened.push((seq, open));
        }
        let page = self.call(i, |e, ctx, disk| e.handle_mail(ctx, disk, from, opened));
        let expired = self.devs[i]
            .drain
            .as_mut()
            .map(|d| d.strangers(now, &page.strangers))
            .unwrap_or_default();
        let seqs = [page.ack_now, page.ack_after, expired].concat();
        if !seqs.is_empty() {
            let d = &mut self.devs[i];
            let own = MailboxId::of(&d.keys.device_id);
            let mailboxes: Vec<MailboxId> = std::iter::once(own)
                .chain(d.mail_keys.iter().map(|k| k.mailbox()))
                .collect();
            let items = seqs
                .into_iter()
                .filter_map(|seq| {
                    let mailbox = d.unacked.remove(&seq).unwrap_or(own);
                    let index = mailboxes.iter().position(|m| *m == mailbox)?;
                    Some((u16::try_from(index).ok()?, seq))
                })
                .collect();
            let ack = self.batch(i, BatchRequest::Ack { items });
            self.wire.push_back(Wire_::Relay {
                from: i,
                ask: Ask::Ack,
                bytes: ack.to_bytes(),
            });
        }
        let handled = PageHandled {
            cursor: page.cursor,
            keys_left,
            stalled: page.stalled,
            got_any,
            more,
        };
        let step = self.devs[i]
            .drain
            .as_mut()
            .and_then(|d| d.page_handled(now, handled));
        if self.devs[i].drain.as_ref().is_some_and(|d| d.is_drained()) {
            self.call(i, |e, ctx, _| e.mailbox_drained(ctx));
        }
        if let Some(step) = step {
            self.drain_step(i, step);
        }
    }

    /// Device `i` stocks one-time keys (and its fallback key) at its relay.
    pub(super) fn upload_keys(&mut self, i: usize) {
        let device = self.devs[i].keys.device_id;
        let olm = &mut self.devs[i].engine.olm;
        let one_time = olm.one_time_key_bundles(device, 5);
        let fallback = olm.new_fallback_key_bundle(device);
        let request = self.signed(i, OwnerRequest::PutKeys { one_time, fallback });
        self.wire.push_back(Wire_::Relay {
            from: i,
            ask: Ask::PutKeys,
            bytes: request.to_bytes(),
        });
        self.drive();
    }
}

#[test]
fn mail_left_at_the_relay_while_offline_is_drained_and_comes_back_delivered() {
    let mut net = Net::with_relay(&["alice", "bob"], &["bob"]);
    // bob's node runs once: its drain loop gets a challenge, and it stocks
    // one-time keys at its relay.
    net.advance(POLL_MS);
    net.upload_keys(1);
    net.devs[1].online = false;
    net.send(0, "bob", "while you were out");
    // Nobody answers directly: alice claims bob's key at his relay, and
    // leaves the message there once the retry comes.
    net.advance_10(FIRST_RETRY_MS);
    assert_eq!(
        statuses(&net.devs[0]),
        [("while you were out".to_owned(), Status::Sent)]
    );
    assert_eq!(net.relay_store.len(), 1, "it waits at the relay");
    assert!(net.devs[1].disk.messages.is_empty());
    // bob is back: he drains it, the relay deletes it, and his delivered
    // receipt reaches alice directly.
    net.devs[1].online = true;
    net.advance_10(POLL_MS);
    assert_eq!(
        net.devs[1].disk.texts(),
        [(true, "while you were out".to_owned(), Status::Delivered)]
    );
    assert!(net.relay_store.is_empty(), "acked mail is deleted");
    assert_eq!(
        statuses(&net.devs[0]),
        [("while you were out".to_owned(), Status::Delivered)]
    );
    assert!(net.devs[0].disk.outbox.is_empty());
}

#[test]
fn a_full_mailbox_is_told_once_and_the_message_stays_queued() {
    let mut net = Net::with_relay(&["alice", "bob"], &["bob"]);
    net.use_quotas(Quotas {
        mailbox_items: 1,
        ..Quotas::default()
    });
    net.advance(POLL_MS);
    net.upload_keys(1);
    net.devs[1].online = false;
    net.send(0, "bob", "one");
    net.send(0, "bob", "two");
    for _ in 0..20 {
        net.advance(FIRST_RETRY_MS * 4);
    }
    let told: Vec<&DeviceNotice> = net.devs[0]
        .notices
        .iter()
        .filter(|n| matches!(n, DeviceNotice::Undeliverable { .. }))
        .collect();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!(
        statuses(&net.devs[0]),
        [
            ("one".to_owned(), Status::Sent),
            ("two".to_owned(), Status::Pending)
        ]
    );
    assert_eq!(net.devs[0].disk.outbox.len(), 2, "both stay queued");
}

/// Attack (issue 13, item 4, mailbox blocking): anyone holding bob's card
/// deposits junk into his mailbox from fresh peer ids (they are free) until
/// the mailbox is full; bob's contacts then got `MailboxFull` for the 30
/// days the junk is kept. Strangers now share a small part of the mailbox;
/// a contact's mail carries bob's deposit right and still gets in.
#[test]
fn a_flood_from_fresh_peer_ids_does_not_block_a_contacts_mail() {
    let mut net = Net::with_relay(&["alice", "bob"], &["bob"]);
    net.use_quotas(Quotas {
        mailbox_items: 300,
        sender_items: 5,
        stranger_items: 100,
        ..Quotas::default()
    });
    net.advance(POLL_MS);
    net.upload_keys(1);
    net.devs[1].online = false;
    let mailbox = MailboxId::of(&net.devs[1].keys.device_id);
    let key = net.devs[1].mailbox.public_key();
    for peer in 0..100u32 {
        let items = (0..5u32)
            .map(|n| {
                let junk = [peer.to_be_bytes(), n.to_be_bytes()].concat();
                crate::DepositItem::new(
                    mailbox,
                    SealedEnvelope::seal(&key, &mailbox, &junk).unwrap(),
                )
            })
            .collect();
        let request = MailboxRequest::Deposit { right: None, items };
        let sender = [b"stranger".as_slice(), &peer.to_be_bytes()].concat();
        net.stranger_deposits(&sender, &request);
    }
    let refused = net.relay.stats().refusals[Refusal::StrangerQuota as usize];
    assert_eq!(refused, 400, "the flood met the strangers' share");
    assert_eq!(
        net.relay_store.len(),
        100,
        "strangers hold 100 of 300 items"
    );
    net.send(0, "bob", "you still get this");
    net.advance_10(FIRST_RETRY_MS);
    assert_eq!(
        statuses(&net.devs[0]),
        [("you still get this".to_owned(), Status::Sent)]
    );
    net.devs[1].online = true;
    net.advance_10(POLL_MS);
    assert!(net.devs[1].disk.texts().contains(&(
        true,
        "you still get this".to_owned(),
        Status::Delivered
    )));
}

/// Attack (issue 13, item 7): a stranger without any right deposits junk
/// to many mailbox ids (any id is accepted: the relay cannot know which
/// exist) until the relay's whole disk budget is used; every contact's mail
/// was then refused `RelayFull` for the 30 days the junk is kept. Strangers
/// together now get a share of the disk budget; mail with a deposit right
/// still gets in.
#[test]
fn strangers_filling_the_relay_through_many_mailboxes_do_not_block_a_contacts_mail() {
    let mut net = Net::with_relay(&["alice", "bob"], &["bob"]);
    let quotas = Quotas {
        disk_bytes: 4 * 1024 * 1024,
        stranger_bytes: 1024 * 1024,
        ..Quotas::default()
    };
    net.use_quotas(quotas);
    net.advance(POLL_MS);
    net.upload_keys(1);
    net.devs[1].online = false;
    // 2000 made-up mailboxes, a few KiB of junk each.
    for n in 0..2000u32 {
        let mailbox = MailboxId(*blake3::hash(&n.to_be_bytes()).as_bytes());
        let sealed = SealedEnvelope {
            encapped: [7; 32],
            ciphertext: [n.to_be_bytes().as_slice(), &[0; 4096]].concat(),
        };
        let request = MailboxRequest::Deposit {
            right: None,
            items: vec![crate::DepositItem::new(mailbox, sealed.to_bytes())],
        };
        let store = &net.relay_store;
        net.relay.handle_request(
            net.now,
            b"stranger",
            &request.to_bytes(),
            (0, Ask::Junk),
            store,
        );
        net.run_relay();
    }
    let refusals = net.relay.stats().refusals;
    assert!(
        refusals[Refusal::StrangerQuota as usize] > 0,
        "the flood met the strangers' share"
    );
    assert_eq!(refusals[Refusal::RelayFull as usize], 0);
    net.send(0, "bob", "you still get this");
    net.advance_10(FIRST_RETRY_MS);
    assert_eq!(
        statuses(&net.devs[0]),
        [("you still get this".to_owned(), Status::Sent)]
    );
}

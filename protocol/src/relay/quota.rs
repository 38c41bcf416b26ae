//! Quotas: how much one mailbox, one sender and the whole relay may hold,
//! and the usage counted against them.

use std::collections::HashMap;

use serde::Deserialize;

use super::secrets::is_holder;
use crate::{MAX_SEALED_LEN, MailboxId, Refusal};

/// Limits that keep one mailbox, one sender or the whole relay from using
/// more than its share.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Quotas {
    /// Largest sealed envelope accepted, in bytes.
    pub max_item_bytes: u64,
    /// Most items one mailbox holds.
    pub mailbox_items: u64,
    /// Most bytes one mailbox holds.
    pub mailbox_bytes: u64,
    /// Most items one sender may have waiting in one mailbox, so a flooding
    /// sender fills only its own share and never pushes anyone else out.
    pub sender_items: u64,
    /// Most items one mailbox holds from senders without a deposit right
    /// (strangers, all of them together), so a flood of fresh peer ids
    /// fills only this share and contacts' mail still gets in.
    pub stranger_items: u64,
    /// Most bytes of mail from strangers the relay holds over all
    /// mailboxes: mailbox ids are free too, so without this share a flood
    /// to made-up mailboxes would fill `disk_bytes` and turn contacts' mail
    /// away with `RelayFull`.
    pub stranger_bytes: u64,
    /// Most items from strangers one IP address may deposit per minute
    /// (over all its peer ids and mailboxes); beyond, `Unavailable`.
    pub stranger_items_per_ip_minute: u64,
    /// Total bytes of mail the relay stores.
    pub disk_bytes: u64,
    /// Most one-time keys hosted per device.
    pub one_time_keys_per_device: u64,
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            max_item_bytes: MAX_SEALED_LEN as u64,
            mailbox_items: 10_000,
            mailbox_bytes: 256 * 1024 * 1024,
            sender_items: 2_000,
            stranger_items: 200,
            stranger_bytes: 1024 * 1024 * 1024,
            stranger_items_per_ip_minute: 600,
            disk_bytes: 10 * 1024 * 1024 * 1024,
            one_time_keys_per_device: 100,
        }
    }
}

/// Mail counted per mailbox, per (mailbox, sender) and over the relay. It
/// counts what is stored or on its way into the store.
#[derive(Debug, Default)]
pub(super) struct Usage {
    /// Items and bytes per mailbox.
    mailboxes: HashMap<MailboxId, (u64, u64)>,
    senders: HashMap<(MailboxId, u64), u64>,
    /// Items from strangers per mailbox.
    strangers: HashMap<MailboxId, u64>,
    /// Bytes from strangers over all mailboxes.
    stranger_bytes: u64,
    pub(super) items: u64,
    pub(super) bytes: u64,
    /// Bytes the relay keeps besides mail (group history), in the same
    /// disk budget.
    pub(super) other: u64,
}

impl Usage {
    pub(super) fn from_rows(rows: impl IntoIterator<Item = (MailboxId, u64, u64)>) -> Self {
        let mut usage = Self::default();
        for (mailbox, bytes, tag) in rows {
            usage.add(mailbox, bytes, tag);
        }
        usage
    }

    /// Which quota, if any, one more item of `len` bytes from `tag` into
    /// `mailbox` would break.
    pub(super) fn check(
        &self,
        quotas: &Quotas,
        mailbox: &MailboxId,
        tag: u64,
        len: u64,
    ) -> Option<Refusal> {
        let stranger = !is_holder(tag);
        if stranger && self.stranger_bytes + len > quotas.stranger_bytes {
            // Before the disk: strangers never use more than their share.
            Some(Refusal::StrangerQuota)
        } else if self.bytes + self.other + len > quotas.disk_bytes {
            Some(Refusal::RelayFull)
        } else if self
            .mailboxes
            .get(mailbox)
            .is_some_and(|(n, b)| *n >= quotas.mailbox_items || b + len > quotas.mailbox_bytes)
        {
            Some(Refusal::MailboxFull)
        } else if self
            .senders
            .get(&(*mailbox, tag))
            .is_some_and(|n| *n >= quotas.sender_items)
        {
            Some(Refusal::SenderQuota)
        } else if stranger
            && self
                .strangers
                .get(mailbox)
                .is_some_and(|n| *n >= quotas.stranger_items)
        {
            Some(Refusal::StrangerQuota)
        } else {
            None
        }
    }

    /// Whether anything is stored (or on its way into the store) in
    /// `mailbox`.
    pub(super) fn holds(&self, mailbox: &MailboxId) -> bool {
        self.mailboxes.contains_key(mailbox)
    }

    pub(super) fn add(&mut self, mailbox: MailboxId, bytes: u64, tag: u64) {
        let m = self.mailboxes.entry(mailbox).or_default();
        m.0 += 1;
        m.1 += bytes;
        *self.senders.entry((mailbox, tag)).or_default() += 1;
        if !is_holder(tag) {
            *self.strangers.entry(mailbox).or_default() += 1;
            self.stranger_bytes += bytes;
        }
        self.items += 1;
        self.bytes += bytes;
    }

    pub(super) fn remove(&mut self, mailbox: MailboxId, bytes: u64, tag: u64) {
        if let Some(m) = self.mailboxes.get_mut(&mailbox) {
            m.0 = m.0.saturating_sub(1);
            m.1 = m.1.saturating_sub(bytes);
            if m.0 == 0 {
                self.mailboxes.remove(&mailbox);
            }
        }
        if let Some(n) = self.senders.get_mut(&(mailbox, tag)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.senders.remove(&(mailbox, tag));
            }
        }
        if !is_holder(tag) {
            self.stranger_bytes = self.stranger_bytes.saturating_sub(bytes);
            if let Some(n) = self.strangers.get_mut(&mailbox) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.strangers.remove(&mailbox);
                }
            }
        }
        self.items = self.items.saturating_sub(1);
        self.bytes = self.bytes.saturating_sub(bytes);
    }
}

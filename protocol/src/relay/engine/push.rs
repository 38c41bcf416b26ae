//! Push for offline devices: a device registers a [`PushTarget`] with its
//! home relay (`OwnerRequest::SetPush`); when mail lands for it while it is
//! not connected, the engine hands the host a wake-up to POST
//! ([`RelayEngine::poll_push`]), at most once per
//! [`PushRules::min_interval_secs`].
//!
//! A device counts as connected from its first owner or batch request over
//! a connection until the host reports that its peer's last connection
//! closed ([`RelayEngine::handle_connection`]). Mail in its pairwise
//! mailboxes counts as its mail too: the relay learns which they are from
//! the device's key sets, and keeps that in memory only (after a restart,
//! pairwise mail wakes a device again once it has fetched once).
//!
//! ```text
//!  SetPush{target} ─▶ PutPush ─(commit)─▶ PushSet{active}
//!  deposit ─(commit)─▶ mailbox → device offline? ─▶ due ─(interval)─▶ poll_push ─▶ host POSTs
//!  owner request / connection ─▶ online: nothing due
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;

use serde::Deserialize;

use super::{After, RelayEngine};
use crate::relay::RelayWrite;
use crate::{DeviceId, MailboxId, MailboxResponse, Now, PushTarget, PushUrl, Refusal};

/// Wake-ups waiting for the host, at most; beyond it the newest are
/// dropped (and counted).
pub const MAX_PUSH_QUEUE: usize = 4096;
/// Push registrations (and removals) one IP address may make a minute;
/// beyond, `Unavailable`. Device keys are free: without it one machine
/// could fill `max_devices` in minutes.
pub const PUSH_SETS_PER_IP_MINUTE: u32 = 10;
/// Pairwise mailboxes remembered for registered devices, all together;
/// past it, a device's pairwise mail does not wake it (its own mail does).
pub const MAX_PUSH_MAILBOXES: usize = 1 << 18;

/// What a relay's operator allows (`[push]` in the relay's config).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct PushRules {
    /// Whether devices may register push endpoints at all.
    pub enabled: bool,
    /// A device is woken at most once per this many seconds.
    pub min_interval_secs: u64,
    /// Endpoint hosts allowed (each with its subdomains); empty: any.
    pub allow_hosts: Vec<String>,
    /// Whether plain `http://` endpoints are allowed.
    pub allow_http: bool,
    /// Whether endpoints on loopback, private or link-local addresses are
    /// allowed (they reach the relay's own network: off unless the relay
    /// serves one LAN).
    pub allow_private: bool,
    /// Devices with a registration, at most.
    pub max_devices: usize,
}

impl Default for PushRules {
    fn default() -> Self {
        Self {
            enabled: true,
            min_interval_secs: 60,
            allow_hosts: Vec::new(),
            allow_http: false,
            allow_private: false,
            max_devices: 100_000,
        }
    }
}

impl PushRules {
    /// Why `endpoint` is refused, if it is: the message the device gets.
    pub fn check(&self, endpoint: &str) -> Result<PushUrl, String> {
        if !self.enabled {
            return Err("this relay does not send push notifications".into());
        }
        let url = PushUrl::parse(endpoint).map_err(str::to_owned)?;
        if !url.https && !self.allow_http {
            return Err("this relay sends push only to https:// endpoints".into());
        }
        if !self.allow_hosts.is_empty() && !self.allow_hosts.iter().any(|h| url.host_is_under(h)) {
            return Err(format!(
                "this relay sends push only to {}",
                self.allow_hosts.join(", ")
            ));
        }
        if let Ok(ip) = url.host.parse::<IpAddr>()
            && !self.allow_private
            && !is_public(ip)
        {
            return Err("this relay sends no push to private or local addresses".into());
        }
        Ok(url)
    }
}

/// Whether `ip` is on the public internet: not loopback, private,
/// link-local, shared (CGNAT), documentation, multicast or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 198 && (18..20).contains(&b))
                || (a == 192 && b == 0 && v4.octets()[2] == 0)
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            // IPv4-mapped, IPv4-compatible (`::a.b.c.d`, `::1` and `::`
            // included) and NAT64 (`64:ff9b::/96`): the IPv4 address
            // inside decides.
            if let Some(v4) = v6.to_ipv4() {
                return is_public(IpAddr::V4(v4));
            }
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [a, b] = s[6].to_be_bytes();
                let [c, d] = s[7].to_be_bytes();
                return is_public(IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d)));
            }
            !(v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

#[derive(Debug)]
struct Registration {
    target: PushTarget,
    /// The peer the device's requests came from (its connection's).
    peer: Option<Vec<u8>>,
    online: bool,
    /// When the last wake-up went out (monotonic ms).
    last_sent_ms: Option<u64>,
    /// Its pairwise mailboxes, as its last key set named them.
    pairwise: Vec<MailboxId>,
}

/// Every registration, and what is due.
#[derive(Debug, Default)]
pub(super) struct Pushes {
    devices: HashMap<DeviceId, Registration>,
    /// The mailboxes of registered devices (own and pairwise) → device.
    mailboxes: HashMap<MailboxId, DeviceId>,
    peers: HashMap<Vec<u8>, DeviceId>,
    pairwise_total: usize,
    /// Offline devices that got mail since they were last woken.
    due: HashSet<DeviceId>,
    out: VecDeque<PushTarget>,
}

impl Pushes {
    /// The stored registrations the rules allow now (an operator may have
    /// turned push off or narrowed the hosts since); the others are kept
    /// on disk but not woken.
    pub(super) fn load(targets: Vec<(DeviceId, PushTarget)>, rules: &PushRules) -> Self {
        let mut pushes = Self::default();
        for (device, target) in targets {
            if pushes.len() < rules.max_devices && rules.check(&target.endpoint).is_ok() {
                pushes.insert(device, target);
            }
        }
        pushes
    }

    pub(super) fn len(&self) -> usize {
        self.devices.len()
    }

    fn insert(&mut self, device: DeviceId, target: PushTarget) {
        match self.devices.get_mut(&device) {
            // A new registration (a new token) starts a new interval.
            Some(reg) => {
                reg.target = target;
                reg.last_sent_ms = None;
            }
            None => {
                self.mailboxes.insert(MailboxId::of(&device), device);
                self.devices.insert(
                    device,
                    Registration {
                        target,
                        peer: None,
                        online: false,
                        last_sent_ms: None,
                        pairwise: Vec::new(),
                    },
                );
            }
        }
    }

    pub(super) fn remove(&mut self, device: &DeviceId) {
        let Some(reg) = self.devices.remove(device) else {
            return;
        };
        self.mailboxes.remove(&MailboxId::of(device));
        self.forget_pairwise(&reg.pairwise);
        if let Some(peer) = reg.peer {
            self.peers.remove(&peer);
        }
        self.due.remove(device);
    }

    fn forget_pairwise(&mut self, pairwise: &[MailboxId]) {
        for m in pairwise {
            self.mailboxes.remove(m);
        }
        self.pairwise_total -= pairwise.len();
    }

    /// The device made a signed request over `peer`'s connection: it is
    /// connected, and fetches its mail itself.
    pub(super) fn seen(&mut self, device: &DeviceId, peer: &[u8]) {
        let Some(reg) = self.devices.get_mut(device) else {
            return;
        };
        reg.online = true;
        if reg.peer.as_deref() != Some(peer) {
            if let Some(old) = reg.peer.replace(peer.to_vec()) {
                self.peers.remove(&old);
            }
            self.peers.insert(peer.to_vec(), *device);
        }
        self.due.remove(device);
    }

    /// A registered device's key set named these pairwise mailboxes.
    pub(super) fn set_pairwise(&mut self, device: &DeviceId, pairwise: &[MailboxId]) {
        let Some(reg) = self.devices.get(device) else {
            return;
        };
        if reg.pairwise == pairwise {
            return;
        }
        let old = reg.pairwise.clone();
        self.forget_pairwise(&old);
        let room = MAX_PUSH_MAILBOXES.saturating_sub(self.pairwise_total);
        let kept: Vec<MailboxId> = pairwise
            .iter()
            .filter(|m| !self.mailboxes.contains_key(m))
            .take(room)
            .copied()
            .collect();
        for m in &kept {
            self.mailboxes.insert(*m, *device);
        }
        self.pairwise_total += kept.len();
        if let Some(reg) = self.devices.get_mut(device) {
            reg.pairwise = kept;
        }
    }

    /// The host's word on a peer: its first connection opened, or its last
    /// one closed. When it closed and one of the device's mailboxes still
    /// holds mail (`holds`), the device is due: mail that landed while a
    /// suspended device's connection lingered wakes it too.
    pub(super) fn connection(
        &mut self,
        peer: &[u8],
        connected: bool,
        holds: impl Fn(&MailboxId) -> bool,
    ) {
        let Some(device) = self.peers.get(peer).copied() else {
            return;
        };
        let Some(reg) = self.devices.get_mut(&device) else {
            return;
        };
        reg.online = connected;
        if connected {
            self.due.remove(&device);
        } else if holds(&MailboxId::of(&device)) || reg.pairwise.iter().any(&holds) {
            self.due.insert(device);
        }
    }

    /// Mail landed in `mailbox`: its device is woken if it is offline.
    pub(super) fn mail_arrived(&mut self, mailbox: &MailboxId) {
        let Some(device) = self.mailboxes.get(mailbox) else {
            return;
        };
        if self.devices.get(device).is_some_and(|r| !r.online) {
            self.due.insert(*device);
        }
    }

    /// Queues the wake-ups whose interval allows them now; returns how
    /// many were dropped for a full queue.
    pub(super) fn tick(&mut self, now: Now, interval_ms: u64) -> u64 {
        let mut dropped = 0;
        let mut sent = Vec::new();
        for device in &self.due {
            let Some(reg) = self.devices.get_mut(device) else {
                sent.push(*device);
                continue;
            };
            let allowed = reg
                .last_sent_ms
                .is_none_or(|at| now.mono_ms >= at.saturating_add(interval_ms));
            if !allowed {
                continue;
            }
            reg.last_sent_ms = Some(now.mono_ms);
            if self.out.len() < MAX_PUSH_QUEUE {
                self.out.push_back(reg.target.clone());
            } else {
                dropped += 1;
            }
            sent.push(*device);
        }
        for device in sent {
            self.due.remove(&device);
        }
        dropped
    }

    /// When the earliest due wake-up may go out (monotonic ms).
    pub(super) fn next_due(&self, interval_ms: u64) -> Option<u64> {
        self.due
            .iter()
            .filter_map(|d| self.devices.get(d))
            .map(|r| {
                r.last_sent_ms
                    .map_or(0, |at| at.saturating_add(interval_ms))
            })
            .min()
    }

    pub(super) fn pop(&mut self) -> Option<PushTarget> {
        self.out.pop_front()
    }
}

impl<R> RelayEngine<R> {
    /// `OwnerRequest::SetPush` from `device`, over `peer`'s connection.
    pub(super) fn set_push(
        &mut self,
        (now, ip): (Now, Option<IpAddr>),
        device: DeviceId,
        peer: &[u8],
        target: Option<PushTarget>,
        reply: R,
    ) {
        if ip.is_some_and(|ip| !self.push_ips.allow(now.mono_ms, ip)) {
            self.reply(reply, MailboxResponse::refused(Refusal::Unavailable));
            return;
        }
        let active = target.is_some();
        match target {
            Some(target) => {
                if let Err(message) = self.rules.push.check(&target.endpoint) {
                    let response = MailboxResponse::Refused {
                        reason: Refusal::PushRefused,
                        message,
                    };
                    self.reply(reply, response);
                    return;
                }
                let known = self.pushes.devices.contains_key(&device);
                if !known && self.pushes.len() >= self.rules.push.max_devices {
                    self.reply(reply, MailboxResponse::refused(Refusal::RelayFull));
                    return;
                }
                self.pushes.insert(device, target.clone());
                self.pushes.seen(&device, peer);
                // Its pairwise mailboxes as its last batch named them: it
                // may go offline before the next one.
                if let Some(mailboxes) = self.known_sets.latest(&device) {
                    self.pushes
                        .set_pairwise(&device, mailboxes.get(1..).unwrap_or_default());
                }
                self.batch.writes.push(RelayWrite::PutPush {
                    device,
                    target: Some(target),
                });
            }
            // Written even when nothing is held in memory (a removal
            // whose commit failed, or a registration the rules skipped at
            // start): the row goes for sure.
            None => {
                self.pushes.remove(&device);
                self.batch.writes.push(RelayWrite::PutPush {
                    device,
                    target: None,
                });
            }
        }
        self.batch
            .after
            .push(After::Reply(reply, MailboxResponse::PushSet { active }));
    }

    /// The host's word on a peer (its id's bytes, as in requests): its
    /// first connection opened (`true`) or its last one closed. A device
    /// whose peer is connected is not woken.
    pub fn handle_connection(&mut self, peer: &[u8], connected: bool) {
        let usage = &self.usage;
        self.pushes.connection(peer, connected, |m| usage.holds(m));
    }

    /// The next wake-up to POST: the target's endpoint, with
    /// [`PushTarget::wake_body`] as the body.
    pub fn poll_push(&mut self) -> Option<PushTarget> {
        let target = self.pushes.pop()?;
        self.stats.pushes += 1;
        Some(target)
    }

    /// The endpoint of `target` answered that it is gone (HTTP 404 or
    /// 410, as Web Push and UnifiedPush servers do for a removed
    /// subscription): the registration that carried it is forgotten, and
    /// its row deleted. One registered since (another token) stays.
    pub fn handle_push_gone(&mut self, target: &PushTarget) {
        let device = self
            .pushes
            .devices
            .iter()
            .find(|(_, r)| r.target == *target)
            .map(|(d, _)| *d);
        if let Some(device) = device {
            self.pushes.remove(&device);
            self.batch.writes.push(RelayWrite::PutPush {
                device,
                target: None,
            });
        }
    }

    pub(super) fn push_interval_ms(&self) -> u64 {
        self.rules.push.min_interval_secs.saturating_mul(1000)
    }
}

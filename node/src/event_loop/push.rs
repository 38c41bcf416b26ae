//! Push while this device is offline (`hush push set URL`): the endpoint
//! is registered with each home relay (`OwnerRequest::SetPush`), with a
//! fresh random token at every registration, so the relay wakes this
//! device there when mail arrives and it is not connected.
//!
//! ```text
//!  push.set ─▶ PutPushEndpoint ─▶ every slot Unsent
//!  relay tick: slot Unsent + challenge ─▶ SetPush{endpoint, token} ─▶ PushSet ─▶ Registered
//!                                                                 └▶ Refused(why) | Failed(retry)
//! ```
//!
//! Registrations are sent once per run (a relay keeps them across its
//! restarts), after the endpoint changes, and to a relay that replaced
//! another. A retired relay is told to forget the endpoint.

use hush_protocol::{MailboxResponse, OwnerRequest, PushTarget, PushUrl};

use super::EventLoop;
use super::relays::MailRequest;
use crate::error::NodeError;
use crate::node::Reply;
use crate::store::Op;

/// A registration that could not reach its relay is tried again after this.
const RETRY_MS: u64 = 60_000;

/// Where one home relay's push registration stands.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) enum PushSlot {
    /// To be sent (registered, or removed when no endpoint is set).
    #[default]
    Unsent,
    /// Sent with this token (`None`: a removal); no answer yet.
    Sent(Option<[u8; 16]>),
    Registered,
    /// The relay holds no endpoint for us.
    Off,
    /// The relay refused the endpoint: why.
    Refused(String),
    /// Could not be sent or answered: tried again after [`RETRY_MS`].
    Failed {
        at_ms: u64,
        error: String,
    },
}

impl PushSlot {
    /// For `hush push` / `status`.
    pub(super) fn describe(&self) -> String {
        match self {
            Self::Unsent | Self::Sent(_) => "registering".into(),
            Self::Registered => "registered".into(),
            Self::Off => "off".into(),
            Self::Refused(why) => format!("refused: {why}"),
            Self::Failed { error, .. } => format!("not registered yet: {error}"),
        }
    }
}

impl EventLoop {
    /// `hush push set URL` / `hush push off`: stored, then registered with
    /// every home relay as their challenges allow.
    pub(super) fn set_push(&mut self, endpoint: Option<String>, reply: Reply<()>) {
        if let Some(url) = &endpoint
            && let Err(reason) = PushUrl::parse(url)
        {
            let _ = reply.send(Err(NodeError::InvalidPushEndpoint(format!(
                "{reason}: give the https:// URL your push service (a UnifiedPush distributor, ntfy, or a webhook) gave you"
            ))));
            return;
        }
        self.push_endpoint = endpoint.clone();
        for relay in &mut self.home {
            relay.push = PushSlot::Unsent;
        }
        self.batch.ops.push(Op::PutPushEndpoint(endpoint));
        self.batch
            .after
            .push(super::commit::After::ReplyDone(reply));
        self.push_tick();
    }

    /// Sends the registrations that are due (each relay needs a challenge).
    pub(super) fn push_tick(&mut self) {
        let now = self.host_clock.now().mono_ms;
        for i in 0..self.home.len() {
            let relay = &self.home[i];
            let due = match &relay.push {
                PushSlot::Unsent => true,
                PushSlot::Failed { at_ms, .. } => now >= at_ms.saturating_add(RETRY_MS),
                _ => false,
            };
            if !due || relay.spent || relay.mailbox.challenge().is_none() {
                continue;
            }
            let target = match (&self.push_endpoint, relay.retired) {
                (Some(endpoint), false) => Some(PushTarget {
                    endpoint: endpoint.clone(),
                    token: rand::random(),
                }),
                _ => None,
            };
            let token = target.as_ref().map(|t| t.token);
            let request = OwnerRequest::SetPush { target };
            match self.signed(i, request) {
                Some(request) => {
                    self.home[i].push = PushSlot::Sent(token);
                    self.home_request(i, request, MailRequest::SetPush(i, token));
                }
                None => {
                    self.home[i].push = PushSlot::Failed {
                        at_ms: now,
                        error: "could not sign the registration".into(),
                    };
                }
            }
        }
    }

    /// A home relay's answer to our registration (or the failure to get
    /// one). An answer to an earlier one (the endpoint changed since) is
    /// dropped: the newer registration is what counts.
    pub(super) fn on_push_answer(
        &mut self,
        i: usize,
        sent: Option<[u8; 16]>,
        answer: Result<MailboxResponse, String>,
    ) {
        let now = self.host_clock.now().mono_ms;
        let Some(relay) = self.home.get_mut(i) else {
            return;
        };
        if relay.push != PushSlot::Sent(sent) {
            return;
        }
        relay.push = match answer {
            Ok(MailboxResponse::PushSet { active: true }) => PushSlot::Registered,
            Ok(MailboxResponse::PushSet { active: false }) => PushSlot::Off,
            Ok(MailboxResponse::Refused { reason, message }) if !reason.is_transient() => {
                tracing::info!(relay = i, %message, "a home relay refused our push endpoint");
                PushSlot::Refused(message)
            }
            other => PushSlot::Failed {
                at_ms: now,
                error: super::relays::describe(other),
            },
        };
    }

    /// The endpoint's host, for `status` (the whole URL is often a secret).
    pub(super) fn push_host(&self) -> Option<String> {
        let endpoint = self.push_endpoint.as_ref()?;
        Some(PushUrl::parse(endpoint).map_or_else(|_| "?".into(), |u| u.host))
    }
}

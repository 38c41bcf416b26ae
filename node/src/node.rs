//! The [`Node`] handle: a cheap, cloneable front for the event loop task.
//!
//! ```text
//!  API clients ─┐                     ┌─▶ Swarm (libp2p)
//!  CLI, bots  ──┼─▶ Node ─Command──▶ EventLoop ─Op batch─▶ Store (redb)
//!  bench      ──┘   ◀──oneshot reply──┘   └─Event─▶ broadcast ─▶ subscribers
//! ```

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use hush_protocol::{AccountId, ContactCard, ConversationId, MessageId, OlmDevice};
use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::NodeError;
use crate::event_loop::{
    ContactAction, EventLoop, FileConfig, GroupCommand, GroupConfig, Landing, LoopOptions,
    PresenceConfig,
};
use crate::home::Home;
use crate::identity::Me;
use crate::journal::{Journal, Journaled};
use crate::records::{ContactRecord, ContactTrust, Status};
use crate::store::Store;
use crate::view::{
    ContactView, DeviceView, Event, LinkCodeView, LinkedView, NodeStatus, PresenceView, SendReceipt,
};

mod conversations;
mod files;
mod groups;
mod relays;
mod search;

/// Commands queued to the event loop at most.
const COMMAND_QUEUE: usize = 1024;
/// How long a read waits for messages already shown to land (see
/// [`Node::landed`]) before it reads what is stored: a commit that stalls
/// (a disk that does not answer) must not hang every read with it.
const LAND_WAIT: Duration = Duration::from_secs(5);
/// Most messages one history call returns.
pub const MAX_HISTORY_LIMIT: usize = 1000;

/// Wall-clock milliseconds since the Unix epoch.
pub use hush_host::now_ms;

/// Home relays used at most (the first ones given).
pub const MAX_HOME_RELAYS: usize = 3;

#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Addresses to listen on; empty means all interfaces on a random port
    /// (TCP and QUIC).
    pub listen: Vec<Multiaddr>,
    /// Home relays (full addresses with `/p2p/`); empty keeps the saved ones.
    pub relays: Vec<Multiaddr>,
    /// Relays to reach the DHT through (`--bootstrap`): with no home relays
    /// given or saved, the node picks its own among the relays the DHT
    /// announces (`crate::discovery`).
    pub bootstrap: Vec<Multiaddr>,
    /// A home relay found through the DHT that has not answered for this
    /// long is replaced (`--relay-failover-secs`); given ones never are.
    pub relay_failover: Duration,
    /// How long to wait before asking a relay for mail again after it
    /// answered an open fetch with nothing.
    pub mail_poll: Duration,
    /// How long our presence records are valid (refreshed every half).
    pub presence_ttl: Duration,
    /// How long a contact stays online after its connection drops without
    /// a goodbye.
    pub presence_grace: Duration,
    /// Find contacts on the local network with mDNS (off by default: it
    /// tells the whole LAN a hush node runs here).
    pub mdns: bool,
    /// Addresses to put in cards and presence records besides relay
    /// circuits and the IPs named in `listen` (`--announce`).
    pub announce: Vec<Multiaddr>,
    /// No listener of our own: reached only through home relays' circuits
    /// (and, with the connection gate, only by known devices); no hole
    /// punching.
    pub hidden: bool,
    /// A group's Megolm session is replaced after this many messages...
    pub group_rotate_messages: u32,
    /// ... or after this long (and always when the membership changes).
    pub group_rotate_after: Duration,
    /// The member limit of groups this node creates.
    pub group_member_limit: u32,
    /// Files up to this many bytes are fetched as soon as their message
    /// arrives (`--auto-fetch-mib`).
    pub auto_fetch_bytes: u64,
    /// The largest file sent or fetched (`--max-file-mib`).
    pub max_file_bytes: u64,
    /// A file sent is served this long, then its encrypted copy goes
    /// (`--keep-sent-days`); `None`: until the user stops sharing it.
    pub keep_sent: Option<Duration>,
    /// A command run for each new message (`--notify-cmd`).
    pub notify: Option<crate::notify::NotifyConfig>,
}

/// Whose conversation `Node::mute` mutes.
#[derive(Debug, Clone)]
pub enum MuteTarget {
    Contact(String),
    /// A group, by name or id.
    Group(String),
}

pub const DEFAULT_AUTO_FETCH_MIB: u64 = 64;
pub const DEFAULT_MAX_FILE_MIB: u64 = 4 * 1024;
/// Files sent are served this many days by default.
pub const DEFAULT_KEEP_SENT_DAYS: u64 = 30;

/// A home relay found through the DHT is replaced after not answering
/// this long, by default.
pub const DEFAULT_RELAY_FAILOVER: Duration = Duration::from_secs(3600);
/// Presence records live this long by default.
pub const DEFAULT_PRESENCE_TTL: Duration = Duration::from_secs(5 * 60);
/// A dropped contact stays online this long by default.
pub const DEFAULT_PRESENCE_GRACE: Duration = Duration::from_secs(30);

/// A group session carries this many messages by default.
pub const DEFAULT_GROUP_ROTATE_MESSAGES: u32 = 100;
/// A group session lives this long by default.
pub const DEFAULT_GROUP_ROTATE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

impl Default for NodeConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            relays: Vec::new(),
            bootstrap: Vec::new(),
            relay_failover: DEFAULT_RELAY_FAILOVER,
            mail_poll: Duration::from_secs(1),
            presence_ttl: DEFAULT_PRESENCE_TTL,
            presence_grace: DEFAULT_PRESENCE_GRACE,
            mdns: false,
            announce: Vec::new(),
            hidden: false,
            group_rotate_messages: DEFAULT_GROUP_ROTATE_MESSAGES,
            group_rotate_after: DEFAULT_GROUP_ROTATE_AFTER,
            group_member_limit: hush_protocol::DEFAULT_MEMBER_LIMIT,
            auto_fetch_bytes: DEFAULT_AUTO_FETCH_MIB << 20,
            max_file_bytes: DEFAULT_MAX_FILE_MIB << 20,
            keep_sent: Some(Duration::from_secs(DEFAULT_KEEP_SENT_DAYS * 24 * 3600)),
            notify: None,
        }
    }
}

impl NodeConfig {
    pub fn with_listen(mut self, addr: Multiaddr) -> Self {
        self.listen.push(addr);
        self
    }

    pub fn with_relay(mut self, addr: Multiaddr) -> Self {
        self.relays.push(addr);
        self
    }
}

pub(crate) type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

#[derive(Debug)]
pub(crate) enum Command {
    AddContact {
        name: String,
        card: Box<ContactCard>,
        card_text: String,
        /// Replace the card of the existing contact `name` (same account).
        update: bool,
        reply: Reply<ContactView>,
    },
    Send {
        contact: String,
        text: String,
        reply: Reply<SendReceipt>,
    },
    MarkRead {
        contact: String,
        reply: Reply<usize>,
    },
    SetReceipts {
        contact: String,
        on: bool,
        reply: Reply<ContactView>,
    },
    /// No notification for the conversation's messages (or again).
    Mute {
        target: MuteTarget,
        on: bool,
        reply: Reply<bool>,
    },
    /// Where the home relays wake this device while it is offline
    /// (`None`: nowhere).
    SetPush {
        endpoint: Option<String>,
        reply: Reply<()>,
    },
    /// The conversation's disappearing timer (`None`: off).
    SetTimer {
        contact: String,
        secs: Option<u32>,
        reply: Reply<ContactView>,
    },
    /// Remove, block or verify a contact.
    ContactAction {
        contact: String,
        action: ContactAction,
        reply: Reply<ContactView>,
    },
    Status {
        reply: Reply<NodeStatus>,
    },
    Card {
        reply: Reply<String>,
    },
    Presence {
        contact: String,
        /// Look the contact up in the DHT even if known online.
        refresh: bool,
        reply: Reply<PresenceView>,
    },
    /// Share presence with one contact (`Some`) or switch it globally.
    SharePresence {
        contact: Option<String>,
        on: bool,
        reply: Reply<Option<PresenceView>>,
    },
    Group(GroupCommand),
    /// A new link code (`hush device link`).
    LinkStart {
        with_account_key: bool,
        reply: Reply<LinkCodeView>,
    },
    /// Until the device the current code is for has joined.
    LinkWait {
        reply: Reply<LinkedView>,
    },
    Devices {
        reply: Reply<Vec<DeviceView>>,
    },
    /// Take a device off the account's list (`hush device revoke`).
    DeviceRevoke {
        device: String,
        reply: Reply<DeviceView>,
    },
    SendFile {
        contact: String,
        offer: Box<hush_protocol::FileOffer>,
        /// Where the file was read from (shown in history).
        path: String,
        reply: Reply<SendReceipt>,
    },
    FileGet {
        id: String,
        to: Option<std::path::PathBuf>,
        reply: Reply<crate::view::FileView>,
    },
    FileCancel {
        id: String,
        reply: Reply<crate::view::FileView>,
    },
    Files {
        reply: Reply<Vec<crate::view::FileView>>,
    },
    /// The names accounts are shown under (contacts, group members
    /// known by their card, or a short id), for search results.
    Names {
        accounts: Vec<hush_protocol::AccountId>,
        reply: Reply<Vec<String>>,
    },
    /// Answer once every batch whose events went out is in the store.
    Land {
        reply: Reply<()>,
    },
    /// Commit what is queued, answer it, then stop.
    Shutdown {
        reply: Reply<()>,
    },
}

/// A running node. Cloning it is cheap; the node stops when
/// [`Node::shutdown`] is called or every handle is dropped.
#[derive(Debug, Clone)]
pub struct Node {
    commands: mpsc::Sender<Command>,
    /// The events of this run, numbered: to every subscriber, and kept
    /// for API clients that reconnect.
    journal: Arc<Journal>,
    store: Arc<Store>,
    /// Whether the loop sent events for what is not in the store yet.
    landing: Landing,
    task: Arc<tokio::sync::Mutex<Option<JoinHandle<()>>>>,
    me: Arc<MeSummary>,
    files: Arc<FileConfig>,
    /// The home, to tell how its database key is kept.
    home: Arc<Home>,
}

#[derive(Debug)]
struct MeSummary {
    name: String,
    account: hush_protocol::AccountId,
}

impl Node {
    /// Opens the home's database, starts listening and spawns the event loop.
    pub async fn start(home: &Home, config: NodeConfig) -> Result<Self, NodeError> {
        home.check_private()?;
        let store = Arc::new(Store::open(&home.db_path(), &home.db_key()?)?);
        let record = store.identity()?;
        let olm = OlmDevice::restore(&store.olm_account()?, store.sessions()?, &record.pickle_key)?;
        let mut me = Me::load(&record, &olm)?;
        relays::choose(&store, &mut me, &config).await?;
        let summary = Arc::new(MeSummary {
            name: me.name.clone(),
            account: me.account,
        });
        // Envelope digests are kept 30 days to recognise resends.
        let pruned = store.prune_seen(now_ms().saturating_sub(30 * 24 * 3600 * 1000))?;
        tracing::debug!(pruned, "pruned old envelope digests");

        if config.hidden && me.relays.is_empty() {
            return Err(NodeError::HiddenWithoutRelay);
        }
        let listen = if config.hidden {
            Vec::new()
        } else if config.listen.is_empty() {
            let any = Multiaddr::empty().with(Protocol::Ip4(Ipv4Addr::UNSPECIFIED));
            vec![
                any.clone().with(Protocol::Tcp(0)),
                any.with(Protocol::Udp(0)).with(Protocol::QuicV1),
            ]
        } else {
            config.listen
        };
        let files = Arc::new(FileConfig {
            auto_fetch: config.auto_fetch_bytes,
            max_file: config.max_file_bytes,
            keep_sent: config.keep_sent,
            blobs: home.blobs_dir(),
            folder: home.files_dir(),
        });
        let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
        let journal = Journal::new();
        let landing = Landing::default();
        let event_loop = EventLoop::new(
            me,
            olm,
            store.clone(),
            command_rx,
            journal.clone(),
            landing.clone(),
            LoopOptions {
                mail_poll: config.mail_poll,
                presence: PresenceConfig {
                    ttl: config.presence_ttl.max(Duration::from_secs(2)),
                    grace: config.presence_grace,
                },
                groups: GroupConfig {
                    rotate_messages: config.group_rotate_messages.max(1),
                    rotate_after_ms: u64::try_from(config.group_rotate_after.as_millis())
                        .unwrap_or(u64::MAX),
                    member_limit: config
                        .group_member_limit
                        .clamp(1, hush_protocol::MAX_MEMBER_LIMIT),
                    ..GroupConfig::default()
                },
                mdns: config.mdns && !config.hidden,
                hidden: config.hidden,
                files: (*files).clone(),
                addresses: crate::addresses::AddressPolicy::new(&listen, config.announce),
                relay_failover: config.relay_failover,
                notify: config.notify.clone(),
                bootstrap: config.bootstrap.clone(),
            },
        )?;
        let event_loop = event_loop.listen(&listen).await?;
        // Names the node in what its loop logs, where one process runs many
        // (tests, benches): enabled with `hush_node::node=debug`.
        let span = tracing::debug_span!("node", name = %summary.name);
        let task = tokio::spawn(tracing::Instrument::instrument(event_loop.run(), span));
        Ok(Self {
            commands,
            journal,
            store,
            landing,
            task: Arc::new(tokio::sync::Mutex::new(Some(task))),
            me: summary,
            files,
            home: Arc::new(home.clone()),
        })
    }

    /// Asks the loop to do something; first lands what the caller may
    /// have seen events of (see [`Node::landed`]).
    async fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NodeError> {
        self.landed().await?;
        self.ask(make).await
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, NodeError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| NodeError::Stopped)?;
        rx.await.map_err(|_| NodeError::Stopped)?
    }

    /// Waits until every message whose event went out is in the store. A
    /// busy group's messages are shown before their batch commits (see
    /// `event_loop::commit`); a read that follows an event lands them
    /// first, so it finds what the event told. Free when nothing waits.
    /// At most [`LAND_WAIT`]: then the read goes on with what is stored
    /// (the loop logs the stalled commit).
    pub(crate) async fn landed(&self) -> Result<(), NodeError> {
        if !self.landing.pending() {
            return Ok(());
        }
        let land = self.ask(|reply| Command::Land { reply });
        match tokio::time::timeout(LAND_WAIT, land).await {
            Ok(landed) => landed,
            Err(_) => {
                tracing::warn!(
                    "a read waited {} s for messages already shown to be stored; it reads what is stored so far",
                    LAND_WAIT.as_secs()
                );
                Ok(())
            }
        }
    }

    pub async fn add_contact(&self, name: &str, card_text: &str) -> Result<ContactView, NodeError> {
        crate::identity::validate_name(name)?;
        let card: ContactCard = card_text.parse()?;
        self.call(|reply| Command::AddContact {
            name: name.to_owned(),
            card: Box::new(card),
            card_text: card_text.trim().to_owned(),
            update: false,
            reply,
        })
        .await
    }

    /// Replaces a contact's card with a newer one of the same account (new
    /// addresses or home relays); the name, receipts setting and history stay.
    pub async fn update_contact(
        &self,
        name: &str,
        card_text: &str,
    ) -> Result<ContactView, NodeError> {
        let card: ContactCard = card_text.parse()?;
        self.call(|reply| Command::AddContact {
            name: name.to_owned(),
            card: Box::new(card),
            card_text: card_text.trim().to_owned(),
            update: true,
            reply,
        })
        .await
    }

    /// Queues a message; returns once it is durably in the outbox.
    pub async fn send(&self, contact: &str, text: &str) -> Result<SendReceipt, NodeError> {
        self.call(|reply| Command::Send {
            contact: contact.to_owned(),
            text: text.to_owned(),
            reply,
        })
        .await
    }

    /// Sends, then waits until the message reaches `wait` or `timeout` passes.
    pub async fn send_and_wait(
        &self,
        contact: &str,
        text: &str,
        wait: Status,
        timeout: Duration,
    ) -> Result<SendReceipt, NodeError> {
        let events = self.journal.subscribe();
        let receipt = self.send(contact, text).await?;
        self.wait_for(contact, receipt, events, wait, timeout).await
    }

    /// Waits until the message of `receipt` reaches `wait` or `timeout`
    /// passes (`events` subscribed before it was sent).
    async fn wait_for(
        &self,
        contact: &str,
        mut receipt: SendReceipt,
        mut events: broadcast::Receiver<Arc<Journaled>>,
        wait: Status,
        timeout: Duration,
    ) -> Result<SendReceipt, NodeError> {
        let id: MessageId = receipt.id.parse().map_err(|_| NodeError::Stopped)?;
        let deadline = tokio::time::Instant::now() + timeout;
        while receipt.status < wait {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => {
                    receipt.timed_out = true;
                    break;
                }
                Ok(Ok(journaled)) => {
                    let event = &journaled.event;
                    if let Some(status) = event.status_of(&id) {
                        receipt.status = receipt.status.max(status);
                    }
                    if let Event::Undeliverable {
                        id: problem_id,
                        reason,
                        ..
                    } = event
                        && *problem_id == receipt.id
                    {
                        receipt.problem = Some(reason.clone());
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    let conversation = self.conversation_with(contact)?;
                    if let Some(m) = self.store.message(&conversation, id)? {
                        receipt.status = receipt.status.max(m.status);
                    }
                }
                Ok(Err(broadcast::error::RecvError::Closed)) => return Err(NodeError::Stopped),
            }
        }
        Ok(receipt)
    }

    /// Marks the conversation read; sends read receipts if enabled.
    /// Returns how many messages were newly marked.
    pub async fn mark_read(&self, contact: &str) -> Result<usize, NodeError> {
        self.call(|reply| Command::MarkRead {
            contact: contact.to_owned(),
            reply,
        })
        .await
    }

    /// Removes a contact: its card, sessions, queued messages, deposit
    /// rights and presence key go (our presence key is rotated away from
    /// it); its conversation too with `delete_history`. Returns the contact
    /// as it was.
    pub async fn remove_contact(
        &self,
        contact: &str,
        delete_history: bool,
    ) -> Result<ContactView, NodeError> {
        self.contact_action(contact, ContactAction::Remove { delete_history })
            .await
    }

    /// Blocks (or unblocks) a contact: its connections are refused, what
    /// it sends is dropped, nothing goes to it, and it loses our presence.
    pub async fn block_contact(&self, contact: &str, on: bool) -> Result<ContactView, NodeError> {
        self.contact_action(contact, ContactAction::Block(on)).await
    }

    /// Marks a contact's current keys verified (after comparing the safety
    /// number), or takes the mark away.
    pub async fn verify_contact(&self, contact: &str, on: bool) -> Result<ContactView, NodeError> {
        self.contact_action(contact, ContactAction::Verify(on))
            .await
    }

    async fn contact_action(
        &self,
        contact: &str,
        action: ContactAction,
    ) -> Result<ContactView, NodeError> {
        self.call(|reply| Command::ContactAction {
            contact: contact.to_owned(),
            action,
            reply,
        })
        .await
    }

    /// Mutes (or unmutes) a contact's or a group's conversation:
    /// `--notify-cmd` is not run for its messages.
    pub async fn mute(&self, target: MuteTarget, on: bool) -> Result<bool, NodeError> {
        self.call(|reply| Command::Mute { target, on, reply }).await
    }

    /// Registers `endpoint` (a UnifiedPush or webhook URL) with the home
    /// relays, to be woken there while offline; `None` turns push off.
    pub async fn set_push(&self, endpoint: Option<String>) -> Result<(), NodeError> {
        self.call(|reply| Command::SetPush { endpoint, reply })
            .await
    }

    /// Turns read receipts to `contact` on or off.
    pub async fn set_receipts(&self, contact: &str, on: bool) -> Result<ContactView, NodeError> {
        self.call(|reply| Command::SetReceipts {
            contact: contact.to_owned(),
            on,
            reply,
        })
        .await
    }

    /// Sets how long the messages of the conversation with `contact` last
    /// (seconds; `None`: kept); the contact and our devices hear it.
    pub async fn set_timer(
        &self,
        contact: &str,
        secs: Option<u32>,
    ) -> Result<ContactView, NodeError> {
        check_timer(secs)?;
        self.call(|reply| Command::SetTimer {
            contact: contact.to_owned(),
            secs,
            reply,
        })
        .await
    }

    /// A contact's presence; `refresh` looks it up in the DHT first.
    pub async fn presence(&self, contact: &str, refresh: bool) -> Result<PresenceView, NodeError> {
        self.call(|reply| Command::Presence {
            contact: contact.to_owned(),
            refresh,
            reply,
        })
        .await
    }

    /// Shares presence and last seen with `contact` or not; with `None`,
    /// switches sharing for everyone.
    pub async fn share_presence(
        &self,
        contact: Option<&str>,
        on: bool,
    ) -> Result<Option<PresenceView>, NodeError> {
        self.call(|reply| Command::SharePresence {
            contact: contact.map(str::to_owned),
            on,
            reply,
        })
        .await
    }

    pub async fn status(&self) -> Result<NodeStatus, NodeError> {
        let mut status = self.call(|reply| Command::Status { reply }).await?;
        status.at_rest = if self.home.key_is_wrapped() {
            "passphrase"
        } else {
            "key file"
        }
        .to_owned();
        Ok(status)
    }

    /// This device's contact card (text form), with its current addresses.
    /// A one-time code that links a new device to this account.
    pub async fn link_code(&self, with_account_key: bool) -> Result<LinkCodeView, NodeError> {
        self.call(|reply| Command::LinkStart {
            with_account_key,
            reply,
        })
        .await
    }

    /// Waits until the device the current link code is for has joined.
    pub async fn link_wait(&self) -> Result<LinkedView, NodeError> {
        self.call(|reply| Command::LinkWait { reply }).await
    }

    /// Revokes one of the account's devices (by name or id prefix).
    pub async fn revoke_device(&self, device: &str) -> Result<DeviceView, NodeError> {
        let device = device.to_owned();
        self.call(|reply| Command::DeviceRevoke { device, reply })
            .await
    }

    /// The account's devices.
    pub async fn devices(&self) -> Result<Vec<DeviceView>, NodeError> {
        self.call(|reply| Command::Devices { reply }).await
    }

    pub async fn card(&self) -> Result<String, NodeError> {
        self.call(|reply| Command::Card { reply }).await
    }

    /// The event journal (numbered events, for clients that resume).
    pub fn journal(&self) -> &Journal {
        &self.journal
    }

    /// The node's events from now on, each numbered (see [`Journal`]).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Journaled>> {
        self.journal.subscribe()
    }

    fn contact(&self, name: &str) -> Result<ContactRecord, NodeError> {
        self.store
            .contacts()?
            .into_iter()
            .find(|c| c.name == name)
            .ok_or_else(|| NodeError::UnknownContact {
                name: name.to_owned(),
            })
    }

    fn conversation_with(&self, name: &str) -> Result<ConversationId, NodeError> {
        let contact = self.contact(name)?;
        Ok(ConversationId::direct(&self.me.account, &contact.account))
    }

    pub fn contacts(&self) -> Result<Vec<ContactView>, NodeError> {
        let trust: HashMap<AccountId, ContactTrust> = self.store.trust()?.into_iter().collect();
        let timers: HashMap<AccountId, Option<u32>> = self
            .store
            .timers()?
            .into_iter()
            .map(|(a, t)| (a, t.secs))
            .collect();
        Ok(self
            .store
            .contacts()?
            .iter()
            .map(|c| {
                let trust = trust.get(&c.account).copied().unwrap_or_default();
                let timer = timers.get(&c.account).copied().flatten();
                ContactView::new(&self.me.account, c, trust, timer)
            })
            .collect())
    }

    /// Stops the event loop once everything queued has been committed and
    /// answered, and waits for it.
    pub async fn shutdown(&self) {
        let task = self.task.lock().await.take();
        if let Some(task) = task {
            let _ = self.call(|reply| Command::Shutdown { reply }).await;
            let _ = task.await;
        }
    }
}

/// A disappearing timer from the user: 1 second to a year.
fn check_timer(secs: Option<u32>) -> Result<(), NodeError> {
    match secs {
        Some(0) => Err(NodeError::InvalidTimer(
            "a timer of 0 seconds: give a duration such as 30s, 1h or 7d, or `off`".into(),
        )),
        Some(s) if s > hush_protocol::MAX_TIMER_SECS => Err(NodeError::InvalidTimer(format!(
            "a timer of {s} seconds is longer than a year, the longest allowed"
        ))),
        _ => Ok(()),
    }
}

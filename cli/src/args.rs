//! Command-line arguments, and their resolution into validated settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCompleter;

use crate::commands::completion::{contact_names, device_names, group_names};

mod bench;
mod disappear;

pub use bench::BenchCommand;
pub use disappear::{Disappear, parse_disappear};

#[derive(Debug, Parser)]
#[command(
    name = "hush",
    version,
    about = "hush: a peer-to-peer, end-to-end-encrypted messenger",
    long_about = "hush: a peer-to-peer, end-to-end-encrypted messenger.\n\n\
Start with `hush init --name NAME`, then `hush node run` (leave it running), \
then share the card from `hush id` with a friend and add theirs with \
`hush contact add NAME CARD`. `hush demo` shows the whole flow.",
    after_help = "Exit status: 0 done; 1 failed (the message says what happened and what to do); \
2 wrong usage; 3 timed out (`send --wait`, `group send --wait`: the message stays queued); \
4 the node is not running (or, for `events`, stopped); 5 refused (`send --wait` gave up \
and a relay had refused the message, e.g. a full mailbox; it stays queued); 130 or 143 \
`demo` or `bench` stopped by Ctrl-C or SIGTERM (its temporary folder removed).\n\
Manual pages: `hush man`; the local API for bots: hush-api(7) (`hush man --dir DIR`)."
)]
pub struct Cli {
    /// The folder that holds this device's identity, messages and API socket
    /// [default: the platform data folder, e.g. ~/.local/share/hush]
    #[arg(long, global = true, env = "HUSH_HOME", value_name = "DIR")]
    pub home: Option<PathBuf>,

    /// How logs are written to stderr: `text` for people, `json` (one
    /// object per line) for log collectors
    #[arg(
        long,
        global = true,
        env = "HUSH_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,

    /// A file whose first line is the passphrase protecting the database
    /// key (commands that open the database: init, id, node run, device
    /// join, passphrase); without it a terminal asks
    #[arg(long, global = true, env = "HUSH_PASSPHRASE_FILE", value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a new identity (account and device keys) in the home folder
    Init {
        /// The name your contacts' cards will suggest for you
        #[arg(long)]
        name: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Print this device's contact card (share it with people you talk to)
    Id {
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
        /// Also print the card as a QR code (for a phone or another
        /// device's camera; light on dark, for dark terminals)
        #[arg(long, conflicts_with = "json")]
        qr: bool,
    },
    /// Run or inspect the node daemon
    #[command(subcommand)]
    Node(NodeCommand),
    /// Protect the database key with a passphrase, change it, or remove it
    #[command(subcommand)]
    Passphrase(PassphraseCommand),
    /// Be woken while offline: your home relays POST a content-free
    /// wake-up to a push endpoint (UnifiedPush, ntfy, a webhook) when mail
    /// arrives for this device and it is not connected
    #[command(subcommand)]
    Push(PushCommand),
    /// Run a relay: mailboxes for offline devices, key hosting, DHT, circuit relay
    #[command(subcommand)]
    Relay(RelayCommand),
    /// Contacts: add, update, list, remove, block, unblock, verify, unverify, receipts, set
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Send a message (it is durably queued before this returns)
    #[command(after_help = "Examples:\n  \
hush send bob \"see you at 8\"\n  \
hush send bob \"are you there?\" --wait delivered --timeout 60\n  \
hush send bob --file ./holiday.jpg \"the beach\"\n  \
echo \"from a script\" | hush send bob - --json")]
    Send(SendArgs),
    /// Show the conversation with a contact, oldest to newest
    #[command(after_help = "Examples:\n  \
hush history bob\n  \
hush history bob --limit 20 --json")]
    History(HistoryArgs),
    /// Search the messages of every conversation (or one), best match first
    Search(crate::commands::search::SearchArgs),
    /// Write the history as JSON to standard output, for you to keep
    /// (plaintext; there is no import)
    Export(crate::commands::search::ExportArgs),
    /// Mark a conversation read (sends a read receipt)
    Read {
        /// The contact's name
        #[arg(add = ArgValueCompleter::new(contact_names))]
        name: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Follow events: new messages, status changes, contacts coming online
    Events {
        /// One JSON object per line (each with its `cursor`)
        #[arg(long)]
        json: bool,
        /// Resume after the event with this cursor (from `--json`): the
        /// events since then first, nothing missed while the node kept
        /// them (else a `gap` event says so)
        #[arg(long, value_name = "CURSOR")]
        after: Option<String>,
    },
    /// Show the node's status
    Status {
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// The home relays: how each was chosen (given or found through the
    /// DHT) and whether it answers
    Relays {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// A full-screen chat client of the running node: conversations on the
    /// left, the open one on the right, a compose line at the bottom
    Tui {
        /// Open this conversation (a contact's or a group's name)
        #[arg(long, value_name = "NAME|GROUP")]
        open: Option<String>,
    },
    /// Every conversation, the most recent first: unread messages, the
    /// newest one, muted or not
    Conversations {
        /// Print JSON instead of text (one array)
        #[arg(long)]
        json: bool,
    },
    /// A contact's presence (online, last seen), or the global sharing switch.
    Presence(PresenceArgs),
    /// Group chats: create, invite, join, send, history, members, remove...
    #[command(subcommand)]
    Group(GroupCommand),
    /// This account's devices: link a new one, join as one, list, revoke
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Files sent and received: list transfers, fetch one, cancel one
    #[command(subcommand)]
    File(FileCommand),
    /// Start two real nodes on loopback and show them chatting
    Demo,
    /// Measure performance
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Print a shell completion script: on Tab it asks hush (on your PATH)
    /// what fits, contact and group names included (from the running node)
    #[command(after_help = "Examples:\n  \
hush completions bash > ~/.local/share/bash-completion/completions/hush\n  \
echo 'source <(hush completions zsh)' >> ~/.zshrc\n  \
hush completions fish > ~/.config/fish/completions/hush.fish")]
    Completions {
        /// The shell to complete for
        shell: clap_complete::Shell,
        /// A script that never runs hush while completing: commands and
        /// options only, no contact or group names
        #[arg(long = "static")]
        fixed: bool,
    },
    /// Print the manual page, or write every page (one per command, and
    /// hush-api(7) for the local API) into a folder
    #[command(after_help = "Examples:\n  \
hush man | man -l -\n  \
hush man --dir ~/.local/share/man/man1 && mandb")]
    Man {
        /// Write the pages into DIR instead (created if missing); prints
        /// the files written
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum NodeCommand {
    /// Run the node in the foreground until interrupted
    #[command(
        after_help = "The settings a node started with are kept in HOME/config.toml; \
flags override them, and `hush node run` without flags runs with them again.\n\n\
Examples:\n  \
hush node run\n  \
hush node run --listen /ip4/0.0.0.0/tcp/4001 --relay /ip4/203.0.113.7/tcp/7001/p2p/12D3KooW..."
    )]
    Run(NodeRunArgs),
}

#[derive(Debug, Args)]
pub struct NodeRunArgs {
    /// A multiaddr to listen on, e.g. /ip4/0.0.0.0/tcp/4001 or
    /// /ip4/0.0.0.0/udp/4001/quic-v1 (repeatable) [default: all
    /// interfaces, random TCP and QUIC ports]
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// A home relay (its full address, ending in /p2p/<relay id>, as
    /// `hush relay run` prints it); repeatable, up to 3 are used. Saved:
    /// later runs without --relay keep the same relays
    #[arg(long, value_name = "MULTIADDR")]
    pub relay: Vec<String>,
    /// A relay to join the relays' DHT through (full address, ending in
    /// /p2p/<relay id>); repeatable. With no --relay given or saved, the
    /// node then picks its 3 home relays among those the DHT announces,
    /// the closest to its mailbox, and saves them
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
    /// A home relay the node picked through the DHT that has not answered
    /// for this many seconds is replaced by the next best one (contacts
    /// are told; the old one is still read if it comes back). Relays given
    /// with --relay are never replaced [default: 3600]
    #[arg(long, value_name = "SECS")]
    pub relay_failover_secs: Option<u64>,
    /// How often to ask the relays for new mail, in milliseconds: each
    /// time at a random point between a half and one and a half of it, so
    /// when we ask says nothing about when mail arrived [default: 1000]
    #[arg(long, value_name = "MS")]
    pub poll_ms: Option<u64>,
    /// How long presence records are valid; refreshed every half of it
    /// [default: 300]
    #[arg(long, value_name = "SECS")]
    pub presence_ttl: Option<u64>,
    /// How long a contact whose connection dropped still shows online
    /// [default: 30]
    #[arg(long, value_name = "SECS")]
    pub presence_grace: Option<u64>,
    /// Find contacts on the local network with mDNS (off by default: it
    /// tells everyone on the LAN that a hush node runs here; the name it
    /// announces is random and changes every run)
    #[arg(long, conflicts_with = "no_mdns")]
    pub mdns: bool,
    /// Do not use mDNS (the default; overrides `mdns = true` in
    /// config.toml)
    #[arg(long)]
    pub no_mdns: bool,
    /// Open no listener of your own: the node is reached only through
    /// circuits at its home relays, and only by your contacts (no hole
    /// punching, no mDNS). Needs a home relay
    #[arg(long, conflicts_with_all = ["listen", "mdns", "announce", "no_hidden"])]
    pub hidden: bool,
    /// Listen again after running --hidden (the setting is saved)
    #[arg(long)]
    pub no_hidden: bool,
    /// Run this shell command for each new message of a conversation that
    /// is not muted, with HUSH_KIND (message, file, group_message),
    /// HUSH_FROM, HUSH_CONVERSATION and HUSH_ID in its environment (and
    /// HUSH_TEXT with --notify-with-text); e.g. 'notify-send hush
    /// "$HUSH_FROM"'. Saved; an empty command turns it off
    #[arg(long, value_name = "CMD")]
    pub notify_cmd: Option<String>,
    /// Hand the message's text to --notify-cmd in HUSH_TEXT and to desktop
    /// notifications (off: they say who wrote, not what). Saved
    #[arg(long, value_enum, value_name = "on|off")]
    pub notify_with_text: Option<OnOff>,
    /// Desktop notifications for new messages of conversations that are
    /// not muted, when a session bus is present (on by default, unless
    /// --notify-cmd is set). Saved
    #[arg(long, value_enum, value_name = "on|off")]
    pub desktop_notify: Option<OnOff>,
    /// An address to put in your card and presence records (repeatable),
    /// e.g. your router's forwarded port /ip4/203.0.113.5/tcp/4001 or a
    /// LAN address contacts should use. Loopback and private addresses of
    /// a wildcard --listen are never shared otherwise
    #[arg(long, value_name = "MULTIADDR")]
    pub announce: Vec<String>,
    /// Files up to this many MiB are fetched as soon as their message
    /// arrives; larger ones wait for `hush file get` [default: 64]
    #[arg(long, value_name = "MIB")]
    pub auto_fetch_mib: Option<u64>,
    /// The largest file this node sends or fetches, in MiB [default: 4096]
    #[arg(long, value_name = "MIB")]
    pub max_file_mib: Option<u64>,
    /// Files you sent are served (their encrypted copy kept in the home)
    /// this many days, then no longer; 0 keeps them until `hush file
    /// cancel` [default: 30]
    #[arg(long, value_name = "DAYS")]
    pub keep_sent_days: Option<u64>,
}

#[derive(Debug, Args)]
pub struct PresenceArgs {
    /// The contact to show; omit it with --share.
    #[arg(required_unless_present = "share", add = ArgValueCompleter::new(contact_names))]
    pub name: Option<String>,
    /// Look the contact up in the DHT now instead of answering from what
    /// the node knows.
    #[arg(long)]
    pub refresh: bool,
    /// Switch sharing of your presence and last seen with everyone.
    #[arg(long, value_enum, conflicts_with_all = ["name", "refresh"])]
    pub share: Option<OnOff>,
    /// Print JSON instead of text (one object; a list prints one array)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RelayCommand {
    /// Run the relay in the foreground until interrupted (Ctrl-C or SIGTERM)
    Run(RelayRunArgs),
}

/// Flags override `HUSH_RELAY_*` environment variables, which override the
/// config file, which overrides the defaults.
#[derive(Debug, Args)]
pub struct RelayRunArgs {
    /// A TOML config file (see docs/relay-operators.md)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// A multiaddr to listen on (repeatable) [default: /ip4/0.0.0.0/tcp/7001
    /// and /ip4/0.0.0.0/udp/7001/quic-v1]
    #[arg(long, value_name = "MULTIADDR")]
    pub listen: Vec<String>,
    /// The folder for the relay's database and identity
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// How long unfetched mail is kept, in seconds [default: 30 days]
    #[arg(long, value_name = "SECS")]
    pub retention_secs: Option<u64>,
    /// Serve Prometheus metrics on this address, e.g. 127.0.0.1:9464
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Another relay to join the DHT through (repeatable)
    #[arg(long, value_name = "MULTIADDR")]
    pub bootstrap: Vec<String>,
    /// Check the configuration (file, flags, defaults) and exit: 0 and a
    /// summary if the relay would start with it, 1 and what is wrong if not
    #[arg(long)]
    pub check_config: bool,
}

#[derive(Debug, Subcommand)]
pub enum FileCommand {
    /// Every file sent and received: id, name, size, bytes fetched, state,
    /// who sent it, conversation
    List {
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Fetch (or resume) a file that was not fetched by itself (larger
    /// than the node's --auto-fetch-mib, failed, or cancelled)
    Get {
        /// The file's id (from `hush file list` or `hush history`)
        id: String,
        /// The folder to save it in [default: HOME/files]
        #[arg(long, value_name = "DIR", value_hint = clap::ValueHint::DirPath)]
        to: Option<PathBuf>,
        /// Wait until it is complete (a progress bar on a terminal)
        #[arg(long)]
        wait: bool,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Write the small JPEG preview a photo came with (nothing is fetched)
    Thumbnail {
        /// The file's id
        id: String,
        /// Where to write the JPEG
        #[arg(value_hint = clap::ValueHint::FilePath)]
        out: PathBuf,
    },
    /// Stop a download and remove what it fetched
    Cancel {
        /// The file's id
        id: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Print a one-time code that links a new device to this account (the
    /// node must run); waits until the new device has joined. With --json:
    /// one line with the code, then one when the device joined
    #[command(after_help = "Example:\n  \
hush device link                 # on the laptop that has the account\n  \
hush --home ~/.hush2 device join hush-link1... --name desktop   # on the new one")]
    Link {
        /// Return once the code is printed; do not wait for the new device
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the code is valid 10 minutes)
        #[arg(long, default_value_t = 600, value_name = "SECS")]
        timeout: u64,
        /// Copy the account key to the new device too: it can then link
        /// devices and change groups itself (and a lost first device is not
        /// the end of the account)
        #[arg(long)]
        with_account_key: bool,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Join an account as a new device, with the code `hush device link`
    /// printed on one of its devices; the home must be new
    #[command(after_help = "Example:\n  \
hush --home ~/.hush2 device join hush-link1... --name desktop --history 30")]
    Join {
        /// The link code (starts with hush-link1)
        code: String,
        /// This device's name, as the account's devices show it
        #[arg(long)]
        name: String,
        /// How much history to copy: all, none, or the last DAYS days
        #[arg(long, default_value = "all", value_name = "all|none|DAYS")]
        history: String,
        /// Give up after this many seconds
        #[arg(long, default_value_t = 120, value_name = "SECS")]
        timeout: u64,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Take a device off the account (lost or stolen): contacts and your
    /// other devices stop sending to it, and it can no longer send
    #[command(after_help = "Example:\n  hush device revoke laptop")]
    Revoke {
        /// The device's name, or the first 8 or more characters of its id
        #[arg(add = ArgValueCompleter::new(device_names))]
        device: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// The account's devices: name, id, this one?, linked at, last seen
    List {
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContactCommand {
    /// Add a contact from their card (the line `hush id` prints)
    #[command(
        after_help = "Example:\n  hush contact add bob hush1...   # the card bob's `hush id` printed"
    )]
    Add {
        /// The name you will use for them
        name: String,
        /// Their contact card (starts with hush1)
        card: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Replace a contact's card with their current one (new addresses or
    /// home relays); the name, settings and history stay
    Update {
        /// The name you use for them
        #[arg(add = ArgValueCompleter::new(contact_names))]
        name: String,
        /// Their current contact card (from their `hush id`)
        card: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Remove a contact: their card, sessions, queued messages and access
    /// to your presence go (your presence key is rotated); the conversation
    /// stays unless --delete-history. What they send afterwards is refused
    #[command(after_help = "Example:\n  hush contact remove bob --delete-history")]
    Remove {
        /// The contact's name
        #[arg(add = ArgValueCompleter::new(contact_names))]
        name: String,
        /// Also delete your conversation with them
        #[arg(long)]
        delete_history: bool,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Block a contact: their connections are refused, what they send is
    /// dropped, nothing goes to them (queued messages wait) and they no
    /// longer see your presence. They are not told
    Block {
        /// The contact's name
        #[arg(add = ArgValueCompleter::new(contact_names))]
        name: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Unblock a contact: messages flow again, what was queued goes out
    Unblock {
        /// The contact's name
        #[arg(add = ArgValueCompleter::new(contact_names))]
        name: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Mark a contact verified after comparing the safety number with them
    /// (in person or on a call): if their keys ever change, `send`,
    /// `history` and `events` warn until you verify again
    #[command(
        after_help = "Example:\n  hush contact list            # read bob's safety number to him\n  hush contact verify bob      # once the digits match"
    )]
    Verify {
        /// The contact's name
        #[arg(add = ArgValueCompleter::new(contact_names))]
        name: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Take the verified mark away
    Unverify {
        /// The contact's name
        #[arg(add = ArgValueCompleter::new(contact_names))]
        name: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// List contacts with their safety numbers
    List {
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Turn read receipts to a contact on or off (on by default)
    Receipts {
        /// The contact's name
        #[arg(add = ArgValueCompleter::new(contact_names))]
        name: String,
        #[arg(value_enum)]
        setting: OnOff,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Change what you share with a contact.
    Set {
        /// The contact's name
        #[arg(add = ArgValueCompleter::new(contact_names))]
        name: String,
        /// Whether the contact sees your presence and last seen.
        #[arg(long, value_enum)]
        share_presence: Option<OnOff>,
        /// Whether the contact sees when you have read their messages.
        #[arg(long, value_enum)]
        receipts: Option<OnOff>,
        /// No notification (--notify-cmd) for this conversation's messages
        #[arg(long, value_enum)]
        mute: Option<OnOff>,
        /// Messages of the conversation disappear this long after they were
        /// sent, on both sides (30s, 10m, 8h, 7d, 4w, or `off`)
        #[arg(long, value_name = "DURATION|off", value_parser = parse_disappear)]
        disappear: Option<Disappear>,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WaitFor {
    Sent,
    Delivered,
    Read,
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// The contact's name
    #[arg(add = ArgValueCompleter::new(contact_names))]
    pub name: String,
    /// The message (with --file: the file's caption, optional); `-` reads
    /// it from standard input (so it stays out of the shell history and `ps`)
    #[arg(required_unless_present = "file")]
    pub text: Option<String>,
    /// Send this file (any size up to the node's --max-file-mib); the
    /// contact's devices fetch it from this one
    #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
    pub file: Option<PathBuf>,
    /// Wait until the message reaches this status
    #[arg(long, value_enum)]
    pub wait: Option<WaitFor>,
    /// How long --wait waits, in seconds
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    pub timeout: u64,
    /// Print JSON instead of text (one object; a list prints one array)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// The contact's name
    #[arg(add = ArgValueCompleter::new(contact_names))]
    pub name: String,
    /// At most this many messages (the newest ones before --before)
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Only messages older than this message id (for paging back)
    #[arg(long, value_name = "ID", conflicts_with = "after")]
    pub before: Option<String>,
    /// Only messages newer than this message id, the oldest first (to
    /// catch up from the last one seen)
    #[arg(long, value_name = "ID")]
    pub after: Option<String>,
    /// Print JSON instead of text (one object; a list prints one array)
    #[arg(long)]
    pub json: bool,
}

/// A group is named by its name, or by its id (or the id's first 8+ hex
/// digits) when names clash.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Create a group (you are its first admin); prints its id
    Create {
        name: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Invite a contact into a group (admins only)
    Invite {
        #[arg(add = ArgValueCompleter::new(group_names))]
        group: String,
        /// The contact's name
        #[arg(add = ArgValueCompleter::new(contact_names))]
        contact: String,
        /// Make them an admin
        #[arg(long)]
        admin: bool,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Accept an invitation
    Join {
        #[arg(add = ArgValueCompleter::new(group_names))]
        group: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Decline an invitation
    Decline {
        #[arg(add = ArgValueCompleter::new(group_names))]
        group: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Leave a group (or forget one you were removed from)
    Leave {
        #[arg(add = ArgValueCompleter::new(group_names))]
        group: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Remove a member or withdraw an invitation (admins only)
    Remove {
        #[arg(add = ArgValueCompleter::new(group_names))]
        group: String,
        member: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Change the group's settings (admins only)
    Set {
        #[arg(add = ArgValueCompleter::new(group_names))]
        group: String,
        /// Members' messages disappear this long after they were sent, on
        /// every device (30s, 10m, 8h, 7d, 4w, or `off`)
        #[arg(long, value_name = "DURATION|off", value_parser = parse_disappear)]
        disappear: Option<Disappear>,
        /// No notification (--notify-cmd) for the group's messages (this
        /// device only)
        #[arg(long, value_enum)]
        mute: Option<OnOff>,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Make a member an admin (admins only)
    Promote {
        #[arg(add = ArgValueCompleter::new(group_names))]
        group: String,
        member: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Send a message to the group
    Send {
        #[arg(add = ArgValueCompleter::new(group_names))]
        group: String,
        /// The message (with --file: the file's caption, optional)
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// Send this file; members fetch it from this device (or its relays)
        #[arg(long, value_name = "PATH", value_hint = clap::ValueHint::FilePath)]
        file: Option<PathBuf>,
        /// Wait until every other member has it
        #[arg(long, value_enum)]
        wait: Option<GroupWait>,
        /// How long --wait waits, in seconds
        #[arg(long, default_value_t = 30, value_name = "SECS")]
        timeout: u64,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// The group's messages, oldest to newest
    History {
        #[arg(add = ArgValueCompleter::new(group_names))]
        group: String,
        /// At most this many messages (the newest ones before --before)
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// Only messages older than this message id (for paging back)
        #[arg(long, value_name = "ID", conflicts_with = "after")]
        before: Option<String>,
        /// Only messages newer than this message id, the oldest first
        #[arg(long, value_name = "ID")]
        after: Option<String>,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Members, their roles and devices
    Members {
        #[arg(add = ArgValueCompleter::new(group_names))]
        group: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Your groups and invitations
    List {
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Mark the group's messages read (tells their authors)
    Read {
        #[arg(add = ArgValueCompleter::new(group_names))]
        group: String,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GroupWait {
    Delivered,
}

/// Every command path below `hush`, e.g. `["node", "run"]`.
#[cfg(test)]
pub fn command_paths() -> Vec<Vec<String>> {
    fn walk(command: &clap::Command, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for sub in command.get_subcommands() {
            let mut path = prefix.to_vec();
            path.push(sub.get_name().to_owned());
            walk(sub, &path, out);
            out.push(path);
        }
    }
    let mut out = Vec::new();
    walk(&<Cli as clap::CommandFactory>::command(), &[], &mut out);
    assert!(out.len() > 30, "{out:?}");
    out
}

#[derive(Debug, Subcommand)]
pub enum PushCommand {
    /// Register this endpoint with every home relay (a fresh random token
    /// each time); the node must run
    #[command(after_help = "Examples:\n  \
hush push set https://ntfy.sh/my-secret-topic-4f2a\n  \
hush push set https://push.example.org/UP?token=abc   # from your UnifiedPush distributor")]
    Set {
        /// The endpoint URL (https://; http:// only where a relay allows it)
        url: String,
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Tell every home relay to forget the endpoint
    Off {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// The endpoint's host and where each home relay's registration stands
    Status {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PassphraseCommand {
    /// Protect the database key (today kept as it is in hush.key) with a
    /// passphrase; the database is not rewritten
    Set {
        /// Read the new passphrase from this file's first line instead of
        /// asking
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Change the passphrase (the current one: --passphrase-file, or asked)
    Change {
        /// Read the new passphrase from this file's first line instead of
        /// asking
        #[arg(long, value_name = "FILE")]
        new_passphrase_file: Option<PathBuf>,
    },
    /// Keep the database key without a passphrase again (anyone who reads
    /// the home can then read the database)
    Remove,
}

//! Command-line arguments, and their resolution into validated settings.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCompleter;

use crate::commands::completion::{contact_names, device_names, group_names};

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
and a relay had refused the message, e.g. a full mailbox; it stays queued).\n\
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
        /// One JSON object per line
        #[arg(long)]
        json: bool,
    },
    /// Show the node's status
    Status {
        /// Print JSON instead of text (one object; a list prints one array)
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
    /// How often to ask the relays for new mail when a fetch cannot be
    /// held open, in milliseconds [default: 1000]
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
        /// Messages of the conversation disappear this long after they were
        /// sent, on both sides (30s, 10m, 8h, 7d, 4w, or `off`)
        #[arg(long, value_name = "DURATION|off", value_parser = parse_disappear)]
        disappear: Option<Disappear>,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
}

/// A disappearing timer as given: seconds, or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disappear(pub Option<u32>);

/// `off`, or a duration: a number and a unit (`s`, `m`, `h`, `d`, `w`),
/// several of them run together (`1h30m`); 1 second to a year.
pub fn parse_disappear(text: &str) -> Result<Disappear, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("off") {
        return Ok(Disappear(None));
    }
    let bad =
        || format!("{text:?} is not a duration: give e.g. 30s, 10m, 8h, 7d, 4w or 1h30m, or `off`");
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit: u64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(bad)?;
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    match u32::try_from(total) {
        Ok(secs) if secs <= hush_protocol::MAX_TIMER_SECS => Ok(Disappear(Some(secs))),
        _ => Err(format!("{text:?} is longer than a year, the longest timer")),
    }
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
    #[arg(long, value_name = "ID")]
    pub before: Option<String>,
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
        disappear: Disappear,
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
        #[arg(long, value_name = "ID")]
        before: Option<String>,
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

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Two nodes on loopback TCP: latency, throughput, floor RTT, idle RSS
    Direct {
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
        /// Messages in the latency run (sent at a steady --rate)
        #[arg(long, default_value_t = 2500)]
        latency_messages: usize,
        /// Messages per second in the latency run
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        rate: u64,
        /// Messages in the throughput run (pipelined)
        #[arg(long, default_value_t = 20_000)]
        throughput_messages: usize,
        /// Send 256 bytes of words (about 45, each indexed for search)
        /// instead of 256 × `x` (one word too long to index)
        #[arg(long)]
        words: bool,
    },
    /// A relay under load: ingest rate, deposit ack latency, and a node
    /// draining 10,000 queued messages
    Relay {
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
        /// Concurrent senders, each on its own connection
        #[arg(long, default_value_t = 50)]
        senders: usize,
        /// 512-byte envelopes deposited in all
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        /// Envelopes per deposit request (a node with a backlog sends up to
        /// 256 in one)
        #[arg(long, default_value_t = 16)]
        batch: usize,
        /// Deposit requests each sender keeps in flight (a node keeps one
        /// per relay and device)
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// Offer this many envelopes per second in all, on a schedule, instead
        /// of saturating the relay (ack latency at a given load)
        #[arg(long, value_name = "MSGS_PER_S")]
        rate: Option<u64>,
        /// Instead of the load run: open this many idle connections to a
        /// relay process and report its resident memory per connection
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=9_000))]
        idle_connections: Option<u64>,
    },
    /// What the liveness probe costs one idle connection, in bytes per
    /// second on the wire (two swarms on loopback; needs `ss` from iproute2)
    Liveness {
        /// How long to measure
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(5..=3600))]
        secs: u64,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// DHT presence lookups across 20 relays, and how soon a contact
    /// coming online is seen.
    Presence {
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// A file between two node processes on loopback: sealing, transfer,
    /// a plain TCP copy for the floor, peak memory, and what a resume after
    /// `kill -9` fetches twice
    File {
        /// The file's size
        #[arg(long, default_value_t = 1024, value_name = "MIB")]
        size_mib: u64,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Search: a synthetic history stored, sealed and indexed in the same
    /// transactions, then a fixed mix of queries; beside it the same
    /// inserts sealed without the index and plain (the floor)
    Search {
        /// Messages in the history
        #[arg(long, default_value_t = 1_000_000)]
        messages: usize,
        /// Messages stored per transaction
        #[arg(long, default_value_t = hush_node::search_bench::DEFAULT_BATCH)]
        batch: usize,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Linking a device: code accepted until the new device holds the whole
    /// history, and send → delivered to a 3-device contact against a
    /// 1-device one
    Link {
        /// Messages of history the new device receives
        #[arg(long, default_value_t = 10_000)]
        messages: usize,
        /// Messages in each fan-out latency run
        #[arg(long, default_value_t = 200)]
        fanout_messages: usize,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// Folding a group's membership ops into its state (no network): a
    /// whole set cold and warm, and op by op
    Fold {
        /// Members besides the creator
        #[arg(long, default_value_t = 999)]
        members: u32,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// N in-process nodes in one group on loopback: publish-to-decrypted
    /// latency at every member, bytes per member per message, memory
    Group {
        #[arg(long, default_value_t = 50)]
        members: usize,
        /// Messages measured (after a warm-up)
        #[arg(long, default_value_t = 200)]
        messages: usize,
        /// Milliseconds between two messages (20: 50 messages a second)
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        interval_ms: u64,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
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

#[cfg(test)]
mod tests {
    use super::{Disappear, parse_disappear};

    #[test]
    fn disappearing_timers_parse_as_people_write_them() {
        assert_eq!(parse_disappear("off"), Ok(Disappear(None)));
        assert_eq!(parse_disappear("30s"), Ok(Disappear(Some(30))));
        assert_eq!(parse_disappear("1h30m"), Ok(Disappear(Some(5400))));
        assert_eq!(parse_disappear("7d"), Ok(Disappear(Some(7 * 86_400))));
        assert_eq!(parse_disappear("4W"), Ok(Disappear(Some(28 * 86_400))));
        for bad in [
            "",
            "0s",
            "10",
            "h",
            "5x",
            "-5m",
            "99999999999999999999s",
            "53w",
        ] {
            assert!(parse_disappear(bad).is_err(), "{bad:?} was taken");
        }
    }
}

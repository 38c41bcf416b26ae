//! `hush bench …`: what each benchmark takes.

use clap::Subcommand;

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
    /// The relay network on loopback: N relays announce themselves, M
    /// nodes search for home relays through the DHT (time, requests, how
    /// evenly they spread), then a fifth of the relays stop and a few real
    /// nodes come back for the mail left for them
    Network {
        /// Print JSON instead of text
        #[arg(long)]
        json: bool,
        /// Relays in the DHT
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(4..=2_000))]
        relays: u64,
        /// Searches for home relays (nodes' mailboxes)
        #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        nodes: u64,
        /// Real nodes in the churn run (offline mail, then a fifth of the
        /// relays stopped)
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=200))]
        churn_nodes: u64,
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
        /// Quiet seconds between the warm-up and the measured messages
        /// (the idle load is read over the last two): more lets what
        /// setup left running (first liveness probes, receipts, redials)
        /// end before the measuring starts
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(2..=120))]
        quiet_secs: u64,
        /// Also give, message by message, when it was sent and how long it
        /// took to reach its first, median and last member, and the cores
        /// busy each second of the measured run: which messages went slow
        /// first, and whether the process was saturated by then
        #[arg(long)]
        trace: bool,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
    /// The floor under `bench group`: N bare gossipsub swarms on loopback,
    /// every pair connected, CPU per delivery with nothing but gossip, with
    /// the checks and decryption a member makes, and with each message
    /// also kept in a member's store
    Gossip {
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(2..=1000))]
        members: u64,
        /// Connections a member holds, about (each dials half this many
        /// others at random); unset: every pair is connected. `bench
        /// group`'s members hold about 19 at 50 (`connected_peers_mean`)
        #[arg(long, value_parser = clap::value_parser!(u64).range(2..=1000))]
        peers: Option<u64>,
        /// Messages in each of the three rounds
        #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=100_000))]
        messages: u64,
        /// Milliseconds between two messages (20: 50 messages a second)
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000))]
        interval_ms: u64,
        /// Print JSON instead of text (one object; a list prints one array)
        #[arg(long)]
        json: bool,
    },
}

//! `hush`: the command-line client. A thin client of the node's local API;
//! `init`, `id` (when the node is stopped), `node run`, `demo` and `bench`
//! are the only commands that touch the home folder directly.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod args;
mod bench;
mod bench_file;
mod bench_fold;
mod bench_gossip;
mod bench_group;
mod bench_hops;
mod bench_idle;
mod bench_link;
mod bench_liveness;
mod bench_network;
mod bench_presence;
mod bench_relay;
mod commands;
mod demo;
mod tui;

use std::process::ExitCode;

use clap::Parser;

/// Exit code when `send --wait` gave up before the wanted status.
pub const EXIT_TIMED_OUT: u8 = 3;
/// Exit code when `send --wait` gave up and a relay had refused the
/// message meanwhile (its mailbox full, say).
pub const EXIT_REFUSED: u8 = 5;
/// Exit code when the node is not running (or went away while a command
/// followed it, as `events` does).
pub const EXIT_NODE_NOT_RUNNING: u8 = 4;

/// `hush events` lost its node: the node stopped.
#[derive(Debug)]
pub struct NodeWentAway;

impl std::fmt::Display for NodeWentAway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "the node stopped (its event stream ended): start it again with `hush node run`",
        )
    }
}

impl std::error::Error for NodeWentAway {}

/// The demo or a bench stopped by a signal; its exit status is 128 plus
/// the signal's number, as a shell reports a command killed by it.
#[derive(Debug)]
pub struct Interrupted {
    pub what: &'static str,
    pub signal: tokio::signal::unix::SignalKind,
}

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let by = if self.signal == tokio::signal::unix::SignalKind::interrupt() {
            "Ctrl-C"
        } else {
            "SIGTERM"
        };
        write!(
            f,
            "{} was interrupted ({by}): its nodes stopped and its temporary folder was removed",
            self.what
        )
    }
}

impl std::error::Error for Interrupted {}

/// The exit code for an error (see `hush --help`).
fn exit_code(error: &anyhow::Error) -> ExitCode {
    let not_running = matches!(
        error.downcast_ref::<hush_node::ClientError>(),
        Some(hush_node::ClientError::NotRunning { .. })
    ) || error.downcast_ref::<NodeWentAway>().is_some();
    if not_running {
        ExitCode::from(EXIT_NODE_NOT_RUNNING)
    } else {
        ExitCode::FAILURE
    }
}

fn main() -> ExitCode {
    // A Tab in a shell that sourced `hush completions SHELL`: answered
    // here, before anything else is printed.
    commands::completion::answer_if_asked();
    let cli = args::Cli::parse();
    if matches!(cli.command, args::Command::Tui { .. }) {
        // Only while this process has one thread (see `tui::Clock`).
        tui::read_local_offset();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(stop) = e.downcast_ref::<Interrupted>() {
                // Now, not after the runtime's teardown: what it tears down
                // (the nodes' loops, their folders gone) has nothing left
                // to say but errors.
                std::process::exit(128 + stop.signal.as_raw_value());
            }
            exit_code(&e)
        }
    }
}

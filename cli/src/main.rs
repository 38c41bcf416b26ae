//! `hush`: the command-line client. A thin client of the node's local API;
//! `init`, `id` (when the node is stopped), `node run`, `demo` and `bench`
//! are the only commands that touch the home folder directly.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod args;
mod bench;
mod bench_fold;
mod bench_group;
mod bench_idle;
mod bench_liveness;
mod bench_presence;
mod bench_relay;
mod commands;
mod demo;

use std::process::ExitCode;

use clap::Parser;

/// Exit code when `send --wait` gave up before the wanted status.
pub const EXIT_TIMED_OUT: u8 = 3;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
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
            ExitCode::FAILURE
        }
    }
}

//! One module per command group. Each resolves its arguments into checked
//! settings before anything runs, then talks to the node through its local
//! API (`init`, `id` with the node stopped, `node run`, `relay run`, `demo`
//! and `bench` are the only commands that touch a home or data folder).

mod bench;
mod chat;
pub mod completion;
mod contact;
mod device;
pub(crate) mod file;
mod group;
mod identity;
mod manual;
mod node;
mod passphrase;
mod presence;
mod push;
mod relay;
pub(crate) mod search;
mod status;

pub(crate) use identity::qr_code;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hush_node::{Client, Home};

use crate::args::{Cli, Command, LogFormat, NodeCommand, RelayCommand};

fn init_logging(default: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUSH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only for a terminal: a log file or the journal (a systemd
    // unit's stderr) would keep the escape codes as bytes. A non-empty
    // `NO_COLOR` turns it off for a terminal too (no-color.org).
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => logs.try_init(),
        LogFormat::Json => logs.json().flatten_event(true).try_init(),
    };
}

/// Runs the demo or a bench until it ends, Ctrl-C or SIGTERM. Interrupted,
/// it is dropped: its nodes stop (child processes are killed on drop) and
/// its temporary folder, hundreds of MiB for a large bench, is removed.
async fn until_interrupted(
    what: &'static str,
    work: impl std::future::Future<Output = Result<()>>,
) -> Result<ExitCode> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).context("could not watch for SIGTERM")?;
    let signal = tokio::select! {
        done = work => return done.map(|()| ExitCode::SUCCESS),
        _ = tokio::signal::ctrl_c() => SignalKind::interrupt(),
        _ = terminate.recv() => SignalKind::terminate(),
    };
    Err(crate::Interrupted { what, signal }.into())
}

fn resolve_home(home: Option<PathBuf>) -> Result<Home> {
    if let Some(dir) = home {
        return Ok(Home::new(dir));
    }
    let dirs = directories::ProjectDirs::from("", "", "hush").context(
        "could not find a data folder for hush (no home directory?): pass --home DIR or set HUSH_HOME",
    )?;
    Ok(Home::new(dirs.data_dir()))
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let verbose_default = matches!(cli.command, Command::Node(_) | Command::Relay(_));
    init_logging(
        if verbose_default { "info" } else { "warn" },
        cli.log_format,
    );
    let home = match cli.command {
        Command::Demo => return until_interrupted("the demo", crate::demo::run()).await,
        Command::Completions { shell, fixed } => {
            return completion::script(shell, fixed).map(|()| ExitCode::SUCCESS);
        }
        Command::Man { dir } => return manual::man(dir.as_deref()).map(|()| ExitCode::SUCCESS),
        Command::Bench(command) => {
            return until_interrupted("the bench", bench::run(command)).await;
        }
        Command::Relay(RelayCommand::Run(args)) => {
            let check = args.check_config;
            let config = relay::settings(args)?;
            if check {
                relay::print_checked(&config);
                return Ok(ExitCode::SUCCESS);
            }
            return relay::run(config).await.map(|()| ExitCode::SUCCESS);
        }
        _ => resolve_home(cli.home)?,
    };
    let home = passphrase::unlock(home, cli.passphrase_file.as_deref(), &cli.command)?;
    match cli.command {
        Command::Init { name, json } => identity::init(&home, &name, json)?,
        Command::Id { json, qr } => identity::id(&home, json, qr).await?,
        Command::Node(NodeCommand::Run(args)) => {
            let (config, file) = node::settings(&home, args)?;
            node::run(&home, config, file).await?;
        }
        Command::Contact(command) => {
            contact::run(&mut Client::connect(&home).await?, command).await?
        }
        Command::Presence(args) => presence::run(&mut Client::connect(&home).await?, args).await?,
        Command::Send(args) => return chat::send(&home, args).await,
        Command::History(args) => chat::history(&mut Client::connect(&home).await?, args).await?,
        Command::Search(args) => search::search(&mut Client::connect(&home).await?, args).await?,
        Command::Export(args) => search::export(&mut Client::connect(&home).await?, args).await?,
        Command::Read { name, json } => {
            chat::read(&mut Client::connect(&home).await?, &name, json).await?
        }
        Command::Events { json, after } => {
            chat::events(&mut Client::connect(&home).await?, json, after.as_deref()).await?;
        }
        Command::Status { json } => status::run(&mut Client::connect(&home).await?, json).await?,
        Command::Tui { open } => crate::tui::run(&home, open).await?,
        Command::Conversations { json } => {
            chat::conversations(&mut Client::connect(&home).await?, json).await?;
        }
        Command::Relays { json } => {
            status::relays(&mut Client::connect(&home).await?, json).await?;
        }
        Command::Group(command) => {
            return group::run(&home, command).await;
        }
        Command::Device(command) => device::run(&home, command).await?,
        Command::Passphrase(command) => passphrase::run(&home, command)?,
        Command::Push(command) => push::run(&mut Client::connect(&home).await?, command).await?,
        Command::File(command) => return file::run(&home, command).await,
        Command::Demo
        | Command::Bench(_)
        | Command::Relay(_)
        | Command::Completions { .. }
        | Command::Man { .. } => {}
    }
    Ok(ExitCode::SUCCESS)
}

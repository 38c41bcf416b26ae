//! Shell completion. `hush completions SHELL` prints a script that asks
//! hush itself what to complete on every Tab (clap_complete's engine,
//! behind `_HUSH_COMPLETE`), so contact and group names come from the
//! running node of the home being typed (`--home`, `HUSH_HOME`, or the
//! default). `--static` prints a script that never runs hush: commands and
//! options only.

use std::ffi::OsStr;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::CommandFactory;
use clap_complete::Shell;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{self, EnvCompleter};
use hush_node::Client;
use serde_json::Value;

use crate::args::Cli;

/// The variable the script sets when it asks hush for completions.
const COMPLETE_VAR: &str = "_HUSH_COMPLETE";
/// A node that does not answer this fast gives no names (the shell waits).
const NAMES_TIMEOUT: Duration = Duration::from_millis(500);

/// Answers the shell and exits, if this run is a completion request.
pub fn answer_if_asked() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(COMPLETE_VAR)
        .complete();
}

/// Prints the completion script for `shell`.
pub fn script(shell: Shell, fixed: bool) -> Result<()> {
    // Into memory first: the generator panics when its writer fails (a
    // closed pipe, say); writing the buffer reports it instead.
    let mut script = Vec::new();
    if fixed {
        clap_complete::generate(shell, &mut Cli::command(), "hush", &mut script);
    } else {
        let completer: &dyn EnvCompleter = match shell {
            Shell::Bash => &env::Bash,
            Shell::Zsh => &env::Zsh,
            Shell::Fish => &env::Fish,
            Shell::Elvish => &env::Elvish,
            Shell::PowerShell => &env::Powershell,
            other => bail!("no completion for {other}: use bash, zsh, fish, elvish or powershell"),
        };
        completer
            .write_registration(COMPLETE_VAR, "hush", "hush", "hush", &mut script)
            .context("could not write the completion script")?;
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&script)
        .and_then(|()| out.flush())
        .context("could not write the completion script")
}

/// The running node's contact names that start with what is typed.
pub fn contact_names(current: &OsStr) -> Vec<CompletionCandidate> {
    names("contact.list", current)
}

/// The running node's group names that start with what is typed.
pub fn group_names(current: &OsStr) -> Vec<CompletionCandidate> {
    names("group.list", current)
}

/// The running node's names for the account's devices.
pub fn device_names(current: &OsStr) -> Vec<CompletionCandidate> {
    names("device.list", current)
}

fn names(method: &str, current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let Ok(home) = super::resolve_home(home_typed()) else {
        return Vec::new();
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return Vec::new();
    };
    let list = runtime.block_on(async {
        let ask = async {
            let mut client = Client::connect(&home).await.ok()?;
            client.call(method, Value::Null).await.ok()
        };
        tokio::time::timeout(NAMES_TIMEOUT, ask)
            .await
            .ok()
            .flatten()
    });
    let mut names: Vec<String> = list
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|item| item["name"].as_str())
        .filter(|name| name.starts_with(current))
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names.into_iter().map(CompletionCandidate::new).collect()
}

/// The `--home` on the line being completed (the shell passes the whole
/// line as arguments), else `HUSH_HOME`.
fn home_typed() -> Option<PathBuf> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    home_in(&args).or_else(|| std::env::var_os("HUSH_HOME").map(PathBuf::from))
}

fn home_in(args: &[std::ffi::OsString]) -> Option<PathBuf> {
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "--home" {
            return it.next().map(PathBuf::from);
        }
        if let Some(dir) = arg.to_str().and_then(|a| a.strip_prefix("--home=")) {
            return Some(PathBuf::from(dir));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the engine offers for the line `args` with the cursor at the
    /// end of the last one.
    fn complete(args: &[&str]) -> Vec<String> {
        let mut command = Cli::command();
        let args: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
        let index = args.len() - 1;
        clap_complete::engine::complete(&mut command, args, index, None)
            .expect("completes")
            .into_iter()
            .map(|c| c.get_value().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn every_subcommand_is_offered_where_it_belongs() {
        for path in crate::args::command_paths() {
            let name = path.last().expect("a name").clone();
            let mut line = vec!["hush"];
            line.extend(path[..path.len() - 1].iter().map(String::as_str));
            line.push("");
            assert!(complete(&line).contains(&name), "{line:?} offers no {name}");
        }
    }

    #[test]
    fn every_shell_gets_a_script_that_asks_hush_and_a_static_one() {
        for shell in [
            Shell::Bash,
            Shell::Zsh,
            Shell::Fish,
            Shell::Elvish,
            Shell::PowerShell,
        ] {
            let completer: &dyn EnvCompleter = match shell {
                Shell::Bash => &env::Bash,
                Shell::Zsh => &env::Zsh,
                Shell::Fish => &env::Fish,
                Shell::Elvish => &env::Elvish,
                _ => &env::Powershell,
            };
            let mut script = Vec::new();
            completer
                .write_registration(COMPLETE_VAR, "hush", "hush", "hush", &mut script)
                .expect("written");
            let script = String::from_utf8(script).expect("utf-8");
            assert!(script.contains(COMPLETE_VAR), "{shell}: {script}");
            let mut fixed = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "hush", &mut fixed);
            let fixed = String::from_utf8(fixed).expect("utf-8");
            for path in crate::args::command_paths() {
                let name = path.last().expect("a name");
                assert!(fixed.contains(name.as_str()), "{shell}: no {path:?}");
            }
        }
    }

    #[test]
    fn names_are_asked_of_the_home_on_the_line() {
        let line = |a: &[&str]| {
            a.iter()
                .map(Into::into)
                .collect::<Vec<std::ffi::OsString>>()
        };
        assert_eq!(
            home_in(&line(&[
                "hush", "--", "hush", "--home", "/tmp/a", "send", ""
            ])),
            Some(PathBuf::from("/tmp/a"))
        );
        assert_eq!(
            home_in(&line(&["hush", "--home=/tmp/b", "send"])),
            Some(PathBuf::from("/tmp/b"))
        );
        assert_eq!(home_in(&line(&["hush", "send", "b"])), None);
    }
}

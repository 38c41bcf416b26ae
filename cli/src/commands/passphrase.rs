//! The passphrase that protects the database key (issue 17): read from a
//! file or asked on the terminal, for the commands that open the database;
//! `hush passphrase set|change|remove` rewrap the key in `hush.key` (the
//! database is not rewritten, and the node may be running).

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use hush_host::sealed_db::key_file::KeyFile;
use hush_node::Home;
use zeroize::Zeroizing;

use crate::args::{Command, DeviceCommand, NodeCommand, PassphraseCommand};

/// The first line of `path`.
fn read_file(path: &Path) -> Result<Zeroizing<String>> {
    let text = Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
        format!(
            "could not read the passphrase file {} (check the path and its permissions)",
            path.display()
        )
    })?);
    Ok(Zeroizing::new(
        text.lines().next().unwrap_or_default().to_owned(),
    ))
}

fn ask(prompt: &str) -> Result<Zeroizing<String>> {
    Ok(Zeroizing::new(
        rpassword::prompt_password(prompt).context("could not read the passphrase")?,
    ))
}

/// A new passphrase: from `file`, or asked twice on a terminal; `None`
/// when the user gives none (only where `empty_is_none`).
fn new_passphrase(file: Option<&Path>, empty_is_none: bool) -> Result<Option<Zeroizing<String>>> {
    if let Some(file) = file {
        let p = read_file(file)?;
        return Ok((!p.is_empty()).then_some(p));
    }
    if !std::io::stdin().is_terminal() {
        return Ok(None);
    }
    let hint = if empty_is_none { " (empty: none)" } else { "" };
    let first = ask(&format!("new passphrase{hint}: "))?;
    if first.is_empty() {
        return Ok(None);
    }
    let again = ask("the same again: ")?;
    if *first != *again {
        bail!("the two passphrases differ: nothing changed, try again");
    }
    Ok(Some(first))
}

/// Whether `command` opens the home's database itself.
fn opens_store(command: &Command) -> bool {
    matches!(
        command,
        Command::Init { .. }
            | Command::Id { .. }
            | Command::Node(NodeCommand::Run(_))
            | Command::Device(DeviceCommand::Join { .. })
            | Command::Passphrase(_)
    )
}

/// The home with the passphrase its key needs: from `--passphrase-file`,
/// or asked on a terminal. `hush init` on a terminal offers to set one.
pub fn unlock(home: Home, file: Option<&Path>, command: &Command) -> Result<Home> {
    if !opens_store(command) {
        return Ok(home);
    }
    if let Command::Init { .. } = command {
        return Ok(match new_passphrase(file, true)? {
            Some(p) => home.with_passphrase(p),
            None => home,
        });
    }
    if let Some(file) = file {
        return Ok(home.with_passphrase(read_file(file)?));
    }
    if home.key_is_wrapped() && std::io::stdin().is_terminal() {
        return Ok(home.with_passphrase(ask("passphrase: ")?));
    }
    // Without it, opening the database says how to give it.
    Ok(home)
}

pub fn run(home: &Home, command: PassphraseCommand) -> Result<()> {
    let path = home.key_path();
    let file = KeyFile::read(&path)
        .map_err(anyhow::Error::from)?
        .context("this home has no database key yet: run `hush init --name NAME` first")?;
    let key = home.db_key()?;
    let next = match command {
        PassphraseCommand::Set {
            new_passphrase_file,
        } => {
            if file.is_wrapped() {
                bail!("a passphrase protects the key already: use `hush passphrase change`");
            }
            let p = new_passphrase(new_passphrase_file.as_deref(), false)?
                .context("no passphrase given (on a terminal you are asked; else --new-passphrase-file FILE)")?;
            KeyFile::wrap(&key, &p)?
        }
        PassphraseCommand::Change {
            new_passphrase_file,
        } => {
            if !file.is_wrapped() {
                bail!("no passphrase protects the key: use `hush passphrase set`");
            }
            let p = new_passphrase(new_passphrase_file.as_deref(), false)?
                .context("no new passphrase given (on a terminal you are asked; else --new-passphrase-file FILE)")?;
            KeyFile::wrap(&key, &p)?
        }
        PassphraseCommand::Remove => {
            if !file.is_wrapped() {
                bail!("no passphrase protects the key: nothing to remove");
            }
            KeyFile::Plain(key)
        }
    };
    next.write(&path)
        .with_context(|| format!("could not write {}", path.display()))?;
    eprintln!(
        "{}",
        if next.is_wrapped() {
            "the database key is protected by the passphrase now (the database itself is unchanged)"
        } else {
            "the database key is kept without a passphrase now: anyone who reads the home can read the database"
        }
    );
    Ok(())
}

//! `hush file list|get|cancel`, and how files show in history and events.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Result, bail};
use hush_node::{Client, FileState, FileView, Home};
use hush_protocol::text::for_terminal;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use super::print_json;
use crate::args::FileCommand;

pub async fn run(home: &Home, command: FileCommand) -> Result<ExitCode> {
    let client = &mut Client::connect(home).await?;
    match command {
        FileCommand::List { json } => {
            let files: Vec<FileView> =
                serde_json::from_value(client.call("file.list", json!({})).await?)?;
            if json {
                print_json(&files)?;
            } else if files.is_empty() {
                println!("No files yet: `hush send NAME --file PATH` sends one.");
            } else {
                for file in &files {
                    println!("{}", transfer_line(file));
                }
            }
        }
        FileCommand::Get { id, to, wait, json } => {
            let to = match to {
                Some(to) => Some(std::path::absolute(&to)?),
                None => None,
            };
            // Subscribed before asking, so no event is missed.
            let mut events = Client::connect(home).await?;
            if wait {
                events.subscribe().await?;
            }
            let file: FileView = serde_json::from_value(
                client
                    .call("file.get", json!({ "id": id, "to": to }))
                    .await?,
            )?;
            let file = if wait && !finished(&file) {
                follow(&mut events, file, json).await?
            } else {
                file
            };
            if json {
                print_json(&file)?;
            } else {
                println!("{}", transfer_line(&file));
            }
            if file.state == FileState::Failed {
                return Ok(ExitCode::FAILURE);
            }
        }
        FileCommand::Thumbnail { id, out } => {
            let answer = client.call("file.thumbnail", json!({ "id": id })).await?;
            use base64::Engine as _;
            let jpeg = base64::engine::general_purpose::STANDARD
                .decode(answer["base64"].as_str().unwrap_or_default())
                .map_err(|e| {
                    anyhow::anyhow!("the node sent a thumbnail that does not decode: {e}")
                })?;
            std::fs::write(&out, &jpeg)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
            println!("{} ({} bytes)", out.display(), jpeg.len());
        }
        FileCommand::Cancel { id, json } => {
            let file: FileView =
                serde_json::from_value(client.call("file.cancel", json!({ "id": id })).await?)?;
            if json {
                print_json(&file)?;
            } else {
                println!("{}", transfer_line(&file));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn finished(file: &FileView) -> bool {
    matches!(
        file.state,
        FileState::Complete | FileState::Failed | FileState::Cancelled | FileState::Shared
    )
}

/// Follows the file's events until it is complete, failed or cancelled;
/// a progress bar on a terminal.
async fn follow(events: &mut Client, mut file: FileView, json: bool) -> Result<FileView> {
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(file.size);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_message(for_terminal(&file.name, false));
        bar.set_position(file.done);
        bar
    });
    while !finished(&file) {
        let Some(event) = events.next_event().await? else {
            bail!(crate::NodeWentAway);
        };
        if event["type"] != "file" || event["file"]["id"] != file.id.as_str() {
            continue;
        }
        if let Ok(update) = serde_json::from_value::<FileView>(event["file"].clone()) {
            file = update;
            if let Some(bar) = &bar {
                bar.set_position(file.done);
            }
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(file)
}

/// Runs `call` (a send of the file at `path`, absolute), with a bar on
/// standard error, on a terminal, of the file being sealed, fed by the
/// node's `sealing` events for it.
pub async fn with_sealing_bar<T>(
    home: &Home,
    path: Option<&std::path::Path>,
    json: bool,
    call: impl std::future::Future<Output = T>,
) -> T {
    let Some(path) = path.filter(|_| !json && std::io::stderr().is_terminal()) else {
        return call.await;
    };
    let Ok(mut events) = Client::connect(home).await else {
        return call.await;
    };
    if events.subscribe().await.is_err() {
        return call.await;
    }
    // The node names the file by its canonical path.
    let shown = std::fs::canonicalize(path)
        .unwrap_or_else(|_| path.to_owned())
        .display()
        .to_string();
    let name = for_terminal(
        &path.file_name().unwrap_or_default().to_string_lossy(),
        false,
    );
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("reading {name}"));
    let mut call = std::pin::pin!(call);
    loop {
        tokio::select! {
            out = &mut call => {
                bar.finish_and_clear();
                return out;
            }
            event = events.next_event() => match event {
                Ok(Some(event)) if event["type"] == "sealing" && event["path"] == shown.as_str() => {
                    let step = event["step"].as_str().unwrap_or_default();
                    bar.set_message(format!("{step} {name}"));
                    bar.set_length(event["total"].as_u64().unwrap_or(0));
                    bar.set_position(event["done"].as_u64().unwrap_or(0));
                }
                Ok(Some(_)) => {}
                // No more events: the send answers by itself.
                _ => {
                    let out = call.await;
                    bar.finish_and_clear();
                    return out;
                }
            }
        }
    }
}

/// `[file] holiday.mp4 1.9 GiB, saved to …` (and the caption), as history
/// and events show a file message.
pub fn file_line(file: &FileView, caption: &str) -> String {
    let name = for_terminal(&file.name, false);
    let size = hush_node::files::human_size(file.size);
    let state = match (file.state, &file.path) {
        (FileState::Complete, Some(path)) => {
            format!("saved to {}", for_terminal(path, false))
        }
        (FileState::Shared, _) => "sent".to_owned(),
        (FileState::Offered, _) => format!("not fetched: `hush file get {}`", file.id),
        (FileState::Fetching, _) => format!(
            "fetching, {}%",
            file.done
                .saturating_mul(100)
                .checked_div(file.size)
                .unwrap_or(100)
        ),
        (FileState::Failed, _) => format!(
            "failed: {} (`hush file get {}` tries again)",
            for_terminal(file.error.as_deref().unwrap_or("unknown"), false),
            file.id
        ),
        (FileState::Cancelled, _) => "cancelled".to_owned(),
        (FileState::Complete, None) => "complete".to_owned(),
    };
    let mut line = format!("[file] {name} {size}, {state}");
    if !caption.is_empty() {
        line.push_str(" — ");
        line.push_str(&for_terminal(caption, true));
    }
    line
}

/// One transfer, as `file list` and `file get` print it.
pub fn transfer_line(file: &FileView) -> String {
    let direction = if file.outgoing { "to" } else { "from" };
    let who = if file.outgoing {
        &file.conversation
    } else {
        &file.peer
    };
    let mut line = format!(
        "{}  {}  {}  {}/{}  {}  {direction} {}",
        file.id,
        for_terminal(&file.name, false),
        hush_node::files::human_size(file.size),
        hush_node::files::human_size(file.done),
        hush_node::files::human_size(file.size),
        file.state,
        for_terminal(who, false),
    );
    if let Some(path) = &file.path {
        line.push_str(&format!("  {}", for_terminal(path, false)));
    }
    if let Some(error) = &file.error {
        line.push_str(&format!("  ({})", for_terminal(error, false)));
    }
    line
}

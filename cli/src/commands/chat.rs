//! 1:1 chat: `hush send`, `hush history`, `hush read`, and `hush events`.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hush_node::{Client, ContactView, Home, MessageView, SendReceipt, Status, timer_text};
use hush_protocol::MAX_TEXT_LEN;
use hush_protocol::text::for_terminal;
use serde_json::{Value, json};

use super::print_json;
use crate::args::{HistoryArgs, SendArgs, WaitFor};

pub async fn send(home: &Home, args: SendArgs) -> Result<ExitCode> {
    let client = &mut Client::connect(home).await?;
    let wait = args.wait.map(|w| match w {
        WaitFor::Sent => Status::Sent,
        WaitFor::Delivered => Status::Delivered,
        WaitFor::Read => Status::Read,
    });
    let text = match args.text.as_deref() {
        Some("-") => read_stdin()?,
        Some(text) => text.to_owned(),
        None => String::new(),
    };
    // The node may run elsewhere in the file system's eyes (another
    // working folder): it gets an absolute path.
    let file = match &args.file {
        Some(path) => Some(
            std::path::absolute(path)
                .with_context(|| format!("cannot resolve the path {}", path.display()))?,
        ),
        None => None,
    };
    let params = json!({
        "contact": args.name,
        "text": text,
        "file": file,
        "wait": wait,
        "timeout_ms": args.timeout.saturating_mul(1000),
    });
    let receipt = super::file::with_sealing_bar(
        home,
        file.as_deref(),
        args.json,
        client.call("send", params),
    )
    .await;
    let receipt: SendReceipt = serde_json::from_value(receipt?)?;
    if args.json {
        print_json(&receipt)?;
    } else {
        println!("{} {}", receipt.id, receipt.status);
    }
    if let Some(problem) = &receipt.problem {
        eprintln!("warning: {problem}");
    }
    if receipt.keys_changed {
        eprintln!("{}", keys_changed_warning(&args.name));
    }
    if receipt.timed_out {
        eprintln!(
            "error: the message is {} after {}s, not yet {}; it stays queued and the node keeps retrying",
            receipt.status,
            args.timeout,
            wait.map_or("", |w| w.as_str())
        );
        // Not just slow: a relay said no (the warning above says why).
        if receipt.problem.is_some() {
            return Ok(ExitCode::from(crate::EXIT_REFUSED));
        }
        return Ok(ExitCode::from(crate::EXIT_TIMED_OUT));
    }
    Ok(ExitCode::SUCCESS)
}

/// The message from standard input, without the final newline.
fn read_stdin() -> Result<String> {
    let mut text = String::new();
    std::io::stdin()
        .take(MAX_TEXT_LEN as u64 + 2)
        .read_to_string(&mut text)
        .context("could not read the message from standard input (it must be UTF-8 text)")?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text).to_owned();
    if text.len() > MAX_TEXT_LEN {
        bail!("the message on standard input is over {MAX_TEXT_LEN} bytes: shorten it");
    }
    Ok(text)
}

/// What `send`, `history` and `events` print while a verified contact's
/// keys differ from the ones verified.
pub fn keys_changed_warning(name: &str) -> String {
    let name = for_terminal(name, false);
    format!(
        "WARNING: {name}'s keys changed since you verified them. Someone may be posing as {name}. \
         Compare the safety number with them again (`hush contact list`), then run `hush contact verify {name}`."
    )
}

/// A conversation entry's text for the terminal: the text (escaped), a
/// file's line, or what a change of the disappearing timer did; a message
/// that disappears says when.
pub fn message_text(m: &MessageView) -> String {
    entry_text(Entry {
        text: &m.text,
        file: m.file.as_ref(),
        kind: &m.kind,
        timer_secs: m.timer_secs,
        disappears_at: m.disappears_at.as_deref(),
    })
}

/// What [`entry_text`] shows of a message.
struct Entry<'a> {
    text: &'a str,
    file: Option<&'a hush_node::FileView>,
    kind: &'a str,
    timer_secs: Option<u32>,
    disappears_at: Option<&'a str>,
}

fn entry_text(m: Entry<'_>) -> String {
    if m.kind == "timer" {
        return match m.timer_secs {
            Some(secs) => format!("⏱ set disappearing messages to {}", timer_text(Some(secs))),
            None => "⏱ turned disappearing messages off".to_owned(),
        };
    }
    let text = match m.file {
        Some(file) => super::file::file_line(file, m.text),
        None => for_terminal(m.text, true),
    };
    match (m.disappears_at, m.timer_secs) {
        (Some(at), Some(secs)) => format!("{text}  (⏱ {}, gone at {at})", timer_text(Some(secs))),
        _ => text,
    }
}

/// `hush conversations`: every conversation, the most recent first.
pub async fn conversations(client: &mut Client, json: bool) -> Result<()> {
    let list: Vec<hush_node::ConversationView> =
        serde_json::from_value(client.call("conversations", Value::Null).await?)?;
    if json {
        return print_json(&list);
    }
    if list.is_empty() {
        println!("no conversations yet: add a contact (`hush contact add NAME CARD`)");
    }
    for c in &list {
        let unread = match c.unread {
            0 => String::new(),
            n => format!(" ({n} unread)"),
        };
        let muted = if c.muted { " [muted]" } else { "" };
        let group = if c.kind == "group" { "#" } else { "" };
        let last = c.last.as_ref().map_or(String::new(), |m| {
            let text: String = m.text.chars().take(60).collect();
            format!(
                "\n  {} {}: {}",
                m.sent_at,
                for_terminal(&m.from, false),
                for_terminal(&text, false)
            )
        });
        println!(
            "{group}{}{unread}{muted}{last}",
            for_terminal(&c.name, false)
        );
    }
    Ok(())
}

pub async fn history(client: &mut Client, args: HistoryArgs) -> Result<()> {
    let params = json!({
        "contact": args.name,
        "limit": args.limit,
        "before": args.before,
        "after": args.after,
    });
    let messages: Vec<MessageView> = serde_json::from_value(client.call("history", params).await?)?;
    let contacts: Vec<ContactView> =
        serde_json::from_value(client.call("contact.list", Value::Null).await?)?;
    if let Some(c) = contacts.iter().find(|c| c.name == args.name) {
        if c.keys_changed {
            eprintln!("{}", keys_changed_warning(&c.name));
        }
        if c.blocked {
            eprintln!(
                "note: you blocked {}; nothing new arrives from them (`hush contact unblock {}`)",
                for_terminal(&c.name, false),
                for_terminal(&c.name, false)
            );
        }
    }
    if args.json {
        print_json(&messages)?;
    } else {
        for m in messages {
            println!(
                "{}  {}  {}: {}  [{}]",
                m.id,
                m.sent_at,
                for_terminal(&m.from, false),
                message_text(&m),
                m.status
            );
        }
    }
    Ok(())
}

pub async fn read(client: &mut Client, name: &str, json: bool) -> Result<()> {
    let result = client.call("read", json!({ "contact": name })).await?;
    if json {
        super::print_json(&result)
    } else {
        println!("Marked {} messages read.", result["marked"]);
        Ok(())
    }
}

pub async fn events(client: &mut Client, json: bool, after: Option<&str>) -> Result<()> {
    match after {
        Some(cursor) => client.subscribe_after(cursor).await?,
        None => client.subscribe().await?,
    }
    while let Some(event) = client.next_event().await? {
        if json {
            println!("{event}");
        } else {
            println!("{}", describe_event(&event));
        }
    }
    Err(crate::NodeWentAway.into())
}

fn describe_event(event: &Value) -> String {
    // Names and text come from other people: shown, never run (`--json`
    // keeps them exact).
    let s = |k: &str| for_terminal(event[k].as_str().unwrap_or(""), false);
    let text = || {
        let m = &event["message"];
        let file = serde_json::from_value::<hush_node::FileView>(m["file"].clone()).ok();
        entry_text(Entry {
            text: m["text"].as_str().unwrap_or(""),
            file: file.as_ref(),
            kind: m["kind"].as_str().unwrap_or("message"),
            timer_secs: m["timer_secs"].as_u64().and_then(|s| u32::try_from(s).ok()),
            disappears_at: m["disappears_at"].as_str(),
        })
    };
    let from = || for_terminal(event["message"]["from"].as_str().unwrap_or(""), false);
    match event["type"].as_str() {
        Some("message") if event["keys_changed"] == true => format!(
            "{} {}: {}\n  {}",
            event["message"]["sent_at"].as_str().unwrap_or(""),
            s("contact"),
            text(),
            keys_changed_warning(event["contact"].as_str().unwrap_or(""))
        ),
        Some("message") => format!(
            "{} {}: {}",
            event["message"]["sent_at"].as_str().unwrap_or(""),
            s("contact"),
            text()
        ),
        Some("keys_changed") => keys_changed_warning(event["contact"].as_str().unwrap_or("")),
        Some("gap") => format!("note: {}", s("reason")),
        Some("lagged") => format!("note: {} events were skipped", event["missed"]),
        Some("contact_removed") => format!("contact removed: {}", s("contact")),
        Some("contact_blocked") if event["blocked"] == true => {
            format!("contact blocked: {}", s("contact"))
        }
        Some("contact_blocked") => format!("contact unblocked: {}", s("contact")),
        Some("contact_verified") if event["verified"] == true => {
            format!("contact verified: {}", s("contact"))
        }
        Some("contact_verified") => format!("contact no longer verified: {}", s("contact")),
        Some("status") => format!("{} → {} ({})", s("id"), s("status"), s("contact")),
        Some("contact_added") => format!("contact added: {}", s("contact")),
        Some("file") => {
            match serde_json::from_value::<hush_node::FileView>(event["file"].clone()) {
                Ok(file) => super::file::transfer_line(&file),
                Err(_) => for_terminal(&event.to_string(), false),
            }
        }
        Some("disappeared") => format!(
            "{} message(s) with {} disappeared",
            event["ids"].as_array().map_or(0, Vec::len),
            s("conversation")
        ),
        Some("undeliverable") => format!("{} not left at a relay: {}", s("id"), s("reason")),
        Some("group_invite") => format!(
            "{} invited you into the group {} (`hush group join {}`)",
            s("from"),
            s("group"),
            s("group")
        ),
        Some("group_message") => format!(
            "{} [{}] {}: {}",
            event["message"]["sent_at"].as_str().unwrap_or(""),
            s("group"),
            from(),
            text()
        ),
        Some("group_changed") => format!(
            "group {} changed (version {}); you are {}",
            s("group"),
            event["version"],
            s("you")
        ),
        Some("group_status") => format!("{} → {} (group {})", s("id"), s("status"), s("group")),
        Some("group_receipt") => format!(
            "{} in {}: delivered to {}, read by {}",
            s("id"),
            s("group"),
            event["delivered"],
            event["read"]
        ),
        Some("presence") => match event["last_seen"].as_str() {
            Some(at) if s("state") == "offline" => {
                format!("{} is offline, last seen {at}", s("contact"))
            }
            _ => format!("{} is {}", s("contact"), s("state")),
        },
        _ => for_terminal(&event.to_string(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_show_terminal_commands_from_others_escaped() {
        let event = json!({
            "type": "group_message",
            "group": "g\u{1b}[2J",
            "message": {
                "sent_at": "2026-11-30T12:00:00Z",
                "from": "mallory\u{202e}",
                "text": "hi\u{1b}]52;c;x\u{7}\nsecond line",
            },
        });
        let shown = describe_event(&event);
        assert!(
            !shown
                .chars()
                .any(|c| (c.is_control() && c != '\n') || c == '\u{202e}'),
            "{shown:?}"
        );
        assert!(shown.contains("g\\x1b[2J"), "{shown:?}");
        assert!(shown.contains("mallory\\u{202e}"), "{shown:?}");
        assert!(
            shown.contains("hi\\x1b]52;c;x\\x07\nsecond line"),
            "{shown:?}"
        );
    }
}

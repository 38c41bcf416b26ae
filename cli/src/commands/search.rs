//! `hush search` (the local full-text index, through the running node) and
//! `hush export` (the whole history as JSON, for the user to keep).

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, bail};
use clap::Args;
use clap_complete::ArgValueCompleter;
use hush_node::rpc::SearchParams;
use hush_node::{Client, ContactView, GroupView, SearchHitView};
use hush_protocol::text::for_terminal;
use serde_json::{Value, json};

use super::completion::{contact_names, group_names};
use super::print_json;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
hush search lunch\n  \
hush search '\"see you\" fri*' --contact bob\n  \
hush search invoice --group work --since 2026-01-01 --json\n\n\
Every word must match; \"a phrase\" matches those words in that order; \
word* matches words starting so. Case, accents and full-width forms do not \
matter. The index never leaves this device.")]
pub struct SearchArgs {
    /// Words, "a phrase", prefix*
    #[arg(required = true, num_args = 1..)]
    pub query: Vec<String>,
    /// Only the conversation with this contact
    #[arg(long, conflicts_with = "group", add = ArgValueCompleter::new(contact_names))]
    pub contact: Option<String>,
    /// Only this group's conversation
    #[arg(long, add = ArgValueCompleter::new(group_names))]
    pub group: Option<String>,
    /// Only messages by this contact (or `me`)
    #[arg(long, value_name = "NAME")]
    pub from: Option<String>,
    /// Only messages sent on or after this day or time (UTC: 2026-11-30 or
    /// 2026-11-30T18:00:00Z)
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    pub since: Option<u64>,
    /// Only messages sent up to this day (included) or before this time
    #[arg(long, value_name = "DATE", value_parser = parse_until)]
    pub until: Option<u64>,
    /// At most this many results (200 at most)
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
    /// Skip this many results first (the next page: --offset 20)
    #[arg(long, default_value_t = 0)]
    pub offset: usize,
    /// Print JSON instead of text (one object; a list prints one array)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
hush export --json > history.json\n  \
hush export --contact bob --json > bob.json\n\n\
The file is plaintext: keep it as safe as the conversations it holds. \
There is no import: an export is for reading and keeping, not for restoring \
a device (see `docs/architecture.md`, \"Why there is no restore\").")]
pub struct ExportArgs {
    /// Only the conversation with this contact
    #[arg(long, conflicts_with = "group", add = ArgValueCompleter::new(contact_names))]
    pub contact: Option<String>,
    /// Only this group's conversation
    #[arg(long, add = ArgValueCompleter::new(group_names))]
    pub group: Option<String>,
    /// JSON (the only format; required so the choice is explicit)
    #[arg(long, required = true)]
    pub json: bool,
}

/// A date (`YYYY-MM-DD`, midnight UTC) or an RFC 3339 UTC time, as Unix ms.
fn parse_date(text: &str, end_of_day: bool) -> Result<u64, String> {
    let bad = || format!("{text:?} is not a date: give YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC)");
    let (date, time) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut parts = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (Some(Some(y)), Some(Some(m)), Some(Some(d))) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let mut ms = days * 86_400_000;
    match time {
        Some(t) => {
            let t = t.strip_suffix('Z').ok_or_else(bad)?;
            let mut hms = t.split(':').map(|p| p.parse::<i64>().ok());
            let h = hms.next().flatten().filter(|h| (0..24).contains(h));
            let min = hms.next().flatten().filter(|m| (0..60).contains(m));
            let s = hms
                .next()
                .unwrap_or(Some(0))
                .filter(|s| (0..61).contains(s));
            let (Some(h), Some(min), Some(s)) = (h, min, s) else {
                return Err(bad());
            };
            ms += ((h * 60 + min) * 60 + s) * 1000;
        }
        None if end_of_day => ms += 86_400_000,
        None => {}
    }
    u64::try_from(ms).map_err(|_| bad())
}

fn parse_since(text: &str) -> Result<u64, String> {
    parse_date(text, false)
}

fn parse_until(text: &str) -> Result<u64, String> {
    parse_date(text, true)
}

/// `text` made safe for a terminal, with the `marks` ranges shown bold
/// (or in brackets when the output is not a terminal).
fn marked(text: &str, marks: &[(usize, usize)], color: bool) -> String {
    let (open, close) = if color {
        ("\x1b[1m", "\x1b[0m")
    } else {
        ("[", "]")
    };
    let mut out = String::new();
    let mut at = 0;
    for &(start, end) in marks {
        let (Some(before), Some(word)) = (text.get(at..start), text.get(start..end)) else {
            continue;
        };
        out.push_str(&for_terminal(before, false));
        out.push_str(open);
        out.push_str(&for_terminal(word, false));
        out.push_str(close);
        at = end;
    }
    out.push_str(&for_terminal(text.get(at..).unwrap_or_default(), false));
    out
}

pub async fn search(client: &mut Client, args: SearchArgs) -> Result<()> {
    if let (Some(since), Some(until)) = (args.since, args.until)
        && since >= until
    {
        bail!("--since is not before --until: nothing can match; widen the dates");
    }
    let params = SearchParams {
        query: args.query.join(" "),
        contact: args.contact,
        group: args.group,
        from: args.from,
        since_ms: args.since,
        until_ms: args.until,
        offset: Some(args.offset),
        limit: Some(args.limit),
    };
    let hits: Vec<SearchHitView> = serde_json::from_value(
        client
            .call("search", serde_json::to_value(&params)?)
            .await?,
    )?;
    if args.json {
        return print_json(&hits);
    }
    if hits.is_empty() {
        eprintln!("No messages match.");
        return Ok(());
    }
    let color = std::io::stdout().is_terminal();
    for h in &hits {
        let place = match h.kind.as_str() {
            "group" => format!("#{}", for_terminal(&h.conversation, false)),
            _ => for_terminal(&h.conversation, false),
        };
        println!(
            "{}  {}  {}  {}: {}",
            h.id,
            h.sent_at,
            place,
            for_terminal(&h.from, false),
            marked(&h.snippet, &h.marks, color)
        );
    }
    if hits.len() == args.limit {
        eprintln!(
            "More may match: --offset {} shows the next page.",
            args.offset + hits.len()
        );
    }
    Ok(())
}

/// Every page of one conversation's history, oldest first.
async fn whole_history(
    client: &mut Client,
    method: &str,
    key: &str,
    name: &str,
) -> Result<Vec<Value>> {
    let mut pages: Vec<Vec<Value>> = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let params = json!({ key: name, "limit": hush_node::MAX_HISTORY_LIMIT, "before": before });
        let page: Vec<Value> = serde_json::from_value(client.call(method, params).await?)?;
        let Some(oldest) = page.first() else { break };
        before = oldest["id"].as_str().map(str::to_owned);
        let full = page.len() == hush_node::MAX_HISTORY_LIMIT;
        pages.push(page);
        if !full || before.is_none() {
            break;
        }
    }
    Ok(pages.into_iter().rev().flatten().collect())
}

pub async fn export(client: &mut Client, args: ExportArgs) -> Result<()> {
    let status = client.call("status", Value::Null).await?;
    let contacts: Vec<ContactView> =
        serde_json::from_value(client.call("contact.list", Value::Null).await?)?;
    let groups: Vec<GroupView> =
        serde_json::from_value(client.call("group.list", Value::Null).await?)?;
    let contacts: Vec<&ContactView> = contacts
        .iter()
        .filter(|c| args.group.is_none() && args.contact.as_ref().is_none_or(|n| *n == c.name))
        .collect();
    let groups: Vec<&GroupView> = groups
        .iter()
        .filter(|g| {
            args.contact.is_none()
                && args
                    .group
                    .as_ref()
                    .is_none_or(|n| *n == g.name || *n == g.id)
        })
        .collect();
    if let Some(name) = &args.contact
        && contacts.is_empty()
    {
        bail!("no contact {name:?}: see `hush contact list`");
    }
    if let Some(name) = &args.group
        && groups.is_empty()
    {
        bail!("no group {name:?}: see `hush group list`");
    }
    eprintln!(
        "hush export: this JSON holds your messages in plaintext, unlike your home folder; keep it as safe as the conversations themselves."
    );
    let out = std::io::stdout();
    let mut out = std::io::BufWriter::new(out.lock());
    let head = json!({
        "format": "hush-export-1",
        "exported_at": hush_node::rfc3339(hush_node::now_ms()),
        "name": status["name"],
        "account": status["account"],
    });
    // Streamed conversation by conversation: a long history is never
    // held whole as one JSON value.
    let head = serde_json::to_string(&head)?;
    write!(out, "{},\"conversations\":[", head.trim_end_matches('}'))?;
    // (method, parameter, its value, the entry without its messages).
    let conversations = contacts
        .iter()
        .map(|c| {
            let entry = json!({ "kind": "contact", "name": c.name, "account": c.account });
            ("history", "contact", c.name.as_str(), entry)
        })
        .chain(groups.iter().map(|g| {
            let entry = json!({ "kind": "group", "name": g.name, "id": g.id });
            ("group.history", "group", g.id.as_str(), entry)
        }));
    for (i, (method, key, name, mut entry)) in conversations.enumerate() {
        entry["messages"] = Value::Array(whole_history(client, method, key, name).await?);
        let comma = if i == 0 { "" } else { "," };
        write!(out, "{comma}{}", serde_json::to_string(&entry)?)?;
    }
    writeln!(out, "]}}")?;
    out.flush()
        .context("could not write the export to standard output")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_days_or_times() {
        assert_eq!(parse_since("1970-01-01"), Ok(0));
        assert_eq!(parse_until("1970-01-01"), Ok(86_400_000));
        assert_eq!(parse_since("2026-11-30"), Ok(1_795_996_800_000));
        assert_eq!(
            parse_since("2026-11-30T01:02:03Z"),
            Ok(1_795_996_800_000 + 3_723_000)
        );
        assert!(parse_since("2026-13-01").is_err());
        assert!(parse_since("yesterday").is_err());
        assert!(parse_since("2026-11-30T10:00").is_err());
    }

    #[test]
    fn marks_are_bracketed_and_control_characters_escaped() {
        let text = "see \x1b[31mred\x1b[0m lighthouse";
        let start = text.find("lighthouse").unwrap();
        let out = marked(text, &[(start, start + 10)], false);
        assert!(out.ends_with("[lighthouse]"), "{out}");
        assert!(!out.contains('\x1b'), "{out:?}");
    }
}

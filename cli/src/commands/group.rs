//! `hush group ...`: thin calls to the node's `group.*` API methods.

use hush_protocol::text::for_terminal;
use std::process::ExitCode;

use anyhow::Result;
use hush_node::{
    Client, GroupMembersView, GroupMessageView, GroupView, Home, SendReceipt, timer_text,
};
use serde_json::{Value, json};

use super::print_json;
use crate::args::{Disappear, GroupCommand, GroupWait};

async fn change(client: &mut Client, method: &str, params: Value) -> Result<GroupView> {
    Ok(serde_json::from_value(client.call(method, params).await?)?)
}

/// Prints the group after a change: as JSON, or as `say` puts it.
fn changed(view: &GroupView, json: bool, say: impl FnOnce(&GroupView) -> String) -> Result<()> {
    if json {
        print_json(view)
    } else {
        println!("{}", say(view));
        Ok(())
    }
}

pub async fn run(home: &Home, command: GroupCommand) -> Result<ExitCode> {
    let client = &mut Client::connect(home).await?;
    match command {
        GroupCommand::Create { name, json } => {
            let view = change(client, "group.create", json!({ "name": name })).await?;
            if json {
                print_json(&view)?;
            } else {
                println!("{}", view.id);
                eprintln!(
                    "Created the group {}; invite contacts with `hush group invite {} NAME`.",
                    for_terminal(&view.name, false),
                    for_terminal(&view.name, false)
                );
            }
        }
        GroupCommand::Invite {
            group,
            contact,
            admin,
            json,
        } => {
            let params = json!({ "group": group, "contact": contact, "admin": admin });
            let view = change(client, "group.invite", params).await?;
            changed(&view, json, |v| {
                format!(
                    "Invited {contact} into {}; they join with `hush group join {}`.",
                    for_terminal(&v.name, false),
                    for_terminal(&v.name, false)
                )
            })?;
        }
        GroupCommand::Join { group, json } => {
            let view = change(client, "group.join", json!({ "group": group })).await?;
            changed(&view, json, |v| {
                format!(
                    "You joined {} ({} members).",
                    for_terminal(&v.name, false),
                    v.members
                )
            })?;
        }
        GroupCommand::Decline { group, json } | GroupCommand::Leave { group, json } => {
            let view = change(client, "group.leave", json!({ "group": group })).await?;
            changed(&view, json, |v| {
                format!("You are out of {}.", for_terminal(&v.name, false))
            })?;
        }
        GroupCommand::Remove {
            group,
            member,
            json,
        } => {
            let params = json!({ "group": group, "member": member });
            let view = change(client, "group.remove", params).await?;
            changed(&view, json, |v| {
                format!(
                    "Removed {member} from {}: they read nothing sent from now on.",
                    for_terminal(&v.name, false)
                )
            })?;
        }
        GroupCommand::Set {
            group,
            disappear,
            mute,
            json,
        } => {
            if disappear.is_none() && mute.is_none() {
                anyhow::bail!(
                    "nothing to change: give --disappear DURATION|off and/or --mute on|off"
                );
            }
            if let Some(setting) = mute {
                let on = matches!(setting, crate::args::OnOff::On);
                let answer = client
                    .call("group.mute", json!({ "group": group, "on": on }))
                    .await?;
                if json && disappear.is_none() {
                    print_json(&answer)?;
                } else if !json {
                    println!(
                        "{}",
                        if on {
                            "No notifications for this group's messages on this device."
                        } else {
                            "The group's messages notify again."
                        }
                    );
                }
            }
            if let Some(Disappear(secs)) = disappear {
                let params = json!({ "group": group, "secs": secs });
                let view = change(client, "group.disappear", params).await?;
                changed(&view, json, |v| match secs {
                    Some(_) => format!(
                        "Messages in {} now disappear {} after they are sent, on every member's devices.",
                        for_terminal(&v.name, false),
                        timer_text(secs)
                    ),
                    None => format!(
                        "Messages in {} no longer disappear.",
                        for_terminal(&v.name, false)
                    ),
                })?;
            }
        }
        GroupCommand::Promote {
            group,
            member,
            json,
        } => {
            let params = json!({ "group": group, "member": member });
            let view = change(client, "group.promote", params).await?;
            changed(&view, json, |v| {
                format!(
                    "{member} is now an admin of {}.",
                    for_terminal(&v.name, false)
                )
            })?;
        }
        GroupCommand::Send {
            group,
            text,
            file,
            wait,
            timeout,
            json,
        } => {
            let file = match file {
                Some(path) => Some(std::path::absolute(&path)?),
                None => None,
            };
            let params = json!({
                "group": group,
                "text": text.unwrap_or_default(),
                "file": file,
                "wait": wait.map(|GroupWait::Delivered| "delivered"),
                "timeout_ms": timeout.saturating_mul(1000),
            });
            let call = client.call("group.send", params);
            let receipt = super::file::with_sealing_bar(home, file.as_deref(), json, call).await;
            let receipt: SendReceipt = serde_json::from_value(receipt?)?;
            if json {
                print_json(&receipt)?;
            } else {
                println!("{} {}", receipt.id, receipt.status);
            }
            if receipt.status == hush_node::Status::Pending {
                eprintln!(
                    "note: no member or relay of the group is reachable now; your node keeps the message and sends it as soon as one is"
                );
            }
            if receipt.timed_out {
                eprintln!(
                    "error: not every member had the message after {timeout}s; members who are offline get it from the relays when they come back"
                );
                return Ok(ExitCode::from(crate::EXIT_TIMED_OUT));
            }
        }
        GroupCommand::History {
            group,
            limit,
            before,
            after,
            json,
        } => {
            let params =
                json!({ "group": group, "limit": limit, "before": before, "after": after });
            let messages: Vec<GroupMessageView> =
                serde_json::from_value(client.call("group.history", params).await?)?;
            if json {
                print_json(&messages)?;
            } else {
                for m in messages {
                    let receipts = if m.message.outgoing {
                        format!("  (delivered {}, read {})", m.delivered, m.read)
                    } else {
                        String::new()
                    };
                    let text = super::chat::message_text(&m.message);
                    println!(
                        "{}  {}  {}: {}  [{}]{receipts}",
                        m.message.id,
                        m.message.sent_at,
                        for_terminal(&m.message.from, false),
                        text,
                        m.message.status
                    );
                }
            }
        }
        GroupCommand::Members { group, json } => {
            let view: GroupMembersView = serde_json::from_value(
                client
                    .call("group.members", json!({ "group": group }))
                    .await?,
            )?;
            if json {
                print_json(&view)?;
            } else {
                println!(
                    "{} ({} members, {} invited, limit {}):",
                    for_terminal(&view.group.name, false),
                    view.group.members,
                    view.group.invited,
                    view.group.member_limit
                );
                for m in view.members {
                    let you = if m.you { " (you)" } else { "" };
                    println!(
                        "  {}{you}  {}  {}  {} device(s)",
                        for_terminal(&m.name, false),
                        m.role,
                        m.status,
                        m.devices.len()
                    );
                }
            }
        }
        GroupCommand::List { json } => {
            let list: Vec<GroupView> =
                serde_json::from_value(client.call("group.list", Value::Null).await?)?;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!("No groups yet: create one with `hush group create NAME`.");
            } else {
                for g in list {
                    println!(
                        "{}  {}  you: {}  {} members",
                        g.id,
                        for_terminal(&g.name, false),
                        g.you,
                        g.members
                    );
                }
            }
        }
        GroupCommand::Read { group, json } => {
            let result = client.call("group.read", json!({ "group": group })).await?;
            if json {
                print_json(&result)?;
            } else {
                println!("Marked {} messages read.", result["marked"]);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

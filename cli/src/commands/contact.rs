//! `hush contact ...`: add, update, list, remove, block and verify contacts,
//! and their settings.

use anyhow::{Result, bail};
use hush_node::{Client, ContactView, timer_text};
use serde_json::{Value, json};

use super::print_json;
use crate::args::{ContactCommand, Disappear, OnOff};

pub async fn run(client: &mut Client, command: ContactCommand) -> Result<()> {
    match command {
        ContactCommand::Update { name, card, json } => update(client, name, card, json).await,
        ContactCommand::Add { name, card, json } => add(client, name, card, json).await,
        ContactCommand::Receipts {
            name,
            setting,
            json,
        } => receipts(client, name, setting, json).await,
        ContactCommand::Set {
            name,
            share_presence,
            receipts,
            mute,
            disappear,
            json,
        } => {
            let changes = Changes {
                share_presence,
                receipts,
                mute,
                disappear,
            };
            set(client, name, changes, json).await
        }
        ContactCommand::List { json } => list(client, json).await,
        ContactCommand::Remove {
            name,
            delete_history,
            json,
        } => {
            let params = json!({ "contact": name, "delete_history": delete_history });
            let view = call(client, "contact.remove", params).await?;
            let kept = if delete_history {
                "the conversation was deleted"
            } else {
                "the conversation is kept"
            };
            say(json, &view, format!("Removed {name:?}; {kept}."))
        }
        ContactCommand::Block { name, json } => {
            let view = call(
                client,
                "contact.block",
                json!({ "contact": name, "on": true }),
            )
            .await?;
            let text = format!(
                "Blocked {name:?}: nothing from them is accepted and nothing goes to them until `hush contact unblock {name}`."
            );
            say(json, &view, text)
        }
        ContactCommand::Unblock { name, json } => {
            let params = json!({ "contact": name, "on": false });
            let view = call(client, "contact.block", params).await?;
            say(json, &view, format!("Unblocked {name:?}."))
        }
        ContactCommand::Verify { name, json } => {
            let params = json!({ "contact": name, "on": true });
            let view = call(client, "contact.verify", params).await?;
            let text = format!(
                "Marked {name:?} verified (safety number {}). If their keys change, hush will warn you.",
                view.safety_number
            );
            say(json, &view, text)
        }
        ContactCommand::Unverify { name, json } => {
            let params = json!({ "contact": name, "on": false });
            let view = call(client, "contact.verify", params).await?;
            say(
                json,
                &view,
                format!("{name:?} is no longer marked verified."),
            )
        }
    }
}

async fn call(client: &mut Client, method: &str, params: Value) -> Result<ContactView> {
    Ok(serde_json::from_value(client.call(method, params).await?)?)
}

/// The view as JSON, or the sentence.
fn say(json: bool, view: &ContactView, text: String) -> Result<()> {
    if json {
        return print_json(view);
    }
    println!("{text}");
    Ok(())
}

async fn update(client: &mut Client, name: String, card: String, json: bool) -> Result<()> {
    let updated = client
        .call("contact.update", json!({ "name": name, "card": card }))
        .await?;
    let view: ContactView = serde_json::from_value(updated)?;
    if json {
        return print_json(&view);
    }
    println!("Updated the card of {:?}", view.name);
    println!(
        "Safety number: {} (unchanged: same account)",
        view.safety_number
    );
    Ok(())
}

async fn add(client: &mut Client, name: String, card: String, json: bool) -> Result<()> {
    let added = client
        .call("contact.add", json!({ "name": name, "card": card }))
        .await?;
    let view: ContactView = serde_json::from_value(added)?;
    if json {
        return print_json(&view);
    }
    println!("Added contact {:?} (account {})", view.name, view.account);
    println!("Safety number: {}", view.safety_number);
    println!(
        "Compare it with {} in person to be sure the card is theirs.",
        view.name
    );
    Ok(())
}

async fn receipts(client: &mut Client, name: String, setting: OnOff, json: bool) -> Result<()> {
    let on = matches!(setting, OnOff::On);
    let view = client
        .call("contact.receipts", json!({ "contact": name, "on": on }))
        .await?;
    if json {
        return print_json(&view);
    }
    if on {
        println!("{name} will see when you have read their messages.");
    } else {
        println!("{name} will no longer see when you have read their messages.");
    }
    Ok(())
}

/// What `hush contact set` changes.
struct Changes {
    share_presence: Option<OnOff>,
    receipts: Option<OnOff>,
    mute: Option<OnOff>,
    disappear: Option<Disappear>,
}

async fn set(client: &mut Client, name: String, changes: Changes, json: bool) -> Result<()> {
    let Changes {
        share_presence,
        receipts,
        mute,
        disappear,
    } = changes;
    if share_presence.is_none() && receipts.is_none() && mute.is_none() && disappear.is_none() {
        bail!(
            "nothing to change: give --share-presence on|off, --receipts on|off, --mute on|off and/or --disappear DURATION|off"
        );
    }
    let mut result = serde_json::Map::new();
    if let Some(setting) = mute {
        let on = matches!(setting, OnOff::On);
        let answer = client
            .call("contact.mute", json!({ "contact": name, "on": on }))
            .await?;
        result.insert("muted".into(), answer["muted"].clone());
        if !json {
            println!(
                "{}",
                if on {
                    format!("No notifications for messages from {name} on this device.")
                } else {
                    format!("Messages from {name} notify again.")
                }
            );
        }
    }
    if let Some(Disappear(secs)) = disappear {
        let view = client
            .call(
                "contact.disappear",
                json!({ "contact": name, "secs": secs }),
            )
            .await?;
        result.insert("contact".into(), view);
        if !json {
            match secs {
                Some(_) => println!(
                    "Messages with {name} now disappear {} after they are sent, on both sides.",
                    timer_text(secs)
                ),
                None => println!("Messages with {name} no longer disappear."),
            }
        }
    }
    if let Some(setting) = receipts {
        let on = matches!(setting, OnOff::On);
        let view = client
            .call("contact.receipts", json!({ "contact": name, "on": on }))
            .await?;
        result.insert("contact".into(), view);
        if !json {
            println!(
                "{name} {} see when you have read their messages.",
                if on { "will" } else { "will no longer" }
            );
        }
    }
    if let Some(setting) = share_presence {
        let on = matches!(setting, OnOff::On);
        let view = client
            .call("presence.share", json!({ "contact": name, "on": on }))
            .await?;
        result.insert("presence".into(), view);
        if !json {
            println!(
                "{name} {} see whether you are online or when you were last seen.",
                if on { "can" } else { "can no longer" }
            );
        }
    }
    if json {
        print_json(&result)?;
    }
    Ok(())
}

async fn list(client: &mut Client, json: bool) -> Result<()> {
    let list: Vec<ContactView> =
        serde_json::from_value(client.call("contact.list", Value::Null).await?)?;
    if json {
        print_json(&list)?;
    } else if list.is_empty() {
        println!("No contacts yet: add one with `hush contact add NAME CARD`.");
    } else {
        for c in list {
            let mut notes = String::new();
            if !c.send_receipts {
                notes.push_str("  (read receipts off)");
            }
            if let Some(secs) = c.disappear_secs {
                notes.push_str(&format!(
                    "  (messages disappear after {})",
                    timer_text(Some(secs))
                ));
            }
            if c.blocked {
                notes.push_str("  (blocked)");
            }
            if c.keys_changed {
                notes.push_str("  (KEYS CHANGED since you verified them: compare again)");
            } else if c.verified {
                notes.push_str("  (verified)");
            }
            println!(
                "{}  account {}  safety number {}{notes}",
                c.name, c.account, c.safety_number
            );
            if c.keys_changed {
                // What the card lists now: one line per device to compare.
                for device in &c.device_ids {
                    println!("    device {device}");
                }
            }
        }
    }
    Ok(())
}

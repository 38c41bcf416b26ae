//! `hush presence`: a contact's presence, or the global sharing switch.

use anyhow::{Result, bail};
use hush_node::{Client, PresenceView};
use serde_json::json;

use super::print_json;
use crate::args::{OnOff, PresenceArgs};

pub async fn run(client: &mut Client, args: PresenceArgs) -> Result<()> {
    let PresenceArgs {
        name,
        refresh,
        share,
        json,
    } = args;
    if let Some(setting) = share {
        let on = matches!(setting, OnOff::On);
        client.call("presence.share", json!({ "on": on })).await?;
        if on {
            println!(
                "Your contacts can see whether you are online (turn it off per contact with `hush contact set NAME --share-presence off`)."
            );
        } else {
            println!("Nobody can see whether you are online or when you were last seen.");
        }
        return Ok(());
    }
    let Some(name) = name else {
        bail!("give a contact name, or --share on|off");
    };
    let view: PresenceView = serde_json::from_value(
        client
            .call("presence", json!({ "contact": name, "refresh": refresh }))
            .await?,
    )?;
    if json {
        print_json(&view)?;
    } else if view.state == "online" {
        println!("{} is online", view.contact);
    } else {
        match &view.last_seen {
            Some(at) => println!("{} is offline, last seen {at}", view.contact),
            None => println!("{} is offline (never seen online)", view.contact),
        }
    }
    Ok(())
}

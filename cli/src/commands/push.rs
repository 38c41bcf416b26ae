//! `hush push set URL | off | status`: where the home relays wake this
//! device while it is offline.

use anyhow::Result;
use hush_node::{Client, NodeStatus};
use serde_json::{Value, json};

use hush_protocol::text::for_terminal;

use super::print_json;
use crate::args::PushCommand;

pub async fn run(client: &mut Client, command: PushCommand) -> Result<()> {
    match command {
        PushCommand::Set { url, json } => {
            client.call("push.set", json!({ "url": url })).await?;
            status(client, json, "push endpoint set").await
        }
        PushCommand::Off { json } => {
            client.call("push.off", Value::Null).await?;
            status(client, json, "push turned off").await
        }
        PushCommand::Status { json } => status(client, json, "").await,
    }
}

/// The endpoint's host and each home relay's registration.
async fn status(client: &mut Client, json: bool, done: &str) -> Result<()> {
    let status: NodeStatus = serde_json::from_value(client.call("status", Value::Null).await?)?;
    if json {
        let relays: Vec<Value> = status
            .relays
            .iter()
            .map(|r| json!({ "address": r.address, "push": r.push }))
            .collect();
        return print_json(&json!({ "push": status.push, "relays": relays }));
    }
    if !done.is_empty() {
        println!("{done}");
    }
    let Some(host) = &status.push else {
        println!("push: off (set one with `hush push set URL`)");
        return Ok(());
    };
    println!("push: wakes this device at {host} while it is offline");
    if status.relays.is_empty() {
        println!(
            "  no home relays: nothing can wake this device (start the node with --relay or --bootstrap)"
        );
    }
    for relay in &status.relays {
        // A refusal's message is the relay's words: shown escaped.
        let state = for_terminal(relay.push.as_deref().unwrap_or("registering"), false);
        println!("  {}: {state}", for_terminal(&relay.address, false));
    }
    Ok(())
}

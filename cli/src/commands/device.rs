//! `hush device`: link a new device to this account, join an account as a
//! new device, list the account's devices.

use std::time::Duration;

use anyhow::{Result, bail};
use hush_node::{Client, DeviceView, Home, JoinOptions, LinkCodeView, LinkedView};
use serde_json::{Value, json};

use super::print_json;
use crate::args::DeviceCommand;

pub async fn run(home: &Home, command: DeviceCommand) -> Result<()> {
    match command {
        DeviceCommand::Link {
            no_wait,
            timeout,
            with_account_key,
            json,
        } => {
            let mut client = Client::connect(home).await?;
            link(&mut client, no_wait, timeout, with_account_key, json).await
        }
        DeviceCommand::Join {
            code,
            name,
            history,
            timeout,
            json,
        } => join(home, &code, name, &history, timeout, json).await,
        DeviceCommand::List { json } => list(&mut Client::connect(home).await?, json).await,
        DeviceCommand::Revoke { device, json } => {
            let mut client = Client::connect(home).await?;
            let revoked: DeviceView = serde_json::from_value(
                client
                    .call("device.revoke", json!({ "device": device }))
                    .await?,
            )?;
            if json {
                return print_json(&revoked);
            }
            println!(
                "Revoked {:?} ({}): your contacts and other devices are told; nothing sent from now on reaches it, and what it sends is refused.",
                revoked.name, revoked.device
            );
            Ok(())
        }
    }
}

async fn link(
    client: &mut Client,
    no_wait: bool,
    timeout: u64,
    with_account_key: bool,
    json: bool,
) -> Result<()> {
    let code: LinkCodeView = serde_json::from_value(
        client
            .call(
                "device.link",
                json!({ "with_account_key": with_account_key }),
            )
            .await?,
    )?;
    if json {
        // One line now (the code), one when the device joined.
        println!("{}", serde_json::to_string(&code)?);
    } else {
        println!("{}", code.code);
        eprintln!(
            "Enter this code on the new device within 10 minutes (valid once, until {}):\n  hush --home NEW_HOME device join CODE --name NAME",
            code.expires_at
        );
        if with_account_key {
            eprintln!("The new device will hold the account key too.");
        }
        if std::io::IsTerminal::is_terminal(&std::io::stdout()) {
            println!();
            print!("{}", super::identity::qr_code(&code.code)?);
        }
    }
    if no_wait {
        return Ok(());
    }
    if !json {
        eprintln!("Waiting for the new device...");
    }
    let waited = tokio::time::timeout(
        Duration::from_secs(timeout),
        client.call("device.link_wait", Value::Null),
    )
    .await;
    let linked: LinkedView = match waited {
        Ok(result) => serde_json::from_value(result?)?,
        Err(_) => bail!(
            "no device joined within {timeout} s; the code stays valid until {} (run `hush device link` for a new one)",
            code.expires_at
        ),
    };
    if json {
        println!("{}", serde_json::to_string(&linked)?);
        return Ok(());
    }
    println!(
        "Linked {:?} ({}): it received {} contacts and {} messages; your contacts are told of it.",
        linked.name, linked.device, linked.contacts, linked.messages
    );
    Ok(())
}

async fn join(
    home: &Home,
    code: &str,
    name: String,
    history: &str,
    timeout: u64,
    json: bool,
) -> Result<()> {
    let history_since_ms = match history {
        "all" => 0,
        "none" => u64::MAX,
        days => match days.parse::<u64>() {
            Ok(d) => hush_node::now_ms().saturating_sub(d.saturating_mul(86_400_000)),
            Err(_) => bail!("--history takes all, none or a number of days, not {days:?}"),
        },
    };
    let joined = hush_node::join(
        home,
        code,
        JoinOptions {
            name: name.clone(),
            history_since_ms,
            timeout: Duration::from_secs(timeout),
        },
    )
    .await?;
    if json {
        return print_json(&json!({
            "account": joined.account.to_string(),
            "account_name": joined.account_name,
            "device": joined.device.to_string(),
            "name": name,
            "contacts": joined.contacts,
            "messages": joined.messages,
            "account_key": joined.account_key,
            "home": home.dir(),
        }));
    }
    println!(
        "Joined the account {:?} ({}) as {name:?}: {} contacts and {} messages copied.",
        hush_protocol::text::for_terminal(&joined.account_name, false),
        joined.account,
        joined.contacts,
        joined.messages
    );
    println!(
        "Next: start this device's node with `hush --home {} node run`",
        home.dir().display()
    );
    Ok(())
}

async fn list(client: &mut Client, json: bool) -> Result<()> {
    let devices: Vec<DeviceView> =
        serde_json::from_value(client.call("device.list", Value::Null).await?)?;
    if json {
        return print_json(&devices);
    }
    for d in devices {
        let seen = match (&d.last_seen, d.this_device) {
            (_, true) => String::new(),
            (Some(s), false) => format!("  last seen {s}"),
            (None, false) => "  not seen since this node started".to_owned(),
        };
        println!(
            "{} {:<20} {}  linked {}{}{seen}",
            if d.this_device { "*" } else { " " },
            hush_protocol::text::for_terminal(&d.name, false),
            d.device,
            d.linked_at.as_deref().unwrap_or("-"),
            match d.account_key {
                Some(true) => "  (holds the account key)",
                _ => "",
            }
        );
    }
    Ok(())
}

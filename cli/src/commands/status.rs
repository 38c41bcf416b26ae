//! `hush status`: the node's status and reachability.

use anyhow::Result;
use hush_node::{Client, NodeStatus};
use serde_json::Value;

use super::print_json;

pub async fn run(client: &mut Client, json: bool) -> Result<()> {
    let status: NodeStatus = serde_json::from_value(client.call("status", Value::Null).await?)?;
    if json {
        print_json(&status)?;
    } else {
        println!("name:       {}", status.name);
        println!("account:    {}", status.account);
        println!("peer id:    {}", status.peer_id);
        if status.revoked {
            println!(
                "device:     REVOKED: this device was removed from its account and sends nothing"
            );
        } else {
            println!(
                "devices:    {} on the account; this one {} the account key",
                status.devices,
                if status.account_key {
                    "holds"
                } else {
                    "does not hold"
                }
            );
        }
        println!("listening:  {}", status.listen_addresses.join(" "));
        println!("connected:  {} peers", status.connected_peers);
        println!("contacts:   {}", status.contacts);
        println!("outbox:     {} undelivered", status.outbox);
        match status.at_rest.as_str() {
            "key file" => println!(
                "at rest:    sealed under hush.key in the home: not protected by a passphrase (`hush passphrase set`)"
            ),
            "passphrase" => println!("at rest:    sealed; its key protected by a passphrase"),
            _ => {}
        }
        for relay in &status.relays {
            println!(
                "relay:      {} ({}; {})",
                relay.address,
                state(relay),
                chosen(relay)
            );
        }
        if let Some(why) = &status.relay_search {
            println!("relays:     {why}");
        }
        let r = &status.reachability;
        let nat = match r.nat.as_str() {
            "public" => format!("public at {}", r.public_address.as_deref().unwrap_or("?")),
            "private" => "behind NAT".to_owned(),
            _ => "not known yet".to_owned(),
        };
        println!("reachable:  {nat}");
        for circuit in &r.relayed_via {
            println!("via relay:  {circuit}");
        }
        if !r.direct.is_empty() {
            println!("direct:     {}", r.direct.join(", "));
        }
        if !r.relayed.is_empty() {
            println!("relayed:    {}", r.relayed.join(", "));
        }
        if !r.lan.is_empty() {
            println!("on the LAN: {}", r.lan.join(", "));
        }
        if !r.sharing_presence {
            println!("presence:   not shared with anyone");
        }
    }
    Ok(())
}

/// How a home relay was chosen, for people.
fn chosen(relay: &hush_node::RelayView) -> &'static str {
    match relay.chosen.as_str() {
        "dht" => "found through the DHT",
        "retired" => "replaced after it stopped answering; still read in case it comes back",
        _ => "given with --relay",
    }
}

/// Whether a home relay answers, for people.
fn state(relay: &hush_node::RelayView) -> String {
    let mut state = match (&relay.last_error, relay.connected) {
        // The relay's words: shown escaped.
        (Some(e), _) => format!("error: {}", hush_protocol::text::for_terminal(e, false)),
        (None, true) => "connected".to_owned(),
        (None, false) => "not connected".to_owned(),
    };
    if let Some(secs) = relay.unanswered_secs {
        state.push_str(&format!("; no answer for {secs} s"));
    }
    state
}

/// `hush relays`: the home relays, how each was chosen and whether it
/// answers.
pub async fn relays(client: &mut Client, json: bool) -> Result<()> {
    let status: NodeStatus = serde_json::from_value(client.call("status", Value::Null).await?)?;
    if json {
        return print_json(&status.relays);
    }
    if status.relays.is_empty() {
        match &status.relay_search {
            Some(why) => println!("no home relays: {why}"),
            None => println!(
                "no home relays: offline mail cannot reach this device. Start the node with \
                 --relay ADDR, or --bootstrap ADDR to find relays through the DHT"
            ),
        }
        return Ok(());
    }
    for relay in &status.relays {
        let keys = relay
            .keys_left
            .map_or(String::new(), |n| format!("; {n} one-time keys held"));
        println!(
            "{}\n  {}; {}{keys}",
            relay.address,
            chosen(relay),
            state(relay)
        );
    }
    if let Some(why) = &status.relay_search {
        println!("note: {why}");
    }
    Ok(())
}

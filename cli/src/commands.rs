//! One function per command. Settings are validated before anything runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use hush_node::{
    Client, ContactView, Home, MessageView, Node, NodeConfig, NodeStatus, PresenceView,
    SendReceipt, Status,
};
use libp2p::Multiaddr;
use serde_json::{Value, json};

use crate::args::{
    BenchCommand, Cli, Command, ContactCommand, NodeCommand, OnOff, PresenceArgs, RelayCommand,
    RelayRunArgs, WaitFor,
};
use crate::group::group_command;

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HUSH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn resolve_home(home: Option<PathBuf>) -> Result<Home> {
    if let Some(dir) = home {
        return Ok(Home::new(dir));
    }
    let dirs = directories::ProjectDirs::from("", "", "hush").context(
        "could not find a data folder for hush (no home directory?): pass --home DIR or set HUSH_HOME",
    )?;
    Ok(Home::new(dirs.data_dir()))
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn parse_listen(addrs: &[String]) -> Result<Vec<Multiaddr>> {
    addrs
        .iter()
        .map(|a| {
            a.parse::<Multiaddr>().with_context(|| {
                format!("invalid listen address {a:?}: expected a multiaddr such as /ip4/127.0.0.1/tcp/4001")
            })
        })
        .collect()
}

pub async fn run(cli: Cli) -> Result<ExitCode> {
    let verbose_default = matches!(cli.command, Command::Node(_) | Command::Relay(_));
    init_logging(if verbose_default { "info" } else { "warn" });
    match cli.command {
        Command::Demo => return crate::demo::run().await.map(|()| ExitCode::SUCCESS),
        Command::Bench(BenchCommand::Relay {
            json,
            senders,
            messages,
            batch,
            window,
            rate,
        }) => {
            let load = crate::bench_relay::Load {
                senders,
                messages,
                batch,
                window,
                rate,
            };
            return crate::bench_relay::relay(json, load)
                .await
                .map(|()| ExitCode::SUCCESS);
        }
        Command::Bench(BenchCommand::Group {
            members,
            messages,
            interval_ms,
            json,
        }) => {
            return crate::bench_group::group(members, messages, interval_ms, json)
                .await
                .map(|()| ExitCode::SUCCESS);
        }
        Command::Bench(BenchCommand::Presence { json }) => {
            return crate::bench_presence::presence(json)
                .await
                .map(|()| ExitCode::SUCCESS);
        }
        Command::Relay(RelayCommand::Run(args)) => {
            return relay_run(args).await.map(|()| ExitCode::SUCCESS);
        }
        Command::Bench(BenchCommand::Direct {
            json,
            latency_messages,
            throughput_messages,
        }) => {
            return crate::bench::direct(json, latency_messages, throughput_messages)
                .await
                .map(|()| ExitCode::SUCCESS);
        }
        _ => {}
    }
    let home = resolve_home(cli.home)?;
    match cli.command {
        Command::Init { name } => {
            let account = hush_node::init(&home, &name, hush_node::now_ms())?;
            println!(
                "Created the hush identity {name:?} in {}",
                home.dir().display()
            );
            println!("account: {account}");
            println!(
                "Next: start your node with `hush --home {} node run`",
                home.dir().display()
            );
        }
        Command::Id { json } => id(&home, json).await?,
        Command::Node(NodeCommand::Run {
            listen,
            relay,
            poll_ms,
            presence_ttl,
            presence_grace,
            no_mdns,
        }) => {
            if presence_ttl < 2 {
                bail!(
                    "--presence-ttl must be at least 2 seconds (records are refreshed every half of it)"
                );
            }
            let mut config = NodeConfig {
                mail_poll: std::time::Duration::from_millis(poll_ms),
                presence_ttl: std::time::Duration::from_secs(presence_ttl),
                presence_grace: std::time::Duration::from_secs(presence_grace),
                mdns: !no_mdns,
                ..NodeConfig::default()
            };
            config.listen = parse_listen(&listen)?;
            config.relays = relay
                .iter()
                .map(|a| {
                    a.parse::<Multiaddr>().with_context(|| {
                        format!("invalid relay address {a:?}: use the full address `hush relay run` prints, ending in /p2p/<relay id>")
                    })
                })
                .collect::<Result<_>>()?;
            node_run(&home, config).await?;
        }
        Command::Contact(ContactCommand::Update { name, card }) => {
            let mut client = Client::connect(&home).await?;
            let updated = client
                .call("contact.update", json!({ "name": name, "card": card }))
                .await?;
            let view: ContactView = serde_json::from_value(updated)?;
            println!("Updated the card of {:?}", view.name);
            println!(
                "Safety number: {} (unchanged: same account)",
                view.safety_number
            );
        }
        Command::Contact(ContactCommand::Add { name, card }) => {
            let mut client = Client::connect(&home).await?;
            let added = client
                .call("contact.add", json!({ "name": name, "card": card }))
                .await?;
            let view: ContactView = serde_json::from_value(added)?;
            println!("Added contact {:?} (account {})", view.name, view.account);
            println!("Safety number: {}", view.safety_number);
            println!(
                "Compare it with {} in person to be sure the card is theirs.",
                view.name
            );
        }
        Command::Contact(ContactCommand::Receipts { name, setting }) => {
            let on = matches!(setting, OnOff::On);
            let mut client = Client::connect(&home).await?;
            client
                .call("contact.receipts", json!({ "contact": name, "on": on }))
                .await?;
            if on {
                println!("{name} will see when you have read their messages.");
            } else {
                println!("{name} will no longer see when you have read their messages.");
            }
        }
        Command::Contact(ContactCommand::Set {
            name,
            share_presence,
            receipts,
        }) => {
            if share_presence.is_none() && receipts.is_none() {
                bail!("nothing to change: give --share-presence on|off and/or --receipts on|off");
            }
            let mut client = Client::connect(&home).await?;
            if let Some(setting) = receipts {
                let on = matches!(setting, OnOff::On);
                client
                    .call("contact.receipts", json!({ "contact": name, "on": on }))
                    .await?;
                println!(
                    "{name} {} see when you have read their messages.",
                    if on { "will" } else { "will no longer" }
                );
            }
            if let Some(setting) = share_presence {
                let on = matches!(setting, OnOff::On);
                client
                    .call("presence.share", json!({ "contact": name, "on": on }))
                    .await?;
                println!(
                    "{name} {} see whether you are online or when you were last seen.",
                    if on { "can" } else { "can no longer" }
                );
            }
        }
        Command::Presence(PresenceArgs {
            name,
            refresh,
            share,
            json,
        }) => {
            let mut client = Client::connect(&home).await?;
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
                return Ok(ExitCode::SUCCESS);
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
        }
        Command::Contact(ContactCommand::List { json }) => {
            let mut client = Client::connect(&home).await?;
            let list: Vec<ContactView> =
                serde_json::from_value(client.call("contact.list", Value::Null).await?)?;
            if json {
                print_json(&list)?;
            } else if list.is_empty() {
                println!("No contacts yet: add one with `hush contact add NAME CARD`.");
            } else {
                for c in list {
                    let receipts = if c.send_receipts {
                        ""
                    } else {
                        "  (read receipts off)"
                    };
                    println!(
                        "{}  account {}  safety number {}{receipts}",
                        c.name, c.account, c.safety_number
                    );
                }
            }
        }
        Command::Send(args) => {
            let wait = args.wait.map(|w| match w {
                WaitFor::Sent => Status::Sent,
                WaitFor::Delivered => Status::Delivered,
                WaitFor::Read => Status::Read,
            });
            let mut client = Client::connect(&home).await?;
            let params = json!({
                "contact": args.name,
                "text": args.text,
                "wait": wait,
                "timeout_ms": args.timeout.saturating_mul(1000),
            });
            let receipt: SendReceipt = serde_json::from_value(client.call("send", params).await?)?;
            if args.json {
                print_json(&receipt)?;
            } else {
                println!("{} {}", receipt.id, receipt.status);
            }
            if let Some(problem) = &receipt.problem {
                eprintln!("warning: {problem}");
            }
            if receipt.timed_out {
                eprintln!(
                    "error: the message is {} after {}s, not yet {}; it stays queued and the node keeps retrying",
                    receipt.status,
                    args.timeout,
                    wait.map_or("", |w| w.as_str())
                );
                return Ok(ExitCode::from(crate::EXIT_TIMED_OUT));
            }
        }
        Command::History(args) => {
            let mut client = Client::connect(&home).await?;
            let params =
                json!({ "contact": args.name, "limit": args.limit, "before": args.before });
            let messages: Vec<MessageView> =
                serde_json::from_value(client.call("history", params).await?)?;
            if args.json {
                print_json(&messages)?;
            } else {
                for m in messages {
                    println!(
                        "{}  {}  {}: {}  [{}]",
                        m.id, m.sent_at, m.from, m.text, m.status
                    );
                }
            }
        }
        Command::Group(command) => {
            let mut client = Client::connect(&home).await?;
            return group_command(&mut client, command).await;
        }
        Command::Read { name } => {
            let mut client = Client::connect(&home).await?;
            let result = client.call("read", json!({ "contact": name })).await?;
            println!("Marked {} messages read.", result["marked"]);
        }
        Command::Events { json } => {
            let mut client = Client::connect(&home).await?;
            client.subscribe().await?;
            while let Some(event) = client.next_event().await? {
                if json {
                    println!("{event}");
                } else {
                    println!("{}", describe_event(&event));
                }
            }
        }
        Command::Status { json } => {
            let mut client = Client::connect(&home).await?;
            let status: NodeStatus =
                serde_json::from_value(client.call("status", Value::Null).await?)?;
            if json {
                print_json(&status)?;
            } else {
                println!("name:       {}", status.name);
                println!("account:    {}", status.account);
                println!("peer id:    {}", status.peer_id);
                println!("listening:  {}", status.listen_addresses.join(" "));
                println!("connected:  {} peers", status.connected_peers);
                println!("contacts:   {}", status.contacts);
                println!("outbox:     {} undelivered", status.outbox);
                for relay in &status.relays {
                    let state = match (&relay.last_error, relay.connected) {
                        (Some(e), _) => format!("error: {e}"),
                        (None, true) => "connected".to_owned(),
                        (None, false) => "not connected".to_owned(),
                    };
                    println!("relay:      {} ({state})", relay.address);
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
        }
        Command::Demo | Command::Bench(_) | Command::Relay(_) => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn describe_event(event: &Value) -> String {
    let s = |k: &str| event[k].as_str().unwrap_or("").to_owned();
    match event["type"].as_str() {
        Some("message") => format!(
            "{} {}: {}",
            event["message"]["sent_at"].as_str().unwrap_or(""),
            s("contact"),
            event["message"]["text"].as_str().unwrap_or("")
        ),
        Some("status") => format!("{} → {} ({})", s("id"), s("status"), s("contact")),
        Some("contact_added") => format!("contact added: {}", s("contact")),
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
            event["message"]["from"].as_str().unwrap_or(""),
            event["message"]["text"].as_str().unwrap_or("")
        ),
        Some("group_changed") => format!(
            "group {} changed (version {}); you are {}",
            s("group"),
            event["version"],
            s("you")
        ),
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
        _ => event.to_string(),
    }
}

async fn id(home: &Home, json: bool) -> Result<()> {
    let card = match Client::connect(home).await {
        Ok(mut client) => client.call("card", Value::Null).await?["card"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        Err(_) => {
            if !home.db_path().exists() {
                bail!(
                    "{} has no hush identity: create one with `hush --home {} init --name NAME`",
                    home.dir().display(),
                    home.dir().display()
                );
            }
            eprintln!(
                "note: the node is not running, so the card lists the addresses it last listened on"
            );
            hush_node::offline_card(home)?.to_string()
        }
    };
    let parsed: hush_protocol::ContactCard = card.parse()?;
    if json {
        print_json(&json!({
            "name": parsed.name,
            "account": parsed.account().to_string(),
            "devices": parsed.device_list.devices.iter().map(|d| d.device_id.to_string()).collect::<Vec<_>>(),
            "addresses": parsed.addresses,
            "card": card,
        }))?;
    } else {
        println!("name:    {}", parsed.name);
        println!("account: {}", parsed.account());
        println!("card:    {card}");
    }
    Ok(())
}

async fn node_run(home: &Home, config: NodeConfig) -> Result<()> {
    if !home.db_path().exists() {
        bail!(
            "{} has no hush identity: create one with `hush --home {} init --name NAME`",
            home.dir().display(),
            home.dir().display()
        );
    }
    let node = Node::start(home, config).await?;
    let server = hush_node::serve(node.clone(), home.socket_path()).await?;
    let status = node.status().await?;
    tracing::info!(
        name = %status.name,
        peer = %status.peer_id,
        listen = ?status.listen_addresses,
        api = %server.path().display(),
        "node running; stop it with Ctrl-C"
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("could not watch for SIGTERM")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    drop(server);
    node.shutdown().await;
    Ok(())
}

async fn relay_run(args: RelayRunArgs) -> Result<()> {
    let mut config = match &args.config {
        Some(path) => hush_relay::Config::from_file(path)?,
        None => hush_relay::Config::default(),
    };
    if !args.listen.is_empty() {
        config.listen = args.listen;
    }
    if let Some(data) = args.data {
        config.data = data;
    }
    if let Some(secs) = args.retention_secs {
        config.retention_secs = secs;
    }
    if args.metrics.is_some() {
        config.metrics = args.metrics;
    }
    config.bootstrap.extend(args.bootstrap);
    let (relay, started) = hush_relay::Relay::start(config).await?;
    println!("hush relay {}", started.peer_id);
    for addr in &started.addresses {
        println!("address: {addr}");
    }
    if let Some(metrics) = started.metrics {
        println!("metrics: http://{metrics}/metrics");
    }
    println!("Give nodes one of these addresses with `hush node run --relay ADDRESS`.");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("could not watch for SIGTERM")?;
    relay
        .run(async move {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = terminate.recv() => {}
            }
            tracing::info!("stopping");
        })
        .await;
    Ok(())
}

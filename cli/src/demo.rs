//! `hush demo`: two real nodes (separate `hush node run` processes) and a
//! relay (`hush relay run`) on loopback, in temporary folders, driven
//! through the local API.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hush_node::{Client, ContactView, Home, MessageView, PresenceView, SendReceipt};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// A `hush node run` child process, killed when dropped.
pub struct NodeProcess {
    pub home: Home,
    child: Child,
}

impl NodeProcess {
    pub async fn start(home: &Home) -> Result<Self> {
        Self::start_with(home, "/ip4/127.0.0.1/tcp/0", &[]).await
    }

    pub async fn start_with(home: &Home, listen: &str, extra: &[&str]) -> Result<Self> {
        Self::spawn(home, listen, extra, None).await
    }

    /// Like [`NodeProcess::start_with`], with the node's logs that `filter`
    /// lets through written to `log` as JSON lines.
    pub async fn start_logging(
        home: &Home,
        listen: &str,
        extra: &[&str],
        filter: &str,
        log: &Path,
    ) -> Result<Self> {
        Self::spawn(home, listen, extra, Some((filter, log))).await
    }

    async fn spawn(
        home: &Home,
        listen: &str,
        extra: &[&str],
        log: Option<(&str, &Path)>,
    ) -> Result<Self> {
        let exe = std::env::current_exe().context("could not find the hush binary")?;
        let mut command = Command::new(exe);
        command
            .arg("--home")
            .arg(home.dir())
            .args(["node", "run", "--listen", listen])
            .args(extra)
            // On loopback only: mDNS would multicast on every interface.
            .args((!extra.contains(&"--no-mdns")).then_some("--no-mdns"))
            // Demo and bench nodes are not the user's: no desktop
            // notifications from them.
            .args(["--desktop-notify", "off"])
            // `HUSH_NODE_LOG=info hush bench …` shows the nodes' logs.
            .env(
                "HUSH_LOG",
                std::env::var("HUSH_NODE_LOG").unwrap_or_else(|_| "error".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .kill_on_drop(true);
        if let Some((filter, path)) = log {
            let file = std::fs::File::create(path)
                .with_context(|| format!("could not create {}", path.display()))?;
            command
                .env("HUSH_LOG", filter)
                .env("HUSH_LOG_FORMAT", "json")
                .stderr(file);
        }
        let child = command
            .spawn()
            .context("could not start a hush node process")?;
        let mut node = Self {
            home: home.clone(),
            child,
        };
        node.wait_ready().await?;
        Ok(node)
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(mut client) = Client::connect(&self.home).await
                && client.call("status", Value::Null).await.is_ok()
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the node for {} exited early ({status})",
                    self.home.dir().display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the node for {} did not start within 20 s",
                    self.home.dir().display()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stops the node gracefully (SIGTERM), or kills it after 10 s.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(status) => {
                status?;
            }
            Err(_) => self.child.kill().await?,
        }
        Ok(())
    }

    /// Kills the node (SIGKILL): nothing flushed, as in a crash.
    pub async fn kill9(mut self) -> Result<()> {
        self.child.kill().await?;
        Ok(())
    }

    pub async fn client(&self) -> Result<Client> {
        Ok(Client::connect(&self.home).await?)
    }
}

/// A `hush relay run` child process on loopback, killed when dropped.
pub(crate) struct RelayProcess {
    pub(crate) address: String,
    pub(crate) child: Child,
    /// Its data folder.
    pub(crate) data: std::path::PathBuf,
}

impl RelayProcess {
    pub(crate) async fn start(data: &Path) -> Result<Self> {
        Self::start_with(data, None).await
    }

    /// Starts one with its data in `data` and, if given, a config file.
    pub(crate) async fn start_with(data: &Path, config: Option<&Path>) -> Result<Self> {
        use tokio::io::AsyncBufReadExt;
        let exe = std::env::current_exe().context("could not find the hush binary")?;
        let mut command = Command::new(exe);
        command
            .args(["relay", "run", "--listen", "/ip4/127.0.0.1/tcp/0", "--data"])
            .arg(data);
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        let mut child = command
            .env("HUSH_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("could not start a hush relay process")?;
        let stdout = child.stdout.take().context("no relay stdout")?;
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let address = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(addr) = line.strip_prefix("address: ") {
                    return Ok(addr.to_owned());
                }
            }
            bail!("the relay exited before printing its address")
        })
        .await
        .context("the relay did not start within 20 s")??;
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self {
            address,
            child,
            data: data.to_owned(),
        })
    }

    pub(crate) async fn stop(mut self) -> Result<()> {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await;
        Ok(())
    }
}

/// A TCP listen address on loopback with a port that was free a moment ago.
fn loopback_addr() -> Result<String> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    Ok(format!("/ip4/127.0.0.1/tcp/{port}"))
}

pub fn init_home(dir: &Path, name: &str) -> Result<Home> {
    let home = Home::new(dir.join(name));
    hush_node::init(&home, name, hush_node::now_ms())?;
    Ok(home)
}

async fn card(node: &NodeProcess) -> Result<String> {
    let mut c = node.client().await?;
    Ok(c.call("card", Value::Null).await?["card"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn send(node: &NodeProcess, to: &str, text: &str, wait: Option<&str>) -> Result<SendReceipt> {
    let mut c = node.client().await?;
    let params = json!({ "contact": to, "text": text, "wait": wait, "timeout_ms": 20_000 });
    Ok(serde_json::from_value(c.call("send", params).await?)?)
}

async fn history(node: &NodeProcess, with: &str) -> Result<Vec<MessageView>> {
    let mut c = node.client().await?;
    let params = json!({ "contact": with, "limit": 50 });
    Ok(serde_json::from_value(c.call("history", params).await?)?)
}

/// Waits until `node`'s message `id` to `with` has `status`.
async fn wait_status(node: &NodeProcess, with: &str, id: &str, status: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let h = history(node, with).await?;
        if h.iter().any(|m| m.id == id && m.status.as_str() == status) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("message {id} did not reach {status} within 20 s")
}

/// Waits until `node` sees `of` in `state` (at most 20 s).
async fn wait_presence(node: &NodeProcess, of: &str, state: &str) -> Result<PresenceView> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let view: PresenceView = serde_json::from_value(
            node.client()
                .await?
                .call("presence", json!({ "contact": of }))
                .await?,
        )?;
        if view.state == state {
            return Ok(view);
        }
        if Instant::now() > deadline {
            bail!("{of} did not show as {state} within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn short(s: &str) -> String {
    format!("{}…", &s[..s.len().min(16)])
}

pub async fn run() -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("hush-demo-")
        .tempdir()
        .context("could not create a temporary folder")?;
    println!(
        "hush demo: two real nodes and a relay on loopback, each in its own process and folder"
    );
    println!("homes: {}\n", dir.path().display());

    let relay = RelayProcess::start(&dir.path().join("relay")).await?;
    println!("relay running at {}", short(&relay.address));
    let alice_home = init_home(dir.path(), "alice")?;
    let bob_home = init_home(dir.path(), "bob")?;
    // Each keeps its port across restarts, so the address in its card
    // stays right (finding moved peers through the DHT comes later).
    let (alice_addr, bob_addr) = (loopback_addr()?, loopback_addr()?);
    let mut alice = NodeProcess::start_with(&alice_home, &alice_addr, &[]).await?;
    let mut bob =
        NodeProcess::start_with(&bob_home, &bob_addr, &["--relay", &relay.address]).await?;
    println!("bob's node names the relay as his home relay (it goes into his card)\n");

    let (alice_card, bob_card) = (card(&alice).await?, card(&bob).await?);
    println!(
        "alice's contact card ({} characters): {}",
        alice_card.len(),
        short(&alice_card)
    );
    println!(
        "bob's contact card   ({} characters): {}",
        bob_card.len(),
        short(&bob_card)
    );
    let added: ContactView = serde_json::from_value(
        alice
            .client()
            .await?
            .call("contact.add", json!({ "name": "bob", "card": bob_card }))
            .await?,
    )?;
    bob.client()
        .await?
        .call(
            "contact.add",
            json!({ "name": "alice", "card": alice_card }),
        )
        .await?;
    println!("alice and bob add each other. Safety number (the same on both sides):");
    println!("  {}\n", added.safety_number);
    let seen = wait_presence(&alice, "bob", "online").await?;
    println!(
        "alice sees bob {} (his presence record is encrypted to a key only his contacts hold)\n",
        seen.state
    );

    let t = Instant::now();
    let first = "Hi Bob! Only your device can read this.";
    let r = send(&alice, "bob", first, Some("delivered")).await?;
    println!(
        "alice → bob   {first:?}\n              {} after {} ms (the Olm session was set up already, when their nodes traded presence keys)",
        r.status,
        t.elapsed().as_millis()
    );
    let t = Instant::now();
    let second = "Each message moves the ratchet on: forward secrecy.";
    let r = send(&alice, "bob", second, Some("delivered")).await?;
    println!(
        "alice → bob   {second:?}\n              {} after {} ms",
        r.status,
        t.elapsed().as_millis()
    );

    bob.client()
        .await?
        .call("read", json!({ "contact": "alice" }))
        .await?;
    wait_status(&alice, "bob", &r.id, "read").await?;
    println!("bob reads the conversation; alice sees both messages as: read");

    let reply = "Got them both. Forward secrecy too, nice.";
    let r = send(&bob, "alice", reply, Some("delivered")).await?;
    println!("bob → alice   {reply:?}\n              {}\n", r.status);

    println!("bob goes offline; alice writes anyway:");
    bob.stop().await?;
    let seen = wait_presence(&alice, "bob", "offline").await?;
    println!(
        "alice sees bob {}, last seen {} (his node said goodbye as it stopped)",
        seen.state,
        seen.last_seen.as_deref().unwrap_or("never")
    );
    let offline = "Are you there? This waits for you at your relay.";
    let r = send(&alice, "bob", offline, Some("sent")).await?;
    println!(
        "alice → bob   {offline:?}\n              {} (sealed to bob's device and left at his relay; the relay can't read it or tell who sent it)",
        r.status
    );
    println!("alice goes offline too; bob comes back and drains his mailbox:");
    alice.stop().await?;
    bob = NodeProcess::start_with(&bob_home, &bob_addr, &[]).await?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !history(&bob, "alice")
        .await?
        .iter()
        .any(|m| m.text == offline)
    {
        if Instant::now() > deadline {
            bail!("bob did not get the message from his relay within 20 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("bob has it, though he and alice were never online at the same time since");
    alice = NodeProcess::start_with(&alice_home, &alice_addr, &[]).await?;
    wait_status(&alice, "bob", &r.id, "delivered").await?;
    println!("alice comes back → bob's delivered receipt reaches her: delivered");
    let seen = wait_presence(&alice, "bob", "online").await?;
    println!("alice sees bob {} again\n", seen.state);

    println!("bob's history with alice (stored durably in bob's redb file):");
    for m in history(&bob, "alice").await? {
        println!(
            "  {}  {:>5}: {}  [{}]",
            &m.sent_at[11..23],
            m.from,
            m.text,
            m.status
        );
    }
    files_demo(dir.path(), &alice, &bob).await?;
    disappearing_demo(&alice, &bob).await?;
    group_demo(dir.path(), &relay, &alice, &bob).await?;
    devices_demo(dir.path(), &alice, &bob).await?;
    println!("\nEverything between the processes was end-to-end encrypted: Olm between devices,");
    println!("Megolm in the group (vodozemac), over libp2p (TCP, Noise, Yamux). Demo finished.");
    println!(
        "\nTo chat yourself: `hush init --name NAME`, `hush node run` (leave it running), then \
         `hush tui` in another terminal: conversations, history and a compose line on one screen."
    );
    bob.stop().await?;
    alice.stop().await?;
    relay.stop().await?;
    Ok(())
}

/// A `side`×`side` picture (a gradient with a pattern) as a PNG.
fn photo_png(side: u32) -> Result<Vec<u8>> {
    let picture = image::RgbImage::from_fn(side, side, |x, y| {
        let (r, g) = ((x * 255 / side) as u8, (y * 255 / side) as u8);
        image::Rgb([r, g, r ^ g])
    });
    let mut png = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .context("could not make the demo's photo")?;
    Ok(png)
}

/// alice sends bob a photo (made on the fly): sealed on her side, fetched
/// and checked piece by piece by his.
async fn files_demo(dir: &Path, alice: &NodeProcess, bob: &NodeProcess) -> Result<()> {
    println!("\n— a photo —");
    let photo = photo_png(512)?;
    let path = dir.join("sunset.png");
    std::fs::write(&path, &photo)?;
    let params = json!({
        "contact": "bob",
        "text": "the sunset from the balcony",
        "file": path,
        "wait": "delivered",
    });
    let sent: SendReceipt = serde_json::from_value(call(alice, "send", params).await?)?;
    println!(
        "alice sends sunset.png ({} KiB): encrypted under its own key, with a small preview in the message, {}",
        photo.len() / 1024,
        sent.status
    );
    let mut saved = None;
    wait_until("bob fetching the photo", async || {
        let files: Vec<hush_node::FileView> =
            serde_json::from_value(call(bob, "file.list", json!({})).await?)?;
        saved = files
            .into_iter()
            .find(|f| f.id == sent.id && f.state == hush_node::FileState::Complete);
        Ok(saved.is_some())
    })
    .await?;
    let file = saved.context("bob's copy of the photo")?;
    let preview = call(bob, "file.thumbnail", json!({ "id": sent.id })).await?;
    let preview_len = preview["base64"].as_str().map_or(0, |b| b.len() * 3 / 4);
    println!(
        "bob's node shows the preview at once ({preview_len} bytes of JPEG in the message itself)"
    );
    let path = file.path.unwrap_or_default();
    let same = std::fs::read(&path)? == photo;
    println!(
        "bob's node fetches it from alice's by itself (it is under his auto-fetch size), every 64 KiB checked against its hash:"
    );
    println!(
        "  saved to {path}
  {} bytes, {}",
        file.size,
        if same {
            "byte for byte the photo alice sent"
        } else {
            "DIFFERENT from the photo alice sent"
        }
    );
    if !same {
        bail!("the photo bob saved differs from the one alice sent");
    }
    Ok(())
}

/// alice links a laptop with a one-time code; bob's next message reaches
/// both of her devices.
async fn devices_demo(dir: &Path, alice: &NodeProcess, bob: &NodeProcess) -> Result<()> {
    println!("\n— a second device —");
    let code = call(alice, "device.link", json!({})).await?;
    let code = code["code"].as_str().unwrap_or_default().to_owned();
    println!(
        "alice asks her node for a link code: {} (valid once, for 10 minutes)",
        short(&code)
    );
    let laptop_home = Home::new(dir.join("alice-laptop"));
    let options = hush_node::JoinOptions {
        name: "laptop".into(),
        history_since_ms: 0,
        timeout: Duration::from_secs(60),
    };
    let joined = hush_node::join(&laptop_home, &code, options).await?;
    println!(
        "her laptop joins with it (a Noise XXpsk handshake keyed by the code): {} contact{} and {} messages copied",
        joined.contacts,
        if joined.contacts == 1 { "" } else { "s" },
        joined.messages
    );
    let laptop = NodeProcess::start(&laptop_home).await?;
    wait_until("bob learning alice's second device", async || {
        let list = call(bob, "contact.list", Value::Null).await?;
        Ok(list
            .as_array()
            .is_some_and(|l| l.iter().any(|c| c["name"] == "alice" && c["devices"] == 2)))
    })
    .await?;
    println!("bob's node learns alice's new device list by itself (her node pushed it over Olm)");
    let text = "Hello to both of your devices!";
    let r = send(bob, "alice", text, Some("delivered")).await?;
    for (name, node) in [("desktop", alice), ("laptop", &laptop)] {
        wait_until(
            &format!("alice's {name} getting bob's message"),
            async || Ok(history(node, "bob").await?.iter().any(|m| m.text == text)),
        )
        .await?;
    }
    println!(
        "bob → alice   {text:?}\n              {}, and on alice's desktop and laptop both",
        r.status
    );
    laptop.stop().await
}

/// A timer on the conversation: a message both nodes delete by themselves.
async fn disappearing_demo(alice: &NodeProcess, bob: &NodeProcess) -> Result<()> {
    println!("\n— a message that disappears —");
    call(
        alice,
        "contact.disappear",
        json!({ "contact": "bob", "secs": 5 }),
    )
    .await?;
    wait_until("bob's node to take the timer", async || {
        let contacts = call(bob, "contact.list", Value::Null).await?;
        Ok(contacts[0]["disappear_secs"] == 5)
    })
    .await?;
    println!(
        "alice sets their conversation to disappear after 5 seconds; bob's node takes the timer (it travelled inside the encrypted messages), and both histories show who set it"
    );
    let text = "This one deletes itself five seconds after I sent it.";
    let r = send(alice, "bob", text, Some("delivered")).await?;
    let ends = history(bob, "alice")
        .await?
        .into_iter()
        .find(|m| m.text == text)
        .and_then(|m| m.disappears_at)
        .unwrap_or_default();
    println!(
        "alice → bob   {text:?}\n              {}; bob's node will delete it at {} UTC",
        r.status,
        ends.get(11..23).unwrap_or(&ends)
    );
    wait_until("the message to disappear on both sides", async || {
        let gone = |h: Vec<MessageView>| h.iter().all(|m| m.text != text);
        Ok(gone(history(alice, "bob").await?) && gone(history(bob, "alice").await?))
    })
    .await?;
    println!(
        "five seconds after it was sent, both nodes deleted it (its text, its search entry, and its file had it carried one); had it waited at a relay, the relay would have dropped it then too"
    );
    call(
        alice,
        "contact.disappear",
        json!({ "contact": "bob", "secs": null }),
    )
    .await?;
    println!("alice turns the timer off again: what they write from now on stays");
    Ok(())
}

async fn call(node: &NodeProcess, method: &str, params: Value) -> Result<Value> {
    Ok(node.client().await?.call(method, params).await?)
}

async fn group_texts(node: &NodeProcess, group: &str) -> Result<Vec<(String, String)>> {
    let list = call(
        node,
        "group.history",
        json!({ "group": group, "limit": 100 }),
    )
    .await?;
    Ok(list
        .as_array()
        .map(|l| {
            l.iter()
                .map(|m| {
                    let s = |k: &str| m[k].as_str().unwrap_or_default().to_owned();
                    (s("from"), s("text"))
                })
                .collect()
        })
        .unwrap_or_default())
}

async fn wait_until(what: &str, mut check: impl AsyncFnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await? {
        if Instant::now() > deadline {
            bail!("{what} did not happen within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

async fn wait_group_text(node: &NodeProcess, group: &str, text: &str) -> Result<()> {
    wait_until(&format!("the group message {text:?}"), async || {
        Ok(group_texts(node, group)
            .await?
            .iter()
            .any(|(_, t)| t == text))
    })
    .await
}

/// A three-person group: carol joins, goes offline and catches up from her
/// relay's copy of the group's history, then is removed and reads nothing
/// sent after.
async fn group_demo(
    dir: &Path,
    relay: &RelayProcess,
    alice: &NodeProcess,
    bob: &NodeProcess,
) -> Result<()> {
    println!("\n— a group —");
    let carol_home = init_home(dir, "carol")?;
    let carol_addr = loopback_addr()?;
    let mut carol =
        NodeProcess::start_with(&carol_home, &carol_addr, &["--relay", &relay.address]).await?;
    let (alice_card, carol_card) = (card(alice).await?, card(&carol).await?);
    call(
        alice,
        "contact.add",
        json!({ "name": "carol", "card": carol_card }),
    )
    .await?;
    call(
        &carol,
        "contact.add",
        json!({ "name": "alice", "card": alice_card }),
    )
    .await?;
    let created = call(alice, "group.create", json!({ "name": "friends" })).await?;
    let id = created["id"].as_str().unwrap_or_default().to_owned();
    println!(
        "alice creates the group \"friends\" (id {}…) and invites bob and carol",
        &id[..16]
    );
    for who in ["bob", "carol"] {
        call(
            alice,
            "group.invite",
            json!({ "group": "friends", "contact": who }),
        )
        .await?;
    }
    for node in [bob, &carol] {
        wait_until("the invitation", async || {
            let list = call(node, "group.list", Value::Null).await?;
            Ok(list
                .as_array()
                .is_some_and(|l| l.iter().any(|g| g["you"] == "invited")))
        })
        .await?;
        call(node, "group.join", json!({ "group": "friends" })).await?;
    }
    // Every member sees all three joined (the joins travel on the group's
    // channel): a member writes to the members it knows of.
    for node in [alice, bob, &carol] {
        wait_until("three members", async || {
            let m = call(node, "group.members", json!({ "group": "friends" })).await?;
            Ok(m["group"]["members"] == 3)
        })
        .await?;
    }
    println!(
        "bob and carol join (bob and carol are not each other's contacts: the group introduces them)"
    );
    let hello = "Hello friends! One Megolm ciphertext on the group's topic, readable by all three.";
    let r = call(
        alice,
        "group.send",
        json!({ "group": "friends", "text": hello, "wait": "delivered" }),
    )
    .await?;
    println!(
        "alice → friends  {hello:?}\n                 {} to both",
        r["status"].as_str().unwrap_or("")
    );
    let reply = "Hi all, bob here.";
    call(
        bob,
        "group.send",
        json!({ "group": "friends", "text": reply }),
    )
    .await?;
    wait_group_text(&carol, "friends", reply).await?;
    println!("bob → friends    {reply:?}");

    println!("carol goes offline; alice and bob keep talking:");
    carol.stop().await?;
    let away = "Carol will read this when she is back: her relay keeps the group's ciphertext.";
    call(
        alice,
        "group.send",
        json!({ "group": "friends", "text": away }),
    )
    .await?;
    wait_group_text(bob, "friends", away).await?;
    println!("alice → friends  {away:?}");
    let photo = dir.join("beach.png");
    let photo_bytes = photo_png(256)?;
    std::fs::write(&photo, &photo_bytes)?;
    let sent = call(
        bob,
        "group.send",
        json!({ "group": "friends", "text": "from the beach", "file": photo }),
    )
    .await?;
    let sent_id = sent["id"].as_str().unwrap_or_default().to_owned();
    wait_until("bob's relay holding the photo", async || {
        Ok(std::fs::read_dir(relay.data.join("blobs")).is_ok_and(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.path().extension().is_some_and(|x| x == "blob"))
        }))
    })
    .await?;
    println!(
        "bob → friends    a photo, beach.png: alice fetches it from bob; carol is offline, so bob's node hands the encrypted file to his relay"
    );
    carol = NodeProcess::start_with(&carol_home, &carol_addr, &["--relay", &relay.address]).await?;
    wait_group_text(&carol, "friends", away).await?;
    println!("carol comes back and catches up from her relay: she has alice's message");
    let mut saved = None;
    wait_until("carol fetching the photo", async || {
        let files: Vec<hush_node::FileView> =
            serde_json::from_value(call(&carol, "file.list", json!({})).await?)?;
        saved = files
            .into_iter()
            .find(|f| f.id == sent_id && f.state == hush_node::FileState::Complete);
        Ok(saved.is_some())
    })
    .await?;
    let same = saved
        .and_then(|f| f.path)
        .is_some_and(|p| std::fs::read(p).is_ok_and(|b| b == photo_bytes));
    println!(
        "and bob's photo, fetched by her node by itself: {}\n",
        if same {
            "byte for byte what bob sent"
        } else {
            "DIFFERENT from what bob sent"
        }
    );
    if !same {
        bail!("the photo carol saved differs from the one bob sent");
    }

    call(
        alice,
        "group.remove",
        json!({ "group": "friends", "member": "carol" }),
    )
    .await?;
    wait_until("carol's removal", async || {
        let list = call(&carol, "group.list", Value::Null).await?;
        Ok(list
            .as_array()
            .is_some_and(|l| l.iter().any(|g| g["you"] == "removed")))
    })
    .await?;
    println!(
        "alice removes carol; every member's next message uses a new Megolm session carol never gets"
    );
    let secret = "Now that carol is out: her birthday party is on Friday!";
    call(
        alice,
        "group.send",
        json!({ "group": "friends", "text": secret }),
    )
    .await?;
    wait_group_text(bob, "friends", secret).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let carol_has = group_texts(&carol, "friends")
        .await?
        .iter()
        .any(|(_, t)| t == secret);
    println!("alice → friends  {secret:?}");
    println!(
        "bob has it; carol's node got the ciphertext too, and {}",
        if carol_has {
            "COULD READ IT (a bug!)"
        } else {
            "cannot decrypt it"
        }
    );
    if carol_has {
        bail!("a removed member decrypted a later message");
    }
    println!("\nbob's view of the group's history (the same order on every member):");
    for (from, text) in group_texts(bob, "friends").await? {
        println!("  {from:>5}: {text}");
    }
    carol.stop().await?;
    Ok(())
}

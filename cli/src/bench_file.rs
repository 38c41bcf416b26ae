//! `hush bench file`: a file from one node process to another on loopback.
//!
//! - `seal_mib_per_s`: `send --file` called → the message queued (the file
//!   read, compressed if it helps, encrypted and hashed into `HOME/blobs`);
//! - `direct_mib_per_s`: `file get` called → the file complete at the
//!   receiver (fetched, every group verified, written and synced, then
//!   decrypted into `HOME/files` and synced);
//! - `floor_mib_per_s`: the same bytes over a plain TCP socket on loopback
//!   into a file, synced at the end (same run);
//! - `peak_rss_mib`: the most resident memory each node process reached
//!   (`VmHWM`), sealing and transfer included;
//! - `resume_refetched_kib`: a second file, the receiver killed (`kill
//!   -9`) half way and started again: what the sender served beyond the
//!   file's ciphertext (the groups fetched twice).
//!
//! - `relay_up_mib_per_s`: the recipient offline, the sender's node hands
//!   the sealed file to its relay (message queued → the relay holds it
//!   whole); `relay_down_mib_per_s`: the sender gone, the recipient back,
//!   `file get` → complete, from the relay (both processes on loopback).
//!
//! The file is random bytes (incompressible, as media are).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hush_node::{Client, FileView, Home, NodeStatus, SendReceipt};
use serde_json::{Value, json};

use crate::demo::{NodeProcess, RelayProcess, init_home};

const MIB: u64 = 1 << 20;

pub async fn file(size_mib: u64, as_json: bool) -> Result<()> {
    if size_mib == 0 {
        bail!("--size-mib must be at least 1");
    }
    let dir = tempfile::Builder::new().prefix("hush-bench-").tempdir()?;
    let size = size_mib * MIB;
    // One relay, home to both, with room for the file.
    let relay_config = dir.path().join("relay.toml");
    std::fs::write(
        &relay_config,
        format!(
            "[quotas]\ndisk_bytes = {}\n[files]\ntotal_bytes = {}\nper_uploader_bytes = {}\n",
            4 * size + 1024 * MIB,
            4 * size + 4 * MIB,
            2 * size + 2 * MIB
        ),
    )?;
    let relay_data = dir.path().join("relay");
    let relay = RelayProcess::start_with(&relay_data, Some(&relay_config)).await?;
    let alice_home = init_home(dir.path(), "alice")?;
    let bob_home = init_home(dir.path(), "bob")?;
    let with_relay = ["--relay", relay.address.as_str()];
    let alice = NodeProcess::start_with(&alice_home, "/ip4/127.0.0.1/tcp/0", &with_relay).await?;
    let extra = ["--auto-fetch-mib", "0", "--relay", relay.address.as_str()];
    let bob = NodeProcess::start_with(&bob_home, "/ip4/127.0.0.1/tcp/0", &extra).await?;
    introduce(&alice, "alice", &bob, "bob").await?;

    let source = dir.path().join("bench.bin");
    write_random(&source, size, 1)?;
    let floor = floor_mib_per_s(&source, dir.path()).await?;

    // Sealing (on the sender, before the message goes).
    let t0 = Instant::now();
    let receipt = send_file(&alice, &source).await?;
    let seal = mib_per_s(size, t0.elapsed());

    // The transfer.
    let t0 = Instant::now();
    let file = get_and_wait(&bob_home, &receipt.id).await?;
    let direct = mib_per_s(size, t0.elapsed());
    check_identical(&source, &file)?;
    let rss_alice = peak_rss_kib(alice.pid()) / 1024;
    let rss_bob = peak_rss_kib(bob.pid()) / 1024;

    // Resume: another file, the receiver killed half way. Its log says
    // what it had verified when it died; what it holds on disk then is
    // where it resumes; the difference is what it fetches twice. What the
    // sender served beyond the file's length was in flight (sent, never
    // verified).
    bob.stop().await?;
    let log = dir.path().join("receiver.log");
    let filter = format!("error,{}=trace", hush_node::files::VERIFIED_TARGET);
    let bob = NodeProcess::start_logging(&bob_home, "/ip4/127.0.0.1/tcp/0", &extra, &filter, &log)
        .await?;
    let second = dir.path().join("second.bin");
    write_random(&second, size, 2)?;
    let receipt = send_file(&alice, &second).await?;
    let served_before = status(&alice_home).await?.files_served_bytes;
    let mut client = Client::connect(&bob_home).await?;
    client.call("file.get", json!({ "id": receipt.id })).await?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let file = file_of(&bob_home, &receipt.id).await?;
        if file.done >= file.size / 2 {
            break;
        }
        if Instant::now() > deadline {
            bail!("the second file did not reach half way in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    bob.kill9().await?;
    let cipher = hush_protocol::blob::ciphertext_len(size)?;
    let verified = verified_in_log(&log)?;
    let on_disk = stored_by_download(&bob_home.dir().join("blobs"), cipher)?;
    let refetched_kib = verified.saturating_sub(on_disk) / 1024;
    let bob = NodeProcess::start_with(&bob_home, "/ip4/127.0.0.1/tcp/0", &extra).await?;
    let file = wait_state(&bob_home, &receipt.id).await?;
    check_identical(&second, &file)?;
    let served = status(&alice_home).await?.files_served_bytes - served_before;
    let in_flight_kib = served.saturating_sub(cipher) / 1024 - refetched_kib.min(served / 1024);

    // Through the relay: bob offline, alice's node hands the file to the
    // relay; then alice goes and bob fetches it from there.
    bob.stop().await?;
    let third = dir.path().join("third.bin");
    write_random(&third, size, 3)?;
    let receipt = send_file_waiting(&alice, &third, "sent").await?;
    let t0 = Instant::now();
    wait_relay_holds(&relay_data.join("blobs"), 1).await?;
    let relay_up = mib_per_s(size, t0.elapsed());
    alice.stop().await?;
    let bob = NodeProcess::start_with(&bob_home, "/ip4/127.0.0.1/tcp/0", &extra).await?;
    wait_listed(&bob_home, &receipt.id).await?;
    let t0 = Instant::now();
    let file = get_and_wait(&bob_home, &receipt.id).await?;
    let relay_down = mib_per_s(size, t0.elapsed());
    check_identical(&third, &file)?;
    bob.stop().await?;
    relay.stop().await?;
    let report = json!({
        "size_mib": size_mib,
        "seal_mib_per_s": seal.round(),
        "direct_mib_per_s": direct.round(),
        "floor_mib_per_s": floor.round(),
        "direct_over_floor": (direct / floor.max(0.001) * 100.0).round() / 100.0,
        "peak_rss_mib": { "sender": rss_alice, "receiver": rss_bob },
        "resume_refetched_kib": refetched_kib,
        "resume_in_flight_kib": in_flight_kib,
        "relay_up_mib_per_s": relay_up.round(),
        "relay_down_mib_per_s": relay_down.round(),
    });
    if as_json {
        println!("{report}");
    } else {
        println!("{size_mib} MiB of random bytes, two node processes on loopback");
        println!("sealing (read, encrypt, hash, write): {seal:.0} MiB/s");
        println!("direct transfer (fetched, verified, written, opened): {direct:.0} MiB/s");
        println!("plain TCP copy into a file: {floor:.0} MiB/s");
        println!("peak resident memory: sender {rss_alice} MiB, receiver {rss_bob} MiB");
        println!(
            "resume after kill -9 at half way: {refetched_kib} KiB verified before and fetched again, {in_flight_kib} KiB were in flight"
        );
        println!(
            "through a relay: up (sealed file handed over) {relay_up:.0} MiB/s, down (fetched from it) {relay_down:.0} MiB/s"
        );
    }
    Ok(())
}

fn mib_per_s(bytes: u64, took: Duration) -> f64 {
    bytes as f64 / MIB as f64 / took.as_secs_f64().max(1e-9)
}

/// `len` random bytes (BLAKE3's output stream of `seed`) into `path`.
fn write_random(path: &Path, len: u64, seed: u8) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut xof = blake3::Hasher::new().update(&[seed]).finalize_xof();
    let mut buf = vec![0u8; MIB as usize];
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB) as usize;
        xof.fill(&mut buf[..n]);
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    out.flush()?;
    Ok(())
}

/// The file's bytes over a plain loopback TCP socket into another file,
/// synced at the end.
async fn floor_mib_per_s(source: &Path, dir: &Path) -> Result<f64> {
    let (source, target) = (source.to_owned(), dir.join("floor.bin"));
    tokio::task::spawn_blocking(move || -> Result<f64> {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let receiver = std::thread::spawn(move || -> std::io::Result<()> {
            let (mut socket, _) = listener.accept()?;
            let mut out = std::fs::File::create(&target)?;
            let mut buf = vec![0u8; MIB as usize];
            loop {
                let n = socket.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])?;
            }
            out.sync_all()?;
            std::fs::remove_file(&target)
        });
        let len = std::fs::metadata(&source)?.len();
        let t0 = Instant::now();
        let mut socket = std::net::TcpStream::connect(addr)?;
        let mut input = std::fs::File::open(&source)?;
        let mut buf = vec![0u8; MIB as usize];
        loop {
            let n = input.read(&mut buf)?;
            if n == 0 {
                break;
            }
            socket.write_all(&buf[..n])?;
        }
        socket.shutdown(std::net::Shutdown::Write)?;
        receiver
            .join()
            .map_err(|_| anyhow::anyhow!("the floor's receiver panicked"))??;
        Ok(mib_per_s(len, t0.elapsed()))
    })
    .await?
}

async fn introduce(a: &NodeProcess, a_name: &str, b: &NodeProcess, b_name: &str) -> Result<()> {
    let card = |node: &NodeProcess| {
        let home = node.home.clone();
        async move {
            let mut c = Client::connect(&home).await?;
            let card = c.call("card", Value::Null).await?;
            Ok::<String, anyhow::Error>(card["card"].as_str().unwrap_or_default().to_owned())
        }
    };
    let (a_card, b_card) = (card(a).await?, card(b).await?);
    let mut c = a.client().await?;
    c.call("contact.add", json!({ "name": b_name, "card": b_card }))
        .await?;
    let mut c = b.client().await?;
    c.call("contact.add", json!({ "name": a_name, "card": a_card }))
        .await?;
    Ok(())
}

async fn send_file(node: &NodeProcess, path: &Path) -> Result<SendReceipt> {
    send_file_waiting(node, path, "delivered").await
}

async fn send_file_waiting(node: &NodeProcess, path: &Path, wait: &str) -> Result<SendReceipt> {
    let mut c = node.client().await?;
    let params = json!({
        "contact": "bob",
        "file": path,
        "wait": wait,
        "timeout_ms": 600_000,
    });
    let receipt: SendReceipt = serde_json::from_value(c.call("send", params).await?)?;
    if receipt.timed_out {
        bail!("the file message was not delivered");
    }
    Ok(receipt)
}

/// Waits until the relay holds `n` whole blobs in `blobs`.
async fn wait_relay_holds(blobs: &Path, n: usize) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let whole = std::fs::read_dir(blobs)
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "blob"))
                    .count()
            })
            .unwrap_or(0);
        if whole >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the relay did not hold the file within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the node lists the file (its message came from the relay).
async fn wait_listed(home: &Home, id: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while file_of(home, id).await.is_err() {
        if Instant::now() > deadline {
            bail!("the file's message did not arrive from the relay within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The most ciphertext bytes a node's log says its download had verified.
fn verified_in_log(log: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(log)
        .with_context(|| format!("could not read the receiver's log {}", log.display()))?;
    let verified = text
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["target"] == hush_node::files::VERIFIED_TARGET)
        .filter_map(|v| v["verified"].as_u64())
        .max();
    verified.context("the receiver's log shows no group verified")
}

/// What the one download under way in `blobs` holds on disk (ciphertext
/// bytes of `cipher_len`).
fn stored_by_download(blobs: &Path, cipher_len: u64) -> Result<u64> {
    let mut roots = std::fs::read_dir(blobs)?.filter_map(|e| {
        let name = e.ok()?.file_name().into_string().ok()?;
        let hex = name.strip_suffix(".have")?;
        let bytes = <[u8; 32]>::try_from(hex::decode(hex).ok()?).ok()?;
        Some(hush_protocol::blob::BlobRoot(bytes))
    });
    let root = roots
        .next()
        .context("the receiver has no download under way")?;
    Ok(hush_host::blobs::fetched_on_disk(blobs, &root, cipher_len))
}

async fn status(home: &Home) -> Result<NodeStatus> {
    let mut c = Client::connect(home).await?;
    Ok(serde_json::from_value(
        c.call("status", Value::Null).await?,
    )?)
}

async fn file_of(home: &Home, id: &str) -> Result<FileView> {
    let mut c = Client::connect(home).await?;
    let files: Vec<FileView> = serde_json::from_value(c.call("file.list", json!({})).await?)?;
    files
        .into_iter()
        .find(|f| f.id == id)
        .context("the receiver does not list the file")
}

/// Asks for the file and waits until it is complete.
async fn get_and_wait(home: &Home, id: &str) -> Result<FileView> {
    let mut events = Client::connect(home).await?;
    events.subscribe().await?;
    let mut c = Client::connect(home).await?;
    let file: FileView = serde_json::from_value(c.call("file.get", json!({ "id": id })).await?)?;
    if file.state == hush_node::FileState::Complete {
        return Ok(file);
    }
    while let Some(event) = events.next_event().await? {
        if event["type"] == "file" && event["file"]["id"] == id {
            let file: FileView = serde_json::from_value(event["file"].clone())?;
            match file.state {
                hush_node::FileState::Complete => return Ok(file),
                hush_node::FileState::Failed => {
                    bail!("the transfer failed: {}", file.error.unwrap_or_default())
                }
                _ => {}
            }
        }
    }
    bail!("the receiver stopped during the transfer")
}

/// Waits (polling) until the file is complete.
async fn wait_state(home: &Home, id: &str) -> Result<FileView> {
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let file = file_of(home, id).await?;
        match file.state {
            hush_node::FileState::Complete => return Ok(file),
            hush_node::FileState::Failed => {
                bail!(
                    "the resumed transfer failed: {}",
                    file.error.unwrap_or_default()
                )
            }
            _ => {}
        }
        if Instant::now() > deadline {
            bail!("the resumed transfer did not complete in 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn check_identical(source: &Path, file: &FileView) -> Result<()> {
    let path = file
        .path
        .as_deref()
        .context("the complete file has no path")?;
    let hash = |p: &Path| -> Result<blake3::Hash> {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(p)?)?;
        Ok(hasher.finalize())
    };
    if hash(source)? != hash(Path::new(path))? {
        bail!("the received file differs from the one sent");
    }
    Ok(())
}

/// The most resident memory the process reached (`VmHWM`), in KiB.
fn peak_rss_kib(pid: Option<u32>) -> u64 {
    pid.map_or(0, |pid| crate::bench::peak_rss_kib(&pid.to_string()))
}

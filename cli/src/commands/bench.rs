//! `hush bench ...`: whole-system figures (see docs/benchmarks.md).

use anyhow::Result;

use crate::args::BenchCommand;

pub async fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Relay {
            json,
            senders,
            messages,
            batch,
            window,
            rate,
            idle_connections,
        } => {
            if let Some(n) = idle_connections {
                return crate::bench_idle::relay_idle(json, n as usize).await;
            }
            let load = crate::bench_relay::Load {
                senders,
                messages,
                batch,
                window,
                rate,
            };
            crate::bench_relay::relay(json, load).await
        }
        BenchCommand::Group {
            members,
            messages,
            interval_ms,
            quiet_secs,
            trace,
            json,
        } => {
            let shape = crate::bench_group::Shape {
                members,
                messages,
                interval: std::time::Duration::from_millis(interval_ms),
                quiet: std::time::Duration::from_secs(quiet_secs),
                trace,
            };
            crate::bench_group::group(shape, json).await
        }
        BenchCommand::Gossip {
            members,
            peers,
            messages,
            interval_ms,
            json,
        } => {
            let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
            crate::bench_gossip::gossip(n(members), peers.map(n), n(messages), interval_ms, json)
                .await
        }
        BenchCommand::Link {
            messages,
            fanout_messages,
            json,
        } => crate::bench_link::link(messages, fanout_messages, json).await,
        BenchCommand::File { size_mib, json } => crate::bench_file::file(size_mib, json).await,
        BenchCommand::Search {
            messages,
            batch,
            json,
        } => search(messages, batch, json),
        BenchCommand::Fold { members, json } => crate::bench_fold::fold(members, json),
        BenchCommand::Liveness { secs, json } => crate::bench_liveness::liveness(secs, json).await,
        BenchCommand::Presence { json } => crate::bench_presence::presence(json).await,
        BenchCommand::Network {
            json,
            relays,
            nodes,
            churn_nodes,
        } => {
            let n = |v: u64| usize::try_from(v).unwrap_or(usize::MAX);
            crate::bench_network::network(n(relays), n(nodes), n(churn_nodes), json).await
        }
        BenchCommand::Direct {
            json,
            latency_messages,
            rate,
            throughput_messages,
            words,
        } => {
            let sizes = (latency_messages, rate, throughput_messages);
            crate::bench::direct(json, sizes, words).await
        }
    }
}

fn search(messages: usize, batch: usize, as_json: bool) -> Result<()> {
    let dir = tempfile::Builder::new().prefix("hush-bench-").tempdir()?;
    let report = hush_node::search_bench::run(dir.path(), messages, batch, &mut |phase, n| {
        eprintln!("search bench: {phase}: {n} messages stored");
    })?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    println!(
        "messages               {} ({} per transaction)",
        report.messages, report.batch
    );
    println!(
        "index (stored, sealed) {:.0} msg/s",
        report.index_msgs_per_s
    );
    println!(
        "sealed, no index       {:.0} msg/s",
        report.sealed_store_msgs_per_s
    );
    println!(
        "plain, no index        {:.0} msg/s",
        report.plain_store_msgs_per_s
    );
    println!("sealed / plain time    {:.2}x", report.sealed_over_plain);
    println!(
        "query p50 / p99        {:.1} / {:.1} ms",
        report.query_p50_ms, report.query_p99_ms
    );
    for q in &report.queries {
        println!(
            "  {:<26} p50 {:>6.1} ms  p99 {:>6.1} ms  {:.1} hits",
            q.kind, q.p50_ms, q.p99_ms, q.mean_hits
        );
    }
    println!("index bytes per msg    {:.0}", report.index_bytes_per_msg);
    println!("database               {} MiB", report.db_bytes >> 20);
    Ok(())
}

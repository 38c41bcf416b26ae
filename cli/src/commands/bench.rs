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
            json,
        } => crate::bench_group::group(members, messages, interval_ms, json).await,
        BenchCommand::Link {
            messages,
            fanout_messages,
            json,
        } => crate::bench_link::link(messages, fanout_messages, json).await,
        BenchCommand::File { size_mib, json } => crate::bench_file::file(size_mib, json).await,
        BenchCommand::Fold { members, json } => crate::bench_fold::fold(members, json),
        BenchCommand::Liveness { secs, json } => crate::bench_liveness::liveness(secs, json).await,
        BenchCommand::Presence { json } => crate::bench_presence::presence(json).await,
        BenchCommand::Direct {
            json,
            latency_messages,
            rate,
            throughput_messages,
        } => crate::bench::direct(json, latency_messages, rate, throughput_messages).await,
    }
}

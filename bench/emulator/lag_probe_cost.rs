//! lag-probe's cost per run against the emulator with 3 Regions: AWS calls per run (by service
//! and operation, from the emulator's request log), sequential round trips and wall time; then its
//! accuracy: the lag it measures against replication delays injected in the emulator (0, 300 and
//! 800 ms; median of the runs' p50, and how far it is from the delay).
//!
//! The world is `multisite_tests::deployment`: the global table with
//! replicas in all 3 Regions and TTL on, an Auto Scaling group and a health check per Region, an
//! Aurora global cluster, the ledger; default `ProbeConfig` (3 samples per pair, 6 ordered pairs).
//!
//! `make bench` runs it with `cargo bench --bench lag_probe_cost`; `cargo test` runs one quick
//! run (CI smoke).

#[path = "common.rs"]
mod common;

use lag_probe::Deps;
use lag_probe::config::ProbeConfig;
use multisite_tests::Emulator;
use multisite_tests::deployment::Deployment;
use multisite_tests::fixtures::unique_name;
use multisite_tests::roles::{Function, function_clients};
use serde_json::{Value, json};
use shared::Topology;
use shared::capacity::GroupSizes;
use shared::clock::SystemClock;
use std::collections::BTreeMap;
use std::time::Instant;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const HOME: &str = "eu-west-1";
/// Replication delays injected for the accuracy figure, and runs per delay (1 in quick mode).
const ACCURACY_DELAYS_MS: [u64; 3] = [0, 300, 800];
const ACCURACY_RUNS: usize = 5;

fn event() -> Value {
    let path = multisite_tests::repo_root().join("events/scheduled-lag-probe.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("event JSON")
}

async fn world(emulator: &Emulator) -> Topology {
    emulator.set_timing(100, 100, 200);
    Deployment::spec(&REGIONS)
        .with_global_table(&unique_name("sessions"))
        .with_groups(GroupSizes::new(1, 2, 10))
        .with_aurora()
        .create(emulator)
        .await
        .topology
}

fn main() {
    let quick = common::quick_mode();
    let runs = if quick { 1 } else { 7 };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let emulator = Emulator::start();
    let (walls, calls, by_operation, summary, reported_calls, accuracy) = runtime.block_on(async {
        let topology = world(&emulator).await;
        // Signed with lag-probe's role from template.yaml, as the stack in HOME deploys it.
        let clients = function_clients(&emulator, &topology, Function::LagProbe, HOME).await;
        let config = ProbeConfig::default();
        let deps =
            Deps { topology: &topology, clients: &clients, home_region: HOME, clock: &SystemClock, config: &config };
        let mut walls = Vec::new();
        let mut calls = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            emulator.clear_requests();
            let started = Instant::now();
            let report = lag_probe::handle(event(), &deps).await.expect("probe run");
            walls.push(started.elapsed().as_secs_f64() * 1000.0);
            let requests = emulator.requests();
            calls.push(requests.len() as f64);
            last = Some((requests, report.replication.calls));
        }
        let (requests, reported_calls) = last.expect("one run");
        let mut by_operation: BTreeMap<String, usize> = BTreeMap::new();
        for r in &requests {
            *by_operation.entry(format!("{}:{}", r.service, r.operation)).or_default() += 1;
        }
        let all: Vec<_> = requests.iter().collect();
        let summary = common::summary(&all);
        // Accuracy: every Region pair replicates after the injected delay; per delay, the median
        // over the runs of each run's p50 (all 6 pairs' samples).
        let mut accuracy = Vec::new();
        for delay in ACCURACY_DELAYS_MS {
            emulator.set_replication_delay(delay);
            let mut p50s = Vec::new();
            for _ in 0..runs.min(ACCURACY_RUNS) {
                let report = lag_probe::handle(event(), &deps).await.expect("probe run");
                p50s.push(report.replication.overall.expect("samples measured").p50_ms as f64);
            }
            accuracy.push((delay, common::median(&p50s), p50s));
        }
        (walls, calls, by_operation, summary, reported_calls, accuracy)
    });
    let median_wall = common::median(&walls);
    let median_calls = common::median(&calls);
    println!(
        "lag-probe, 3 Regions (6 pairs x {} samples): median {median_wall:.0} ms, {median_calls} calls per run \
         over {runs} runs; sequential round trips {}",
        ProbeConfig::default().samples,
        summary["sequential_round_trips"]
    );
    println!("  calls by operation (last run): {by_operation:?}");
    for (delay, median, p50s) in &accuracy {
        println!(
            "  lag accuracy: injected {delay} ms, median of run p50s {median:.0} ms ({:+.0} ms; runs {p50s:?})",
            median - *delay as f64
        );
    }
    let accuracy: Vec<Value> = accuracy
        .iter()
        .map(|(delay, median, p50s)| {
            json!({"injected_ms": delay, "p50_ms_median": median, "error_ms": median - *delay as f64, "run_p50s_ms": p50s})
        })
        .collect();
    let out = json!({
        "regions": REGIONS.len(),
        "runs": runs,
        "samples_per_pair": ProbeConfig::default().samples,
        "wall_ms_median": median_wall,
        "wall_ms_min": walls.iter().cloned().fold(f64::INFINITY, f64::min),
        "wall_ms_max": walls.iter().cloned().fold(0.0, f64::max),
        "calls_median": median_calls,
        "canary_calls_reported": reported_calls,
        "calls_by_operation": by_operation,
        "last_run": summary,
        "accuracy": accuracy,
    });
    if !quick {
        common::write_result("lag_probe_cost", &out);
    }
}

//! failover's critical path against the emulator with 3 Regions: how many sequential AWS round
//! trips one evacuation needs from event to done (from the emulator's request log: the longest
//! chain of calls that do not overlap in time), split into control-plane calls (Route 53, RDS)
//! and ledger calls (DynamoDB), and the handler's wall time with 0 and 200 ms injected per call.
//!
//! The world is `multisite_tests::deployment` (health checks, an Aurora global cluster with the
//! writer in us-east-1, the health alarms in their watcher Regions, the ledger table whose arbiter
//! replica is HOME), as in failover's emulator tests, fresh for every run. us-east-1's alarm (in
//! eu-west-1) is set to ALARM with SetAlarmState and the change CloudWatch emitted is delivered,
//! in the direct alarm-action shape, to failover in its actor Region (HOME): the writer's Region
//! fails, so the plan inverts its health check and moves the writer (the worst case). The
//! confirmation (DescribeAlarms) and the arbiter claim share the first round trip.
//!
//! `make bench` runs it with `cargo bench --bench failover_critical_path`; `cargo test` runs one
//! quick iteration with 200 ms injected and checks the budget: observe + act in 2 sequential
//! round trips.

#[path = "common.rs"]
mod common;

use failover::{Deps, Outcome};
use multisite_tests::Emulator;
use multisite_tests::deployment::{self, Deployment};
use multisite_tests::roles::{Function, function_clients};
use serde_json::{Value, json};
use shared::Topology;
use shared::clock::FixedClock;
use std::time::Instant;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const HOME: &str = "eu-west-1";
const T0: u64 = 1_800_000_000_000;

fn event(name: &str) -> Value {
    let path = multisite_tests::repo_root().join("events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("event JSON")
}

/// A fresh 3-Region world in `emulator` (reset first), us-east-1's alarm already in ALARM: the
/// topology describing it and the alarm-action event of that state change.
async fn world(emulator: &Emulator) -> (Topology, Value) {
    emulator.reset();
    emulator.set_timing(100, 100, 200);
    let deployment = Deployment::spec(&REGIONS).with_aurora().create(emulator).await;
    assert_eq!(deployment.watcher("us-east-1"), HOME, "us-east-1's alarm lives (and is acted on) in HOME");
    let change = deployment.alarm_change(emulator, "us-east-1", "ALARM").await;
    (deployment.topology, alarm_action(&change))
}

/// The direct alarm-action shape (`events/alarm-alarm-action-us-east-1-alarm.json`) of a recorded
/// EventBridge state-change event: its ARN and timestamps, so the confirmation holds.
fn alarm_action(eb: &Value) -> Value {
    let mut e = event("alarm-alarm-action-us-east-1-alarm.json");
    e["alarmArn"] = eb["resources"][0].clone();
    e["region"] = eb["region"].clone();
    e["time"] = eb["detail"]["state"]["timestamp"].clone();
    e["alarmData"]["state"] = eb["detail"]["state"].clone();
    if eb["detail"]["previousState"].is_object() {
        e["alarmData"]["previousState"] = eb["detail"]["previousState"].clone();
    }
    e
}

struct Run {
    wall_ms: f64,
    /// From the first request's start to the end of the last control-plane call (the actions),
    /// on the emulator's clock: what a user waits for; the audit write comes after it.
    acted_ms: f64,
    all: Value,
    /// The calls made until the actions were done: observe + claim + act.
    until_acted: Value,
    control_plane: Value,
    ledger: Value,
}

async fn one_run(emulator: &Emulator, latency_ms: u64) -> Run {
    // Clients are built per run like a cold container's, after the reset, signed with failover's
    // role from template.yaml (rendered for this world, as the stack in HOME deploys it).
    let (topology, payload) = world(emulator).await;
    let clients = function_clients(emulator, &topology, Function::Failover, HOME).await;
    let clock = FixedClock::at(T0);
    let identity = deployment::identity();
    let deps = Deps { topology: &topology, clients: &clients, home_region: HOME, clock: &clock, identity: &identity };
    for region in REGIONS {
        emulator.set_latency(region, latency_ms);
    }
    emulator.clear_requests();
    let started = Instant::now();
    let response = failover::handle(payload, &deps).await.expect("evacuated");
    let reports = response.reports;
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let requests = emulator.requests();
    for region in REGIONS {
        emulator.set_latency(region, 0);
    }
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].outcome, Outcome::Reconciled, "{:?}", reports[0]);
    // The critical path includes the confirmation and the claim on the arbiter replica. Round
    // trips are told apart by injected latency: at 0 ms the calls of one wave finish before the
    // last of them starts, so this is checked only with latency.
    for operation in ["DescribeAlarms", "UpdateItem"].into_iter().filter(|_| latency_ms > 0) {
        assert!(
            requests.iter().any(|r| r.operation == operation && r.t_ms < first_control_end(&requests)),
            "{operation} is in the first round trip: {:?}",
            requests.iter().map(|r| &r.operation).collect::<Vec<_>>()
        );
    }
    let arbiter = topology.arbiter_region();
    assert!(
        requests.iter().any(|r| r.operation == "UpdateItem" && r.service == "dynamodb" && r.region == arbiter),
        "the claim goes to the arbiter replica in {arbiter}"
    );
    let all: Vec<_> = requests.iter().collect();
    let control: Vec<_> = requests.iter().filter(|r| r.service != "dynamodb" && r.service != "monitoring").collect();
    let ledger: Vec<_> = requests.iter().filter(|r| r.service == "dynamodb").collect();
    let first_start = all.iter().map(|r| r.t_ms).fold(f64::INFINITY, f64::min);
    let acted_at = control.iter().map(|r| r.end_ms).fold(f64::NEG_INFINITY, f64::max);
    let until_acted: Vec<_> = requests.iter().filter(|r| r.t_ms < acted_at).collect();
    Run {
        wall_ms,
        acted_ms: acted_at - first_start,
        all: common::summary(&all),
        until_acted: common::summary(&until_acted),
        control_plane: common::summary(&control),
        ledger: common::summary(&ledger),
    }
}

/// When the first control-plane call (an observation) ended: the first round trip's end.
fn first_control_end(requests: &[multisite_tests::RequestRecord]) -> f64 {
    requests
        .iter()
        .filter(|r| r.service != "dynamodb" && r.service != "monitoring")
        .map(|r| r.end_ms)
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let quick = common::quick_mode();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    let emulator = Emulator::start();
    // Quick (CI): one run with latency, where calls in one round trip clearly overlap, so the
    // round-trip budget below is checked on every `cargo test`.
    let scenarios: Vec<(u64, usize)> = if quick { vec![(200, 1)] } else { vec![(0, 15), (200, 7)] };
    let mut results = Vec::new();
    for (latency_ms, runs) in scenarios {
        let mut walls = Vec::new();
        let mut acted = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            let run = runtime.block_on(one_run(&emulator, latency_ms));
            walls.push(run.wall_ms);
            acted.push(run.acted_ms);
            last = Some(run);
        }
        let last = last.expect("at least one run");
        let median = common::median(&walls);
        let acted_median = common::median(&acted);
        println!(
            "failover evacuation, 3 Regions, {latency_ms} ms/call: median {median:.1} ms over {runs} runs \
             (actions done after {acted_median:.1} ms); sequential round trips: {} (until the actions are done {}; \
             control plane {}, ledger {})",
            last.all["sequential_round_trips"],
            last.until_acted["sequential_round_trips"],
            last.control_plane["sequential_round_trips"],
            last.ledger["sequential_round_trips"]
        );
        println!("  waves: {}", last.all["waves"]);
        if latency_ms > 0 {
            // The budget (docs/architecture.md, section 3): observe + act in 2 sequential round trips,
            // the ledger claim sharing the first and the transition record the second.
            assert_eq!(last.until_acted["sequential_round_trips"], 2, "observe + act: {}", last.until_acted);
        }
        results.push(json!({
            "latency_ms": latency_ms,
            "runs": runs,
            "wall_ms_median": median,
            "wall_ms_min": walls.iter().cloned().fold(f64::INFINITY, f64::min),
            "wall_ms_max": walls.iter().cloned().fold(0.0, f64::max),
            "acted_ms_median": acted_median,
            "all": last.all,
            "until_acted": last.until_acted,
            "control_plane": last.control_plane,
            "ledger": last.ledger,
        }));
    }
    let out = json!({"scenario": "evacuate the writer's Region (us-east-1) of 3", "quick": quick, "results": results});
    if !quick {
        common::write_result("failover_critical_path", &out);
    }
}

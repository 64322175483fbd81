//! Randomized schedules of alarm changes against failover as deployed in three Regions at once,
//! in the strict local world: roles from template.yaml, ledger replicas about 0-2 s apart, every
//! instance receiving changes in random order and timing, duplicates and late deliveries
//! included. After each schedule settles (a scheduled reconcile in every Region), the safety
//! invariants must hold:
//!
//! - evacuated Regions <= N - min_healthy_regions;
//! - the Aurora writer moved at most once per evacuation, and never into an evacuated Region;
//! - the arbiter's fleet record equals the world (a Region is Evacuated exactly when its health
//!   check is forced unhealthy).
//!
//! Seeded and reproducible: `MULTISITE_SEED=<seed>` replays one schedule (its seed is printed on
//! failure); `MULTISITE_SCHEDULES` sets how many run (default 100).

use failover::{Deps, Outcome, Response};
use multisite_tests::deployment::{self, Deployment};
use multisite_tests::fixtures::{describe_global, eventually, writer_arn};
use multisite_tests::instances::Instances;
use multisite_tests::roles::Function;
use multisite_tests::{Emulator, EmulatorLease};
use serde_json::{Value, json};
use shared::clock::SystemClock;
use shared::ledger::{self, ProbeSummary, RegionProbe, RegionStatus};
use shared::{Ledger, Topology};
use std::collections::BTreeMap;
use std::time::Duration;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const BASE_SEED: u64 = 0x5eed_2026_1202;
/// Worlds running schedules side by side.
const WORLDS: usize = 3;

/// splitmix64: small, deterministic, good enough to draw schedules from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// One delivery: an event, the Region whose instance receives it, and when.
#[derive(Debug, Clone)]
struct Delivery {
    region: &'static str,
    after_ms: u64,
    event: Value,
    what: String,
}

struct World {
    emulator: EmulatorLease,
    deployment: Deployment,
    instances: Instances,
    global_id: String,
}

impl World {
    async fn new() -> Self {
        let emulator = Emulator::lease();
        emulator.set_timing(50, 50, 50);
        let deployment = Deployment::spec(&REGIONS)
            .with_aurora()
            .with_ledger_replicas()
            .with_failover_policy(json!({"min_healthy_regions": 1, "cooldown_seconds": 0, "auto_failback": true}))
            .create(&emulator)
            .await;
        let global_id = deployment.global_cluster_id.clone().expect("global cluster");
        let instances = Instances::deploy(&emulator, &deployment, Function::Failover).await;
        Self { emulator, deployment, instances, global_id }
    }

    fn arbiter(&self) -> Ledger {
        let region = self.deployment.topology.arbiter_region();
        Ledger::new(
            self.deployment.clients.region(region).expect("arbiter").dynamodb.clone(),
            deployment::LEDGER_TABLE,
            region,
        )
    }

    async fn forced_unhealthy(&self, region: &str) -> bool {
        let id = &self.deployment.health_checks[region];
        let flags = shared::aws::health_check_flags(
            &self.deployment.clients.region("eu-west-1").expect("r").route53,
            "eu-west-1",
            id,
        )
        .await
        .expect("health check");
        flags.forced_unhealthy()
    }

    async fn writer_region(&self) -> String {
        let rds = &self.deployment.clients.region("eu-west-1").expect("r").rds;
        let arn = writer_arn(&describe_global(rds, &self.global_id).await).expect("writer");
        shared::topology::RdsClusterArn::parse(&arn).expect("cluster ARN").region.to_owned()
    }

    /// Every Region Active, every health check given back, every alarm OK, a fresh lag-probe
    /// verdict that opens the failback gate in every Region.
    async fn reset(&self) {
        let clients = &self.deployment.clients;
        for region in REGIONS {
            let ddb = clients.region(region).expect("r").dynamodb.clone();
            Ledger::new(ddb, deployment::LEDGER_TABLE, region).delete_fleet_status().await.expect("delete fleet");
            let id = &self.deployment.health_checks[region];
            clients
                .region("eu-west-1")
                .expect("r")
                .route53
                .update_health_check()
                .health_check_id(id)
                .inverted(false)
                .disabled(false)
                .send()
                .await
                .expect("restore health check");
            deployment::set_alarm_state(
                clients,
                &self.deployment.watcher(region),
                &deployment::alarm_name(region),
                "OK",
            )
            .await;
        }
        let now = shared::clock::Clock::now_ms(&SystemClock);
        let regions = REGIONS
            .iter()
            .map(|r| {
                let probe = RegionProbe {
                    reachable: true,
                    pairs_measured: 4,
                    pairs_expected: 4,
                    max_lag_ms: Some(100),
                    rpo_breached: false,
                    ready: true,
                    readiness_failures: Vec::new(),
                };
                ((*r).to_owned(), probe)
            })
            .collect();
        let summary = ProbeSummary {
            measured_at_ms: now,
            max_lag_ms: Some(100),
            rpo_budget_ms: 2000,
            rpo_breached: false,
            unreachable_regions: Vec::new(),
            readiness_failures: 0,
            regions,
        };
        for region in REGIONS {
            let local =
                Ledger::new(clients.region(region).expect("r").dynamodb.clone(), deployment::LEDGER_TABLE, region);
            local.put(ledger::PROBE_PK, ledger::PROBE_LATEST_SK, &summary, 1, now).await.expect("probe verdict");
        }
    }
}

fn deps<'a>(
    topology: &'a Topology,
    instance: &'a multisite_tests::instances::Instance,
    identity: &'a shared::alarm::Identity,
) -> Deps<'a> {
    Deps { topology, clients: &instance.clients, home_region: &instance.region, clock: &SystemClock, identity }
}

/// Draws one schedule: alarm changes for two or three Regions (each a real SetAlarmState, so
/// CloudWatch's current state is the last change), delivered to random instances with
/// duplicates, in random order and timing, some of them late (after a newer change).
async fn draw(world: &World, rng: &mut Rng) -> Vec<Delivery> {
    let mut alarming: Vec<&'static str> = REGIONS.to_vec();
    if rng.chance(50) {
        alarming.remove(rng.below(3) as usize);
    }
    let mut changes = Vec::new();
    for region in &alarming {
        let steps = 1 + rng.below(3);
        for step in 0..steps {
            let state = if step % 2 == 0 { "ALARM" } else { "OK" };
            let event = world.deployment.alarm_change(&world.emulator, region, state).await;
            changes.push((*region, state, event));
        }
    }
    let mut deliveries = Vec::new();
    for (i, (region, state, event)) in changes.iter().enumerate() {
        let copies = 1 + rng.below(3);
        for copy in 0..copies {
            let to = if copy == 0 && rng.chance(70) {
                // Most changes reach their actor at least once (EventBridge in the watcher Region).
                REGIONS.iter().copied().find(|r| *r == world.deployment.watcher(region)).expect("watcher")
            } else {
                *rng.pick(&REGIONS)
            };
            // Later changes tend to arrive later; a late copy arrives after everything else.
            let late = rng.chance(15);
            let after_ms = if late { 600 + rng.below(200) } else { (i as u64) * 50 + rng.below(200) };
            deliveries.push(Delivery {
                region: to,
                after_ms,
                event: event.clone(),
                what: format!("{state} of {region} -> {to} at +{after_ms} ms{}", if late { " (late)" } else { "" }),
            });
        }
    }
    deliveries
}

async fn run_schedule(world: &World, seed: u64) -> Result<String, String> {
    let mut rng = Rng(seed);
    world.reset().await;
    let mut topology = world.deployment.topology.clone();
    topology.failover_policy.min_healthy_regions = 1 + rng.below(2) as usize;
    // Ledger replication between every pair: 0-2 s.
    for source in REGIONS {
        for destination in REGIONS.iter().filter(|d| **d != source) {
            world.emulator.set_pair_replication_delay(source, destination, rng.below(2001));
        }
    }
    let writer_before = world.writer_region().await;
    let deliveries = draw(world, &mut rng).await;
    let identity = deployment::identity();
    let start = tokio::time::Instant::now();
    let results: Vec<(Delivery, Result<Response, shared::Error>)> =
        futures_util::future::join_all(deliveries.iter().map(|d| {
            let instance = world.instances.instance(d.region);
            let (topology, identity) = (&topology, &identity);
            async move {
                tokio::time::sleep_until(start + Duration::from_millis(d.after_ms)).await;
                (d.clone(), failover::handle(d.event.clone(), &deps(topology, instance, identity)).await)
            }
        }))
        .await;
    // Settle: let replication and Aurora finish, then the scheduled reconcile in every Region.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let scheduled = json!({"version": "0", "id": "s", "detail-type": "Scheduled Event", "source": "aws.events",
        "account": deployment::ACCOUNT, "time": "2026-12-02T00:00:00Z", "region": "eu-west-1", "resources": [], "detail": {}});
    let mut settle = Vec::new();
    for _ in 0..2 {
        let round = futures_util::future::join_all(REGIONS.iter().map(|region| {
            let instance = world.instances.instance(region);
            let (topology, identity, scheduled) = (&topology, &identity, &scheduled);
            async move { failover::handle(scheduled.clone(), &deps(topology, instance, identity)).await }
        }))
        .await;
        settle.extend(round);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut log: Vec<String> = results
        .iter()
        .map(|(d, r)| match r {
            Ok(response) => format!(
                "{}: {}",
                d.what,
                response
                    .reports
                    .iter()
                    .map(|r| format!("{:?} {}", r.outcome, r.reason.clone().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Err(e) => format!("{}: error {e}", d.what),
        })
        .collect();
    let reports = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .chain(settle.iter().filter_map(|r| r.as_ref().ok()))
        .flat_map(|r| r.reports.iter());
    let mut evacuations = 0;
    let mut moves = Vec::new();
    for report in reports {
        if report.transition_recorded && report.alarm_state == shared::alarm::AlarmState::Alarm {
            evacuations += 1;
        }
        for step in report.steps.iter().filter(|s| s.ok) {
            // Two deliveries of one change may both ask for the same move (the second converges
            // on the first): one move is one (from, to).
            if let failover::plan::Action::MoveAuroraWriter { from_region, to_region, .. } = &step.action {
                let one = (from_region.clone(), to_region.clone());
                if !moves.contains(&one) {
                    moves.push(one);
                }
            }
        }
        if report.outcome == Outcome::Refused {
            log.push(format!("refused: {}", report.reason.clone().unwrap_or_default()));
        }
    }

    // Aurora may still be finishing a move started by the last actions.
    let (fleet, _) = world.arbiter().fleet_status().await.map_err(|e| e.to_string())?;
    let status = |r: &str| fleet.status_of(r);
    let final_writer = eventually(Duration::from_secs(5), Duration::from_millis(50), || async {
        let writer = world.writer_region().await;
        (status(&writer) == RegionStatus::Active).then_some(writer)
    })
    .await;
    let evacuated: Vec<&str> = REGIONS.iter().copied().filter(|r| status(r) == RegionStatus::Evacuated).collect();
    let summary = format!(
        "seed {seed:#x}: min_healthy {}, evacuated now {evacuated:?}, {evacuations} evacuation(s), writer {writer_before} -> moves {moves:?}\n  {}",
        topology.failover_policy.min_healthy_regions,
        log.join("\n  ")
    );
    if evacuated.len() > REGIONS.len() - topology.failover_policy.min_healthy_regions {
        return Err(format!("too many Regions evacuated\n{summary}"));
    }
    if moves.len() > evacuations {
        return Err(format!("the writer moved {} times for {evacuations} evacuation(s)\n{summary}", moves.len()));
    }
    let Some(final_writer) = final_writer else {
        return Err(format!("the writer is in an evacuated Region ({})\n{summary}", world.writer_region().await));
    };
    for region in REGIONS {
        let forced = world.forced_unhealthy(region).await;
        if forced != (status(region) == RegionStatus::Evacuated) {
            return Err(format!(
                "the ledger says {region} is {:?} but its health check is {}forced unhealthy (writer {final_writer})\n{summary}",
                status(region),
                if forced { "" } else { "not " }
            ));
        }
    }
    Ok(summary)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn randomized_schedules_keep_the_safety_invariants_across_regions() {
    let seeds: Vec<u64> = match std::env::var("MULTISITE_SEED") {
        Ok(seed) => {
            let seed = seed.trim_start_matches("0x");
            vec![u64::from_str_radix(seed, 16).expect("MULTISITE_SEED is a hex seed")]
        }
        Err(_) => {
            let n: u64 = std::env::var("MULTISITE_SCHEDULES").ok().and_then(|n| n.parse().ok()).unwrap_or(100);
            (0..n).map(|i| BASE_SEED.wrapping_add(i.wrapping_mul(0x1000_0001))).collect()
        }
    };
    // Independent worlds (an emulator each) run schedules side by side: the schedules mostly wait
    // (delivery timing, replication), so this divides the wall time without changing a schedule.
    let worlds = futures_util::future::join_all((0..WORLDS.min(seeds.len())).map(|_| World::new())).await;
    let results = futures_util::future::join_all(worlds.iter().enumerate().map(|(w, world)| {
        let mine: Vec<u64> = seeds.iter().copied().skip(w).step_by(worlds.len()).collect();
        async move {
            let mut outcomes: Vec<(u64, Result<String, String>)> = Vec::new();
            for seed in mine {
                let result = run_schedule(world, seed).await;
                let failed = result.is_err();
                outcomes.push((seed, result));
                if failed {
                    break;
                }
            }
            outcomes
        }
    }))
    .await;
    let mut outcomes: BTreeMap<usize, usize> = BTreeMap::new();
    for (seed, result) in results.into_iter().flatten() {
        match result {
            Ok(summary) => {
                let evacuated = summary.split("evacuated now ").nth(1).map(|s| s.matches('"').count() / 2).unwrap_or(0);
                *outcomes.entry(evacuated).or_default() += 1;
            }
            Err(failure) => panic!("schedule failed; replay with MULTISITE_SEED={seed:#x}\n{failure}"),
        }
    }
    println!("{} schedules; Regions evacuated at the end -> schedules: {outcomes:?}", seeds.len());
    if seeds.len() >= 20 {
        assert!(outcomes.len() >= 2, "the schedules exercise more than one end state: {outcomes:?}");
    }
}

//! lag-probe through its real handler against the emulator, fed by `events/scheduled-lag-probe.json`:
//! measured lag against injected replication delays, breaches, an unreachable Region, an evacuated
//! Region measured for its failback, readiness rules, the Aurora report, canary keys and TTL, the
//! ledger record and its per-Region entries, malformed input; with the ARC routing backend, the
//! routing report (each cell's control, which cluster endpoints answered) and its two rules.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_route53::types::{HealthCheckConfig, HealthCheckType};
use lag_probe::canary::{self, CANARY_PREFIX};
use lag_probe::config::ProbeConfig;
use lag_probe::report::{PairOutcome, ProbeReport, RoutingReport};
use lag_probe::{Deps, readiness::Rule};
use multisite_tests::arc::ArcSetup;
use multisite_tests::deployment::{DataTable, Deployment, LEDGER_TABLE as LEDGER, aurora_member};
use multisite_tests::fixtures::{create_group, put_value, request_replica, unique_name, wait_replicas_active};
use multisite_tests::roles::{Function, function_clients};
use multisite_tests::{Emulator, EmulatorLease};
use serde_json::{Value, json};
use shared::capacity::GroupSizes;
use shared::clock::{Clock, SystemClock};
use shared::ledger::{self, FleetStatus, ProbeSummary, RegionProbe, RegionStatus, RegionStatusEntry};
use shared::{Ledger, RegionalClients, Topology};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const HOME: &str = "eu-west-1";
/// The failback gate's freshness limit in these tests (failover's own is its business).
const MAX_AGE_MS: u64 = 60_000;

fn event() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/scheduled-lag-probe.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("event JSON")
}

/// What a world is built with.
struct Setup {
    regions: usize,
    rpo_budget_ms: u64,
    aurora: bool,
    ttl_attribute: Option<&'static str>,
    /// MaxSize per Region (desired 2 everywhere).
    max_size: i32,
    /// Route with ARC routing controls: a cluster (five endpoints), a control per cell (On), the
    /// assertion rule (at least `min_healthy_regions`, 1) and the cells' RECOVERY_CONTROL health
    /// checks, as `DeploymentSpec::with_arc()` builds them.
    arc: bool,
}

impl Default for Setup {
    fn default() -> Self {
        Self {
            regions: 2,
            rpo_budget_ms: 2000,
            aurora: false,
            ttl_attribute: Some("ttl_epoch"),
            max_size: 10,
            arc: false,
        }
    }
}

/// A multi-Region deployment in a leased emulator, built by `multisite_tests::deployment`: the
/// global table (replicas ACTIVE, TTL on unless `Setup::ttl_attribute` is `None`), Auto Scaling
/// groups, health checks and alarms, optionally an Aurora global cluster or ARC, the ledger.
/// The handler runs as deployed in HOME, signed with lag-probe's role from template.yaml; the
/// test's own set-up and checks use the administrator's clients.
struct World {
    emulator: EmulatorLease,
    topology: Topology,
    /// The administrator's clients of every Region of `REGIONS` (set-up and checks, also of a
    /// Region the topology does not list).
    clients: RegionalClients,
    /// lag-probe's role, as the stack in HOME deploys it.
    function_clients: RegionalClients,
    config: ProbeConfig,
    table: String,
    global_id: String,
    /// With `Setup::arc`: the cluster, controls, rule and RECOVERY_CONTROL health checks.
    arc: Option<ArcSetup>,
    /// Each Region's endpoint health check (what its alarm watches).
    endpoint_checks: std::collections::BTreeMap<String, String>,
}

impl World {
    async fn new(setup: Setup) -> Self {
        let emulator = Emulator::lease();
        emulator.set_timing(100, 100, 200);
        let table = DataTable::named(&unique_name("sessions")).with_ttl_attribute(setup.ttl_attribute);
        let mut spec = Deployment::spec(&REGIONS[..setup.regions])
            .with_name("probe-test")
            .with_dns()
            .with_data_table(table)
            .with_groups(GroupSizes::new(1, 2, setup.max_size))
            .with_rpo_budget_ms(setup.rpo_budget_ms);
        if setup.aurora {
            spec = spec.with_aurora();
        }
        if setup.arc {
            spec = spec.with_arc();
        }
        assert_eq!(spec.home, HOME);
        let deployment = spec.create(&emulator).await;
        let function_clients = deployment.function_clients(&emulator, Function::LagProbe, HOME).await;
        emulator.clear_requests();
        Self {
            clients: emulator.clients(&REGIONS).await,
            topology: deployment.topology,
            function_clients,
            config: ProbeConfig::default(),
            table: deployment.topology_json["global_table"].as_str().unwrap_or_default().to_owned(),
            global_id: deployment.global_cluster_id.unwrap_or_default(),
            arc: deployment.arc,
            endpoint_checks: deployment.health_checks,
            emulator,
        }
    }

    fn deps(&self) -> Deps<'_> {
        Deps {
            topology: &self.topology,
            clients: &self.function_clients,
            home_region: HOME,
            clock: &SystemClock,
            config: &self.config,
        }
    }

    async fn run(&self) -> ProbeReport {
        lag_probe::handle(event(), &self.deps()).await.expect("probe run")
    }

    fn ledger(&self) -> Ledger {
        Ledger::new(self.clients.region(HOME).expect("home").dynamodb.clone(), LEDGER, HOME)
    }

    async fn stored(&self) -> ProbeSummary {
        self.ledger().latest_probe().await.expect("ledger").expect("stored").body
    }

    /// Records `region` as Evacuated in the ledger (the first fleet status written) and forces its
    /// health check unhealthy (both flags), as failover leaves an evacuated Region.
    async fn evacuate(&self, region: &str) {
        self.record_evacuated(region).await;
        let check = &self.topology.cell(region).expect("cell").health_check_id;
        let route53 = &self.clients.region(HOME).expect("home").route53;
        route53.update_health_check().health_check_id(check).inverted(true).disabled(true).send().await.expect("force");
    }

    /// Records `region` as Evacuated in the ledger's fleet status (its first version), nothing else.
    async fn record_evacuated(&self, region: &str) {
        let now = SystemClock.now_ms();
        let mut fleet = FleetStatus::default();
        let entry = RegionStatusEntry { status: RegionStatus::Evacuated, changed_at_ms: now, cause: "test".into() };
        fleet.regions.insert(region.to_owned(), entry);
        let written = self.ledger().put_fleet_if_version(&fleet, 0, now).await.expect("fleet status");
        assert_eq!(written, ledger::WriteOutcome::Written);
    }

    /// The ARC routing of a world built with `Setup::arc`.
    fn arc(&self) -> &shared::topology::ArcRouting {
        &self.arc.as_ref().expect("a world with the ARC backend").routing
    }

    fn ddb(&self, region: &str) -> &aws_sdk_dynamodb::Client {
        &self.clients.region(region).expect("region").dynamodb
    }

    async fn scan(&self, region: &str) -> Vec<HashMap<String, AttributeValue>> {
        self.ddb(region)
            .scan()
            .table_name(&self.table)
            .consistent_read(true)
            .send()
            .await
            .expect("scan")
            .items
            .unwrap_or_default()
    }
}

fn pair<'a>(report: &'a ProbeReport, source: &str, destination: &str) -> &'a lag_probe::report::PairReport {
    report
        .replication
        .pairs
        .iter()
        .find(|p| p.source == source && p.destination == destination)
        .unwrap_or_else(|| panic!("no pair {source} -> {destination}: {report:#?}"))
}

fn median(values: &mut [u64]) -> u64 {
    values.sort_unstable();
    values[values.len() / 2]
}

/// How far below the injected delay a measured lag may come out. The canary cannot be visible
/// before the emulator delivers it, so the lag is at least the delay minus the error of the two
/// round trips' midpoints (asymmetric request and response legs of a busy machine). The accuracy
/// figure is the benchmark's (`bench/emulator/lag_probe_cost.rs`, `make bench`), not this test's.
const BELOW_DELAY_ALLOWANCE_MS: u64 = 100;

#[tokio::test]
async fn measured_lag_is_never_below_the_injected_delay_and_grows_with_it() {
    let world = World::new(Setup::default()).await;
    const RUNS: usize = 3;
    let mut medians = Vec::new();
    for delay in [0u64, 300, 800] {
        world.emulator.set_replication_delay(delay);
        let mut per_run = Vec::new();
        for _ in 0..RUNS {
            let report = world.run().await;
            assert_eq!(report.replication.pairs.len(), 2, "{report:#?}");
            // Under the 2 s budget, within the 4 s sample timeout: measured, no breach.
            assert!(
                report.replication.pairs.iter().all(|p| p.outcome == PairOutcome::Measured && !p.breached),
                "{report:#?}"
            );
            assert!(!report.rpo_breached);
            let overall = report.replication.overall.expect("samples");
            assert_eq!(overall.samples, 6, "3 samples x 2 pairs");
            for sample in report.replication.pairs.iter().flat_map(|p| &p.samples) {
                assert!(
                    sample.lag_ms + BELOW_DELAY_ALLOWANCE_MS >= delay,
                    "injected {delay} ms, a sample measured {} ms: {sample:?}",
                    sample.lag_ms
                );
                assert!(sample.not_visible_at_ms.is_none_or(|miss| miss <= sample.lag_ms), "{sample:?}");
            }
            per_run.push(overall.p50_ms);
        }
        let measured = median(&mut per_run);
        eprintln!("injected {delay} ms: median of run p50s {measured} ms (runs: {per_run:?})");
        medians.push((delay, measured));
    }
    // More injected, more measured: 800 ms measures more than 300 ms, which measures more than 0.
    assert!(medians.windows(2).all(|w| w[0].1 < w[1].1), "medians by injected delay: {medians:?}");
}

#[tokio::test]
async fn a_delay_beyond_the_budget_is_a_breach_and_a_timeout_too() {
    let mut world = World::new(Setup { rpo_budget_ms: 300, ..Setup::default() }).await;
    // Long enough to measure an 800 ms lag whatever the machine's noise (default: 2 x budget, min 1 s).
    world.config.timeout = Some(Duration::from_millis(2_000));
    world.emulator.set_replication_delay(0);
    world.emulator.set_pair_replication_delay("us-east-1", "eu-west-1", 800);

    let report = world.run().await;

    let slow = pair(&report, "us-east-1", "eu-west-1");
    assert_eq!(slow.outcome, PairOutcome::Measured, "{slow:#?}");
    assert!(slow.breached);
    // Measured (so under the 2 s sample timeout), and not below the delay: over the 300 ms budget.
    let max = slow.stats.expect("stats").max_ms;
    assert!(max + BELOW_DELAY_ALLOWANCE_MS >= 800 && max < 2_000, "{max}");
    let fast = pair(&report, "eu-west-1", "us-east-1");
    assert!(!fast.breached && fast.outcome == PairOutcome::Measured, "{fast:#?}");
    assert!(report.rpo_breached);
    let stored = world.stored().await;
    assert!(stored.rpo_breached);
    assert_eq!(stored.rpo_budget_ms, 300);
    assert_eq!(stored.max_lag_ms, Some(max));
    // The slow pair is both Regions' pair: neither may fail back on this verdict.
    for region in ["us-east-1", "eu-west-1"] {
        let entry = &stored.regions[region];
        assert!(entry.rpo_breached && entry.pairs_measured == 2 && entry.max_lag_ms == Some(max), "{entry:?}");
        let reason = stored.failback_verdict(region, SystemClock.now_ms(), MAX_AGE_MS).expect_err("breached");
        assert!(reason.contains(&format!("{max} ms")) && reason.contains("300 ms"), "{reason}");
    }

    // Never visible within the sample timeout: a timeout is a breach too.
    world.emulator.set_pair_replication_delay("us-east-1", "eu-west-1", 5_000);
    let report = world.run().await;
    let lost = pair(&report, "us-east-1", "eu-west-1");
    assert_eq!(lost.outcome, PairOutcome::TimedOut, "{lost:#?}");
    assert!(lost.breached);
    assert_eq!(lost.skipped_samples, 2, "a pair stops at its first timeout");
    // The last read that missed it came after half the 2 s timeout (reads run until it) and before
    // the timeout: the lag is at least that, far over the budget.
    let waited = lost.waited_ms.expect("waited");
    assert!((1_000..=2_000).contains(&waited), "{lost:?}");
    let stored = world.stored().await;
    assert!(stored.rpo_breached);
    assert!(stored.max_lag_ms.is_some_and(|m| m >= waited), "the wait is the pair's lag at least: {stored:?}");
    // A timed-out pair is not measured: 1 of each Region's 2 pairs.
    for region in ["us-east-1", "eu-west-1"] {
        let entry = &stored.regions[region];
        assert!(entry.rpo_breached && entry.pairs_measured == 1 && entry.pairs_expected == 2, "{entry:?}");
        let reason = stored.failback_verdict(region, SystemClock.now_ms(), MAX_AGE_MS).expect_err("timed out");
        assert!(reason.contains("measured 1 of"), "{reason}");
    }
}

#[tokio::test]
async fn a_region_whose_apis_are_down_is_unreachable_and_the_others_are_measured() {
    let world = World::new(Setup { regions: 3, ..Setup::default() }).await;
    world.emulator.set_replication_delay(50);
    world.emulator.set_outage("ap-southeast-1", true);

    let started = Instant::now();
    let report = world.run().await;
    let elapsed = started.elapsed();

    assert_eq!(report.unreachable_regions.iter().map(|u| u.region.as_str()).collect::<Vec<_>>(), ["ap-southeast-1"]);
    assert!(report.unreachable_regions[0].error.contains("DescribeTable in ap-southeast-1"), "{report:#?}");
    for (s, d) in [("us-east-1", "eu-west-1"), ("eu-west-1", "us-east-1")] {
        let p = pair(&report, s, d);
        assert_eq!(p.outcome, PairOutcome::Measured, "{p:#?}");
        assert_eq!(p.samples.len(), 3);
    }
    let unreachable: Vec<_> =
        report.replication.pairs.iter().filter(|p| p.outcome == PairOutcome::Unreachable).collect();
    assert_eq!(unreachable.len(), 4, "every pair with ap-southeast-1");
    assert!(unreachable.iter().all(|p| p.unreachable_region.as_deref() == Some("ap-southeast-1") && !p.breached));
    assert!(!report.rpo_breached, "an unreachable Region is reported, not measured");
    let failures: Vec<_> = report.readiness.failures.iter().map(|f| (f.rule.name(), f.rule.region())).collect();
    assert_eq!(failures, [("RegionUnreachable", "ap-southeast-1")], "{:#?}", report.readiness);
    // No canary traffic to the down Region: only the discovery calls (each retried by the SDK).
    let to_down: Vec<_> = world.emulator.requests().into_iter().filter(|r| r.region == "ap-southeast-1").collect();
    assert!(to_down.iter().all(|r| r.operation != "PutItem" && r.operation != "GetItem"), "{to_down:?}");
    // Fast failures are not waited for: far less than the run budget (40 s) or a call timeout
    // (5 s) per call; typically 1-2 s (generous: the machine may be busy).
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
    let stored = world.stored().await;
    assert_eq!(stored.unreachable_regions, ["ap-southeast-1"]);
    assert_eq!(stored.readiness_failures, 1);
    let ap = &stored.regions["ap-southeast-1"];
    assert_eq!((ap.reachable, ap.pairs_measured, ap.pairs_expected, ap.ready), (false, 0, 4, false), "{ap:?}");
    assert!(ap.readiness_failures.iter().any(|f| f.contains("active but unreachable")), "{ap:?}");
    // The others answered and are ready, but only their pair with each other was measured.
    for region in ["us-east-1", "eu-west-1"] {
        let entry = &stored.regions[region];
        assert_eq!((entry.reachable, entry.pairs_measured, entry.pairs_expected, entry.ready), (true, 2, 4, true));
    }
    let now = SystemClock.now_ms();
    let reason = stored.failback_verdict("ap-southeast-1", now, MAX_AGE_MS).expect_err("down");
    assert!(reason.contains("could not reach ap-southeast-1"), "{reason}");
    eprintln!("run with a Region down: {elapsed:?}, {} canary calls", report.replication.calls);
}

#[tokio::test]
async fn readiness_names_each_failed_rule_with_its_region_and_numbers() {
    let world = World::new(Setup { regions: 2, aurora: true, max_size: 10, ..Setup::default() }).await;
    let home = world.clients.region(HOME).expect("home");
    // A third Region joins the table slowly (CREATING), with a group too small to take its share,
    // and its Aurora cluster detached from the global cluster.
    world.emulator.set_timing(60_000, 100, 200);
    let ap = world.clients.region("ap-southeast-1").expect("ap");
    create_group(&ap.autoscaling, "ap-southeast-1", GroupSizes::new(1, 2, 2)).await;
    create_aurora_member(&world, "ap-southeast-1").await;
    ap.rds
        .remove_from_global_cluster()
        .global_cluster_identifier(&world.global_id)
        .db_cluster_identifier(arn("ap-southeast-1"))
        .send()
        .await
        .expect("detach");
    request_replica(&world.clients.region("us-east-1").expect("us").dynamodb, &world.table, "ap-southeast-1").await;
    let hc_ap = home
        .route53
        .create_health_check()
        .caller_reference(unique_name("ap"))
        .health_check_config(
            HealthCheckConfig::builder()
                .r#type(HealthCheckType::Https)
                .fully_qualified_domain_name("ap.app.example.com")
                .port(443)
                .build()
                .expect("config"),
        )
        .send()
        .await
        .expect("health check")
        .health_check
        .map(|h| h.id)
        .expect("id");
    let mut topology = serde_json::to_value(&world.topology).expect("json");
    topology["cells"].as_array_mut().expect("cells").push(json!({"region": "ap-southeast-1", "health_check_id": hc_ap,
        "auto_scaling_group": "web-ap-southeast-1", "aurora_cluster_arn": arn("ap-southeast-1"),
        "alarms": ["web-ap-southeast-1-unhealthy"]}));
    let topology = Topology::from_json(&topology.to_string()).expect("topology");
    // us-east-1's health check is inverted while the ledger says it is active.
    let us_hc = &topology.cell("us-east-1").expect("cell").health_check_id;
    home.route53.update_health_check().health_check_id(us_hc).inverted(true).send().await.expect("invert");

    // A changed topology is a changed stack: its role is rendered for it.
    let clients = function_clients(&world.emulator, &topology, Function::LagProbe, HOME).await;
    let deps = Deps { topology: &topology, clients: &clients, ..world.deps() };
    let report = lag_probe::handle(event(), &deps).await.expect("run");

    let failures: Vec<(&str, &str)> =
        report.readiness.failures.iter().map(|f| (f.rule.name(), f.rule.region())).collect();
    assert!(failures.contains(&("AsgMaxSizeTooSmall", "ap-southeast-1")), "{failures:?}");
    assert!(failures.contains(&("ReplicaNotActive", "ap-southeast-1")), "{failures:?}");
    assert!(failures.contains(&("AuroraMemberDetached", "ap-southeast-1")), "{failures:?}");
    assert!(failures.contains(&("HealthCheckUnexpected", "us-east-1")), "{failures:?}");
    assert_eq!(failures.len(), 4, "{:#?}", report.readiness.failures);
    let asg = report.readiness.failures.iter().find(|f| f.rule.name() == "AsgMaxSizeTooSmall").expect("asg");
    // 3 Regions x desired 2 = 6 over 2 survivors: each needs MaxSize >= 3; ap-southeast-1 has 2.
    assert!(
        matches!(asg.rule, Rule::AsgMaxSizeTooSmall { max_size: 2, required: 3, total_desired: 6, survivors: 2, .. }),
        "{asg:?}"
    );
    assert!(asg.message.contains("ap-southeast-1") && asg.message.contains("MaxSize 2"), "{}", asg.message);
    let replica = report.readiness.failures.iter().find(|f| f.rule.name() == "ReplicaNotActive").expect("replica");
    assert!(replica.message.contains("CREATING"), "{}", replica.message);
    // Pairs with the CREATING replica cannot be measured: nothing vouches for their RPO.
    let p = pair(&report, "us-east-1", "ap-southeast-1");
    assert_eq!(p.outcome, PairOutcome::Failed, "{p:#?}");
    assert!(p.error.as_deref().unwrap_or_default().contains("CREATING"), "{p:?}");
    assert!(report.rpo_breached);
    assert_eq!(pair(&report, "us-east-1", "eu-west-1").outcome, PairOutcome::Measured);
    // Each Region's entry carries the rules about it, and only those.
    let stored = world.stored().await;
    let ap = &stored.regions["ap-southeast-1"];
    assert!(ap.reachable && !ap.ready && ap.pairs_measured == 0, "{ap:?}");
    for failure in report.readiness.failures.iter().filter(|f| f.rule.region() == "ap-southeast-1") {
        assert!(
            ap.readiness_failures.contains(&failure.message),
            "{:?} lacks {}",
            ap.readiness_failures,
            failure.message
        );
    }
    let us = &stored.regions["us-east-1"];
    assert!(!us.ready && us.readiness_failures.iter().all(|f| f.contains("health check")), "{us:?}");
    let eu = &stored.regions["eu-west-1"];
    assert!(eu.ready && eu.readiness_failures.is_empty(), "{eu:?}");
    // Its pairs with ap-southeast-1 could not be measured, which the verdict says first.
    let reason = stored.failback_verdict("us-east-1", SystemClock.now_ms(), MAX_AGE_MS).expect_err("unready");
    assert!(reason.contains("measured 2 of us-east-1's 4"), "{reason}");
    let json = serde_json::to_value(&report).expect("json");
    assert!(
        json["readiness"]["failures"]
            .as_array()
            .is_some_and(|f| f.iter().all(|f| f["rule"].is_string() && f["message"].is_string()))
    );
}

#[tokio::test]
async fn an_evacuated_region_that_answers_is_measured_for_its_failback() {
    let mut world = World::new(Setup { regions: 3, rpo_budget_ms: 500, ..Setup::default() }).await;
    world.config.timeout = Some(Duration::from_millis(2_000));
    world.emulator.set_replication_delay(0);
    world.evacuate("us-east-1").await;

    // While it is down: reported unreachable, not measured, and its failback stays closed; the
    // rules for active Regions do not hold it (no RegionUnreachable), the fleet is fine.
    world.emulator.set_outage("us-east-1", true);
    world.emulator.clear_requests();
    let report = world.run().await;
    assert_eq!(report.active_regions, ["eu-west-1", "ap-southeast-1"]);
    assert_eq!(report.evacuated_regions, ["us-east-1"]);
    assert_eq!(report.unreachable_regions.iter().map(|u| u.region.as_str()).collect::<Vec<_>>(), ["us-east-1"]);
    let with_us: Vec<_> = report.replication.pairs.iter().filter(|p| p.involves("us-east-1")).collect();
    assert!(with_us.len() == 4 && with_us.iter().all(|p| p.outcome == PairOutcome::Unreachable), "{with_us:#?}");
    assert!(!report.rpo_breached && report.readiness.ok, "{report:#?}");
    let requests = world.emulator.requests();
    assert!(
        !requests.iter().any(|r| r.region == "us-east-1" && (r.operation == "PutItem" || r.operation == "GetItem")),
        "no canary to a Region that is down: {requests:?}"
    );
    let stored = world.stored().await;
    let us = &stored.regions["us-east-1"];
    assert_eq!((us.reachable, us.pairs_measured, us.pairs_expected, us.ready), (false, 0, 4, false), "{us:?}");
    let reason = stored.failback_verdict("us-east-1", SystemClock.now_ms(), MAX_AGE_MS).expect_err("down");
    assert!(reason.contains("could not reach us-east-1"), "{reason}");

    // Back: its four pairs are measured (the fleet's figures stay the active pairs'), it is ready
    // (replica ACTIVE, group able to take its share, health check as failover left it), and the
    // verdict lets it fail back.
    world.emulator.set_outage("us-east-1", false);
    let report = world.run().await;
    assert!(report.unreachable_regions.is_empty(), "{:?}", report.unreachable_regions);
    assert_eq!(report.replication.pairs.len(), 6);
    for p in report.replication.pairs.iter().filter(|p| p.involves("us-east-1")) {
        assert!(p.outcome == PairOutcome::Measured && p.samples.len() == 3 && !p.breached, "{p:#?}");
    }
    assert_eq!(report.replication.overall.expect("samples").samples, 6, "3 samples x the 2 active pairs");
    assert!(report.readiness.ok && report.readiness.failback_failures.is_empty(), "{:#?}", report.readiness);
    let stored = world.stored().await;
    assert_eq!(stored, report.summary());
    let us = &stored.regions["us-east-1"];
    assert_eq!((us.reachable, us.pairs_measured, us.pairs_expected, us.ready), (true, 4, 4, true), "{us:?}");
    assert!(!us.rpo_breached && us.max_lag_ms.is_some(), "{us:?}");
    assert_eq!(stored.failback_verdict("us-east-1", SystemClock.now_ms(), MAX_AGE_MS), Ok(()));
    // ... until the verdict is too old.
    let later = stored.measured_at_ms + MAX_AGE_MS + 1;
    assert!(stored.failback_verdict("us-east-1", later, MAX_AGE_MS).is_err_and(|r| r.contains("fresh")));

    // Catching up slowly: its own entry is breached and keeps it out; the serving fleet is not.
    world.emulator.set_pair_replication_delay("us-east-1", "eu-west-1", 900);
    let report = world.run().await;
    assert!(pair(&report, "us-east-1", "eu-west-1").breached);
    assert!(!report.rpo_breached, "the active pairs are within the budget: {report:#?}");
    let stored = world.stored().await;
    assert!(stored.regions["us-east-1"].rpo_breached && !stored.regions["ap-southeast-1"].rpo_breached);
    let reason = stored.failback_verdict("us-east-1", SystemClock.now_ms(), MAX_AGE_MS).expect_err("slow");
    assert!(reason.contains("RPO budget of 500 ms"), "{reason}");
}

fn arn(region: &str) -> String {
    format!("arn:aws:rds:{region}:123456789012:cluster:{}", aurora_member(region))
}

async fn create_aurora_member(world: &World, region: &str) {
    let rds = &world.clients.region(region).expect("region").rds;
    rds.create_db_cluster()
        .db_cluster_identifier(aurora_member(region))
        .engine("aurora-postgresql")
        .engine_version("15.4")
        .global_cluster_identifier(&world.global_id)
        .send()
        .await
        .expect("member");
}

#[tokio::test]
async fn aurora_members_writer_failover_and_lag_metrics_are_reported_with_what_could_not_be_read() {
    let world = World::new(Setup { regions: 3, aurora: true, ..Setup::default() }).await;
    // eu-west-1's lag metrics are published (as RDS does, in the secondary's Region); CloudWatch
    // of ap-southeast-1 is down, and the report must say what could not be read.
    let now_s = (SystemClock.now_ms() / 1000) as i64;
    for (name, value) in [("AuroraGlobalDBReplicationLag", 42.0), ("AuroraGlobalDBRPOLag", 850.0)] {
        world
            .clients
            .region("eu-west-1")
            .expect("eu")
            .cloudwatch
            .put_metric_data()
            .namespace("AWS/RDS")
            .metric_data(
                aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name(name)
                    .dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name("DBClusterIdentifier")
                            .value("sessions-eu-west-1")
                            .build(),
                    )
                    .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(now_s - 30))
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .expect("put lag metric");
    }
    world.emulator.set_service_outage("ap-southeast-1", &["monitoring"], true);
    // A failover in progress.
    world.emulator.set_timing(100, 100, 30_000);
    world
        .clients
        .region("eu-west-1")
        .expect("eu")
        .rds
        .failover_global_cluster()
        .global_cluster_identifier(&world.global_id)
        .target_db_cluster_identifier(arn("eu-west-1"))
        .allow_data_loss(true)
        .send()
        .await
        .expect("failover");

    let report = world.run().await;

    let aurora = report.aurora.as_ref().expect("aurora section");
    assert_eq!(aurora.read_from.as_deref(), Some(HOME));
    assert_eq!(aurora.writer_region.as_deref(), Some("us-east-1"));
    let cluster = aurora.cluster.as_ref().expect("cluster");
    assert_eq!(cluster.members.len(), 3);
    let failover = cluster.failover.as_ref().expect("failover in progress");
    assert_eq!(failover.status, "failing-over");
    assert_eq!(failover.to_cluster_arn.as_deref(), Some(arn("eu-west-1").as_str()));
    let regions: Vec<&str> = aurora.lag.iter().map(|l| l.region.as_str()).collect();
    assert_eq!(regions, ["eu-west-1", "ap-southeast-1"], "secondaries only: the writer has no lag metric");
    let eu = &aurora.lag[0];
    assert_eq!((eu.replication_lag_ms, eu.rpo_lag_ms), (Some(42.0), Some(850.0)), "{eu:?}");
    let ap = &aurora.lag[1];
    assert_eq!((ap.replication_lag_ms, ap.rpo_lag_ms), (None, None), "{ap:?}");
    assert!(
        aurora.unreadable.iter().any(|u| u.contains("the lag metrics of sessions-ap-southeast-1 could not be read")
            && u.contains("GetMetricData in ap-southeast-1")),
        "{:?}",
        aurora.unreadable
    );
    assert!(!aurora.unreadable.iter().any(|u| u.contains("sessions-eu-west-1")), "{:?}", aurora.unreadable);
    assert!(report.readiness.ok, "{:#?}", report.readiness);
}

#[tokio::test]
async fn canary_items_never_collide_with_application_keys_and_expire() {
    let world = World::new(Setup::default()).await;
    world.emulator.set_replication_delay(0);
    let us = world.ddb("us-east-1");
    for i in 0..5 {
        put_value(us, &world.table, &format!("user#{i}"), &format!("v{i}")).await;
    }

    let first = world.run().await;
    let second = world.run().await;

    for report in [&first, &second] {
        assert!(report.replication.pairs.iter().all(|p| p.outcome == PairOutcome::Measured), "{report:#?}");
        assert!(report.replication.pairs.iter().all(|p| p.ttl_attribute.as_deref() == Some("ttl_epoch")));
    }
    let now_s = shared::clock::Clock::now_ms(&SystemClock) / 1000;
    for region in ["us-east-1", "eu-west-1"] {
        let items = world.scan(region).await;
        let (canaries, app): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|item| item.get("pk").and_then(|v| v.as_s().ok()).is_some_and(|pk| canary::is_canary_key(pk)));
        assert_eq!(app.len(), 5, "application items untouched in {region}");
        for item in &app {
            let pk = item["pk"].as_s().expect("pk");
            let i = pk.trim_start_matches("user#");
            assert_eq!(item["value"].as_s().expect("value"), &format!("v{i}"));
        }
        // One canary per ordered pair (and prober), overwritten by every sample and run.
        assert_eq!(canaries.len(), 2, "{canaries:?}");
        for c in &canaries {
            assert!(c["pk"].as_s().expect("pk").starts_with(CANARY_PREFIX));
            let expires: u64 = c["ttl_epoch"].as_n().expect("TTL attribute").parse().expect("epoch seconds");
            assert!((now_s + 3500..=now_s + 3700).contains(&expires), "expires at {expires}, now {now_s}");
            assert!(c.contains_key(canary::SEQ_ATTRIBUTE));
        }
    }
}

#[tokio::test]
async fn canaries_follow_a_composite_key_schema_and_a_table_without_ttl_is_noted() {
    let world = World::new(Setup { ttl_attribute: None, ..Setup::default() }).await;
    // A second global table keyed by (tenant S, ts N), no TTL.
    let table = unique_name("events");
    let us = world.ddb("us-east-1");
    us.create_table()
        .table_name(&table)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("tenant")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .expect("a"),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("ts")
                .attribute_type(ScalarAttributeType::N)
                .build()
                .expect("a"),
        )
        .key_schema(KeySchemaElement::builder().attribute_name("tenant").key_type(KeyType::Hash).build().expect("k"))
        .key_schema(KeySchemaElement::builder().attribute_name("ts").key_type(KeyType::Range).build().expect("k"))
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .expect("create");
    request_replica(us, &table, "eu-west-1").await;
    wait_replicas_active(us, &table, &["eu-west-1"]).await;
    let mut topology = world.topology.clone();
    topology.global_table = table.clone();
    // A changed topology is a changed stack: its role is rendered for it.
    let clients = function_clients(&world.emulator, &topology, Function::LagProbe, HOME).await;
    let deps = Deps { topology: &topology, clients: &clients, ..world.deps() };

    let report = lag_probe::handle(event(), &deps).await.expect("run");

    assert!(report.replication.pairs.iter().all(|p| p.outcome == PairOutcome::Measured), "{report:#?}");
    assert!(report.notes.iter().any(|n| n.contains("TTL is not enabled")), "{:?}", report.notes);
    let items = world.ddb("eu-west-1").scan().table_name(&table).send().await.expect("scan").items.unwrap_or_default();
    assert_eq!(items.len(), 2);
    for item in &items {
        assert!(item["tenant"].as_s().expect("tenant").starts_with(CANARY_PREFIX));
        assert_eq!(item["ts"], AttributeValue::N("0".into()));
        assert!(item.contains_key(canary::DEFAULT_TTL_ATTRIBUTE));
    }
}

#[tokio::test]
async fn the_result_is_stored_for_the_failback_gate_and_as_a_full_report() {
    let world = World::new(Setup::default()).await;
    world.emulator.set_replication_delay(100);

    let report = world.run().await;

    let stored = world.ledger().latest_probe().await.expect("ledger").expect("summary");
    let summary: ProbeSummary = stored.body;
    assert_eq!(summary, report.summary());
    assert!(!summary.rpo_breached);
    assert_eq!(summary.max_lag_ms, report.replication.overall.map(|s| s.max_ms));
    for region in ["us-east-1", "eu-west-1"] {
        assert_eq!(
            summary.regions[region],
            RegionProbe {
                reachable: true,
                pairs_measured: 2,
                pairs_expected: 2,
                max_lag_ms: summary.max_lag_ms,
                rpo_breached: false,
                ready: true,
                readiness_failures: vec![],
            }
        );
        assert_eq!(summary.failback_verdict(region, SystemClock.now_ms(), MAX_AGE_MS), Ok(()));
    }
    let full =
        world.ledger().get::<Value>(ledger::PROBE_PK, ledger::PROBE_REPORT_SK).await.expect("ledger").expect("report");
    assert_eq!(full.body, serde_json::to_value(&report).expect("json"));
    assert_eq!(full.body["replication"]["pairs"].as_array().map(Vec::len), Some(2));
    // Calls: per pair 3 samples x (1 PutItem + reads), bounded by the schedule.
    for p in &report.replication.pairs {
        let bound = 3 * (1 + report.replication.max_reads_per_sample);
        assert!(p.calls >= 6 && p.calls <= bound, "{} calls, bound {bound}", p.calls);
    }
    // Every call of the run: per Region DescribeTable, DescribeTimeToLive, DescribeAutoScalingGroups;
    // a GetHealthCheck per cell; the ledger's fleet GetItem and two PutItems; the canaries.
    let requests = world.emulator.requests();
    let count = |op: &str| requests.iter().filter(|r| r.operation == op).count();
    assert_eq!(count("DescribeTable"), 2);
    assert_eq!(count("DescribeTimeToLive"), 2);
    assert_eq!(count("DescribeAutoScalingGroups"), 2);
    assert_eq!(count("GetHealthCheck"), 2, "one per cell: readiness and the RTO bound share it");
    // The RTO bound: DescribeAlarms in each Region an alarm lives in, the latency records, and
    // the newest transitions of each Region.
    assert_eq!(count("DescribeAlarms"), 2);
    assert_eq!(count("ListResourceRecordSets"), 1);
    assert_eq!(count("Query"), 2);
    // `calls` counts the canary calls started; a read still in flight when another one saw the
    // canary is abandoned and may never reach DynamoDB. (The SDK may also repeat a call whose
    // connection the emulator closed: allow a few.)
    let data_calls = count("PutItem") + count("GetItem");
    let started = report.replication.calls as usize + 3;
    assert!(data_calls >= 2 * 3 * 2 + 3, "at least a write and a read per sample: {data_calls}");
    assert!(data_calls <= started + 3, "{data_calls} served vs {started} started: {requests:?}");
    assert_eq!(requests.len() - data_calls, 13, "{requests:?}");
}

fn region_metric(report: &ProbeReport, region: &str, name: &str) -> Option<f64> {
    report.metric_sets().iter().flat_map(|set| set.to_documents(0)).find_map(|doc| {
        let dimensions = &doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0];
        (dimensions == &json!(["Function", "Region"]) && doc["Region"] == region).then(|| doc[name].as_f64()).flatten()
    })
}

fn rto_of<'a>(report: &'a ProbeReport, region: &str) -> &'a lag_probe::rto::RtoBound {
    report.readiness.rto.iter().find(|b| b.region == region).unwrap_or_else(|| panic!("no RTO bound for {region}"))
}

/// Records a transition of `region` as failover does (its sort key starts with the alarm
/// change's time), acted on `took_ms` after the change.
async fn record_transition(world: &World, region: &str, to: &str, changed_at_ms: u64, took_ms: u64) {
    let sk = format!("{}#{to}", shared::alarm::format_alarm_time(changed_at_ms));
    let body = json!({"region": region, "to": to, "alarm": format!("web-{region}-unhealthy"), "change_id": "test",
        "recorded_at_ms": changed_at_ms + took_ms, "steps": []});
    world
        .ledger()
        .put(&ledger::transition_pk(region), &sk, &body, 1, changed_at_ms + took_ms)
        .await
        .expect("transition");
}

#[tokio::test]
async fn the_rto_bound_sums_the_alarm_health_check_ttl_and_latest_evacuation_against_the_objective() {
    let world = World::new(Setup::default()).await;
    // The deployment: alarms of 60 s x 1 period on health checks of 10 s x 1, records of TTL 60;
    // no evacuation yet, so the bound is a lower bound without the orchestration.
    let report = world.run().await;
    for region in ["us-east-1", "eu-west-1"] {
        let bound = rto_of(&report, region);
        assert_eq!(
            (bound.terms.alarm_seconds, bound.terms.health_check_seconds, bound.terms.record_ttl_seconds),
            (Some(60), Some(10), Some(60)),
            "{bound:#?}"
        );
        assert_eq!((bound.bound_seconds, bound.lower_bound, bound.exceeds_objective), (Some(130.0), true, false));
        assert_eq!(bound.objective_seconds, 300);
        assert_eq!(region_metric(&report, region, "RtoBoundSeconds"), Some(130.0));
        assert_eq!(region_metric(&report, region, "RtoObjectiveExceeded"), Some(0.0));
    }
    assert!(report.readiness.ok, "{:#?}", report.readiness);

    // Evacuations in the ledger: the newest one counts (1.5 s), not an older slower one, nor a
    // failback recorded after it.
    let now = SystemClock.now_ms();
    record_transition(&world, "eu-west-1", "Evacuated", now - 600_000, 9_000).await;
    record_transition(&world, "us-east-1", "Evacuated", now - 60_000, 1_500).await;
    record_transition(&world, "us-east-1", "Active", now - 30_000, 700).await;
    // us-east-1's alarm (in eu-west-1) now needs 5 periods: 300 + 10 + 60 + 1.5 s > 300 s.
    let cloudwatch = &world.clients.region("eu-west-1").expect("eu").cloudwatch;
    let check = &world.endpoint_checks["us-east-1"];
    cloudwatch
        .put_metric_alarm()
        .alarm_name("web-us-east-1-unhealthy")
        .namespace("AWS/Route53")
        .metric_name("HealthCheckStatus")
        .dimensions(aws_sdk_cloudwatch::types::Dimension::builder().name("HealthCheckId").value(check).build())
        .statistic(aws_sdk_cloudwatch::types::Statistic::Minimum)
        .period(60)
        .evaluation_periods(5)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::LessThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    let report = world.run().await;
    let us = rto_of(&report, "us-east-1");
    assert_eq!(us.terms.orchestration_seconds, Some(1.5), "{us:#?}");
    assert_eq!((us.bound_seconds, us.lower_bound, us.exceeds_objective), (Some(371.5), false, true), "{us:#?}");
    assert_eq!(region_metric(&report, "us-east-1", "RtoObjectiveExceeded"), Some(1.0));
    let eu = rto_of(&report, "eu-west-1");
    assert_eq!((eu.bound_seconds, eu.exceeds_objective), (Some(131.5), false), "{eu:#?}");
    assert_eq!(run_metric(&report, "RtoObjectiveExceeded"), Some(1.0), "one Region above the objective");
    assert!(report.readiness.ok, "a slow worst case does not make the fleet unready: {:#?}", report.readiness);

    // A term that cannot be read leaves the bound unknown, says why, and fails nothing.
    world
        .clients
        .region("us-east-1")
        .expect("us")
        .cloudwatch
        .delete_alarms()
        .alarm_names("web-eu-west-1-unhealthy")
        .send()
        .await
        .expect("DeleteAlarms");
    let report = world.run().await;
    let eu = rto_of(&report, "eu-west-1");
    assert_eq!(eu.bound_seconds, None, "{eu:#?}");
    assert!(eu.notes.iter().any(|n| n.contains("no metric alarm web-eu-west-1-unhealthy")), "{eu:#?}");
    assert_eq!(region_metric(&report, "eu-west-1", "RtoBoundSeconds"), None);
    assert!(report.readiness.ok && report.readiness.not_checked.is_empty(), "{:#?}", report.readiness);
    // It ran as lag-probe's role: nothing was denied.
    assert!(world.emulator.requests().iter().all(|r| r.denied.is_none()), "{:?}", world.emulator.requests());
}

#[tokio::test]
async fn malformed_events_and_a_home_region_outside_the_topology_are_clear_errors_without_aws_calls() {
    let world = World::new(Setup::default()).await;
    for payload in [json!({}), json!("tick"), json!({"detail-type": "Scheduled Event", "source": "aws.events"})] {
        let err = lag_probe::handle(payload.clone(), &world.deps()).await.expect_err("malformed");
        assert_eq!(err.error_type(), "InvalidEvent", "{payload}: {err}");
    }
    let deps = Deps { home_region: "sa-east-1", ..world.deps() };
    let err = lag_probe::handle(event(), &deps).await.expect_err("home not in topology");
    assert_eq!(err.error_type(), "UnknownRegion");
    assert!(err.to_string().contains("sa-east-1"), "{err}");
    assert!(world.emulator.requests().is_empty(), "{:?}", world.emulator.requests());

    // A bad topology is rejected at cold start, naming the field.
    let mut bad = serde_json::to_value(&world.topology).expect("json");
    bad["rpo_budget_ms"] = json!(0);
    let err =
        Topology::from_lookup(|k| (k == shared::topology::TOPOLOGY_ENV).then(|| bad.to_string())).expect_err("invalid");
    assert!(err.to_string().contains("rpo_budget_ms"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The ARC routing backend: lag-probe reads the routing controls from every cluster endpoint and
// no Route 53 health check.
// ---------------------------------------------------------------------------------------------

fn routing_of(report: &ProbeReport) -> &RoutingReport {
    report.routing.as_ref().unwrap_or_else(|| panic!("a routing report with the ARC backend: {report:#?}"))
}

/// The value of one of the run's EMF metrics (dimension `Function` only).
fn run_metric(report: &ProbeReport, name: &str) -> Option<f64> {
    report.metric_sets().iter().flat_map(|set| set.to_documents(0)).find_map(|doc| {
        let dimensions = &doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0];
        (dimensions == &json!(["Function"])).then(|| doc[name].as_f64()).flatten()
    })
}

fn failed_rules(report: &ProbeReport) -> Vec<(&str, &str)> {
    report.readiness.failures.iter().map(|f| (f.rule.name(), f.rule.region())).collect()
}

#[tokio::test]
async fn with_arc_a_healthy_world_reports_every_control_on_every_endpoint_answering_and_calls_no_route53() {
    let world = World::new(Setup { regions: 3, arc: true, ..Setup::default() }).await;
    world.emulator.set_replication_delay(0);

    let report = world.run().await;

    let routing = routing_of(&report);
    let controls: Vec<(&str, Option<&str>)> =
        routing.routing_controls.iter().map(|(region, state)| (region.as_str(), *state)).collect();
    assert_eq!(controls, [("ap-southeast-1", Some("On")), ("eu-west-1", Some("On")), ("us-east-1", Some("On"))]);
    let endpoint_regions: Vec<&str> = world.arc().cluster_endpoints.iter().map(|e| e.region.as_str()).collect();
    assert_eq!(endpoint_regions.len(), 5, "an ARC cluster has five endpoints");
    assert_eq!(routing.endpoints.iter().map(|e| e.region.as_str()).collect::<Vec<_>>(), endpoint_regions);
    assert!(routing.endpoints.iter().all(|e| e.answered && e.error.is_none()), "{routing:#?}");
    assert_eq!(routing.endpoints_answering, 5);
    assert!(report.readiness.ok && report.readiness.failures.is_empty(), "{:#?}", report.readiness);
    assert!(report.readiness.not_checked.is_empty(), "{:#?}", report.readiness.not_checked);
    assert_eq!(run_metric(&report, "ArcEndpointsAnswering"), Some(5.0));
    assert!(report.replication.pairs.iter().all(|p| p.outcome == PairOutcome::Measured), "{report:#?}");

    // The calls: each endpoint asked once (ListRoutingControls, as lag-probe's role, allowed), and
    // no Route 53 call about routing (the records' health checks follow the controls): only the
    // RTO bound's reads of configuration, the latency records and the endpoint checks the alarms
    // watch (not the cells' RECOVERY_CONTROL checks).
    let requests = world.emulator.requests();
    let by_function = |r: &&multisite_tests::RequestRecord| r.principal.as_deref() != Some("admin");
    let route53: Vec<_> = requests.iter().filter(by_function).filter(|r| r.service == "route53").collect();
    let operations: Vec<&str> = route53.iter().map(|r| r.operation.as_str()).collect();
    assert_eq!(operations.iter().filter(|o| **o == "ListResourceRecordSets").count(), 1, "{route53:?}");
    assert_eq!(operations.iter().filter(|o| **o == "GetHealthCheck").count(), 3, "{route53:?}");
    assert_eq!(operations.len(), 4, "no other Route 53 call: {route53:?}");
    for bound in &report.readiness.rto {
        let note = &bound.notes[0];
        let endpoint_check = &world.endpoint_checks[&bound.region];
        assert!(note.contains(&format!("on health check {endpoint_check}")), "{note}");
        let cell_check = &world.topology.cell(&bound.region).expect("cell").health_check_id;
        assert_ne!(endpoint_check, cell_check, "the cell's check is the RECOVERY_CONTROL one");
    }
    let lists: Vec<_> = requests.iter().filter(|r| r.operation == "ListRoutingControls").collect();
    let mut asked: Vec<&str> = lists.iter().map(|r| r.region.as_str()).collect();
    asked.sort_unstable();
    let mut expected = endpoint_regions.clone();
    expected.sort_unstable();
    assert_eq!(asked, expected, "one ListRoutingControls per endpoint: {lists:?}");
    assert!(
        lists.iter().all(|r| r.status == 200 && r.principal.as_deref().is_some_and(|p| p.contains("LagProbe"))),
        "signed by lag-probe's role and answered: {lists:?}"
    );
    assert!(requests.iter().all(|r| r.denied.is_none()), "no call denied: {requests:?}");

    // The report as returned and stored: `routing` with each cell's state and each endpoint.
    let expected_routing = json!({
        "routing_controls": {"ap-southeast-1": "On", "eu-west-1": "On", "us-east-1": "On"},
        "endpoints": endpoint_regions.iter().map(|r| json!({"region": r, "answered": true})).collect::<Vec<_>>(),
        "endpoints_answering": 5
    });
    assert_eq!(serde_json::to_value(&report).expect("json")["routing"], expected_routing);
    let full =
        world.ledger().get::<Value>(ledger::PROBE_PK, ledger::PROBE_REPORT_SK).await.expect("ledger").expect("report");
    assert_eq!(full.body["routing"], expected_routing);
    let stored = world.stored().await;
    for region in &REGIONS {
        let entry = &stored.regions[*region];
        assert!(entry.ready && entry.readiness_failures.is_empty(), "{region}: {entry:?}");
    }
}

#[tokio::test]
async fn with_arc_an_endpoint_that_does_not_answer_is_named_and_a_control_off_for_an_active_region_fails_readiness() {
    let world = World::new(Setup { regions: 3, arc: true, ..Setup::default() }).await;
    world.emulator.set_replication_delay(0);
    let arc = world.arc().clone();
    // An operator turns us-east-1's control Off by hand (the rule keeps at least 1 On: allowed);
    // the ledger still says us-east-1 is Active. The prober's own, nearest endpoint is down.
    assert!(multisite_tests::arc::set(&world.emulator, &arc, "us-east-1", false).await);
    multisite_tests::arc::set_endpoint_down(&world.emulator, HOME, true, "unavailable");

    let report = world.run().await;

    let routing = routing_of(&report);
    assert_eq!(routing.endpoints_answering, 4, "{routing:#?}");
    let silent: Vec<_> = routing.endpoints.iter().filter(|e| !e.answered).collect();
    assert_eq!(silent.iter().map(|e| e.region.as_str()).collect::<Vec<_>>(), [HOME], "{routing:#?}");
    let error = silent[0].error.as_deref().unwrap_or_default();
    assert!(
        error.starts_with(
            "ListRoutingControls in eu-west-1 failed (unavailable, EndpointTemporarilyUnavailableException)"
        ),
        "{error}"
    );
    assert!(routing.endpoints.iter().filter(|e| e.answered).all(|e| e.error.is_none()), "{routing:#?}");
    let controls: Vec<(&str, Option<&str>)> =
        routing.routing_controls.iter().map(|(region, state)| (region.as_str(), *state)).collect();
    assert_eq!(controls, [("ap-southeast-1", Some("On")), ("eu-west-1", Some("On")), ("us-east-1", Some("Off"))]);
    assert_eq!(run_metric(&report, "ArcEndpointsAnswering"), Some(4.0));
    // The endpoint that did not answer is reported, not a failure: one endpoint is enough.
    assert_eq!(failed_rules(&report), [("RoutingControlUnexpected", "us-east-1")], "{:#?}", report.readiness);
    assert!(!report.readiness.ok);
    let failure = &report.readiness.failures[0];
    assert_eq!(
        failure.rule,
        Rule::RoutingControlUnexpected {
            region: "us-east-1".into(),
            routing_control_arn: arc.routing_controls["us-east-1"].clone(),
            on: false,
            ledger_status: RegionStatus::Active,
        }
    );
    assert!(
        failure.message.contains(&arc.routing_controls["us-east-1"])
            && failure.message.contains("is Off but the ledger says the Region is Active (expected On)"),
        "{}",
        failure.message
    );
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["routing"]["routing_controls"]["us-east-1"], "Off");
    let down = json["routing"]["endpoints"].as_array().and_then(|e| e.iter().find(|e| e["region"] == HOME)).cloned();
    assert!(down.is_some_and(|e| e["answered"] == false && e["error"].is_string()), "{}", json["routing"]);
    // us-east-1's own entry carries the rule; the others are ready.
    let stored = world.stored().await;
    let us = &stored.regions["us-east-1"];
    assert!(!us.ready && us.readiness_failures == [failure.message.clone()], "{us:?}");
    for region in ["eu-west-1", "ap-southeast-1"] {
        assert!(stored.regions[region].ready, "{region}: {:?}", stored.regions[region]);
    }

    // Once the ledger says us-east-1 is Evacuated (as failover leaves it), Off is what it implies.
    world.record_evacuated("us-east-1").await;
    let report = world.run().await;
    assert_eq!(report.evacuated_regions, ["us-east-1"]);
    assert_eq!(routing_of(&report).routing_controls["us-east-1"], Some("Off"));
    assert!(report.readiness.ok && report.readiness.failures.is_empty(), "{:#?}", report.readiness);
    assert!(report.readiness.failback_failures.is_empty(), "{:#?}", report.readiness);
}

#[tokio::test]
async fn with_arc_no_endpoint_answering_is_arc_cluster_unreachable_in_the_probers_region() {
    let world = World::new(Setup { arc: true, ..Setup::default() }).await;
    world.emulator.set_replication_delay(0);
    // Four endpoints refuse at once, the fifth holds the call: each is waited for at most its
    // deadline (shared::arc::ENDPOINT_TIMEOUT), all at the same time.
    let endpoints: Vec<String> = world.arc().cluster_endpoints.iter().map(|e| e.region.clone()).collect();
    for (i, region) in endpoints.iter().enumerate() {
        let mode = if i == 0 { "timeout" } else { "unavailable" };
        multisite_tests::arc::set_endpoint_down(&world.emulator, region, true, mode);
    }

    let started = Instant::now();
    let report = world.run().await;
    let elapsed = started.elapsed();

    let routing = routing_of(&report);
    assert_eq!(routing.endpoints_answering, 0, "{routing:#?}");
    assert_eq!(routing.endpoints.len(), 5);
    assert!(routing.endpoints.iter().all(|e| !e.answered && e.error.is_some()), "{routing:#?}");
    assert!(routing.routing_controls.values().all(Option::is_none), "nothing read: {routing:#?}");
    assert_eq!(routing.routing_controls.len(), 2);
    assert_eq!(run_metric(&report, "ArcEndpointsAnswering"), Some(0.0));
    assert_eq!(failed_rules(&report), [("ArcClusterUnreachable", HOME)], "{:#?}", report.readiness);
    assert!(!report.readiness.ok);
    let message = &report.readiness.failures[0].message;
    assert!(message.starts_with("no endpoint of the ARC cluster answered from eu-west-1"), "{message}");
    assert!(endpoints.iter().all(|region| message.contains(region.as_str())), "names every endpoint: {message}");
    assert!(
        elapsed < shared::arc::ENDPOINT_TIMEOUT + Duration::from_secs(8),
        "the held endpoint cost one deadline at most: {elapsed:?}"
    );
    // The replication is still measured; the prober's Region is not ready.
    assert!(report.replication.pairs.iter().all(|p| p.outcome == PairOutcome::Measured), "{report:#?}");
    let stored = world.stored().await;
    let home = &stored.regions[HOME];
    assert!(!home.ready && home.readiness_failures.iter().any(|f| f == message), "{home:?}");
    eprintln!("run with every ARC endpoint down: {elapsed:?}");
}

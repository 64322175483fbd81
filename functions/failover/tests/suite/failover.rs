//! failover through its real handler against the emulator: 2- and 3-Region evacuations, static
//! stability with the failed Region's APIs down, the min-healthy rule, duplicate deliveries,
//! failback gates, dry run and malformed input; authenticity, actor Regions, confirmation and
//! ordering of alarm changes; and the scheduled reconcile. The same suite runs once per routing
//! backend (`emulator.rs`: health checks, `emulator_arc.rs`: ARC routing controls): every
//! behaviour is asserted on the routing state itself, whichever backend holds it.
//!
//! Every delivery is a real alarm state change: the test sets the alarm's state in its watcher
//! Region (SetAlarmState) and delivers the EventBridge event CloudWatch emitted for it (or the
//! direct-action / SNS shape derived from it) to failover in the alarm's actor Region.

use failover::{Deps, Outcome, Report, Response, Trigger};
use multisite_tests::deployment::{self, Deployment};
use multisite_tests::fixtures::{describe_global, eventually, writer_arn};
use multisite_tests::instances::Instances;
use multisite_tests::roles::Function;
use multisite_tests::{ControlPlaneFailure, Emulator, EmulatorLease};
use serde_json::{Value, json};
use shared::alarm::Identity;
use shared::clock::{Clock, FixedClock};
use shared::ledger::{self, ProbeSummary, RegionProbe, RegionStatus};
use shared::topology::RoutingBackend;
use shared::{Ledger, RegionalClients, Topology};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const HOME: &str = "eu-west-1";
const T0: u64 = 1_800_000_000_000;

/// The routing backend this binary runs the suite with.
const BACKEND: RoutingBackend = crate::BACKEND;

/// The plan action that takes a Region out of routing, by backend.
fn out_of_routing_action() -> &'static str {
    match BACKEND {
        RoutingBackend::HealthCheck => "InvertHealthCheck",
        RoutingBackend::Arc => "RoutingControlOff",
    }
}

/// The AWS operation that changes routing, by backend.
fn routing_write() -> &'static str {
    match BACKEND {
        RoutingBackend::HealthCheck => "UpdateHealthCheck",
        RoutingBackend::Arc => "UpdateRoutingControlStates",
    }
}

/// The AWS operation that reads routing, by backend.
fn routing_read() -> &'static str {
    match BACKEND {
        RoutingBackend::HealthCheck => "GetHealthCheck",
        RoutingBackend::Arc => "ListRoutingControls",
    }
}

fn event(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("event JSON")
}

/// The direct alarm-action shape of a recorded EventBridge state-change event.
fn alarm_action(eb: &Value) -> Value {
    let mut e = event("alarm-alarm-action-us-east-1-alarm.json");
    e["alarmArn"] = eb["resources"][0].clone();
    e["accountId"] = eb["account"].clone();
    e["region"] = eb["region"].clone();
    e["time"] = eb["detail"]["state"]["timestamp"].clone();
    e["alarmData"]["alarmName"] = eb["detail"]["alarmName"].clone();
    e["alarmData"]["state"] = eb["detail"]["state"].clone();
    if eb["detail"]["previousState"].is_object() {
        e["alarmData"]["previousState"] = eb["detail"]["previousState"].clone();
    }
    e
}

/// The SNS shape (an alarm action to a topic) of a recorded EventBridge state-change event.
fn sns(eb: &Value) -> Value {
    let mut e = event("alarm-sns-us-east-1-alarm.json");
    let text = e["Records"][0]["Sns"]["Message"].as_str().expect("message").to_owned();
    let mut message: Value = serde_json::from_str(&text).expect("SNS message JSON");
    let detail = &eb["detail"];
    message["AlarmName"] = detail["alarmName"].clone();
    message["NewStateValue"] = detail["state"]["value"].clone();
    message["NewStateReason"] = detail["state"]["reason"].clone();
    message["StateChangeTime"] = detail["state"]["timestamp"].clone();
    message["AlarmArn"] = eb["resources"][0].clone();
    message["AWSAccountId"] = eb["account"].clone();
    if let Some(previous) = detail["previousState"]["value"].as_str() {
        message["OldStateValue"] = previous.into();
    }
    e["Records"][0]["Sns"]["Message"] = message.to_string().into();
    e
}

fn scheduled() -> Value {
    json!({"version": "0", "id": "5e1c0b5e-0000-4000-8000-000000000001", "source": "aws.events",
        "detail-type": "Scheduled Event", "account": deployment::ACCOUNT, "region": HOME,
        "time": "2027-01-15T08:00:00Z", "resources": ["arn:aws:events:eu-west-1:123456789012:rule/multisite-reconcile"],
        "detail": {}})
}

fn scheduler_envelope() -> Value {
    json!({"version": "0", "id": "5e1c0b5e-0000-4000-8000-000000000002", "source": "aws.scheduler",
        "detail-type": "Scheduled Event", "account": deployment::ACCOUNT, "region": HOME,
        "time": "2027-01-15T08:00:00Z",
        "resources": ["arn:aws:scheduler:eu-west-1:123456789012:schedule/default/multisite-reconcile"],
        "detail": "{}"})
}

/// A probe verdict that lets `regions` fail back (fresh at `now`, all pairs measured, ready).
fn good_probe(now: u64, regions: &[&str]) -> ProbeSummary {
    ProbeSummary {
        measured_at_ms: now,
        max_lag_ms: Some(400),
        rpo_budget_ms: 2_000,
        rpo_breached: false,
        unreachable_regions: vec![],
        readiness_failures: 0,
        regions: regions.iter().map(|r| ((*r).to_owned(), region_probe(400, false))).collect(),
    }
}

fn region_probe(lag_ms: u64, breached: bool) -> RegionProbe {
    RegionProbe {
        reachable: true,
        pairs_measured: 4,
        pairs_expected: 4,
        max_lag_ms: Some(lag_ms),
        rpo_breached: breached,
        ready: true,
        readiness_failures: vec![],
    }
}

/// A multi-Region deployment in the emulator: health checks, an Aurora global cluster with a
/// member per Region (writer in the first), the health alarms in their watcher Regions, the
/// ledger (a Global Table, arbiter in HOME), and the topology describing them. The handler runs
/// as deployed in each Region, signed with that stack's failover role from template.yaml; the
/// test's own checks use the administrator's clients.
struct World {
    emulator: EmulatorLease,
    deployment: Deployment,
    topology: Topology,
    /// The administrator's clients (set-up and checks).
    clients: RegionalClients,
    /// failover's role, as the stack in each Region deploys it.
    function_clients: BTreeMap<String, RegionalClients>,
    identity: Identity,
    clock: FixedClock,
    global_id: String,
}

impl World {
    async fn new(n: usize, policy: Value) -> Self {
        let emulator = Emulator::lease();
        emulator.set_timing(100, 100, 200);
        let deployment = Deployment::spec(&REGIONS[..n])
            .with_aurora()
            .with_dns()
            .with_ledger_replicas()
            .with_failover_policy(policy)
            .with_routing(BACKEND)
            .create(&emulator)
            .await;
        let global_id = deployment.global_cluster_id.clone().expect("global cluster");
        // Clients for every Region (a 2-Region world still has ap-southeast-1 clients for checks).
        let clients = emulator.clients(&REGIONS).await;
        let mut function_clients = BTreeMap::new();
        for region in &REGIONS[..n] {
            function_clients
                .insert((*region).to_owned(), deployment.function_clients(&emulator, Function::Failover, region).await);
        }
        emulator.clear_requests();
        Self {
            emulator,
            topology: deployment.topology.clone(),
            deployment,
            clients,
            function_clients,
            identity: deployment::identity(),
            clock: FixedClock::at(T0),
            global_id,
        }
    }

    /// failover as deployed in `home`.
    fn deps_in<'a>(&'a self, home: &'a str) -> Deps<'a> {
        Deps {
            topology: &self.topology,
            clients: &self.function_clients[home],
            home_region: home,
            clock: &self.clock,
            identity: &self.identity,
        }
    }

    /// Delivers `payload` to failover in `home`.
    async fn handle_in(&self, home: &str, payload: Value) -> Result<Response, shared::Error> {
        failover::handle(payload, &self.deps_in(home)).await
    }

    /// Delivers `payload` to failover in HOME.
    async fn handle(&self, payload: Value) -> Result<Response, shared::Error> {
        self.handle_in(HOME, payload).await
    }

    /// Delivers a change of `region`'s alarm to its actor (the alarm's watcher Region).
    async fn deliver(&self, region: &str, payload: Value) -> Result<Response, shared::Error> {
        let actor = self.deployment.watcher(region);
        self.handle_in(&actor, payload).await
    }

    /// Sets `region`'s alarm to `state` and returns the EventBridge event CloudWatch emitted.
    async fn change(&self, region: &str, state: &str) -> Value {
        // Distinct state-change times, whatever the clock's resolution.
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.deployment.alarm_change(&self.emulator, region, state).await
    }

    /// The alarm of `region` goes to `state` and the change is delivered to its actor.
    async fn alarm(&self, region: &str, state: &str) -> Result<Response, shared::Error> {
        let change = self.change(region, state).await;
        self.deliver(region, change).await
    }

    /// Whether failover took `region` out of routing: its health check forced unhealthy, or its
    /// routing control Off.
    async fn out_of_routing(&self, region: &str) -> bool {
        out_of_routing(&self.emulator, &self.deployment, region).await
    }

    /// Makes every routing write fail (transiently) until [`World::mend_routing`]: Route 53's
    /// `UpdateHealthCheck` throttled, or every ARC cluster endpoint unavailable.
    fn break_routing(&self) {
        self.set_routing_broken(true);
    }

    fn mend_routing(&self) {
        self.set_routing_broken(false);
    }

    fn set_routing_broken(&self, broken: bool) {
        match BACKEND {
            RoutingBackend::HealthCheck => {
                // Route 53 calls are made from the acting (surviving) Region's client.
                for region in REGIONS {
                    self.emulator.throttle(
                        region,
                        if broken { 1000 } else { 0 },
                        Some("route53"),
                        Some("UpdateHealthCheck"),
                    );
                }
            }
            RoutingBackend::Arc => {
                for endpoint in &self.arc().cluster_endpoints {
                    multisite_tests::arc::set_endpoint_down(&self.emulator, &endpoint.region, broken, "unavailable");
                }
            }
        }
    }

    fn arc(&self) -> &shared::topology::ArcRouting {
        self.topology.arc().expect("the ARC backend")
    }

    /// The Region Route 53 answers users in North America with (the emulator's latency routing).
    async fn answer_for_north_america(&self) -> String {
        let route53 = &self.clients.region(HOME).expect("home").route53;
        let zone = self.topology.routing.hosted_zone_id.clone();
        let out = route53
            .test_dns_answer()
            .hosted_zone_id(zone)
            .record_name(deployment::RECORD_NAME)
            .record_type(aws_sdk_route53::types::RrType::A)
            .edns0_client_subnet_ip("192.0.2.44")
            .send()
            .await
            .expect("TestDNSAnswer");
        let address = out.record_data().first().cloned().expect("an answer");
        let index = (0..REGIONS.len()).find(|i| deployment::address_of(*i) == address).expect("a known address");
        REGIONS[index].to_owned()
    }

    async fn writer_region(&self) -> String {
        self.writer_region_from(HOME).await
    }

    /// The writer's Region, as RDS in `region` describes the global cluster.
    async fn writer_region_from(&self, region: &str) -> String {
        let rds = &self.clients.region(region).expect("region").rds;
        let arn = writer_arn(&describe_global(rds, &self.global_id).await).expect("writer");
        shared::topology::RdsClusterArn::parse(&arn).expect("a cluster ARN").region.to_owned()
    }

    /// Waits for the emulator to finish a global failover started by the handler.
    async fn wait_writer(&self, region: &str) {
        let moved = eventually(Duration::from_secs(10), Duration::from_millis(50), || async {
            (self.writer_region().await == region).then_some(())
        })
        .await;
        assert!(moved.is_some(), "writer never reached {region}");
    }

    /// The arbiter replica (HOME), where the fleet record is decided.
    fn ledger(&self) -> Ledger {
        self.ledger_in(HOME)
    }

    fn ledger_in(&self, region: &str) -> Ledger {
        Ledger::new(self.clients.region(region).expect("region").dynamodb.clone(), "multisite-ledger", region)
    }

    /// Writes a lag-probe verdict where failover in `actor` reads it (its own replica).
    async fn put_probe(&self, actor: &str, probe: &ProbeSummary, version: u64) {
        let now = self.clock.now_ms();
        self.ledger_in(actor).put(ledger::PROBE_PK, ledger::PROBE_LATEST_SK, probe, version, now).await.expect("probe");
    }

    async fn fleet(&self) -> ledger::FleetStatus {
        self.ledger().fleet_status().await.expect("fleet").0
    }

    async fn status(&self, region: &str) -> RegionStatus {
        self.fleet().await.status_of(region)
    }

    async fn transitions(&self, region: &str) -> usize {
        self.ledger_in(&self.deployment.watcher(region))
            .list::<Value>(&ledger::transition_pk(region))
            .await
            .expect("transitions")
            .len()
    }
}

/// Whether `region` is out of routing in `deployment` (either backend).
async fn out_of_routing(emulator: &Emulator, deployment: &Deployment, region: &str) -> bool {
    match BACKEND {
        RoutingBackend::HealthCheck => {
            let id = &deployment.topology.cell(region).expect("cell").health_check_id;
            let route53 = &deployment.clients.region(HOME).expect("home").route53;
            let hc = route53.get_health_check().health_check_id(id).send().await.expect("health check");
            // Forced unhealthy: Inverted and Disabled together.
            let config = hc.health_check.and_then(|h| h.health_check_config).expect("config");
            assert_eq!(config.inverted, config.disabled, "Inverted and Disabled move together: {config:?}");
            config.inverted == Some(true)
        }
        RoutingBackend::Arc => {
            let arc = deployment.topology.arc().expect("the ARC backend");
            !multisite_tests::arc::states(emulator, arc).await[region]
        }
    }
}

fn only(response: Response) -> Report {
    assert_eq!(response.reports.len(), 1, "{:?}", response.reports);
    response.reports.into_iter().next().expect("one report")
}

fn reason(report: &Report) -> &str {
    report.reason.as_deref().unwrap_or_default()
}

#[tokio::test]
async fn two_region_evacuation_inverts_the_check_and_moves_the_writer() {
    let world = World::new(2, json!({})).await;
    let change = world.change("us-east-1", "ALARM").await;
    world.emulator.clear_requests();

    let report = only(world.deliver("us-east-1", alarm_action(&change)).await.expect("evacuated"));

    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    assert!(report.transition_recorded);
    assert!(world.out_of_routing("us-east-1").await, "latency routing no longer answers with us-east-1");
    assert!(!world.out_of_routing("eu-west-1").await);
    world.wait_writer("eu-west-1").await;
    assert_eq!(world.status("us-east-1").await, RegionStatus::Evacuated);
    assert_eq!(world.transitions("us-east-1").await, 1);
    // us-east-1's RDS still answers: the writer moves with a switchover, no data loss.
    let rds_calls: Vec<_> = world
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.operation == "SwitchoverGlobalCluster" || r.operation == "FailoverGlobalCluster")
        .collect();
    assert_eq!(rds_calls.len(), 1, "{rds_calls:?}");
    assert_eq!(rds_calls[0].operation, "SwitchoverGlobalCluster");
    assert_eq!(rds_calls[0].region, "eu-west-1", "the writer move is called in the target Region");
}

#[tokio::test]
async fn three_region_evacuation_via_eventbridge_and_sns_moves_the_writer_only_from_the_failed_region() {
    let world = World::new(3, json!({})).await;

    // ap-southeast-1 holds no writer: only its check flips (its actor is us-east-1).
    let report = only(world.alarm("ap-southeast-1", "ALARM").await.expect("ap evacuated"));
    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    assert!(world.out_of_routing("ap-southeast-1").await);
    assert_eq!(world.writer_region().await, "us-east-1", "writer untouched");
    assert!(!world.emulator.requests().iter().any(|r| r.operation.ends_with("GlobalCluster")
        && (r.operation.starts_with("Failover") || r.operation.starts_with("Switchover"))));

    // us-east-1 (the writer) through SNS: allowed (min 1 healthy).
    world.clock.advance_ms(1_000);
    let change = world.change("us-east-1", "ALARM").await;
    let report = only(world.deliver("us-east-1", sns(&change)).await.expect("us-east-1 evacuated"));
    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    assert!(world.out_of_routing("us-east-1").await);
    world.wait_writer("eu-west-1").await;
}

#[tokio::test]
async fn when_the_own_region_is_out_the_observation_is_made_again_from_an_active_region() {
    let world = World::new(3, json!({})).await;
    // failover in ap-southeast-1 is eu-west-1's actor. Its own Region is evacuated first (by its
    // actor, us-east-1)...
    let own = only(world.alarm("ap-southeast-1", "ALARM").await.expect("ap evacuated"));
    assert_eq!(own.outcome, Outcome::Reconciled, "{own:?}");
    world.clock.advance_ms(1_000);
    let change = world.change("eu-west-1", "ALARM").await;
    world.emulator.clear_requests();

    // ...then eu-west-1: the observation started from the own Region before the fleet was read
    // is not used; us-east-1 observes again and acts.
    let report = only(world.handle_in("ap-southeast-1", change).await.expect("eu-west-1 evacuated"));
    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    assert_eq!(report.acting_region.as_deref(), Some("us-east-1"));
    assert!(world.out_of_routing("eu-west-1").await);
    assert!(report.observed.as_ref().and_then(|o| o.aurora.as_ref()).is_some(), "{report:?}");
    let describes: Vec<String> = world
        .emulator
        .requests()
        .into_iter()
        // The changing Region's own DescribeGlobalClusters is the "does the writer's Region
        // answer" probe, not an observation.
        .filter(|r| r.operation == "DescribeGlobalClusters" && r.region != "eu-west-1")
        .map(|r| r.region)
        .collect();
    assert_eq!(
        describes,
        vec!["ap-southeast-1".to_owned(), "us-east-1".to_owned()],
        "early from the own Region, then from the acting one"
    );
}

#[tokio::test]
async fn evacuation_completes_with_the_failed_regions_apis_down() {
    let world = World::new(3, json!({})).await;
    let change = world.change("us-east-1", "ALARM").await;
    // us-east-1's regional APIs fail; Route 53's global control plane is modelled as surviving.
    world.emulator.control(
        "POST",
        "/_multisite/outage",
        Some(&json!({"region": "us-east-1", "down": true, "except_services": ["route53"]})),
    );
    world.emulator.clear_requests();

    let report = only(world.deliver("us-east-1", alarm_action(&change)).await.expect("evacuated"));

    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    assert!(world.out_of_routing("us-east-1").await);
    world.wait_writer("eu-west-1").await;
    let to_failed: Vec<_> = world
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.region == "us-east-1" && r.service != "route53")
        .filter(|r| r.operation != "DescribeGlobalClusters")
        .collect();
    assert!(to_failed.is_empty(), "no call to the failed Region but the writer probe: {to_failed:?}");
    let failovers: Vec<_> =
        world.emulator.requests().into_iter().filter(|r| r.operation == "FailoverGlobalCluster").collect();
    assert_eq!(failovers.len(), 1, "the writer's Region did not answer: AllowDataLoss");
}

#[tokio::test]
async fn when_the_routing_step_fails_the_aurora_step_still_runs_and_the_retry_converges() {
    let world = World::new(2, json!({})).await;
    let change = world.change("us-east-1", "ALARM").await;
    world.break_routing();

    let err = world.deliver("us-east-1", alarm_action(&change)).await.expect_err("the routing step fails");
    assert!(err.is_retryable(), "{err}");
    world.wait_writer("eu-west-1").await;
    assert!(!world.out_of_routing("us-east-1").await);

    world.mend_routing();
    let report = only(world.deliver("us-east-1", alarm_action(&change)).await.expect("retry converges"));
    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    assert!(!report.transition_recorded, "the retry is the same transition");
    assert!(world.out_of_routing("us-east-1").await);
    assert_eq!(world.transitions("us-east-1").await, 1);
}

#[tokio::test]
async fn both_regions_alarming_evacuates_one_and_refuses_the_other() {
    let world = World::new(2, json!({})).await;
    let us = world.change("us-east-1", "ALARM").await;
    let eu = world.change("eu-west-1", "ALARM").await;

    let (a, b) = tokio::join!(world.deliver("us-east-1", us), world.deliver("eu-west-1", eu));
    let outcomes = [only(a.expect("a")).outcome, only(b.expect("b")).outcome];

    assert!(outcomes.contains(&Outcome::Reconciled) && outcomes.contains(&Outcome::Refused), "{outcomes:?}");
    let inverted = [world.out_of_routing("us-east-1").await, world.out_of_routing("eu-west-1").await];
    assert_eq!(inverted.iter().filter(|i| **i).count(), 1, "exactly one Region out of DNS: {inverted:?}");
    let statuses = [world.status("us-east-1").await, world.status("eu-west-1").await];
    assert!(statuses.contains(&RegionStatus::Active), "one Region stays active: {statuses:?}");
}

#[tokio::test]
async fn ten_concurrent_duplicate_deliveries_record_exactly_one_transition() {
    let world = World::new(3, json!({})).await;
    let payload = world.change("us-east-1", "ALARM").await;
    world.emulator.clear_requests();

    let results = deliver_concurrently(&world, &payload, 10).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let recorded = results.iter().filter_map(|r| r.as_ref().ok()).filter(|r| r.transition_recorded).count();
    assert_eq!(recorded, 1);
    assert_eq!(world.transitions("us-east-1").await, 1);
    assert!(world.out_of_routing("us-east-1").await);
    world.wait_writer("eu-west-1").await;
    let moves = world
        .emulator
        .requests()
        .iter()
        .filter(|r| {
            (r.operation == "FailoverGlobalCluster" || r.operation == "SwitchoverGlobalCluster") && r.status == 200
        })
        .count();
    assert_eq!(moves, 1, "one writer move, whatever the duplicates");

    // A later duplicate (the same change) reconciles again and changes nothing.
    world.emulator.clear_requests();
    let again = only(world.handle(payload).await.expect("again"));
    assert_eq!(again.outcome, Outcome::Reconciled, "{again:?}");
    assert!(again.plan.expect("plan").actions.is_empty());
    assert!(!world.emulator.requests().iter().any(|r| r.operation == routing_write()
        || r.operation.starts_with("Failover")
        || r.operation.starts_with("Switchover")));
}

async fn deliver_concurrently(world: &World, payload: &Value, n: usize) -> Vec<Result<Report, shared::Error>> {
    let calls = (0..n).map(|_| async { world.handle(payload.clone()).await.map(only) });
    futures_util::future::join_all(calls).await
}

#[tokio::test]
async fn failback_waits_for_the_gates_then_restores_the_region() {
    let world = World::new(2, json!({"auto_failback": true, "cooldown_seconds": 60})).await;
    only(world.alarm("us-east-1", "ALARM").await.expect("evacuated"));
    world.wait_writer("eu-west-1").await;

    // Inside the cool-down: pending.
    world.clock.advance_ms(10_000);
    let ok = world.change("us-east-1", "OK").await;
    let pending = only(world.deliver("us-east-1", alarm_action(&ok)).await.expect("gated"));
    assert_eq!(pending.outcome, Outcome::FailbackPending, "{pending:?}");
    assert!(reason(&pending).contains("cool-down"), "{:?}", pending.reason);
    assert!(world.out_of_routing("us-east-1").await);

    // Cool-down over, but the lag-probe says us-east-1's pairs breach the RPO budget: pending.
    world.clock.advance_ms(120_000);
    let mut breached = good_probe(world.clock.now_ms(), &["us-east-1", "eu-west-1"]);
    breached.max_lag_ms = Some(5_000);
    breached.rpo_breached = true;
    breached.regions.insert("us-east-1".into(), region_probe(5_000, true));
    world.put_probe(HOME, &breached, 1).await;
    let pending = only(world.deliver("us-east-1", alarm_action(&ok)).await.expect("gated"));
    assert_eq!(pending.outcome, Outcome::FailbackPending, "{pending:?}");
    assert!(reason(&pending).contains("RPO"), "{:?}", pending.reason);

    // A good probe: failback restores the check; the writer stays unless asked.
    world.put_probe(HOME, &good_probe(world.clock.now_ms(), &["us-east-1", "eu-west-1"]), 2).await;
    let mut ok = alarm_action(&ok);
    ok["multisite"] = json!({"restore_writer": true});
    let done = only(world.deliver("us-east-1", ok).await.expect("failback"));
    assert_eq!(done.outcome, Outcome::Reconciled, "{done:?}");
    assert!(done.transition_recorded);
    assert!(!world.out_of_routing("us-east-1").await);
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
    world.wait_writer("us-east-1").await;
}

#[tokio::test]
async fn failback_without_auto_failback_is_reported_pending() {
    let world = World::new(2, json!({})).await;
    let alarm = world.change("us-east-1", "ALARM").await;
    only(world.deliver("us-east-1", sns(&alarm)).await.expect("evacuated"));
    world.clock.advance_ms(3_600_000);
    let ok = world.change("us-east-1", "OK").await;
    let pending = only(world.deliver("us-east-1", sns(&ok)).await.expect("pending"));
    assert_eq!(pending.outcome, Outcome::FailbackPending, "{pending:?}");
    assert!(reason(&pending).contains("manually"), "{:?}", pending.reason);
    assert!(world.out_of_routing("us-east-1").await);
}

#[tokio::test]
async fn dry_run_returns_the_plan_and_changes_nothing() {
    let world = World::new(2, json!({})).await;
    let mut payload = alarm_action(&world.change("us-east-1", "ALARM").await);
    payload["multisite"] = json!({"dry_run": true});
    world.emulator.clear_requests();

    let report = only(world.deliver("us-east-1", payload).await.expect("dry run"));

    assert_eq!(report.outcome, Outcome::DryRun, "{report:?}");
    let actions: Vec<&str> = report.plan.as_ref().expect("plan").actions.iter().map(|a| a.name()).collect();
    assert_eq!(actions, [out_of_routing_action(), "MoveAuroraWriter"]);
    assert!(!world.out_of_routing("us-east-1").await);
    assert_eq!(world.writer_region().await, "us-east-1");
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
    let writes: Vec<_> = world
        .emulator
        .requests()
        .into_iter()
        .filter(|r| {
            !["Get", "Describe", "List"].iter().any(|read| r.operation.starts_with(read)) && r.operation != "Query"
        })
        .filter(|r| r.operation != "TestDNSAnswer")
        .map(|r| r.operation)
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[tokio::test]
async fn malformed_events_and_unknown_alarms_make_no_aws_call() {
    let world = World::new(2, json!({})).await;
    let mut no_state = event("alarm-alarm-action-us-east-1-alarm.json");
    no_state["alarmData"].as_object_mut().map(|o| o.remove("state"));
    let mut not_alarm = event("alarm-sns-us-east-1-alarm.json");
    not_alarm["Records"][0]["Sns"]["Message"] = "{\"hello\": \"world\"}".into();
    let mut bad_override = event("alarm-alarm-action-us-east-1-alarm.json");
    bad_override["multisite"] = json!({"dry-run": true});
    for (what, payload) in [
        ("not JSON object", json!("ALARM")),
        ("wrong shape", json!({"foo": [1, 2]})),
        ("missing state", no_state),
        ("SNS message not an alarm", not_alarm),
        ("unknown override", bad_override),
    ] {
        let err = world.handle(payload).await.expect_err(what);
        assert_eq!(err.error_type(), "InvalidEvent", "{what}: {err}");
    }

    let mut unknown = event("alarm-alarm-action-us-east-1-alarm.json");
    unknown["alarmData"]["alarmName"] = "web-sa-east-1-unhealthy".into();
    let report = only(world.handle(unknown).await.expect("ignored"));
    assert_eq!(report.outcome, Outcome::Ignored);
    let mut insufficient = event("alarm-alarm-action-us-east-1-alarm.json");
    insufficient["alarmData"]["state"]["value"] = "INSUFFICIENT_DATA".into();
    assert_eq!(only(world.handle(insufficient).await.expect("ignored")).outcome, Outcome::Ignored);

    assert!(world.emulator.requests().is_empty(), "no AWS call: {:?}", world.emulator.requests());
}

#[tokio::test]
async fn an_evacuated_region_whose_endpoints_fail_gets_no_traffic_back() {
    let world = World::new(3, json!({})).await;
    assert_eq!(world.answer_for_north_america().await, "us-east-1");
    // The Region really fails: its endpoint checks fail too. Inverting alone would turn that
    // failing check healthy again and send North America back to the failed Region.
    // The endpoint health check (with ARC, the records' checks follow the routing controls).
    let us_check = world.deployment.health_checks["us-east-1"].clone();
    world.emulator.set_health_check_failure(&us_check, true);
    match BACKEND {
        RoutingBackend::HealthCheck => {
            assert_eq!(world.answer_for_north_america().await, "eu-west-1", "plain health checks already route away")
        }
        // The records' RECOVERY_CONTROL checks follow the routing controls only.
        RoutingBackend::Arc => assert_eq!(
            world.answer_for_north_america().await,
            "us-east-1",
            "with ARC the Region is answered until its control is Off"
        ),
    }

    only(world.alarm("us-east-1", "ALARM").await.expect("evacuated"));

    assert!(world.out_of_routing("us-east-1").await);
    assert_eq!(world.answer_for_north_america().await, "eu-west-1", "forced unhealthy stays unhealthy");
    world.emulator.set_health_check_failure(&us_check, false);
    assert_eq!(world.answer_for_north_america().await, "eu-west-1", "until failback, whatever the endpoint does");
}

/// Three Regions, the ledger a Global Table whose replicas are 1 s apart (arbiter in HOME), and
/// failover as deployed in each Region (its own stack's role and ledger replica).
async fn fleet_with_ledger_replicas_1_s_apart() -> (EmulatorLease, Deployment, Instances) {
    let emulator = Emulator::lease();
    emulator.set_timing(100, 100, 200);
    let deployment = Deployment::spec(&REGIONS).with_aurora().with_dns().with_ledger_replicas().create(&emulator).await;
    emulator.set_replication_delay(1_000);
    let fleet = Instances::deploy(&emulator, &deployment, Function::Failover).await;
    (emulator, deployment, fleet)
}

/// One alarm change delivered at once to failover as deployed in each of three Regions (an SNS
/// topic with a subscription per Region), each under its own stack's role. Only the change's
/// actor (the alarm's Region, eu-west-1 for us-east-1's alarm) acts, deciding on the arbiter
/// replica; the others answer Ignored without a call. No call is denied, and the replicas
/// converge on the evacuation.
#[tokio::test]
async fn one_alarm_change_reaches_failover_in_three_regions_at_once() {
    let (emulator, deployment, fleet) = fleet_with_ledger_replicas_1_s_apart().await;
    let clock = FixedClock::at(T0);
    let identity = deployment::identity();
    let payload = sns(&deployment.alarm_change(&emulator, "us-east-1", "ALARM").await);
    emulator.clear_requests();

    let delivered = fleet
        .deliver_all(async |instance| {
            let deps = Deps {
                topology: &deployment.topology,
                clients: &instance.clients,
                home_region: &instance.region,
                clock: &clock,
                identity: &identity,
            };
            failover::handle(payload.clone(), &deps).await
        })
        .await;

    for d in &delivered {
        match &d.outcome {
            Ok(response) => {
                for r in &response.reports {
                    let did: Vec<String> = r.steps.iter().map(|s| format!("{:?} ok={}", s.action, s.ok)).collect();
                    eprintln!(
                        "failover in {} ({:?}..{:?}): {:?} transition_recorded={} reason={:?} did {did:?} calls {:?}",
                        d.region, d.started, d.finished, r.outcome, r.transition_recorded, r.reason, response.calls
                    );
                }
            }
            Err(e) => eprintln!("failover in {} ({:?}..{:?}): error {e}", d.region, d.started, d.finished),
        }
    }
    let regions: Vec<&str> = delivered.iter().map(|d| d.region.as_str()).collect();
    assert_eq!(regions, REGIONS, "one delivery per Region");
    let requests = emulator.requests();
    let denied: Vec<_> = requests.iter().filter(|r| r.denied.is_some()).collect();
    assert!(denied.is_empty(), "failover's role allows every call it makes: {denied:?}");
    let actor = deployment.watcher("us-east-1");
    assert_eq!(actor, HOME);
    for d in &delivered {
        let response = d.outcome.as_ref().unwrap_or_else(|e| panic!("failover in {} failed: {e}", d.region));
        let report = &response.reports[0];
        let role = &fleet.instance(&d.region).roles.role_of(Function::Failover).role_name;
        let calls: Vec<_> =
            requests.iter().filter(|r| r.principal.as_deref().is_some_and(|p| p.contains(role.as_str()))).collect();
        if d.region == actor {
            assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
            assert!(report.transition_recorded);
            let ledger_calls: Vec<_> = calls.iter().filter(|r| r.service == "dynamodb").collect();
            assert!(!ledger_calls.is_empty(), "the actor used the ledger under its role {role}");
            assert!(
                ledger_calls.iter().all(|r| r.region == deployment.topology.arbiter_region() || r.region == d.region),
                "the actor uses the arbiter replica and its own: {ledger_calls:?}"
            );
        } else {
            assert_eq!(report.outcome, Outcome::Ignored, "{report:?}");
            assert!(calls.is_empty(), "a Region that is not the actor calls nothing: {calls:?}");
        }
    }
    // After the delay every replica holds the same fleet record, as a Global Table converges.
    let admin = emulator.clients(&REGIONS).await;
    let fleet_in = |region: &'static str| {
        let ddb = admin.region(region).expect("region").dynamodb.clone();
        async move { Ledger::new(ddb, "multisite-ledger", region).fleet_status().await.expect("fleet") }
    };
    let converged = eventually(Duration::from_secs(5), Duration::from_millis(100), || async {
        let (a, b, c) = tokio::join!(fleet_in(REGIONS[0]), fleet_in(REGIONS[1]), fleet_in(REGIONS[2]));
        (a.0 == b.0 && b.0 == c.0).then_some(a)
    })
    .await;
    let (fleet, _) = converged.expect("the ledger replicas converge after the replication delay");
    assert_eq!(fleet.status_of("us-east-1"), RegionStatus::Evacuated);
}

/// Enforcement bites: the rendered role minus the routing write (`route53:UpdateHealthCheck`, or
/// `route53-recovery-cluster:UpdateRoutingControlStates`) fails the routing step with a permanent
/// AccessDenied that names the action (and the health check); the independent Aurora step still
/// runs.
#[tokio::test]
async fn a_role_missing_one_action_fails_that_step_with_a_permanent_access_denied() {
    let world = World::new(2, json!({})).await;
    let deployment_roles = multisite_tests::roles::stack_roles_for(&world.emulator, &world.topology, HOME);
    let role = deployment_roles.role_of(Function::Failover);
    let mut policy = role.policies["failover"].clone();
    let write = match BACKEND {
        RoutingBackend::HealthCheck => "route53:UpdateHealthCheck",
        RoutingBackend::Arc => "route53-recovery-cluster:UpdateRoutingControlStates",
    };
    let statements = policy["Statement"].as_array_mut().expect("statements");
    let grants = |s: &Value| match &s["Action"] {
        Value::String(a) => a == write,
        Value::Array(actions) => actions.iter().any(|a| a == write),
        _ => false,
    };
    let statement = statements.iter_mut().find(|s| grants(s)).unwrap_or_else(|| panic!("a statement grants {write}"));
    let kept: Vec<Value> = match &statement["Action"] {
        Value::Array(actions) => actions.iter().filter(|a| *a != write).cloned().collect(),
        _ => Vec::new(),
    };
    // A statement with no action left is not valid IAM: grant something harmless instead.
    statement["Action"] = if kept.is_empty() { json!(["sqs:GetQueueUrl"]) } else { Value::Array(kept) };
    deployment_roles.put_policy(&world.emulator, Function::Failover, "failover", Some(&policy));
    let clients = deployment_roles.clients(&world.emulator, Function::Failover, &REGIONS[..2]).await;
    let deps = Deps {
        topology: &world.topology,
        clients: &clients,
        home_region: HOME,
        clock: &world.clock,
        identity: &world.identity,
    };
    let change = world.change("us-east-1", "ALARM").await;
    world.emulator.clear_requests();

    let err = failover::handle(change, &deps).await.expect_err("denied");

    assert_eq!(err.error_type(), "AccessDenied", "{err}");
    assert!(!err.is_retryable(), "a denial is permanent: Lambda's retries cannot help ({err})");
    let text = err.to_string();
    assert!(text.contains(write), "names the action: {text}");
    if BACKEND == RoutingBackend::HealthCheck {
        let us_check = &world.topology.cell("us-east-1").expect("cell").health_check_id;
        assert!(text.contains(&format!("arn:aws:route53:::healthcheck/{us_check}")), "names the resource: {text}");
    }
    assert!(!world.out_of_routing("us-east-1").await, "the denied step changed nothing");
    world.wait_writer("eu-west-1").await;
    let denied: Vec<_> = world.emulator.requests().into_iter().filter_map(|r| r.denied).collect();
    assert_eq!(denied.len(), 1, "one denied call (a denial ends the endpoint search): {denied:?}");
    assert_eq!(denied[0].action, write);
}

/// Enforcement bites on resources too: failover running in HOME with the role of a stack whose
/// ledger statement names only the us-east-1 replica (rendered for an arbiter in us-east-1) is
/// denied the arbiter replica in HOME, and nothing is changed.
#[tokio::test]
async fn a_role_scoped_to_another_regions_ledger_is_denied_and_changes_nothing() {
    let world = World::new(2, json!({})).await;
    let mut elsewhere = world.topology.clone();
    elsewhere.arbiter = Some(shared::topology::Arbiter { region: "us-east-1".into() });
    let clients =
        multisite_tests::roles::function_clients(&world.emulator, &elsewhere, Function::Failover, "us-east-1").await;
    let deps = Deps {
        topology: &world.topology,
        clients: &clients,
        home_region: HOME,
        clock: &world.clock,
        identity: &world.identity,
    };
    let change = world.change("us-east-1", "ALARM").await;

    let err = failover::handle(change, &deps).await.expect_err("denied");

    assert_eq!(err.error_type(), "AccessDenied", "{err}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("arn:aws:dynamodb:eu-west-1:123456789012:table/multisite-ledger"), "{text}");
    assert!(!world.out_of_routing("us-east-1").await);
    assert_eq!(world.writer_region().await, "us-east-1");
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
}

/// Deliveries in a chosen order and timing: the change reaches its actor (eu-west-1) first and,
/// 1.5 s later (after the ledger's 1 s replication delay), ap-southeast-1, which is not the
/// actor and answers Ignored without a call; a late duplicate at the actor decides on the
/// arbiter and records nothing new.
#[tokio::test]
async fn a_late_delivery_in_another_region_sees_the_replicated_evacuation() {
    let (emulator, deployment, fleet) = fleet_with_ledger_replicas_1_s_apart().await;
    let clock = FixedClock::at(T0);
    let identity = deployment::identity();
    let payload = deployment.alarm_change(&emulator, "us-east-1", "ALARM").await;

    let delivered = fleet
        .deliver_timed(
            &[
                ("eu-west-1", Duration::ZERO),
                ("ap-southeast-1", Duration::from_millis(1_500)),
                ("eu-west-1", Duration::from_millis(1_500)),
            ],
            async |i| {
                let deps = Deps {
                    topology: &deployment.topology,
                    clients: &i.clients,
                    home_region: &i.region,
                    clock: &clock,
                    identity: &identity,
                };
                failover::handle(payload.clone(), &deps).await.map(only)
            },
        )
        .await;

    assert_eq!(delivered[0].region, "eu-west-1");
    assert_eq!(delivered[1].region, "ap-southeast-1");
    assert!(delivered[1].started >= Duration::from_millis(1_500), "{:?}", delivered[1].started);
    let first = delivered[0].outcome.as_ref().expect("first delivery");
    let elsewhere = delivered[1].outcome.as_ref().expect("late delivery elsewhere");
    let late = delivered[2].outcome.as_ref().expect("late delivery at the actor");
    assert!(first.transition_recorded, "{first:?}");
    assert_eq!(elsewhere.outcome, Outcome::Ignored, "{elsewhere:?}");
    assert!(reason(elsewhere).contains("actor"), "{elsewhere:?}");
    assert_eq!(late.outcome, Outcome::Reconciled, "{late:?}");
    assert!(!late.transition_recorded, "the late duplicate read the evacuation on the arbiter: {late:?}");
    // The replicated record reaches ap-southeast-1's replica.
    let admin = emulator.clients(&REGIONS).await;
    let ap =
        Ledger::new(admin.region("ap-southeast-1").expect("ap").dynamodb.clone(), "multisite-ledger", "ap-southeast-1");
    let seen = eventually(Duration::from_secs(5), Duration::from_millis(100), || async {
        (ap.fleet_status().await.expect("fleet").0.status_of("us-east-1") == RegionStatus::Evacuated).then_some(())
    })
    .await;
    assert!(seen.is_some(), "the evacuation replicates to every replica");
}

// ---------------------------------------------------------------------------------------------
// Screening: actor Region and authenticity, before any AWS call.

#[tokio::test]
async fn a_change_delivered_to_a_region_that_is_not_its_actor_is_ignored() {
    let world = World::new(3, json!({})).await;
    let change = world.change("us-east-1", "ALARM").await;
    world.emulator.clear_requests();

    for elsewhere in ["us-east-1", "ap-southeast-1"] {
        let report = only(world.handle_in(elsewhere, change.clone()).await.expect("ignored"));
        assert_eq!(report.outcome, Outcome::Ignored, "{report:?}");
        assert!(reason(&report).contains("eu-west-1"), "names the actor: {:?}", report.reason);
    }
    assert!(world.emulator.requests().is_empty(), "{:?}", world.emulator.requests());
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
    assert!(!world.out_of_routing("us-east-1").await);
}

#[tokio::test]
async fn an_alarm_change_from_another_account_is_rejected_and_calls_nothing() {
    let world = World::new(2, json!({})).await;
    let mut change = world.change("us-east-1", "ALARM").await;
    let arn = change["resources"][0].as_str().expect("arn").replace("123456789012", "999999999999");
    change["resources"][0] = arn.into();
    change["account"] = "999999999999".into();
    world.emulator.clear_requests();

    for payload in [change.clone(), alarm_action(&change), sns(&change)] {
        let response = world.handle(payload).await.expect("rejected, not an error");
        let report = only(response.clone());
        assert_eq!(report.outcome, Outcome::Rejected, "{report:?}");
        assert!(reason(&report).contains("999999999999"), "{:?}", report.reason);
        assert!(response.calls.is_empty(), "{:?}", response.calls);
    }
    assert_eq!(world.emulator.requests().len(), 0, "{:?}", world.emulator.requests());
}

#[tokio::test]
async fn an_alarm_in_another_region_than_the_topology_names_is_rejected() {
    let world = World::new(2, json!({})).await;
    let mut change = world.change("us-east-1", "ALARM").await;
    // The topology says us-east-1's alarm lives in eu-west-1; the same name in us-east-1 is another alarm.
    let arn = change["resources"][0].as_str().expect("arn").replace(":eu-west-1:", ":us-east-1:");
    change["resources"][0] = arn.into();
    world.emulator.clear_requests();

    let report = only(world.handle(change).await.expect("rejected"));

    assert_eq!(report.outcome, Outcome::Rejected, "{report:?}");
    assert!(reason(&report).contains("lives in"), "{:?}", report.reason);
    assert!(world.emulator.requests().is_empty(), "{:?}", world.emulator.requests());
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
}

#[tokio::test]
async fn an_unparseable_state_change_time_is_an_invalid_event() {
    let world = World::new(2, json!({})).await;
    let change = world.change("us-east-1", "ALARM").await;
    let mut eb = change.clone();
    eb["detail"]["state"]["timestamp"] = "yesterday, around ten".into();
    let mut action = alarm_action(&change);
    action["alarmData"]["state"]["timestamp"] = "2026-13-45T99:00:00".into();
    world.emulator.clear_requests();

    for (what, payload) in [("EventBridge", eb.clone()), ("alarm action", action), ("SNS", sns(&eb))] {
        let err = world.handle(payload).await.expect_err(what);
        assert_eq!(err.error_type(), "InvalidEvent", "{what}: {err}");
    }
    assert!(world.emulator.requests().is_empty(), "{:?}", world.emulator.requests());
}

// ---------------------------------------------------------------------------------------------
// Confirmation and ordering.

#[tokio::test]
async fn a_late_alarm_after_its_ok_changes_nothing() {
    let world = World::new(2, json!({})).await;
    let alarm = world.change("us-east-1", "ALARM").await;
    world.change("us-east-1", "OK").await;

    let report = only(world.deliver("us-east-1", alarm).await.expect("stale"));

    assert_eq!(report.outcome, Outcome::Stale, "{report:?}");
    assert!(reason(&report).contains("late"), "{:?}", report.reason);
    // The one-shot claim made in the same round trip as the confirmation is withdrawn.
    let fleet = world.fleet().await;
    assert_eq!(fleet.status_of("us-east-1"), RegionStatus::Active, "{fleet:?}");
    assert!(!world.out_of_routing("us-east-1").await);
    assert_eq!(world.writer_region().await, "us-east-1");
    assert_eq!(world.transitions("us-east-1").await, 0);
    // And the region can still be evacuated by the next real change.
    world.clock.advance_ms(1_000);
    let report = only(world.alarm("us-east-1", "ALARM").await.expect("evacuated"));
    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
}

#[tokio::test]
async fn a_late_ok_after_a_newer_alarm_changes_nothing() {
    let world = World::new(2, json!({"auto_failback": true, "cooldown_seconds": 0})).await;
    world.put_probe(HOME, &good_probe(world.clock.now_ms(), &["us-east-1", "eu-west-1"]), 1).await;
    let first = world.change("us-east-1", "ALARM").await;
    let ok = world.change("us-east-1", "OK").await;
    let newer = world.change("us-east-1", "ALARM").await;
    let report = only(world.deliver("us-east-1", newer).await.expect("evacuated"));
    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    world.clock.advance_ms(1_000);

    // The OK in between arrives late: the alarm is in ALARM now.
    let late_ok = only(world.deliver("us-east-1", ok.clone()).await.expect("stale"));
    assert_eq!(late_ok.outcome, Outcome::Stale, "{late_ok:?}");
    // The first ALARM arrives late too: the alarm agrees, but a newer change was handled.
    let late_alarm = only(world.deliver("us-east-1", first).await.expect("stale"));
    assert_eq!(late_alarm.outcome, Outcome::Stale, "{late_alarm:?}");
    assert!(reason(&late_alarm).contains("newer change"), "{:?}", late_alarm.reason);
    assert_eq!(world.status("us-east-1").await, RegionStatus::Evacuated);
    assert!(world.out_of_routing("us-east-1").await);

    // Failback by a newer OK; then the old OK, though the alarm is OK again, is older than the mark.
    let back = only(world.alarm("us-east-1", "OK").await.expect("failback"));
    assert_eq!(back.outcome, Outcome::Reconciled, "{back:?}");
    assert!(!world.out_of_routing("us-east-1").await);
    world.clock.advance_ms(1_000);
    let old_ok = only(world.deliver("us-east-1", ok).await.expect("stale"));
    assert_eq!(old_ok.outcome, Outcome::Stale, "{old_ok:?}");
    assert!(reason(&old_ok).contains("newer change"), "{:?}", old_ok.reason);
}

// ---------------------------------------------------------------------------------------------
// The scheduled reconcile.

#[tokio::test]
async fn the_scheduler_envelope_runs_the_reconcile() {
    let world = World::new(2, json!({})).await;
    // The alarm went to ALARM and its delivery was lost: only the schedule sees it.
    world.change("us-east-1", "ALARM").await;

    let response = world.handle(scheduler_envelope()).await.expect("reconciled");

    let report = only(response);
    assert_eq!(report.trigger, Trigger::Schedule, "{report:?}");
    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    assert_eq!(report.region.as_deref(), Some("us-east-1"));
    assert!(world.out_of_routing("us-east-1").await);
    assert_eq!(world.status("us-east-1").await, RegionStatus::Evacuated);
    world.wait_writer("eu-west-1").await;
    // The plain EventBridge rule's envelope then has nothing to do.
    let again = world.handle(scheduled()).await.expect("nothing to do");
    assert!(again.reports.is_empty(), "{:?}", again.reports);
}

#[tokio::test]
async fn the_scheduled_reconcile_evacuates_once_the_rules_allow_it() {
    let world = World::new(2, json!({"auto_failback": true, "cooldown_seconds": 60})).await;
    let eu = only(world.alarm("eu-west-1", "ALARM").await.expect("eu-west-1 evacuated"));
    assert_eq!(eu.outcome, Outcome::Reconciled, "{eu:?}");
    world.clock.advance_ms(1_000);
    // us-east-1 alarms while eu-west-1 is out: min 1 healthy refuses it.
    let us = only(world.alarm("us-east-1", "ALARM").await.expect("refused"));
    assert_eq!(us.outcome, Outcome::Refused, "{us:?}");
    let refused = only(world.handle(scheduled()).await.expect("still refused"));
    assert_eq!(refused.trigger, Trigger::Schedule);
    assert_eq!(refused.outcome, Outcome::Refused, "{refused:?}");
    assert!(!world.out_of_routing("us-east-1").await);

    // eu-west-1 recovers and fails back (its actor is us-east-1, which reads its own replica's probe).
    world.clock.advance_ms(120_000);
    world.put_probe("us-east-1", &good_probe(world.clock.now_ms(), &["us-east-1", "eu-west-1"]), 1).await;
    let back = only(world.alarm("eu-west-1", "OK").await.expect("failback"));
    assert_eq!(back.outcome, Outcome::Reconciled, "{back:?}");
    assert_eq!(world.status("eu-west-1").await, RegionStatus::Active);

    // The next schedule evacuates us-east-1, whose alarm is still in ALARM.
    world.clock.advance_ms(1_000);
    let now = only(world.handle(scheduled()).await.expect("evacuated"));
    assert_eq!(now.trigger, Trigger::Schedule);
    assert_eq!(now.outcome, Outcome::Reconciled, "{now:?}");
    assert!(now.transition_recorded);
    assert!(world.out_of_routing("us-east-1").await);
    assert_eq!(world.status("us-east-1").await, RegionStatus::Evacuated);
    world.wait_writer("eu-west-1").await;
}

#[tokio::test]
async fn the_scheduled_reconcile_finishes_a_step_that_failed() {
    let world = World::new(2, json!({})).await;
    let change = world.change("us-east-1", "ALARM").await;
    // Health checks: Route 53's control plane throttles everything; ARC: no endpoint answers.
    match BACKEND {
        RoutingBackend::HealthCheck => {
            world.emulator.set_control_plane_down("route53", true, ControlPlaneFailure::Throttling)
        }
        RoutingBackend::Arc => world.break_routing(),
    }

    let err = world.deliver("us-east-1", change).await.expect_err("the routing step fails");
    assert!(err.is_retryable(), "{err}");
    world.wait_writer("eu-west-1").await;
    match BACKEND {
        RoutingBackend::HealthCheck => {
            world.emulator.set_control_plane_down("route53", false, ControlPlaneFailure::Throttling)
        }
        RoutingBackend::Arc => world.mend_routing(),
    }
    assert!(!world.out_of_routing("us-east-1").await);
    let fleet = world.fleet().await;
    assert_eq!(fleet.status_of("us-east-1"), RegionStatus::Evacuated);
    assert!(fleet.unsettled("us-east-1"), "{fleet:?}");

    let report = only(world.handle(scheduled()).await.expect("converged"));

    assert_eq!(report.trigger, Trigger::Schedule);
    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    let done: Vec<&str> = report.steps.iter().map(|s| s.action.name()).collect();
    assert_eq!(done, [out_of_routing_action()], "only the step left: {report:?}");
    assert!(world.out_of_routing("us-east-1").await);
    assert!(!world.fleet().await.unsettled("us-east-1"), "settled");
    // The schedule's change (from DescribeAlarms) is the event's change: one transition record.
    assert_eq!(world.transitions("us-east-1").await, 1);
    let again = world.handle(scheduled()).await.expect("nothing left");
    assert!(again.reports.is_empty(), "{:?}", again.reports);
}

#[tokio::test]
async fn the_scheduled_reconcile_with_nothing_to_do_only_reads() {
    let world = World::new(3, json!({})).await;
    only(world.alarm("us-east-1", "ALARM").await.expect("evacuated"));
    world.wait_writer("eu-west-1").await;
    world.emulator.clear_requests();

    let response = world.handle(scheduled()).await.expect("nothing to do");

    eprintln!("scheduled reconcile with nothing to do: calls {:?}", response.calls);
    assert!(response.reports.is_empty(), "{:?}", response.reports);
    let reads = ["DescribeAlarms", "GetItem", routing_read(), "DescribeGlobalClusters"];
    assert!(response.calls.keys().all(|op| reads.contains(&op.as_str())), "{:?}", response.calls);
    assert!(response.calls.contains_key("DescribeAlarms") && response.calls.contains_key("GetItem"));
    let made: Vec<String> = world.emulator.requests().into_iter().map(|r| r.operation).collect();
    assert!(made.iter().all(|op| reads.contains(&op.as_str())), "{made:?}");
    assert_eq!(made.len() as u32, response.calls.values().sum::<u32>(), "{made:?} vs {:?}", response.calls);
}

// ---------------------------------------------------------------------------------------------
// Aurora.

#[tokio::test]
async fn an_unobservable_aurora_cluster_is_a_failed_step() {
    let world = World::new(2, json!({})).await;
    let change = world.change("us-east-1", "ALARM").await;
    // RDS in the acting Region (HOME) does not answer: the global cluster cannot be observed.
    world.emulator.set_service_outage(HOME, &["rds"], true);

    let err = world.deliver("us-east-1", change.clone()).await.expect_err("a failed step");
    assert!(err.is_retryable(), "{err}");
    assert!(world.out_of_routing("us-east-1").await, "the routing step still ran");
    assert_eq!(world.writer_region_from("us-east-1").await, "us-east-1", "the writer was not moved blind");
    assert!(world.fleet().await.unsettled("us-east-1"));

    // The report (from a dry run of the same situation) names the failed observation.
    let mut dry = alarm_action(&change);
    dry["multisite"] = json!({"dry_run": true});
    let report = only(world.deliver("us-east-1", dry).await.expect("dry run"));
    let notes = report.plan.as_ref().expect("plan").notes.join("; ");
    assert!(notes.contains("could not be observed"), "{notes}");

    world.emulator.set_service_outage(HOME, &["rds"], false);
    let retry = only(world.deliver("us-east-1", change).await.expect("retry converges"));
    assert_eq!(retry.outcome, Outcome::Reconciled, "{retry:?}");
    world.wait_writer("eu-west-1").await;
    assert!(!world.fleet().await.unsettled("us-east-1"));
}

#[tokio::test]
async fn the_writer_moves_by_switchover_when_its_region_answers_and_with_data_loss_when_not() {
    for answers in [true, false] {
        let world = World::new(3, json!({})).await;
        let change = world.change("us-east-1", "ALARM").await;
        if !answers {
            world.emulator.set_outage("us-east-1", true);
        }
        world.emulator.clear_requests();

        let report = only(world.deliver("us-east-1", change).await.expect("evacuated"));

        assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
        let notes = report.plan.as_ref().expect("plan").notes.join("; ");
        eprintln!("writer answers={answers}: {notes}");
        let moves: Vec<String> = world
            .emulator
            .requests()
            .into_iter()
            .filter(|r| r.operation == "SwitchoverGlobalCluster" || r.operation == "FailoverGlobalCluster")
            .map(|r| format!("{} in {}", r.operation, r.region))
            .collect();
        if answers {
            assert_eq!(moves, ["SwitchoverGlobalCluster in eu-west-1"]);
            assert!(notes.contains("switchover"), "{notes}");
        } else {
            assert_eq!(moves, ["FailoverGlobalCluster in eu-west-1"]);
            assert!(notes.contains("does not answer") && notes.contains("AllowDataLoss"), "{notes}");
            world.emulator.set_outage("us-east-1", false);
        }
        world.wait_writer("eu-west-1").await;
    }
}

#[tokio::test]
async fn failback_waits_for_a_probe_verdict_of_the_returning_region() {
    let world = World::new(2, json!({"auto_failback": true, "cooldown_seconds": 60})).await;
    only(world.alarm("us-east-1", "ALARM").await.expect("evacuated"));
    world.clock.advance_ms(120_000);
    let ok = world.change("us-east-1", "OK").await;

    // No verdict at all: the gate stays closed.
    let pending = only(world.deliver("us-east-1", ok.clone()).await.expect("pending"));
    assert_eq!(pending.outcome, Outcome::FailbackPending, "{pending:?}");
    assert!(reason(&pending).contains("no lag-probe verdict"), "{:?}", pending.reason);

    // A verdict that did not measure the returning Region.
    world.put_probe(HOME, &good_probe(world.clock.now_ms(), &["eu-west-1"]), 1).await;
    let pending = only(world.deliver("us-east-1", ok.clone()).await.expect("pending"));
    assert_eq!(pending.outcome, Outcome::FailbackPending, "{pending:?}");
    assert!(reason(&pending).contains("did not measure us-east-1"), "{:?}", pending.reason);

    // One that measured only some of its pairs.
    let mut partial = good_probe(world.clock.now_ms(), &["us-east-1", "eu-west-1"]);
    partial.regions.get_mut("us-east-1").expect("entry").pairs_measured = 1;
    world.put_probe(HOME, &partial, 2).await;
    let pending = only(world.deliver("us-east-1", ok.clone()).await.expect("pending"));
    assert_eq!(pending.outcome, Outcome::FailbackPending, "{pending:?}");
    assert!(reason(&pending).contains("measured 1 of"), "{:?}", pending.reason);

    // One that is too old.
    world.put_probe(HOME, &good_probe(world.clock.now_ms() - failover::PROBE_MAX_AGE_MS - 1, &["us-east-1"]), 3).await;
    let pending = only(world.deliver("us-east-1", ok.clone()).await.expect("pending"));
    assert_eq!(pending.outcome, Outcome::FailbackPending, "{pending:?}");
    assert!(reason(&pending).contains("fresh"), "{:?}", pending.reason);

    // A fresh, complete, ready verdict opens it.
    world.put_probe(HOME, &good_probe(world.clock.now_ms(), &["us-east-1", "eu-west-1"]), 4).await;
    let done = only(world.deliver("us-east-1", ok).await.expect("failback"));
    assert_eq!(done.outcome, Outcome::Reconciled, "{done:?}");
    assert!(!world.out_of_routing("us-east-1").await);
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
}

/// The split brain the arbiter closes: two Regions alarm at once (a network event between them),
/// each change handled by failover as deployed in the *other* Region (its actor), every Region
/// subscribed (SNS), the ledger replicas 1 s apart, `min_healthy_regions` = 2 of 3. Before the
/// arbiter each claim passed on its own replica and both Regions were evacuated; now both claims
/// go to one replica and exactly one Region leaves.
#[tokio::test]
async fn two_regions_alarming_at_once_in_each_others_region_evacuate_only_one() {
    let emulator = Emulator::lease();
    emulator.set_timing(100, 100, 200);
    let deployment = Deployment::spec(&REGIONS)
        .with_aurora()
        .with_dns()
        .with_ledger_replicas()
        .with_failover_policy(json!({"min_healthy_regions": 2}))
        .with_routing(BACKEND)
        .create(&emulator)
        .await;
    emulator.set_replication_delay(1_000);
    let fleet = Instances::deploy(&emulator, &deployment, Function::Failover).await;
    let clock = FixedClock::at(T0);
    let identity = deployment::identity();
    let us = sns(&deployment.alarm_change(&emulator, "us-east-1", "ALARM").await);
    let eu = sns(&deployment.alarm_change(&emulator, "eu-west-1", "ALARM").await);
    assert_ne!(deployment.watcher("us-east-1"), deployment.watcher("eu-west-1"), "two different actors");

    let deliver = |payload: Value| {
        let (fleet, deployment, clock, identity) = (&fleet, &deployment, &clock, &identity);
        async move {
            fleet
                .deliver_all(async |instance| {
                    let deps = Deps {
                        topology: &deployment.topology,
                        clients: &instance.clients,
                        home_region: &instance.region,
                        clock,
                        identity,
                    };
                    failover::handle(payload.clone(), &deps).await
                })
                .await
        }
    };
    let (a, b) = tokio::join!(deliver(us), deliver(eu));
    let outcomes: Vec<Outcome> = a
        .iter()
        .chain(&b)
        .map(|d| d.outcome.as_ref().unwrap_or_else(|e| panic!("failover in {} failed: {e}", d.region)))
        .map(|r| r.reports[0].outcome)
        .filter(|o| *o != Outcome::Ignored)
        .collect();
    assert_eq!(outcomes.len(), 2, "one actor per change: {outcomes:?}");
    assert!(outcomes.contains(&Outcome::Reconciled) && outcomes.contains(&Outcome::Refused), "{outcomes:?}");

    let arbiter = Ledger::new(
        deployment.clients.region(deployment.topology.arbiter_region()).expect("arbiter").dynamodb.clone(),
        "multisite-ledger",
        deployment.topology.arbiter_region(),
    );
    let (status, _) = arbiter.fleet_status().await.expect("fleet");
    let evacuated: Vec<&str> =
        REGIONS.iter().copied().filter(|r| status.status_of(r) == RegionStatus::Evacuated).collect();
    assert_eq!(evacuated.len(), 1, "exactly one Region evacuated: {evacuated:?}");
    for region in REGIONS {
        let out = out_of_routing(&emulator, &deployment, region).await;
        assert_eq!(out, evacuated.contains(&region), "{region}: the world matches the ledger");
    }
}

/// `drill --plan` asks what an ALARM would do to a Region that is healthy now: a dry run plans
/// as if the alarm had fired (no confirmation, nothing to withdraw), and writes nothing.
#[tokio::test]
async fn a_dry_run_plans_for_a_region_whose_alarm_is_ok_now() {
    let world = World::new(2, json!({})).await;
    let mut payload = alarm_action(&world.change("us-east-1", "ALARM").await);
    world.change("us-east-1", "OK").await;
    payload["multisite"] = json!({"dry_run": true});

    let report = only(world.deliver("us-east-1", payload).await.expect("dry run"));

    assert_eq!(report.outcome, Outcome::DryRun, "{report:?}");
    let actions: Vec<&str> = report.plan.as_ref().expect("plan").actions.iter().map(|a| a.name()).collect();
    assert_eq!(actions, [out_of_routing_action(), "MoveAuroraWriter"]);
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
    assert!(!world.out_of_routing("us-east-1").await);
}

/// An operator's request (what `multisite evacuate` / `failback` sends), made at `at_ms`.
fn operator_request(action: &str, region: &str, at_ms: u64) -> Value {
    json!({"multisite_operator_request": {
        "action": action, "region": region, "requested_at_ms": at_ms,
        "operator": {"arn": format!("arn:aws:iam::{}:user/alice", deployment::ACCOUNT), "account": deployment::ACCOUNT}
    }})
}

#[tokio::test]
async fn an_operators_evacuation_racing_an_alarm_passes_the_same_arbiter_and_one_is_refused() {
    // Two Regions, min_healthy_regions 1: evacuating both would black-hole traffic.
    let world = World::new(2, json!({})).await;
    let eu = world.change("eu-west-1", "ALARM").await;
    let (operator, alarm) = tokio::join!(
        world.handle_in(HOME, operator_request("evacuate", "us-east-1", T0)),
        world.deliver("eu-west-1", eu)
    );
    let (operator, alarm) = (only(operator.expect("operator")), only(alarm.expect("alarm")));
    assert_eq!(operator.trigger, Trigger::Operator);
    let outcomes = [operator.outcome, alarm.outcome];
    assert!(outcomes.contains(&Outcome::Reconciled) && outcomes.contains(&Outcome::Refused), "{outcomes:?}");
    let refused = if operator.outcome == Outcome::Refused { &operator } else { &alarm };
    assert!(reason(refused).contains("min_healthy_regions"), "{refused:?}");
    let out = [world.out_of_routing("us-east-1").await, world.out_of_routing("eu-west-1").await];
    assert_eq!(out.iter().filter(|o| **o).count(), 1, "exactly one Region out of routing: {out:?}");
}

#[tokio::test]
async fn an_operators_evacuation_holds_through_the_schedule_and_its_failback_passes_the_cool_down_and_the_gate() {
    // auto_failback off, the default cool-down (300 s).
    let world = World::new(3, json!({})).await;
    let evacuated = only(world.handle_in(HOME, operator_request("evacuate", "us-east-1", T0)).await.expect("evacuate"));
    assert_eq!((evacuated.outcome, evacuated.transition_recorded), (Outcome::Reconciled, true), "{evacuated:?}");
    assert!(evacuated.operator.as_deref().is_some_and(|o| o.ends_with(":user/alice")), "{evacuated:?}");
    assert!(world.out_of_routing("us-east-1").await);
    let cause = world.fleet().await.regions["us-east-1"].cause.clone();
    assert!(cause.starts_with("operator#arn:aws:iam::") && cause.ends_with("#evacuate"), "{cause}");

    // At once back: the cool-down refuses it, as it would an alarm's.
    let early =
        only(world.handle_in(HOME, operator_request("failback", "us-east-1", T0 + 1_000)).await.expect("early"));
    assert_eq!(early.outcome, Outcome::FailbackPending, "{early:?}");
    assert!(reason(&early).contains("cool-down"), "{early:?}");

    // An hour later its alarm is OK (it never alarmed): the scheduled reconcile keeps it out.
    world.clock.advance_ms(3_600_000);
    let actor = world.deployment.watcher("us-east-1");
    world.handle_in(&actor, scheduled()).await.expect("scheduled");
    assert_eq!(world.status("us-east-1").await, RegionStatus::Evacuated, "an operator's evacuation holds");
    assert!(world.out_of_routing("us-east-1").await);

    // No fresh lag-probe verdict: the gate waits. With one: back, with auto_failback off.
    let now = world.clock.now_ms();
    let gated = only(world.handle_in(HOME, operator_request("failback", "us-east-1", now)).await.expect("gated"));
    assert_eq!(gated.outcome, Outcome::FailbackPending, "{gated:?}");
    world.put_probe(HOME, &good_probe(now, &REGIONS), 1).await;
    let back = only(world.handle_in(HOME, operator_request("failback", "us-east-1", now + 1)).await.expect("back"));
    assert_eq!(back.outcome, Outcome::Reconciled, "{back:?}");
    assert!(!world.out_of_routing("us-east-1").await);
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
    assert_eq!(world.transitions("us-east-1").await, 2, "the evacuation and the failback");

    // The first request replayed an hour later: refused before any call.
    world.emulator.clear_requests();
    let replay = world.handle_in(HOME, operator_request("evacuate", "us-east-1", T0)).await.expect_err("replay");
    assert_eq!(replay.error_type(), "InvalidEvent", "{replay}");
    assert!(world.emulator.requests().is_empty(), "no AWS call");
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
}

backend_tests!();

//! failover through its real handler against the emulator, fed by the `events/` files: 2- and
//! 3-Region evacuations, static stability with the failed Region's APIs down, the min-healthy
//! rule, duplicate deliveries, failback gates, dry run and malformed input.

use failover::{Deps, Outcome, Report};
use multisite_tests::Emulator;
use multisite_tests::deployment::{self, Deployment};
use multisite_tests::fixtures::{describe_global, eventually, writer_arn};
use multisite_tests::instances::Instances;
use multisite_tests::roles::Function;
use serde_json::{Value, json};
use shared::clock::{Clock, FixedClock};
use shared::ledger::{self, ProbeSummary, RegionStatus};
use shared::{Ledger, RegionalClients, Topology};
use std::path::PathBuf;
use std::time::Duration;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const HOME: &str = "eu-west-1";
const T0: u64 = 1_800_000_000_000;

fn event(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("event JSON")
}

/// The direct-action ALARM sample, retargeted at another Region's alarm.
fn alarm_for(region: &str, state: &str) -> Value {
    let mut e = event(&format!("alarm-alarm-action-us-east-1-{}.json", state.to_lowercase()));
    e["alarmData"]["alarmName"] = format!("web-{region}-unhealthy").into();
    e
}

/// A multi-Region deployment in the emulator: health checks, an Aurora global cluster with a
/// member per Region (writer in the first), the ledger table, and the topology describing them.
/// The handler runs as deployed in HOME, signed with failover's role from template.yaml; the
/// test's own checks use the administrator's clients.
struct World {
    emulator: Emulator,
    topology: Topology,
    /// The administrator's clients (set-up and checks).
    clients: RegionalClients,
    /// failover's role, as the stack in HOME deploys it.
    function_clients: RegionalClients,
    clock: FixedClock,
    global_id: String,
}

impl World {
    async fn new(n: usize, policy: Value) -> Self {
        let emulator = Emulator::start();
        emulator.set_timing(100, 100, 200);
        let deployment = Deployment::spec(&REGIONS[..n])
            .with_aurora()
            .with_dns()
            .with_failover_policy(policy)
            .create(&emulator)
            .await;
        let global_id = deployment.global_cluster_id.clone().expect("global cluster");
        // Clients for every Region (a 2-Region world still has ap-southeast-1 clients for checks).
        let clients = emulator.clients(&REGIONS).await;
        let function_clients = deployment.function_clients(&emulator, Function::Failover, HOME).await;
        emulator.clear_requests();
        Self {
            emulator,
            topology: deployment.topology,
            clients,
            function_clients,
            clock: FixedClock::at(T0),
            global_id,
        }
    }

    fn deps(&self) -> Deps<'_> {
        Deps { topology: &self.topology, clients: &self.function_clients, home_region: HOME, clock: &self.clock }
    }

    async fn handle(&self, payload: Value) -> Result<Vec<Report>, shared::Error> {
        failover::handle(payload, &self.deps()).await
    }

    async fn inverted(&self, region: &str) -> bool {
        let id = &self.topology.cell(region).expect("cell").health_check_id;
        let route53 = &self.clients.region(HOME).expect("home").route53;
        let hc = route53.get_health_check().health_check_id(id).send().await.expect("health check");
        // Forced unhealthy: Inverted and Disabled together.
        let config = hc.health_check.and_then(|h| h.health_check_config).expect("config");
        assert_eq!(config.inverted, config.disabled, "Inverted and Disabled move together: {config:?}");
        config.inverted == Some(true)
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
        let rds = &self.clients.region(HOME).expect("home").rds;
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

    fn ledger(&self) -> Ledger {
        Ledger::new(self.clients.region(HOME).expect("home").dynamodb.clone(), "multisite-ledger", HOME)
    }

    async fn status(&self, region: &str) -> RegionStatus {
        self.ledger().fleet_status().await.expect("fleet").0.status_of(region)
    }

    async fn transitions(&self, region: &str) -> usize {
        self.ledger().list::<Value>(&ledger::transition_pk(region)).await.expect("transitions").len()
    }
}

fn only(reports: Vec<Report>) -> Report {
    assert_eq!(reports.len(), 1);
    reports.into_iter().next().expect("one report")
}

#[tokio::test]
async fn two_region_evacuation_inverts_the_check_and_moves_the_writer() {
    let world = World::new(2, json!({})).await;

    let report = only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("evacuated"));

    assert_eq!(report.outcome, Outcome::Reconciled);
    assert!(report.transition_recorded);
    assert!(world.inverted("us-east-1").await, "latency routing no longer answers with us-east-1");
    assert!(!world.inverted("eu-west-1").await);
    world.wait_writer("eu-west-1").await;
    assert_eq!(world.status("us-east-1").await, RegionStatus::Evacuated);
    assert_eq!(world.transitions("us-east-1").await, 1);
    let rds_calls: Vec<_> =
        world.emulator.requests().into_iter().filter(|r| r.operation == "FailoverGlobalCluster").collect();
    assert_eq!(rds_calls.len(), 1);
    assert_eq!(rds_calls[0].region, "eu-west-1", "RDS failover is called in the target Region");
}

#[tokio::test]
async fn three_region_evacuation_via_eventbridge_and_sns_moves_the_writer_only_from_the_failed_region() {
    let world = World::new(3, json!({})).await;

    // ap-southeast-1 holds no writer: only its check flips.
    let mut ap = event("alarm-eventbridge-us-east-1-alarm.json");
    ap["detail"]["alarmName"] = "web-ap-southeast-1-unhealthy".into();
    let report = only(world.handle(ap).await.expect("ap evacuated"));
    assert_eq!(report.outcome, Outcome::Reconciled);
    assert!(world.inverted("ap-southeast-1").await);
    assert_eq!(world.writer_region().await, "us-east-1", "writer untouched");
    assert!(!world.emulator.requests().iter().any(|r| r.operation == "FailoverGlobalCluster"));

    // us-east-1 (the writer) through SNS, inside the cool-down of nothing: allowed (min 1 healthy).
    world.clock.advance_ms(1_000);
    let report = only(world.handle(event("alarm-sns-us-east-1-alarm.json")).await.expect("us-east-1 evacuated"));
    assert_eq!(report.outcome, Outcome::Reconciled);
    assert!(world.inverted("us-east-1").await);
    world.wait_writer("eu-west-1").await;
}

#[tokio::test]
async fn when_the_own_region_is_out_the_observation_is_made_again_from_an_active_region() {
    let world = World::new(3, json!({})).await;
    // The function's own Region is evacuated first (it then acts from us-east-1)...
    let mut own = event("alarm-eventbridge-us-east-1-alarm.json");
    own["detail"]["alarmName"] = format!("web-{HOME}-unhealthy").into();
    assert_eq!(only(world.handle(own).await.expect("own Region evacuated")).outcome, Outcome::Reconciled);
    world.clock.advance_ms(1_000);
    world.emulator.clear_requests();

    // ...then ap-southeast-1: the observation started from the own Region before the fleet was
    // read is not used; us-east-1 observes again and acts.
    let mut ap = event("alarm-eventbridge-us-east-1-alarm.json");
    ap["detail"]["alarmName"] = "web-ap-southeast-1-unhealthy".into();
    let report = only(world.handle(ap).await.expect("ap evacuated"));
    assert_eq!(report.outcome, Outcome::Reconciled);
    assert!(world.inverted("ap-southeast-1").await);
    assert!(report.observed.as_ref().and_then(|o| o.aurora.as_ref()).is_some(), "{report:?}");
    let describes: Vec<String> = world
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.operation == "DescribeGlobalClusters")
        .map(|r| r.region)
        .collect();
    assert_eq!(
        describes,
        vec![HOME.to_owned(), "us-east-1".to_owned()],
        "early from the own Region, then from the acting one"
    );
}

#[tokio::test]
async fn evacuation_completes_with_the_failed_regions_apis_down() {
    let world = World::new(3, json!({})).await;
    // us-east-1's regional APIs fail; Route 53's global control plane is modelled as surviving.
    world.emulator.control(
        "POST",
        "/_multisite/outage",
        Some(&json!({"region": "us-east-1", "down": true, "except_services": ["route53"]})),
    );

    let report = only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("evacuated"));

    assert_eq!(report.outcome, Outcome::Reconciled);
    assert!(world.inverted("us-east-1").await);
    world.wait_writer("eu-west-1").await;
    let to_failed: Vec<_> =
        world.emulator.requests().into_iter().filter(|r| r.region == "us-east-1" && r.service != "route53").collect();
    assert!(to_failed.is_empty(), "no call to the failed Region on the critical path: {to_failed:?}");
}

#[tokio::test]
async fn when_route53_fails_the_aurora_step_still_runs_and_the_retry_converges() {
    let world = World::new(2, json!({})).await;
    // Route 53 calls are made from the acting (surviving) Region's client.
    world.emulator.throttle("eu-west-1", 1000, Some("route53"), Some("UpdateHealthCheck"));

    let err = world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect_err("route53 step fails");
    assert!(err.is_retryable(), "{err}");
    world.wait_writer("eu-west-1").await;
    assert!(!world.inverted("us-east-1").await);

    world.emulator.throttle("eu-west-1", 0, Some("route53"), Some("UpdateHealthCheck"));
    let report = only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("retry converges"));
    assert_eq!(report.outcome, Outcome::Reconciled);
    assert!(!report.transition_recorded, "the retry is the same transition");
    assert!(world.inverted("us-east-1").await);
    assert_eq!(world.transitions("us-east-1").await, 1);
}

#[tokio::test]
async fn both_regions_alarming_evacuates_one_and_refuses_the_other() {
    let world = World::new(2, json!({})).await;

    let (a, b) =
        tokio::join!(world.handle(alarm_for("us-east-1", "ALARM")), world.handle(alarm_for("eu-west-1", "ALARM")));
    let outcomes = [only(a.expect("a")).outcome, only(b.expect("b")).outcome];

    assert!(outcomes.contains(&Outcome::Reconciled) && outcomes.contains(&Outcome::Refused), "{outcomes:?}");
    let inverted = [world.inverted("us-east-1").await, world.inverted("eu-west-1").await];
    assert_eq!(inverted.iter().filter(|i| **i).count(), 1, "exactly one Region out of DNS: {inverted:?}");
    let statuses = [world.status("us-east-1").await, world.status("eu-west-1").await];
    assert!(statuses.contains(&RegionStatus::Active), "one Region stays active: {statuses:?}");
}

#[tokio::test]
async fn ten_concurrent_duplicate_deliveries_record_exactly_one_transition() {
    let world = World::new(3, json!({})).await;
    let payload = event("alarm-eventbridge-us-east-1-alarm.json");

    let results = deliver_concurrently(&world, &payload, 10).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let recorded = results.iter().filter_map(|r| r.as_ref().ok()).filter(|r| r.transition_recorded).count();
    assert_eq!(recorded, 1);
    assert_eq!(world.transitions("us-east-1").await, 1);
    assert!(world.inverted("us-east-1").await);
    world.wait_writer("eu-west-1").await;
    let failovers =
        world.emulator.requests().iter().filter(|r| r.operation == "FailoverGlobalCluster" && r.status == 200).count();
    assert_eq!(failovers, 1, "one writer move, whatever the duplicates");

    // A later duplicate changes nothing.
    world.emulator.clear_requests();
    let again = only(world.handle(payload).await.expect("again"));
    assert!(again.plan.expect("plan").actions.is_empty());
    assert!(
        !world
            .emulator
            .requests()
            .iter()
            .any(|r| r.operation == "UpdateHealthCheck" || r.operation.starts_with("Failover"))
    );
}

async fn deliver_concurrently(world: &World, payload: &Value, n: usize) -> Vec<Result<Report, shared::Error>> {
    let calls = (0..n).map(|_| async { world.handle(payload.clone()).await.map(only) });
    futures_util::future::join_all(calls).await
}

#[tokio::test]
async fn failback_waits_for_the_gates_then_restores_the_region() {
    let world = World::new(2, json!({"auto_failback": true, "cooldown_seconds": 60})).await;
    only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("evacuated"));
    world.wait_writer("eu-west-1").await;

    // Inside the cool-down: pending.
    world.clock.advance_ms(10_000);
    let pending = only(world.handle(event("alarm-alarm-action-us-east-1-ok.json")).await.expect("gated"));
    assert_eq!(pending.outcome, Outcome::FailbackPending);
    assert!(pending.reason.as_deref().unwrap_or_default().contains("cool-down"), "{:?}", pending.reason);
    assert!(world.inverted("us-east-1").await);

    // Cool-down over, but the lag-probe says the RPO budget is breached: pending.
    world.clock.advance_ms(120_000);
    let breached = ProbeSummary {
        measured_at_ms: world.clock.now_ms(),
        max_lag_ms: Some(5_000),
        rpo_budget_ms: 2_000,
        rpo_breached: true,
        unreachable_regions: vec![],
        readiness_failures: 0,
    };
    world
        .ledger()
        .put(ledger::PROBE_PK, ledger::PROBE_LATEST_SK, &breached, 1, world.clock.now_ms())
        .await
        .expect("probe");
    let pending = only(world.handle(event("alarm-alarm-action-us-east-1-ok.json")).await.expect("gated"));
    assert_eq!(pending.outcome, Outcome::FailbackPending);
    assert!(pending.reason.as_deref().unwrap_or_default().contains("RPO"), "{:?}", pending.reason);

    // A good probe: failback restores the check; the writer stays unless asked.
    let good = ProbeSummary { max_lag_ms: Some(400), rpo_breached: false, ..breached };
    world.ledger().put(ledger::PROBE_PK, ledger::PROBE_LATEST_SK, &good, 2, world.clock.now_ms()).await.expect("probe");
    let mut ok = event("alarm-alarm-action-us-east-1-ok.json");
    ok["multisite"] = json!({"restore_writer": true});
    let done = only(world.handle(ok).await.expect("failback"));
    assert_eq!(done.outcome, Outcome::Reconciled);
    assert!(done.transition_recorded);
    assert!(!world.inverted("us-east-1").await);
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
    world.wait_writer("us-east-1").await;
}

#[tokio::test]
async fn failback_without_auto_failback_is_reported_pending() {
    let world = World::new(2, json!({})).await;
    only(world.handle(event("alarm-sns-us-east-1-alarm.json")).await.expect("evacuated"));
    world.clock.advance_ms(3_600_000);
    let pending = only(world.handle(event("alarm-sns-us-east-1-ok.json")).await.expect("pending"));
    assert_eq!(pending.outcome, Outcome::FailbackPending);
    assert!(pending.reason.as_deref().unwrap_or_default().contains("manually"));
    assert!(world.inverted("us-east-1").await);
}

#[tokio::test]
async fn dry_run_returns_the_plan_and_changes_nothing() {
    let world = World::new(2, json!({})).await;
    let mut payload = event("alarm-alarm-action-us-east-1-alarm.json");
    payload["multisite"] = json!({"dry_run": true});

    let report = only(world.handle(payload).await.expect("dry run"));

    assert_eq!(report.outcome, Outcome::DryRun);
    let actions: Vec<&str> = report.plan.as_ref().expect("plan").actions.iter().map(|a| a.name()).collect();
    assert_eq!(actions, ["InvertHealthCheck", "MoveAuroraWriter"]);
    assert!(!world.inverted("us-east-1").await);
    assert_eq!(world.writer_region().await, "us-east-1");
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
    let writes = world
        .emulator
        .requests()
        .into_iter()
        .filter(|r| !r.operation.starts_with("Get") && !r.operation.starts_with("Describe") && r.operation != "Query")
        .count();
    assert_eq!(writes, 0);
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

    let report = only(world.handle(alarm_for("sa-east-1", "ALARM")).await.expect("ignored"));
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
    let us_check = world.topology.cell("us-east-1").expect("cell").health_check_id.clone();
    world.emulator.set_health_check_failure(&us_check, true);
    assert_eq!(world.answer_for_north_america().await, "eu-west-1", "plain health checks already route away");

    only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("evacuated"));

    assert!(world.inverted("us-east-1").await);
    assert_eq!(world.answer_for_north_america().await, "eu-west-1", "forced unhealthy stays unhealthy");
    world.emulator.set_health_check_failure(&us_check, false);
    assert_eq!(world.answer_for_north_america().await, "eu-west-1", "until failback, whatever the endpoint does");
}

/// Three Regions, the ledger a Global Table whose replicas are 1 s apart, and failover as deployed
/// in each Region (its own stack's role and ledger replica).
async fn fleet_with_ledger_replicas_1_s_apart() -> (Emulator, Deployment, Instances) {
    let emulator = Emulator::start();
    emulator.set_timing(100, 100, 200);
    let deployment = Deployment::spec(&REGIONS).with_aurora().with_dns().with_ledger_replicas().create(&emulator).await;
    emulator.set_replication_delay(1_000);
    let fleet = Instances::deploy(&emulator, &deployment, Function::Failover).await;
    (emulator, deployment, fleet)
}

/// The harness the failover-safety work builds on: one alarm change delivered at once to failover
/// as deployed in each of three Regions (an SNS topic with a subscription per Region), each under
/// its own stack's role and with its own ledger replica, the replicas 1 s apart. It prints what
/// each instance did; what they must do is the safety rules' business, so this test asserts what
/// the harness guarantees: every instance ran, in its own Region, under its own role, against its
/// own ledger replica, and no call was denied.
#[tokio::test]
async fn one_alarm_change_reaches_failover_in_three_regions_at_once() {
    let (emulator, deployment, fleet) = fleet_with_ledger_replicas_1_s_apart().await;
    let clock = FixedClock::at(T0);
    let payload = event("alarm-sns-us-east-1-alarm.json");
    emulator.clear_requests();

    let delivered = fleet
        .deliver_all(async |instance| {
            let deps = Deps {
                topology: &deployment.topology,
                clients: &instance.clients,
                home_region: &instance.region,
                clock: &clock,
            };
            failover::handle(payload.clone(), &deps).await
        })
        .await;

    for d in &delivered {
        match &d.outcome {
            Ok(reports) => {
                for r in reports {
                    let did: Vec<String> = r.steps.iter().map(|s| format!("{:?} ok={}", s.action, s.ok)).collect();
                    eprintln!(
                        "failover in {} ({:?}..{:?}): {:?} transition_recorded={} reason={:?} did {did:?}",
                        d.region, d.started, d.finished, r.outcome, r.transition_recorded, r.reason
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
    for d in &delivered {
        assert!(d.outcome.is_ok(), "failover in {} failed: {:?}", d.region, d.outcome);
        let role = &fleet.instance(&d.region).roles.role_of(Function::Failover).role_name;
        let ledger_calls: Vec<_> = requests
            .iter()
            .filter(|r| r.service == "dynamodb" && r.principal.as_deref().is_some_and(|p| p.contains(role.as_str())))
            .collect();
        assert!(!ledger_calls.is_empty(), "the instance in {} used the ledger under its role {role}", d.region);
        assert!(
            ledger_calls.iter().all(|r| r.region == d.region),
            "each instance reads and writes its own Region's ledger replica: {ledger_calls:?}"
        );
    }
    // The replicas disagreed while the writes replicated; after the delay, last writer wins and
    // every replica holds the same fleet record, as a Global Table converges on AWS.
    let admin = emulator.clients(&REGIONS).await;
    let fleet_in = |region: &'static str| {
        let ddb = admin.region(region).expect("region").dynamodb.clone();
        async move { Ledger::new(ddb, "multisite-ledger", region).fleet_status().await.expect("fleet") }
    };
    let converged = eventually(Duration::from_secs(5), Duration::from_millis(100), || async {
        let (a, b, c) = tokio::join!(fleet_in(REGIONS[0]), fleet_in(REGIONS[1]), fleet_in(REGIONS[2]));
        (a == b && b == c).then_some(a)
    })
    .await;
    let (fleet, _) = converged.expect("the ledger replicas converge after the replication delay");
    assert_eq!(fleet.status_of("us-east-1"), RegionStatus::Evacuated);
}

/// Enforcement bites: the rendered role minus `route53:UpdateHealthCheck` fails the routing step
/// with a permanent AccessDenied that names the action and the health check; the independent
/// Aurora step still runs.
#[tokio::test]
async fn a_role_missing_one_action_fails_that_step_with_a_permanent_access_denied() {
    let world = World::new(2, json!({})).await;
    let deployment_roles = multisite_tests::roles::stack_roles_for(&world.emulator, &world.topology, HOME);
    let role = deployment_roles.role_of(Function::Failover);
    let mut policy = role.policies["failover"].clone();
    let statements = policy["Statement"].as_array_mut().expect("statements");
    let health_checks = statements.iter_mut().find(|s| s["Sid"] == "HealthChecks").expect("HealthChecks statement");
    health_checks["Action"] = json!(["route53:GetHealthCheck"]);
    deployment_roles.put_policy(&world.emulator, Function::Failover, "failover", Some(&policy));
    let clients = deployment_roles.clients(&world.emulator, Function::Failover, &REGIONS[..2]).await;
    let deps = Deps { topology: &world.topology, clients: &clients, home_region: HOME, clock: &world.clock };

    let err = failover::handle(event("alarm-alarm-action-us-east-1-alarm.json"), &deps).await.expect_err("denied");

    assert_eq!(err.error_type(), "AccessDenied", "{err}");
    assert!(!err.is_retryable(), "a denial is permanent: Lambda's retries cannot help ({err})");
    let us_check = &world.topology.cell("us-east-1").expect("cell").health_check_id;
    let text = err.to_string();
    assert!(text.contains("route53:UpdateHealthCheck"), "names the action: {text}");
    assert!(text.contains(&format!("arn:aws:route53:::healthcheck/{us_check}")), "names the resource: {text}");
    assert!(!world.inverted("us-east-1").await, "the denied step changed nothing");
    world.wait_writer("eu-west-1").await;
    let denied: Vec<_> = world.emulator.requests().into_iter().filter_map(|r| r.denied).collect();
    assert_eq!(denied.len(), 1, "one denied call: {denied:?}");
    assert_eq!(denied[0].action, "route53:UpdateHealthCheck");
}

/// Enforcement bites on resources too: failover running in HOME with the role of the us-east-1
/// stack (whose ledger statement names the us-east-1 replica) is denied its own Region's ledger,
/// and nothing is changed.
#[tokio::test]
async fn a_role_scoped_to_another_regions_ledger_is_denied_and_changes_nothing() {
    let world = World::new(2, json!({})).await;
    let clients =
        multisite_tests::roles::function_clients(&world.emulator, &world.topology, Function::Failover, "us-east-1")
            .await;
    let deps = Deps { topology: &world.topology, clients: &clients, home_region: HOME, clock: &world.clock };

    let err = failover::handle(event("alarm-alarm-action-us-east-1-alarm.json"), &deps).await.expect_err("denied");

    assert_eq!(err.error_type(), "AccessDenied", "{err}");
    assert!(!err.is_retryable());
    let text = err.to_string();
    assert!(text.contains("arn:aws:dynamodb:eu-west-1:123456789012:table/multisite-ledger"), "{text}");
    assert!(!world.inverted("us-east-1").await);
    assert_eq!(world.writer_region().await, "us-east-1");
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active);
}

/// Deliveries in a chosen order and timing: the same alarm change reaches failover in eu-west-1
/// first and, 1.5 s later (after the ledger's 1 s replication delay), in ap-southeast-1, which by
/// then reads the evacuation from its own replica and records nothing new.
#[tokio::test]
async fn a_late_delivery_in_another_region_sees_the_replicated_evacuation() {
    let (_emulator, deployment, fleet) = fleet_with_ledger_replicas_1_s_apart().await;
    let clock = FixedClock::at(T0);
    let payload = event("alarm-eventbridge-us-east-1-alarm.json");

    let delivered = fleet
        .deliver_timed(&[("eu-west-1", Duration::ZERO), ("ap-southeast-1", Duration::from_millis(1_500))], async |i| {
            let deps =
                Deps { topology: &deployment.topology, clients: &i.clients, home_region: &i.region, clock: &clock };
            failover::handle(payload.clone(), &deps).await.map(only)
        })
        .await;

    assert_eq!(delivered[0].region, "eu-west-1");
    assert_eq!(delivered[1].region, "ap-southeast-1");
    assert!(delivered[1].started >= Duration::from_millis(1_500), "{:?}", delivered[1].started);
    let first = delivered[0].outcome.as_ref().expect("first delivery");
    let late = delivered[1].outcome.as_ref().expect("late delivery");
    assert!(first.transition_recorded, "{first:?}");
    assert_eq!(late.outcome, Outcome::Reconciled, "{late:?}");
    assert!(!late.transition_recorded, "the late delivery read the replicated evacuation: {late:?}");
}

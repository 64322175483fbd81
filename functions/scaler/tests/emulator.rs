//! scaler through its real handler against the emulator, fed by the `events/` files: Auto Scaling
//! groups with a launch configuration in every Region (moto starts their instances), evacuation,
//! duplicates, static stability with the failed Region's APIs down, restore after failback,
//! restore skipped after a change by hand, refusals, bounds, dry run, failures and malformed input;
//! the alarm screen shared with failover (actor Region, authenticity, ordering) and both scheduled
//! envelopes.
//!
//! In these deployments each Region's alarm lives in its watcher Region (the next cell): the
//! `events/` samples are us-east-1's alarm as it comes from eu-west-1, where the handler runs.

use multisite_tests::deployment::{self, Deployment};
use multisite_tests::roles::Function;
use multisite_tests::{Emulator, EmulatorLease};
use scaler::record::GroupScaling;
use scaler::{Deps, GroupAction, Outcome, Report, Trigger};
use serde_json::{Value, json};
use shared::alarm::Identity;
use shared::capacity::GroupSizes;
use shared::clock::{Clock, FixedClock};
use shared::ledger::{self, FleetStatus, RegionStatus, RegionStatusEntry};
use shared::{Ledger, RegionalClients, Topology};
use std::path::PathBuf;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const HOME: &str = "eu-west-1";
const T0: u64 = 1_800_000_000_000;

fn event(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("event file")).expect("event JSON")
}

/// Auto Scaling groups (launch configuration, instances started by moto) in each Region, the
/// ledger table, and the topology describing them.
/// The handler runs as deployed in HOME, signed with scaler's role from template.yaml; the test's
/// own set-up and checks use the administrator's clients.
struct World {
    emulator: EmulatorLease,
    deployment: Deployment,
    topology: Topology,
    /// The administrator's clients (set-up and checks).
    clients: RegionalClients,
    /// scaler's role, as the stack in HOME deploys it.
    function_clients: RegionalClients,
    clock: FixedClock,
    identity: Identity,
}

impl World {
    async fn new(n: usize, sizes: GroupSizes, policy: Value, scaling: Value) -> Self {
        let emulator = Emulator::lease();
        let deployment = Deployment::spec(&REGIONS[..n])
            .with_groups(sizes)
            .with_failover_policy(policy)
            .with_scaling(scaling)
            .create(&emulator)
            .await;
        let clients = emulator.clients(&REGIONS).await;
        let function_clients = deployment.function_clients(&emulator, Function::Scaler, HOME).await;
        emulator.clear_requests();
        let topology = deployment.topology.clone();
        Self {
            emulator,
            deployment,
            topology,
            clients,
            function_clients,
            clock: FixedClock::at(T0),
            identity: deployment::identity(),
        }
    }

    fn deps(&self) -> Deps<'_> {
        Deps {
            topology: &self.topology,
            clients: &self.function_clients,
            home_region: HOME,
            clock: &self.clock,
            identity: &self.identity,
        }
    }

    async fn handle(&self, payload: Value) -> Result<Vec<Report>, shared::Error> {
        scaler::handle(payload, &self.deps()).await
    }

    /// The handler as the stack in `region` runs it (its own role, its own home Region).
    async fn handle_in(&self, region: &str, payload: Value) -> Result<Vec<Report>, shared::Error> {
        if region == HOME {
            return self.handle(payload).await;
        }
        let clients = self.deployment.function_clients(&self.emulator, Function::Scaler, region).await;
        let deps = Deps {
            topology: &self.topology,
            clients: &clients,
            home_region: region,
            clock: &self.clock,
            identity: &self.identity,
        };
        scaler::handle(payload, &deps).await
    }

    /// Records, as failover does with each transition it makes, the state-change time of the
    /// newest change of `alarm`.
    async fn set_alarm_mark(&self, alarm: &str, changed_at_ms: u64) {
        let (mut fleet, version): (FleetStatus, u64) = self.ledger().fleet_status().await.expect("fleet");
        fleet.alarms.insert(alarm.to_owned(), changed_at_ms);
        let written = self.ledger().put_fleet_if_version(&fleet, version, self.clock.now_ms()).await.expect("fleet");
        assert_eq!(written, ledger::WriteOutcome::Written, "nothing else writes the fleet in these tests");
    }

    async fn sizes(&self, region: &str) -> GroupSizes {
        self.group(region).await.sizes
    }

    async fn group(&self, region: &str) -> scaler::asg::GroupState {
        let autoscaling = &self.clients.region(region).expect("region").autoscaling;
        scaler::asg::describe_group(autoscaling, region, &format!("web-{region}")).await.expect("describe")
    }

    async fn set_sizes(&self, region: &str, sizes: GroupSizes) {
        let autoscaling = &self.clients.region(region).expect("region").autoscaling;
        scaler::asg::update_group(autoscaling, region, &format!("web-{region}"), sizes).await.expect("resize by hand");
    }

    fn ledger(&self) -> Ledger {
        Ledger::new(self.clients.region(HOME).expect("home").dynamodb.clone(), "multisite-ledger", HOME)
    }

    /// Writes the fleet status as failover would.
    async fn set_status(&self, region: &str, status: RegionStatus) {
        let (mut fleet, version): (FleetStatus, u64) = self.ledger().fleet_status().await.expect("fleet");
        fleet.regions.insert(
            region.to_owned(),
            RegionStatusEntry { status, changed_at_ms: self.clock.now_ms(), cause: "test".into() },
        );
        let written = self.ledger().put_fleet_if_version(&fleet, version, self.clock.now_ms()).await.expect("fleet");
        assert_eq!(written, ledger::WriteOutcome::Written, "nothing else writes the fleet in these tests");
    }

    /// The scaler's group records, in Region order.
    async fn records(&self) -> Vec<GroupScaling> {
        let records = self.ledger().list::<GroupScaling>(ledger::SCALING_PK).await.expect("records");
        let mut records: Vec<GroupScaling> = records.into_iter().map(|r| r.body).collect();
        records.sort_by(|a, b| a.region.cmp(&b.region));
        records
    }

    async fn record(&self, region: &str) -> GroupScaling {
        self.records()
            .await
            .into_iter()
            .find(|r| r.region == region)
            .unwrap_or_else(|| panic!("no record for {region}"))
    }

    fn updates(&self) -> Vec<multisite_tests::RequestRecord> {
        self.emulator.requests().into_iter().filter(|r| r.operation == "UpdateAutoScalingGroup").collect()
    }
}

fn only(reports: Vec<Report>) -> Report {
    assert_eq!(reports.len(), 1);
    reports.into_iter().next().expect("one report")
}

fn group<'a>(report: &'a Report, region: &str) -> &'a scaler::GroupReport {
    report.groups.iter().find(|g| g.region == region).unwrap_or_else(|| panic!("no group for {region}: {report:?}"))
}

const SIZES: GroupSizes = GroupSizes::new(1, 2, 10);

#[tokio::test]
async fn evacuation_scales_the_survivors_to_carry_the_whole_load_and_waits_for_them() {
    let scaling = json!({"readiness_wait_seconds": 10, "readiness_poll_ms": 50});
    let world = World::new(3, SIZES, json!({}), scaling).await;

    let report = only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("scaled"));

    // (checked before this test itself describes us-east-1)
    let asg_calls_to_failed: Vec<_> = world
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.region == "us-east-1" && r.service == "autoscaling")
        .collect();
    assert!(asg_calls_to_failed.is_empty(), "{asg_calls_to_failed:?}");
    // 2 x 3 / 2 = 3 in each survivor, MinSize raised to match.
    assert_eq!(report.outcome, Outcome::Scaled, "{report:?}");
    assert_eq!(report.n_active_before, Some(3));
    for region in ["eu-west-1", "ap-southeast-1"] {
        assert_eq!(world.sizes(region).await, GroupSizes::new(3, 3, 10), "{region}");
        let g = group(&report, region);
        assert_eq!(g.action, GroupAction::Scaled);
        assert_eq!((g.ready, g.in_service), (Some(true), Some(3)), "{region}: readiness reported");
        assert_eq!(world.group(region).await.in_service, 3, "moto started the new instances");
    }
    assert_eq!(world.sizes("us-east-1").await, SIZES, "the evacuated Region is not touched");
    let records = world.records().await;
    assert_eq!(records.len(), 2);
    assert_eq!((records[0].region.as_str(), records[1].region.as_str()), ("ap-southeast-1", "eu-west-1"));
    assert!(records.iter().all(|r| r.baseline == SIZES && r.applied == GroupSizes::new(3, 3, 10) && r.settled));
    assert!(records.iter().all(|r| r.covering.keys().eq(["us-east-1"])), "{records:?}");
    assert!(
        records[0].reason.contains("3 Region(s) active at the baseline, 2 carry the load"),
        "{}",
        records[0].reason
    );
}

#[tokio::test]
async fn duplicate_deliveries_change_nothing_and_reuse_the_recorded_baseline() {
    let world = World::new(3, SIZES, json!({}), json!({})).await;
    only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("scaled"));
    // failover has meanwhile recorded the evacuation.
    world.set_status("us-east-1", RegionStatus::Evacuated).await;
    world.emulator.clear_requests();

    let duplicates = [
        event("alarm-sns-us-east-1-alarm.json"),
        event("alarm-eventbridge-us-east-1-alarm.json"),
        event("alarm-alarm-action-us-east-1-alarm.json"),
    ];
    let results = futures_util::future::join_all(duplicates.into_iter().map(|p| world.handle(p))).await;

    for result in results {
        let report = only(result.expect("duplicate"));
        assert_eq!(report.outcome, Outcome::Scaled);
        assert_eq!(report.n_active_before, Some(3), "the evacuated Region counts as active before");
        for g in &report.groups {
            assert_eq!(g.action, GroupAction::Unchanged, "{g:?}");
            assert!(g.baseline_reused);
            assert_eq!(g.baseline, Some(SIZES));
        }
    }
    assert!(world.updates().is_empty(), "no resize: {:?}", world.updates());
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(3, 3, 10), "not doubled twice");
    assert_eq!(world.records().await.len(), 2);
}

#[tokio::test]
async fn concurrent_first_deliveries_record_one_baseline_and_scale_once() {
    let world = World::new(2, SIZES, json!({}), json!({})).await;
    let payload = event("alarm-eventbridge-us-east-1-alarm.json");

    let results = futures_util::future::join_all((0..6).map(|_| world.handle(payload.clone()))).await;

    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(4, 4, 10));
    let records = world.records().await;
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].baseline, SIZES, "the pre-evacuation baseline, not a scaled value");
}

#[tokio::test]
async fn evacuation_with_the_failed_regions_apis_down_scales_the_survivor() {
    let world = World::new(2, SIZES, json!({}), json!({})).await;
    world.emulator.set_outage("us-east-1", true);

    let report = only(world.handle(event("alarm-sns-us-east-1-alarm.json")).await.expect("scaled"));

    assert_eq!(report.outcome, Outcome::Scaled);
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(4, 4, 10));
    let to_failed: Vec<_> = world.emulator.requests().into_iter().filter(|r| r.region == "us-east-1").collect();
    assert!(to_failed.is_empty(), "no call to the failed Region: {to_failed:?}");
}

fn scheduled() -> Value {
    event("scheduled-restore-sweep.json")
}

#[tokio::test]
async fn restore_after_failback_and_the_cooldown_puts_the_previous_sizes_back() {
    let world = World::new(2, SIZES, json!({"auto_failback": true, "cooldown_seconds": 60}), json!({})).await;
    only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("scaled"));
    world.set_status("us-east-1", RegionStatus::Evacuated).await;
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(4, 4, 10));

    // Healthy again, but failback is not recorded yet: the survivor keeps its capacity.
    world.clock.advance_ms(120_000);
    let pending = only(world.handle(event("alarm-alarm-action-us-east-1-ok.json")).await.expect("pending"));
    assert_eq!(pending.outcome, Outcome::RestorePending);
    assert!(pending.reason.as_deref().unwrap_or_default().contains("still Evacuated"), "{pending:?}");

    // Failback recorded; restore waits for the cool-down counted from the failback.
    world.set_status("us-east-1", RegionStatus::Active).await;
    world.clock.advance_ms(10_000);
    let pending = only(world.handle(event("alarm-sns-us-east-1-ok.json")).await.expect("pending"));
    assert_eq!(pending.outcome, Outcome::RestorePending, "{pending:?}");
    assert!(pending.reason.as_deref().unwrap_or_default().contains("cool-down"), "{pending:?}");
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(4, 4, 10));

    world.clock.advance_ms(60_000);
    let done = only(world.handle(event("alarm-eventbridge-us-east-1-ok.json")).await.expect("restored"));
    assert_eq!(done.outcome, Outcome::Restored, "{done:?}");
    assert_eq!(group(&done, "eu-west-1").action, GroupAction::Restored);
    assert_eq!(world.sizes("eu-west-1").await, SIZES);
    let record = world.record("eu-west-1").await;
    assert_eq!(record.closed.as_ref().map(|c| c.action), Some(GroupAction::Restored));
    assert!(record.settled && !record.is_open());

    // A repeated OK finds nothing left to restore.
    world.emulator.clear_requests();
    let again = only(world.handle(event("alarm-eventbridge-us-east-1-ok.json")).await.expect("again"));
    assert_eq!(again.outcome, Outcome::Ignored, "{again:?}");
    assert!(world.updates().is_empty());

    // A later evacuation records a fresh baseline over the closed record.
    world.clock.advance_ms(120_000);
    let mut later = event("alarm-alarm-action-us-east-1-alarm.json");
    later["alarmData"]["state"]["timestamp"] = "2027-01-16T10:00:00.000+0000".into();
    let report = only(world.handle(later).await.expect("scaled again"));
    assert_eq!(report.outcome, Outcome::Scaled, "{report:?}");
    assert!(!group(&report, "eu-west-1").baseline_reused);
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(4, 4, 10));
    assert!(world.record("eu-west-1").await.is_open());
}

#[tokio::test]
async fn an_ok_that_races_ahead_of_failback_is_restored_by_the_scheduled_sweep() {
    let world = World::new(2, SIZES, json!({"cooldown_seconds": 60}), json!({})).await;
    only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("scaled"));
    world.set_status("us-east-1", RegionStatus::Evacuated).await;

    // The OK arrives before failover records the failback: nothing to do yet.
    world.clock.advance_ms(100_000);
    let pending = only(world.handle(event("alarm-sns-us-east-1-ok.json")).await.expect("pending"));
    assert_eq!(pending.outcome, Outcome::RestorePending);

    // Failback recorded later (an operator's or the gated automatic one); no OK comes again.
    world.set_status("us-east-1", RegionStatus::Active).await;
    world.clock.advance_ms(30_000);
    let early = only(world.handle(scheduled()).await.expect("sweep inside the cool-down"));
    assert_eq!((early.trigger, early.outcome), (Trigger::RestoreSweep, Outcome::RestorePending), "{early:?}");
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(4, 4, 10));

    world.clock.advance_ms(31_000);
    let sweep = only(world.handle(scheduled()).await.expect("sweep"));
    assert_eq!(sweep.outcome, Outcome::Restored, "{sweep:?}");
    assert_eq!(world.sizes("eu-west-1").await, SIZES);

    world.emulator.clear_requests();
    let idle = only(world.handle(scheduled()).await.expect("idle sweep"));
    assert_eq!(idle.outcome, Outcome::Ignored, "{idle:?}");
    assert!(world.updates().is_empty());
    let asg_reads: Vec<_> = world.emulator.requests().into_iter().filter(|r| r.service == "autoscaling").collect();
    assert!(asg_reads.is_empty(), "an idle sweep reads only the ledger: {asg_reads:?}");
}

#[tokio::test]
async fn overlapping_evacuations_give_the_capacity_back_in_any_order() {
    // Three Regions of 2: us-east-1 then eu-west-1 evacuated, ap-southeast-1 carries 6.
    let world = World::new(3, SIZES, json!({"cooldown_seconds": 60}), json!({})).await;
    only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("first"));
    world.set_status("us-east-1", RegionStatus::Evacuated).await;
    world.clock.advance_ms(120_000);
    // eu-west-1's alarm lives in its watcher, ap-southeast-1, whose scaler acts on it.
    let mut eu = event("alarm-alarm-action-us-east-1-alarm.json");
    eu["alarmData"]["alarmName"] = "web-eu-west-1-unhealthy".into();
    eu["alarmArn"] = "arn:aws:cloudwatch:ap-southeast-1:123456789012:alarm:web-eu-west-1-unhealthy".into();
    let second = only(world.handle_in("ap-southeast-1", eu).await.expect("second"));
    assert_eq!(second.outcome, Outcome::Scaled, "{second:?}");
    world.set_status("eu-west-1", RegionStatus::Evacuated).await;
    assert_eq!(world.sizes("ap-southeast-1").await, GroupSizes::new(6, 6, 10), "2 x 3 / 1");
    assert_eq!(world.record("ap-southeast-1").await.baseline, SIZES, "one baseline for both evacuations");
    world.emulator.clear_requests();

    // us-east-1, evacuated first, comes back first: ap-southeast-1 shrinks only to what eu-west-1's
    // evacuation still needs (2 x 3 / 2 = 3), and eu-west-1's own group is not called.
    world.clock.advance_ms(10_000);
    world.set_status("us-east-1", RegionStatus::Active).await;
    world.clock.advance_ms(61_000);
    let sweep = only(world.handle(scheduled()).await.expect("sweep"));
    assert_eq!(sweep.outcome, Outcome::RestorePending, "eu-west-1 still evacuated: {sweep:?}");
    assert_eq!(world.sizes("ap-southeast-1").await, GroupSizes::new(3, 3, 10));
    assert_eq!(group(&sweep, "ap-southeast-1").covering, vec!["eu-west-1".to_owned()]);
    let to_evacuated: Vec<_> = world
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.region == "eu-west-1" && r.service == "autoscaling")
        .collect();
    assert!(to_evacuated.is_empty(), "{to_evacuated:?}");

    world.set_status("eu-west-1", RegionStatus::Active).await;
    world.clock.advance_ms(61_000);
    let done = only(world.handle(event("alarm-alarm-action-us-east-1-ok.json")).await.expect("restored"));
    assert_eq!(done.outcome, Outcome::Restored, "{done:?}");
    for region in REGIONS {
        assert_eq!(world.sizes(region).await, SIZES, "{region} back to its baseline");
    }
}

#[tokio::test]
async fn restore_leaves_a_group_changed_by_hand_and_restores_the_others() {
    let world = World::new(3, SIZES, json!({"cooldown_seconds": 60}), json!({})).await;
    only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("scaled"));
    world.set_status("us-east-1", RegionStatus::Evacuated).await;
    let by_hand = GroupSizes::new(3, 7, 10);
    world.set_sizes("eu-west-1", by_hand).await;
    world.clock.advance_ms(300_000);
    world.set_status("us-east-1", RegionStatus::Active).await;
    world.clock.advance_ms(60_000);

    let report = only(world.handle(event("alarm-alarm-action-us-east-1-ok.json")).await.expect("restored"));

    assert_eq!(report.outcome, Outcome::Restored, "{report:?}");
    let eu = group(&report, "eu-west-1");
    assert_eq!(eu.action, GroupAction::LeftChangedByHand);
    assert!(eu.note.as_deref().unwrap_or_default().contains("changed since the scaler applied"), "{eu:?}");
    assert_eq!(world.sizes("eu-west-1").await, by_hand, "left as the operator set it");
    assert_eq!(group(&report, "ap-southeast-1").action, GroupAction::Restored);
    assert_eq!(world.sizes("ap-southeast-1").await, SIZES);
}

#[tokio::test]
async fn a_refused_evacuation_scales_nothing() {
    let world = World::new(2, SIZES, json!({}), json!({})).await;
    world.set_status("eu-west-1", RegionStatus::Evacuated).await;

    let report = only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("refused"));

    assert_eq!(report.outcome, Outcome::Refused);
    assert!(report.reason.as_deref().unwrap_or_default().contains("min_healthy_regions"), "{report:?}");
    assert!(world.updates().is_empty());
    assert!(world.records().await.is_empty());
}

#[tokio::test]
async fn max_size_is_raised_up_to_the_ceiling_and_the_shortfall_reported() {
    let scaling = json!({"raise_max_size": true, "max_size_ceiling": 7});
    let world = World::new(2, GroupSizes::new(2, 4, 6), json!({}), scaling).await;

    let report = only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("scaled"));

    let eu = group(&report, "eu-west-1");
    assert_eq!((eu.wanted_desired, eu.shortfall, eu.max_raised), (Some(8), 1, true), "{eu:?}");
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(7, 7, 7), "the reachable part is applied");
}

#[tokio::test]
async fn dry_run_returns_the_targets_and_changes_nothing() {
    let world = World::new(3, SIZES, json!({}), json!({})).await;
    let mut payload = event("alarm-eventbridge-us-east-1-alarm.json");
    payload["multisite"] = json!({"dry_run": true});

    let report = only(world.handle(payload).await.expect("dry run"));

    assert_eq!(report.outcome, Outcome::DryRun);
    for region in ["eu-west-1", "ap-southeast-1"] {
        let g = group(&report, region);
        assert_eq!((g.action, g.target), (GroupAction::Planned, Some(GroupSizes::new(3, 3, 10))), "{g:?}");
        assert_eq!(world.sizes(region).await, SIZES);
    }
    assert!(world.updates().is_empty());
    assert!(world.records().await.is_empty(), "a dry run records nothing");
}

#[tokio::test]
async fn a_failing_survivor_does_not_stop_the_other_and_the_retry_converges() {
    let world = World::new(3, SIZES, json!({}), json!({})).await;
    world.emulator.throttle("eu-west-1", 1000, Some("autoscaling"), Some("UpdateAutoScalingGroup"));

    let err = world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect_err("eu fails");

    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("eu-west-1"), "{err}");
    assert_eq!(world.sizes("ap-southeast-1").await, GroupSizes::new(3, 3, 10), "the other survivor is scaled");
    assert_eq!(world.sizes("eu-west-1").await, SIZES);

    world.emulator.throttle("eu-west-1", 0, Some("autoscaling"), Some("UpdateAutoScalingGroup"));
    let report = only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("retry"));
    assert_eq!(group(&report, "eu-west-1").action, GroupAction::Scaled);
    assert_eq!(group(&report, "ap-southeast-1").action, GroupAction::Unchanged);
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(3, 3, 10));
}

#[tokio::test]
async fn malformed_events_and_unknown_alarms_make_no_aws_call() {
    let world = World::new(2, SIZES, json!({}), json!({})).await;
    let mut no_state = event("alarm-alarm-action-us-east-1-alarm.json");
    no_state["alarmData"].as_object_mut().map(|o| o.remove("state"));
    let mut not_alarm = event("alarm-sns-us-east-1-alarm.json");
    not_alarm["Records"][0]["Sns"]["Message"] = "{\"hello\": \"world\"}".into();
    let mut bad_override = event("alarm-alarm-action-us-east-1-alarm.json");
    bad_override["multisite"] = json!({"dry-run": true});
    for (what, payload) in [
        ("not a JSON object", json!("ALARM")),
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
    assert_eq!(only(world.handle(unknown).await.expect("ignored")).outcome, Outcome::Ignored);
    let mut insufficient = event("alarm-alarm-action-us-east-1-alarm.json");
    insufficient["alarmData"]["state"]["value"] = "INSUFFICIENT_DATA".into();
    assert_eq!(only(world.handle(insufficient).await.expect("ignored")).outcome, Outcome::Ignored);

    assert!(world.emulator.requests().is_empty(), "no AWS call: {:?}", world.emulator.requests());
}

/// An alarm change sample (any delivery) whose alarm ARN is replaced.
fn with_arn(mut payload: Value, arn: &str) -> Value {
    if payload.get("Records").is_some() {
        let sns = &mut payload["Records"][0]["Sns"];
        let mut message: Value = serde_json::from_str(sns["Message"].as_str().expect("message")).expect("JSON");
        message["AlarmArn"] = arn.into();
        sns["Message"] = message.to_string().into();
    } else if payload.get("resources").is_some() {
        payload["resources"] = json!([arn]);
    } else {
        payload["alarmArn"] = arn.into();
    }
    payload
}

#[tokio::test]
async fn a_change_delivered_to_a_region_that_is_not_its_actor_is_ignored() {
    let world = World::new(3, SIZES, json!({}), json!({})).await;
    // eu-west-1's alarm lives in (and is acted on by) its watcher, ap-southeast-1: the real event.
    assert_eq!(world.deployment.watcher("eu-west-1"), "ap-southeast-1");
    let change = world.deployment.alarm_change(&world.emulator, "eu-west-1", "ALARM").await;
    assert_eq!(change["resources"][0], "arn:aws:cloudwatch:ap-southeast-1:123456789012:alarm:web-eu-west-1-unhealthy");
    world.emulator.clear_requests();

    // Delivered to HOME (eu-west-1, e.g. through SNS): not its actor, nothing is called.
    let report = only(world.handle(change.clone()).await.expect("ignored"));
    assert_eq!((report.outcome, report.region.as_deref()), (Outcome::Ignored, Some("eu-west-1")), "{report:?}");
    assert!(report.reason.as_deref().unwrap_or_default().contains("ap-southeast-1"), "{report:?}");
    assert!(world.emulator.requests().is_empty(), "no AWS call: {:?}", world.emulator.requests());
    // Nor in us-east-1, which neither hosts the alarm.
    let report = only(world.handle_in("us-east-1", change.clone()).await.expect("ignored"));
    assert_eq!(report.outcome, Outcome::Ignored, "{report:?}");
    assert!(world.updates().is_empty());
    assert!(world.records().await.is_empty());

    // In ap-southeast-1, its actor, the same event scales the survivors; the ledger is the
    // arbiter replica (HOME), not ap-southeast-1's.
    world.emulator.clear_requests();
    let report = only(world.handle_in("ap-southeast-1", change).await.expect("scaled"));
    assert_eq!((report.outcome, report.region.as_deref()), (Outcome::Scaled, Some("eu-west-1")), "{report:?}");
    for region in ["us-east-1", "ap-southeast-1"] {
        assert_eq!(world.sizes(region).await, GroupSizes::new(3, 3, 10), "{region}");
    }
    assert_eq!(world.sizes("eu-west-1").await, SIZES, "the evacuated Region is not touched");
    let ledger_calls: Vec<_> = world.emulator.requests().into_iter().filter(|r| r.service == "dynamodb").collect();
    assert!(!ledger_calls.is_empty());
    assert!(ledger_calls.iter().all(|r| r.region == HOME), "every ledger call goes to the arbiter: {ledger_calls:?}");
    assert_eq!(world.records().await.len(), 2);
}

#[tokio::test]
async fn an_alarm_change_from_another_account_is_rejected_and_scales_nothing() {
    let world = World::new(3, SIZES, json!({"cooldown_seconds": 60}), json!({})).await;
    // An evacuation whose failback is recorded and past the cool-down: a sweep would restore it.
    only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("scaled"));
    world.set_status("us-east-1", RegionStatus::Evacuated).await;
    world.clock.advance_ms(120_000);
    world.set_status("us-east-1", RegionStatus::Active).await;
    world.clock.advance_ms(61_000);
    world.emulator.clear_requests();

    let foreign = "arn:aws:cloudwatch:eu-west-1:210987654321:alarm:web-us-east-1-unhealthy";
    // The right account, but not the Region the topology says the alarm lives in.
    let wrong_region = "arn:aws:cloudwatch:us-east-1:123456789012:alarm:web-us-east-1-unhealthy";
    for (what, arn) in [("another account", foreign), ("another Region", wrong_region)] {
        for name in [
            "alarm-alarm-action-us-east-1-alarm.json",
            "alarm-eventbridge-us-east-1-alarm.json",
            "alarm-sns-us-east-1-alarm.json",
            "alarm-alarm-action-us-east-1-ok.json",
            "alarm-eventbridge-us-east-1-ok.json",
            "alarm-sns-us-east-1-ok.json",
        ] {
            let report = only(world.handle(with_arn(event(name), arn)).await.expect("rejected"));
            assert_eq!(
                (report.outcome, report.region.as_deref()),
                (Outcome::Rejected, Some("us-east-1")),
                "{what}, {name}: {report:?}"
            );
            assert!(report.groups.is_empty(), "{what}, {name}: {report:?}");
        }
    }
    let reasons =
        only(world.handle(with_arn(event("alarm-sns-us-east-1-alarm.json"), foreign)).await.expect("rejected")).reason;
    assert!(reasons.as_deref().unwrap_or_default().contains("210987654321"), "{reasons:?}");

    // Not even the ledger is read: a foreign change starts nothing, not the restore sweep.
    assert!(world.emulator.requests().is_empty(), "no AWS call: {:?}", world.emulator.requests());
    for region in ["eu-west-1", "ap-southeast-1"] {
        assert_eq!(world.sizes(region).await, GroupSizes::new(3, 3, 10), "{region} keeps its capacity");
        assert!(world.record(region).await.is_open());
    }
}

#[tokio::test]
async fn a_late_alarm_after_a_newer_change_scales_nothing() {
    let world = World::new(3, SIZES, json!({}), json!({})).await;
    // failover has handled the OK (10:30:04.456) of the alarm already: the ALARM of 10:00:04.123
    // arrives after it.
    let ok = event("alarm-alarm-action-us-east-1-ok.json");
    let ok_at = shared::alarm::parse_alarm_time(ok["alarmData"]["state"]["timestamp"].as_str().expect("timestamp"))
        .expect("time")
        .timestamp_millis() as u64;
    world.set_alarm_mark("web-us-east-1-unhealthy", ok_at).await;
    world.emulator.clear_requests();

    for name in [
        "alarm-alarm-action-us-east-1-alarm.json",
        "alarm-eventbridge-us-east-1-alarm.json",
        "alarm-sns-us-east-1-alarm.json",
    ] {
        let report = only(world.handle(event(name)).await.expect("stale"));
        assert_eq!(
            (report.outcome, report.region.as_deref()),
            (Outcome::Stale, Some("us-east-1")),
            "{name}: {report:?}"
        );
        assert!(report.reason.as_deref().unwrap_or_default().contains("newer change"), "{name}: {report:?}");
        assert!(report.groups.is_empty());
    }
    assert!(world.updates().is_empty(), "nothing scaled: {:?}", world.updates());
    assert!(world.records().await.is_empty(), "nothing recorded");
    for region in REGIONS {
        assert_eq!(world.sizes(region).await, SIZES, "{region}");
    }

    // A change newer than the mark is handled.
    let mut newer = event("alarm-alarm-action-us-east-1-alarm.json");
    newer["alarmData"]["state"]["timestamp"] = "2026-11-26T11:00:00.000+0000".into();
    let report = only(world.handle(newer).await.expect("scaled"));
    assert_eq!(report.outcome, Outcome::Scaled, "{report:?}");
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(3, 3, 10));
}

#[tokio::test]
async fn the_scheduler_envelope_runs_the_restore_sweep() {
    let world = World::new(2, SIZES, json!({"cooldown_seconds": 60}), json!({})).await;
    only(world.handle(event("alarm-alarm-action-us-east-1-alarm.json")).await.expect("scaled"));
    world.set_status("us-east-1", RegionStatus::Evacuated).await;
    world.clock.advance_ms(120_000);
    world.set_status("us-east-1", RegionStatus::Active).await;
    world.clock.advance_ms(61_000);
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(4, 4, 10));

    // EventBridge Scheduler: source aws.scheduler, `detail` the string "{}".
    let mut schedule = scheduled();
    schedule["source"] = "aws.scheduler".into();
    schedule["resources"] =
        json!(["arn:aws:scheduler:eu-west-1:123456789012:schedule/default/multisite-restore-sweep"]);
    schedule["detail"] = "{}".into();
    let sweep = only(world.handle(schedule.clone()).await.expect("sweep"));

    assert_eq!((sweep.trigger, sweep.outcome), (Trigger::RestoreSweep, Outcome::Restored), "{sweep:?}");
    assert_eq!(group(&sweep, "eu-west-1").action, GroupAction::Restored);
    assert_eq!(world.sizes("eu-west-1").await, SIZES);
    assert!(!world.record("eu-west-1").await.is_open());

    world.emulator.clear_requests();
    let idle = only(world.handle(schedule).await.expect("idle sweep"));
    assert_eq!((idle.trigger, idle.outcome), (Trigger::RestoreSweep, Outcome::Ignored), "{idle:?}");
    assert!(world.updates().is_empty());
}

#[tokio::test]
async fn the_scheduled_sweep_scales_for_an_evacuation_the_scaler_never_handled() {
    let world = World::new(2, SIZES, json!({"cooldown_seconds": 60}), json!({})).await;
    // failover evacuated us-east-1; the scaler's ALARM delivery was lost (or kept failing).
    world.set_status("us-east-1", RegionStatus::Evacuated).await;
    assert_eq!(world.sizes("eu-west-1").await, SIZES);

    let reports = world.handle(scheduled()).await.expect("sweep");
    let cover = reports.iter().find(|r| r.trigger == Trigger::ScheduledCover).expect("a cover report");
    assert_eq!((cover.region.as_deref(), cover.outcome), (Some("us-east-1"), Outcome::Scaled), "{reports:?}");
    assert_eq!(world.sizes("eu-west-1").await, GroupSizes::new(4, 4, 10), "the survivor carries 100%");

    // Covered now: the next run has nothing to cover and makes no Auto Scaling write.
    world.emulator.clear_requests();
    let again = world.handle(scheduled()).await.expect("sweep");
    assert!(again.iter().all(|r| r.trigger != Trigger::ScheduledCover), "{again:?}");
    assert!(world.updates().is_empty());
}

//! What only the ARC backend does: ARC's safety rule refuses what the ledger allowed, the cluster
//! answers at any of its endpoints, and failover needs no Route 53 control plane at all.

use super::*;
use multisite_tests::arc;

/// An operator turned two Regions Off by hand (ARC knows; the ledger does not): evacuating the
/// last Region that is On passes the ledger's rule but breaks the assertion rule. ARC refuses it
/// atomically, failover reports ARC's reason, runs nothing else of the plan and withdraws its
/// claim; once a control is On again, the scheduled reconcile evacuates.
#[tokio::test]
async fn an_evacuation_the_safety_rule_forbids_is_refused_by_arc_and_nothing_else_runs() {
    let world = World::new(3, json!({})).await;
    let routing = world.arc().clone();
    assert!(arc::set(&world.emulator, &routing, "eu-west-1", false).await);
    assert!(arc::set(&world.emulator, &routing, "ap-southeast-1", false).await);
    assert!(!arc::set(&world.emulator, &routing, "us-east-1", false).await, "the rule holds for an operator too");
    world.emulator.clear_requests();

    let report = only(world.alarm("us-east-1", "ALARM").await.expect("an answer, not an error"));

    assert_eq!(report.outcome, Outcome::Refused, "{report:?}");
    let why = reason(&report);
    assert!(why.contains("ARC safety rule refused"), "{why}");
    assert!(why.contains(&routing.safety_rule.arn), "ARC's reason names the rule: {why}");
    let steps: Vec<(&str, bool)> = report.steps.iter().map(|s| (s.action.name(), s.ok)).collect();
    assert_eq!(steps, [("RoutingControlOff", false)], "nothing else of the plan ran: {report:?}");
    assert!(arc::states(&world.emulator, &routing).await["us-east-1"], "us-east-1 stays On");
    let moves = world.emulator.requests().into_iter().filter(|r| r.operation.ends_with("GlobalCluster")).count();
    assert_eq!(moves, 0, "the writer was not moved");
    assert_eq!(world.writer_region().await, "us-east-1");
    assert_eq!(world.status("us-east-1").await, RegionStatus::Active, "the claim was withdrawn");

    // The operator turns eu-west-1 back On: the next scheduled run evacuates us-east-1.
    assert!(arc::set(&world.emulator, &routing, "eu-west-1", true).await);
    let report = only(world.handle_in(&world.deployment.watcher("us-east-1"), scheduled()).await.expect("reconciled"));
    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    assert!(!arc::states(&world.emulator, &routing).await["us-east-1"]);
    world.wait_writer("eu-west-1").await;
    assert_eq!(world.status("us-east-1").await, RegionStatus::Evacuated);
}

/// The nearest endpoint holds the request (timeout) and the failed Region's is down: the change
/// goes through the next endpoint that answers, within the per-endpoint deadline.
#[tokio::test]
async fn the_routing_change_goes_through_another_endpoint_when_the_nearest_does_not_answer() {
    let world = World::new(2, json!({})).await;
    let actor = world.deployment.watcher("us-east-1");
    assert_eq!(actor, "eu-west-1");
    arc::set_endpoint_down(&world.emulator, "eu-west-1", true, "timeout");
    world.emulator.set_outage("us-east-1", true);
    let change = world.change("us-east-1", "ALARM").await;
    world.emulator.clear_requests();
    let started = std::time::Instant::now();

    let report = only(world.deliver("us-east-1", change).await.expect("evacuated"));

    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    assert!(world.out_of_routing("us-east-1").await);
    let answered: Vec<String> = world
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.operation == "UpdateRoutingControlStates" && r.status == 200)
        .map(|r| r.region)
        .collect();
    assert_eq!(answered.len(), 1, "{answered:?}");
    assert!(!["eu-west-1", "us-east-1"].contains(&answered[0].as_str()), "another endpoint: {answered:?}");
    // Observation and change each waited at most one endpoint deadline for eu-west-1.
    let bound = shared::arc::ENDPOINT_TIMEOUT * 2 + Duration::from_secs(10);
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    world.emulator.set_outage("us-east-1", false);
}

/// Route 53's control plane fails (whichever Region signs): with ARC, failover does not call it at
/// all. Traffic leaves, the writer moves, and DNS answers follow the routing control.
#[tokio::test]
async fn with_route53s_control_plane_down_the_evacuation_completes() {
    let world = World::new(3, json!({})).await;
    world.emulator.set_control_plane_down("route53", true, ControlPlaneFailure::Unavailable);
    world.emulator.clear_requests();

    let report = only(world.alarm("us-east-1", "ALARM").await.expect("evacuated"));

    assert_eq!(report.outcome, Outcome::Reconciled, "{report:?}");
    assert!(world.out_of_routing("us-east-1").await);
    world.wait_writer("eu-west-1").await;
    let route53: Vec<_> =
        world.emulator.requests().into_iter().filter(|r| r.service == "route53" && r.principal.as_deref() != Some("admin")).collect();
    assert!(route53.is_empty(), "failover made no Route 53 call: {route53:?}");
    assert_eq!(world.answer_for_north_america().await, "eu-west-1", "DNS answers follow the control");
    world.emulator.set_control_plane_down("route53", false, ControlPlaneFailure::Unavailable);
}

/// Break glass: both Regions must leave (say, a bad deployment everywhere) but the assertion
/// rule keeps one On. failover cannot override it, not even with a request in hand (its role
/// denies any override); an operator can, with their own credentials, only by naming the rule,
/// who they are and why, and the ledger keeps the request and its outcome.
#[tokio::test]
async fn only_an_operator_overrides_the_safety_rule_and_the_ledger_records_who_and_why() {
    use failover::break_glass::{BreakGlass, BreakGlassRecord, break_glass, break_glass_pk};
    let world = World::new(2, json!({})).await;
    let routing = world.arc().clone();
    only(world.alarm("us-east-1", "ALARM").await.expect("evacuated"));
    assert!(!arc::states(&world.emulator, &routing).await["us-east-1"]);
    assert!(!arc::set(&world.emulator, &routing, "eu-west-1", false).await, "the rule keeps the last Region On");
    let request = BreakGlass {
        region: "eu-west-1".into(),
        on: false,
        safety_rules: vec![routing.safety_rule.arn.clone()],
        operator: "arn:aws:sts::123456789012:assumed-role/oncall/alice".into(),
        reason: "bad deployment in every Region: serve the maintenance page from the CDN".into(),
    };

    // Bad requests change nothing and call nothing.
    world.emulator.clear_requests();
    for (what, bad) in [
        ("no rule named", BreakGlass { safety_rules: vec![], ..request.clone() }),
        ("no reason", BreakGlass { reason: " ".into(), ..request.clone() }),
        ("no operator", BreakGlass { operator: "".into(), ..request.clone() }),
        ("not a cell", BreakGlass { region: "sa-east-1".into(), ..request.clone() }),
        (
            "a rule of another panel",
            BreakGlass {
                safety_rules: vec!["arn:aws:route53-recovery-control::123456789012:controlpanel/x/safetyrule/y".into()],
                ..request.clone()
            },
        ),
    ] {
        let err = break_glass(&world.topology, &world.clients, HOME, &world.clock, bad).await.expect_err(what);
        assert_eq!(err.error_type(), "InvalidEvent", "{what}: {err}");
    }
    assert!(world.emulator.requests().is_empty(), "{:?}", world.emulator.requests());

    // failover's role: the override is denied by IAM (after the request was recorded).
    let failover_clients = &world.function_clients[HOME];
    let err = break_glass(&world.topology, failover_clients, HOME, &world.clock, request.clone())
        .await
        .expect_err("failover's role never overrides");
    assert_eq!(err.error_type(), "AccessDenied", "{err}");
    assert!(arc::states(&world.emulator, &routing).await["eu-west-1"], "still On");

    // The operator (the administrator's credentials here): applied, and recorded.
    world.clock.advance_ms(1_000);
    let record = break_glass(&world.topology, &world.clients, HOME, &world.clock, request.clone())
        .await
        .expect("the operator overrides");
    assert_eq!(record.outcome, "Applied", "{record:?}");
    assert!(!arc::states(&world.emulator, &routing).await["eu-west-1"], "Off, against the rule, on purpose");
    let records: Vec<BreakGlassRecord> =
        world.ledger().list::<BreakGlassRecord>(&break_glass_pk("eu-west-1")).await.expect("records").into_iter().map(|r| r.body).collect();
    let outcomes: Vec<&str> = records.iter().map(|r| r.outcome.as_str()).collect();
    assert_eq!(outcomes, ["Failed", "Applied"], "both attempts are on record: {records:?}");
    assert!(records.iter().all(|r| r.request == request), "who, why and which rule: {records:?}");
}

//! failover: a CloudWatch health alarm changes the desired status of one Region; this function
//! reconciles the world to it (DESIGN.md sections 2 and 3):
//!
//! 1. decode the alarm change (direct alarm action, EventBridge or SNS) and map it to a Region;
//!    unknown alarms are logged and ignored without any AWS call;
//! 2. decide the desired statuses against the ledger's fleet record, under the safety rules
//!    (min healthy Regions, cool-down), and record the transition with a conditional write so
//!    duplicate or concurrent deliveries produce exactly one transition; an evacuation is claimed
//!    in one write whose condition is the rules, failback and anything the condition refuses are
//!    decided from a read with an optimistic version check;
//! 3. observe health checks and the Aurora global cluster in parallel, from a surviving Region,
//!    in the same round trip as step 2;
//! 4. plan (pure, [`plan`]) and apply the actions in parallel, each idempotent;
//! 5. record each step's outcome; any failed step makes the invocation fail so Lambda retries,
//!    and the retry converges.

pub mod aws;
pub mod plan;

use crate::plan::{Action, Observed, ObservedHealthCheck, Plan, PlanOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::alarm::{AlarmChange, AlarmState, decode_alarm_changes};
use shared::clock::Clock;
use shared::ledger::{self, FleetStatus, RegionStatus, RegionStatusEntry, WriteOutcome};
use shared::metrics::{MetricSet, NAMESPACE, Unit};
use shared::policy::{self, Refusal};
use shared::{Error, Ledger, RegionalClients, Topology};
use std::collections::HashMap;
use std::time::Instant;

/// How many times a status change is re-tried after losing an optimistic-concurrency race.
const MAX_STATUS_ATTEMPTS: usize = 5;
/// A lag-probe verdict older than this cannot open the failback gate.
pub const PROBE_MAX_AGE_MS: u64 = 15 * 60 * 1000;

/// What the handler needs, built once per container (see `main.rs`).
pub struct Deps<'a> {
    pub topology: &'a Topology,
    pub clients: &'a RegionalClients,
    /// The Region this function runs in; its ledger replica is the one it reads and writes.
    pub home_region: &'a str,
    pub clock: &'a dyn Clock,
}

pub use shared::alarm::Overrides;

/// How a change was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Not for this function (unknown alarm, INSUFFICIENT_DATA): nothing was called.
    Ignored,
    /// A safety rule refused the change.
    Refused,
    /// The plan was computed and not applied.
    DryRun,
    /// The world was reconciled to the desired statuses.
    Reconciled,
    /// The Region is healthy again but failback waits (disabled, or a gate is closed).
    FailbackPending,
    /// Some steps failed; the invocation fails so Lambda retries.
    PartiallyFailed,
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepResult {
    pub action: Action,
    pub ok: bool,
    pub error: Option<String>,
    /// For a failed step: whether a retry can help, and its cause's error type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<shared::error::FailureClass>,
    pub duration_ms: u64,
}

/// The structured report of one alarm change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub alarm: String,
    pub alarm_state: AlarmState,
    pub change_id: String,
    pub region: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// Whether this delivery recorded the transition (false for duplicates and repeats).
    pub transition_recorded: bool,
    pub desired: HashMap<String, RegionStatus>,
    pub observed: Option<Observed>,
    pub plan: Option<Plan>,
    pub steps: Vec<StepResult>,
    pub duration_ms: u64,
}

impl Report {
    fn new(change: &AlarmChange, region: Option<&str>, outcome: Outcome) -> Self {
        Self {
            alarm: change.alarm_name.clone(),
            alarm_state: change.state,
            change_id: change.change_id(),
            region: region.map(str::to_owned),
            outcome,
            reason: None,
            transition_recorded: false,
            desired: HashMap::new(),
            observed: None,
            plan: None,
            steps: Vec::new(),
            duration_ms: 0,
        }
    }
}

/// The body of a `transition#<region>` ledger record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransitionRecord {
    pub region: String,
    pub to: RegionStatus,
    pub alarm: String,
    pub change_id: String,
    pub recorded_at_ms: u64,
    pub steps: Vec<Value>,
}

/// Handles one invocation: every alarm change in the payload.
pub async fn handle(payload: Value, deps: &Deps<'_>) -> Result<Vec<Report>, Error> {
    let started = Instant::now();
    let overrides = Overrides::from_payload(&payload)?;
    let changes = decode_alarm_changes(&payload)?;
    let mut reports = Vec::with_capacity(changes.len());
    let mut first_error = None;
    for change in &changes {
        let (report, error) = reconcile_change(change, &overrides, deps).await;
        tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "failover report");
        reports.push(report);
        if let (Some(err), None) = (error, &first_error) {
            first_error = Some(err);
        }
    }
    MetricSet::new(NAMESPACE)
        .dimension("Function", "failover")
        .metric("HandlerDuration", started.elapsed().as_secs_f64() * 1000.0, Unit::Milliseconds)
        .emit();
    match first_error {
        Some(err) => Err(err),
        None => Ok(reports),
    }
}

async fn reconcile_change(change: &AlarmChange, overrides: &Overrides, deps: &Deps<'_>) -> (Report, Option<Error>) {
    let started = Instant::now();
    let (mut report, error) = reconcile_change_inner(change, overrides, deps).await;
    report.duration_ms = started.elapsed().as_millis() as u64;
    if let Some(err) = &error {
        tracing::error!(alarm = %change.alarm_name, error = %err, "failover did not converge; the invocation fails so Lambda retries");
    }
    (report, error)
}

async fn reconcile_change_inner(
    change: &AlarmChange,
    overrides: &Overrides,
    deps: &Deps<'_>,
) -> (Report, Option<Error>) {
    let Some(cell) = deps.topology.cell_for_alarm(&change.alarm_name) else {
        tracing::info!(alarm = %change.alarm_name, "alarm is not in the topology: ignored");
        let mut report = Report::new(change, None, Outcome::Ignored);
        report.reason = Some("alarm not mapped to any Region in the topology".into());
        return (report, None);
    };
    let region = cell.region.as_str();
    if change.state == AlarmState::InsufficientData {
        let mut report = Report::new(change, Some(region), Outcome::Ignored);
        report.reason = Some("INSUFFICIENT_DATA does not change a Region's status".into());
        return (report, None);
    }
    let mut report = Report::new(change, Some(region), Outcome::Reconciled);
    let ledger = match deps.clients.region(deps.home_region) {
        Ok(clients) => Ledger::new(clients.dynamodb.clone(), &deps.topology.ledger_table, deps.home_region),
        Err(err) => return (report, Some(err)),
    };

    // Decide (read the fleet, apply the safety rules, claim the transition) while observing: the
    // observation does not depend on the decision, only on the Region it is made from, which is
    // this function's own Region unless that is the one changing (see `acting_region`). So the
    // ledger read and the observation share one round trip.
    let expected_acting = acting_region(deps.topology, &HashMap::new(), region, deps.home_region);
    let observe_expected = async {
        match &expected_acting {
            Some(acting) => Some(observe(deps, acting).await),
            None => None,
        }
    };
    let (decision, early_observation) =
        futures_util::future::join(decide(change, region, overrides, &ledger, deps), observe_expected).await;
    let decision = match decision {
        Ok(decision) => decision,
        Err(err) => return (report, Some(err)),
    };
    report.transition_recorded = decision.transition_recorded;
    report.desired = deps.topology.regions().map(|r| (r.to_owned(), decision.fleet.status_of(r))).collect();
    match decision.verdict {
        Verdict::Refused(refusal) => {
            tracing::error!(alarm = %change.alarm_name, region, refusal = %refusal, "evacuation refused by a safety rule");
            metric("Refusals", 1.0, region);
            report.outcome = Outcome::Refused;
            report.reason = Some(refusal.to_string());
            return (report, None);
        }
        Verdict::FailbackPending(reason) => {
            tracing::warn!(alarm = %change.alarm_name, region, reason = %reason, "manual failback pending");
            metric("FailbacksPending", 1.0, region);
            report.outcome = Outcome::FailbackPending;
            report.reason = Some(reason);
            return (report, None);
        }
        Verdict::Proceed => {}
    }
    if decision.transition_recorded {
        let name = if change.state == AlarmState::Alarm { "Evacuations" } else { "Failbacks" };
        metric(name, 1.0, region);
    }

    // Plan from a surviving Region's observation, then act while the transition is recorded.
    let desired = decision.fleet.statuses();
    let Some(acting_region) = acting_region(deps.topology, &desired, region, deps.home_region) else {
        return (report, Some(Error::Unexpected("no active Region left to act from".into())));
    };
    let observed = match early_observation {
        Some(observed) if expected_acting.as_deref() == Some(acting_region.as_str()) => observed,
        // The fleet says the expected Region is out (an earlier evacuation): observe again from
        // the Region that acts. One more round trip, only then.
        _ => observe(deps, &acting_region).await,
    };
    let options = PlanOptions {
        planned: overrides.planned,
        // Restoring a check is failback: only with auto-failback on (the gates passed above).
        failback_region: (change.state == AlarmState::Ok && deps.topology.failover_policy.auto_failback)
            .then(|| region.to_owned()),
        restore_writer: overrides.restore_writer,
    };
    let plan = plan::plan(deps.topology, &desired, &observed, &options);
    tracing::info!(region, acting_region = %acting_region, actions = plan.actions.len(), notes = ?plan.notes, "plan computed");
    report.observed = Some(observed);
    report.plan = Some(plan.clone());
    if overrides.dry_run || deps.topology.failover_policy.dry_run {
        report.outcome = Outcome::DryRun;
        return (report, None);
    }

    // The fleet claim in `decide` is what serialises deliveries; the transition record is
    // history, so it is written while the actions run (one sequential round trip less).
    let record_transition = async {
        let Some((sk, record)) = &decision.transition else { return None };
        match ledger.put_if_absent(&ledger::transition_pk(region), sk, record, record.recorded_at_ms).await {
            Ok(_) => {
                tracing::info!(region, to = ?record.to, change = %record.change_id, "transition recorded");
                None
            }
            Err(err) => Some(err),
        }
    };
    let (steps, transition_error) =
        futures_util::future::join(apply(deps, &acting_region, &plan.actions), record_transition).await;
    report.steps = steps;
    let failures = report.steps.iter().filter(|s| !s.ok).count();
    if !report.steps.is_empty() {
        let record = TransitionRecord {
            region: region.to_owned(),
            to: decision.fleet.status_of(region),
            alarm: change.alarm_name.clone(),
            change_id: change.change_id(),
            recorded_at_ms: deps.clock.now_ms(),
            steps: report.steps.iter().filter_map(|s| serde_json::to_value(s).ok()).collect(),
        };
        let sk = transition_sk(change, record.to);
        if let Err(err) = ledger.put(&ledger::transition_pk(region), &sk, &record, 1, deps.clock.now_ms()).await {
            tracing::error!(error = %err, "could not record the steps' outcomes in the ledger");
        }
    }
    if let Some(err) = transition_error {
        // The actions ran (they matter more); the invocation still fails so the error is seen.
        tracing::error!(error = %err, "the transition record was not written");
        if failures == 0 {
            return (report, Some(err));
        }
    }
    if failures > 0 {
        metric("StepFailures", failures as f64, region);
        report.outcome = Outcome::PartiallyFailed;
        let verdict = Error::steps_failed(
            report.steps.iter().filter_map(|s| Some((s.error.as_deref().unwrap_or_default(), s.failure?))),
        );
        return (report, verdict);
    }
    (report, None)
}

enum Verdict {
    Proceed,
    Refused(Refusal),
    FailbackPending(String),
}

struct Decision {
    fleet: FleetStatus,
    verdict: Verdict,
    transition_recorded: bool,
    /// The transition record to write (sort key, body), when this delivery made the transition.
    transition: Option<(String, TransitionRecord)>,
}

fn transition_sk(change: &AlarmChange, to: RegionStatus) -> String {
    format!("{}#{:?}", change.changed_at, to)
}

/// Reads the fleet status, applies the safety rules and records the change, retrying when a
/// concurrent writer changed the fleet in between.
async fn decide(
    change: &AlarmChange,
    region: &str,
    overrides: &Overrides,
    ledger: &Ledger,
    deps: &Deps<'_>,
) -> Result<Decision, Error> {
    let dry_run = overrides.dry_run || deps.topology.failover_policy.dry_run;
    if change.state == AlarmState::Alarm && !dry_run {
        // The critical path: claim the evacuation with one conditional write that carries the
        // safety rules, no read first. It shares its round trip with the observation.
        let now = deps.clock.now_ms();
        if let Some(condition) = policy::evacuation_condition(deps.topology, region, now) {
            let entry =
                RegionStatusEntry { status: RegionStatus::Evacuated, changed_at_ms: now, cause: change.change_id() };
            match ledger.claim_region_status(region, &entry, &condition, now).await? {
                (WriteOutcome::Written, Some((fleet, _))) => {
                    return Ok(transition_made(change, region, RegionStatus::Evacuated, fleet, now));
                }
                // A duplicate, a refusal or a concurrent change: read and decide in code below,
                // which also says which of them it was.
                _ => tracing::info!(region, "one-shot evacuation claim did not hold; reading the fleet status"),
            }
        }
    }
    for _ in 0..MAX_STATUS_ATTEMPTS {
        let (fleet, version) = ledger.fleet_status().await?;
        let now = deps.clock.now_ms();
        let target = match change.state {
            AlarmState::Alarm => RegionStatus::Evacuated,
            _ => RegionStatus::Active,
        };
        if fleet.status_of(region) == target {
            // A duplicate delivery or a repeat: nothing to record, reconcile anyway (idempotent).
            return Ok(Decision { fleet, verdict: Verdict::Proceed, transition_recorded: false, transition: None });
        }
        let statuses = fleet.statuses();
        let verdict = match target {
            RegionStatus::Evacuated => policy::check_evacuation(deps.topology, &statuses, region)
                .and_then(|()| policy::check_cooldown(deps.topology, region, fleet.last_change_ms(region), now))
                .err()
                .map(Verdict::Refused),
            RegionStatus::Active => {
                failback_gate(region, &fleet, ledger, deps, now).await?.map(Verdict::FailbackPending)
            }
        };
        if let Some(verdict) = verdict {
            return Ok(Decision { fleet, verdict, transition_recorded: false, transition: None });
        }
        let mut next = fleet.clone();
        next.regions.insert(
            region.to_owned(),
            RegionStatusEntry { status: target, changed_at_ms: now, cause: change.change_id() },
        );
        if dry_run {
            return Ok(Decision {
                fleet: next,
                verdict: Verdict::Proceed,
                transition_recorded: false,
                transition: None,
            });
        }
        match ledger.put_fleet_if_version(&next, version, now).await? {
            WriteOutcome::Written => return Ok(transition_made(change, region, target, next, now)),
            // Someone changed the fleet since we read it: read again and re-check the rules.
            WriteOutcome::AlreadyPresent => continue,
        }
    }
    Err(Error::Unexpected(format!("the fleet status kept changing under {MAX_STATUS_ATTEMPTS} attempts; retry")))
}

/// The decision of the delivery that changed `region` to `to`; its transition record is written
/// by the caller while it acts (see `reconcile_change_inner`).
fn transition_made(change: &AlarmChange, region: &str, to: RegionStatus, fleet: FleetStatus, now: u64) -> Decision {
    let record = TransitionRecord {
        region: region.to_owned(),
        to,
        alarm: change.alarm_name.clone(),
        change_id: change.change_id(),
        recorded_at_ms: now,
        steps: Vec::new(),
    };
    let transition = Some((transition_sk(change, to), record));
    Decision { fleet, verdict: Verdict::Proceed, transition_recorded: true, transition }
}

/// Why failback must wait, if it must.
async fn failback_gate(
    region: &str,
    fleet: &FleetStatus,
    ledger: &Ledger,
    deps: &Deps<'_>,
    now: u64,
) -> Result<Option<String>, Error> {
    let policy = &deps.topology.failover_policy;
    if !policy.auto_failback {
        return Ok(Some(format!("{region} is healthy again; auto_failback is off: fail back manually")));
    }
    if let Err(refusal) = policy::check_cooldown(deps.topology, region, fleet.last_change_ms(region), now) {
        return Ok(Some(refusal.to_string()));
    }
    if let Some(probe) = ledger.latest_probe().await? {
        let age = now.saturating_sub(probe.body.measured_at_ms);
        if probe.body.rpo_breached {
            return Ok(Some(format!(
                "the latest lag-probe ({} s ago) breached the RPO budget: max lag {:?} ms > {} ms",
                age / 1000,
                probe.body.max_lag_ms,
                probe.body.rpo_budget_ms
            )));
        }
        if age > PROBE_MAX_AGE_MS {
            return Ok(Some(format!("the latest lag-probe is {} s old: wait for a fresh one", age / 1000)));
        }
    }
    Ok(None)
}

/// The Region all calls are made from: this function's own Region when it is active and not the
/// one changing status, else the highest-priority such Region (static stability: never the failed
/// Region). Route 53 and the Aurora global cluster read the same from any Region, so the own
/// Region is preferred for being the nearest, and for being known before the fleet is read.
fn acting_region(
    topology: &Topology,
    desired: &HashMap<String, RegionStatus>,
    changing: &str,
    home_region: &str,
) -> Option<String> {
    let active = |r: &&str| desired.get(*r).copied().unwrap_or(RegionStatus::Active) == RegionStatus::Active;
    let candidates = || topology.regions().filter(active);
    candidates()
        .find(|r| *r == home_region && *r != changing)
        .or_else(|| candidates().find(|r| *r != changing))
        .or_else(|| candidates().next())
        .map(str::to_owned)
}

/// Reads every health check and the Aurora global cluster, all at once.
async fn observe(deps: &Deps<'_>, acting_region: &str) -> Observed {
    let Ok(acting) = deps.clients.region(acting_region) else {
        return Observed { health_checks: Vec::new(), aurora: None };
    };
    let checks = deps.topology.cells.iter().map(|cell| {
        let route53 = acting.route53.clone();
        async move {
            let inverted = match aws::health_check_forced_unhealthy(&route53, acting_region, &cell.health_check_id).await {
                Ok(v) => Some(v),
                Err(err) => {
                    tracing::warn!(region = %cell.region, error = %err, "health check not observed; acting idempotently");
                    None
                }
            };
            ObservedHealthCheck { region: cell.region.clone(), health_check_id: cell.health_check_id.clone(), inverted }
        }
    });
    let aurora = async {
        let global = deps.topology.aurora.as_ref()?;
        match aws::observe_aurora(&acting.rds, acting_region, &global.global_cluster_id).await {
            Ok(observed) => Some(observed),
            Err(err) => {
                tracing::warn!(error = %err, "Aurora global cluster not observed");
                None
            }
        }
    };
    let (health_checks, aurora) = tokio::join!(futures_util::future::join_all(checks), aurora);
    Observed { health_checks, aurora }
}

/// Applies the actions concurrently; one failing never stops the others.
async fn apply(deps: &Deps<'_>, acting_region: &str, actions: &[Action]) -> Vec<StepResult> {
    let steps = actions.iter().map(|action| async move {
        let started = Instant::now();
        let result = apply_one(deps, acting_region, action).await;
        let step = StepResult {
            action: action.clone(),
            ok: result.is_ok(),
            error: result.as_ref().err().map(ToString::to_string),
            failure: result.as_ref().err().map(Error::class),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        match &result {
            Ok(()) => tracing::info!(action = action.name(), duration_ms = step.duration_ms, "step done"),
            Err(err) => tracing::error!(action = action.name(), error = %err, "step failed"),
        }
        step
    });
    futures_util::future::join_all(steps).await
}

async fn apply_one(deps: &Deps<'_>, acting_region: &str, action: &Action) -> Result<(), Error> {
    match action {
        Action::InvertHealthCheck { health_check_id, .. } => {
            let route53 = &deps.clients.region(acting_region)?.route53;
            aws::set_health_check_forced_unhealthy(route53, acting_region, health_check_id, true).await
        }
        Action::RestoreHealthCheck { health_check_id, .. } => {
            let route53 = &deps.clients.region(acting_region)?.route53;
            aws::set_health_check_forced_unhealthy(route53, acting_region, health_check_id, false).await
        }
        Action::MoveAuroraWriter { to_region, target_cluster_arn, mode, .. } => {
            let global = deps
                .topology
                .aurora
                .as_ref()
                .ok_or_else(|| Error::Unexpected("Aurora action planned without an Aurora topology".into()))?;
            let rds = &deps.clients.region(to_region)?.rds;
            aws::move_writer(rds, to_region, &global.global_cluster_id, target_cluster_arn, *mode).await
        }
    }
}

fn metric(name: &str, value: f64, region: &str) {
    MetricSet::new(NAMESPACE)
        .dimension("Function", "failover")
        .dimension("Region", region)
        .metric(name, value, Unit::Count)
        .emit();
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegionStatus::{Active, Evacuated};

    fn topology() -> Topology {
        let cells: Vec<_> = ["us-east-1", "eu-west-1", "ap-southeast-1"]
            .iter()
            .map(|r| {
                serde_json::json!({
                    "region": r, "health_check_id": format!("hc-{r}"), "auto_scaling_group": format!("asg-{r}"),
                    "alarms": [format!("alarm-{r}")]
                })
            })
            .collect();
        let json = serde_json::json!({
            "name": "t", "cells": cells, "routing": {"hosted_zone_id": "Z", "record_name": "app.example.com"},
            "global_table": "Data", "ledger_table": "Ledger", "rpo_budget_ms": 1000
        });
        Topology::from_json(&json.to_string()).expect("valid")
    }

    fn statuses(pairs: &[(&str, RegionStatus)]) -> HashMap<String, RegionStatus> {
        pairs.iter().map(|(r, s)| ((*r).to_owned(), *s)).collect()
    }

    #[test]
    fn the_acting_region_is_the_own_region_unless_it_is_changing_or_out() {
        let t = topology();
        let unknown = HashMap::new();
        assert_eq!(acting_region(&t, &unknown, "us-east-1", "eu-west-1").as_deref(), Some("eu-west-1"));
        assert_eq!(acting_region(&t, &unknown, "us-east-1", "ap-southeast-1").as_deref(), Some("ap-southeast-1"));
        // The own Region is the one changing: the first other Region in topology order.
        assert_eq!(acting_region(&t, &unknown, "eu-west-1", "eu-west-1").as_deref(), Some("us-east-1"));
        // The own Region was evacuated earlier: never act from it.
        let out = statuses(&[("eu-west-1", Evacuated), ("us-east-1", Evacuated), ("ap-southeast-1", Active)]);
        assert_eq!(acting_region(&t, &out, "us-east-1", "eu-west-1").as_deref(), Some("ap-southeast-1"));
        // The changing Region is the only active one (its failback): it acts for itself.
        let alone = statuses(&[("eu-west-1", Evacuated), ("us-east-1", Active), ("ap-southeast-1", Evacuated)]);
        assert_eq!(acting_region(&t, &alone, "us-east-1", "eu-west-1").as_deref(), Some("us-east-1"));
        // Nothing active: no Region to act from.
        let none = statuses(&[("eu-west-1", Evacuated), ("us-east-1", Evacuated), ("ap-southeast-1", Evacuated)]);
        assert_eq!(acting_region(&t, &none, "us-east-1", "eu-west-1"), None);
    }
}

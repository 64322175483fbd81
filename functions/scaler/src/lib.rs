//! scaler: when a Region is evacuated, the surviving Regions' Auto Scaling groups must carry 100%
//! of the traffic; after failback they give the capacity back (docs/architecture.md, sections 3 and 5).
//!
//! 1. decode the alarm change (direct alarm action, EventBridge or SNS: the decoder failover uses)
//!    and map it to a Region; unknown alarms and INSUFFICIENT_DATA are ignored without AWS calls;
//! 2. ALARM: apply the shared safety rules to the ledger's fleet status (what failover wrote) plus
//!    this event, so both functions reach the same verdict; each survivor's group record (see
//!    [`record`]) gains the evacuation, its target is recomputed from the recorded baseline, the
//!    record is written with a version check, then the group is resized: every survivor
//!    concurrently, each with its own Region's client (the evacuated Region is never called);
//!    optionally wait for the new instances to be InService;
//! 3. restore sweep, on OK changes, on an EventBridge schedule, and after any alarm change: every
//!    group record releases the evacuations whose failback is recorded in the fleet status and
//!    past the cool-down; the group shrinks to the target of what it still covers, back to its
//!    baseline when nothing is left, only while it still has the sizes the scaler gave it. An OK
//!    that races ahead of failover's failback is caught by the next sweep.

pub mod asg;
pub mod capacity;
pub mod config;
pub mod record;

use crate::asg::GroupUpdate;
use crate::config::ScalerConfig;
use crate::record::{Covering, GroupPlan, GroupScaling, Planned, Step};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::alarm::{AlarmChange, AlarmState, Screened, decode_alarm_changes};
use shared::capacity::GroupSizes;
use shared::error::FailureClass;
use shared::ledger::{RegionStatus, SCALING_PK, WriteOutcome};
use shared::metrics::{MetricSet, NAMESPACE, Unit};
use shared::policy;
use shared::{Error, Ledger};
use std::time::Instant;

/// How many times a group's record is re-read and re-planned after losing a write race.
const MAX_RECORD_ATTEMPTS: usize = 4;

/// What the handler needs (the same as failover's).
pub use shared::alarm::HandlerDeps as Deps;

/// The scaler's limits, from the topology in use.
fn config(deps: &Deps<'_>) -> ScalerConfig {
    ScalerConfig::from_policy(&deps.topology.scaling)
}

pub use shared::alarm::Overrides;

/// What started a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Trigger {
    /// One alarm state change.
    AlarmChange,
    /// The restore sweep (a scheduled event, or the pass after alarm changes).
    RestoreSweep,
    /// A scheduled event covering an evacuation no survivor covered yet.
    ScheduledCover,
}

/// How a change was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Not for this function here (unknown alarm, INSUFFICIENT_DATA, another Region acts on it,
    /// nothing recorded to restore).
    Ignored,
    /// Not authentic (another account, partition or Region than the topology names).
    Rejected,
    /// Older than the newest handled change of its alarm: nothing scaled.
    Stale,
    /// The shared safety rules refuse the evacuation: nothing was scaled.
    Refused,
    /// Targets computed, nothing changed.
    DryRun,
    /// Every survivor carries its target (or already did).
    Scaled,
    /// Capacity was given back (or left because changed by hand) and nothing waits any more.
    Restored,
    /// Restore waits: failback not recorded yet, or inside the cool-down.
    RestorePending,
    /// Some groups failed; the invocation fails so Lambda retries, and the retry converges.
    PartiallyFailed,
}

/// What happened to one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupAction {
    /// Resized to the target.
    Scaled,
    /// Already at (or above) the target: no resize.
    Unchanged,
    /// Dry run: the target is what would be applied.
    Planned,
    /// Capacity given back: to the baseline, or to what the evacuations still covered need.
    Restored,
    /// Already back at the previous sizes.
    AlreadyRestored,
    /// Changed since the scaler resized it: left alone.
    LeftChangedByHand,
    /// Restore waits for a recorded failback or the cool-down.
    RestorePending,
    /// An AWS or ledger call failed (see `error`).
    Failed,
}

/// One group's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    pub region: String,
    pub asg: String,
    pub action: GroupAction,
    /// The pre-evacuation sizes targets are computed from (recorded by the first delivery).
    pub baseline: Option<GroupSizes>,
    /// The sizes observed before acting.
    pub current: Option<GroupSizes>,
    /// The sizes applied (or, in a dry run, that would be).
    pub target: Option<GroupSizes>,
    /// The desired capacity that would carry the full share.
    pub wanted_desired: Option<i32>,
    /// Instances the bounds did not allow.
    pub shortfall: i32,
    pub max_raised: bool,
    /// The baseline came from the ledger record (an earlier delivery or evacuation).
    pub baseline_reused: bool,
    /// Evacuated Regions this group's capacity covers after this step.
    pub covering: Vec<String>,
    /// Readiness wait: whether InService instances reached the target in time.
    pub ready: Option<bool>,
    pub in_service: Option<usize>,
    pub note: Option<String>,
    pub error: Option<String>,
    /// For a failed group: whether a retry can help, and its cause's error type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<shared::error::FailureClass>,
}

impl GroupReport {
    fn new(region: &str, asg: &str, action: GroupAction) -> Self {
        Self {
            region: region.to_owned(),
            asg: asg.to_owned(),
            action,
            baseline: None,
            current: None,
            target: None,
            wanted_desired: None,
            shortfall: 0,
            max_raised: false,
            baseline_reused: false,
            covering: Vec::new(),
            ready: None,
            in_service: None,
            note: None,
            error: None,
            failure: None,
        }
    }

    fn fail(&mut self, err: &Error) {
        self.action = GroupAction::Failed;
        self.error = Some(err.to_string());
        self.failure = Some(err.class());
    }

    fn describe(&mut self, planned: &Planned) {
        self.baseline = planned.baseline;
        self.baseline_reused = planned.baseline_reused;
        self.covering = planned.covering.clone();
        if let Some(target) = planned.target {
            self.target = Some(target.capacity);
            self.wanted_desired = Some(target.wanted_desired);
            self.shortfall = target.shortfall;
            self.max_raised = target.max_raised;
        }
    }
}

/// The structured report of one alarm change or one restore sweep.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub trigger: Trigger,
    pub alarm: Option<String>,
    pub alarm_state: Option<AlarmState>,
    pub change_id: Option<String>,
    /// The Region the alarm watches (the evacuated or recovered one).
    pub region: Option<String>,
    pub outcome: Outcome,
    pub reason: Option<String>,
    /// Active Regions before this evacuation (the evacuated one included).
    pub n_active_before: Option<usize>,
    pub groups: Vec<GroupReport>,
    pub duration_ms: u64,
}

impl Report {
    fn for_change(change: &AlarmChange, region: Option<&str>, outcome: Outcome) -> Self {
        Self {
            trigger: Trigger::AlarmChange,
            alarm: Some(change.alarm_name.clone()),
            alarm_state: Some(change.state),
            change_id: Some(change.change_id()),
            region: region.map(str::to_owned),
            outcome,
            reason: None,
            n_active_before: None,
            groups: Vec::new(),
            duration_ms: 0,
        }
    }

    fn for_sweep() -> Self {
        Self {
            trigger: Trigger::RestoreSweep,
            alarm: None,
            alarm_state: None,
            change_id: None,
            region: None,
            outcome: Outcome::Ignored,
            reason: None,
            n_active_before: None,
            groups: Vec::new(),
            duration_ms: 0,
        }
    }
}

/// A scheduled event, from an EventBridge rule or from EventBridge Scheduler: the periodic
/// restore sweep. Anything else must be an alarm change.
pub use shared::alarm::is_scheduled_event;

/// Handles one invocation: every alarm change in the payload, then the restore sweep; or, for a
/// scheduled event, the sweep alone.
pub async fn handle(payload: Value, deps: &Deps<'_>) -> Result<Vec<Report>, Error> {
    let started = Instant::now();
    let overrides = Overrides::from_payload(&payload)?;
    let dry_run = overrides.dry_run || deps.topology.failover_policy.dry_run;
    let mut reports = Vec::new();
    let mut first_error = None;
    let log_report = |report: Report, error: Option<Error>, first_error: &mut Option<Error>| {
        tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "scaler report");
        if let Some(err) = &error {
            tracing::error!(error = %err, "scaler did not converge; the invocation fails so Lambda retries");
        }
        if first_error.is_none() {
            *first_error = error;
        }
        report
    };
    if is_scheduled_event(&payload) {
        // Level-triggered: first cover what the fleet record says is evacuated and no survivor
        // covers yet (an ALARM the scaler never handled, or whose resize kept failing), then give
        // back what failbacks released.
        for (report, error) in cover_sweep(dry_run, deps).await {
            reports.push(log_report(report, error, &mut first_error));
        }
        let sweep_started = Instant::now();
        let (mut report, error) = sweep(None, dry_run, deps).await;
        report.duration_ms = sweep_started.elapsed().as_millis() as u64;
        reports.push(log_report(report, error, &mut first_error));
    } else {
        let changes = decode_alarm_changes(&payload)?;
        let mut swept = false;
        let mut mapped = false;
        for change in &changes {
            let started_change = Instant::now();
            let (mut report, error) = handle_change(change, dry_run, deps).await;
            report.duration_ms = started_change.elapsed().as_millis() as u64;
            // A rejected change is not authentic: it must cause no call, not even the sweep.
            let authentic = report.region.is_some() && report.outcome != Outcome::Rejected;
            mapped |= authentic && report.outcome != Outcome::Ignored;
            swept |= change.state == AlarmState::Ok && authentic;
            reports.push(log_report(report, error, &mut first_error));
        }
        // An OK that raced ahead of failover's failback left work for a later pass: every mapped
        // alarm change also runs the sweep (scheduled events catch the rest).
        if mapped && !swept && !dry_run {
            let sweep_started = Instant::now();
            let (mut report, error) = sweep(None, false, deps).await;
            report.duration_ms = sweep_started.elapsed().as_millis() as u64;
            if !report.groups.is_empty() || error.is_some() {
                reports.push(log_report(report, error, &mut first_error));
            }
        }
    }
    MetricSet::new(NAMESPACE)
        .dimension("Function", "scaler")
        .metric("HandlerDuration", started.elapsed().as_secs_f64() * 1000.0, Unit::Milliseconds)
        .emit();
    match first_error {
        Some(err) => Err(err),
        None => Ok(reports),
    }
}

async fn handle_change(change: &AlarmChange, dry_run: bool, deps: &Deps<'_>) -> (Report, Option<Error>) {
    // The same screen as failover: mapped, authentic, a status change, and this Region its actor.
    let cell = match shared::alarm::screen(change, deps.topology, deps.identity, deps.home_region) {
        Ok((cell, _)) => cell,
        Err(Screened::Ignored { region, reason }) => {
            tracing::info!(alarm = %change.alarm_name, reason = %reason, "alarm change ignored");
            let mut report = Report::for_change(change, region.as_deref(), Outcome::Ignored);
            report.reason = Some(reason);
            return (report, None);
        }
        Err(Screened::Rejected { region, reason }) => {
            tracing::error!(alarm = %change.alarm_name, region = %region, reason = %reason, "alarm change rejected: not authentic");
            metric("RejectedChanges", 1.0, &region, None);
            let mut report = Report::for_change(change, Some(&region), Outcome::Rejected);
            report.reason = Some(reason);
            return (report, None);
        }
    };
    let region = cell.region.as_str();
    match change.state {
        AlarmState::InsufficientData => {
            let mut report = Report::for_change(change, Some(region), Outcome::Ignored);
            report.reason = Some("INSUFFICIENT_DATA does not change a Region's status".into());
            (report, None)
        }
        AlarmState::Alarm => evacuate(change, region, dry_run, deps).await,
        AlarmState::Ok => {
            let (sweep, error) = sweep(Some(region), dry_run, deps).await;
            let mut report = Report::for_change(change, Some(region), sweep.outcome);
            report.reason = sweep.reason;
            report.groups = sweep.groups;
            (report, error)
        }
    }
}

/// The arbiter replica of the ledger (see `Topology::arbiter`): the fleet status failover
/// decided, and the scaler's group records, whose version checks must hold across Regions.
fn ledger(deps: &Deps<'_>) -> Result<Ledger, Error> {
    let region = deps.topology.arbiter_region();
    let clients = deps.clients.region(region)?;
    Ok(Ledger::new(clients.dynamodb.clone(), &deps.topology.ledger_table, region))
}

// ---------------------------------------------------------------------------------------------
// Evacuation

async fn evacuate(change: &AlarmChange, region: &str, dry_run: bool, deps: &Deps<'_>) -> (Report, Option<Error>) {
    let mut report = Report::for_change(change, Some(region), Outcome::Scaled);
    let (ledger, fleet) = match ledger(deps) {
        Ok(ledger) => match ledger.fleet_status().await {
            Ok((fleet, _)) => (ledger, fleet),
            Err(err) => return (report, Some(err)),
        },
        Err(err) => return (report, Some(err)),
    };
    let now = deps.clock.now_ms();
    if let Some(newest) = fleet.alarm_mark(&change.alarm_name).filter(|m| *m > change.changed_at_ms) {
        tracing::warn!(alarm = %change.alarm_name, region, newest, "alarm change is stale: nothing scaled");
        metric("StaleChanges", 1.0, region, None);
        report.outcome = Outcome::Stale;
        report.reason = Some(format!(
            "a newer change of {} (at {newest} ms) was handled already; this one is of {} ms",
            change.alarm_name, change.changed_at_ms
        ));
        return (report, None);
    }
    let recorded = fleet.statuses();
    // The verdict failover reaches on the same event: an evacuation already recorded passes
    // (a duplicate); a new one must respect min-healthy and the cool-down.
    let verdict = policy::check_evacuation(deps.topology, &recorded, region).and_then(|()| {
        if fleet.status_of(region) == RegionStatus::Evacuated {
            Ok(())
        } else {
            policy::check_cooldown(deps.topology, region, fleet.last_change_ms(region), now)
        }
    });
    if let Err(refusal) = verdict {
        tracing::error!(alarm = %change.alarm_name, region, refusal = %refusal, "evacuation refused by a safety rule: nothing scaled");
        metric("ScalingRefusals", 1.0, region, None);
        report.outcome = Outcome::Refused;
        report.reason = Some(refusal.to_string());
        return (report, None);
    }
    let survivors = policy::survivors(deps.topology, &recorded, region);
    let n_active_before = survivors.len() + 1;
    report.n_active_before = Some(n_active_before);
    let covering = Covering { since_ms: change.changed_at_ms, change_id: change.change_id(), recorded_at_ms: now };
    let step = Step::Cover { evacuated: region, covering, n_active_before };
    let groups: Vec<(&str, &str)> = survivors
        .iter()
        .filter_map(|s| deps.topology.cell(s).map(|c| (c.region.as_str(), c.auto_scaling_group.as_str())))
        .collect();
    let mut groups = run_step(&groups, &step, dry_run, &ledger, deps).await;
    let config = config(deps);
    if !dry_run {
        if let Some(wait) = config.wait {
            wait_ready(deps, &mut groups, wait, config.poll_interval).await;
        }
    }
    for group in &groups {
        if let (Some(target), GroupAction::Scaled | GroupAction::Unchanged | GroupAction::Planned) =
            (group.target, group.action)
        {
            metric("ScalingTargetDesired", f64::from(target.desired), &group.region, Some(region));
            metric("ScalingShortfall", f64::from(group.shortfall), &group.region, Some(region));
            if group.shortfall > 0 {
                tracing::error!(region = %group.region, asg = %group.asg, wanted = ?group.wanted_desired, applied = target.desired,
                    shortfall = group.shortfall, "target not reachable within MaxSize / the ceiling: the reachable part is applied");
            }
        }
    }
    report.groups = groups;
    if dry_run {
        report.outcome = Outcome::DryRun;
        return (report, None);
    }
    let error = finish(&mut report, region);
    (report, error)
}

/// The evacuations the fleet record holds that a survivor's group record does not cover, for
/// the cells this Region acts for (the actor of the cell's first alarm): each is scaled as if its
/// ALARM had just arrived. Nothing to cover: no report, one fleet read and one Query.
async fn cover_sweep(dry_run: bool, deps: &Deps<'_>) -> Vec<(Report, Option<Error>)> {
    let ledger = match ledger(deps) {
        Ok(ledger) => ledger,
        Err(err) => return vec![(Report::for_sweep(), Some(err))],
    };
    let (fleet, records) =
        match futures_util::future::try_join(ledger.fleet_status(), ledger.list::<GroupScaling>(SCALING_PK)).await {
            Ok(((fleet, _), records)) => (fleet, records),
            Err(err) => return vec![(Report::for_sweep(), Some(err))],
        };
    let open: Vec<GroupScaling> = records.into_iter().map(|r| r.body).filter(GroupScaling::is_open).collect();
    let mut reports = Vec::new();
    for cell in &deps.topology.cells {
        let region = cell.region.as_str();
        let Some(alarm) = cell.alarms.first() else { continue };
        let Some(entry) = fleet.regions.get(region).filter(|e| e.status == RegionStatus::Evacuated) else { continue };
        if deps.topology.actor_region(cell, alarm) != deps.home_region {
            continue;
        }
        let survivors = policy::survivors(deps.topology, &fleet.statuses(), region);
        let uncovered =
            survivors.iter().any(|s| !open.iter().any(|r| r.region == *s && r.covering.contains_key(region)));
        if !uncovered {
            continue;
        }
        let changed_at_ms = fleet.alarm_mark(&alarm.name).unwrap_or(entry.changed_at_ms);
        let change = AlarmChange {
            alarm_name: alarm.name.clone(),
            state: AlarmState::Alarm,
            previous_state: None,
            changed_at: shared::alarm::format_alarm_time(changed_at_ms),
            changed_at_ms,
            alarm_arn: None,
            reason: format!("scheduled cover of {region}'s evacuation ({})", entry.cause),
            delivery: shared::alarm::Delivery::Schedule,
        };
        tracing::info!(region, cause = %entry.cause, "an evacuation no survivor covers yet: scaling for it");
        let started = Instant::now();
        let (mut report, error) = evacuate(&change, region, dry_run, deps).await;
        report.trigger = Trigger::ScheduledCover;
        report.duration_ms = started.elapsed().as_millis() as u64;
        reports.push((report, error));
    }
    reports
}

// ---------------------------------------------------------------------------------------------
// One step over several groups: plan and record (per group, version-checked), resize all
// concurrently, then mark the records settled.

struct Prepared {
    report: GroupReport,
    /// The record written and its new version, when the group must be resized and settled.
    written: Option<(GroupScaling, u64)>,
    resize: Option<GroupSizes>,
}

async fn run_step(
    groups: &[(&str, &str)],
    step: &Step<'_>,
    dry_run: bool,
    ledger: &Ledger,
    deps: &Deps<'_>,
) -> Vec<GroupReport> {
    let prepared = futures_util::future::join_all(
        groups.iter().map(|(region, asg)| prepare(region, asg, step, dry_run, ledger, deps)),
    )
    .await;
    let mut reports: Vec<GroupReport> = Vec::with_capacity(prepared.len());
    let mut jobs = Vec::new();
    for (i, p) in prepared.into_iter().enumerate() {
        if let (Some(capacity), Some(written)) = (p.resize, p.written) {
            jobs.push((i, capacity, written));
        }
        reports.push(p.report);
    }
    if jobs.is_empty() {
        return reports;
    }
    let mut requests = Vec::new();
    let mut request_jobs = Vec::new();
    let mut unavailable = Vec::new();
    for (i, capacity, written) in &jobs {
        let (record, _) = written;
        match deps.clients.region(&record.region) {
            Ok(clients) => {
                requests.push(GroupUpdate {
                    client: &clients.autoscaling,
                    region: &record.region,
                    asg: &record.asg,
                    capacity: *capacity,
                });
                request_jobs.push((*i, written));
            }
            Err(err) => unavailable.push((*i, err)),
        }
    }
    for (i, err) in unavailable {
        reports[i].fail(&err);
    }
    let results = asg::update_all(&requests).await;
    drop(requests);
    let now = deps.clock.now_ms();
    let settles = request_jobs.iter().zip(results).map(|((i, (record, version)), result)| async move {
        match result {
            Ok(()) => {
                let mut settled = record.clone();
                settled.settled = true;
                // Losing this race is fine: a newer write owns the record and settles it itself.
                match ledger.put_if_version(SCALING_PK, &record.region, &settled, *version, now).await {
                    Ok(_) => (*i, Ok(())),
                    Err(err) => {
                        tracing::warn!(region = %record.region, error = %err, "resized but not marked settled: the next pass settles it");
                        (*i, Ok(()))
                    }
                }
            }
            Err(err) => (*i, Err(err)),
        }
    });
    for (i, result) in futures_util::future::join_all(settles).await {
        if let Err(err) = result {
            reports[i].fail(&err);
        }
    }
    reports
}

/// Reads one group's record and sizes, plans the step, and (unless a dry run) writes the record;
/// re-plans when another delivery wrote it first.
async fn prepare(
    region: &str,
    asg: &str,
    step: &Step<'_>,
    dry_run: bool,
    ledger: &Ledger,
    deps: &Deps<'_>,
) -> Prepared {
    let mut report = GroupReport::new(region, asg, GroupAction::Unchanged);
    match prepare_inner(&mut report, region, asg, step, dry_run, ledger, deps).await {
        Ok((written, resize)) => Prepared { report, written, resize },
        Err(err) => {
            tracing::error!(region, asg, error = %err, "group not prepared");
            report.fail(&err);
            Prepared { report, written: None, resize: None }
        }
    }
}

type Written = (Option<(GroupScaling, u64)>, Option<GroupSizes>);

async fn prepare_inner(
    report: &mut GroupReport,
    region: &str,
    asg: &str,
    step: &Step<'_>,
    dry_run: bool,
    ledger: &Ledger,
    deps: &Deps<'_>,
) -> Result<Written, Error> {
    let client = &deps.clients.region(region)?.autoscaling;
    let limits = config(deps).limits();
    for _ in 0..MAX_RECORD_ATTEMPTS {
        let existing = ledger.get::<GroupScaling>(SCALING_PK, region).await?;
        let open = existing.as_ref().filter(|r| r.body.is_open());
        let current = asg::describe_group(client, region, asg).await?.sizes;
        report.current = Some(current);
        let now = deps.clock.now_ms();
        let (plan, planned) = record::plan(region, asg, open.map(|r| &r.body), current, step, limits, now);
        report.describe(&planned);
        let (record, resize, action, note) = match plan {
            GroupPlan::Nothing { action, note } => {
                report.action = action;
                report.note = note;
                return Ok((None, None));
            }
            GroupPlan::Change { record, resize, action, note } => (record, resize, action, note),
        };
        report.note = note;
        if dry_run {
            report.action = GroupAction::Planned;
            report.target = Some(resize.unwrap_or(record.applied));
            return Ok((None, None));
        }
        let expected = existing.as_ref().map_or(0, |r| r.version);
        if ledger.put_if_version(SCALING_PK, region, &record, expected, now).await? != WriteOutcome::Written {
            tracing::info!(region, asg, "group record changed under us: re-reading");
            continue;
        }
        tracing::info!(region, asg, applied = ?record.applied, covering = ?record.covering.keys().collect::<Vec<_>>(),
            reason = %record.reason, "group record written");
        report.action = action;
        if let Some(capacity) = resize {
            report.target = Some(capacity);
        }
        if action == GroupAction::LeftChangedByHand {
            tracing::warn!(region, asg, current = ?current, "group changed by hand since the scaler resized it: not restored");
        }
        return Ok((Some((record, expected + 1)), resize));
    }
    Err(Error::Unexpected(format!(
        "ledger record {SCALING_PK}/{region} kept changing under {MAX_RECORD_ATTEMPTS} attempts; retry"
    )))
}

/// Polls the scaled groups until their InService instances reach the desired capacity, or the
/// wait is over; reported per group, never an error.
async fn wait_ready(
    deps: &Deps<'_>,
    groups: &mut [GroupReport],
    wait: std::time::Duration,
    poll_interval: std::time::Duration,
) {
    let deadline = Instant::now() + wait;
    let waits = groups.iter().map(|group| async move {
        let target = group.target?;
        if !matches!(group.action, GroupAction::Scaled | GroupAction::Unchanged) {
            return None;
        }
        let client = &deps.clients.region(&group.region).ok()?.autoscaling;
        let mut last = None;
        loop {
            match asg::describe_group(client, &group.region, &group.asg).await {
                Ok(state) => {
                    last = Some(state.in_service);
                    if state.in_service >= target.desired.max(0) as usize {
                        return Some((true, last));
                    }
                }
                Err(err) => tracing::warn!(region = %group.region, error = %err, "readiness not observed"),
            }
            if Instant::now() + poll_interval > deadline {
                return Some((false, last));
            }
            tokio::time::sleep(poll_interval).await;
        }
    });
    let results = futures_util::future::join_all(waits).await;
    for (group, result) in groups.iter_mut().zip(results) {
        if let Some((ready, in_service)) = result {
            group.ready = Some(ready);
            group.in_service = in_service;
            if !ready {
                tracing::warn!(region = %group.region, asg = %group.asg, in_service = ?in_service,
                    wanted = ?group.target.map(|t| t.desired), "new instances not InService before the wait ended");
                metric("ScalingNotReady", 1.0, &group.region, None);
            }
        }
    }
}

/// Sets the outcome from the groups' results; any failure fails the invocation so Lambda retries.
fn finish(report: &mut Report, region: &str) -> Option<Error> {
    let failed: Vec<&GroupReport> = report.groups.iter().filter(|g| g.action == GroupAction::Failed).collect();
    if failed.is_empty() {
        return None;
    }
    metric("ScalingFailures", failed.len() as f64, region, None);
    let messages: Vec<String> =
        failed.iter().map(|g| format!("{}: {}", g.region, g.error.as_deref().unwrap_or_default())).collect();
    let classes =
        failed.iter().map(|g| g.failure.unwrap_or(FailureClass { retryable: true, error_type: "StepsFailed" }));
    let err = Error::steps_failed(messages.iter().map(String::as_str).zip(classes))?;
    report.outcome = Outcome::PartiallyFailed;
    report.reason = Some(err.to_string());
    Some(err)
}

// ---------------------------------------------------------------------------------------------
// Restore sweep

/// Releases, on every group with an open record, the evacuations whose failback is recorded and
/// past the cool-down. `recovered` (an OK change's Region) only shapes the outcome: every
/// releasable evacuation is released, whoever triggered the sweep.
async fn sweep(recovered: Option<&str>, dry_run: bool, deps: &Deps<'_>) -> (Report, Option<Error>) {
    let mut report = Report::for_sweep();
    report.region = recovered.map(str::to_owned);
    let ledger = match ledger(deps) {
        Ok(ledger) => ledger,
        Err(err) => return (report, Some(err)),
    };
    let (fleet, records) =
        match futures_util::future::try_join(ledger.fleet_status(), ledger.list::<GroupScaling>(SCALING_PK)).await {
            Ok(((fleet, _), records)) => (fleet, records),
            Err(err) => return (report, Some(err)),
        };
    let open: Vec<GroupScaling> = records.into_iter().map(|r| r.body).filter(GroupScaling::is_open).collect();
    if let Some(region) = recovered {
        if fleet.status_of(region) == RegionStatus::Evacuated && open.iter().any(|r| r.covering.contains_key(region)) {
            tracing::info!(region, "restore waits for failback");
        }
    }
    if open.is_empty() {
        report.reason = Some(match recovered {
            Some(region) => format!("no capacity recorded for the evacuation of {region}: nothing to restore"),
            None => "no group carries capacity for an evacuation: nothing to restore".into(),
        });
        return (report, None);
    }
    let now = deps.clock.now_ms();
    let cooldown_ms = deps.topology.failover_policy.cooldown_seconds.saturating_mul(1000);
    // Only groups with something to do are touched (static stability: a group whose Region is
    // itself evacuated is never read here unless a failback released it).
    let workable: Vec<(&str, &str)> = open
        .iter()
        .filter(|r| {
            !r.settled
                || r.covering
                    .iter()
                    .any(|(region, c)| record::release_blocker(&fleet, region, c, cooldown_ms, now).is_none())
        })
        .filter(|r| fleet.status_of(&r.region) == RegionStatus::Active)
        .map(|r| (r.region.as_str(), r.asg.as_str()))
        .collect();
    let step = Step::Release { fleet: &fleet, cooldown_ms };
    report.groups = run_step(&workable, &step, dry_run, &ledger, deps).await;
    // What still waits, and why (from the records, including the groups not touched).
    let waiting: Vec<String> = open
        .iter()
        .filter(|r| !workable.iter().any(|(region, _)| *region == r.region))
        .flat_map(|r| {
            r.covering.iter().filter_map(|(region, c)| record::release_blocker(&fleet, region, c, cooldown_ms, now))
        })
        .chain(report.groups.iter().filter(|g| !g.covering.is_empty()).filter_map(|g| g.note.clone()))
        .collect();
    let still_covered = |region: &str| {
        open.iter().filter(|r| !workable.iter().any(|(w, _)| *w == r.region)).any(|r| r.covering.contains_key(region))
            || report.groups.iter().any(|g| g.covering.iter().any(|c| c == region))
    };
    for group in &report.groups {
        match group.action {
            GroupAction::Restored => metric("ScalingRestores", 1.0, &group.region, recovered),
            GroupAction::LeftChangedByHand => metric("ScalingRestoresSkipped", 1.0, &group.region, recovered),
            _ => {}
        }
    }
    let acted = report.groups.iter().any(|g| {
        matches!(
            g.action,
            GroupAction::Restored
                | GroupAction::AlreadyRestored
                | GroupAction::LeftChangedByHand
                | GroupAction::Planned
        )
    });
    let pending = match recovered {
        Some(region) => still_covered(region),
        None => !waiting.is_empty(),
    };
    report.outcome = if dry_run && acted {
        Outcome::DryRun
    } else if pending {
        Outcome::RestorePending
    } else if acted {
        Outcome::Restored
    } else {
        Outcome::Ignored
    };
    let mut waiting = waiting;
    waiting.dedup();
    if pending {
        report.reason = Some(waiting.join("; "));
    } else if report.outcome == Outcome::Ignored {
        report.reason = Some(match recovered {
            Some(region) => format!("no capacity recorded for the evacuation of {region}: nothing to restore"),
            None => "nothing to restore".into(),
        });
    }
    let error = finish(&mut report, recovered.unwrap_or("all"));
    (report, error)
}

fn metric(name: &str, value: f64, region: &str, evacuated: Option<&str>) {
    let mut set = MetricSet::new(NAMESPACE).dimension("Function", "scaler").dimension("Region", region);
    if let Some(evacuated) = evacuated {
        set = set.dimension("EvacuatedRegion", evacuated);
    }
    set.metric(name, value, Unit::Count).emit();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_events_are_recognised_and_alarm_events_are_not() {
        let scheduled = serde_json::json!({"version": "0", "id": "1", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-11-26T10:00:00Z", "region": "eu-west-1", "resources": [], "detail": {}});
        assert!(is_scheduled_event(&scheduled));
        let alarm = serde_json::json!({"detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch"});
        assert!(!is_scheduled_event(&alarm));
        assert!(!is_scheduled_event(&serde_json::json!("Scheduled Event")));
        // EventBridge Scheduler's envelope: another source, `detail` the string "{}".
        let scheduler = serde_json::json!({"version": "0", "id": "2", "detail-type": "Scheduled Event", "source": "aws.scheduler",
            "account": "123456789012", "time": "2026-11-26T10:00:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:scheduler:eu-west-1:123456789012:schedule/default/multisite-reconcile"], "detail": "{}"});
        assert!(is_scheduled_event(&scheduler));
    }
}

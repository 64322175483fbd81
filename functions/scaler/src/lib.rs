//! scaler: when a Region is evacuated, the surviving Regions' Auto Scaling groups must carry 100%
//! of the traffic; after failback they give the capacity back (DESIGN.md sections 3 and 4).
//!
//! 1. decode the alarm change (direct alarm action, EventBridge or SNS: the decoder failover uses)
//!    and map it to a Region; unknown alarms and INSUFFICIENT_DATA are ignored without AWS calls;
//! 2. ALARM: apply the shared safety rules to the ledger's fleet status (what failover wrote) plus
//!    this event, so both functions reach the same verdict; compute each survivor's target from its
//!    pre-evacuation baseline ([`capacity`]), recorded in the ledger with `put_if_absent` so the
//!    first delivery's baseline wins and duplicates reuse it; resize every survivor concurrently
//!    with the survivor's own client (the evacuated Region is never called); optionally wait for
//!    the new instances to be InService;
//! 3. OK: once failback is recorded and the cool-down has passed, put the recorded previous sizes
//!    back, only on groups nobody changed since; mark the records restored.

pub mod asg;
pub mod capacity;
pub mod config;

use crate::asg::GroupUpdate;
use crate::capacity::{Capacity, RestoreDecision, Target};
use crate::config::ScalerConfig;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::alarm::{AlarmChange, AlarmState, decode_alarm_changes};
use shared::clock::Clock;
use shared::ledger::{self, FleetStatus, Record, RegionStatus, WriteOutcome};
use shared::metrics::{MetricSet, NAMESPACE, Unit};
use shared::policy;
use shared::{Error, Ledger, RegionalClients, Topology};
use std::time::Instant;

/// How many times a scaling record write is re-tried after losing a race.
const MAX_RECORD_ATTEMPTS: usize = 4;

/// What the handler needs, built once per container (see `main.rs`).
pub struct Deps<'a> {
    pub topology: &'a Topology,
    pub clients: &'a RegionalClients,
    /// The Region this function runs in; its ledger replica is the one it reads and writes.
    pub home_region: &'a str,
    pub clock: &'a dyn Clock,
    pub config: &'a ScalerConfig,
}

pub use shared::alarm::Overrides;

/// How a change was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Not for this function (unknown alarm, INSUFFICIENT_DATA, nothing recorded to restore).
    Ignored,
    /// The shared safety rules refuse the evacuation: nothing was scaled.
    Refused,
    /// Targets computed, nothing changed.
    DryRun,
    /// Every survivor carries its target (or already did).
    Scaled,
    /// Every recorded group was restored, or left because it was changed by hand.
    Restored,
    /// Restore waits: failback not recorded yet, or inside the cool-down.
    RestorePending,
    /// Some survivors failed; the invocation fails so Lambda retries, and the retry converges.
    PartiallyFailed,
}

/// What happened to one survivor's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupAction {
    /// Resized to the target.
    Scaled,
    /// Already at (or above) the target: no call made.
    Unchanged,
    /// Dry run: the target is what would be applied.
    Planned,
    /// Previous sizes put back.
    Restored,
    /// Already back at the previous sizes.
    AlreadyRestored,
    /// Changed since the scaler resized it: left alone.
    LeftChangedByHand,
    /// Restore waits for the cool-down.
    RestorePending,
    /// An AWS or ledger call failed (see `error`).
    Failed,
}

/// One survivor's part of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    pub region: String,
    pub asg: String,
    pub action: GroupAction,
    /// The pre-evacuation sizes the target is computed from (recorded by the first delivery).
    pub baseline: Option<Capacity>,
    /// The sizes observed before acting.
    pub current: Option<Capacity>,
    /// The sizes applied (or, in a dry run, that would be).
    pub target: Option<Capacity>,
    /// The desired capacity that would carry the full share.
    pub wanted_desired: Option<i32>,
    /// Instances the bounds did not allow.
    pub shortfall: i32,
    pub max_raised: bool,
    /// The baseline came from an earlier delivery's ledger record.
    pub baseline_reused: bool,
    /// Readiness wait: whether InService instances reached the target in time.
    pub ready: Option<bool>,
    pub in_service: Option<usize>,
    pub note: Option<String>,
    pub error: Option<String>,
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
            ready: None,
            in_service: None,
            note: None,
            error: None,
        }
    }

    fn fail(&mut self, err: &Error) {
        self.action = GroupAction::Failed;
        self.error = Some(err.to_string());
    }
}

/// The structured report of one alarm change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub alarm: String,
    pub alarm_state: AlarmState,
    pub change_id: String,
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
    fn new(change: &AlarmChange, region: Option<&str>, outcome: Outcome) -> Self {
        Self {
            alarm: change.alarm_name.clone(),
            alarm_state: change.state,
            change_id: change.change_id(),
            region: region.map(str::to_owned),
            outcome,
            reason: None,
            n_active_before: None,
            groups: Vec::new(),
            duration_ms: 0,
        }
    }
}

/// The body of a `scaling#<evacuated region>` / `<survivor region>` ledger record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalingRecord {
    pub evacuated_region: String,
    pub region: String,
    pub asg: String,
    /// The group's sizes before the evacuation: what a restore puts back.
    pub previous: Capacity,
    /// The sizes the scaler applied: a restore only proceeds while the group still has them.
    pub applied: Capacity,
    pub reason: String,
    pub change_id: String,
    pub recorded_at_ms: u64,
    /// Set once the evacuation's capacity was given back (or left because changed by hand).
    pub restored: Option<RestoreMark>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreMark {
    pub at_ms: u64,
    pub action: GroupAction,
    pub change_id: String,
}

/// Handles one invocation: every alarm change in the payload.
pub async fn handle(payload: Value, deps: &Deps<'_>) -> Result<Vec<Report>, Error> {
    let started = Instant::now();
    let overrides = Overrides::from_payload(&payload)?;
    let changes = decode_alarm_changes(&payload)?;
    let mut reports = Vec::with_capacity(changes.len());
    let mut first_error = None;
    for change in &changes {
        let started_change = Instant::now();
        let (mut report, error) = handle_change(change, &overrides, deps).await;
        report.duration_ms = started_change.elapsed().as_millis() as u64;
        tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "scaler report");
        if let Some(err) = &error {
            tracing::error!(alarm = %change.alarm_name, error = %err, "scaler did not converge; the invocation fails so Lambda retries");
        }
        reports.push(report);
        if let (Some(err), None) = (error, &first_error) {
            first_error = Some(err);
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

async fn handle_change(change: &AlarmChange, overrides: &Overrides, deps: &Deps<'_>) -> (Report, Option<Error>) {
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
    let mut report = Report::new(change, Some(region), Outcome::Scaled);
    let ledger = match deps.clients.region(deps.home_region) {
        Ok(clients) => Ledger::new(clients.dynamodb.clone(), &deps.topology.ledger_table, deps.home_region),
        Err(err) => return (report, Some(err)),
    };
    let fleet = match ledger.fleet_status().await {
        Ok((fleet, _)) => fleet,
        Err(err) => return (report, Some(err)),
    };
    let dry_run = overrides.dry_run || deps.topology.failover_policy.dry_run;
    let error = match change.state {
        AlarmState::Alarm => evacuate(&mut report, change, region, &fleet, dry_run, &ledger, deps).await,
        _ => restore(&mut report, change, region, &fleet, dry_run, &ledger, deps).await,
    };
    (report, error)
}

// ---------------------------------------------------------------------------------------------
// Evacuation

/// One survivor's prepared change.
struct Prepared {
    report: GroupReport,
    update: Option<Capacity>,
}

async fn evacuate(
    report: &mut Report,
    change: &AlarmChange,
    region: &str,
    fleet: &FleetStatus,
    dry_run: bool,
    ledger: &Ledger,
    deps: &Deps<'_>,
) -> Option<Error> {
    let now = deps.clock.now_ms();
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
        return None;
    }
    let survivors = policy::survivors(deps.topology, &recorded, region);
    let n_active_before = survivors.len() + 1;
    report.n_active_before = Some(n_active_before);
    let n_survivors = survivors.len();
    let prepared = futures_util::future::join_all(
        survivors.iter().map(|s| prepare_scale(s, region, n_active_before, n_survivors, change, dry_run, ledger, deps)),
    )
    .await;
    let mut groups: Vec<GroupReport> = Vec::with_capacity(prepared.len());
    let mut updates: Vec<(usize, Capacity)> = Vec::new();
    for (i, p) in prepared.into_iter().enumerate() {
        if let Some(capacity) = p.update {
            updates.push((i, capacity));
        }
        groups.push(p.report);
    }
    if !dry_run {
        apply_updates(deps, &mut groups, &updates, GroupAction::Scaled).await;
        if let Some(wait) = deps.config.wait {
            wait_ready(deps, &mut groups, wait).await;
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
        return None;
    }
    finish(report, region)
}

/// Reads one survivor, computes its target from the recorded baseline (recording it first if this
/// is the first delivery), and says what update, if any, it needs.
#[allow(clippy::too_many_arguments)]
async fn prepare_scale(
    survivor: &str,
    evacuated: &str,
    n_active_before: usize,
    n_survivors: usize,
    change: &AlarmChange,
    dry_run: bool,
    ledger: &Ledger,
    deps: &Deps<'_>,
) -> Prepared {
    let asg_name = deps.topology.cell(survivor).map(|c| c.auto_scaling_group.clone()).unwrap_or_default();
    let mut report = GroupReport::new(survivor, &asg_name, GroupAction::Unchanged);
    match prepare_scale_inner(
        &mut report,
        survivor,
        evacuated,
        n_active_before,
        n_survivors,
        change,
        dry_run,
        ledger,
        deps,
    )
    .await
    {
        Ok(update) => Prepared { report, update },
        Err(err) => {
            tracing::error!(region = survivor, asg = %asg_name, error = %err, "survivor not prepared");
            report.fail(&err);
            Prepared { report, update: None }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn prepare_scale_inner(
    report: &mut GroupReport,
    survivor: &str,
    evacuated: &str,
    n_active_before: usize,
    n_survivors: usize,
    change: &AlarmChange,
    dry_run: bool,
    ledger: &Ledger,
    deps: &Deps<'_>,
) -> Result<Option<Capacity>, Error> {
    let client = &deps.clients.region(survivor)?.autoscaling;
    let pk = ledger::scaling_pk(evacuated);
    let existing = ledger.get::<ScalingRecord>(&pk, survivor).await?.filter(|r| r.body.restored.is_none());
    let current = asg::describe_group(client, survivor, &report.asg).await?.capacity;
    report.current = Some(current);
    let applied = match existing {
        Some(record) => {
            // A duplicate or a retry: the first delivery's baseline and target win.
            report.baseline_reused = true;
            report.baseline = Some(record.body.previous);
            let target =
                capacity::evacuation_target(record.body.previous, n_active_before, n_survivors, deps.config.limits());
            describe_target(report, &target);
            record.body.applied
        }
        None => {
            let target = capacity::evacuation_target(current, n_active_before, n_survivors, deps.config.limits());
            report.baseline = Some(current);
            describe_target(report, &target);
            if dry_run {
                report.action = GroupAction::Planned;
                report.target = Some(target.capacity);
                return Ok(None);
            }
            let record = ScalingRecord {
                evacuated_region: evacuated.to_owned(),
                region: survivor.to_owned(),
                asg: report.asg.clone(),
                previous: current,
                applied: target.capacity,
                reason: format!(
                    "{evacuated} evacuated ({}): {n_active_before} active Region(s) before, {n_survivors} survivor(s); desired {} x {n_active_before} / {n_survivors} = {} wanted, {} applied",
                    change.alarm_name, current.desired, target.wanted_desired, target.capacity.desired
                ),
                change_id: change.change_id(),
                recorded_at_ms: deps.clock.now_ms(),
                restored: None,
            };
            let (winner, reused) = write_record(ledger, &pk, survivor, &record, deps.clock.now_ms()).await?;
            if reused {
                report.baseline_reused = true;
                report.baseline = Some(winner.previous);
            }
            winner.applied
        }
    };
    report.target = Some(applied);
    if dry_run {
        report.action = GroupAction::Planned;
        return Ok(None);
    }
    let update = capacity::converge(current, applied);
    if update.is_none() {
        report.note = Some("already at or above the target".into());
    }
    Ok(update)
}

fn describe_target(report: &mut GroupReport, target: &Target) {
    report.wanted_desired = Some(target.wanted_desired);
    report.shortfall = target.shortfall;
    report.max_raised = target.max_raised;
}

/// Records the baseline unless an earlier delivery did; returns the record that won and whether
/// it was another delivery's. A record from an earlier, already restored evacuation is replaced.
async fn write_record(
    ledger: &Ledger,
    pk: &str,
    sk: &str,
    record: &ScalingRecord,
    now: u64,
) -> Result<(ScalingRecord, bool), Error> {
    for _ in 0..MAX_RECORD_ATTEMPTS {
        if ledger.put_if_absent(pk, sk, record, now).await? == WriteOutcome::Written {
            tracing::info!(pk, sk, previous = ?record.previous, applied = ?record.applied, "scaling baseline recorded");
            return Ok((record.clone(), false));
        }
        let Some(existing) = ledger.get::<ScalingRecord>(pk, sk).await? else { continue };
        if existing.body.restored.is_none() {
            return Ok((existing.body, true));
        }
        if ledger.put_if_version(pk, sk, record, existing.version, now).await? == WriteOutcome::Written {
            tracing::info!(pk, sk, "scaling baseline recorded over a restored one");
            return Ok((record.clone(), false));
        }
    }
    Err(Error::Unexpected(format!("ledger record {pk}/{sk} kept changing under {MAX_RECORD_ATTEMPTS} attempts; retry")))
}

/// Applies the updates concurrently (each with its group's own Region's client).
async fn apply_updates(deps: &Deps<'_>, groups: &mut [GroupReport], updates: &[(usize, Capacity)], done: GroupAction) {
    let mut jobs = Vec::with_capacity(updates.len());
    let mut failed = Vec::new();
    for (i, capacity) in updates {
        match deps.clients.region(&groups[*i].region) {
            Ok(clients) => jobs.push((*i, &clients.autoscaling, *capacity)),
            Err(err) => failed.push((*i, err)),
        }
    }
    let requests: Vec<GroupUpdate<'_>> = jobs
        .iter()
        .map(|(i, client, capacity)| GroupUpdate {
            client,
            region: &groups[*i].region,
            asg: &groups[*i].asg,
            capacity: *capacity,
        })
        .collect();
    let results = asg::update_all(&requests).await;
    drop(requests);
    for ((i, _, capacity), result) in jobs.iter().zip(results) {
        match result {
            Ok(()) => {
                groups[*i].action = done;
                groups[*i].target = Some(*capacity);
            }
            Err(err) => groups[*i].fail(&err),
        }
    }
    for (i, err) in failed {
        groups[i].fail(&err);
    }
}

/// Polls the scaled groups until their InService instances reach the desired capacity, or the
/// wait is over; reported per group, never an error.
async fn wait_ready(deps: &Deps<'_>, groups: &mut [GroupReport], wait: std::time::Duration) {
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
                    if state.in_service >= target.desired as usize {
                        return Some((true, last));
                    }
                }
                Err(err) => tracing::warn!(region = %group.region, error = %err, "readiness not observed"),
            }
            if Instant::now() + deps.config.poll_interval > deadline {
                return Some((false, last));
            }
            tokio::time::sleep(deps.config.poll_interval).await;
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
    let first = format!("{}: {}", failed[0].region, failed[0].error.as_deref().unwrap_or_default());
    let err = Error::Unexpected(format!("{} Auto Scaling group(s) not handled, first {first}", failed.len()));
    report.outcome = Outcome::PartiallyFailed;
    report.reason = Some(err.to_string());
    Some(err)
}

// ---------------------------------------------------------------------------------------------
// Restore after failback

async fn restore(
    report: &mut Report,
    change: &AlarmChange,
    region: &str,
    fleet: &FleetStatus,
    dry_run: bool,
    ledger: &Ledger,
    deps: &Deps<'_>,
) -> Option<Error> {
    report.outcome = Outcome::Restored;
    if fleet.status_of(region) == RegionStatus::Evacuated {
        report.outcome = Outcome::RestorePending;
        report.reason = Some(format!(
            "{region} is still Evacuated in the fleet status: the survivors keep their capacity until failback is recorded"
        ));
        tracing::info!(region, "restore waits for failback");
        return None;
    }
    let pk = ledger::scaling_pk(region);
    let records: Vec<Record<ScalingRecord>> = match ledger.list::<ScalingRecord>(&pk).await {
        Ok(records) => records.into_iter().filter(|r| r.body.restored.is_none()).collect(),
        Err(err) => return Some(err),
    };
    if records.is_empty() {
        report.outcome = Outcome::Ignored;
        report.reason = Some(format!("no capacity recorded for the evacuation of {region}: nothing to restore"));
        return None;
    }
    let now = deps.clock.now_ms();
    let prepared =
        futures_util::future::join_all(records.iter().map(|r| prepare_restore(r, region, now, dry_run, deps))).await;
    let mut groups: Vec<GroupReport> = Vec::with_capacity(prepared.len());
    let mut updates = Vec::new();
    for (i, p) in prepared.into_iter().enumerate() {
        if let Some(capacity) = p.update {
            updates.push((i, capacity));
        }
        groups.push(p.report);
    }
    if dry_run {
        report.groups = groups;
        report.outcome = Outcome::DryRun;
        return None;
    }
    apply_updates(deps, &mut groups, &updates, GroupAction::Restored).await;
    // Mark what is finished, so a later evacuation of the same Region records a fresh baseline.
    let marks = records.iter().zip(groups.iter_mut()).map(|(record, group)| async move {
        if !matches!(
            group.action,
            GroupAction::Restored | GroupAction::AlreadyRestored | GroupAction::LeftChangedByHand
        ) {
            return;
        }
        let mut body = record.body.clone();
        body.restored = Some(RestoreMark { at_ms: now, action: group.action, change_id: change.change_id() });
        match ledger.put_if_version(&record.pk, &record.sk, &body, record.version, now).await {
            Ok(WriteOutcome::Written) => {}
            Ok(WriteOutcome::AlreadyPresent) => {
                tracing::info!(sk = %record.sk, "restore already marked by another delivery")
            }
            Err(err) => {
                tracing::error!(sk = %record.sk, error = %err, "restore not marked in the ledger");
                group.fail(&err);
            }
        }
    });
    futures_util::future::join_all(marks).await;
    for group in &groups {
        match group.action {
            GroupAction::Restored => metric("ScalingRestores", 1.0, &group.region, Some(region)),
            GroupAction::LeftChangedByHand => metric("ScalingRestoresSkipped", 1.0, &group.region, Some(region)),
            _ => {}
        }
    }
    let pending = groups.iter().find(|g| g.action == GroupAction::RestorePending).and_then(|g| g.note.clone());
    report.groups = groups;
    if let Some(error) = finish(report, region) {
        return Some(error);
    }
    if let Some(reason) = pending {
        report.outcome = Outcome::RestorePending;
        report.reason = Some(reason);
    }
    None
}

async fn prepare_restore(
    record: &Record<ScalingRecord>,
    recovered: &str,
    now: u64,
    dry_run: bool,
    deps: &Deps<'_>,
) -> Prepared {
    let body = &record.body;
    let mut report = GroupReport::new(&body.region, &body.asg, GroupAction::RestorePending);
    report.baseline = Some(body.previous);
    if let Err(refusal) = policy::check_cooldown(deps.topology, recovered, Some(body.recorded_at_ms), now) {
        report.note = Some(refusal.to_string());
        return Prepared { report, update: None };
    }
    let current = match deps.clients.region(&body.region) {
        Ok(clients) => asg::describe_group(&clients.autoscaling, &body.region, &body.asg).await,
        Err(err) => Err(err),
    };
    let current = match current {
        Ok(state) => state.capacity,
        Err(err) => {
            report.fail(&err);
            return Prepared { report, update: None };
        }
    };
    report.current = Some(current);
    match capacity::restore_decision(current, body.previous, body.applied) {
        RestoreDecision::Restore(previous) => {
            report.target = Some(previous);
            report.action = if dry_run { GroupAction::Planned } else { GroupAction::RestorePending };
            Prepared { report, update: (!dry_run).then_some(previous) }
        }
        RestoreDecision::AlreadyRestored => {
            report.action = GroupAction::AlreadyRestored;
            Prepared { report, update: None }
        }
        RestoreDecision::ChangedByHand => {
            report.action = GroupAction::LeftChangedByHand;
            report.note = Some(format!(
                "changed since the scaler applied {:?} (now {:?}): left as it is, restore it by hand if needed",
                body.applied, current
            ));
            tracing::warn!(region = %body.region, asg = %body.asg, applied = ?body.applied, current = ?current,
                "group changed by hand since the evacuation: not restored");
            Prepared { report, update: None }
        }
    }
}

fn metric(name: &str, value: f64, region: &str, evacuated: Option<&str>) {
    let mut set = MetricSet::new(NAMESPACE).dimension("Function", "scaler").dimension("Region", region);
    if let Some(evacuated) = evacuated {
        set = set.dimension("EvacuatedRegion", evacuated);
    }
    set.metric(name, value, Unit::Count).emit();
}

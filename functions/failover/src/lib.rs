//! failover: a CloudWatch health alarm changes the desired status of one Region; this function
//! reconciles the world to it (docs/architecture.md, sections 2 to 4):
//!
//! 1. decode the alarm change (direct alarm action, EventBridge or SNS) and map it to a Region;
//!    unknown alarms are ignored, foreign ones (another account, partition or Region than the
//!    topology names) rejected, both without any AWS call; only the change's actor Region acts
//!    ([`Topology::actor_region`]), the others answer `Ignored`;
//! 2. decide against the fleet record in the **arbiter** replica of the ledger (one Region, every
//!    claim goes there, strongly consistent): an evacuation is claimed in one conditional write
//!    whose condition is the safety rules and the alarm's ordering mark; failback and anything the
//!    condition refuses are decided from a read with an optimistic version check;
//! 3. in the same round trip: confirm the alarm's current state (`DescribeAlarms` in the alarm's
//!    Region), observe health checks and the Aurora global cluster from a surviving Region, and ask
//!    the writer's Region whether it answers (switchover or `AllowDataLoss`); a claim whose
//!    confirmation fails is withdrawn;
//! 4. plan (pure, [`plan`]) and apply the actions in parallel, each idempotent;
//! 5. record each step's outcome; any failed step makes the invocation fail so Lambda retries,
//!    and the scheduled reconcile ([`reconcile_scheduled`]) finishes whatever retries did not.

pub mod approval;
pub mod aws;
pub mod break_glass;
pub mod operator;
pub mod plan;

use crate::plan::{Action, Observed, ObservedHealthCheck, Plan, PlanOptions};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::alarm::{AlarmChange, AlarmState, Delivery, Screened, decode_alarm_changes, is_scheduled_event};
use shared::ledger::{self, FleetStatus, RegionStatus, RegionStatusEntry, WriteOutcome};
use shared::metrics::{MetricSet, NAMESPACE, Unit};
use shared::policy::{self, Refusal};
use shared::topology::{AlarmRef, Cell};
use shared::{Error, Ledger, Topology};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

/// How many times a status change is re-tried after losing an optimistic-concurrency race.
const MAX_STATUS_ATTEMPTS: usize = 5;
/// A lag-probe verdict older than this cannot open the failback gate.
pub const PROBE_MAX_AGE_MS: u64 = 15 * 60 * 1000;

/// What the handler needs (the same as the scaler's).
pub use shared::alarm::HandlerDeps as Deps;

pub use shared::alarm::Overrides;

/// How a change was handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// Not for this function here (unknown alarm, INSUFFICIENT_DATA, another Region acts on
    /// it, nothing to converge): nothing was changed.
    Ignored,
    /// Not authentic (another account, partition or Region than the topology names): nothing
    /// was called.
    Rejected,
    /// Older than the newest handled change of its alarm, or no longer the alarm's state:
    /// nothing was changed.
    Stale,
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
    /// Approval mode: the evacuation waits for `multisite approve` (or its timeout); the plan is
    /// recorded in the ledger and the operator topic told.
    ApprovalPending,
}

/// What started a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Trigger {
    /// An alarm state change delivered by CloudWatch, EventBridge or SNS.
    AlarmChange,
    /// The scheduled reconcile, from the alarm's current state.
    Schedule,
    /// An operator's request (`multisite evacuate` / `failback` / `approve`).
    Operator,
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

impl StepResult {
    /// The result of running `action`: a failed step keeps its cause's class (whether a retry
    /// can help, and its error type), so a permanent error stays permanent through the step.
    fn of(action: Action, result: Result<(), &Error>, duration_ms: u64) -> Self {
        let err = result.err();
        Self {
            action,
            ok: err.is_none(),
            error: err.map(ToString::to_string),
            failure: err.map(Error::class),
            duration_ms,
        }
    }
}

/// The invocation's error from its steps' results: `None` when none failed; retryable as soon as
/// one failure's cause is, otherwise the first permanent cause's error type.
fn steps_error(steps: &[StepResult]) -> Option<Error> {
    Error::steps_failed(steps.iter().filter_map(|s| Some((s.error.as_deref().unwrap_or_default(), s.failure?))))
}

/// The structured report of one alarm change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub trigger: Trigger,
    pub alarm: String,
    pub alarm_state: AlarmState,
    pub change_id: String,
    pub region: Option<String>,
    /// The operator's ARN, for an operator's request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
    /// The Region whose APIs the actions were called from.
    pub acting_region: Option<String>,
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
            trigger: match change.delivery {
                Delivery::Schedule => Trigger::Schedule,
                Delivery::Operator => Trigger::Operator,
                _ => Trigger::AlarmChange,
            },
            alarm: change.alarm_name.clone(),
            alarm_state: change.state,
            change_id: change.change_id(),
            region: region.map(str::to_owned),
            operator: operator_of(change),
            acting_region: None,
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

    fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// What one invocation did: a report per change (or per cell, for the scheduled reconcile) and
/// the AWS calls it made, by operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Response {
    pub reports: Vec<Report>,
    pub calls: BTreeMap<String, u32>,
}

/// Counts the AWS calls of one invocation, by operation (reported in [`Response::calls`]).
#[derive(Debug, Default)]
pub struct Calls(Mutex<BTreeMap<String, u32>>);

impl Calls {
    pub fn add(&self, operation: &str, n: u32) {
        if let Ok(mut calls) = self.0.lock() {
            *calls.entry(operation.to_owned()).or_default() += n;
        }
    }

    fn snapshot(&self) -> BTreeMap<String, u32> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
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
    /// The operator's ARN (STS `GetCallerIdentity`) when an operator's request made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<String>,
}

/// The operator's ARN of an operator's change (`None` for an alarm's).
fn operator_of(change: &AlarmChange) -> Option<String> {
    (change.delivery == Delivery::Operator).then(|| change.alarm_name.clone())
}

/// Handles one invocation: every alarm change in the payload, an operator's request, or the
/// scheduled reconcile.
pub async fn handle(payload: Value, deps: &Deps<'_>) -> Result<Response, Error> {
    match handle_with_report(payload, deps).await? {
        (_, Some(err)) => Err(err),
        (response, None) => Ok(response),
    }
}

/// [`handle`] that keeps the reports of an invocation that fails (the operator's command shows
/// them): `Err` only for a payload refused before anything was done.
pub async fn handle_with_report(payload: Value, deps: &Deps<'_>) -> Result<(Response, Option<Error>), Error> {
    let started = Instant::now();
    let calls = Calls::default();
    let (reports, first_error) = if let Some(request) = operator::OperatorRequest::from_payload(&payload)? {
        operator::handle_request(&request, deps, &calls).await?
    } else if is_scheduled_event(&payload) {
        reconcile_scheduled(deps, &calls).await
    } else {
        let overrides = Overrides::from_payload(&payload)?;
        let changes = decode_alarm_changes(&payload)?;
        let mut reports = Vec::with_capacity(changes.len());
        let mut first_error = None;
        for change in &changes {
            let (report, error) = reconcile_change(change, &overrides, None, deps, &calls).await;
            reports.push(report);
            if let (Some(err), None) = (error, &first_error) {
                first_error = Some(err);
            }
        }
        (reports, first_error)
    };
    let response = Response { reports, calls: calls.snapshot() };
    tracing::info!(calls = ?response.calls, reports = response.reports.len(), "failover invocation done");
    MetricSet::new(NAMESPACE)
        .dimension("Function", "failover")
        .metric("HandlerDuration", started.elapsed().as_secs_f64() * 1000.0, Unit::Milliseconds)
        .metric("AwsCalls", f64::from(response.calls.values().sum::<u32>()), Unit::Count)
        .emit();
    Ok((response, first_error))
}

/// The alarm's state already confirmed by the caller (the scheduled reconcile read it).
#[derive(Debug, Clone, Copy)]
struct Confirmed;

async fn reconcile_change(
    change: &AlarmChange,
    overrides: &Overrides,
    confirmed: Option<Confirmed>,
    deps: &Deps<'_>,
    calls: &Calls,
) -> (Report, Option<Error>) {
    let started = Instant::now();
    let (mut report, error) =
        reconcile_change_inner(change, screen(change, deps), overrides, confirmed, deps, calls).await;
    report.duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "failover report");
    if let Some(err) = &error {
        tracing::error!(alarm = %change.alarm_name, error = %err, "failover did not converge; the invocation fails so Lambda retries");
    }
    (report, error)
}

/// Why a change is not for this function here, checked before any AWS call: mapping,
/// authenticity, state, actor (shared with scaler).
fn screen<'t>(change: &AlarmChange, deps: &Deps<'t>) -> Result<(&'t Cell, &'t AlarmRef), Box<Report>> {
    match shared::alarm::screen(change, deps.topology, deps.identity, deps.home_region) {
        Ok(found) => Ok(found),
        Err(Screened::Ignored { region, reason }) => {
            tracing::info!(alarm = %change.alarm_name, reason = %reason, "alarm change ignored");
            Err(Box::new(Report::new(change, region.as_deref(), Outcome::Ignored).with_reason(reason)))
        }
        Err(Screened::Rejected { region, reason }) => {
            tracing::error!(alarm = %change.alarm_name, region = %region, reason = %reason, "alarm change rejected: not authentic");
            metric("RejectedChanges", 1.0, &region);
            Err(Box::new(Report::new(change, Some(&region), Outcome::Rejected).with_reason(reason)))
        }
    }
}

fn arbiter_ledger(deps: &Deps<'_>) -> Result<Ledger, Error> {
    let region = deps.topology.arbiter_region();
    let clients = deps.clients.region(region)?;
    Ok(Ledger::new(clients.dynamodb.clone(), &deps.topology.ledger_table, region))
}

/// How a reconcile ends: its report, and the error that makes the invocation fail (Lambda
/// retries), if any. A phase that ends the reconcile early answers `Err(Ended)`.
type Ended = (Report, Option<Error>);

/// One alarm change reconciled, in phases: screen it, **decide** (the claim on the arbiter, the
/// alarm's confirmation and the safety rules, in one round trip with the early observation),
/// **observe** and plan from the Region that acts, **act** while the transition is recorded, then
/// **record** each step's outcome.
async fn reconcile_change_inner<'t>(
    change: &AlarmChange,
    screened: Result<(&'t Cell, &'t AlarmRef), Box<Report>>,
    overrides: &Overrides,
    confirmed: Option<Confirmed>,
    deps: &Deps<'t>,
    calls: &Calls,
) -> Ended {
    let (cell, alarm) = match screened {
        Ok(found) => found,
        Err(report) => return (*report, None),
    };
    let region = cell.region.as_str();
    let ledger = match arbiter_ledger(deps) {
        Ok(ledger) => ledger,
        Err(err) => return (Report::new(change, Some(region), Outcome::Reconciled), Some(err)),
    };
    let policy = &deps.topology.failover_policy;
    let dry_run = overrides.dry_run || policy.dry_run;
    // Approval mode: an alarm's evacuation that no operator approved (and that did not time
    // out) is computed as a dry run and recorded as pending instead (see `approval`).
    let mut asking = None;
    let approval_mode = policy.approval == shared::topology::ApprovalMode::Required;
    if approval_mode && change.state == AlarmState::Ok && change.delivery != Delivery::Operator && !dry_run {
        approval::withdraw_on_ok(region, change.changed_at_ms, &ledger, deps, calls).await;
    }
    if approval_mode
        && change.state == AlarmState::Alarm
        && change.delivery != Delivery::Operator
        && overrides.approved_by.is_none()
        && !dry_run
    {
        match approval::hold(change, region, &ledger, deps, calls).await {
            Ok(approval::Held::Proceed) => {}
            Ok(approval::Held::Ended(report)) => return (*report, None),
            Ok(approval::Held::Ask { version }) => {
                if confirmed.is_none() {
                    // Asked only about an alarm that is in ALARM now.
                    match confirm_state(change, cell.alarm_region(alarm), deps, calls).await {
                        Ok(None) => {}
                        Ok(Some(reason)) => {
                            return (stale(Report::new(change, Some(region), Outcome::Stale), change, reason), None);
                        }
                        Err(err) => return (Report::new(change, Some(region), Outcome::Reconciled), Some(err)),
                    }
                }
                asking = Some(version);
            }
            Err(err) => return (Report::new(change, Some(region), Outcome::Reconciled), Some(err)),
        }
    }
    let reconcile = Reconcile {
        change,
        cell,
        alarm,
        region,
        overrides,
        // The plan is computed, and nothing written, when the event or the policy says so (or
        // when it is to be recorded for approval).
        dry_run: dry_run || asking.is_some(),
        ledger: ledger.clone(),
        deps,
        calls,
    };
    let result = async {
        let decided = reconcile.decide(confirmed).await?;
        let planned = reconcile.observe_and_plan(decided).await?;
        let acted = reconcile.act(planned).await?;
        Ok::<Ended, Ended>(reconcile.record(acted).await)
    };
    let (report, error) = match result.await {
        Ok(ended) | Err(ended) => ended,
    };
    match asking {
        Some(version) if report.outcome == Outcome::DryRun && error.is_none() => {
            approval::record_pending(report, change, region, version, &ledger, deps, calls).await
        }
        _ => (report, error),
    }
}

/// What every phase of one change's reconcile reads.
struct Reconcile<'a, 't> {
    change: &'a AlarmChange,
    cell: &'t Cell,
    alarm: &'t AlarmRef,
    /// The Region the change is about.
    region: &'t str,
    overrides: &'a Overrides,
    dry_run: bool,
    /// The arbiter replica: claims and their withdrawal.
    ledger: Ledger,
    deps: &'a Deps<'t>,
    calls: &'a Calls,
}

/// After the decide phase: a transition to carry out.
struct Decided {
    report: Report,
    decision: Decision,
    /// The observation made in the first round trip, from the Region expected to act.
    early_observation: Option<(String, Observation)>,
}

/// After the plan: what this Region's change needs, from the Region that acts.
struct Planned {
    report: Report,
    decision: Decision,
    acting_region: String,
    plan: Plan,
    /// A step the observation itself failed (an unreadable Aurora global cluster).
    failed_observation: Option<StepResult>,
}

/// After the actions: the steps done, and whether the transition record was written.
struct Acted {
    report: Report,
    decision: Decision,
    local: Ledger,
    transition_error: Option<Error>,
}

impl Reconcile<'_, '_> {
    fn report(&self) -> Report {
        let mut report = Report::new(self.change, Some(self.region), Outcome::Reconciled);
        report.operator = report.operator.or_else(|| self.overrides.approved_by.clone());
        report
    }

    /// Round trip 1: the claim on the arbiter (the safety rules are its condition), the alarm's
    /// confirmation (`DescribeAlarms`), the observation from the Region expected to act, and
    /// the writer's Region asked whether it answers; then the verdict.
    async fn decide(&self, confirmed: Option<Confirmed>) -> Result<Decided, Ended> {
        let (change, region, deps, calls) = (self.change, self.region, self.deps, self.calls);
        let expected_acting = acting_region(deps.topology, &HashMap::new(), region, deps.home_region);
        let observe_expected = async {
            match &expected_acting {
                Some(acting) => Some((acting.clone(), observe(deps, acting, region, calls).await)),
                None => None,
            }
        };
        // A dry run asks what this change would do, whatever the alarm says now (e.g. `drill
        // --plan` for a healthy Region): it is not confirmed, and writes nothing to withdraw.
        let confirmed = if self.dry_run { Some(Confirmed) } else { confirmed };
        let confirm = async {
            match confirmed {
                Some(Confirmed) => Ok(None),
                None => confirm_state(change, self.cell.alarm_region(self.alarm), deps, calls).await.map(Some),
            }
        };
        let claim = decide(change, region, self.overrides, self.dry_run, &self.ledger, deps, calls);
        // A speculative evacuation claim is conservative (it can only make other claims refuse)
        // and is withdrawn if the alarm does not confirm it; a speculative failback is not (for a
        // moment another evacuation could pass min_healthy_regions), so a failback is confirmed
        // first.
        let (decision, confirmation, early_observation) = if change.state == AlarmState::Alarm {
            tokio::join!(claim, confirm, observe_expected)
        } else {
            match confirm.await {
                Ok(Some(Some(reason))) => return Err((stale(self.report(), change, reason), None)),
                Err(err) => return Err((self.report(), Some(err))),
                Ok(_) => {}
            }
            let (decision, observation) = tokio::join!(claim, observe_expected);
            (decision, Ok(None), observation)
        };
        let decision = decision.map_err(|err| (self.report(), Some(err)))?;
        // A change the alarm no longer confirms (or that cannot be confirmed) must not act:
        // withdraw what this delivery claimed.
        let unconfirmed = match confirmation {
            Ok(None | Some(None)) => None,
            Ok(Some(Some(stale))) => Some(Ok(stale)),
            Err(err) => Some(Err(err)),
        };
        if let Some(unconfirmed) = unconfirmed {
            if let Some(claim) = &decision.claim {
                if let Err(err) = self.withdraw(claim).await {
                    tracing::error!(region, error = %err, "could not withdraw an unconfirmed claim; the scheduled reconcile corrects it");
                    return Err((self.report(), Some(err)));
                }
            }
            return Err(match unconfirmed {
                Ok(reason) => (stale(self.report(), change, reason), None),
                Err(err) => (self.report(), Some(err)),
            });
        }
        let mut report = self.report();
        report.transition_recorded = decision.transition_recorded;
        report.desired = deps.topology.regions().map(|r| (r.to_owned(), decision.fleet.status_of(r))).collect();
        match &decision.verdict {
            Verdict::Refused(refusal) => {
                tracing::error!(alarm = %change.alarm_name, region, refusal = %refusal, "evacuation refused by a safety rule");
                return Err((stop(report, Outcome::Refused, refusal.to_string(), Some("Refusals")), None));
            }
            Verdict::FailbackPending(reason) => {
                tracing::warn!(alarm = %change.alarm_name, region, reason = %reason, "failback pending");
                return Err((stop(report, Outcome::FailbackPending, reason.clone(), Some("FailbacksPending")), None));
            }
            Verdict::Stale(reason) => return Err((stale(report, change, reason.clone()), None)),
            Verdict::AlreadyDone(reason) => return Err((stop(report, Outcome::Ignored, reason.clone(), None), None)),
            Verdict::Proceed => {}
        }
        if decision.transition_recorded {
            let name = if change.state == AlarmState::Alarm { "Evacuations" } else { "Failbacks" };
            metric(name, 1.0, region);
        }
        Ok(Decided { report, decision, early_observation })
    }

    /// The plan, from a surviving Region's observation (the first round trip's, unless the fleet
    /// says another Region acts). A dry run ends here with the plan.
    async fn observe_and_plan(&self, decided: Decided) -> Result<Planned, Ended> {
        let Decided { mut report, decision, early_observation } = decided;
        let (change, region, deps) = (self.change, self.region, self.deps);
        let desired = decision.fleet.statuses();
        let Some(acting_region) = acting_region(deps.topology, &desired, region, deps.home_region) else {
            return Err((report, Some(Error::Unexpected("no active Region left to act from".into()))));
        };
        report.acting_region = Some(acting_region.clone());
        let observation = match early_observation {
            Some((observed_from, observation)) if observed_from == acting_region => observation,
            // The fleet says the expected Region is out (an earlier evacuation): observe again
            // from the Region that acts. One more round trip, only then.
            _ => observe(deps, &acting_region, region, self.calls).await,
        };
        let options = PlanOptions {
            planned: self.overrides.planned,
            // Restoring a check is failback: only with auto-failback on (the gates passed above).
            failback_region: (change.state == AlarmState::Ok
                && (deps.topology.failover_policy.auto_failback || change.delivery == Delivery::Operator))
                .then(|| region.to_owned()),
            restore_writer: self.overrides.restore_writer,
            writer_region_answers: observation.writer_region_answers,
        };
        // One actor per change: only this Region's work (its health check, the writer leaving or
        // returning to it). Another Region's status in the fleet may be a claim its own actor is
        // about to withdraw; that actor, or the scheduled reconcile, does that Region's work.
        let full = plan::plan(deps.topology, &desired, &observation.observed, &options);
        let plan =
            Plan { actions: full.actions.into_iter().filter(|a| a.concerns(region)).collect(), notes: full.notes };
        tracing::info!(region, acting_region = %acting_region, actions = plan.actions.len(), notes = ?plan.notes, "plan computed");
        report.observed = Some(observation.observed);
        report.plan = Some(plan.clone());
        if self.dry_run {
            report.outcome = Outcome::DryRun;
            return Err((report, None));
        }
        Ok(Planned { report, decision, acting_region, plan, failed_observation: observation.failed_step })
    }

    /// The actions, with the transition record written while they run: the fleet claim in
    /// `decide` is what serialises deliveries; the record is history (one sequential round trip
    /// less). A refusal by ARC's safety rule gives the claim back.
    async fn act(&self, planned: Planned) -> Result<Acted, Ended> {
        let Planned { mut report, decision, acting_region, plan, failed_observation } = planned;
        let (change, region, deps, calls) = (self.change, self.region, self.deps, self.calls);
        let local = match deps.clients.region(deps.home_region) {
            Ok(clients) => Ledger::new(clients.dynamodb.clone(), &deps.topology.ledger_table, deps.home_region),
            Err(err) => return Err((report, Some(err))),
        };
        let record_transition = async {
            let Some((sk, record)) = &decision.transition else { return None };
            calls.add("PutItem", 1);
            match local.put_if_absent(&ledger::transition_pk(region), sk, record, record.recorded_at_ms).await {
                Ok(_) => {
                    tracing::info!(region, to = ?record.to, change = %record.change_id, "transition recorded");
                    None
                }
                Err(err) => Some(err),
            }
        };
        let (applied, transition_error) =
            tokio::join!(apply(deps, &acting_region, &plan.actions, calls), record_transition);
        report.steps = applied.steps;
        report.steps.extend(failed_observation);
        if let Some(reason) = applied.refused {
            // ARC's safety rule said no: the Region stays in routing, so the claim goes back too.
            if let Some(claim) = decision.claim.as_ref().filter(|_| change.state == AlarmState::Alarm) {
                if let Err(err) = self.withdraw(claim).await {
                    tracing::error!(region, error = %err, "could not withdraw a claim ARC refused; the scheduled reconcile corrects it");
                }
            }
            report = refused_by_arc(report, reason);
        }
        Ok(Acted { report, decision, local, transition_error })
    }

    /// Each step's outcome in the ledger; the invocation fails if a step or the transition
    /// record did.
    async fn record(&self, acted: Acted) -> Ended {
        let Acted { mut report, decision, local, transition_error } = acted;
        let region = self.region;
        let cause = decision.fleet.regions.get(region).map(|e| e.cause.clone());
        let error = record_outcome(
            &mut report,
            region,
            cause.as_deref(),
            self.change,
            &self.ledger,
            &local,
            self.deps,
            self.calls,
        )
        .await;
        if let Some(err) = transition_error {
            // The actions ran (they matter more); the invocation still fails so the error is seen.
            tracing::error!(error = %err, "the transition record was not written");
            return (report, error.or(Some(err)));
        }
        (report, error)
    }

    /// Gives back the one-shot claim this delivery wrote on the arbiter.
    async fn withdraw(&self, claim: &ledger::Claimed) -> Result<(), Error> {
        self.calls.add("UpdateItem", 1);
        self.ledger
            .withdraw_region_status(
                self.region,
                claim.previous.as_ref(),
                &self.change.change_id(),
                self.deps.clock.now_ms(),
            )
            .await
            .map(|_| ())
    }
}

/// The report of a change that ends without acting, with its metric (per Region).
fn stop(mut report: Report, outcome: Outcome, reason: String, metric_name: Option<&str>) -> Report {
    if let (Some(name), Some(region)) = (metric_name, report.region.as_deref()) {
        metric(name, 1.0, region);
    }
    report.outcome = outcome;
    report.reason = Some(reason);
    report
}

/// A routing change ARC's safety rule refused: nothing else of the plan ran.
fn refused_by_arc(report: Report, reason: String) -> Report {
    tracing::error!(alarm = %report.alarm, region = ?report.region, reason = %reason, "ARC safety rule refused the routing change");
    stop(report, Outcome::Refused, format!("ARC safety rule refused the routing change: {reason}"), Some("Refusals"))
}

/// A change that is older than the newest handled one, or that the alarm no longer shows.
fn stale(report: Report, change: &AlarmChange, reason: String) -> Report {
    tracing::warn!(alarm = %change.alarm_name, reason = %reason, "alarm change is stale: nothing changed");
    stop(report, Outcome::Stale, reason, Some("StaleChanges"))
}

/// Records the steps' outcomes: in the transition record, and, when every step succeeded, as the
/// transition being settled in the fleet record. Any failed step is the invocation's error.
#[allow(clippy::too_many_arguments)]
async fn record_outcome(
    report: &mut Report,
    region: &str,
    cause: Option<&str>,
    change: &AlarmChange,
    arbiter: &Ledger,
    local: &Ledger,
    deps: &Deps<'_>,
    calls: &Calls,
) -> Option<Error> {
    // A refusal is an answer, not a failure: the history keeps its steps, nothing is settled,
    // and retrying the invocation cannot help (the scheduled reconcile asks again).
    let refused = report.outcome == Outcome::Refused;
    let failures = if refused { 0 } else { report.steps.iter().filter(|s| !s.ok).count() };
    let now = deps.clock.now_ms();
    let history = async {
        if report.steps.is_empty() {
            return;
        }
        let status = report.desired.get(region).copied().unwrap_or(RegionStatus::Active);
        let record = TransitionRecord {
            region: region.to_owned(),
            to: status,
            alarm: change.alarm_name.clone(),
            change_id: change.change_id(),
            recorded_at_ms: now,
            steps: report.steps.iter().filter_map(|s| serde_json::to_value(s).ok()).collect(),
            operator: report.operator.clone(),
        };
        calls.add("PutItem", 1);
        if let Err(err) =
            local.put(&ledger::transition_pk(region), &transition_sk(change, status), &record, 1, now).await
        {
            tracing::error!(error = %err, "could not record the steps' outcomes in the ledger");
        }
    };
    let settle = async {
        let Some(cause) = cause.filter(|_| failures == 0 && !refused) else { return };
        calls.add("UpdateItem", 1);
        if let Err(err) = arbiter.mark_settled(region, cause, now).await {
            tracing::warn!(region, error = %err, "transition not marked settled: the scheduled reconcile checks it again");
        }
    };
    tokio::join!(history, settle);
    if failures == 0 {
        return None;
    }
    metric("StepFailures", failures as f64, region);
    report.outcome = Outcome::PartiallyFailed;
    steps_error(&report.steps)
}

/// `Ok(None)`: the alarm is still in the change's state. `Ok(Some(why))`: it is not (stale).
/// `Err`: the state could not be read, so nothing may act on it.
async fn confirm_state(
    change: &AlarmChange,
    alarm_region: &str,
    deps: &Deps<'_>,
    calls: &Calls,
) -> Result<Option<String>, Error> {
    let cloudwatch = &deps.clients.region(alarm_region)?.cloudwatch;
    calls.add("DescribeAlarms", 1);
    let current = shared::aws::current_alarms(cloudwatch, alarm_region, &[change.alarm_name.as_str()]).await?;
    Ok(match current.iter().find(|a| a.name == change.alarm_name) {
        // Not an answer about the state: a missing alarm (deleted, renamed, or a composite alarm
        // the role's scoped DescribeAlarms cannot return) must be seen and fixed, not skipped.
        None => {
            return Err(Error::Unexpected(format!(
                "DescribeAlarms in {alarm_region} does not return alarm {}: it does not exist there, or it is a \
                 composite alarm (whose state a DescribeAlarms permission scoped to alarm ARNs cannot read)",
                change.alarm_name
            )));
        }
        Some(now) if now.state != change.state => Some(format!(
            "the change says {:?} but alarm {} is {:?} now (since {:?} ms): a late delivery",
            change.state, change.alarm_name, now.state, now.changed_at_ms
        )),
        Some(_) => None,
    })
}

enum Verdict {
    Proceed,
    Refused(Refusal),
    FailbackPending(String),
    /// An older change than the newest handled for this alarm.
    Stale(String),
    /// Another change already made this transition; its actor (or the schedule) finishes it.
    AlreadyDone(String),
}

struct Decision {
    fleet: FleetStatus,
    verdict: Verdict,
    transition_recorded: bool,
    /// The transition record to write (sort key, body), when this delivery made the transition.
    transition: Option<(String, TransitionRecord)>,
    /// The one-shot claim this delivery wrote, to withdraw if the alarm does not confirm it.
    claim: Option<ledger::Claimed>,
}

/// One record per (alarm change, target status), whichever way the change came: its time is
/// normalised (an event's `+0000` and the schedule's `Z` from DescribeAlarms are the same instant).
fn transition_sk(change: &AlarmChange, to: RegionStatus) -> String {
    format!("{}#{:?}", shared::alarm::format_alarm_time(change.changed_at_ms), to)
}

/// Reads the fleet status, applies the safety rules and records the change, retrying when a
/// concurrent writer changed the fleet in between.
async fn decide(
    change: &AlarmChange,
    region: &str,
    overrides: &Overrides,
    dry_run: bool,
    ledger: &Ledger,
    deps: &Deps<'_>,
    calls: &Calls,
) -> Result<Decision, Error> {
    // An operator's request is no alarm change: it has no ordering mark to check or leave.
    let by_operator = change.delivery == Delivery::Operator;
    let mark = (!by_operator).then_some((change.alarm_name.as_str(), change.changed_at_ms));
    if change.state == AlarmState::Alarm && !dry_run {
        // The critical path: claim the evacuation with one conditional write that carries the
        // safety rules and the ordering mark, no read first. It shares its round trip with the
        // confirmation and the observation.
        let now = deps.clock.now_ms();
        if let Some(condition) = policy::evacuation_condition(deps.topology, region, now, mark) {
            let entry =
                RegionStatusEntry { status: RegionStatus::Evacuated, changed_at_ms: now, cause: change.change_id() };
            calls.add("UpdateItem", 1);
            match ledger.claim_region_status(region, &entry, mark, &condition, now).await? {
                (WriteOutcome::Written, Some(claim)) => {
                    let mut decision =
                        transition_made(change, overrides, region, RegionStatus::Evacuated, claim.fleet.clone(), now);
                    decision.claim = Some(claim);
                    return Ok(decision);
                }
                // A duplicate, a refusal, a stale change or a concurrent change: read and decide
                // in code below, which also says which of them it was.
                _ => tracing::info!(region, "one-shot evacuation claim did not hold; reading the fleet status"),
            }
        }
    }
    let decided =
        |fleet, verdict| Decision { fleet, verdict, transition_recorded: false, transition: None, claim: None };
    for _ in 0..MAX_STATUS_ATTEMPTS {
        calls.add("GetItem", 1);
        let (fleet, version) = ledger.fleet_status().await?;
        let now = deps.clock.now_ms();
        if let Some(newest) = fleet.alarm_mark(&change.alarm_name).filter(|m| !by_operator && *m > change.changed_at_ms)
        {
            let reason = format!(
                "a newer change of {} (at {newest} ms) was handled already; this one is of {} ms",
                change.alarm_name, change.changed_at_ms
            );
            return Ok(decided(fleet, Verdict::Stale(reason)));
        }
        let target = match change.state {
            AlarmState::Alarm => RegionStatus::Evacuated,
            _ => RegionStatus::Active,
        };
        if fleet.status_of(region) == target {
            // A duplicate of the change that made the transition (a retry after a failed step)
            // reconciles again, idempotently; any other change leaves the work to that one.
            let cause = fleet.regions.get(region).map(|e| e.cause.clone()).unwrap_or_default();
            if cause == change.change_id() {
                return Ok(decided(fleet, Verdict::Proceed));
            }
            let reason = if cause.is_empty() {
                format!("{region} is {target:?} already: nothing to do")
            } else {
                format!("{region} is {target:?} already (by {cause}); the scheduled reconcile finishes its steps")
            };
            return Ok(decided(fleet, Verdict::AlreadyDone(reason)));
        }
        let statuses = fleet.statuses();
        let verdict = match target {
            RegionStatus::Evacuated => policy::check_evacuation(deps.topology, &statuses, region)
                .and_then(|()| policy::check_cooldown(deps.topology, region, fleet.last_change_ms(region), now))
                .err()
                .map(Verdict::Refused),
            RegionStatus::Active => {
                failback_gate(change, region, &fleet, deps, now, calls).await?.map(Verdict::FailbackPending)
            }
        };
        if let Some(verdict) = verdict {
            return Ok(decided(fleet, verdict));
        }
        let mut next = fleet.clone();
        next.regions.insert(
            region.to_owned(),
            RegionStatusEntry { status: target, changed_at_ms: now, cause: change.change_id() },
        );
        if !by_operator {
            next.alarms.insert(change.alarm_name.clone(), change.changed_at_ms);
        }
        if dry_run {
            return Ok(decided(next, Verdict::Proceed));
        }
        calls.add("UpdateItem", 1);
        match ledger.put_fleet_if_version(&next, version, now).await? {
            WriteOutcome::Written => {
                // Withdrawable like the one-shot claim: the confirmation runs concurrently.
                let previous = fleet.regions.get(region).cloned();
                let mut decision = transition_made(change, overrides, region, target, next.clone(), now);
                decision.claim = Some(ledger::Claimed { fleet: next, version: version + 1, previous });
                return Ok(decision);
            }
            // Someone changed the fleet since we read it: read again and re-check the rules.
            WriteOutcome::AlreadyPresent => continue,
        }
    }
    Err(Error::Unexpected(format!("the fleet status kept changing under {MAX_STATUS_ATTEMPTS} attempts; retry")))
}

/// The decision of the delivery that changed `region` to `to`; its transition record is written
/// by the caller while it acts (see `reconcile_change_inner`).
fn transition_made(
    change: &AlarmChange,
    overrides: &Overrides,
    region: &str,
    to: RegionStatus,
    fleet: FleetStatus,
    now: u64,
) -> Decision {
    let record = TransitionRecord {
        region: region.to_owned(),
        to,
        alarm: change.alarm_name.clone(),
        change_id: change.change_id(),
        recorded_at_ms: now,
        steps: Vec::new(),
        operator: operator_of(change).or_else(|| overrides.approved_by.clone()),
    };
    let transition = Some((transition_sk(change, to), record));
    Decision { fleet, verdict: Verdict::Proceed, transition_recorded: true, transition, claim: None }
}

/// Why failback must wait, if it must: auto-failback off, the cool-down, or no fresh lag-probe
/// verdict that measured the returning Region's pairs with readiness OK.
async fn failback_gate(
    change: &AlarmChange,
    region: &str,
    fleet: &FleetStatus,
    deps: &Deps<'_>,
    now: u64,
    calls: &Calls,
) -> Result<Option<String>, Error> {
    let policy = &deps.topology.failover_policy;
    let by_operator = change.delivery == Delivery::Operator;
    if !by_operator {
        // Precedence (docs/operators.md): an operator's evacuation holds until an operator fails
        // the Region back; an alarm's OK does not undo it.
        if let Some(entry) = fleet.regions.get(region).filter(|e| e.by_operator()) {
            return Ok(Some(format!(
                "{region} was evacuated by an operator ({}); its alarm's OK does not fail it back: run `multisite \
                 failback {region}`",
                entry.cause
            )));
        }
        if !policy.auto_failback {
            return Ok(Some(format!(
                "{region} is healthy again; auto_failback is off: fail back manually (`multisite failback {region}`)"
            )));
        }
    }
    if let Err(refusal) = policy::check_cooldown(deps.topology, region, fleet.last_change_ms(region), now) {
        return Ok(Some(refusal.to_string()));
    }
    // The verdict lag-probe wrote in this Region (each Region's probe writes its own replica).
    let local = Ledger::new(
        deps.clients.region(deps.home_region)?.dynamodb.clone(),
        &deps.topology.ledger_table,
        deps.home_region,
    );
    calls.add("GetItem", 1);
    match local.latest_probe().await? {
        None => Ok(Some(format!("no lag-probe verdict yet: {region} fails back once one measured its pairs"))),
        Some(probe) => Ok(probe.body.failback_verdict(region, now, PROBE_MAX_AGE_MS).err()),
    }
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

/// What one observation round trip saw.
struct Observation {
    observed: Observed,
    /// The Aurora writer's Region answered RDS (see [`aws::region_answers`]).
    writer_region_answers: bool,
    /// With Aurora in the topology, a global cluster that could not be read is a failed step:
    /// the writer may be in the failed Region, and only a retry can tell.
    failed_step: Option<StepResult>,
}

/// Reads every health check and the Aurora global cluster from `acting_region`, and asks RDS
/// in the `changing` Region (where the writer may be) whether it answers, all at once.
async fn observe(deps: &Deps<'_>, acting_region: &str, changing: &str, calls: &Calls) -> Observation {
    let started = Instant::now();
    let Ok(acting) = deps.clients.region(acting_region) else {
        return Observation {
            observed: Observed { health_checks: Vec::new(), routing_controls: Vec::new(), aurora: None },
            writer_region_answers: false,
            failed_step: None,
        };
    };
    // Backend `arc`: the routing controls, from the ARC cluster's data plane (no Route 53 call).
    let arc = deps.topology.arc();
    let controls = async {
        let Some(arc) = arc else { return Vec::new() };
        calls.add("ListRoutingControls", 1);
        let states = match deps.clients.arc(arc, deps.home_region).states(&arc.control_panel_arn).await {
            Ok(states) => Some(states.on),
            Err(err) => {
                tracing::warn!(error = %err, "routing controls not observed; acting idempotently");
                None
            }
        };
        deps.topology
            .cells
            .iter()
            .filter_map(|cell| {
                let arn = arc.routing_controls.get(&cell.region)?;
                let on = states.as_ref().map(|s| s.get(arn).copied().unwrap_or(false));
                Some(plan::ObservedRoutingControl { region: cell.region.clone(), routing_control_arn: arn.clone(), on })
            })
            .collect()
    };
    let checks = deps.topology.cells.iter().filter(|_| arc.is_none()).map(|cell| {
        let route53 = acting.route53.clone();
        async move {
            calls.add("GetHealthCheck", 1);
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
        calls.add("DescribeGlobalClusters", 1);
        Some(aws::observe_aurora(&acting.rds, acting_region, &global.global_cluster_id).await)
    };
    let answers = async {
        let global = deps.topology.aurora.as_ref()?;
        let rds = &deps.clients.region(changing).ok()?.rds;
        calls.add("DescribeGlobalClusters", 1);
        Some(aws::region_answers(rds, &global.global_cluster_id).await)
    };
    let (health_checks, routing_controls, aurora, answers) =
        tokio::join!(futures_util::future::join_all(checks), controls, aurora, answers);
    let (aurora, failed_step) = match aurora {
        None => (None, None),
        Some(Ok(observed)) => (Some(observed), None),
        Some(Err(err)) => {
            tracing::error!(error = %err, "Aurora global cluster not observed: a failed step, retried");
            let step = StepResult::of(
                Action::ObserveAurora { from_region: acting_region.to_owned() },
                Err(&err),
                started.elapsed().as_millis() as u64,
            );
            (None, Some(step))
        }
    };
    // The writer's Region answers if it is the changing Region and RDS there answered, or the
    // writer is elsewhere (a Region that is not failing).
    let writer_region_answers = match aurora.as_ref().and_then(|a| a.writer()) {
        Some(writer) if writer.region == changing => answers.unwrap_or(false),
        Some(_) => true,
        None => false,
    };
    Observation { observed: Observed { health_checks, routing_controls, aurora }, writer_region_answers, failed_step }
}

/// The steps that ran, and ARC's reason when a safety rule refused the routing change.
struct Applied {
    steps: Vec<StepResult>,
    refused: Option<String>,
}

/// Applies the actions concurrently; one failing never stops the others. With the ARC backend
/// the routing-control change goes first, in one atomic `UpdateRoutingControlStates`: when a
/// safety rule refuses it, no other action of the plan runs.
async fn apply(deps: &Deps<'_>, acting_region: &str, actions: &[Action], calls: &Calls) -> Applied {
    let (routing, others): (Vec<&Action>, Vec<&Action>) = match deps.topology.arc() {
        Some(_) => actions.iter().partition(|a| a.is_routing_control()),
        None => (Vec::new(), actions.iter().collect()),
    };
    let mut steps = Vec::new();
    if let (false, Some(arc)) = (routing.is_empty(), deps.topology.arc()) {
        let started = Instant::now();
        let entries: Vec<(String, bool)> = routing
            .iter()
            .filter_map(|a| match a {
                Action::SetRoutingControl { routing_control_arn, on, .. } => Some((routing_control_arn.clone(), *on)),
                _ => None,
            })
            .collect();
        calls.add("UpdateRoutingControlStates", 1);
        let result = deps.clients.arc(arc, deps.home_region).set_states(&entries).await;
        let duration_ms = started.elapsed().as_millis() as u64;
        let (error, failure, refused) = match result {
            Ok(shared::arc::ChangeOutcome::Applied { endpoint_region }) => {
                tracing::info!(entries = entries.len(), endpoint = %endpoint_region, duration_ms, "routing controls set");
                (None, None, None)
            }
            Ok(shared::arc::ChangeOutcome::Refused { reason }) => {
                let message = format!("ARC safety rule refused the change: {reason}");
                (Some(message), None, Some(reason))
            }
            Err(err) => {
                tracing::error!(error = %err, "routing controls not set");
                (Some(err.to_string()), Some(err.class()), None)
            }
        };
        steps.extend(routing.iter().map(|action| StepResult {
            action: (*action).clone(),
            ok: error.is_none(),
            error: error.clone(),
            failure,
            duration_ms,
        }));
        if refused.is_some() {
            return Applied { steps, refused };
        }
    }
    let concurrent = others.into_iter().map(|action| async move {
        let started = Instant::now();
        let result = apply_one(deps, acting_region, action, calls).await;
        let step = StepResult::of(action.clone(), result.as_ref().copied(), started.elapsed().as_millis() as u64);
        match &result {
            Ok(()) => tracing::info!(action = action.name(), duration_ms = step.duration_ms, "step done"),
            Err(err) => tracing::error!(action = action.name(), error = %err, "step failed"),
        }
        step
    });
    steps.extend(futures_util::future::join_all(concurrent).await);
    Applied { steps, refused: None }
}

async fn apply_one(deps: &Deps<'_>, acting_region: &str, action: &Action, calls: &Calls) -> Result<(), Error> {
    match action {
        Action::InvertHealthCheck { health_check_id, .. } => {
            let route53 = &deps.clients.region(acting_region)?.route53;
            calls.add("UpdateHealthCheck", 1);
            aws::set_health_check_forced_unhealthy(route53, acting_region, health_check_id, true).await
        }
        Action::RestoreHealthCheck { health_check_id, .. } => {
            let route53 = &deps.clients.region(acting_region)?.route53;
            calls.add("UpdateHealthCheck", 1);
            aws::set_health_check_forced_unhealthy(route53, acting_region, health_check_id, false).await
        }
        Action::MoveAuroraWriter { to_region, target_cluster_arn, mode, .. } => {
            let global = deps
                .topology
                .aurora
                .as_ref()
                .ok_or_else(|| Error::Unexpected("Aurora action planned without an Aurora topology".into()))?;
            let rds = &deps.clients.region(to_region)?.rds;
            calls.add(
                if *mode == plan::WriterMove::Switchover { "SwitchoverGlobalCluster" } else { "FailoverGlobalCluster" },
                1,
            );
            aws::move_writer(rds, to_region, &global.global_cluster_id, target_cluster_arn, *mode).await
        }
        Action::ObserveAurora { .. } => Err(Error::Unexpected("ObserveAurora is an observation, not an action".into())),
        Action::SetRoutingControl { .. } => {
            Err(Error::Unexpected("a routing control is set by apply's ARC step, not on its own".into()))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The scheduled reconcile: level-triggered convergence from the alarms' current states.

/// Every minute in every Region: for each cell this Region acts for (the actor of the cell's
/// first alarm), read the alarms' current states, the fleet record and the world, and converge
/// as if the right change had just arrived: evacuate a Region whose alarm is in ALARM once the
/// rules allow it, fail back a Region whose alarms are all OK once the gates are open, and finish
/// the steps of a transition that did not settle. With nothing to do it costs one
/// `DescribeAlarms` per alarm Region, one fleet read and the observation.
pub async fn reconcile_scheduled(deps: &Deps<'_>, calls: &Calls) -> (Vec<Report>, Option<Error>) {
    let mine: Vec<&Cell> = deps
        .topology
        .cells
        .iter()
        .filter(|cell| {
            cell.alarms.first().is_some_and(|alarm| deps.topology.actor_region(cell, alarm) == deps.home_region)
        })
        .collect();
    if mine.is_empty() {
        tracing::info!(home = deps.home_region, "scheduled reconcile: no Region is reconciled from here");
        return (Vec::new(), None);
    }
    let ledger = match arbiter_ledger(deps) {
        Ok(ledger) => ledger,
        Err(err) => return (Vec::new(), Some(err)),
    };
    // Observe: the alarms (one call per alarm Region) and the fleet record, at once.
    let mut by_region: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for cell in &mine {
        for alarm in &cell.alarms {
            by_region.entry(cell.alarm_region(alarm)).or_default().push(alarm.name.as_str());
        }
    }
    let alarm_reads = by_region.iter().map(|(region, names)| async move {
        let cloudwatch = &deps.clients.region(region)?.cloudwatch;
        calls.add("DescribeAlarms", 1);
        shared::aws::current_alarms(cloudwatch, region, names).await
    });
    let fleet_read = async {
        calls.add("GetItem", 1);
        ledger.fleet_status().await
    };
    // The world as it is, to see work left that the ledger cannot show: e.g. a writer that moved
    // into a Region evacuated at the same moment by another Region's change.
    let world = observe(deps, deps.home_region, deps.home_region, calls);
    let (alarm_reads, fleet, world) = tokio::join!(futures_util::future::join_all(alarm_reads), fleet_read, world);
    let fleet = match fleet {
        Ok((fleet, _)) => fleet,
        Err(err) => return (Vec::new(), Some(err)),
    };
    let mut current = HashMap::new();
    let mut first_error = None;
    for read in alarm_reads {
        match read {
            Ok(alarms) => current.extend(alarms.into_iter().map(|a| (a.name.clone(), a))),
            Err(err) => {
                tracing::error!(error = %err, "alarm states not read: those cells wait for the next run");
                first_error.get_or_insert(err);
            }
        }
    }

    let mut reports = Vec::new();
    for cell in mine {
        let (report, error) = reconcile_cell(cell, &current, &fleet, &world.observed, &ledger, deps, calls).await;
        if let Some(report) = report {
            reports.push(report);
        }
        if let (Some(err), None) = (error, &first_error) {
            first_error = Some(err);
        }
    }
    (reports, first_error)
}

/// One cell of the scheduled reconcile. `None`: nothing to do (converged, or no opinion).
async fn reconcile_cell(
    cell: &Cell,
    current: &HashMap<String, shared::aws::CurrentAlarm>,
    fleet: &FleetStatus,
    world: &Observed,
    ledger: &Ledger,
    deps: &Deps<'_>,
    calls: &Calls,
) -> (Option<Report>, Option<Error>) {
    let region = cell.region.as_str();
    let states: Vec<(&AlarmRef, &shared::aws::CurrentAlarm)> =
        cell.alarms.iter().filter_map(|a| current.get(&a.name).map(|c| (a, c))).collect();
    if states.len() < cell.alarms.len() {
        // An alarm that does not exist or could not be read: no opinion about this cell.
        return (None, None);
    }
    let alarming = states.iter().find(|(_, c)| c.state == AlarmState::Alarm);
    let all_ok = states.iter().all(|(_, c)| c.state == AlarmState::Ok);
    let from_alarms = match (alarming, all_ok) {
        (Some(_), _) => RegionStatus::Evacuated,
        (None, true) => RegionStatus::Active,
        (None, false) => return (None, None),
    };
    let wanted = desired_status(fleet.regions.get(region), from_alarms);
    if all_ok && deps.topology.failover_policy.approval == shared::topology::ApprovalMode::Required {
        // A pending evacuation of a Region whose alarms are all OK again is moot.
        let ok_at = states.iter().filter_map(|(_, c)| c.changed_at_ms).max().unwrap_or(0);
        approval::withdraw_on_ok(region, ok_at, ledger, deps, calls).await;
    }
    let source = alarming.copied().or_else(|| states.iter().max_by_key(|(_, c)| c.changed_at_ms).copied());
    let Some((alarm, now_state)) = source else { return (None, None) };
    if fleet.status_of(region) != wanted {
        // As if the change had just arrived (its identity is the alarm's own state change, so the
        // event and the schedule recognise each other as duplicates).
        let change = synthesize_change(cell, alarm, now_state, fleet, deps);
        let (report, error) = reconcile_change(&change, &Overrides::default(), Some(Confirmed), deps, calls).await;
        return (Some(report), error);
    }
    let status = fleet.status_of(region);
    let options = PlanOptions {
        failback_region: (status == RegionStatus::Active && fleet.unsettled(region)).then(|| region.to_owned()),
        ..PlanOptions::default()
    };
    let work_left =
        plan::plan(deps.topology, &fleet.statuses(), world, &options).actions.iter().any(|a| a.concerns(region));
    if !fleet.unsettled(region) && !work_left {
        return (None, None);
    }
    // The status is right but the world is not, or its transition has steps left: finish them.
    let change = synthesize_change(cell, alarm, now_state, fleet, deps);
    let (report, error) = converge(cell, &change, fleet, ledger, deps, calls).await;
    (Some(report), error)
}

/// The status the scheduled reconcile converges a Region to (docs/operators.md): an operator's
/// evacuation holds whatever the alarms say, until an operator fails the Region back; otherwise
/// the alarms decide (an operator's failback included: a later ALARM evacuates again).
fn desired_status(recorded: Option<&RegionStatusEntry>, from_alarms: RegionStatus) -> RegionStatus {
    match recorded {
        Some(entry) if entry.by_operator() && entry.status == RegionStatus::Evacuated => RegionStatus::Evacuated,
        _ => from_alarms,
    }
}

/// How far DescribeAlarms' state time may sit below the event's for the same change: the SDK
/// reads rpcv2Cbor's float epoch seconds and truncates them to the millisecond, so `.915`
/// (stored as 0.91499...) reads back as `.914`.
const DESCRIBE_ALARMS_TIME_SLACK_MS: u64 = 1;

/// The state-change time of a change seen through DescribeAlarms (`described`): the fleet's
/// mark for the alarm when that is the same instant before the SDK's truncation.
fn change_time(described: u64, mark: Option<u64>) -> u64 {
    match mark {
        Some(mark) if mark >= described && mark - described <= DESCRIBE_ALARMS_TIME_SLACK_MS => mark,
        _ => described,
    }
}

fn synthesize_change(
    cell: &Cell,
    alarm: &AlarmRef,
    now: &shared::aws::CurrentAlarm,
    fleet: &FleetStatus,
    deps: &Deps<'_>,
) -> AlarmChange {
    // The same change as the one the fleet recorded for this alarm (its mark is the event's exact
    // time), when DescribeAlarms' time is that instant less the SDK's truncation.
    let changed_at_ms = change_time(now.changed_at_ms.unwrap_or(0), fleet.alarm_mark(&alarm.name));
    let changed_at = shared::alarm::format_alarm_time(changed_at_ms);
    let arn = now.arn.clone().or_else(|| {
        Some(format!(
            "arn:{}:cloudwatch:{}:{}:alarm:{}",
            deps.identity.partition,
            cell.alarm_region(alarm),
            deps.identity.account,
            alarm.name
        ))
    });
    AlarmChange {
        alarm_name: alarm.name.clone(),
        state: now.state,
        previous_state: None,
        changed_at,
        changed_at_ms,
        alarm_arn: arn,
        reason: now.reason.clone(),
        delivery: Delivery::Schedule,
    }
}

/// Finishes the steps of `cell`'s latest transition (the fleet status is already right).
async fn converge(
    cell: &Cell,
    change: &AlarmChange,
    fleet: &FleetStatus,
    ledger: &Ledger,
    deps: &Deps<'_>,
    calls: &Calls,
) -> (Report, Option<Error>) {
    let started = Instant::now();
    let region = cell.region.as_str();
    let mut report = Report::new(change, Some(region), Outcome::Reconciled);
    let desired = fleet.statuses();
    report.desired = deps.topology.regions().map(|r| (r.to_owned(), fleet.status_of(r))).collect();
    let Some(acting_region) = acting_region(deps.topology, &desired, region, deps.home_region) else {
        return (report, Some(Error::Unexpected("no active Region left to act from".into())));
    };
    report.acting_region = Some(acting_region.clone());
    let observation = observe(deps, &acting_region, region, calls).await;
    let status = fleet.status_of(region);
    let options = PlanOptions {
        failback_region: (status == RegionStatus::Active).then(|| region.to_owned()),
        writer_region_answers: observation.writer_region_answers,
        ..PlanOptions::default()
    };
    let full = plan::plan(deps.topology, &desired, &observation.observed, &options);
    // Only this cell's work: its health check, and the writer leaving it.
    let actions: Vec<Action> = full.actions.into_iter().filter(|a| a.concerns(region)).collect();
    let plan = Plan { actions, notes: full.notes };
    report.observed = Some(observation.observed.clone());
    report.plan = Some(plan.clone());
    if deps.topology.failover_policy.dry_run {
        report.outcome = Outcome::DryRun;
        return (report, None);
    }
    let local = match deps.clients.region(deps.home_region) {
        Ok(clients) => Ledger::new(clients.dynamodb.clone(), &deps.topology.ledger_table, deps.home_region),
        Err(err) => return (report, Some(err)),
    };
    let applied = apply(deps, &acting_region, &plan.actions, calls).await;
    let mut steps = applied.steps;
    if let Some(failed) = observation.failed_step {
        steps.push(failed);
    }
    report.steps = steps;
    if let Some(reason) = applied.refused {
        report = refused_by_arc(report, reason);
    }
    let cause = fleet.regions.get(region).map(|e| e.cause.clone());
    let error = record_outcome(&mut report, region, cause.as_deref(), change, ledger, &local, deps, calls).await;
    report.duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "failover converge report");
    (report, error)
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

    /// What Route 53 answers an `UpdateHealthCheck` with, as the real SDK deserializer reads it
    /// (no retries: one attempt each).
    async fn update_health_check_error(status: u16, code: &'static str) -> Error {
        use aws_smithy_mocks::{RuleMode, mock, mock_client};
        let rule = mock!(aws_sdk_route53::Client::update_health_check).then_http_response(move || {
            aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(status).expect("status"),
                aws_smithy_types::body::SdkBody::from(format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{code} says no</Message>\
                     </Error><RequestId>1</RequestId></ErrorResponse>"
                )),
            )
        });
        let route53 = mock_client!(aws_sdk_route53, RuleMode::Sequential, [&rule], |c| c
            .retry_config(aws_smithy_types::retry::RetryConfig::disabled()));
        aws::set_health_check_forced_unhealthy(&route53, "eu-west-1", "hc-1", true).await.expect_err(code)
    }

    #[tokio::test]
    async fn a_failed_step_keeps_its_cause_s_kind_permanent_stays_permanent_and_transient_stays_retryable() {
        let denied = || update_health_check_error(403, "AccessDenied");
        let invalid = || update_health_check_error(400, "ValidationException");
        let throttled = || update_health_check_error(400, "Throttling");
        let unavailable = || update_health_check_error(503, "ServiceUnavailable");
        let step = |err: &Error| {
            let action = Action::InvertHealthCheck { region: "us-east-1".into(), health_check_id: "hc-1".into() };
            StepResult::of(action, Err(err), 1)
        };
        let done = StepResult::of(Action::ObserveAurora { from_region: "eu-west-1".into() }, Ok(()), 1);
        // (case, the failed steps' causes, (retryable, errorType) of the invocation's error)
        type Case = (&'static str, Vec<Error>, Option<(bool, &'static str)>);
        let cases: Vec<Case> = vec![
            ("no failure", vec![], None),
            ("IAM denial", vec![denied().await], Some((false, "AccessDenied"))),
            ("a rejected request (4xx)", vec![invalid().await], Some((false, "AwsRequestRejected"))),
            (
                "two permanent causes: the first names it",
                vec![invalid().await, denied().await],
                Some((false, "AwsRequestRejected")),
            ),
            ("throttled", vec![throttled().await], Some((true, "StepsFailed"))),
            ("unavailable (5xx)", vec![unavailable().await], Some((true, "StepsFailed"))),
            (
                "a permanent and a transient cause",
                vec![denied().await, unavailable().await],
                Some((true, "StepsFailed")),
            ),
            ("an unexpected state", vec![Error::Unexpected("did not take".into())], Some((true, "StepsFailed"))),
        ];
        for (case, causes, want) in cases {
            let mut steps = vec![done.clone()];
            steps.extend(causes.iter().map(step));
            for (cause, step) in causes.iter().zip(&steps[1..]) {
                assert!(!step.ok, "{case}");
                assert_eq!(step.failure, Some(cause.class()), "{case}: the step keeps its cause's class");
                let json = serde_json::to_value(step).expect("serialisable");
                assert_eq!(json["failure"]["retryable"], cause.is_retryable(), "{case}: {json}");
            }
            let err = steps_error(&steps);
            assert_eq!(err.as_ref().map(|e| (e.is_retryable(), e.error_type())), want, "{case}: {err:?}");
        }
        assert!(matches!(denied().await, Error::Aws { kind: shared::AwsErrorKind::AccessDenied, .. }));
        assert!(matches!(invalid().await, Error::Aws { kind: shared::AwsErrorKind::Rejected, .. }));
        assert!(matches!(throttled().await, Error::Aws { kind: shared::AwsErrorKind::Throttling, .. }));
        assert!(matches!(unavailable().await, Error::Aws { kind: shared::AwsErrorKind::Unavailable, .. }));
    }

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
    fn a_described_change_one_ms_below_the_fleets_mark_is_the_marked_change() {
        // (described, mark) -> the change's time
        let cases = [
            (1_000, None, 1_000),
            (1_000, Some(1_000), 1_000),
            (1_000, Some(1_001), 1_001), // the SDK truncated .001 away
            (1_000, Some(1_002), 1_000), // another change
            (1_001, Some(1_000), 1_001), // newer than the mark: a newer change
        ];
        for (described, mark, expected) in cases {
            assert_eq!(change_time(described, mark), expected, "{described} {mark:?}");
        }
    }

    #[test]
    fn an_operators_evacuation_holds_against_ok_alarms_and_everything_else_follows_the_alarms() {
        let entry = |status, cause: &str| RegionStatusEntry { status, changed_at_ms: 1, cause: cause.into() };
        let by_operator = "operator#arn:aws:iam::123456789012:user/alice#2026-12-03T00:00:00.000Z#evacuate";
        let operator_failback = "operator#arn:aws:iam::123456789012:user/alice#2026-12-03T00:00:00.000Z#failback";
        let by_alarm = "alarm-us-east-1#2026-12-03T00:00:00.000+0000#Alarm";
        // (case, recorded entry, what the alarms say, the status converged to)
        let cases = [
            ("no entry, alarm OK", None, Active, Active),
            ("no entry, ALARM", None, Evacuated, Evacuated),
            ("evacuated by an alarm, OK again", Some(entry(Evacuated, by_alarm)), Active, Active),
            ("evacuated by an operator, alarm OK", Some(entry(Evacuated, by_operator)), Active, Evacuated),
            ("evacuated by an operator, ALARM", Some(entry(Evacuated, by_operator)), Evacuated, Evacuated),
            ("failed back by an operator, ALARM later", Some(entry(Active, operator_failback)), Evacuated, Evacuated),
            ("failed back by an operator, OK", Some(entry(Active, operator_failback)), Active, Active),
        ];
        for (case, recorded, from_alarms, want) in cases {
            assert_eq!(desired_status(recorded.as_ref(), from_alarms), want, "{case}");
        }
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

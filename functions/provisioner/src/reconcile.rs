//! The reconciliation loop: observe, take the one step [`crate::plan::next_step`] picks, and
//! pause while replicas change, until the goal is reached, it cannot be, the `ServiceTimeout`
//! budget is spent, or this invocation should hand over to a continuation.
//!
//! Errors that a later attempt can fix (throttling, 5xx, timeouts after the SDK's own retries;
//! `ResourceInUseException` when another replica change is still running) do not fail the
//! resource: the loop pauses and tries again, within the same time limits.

use crate::dynamodb::{TableError, TableView, Tables};
use crate::plan::{DeniedDelete, Dissolve, Goal, Observed, Refused, Step, StrongSet, next_step};
use crate::properties::ReplicaSpec;
use crate::record::Owner;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The time limits of one invocation.
#[derive(Debug, Clone)]
pub struct TimeLimits {
    /// When Lambda stops this invocation.
    pub lambda_deadline: Instant,
    /// When the resource's ServiceTimeout (measured from the first invocation) runs out.
    pub budget_end: Instant,
    /// The configured ServiceTimeout, for messages.
    pub service_timeout: Duration,
    pub margin: Duration,
    pub poll: Duration,
    pub continue_reserve: Duration,
}

/// What to do instead of looking again right away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pause {
    Sleep(Duration),
    /// This invocation is nearly over, the budget is not: continue in a new one.
    Continue,
    /// The ServiceTimeout is (nearly) spent.
    BudgetSpent,
}

impl TimeLimits {
    /// When the deadline guard answers FAILED.
    pub fn guard_at(&self) -> Instant {
        self.lambda_deadline.min(self.budget_end).checked_sub(self.margin).unwrap_or_else(Instant::now)
    }

    /// Whether the budget-bound or the Lambda-bound end comes first.
    pub fn budget_binds(&self) -> bool {
        self.budget_end <= self.lambda_deadline
    }

    pub fn pause(&self, now: Instant) -> Pause {
        let after = now + self.poll + self.margin;
        if after >= self.budget_end {
            Pause::BudgetSpent
        } else if after + self.continue_reserve >= self.lambda_deadline {
            Pause::Continue
        } else {
            Pause::Sleep(self.poll)
        }
    }
}

/// What the loop is doing, readable by the deadline guard for its FAILED reason.
#[derive(Debug, Clone, Default)]
pub struct Progress(Arc<Mutex<String>>);

impl Progress {
    pub fn set(&self, text: impl Into<String>) {
        let mut guard = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *guard = text.into();
    }

    pub fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }
}

/// How a reconciliation ended.
#[derive(Debug)]
pub enum Reconciled {
    /// The goal is reached; the last observation of the home table (`None`: the table is gone,
    /// which only a Delete accepts).
    Done(Option<TableView>),
    /// Hand over to a continuation.
    Continue,
    /// The goal cannot be reached; the reason says why.
    Failed(String),
}

/// Identifies the request in log events.
#[derive(Debug, Clone, Default)]
pub struct LogContext {
    pub request_type: String,
    pub logical_resource_id: String,
    pub request_id: String,
    /// With NoEcho the log never names the table or the Regions.
    pub no_echo: bool,
}

pub struct Reconciler<'a> {
    pub tables: Tables<'a>,
    pub goal: &'a Goal,
    /// Whose record this request reads and writes.
    pub owner: Owner,
    pub limits: TimeLimits,
    pub progress: Progress,
    pub log: LogContext,
    /// Regions whose settings were updated (carried across continuations).
    pub settings_applied: BTreeSet<String>,
    /// The last step logged: a wait that does not change is logged once, not every poll.
    pub last_logged: Option<Step>,
    /// Replicas this request removed, in this invocation or (carried across continuations) an
    /// earlier one: for a Delete's reason, also when IAM stops it part-way.
    pub removed: BTreeSet<String>,
}

/// One observation of the home table.
enum Observation {
    Found(TableView, Box<Observed>),
    /// A transient failure (logged): pause, then observe again.
    Retry,
    End(Reconciled),
}

/// What one step's calls came to.
enum Acted {
    /// Done: observe again.
    Progressed,
    /// Nothing to do but wait: pause, then observe again.
    Wait,
    /// `operation` failed: a transient failure pauses and observes again, another ends FAILED.
    Error(&'static str, TableError),
    /// The reconciliation ends here.
    End(Reconciled),
}

impl Acted {
    fn from_call(operation: &'static str, result: Result<(), TableError>) -> Self {
        match result {
            Ok(()) => Acted::Progressed,
            Err(e) => Acted::Error(operation, e),
        }
    }
}

impl Reconciler<'_> {
    /// Observe, decide the next step, act; until the goal is reached, cannot be, or the time
    /// limits hand over to a continuation.
    pub async fn run(&mut self) -> Reconciled {
        loop {
            let (view, observed) = match self.observe().await {
                Observation::Found(view, observed) => (view, *observed),
                Observation::Retry => match self.pause().await {
                    Some(end) => return end,
                    None => continue,
                },
                Observation::End(end) => return end,
            };
            let step = next_step(self.goal, &observed, &self.settings_applied);
            self.log_step(&step);
            let acted = match step {
                Step::Done => return Reconciled::Done(Some(view)),
                Step::Fail(reason) => return Reconciled::Failed(reason),
                Step::Wait(what) => {
                    self.progress.set(format!("waiting: {what}"));
                    Acted::Wait
                }
                Step::Add(spec) => self.add(&view, &observed, &spec).await,
                Step::CreateStrong(set) => self.create_strong(&view, &observed, &set).await,
                Step::DissolveStrong(dissolve) => self.dissolve_strong(&view, &observed, &dissolve).await,
                Step::Record => {
                    self.progress.set("moving the record of added replicas to this PhysicalResourceId's tag");
                    let written =
                        self.tables.write_record(&self.goal.home, &view.arn, &self.owner, &observed.recorded).await;
                    Acted::from_call("TagResource", written)
                }
                Step::UpdateSettings(spec) => self.update_settings(&spec).await,
                Step::Remove(region) => self.remove(&view, &observed, &region).await,
            };
            match acted {
                Acted::Progressed => {}
                Acted::End(end) => return end,
                Acted::Wait => {
                    if let Some(end) = self.pause().await {
                        return end;
                    }
                }
                Acted::Error(operation, e) => {
                    if !(e.is_retryable() || e.is_in_use()) {
                        return Reconciled::Failed(format!("{operation} on table {} failed: {e}", self.goal.table));
                    }
                    self.note_retry(operation, &e);
                    if let Some(end) = self.pause().await {
                        return end;
                    }
                }
            }
        }
    }

    /// The home table as it is now, with this request's own removals.
    async fn observe(&mut self) -> Observation {
        let (home, table, deleting) = (self.goal.home.as_str(), self.goal.table.as_str(), self.goal.deleting);
        match self.tables.observe(home, table, &self.owner).await {
            Ok(Some((view, mut observed))) => {
                observed.removed_by_request = self.removed.clone();
                Observation::Found(view, Box::new(observed))
            }
            Ok(None) if deleting => Observation::End(Reconciled::Done(None)),
            Ok(None) => Observation::End(Reconciled::Failed(format!(
                "table {table} does not exist in {home}: create it first (in the same stack, reference it with !Ref or DependsOn so it exists before its replicas)"
            ))),
            Err(e) if e.is_retryable() => {
                self.note_retry("DescribeTable", &e);
                Observation::Retry
            }
            Err(e) if deleting && e.is_access_denied() => {
                Observation::End(self.denied_delete(Refused::Reading, &e, None))
            }
            Err(e) => Observation::End(Reconciled::Failed(format!("cannot read table {table} in {home}: {e}"))),
        }
    }

    /// One log event per step; a wait that does not change is logged once, not every poll.
    fn log_step(&mut self, step: &Step) {
        let target = match step {
            Step::Add(s) | Step::UpdateSettings(s) => s.region.as_str(),
            Step::Remove(r) => r.as_str(),
            _ => "",
        };
        let (region, detail) = if self.log.no_echo { ("", String::new()) } else { (target, step_detail(step)) };
        let repeated = self.last_logged.as_ref() == Some(step);
        self.last_logged = Some(step.clone());
        if !repeated {
            tracing::info!(
                request_type = %self.log.request_type,
                logical_resource_id = %self.log.logical_resource_id,
                request_id = %self.log.request_id,
                step = step_name(step),
                region,
                detail = %detail,
                "replica step"
            );
        }
    }

    /// Records `wanted` as this request's, then makes the request; a refusal takes the record
    /// back, so a Delete never removes a member someone else creates later.
    async fn record_then_request(
        &self,
        view: &TableView,
        observed: &Observed,
        wanted: &BTreeSet<String>,
        request: impl std::future::Future<Output = Result<(), TableError>>,
        refused: impl FnOnce(&TableError) -> String,
        what: &str,
    ) -> Acted {
        let home = self.goal.home.as_str();
        if let Err(e) = self.tables.write_record(home, &view.arn, &self.owner, wanted).await {
            return Acted::Error("TagResource", e);
        }
        match request.await {
            Ok(()) => Acted::Progressed,
            Err(e) if e.is_retryable() || e.is_in_use() => Acted::Error("UpdateTable", e),
            Err(e) => {
                if let Err(undo) = self.tables.write_record(home, &view.arn, &self.owner, &observed.recorded).await {
                    let code = undo.aws_code().unwrap_or("error");
                    tracing::warn!(code, "could not take back the record of a refused {what}");
                }
                Acted::End(Reconciled::Failed(refused(&e)))
            }
        }
    }

    async fn add(&self, view: &TableView, observed: &Observed, spec: &ReplicaSpec) -> Acted {
        self.progress.set(format!("adding the replica in {}", spec.region));
        let mut wanted = observed.recorded.clone();
        wanted.insert(spec.region.clone());
        let table = self.goal.table.as_str();
        let request = self.tables.add_replica(&self.goal.home, table, spec);
        let refused = |e: &TableError| format!("adding the replica of {table} in {} was refused: {e}", spec.region);
        self.record_then_request(view, observed, &wanted, request, refused, "replica").await
    }

    async fn create_strong(&self, view: &TableView, observed: &Observed, set: &StrongSet) -> Acted {
        let regions: Vec<String> = set.replicas.iter().map(|r| r.region.clone()).chain(set.witness.clone()).collect();
        self.progress.set(format!(
            "creating the MRSC set (replicas in {}{})",
            set.replicas.iter().map(|r| r.region.as_str()).collect::<Vec<_>>().join(", "),
            set.witness.as_deref().map(|w| format!(", witness in {w}")).unwrap_or_default()
        ));
        // Recorded before it is requested, as for one replica: a crash leaves at worst a record of
        // members that do not exist.
        let mut wanted = observed.recorded.clone();
        wanted.extend(regions.iter().cloned());
        let table = self.goal.table.as_str();
        let request = self.tables.create_strong(&self.goal.home, table, &set.replicas, set.witness.as_deref());
        let refused = |e: &TableError| {
            format!(
                "making {table} a global table with multi-Region strong consistency (replicas in {}) was refused: {e}",
                regions.join(", ")
            )
        };
        self.record_then_request(view, observed, &wanted, request, refused, "MRSC set").await
    }

    async fn dissolve_strong(&mut self, view: &TableView, observed: &Observed, dissolve: &Dissolve) -> Acted {
        let (home, table, deleting) = (self.goal.home.as_str(), self.goal.table.as_str(), self.goal.deleting);
        let members: Vec<String> = dissolve.replicas.iter().cloned().chain(dissolve.witness.clone()).collect();
        self.progress.set(format!("removing the MRSC set's other members ({})", members.join(", ")));
        let left: BTreeSet<String> = observed.recorded.iter().filter(|r| members.contains(r)).cloned().collect();
        match self.tables.dissolve_strong(home, table, &dissolve.replicas, dissolve.witness.as_deref()).await {
            Ok(()) => {
                self.removed.extend(members.iter().cloned());
                let mut wanted = observed.recorded.clone();
                wanted.retain(|r| !members.contains(r));
                match self.tables.write_record(home, &view.arn, &self.owner, &wanted).await {
                    Err(e) if deleting && e.is_access_denied() => Acted::End(self.denied_delete(
                        Refused::Recording(members.join(", ")),
                        &e,
                        Some(BTreeSet::new()),
                    )),
                    other => Acted::from_call("UntagResource", other),
                }
            }
            Err(e) if e.is_retryable() || e.is_in_use() => Acted::Error("UpdateTable", e),
            Err(e) if deleting && e.is_access_denied() => {
                Acted::End(self.denied_delete(Refused::Removing(members.join(", ")), &e, Some(left)))
            }
            Err(e) => Acted::End(Reconciled::Failed(format!(
                "removing the MRSC set's members of {table} ({}) was refused: {e}",
                members.join(", ")
            ))),
        }
    }

    async fn update_settings(&mut self, spec: &ReplicaSpec) -> Acted {
        self.progress.set(format!("updating the replica settings in {}", spec.region));
        match self.tables.update_replica(&self.goal.home, &self.goal.table, spec).await {
            Ok(()) => {
                self.settings_applied.insert(spec.region.clone());
                Acted::Progressed
            }
            Err(e) if e.is_retryable() || e.is_in_use() => Acted::Error("UpdateTable", e),
            Err(e) => Acted::End(Reconciled::Failed(format!(
                "updating the replica of {} in {} was refused: {e}",
                self.goal.table, spec.region
            ))),
        }
    }

    async fn remove(&mut self, view: &TableView, observed: &Observed, region: &str) -> Acted {
        let (home, table, deleting) = (self.goal.home.as_str(), self.goal.table.as_str(), self.goal.deleting);
        self.progress.set(format!("removing the replica in {region}"));
        // The recorded replicas still there, before this step.
        let mut left: BTreeSet<String> =
            observed.recorded.iter().filter(|r| observed.replicas.contains_key(*r)).cloned().collect();
        match self.tables.remove_replica(home, table, region).await {
            Ok(()) => {
                self.removed.insert(region.to_owned());
            }
            // Already not a member: the removal this step wanted has happened.
            Err(e)
                if e.aws_code() == Some("ValidationException")
                    && e.to_string().contains("not part of the global table") => {}
            Err(e) if e.is_retryable() || e.is_in_use() => return Acted::Error("UpdateTable", e),
            Err(e) if deleting && e.is_access_denied() => {
                return Acted::End(self.denied_delete(Refused::Removing(region.to_owned()), &e, Some(left)));
            }
            Err(e) => {
                return Acted::End(Reconciled::Failed(format!(
                    "removing the replica of {table} in {region} was refused: {e}"
                )));
            }
        }
        if !observed.recorded.contains(region) {
            return Acted::Progressed;
        }
        let mut wanted = observed.recorded.clone();
        wanted.remove(region);
        match self.tables.write_record(home, &view.arn, &self.owner, &wanted).await {
            Err(e) if deleting && e.is_access_denied() => {
                left.remove(region);
                Acted::End(self.denied_delete(Refused::Recording(region.to_owned()), &e, Some(left)))
            }
            other => Acted::from_call("UntagResource", other),
        }
    }

    /// A Delete stopped by IAM: FAILED at once, saying what was done and what stays
    /// ([`DeniedDelete`]).
    fn denied_delete(&self, refused: Refused, error: &TableError, left: Option<BTreeSet<String>>) -> Reconciled {
        let denied = DeniedDelete {
            table: self.goal.table.clone(),
            home: self.goal.home.clone(),
            record_key: self.owner.describe(),
            refused,
            denial: error.to_string(),
            removed: self.removed.clone(),
            left,
        };
        tracing::error!(
            logical_resource_id = %self.log.logical_resource_id,
            request_id = %self.log.request_id,
            code = error.aws_code().unwrap_or("error"),
            "IAM refused a call of the Delete: answering FAILED and leaving the remaining replicas in place"
        );
        Reconciled::Failed(denied.reason())
    }

    /// Sleeps one poll interval, or says why the loop must end instead.
    async fn pause(&self) -> Option<Reconciled> {
        match self.limits.pause(Instant::now()) {
            Pause::Sleep(d) => {
                tokio::time::sleep(d).await;
                None
            }
            Pause::Continue => Some(Reconciled::Continue),
            Pause::BudgetSpent => Some(Reconciled::Failed(format!(
                "gave up after the ServiceTimeout of {} s ({}); set ServiceTimeout higher (up to 3600) or check the table in the DynamoDB console",
                self.limits.service_timeout.as_secs(),
                self.progress.get()
            ))),
        }
    }

    fn note_retry(&self, operation: &str, error: &TableError) {
        let text = if self.log.no_echo { error.aws_code().unwrap_or("error").to_owned() } else { error.to_string() };
        tracing::warn!(
            logical_resource_id = %self.log.logical_resource_id,
            request_id = %self.log.request_id,
            operation,
            error = %text,
            "will retry after the poll interval"
        );
        self.progress.set(format!("retrying {operation} after: {error}"));
    }
}

fn step_name(step: &Step) -> &'static str {
    match step {
        Step::Done => "done",
        Step::Wait(_) => "wait",
        Step::Add(_) => "add",
        Step::UpdateSettings(_) => "update-settings",
        Step::Remove(_) => "remove",
        Step::Record => "record",
        Step::CreateStrong(_) => "create-strong",
        Step::DissolveStrong(_) => "dissolve-strong",
        Step::Fail(_) => "fail",
    }
}

fn step_detail(step: &Step) -> String {
    match step {
        Step::Wait(w) | Step::Fail(w) => w.clone(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(now: Instant, lambda_s: u64, budget_s: u64) -> TimeLimits {
        TimeLimits {
            lambda_deadline: now + Duration::from_secs(lambda_s),
            budget_end: now + Duration::from_secs(budget_s),
            service_timeout: Duration::from_secs(budget_s),
            margin: Duration::from_secs(5),
            poll: Duration::from_secs(5),
            continue_reserve: Duration::from_secs(3),
        }
    }

    #[test]
    fn pauses_continues_or_gives_up_by_the_nearer_limit() {
        let now = Instant::now();
        let cases = [
            (900, 3600, Pause::Sleep(Duration::from_secs(5))),
            (12, 3600, Pause::Continue),  // 5 poll + 5 margin + 3 reserve > 12
            (900, 9, Pause::BudgetSpent), // 5 poll + 5 margin > 9
            (12, 9, Pause::BudgetSpent),  // the budget wins: no point continuing
        ];
        for (lambda_s, budget_s, want) in cases {
            assert_eq!(limits(now, lambda_s, budget_s).pause(now), want, "lambda {lambda_s} s, budget {budget_s} s");
        }
    }

    #[test]
    fn the_guard_fires_a_margin_before_the_nearer_end() {
        let now = Instant::now();
        let c = limits(now, 60, 3600);
        assert_eq!(c.guard_at(), now + Duration::from_secs(55));
        assert!(!c.budget_binds());
        let c = limits(now, 900, 30);
        assert_eq!(c.guard_at(), now + Duration::from_secs(25));
        assert!(c.budget_binds());
    }

    #[test]
    fn progress_is_shared() {
        let p = Progress::default();
        let q = p.clone();
        p.set("adding eu-west-1");
        assert_eq!(q.get(), "adding eu-west-1");
    }
}

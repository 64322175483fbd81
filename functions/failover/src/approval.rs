//! Approval mode (`failover_policy.approval: "required"`): an alarm's evacuation waits for an
//! operator. The first delivery of the ALARM (or the scheduled reconcile that reads it) confirms
//! the alarm, computes the plan through the reconcile path as a dry run (so a safety rule refuses
//! it there, as it would refuse the evacuation), records it as the Region's pending approval in
//! the arbiter replica of the ledger (`approval/<region>`, written only if absent or replacing an
//! older change: duplicates record nothing), and publishes it to `approval_topic_arn`. It acts
//! when an operator runs `multisite approve CHANGE` (the change goes through the reconcile path
//! with its alarm confirmed again), or, with `approval_timeout_seconds`, when a delivery or the
//! scheduled reconcile finds it expired.

use crate::operator::OperatorRequest;
use crate::{Calls, Deps, Outcome, Report, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::Error;
use shared::alarm::{AlarmChange, Overrides};
use shared::error::AwsResultExt;
use shared::ledger::{APPROVAL_PK, Ledger, Record, WriteOutcome};

/// Where an approval request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApprovalState {
    /// Waiting for `multisite approve`.
    Pending,
    /// An operator approved it (`decided_by`).
    Approved,
    /// Nobody approved it within `approval_timeout_seconds`: it acted unapproved.
    TimedOut,
    /// Its alarm was no longer in ALARM when an operator approved it: nothing was done.
    Withdrawn,
}

/// The body of `approval/<region>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    pub region: String,
    /// The alarm change that waits, as it arrived.
    pub change: AlarmChange,
    pub change_id: String,
    /// When it was recorded (epoch ms, the recording function's clock).
    pub requested_at_ms: u64,
    /// When it acts unapproved, with `approval_timeout_seconds`.
    pub timeout_at_ms: Option<u64>,
    /// The plan computed when it was recorded (failover's `Plan`).
    pub plan: Value,
    pub state: ApprovalState,
    pub decided_by: Option<String>,
    pub decided_at_ms: Option<u64>,
    /// Whether the operator topic was told.
    pub notified: bool,
}

/// What the approval gate says about an ALARM change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// Approved, or timed out (the caller records that first): evacuate.
    Proceed { reason: String },
    /// The approval that times out now: record it as timed out, then evacuate.
    TimedOut,
    /// Recorded and waiting (not notified: tell the topic again).
    Wait { reason: String, notify: bool },
    /// Nothing recorded for this change: compute the plan, record it, notify.
    Ask,
    /// A newer change of the Region waits, or this one was withdrawn: nothing to do.
    Stale { reason: String },
}

/// Whether `a` and `b` are one change of one alarm (DescribeAlarms reads the event's time up to
/// 1 ms lower, see `change_time` in lib.rs).
fn same_change(a: &AlarmChange, b: &AlarmChange) -> bool {
    a.alarm_name == b.alarm_name && a.state == b.state && a.changed_at_ms.abs_diff(b.changed_at_ms) <= 1
}

/// The gate's verdict for `change` given the Region's latest approval request (pure).
pub fn gate(recorded: Option<&ApprovalRequest>, change: &AlarmChange, now_ms: u64) -> Gate {
    let Some(recorded) = recorded else { return Gate::Ask };
    if !same_change(&recorded.change, change) {
        if recorded.state == ApprovalState::Pending && recorded.change.changed_at_ms > change.changed_at_ms {
            return Gate::Stale {
                reason: format!("a newer change ({}) waits for approval; this one is older", recorded.change_id),
            };
        }
        return Gate::Ask;
    }
    let by = recorded.decided_by.as_deref().unwrap_or("?");
    match recorded.state {
        ApprovalState::Approved => Gate::Proceed { reason: format!("approved by {by}") },
        ApprovalState::TimedOut => Gate::Proceed { reason: "its approval timed out".into() },
        ApprovalState::Withdrawn => {
            Gate::Stale { reason: format!("its approval was withdrawn ({by}): the alarm had left ALARM") }
        }
        ApprovalState::Pending => match recorded.timeout_at_ms {
            Some(at) if now_ms >= at => Gate::TimedOut,
            timeout => Gate::Wait {
                reason: waiting_reason(&recorded.region, &recorded.change_id, recorded.requested_at_ms, timeout),
                notify: !recorded.notified,
            },
        },
    }
}

fn waiting_reason(region: &str, change_id: &str, since_ms: u64, timeout_at_ms: Option<u64>) -> String {
    let timeout = match timeout_at_ms {
        Some(at) => format!("; it acts unapproved at {}", shared::alarm::format_alarm_time(at)),
        None => "; no timeout: it waits for an operator".into(),
    };
    format!(
        "the evacuation of {region} waits for approval since {}: run `multisite approve {change_id}`{timeout}",
        shared::alarm::format_alarm_time(since_ms)
    )
}

/// What the reconcile does with an ALARM change in approval mode.
pub(crate) enum Held {
    /// Go on and evacuate (approved, timed out).
    Proceed,
    /// Compute the plan as a dry run, then [`record_pending`] with this version of the record.
    Ask { version: u64 },
    /// The change ends here (waiting, stale), with this report.
    Ended(Box<Report>),
}

/// The gate, with its reads and the timeout's write.
pub(crate) async fn hold(
    change: &AlarmChange,
    region: &str,
    ledger: &Ledger,
    deps: &Deps<'_>,
    calls: &Calls,
) -> Result<Held, Error> {
    calls.add("GetItem", 1);
    let recorded = ledger.get::<ApprovalRequest>(APPROVAL_PK, region).await?;
    let now = deps.clock.now_ms();
    let verdict = gate(recorded.as_ref().map(|r| &r.body), change, now);
    tracing::info!(alarm = %change.alarm_name, region, verdict = ?verdict, "approval gate");
    let report =
        |outcome, reason: String| Held::Ended(Box::new(Report::new(change, Some(region), outcome).with_reason(reason)));
    Ok(match (verdict, recorded) {
        (Gate::Proceed { .. }, _) => Held::Proceed,
        (Gate::TimedOut, Some(Record { body, version, .. })) => {
            let decided = ApprovalRequest { state: ApprovalState::TimedOut, decided_at_ms: Some(now), ..body };
            calls.add("PutItem", 1);
            // Another delivery may record the timeout at the same moment: either write will do.
            if let Err(err) = ledger.put_if_version(APPROVAL_PK, region, &decided, version, now).await {
                tracing::warn!(region, error = %err, "the approval's timeout was not recorded; evacuating anyway");
            }
            tracing::warn!(region, change = %decided.change_id, "approval timed out: evacuating unapproved");
            Held::Proceed
        }
        (Gate::TimedOut, None) => Held::Ask { version: 0 },
        (Gate::Wait { reason, notify }, Some(record)) => {
            if notify {
                // The first recording could not tell the topic: try again, once per delivery.
                notify_and_mark(&record.body, record.version, ledger, deps, calls).await?;
            }
            report(Outcome::ApprovalPending, reason)
        }
        (Gate::Wait { reason, .. }, None) => report(Outcome::ApprovalPending, reason),
        (Gate::Stale { reason }, _) => report(Outcome::Stale, reason),
        (Gate::Ask, recorded) => Held::Ask { version: recorded.map_or(0, |r| r.version) },
    })
}

/// The alarms of `region` are OK again (an OK change, or the scheduled reconcile read them): a
/// pending approval of an older ALARM is moot, so it is withdrawn (`status` stops listing it).
/// Best effort: a failure is logged, and `approve` would find the alarm OK and withdraw it then.
pub(crate) async fn withdraw_on_ok(region: &str, ok_at_ms: u64, ledger: &Ledger, deps: &Deps<'_>, calls: &Calls) {
    calls.add("GetItem", 1);
    let recorded = match ledger.get::<ApprovalRequest>(APPROVAL_PK, region).await {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(region, error = %err, "pending approval not read");
            return;
        }
    };
    if recorded.body.state != ApprovalState::Pending || recorded.body.change.changed_at_ms > ok_at_ms {
        return;
    }
    let now = deps.clock.now_ms();
    let withdrawn = ApprovalRequest {
        state: ApprovalState::Withdrawn,
        decided_by: Some("its alarm returned to OK".into()),
        decided_at_ms: Some(now),
        ..recorded.body
    };
    calls.add("PutItem", 1);
    match ledger.put_if_version(APPROVAL_PK, region, &withdrawn, recorded.version, now).await {
        Ok(_) => tracing::info!(region, change = %withdrawn.change_id, "pending approval withdrawn: the alarm is OK"),
        Err(err) => tracing::warn!(region, error = %err, "pending approval not withdrawn"),
    }
}

/// Records the dry run's report as the Region's pending approval and tells the operator topic.
/// A concurrent delivery that recorded it first wins; this one then only reports it waiting.
pub(crate) async fn record_pending(
    mut report: Report,
    change: &AlarmChange,
    region: &str,
    version: u64,
    ledger: &Ledger,
    deps: &Deps<'_>,
    calls: &Calls,
) -> (Report, Option<Error>) {
    let now = deps.clock.now_ms();
    let timeout_at_ms = deps.topology.failover_policy.approval_timeout_seconds.map(|s| now + s * 1000);
    let request = ApprovalRequest {
        region: region.to_owned(),
        change: change.clone(),
        change_id: change.change_id(),
        requested_at_ms: now,
        timeout_at_ms,
        plan: serde_json::to_value(&report.plan).unwrap_or(Value::Null),
        state: ApprovalState::Pending,
        decided_by: None,
        decided_at_ms: None,
        notified: false,
    };
    report.outcome = Outcome::ApprovalPending;
    report.reason = Some(waiting_reason(region, &request.change_id, now, timeout_at_ms));
    calls.add("PutItem", 1);
    match ledger.put_if_version(APPROVAL_PK, region, &request, version, now).await {
        Ok(WriteOutcome::Written) => {
            crate::metric("ApprovalsRequested", 1.0, region);
            tracing::warn!(region, change = %request.change_id, "evacuation waits for approval");
            let error = notify_and_mark(&request, version + 1, ledger, deps, calls).await.err();
            (report, error)
        }
        // Another delivery recorded it (or another change) first: it told the topic.
        Ok(WriteOutcome::AlreadyPresent) => (report, None),
        Err(err) => (report, Some(err)),
    }
}

/// Publishes `request` to the approval topic, then records that it did.
async fn notify_and_mark(
    request: &ApprovalRequest,
    version: u64,
    ledger: &Ledger,
    deps: &Deps<'_>,
    calls: &Calls,
) -> Result<(), Error> {
    let Some(topic) = deps.topology.failover_policy.approval_topic_arn.as_deref() else { return Ok(()) };
    calls.add("Publish", 1);
    publish(deps, topic, request).await?;
    let now = deps.clock.now_ms();
    let notified = ApprovalRequest { notified: true, ..request.clone() };
    calls.add("PutItem", 1);
    if let Err(err) = ledger.put_if_version(APPROVAL_PK, &request.region, &notified, version, now).await {
        tracing::warn!(region = %request.region, error = %err, "the notification was sent but not recorded");
    }
    Ok(())
}

/// SNS Publish of a pending approval, in the topic's Region.
pub async fn publish(deps: &Deps<'_>, topic_arn: &str, request: &ApprovalRequest) -> Result<(), Error> {
    let region = shared::topology::SnsTopicArn::parse(topic_arn)
        .map(|t| t.region)
        .ok_or_else(|| Error::Unexpected(format!("{topic_arn} is not an SNS topic ARN")))?;
    let sns = aws_sdk_sns::Client::new(&deps.clients.sdk_config(region));
    let (subject, message) = notification(request);
    sns.publish().topic_arn(topic_arn).subject(subject).message(message).send().await.aws_context("Publish", region)?;
    tracing::info!(topic = topic_arn, change = %request.change_id, "operator topic told of the pending approval");
    Ok(())
}

/// The notification's subject (at most 100 characters) and body.
pub fn notification(request: &ApprovalRequest) -> (String, String) {
    let mut subject = format!("multisite: evacuating {} waits for approval", request.region);
    subject.truncate(100);
    let timeout = match request.timeout_at_ms {
        Some(at) => format!("Unless approved, it acts at {}.", shared::alarm::format_alarm_time(at)),
        None => "It waits for an operator (no timeout).".into(),
    };
    let message = format!(
        "Alarm {} is in ALARM ({}); evacuating {} waits for approval since {}. {timeout}\n\nApprove: multisite approve \
         {}\nSee: multisite status; multisite plan evacuate {}\n\nPlan: {}\n",
        request.change.alarm_name,
        request.change.reason,
        request.region,
        shared::alarm::format_alarm_time(request.requested_at_ms),
        request.change_id,
        request.region,
        request.plan
    );
    (subject, message)
}

/// `multisite approve CHANGE`: the pending change's evacuation, through the reconcile path with
/// its alarm confirmed again. Concurrent approvals are one: the approval is a conditional write,
/// and the evacuation claim is idempotent.
pub(crate) async fn approve(
    request: &OperatorRequest,
    change_id: &str,
    deps: &Deps<'_>,
    calls: &Calls,
) -> (Report, Option<Error>) {
    let approver = request.operator.arn.clone();
    // The change id starts with its alarm's name, which names its Region.
    let alarm_name = change_id.split('#').next().unwrap_or_default();
    let found = deps.topology.alarm(alarm_name);
    let ended = |outcome, reason: String, region: Option<&str>| {
        let mut report = Report::new(&placeholder(change_id, &approver, request.requested_at_ms), region, outcome)
            .with_reason(reason);
        report.trigger = Trigger::Operator;
        report.operator = Some(approver.clone());
        (report, None)
    };
    let Some((cell, alarm)) = found else {
        return ended(
            Outcome::Ignored,
            format!("{change_id} names no alarm of the topology: nothing to approve (see `multisite status`)"),
            None,
        );
    };
    let region = cell.region.as_str();
    if request.region.as_deref().is_some_and(|r| r != region) {
        return ended(Outcome::Ignored, format!("{change_id} is a change of {region}, not of the Region given"), None);
    }
    let ledger = match crate::arbiter_ledger(deps) {
        Ok(ledger) => ledger,
        Err(err) => {
            return (Report::new(&placeholder(change_id, &approver, 0), Some(region), Outcome::Reconciled), Some(err));
        }
    };
    calls.add("GetItem", 1);
    let record = match ledger.get::<ApprovalRequest>(APPROVAL_PK, region).await {
        Ok(Some(record)) if record.body.change_id == change_id => record,
        Ok(other) => {
            let pending = other.filter(|r| r.body.state == ApprovalState::Pending).map(|r| r.body.change_id);
            let reason = match pending {
                Some(id) => format!("{change_id} is not {region}'s pending approval; {id} is"),
                None => format!("no approval of {change_id} is pending ({region} has no pending approval)"),
            };
            return ended(Outcome::Ignored, reason, Some(region));
        }
        Err(err) => {
            return (Report::new(&placeholder(change_id, &approver, 0), Some(region), Outcome::Reconciled), Some(err));
        }
    };
    let now = deps.clock.now_ms();
    let body = record.body.clone();
    match body.state {
        ApprovalState::Pending => {
            let approved = ApprovalRequest {
                state: ApprovalState::Approved,
                decided_by: Some(approver.clone()),
                decided_at_ms: Some(now),
                ..body.clone()
            };
            calls.add("PutItem", 1);
            match ledger.put_if_version(APPROVAL_PK, region, &approved, record.version, now).await {
                Ok(WriteOutcome::Written) => {
                    tracing::info!(region, change = change_id, approver = %approver, "approved")
                }
                Ok(WriteOutcome::AlreadyPresent) => {
                    return ended(
                        Outcome::Ignored,
                        format!("{change_id} was decided by someone else at the same moment: see `multisite status`"),
                        Some(region),
                    );
                }
                Err(err) => return (Report::new(&body.change, Some(region), Outcome::Reconciled), Some(err)),
            }
        }
        // An approval whose evacuation did not finish (a failed step) may be approved again: the
        // reconcile is idempotent.
        ApprovalState::Approved => {}
        ApprovalState::TimedOut => {
            return ended(
                Outcome::Ignored,
                format!("{change_id} timed out already and acted unapproved"),
                Some(region),
            );
        }
        ApprovalState::Withdrawn => {
            return ended(
                Outcome::Ignored,
                format!("{change_id} was withdrawn: its alarm had left ALARM"),
                Some(region),
            );
        }
    }
    let overrides = Overrides { approved_by: Some(approver.clone()), ..Overrides::default() };
    let started = std::time::Instant::now();
    let (mut report, error) =
        crate::reconcile_change_inner(&body.change, Ok((cell, alarm)), &overrides, None, deps, calls).await;
    report.duration_ms = started.elapsed().as_millis() as u64;
    report.trigger = Trigger::Operator;
    report.operator = Some(approver.clone());
    if report.outcome == Outcome::Stale {
        // The alarm left ALARM since: the approval is moot.
        let withdrawn = ApprovalRequest {
            state: ApprovalState::Withdrawn,
            decided_by: Some(approver.clone()),
            decided_at_ms: Some(now),
            ..body
        };
        calls.add("PutItem", 1);
        if let Err(err) = ledger.put(APPROVAL_PK, region, &withdrawn, record.version + 2, now).await {
            tracing::warn!(region, error = %err, "withdrawn approval not recorded");
        }
    }
    tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "failover approval report");
    (report, error)
}

/// The change a report about an approval names when no recorded change is at hand.
fn placeholder(change_id: &str, approver: &str, at_ms: u64) -> AlarmChange {
    AlarmChange {
        alarm_name: change_id.split('#').next().unwrap_or_default().to_owned(),
        state: shared::alarm::AlarmState::Alarm,
        previous_state: None,
        changed_at: shared::alarm::format_alarm_time(at_ms),
        changed_at_ms: at_ms,
        alarm_arn: None,
        reason: format!("approval by {approver}"),
        delivery: shared::alarm::Delivery::Operator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::alarm::{AlarmState, Delivery};

    fn change(at: u64) -> AlarmChange {
        AlarmChange {
            alarm_name: "a-us-east-1".into(),
            state: AlarmState::Alarm,
            previous_state: None,
            changed_at: shared::alarm::format_alarm_time(at),
            changed_at_ms: at,
            alarm_arn: None,
            reason: "down".into(),
            delivery: Delivery::EventBridge,
        }
    }

    fn recorded(at: u64, state: ApprovalState, timeout_at_ms: Option<u64>, notified: bool) -> ApprovalRequest {
        ApprovalRequest {
            region: "us-east-1".into(),
            change: change(at),
            change_id: change(at).change_id(),
            requested_at_ms: at + 100,
            timeout_at_ms,
            plan: Value::Null,
            state,
            decided_by: Some("arn:aws:iam::123456789012:user/alice".into()),
            decided_at_ms: None,
            notified,
        }
    }

    #[test]
    fn the_approval_gate_asks_once_waits_then_acts_when_approved_or_timed_out() {
        use ApprovalState::*;
        let is = |g: &Gate, want: &str| match g {
            Gate::Proceed { .. } => want == "proceed",
            Gate::TimedOut => want == "timed out",
            Gate::Wait { notify, .. } => want == if *notify { "wait, notify" } else { "wait" },
            Gate::Ask => want == "ask",
            Gate::Stale { .. } => want == "stale",
        };
        let t = 1_000_000;
        // (case, recorded, change time, now, verdict)
        let cases: Vec<(&str, Option<ApprovalRequest>, u64, u64, &str)> = vec![
            ("nothing recorded", None, t, t, "ask"),
            ("pending, no timeout", Some(recorded(t, Pending, None, true)), t, t + 10_000_000, "wait"),
            ("pending, not notified yet", Some(recorded(t, Pending, None, false)), t, t, "wait, notify"),
            ("the schedule reads the time 1 ms lower", Some(recorded(t, Pending, None, true)), t - 1, t, "wait"),
            ("pending, before its timeout", Some(recorded(t, Pending, Some(t + 60_000), true)), t, t + 59_999, "wait"),
            ("pending, at its timeout", Some(recorded(t, Pending, Some(t + 60_000), true)), t, t + 60_000, "timed out"),
            ("approved", Some(recorded(t, Approved, None, true)), t, t, "proceed"),
            ("timed out", Some(recorded(t, TimedOut, None, true)), t, t, "proceed"),
            ("withdrawn", Some(recorded(t, Withdrawn, None, true)), t, t, "stale"),
            ("a newer change of the Region waits", Some(recorded(t, Pending, None, true)), t - 5_000, t, "stale"),
            (
                "an older change was approved: this one asks",
                Some(recorded(t, Approved, None, true)),
                t + 5_000,
                t,
                "ask",
            ),
            ("an older change waits: replaced", Some(recorded(t, Pending, None, true)), t + 5_000, t, "ask"),
        ];
        for (case, record, at, now, want) in cases {
            let verdict = gate(record.as_ref(), &change(at), now);
            assert!(is(&verdict, want), "{case}: {verdict:?}, want {want}");
        }
    }

    #[test]
    fn the_notification_names_the_command_to_approve_and_the_timeout() {
        let (subject, message) = notification(&recorded(1_000_000, ApprovalState::Pending, Some(1_060_000), false));
        assert_eq!(subject, "multisite: evacuating us-east-1 waits for approval");
        assert!(message.contains(&format!("multisite approve {}", change(1_000_000).change_id())), "{message}");
        assert!(message.contains("Unless approved, it acts at"), "{message}");
    }
}

//! Operators' requests: `multisite evacuate R`, `multisite failback R` and `multisite approve
//! CHANGE` reach failover as a typed event, `{"multisite_operator_request": {...}}`, never as a
//! forged alarm. A request is checked before any AWS call ([`OperatorRequest::check`], pure):
//! its fields for its action, a Region of the topology, an operator of this deployment's account
//! and partition, and a request time near the function's clock (an old request replayed does
//! nothing). It then goes through the reconcile path an alarm change takes, with the same safety
//! rules (min healthy Regions and the cool-down as the arbiter's conditional write, the failback
//! gate's lag-probe verdict), recorded in the ledger with the operator's ARN.
//!
//! Precedence (docs/operators.md): an operator's evacuation holds until an operator fails the
//! Region back (an alarm's OK, delivered or read by the scheduled reconcile, does not undo it); an
//! operator's failback is refused while one of the Region's alarms is in ALARM; after it, the
//! alarms decide again as always.

use crate::{Calls, Confirmed, Deps, Outcome, Report, Trigger};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use shared::Error;
use shared::alarm::{AlarmChange, AlarmState, Delivery, Overrides};
use std::collections::BTreeMap;

/// The key of an operator's request in failover's payload.
pub const REQUEST_KEY: &str = "multisite_operator_request";
/// A request older than this (by the function's clock) is refused: a replay does nothing.
pub const MAX_REQUEST_AGE_MS: u64 = 15 * 60 * 1000;
/// A request this far ahead of the function's clock is refused (clock skew beyond reason).
pub const MAX_REQUEST_AHEAD_MS: u64 = 5 * 60 * 1000;

/// What the operator asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorAction {
    /// Take the Region out of routing and the writer out of it (`multisite evacuate R`).
    Evacuate,
    /// Bring the Region back (`multisite failback R`), also with `auto_failback` off.
    Failback,
    /// Act on a pending approval (`multisite approve CHANGE`).
    Approve,
}

/// Who asks: STS `GetCallerIdentity` as the operator's command read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorIdentity {
    pub arn: String,
    pub account: String,
    #[serde(default)]
    pub user_id: String,
}

/// The body of `{"multisite_operator_request": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorRequest {
    pub action: OperatorAction,
    /// The Region to evacuate or fail back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The pending approval to act on (its change id, as `multisite status` shows it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub change: Option<String>,
    /// Evacuate: move the Aurora writer with a switchover (no data loss), for maintenance.
    #[serde(default)]
    pub planned: bool,
    /// Failback: also move the Aurora writer back to the Region (a switchover).
    #[serde(default)]
    pub restore_writer: bool,
    /// Compute and return the plan; write nothing (`multisite plan`).
    #[serde(default)]
    pub dry_run: bool,
    pub operator: OperatorIdentity,
    /// When the operator asked (epoch ms): with the operator's ARN, the request's identity, so a
    /// retried invocation is recognised as the same request.
    pub requested_at_ms: u64,
}

/// A request that passed [`OperatorRequest::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// Evacuate (`Alarm`) or fail back (`Ok`) `region`.
    Transition { region: String, state: AlarmState },
    /// Approve the pending change `change`.
    Approve { change: String },
}

impl OperatorRequest {
    /// The request in `payload`, if it is one. A payload with the key whose body does not parse
    /// is an `InvalidEvent` (nothing is called).
    pub fn from_payload(payload: &Value) -> Result<Option<Self>, Error> {
        let Some(body) = payload.get(REQUEST_KEY) else { return Ok(None) };
        if payload.as_object().is_some_and(|o| o.len() > 1) {
            return Err(Error::InvalidEvent(format!(
                "an operator request carries only `{REQUEST_KEY}`; this payload has other keys too"
            )));
        }
        serde_json::from_value(body.clone())
            .map(Some)
            .map_err(|e| Error::InvalidEvent(format!("operator request is malformed: {e}")))
    }

    /// The checks made before any AWS call: the fields of the action, a Region of the topology,
    /// this deployment's account and partition, a fresh request time.
    pub fn check(
        &self,
        topology: &shared::Topology,
        identity: &shared::alarm::Identity,
        now_ms: u64,
    ) -> Result<Checked, Error> {
        let invalid = |what: String| Err(Error::InvalidEvent(format!("operator request refused: {what}")));
        let arn = parse_principal_arn(&self.operator.arn);
        let Some((partition, account)) = arn else {
            return invalid(format!(
                "operator.arn {:?} is not an IAM or STS principal ARN (arn:<partition>:iam|sts::<account>:...)",
                self.operator.arn
            ));
        };
        if account != self.operator.account {
            return invalid(format!(
                "operator.arn is in account {account} but operator.account says {}",
                self.operator.account
            ));
        }
        if partition != identity.partition || account != identity.account {
            return invalid(format!(
                "the operator {} is not of this deployment's account {} (partition {})",
                self.operator.arn, identity.account, identity.partition
            ));
        }
        if now_ms.saturating_sub(self.requested_at_ms) > MAX_REQUEST_AGE_MS {
            return invalid(format!(
                "requested_at_ms {} is more than {} s before the function's clock ({now_ms}): an old request is not \
                 replayed; run the command again",
                self.requested_at_ms,
                MAX_REQUEST_AGE_MS / 1000
            ));
        }
        if self.requested_at_ms.saturating_sub(now_ms) > MAX_REQUEST_AHEAD_MS {
            return invalid(format!(
                "requested_at_ms {} is more than {} s ahead of the function's clock ({now_ms}): check the clock",
                self.requested_at_ms,
                MAX_REQUEST_AHEAD_MS / 1000
            ));
        }
        let region = |action: &str| match &self.region {
            None => Err(Error::InvalidEvent(format!("operator request refused: {action} needs `region`"))),
            Some(r) if topology.cell(r).is_none() => Err(Error::UnknownRegion(r.clone())),
            Some(r) => Ok(r.clone()),
        };
        match self.action {
            OperatorAction::Evacuate if self.change.is_some() || self.restore_writer => {
                invalid("evacuate takes `region` and `planned`, not `change` or `restore_writer`".into())
            }
            OperatorAction::Failback if self.change.is_some() || self.planned => {
                invalid("failback takes `region` and `restore_writer`, not `change` or `planned`".into())
            }
            OperatorAction::Approve if self.planned || self.restore_writer || self.dry_run => invalid(
                "approve takes `change` (and optionally `region`), not `planned`, `restore_writer` or `dry_run`".into(),
            ),
            OperatorAction::Evacuate => {
                Ok(Checked::Transition { region: region("evacuate")?, state: AlarmState::Alarm })
            }
            OperatorAction::Failback => Ok(Checked::Transition { region: region("failback")?, state: AlarmState::Ok }),
            OperatorAction::Approve => match &self.change {
                Some(change) if !change.is_empty() && change.len() <= 1024 => {
                    if let Some(r) = &self.region {
                        region("approve").map(|_| ()).map_err(|_| Error::UnknownRegion(r.clone()))?;
                    }
                    Ok(Checked::Approve { change: change.clone() })
                }
                _ => invalid("approve needs `change`: the pending change's id, as `multisite status` shows it".into()),
            },
        }
    }

    /// The change this request makes, as the reconcile path takes it (typed: `Delivery::Operator`).
    fn change(&self, state: AlarmState) -> AlarmChange {
        AlarmChange {
            alarm_name: self.operator.arn.clone(),
            state,
            previous_state: None,
            changed_at: shared::alarm::format_alarm_time(self.requested_at_ms),
            changed_at_ms: self.requested_at_ms,
            alarm_arn: None,
            reason: format!("requested by {}", self.operator.arn),
            delivery: Delivery::Operator,
        }
    }
}

/// `(partition, account)` of `arn:<partition>:iam|sts::<12 digits>:<resource>`.
fn parse_principal_arn(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (prefix, partition, service, region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let valid = prefix == "arn"
        && matches!(partition, "aws" | "aws-us-gov" | "aws-cn")
        && matches!(service, "iam" | "sts")
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && !resource.is_empty();
    valid.then_some((partition, account))
}

/// One operator's request, checked, then reconciled like an alarm change.
pub(crate) async fn handle_request(
    request: &OperatorRequest,
    deps: &Deps<'_>,
    calls: &Calls,
) -> Result<(Vec<Report>, Option<Error>), Error> {
    let checked = request.check(deps.topology, deps.identity, deps.clock.now_ms());
    let checked = match checked {
        Ok(checked) => checked,
        Err(err) => {
            tracing::error!(operator = %request.operator.arn, error = %err, "operator request refused before any call");
            return Err(err);
        }
    };
    tracing::info!(operator = %request.operator.arn, action = ?request.action, region = ?request.region, change = ?request.change, dry_run = request.dry_run, "operator request");
    let (report, error) = match checked {
        Checked::Transition { region, state } => transition(request, &region, state, deps, calls).await,
        Checked::Approve { change } => crate::approval::approve(request, &change, deps, calls).await,
    };
    Ok((vec![report], error))
}

/// Evacuate (`Alarm`) or fail back (`Ok`) `region` through the reconcile path.
async fn transition(
    request: &OperatorRequest,
    region: &str,
    state: AlarmState,
    deps: &Deps<'_>,
    calls: &Calls,
) -> (Report, Option<Error>) {
    let Some(cell) = deps.topology.cell(region) else {
        return (
            Report::new(&request.change(state), Some(region), Outcome::Rejected),
            Some(Error::UnknownRegion(region.into())),
        );
    };
    let Some(alarm) = cell.alarms.first() else {
        return (
            Report::new(&request.change(state), Some(region), Outcome::Rejected),
            Some(Error::Unexpected(format!("{region} has no alarm in the topology"))),
        );
    };
    let change = request.change(state);
    if state == AlarmState::Ok {
        // Failing back a Region its own alarm calls unhealthy would be undone by that alarm:
        // refused, naming the alarm.
        match alarms_in_alarm(cell, deps, calls).await {
            Ok(alarming) if !alarming.is_empty() => {
                let reason = format!(
                    "failing back {region} is refused while its alarm is in ALARM ({}): the Region is not healthy; fix \
                     it or wait for the alarm to return to OK",
                    alarming.join(", ")
                );
                let report = Report::new(&change, Some(region), Outcome::Refused).with_reason(reason);
                tracing::error!(region, operator = %request.operator.arn, reason = ?report.reason, "operator failback refused");
                return (report, None);
            }
            Ok(_) => {}
            Err(err) => return (Report::new(&change, Some(region), Outcome::Reconciled), Some(err)),
        }
    }
    let overrides = Overrides {
        dry_run: request.dry_run,
        planned: request.planned,
        restore_writer: request.restore_writer,
        approved_by: None,
    };
    let started = std::time::Instant::now();
    let (mut report, error) =
        crate::reconcile_change_inner(&change, Ok((cell, alarm)), &overrides, Some(Confirmed), deps, calls).await;
    report.duration_ms = started.elapsed().as_millis() as u64;
    debug_assert_eq!(report.trigger, Trigger::Operator);
    tracing::info!(report = %serde_json::to_string(&report).unwrap_or_default(), "failover operator report");
    (report, error)
}

/// The names of `cell`'s alarms that are in ALARM now (DescribeAlarms in each alarm's Region).
pub(crate) async fn alarms_in_alarm(
    cell: &shared::topology::Cell,
    deps: &Deps<'_>,
    calls: &Calls,
) -> Result<Vec<String>, Error> {
    let mut by_region: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for alarm in &cell.alarms {
        by_region.entry(cell.alarm_region(alarm)).or_default().push(alarm.name.as_str());
    }
    let reads = by_region.iter().map(|(region, names)| async move {
        let cloudwatch = &deps.clients.region(region)?.cloudwatch;
        calls.add("DescribeAlarms", 1);
        shared::aws::current_alarms(cloudwatch, region, names).await
    });
    let mut alarming = Vec::new();
    for read in futures_util::future::join_all(reads).await {
        alarming.extend(read?.into_iter().filter(|a| a.state == AlarmState::Alarm).map(|a| a.name));
    }
    Ok(alarming)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shared::ledger::RegionStatus;

    fn topology() -> shared::Topology {
        let cells: Vec<_> = ["us-east-1", "eu-west-1"]
            .iter()
            .map(|r| json!({"region": r, "health_check_id": format!("hc-{r}"), "auto_scaling_group": "g", "alarms": [format!("a-{r}")]}))
            .collect();
        let j = json!({"name": "t", "cells": cells, "routing": {"hosted_zone_id": "Z", "record_name": "a.example.com"},
            "global_table": "Data", "ledger_table": "Ledger", "rpo_budget_ms": 1000});
        shared::Topology::from_json(&j.to_string()).expect("valid")
    }

    const NOW: u64 = 1_800_000_000_000;

    fn request(patch: Value) -> Value {
        let mut body = json!({
            "action": "evacuate", "region": "us-east-1",
            "operator": {"arn": "arn:aws:iam::123456789012:user/alice", "account": "123456789012", "user_id": "AIDA1"},
            "requested_at_ms": NOW
        });
        if let (Some(b), Some(p)) = (body.as_object_mut(), patch.as_object()) {
            for (k, v) in p {
                if v.is_null() {
                    b.remove(k);
                } else {
                    b.insert(k.clone(), v.clone());
                }
            }
        }
        json!({ REQUEST_KEY: body })
    }

    fn checked(payload: &Value) -> Result<Checked, String> {
        let identity = shared::alarm::Identity { partition: "aws".into(), account: "123456789012".into() };
        let request = OperatorRequest::from_payload(payload).map_err(|e| e.to_string())?.ok_or("not a request")?;
        request.check(&topology(), &identity, NOW).map_err(|e| e.to_string())
    }

    #[test]
    fn operator_requests_are_checked_before_any_call_and_each_refusal_says_why() {
        let evacuate = Checked::Transition { region: "us-east-1".into(), state: AlarmState::Alarm };
        let ok: Vec<(&str, Value, Checked)> = vec![
            ("evacuate", json!({}), evacuate.clone()),
            ("planned evacuate", json!({"planned": true}), evacuate.clone()),
            (
                "assumed role",
                json!({"operator": {"arn": "arn:aws:sts::123456789012:assumed-role/Ops/bob", "account": "123456789012"}}),
                evacuate.clone(),
            ),
            ("a request 10 min old", json!({"requested_at_ms": NOW - 600_000}), evacuate),
            (
                "failback",
                json!({"action": "failback", "restore_writer": true}),
                Checked::Transition { region: "us-east-1".into(), state: AlarmState::Ok },
            ),
            (
                "approve",
                json!({"action": "approve", "region": null, "change": "a-us-east-1#t#Alarm"}),
                Checked::Approve { change: "a-us-east-1#t#Alarm".into() },
            ),
        ];
        for (case, patch, want) in ok {
            assert_eq!(checked(&request(patch)), Ok(want), "{case}");
        }
        let refused: Vec<(&str, Value, &str)> = vec![
            ("unknown field", json!({"force": true}), "unknown field `force`"),
            ("unknown action", json!({"action": "delete"}), "unknown variant `delete`"),
            ("no operator", json!({"operator": null}), "missing field `operator`"),
            ("no time", json!({"requested_at_ms": null}), "missing field `requested_at_ms`"),
            ("unknown Region", json!({"region": "sa-east-1"}), "Region sa-east-1 is not in the topology"),
            ("no Region", json!({"region": null}), "evacuate needs `region`"),
            (
                "another account",
                json!({"operator": {"arn": "arn:aws:iam::999999999999:user/eve", "account": "999999999999"}}),
                "is not of this deployment's account 123456789012",
            ),
            (
                "another partition",
                json!({"operator": {"arn": "arn:aws-cn:iam::123456789012:user/eve", "account": "123456789012"}}),
                "is not of this deployment's account",
            ),
            (
                "account mismatch",
                json!({"operator": {"arn": "arn:aws:iam::123456789012:user/eve", "account": "111111111111"}}),
                "operator.account says 111111111111",
            ),
            (
                "not an ARN",
                json!({"operator": {"arn": "alice", "account": "123456789012"}}),
                "is not an IAM or STS principal ARN",
            ),
            (
                "an alarm ARN",
                json!({"operator": {"arn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:x", "account": "123456789012"}}),
                "is not an IAM or STS principal ARN",
            ),
            ("replayed", json!({"requested_at_ms": NOW - MAX_REQUEST_AGE_MS - 1}), "an old request is not replayed"),
            (
                "from the future",
                json!({"requested_at_ms": NOW + MAX_REQUEST_AHEAD_MS + 1}),
                "ahead of the function's clock",
            ),
            ("evacuate with change", json!({"change": "x"}), "evacuate takes `region` and `planned`"),
            (
                "failback planned",
                json!({"action": "failback", "planned": true}),
                "failback takes `region` and `restore_writer`",
            ),
            ("approve without change", json!({"action": "approve"}), "approve needs `change`"),
            ("approve dry run", json!({"action": "approve", "change": "c", "dry_run": true}), "approve takes `change`"),
        ];
        for (case, patch, want) in refused {
            let err = checked(&request(patch)).expect_err(case);
            assert!(err.contains(want), "{case}: {err}");
        }
        // The key beside an alarm's fields is not an operator request either: refused whole.
        let mut mixed = request(json!({}));
        mixed["detail-type"] = json!("CloudWatch Alarm State Change");
        assert!(checked(&mixed).expect_err("mixed").contains("carries only"));
        // Not an operator request at all: decoded as something else.
        assert_eq!(OperatorRequest::from_payload(&json!({"source": "aws.events"})).ok(), Some(None));
    }

    #[test]
    fn an_operator_change_is_typed_and_its_id_names_the_operator_and_the_request() {
        let payload = request(json!({}));
        let request = OperatorRequest::from_payload(&payload).ok().flatten().expect("request");
        let change = request.change(AlarmState::Alarm);
        assert_eq!(change.delivery, Delivery::Operator);
        assert_eq!(
            change.change_id(),
            format!("operator#arn:aws:iam::123456789012:user/alice#{}#evacuate", shared::alarm::format_alarm_time(NOW))
        );
        let entry = shared::ledger::RegionStatusEntry {
            status: RegionStatus::Evacuated,
            changed_at_ms: NOW,
            cause: change.change_id(),
        };
        assert!(entry.by_operator());
        assert!(request.change(AlarmState::Ok).change_id().ends_with("#failback"));
    }
}

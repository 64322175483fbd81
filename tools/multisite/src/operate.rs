//! `plan`, `evacuate`, `failback` and `approve`: an operator's request to failover (its typed
//! `multisite_operator_request` event, never a forged alarm), carrying the operator's identity
//! from STS `GetCallerIdentity`. failover runs it through its reconcile path and safety rules,
//! deployed (Lambda `Invoke`, its role acts) or in this process (`--local`, the operator's
//! credentials act).

use crate::args::{Target, Transition};
use crate::{CliError, Fleet, remote};
use failover::operator::{OperatorAction, OperatorIdentity, OperatorRequest, REQUEST_KEY};
use serde_json::{Value, json};
use shared::alarm::Identity;
use shared::clock::SystemClock;
use std::fmt::Write as _;

/// What the operator asks, before the identity and the time are added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ask {
    Transition { transition: Transition, dry_run: bool },
    Approve { change: String },
}

impl Ask {
    /// The Region the request changes (for an approval: the Region of the change's alarm).
    pub fn region(&self, fleet: &Fleet) -> Result<String, CliError> {
        match self {
            Ask::Transition { transition, .. } => fleet.cell_region(transition.region()),
            Ask::Approve { change } => {
                let alarm = change.split('#').next().unwrap_or_default();
                match fleet.topology.alarm(alarm) {
                    Some((cell, _)) => Ok(cell.region.clone()),
                    None => Err(CliError::Usage(format!(
                        "{change} is not a change of an alarm of the topology: copy the id `multisite status` shows \
                         under PENDING APPROVAL"
                    ))),
                }
            }
        }
    }

    /// The typed request failover takes.
    pub fn request(&self, operator: &OperatorIdentity, now_ms: u64) -> OperatorRequest {
        let base = OperatorRequest {
            action: OperatorAction::Evacuate,
            region: None,
            change: None,
            planned: false,
            restore_writer: false,
            dry_run: false,
            operator: operator.clone(),
            requested_at_ms: now_ms,
        };
        match self {
            Ask::Transition { transition: Transition::Evacuate { region, planned }, dry_run } => {
                OperatorRequest { region: Some(region.clone()), planned: *planned, dry_run: *dry_run, ..base }
            }
            Ask::Transition { transition: Transition::Failback { region, restore_writer }, dry_run } => {
                OperatorRequest {
                    action: OperatorAction::Failback,
                    region: Some(region.clone()),
                    restore_writer: *restore_writer,
                    dry_run: *dry_run,
                    ..base
                }
            }
            Ask::Approve { change } => {
                OperatorRequest { action: OperatorAction::Approve, change: Some(change.clone()), ..base }
            }
        }
    }
}

/// The Region failover runs in: `--via`, else the first Region of the topology other than the
/// one changing (static stability: never ask the failing Region to evacuate itself).
pub fn via_region(fleet: &Fleet, via: Option<&str>, changing: &str) -> Result<String, CliError> {
    match via {
        Some(v) => fleet.cell_region(v),
        None => fleet
            .topology
            .regions()
            .find(|r| *r != changing)
            .map(str::to_owned)
            .ok_or_else(|| CliError::Topology("no Region other than the one changing".into())),
    }
}

/// The operator, from STS `GetCallerIdentity` in `region`.
pub async fn caller_identity(fleet: &Fleet, region: &str) -> Result<OperatorIdentity, CliError> {
    let sts = aws_sdk_sts::Client::new(&fleet.clients.sdk_config(region));
    let out = sts.get_caller_identity().send().await.map_err(|err| {
        let text = aws_smithy_types::error::display::DisplayErrorContext(&err).to_string();
        if text.contains("no credentials") || text.contains("CredentialsNotLoaded") || text.contains("credentials") {
            CliError::Credentials(format!(
                "no AWS credentials: set AWS_PROFILE (or run `aws sso login`), or AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY ({text})"
            ))
        } else {
            CliError::Aws(shared::Error::aws("GetCallerIdentity", region, err))
        }
    })?;
    match (out.arn(), out.account()) {
        (Some(arn), Some(account)) => Ok(OperatorIdentity {
            arn: arn.to_owned(),
            account: account.to_owned(),
            user_id: out.user_id().unwrap_or_default().to_owned(),
        }),
        _ => Err(CliError::Credentials("STS GetCallerIdentity answered without an ARN or account".into())),
    }
}

/// Where the request went, for the output.
#[derive(Debug, Clone)]
pub struct Sent {
    pub via: String,
    /// `local` or the function's ARN.
    pub runner: String,
    /// failover's `Response` as JSON.
    pub response: Value,
    /// In-process only: the invocation's error (a failed step), beside its reports.
    pub error: Option<String>,
}

/// Sends `request` to failover in `via`: in this process, or to the deployed function.
pub async fn send(fleet: &Fleet, target: &Target, via: &str, request: &OperatorRequest) -> Result<Sent, CliError> {
    let payload = json!({ REQUEST_KEY: request });
    match target {
        Target::Local => {
            let (partition, account) = principal(&request.operator.arn)?;
            let identity = Identity { partition, account };
            let deps = failover::Deps {
                topology: &fleet.topology,
                clients: &fleet.clients,
                home_region: via,
                clock: &SystemClock,
                identity: &identity,
            };
            let (response, error) = failover::handle_with_report(payload, &deps).await.map_err(request_error)?;
            let response = serde_json::to_value(&response).unwrap_or(Value::Null);
            Ok(Sent { via: via.to_owned(), runner: "local".into(), response, error: error.map(|e| e.to_string()) })
        }
        Target::Remote { stack, function } => {
            let config = fleet.clients.sdk_config(via);
            let function_arn = match function {
                Some(f) => f.clone(),
                None => {
                    let stack = stack.as_deref().unwrap_or(remote::DEFAULT_STACK);
                    let cloudformation = aws_sdk_cloudformation::Client::new(&config);
                    let found = remote::find_function(&cloudformation, stack, via).await?;
                    if let Some(table) = found.ledger_table.as_deref().filter(|t| *t != fleet.topology.ledger_table) {
                        return Err(CliError::Topology(format!(
                            "stack {stack} in {via} records in ledger table {table}, the topology names {}: this \
                             topology is not the stack's (pass the deployment's --topology, or --stack)",
                            fleet.topology.ledger_table
                        )));
                    }
                    found.function_arn
                }
            };
            let lambda = aws_sdk_lambda::Client::from_conf(remote::invoke_config(&config));
            let response = remote::invoke(&lambda, &function_arn, via, &payload).await?;
            check_same_topology(&fleet.topology, &response, &function_arn)?;
            Ok(Sent { via: via.to_owned(), runner: function_arn, response, error: None })
        }
    }
}

/// failover's answer names the Regions of its own topology (`desired`): they must be ours.
fn check_same_topology(topology: &shared::Topology, response: &Value, function: &str) -> Result<(), CliError> {
    let Some(desired) = response["reports"][0]["desired"].as_object().filter(|d| !d.is_empty()) else { return Ok(()) };
    let mut theirs: Vec<&str> = desired.keys().map(String::as_str).collect();
    let mut ours: Vec<&str> = topology.regions().collect();
    theirs.sort_unstable();
    ours.sort_unstable();
    if theirs != ours {
        return Err(CliError::Topology(format!(
            "{function} runs with the Regions {} but this topology has {}: pass the deployment's --topology",
            theirs.join(", "),
            ours.join(", ")
        )));
    }
    Ok(())
}

/// `(partition, account)` of the operator's ARN.
fn principal(arn: &str) -> Result<(String, String), CliError> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, _, _, account, _] => Ok(((*partition).to_owned(), (*account).to_owned())),
        _ => Err(CliError::Credentials(format!("STS answered an ARN that is not one: {arn}"))),
    }
}

/// A request failover refused before doing anything.
fn request_error(err: shared::Error) -> CliError {
    match err {
        shared::Error::InvalidEvent(message) => {
            CliError::Remote { function: "failover".into(), error_type: "InvalidEvent".into(), message }
        }
        shared::Error::UnknownRegion(region) => CliError::Usage(format!("{region} is not a Region of the topology")),
        other => CliError::Aws(other),
    }
}

/// The command's verdict from failover's report: `Ok` to exit 0, else why not.
pub fn verdict(sent: &Sent, approving: bool) -> Result<(), CliError> {
    let report = &sent.response["reports"][0];
    let outcome = report["outcome"].as_str().unwrap_or("none");
    let reason = report["reason"].as_str().unwrap_or_default().to_owned();
    match outcome {
        "Reconciled" | "DryRun" | "ApprovalPending" => match &sent.error {
            Some(err) => Err(CliError::Incomplete(err.clone())),
            None => Ok(()),
        },
        "Ignored" if !approving => Ok(()),
        "PartiallyFailed" => Err(CliError::Incomplete(sent.error.clone().unwrap_or(reason))),
        "none" => Err(CliError::Incomplete(format!("failover answered no report: {}", sent.response))),
        _ => Err(CliError::Refused { outcome: outcome.to_owned(), reason }),
    }
}

/// The human account of failover's report.
pub fn render(what: &str, sent: &Sent) -> String {
    let mut s = String::new();
    let reports = sent.response["reports"].as_array().cloned().unwrap_or_default();
    for report in &reports {
        let outcome = report["outcome"].as_str().unwrap_or("?");
        let _ = writeln!(s, "multisite {what}: {outcome} (failover in {}, {})", sent.via, sent.runner);
        if let Some(reason) = report["reason"].as_str() {
            let _ = writeln!(s, "  why: {reason}");
        }
        if let Some(operator) = report["operator"].as_str() {
            let _ = writeln!(s, "  operator: {operator}");
        }
        if report["transition_recorded"] == true {
            let region = report["region"].as_str().unwrap_or("?");
            let to = report["desired"][region].as_str().unwrap_or("?");
            let _ = writeln!(s, "  transition recorded in the ledger: {region} -> {to}");
        }
        if let Some(plan) = report["plan"].as_object() {
            let actions = plan.get("actions").and_then(Value::as_array).cloned().unwrap_or_default();
            if actions.is_empty() {
                let _ = writeln!(s, "  plan: nothing to do");
            } else {
                let _ = writeln!(s, "  plan:");
            }
            for action in &actions {
                let _ = writeln!(s, "    {}", describe_action(action));
            }
            for note in plan.get("notes").and_then(Value::as_array).into_iter().flatten() {
                let _ = writeln!(s, "    note: {}", note.as_str().unwrap_or_default());
            }
        }
        let steps = report["steps"].as_array().cloned().unwrap_or_default();
        if !steps.is_empty() {
            let _ = writeln!(s, "  steps:");
        }
        for step in &steps {
            let outcome = if step["ok"] == true {
                "ok".to_owned()
            } else {
                format!("FAILED: {}", step["error"].as_str().unwrap_or("?"))
            };
            let _ = writeln!(
                s,
                "    {} {outcome} ({} ms)",
                step["action"]["action"].as_str().unwrap_or("?"),
                step["duration_ms"].as_u64().unwrap_or(0)
            );
        }
    }
    if let Some(err) = &sent.error {
        let _ = writeln!(s, "  error: {err}");
    }
    s
}

/// One planned action: its name, then its fields.
fn describe_action(action: &Value) -> String {
    let name = action["action"].as_str().unwrap_or("?");
    let fields: Vec<String> = action
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| *k != "action")
        .map(|(k, v)| format!("{k}={}", v.as_str().map(str::to_owned).unwrap_or_else(|| v.to_string())))
        .collect();
    format!("{name} {}", fields.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(outcome: &str, error: Option<&str>) -> Sent {
        Sent {
            via: "eu-west-1".into(),
            runner: "local".into(),
            response: json!({"reports": [{"outcome": outcome, "reason": "because"}]}),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn the_exit_status_follows_failovers_outcome() {
        // (outcome, step error, approving, exit code: 0 = Ok)
        let cases = [
            ("Reconciled", None, false, 0),
            ("DryRun", None, false, 0),
            ("Ignored", None, false, 0), // a duplicate request: done already
            ("Ignored", None, true, 3),  // nothing to approve
            ("Refused", None, false, 3),
            ("FailbackPending", None, false, 3),
            ("Stale", None, true, 3),
            ("Reconciled", Some("1 step(s) failed"), false, 1),
            ("PartiallyFailed", Some("1 step(s) failed"), false, 1),
        ];
        for (outcome, error, approving, code) in cases {
            let got = verdict(&sent(outcome, error), approving).err().map_or(0, |e| e.exit_code());
            assert_eq!(got, code, "{outcome} {error:?} {approving}");
        }
        let err = verdict(&sent("Refused", None), false).expect_err("refused");
        assert_eq!(err.to_string(), "failover refused (Refused): because");
    }

    #[test]
    fn a_function_whose_topology_has_other_regions_is_not_this_deployments() {
        let cells: Vec<Value> = ["us-east-1", "eu-west-1"]
            .iter()
            .map(|r| json!({"region": r, "health_check_id": format!("hc-{r}"), "auto_scaling_group": "g", "alarms": [format!("a-{r}")]}))
            .collect();
        let topology = shared::Topology::from_json(
            &json!({"name": "t", "cells": cells, "routing": {"hosted_zone_id": "Z", "record_name": "a.example.com"},
                "global_table": "Data", "ledger_table": "Ledger", "rpo_budget_ms": 1000})
            .to_string(),
        )
        .expect("valid");
        let answer = |regions: &[&str]| {
            let desired: serde_json::Map<String, Value> =
                regions.iter().map(|r| ((*r).to_owned(), json!("Active"))).collect();
            json!({"reports": [{"desired": desired}]})
        };
        assert!(check_same_topology(&topology, &answer(&["eu-west-1", "us-east-1"]), "f").is_ok());
        assert!(
            check_same_topology(&topology, &json!({"reports": [{"desired": {}}]}), "f").is_ok(),
            "nothing to compare"
        );
        let err = check_same_topology(&topology, &answer(&["us-east-1", "eu-west-1", "ap-southeast-1"]), "f")
            .expect_err("other");
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("f runs with the Regions ap-southeast-1, eu-west-1, us-east-1 but this topology has eu-west-1, us-east-1"), "{err}");
    }

    #[test]
    fn an_action_reads_as_its_name_and_fields() {
        let action = json!({"action": "MoveAuroraWriter", "from_region": "us-east-1", "to_region": "eu-west-1", "mode": "Switchover"});
        assert_eq!(
            describe_action(&action),
            "MoveAuroraWriter from_region=us-east-1 to_region=eu-west-1 mode=Switchover"
        );
    }
}

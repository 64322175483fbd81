//! Break glass: an operator's explicit override of ARC safety rules (`SafetyRulesToOverride`).
//!
//! failover itself never overrides a rule (its role denies every update that carries
//! `route53-recovery-cluster:AllowSafetyRulesOverrides`, and its code path has no way to ask).
//! An operator can, with their own credentials, only by naming the rules, who they are and why;
//! the request is recorded in the ledger (the arbiter replica) before ARC is called, and its
//! outcome after, so no override happens without a trace.

use serde::{Deserialize, Serialize};
use shared::clock::Clock;
use shared::topology::ArcRouting;
use shared::{Error, Ledger, RegionalClients, Topology};

/// What an operator asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlass {
    /// The cell whose routing control changes.
    pub region: String,
    /// Its new state: On (traffic flows) or Off.
    pub on: bool,
    /// The safety rules to override (ARNs of the topology's control panel); never empty.
    pub safety_rules: Vec<String>,
    /// Who asks (e.g. the caller's ARN from STS GetCallerIdentity).
    pub operator: String,
    /// Why, in words the next operator will understand.
    pub reason: String,
}

/// The ledger record of one override, under `breakglass#<region>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakGlassRecord {
    #[serde(flatten)]
    pub request: BreakGlass,
    pub requested_at_ms: u64,
    /// `Requested` until ARC answered, then `Applied`, `Refused` (ARC's reason) or `Failed`.
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The ledger partition of a Region's overrides.
pub fn break_glass_pk(region: &str) -> String {
    format!("breakglass#{region}")
}

/// Checks the request against the topology: ARC backend, a known cell, named rules of the
/// control panel, an operator and a reason. Nothing is written or called for a bad request.
pub fn validate<'t>(topology: &'t Topology, request: &BreakGlass) -> Result<(&'t ArcRouting, String), Error> {
    let invalid = |why: String| Error::InvalidEvent(format!("break glass: {why}"));
    let arc = topology.arc().ok_or_else(|| invalid("the topology's routing backend is not arc".into()))?;
    let control = arc
        .routing_controls
        .get(&request.region)
        .ok_or_else(|| invalid(format!("{} is not a cell of the topology", request.region)))?;
    if request.safety_rules.is_empty() {
        return Err(invalid("name the safety rules to override (SafetyRulesToOverride); none is implied".into()));
    }
    let panel = format!("{}/safetyrule/", arc.control_panel_arn);
    if let Some(foreign) = request.safety_rules.iter().find(|r| !r.starts_with(&panel)) {
        return Err(invalid(format!("{foreign} is not a safety rule of the control panel {}", arc.control_panel_arn)));
    }
    if request.operator.trim().is_empty() {
        return Err(invalid("say who overrides (the operator's identity)".into()));
    }
    if request.reason.trim().len() < 10 {
        return Err(invalid("say why, in a sentence (at least 10 characters)".into()));
    }
    Ok((arc, control.clone()))
}

/// Records the request in the arbiter ledger, sets the routing control overriding the named
/// rules (with the caller's own credentials in `clients`), and records the outcome.
pub async fn break_glass(
    topology: &Topology,
    clients: &RegionalClients,
    home_region: &str,
    clock: &dyn Clock,
    request: BreakGlass,
) -> Result<BreakGlassRecord, Error> {
    let (arc, control) = validate(topology, &request)?;
    let arbiter = topology.arbiter_region();
    let ledger = Ledger::new(clients.region(arbiter)?.dynamodb.clone(), &topology.ledger_table, arbiter);
    let requested_at_ms = clock.now_ms();
    let pk = break_glass_pk(&request.region);
    let sk = requested_at_ms.to_string();
    let mut record = BreakGlassRecord { request, requested_at_ms, outcome: "Requested".into(), detail: None };
    // The trace first: an override that cannot be recorded does not happen.
    ledger.put(&pk, &sk, &record, 1, requested_at_ms).await?;
    tracing::warn!(region = %record.request.region, operator = %record.request.operator, reason = %record.request.reason, rules = ?record.request.safety_rules, "break glass: overriding ARC safety rules");

    let cluster = clients.arc(arc, home_region);
    let result = cluster.set_states_overriding(&[(control, record.request.on)], &record.request.safety_rules).await;
    let (outcome, detail, error) = match result {
        Ok(shared::arc::ChangeOutcome::Applied { endpoint_region }) => {
            ("Applied", Some(format!("through the {endpoint_region} endpoint")), None)
        }
        Ok(shared::arc::ChangeOutcome::Refused { reason }) => ("Refused", Some(reason), None),
        Err(err) => ("Failed", Some(err.to_string()), Some(err)),
    };
    record.outcome = outcome.into();
    record.detail = detail;
    ledger.put(&pk, &sk, &record, 2, clock.now_ms()).await?;
    match error {
        Some(err) => Err(err),
        None => Ok(record),
    }
}

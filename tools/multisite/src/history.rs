//! `multisite history`: failover's transition records from the ledger's arbiter replica, newest
//! first, with each step's outcome.

use crate::{CliError, Fleet, format_ms};
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::Value;
use std::fmt::Write as _;

/// One transition as `history` shows it (its `--json` form).
#[derive(Debug, Clone, Serialize)]
pub struct Transition {
    pub region: String,
    /// `Evacuated` or `Active`.
    pub to: String,
    /// When the alarm changed (the record's sort key starts with it).
    pub changed_at: String,
    pub recorded_at: String,
    pub alarm: String,
    pub change_id: String,
    /// The operator (STS ARN) who requested or approved it; `None` for an alarm's.
    pub operator: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub action: String,
    pub ok: bool,
    pub error: Option<String>,
    pub duration_ms: u64,
}

/// The transitions of `region` (every Region's when `None`), newest first.
pub async fn history(fleet: &Fleet, region: Option<&str>) -> Result<Vec<Transition>, CliError> {
    let regions: Vec<String> = match region {
        Some(r) => vec![fleet.cell_region(r)?],
        None => fleet.topology.regions().map(str::to_owned).collect(),
    };
    let ledger = fleet.ledger()?;
    let reads = join_all(regions.iter().map(|r| {
        let ledger = &ledger;
        async move { ledger.list::<failover::TransitionRecord>(&shared::ledger::transition_pk(r)).await }
    }))
    .await;
    let mut transitions = Vec::new();
    for records in reads {
        for record in records? {
            let t = record.body;
            let changed_at = record.sk.split('#').next().unwrap_or_default().to_owned();
            transitions.push(Transition {
                region: t.region,
                to: format!("{:?}", t.to),
                changed_at,
                recorded_at: format_ms(t.recorded_at_ms),
                alarm: t.alarm,
                change_id: t.change_id,
                operator: t.operator,
                steps: t.steps.iter().map(step_of).collect(),
            });
        }
    }
    // RFC 3339 times of one format sort as text.
    transitions.sort_by(|a, b| b.changed_at.cmp(&a.changed_at));
    Ok(transitions)
}

/// A recorded step (failover's `StepResult` as JSON: the action is tagged by its name).
fn step_of(step: &Value) -> Step {
    Step {
        action: step["action"]["action"].as_str().unwrap_or("?").to_owned(),
        ok: step["ok"].as_bool().unwrap_or(false),
        error: step["error"].as_str().map(str::to_owned),
        duration_ms: step["duration_ms"].as_u64().unwrap_or(0),
    }
}

/// The human listing.
pub fn render(transitions: &[Transition]) -> String {
    let mut s = String::new();
    if transitions.is_empty() {
        let _ = writeln!(s, "no transition recorded");
    }
    for t in transitions {
        let who = match &t.operator {
            Some(arn) if t.change_id.starts_with(shared::alarm::OPERATOR_CAUSE_PREFIX) => format!("operator {arn}"),
            Some(arn) => format!("alarm {}, approved by {arn}", t.alarm),
            None => format!("alarm {}", t.alarm),
        };
        let _ = writeln!(
            s,
            "{}  {} -> {}  by {} ({who}), recorded {}",
            t.changed_at, t.region, t.to, t.change_id, t.recorded_at
        );
        for step in &t.steps {
            let outcome = match (&step.error, step.ok) {
                (_, true) => "ok".to_owned(),
                (Some(err), false) => format!("FAILED: {err}"),
                (None, false) => "FAILED".to_owned(),
            };
            let _ = writeln!(s, "    {:<20} {outcome} ({} ms)", step.action, step.duration_ms);
        }
    }
    s
}

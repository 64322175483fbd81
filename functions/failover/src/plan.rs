//! The planner: pure code that turns observed state and desired Region statuses into the list of
//! actions that reconcile them (docs/architecture.md, section 2). No I/O; table-tested.

use serde::Serialize;
use shared::ledger::RegionStatus;
use shared::topology::Topology;
use std::collections::HashMap;

/// What the observation step saw of one Region's Route 53 health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedHealthCheck {
    pub region: String,
    pub health_check_id: String,
    /// Forced unhealthy (`Inverted` and `Disabled`; see `aws::health_check_forced_unhealthy`).
    /// `None` when the health check could not be read: the planner then acts as if it were not
    /// in the desired state (the action is idempotent).
    pub inverted: Option<bool>,
}

/// What the observation step saw of one Region's ARC routing control (backend `arc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedRoutingControl {
    pub region: String,
    pub routing_control_arn: String,
    /// The control is On (traffic flows to the Region). `None` when the cluster could not be
    /// read: the planner acts as if it were not in the desired state (the change is idempotent).
    pub on: Option<bool>,
}

/// One member cluster of the Aurora global database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuroraMember {
    pub cluster_arn: String,
    pub region: String,
    pub is_writer: bool,
}

/// What the observation step saw of the Aurora global database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedAurora {
    pub global_cluster_id: String,
    pub members: Vec<AuroraMember>,
    /// A failover or switchover is already running: never start another.
    pub failover_in_progress: bool,
    /// The member a running failover or switchover moves the writer to.
    pub failover_target_arn: Option<String>,
}

impl ObservedAurora {
    pub fn writer(&self) -> Option<&AuroraMember> {
        self.members.iter().find(|m| m.is_writer)
    }
}

/// Everything observed before planning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Observed {
    /// Backend `health_check`: every Region's health check (empty with `arc`).
    pub health_checks: Vec<ObservedHealthCheck>,
    /// Backend `arc`: every Region's routing control (empty with `health_check`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routing_controls: Vec<ObservedRoutingControl>,
    /// `None` when the topology has no Aurora database or it could not be read.
    pub aurora: Option<ObservedAurora>,
}

/// How the Aurora writer moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WriterMove {
    /// Unplanned: `FailoverGlobalCluster` with `AllowDataLoss` (the old writer may be unreachable).
    Failover,
    /// Planned (a drill, or failback): `SwitchoverGlobalCluster`, no data loss.
    Switchover,
}

/// One step of a plan. Every action is idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action")]
pub enum Action {
    /// Force the Region's health check unhealthy (Inverted + Disabled) so latency routing stops
    /// answering with it, whatever its endpoint checks see.
    InvertHealthCheck { region: String, health_check_id: String },
    /// Give the health check back to its endpoint checks on failback (both flags cleared).
    RestoreHealthCheck { region: String, health_check_id: String },
    /// Backend `arc`: set the Region's routing control Off (evacuation) or On (failback) through
    /// the ARC cluster's data plane; ARC's safety rules may refuse it.
    SetRoutingControl { region: String, routing_control_arn: String, on: bool },
    /// Move the Aurora writer, calling RDS in the target's Region.
    MoveAuroraWriter { from_region: String, to_region: String, target_cluster_arn: String, mode: WriterMove },
    /// Not planned: the step that reports an Aurora global cluster that could not be observed
    /// (a failed step, so the invocation is retried).
    ObserveAurora { from_region: String },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::InvertHealthCheck { .. } => "InvertHealthCheck",
            Action::RestoreHealthCheck { .. } => "RestoreHealthCheck",
            Action::SetRoutingControl { on: false, .. } => "RoutingControlOff",
            Action::SetRoutingControl { on: true, .. } => "RoutingControlOn",
            Action::MoveAuroraWriter { .. } => "MoveAuroraWriter",
            Action::ObserveAurora { .. } => "ObserveAurora",
        }
    }

    /// Whether this action changes routing (ARC's safety rules may refuse it: it runs first).
    pub fn is_routing_control(&self) -> bool {
        matches!(self, Action::SetRoutingControl { .. })
    }

    /// Whether this action is part of `region`'s transition: its health check, or the writer
    /// leaving it or returning to it.
    pub fn concerns(&self, region: &str) -> bool {
        match self {
            Action::InvertHealthCheck { region: r, .. }
            | Action::RestoreHealthCheck { region: r, .. }
            | Action::SetRoutingControl { region: r, .. } => r == region,
            Action::MoveAuroraWriter { from_region, to_region, .. } => from_region == region || to_region == region,
            Action::ObserveAurora { .. } => false,
        }
    }
}

/// What the caller wants beyond the Region statuses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// A planned drill: move the writer with a switchover instead of a failover.
    pub planned: bool,
    /// The Region being failed back, whose health check is restored.
    pub failback_region: Option<String>,
    /// On failback, also move the Aurora writer back to the failback Region (switchover).
    pub restore_writer: bool,
    /// The writer's Region answered RDS just now: an evacuation moves the writer with a
    /// switchover (no data loss); only when it does not is `AllowDataLoss` used.
    pub writer_region_answers: bool,
}

/// The plan and notes on what was deliberately not done.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub actions: Vec<Action>,
    pub notes: Vec<String>,
}

/// Computes the actions that take `observed` to the `desired` statuses.
pub fn plan(
    topology: &Topology,
    desired: &HashMap<String, RegionStatus>,
    observed: &Observed,
    options: &PlanOptions,
) -> Plan {
    let status = |region: &str| desired.get(region).copied().unwrap_or(RegionStatus::Active);
    let mut result = Plan::default();

    for check in &observed.health_checks {
        match status(&check.region) {
            RegionStatus::Evacuated if check.inverted != Some(true) => result.actions.push(Action::InvertHealthCheck {
                region: check.region.clone(),
                health_check_id: check.health_check_id.clone(),
            }),
            // Restore only the Region being failed back: an operator may have inverted another
            // Active Region's check on purpose (maintenance), and a reconcile must not undo that.
            RegionStatus::Active
                if options.failback_region.as_deref() == Some(check.region.as_str())
                    && check.inverted != Some(false) =>
            {
                result.actions.push(Action::RestoreHealthCheck {
                    region: check.region.clone(),
                    health_check_id: check.health_check_id.clone(),
                })
            }
            _ => {}
        }
    }

    for control in &observed.routing_controls {
        let failing_back = options.failback_region.as_deref() == Some(control.region.as_str());
        let on = match status(&control.region) {
            RegionStatus::Evacuated if control.on != Some(false) => false,
            // As with health checks: only the Region being failed back is turned On again.
            RegionStatus::Active if failing_back && control.on != Some(true) => true,
            _ => continue,
        };
        result.actions.push(Action::SetRoutingControl {
            region: control.region.clone(),
            routing_control_arn: control.routing_control_arn.clone(),
            on,
        });
    }

    if let Some(aurora) = &observed.aurora {
        plan_aurora(topology, &status, aurora, options, &mut result);
    } else if topology.aurora.is_some() {
        result.notes.push("Aurora global cluster could not be observed: the ObserveAurora step failed".into());
    }
    result
}

fn plan_aurora(
    topology: &Topology,
    status: &dyn Fn(&str) -> RegionStatus,
    aurora: &ObservedAurora,
    options: &PlanOptions,
    result: &mut Plan,
) {
    let Some(writer) = aurora.writer() else {
        result.notes.push("Aurora global cluster has no writer member: nothing to move".into());
        return;
    };
    let member_in = |region: &str| aurora.members.iter().find(|m| m.region == region);

    let target = if status(&writer.region) == RegionStatus::Evacuated {
        // The writer must leave: the highest-priority active Region with a member.
        let candidate =
            topology.regions().filter(|r| *r != writer.region && status(r) == RegionStatus::Active).find_map(member_in);
        match candidate {
            Some(member) => {
                let mode = if options.planned {
                    result.notes.push("planned evacuation: the writer moves with a switchover (no data loss)".into());
                    WriterMove::Switchover
                } else if options.writer_region_answers {
                    result
                        .notes
                        .push(format!("the writer's Region {} answers RDS: switchover (no data loss)", writer.region));
                    WriterMove::Switchover
                } else {
                    result.notes.push(format!(
                        "the writer's Region {} does not answer RDS: failover with AllowDataLoss",
                        writer.region
                    ));
                    WriterMove::Failover
                };
                Some((member, mode))
            }
            None => {
                result.notes.push(format!("writer in evacuated {} but no active Region has a member", writer.region));
                None
            }
        }
    } else if let (true, Some(back)) = (options.restore_writer, options.failback_region.as_deref()) {
        match member_in(back) {
            Some(member) if member.region != writer.region && status(back) == RegionStatus::Active => {
                Some((member, WriterMove::Switchover))
            }
            Some(_) => None,
            None => {
                result.notes.push(format!("no Aurora member in {back}: writer stays in {}", writer.region));
                None
            }
        }
    } else {
        None
    };

    if let Some((member, mode)) = target {
        if aurora.failover_in_progress {
            result.notes.push("an Aurora failover is already in progress: not starting another".into());
            return;
        }
        result.actions.push(Action::MoveAuroraWriter {
            from_region: writer.region.clone(),
            to_region: member.region.clone(),
            target_cluster_arn: member.cluster_arn.clone(),
            mode,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RegionStatus::{Active, Evacuated};

    const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

    fn topology(n: usize) -> Topology {
        let cells: Vec<_> = REGIONS[..n]
            .iter()
            .map(|r| {
                serde_json::json!({
                    "region": r, "health_check_id": format!("hc-{r}"), "auto_scaling_group": format!("asg-{r}"),
                    "aurora_cluster_arn": arn(r), "alarms": [format!("alarm-{r}")]
                })
            })
            .collect();
        let json = serde_json::json!({
            "name": "t", "cells": cells, "routing": {"hosted_zone_id": "Z", "record_name": "app.example.com"},
            "global_table": "Data", "ledger_table": "Ledger", "rpo_budget_ms": 1000, "aurora": {"global_cluster_id": "g"}
        });
        Topology::from_json(&json.to_string()).expect("valid")
    }

    fn arn(region: &str) -> String {
        format!("arn:aws:rds:{region}:123456789012:cluster:db-{region}")
    }

    fn observed(n: usize, inverted: &[&str], writer: &str, in_progress: bool) -> Observed {
        Observed {
            health_checks: REGIONS[..n]
                .iter()
                .map(|r| ObservedHealthCheck {
                    region: r.to_string(),
                    health_check_id: format!("hc-{r}"),
                    inverted: Some(inverted.contains(r)),
                })
                .collect(),
            routing_controls: Vec::new(),
            aurora: Some(ObservedAurora {
                global_cluster_id: "g".into(),
                members: REGIONS[..n]
                    .iter()
                    .map(|r| AuroraMember { cluster_arn: arn(r), region: r.to_string(), is_writer: *r == writer })
                    .collect(),
                failover_in_progress: in_progress,
                failover_target_arn: None,
            }),
        }
    }

    fn desired(evacuated: &[&str]) -> HashMap<String, RegionStatus> {
        REGIONS.iter().map(|r| (r.to_string(), if evacuated.contains(r) { Evacuated } else { Active })).collect()
    }

    fn invert(r: &str) -> Action {
        Action::InvertHealthCheck { region: r.into(), health_check_id: format!("hc-{r}") }
    }

    fn restore(r: &str) -> Action {
        Action::RestoreHealthCheck { region: r.into(), health_check_id: format!("hc-{r}") }
    }

    fn move_writer(from: &str, to: &str, mode: WriterMove) -> Action {
        Action::MoveAuroraWriter { from_region: from.into(), to_region: to.into(), target_cluster_arn: arn(to), mode }
    }

    #[test]
    fn planner_table() {
        use WriterMove::*;
        let evac = PlanOptions::default();
        let drill = PlanOptions { planned: true, ..PlanOptions::default() };
        let failback = |r: &str, writer: bool| PlanOptions {
            failback_region: Some(r.into()),
            restore_writer: writer,
            ..PlanOptions::default()
        };
        // (what, regions, evacuated, inverted now, writer, failover in progress, options, expected actions)
        let cases: Vec<(&str, usize, Vec<&str>, Vec<&str>, &str, bool, PlanOptions, Vec<Action>)> = vec![
            (
                "2R: evacuate writer region",
                2,
                vec!["us-east-1"],
                vec![],
                "us-east-1",
                false,
                evac.clone(),
                vec![invert("us-east-1"), move_writer("us-east-1", "eu-west-1", Failover)],
            ),
            (
                "2R: evacuate reader region: writer stays",
                2,
                vec!["eu-west-1"],
                vec![],
                "us-east-1",
                false,
                evac.clone(),
                vec![invert("eu-west-1")],
            ),
            (
                "2R: already evacuated: nothing to do",
                2,
                vec!["us-east-1"],
                vec!["us-east-1"],
                "eu-west-1",
                false,
                evac.clone(),
                vec![],
            ),
            (
                "2R: inverted but writer still there",
                2,
                vec!["us-east-1"],
                vec!["us-east-1"],
                "us-east-1",
                false,
                evac.clone(),
                vec![move_writer("us-east-1", "eu-west-1", Failover)],
            ),
            (
                "2R: failover in progress: none started",
                2,
                vec!["us-east-1"],
                vec![],
                "us-east-1",
                true,
                evac.clone(),
                vec![invert("us-east-1")],
            ),
            (
                "2R: planned drill uses switchover",
                2,
                vec!["us-east-1"],
                vec![],
                "us-east-1",
                false,
                drill.clone(),
                vec![invert("us-east-1"), move_writer("us-east-1", "eu-west-1", Switchover)],
            ),
            (
                "3R: evacuate writer: highest-priority survivor",
                3,
                vec!["us-east-1"],
                vec![],
                "us-east-1",
                false,
                evac.clone(),
                vec![invert("us-east-1"), move_writer("us-east-1", "eu-west-1", Failover)],
            ),
            (
                "3R: priority skips an evacuated survivor",
                3,
                vec!["us-east-1", "eu-west-1"],
                vec!["eu-west-1"],
                "us-east-1",
                false,
                evac.clone(),
                vec![invert("us-east-1"), move_writer("us-east-1", "ap-southeast-1", Failover)],
            ),
            (
                "3R: evacuate a reader",
                3,
                vec!["ap-southeast-1"],
                vec![],
                "us-east-1",
                false,
                evac.clone(),
                vec![invert("ap-southeast-1")],
            ),
            ("3R: nothing evacuated, nothing inverted", 3, vec![], vec![], "us-east-1", false, evac.clone(), vec![]),
            (
                "3R: manual inversion of an active region is left alone",
                3,
                vec![],
                vec!["eu-west-1"],
                "us-east-1",
                false,
                evac.clone(),
                vec![],
            ),
            (
                "2R: failback restores the check, writer stays",
                2,
                vec![],
                vec!["us-east-1"],
                "eu-west-1",
                false,
                failback("us-east-1", false),
                vec![restore("us-east-1")],
            ),
            (
                "2R: failback with writer restore",
                2,
                vec![],
                vec!["us-east-1"],
                "eu-west-1",
                false,
                failback("us-east-1", true),
                vec![restore("us-east-1"), move_writer("eu-west-1", "us-east-1", Switchover)],
            ),
            ("3R: failback already done", 3, vec![], vec![], "us-east-1", false, failback("us-east-1", true), vec![]),
            (
                "3R: failback while another region stays evacuated",
                3,
                vec!["eu-west-1"],
                vec!["us-east-1", "eu-west-1"],
                "ap-southeast-1",
                false,
                failback("us-east-1", false),
                vec![restore("us-east-1")],
            ),
        ];
        for (what, n, evacuated, inverted, writer, in_progress, options, expected) in cases {
            let seen = observed(n, &inverted, writer, in_progress);
            let got = plan(&topology(n), &desired(&evacuated), &seen, &options);
            assert_eq!(got.actions, expected, "{what}");

            // The same table with the ARC backend: a forced-unhealthy check is a control that is
            // Off, inverting is turning Off, restoring is turning On; the writer moves the same.
            let arc_seen = Observed { health_checks: Vec::new(), routing_controls: controls(&seen), ..seen };
            let arc_expected: Vec<Action> = expected.iter().map(as_arc).collect();
            let got = plan(&topology(n), &desired(&evacuated), &arc_seen, &options);
            assert_eq!(got.actions, arc_expected, "{what} (arc)");
        }
    }

    fn control_arn(region: &str) -> String {
        format!("arn:aws:route53-recovery-control::123456789012:controlpanel/p/routingcontrol/rc-{region}")
    }

    fn controls(seen: &Observed) -> Vec<ObservedRoutingControl> {
        seen.health_checks
            .iter()
            .map(|c| ObservedRoutingControl {
                region: c.region.clone(),
                routing_control_arn: control_arn(&c.region),
                on: c.inverted.map(|forced| !forced),
            })
            .collect()
    }

    fn as_arc(action: &Action) -> Action {
        match action {
            Action::InvertHealthCheck { region, .. } => Action::SetRoutingControl {
                region: region.clone(),
                routing_control_arn: control_arn(region),
                on: false,
            },
            Action::RestoreHealthCheck { region, .. } => {
                Action::SetRoutingControl { region: region.clone(), routing_control_arn: control_arn(region), on: true }
            }
            other => other.clone(),
        }
    }

    #[test]
    fn unknown_routing_control_state_is_acted_on_idempotently() {
        let seen = observed(2, &[], "eu-west-1", false);
        let mut arc_seen = Observed { health_checks: Vec::new(), routing_controls: controls(&seen), ..seen };
        arc_seen.routing_controls[0].on = None;
        let got = plan(&topology(2), &desired(&["us-east-1"]), &arc_seen, &PlanOptions::default());
        assert_eq!(got.actions, vec![as_arc(&invert("us-east-1"))]);
        assert!(got.actions[0].is_routing_control() && got.actions[0].concerns("us-east-1"));
        assert!(!got.actions[0].concerns("eu-west-1"));
    }

    #[test]
    fn unknown_health_check_state_is_acted_on_idempotently() {
        let mut seen = observed(2, &[], "eu-west-1", false);
        seen.health_checks[0].inverted = None;
        let got = plan(&topology(2), &desired(&["us-east-1"]), &seen, &PlanOptions::default());
        assert_eq!(got.actions, vec![invert("us-east-1")]);
    }

    #[test]
    fn unobservable_aurora_is_noted_not_guessed() {
        let mut seen = observed(2, &[], "us-east-1", false);
        seen.aurora = None;
        let got = plan(&topology(2), &desired(&["us-east-1"]), &seen, &PlanOptions::default());
        assert_eq!(got.actions, vec![invert("us-east-1")]);
        assert!(got.notes.iter().any(|n| n.contains("could not be observed")), "{:?}", got.notes);
    }
}

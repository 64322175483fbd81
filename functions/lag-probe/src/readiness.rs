//! Readiness rules (pure): can every active Region take 100% of the traffic right now, and can
//! each evacuated Region take its share back?
//!
//! | rule | checked for | fails when |
//! |---|---|---|
//! | `RegionUnreachable` | active Regions | the Region's DynamoDB API did not answer |
//! | `AsgMaxSizeTooSmall` | active Regions | MaxSize < ceil(total desired of the active Regions / survivors), survivors = active Regions - 1 (at least 1) |
//! | `AsgCannotTakeShare` | Evacuated Regions | MaxSize < its share once back, ceil(total desired of the active Regions / (active Regions + 1)), or no desired instance while that share is above 0 |
//! | `ReplicaMissing` / `ReplicaNotActive` | every cell | a Region's replica is absent, or not `ACTIVE`, in a replica's view of the table |
//! | `AuroraMemberDetached` | every cell with a cluster ARN | the cluster is not a member of the global cluster |
//! | `HealthCheckUnexpected` | every cell (backend `health_check`) | `Inverted`/`Disabled` differ from what the ledger's status implies (Evacuated = both set: failover forces the check unhealthy; Active = both clear) |
//! | `RoutingControlUnexpected` | every cell (backend `arc`) | the routing control's state differs from what the ledger's status implies (Evacuated = Off, Active = On) |
//! | `ArcClusterUnreachable` | the prober's Region (backend `arc`) | no endpoint of the ARC cluster answered: failover could not move traffic |
//!
//! A rule that could not be evaluated (its data could not be read) is listed in `not_checked`
//! with the reason; it is not a failure. `AsgCannotTakeShare` failures are listed apart, in
//! `failback_failures`: they say an evacuated Region may not fail back yet, not that the active
//! fleet is unready, so they do not count in `ok`. [`Readiness::about`] gathers everything about
//! one Region (its entry in the ledger's probe summary).

use crate::observe::{GlobalClusterView, HealthCheckFlags, TableView};
use serde::Serialize;
use shared::Topology;
use shared::capacity::GroupSizes;
use shared::ledger::RegionStatus;
use std::collections::BTreeMap;

/// One failed rule, with the Region and the numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "rule")]
pub enum Rule {
    #[error("{region} is active but unreachable: its DynamoDB API did not answer ({reason})")]
    RegionUnreachable { region: String, reason: String },
    #[error(
        "{region}: Auto Scaling group {asg} has MaxSize {max_size}, below the {required} instances it needs to carry its share if another Region fails (total desired {total_desired} over {survivors} survivor(s){})",
        if estimated.is_empty() { String::new() } else { format!("; desired capacity of {} unknown, counted as the largest known", estimated.join(", ")) }
    )]
    AsgMaxSizeTooSmall {
        region: String,
        asg: String,
        max_size: i32,
        desired: i32,
        required: i64,
        total_desired: i64,
        survivors: usize,
        /// Regions whose desired capacity could not be read and was estimated.
        estimated: Vec<String>,
    },
    #[error(
        "{region} is evacuated and cannot take back its share: Auto Scaling group {asg} has desired {desired} and MaxSize {max_size}, it needs MaxSize >= {required}{} (total desired {total_desired} of the active Regions shared by {regions_after} Regions once it is back)",
        if *required > 0 { " and at least one desired instance" } else { "" }
    )]
    AsgCannotTakeShare {
        region: String,
        asg: String,
        max_size: i32,
        desired: i32,
        /// Its share once back: ceil(total desired / Regions after the failback).
        required: i64,
        total_desired: i64,
        regions_after: usize,
    },
    #[error("{region}: no replica of the global table (seen from {seen_from})")]
    ReplicaMissing { region: String, seen_from: String },
    #[error("{region}: the global table's replica is {status}, not ACTIVE (seen from {seen_from})")]
    ReplicaNotActive { region: String, status: String, seen_from: String },
    #[error("{region}: Aurora cluster {cluster_arn} is not a member of global cluster {global_cluster_id}")]
    AuroraMemberDetached { region: String, cluster_arn: String, global_cluster_id: String },
    #[error(
        "{region}: health check {health_check_id} has Inverted={inverted} Disabled={disabled} but the ledger says the Region is {ledger_status:?} (expected both {})",
        if *expected_inverted { "set: forced unhealthy" } else { "clear" }
    )]
    HealthCheckUnexpected {
        region: String,
        health_check_id: String,
        inverted: bool,
        disabled: bool,
        expected_inverted: bool,
        ledger_status: RegionStatus,
    },
    #[error(
        "{region}: routing control {routing_control_arn} is {} but the ledger says the Region is {ledger_status:?} (expected {})",
        if *on { "On" } else { "Off" }, if *on { "Off" } else { "On" }
    )]
    RoutingControlUnexpected { region: String, routing_control_arn: String, on: bool, ledger_status: RegionStatus },
    #[error("no endpoint of the ARC cluster answered from {region}: failover could not change routing ({reason})")]
    ArcClusterUnreachable { region: String, reason: String },
}

impl Rule {
    pub fn name(&self) -> &'static str {
        match self {
            Rule::RegionUnreachable { .. } => "RegionUnreachable",
            Rule::AsgMaxSizeTooSmall { .. } => "AsgMaxSizeTooSmall",
            Rule::AsgCannotTakeShare { .. } => "AsgCannotTakeShare",
            Rule::ReplicaMissing { .. } => "ReplicaMissing",
            Rule::ReplicaNotActive { .. } => "ReplicaNotActive",
            Rule::AuroraMemberDetached { .. } => "AuroraMemberDetached",
            Rule::HealthCheckUnexpected { .. } => "HealthCheckUnexpected",
            Rule::RoutingControlUnexpected { .. } => "RoutingControlUnexpected",
            Rule::ArcClusterUnreachable { .. } => "ArcClusterUnreachable",
        }
    }

    pub fn region(&self) -> &str {
        match self {
            Rule::RegionUnreachable { region, .. }
            | Rule::AsgMaxSizeTooSmall { region, .. }
            | Rule::AsgCannotTakeShare { region, .. }
            | Rule::ReplicaMissing { region, .. }
            | Rule::ReplicaNotActive { region, .. }
            | Rule::AuroraMemberDetached { region, .. }
            | Rule::HealthCheckUnexpected { region, .. }
            | Rule::RoutingControlUnexpected { region, .. }
            | Rule::ArcClusterUnreachable { region, .. } => region,
        }
    }
}

/// A failed rule as reported: the rule's fields plus a sentence naming the Region and numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    #[serde(flatten)]
    pub rule: Rule,
    pub message: String,
}

/// A rule that could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotChecked {
    pub rule: &'static str,
    pub region: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    /// No rule about the active fleet failed.
    pub ok: bool,
    pub failures: Vec<Failure>,
    /// Rules about Evacuated Regions taking their share back (not part of `ok`).
    pub failback_failures: Vec<Failure>,
    pub not_checked: Vec<NotChecked>,
    /// Each Region's RTO bound against `rto_objective_seconds` ([`crate::rto`]; not part of `ok`).
    pub rto: Vec<crate::rto::RtoBound>,
}

impl Readiness {
    /// Every rule about `region` that failed or could not be checked, one sentence each (empty:
    /// every rule about it passed).
    pub fn about(&self, region: &str) -> Vec<String> {
        let failed = self.failures.iter().chain(&self.failback_failures).filter(|f| f.rule.region() == region);
        let not_checked = self.not_checked.iter().filter(|n| n.region == region);
        failed
            .map(|f| f.message.clone())
            .chain(not_checked.map(|n| format!("{} could not be checked for {region}: {}", n.rule, n.reason)))
            .collect()
    }
}

/// Everything the rules look at. `Err` values say why something could not be read.
pub struct Observed<'a> {
    pub topology: &'a Topology,
    /// Every cell's status in the ledger.
    pub statuses: &'a BTreeMap<String, RegionStatus>,
    /// Probed Regions (active and evacuated) whose DynamoDB API did not answer, with the error.
    pub unreachable: &'a BTreeMap<String, String>,
    /// Each reachable Region's view of the table (`Ok(None)`: no table there).
    pub tables: &'a BTreeMap<String, Result<Option<TableView>, String>>,
    /// Each reachable Region's group sizes.
    pub groups: &'a BTreeMap<String, Result<GroupSizes, String>>,
    /// The global cluster, when the topology has one.
    pub aurora: Option<&'a Result<GlobalClusterView, String>>,
    /// Every cell's health-check flags (backend `health_check`).
    pub health_checks: &'a BTreeMap<String, Result<HealthCheckFlags, String>>,
    /// Backend `arc`: every cell's routing control On, by Region, as the first cluster endpoint
    /// that answered read it (`Err`: none answered), and the Region the probe ran in.
    pub routing_controls: Option<RoutingRead<'a>>,
}

/// What the ARC cluster answered the prober (backend `arc`).
#[derive(Debug, Clone, Copy)]
pub enum RoutingRead<'a> {
    /// Each cell's control On, by Region.
    Read(&'a BTreeMap<String, bool>),
    /// No endpoint answered the prober in `prober`.
    ClusterUnreachable { prober: &'a str, reason: &'a str },
    /// The states cannot be judged (e.g. the ledger's statuses are unknown).
    Unjudged(&'a str),
}

/// Every readiness rule applied to what the probe observed, rule family by rule family.
pub fn evaluate(o: &Observed<'_>) -> Readiness {
    let mut v = Verdicts::default();
    let active: Vec<&str> = o.topology.regions().filter(|r| o.status(r) == RegionStatus::Active).collect();
    check_reachable(o, &active, &mut v);
    let total_desired = check_capacity(o, &active, &mut v);
    check_failback_capacity(o, &active, total_desired, &mut v);
    check_replicas(o, &mut v);
    check_aurora(o, &mut v);
    match o.topology.arc() {
        Some(arc) => check_routing_controls(o, arc, &mut v),
        None => check_health_checks(o, &mut v),
    }
    v.readiness()
}

impl Observed<'_> {
    /// A cell's status in the ledger (Active when it has none).
    fn status(&self, region: &str) -> RegionStatus {
        self.statuses.get(region).copied().unwrap_or(RegionStatus::Active)
    }
}

/// The rules' findings so far: what failed now, what would fail a failback, what could not be judged.
#[derive(Default)]
struct Verdicts {
    failures: Vec<Rule>,
    failback_failures: Vec<Rule>,
    not_checked: Vec<NotChecked>,
}

impl Verdicts {
    fn skip(&mut self, rule: &'static str, region: &str, reason: impl Into<String>) {
        self.not_checked.push(NotChecked { rule, region: region.to_owned(), reason: reason.into() });
    }

    fn readiness(self) -> Readiness {
        let reported = |rules: Vec<Rule>| -> Vec<Failure> {
            rules.into_iter().map(|rule| Failure { message: rule.to_string(), rule }).collect()
        };
        let (failures, failback_failures) = (reported(self.failures), reported(self.failback_failures));
        Readiness {
            ok: failures.is_empty(),
            failures,
            failback_failures,
            not_checked: self.not_checked,
            rto: Vec::new(),
        }
    }
}

/// Every active Region's DynamoDB API answered the probe.
fn check_reachable(o: &Observed<'_>, active: &[&str], v: &mut Verdicts) {
    for region in active {
        if let Some(reason) = o.unreachable.get(*region) {
            v.failures.push(Rule::RegionUnreachable { region: (*region).to_owned(), reason: reason.clone() });
        }
    }
}

/// Capacity: each active Region must fit its share of the whole load with one Region fewer.
/// Returns the whole load in desired instances, as the active Regions carry it now (a group that
/// could not be read counts as the largest one read, and is named in the rule).
fn check_capacity(o: &Observed<'_>, active: &[&str], v: &mut Verdicts) -> i64 {
    let known: BTreeMap<&str, GroupSizes> = active
        .iter()
        .filter_map(|r| match o.groups.get(*r) {
            Some(Ok(sizes)) => Some((*r, *sizes)),
            _ => None,
        })
        .collect();
    let largest_known = known.values().map(|s| i64::from(s.desired.max(0))).max().unwrap_or(0);
    let estimated: Vec<String> = active.iter().filter(|r| !known.contains_key(**r)).map(|r| (*r).to_owned()).collect();
    let total_desired: i64 =
        known.values().map(|s| i64::from(s.desired.max(0))).sum::<i64>() + largest_known * estimated.len() as i64;
    let survivors = active.len().saturating_sub(1).max(1);
    let required = (total_desired + survivors as i64 - 1) / survivors as i64;
    for region in active {
        let Some(cell) = o.topology.cell(region) else { continue };
        match o.groups.get(*region) {
            Some(Ok(sizes)) => {
                if i64::from(sizes.max) < required {
                    v.failures.push(Rule::AsgMaxSizeTooSmall {
                        region: (*region).to_owned(),
                        asg: cell.auto_scaling_group.clone(),
                        max_size: sizes.max,
                        desired: sizes.desired,
                        required,
                        total_desired,
                        survivors,
                        estimated: estimated.clone(),
                    });
                }
            }
            Some(Err(reason)) => v.skip("AsgMaxSizeTooSmall", region, reason.clone()),
            None => v.skip("AsgMaxSizeTooSmall", region, "not read: the Region is unreachable"),
        }
    }
    total_desired
}

/// Failback capacity: an evacuated Region must be able to take back its share of what the
/// active Regions carry now (they carry the whole load while it is out).
fn check_failback_capacity(o: &Observed<'_>, active: &[&str], total_desired: i64, v: &mut Verdicts) {
    let regions_after = active.len() + 1;
    let share = (total_desired + regions_after as i64 - 1) / regions_after as i64;
    for region in o.topology.regions().filter(|r| o.status(r) == RegionStatus::Evacuated) {
        let Some(cell) = o.topology.cell(region) else { continue };
        match o.groups.get(region) {
            Some(Ok(sizes)) if i64::from(sizes.max) < share || (share > 0 && sizes.desired < 1) => {
                v.failback_failures.push(Rule::AsgCannotTakeShare {
                    region: region.to_owned(),
                    asg: cell.auto_scaling_group.clone(),
                    max_size: sizes.max,
                    desired: sizes.desired,
                    required: share,
                    total_desired,
                    regions_after,
                })
            }
            Some(Ok(_)) => {}
            Some(Err(reason)) => v.skip("AsgCannotTakeShare", region, reason.clone()),
            None => v.skip("AsgCannotTakeShare", region, "not read: the Region is unreachable"),
        }
    }
}

/// Replicas: every cell's replica, as seen by itself and by every other readable view; the
/// first view that finds a problem names it.
fn check_replicas(o: &Observed<'_>, v: &mut Verdicts) {
    for region in o.topology.regions() {
        let mut verdict: Option<Rule> = None;
        let mut seen = false;
        for (view_region, view) in o.tables {
            let Ok(view) = view else { continue };
            let found = if view_region == region {
                match view {
                    None => Some(Rule::ReplicaMissing { region: region.to_owned(), seen_from: region.to_owned() }),
                    Some(t) if !matches!(t.status.as_str(), "ACTIVE" | "UPDATING") => Some(Rule::ReplicaNotActive {
                        region: region.to_owned(),
                        status: t.status.clone(),
                        seen_from: region.to_owned(),
                    }),
                    Some(_) => None,
                }
            } else {
                // A view without a table says nothing about other Regions.
                let Some(t) = view else { continue };
                match t.replicas.iter().find(|(r, _)| r == region) {
                    None => Some(Rule::ReplicaMissing { region: region.to_owned(), seen_from: view_region.clone() }),
                    Some((_, s)) if s != "ACTIVE" => Some(Rule::ReplicaNotActive {
                        region: region.to_owned(),
                        status: s.clone(),
                        seen_from: view_region.clone(),
                    }),
                    Some(_) => None,
                }
            };
            seen = true;
            if verdict.is_none() {
                verdict = found;
            }
        }
        match verdict {
            Some(rule) => v.failures.push(rule),
            None if !seen => {
                v.skip("ReplicaNotActive", region, "no reachable Region's view of the global table could be read")
            }
            None => {}
        }
    }
}

/// Aurora membership: every cell's cluster is a member of the global cluster.
fn check_aurora(o: &Observed<'_>, v: &mut Verdicts) {
    let (Some(aurora_topology), Some(aurora)) = (&o.topology.aurora, o.aurora) else { return };
    for cell in &o.topology.cells {
        let Some(arn) = &cell.aurora_cluster_arn else { continue };
        match aurora {
            Ok(view) => {
                if !view.members.iter().any(|m| &m.cluster_arn == arn) {
                    v.failures.push(Rule::AuroraMemberDetached {
                        region: cell.region.clone(),
                        cluster_arn: arn.clone(),
                        global_cluster_id: aurora_topology.global_cluster_id.clone(),
                    });
                }
            }
            Err(reason) => v.skip("AuroraMemberDetached", &cell.region, reason.clone()),
        }
    }
}

/// Routing controls against the ledger (backend `arc`); the health checks are then of type
/// RECOVERY_CONTROL and follow the controls, so their flags say nothing.
fn check_routing_controls(o: &Observed<'_>, arc: &shared::topology::ArcRouting, v: &mut Verdicts) {
    let Some(read) = o.routing_controls else { return };
    match read {
        RoutingRead::ClusterUnreachable { prober, reason } => {
            v.failures.push(Rule::ArcClusterUnreachable { region: prober.to_owned(), reason: reason.to_owned() });
            for cell in &o.topology.cells {
                v.skip("RoutingControlUnexpected", &cell.region, format!("no ARC cluster endpoint answered: {reason}"));
            }
        }
        RoutingRead::Unjudged(reason) => {
            for cell in &o.topology.cells {
                v.skip("RoutingControlUnexpected", &cell.region, reason);
            }
        }
        RoutingRead::Read(on) => {
            for cell in &o.topology.cells {
                let ledger_status = o.status(&cell.region);
                let Some(arn) = arc.routing_controls.get(&cell.region) else { continue };
                match on.get(&cell.region) {
                    Some(on) if *on != (ledger_status == RegionStatus::Active) => {
                        v.failures.push(Rule::RoutingControlUnexpected {
                            region: cell.region.clone(),
                            routing_control_arn: arn.clone(),
                            on: *on,
                            ledger_status,
                        })
                    }
                    Some(_) => {}
                    None => v.skip("RoutingControlUnexpected", &cell.region, "not in the control panel"),
                }
            }
        }
    }
}

/// Health checks against the ledger (backend `health_check`): forced unhealthy exactly for the
/// evacuated Regions.
fn check_health_checks(o: &Observed<'_>, v: &mut Verdicts) {
    for cell in &o.topology.cells {
        let ledger_status = o.status(&cell.region);
        let expected_inverted = ledger_status == RegionStatus::Evacuated;
        match o.health_checks.get(&cell.region) {
            Some(Ok(flags)) if flags.inverted != expected_inverted || flags.disabled != expected_inverted => {
                v.failures.push(Rule::HealthCheckUnexpected {
                    region: cell.region.clone(),
                    health_check_id: cell.health_check_id.clone(),
                    inverted: flags.inverted,
                    disabled: flags.disabled,
                    expected_inverted,
                    ledger_status,
                })
            }
            Some(Ok(_)) => {}
            Some(Err(reason)) => v.skip("HealthCheckUnexpected", &cell.region, reason.clone()),
            None => v.skip("HealthCheckUnexpected", &cell.region, "not read"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canary::{KeySchema, KeyType};
    use crate::observe::GlobalMember;

    const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

    fn arn(r: &str) -> String {
        format!("arn:aws:rds:{r}:123456789012:cluster:db-{r}")
    }

    fn topology() -> Topology {
        let cells: Vec<_> = REGIONS
            .iter()
            .map(|r| {
                serde_json::json!({"region": r, "health_check_id": format!("hc-{r}"), "auto_scaling_group": format!("web-{r}"),
                    "aurora_cluster_arn": arn(r), "alarms": [format!("alarm-{r}")]})
            })
            .collect();
        Topology::from_json(
            &serde_json::json!({"name": "t", "cells": cells, "routing": {"hosted_zone_id": "Z", "record_name": "a.example.com"},
                "global_table": "T1x", "aurora": {"global_cluster_id": "g"}, "ledger_table": "L1x", "rpo_budget_ms": 1000})
            .to_string(),
        )
        .expect("topology")
    }

    /// A healthy world: 3 active Regions, desired 4 each, MaxSize 6 (needs ceil(12 / 2) = 6).
    struct World {
        topology: Topology,
        statuses: BTreeMap<String, RegionStatus>,
        unreachable: BTreeMap<String, String>,
        tables: BTreeMap<String, Result<Option<TableView>, String>>,
        groups: BTreeMap<String, Result<GroupSizes, String>>,
        aurora: Result<GlobalClusterView, String>,
        health_checks: BTreeMap<String, Result<HealthCheckFlags, String>>,
        routing_controls: Option<Result<BTreeMap<String, bool>, String>>,
    }

    impl World {
        fn healthy() -> Self {
            let view = |me: &str| {
                Ok(Some(TableView {
                    status: "ACTIVE".into(),
                    key_schema: Ok(KeySchema {
                        partition_key: "pk".into(),
                        partition_type: KeyType::S,
                        sort_key: None,
                    }),
                    replicas: REGIONS.iter().filter(|r| **r != me).map(|r| (r.to_string(), "ACTIVE".into())).collect(),
                }))
            };
            Self {
                topology: topology(),
                statuses: REGIONS.iter().map(|r| (r.to_string(), RegionStatus::Active)).collect(),
                unreachable: BTreeMap::new(),
                tables: REGIONS.iter().map(|r| (r.to_string(), view(r))).collect(),
                groups: REGIONS
                    .iter()
                    .map(|r| (r.to_string(), Ok(GroupSizes { min: 2, desired: 4, max: 6 })))
                    .collect(),
                aurora: Ok(GlobalClusterView {
                    status: Some("available".into()),
                    members: REGIONS
                        .iter()
                        .enumerate()
                        .map(|(i, r)| GlobalMember {
                            cluster_arn: arn(r),
                            region: Some(r.to_string()),
                            is_writer: i == 0,
                            synchronization_status: None,
                        })
                        .collect(),
                    failover: None,
                }),
                health_checks: REGIONS
                    .iter()
                    .map(|r| (r.to_string(), Ok(HealthCheckFlags { inverted: false, disabled: false })))
                    .collect(),
                routing_controls: None,
            }
        }

        /// The healthy world routed by ARC: every control On.
        fn healthy_arc() -> Self {
            let mut w = Self::healthy();
            let mut topology = serde_json::to_value(&w.topology).expect("topology JSON");
            let panel = "arn:aws:route53-recovery-control::123456789012:controlpanel/p";
            topology["routing"]["backend"] = "arc".into();
            topology["routing"]["arc"] = serde_json::json!({
                "cluster_arn": "arn:aws:route53-recovery-control::123456789012:cluster/c",
                "cluster_endpoints": [{"region": "us-west-2", "url": "https://c.example.com/v1"}],
                "control_panel_arn": panel,
                "routing_controls": REGIONS.iter().map(|r| (r.to_string(), format!("{panel}/routingcontrol/rc-{r}")))
                    .collect::<BTreeMap<_, _>>(),
                "safety_rule": {"arn": format!("{panel}/safetyrule/s"), "at_least": 1}
            });
            w.topology = Topology::from_json(&topology.to_string()).expect("arc topology");
            w.routing_controls = Some(Ok(REGIONS.iter().map(|r| (r.to_string(), true)).collect()));
            // RECOVERY_CONTROL checks are never inverted: their flags must not be judged.
            w.health_checks.insert("us-east-1".into(), Ok(HealthCheckFlags { inverted: true, disabled: true }));
            w
        }

        fn evaluate(&self) -> Readiness {
            evaluate(&Observed {
                topology: &self.topology,
                statuses: &self.statuses,
                unreachable: &self.unreachable,
                tables: &self.tables,
                groups: &self.groups,
                aurora: Some(&self.aurora),
                health_checks: &self.health_checks,
                routing_controls: self.routing_controls.as_ref().map(|r| match r {
                    Ok(on) => RoutingRead::Read(on),
                    Err(reason) => RoutingRead::ClusterUnreachable { prober: "eu-west-1", reason },
                }),
            })
        }
    }

    fn names(r: &Readiness) -> Vec<(&'static str, String)> {
        r.failures.iter().map(|f| (f.rule.name(), f.rule.region().to_owned())).collect()
    }

    #[test]
    fn a_healthy_world_is_ready() {
        let r = World::healthy().evaluate();
        assert!(r.ok, "{:?}", r.failures);
        assert!(r.failback_failures.is_empty(), "{:?}", r.failback_failures);
        assert!(r.not_checked.is_empty(), "{:?}", r.not_checked);
        assert!(REGIONS.iter().all(|region| r.about(region).is_empty()));
    }

    /// us-east-1 evacuated as failover leaves it (health check inverted and disabled), the two
    /// survivors at desired 4 with room for everything (MaxSize 12).
    fn us_east_1_evacuated() -> World {
        let mut w = World::healthy();
        w.statuses.insert("us-east-1".into(), RegionStatus::Evacuated);
        w.health_checks.insert("us-east-1".into(), Ok(HealthCheckFlags { inverted: true, disabled: true }));
        w.groups.iter_mut().for_each(|(_, g)| *g = Ok(GroupSizes { min: 1, desired: 4, max: 12 }));
        w
    }

    #[test]
    fn an_evacuated_region_that_can_take_its_share_back_is_ready_for_failback() {
        let r = us_east_1_evacuated().evaluate();
        assert!(r.ok, "{:?}", r.failures);
        assert!(r.failback_failures.is_empty(), "{:?}", r.failback_failures);
        assert_eq!(r.about("us-east-1"), Vec::<String>::new());
    }

    #[test]
    fn an_evacuated_region_that_cannot_take_its_share_back_fails_its_failback_not_the_fleet() {
        // The survivors carry 4 + 4: once back, us-east-1's share is ceil(8 / 3) = 3.
        for (sizes, why) in [
            (GroupSizes { min: 1, desired: 2, max: 2 }, "MaxSize 2"),
            (GroupSizes { min: 0, desired: 0, max: 12 }, "desired 0"),
        ] {
            let mut w = us_east_1_evacuated();
            w.groups.insert("us-east-1".into(), Ok(sizes));
            let r = w.evaluate();
            assert!(r.ok, "the active fleet is unaffected: {:?}", r.failures);
            let [failure] = r.failback_failures.as_slice() else { panic!("{:?}", r.failback_failures) };
            assert!(
                matches!(&failure.rule, Rule::AsgCannotTakeShare { region, required: 3, total_desired: 8, regions_after: 3, .. } if region == "us-east-1"),
                "{:?}",
                failure.rule
            );
            assert!(failure.message.contains(why) && failure.message.contains("web-us-east-1"), "{}", failure.message);
            assert_eq!(r.about("us-east-1"), std::slice::from_ref(&failure.message));
            assert!(r.about("eu-west-1").is_empty());
        }

        // Its group not readable: not checked, and so not ready.
        let mut w = us_east_1_evacuated();
        w.groups.insert("us-east-1".into(), Err("DescribeAutoScalingGroups in us-east-1 failed".into()));
        let r = w.evaluate();
        assert!(r.failback_failures.is_empty());
        let about = r.about("us-east-1");
        assert_eq!(about.len(), 1, "{about:?}");
        assert!(about[0].starts_with("AsgCannotTakeShare could not be checked for us-east-1"), "{about:?}");
    }

    #[test]
    fn an_evacuated_region_is_not_held_to_the_active_only_rules() {
        // Unreachable and its group unread: no RegionUnreachable, no AsgMaxSizeTooSmall for it.
        let mut w = us_east_1_evacuated();
        w.unreachable.insert("us-east-1".into(), "503".into());
        w.tables.remove("us-east-1");
        w.groups.remove("us-east-1");
        let r = w.evaluate();
        assert!(r.ok, "{:?}", r.failures);
        assert!(r.not_checked.iter().any(|n| n.rule == "AsgCannotTakeShare" && n.region == "us-east-1"));
        assert!(!r.not_checked.iter().any(|n| n.rule == "AsgMaxSizeTooSmall" && n.region == "us-east-1"));
    }

    #[test]
    fn a_rule_about_a_region_counts_against_that_region_only() {
        let mut w = World::healthy();
        if let Some(Ok(Some(view))) = w.tables.get_mut("us-east-1") {
            view.replicas = vec![("eu-west-1".into(), "ACTIVE".into()), ("ap-southeast-1".into(), "CREATING".into())];
        }
        w.health_checks.insert("eu-west-1".into(), Err("GetHealthCheck failed".into()));
        let r = w.evaluate();
        assert!(r.about("us-east-1").is_empty(), "seen from us-east-1 is not about us-east-1");
        let ap = r.about("ap-southeast-1");
        assert!(ap.len() == 1 && ap[0].contains("CREATING"), "{ap:?}");
        assert_eq!(
            r.about("eu-west-1"),
            ["HealthCheckUnexpected could not be checked for eu-west-1: GetHealthCheck failed"]
        );
    }

    #[test]
    fn a_too_small_max_size_is_named_with_the_numbers() {
        let mut w = World::healthy();
        w.groups.insert("eu-west-1".into(), Ok(GroupSizes { min: 2, desired: 4, max: 5 }));
        let r = w.evaluate();
        assert_eq!(names(&r), [("AsgMaxSizeTooSmall", "eu-west-1".to_owned())]);
        let f = &r.failures[0];
        assert!(
            matches!(&f.rule, Rule::AsgMaxSizeTooSmall { max_size: 5, required: 6, total_desired: 12, survivors: 2, asg, .. } if asg == "web-eu-west-1"),
            "{:?}",
            f.rule
        );
        assert!(
            f.message.contains("eu-west-1") && f.message.contains("MaxSize 5") && f.message.contains("6"),
            "{}",
            f.message
        );
        let json = serde_json::to_value(f).expect("json");
        assert_eq!(json["rule"], "AsgMaxSizeTooSmall");
        assert_eq!(json["required"], 6);
    }

    #[test]
    fn capacity_counts_only_active_regions_and_estimates_unknown_ones() {
        // us-east-1 evacuated: 2 active Regions carrying 4 + 4; each must hold all 8.
        let mut w = World::healthy();
        w.statuses.insert("us-east-1".into(), RegionStatus::Evacuated);
        w.health_checks.insert("us-east-1".into(), Ok(HealthCheckFlags { inverted: true, disabled: true }));
        let r = w.evaluate();
        let required: Vec<i64> = r
            .failures
            .iter()
            .filter_map(|f| match f.rule {
                Rule::AsgMaxSizeTooSmall { required, .. } => Some(required),
                _ => None,
            })
            .collect();
        assert_eq!(required, [8, 8]);

        // ap-southeast-1 unreachable: its desired counts as the largest known (4).
        let mut w = World::healthy();
        w.groups.remove("ap-southeast-1");
        w.unreachable.insert("ap-southeast-1".into(), "503".into());
        let r = w.evaluate();
        assert_eq!(names(&r), [("RegionUnreachable", "ap-southeast-1".to_owned())]);
        assert!(r.not_checked.iter().any(|n| n.rule == "AsgMaxSizeTooSmall" && n.region == "ap-southeast-1"));
    }

    #[test]
    fn a_creating_replica_is_named() {
        let mut w = World::healthy();
        if let Some(Ok(Some(view))) = w.tables.get_mut("us-east-1") {
            view.replicas = vec![("eu-west-1".into(), "ACTIVE".into()), ("ap-southeast-1".into(), "CREATING".into())];
        }
        let r = w.evaluate();
        assert_eq!(names(&r), [("ReplicaNotActive", "ap-southeast-1".to_owned())]);
        assert!(r.failures[0].message.contains("CREATING"), "{}", r.failures[0].message);
    }

    #[test]
    fn a_missing_replica_is_named_from_its_own_region_or_another_view() {
        let mut w = World::healthy();
        w.tables.insert("eu-west-1".into(), Ok(None));
        let r = w.evaluate();
        assert_eq!(names(&r), [("ReplicaMissing", "eu-west-1".to_owned())]);
    }

    #[test]
    fn a_detached_aurora_member_is_named() {
        let mut w = World::healthy();
        if let Ok(view) = &mut w.aurora {
            view.members.retain(|m| m.region.as_deref() != Some("eu-west-1"));
        }
        let r = w.evaluate();
        assert_eq!(names(&r), [("AuroraMemberDetached", "eu-west-1".to_owned())]);
        assert!(r.failures[0].message.contains(&arn("eu-west-1")));
    }

    #[test]
    fn an_unexpectedly_inverted_health_check_is_named_and_an_evacuated_one_is_expected() {
        let mut w = World::healthy();
        w.health_checks.insert("ap-southeast-1".into(), Ok(HealthCheckFlags { inverted: true, disabled: false }));
        let r = w.evaluate();
        assert_eq!(names(&r), [("HealthCheckUnexpected", "ap-southeast-1".to_owned())]);
        assert!(r.failures[0].message.contains("hc-ap-southeast-1"), "{}", r.failures[0].message);

        // Evacuated in the ledger but only inverted (an inverted failing check reports healthy):
        // also wrong.
        let mut w = World::healthy();
        w.statuses.insert("us-east-1".into(), RegionStatus::Evacuated);
        w.groups.iter_mut().for_each(|(_, g)| *g = Ok(GroupSizes { min: 1, desired: 4, max: 12 }));
        w.health_checks.insert("us-east-1".into(), Ok(HealthCheckFlags { inverted: true, disabled: false }));
        let r = w.evaluate();
        assert_eq!(names(&r), [("HealthCheckUnexpected", "us-east-1".to_owned())]);
        assert!(r.failures[0].message.contains("Inverted=true Disabled=false"), "{}", r.failures[0].message);
    }

    #[test]
    fn unreadable_data_is_not_checked_not_failed() {
        let mut w = World::healthy();
        w.aurora = Err("DescribeGlobalClusters in eu-west-1 failed".into());
        w.health_checks.insert("us-east-1".into(), Err("GetHealthCheck failed".into()));
        let r = w.evaluate();
        assert!(r.ok, "{:?}", r.failures);
        assert_eq!(r.not_checked.iter().filter(|n| n.rule == "AuroraMemberDetached").count(), 3);
        assert!(r.not_checked.iter().any(|n| n.rule == "HealthCheckUnexpected" && n.region == "us-east-1"));
    }

    #[test]
    fn with_arc_the_routing_controls_are_judged_against_the_ledger_and_the_checks_are_not() {
        let w = World::healthy_arc();
        let r = w.evaluate();
        assert!(r.ok, "{r:?}");

        // Evacuated but On; Active but Off.
        let mut w = World::healthy_arc();
        w.statuses.insert("us-east-1".into(), RegionStatus::Evacuated);
        if let Some(Ok(on)) = &mut w.routing_controls {
            on.insert("ap-southeast-1".into(), false);
        }
        let r = w.evaluate();
        // (Capacity rules also fail with one Region fewer; only routing is asserted here.)
        let rules: Vec<(&str, &str)> = r
            .failures
            .iter()
            .map(|f| (f.rule.name(), f.rule.region()))
            .filter(|(name, _)| name.starts_with("Routing"))
            .collect();
        assert_eq!(
            rules,
            [("RoutingControlUnexpected", "us-east-1"), ("RoutingControlUnexpected", "ap-southeast-1")],
            "{r:?}"
        );
        assert!(
            r.failures
                .iter()
                .any(|f| f.message.contains("is On but the ledger says the Region is Evacuated (expected Off)"))
        );

        // No endpoint answered: failover could not move traffic.
        let mut w = World::healthy_arc();
        w.routing_controls = Some(Err("five endpoints down".into()));
        let r = w.evaluate();
        assert!(!r.ok);
        assert_eq!(r.failures[0].rule.name(), "ArcClusterUnreachable");
        assert_eq!(r.failures[0].rule.region(), "eu-west-1", "the prober's Region");
        // Every cell's control is unknown: not checked, so no Region counts as ready.
        let unchecked: Vec<&str> =
            r.not_checked.iter().filter(|n| n.rule == "RoutingControlUnexpected").map(|n| n.region.as_str()).collect();
        assert_eq!(unchecked, REGIONS);

        // The ledger's statuses unknown: the controls cannot be judged, and nothing fails.
        let w = World::healthy_arc();
        let on = w.routing_controls.clone().expect("read").expect("answered");
        let r = evaluate(&Observed {
            topology: &w.topology,
            statuses: &w.statuses,
            unreachable: &w.unreachable,
            tables: &w.tables,
            groups: &w.groups,
            aurora: Some(&w.aurora),
            health_checks: &w.health_checks,
            routing_controls: Some(RoutingRead::Unjudged("the ledger's fleet status could not be read")),
        });
        assert!(r.ok && r.failures.is_empty(), "{r:?}");
        assert_eq!(r.not_checked.iter().filter(|n| n.rule == "RoutingControlUnexpected").count(), on.len());
    }
}

//! The deployment description every function reads: N >= 2 Regions ("cells") and what guards,
//! serves and stores data in each (docs/architecture.md, section 1).
//!
//! Read from one of three sources ([`crate::topology_source`]): the SSM parameter the stack writes
//! (`MULTISITE_TOPOLOGY_PARAMETER`, what the functions use on AWS), `MULTISITE_TOPOLOGY` (JSON) or
//! `MULTISITE_TOPOLOGY_FILE` (a path to a JSON file); then validated. Every problem is reported
//! with the field it is about and what to fix, all at once, so an operator fixes a bad file in one
//! pass.

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// Environment variable holding the topology as JSON.
pub const TOPOLOGY_ENV: &str = "MULTISITE_TOPOLOGY";
/// Environment variable naming a JSON file holding the topology.
pub const TOPOLOGY_FILE_ENV: &str = "MULTISITE_TOPOLOGY_FILE";
/// Environment variable naming the SSM parameter (name or ARN) holding the topology as JSON.
pub const TOPOLOGY_PARAMETER_ENV: &str = "MULTISITE_TOPOLOGY_PARAMETER";

/// The whole multi-Region deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    /// A short name for the workload, used in logs, metrics and ledger keys.
    pub name: String,
    /// The Regions that serve traffic, in failover priority order: when the Aurora writer has to
    /// leave a Region, it moves to the first surviving cell in this list.
    pub cells: Vec<Cell>,
    /// The Route 53 latency records that send users to the nearest healthy Region.
    pub routing: Routing,
    /// Name of the DynamoDB Global Table holding the application data (same name in every Region).
    pub global_table: String,
    /// The Aurora Global Database, when the workload has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aurora: Option<Aurora>,
    /// Name of the DynamoDB table (a Global Table itself) where multisite records transitions.
    pub ledger_table: String,
    /// Largest replication lag, in milliseconds, that still meets the recovery point objective.
    pub rpo_budget_ms: u64,
    /// The recovery time objective, in seconds: the longest acceptable time from a Region's failure
    /// to its users being served elsewhere. lag-probe flags a Region whose worst case, read from
    /// the deployment's configuration, exceeds it.
    #[serde(default = "default_rto_objective_seconds")]
    pub rto_objective_seconds: u64,
    /// Rules that keep failover safe.
    #[serde(default)]
    pub failover_policy: FailoverPolicy,
    /// How far the scaler may take the survivors' Auto Scaling groups.
    #[serde(default)]
    pub scaling: ScalingPolicy,
    /// Where the fleet status is decided; the first cell's Region when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbiter: Option<Arbiter>,
}

/// One Region running full production capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    /// AWS Region name, e.g. `us-east-1`.
    pub region: String,
    /// Route 53 health check guarding this Region's latency record.
    pub health_check_id: String,
    /// Auto Scaling group serving this Region's traffic.
    pub auto_scaling_group: String,
    /// ARN of this Region's member cluster of the Aurora global database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aurora_cluster_arn: Option<String>,
    /// CloudWatch alarms whose ALARM state means this Region is unhealthy: each a name, or
    /// `{"name", "region"}` naming the Region the alarm lives in (its watcher; the cell's own
    /// Region when not given).
    pub alarms: Vec<AlarmRef>,
}

/// One health alarm of a cell and the Region CloudWatch evaluates it in. Only a change of this
/// alarm, from this Region and this account, may move the cell (see `failover`'s authenticity
/// check); a JSON string is the shorthand for an alarm in the cell's own Region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlarmRef {
    pub name: String,
    /// The Region the alarm lives in; `None`: the cell's own Region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl<'de> Deserialize<'de> for AlarmRef {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            name: String,
            #[serde(default)]
            region: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Name(String),
            Full(Full),
        }
        match Form::deserialize(deserializer)
            .map_err(|_| serde::de::Error::custom("expected an alarm name or {\"name\": ..., \"region\": ...}"))?
        {
            Form::Name(name) => Ok(Self { name, region: None }),
            Form::Full(Full { name, region }) => Ok(Self { name, region }),
        }
    }
}

impl Cell {
    /// The Region `alarm` lives in.
    pub fn alarm_region<'a>(&'a self, alarm: &'a AlarmRef) -> &'a str {
        alarm.region.as_deref().unwrap_or(&self.region)
    }
}

/// Where the fleet status is decided: the one ledger replica every claim and every decision read
/// goes to, strongly consistent (a Global Table settles concurrent writes of one item by last
/// writer wins, so a conditional write on the local replica is no cross-Region lock). Best in a
/// Region that serves no traffic, so a workload Region's failure never takes the arbiter with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arbiter {
    /// The Region of the arbiter replica of `ledger_table` (the ledger needs a replica there).
    pub region: String,
}

/// The Route 53 records that route users by latency, and how failover takes a Region out of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Routing {
    pub hosted_zone_id: String,
    /// Fully qualified record name, e.g. `app.example.com`.
    pub record_name: String,
    /// How a Region leaves routing: `health_check` (the default) or `arc`.
    #[serde(default)]
    pub backend: RoutingBackend,
    /// The ARC cluster and controls; required with `backend: "arc"`, not allowed otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arc: Option<ArcRouting>,
}

/// How failover takes a Region out of routing and gives it back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingBackend {
    /// Force the Region's Route 53 health check unhealthy (`UpdateHealthCheck`, a call to Route
    /// 53's control plane in us-east-1).
    #[default]
    HealthCheck,
    /// Turn the Region's Route 53 ARC routing control Off through the ARC cluster's data plane
    /// (five Regional endpoints, any one suffices); the records' health checks are of type
    /// RECOVERY_CONTROL and follow the controls, and ARC's safety rule is enforced atomically.
    Arc,
}

/// A Route 53 ARC cluster, its control panel, one routing control per cell and the assertion
/// rule that keeps `failover_policy.min_healthy_regions` of them On.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArcRouting {
    /// `arn:aws:route53-recovery-control::<account>:cluster/<id>`.
    pub cluster_arn: String,
    /// The cluster's Regional data-plane endpoints (DescribeCluster's `ClusterEndpoints`, kept in
    /// the configuration as AWS advises: the control-config API is not needed to fail over).
    pub cluster_endpoints: Vec<ArcEndpoint>,
    /// `arn:aws:route53-recovery-control::<account>:controlpanel/<id>`.
    pub control_panel_arn: String,
    /// One routing control of that control panel per cell, by the cell's Region.
    pub routing_controls: std::collections::BTreeMap<String, String>,
    /// The assertion rule over those controls.
    pub safety_rule: ArcSafetyRule,
}

/// One Regional endpoint of an ARC cluster. Accepts AWS's own shape too
/// (`{"Region", "Endpoint"}`, as `DescribeCluster` and CloudFormation's `ClusterEndpoints` give).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArcEndpoint {
    #[serde(alias = "Region")]
    pub region: String,
    #[serde(alias = "Endpoint")]
    pub url: String,
}

/// The assertion safety rule (type ATLEAST over every cell's control) and its threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArcSafetyRule {
    /// `arn:aws:route53-recovery-control::<account>:controlpanel/<id>/safetyrule/<id>`.
    pub arn: String,
    /// The rule's threshold: at least this many controls On; must equal
    /// `failover_policy.min_healthy_regions`, so ARC and the ledger refuse the same evacuations.
    pub at_least: usize,
}

/// The parts of an ARC (`route53-recovery-control`) ARN: `arn:<partition>:route53-recovery-control::<account>:<path>`.
fn arc_arn_path(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("route53-recovery-control"), Some(""), Some(account), Some(path)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let ok = !partition.is_empty() && account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(path)
}

/// `<kind>/<id>` paths of ARC ARNs, checked segment by segment.
fn arc_path_is(path: &str, kinds: &[&str]) -> bool {
    let segments: Vec<&str> = path.split('/').collect();
    segments.len() == kinds.len() * 2
        && segments.chunks(2).zip(kinds).all(|(pair, kind)| pair[0] == *kind && !pair[1].is_empty())
}

/// The Aurora Global Database spanning the cells.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aurora {
    pub global_cluster_id: String,
}

/// Safety rules for failover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FailoverPolicy {
    /// Never evacuate a Region if fewer than this many Regions would stay active.
    pub min_healthy_regions: usize,
    /// Minimum time between two transitions of the same Region, against flapping alarms.
    pub cooldown_seconds: u64,
    /// Restore a Region automatically when its alarm returns to OK (after the gates pass).
    pub auto_failback: bool,
    /// Compute and report plans without changing anything.
    pub dry_run: bool,
    /// `required`: an alarm's evacuation waits for an operator (`multisite approve CHANGE`), or
    /// for `approval_timeout_seconds`; the pending plan is recorded in the ledger and published to
    /// `approval_topic_arn`. `none` (the default): alarms act at once.
    pub approval: ApprovalMode,
    /// With `approval: required`: act on a pending evacuation this long after it was recorded
    /// when nobody approved it (the scheduled reconcile acts). Absent: wait for an operator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_timeout_seconds: Option<u64>,
    /// The SNS topic told of each pending approval (required with `approval: required`, unused
    /// without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval_topic_arn: Option<String>,
}

/// Whether an alarm's evacuation waits for an operator.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalMode {
    #[default]
    None,
    Required,
}

impl Default for FailoverPolicy {
    fn default() -> Self {
        Self {
            min_healthy_regions: 1,
            cooldown_seconds: 300,
            auto_failback: false,
            dry_run: false,
            approval: ApprovalMode::None,
            approval_timeout_seconds: None,
            approval_topic_arn: None,
        }
    }
}

/// The parts of an SNS topic ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnsTopicArn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub name: &'a str,
}

impl<'a> SnsTopicArn<'a> {
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(6, ':');
        let (prefix, partition, service, region, account, name) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = prefix == "arn"
            && !partition.is_empty()
            && service == "sns"
            && is_region_name(region)
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && !name.is_empty()
            && name.len() <= 256
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        valid.then_some(Self { partition, region, account, name })
    }
}

/// What the scaler may do to the survivors' Auto Scaling groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScalingPolicy {
    /// Raise a survivor's MaxSize when its target does not fit under it...
    pub raise_max_size: bool,
    /// ...up to this many instances (required with `raise_max_size`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_size_ceiling: Option<i32>,
    /// Wait up to this long for the new instances to be InService after a scale-up (0: no wait).
    pub readiness_wait_seconds: u64,
    /// How often that wait polls the groups.
    pub readiness_poll_ms: u64,
}

/// The recovery time objective when the topology gives none: five minutes, a worst case that a
/// 60 s alarm, a 30 s health check, a 60 s TTL and the orchestration fit in with room to spare.
pub const DEFAULT_RTO_OBJECTIVE_SECONDS: u64 = 300;

fn default_rto_objective_seconds() -> u64 {
    DEFAULT_RTO_OBJECTIVE_SECONDS
}

/// A Lambda invocation lasts at most 15 minutes.
pub const MAX_READINESS_WAIT_SECONDS: u64 = 900;

impl Default for ScalingPolicy {
    fn default() -> Self {
        Self { raise_max_size: false, max_size_ceiling: None, readiness_wait_seconds: 0, readiness_poll_ms: 5_000 }
    }
}

/// One problem found in a topology: the field it is about and what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the field, e.g. `cells[1].region`.
    pub field: String,
    /// What is wrong and what to do about it.
    pub problem: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.problem)
    }
}

/// Why a topology could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error(
        "no topology configured: set {TOPOLOGY_PARAMETER_ENV} to the SSM parameter holding it, {TOPOLOGY_ENV} to the topology JSON or {TOPOLOGY_FILE_ENV} to the path of a JSON file"
    )]
    Missing,
    #[error("{} are all set: set only one of them", .0.join(", "))]
    Ambiguous(Vec<&'static str>),
    #[error(
        "the topology is in the SSM parameter {0} ({TOPOLOGY_PARAMETER_ENV}), which only a TopologyStore reads: set {TOPOLOGY_ENV} or {TOPOLOGY_FILE_ENV} for this program"
    )]
    InParameterStore(String),
    #[error("cannot read the topology parameter {name} (SSM GetParameter): {detail}")]
    ParameterUnreadable {
        name: String,
        /// The cause as the SDK renders it (error code and message), and what to check.
        detail: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("cannot read the topology file {path} named by {TOPOLOGY_FILE_ENV}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("topology is not valid JSON for the expected shape: at `{field}`: {message}")]
    Malformed {
        /// Path of the field where parsing failed (`.` for the document itself).
        field: String,
        message: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("topology is invalid ({} problem{}): {}", .0.len(), if .0.len() == 1 { "" } else { "s" }, join(.0))]
    Invalid(Vec<Violation>),
}

fn join(violations: &[Violation]) -> String {
    violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

impl TopologyError {
    /// The violations of an `Invalid` topology (empty for the other variants).
    pub fn violations(&self) -> &[Violation] {
        match self {
            TopologyError::Invalid(v) => v,
            _ => &[],
        }
    }
}

/// What earlier cells already claimed, for the checks that a Region, a health check and an alarm
/// belong to one cell only.
#[derive(Default)]
struct CellsSeen<'a> {
    regions: HashMap<&'a str, usize>,
    health_checks: HashMap<&'a str, usize>,
    alarms: HashMap<&'a str, String>,
}

impl Topology {
    /// Loads and validates the topology from the process environment.
    pub fn from_env() -> Result<Self, TopologyError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    /// Loads and validates the topology from `lookup` (an environment stand-in, so tests need not
    /// touch the process environment).
    /// An SSM parameter source is refused here ([`TopologyError::InParameterStore`]): reading it
    /// needs AWS clients, which [`crate::topology_source::TopologyStore`] has.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, TopologyError> {
        match crate::topology_source::TopologySource::from_lookup(lookup)? {
            crate::topology_source::TopologySource::Inline(json) => Self::from_json(&json),
            crate::topology_source::TopologySource::File(path) => Self::from_file(&path),
            crate::topology_source::TopologySource::Parameter(name) => Err(TopologyError::InParameterStore(name)),
        }
    }

    /// Reads, parses and validates a topology file.
    pub fn from_file(path: &str) -> Result<Self, TopologyError> {
        let json = std::fs::read_to_string(path)
            .map_err(|source| TopologyError::Unreadable { path: path.to_owned(), source })?;
        Self::from_json(&json)
    }

    /// Parses and validates a topology document.
    pub fn from_json(json: &str) -> Result<Self, TopologyError> {
        let de = &mut serde_json::Deserializer::from_str(json);
        let topology: Topology = serde_path_to_error::deserialize(de).map_err(|err| {
            let field = err.path().to_string();
            let source = err.into_inner();
            TopologyError::Malformed { field, message: source.to_string(), source }
        })?;
        topology.validate()?;
        Ok(topology)
    }

    /// Checks every rule and reports all violations together.
    pub fn validate(&self) -> Result<(), TopologyError> {
        let mut v = Vec::new();
        let mut bad = |field: String, problem: String| v.push(Violation { field, problem });
        self.validate_workload(&mut bad);
        let mut seen = CellsSeen::default();
        for (i, cell) in self.cells.iter().enumerate() {
            self.validate_cell(i, cell, &mut seen, &mut bad);
        }
        self.validate_routing(&mut bad);
        self.validate_data(&mut bad);
        self.validate_objectives(&mut bad);
        self.validate_failover_policy(&mut bad);
        self.validate_scaling(&mut bad);
        if v.is_empty() { Ok(()) } else { Err(TopologyError::Invalid(v)) }
    }

    /// The workload's name, and enough cells to be active-active.
    fn validate_workload(&self, bad: &mut impl FnMut(String, String)) {
        if self.name.trim().is_empty() {
            bad("name".into(), "must not be empty: name the workload (used in logs and metrics)".into());
        }
        if self.cells.len() < 2 {
            bad(
                "cells".into(),
                format!(
                    "has {} Region(s); active-active needs at least 2 cells, each a Region serving full traffic",
                    self.cells.len()
                ),
            );
        }
    }

    /// One cell's own fields, and what it must not share with an earlier cell (its Region, its
    /// health check, its alarms).
    fn validate_cell<'a>(
        &self,
        i: usize,
        cell: &'a Cell,
        seen: &mut CellsSeen<'a>,
        bad: &mut impl FnMut(String, String),
    ) {
        let at = |f: &str| format!("cells[{i}].{f}");
        if !is_region_name(&cell.region) {
            bad(
                at("region"),
                format!("`{}` is not an AWS Region name (expected e.g. `us-east-1`, `eu-west-1`)", cell.region),
            );
        }
        if let Some(first) = seen.regions.insert(cell.region.as_str(), i) {
            bad(
                at("region"),
                format!("`{}` is listed twice (also cells[{first}]); each Region is one cell", cell.region),
            );
        }
        if cell.health_check_id.trim().is_empty() {
            bad(
                at("health_check_id"),
                "must not be empty: give the Route 53 health check id of this Region's record".into(),
            );
        } else if let Some(first) = seen.health_checks.insert(cell.health_check_id.as_str(), i) {
            bad(
                at("health_check_id"),
                format!(
                    "`{}` also guards cells[{first}]; each Region needs its own health check",
                    cell.health_check_id
                ),
            );
        }
        if cell.auto_scaling_group.trim().is_empty() {
            bad(
                at("auto_scaling_group"),
                "must not be empty: give the name of this Region's Auto Scaling group".into(),
            );
        }
        if cell.alarms.is_empty() {
            bad(at("alarms"), "is empty: list at least one CloudWatch alarm that watches this Region".into());
        }
        for (j, alarm) in cell.alarms.iter().enumerate() {
            let name = alarm.name.as_str();
            if name.trim().is_empty() {
                bad(format!("cells[{i}].alarms[{j}]"), "must not be empty: give the CloudWatch alarm name".into());
            } else if let Some(owner) = seen.alarms.insert(name, cell.region.clone()) {
                bad(
                    format!("cells[{i}].alarms[{j}]"),
                    format!("alarm `{name}` is already mapped to {owner}; an alarm must watch exactly one Region"),
                );
            }
            if let Some(region) = &alarm.region {
                if !is_region_name(region) {
                    bad(
                        format!("cells[{i}].alarms[{j}].region"),
                        format!("`{region}` is not an AWS Region name: give the Region the alarm lives in"),
                    );
                }
            }
        }
        match (&self.aurora, &cell.aurora_cluster_arn) {
            (Some(_), None) => bad(
                at("aurora_cluster_arn"),
                "is missing: with `aurora` set, every cell needs the ARN of its member cluster".into(),
            ),
            (None, Some(_)) => bad(
                at("aurora_cluster_arn"),
                "is set but `aurora.global_cluster_id` is not: add the global cluster or remove the ARN".into(),
            ),
            (Some(_), Some(arn)) => match RdsClusterArn::parse(arn) {
                Some(parsed) if parsed.region != cell.region => bad(
                    at("aurora_cluster_arn"),
                    format!(
                        "is in Region {} but the cell is {}; give the member cluster of this Region",
                        parsed.region, cell.region
                    ),
                ),
                Some(_) => {}
                None => bad(
                    at("aurora_cluster_arn"),
                    format!(
                        "`{arn}` is not an Aurora cluster ARN (expected arn:aws:rds:<region>:<account>:cluster:<id>)"
                    ),
                ),
            },
            (None, None) => {}
        }
    }

    /// The Route 53 zone and record users resolve, and the ARC block when the backend is ARC.
    fn validate_routing(&self, bad: &mut impl FnMut(String, String)) {
        if self.routing.hosted_zone_id.trim().is_empty() {
            bad(
                "routing.hosted_zone_id".into(),
                "must not be empty: give the Route 53 hosted zone id holding the latency records".into(),
            );
        }
        self.validate_arc(bad);
        if self.routing.record_name.trim().is_empty() {
            bad(
                "routing.record_name".into(),
                "must not be empty: give the record name users resolve, e.g. app.example.com".into(),
            );
        }
    }

    /// The data stores: the application's Global Table, multisite's ledger, the Aurora global cluster.
    fn validate_data(&self, bad: &mut impl FnMut(String, String)) {
        if !is_table_name(&self.global_table) {
            bad(
                "global_table".into(),
                format!("`{}` is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)", self.global_table),
            );
        }
        if !is_table_name(&self.ledger_table) {
            bad(
                "ledger_table".into(),
                format!("`{}` is not a DynamoDB table name (3-255 of a-z A-Z 0-9 _ - .)", self.ledger_table),
            );
        } else if self.ledger_table == self.global_table {
            bad(
                "ledger_table".into(),
                "must differ from global_table: multisite's records must not mix with application data".into(),
            );
        }
        if let Some(aurora) = &self.aurora {
            if !is_rds_identifier(&aurora.global_cluster_id) {
                bad(
                    "aurora.global_cluster_id".into(),
                    format!(
                        "`{}` is not an RDS identifier (1-63 letters, digits or hyphens, starting with a letter)",
                        aurora.global_cluster_id
                    ),
                );
            }
        }
    }

    /// The recovery objectives the drill and the lag-probe measure against.
    fn validate_objectives(&self, bad: &mut impl FnMut(String, String)) {
        if self.rto_objective_seconds == 0 {
            bad(
                "rto_objective_seconds".into(),
                "must be positive: the longest acceptable time from a Region's failure to its users served elsewhere"
                    .into(),
            );
        }
        if self.rpo_budget_ms == 0 {
            bad(
                "rpo_budget_ms".into(),
                "must be positive: the largest acceptable replication lag in milliseconds".into(),
            );
        }
    }

    /// The failover policy: how many Regions must stay, approval mode, the arbiter's Region.
    fn validate_failover_policy(&self, bad: &mut impl FnMut(String, String)) {
        let policy = &self.failover_policy;
        if policy.min_healthy_regions == 0 {
            bad(
                "failover_policy.min_healthy_regions".into(),
                "must be at least 1: evacuating every Region would black-hole all traffic".into(),
            );
        } else if self.cells.len() >= 2 && policy.min_healthy_regions >= self.cells.len() {
            bad(
                "failover_policy.min_healthy_regions".into(),
                format!(
                    "is {} with {} cells: no Region could ever be evacuated; use at most {}",
                    policy.min_healthy_regions,
                    self.cells.len(),
                    self.cells.len() - 1
                ),
            );
        }

        match (policy.approval, policy.approval_timeout_seconds, &policy.approval_topic_arn) {
            (ApprovalMode::None, Some(_), _) => bad(
                "failover_policy.approval_timeout_seconds".into(),
                "is set but approval is not \"required\": set approval to \"required\" or remove the timeout".into(),
            ),
            (ApprovalMode::Required, _, None) => bad(
                "failover_policy.approval_topic_arn".into(),
                "is required with approval \"required\": the SNS topic (arn:<partition>:sns:<region>:<account>:<name>) \
                 told of each pending evacuation"
                    .into(),
            ),
            (ApprovalMode::Required, Some(0), _) => bad(
                "failover_policy.approval_timeout_seconds".into(),
                "must be positive (seconds before a pending evacuation acts unapproved), or absent to wait for an operator"
                    .into(),
            ),
            _ => {}
        }
        if let Some(arn) = policy.approval_topic_arn.as_ref().filter(|arn| SnsTopicArn::parse(arn).is_none()) {
            bad(
                "failover_policy.approval_topic_arn".into(),
                format!("{arn:?} is not an SNS topic ARN (arn:<partition>:sns:<region>:<account>:<name>)"),
            );
        }

        if let Some(arbiter) = &self.arbiter {
            if !is_region_name(&arbiter.region) {
                bad(
                    "arbiter.region".into(),
                    format!(
                        "`{}` is not an AWS Region name: give the Region of the ledger's arbiter replica",
                        arbiter.region
                    ),
                );
            }
        }
    }

    /// The scaler's ceiling and readiness wait.
    fn validate_scaling(&self, bad: &mut impl FnMut(String, String)) {
        let scaling = &self.scaling;
        match (scaling.raise_max_size, scaling.max_size_ceiling) {
            (true, None) => bad(
                "scaling.max_size_ceiling".into(),
                "is missing: raising MaxSize needs a ceiling, the largest MaxSize the scaler may set".into(),
            ),
            (false, Some(_)) => bad(
                "scaling.max_size_ceiling".into(),
                "only applies when `scaling.raise_max_size` is true: set it or remove the ceiling".into(),
            ),
            (_, Some(n)) if n < 1 => {
                bad("scaling.max_size_ceiling".into(), format!("is {n}: give a number of instances >= 1"))
            }
            _ => {}
        }
        if scaling.readiness_wait_seconds > MAX_READINESS_WAIT_SECONDS {
            bad(
                "scaling.readiness_wait_seconds".into(),
                format!(
                    "is {}: a Lambda invocation lasts at most {MAX_READINESS_WAIT_SECONDS} s; use 0 (no wait) to {MAX_READINESS_WAIT_SECONDS}",
                    scaling.readiness_wait_seconds
                ),
            );
        }
        if !(10..=60_000).contains(&scaling.readiness_poll_ms) {
            bad(
                "scaling.readiness_poll_ms".into(),
                format!("is {}: use 10 to 60000 milliseconds", scaling.readiness_poll_ms),
            );
        }
    }

    /// The routing backend's own rules: an `arc` block exactly when the backend is `arc`, one
    /// routing control per cell, all of the control panel, and a safety rule consistent with the
    /// failover policy.
    fn validate_arc(&self, bad: &mut impl FnMut(String, String)) {
        let arc = match (self.routing.backend, &self.routing.arc) {
            (RoutingBackend::HealthCheck, None) => return,
            (RoutingBackend::HealthCheck, Some(_)) => {
                return bad(
                    "routing.arc".into(),
                    "is set but `routing.backend` is `health_check`: set `\"backend\": \"arc\"` or remove the block"
                        .into(),
                );
            }
            (RoutingBackend::Arc, None) => {
                return bad(
                    "routing.arc".into(),
                    "is missing: `backend: arc` needs the cluster endpoints, the control panel, one routing control per \
                     cell and the safety rule"
                        .into(),
                );
            }
            (RoutingBackend::Arc, Some(arc)) => arc,
        };
        let at = |f: &str| format!("routing.arc.{f}");
        if !arc_arn_path(&arc.cluster_arn).is_some_and(|p| arc_path_is(p, &["cluster"])) {
            bad(
                at("cluster_arn"),
                format!(
                    "`{}` is not an ARC cluster ARN (arn:aws:route53-recovery-control::<account>:cluster/<id>)",
                    arc.cluster_arn
                ),
            );
        }
        if arc.cluster_endpoints.is_empty() {
            bad(
                at("cluster_endpoints"),
                "is empty: list the cluster's Regional endpoints (DescribeCluster's ClusterEndpoints, five)".into(),
            );
        }
        let mut endpoints_seen = HashSet::new();
        for (i, endpoint) in arc.cluster_endpoints.iter().enumerate() {
            if !is_region_name(&endpoint.region) {
                bad(
                    format!("routing.arc.cluster_endpoints[{i}].region"),
                    format!("`{}` is not an AWS Region name", endpoint.region),
                );
            }
            let url = endpoint.url.as_str();
            if !(url.starts_with("https://") || url.starts_with("http://")) || url.len() < 10 {
                bad(
                    format!("routing.arc.cluster_endpoints[{i}].url"),
                    format!(
                        "`{url}` is not an endpoint URL (https://<id>.route53-recovery-cluster.<region>.amazonaws.com/v1)"
                    ),
                );
            }
            if !endpoints_seen.insert(url) {
                bad(format!("routing.arc.cluster_endpoints[{i}].url"), format!("`{url}` is listed twice"));
            }
        }
        let panel = arc_arn_path(&arc.control_panel_arn).filter(|p| arc_path_is(p, &["controlpanel"]));
        if panel.is_none() {
            bad(
                at("control_panel_arn"),
                format!(
                    "`{}` is not an ARC control panel ARN (arn:aws:route53-recovery-control::<account>:controlpanel/<id>)",
                    arc.control_panel_arn
                ),
            );
        }
        // With a bad panel ARN only its shape can be checked (the panel is reported once).
        let in_panel = |path: &str, kind: &str| match panel {
            Some(panel) => path
                .strip_prefix(panel)
                .and_then(|rest| rest.strip_prefix('/'))
                .is_some_and(|rest| arc_path_is(rest, &[kind])),
            None => arc_path_is(path, &["controlpanel", kind]),
        };
        let mut controls_seen: HashMap<&str, &str> = HashMap::new();
        for cell in &self.cells {
            match arc.routing_controls.get(&cell.region) {
                None => bad(
                    at("routing_controls"),
                    format!("has no routing control for cell {}: give one per cell", cell.region),
                ),
                Some(control) => {
                    let field = format!("routing.arc.routing_controls.{}", cell.region);
                    if !arc_arn_path(control).is_some_and(|p| in_panel(p, "routingcontrol")) {
                        bad(
                            field.clone(),
                            format!(
                                "`{control}` is not a routing control of the control panel `{}` \
                                 (<control panel ARN>/routingcontrol/<id>)",
                                arc.control_panel_arn
                            ),
                        );
                    }
                    if let Some(other) = controls_seen.insert(control.as_str(), cell.region.as_str()) {
                        bad(field, format!("`{control}` also routes {other}; each cell needs its own routing control"));
                    }
                }
            }
        }
        for region in arc.routing_controls.keys() {
            if self.cell(region).is_none() {
                bad(
                    format!("routing.arc.routing_controls.{region}"),
                    format!("`{region}` is not a cell: remove it or add the cell"),
                );
            }
        }
        if !arc_arn_path(&arc.safety_rule.arn).is_some_and(|p| in_panel(p, "safetyrule")) {
            bad(
                at("safety_rule.arn"),
                format!(
                    "`{}` is not a safety rule of the control panel `{}` (<control panel ARN>/safetyrule/<id>)",
                    arc.safety_rule.arn, arc.control_panel_arn
                ),
            );
        }
        if arc.safety_rule.at_least != self.failover_policy.min_healthy_regions {
            bad(
                at("safety_rule.at_least"),
                format!(
                    "is {} but failover_policy.min_healthy_regions is {}: the assertion rule must keep exactly as many \
                     Regions On as the policy, or ARC and the ledger disagree on what may be evacuated",
                    arc.safety_rule.at_least, self.failover_policy.min_healthy_regions
                ),
            );
        }
    }

    /// The ARC routing of this deployment, when its backend is `arc`.
    pub fn arc(&self) -> Option<&ArcRouting> {
        match self.routing.backend {
            RoutingBackend::Arc => self.routing.arc.as_ref(),
            RoutingBackend::HealthCheck => None,
        }
    }

    /// The cell serving `region`.
    pub fn cell(&self, region: &str) -> Option<&Cell> {
        self.cells.iter().find(|c| c.region == region)
    }

    /// The cell an alarm watches.
    pub fn cell_for_alarm(&self, alarm_name: &str) -> Option<&Cell> {
        self.alarm(alarm_name).map(|(cell, _)| cell)
    }

    /// The cell an alarm watches and the alarm's entry.
    pub fn alarm(&self, alarm_name: &str) -> Option<(&Cell, &AlarmRef)> {
        self.cells.iter().find_map(|c| c.alarms.iter().find(|a| a.name == alarm_name).map(|a| (c, a)))
    }

    /// The Region of the ledger replica that decides the fleet status.
    pub fn arbiter_region(&self) -> &str {
        match &self.arbiter {
            Some(arbiter) => &arbiter.region,
            None => self.cells.first().map(|c| c.region.as_str()).unwrap_or_default(),
        }
    }

    /// The one Region whose functions act on a change of `alarm` (every Region may receive it,
    /// e.g. through SNS): the alarm's own Region, where it is evaluated and its events start,
    /// unless that is the watched cell itself; then the first other cell in priority order, so
    /// the failing Region never acts for itself. Static, so no read is needed to know it.
    pub fn actor_region<'a>(&'a self, cell: &'a Cell, alarm: &'a AlarmRef) -> &'a str {
        let home = cell.alarm_region(alarm);
        if home != cell.region {
            return home;
        }
        self.regions().find(|r| *r != cell.region).unwrap_or(home)
    }

    /// Every Region a function may call: the cells, the arbiter and the alarms' Regions.
    pub fn client_regions(&self) -> Vec<&str> {
        let mut regions: Vec<&str> = self.regions().collect();
        let extra = std::iter::once(self.arbiter_region())
            .chain(self.cells.iter().flat_map(|c| c.alarms.iter().map(move |a| c.alarm_region(a))));
        for region in extra {
            if !regions.contains(&region) {
                regions.push(region);
            }
        }
        regions
    }

    /// Region names in failover priority order.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.cells.iter().map(|c| c.region.as_str())
    }
}

/// The parts of an Aurora cluster ARN multisite needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdsClusterArn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub cluster_id: &'a str,
}

impl<'a> RdsClusterArn<'a> {
    /// Parses `arn:<partition>:rds:<region>:<account>:cluster:<id>`.
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(7, ':');
        let (prefix, partition, service, region, account, kind, cluster_id) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = prefix == "arn"
            && partition.starts_with("aws")
            && service == "rds"
            && is_region_name(region)
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && kind == "cluster"
            && is_rds_identifier(cluster_id);
        valid.then_some(Self { partition, region, account, cluster_id })
    }
}

/// `us-east-1`, `ap-southeast-2`, `us-gov-west-1`, `cn-north-1`, `eu-central-2`,
/// `eusc-de-east-1`, ...: the shapes of the SDK's partition table (two letters, or `eusc` for the
/// European Sovereign Cloud, then words, then a number). The provisioner's list of global-table
/// Regions is checked against this one rule.
pub fn is_region_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    let (area, rest) = match parts.as_slice() {
        [area, rest @ ..] if rest.len() >= 2 => (*area, rest),
        _ => return false,
    };
    let (number, words) = match rest.split_last() {
        Some(split) => split,
        None => return false,
    };
    ((area.len() == 2 && area.bytes().all(|b| b.is_ascii_lowercase())) || area == "eusc")
        && !number.is_empty()
        && number.bytes().all(|b| b.is_ascii_digit())
        && words.iter().all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
}

/// 3-255 characters of `[A-Za-z0-9_.-]`, as DynamoDB requires of a table name. The topology's
/// tables and the provisioner's `TableName` are checked against this one rule.
pub fn is_table_name(name: &str) -> bool {
    (3..=255).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn is_rds_identifier(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id.as_bytes()[0].is_ascii_alphabetic()
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !id.ends_with('-')
        && !id.contains("--")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid_json() -> serde_json::Value {
        serde_json::json!({
            "name": "shop",
            "cells": [
                {"region": "us-east-1", "health_check_id": "hc-use1", "auto_scaling_group": "web-use1",
                 "aurora_cluster_arn": "arn:aws:rds:us-east-1:123456789012:cluster:shop-use1", "alarms": ["shop-use1-5xx"]},
                {"region": "eu-west-1", "health_check_id": "hc-euw1", "auto_scaling_group": "web-euw1",
                 "aurora_cluster_arn": "arn:aws:rds:eu-west-1:123456789012:cluster:shop-euw1", "alarms": ["shop-euw1-5xx"]}
            ],
            "routing": {"hosted_zone_id": "Z123", "record_name": "app.example.com"},
            "global_table": "UserSessions",
            "aurora": {"global_cluster_id": "shop-global"},
            "ledger_table": "multisite-ledger",
            "rpo_budget_ms": 2000
        })
    }

    fn load(json: &serde_json::Value) -> Result<Topology, TopologyError> {
        Topology::from_json(&json.to_string())
    }

    fn fields(err: TopologyError) -> Vec<String> {
        err.violations().iter().map(|v| v.field.clone()).collect()
    }

    #[test]
    fn approval_mode_needs_an_sns_topic_and_takes_an_optional_timeout() {
        for (timeout, topic) in [
            (None, "arn:aws:sns:eu-west-1:123456789012:ops"),
            (Some(900), "arn:aws-cn:sns:cn-north-1:123456789012:o.p_s-1"),
        ] {
            let mut j = valid_json();
            j["failover_policy"] = serde_json::json!({"approval": "required", "approval_topic_arn": topic});
            if let Some(t) = timeout {
                j["failover_policy"]["approval_timeout_seconds"] = t.into();
            }
            let t = load(&j).expect("valid");
            assert_eq!(t.failover_policy.approval, ApprovalMode::Required);
            assert_eq!(t.failover_policy.approval_timeout_seconds, timeout);
        }
        // A topic without approval is allowed (a deployment names its operator topic either way).
        let mut j = valid_json();
        j["failover_policy"] = serde_json::json!({"approval_topic_arn": "arn:aws:sns:us-east-1:123456789012:ops"});
        assert_eq!(load(&j).map(|t| t.failover_policy.approval).ok(), Some(ApprovalMode::None));
        let mut j = valid_json();
        j["failover_policy"] = serde_json::json!({"approval": "sometimes"});
        assert!(matches!(load(&j), Err(TopologyError::Malformed { field, .. }) if field == "failover_policy.approval"));
        assert_eq!(
            SnsTopicArn::parse("arn:aws:sns:us-east-1:123456789012:ops").map(|t| (t.region, t.name)),
            Some(("us-east-1", "ops"))
        );
        for bad in [
            "arn:aws:sns:us-east-1:123:ops",
            "arn:aws:sns::123456789012:ops",
            "arn:aws:sns:us-east-1:123456789012:",
            "ops",
        ] {
            assert_eq!(SnsTopicArn::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn accepts_a_valid_two_region_topology_with_default_policy() {
        let t = load(&valid_json()).expect("valid");
        assert_eq!(t.regions().collect::<Vec<_>>(), ["us-east-1", "eu-west-1"]);
        assert_eq!(t.failover_policy, FailoverPolicy::default());
        assert_eq!(t.failover_policy.approval, ApprovalMode::None, "alarms act at once unless approval is required");
        assert_eq!(t.rto_objective_seconds, 300, "five minutes when the topology names no objective");
        assert_eq!(t.cell_for_alarm("shop-euw1-5xx").map(|c| c.region.as_str()), Some("eu-west-1"));
        assert!(t.cell_for_alarm("unknown").is_none());
    }

    #[test]
    fn round_trips_through_serde() {
        let t = load(&valid_json()).expect("valid");
        let again = Topology::from_json(&serde_json::to_string(&t).expect("serialize")).expect("reload");
        assert_eq!(t, again);
    }

    #[test]
    fn table_of_invalid_topologies_names_each_bad_field() {
        type Mutate = fn(&mut serde_json::Value);
        let cases: &[(&str, Mutate, &str)] = &[
            (
                "one cell",
                |j| {
                    j["cells"].as_array_mut().map(|c| c.truncate(1));
                },
                "cells",
            ),
            ("duplicate region", |j| j["cells"][1]["region"] = "us-east-1".into(), "cells[1].region"),
            ("bad region", |j| j["cells"][1]["region"] = "Europe".into(), "cells[1].region"),
            ("empty health check", |j| j["cells"][0]["health_check_id"] = "".into(), "cells[0].health_check_id"),
            (
                "shared health check",
                |j| j["cells"][1]["health_check_id"] = "hc-use1".into(),
                "cells[1].health_check_id",
            ),
            ("empty asg", |j| j["cells"][0]["auto_scaling_group"] = " ".into(), "cells[0].auto_scaling_group"),
            ("no alarms", |j| j["cells"][0]["alarms"] = serde_json::json!([]), "cells[0].alarms"),
            (
                "alarm in two regions",
                |j| j["cells"][1]["alarms"] = serde_json::json!(["shop-use1-5xx"]),
                "cells[1].alarms[0]",
            ),
            (
                "arn in wrong region",
                |j| j["cells"][1]["aurora_cluster_arn"] = "arn:aws:rds:us-east-1:123456789012:cluster:x".into(),
                "cells[1].aurora_cluster_arn",
            ),
            ("not an arn", |j| j["cells"][1]["aurora_cluster_arn"] = "shop-euw1".into(), "cells[1].aurora_cluster_arn"),
            (
                "missing arn with aurora",
                |j| {
                    j["cells"][1].as_object_mut().map(|o| o.remove("aurora_cluster_arn"));
                },
                "cells[1].aurora_cluster_arn",
            ),
            (
                "arn without aurora",
                |j| {
                    j.as_object_mut().map(|o| o.remove("aurora"));
                },
                "cells[0].aurora_cluster_arn",
            ),
            ("bad global cluster id", |j| j["aurora"]["global_cluster_id"] = "1bad".into(), "aurora.global_cluster_id"),
            ("empty zone", |j| j["routing"]["hosted_zone_id"] = "".into(), "routing.hosted_zone_id"),
            ("empty record", |j| j["routing"]["record_name"] = "".into(), "routing.record_name"),
            ("bad table", |j| j["global_table"] = "a b".into(), "global_table"),
            ("ledger is the data table", |j| j["ledger_table"] = "UserSessions".into(), "ledger_table"),
            ("zero rpo budget", |j| j["rpo_budget_ms"] = 0.into(), "rpo_budget_ms"),
            ("zero rto objective", |j| j["rto_objective_seconds"] = 0.into(), "rto_objective_seconds"),
            (
                "zero min healthy",
                |j| j["failover_policy"] = serde_json::json!({"min_healthy_regions": 0}),
                "failover_policy.min_healthy_regions",
            ),
            (
                "approval without a topic",
                |j| j["failover_policy"] = serde_json::json!({"approval": "required"}),
                "failover_policy.approval_topic_arn",
            ),
            (
                "approval topic not an SNS ARN",
                |j| {
                    j["failover_policy"] = serde_json::json!({"approval": "required",
                        "approval_topic_arn": "arn:aws:sqs:us-east-1:123456789012:q"})
                },
                "failover_policy.approval_topic_arn",
            ),
            (
                "approval timeout zero",
                |j| {
                    j["failover_policy"] = serde_json::json!({"approval": "required", "approval_timeout_seconds": 0,
                        "approval_topic_arn": "arn:aws:sns:us-east-1:123456789012:ops"})
                },
                "failover_policy.approval_timeout_seconds",
            ),
            (
                "approval timeout without approval",
                |j| j["failover_policy"] = serde_json::json!({"approval_timeout_seconds": 60}),
                "failover_policy.approval_timeout_seconds",
            ),
            (
                "min healthy = cells",
                |j| j["failover_policy"] = serde_json::json!({"min_healthy_regions": 2}),
                "failover_policy.min_healthy_regions",
            ),
            ("empty name", |j| j["name"] = "".into(), "name"),
            (
                "raise max without a ceiling",
                |j| j["scaling"] = serde_json::json!({"raise_max_size": true}),
                "scaling.max_size_ceiling",
            ),
            (
                "ceiling without raise",
                |j| j["scaling"] = serde_json::json!({"max_size_ceiling": 40}),
                "scaling.max_size_ceiling",
            ),
            (
                "zero ceiling",
                |j| j["scaling"] = serde_json::json!({"raise_max_size": true, "max_size_ceiling": 0}),
                "scaling.max_size_ceiling",
            ),
            (
                "wait beyond a Lambda invocation",
                |j| j["scaling"] = serde_json::json!({"readiness_wait_seconds": 901}),
                "scaling.readiness_wait_seconds",
            ),
            (
                "poll too fast",
                |j| j["scaling"] = serde_json::json!({"readiness_poll_ms": 1}),
                "scaling.readiness_poll_ms",
            ),
        ];
        for (what, mutate, field) in cases {
            let mut json = valid_json();
            mutate(&mut json);
            let err = load(&json).expect_err(what);
            assert!(fields(err).contains(&field.to_string()), "{what}: expected a violation on {field}");
        }
    }

    #[test]
    fn reports_every_violation_at_once() {
        let mut json = valid_json();
        json["rpo_budget_ms"] = 0.into();
        json["cells"][0]["alarms"] = serde_json::json!([]);
        let err = load(&json).expect_err("invalid");
        let message = err.to_string();
        assert!(message.contains("2 problems"), "{message}");
        assert!(message.contains("rpo_budget_ms: must be positive"), "{message}");
        assert!(message.contains("cells[0].alarms: is empty"), "{message}");
    }

    #[test]
    fn malformed_json_names_the_field_path() {
        let mut json = valid_json();
        json["rpo_budget_ms"] = (-5).into();
        let err = load(&json).expect_err("negative budget");
        assert!(matches!(&err, TopologyError::Malformed { field, .. } if field == "rpo_budget_ms"), "{err}");

        let mut json = valid_json();
        json["cells"][1]["health_chek_id"] = "typo".into();
        let err = load(&json).expect_err("unknown field");
        assert!(matches!(&err, TopologyError::Malformed { field, .. } if field == "cells[1].health_chek_id"), "{err}");
        assert!(err.to_string().contains("health_chek_id"), "{err}");

        let err = Topology::from_json("{not json").expect_err("syntax");
        assert!(matches!(err, TopologyError::Malformed { .. }));
    }

    #[test]
    fn lookup_requires_exactly_one_source() {
        let none = Topology::from_lookup(|_| None).expect_err("missing");
        assert!(matches!(none, TopologyError::Missing));
        assert!(none.to_string().contains(TOPOLOGY_ENV));

        let both = Topology::from_lookup(|_| Some("x".into())).expect_err("both");
        assert!(matches!(&both, TopologyError::Ambiguous(keys) if keys.len() == 3), "{both}");

        let json = valid_json().to_string();
        let t = Topology::from_lookup(|k| (k == TOPOLOGY_ENV).then(|| json.clone())).expect("inline");
        assert_eq!(t.name, "shop");

        let missing_file =
            Topology::from_lookup(|k| (k == TOPOLOGY_FILE_ENV).then(|| "/nonexistent/topology.json".into()))
                .expect_err("unreadable");
        assert!(
            matches!(&missing_file, TopologyError::Unreadable { path, .. } if path == "/nonexistent/topology.json")
        );
    }

    #[test]
    fn region_names() {
        for ok in [
            "us-east-1",
            "eu-west-1",
            "ap-southeast-1",
            "us-gov-west-1",
            "cn-north-1",
            "eu-central-2",
            "us-isob-east-1",
            "eusc-de-east-1",
        ] {
            assert!(is_region_name(ok), "{ok}");
        }
        for bad in ["", "us", "us-east", "US-EAST-1", "us-east-x", "useast1", "us--1", "usa-east-1", "eusx-de-east-1"] {
            assert!(!is_region_name(bad), "{bad}");
        }
    }

    #[test]
    fn table_names() {
        let longest = "t".repeat(255);
        for ok in ["abc", "UserSessions", "multisite-ledger", "a.b_c-9", longest.as_str()] {
            assert!(is_table_name(ok), "{ok}");
        }
        let too_long = "t".repeat(256);
        for bad in ["", "ab", "a b", "tab/le", "t\u{e9}ble", too_long.as_str()] {
            assert!(!is_table_name(bad), "{bad}");
        }
    }

    #[test]
    fn cluster_arns() {
        let arn = RdsClusterArn::parse("arn:aws:rds:eu-west-1:123456789012:cluster:shop-euw1").expect("valid");
        assert_eq!((arn.region, arn.cluster_id, arn.account), ("eu-west-1", "shop-euw1", "123456789012"));
        assert!(RdsClusterArn::parse("arn:aws:rds:eu-west-1:123456789012:db:shop").is_none());
        assert!(RdsClusterArn::parse("arn:aws:rds:eu-west-1:12:cluster:shop").is_none());
        assert!(RdsClusterArn::parse("arn:aws:s3:::bucket").is_none());
    }

    const PANEL: &str = "arn:aws:route53-recovery-control::123456789012:controlpanel/p1";

    fn arc_json() -> serde_json::Value {
        let mut j = valid_json();
        j["routing"]["backend"] = "arc".into();
        j["routing"]["arc"] = serde_json::json!({
            "cluster_arn": "arn:aws:route53-recovery-control::123456789012:cluster/c1",
            "cluster_endpoints": [
                {"region": "us-east-1", "url": "https://c1.route53-recovery-cluster.us-east-1.amazonaws.com/v1"},
                {"Region": "us-west-2", "Endpoint": "https://c1.route53-recovery-cluster.us-west-2.amazonaws.com/v1"}
            ],
            "control_panel_arn": PANEL,
            "routing_controls": {
                "us-east-1": format!("{PANEL}/routingcontrol/rc-use1"),
                "eu-west-1": format!("{PANEL}/routingcontrol/rc-euw1")
            },
            "safety_rule": {"arn": format!("{PANEL}/safetyrule/sr1"), "at_least": 1}
        });
        j
    }

    #[test]
    fn the_routing_backend_is_health_check_unless_arc_is_named() {
        let t = load(&valid_json()).expect("valid");
        assert_eq!(t.routing.backend, RoutingBackend::HealthCheck);
        assert!(t.arc().is_none());

        let t = load(&arc_json()).expect("valid arc topology");
        let arc = t.arc().expect("arc backend");
        assert_eq!(arc.routing_controls["eu-west-1"], format!("{PANEL}/routingcontrol/rc-euw1"));
        // AWS's own endpoint shape (DescribeCluster, CloudFormation's ClusterEndpoints) is accepted.
        assert_eq!(arc.cluster_endpoints[1].region, "us-west-2");
        assert!(arc.cluster_endpoints[1].url.ends_with("us-west-2.amazonaws.com/v1"));
        let again = Topology::from_json(&serde_json::to_string(&t).expect("serialize")).expect("reload");
        assert_eq!(t, again);
    }

    #[test]
    fn table_of_invalid_arc_routings_names_each_bad_field() {
        type Mutate = fn(&mut serde_json::Value);
        let cases: &[(&str, Mutate, &str)] = &[
            ("arc block without the backend", |j| j["routing"]["backend"] = "health_check".into(), "routing.arc"),
            (
                "arc backend without the block",
                |j| {
                    j["routing"].as_object_mut().map(|o| o.remove("arc"));
                },
                "routing.arc",
            ),
            (
                "bad cluster arn",
                |j| j["routing"]["arc"]["cluster_arn"] = "cluster/c1".into(),
                "routing.arc.cluster_arn",
            ),
            (
                "no endpoints",
                |j| j["routing"]["arc"]["cluster_endpoints"] = serde_json::json!([]),
                "routing.arc.cluster_endpoints",
            ),
            (
                "endpoint without a URL scheme",
                |j| j["routing"]["arc"]["cluster_endpoints"][0]["url"] = "c1.example.com".into(),
                "routing.arc.cluster_endpoints[0].url",
            ),
            (
                "endpoint Region",
                |j| j["routing"]["arc"]["cluster_endpoints"][0]["region"] = "Virginia".into(),
                "routing.arc.cluster_endpoints[0].region",
            ),
            (
                "panel arn",
                |j| {
                    j["routing"]["arc"]["control_panel_arn"] =
                        "arn:aws:route53-recovery-control::123456789012:cluster/p1".into()
                },
                "routing.arc.control_panel_arn",
            ),
            (
                "a cell without a control",
                |j| {
                    j["routing"]["arc"]["routing_controls"].as_object_mut().map(|o| o.remove("eu-west-1"));
                },
                "routing.arc.routing_controls",
            ),
            (
                "a control of another panel",
                |j| {
                    j["routing"]["arc"]["routing_controls"]["eu-west-1"] =
                        "arn:aws:route53-recovery-control::123456789012:controlpanel/p2/routingcontrol/x".into()
                },
                "routing.arc.routing_controls.eu-west-1",
            ),
            (
                "one control for two cells",
                |j| {
                    j["routing"]["arc"]["routing_controls"]["eu-west-1"] =
                        format!("{PANEL}/routingcontrol/rc-use1").into()
                },
                "routing.arc.routing_controls.eu-west-1",
            ),
            (
                "a control for a Region that is no cell",
                |j| j["routing"]["arc"]["routing_controls"]["sa-east-1"] = format!("{PANEL}/routingcontrol/x").into(),
                "routing.arc.routing_controls.sa-east-1",
            ),
            (
                "a rule of another panel",
                |j| {
                    j["routing"]["arc"]["safety_rule"]["arn"] =
                        "arn:aws:route53-recovery-control::123456789012:controlpanel/p2/safetyrule/sr1".into()
                },
                "routing.arc.safety_rule.arn",
            ),
            (
                "a threshold the policy does not have",
                |j| j["routing"]["arc"]["safety_rule"]["at_least"] = 2.into(),
                "routing.arc.safety_rule.at_least",
            ),
        ];
        for (what, mutate, field) in cases {
            let mut j = arc_json();
            mutate(&mut j);
            let err = load(&j).expect_err(what);
            assert_eq!(fields(err), [field.to_string()], "{what}");
        }
        let mut j = arc_json();
        j["routing"]["backend"] = "dns".into();
        assert!(matches!(load(&j), Err(TopologyError::Malformed { field, .. }) if field == "routing.backend"));
    }
}

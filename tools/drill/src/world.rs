//! Builds, in the emulator, a deployment shaped like a real one: a hosted zone with a latency record
//! and a health check per Region, the Global Table (home table; its replicas come from the
//! provisioner), the ledger (a Global Table with a replica per Region, as the template's
//! LedgerTable), an Aurora global cluster with a member per Region (writer in the first), an Auto
//! Scaling group per Region, and a real CloudWatch health alarm per Region evaluated from another
//! Region. Returns the topology describing it, validated by the same code the functions use, and
//! the template.yaml parameters that deploy it. All of it as the administrator (set-up).

//! The drill's deployment: `multisite_tests::deployment`'s builder (the one the tests and benches
//! use) with what a real one has: a hosted zone with a latency record and a health check per
//! Region, the data table in the first Region (its replicas come from the provisioner), the ledger
//! (a Global Table with a replica per Region, as the template's LedgerTable, created in the
//! arbiter Region), an Aurora global cluster with a member per Region (writer in the first), an
//! Auto Scaling group per Region, and a real CloudWatch health alarm per Region evaluated from
//! another Region. Plus the drill's queries of it, as the administrator.

use crate::error::{Ctx, Result, fail};
use aws_sdk_cloudwatch::types::StateValue;
use multisite_tests::deployment::{DATA_TABLE, DataTable, Deployment, GLOBAL_CLUSTER, group_name};
use serde_json::json;
use shared::RegionalClients;
use shared::aws::GroupState;
use shared::capacity::GroupSizes;

/// Every group's sizes before the drill.
pub const BASELINE: GroupSizes = GroupSizes::new(2, 2, 8);

/// The Region where the drill creates the ledger (its replicas in every other Region) and that
/// the topology names as the arbiter (`"arbiter": {"region"}`): every fleet decision goes to that
/// replica. The last Region that no scenario alarms (`alarming`): a failing Region never takes the
/// arbiter with it, as the README advises (an arbiter in a Region that serves no alarm of the drill).
pub fn arbiter_for(regions: &[String], alarming: &[String]) -> String {
    regions.iter().rev().find(|r| !alarming.contains(r)).unwrap_or(&regions[0]).clone()
}

/// What the topology's policy says, besides the defaults.
pub struct Policy {
    pub rpo_budget_ms: u64,
    pub rto_objective_seconds: u64,
    pub cooldown_seconds: u64,
    pub min_healthy_regions: usize,
    /// The ledger's (and arbiter's) Region, see [`arbiter_for`].
    pub arbiter: String,
    /// How failover takes a Region out of routing.
    pub routing: shared::topology::RoutingBackend,
    /// Where the functions reacting to the failing Region run (its watcher).
    pub home: String,
}

/// Builds the drill's deployment in `emulator`.
pub async fn build(emulator: &multisite_tests::Emulator, regions: &[String], policy: &Policy) -> Result<Deployment> {
    let names: Vec<&str> = regions.iter().map(String::as_str).collect();
    let spec = Deployment::spec(&names)
        .with_name("user-sessions")
        .with_home(&policy.home)
        .with_arbiter(&policy.arbiter)
        .with_dns()
        .with_aurora()
        .with_groups(BASELINE)
        .with_data_table(DataTable::named(DATA_TABLE).unreplicated())
        .with_ledger_replicas()
        .with_routing(policy.routing)
        .with_rpo_budget_ms(policy.rpo_budget_ms)
        .with_rto_objective_seconds(policy.rto_objective_seconds)
        .with_failover_policy(json!({"min_healthy_regions": policy.min_healthy_regions,
            "cooldown_seconds": policy.cooldown_seconds, "auto_failback": true, "dry_run": false}))
        .with_scaling(json!({"raise_max_size": false, "readiness_wait_seconds": 0, "readiness_poll_ms": 5000}));
    spec.build(emulator).await.map_err(|e| fail(format!("building the deployment: {e}")))
}

pub async fn set_alarm(
    clients: &RegionalClients,
    region: &str,
    alarm: &str,
    state: StateValue,
    reason: &str,
) -> Result<()> {
    clients
        .region(region)?
        .cloudwatch
        .set_alarm_state()
        .alarm_name(alarm)
        .state_value(state.clone())
        .state_reason(reason)
        .send()
        .await
        .ctx(format!("SetAlarmState {alarm} {} in {region}", state.as_str()))?;
    Ok(())
}

/// (StateValue, StateReason) of an alarm (DescribeAlarms in `region`).
pub async fn alarm_state(clients: &RegionalClients, region: &str, alarm: &str) -> Result<(String, String)> {
    let out = clients
        .region(region)?
        .cloudwatch
        .describe_alarms()
        .alarm_names(alarm)
        .send()
        .await
        .ctx(format!("DescribeAlarms {alarm} in {region}"))?;
    let found = out
        .metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(alarm))
        .ok_or_else(|| fail(format!("DescribeAlarms in {region}: no alarm {alarm}")))?;
    Ok((
        found.state_value().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        found.state_reason().unwrap_or_default().to_owned(),
    ))
}

/// A Region's group: its sizes and InService instances.
pub async fn group_sizes(clients: &RegionalClients, region: &str) -> Result<GroupState> {
    Ok(shared::aws::describe_group(&clients.region(region)?.autoscaling, region, &group_name(region)).await?)
}

/// Whether a Region's health check is forced unhealthy (Inverted and Disabled, as failover sets it).
pub async fn health_check_inverted(clients: &RegionalClients, from: &str, id: &str) -> Result<bool> {
    Ok(shared::aws::health_check_flags(&clients.region(from)?.route53, from, id).await?.forced_unhealthy())
}

/// (writer Region, failover in progress) of the global cluster.
pub async fn aurora_writer(clients: &RegionalClients, from: &str) -> Result<(Option<String>, bool)> {
    let view = shared::aws::describe_global_cluster(&clients.region(from)?.rds, from, GLOBAL_CLUSTER).await?;
    let writer = view.members.into_iter().find(|m| m.is_writer).and_then(|m| m.region);
    Ok((writer, view.failover.is_some()))
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

//! Read adapters more than one function needs: one place for the SDK call, its error context and
//! the checks on the answer.

use crate::capacity::GroupSizes;
use crate::error::{AwsResultExt, Error};
use crate::topology::RdsClusterArn;
use aws_sdk_autoscaling::types::LifecycleState;
use serde::Serialize;

/// A Route 53 health check's flags (`GetHealthCheck`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HealthCheckFlags {
    pub inverted: bool,
    pub disabled: bool,
}

impl HealthCheckFlags {
    /// `Inverted` and `Disabled` together: always unhealthy, whatever the endpoint checks see (how
    /// failover takes a Region out of latency routing).
    pub fn forced_unhealthy(&self) -> bool {
        self.inverted && self.disabled
    }
}

/// Reads one health check's flags.
pub async fn health_check_flags(
    route53: &aws_sdk_route53::Client,
    region: &str,
    id: &str,
) -> Result<HealthCheckFlags, Error> {
    let out = route53.get_health_check().health_check_id(id).send().await.aws_context("GetHealthCheck", region)?;
    let config = out.health_check.and_then(|h| h.health_check_config);
    Ok(HealthCheckFlags {
        inverted: config.as_ref().and_then(|c| c.inverted).unwrap_or(false),
        disabled: config.as_ref().and_then(|c| c.disabled).unwrap_or(false),
    })
}

/// What `DescribeAutoScalingGroups` says about one group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GroupState {
    /// Flattened: the JSON stays `{min, desired, max, in_service}`.
    #[serde(flatten)]
    pub sizes: GroupSizes,
    /// Instances in the `InService` lifecycle state.
    pub in_service: usize,
}

/// Reads one Auto Scaling group by name; a missing group or missing sizes is an error naming it.
pub async fn describe_group(
    autoscaling: &aws_sdk_autoscaling::Client,
    region: &str,
    asg: &str,
) -> Result<GroupState, Error> {
    let out = autoscaling
        .describe_auto_scaling_groups()
        .auto_scaling_group_names(asg)
        .send()
        .await
        .aws_context("DescribeAutoScalingGroups", region)?;
    let group =
        out.auto_scaling_groups().iter().find(|g| g.auto_scaling_group_name() == Some(asg)).ok_or_else(|| {
            Error::Unexpected(format!(
                "Auto Scaling group `{asg}` not found in {region}: check the cell's auto_scaling_group in the topology"
            ))
        })?;
    let (Some(min), Some(desired), Some(max)) = (group.min_size(), group.desired_capacity(), group.max_size()) else {
        return Err(Error::Unexpected(format!(
            "Auto Scaling group `{asg}` in {region} was described without its sizes"
        )));
    };
    let in_service =
        group.instances().iter().filter(|i| i.lifecycle_state() == Some(&LifecycleState::InService)).count();
    Ok(GroupState { sizes: GroupSizes { min, desired, max }, in_service })
}

/// One member of the Aurora global cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GlobalMember {
    pub cluster_arn: String,
    /// From the ARN (`None` if it is not a cluster ARN).
    pub region: Option<String>,
    pub is_writer: bool,
    /// `connected` / `pending-resync` when RDS reports it.
    pub synchronization_status: Option<String>,
}

/// A global failover or switchover in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailoverInProgress {
    pub status: String,
    pub from_cluster_arn: Option<String>,
    pub to_cluster_arn: Option<String>,
    pub data_loss_allowed: Option<bool>,
}

/// The Aurora global cluster as `DescribeGlobalClusters` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GlobalClusterView {
    pub status: Option<String>,
    pub members: Vec<GlobalMember>,
    pub failover: Option<FailoverInProgress>,
}

/// `DescribeGlobalClusters` for one global cluster, from `region`'s RDS endpoint (every member
/// Region sees the whole global cluster).
pub async fn describe_global_cluster(
    rds: &aws_sdk_rds::Client,
    region: &str,
    id: &str,
) -> Result<GlobalClusterView, Error> {
    let out = rds
        .describe_global_clusters()
        .global_cluster_identifier(id)
        .send()
        .await
        .aws_context("DescribeGlobalClusters", region)?;
    let cluster = out
        .global_clusters
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.global_cluster_identifier.as_deref() == Some(id))
        .ok_or_else(|| Error::Unexpected(format!("global cluster {id} not returned by DescribeGlobalClusters")))?;
    let failover = cluster.failover_state.as_ref().and_then(|s| {
        Some(FailoverInProgress {
            status: s.status.as_ref()?.as_str().to_owned(),
            from_cluster_arn: s.from_db_cluster_arn.clone(),
            to_cluster_arn: s.to_db_cluster_arn.clone(),
            data_loss_allowed: s.is_data_loss_allowed,
        })
    });
    let members = cluster
        .global_cluster_members
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            let arn = m.db_cluster_arn?;
            Some(GlobalMember {
                region: RdsClusterArn::parse(&arn).map(|a| a.region.to_owned()),
                cluster_arn: arn,
                is_writer: m.is_writer.unwrap_or(false),
                synchronization_status: m.synchronization_status.map(|s| s.as_str().to_owned()),
            })
        })
        .collect();
    Ok(GlobalClusterView { status: cluster.status, members, failover })
}

/// An alarm's state as CloudWatch holds it now (`DescribeAlarms`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CurrentAlarm {
    pub name: String,
    pub arn: Option<String>,
    pub state: crate::alarm::AlarmState,
    /// When the alarm last changed state (`StateTransitionedTimestamp`, else
    /// `StateUpdatedTimestamp`), epoch ms: the identity of its current state change.
    pub changed_at_ms: Option<u64>,
    pub reason: String,
}

/// The current state of the named alarms in `region`, one `DescribeAlarms` call (up to 100
/// names; the topology has far fewer). Alarms that do not exist are absent from the answer.
pub async fn current_alarms(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    region: &str,
    names: &[&str],
) -> Result<Vec<CurrentAlarm>, Error> {
    use aws_sdk_cloudwatch::types::StateValue;
    let out = cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names.iter().map(|n| (*n).to_owned()).collect()))
        .alarm_types(aws_sdk_cloudwatch::types::AlarmType::MetricAlarm)
        .alarm_types(aws_sdk_cloudwatch::types::AlarmType::CompositeAlarm)
        .max_records(100)
        .send()
        .await
        .aws_context("DescribeAlarms", region)?;
    let millis = |t: Option<&aws_smithy_types::DateTime>| {
        t.and_then(|t| t.to_millis().ok()).and_then(|ms| u64::try_from(ms).ok())
    };
    let state = |v: Option<&StateValue>| match v {
        Some(StateValue::Alarm) => Some(crate::alarm::AlarmState::Alarm),
        Some(StateValue::Ok) => Some(crate::alarm::AlarmState::Ok),
        Some(StateValue::InsufficientData) => Some(crate::alarm::AlarmState::InsufficientData),
        _ => None,
    };
    // Metric and composite alarms carry the same fields under two types.
    let current = |name: Option<&str>,
                   arn: Option<&str>,
                   value: Option<&StateValue>,
                   transitioned: Option<&aws_smithy_types::DateTime>,
                   updated: Option<&aws_smithy_types::DateTime>,
                   reason: Option<&str>| {
        Some(CurrentAlarm {
            name: name?.to_owned(),
            arn: arn.map(str::to_owned),
            state: state(value)?,
            changed_at_ms: millis(transitioned).or_else(|| millis(updated)),
            reason: reason.unwrap_or_default().to_owned(),
        })
    };
    let metric = out.metric_alarms().iter().filter_map(|a| {
        current(
            a.alarm_name(),
            a.alarm_arn(),
            a.state_value(),
            a.state_transitioned_timestamp(),
            a.state_updated_timestamp(),
            a.state_reason(),
        )
    });
    let composite = out.composite_alarms().iter().filter_map(|a| {
        current(
            a.alarm_name(),
            a.alarm_arn(),
            a.state_value(),
            a.state_transitioned_timestamp(),
            a.state_updated_timestamp(),
            a.state_reason(),
        )
    });
    Ok(metric.chain(composite).collect())
}

//! Read adapters more than one function needs: one place for the SDK call, its error context and
//! the checks on the answer.

use crate::error::{AwsResultExt, Error};
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
    pub min: i32,
    pub desired: i32,
    pub max: i32,
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
    Ok(GroupState { min, desired, max, in_service })
}

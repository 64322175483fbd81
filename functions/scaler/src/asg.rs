//! Thin Auto Scaling adapters: read one group's sizes and instances, set its sizes. Every call is
//! made with the client of the group's own (surviving) Region and names operation and Region in
//! its errors.

use aws_sdk_autoscaling::Client;
use shared::capacity::GroupSizes;
use shared::{AwsResultExt, Error};

// Reading a group is shared with lag-probe and the drill; the tests below cover it for the scaler.
pub use shared::aws::{GroupState, describe_group};

/// Sets a group's MinSize, DesiredCapacity and MaxSize in one call (AWS validates them together).
pub async fn update_group(client: &Client, region: &str, asg: &str, capacity: GroupSizes) -> Result<(), Error> {
    client
        .update_auto_scaling_group()
        .auto_scaling_group_name(asg)
        .min_size(capacity.min)
        .desired_capacity(capacity.desired)
        .max_size(capacity.max)
        .send()
        .await
        .aws_context("UpdateAutoScalingGroup", region)?;
    Ok(())
}

/// One group to resize.
#[derive(Debug, Clone)]
pub struct GroupUpdate<'a> {
    pub client: &'a Client,
    pub region: &'a str,
    pub asg: &'a str,
    pub capacity: GroupSizes,
}

/// Resizes every group concurrently; one failing never stops the others. Results are in input order.
pub async fn update_all(updates: &[GroupUpdate<'_>]) -> Vec<Result<(), Error>> {
    let calls = updates.iter().map(|u| async move {
        let result = update_group(u.client, u.region, u.asg, u.capacity).await;
        match &result {
            Ok(()) => tracing::info!(region = u.region, asg = u.asg, capacity = ?u.capacity, "group resized"),
            Err(err) => tracing::error!(region = u.region, asg = u.asg, error = %err, "group not resized"),
        }
        result
    });
    futures_util::future::join_all(calls).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_autoscaling::operation::describe_auto_scaling_groups::DescribeAutoScalingGroupsOutput;
    use aws_sdk_autoscaling::operation::update_auto_scaling_group::UpdateAutoScalingGroupOutput;
    use aws_sdk_autoscaling::types::{AutoScalingGroup, Instance, LifecycleState};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::retry::RetryConfig;
    use std::time::Duration;

    fn retries() -> RetryConfig {
        RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1))
    }

    fn query_error(status: u16, kind: &str, code: &str, message: &str) -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(status).expect("status"),
            SdkBody::from(format!(
                "<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>1</RequestId></ErrorResponse>"
            )),
        )
    }

    fn throttled() -> HttpResponse {
        query_error(400, "Sender", "Throttling", "Rate exceeded")
    }

    fn group(name: &str, min: i32, desired: i32, max: i32, states: &[LifecycleState]) -> AutoScalingGroup {
        let mut builder = AutoScalingGroup::builder()
            .auto_scaling_group_name(name)
            .min_size(min)
            .desired_capacity(desired)
            .max_size(max);
        for (i, state) in states.iter().enumerate() {
            builder = builder.instances(
                Instance::builder()
                    .instance_id(format!("i-{i}"))
                    .lifecycle_state(state.clone())
                    .availability_zone("eu-west-1a")
                    .health_status("Healthy")
                    .protected_from_scale_in(false)
                    .build(),
            );
        }
        builder.build()
    }

    #[tokio::test]
    async fn update_is_retried_through_throttling_and_sends_all_three_sizes() {
        let rule = mock!(Client::update_auto_scaling_group)
            .match_requests(|r| {
                r.auto_scaling_group_name() == Some("web-eu-west-1")
                    && (r.min_size(), r.desired_capacity(), r.max_size()) == (Some(8), Some(8), Some(10))
            })
            .sequence()
            .http_response(throttled)
            .times(2)
            .output(|| UpdateAutoScalingGroupOutput::builder().build())
            .build();
        let client = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule], |c| c.retry_config(retries()));

        update_group(&client, "eu-west-1", "web-eu-west-1", GroupSizes::new(8, 8, 10)).await.expect("converges");

        assert_eq!(rule.num_calls(), 3, "two throttled attempts, then success");
    }

    #[tokio::test]
    async fn persistent_throttling_is_a_retryable_error_naming_the_region() {
        let rule = mock!(Client::update_auto_scaling_group).sequence().http_response(throttled).times(3).build();
        let client = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule], |c| c.retry_config(retries()));

        let err = update_group(&client, "eu-west-1", "web", GroupSizes::new(1, 2, 3)).await.expect_err("throttled");

        assert_eq!(err.error_type(), "Throttled");
        assert!(err.is_retryable());
        assert!(err.to_string().starts_with("UpdateAutoScalingGroup in eu-west-1 failed"), "{err}");
    }

    #[tokio::test]
    async fn a_validation_error_is_not_retried_and_keeps_its_message() {
        let rule = mock!(Client::update_auto_scaling_group).then_http_response(|| {
            query_error(
                400,
                "Sender",
                "ValidationError",
                "Desired capacity:20 must be between the specified min size:1 and max size:10",
            )
        });
        let client = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule], |c| c.retry_config(retries()));

        let err = update_group(&client, "eu-west-1", "web", GroupSizes::new(1, 20, 10)).await.expect_err("rejected");

        assert_eq!(rule.num_calls(), 1);
        assert_eq!(err.aws_code(), Some("ValidationError"));
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("must be between"), "{err}");
    }

    #[tokio::test]
    async fn describe_reads_sizes_and_counts_in_service_instances() {
        let rule = mock!(Client::describe_auto_scaling_groups)
            .match_requests(|r| r.auto_scaling_group_names() == ["web-eu-west-1"])
            .then_output(|| {
                DescribeAutoScalingGroupsOutput::builder()
                    .auto_scaling_groups(group(
                        "web-eu-west-1",
                        2,
                        4,
                        10,
                        &[LifecycleState::InService, LifecycleState::Pending, LifecycleState::InService],
                    ))
                    .build()
            });
        let client = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule]);

        let state = describe_group(&client, "eu-west-1", "web-eu-west-1").await.expect("described");

        assert_eq!(state, GroupState { sizes: GroupSizes::new(2, 4, 10), in_service: 2 });
    }

    #[tokio::test]
    async fn a_missing_group_is_an_error_naming_it_and_the_fix() {
        let rule = mock!(Client::describe_auto_scaling_groups)
            .then_output(|| DescribeAutoScalingGroupsOutput::builder().build());
        let client = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&rule]);

        let err = describe_group(&client, "eu-west-1", "web-x").await.expect_err("missing");

        assert!(err.to_string().contains("`web-x` not found in eu-west-1"), "{err}");
        assert!(err.to_string().contains("topology"), "{err}");
    }

    #[tokio::test]
    async fn one_survivor_failing_does_not_stop_the_others_and_is_reported() {
        // Given two survivors, one of whose Auto Scaling APIs keeps failing
        let failing = mock!(Client::update_auto_scaling_group).sequence().http_status(503, None).times(3).build();
        let ok =
            mock!(Client::update_auto_scaling_group).then_output(|| UpdateAutoScalingGroupOutput::builder().build());
        let eu = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&failing], |c| c.retry_config(retries()));
        let ap = mock_client!(aws_sdk_autoscaling, RuleMode::Sequential, [&ok], |c| c.retry_config(retries()));
        let updates = [
            GroupUpdate { client: &eu, region: "eu-west-1", asg: "web-eu", capacity: GroupSizes::new(3, 3, 6) },
            GroupUpdate { client: &ap, region: "ap-southeast-1", asg: "web-ap", capacity: GroupSizes::new(3, 3, 6) },
        ];

        // When both are resized
        let results = update_all(&updates).await;

        // Then the healthy one is resized and the failure is reported for its Region
        assert_eq!(ok.num_calls(), 1);
        assert!(results[1].is_ok());
        let err = results[0].as_ref().expect_err("eu fails");
        assert!(err.to_string().contains("UpdateAutoScalingGroup in eu-west-1"), "{err}");
        assert!(err.is_retryable());
    }
}

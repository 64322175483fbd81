//! Thin adapters over the SDK calls failover makes: read and flip a Route 53 health check, read
//! the Aurora global cluster, move its writer. Each names its operation and Region in errors.

use crate::plan::{AuroraMember, ObservedAurora, WriterMove};
use shared::{AwsResultExt, Error};

/// Whether the health check is forced unhealthy: `Inverted` and `Disabled` together (Route 53
/// `GetHealthCheck`). Inverted alone is not enough: once the Region really fails, its endpoint
/// checks fail, and an inverted failing check reports healthy, sending users back to the failed
/// Region. A disabled check is considered healthy, a disabled and inverted one always unhealthy,
/// whatever the endpoint does.
pub async fn health_check_forced_unhealthy(
    route53: &aws_sdk_route53::Client,
    region: &str,
    id: &str,
) -> Result<bool, Error> {
    Ok(shared::aws::health_check_flags(route53, region, id).await?.forced_unhealthy())
}

/// Forces the health check unhealthy (`Inverted` and `Disabled`), or gives it back to its endpoint
/// checks (both cleared), and checks the answer carries both flags.
pub async fn set_health_check_forced_unhealthy(
    route53: &aws_sdk_route53::Client,
    region: &str,
    id: &str,
    forced: bool,
) -> Result<(), Error> {
    let out = route53
        .update_health_check()
        .health_check_id(id)
        .inverted(forced)
        .disabled(forced)
        .send()
        .await
        .aws_context("UpdateHealthCheck", region)?;
    let config = out.health_check.and_then(|h| h.health_check_config);
    let inverted = config.as_ref().and_then(|c| c.inverted).unwrap_or(false);
    let disabled = config.as_ref().and_then(|c| c.disabled).unwrap_or(false);
    if inverted != forced || disabled != forced {
        return Err(Error::Unexpected(format!(
            "UpdateHealthCheck {id} answered Inverted={inverted} Disabled={disabled}, expected both {forced}: the change did not take"
        )));
    }
    Ok(())
}

/// The global cluster's members, writer and any failover in progress (`DescribeGlobalClusters`
/// with the identifier filter, read as lag-probe reads it).
pub async fn observe_aurora(
    rds: &aws_sdk_rds::Client,
    region: &str,
    global_cluster_id: &str,
) -> Result<ObservedAurora, Error> {
    let view = shared::aws::describe_global_cluster(rds, region, global_cluster_id).await?;
    let members = view
        .members
        .into_iter()
        .filter_map(|m| Some(AuroraMember { region: m.region?, cluster_arn: m.cluster_arn, is_writer: m.is_writer }))
        .collect();
    // Any status (pending, failing-over, switching-over, cancelling) means RDS is busy moving it.
    let failover_in_progress = view.failover.is_some();
    let failover_target_arn = view.failover.and_then(|f| f.to_cluster_arn);
    Ok(ObservedAurora {
        global_cluster_id: global_cluster_id.to_owned(),
        members,
        failover_in_progress,
        failover_target_arn,
    })
}

/// Whether RDS answers in the Region of `rds` right now: one `DescribeGlobalClusters` with a
/// short deadline and no retry, so a failed Region costs at most that deadline on the round trip
/// it shares with the observation. Decides switchover (it answers) or `AllowDataLoss`.
pub async fn region_answers(rds: &aws_sdk_rds::Client, global_cluster_id: &str) -> bool {
    let quick = aws_sdk_rds::config::Builder::default()
        .retry_config(aws_sdk_rds::config::retry::RetryConfig::disabled())
        .timeout_config(
            aws_sdk_rds::config::timeout::TimeoutConfig::builder()
                .connect_timeout(WRITER_PROBE_TIMEOUT)
                .operation_timeout(WRITER_PROBE_TIMEOUT)
                .build(),
        );
    rds.describe_global_clusters()
        .global_cluster_identifier(global_cluster_id)
        .customize()
        .config_override(quick)
        .send()
        .await
        .is_ok()
}

/// How long the writer's Region has to answer [`region_answers`].
pub const WRITER_PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1500);

/// Starts moving the writer to `target_cluster_arn`, calling RDS in the target's Region (static
/// stability: the failed Region's API is never needed). Idempotent: when RDS refuses because the
/// target already is the writer, or a move to it is already running (a concurrent or duplicate
/// delivery got there first), the step has converged.
pub async fn move_writer(
    rds: &aws_sdk_rds::Client,
    region: &str,
    global_cluster_id: &str,
    target_cluster_arn: &str,
    mode: WriterMove,
) -> Result<(), Error> {
    let result = match mode {
        WriterMove::Failover => rds
            .failover_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .target_db_cluster_identifier(target_cluster_arn)
            .allow_data_loss(true)
            .send()
            .await
            .map(|_| ())
            .aws_context("FailoverGlobalCluster", region),
        WriterMove::Switchover => rds
            .switchover_global_cluster()
            .global_cluster_identifier(global_cluster_id)
            .target_db_cluster_identifier(target_cluster_arn)
            .send()
            .await
            .map(|_| ())
            .aws_context("SwitchoverGlobalCluster", region),
    };
    match result {
        Err(err) if err.aws_code() == Some("InvalidGlobalClusterStateFault") => {
            let now = observe_aurora(rds, region, global_cluster_id).await?;
            let writer_is_target = now.writer().is_some_and(|w| w.cluster_arn == target_cluster_arn);
            let moving_to_target =
                now.failover_in_progress && now.failover_target_arn.as_deref() == Some(target_cluster_arn);
            if writer_is_target || moving_to_target {
                tracing::info!(target = target_cluster_arn, "writer already at (or moving to) the target: converged");
                Ok(())
            } else {
                Err(err)
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterOutput;
    use aws_sdk_rds::types::{FailoverState, GlobalCluster, GlobalClusterMember};
    use aws_sdk_route53::operation::update_health_check::UpdateHealthCheckOutput;
    use aws_sdk_route53::types::{HealthCheck, HealthCheckConfig, HealthCheckType};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::retry::RetryConfig;
    use std::time::Duration;

    fn retries() -> RetryConfig {
        RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1))
    }

    fn throttled_xml() -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(400).expect("status"),
            SdkBody::from(
                "<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>1</RequestId></ErrorResponse>",
            ),
        )
    }

    fn inverted_check(inverted: bool) -> UpdateHealthCheckOutput {
        let config = HealthCheckConfig::builder()
            .r#type(HealthCheckType::Https)
            .inverted(inverted)
            .disabled(inverted)
            .build()
            .expect("config");
        let check = HealthCheck::builder()
            .id("hc-1")
            .caller_reference("r")
            .health_check_config(config)
            .health_check_version(2)
            .build()
            .expect("check");
        UpdateHealthCheckOutput::builder().health_check(check).build()
    }

    #[tokio::test]
    async fn forcing_unhealthy_is_retried_through_throttling_and_sends_inverted_and_disabled() {
        let rule = mock!(aws_sdk_route53::Client::update_health_check)
            .match_requests(|r| {
                r.health_check_id() == Some("hc-1") && r.inverted() == Some(true) && r.disabled() == Some(true)
            })
            .sequence()
            .http_response(throttled_xml)
            .times(2)
            .output(|| inverted_check(true))
            .build();
        let route53 = mock_client!(aws_sdk_route53, RuleMode::Sequential, [&rule], |c| c.retry_config(retries()));

        set_health_check_forced_unhealthy(&route53, "eu-west-1", "hc-1", true).await.expect("converges");
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn an_answer_without_the_flag_is_an_unexpected_state_not_success() {
        let rule = mock!(aws_sdk_route53::Client::update_health_check).then_output(|| inverted_check(false));
        let route53 = mock_client!(aws_sdk_route53, RuleMode::Sequential, [&rule]);
        let err =
            set_health_check_forced_unhealthy(&route53, "eu-west-1", "hc-1", true).await.expect_err("did not take");
        assert_eq!(err.error_type(), "UnexpectedState");
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn aurora_failover_retries_5xx_and_asks_for_allow_data_loss() {
        let rule = mock!(aws_sdk_rds::Client::failover_global_cluster)
            .match_requests(|r| {
                r.global_cluster_identifier() == Some("g")
                    && r.target_db_cluster_identifier() == Some("arn:aws:rds:eu-west-1:123456789012:cluster:b")
                    && r.allow_data_loss() == Some(true)
            })
            .sequence()
            .http_status(503, None)
            .times(2)
            .output(|| FailoverGlobalClusterOutput::builder().build())
            .build();
        let rds = mock_client!(aws_sdk_rds, RuleMode::Sequential, [&rule], |c| c.retry_config(retries()));

        move_writer(&rds, "eu-west-1", "g", "arn:aws:rds:eu-west-1:123456789012:cluster:b", WriterMove::Failover)
            .await
            .expect("converges");
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn a_persistent_5xx_is_a_retryable_error_naming_the_operation() {
        let rule =
            mock!(aws_sdk_rds::Client::switchover_global_cluster).sequence().http_status(500, None).times(3).build();
        let rds = mock_client!(aws_sdk_rds, RuleMode::Sequential, [&rule], |c| c.retry_config(retries()));
        let err = move_writer(
            &rds,
            "ap-southeast-1",
            "g",
            "arn:aws:rds:ap-southeast-1:123456789012:cluster:c",
            WriterMove::Switchover,
        )
        .await
        .expect_err("persistent");
        assert!(err.is_retryable());
        assert!(err.to_string().starts_with("SwitchoverGlobalCluster in ap-southeast-1"), "{err}");
    }

    #[tokio::test]
    async fn observes_members_writer_and_failover_in_progress() {
        let rule = mock!(aws_sdk_rds::Client::describe_global_clusters).then_output(|| {
            let member = |region: &str, writer: bool| {
                GlobalClusterMember::builder()
                    .db_cluster_arn(format!("arn:aws:rds:{region}:123456789012:cluster:db-{region}"))
                    .is_writer(writer)
                    .build()
            };
            aws_sdk_rds::operation::describe_global_clusters::DescribeGlobalClustersOutput::builder()
                .global_clusters(
                    GlobalCluster::builder()
                        .global_cluster_identifier("g")
                        .global_cluster_members(member("us-east-1", false))
                        .global_cluster_members(member("eu-west-1", true))
                        .failover_state(
                            FailoverState::builder().status(aws_sdk_rds::types::FailoverStatus::FailingOver).build(),
                        )
                        .build(),
                )
                .build()
        });
        let rds = mock_client!(aws_sdk_rds, RuleMode::Sequential, [&rule]);
        let observed = observe_aurora(&rds, "eu-west-1", "g").await.expect("observed");
        assert_eq!(observed.writer().map(|w| w.region.as_str()), Some("eu-west-1"));
        assert_eq!(observed.members.len(), 2);
        assert!(observed.failover_in_progress);
    }
}

//! Thin SDK adapters for what the probe reads: the global table's description and TTL in each
//! Region, Auto Scaling group sizes, Route 53 health-check flags, the Aurora global cluster and
//! its CloudWatch lag metrics. Each names its operation and Region in errors.

use crate::canary::{KeySchema, KeyType};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_sdk_dynamodb::types::{KeyType as SdkKeyType, TimeToLiveStatus};
use serde::Serialize;
use shared::capacity::GroupSizes;
use shared::{AwsResultExt, Error};

/// The global table as one Region's replica describes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableView {
    /// `TableStatus` of this Region's replica (`ACTIVE`, `UPDATING`, `CREATING`, ...).
    pub status: String,
    /// The key schema, or why a canary key cannot be derived from it.
    pub key_schema: Result<KeySchema, String>,
    /// The other replicas this Region lists, with their `ReplicaStatus`.
    pub replicas: Vec<(String, String)>,
}

/// `DescribeTable`. `Ok(None)` when the table does not exist in the Region.
pub async fn describe_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    region: &str,
    table: &str,
) -> Result<Option<TableView>, Error> {
    let out = match dynamodb.describe_table().table_name(table).send().await {
        Ok(out) => out,
        Err(err) if err.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => return Ok(None),
        Err(err) => return Err(Error::aws("DescribeTable", region, err)),
    };
    let Some(description) = out.table else {
        return Err(Error::Unexpected(format!("DescribeTable {table} in {region} answered without a table")));
    };
    let status = description.table_status().map(|s| s.as_str().to_owned()).unwrap_or_else(|| "UNKNOWN".into());
    let type_of = |name: &str| {
        description
            .attribute_definitions()
            .iter()
            .find(|d| d.attribute_name() == name)
            .and_then(|d| KeyType::from_sdk(d.attribute_type()))
            .ok_or_else(|| format!("DescribeTable {table} in {region}: no usable type for key attribute `{name}`"))
    };
    let hash = description.key_schema().iter().find(|k| k.key_type() == &SdkKeyType::Hash);
    let range = description.key_schema().iter().find(|k| k.key_type() == &SdkKeyType::Range);
    let key_schema = match hash {
        None => Err(format!("DescribeTable {table} in {region}: the key schema has no partition (HASH) key")),
        Some(hash) => type_of(hash.attribute_name()).and_then(|partition_type| {
            let sort_key = match range {
                None => None,
                Some(range) => Some((range.attribute_name().to_owned(), type_of(range.attribute_name())?)),
            };
            Ok(KeySchema { partition_key: hash.attribute_name().to_owned(), partition_type, sort_key })
        }),
    };
    let replicas = description
        .replicas()
        .iter()
        .filter_map(|r| {
            let name = r.region_name()?.to_owned();
            let status = r.replica_status().map(|s| s.as_str().to_owned()).unwrap_or_else(|| "UNKNOWN".into());
            Some((name, status))
        })
        .collect();
    Ok(Some(TableView { status, key_schema, replicas }))
}

/// The table's TTL attribute when TTL is enabled (or being enabled) in the Region.
pub async fn ttl_attribute(
    dynamodb: &aws_sdk_dynamodb::Client,
    region: &str,
    table: &str,
) -> Result<Option<String>, Error> {
    let out =
        dynamodb.describe_time_to_live().table_name(table).send().await.aws_context("DescribeTimeToLive", region)?;
    Ok(out.time_to_live_description.and_then(|d| {
        let on = matches!(d.time_to_live_status(), Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling));
        if on { d.attribute_name } else { None }
    }))
}

/// `DescribeAutoScalingGroups` for one group (`shared::aws::describe_group`).
pub async fn group_sizes(
    autoscaling: &aws_sdk_autoscaling::Client,
    region: &str,
    asg: &str,
) -> Result<GroupSizes, Error> {
    Ok(shared::aws::describe_group(autoscaling, region, asg).await?.sizes)
}

pub use shared::aws::{HealthCheckFlags, health_check_flags};

// The global cluster's view is shared with failover, which reads the same call to plan.
pub use shared::aws::{FailoverInProgress, GlobalClusterView, GlobalMember, describe_global_cluster as global_cluster};

/// The CloudWatch metrics Aurora publishes for a secondary cluster of a global database, in the
/// secondary's Region (namespace `AWS/RDS`, dimension `DBClusterIdentifier`), in milliseconds.
pub const AURORA_LAG_METRICS: [&str; 2] = ["AuroraGlobalDBReplicationLag", "AuroraGlobalDBRPOLag"];
/// How far back the probe looks for a datapoint.
pub const METRIC_LOOKBACK_SECONDS: i64 = 600;

/// The latest value of each of [`AURORA_LAG_METRICS`] for `cluster_id` (one `GetMetricData`);
/// `None` for a metric without a datapoint in the last 10 minutes.
pub async fn aurora_lag_metrics(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    region: &str,
    cluster_id: &str,
    now_ms: u64,
) -> Result<Vec<(&'static str, Option<f64>)>, Error> {
    let now_s = (now_ms / 1000) as i64;
    let mut request = cloudwatch
        .get_metric_data()
        .start_time(DateTime::from_secs(now_s - METRIC_LOOKBACK_SECONDS))
        // Datapoints are matched with `timestamp < end`: include the current minute.
        .end_time(DateTime::from_secs(now_s + 60))
        .scan_by(ScanBy::TimestampDescending)
        .max_datapoints(100);
    for (i, name) in AURORA_LAG_METRICS.iter().enumerate() {
        let metric = Metric::builder()
            .namespace("AWS/RDS")
            .metric_name(*name)
            .dimensions(Dimension::builder().name("DBClusterIdentifier").value(cluster_id).build())
            .build();
        let stat = MetricStat::builder().metric(metric).period(60).stat("Maximum").build();
        request = request.metric_data_queries(
            MetricDataQuery::builder().id(format!("m{i}")).metric_stat(stat).return_data(true).build(),
        );
    }
    let out = request.send().await.aws_context("GetMetricData", region)?;
    Ok(AURORA_LAG_METRICS
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let id = format!("m{i}");
            let latest = out.metric_data_results().iter().find(|r| r.id() == Some(id.as_str())).and_then(|r| {
                // Latest first (TimestampDescending), but do not rely on the order.
                let values = r.values();
                let stamps = r.timestamps();
                if stamps.len() == values.len() && !values.is_empty() {
                    stamps.iter().zip(values).max_by_key(|(t, _)| t.secs()).map(|(_, v)| *v)
                } else {
                    values.first().copied()
                }
            });
            (*name, latest)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
    use aws_sdk_cloudwatch::types::MetricDataResult;
    use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
    use aws_sdk_dynamodb::types::{
        AttributeDefinition, KeySchemaElement, ReplicaDescription, ReplicaStatus, ScalarAttributeType,
        TableDescription, TableStatus,
    };
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_types::retry::RetryConfig;
    use std::time::Duration;

    fn fast_retries() -> RetryConfig {
        RetryConfig::standard().with_max_attempts(2).with_initial_backoff(Duration::from_millis(1))
    }

    #[tokio::test]
    async fn lag_metrics_take_the_latest_datapoint_and_report_missing_ones_as_none() {
        let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data)
            .match_requests(|r| {
                r.metric_data_queries().len() == 2
                    && r.metric_data_queries().iter().all(|q| {
                        q.metric_stat().and_then(|s| s.metric()).is_some_and(|m| {
                            m.namespace() == Some("AWS/RDS")
                                && m.dimensions().iter().any(|d| {
                                    d.name() == Some("DBClusterIdentifier") && d.value() == Some("db-eu-west-1")
                                })
                        })
                    })
            })
            .then_output(|| {
                GetMetricDataOutput::builder()
                    .metric_data_results(
                        MetricDataResult::builder()
                            .id("m0")
                            .timestamps(DateTime::from_secs(1_800_000_000))
                            .timestamps(DateTime::from_secs(1_800_000_060))
                            .values(80.0)
                            .values(42.0)
                            .build(),
                    )
                    .metric_data_results(MetricDataResult::builder().id("m1").build())
                    .build()
            });
        let client = mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, [&rule]);

        let values = aurora_lag_metrics(&client, "eu-west-1", "db-eu-west-1", 1_800_000_100_000).await.expect("read");

        assert_eq!(values, [("AuroraGlobalDBReplicationLag", Some(42.0)), ("AuroraGlobalDBRPOLag", None)]);
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn a_5xx_from_get_metric_data_is_an_unavailable_error_naming_the_region() {
        let rule =
            mock!(aws_sdk_cloudwatch::Client::get_metric_data).sequence().http_status(503, None).times(2).build();
        let client =
            mock_client!(aws_sdk_cloudwatch, RuleMode::Sequential, [&rule], |c| c.retry_config(fast_retries()));

        let err = aurora_lag_metrics(&client, "ap-southeast-1", "db", 1_800_000_000_000).await.expect_err("503");

        assert!(err.is_retryable());
        assert!(err.to_string().starts_with("GetMetricData in ap-southeast-1 failed (unavailable"), "{err}");
    }

    #[tokio::test]
    async fn describe_table_reads_the_key_schema_and_replicas_and_a_missing_table_is_none() {
        let table = TableDescription::builder()
            .table_status(TableStatus::Active)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("tenant")
                    .attribute_type(ScalarAttributeType::B)
                    .build()
                    .expect("definition"),
            )
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name("at")
                    .attribute_type(ScalarAttributeType::N)
                    .build()
                    .expect("definition"),
            )
            .key_schema(
                KeySchemaElement::builder().attribute_name("tenant").key_type(SdkKeyType::Hash).build().expect("key"),
            )
            .key_schema(
                KeySchemaElement::builder().attribute_name("at").key_type(SdkKeyType::Range).build().expect("key"),
            )
            .replicas(
                ReplicaDescription::builder().region_name("us-east-1").replica_status(ReplicaStatus::Creating).build(),
            )
            .build();
        let found = mock!(aws_sdk_dynamodb::Client::describe_table)
            .then_output(move || DescribeTableOutput::builder().table(table.clone()).build());
        let missing = mock!(aws_sdk_dynamodb::Client::describe_table).then_error(|| {
            aws_sdk_dynamodb::operation::describe_table::DescribeTableError::ResourceNotFoundException(
                aws_sdk_dynamodb::types::error::ResourceNotFoundException::builder().message("not found").build(),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&found, &missing]);

        let view = describe_table(&client, "eu-west-1", "T").await.expect("read").expect("exists");
        assert_eq!(view.status, "ACTIVE");
        assert_eq!(
            view.key_schema,
            Ok(KeySchema {
                partition_key: "tenant".into(),
                partition_type: KeyType::B,
                sort_key: Some(("at".into(), KeyType::N))
            })
        );
        assert_eq!(view.replicas, [("us-east-1".to_owned(), "CREATING".to_owned())]);
        assert_eq!(describe_table(&client, "eu-west-1", "T").await.expect("read"), None);
    }
}

//! Thin SDK adapters for what the probe reads: the global table's description and TTL in each
//! Region, Auto Scaling group sizes, Route 53 health-check flags, the Aurora global cluster and
//! its CloudWatch lag metrics, and the configuration the RTO bound is read from (alarms, health
//! check timing, the latency records' TTLs, the latest evacuation's orchestration time). Each
//! names its operation and Region in errors.

use crate::canary::{KeySchema, KeyType};
use crate::rto::AlarmTiming;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_sdk_dynamodb::types::{KeyType as SdkKeyType, TimeToLiveStatus};
use serde::Serialize;
use shared::capacity::GroupSizes;
use shared::{AwsResultExt, Error};
use std::collections::BTreeMap;

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

pub use shared::aws::HealthCheckFlags;

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

/// `DescribeAlarms` (AlarmNames, at most 100 per call) in the Region the alarms live in: each
/// metric alarm's Period x EvaluationPeriods and the Route 53 health check it watches (the
/// `HealthCheckId` dimension of `AWS/Route53` metrics). Alarms that do not exist are absent.
pub async fn alarm_timings(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    region: &str,
    names: &[String],
) -> Result<Vec<AlarmTiming>, Error> {
    let mut timings = Vec::new();
    for chunk in names.chunks(100) {
        let out = cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .send()
            .await
            .aws_context("DescribeAlarms", region)?;
        for alarm in out.metric_alarms() {
            let health_check_id = (alarm.namespace() == Some("AWS/Route53"))
                .then(|| alarm.dimensions().iter().find(|d| d.name() == Some("HealthCheckId")))
                .flatten()
                .and_then(|d| d.value().map(str::to_owned));
            timings.push(AlarmTiming {
                name: alarm.alarm_name().unwrap_or_default().to_owned(),
                region: region.to_owned(),
                period_seconds: alarm.period().map_or(0, |p| p.max(0) as u64),
                evaluation_periods: alarm.evaluation_periods().map_or(0, |p| p.max(0) as u64),
                health_check_id,
            });
        }
    }
    Ok(timings)
}

/// `GetHealthCheck`, once for both uses: the check's flags (readiness) and how long it takes to
/// see an endpoint fail, `RequestInterval` x `FailureThreshold` (Route 53's defaults 30 s and 3
/// when not set; `None` for checks that probe no endpoint themselves: calculated,
/// CloudWatch-metric, recovery-control), for the RTO bound.
pub async fn health_check_view(
    route53: &aws_sdk_route53::Client,
    region: &str,
    id: &str,
) -> Result<(HealthCheckFlags, Option<u64>), Error> {
    use aws_sdk_route53::types::HealthCheckType;
    let out = route53.get_health_check().health_check_id(id).send().await.aws_context("GetHealthCheck", region)?;
    let Some(config) = out.health_check.and_then(|h| h.health_check_config) else {
        return Ok((HealthCheckFlags { inverted: false, disabled: false }, None));
    };
    let flags =
        HealthCheckFlags { inverted: config.inverted.unwrap_or(false), disabled: config.disabled.unwrap_or(false) };
    let probes_an_endpoint = matches!(
        config.r#type,
        HealthCheckType::Http
            | HealthCheckType::Https
            | HealthCheckType::HttpStrMatch
            | HealthCheckType::HttpsStrMatch
            | HealthCheckType::Tcp
    );
    let detection = probes_an_endpoint.then(|| {
        let interval = config.request_interval.unwrap_or(30).max(0) as u64;
        let threshold = config.failure_threshold.unwrap_or(3).max(0) as u64;
        interval * threshold
    });
    Ok((flags, detection))
}

/// `ListResourceRecordSets` from `record_name`: the TTL of each Region's latency record of that
/// name, by Region (`None`: an alias record, whose TTL is its target's).
pub async fn latency_record_ttls(
    route53: &aws_sdk_route53::Client,
    region: &str,
    hosted_zone_id: &str,
    record_name: &str,
) -> Result<BTreeMap<String, Option<u64>>, Error> {
    let wanted = record_name.trim_end_matches('.').to_ascii_lowercase();
    let mut ttls = BTreeMap::new();
    let mut start = Some((record_name.to_owned(), None::<aws_sdk_route53::types::RrType>, None::<String>));
    while let Some((name, kind, identifier)) = start.take() {
        let out = route53
            .list_resource_record_sets()
            .hosted_zone_id(hosted_zone_id)
            .start_record_name(name)
            .set_start_record_type(kind)
            .set_start_record_identifier(identifier)
            .send()
            .await
            .aws_context("ListResourceRecordSets", region)?;
        let mut past = false;
        for record in out.resource_record_sets() {
            if record.name().trim_end_matches('.').to_ascii_lowercase() != wanted {
                past = true;
                break;
            }
            if let Some(latency_region) = record.region() {
                let ttl = record.ttl().map(|t| t.max(0) as u64);
                ttls.insert(
                    latency_region.as_str().to_owned(),
                    if record.alias_target().is_some() { None } else { ttl },
                );
            }
        }
        if out.is_truncated() && !past {
            start = out.next_record_name().map(|n| {
                (n.to_owned(), out.next_record_type().cloned(), out.next_record_identifier().map(str::to_owned))
            });
        }
    }
    Ok(ttls)
}

/// How long the latest evacuation recorded in the ledger took to orchestrate, in seconds: from
/// the alarm change (its transition's sort key starts with the change's time) to failover's
/// transition record, the newest of every Region's last `per_region` transitions. `None`: no
/// evacuation recorded.
pub async fn latest_orchestration_seconds(
    ledger: &shared::Ledger,
    regions: &[String],
    per_region: i32,
) -> Result<Option<f64>, Error> {
    #[derive(serde::Deserialize)]
    struct Transition {
        to: shared::ledger::RegionStatus,
        recorded_at_ms: u64,
    }
    let reads = futures_util::future::join_all(
        regions
            .iter()
            .map(|r| async move { ledger.newest::<Transition>(&shared::ledger::transition_pk(r), per_region).await }),
    )
    .await;
    let mut latest: Option<(u64, f64)> = None;
    for records in reads {
        for record in records? {
            if record.body.to != shared::ledger::RegionStatus::Evacuated {
                continue;
            }
            let changed = record.sk.split('#').next().and_then(shared::alarm::parse_alarm_time);
            let Some(changed_ms) = changed.and_then(|t| u64::try_from(t.timestamp_millis()).ok()) else { continue };
            let took = record.body.recorded_at_ms.saturating_sub(changed_ms) as f64 / 1000.0;
            if latest.is_none_or(|(at, _)| changed_ms > at) {
                latest = Some((changed_ms, took));
            }
        }
    }
    Ok(latest.map(|(_, took)| took))
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

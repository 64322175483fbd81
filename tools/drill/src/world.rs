//! Builds, in the emulator, a deployment shaped like a real one: a hosted zone with a latency record
//! and a health check per Region, the Global Table (home table; its replicas come from the
//! provisioner), the ledger (a Global Table with a replica per Region, as the template's
//! LedgerTable), an Aurora global cluster with a member per Region (writer in the first), an Auto
//! Scaling group per Region, and a real CloudWatch health alarm per Region evaluated from another
//! Region. Returns the topology describing it, validated by the same code the functions use, and
//! the template.yaml parameters that deploy it. All of it as the administrator (set-up).

use crate::error::{Ctx, Result, fail};
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricDatum, StateValue, Statistic};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateReplicationGroupMemberAction, KeySchemaElement, KeyType,
    ReplicationGroupUpdate, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetRegion, RrType,
};
use serde_json::{Map, Value, json};
use shared::{Ledger, RegionalClients, Topology};
use std::collections::BTreeMap;

pub const TABLE: &str = "UserSessions";
pub const LEDGER: &str = "multisite-ledger";
pub const ZONE: &str = "example.com";
pub const RECORD: &str = "app.example.com";
pub const GLOBAL_CLUSTER: &str = "sessions-global";
/// Every group's sizes before the drill.
pub const BASELINE: (i32, i32, i32) = (2, 2, 8);

/// What the drill built and how to reach it.
pub struct Deployment {
    pub topology: Topology,
    pub topology_json: Value,
    /// Route 53 hosted zone id (without `/hostedzone/`).
    pub zone_id: String,
    /// The latency record's value -> the Region whose record holds it.
    pub record_values: BTreeMap<String, String>,
    /// Alarm name -> the Region whose CloudWatch evaluates it (a different Region than it watches).
    pub alarm_regions: BTreeMap<String, String>,
    /// template.yaml's parameters that deploy this topology (one stack per Region).
    pub parameters: Map<String, Value>,
    /// Each Region's endpoint health check (its alarm's metric; it fails when the Region does).
    pub endpoint_health_checks: BTreeMap<String, String>,
    /// With `--routing arc`: the ARC cluster, controls, rule and RECOVERY_CONTROL health checks.
    pub arc: Option<multisite_tests::arc::ArcSetup>,
}

pub fn alarm_name(region: &str) -> String {
    format!("web-{region}-unhealthy")
}

pub fn asg_name(region: &str) -> String {
    format!("web-{region}")
}

/// The Region that evaluates the alarm watching `region` (and runs the functions reacting to it):
/// the next cell in priority order, so the watcher never shares the fate of the watched.
pub fn watcher_of(regions: &[String], region: &str) -> String {
    let i = regions.iter().position(|r| r == region).unwrap_or(0);
    regions[(i + 1) % regions.len()].clone()
}

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
    pub cooldown_seconds: u64,
    pub min_healthy_regions: usize,
    /// The ledger's (and arbiter's) Region, see [`arbiter_for`].
    pub arbiter: String,
    /// How failover takes a Region out of routing.
    pub routing: shared::topology::RoutingBackend,
}

pub async fn build(
    emulator: &multisite_tests::Emulator,
    clients: &RegionalClients,
    regions: &[String],
    policy: &Policy,
) -> Result<Deployment> {
    let first = regions[0].as_str();
    let arbiter = policy.arbiter.as_str();
    let route53 = &clients.region(first)?.route53;

    // Route 53: zone, one health check and one latency record per Region.
    let zone = route53
        .create_hosted_zone()
        .name(ZONE)
        .caller_reference(format!("drill-{}", now_ms()))
        .send()
        .await
        .ctx("CreateHostedZone")?;
    let zone_id = zone.hosted_zone.map(|z| z.id).ok_or_else(|| fail("CreateHostedZone answered no zone"))?;
    let zone_id = zone_id.trim_start_matches("/hostedzone/").to_owned();
    let mut health_checks = Vec::new();
    for region in regions {
        let config = HealthCheckConfig::builder()
            .r#type(HealthCheckType::Https)
            .fully_qualified_domain_name(format!("{region}.{RECORD}"))
            .port(443)
            .resource_path("/health")
            .request_interval(10)
            .failure_threshold(1)
            .build()
            .ctx("health check config")?;
        let created = route53
            .create_health_check()
            .caller_reference(format!("drill-{region}-{}", now_ms()))
            .health_check_config(config)
            .send()
            .await
            .ctx(format!("CreateHealthCheck for {region}"))?;
        let id = created.health_check.map(|h| h.id).ok_or_else(|| fail("CreateHealthCheck answered no id"))?;
        health_checks.push(id);
    }
    let endpoint_health_checks: BTreeMap<String, String> =
        regions.iter().cloned().zip(health_checks.iter().cloned()).collect();
    // ARC: a cluster, a control panel, a routing control per Region (turned On), the assertion
    // rule at min_healthy_regions, and a RECOVERY_CONTROL health check per Region, which guards
    // its latency record instead of the endpoint check.
    let arc = match policy.routing {
        shared::topology::RoutingBackend::HealthCheck => None,
        shared::topology::RoutingBackend::Arc => {
            let names: Vec<&str> = regions.iter().map(String::as_str).collect();
            Some(
                multisite_tests::arc::create(emulator, &names, policy.min_healthy_regions, route53)
                    .await
                    .map_err(|e| fail(format!("ARC routing setup: {e}")))?,
            )
        }
    };
    let record_checks: Vec<String> = match &arc {
        Some(arc) => regions.iter().map(|r| arc.health_checks[r].clone()).collect(),
        None => health_checks.clone(),
    };
    let mut record_values = BTreeMap::new();
    let mut changes = Vec::new();
    for (i, region) in regions.iter().enumerate() {
        let id = &record_checks[i];
        let value = format!("198.18.{}.10", i + 1);
        record_values.insert(value.clone(), region.clone());
        changes.push(
            Change::builder()
                .action(ChangeAction::Create)
                .resource_record_set(
                    ResourceRecordSet::builder()
                        .name(RECORD)
                        .r#type(RrType::A)
                        .set_identifier(region)
                        .region(ResourceRecordSetRegion::from(region.as_str()))
                        .ttl(60)
                        .resource_records(ResourceRecord::builder().value(value).build().ctx("record")?)
                        .health_check_id(id)
                        .build()
                        .ctx("record set")?,
                )
                .build()
                .ctx("change")?,
        );
    }
    route53
        .change_resource_record_sets()
        .hosted_zone_id(&zone_id)
        .change_batch(ChangeBatch::builder().set_changes(Some(changes)).build().ctx("change batch")?)
        .send()
        .await
        .ctx("ChangeResourceRecordSets (latency records)")?;

    // DynamoDB: the application table in the first Region (the provisioner adds its replicas, a
    // CloudFormation Create event); the ledger in the arbiter Region, replicas everywhere else.
    let ddb = &clients.region(first)?.dynamodb;
    ddb.create_table()
        .table_name(TABLE)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .ctx("attribute")?,
        )
        .key_schema(KeySchemaElement::builder().attribute_name("pk").key_type(KeyType::Hash).build().ctx("key")?)
        .billing_mode(BillingMode::PayPerRequest)
        .send()
        .await
        .ctx(format!("CreateTable {TABLE} in {first}"))?;
    // The lag-probe's canaries carry a TTL attribute; enable TTL as a deployment would.
    ddb.update_time_to_live()
        .table_name(TABLE)
        .time_to_live_specification(
            TimeToLiveSpecification::builder().enabled(true).attribute_name("expires_at").build().ctx("ttl")?,
        )
        .send()
        .await
        .ctx("UpdateTimeToLive")?;
    // The ledger, as the template's LedgerTable (AWS::DynamoDB::GlobalTable) creates it:
    // CloudFormation's identity, created in the arbiter Region (the topology's `arbiter`, where
    // every fleet decision goes) with a replica in every other Region (one replica change at a
    // time, as DynamoDB allows).
    let ddb = &clients.region(arbiter)?.dynamodb;
    Ledger::create_table(ddb, LEDGER, arbiter).await?;
    for region in regions.iter().filter(|r| r.as_str() != arbiter) {
        ddb.update_table()
            .table_name(LEDGER)
            .replica_updates(
                ReplicationGroupUpdate::builder()
                    .create(CreateReplicationGroupMemberAction::builder().region_name(region).build().ctx("replica")?)
                    .build(),
            )
            .send()
            .await
            .ctx(format!("UpdateTable {LEDGER}: add the {region} replica"))?;
        wait_replica_active(ddb, LEDGER, region).await?;
    }

    // Aurora global database: a member per Region, the first one the writer.
    let mut cluster_arns = Vec::new();
    for (i, region) in regions.iter().enumerate() {
        let rds = &clients.region(region)?.rds;
        if i == 0 {
            rds.create_global_cluster()
                .global_cluster_identifier(GLOBAL_CLUSTER)
                .engine("aurora-postgresql")
                .engine_version("15.4")
                .send()
                .await
                .ctx("CreateGlobalCluster")?;
        }
        let mut create = rds
            .create_db_cluster()
            .db_cluster_identifier(format!("sessions-{region}"))
            .engine("aurora-postgresql")
            .engine_version("15.4")
            .global_cluster_identifier(GLOBAL_CLUSTER);
        if i == 0 {
            create = create.master_username("app").master_user_password("correct-horse-battery");
        }
        let created = create.send().await.ctx(format!("CreateDBCluster in {region}"))?;
        cluster_arns.push(
            created.db_cluster.and_then(|c| c.db_cluster_arn).ok_or_else(|| fail("CreateDBCluster answered no ARN"))?,
        );
    }

    // Auto Scaling: a launch configuration and a group per Region (the emulator starts instances).
    let (min, desired, max) = BASELINE;
    for region in regions {
        let autoscaling = &clients.region(region)?.autoscaling;
        autoscaling
            .create_launch_configuration()
            .launch_configuration_name(format!("lc-web-{region}"))
            .image_id("ami-12c6146b")
            .instance_type("t3.micro")
            .send()
            .await
            .ctx(format!("CreateLaunchConfiguration in {region}"))?;
        autoscaling
            .create_auto_scaling_group()
            .auto_scaling_group_name(asg_name(region))
            .launch_configuration_name(format!("lc-web-{region}"))
            .min_size(min)
            .desired_capacity(desired)
            .max_size(max)
            .availability_zones(format!("{region}a"))
            .send()
            .await
            .ctx(format!("CreateAutoScalingGroup in {region}"))?;
    }

    // CloudWatch: the health alarm of each Region, evaluated in its watcher Region (a real alarm:
    // creating it is part of the deployment, a failure is a setup error). Route 53 publishes each
    // health check's HealthCheckStatus (1: healthy); one datapoint brings the new alarm from
    // INSUFFICIENT_DATA to OK, as on a deployment that has been running.
    let mut alarm_regions = BTreeMap::new();
    for (region, health_check) in regions.iter().zip(&health_checks) {
        let watcher = watcher_of(regions, region);
        let alarm = alarm_name(region);
        alarm_regions.insert(alarm.clone(), watcher.clone());
        let cloudwatch = &clients.region(&watcher)?.cloudwatch;
        let dimension = Dimension::builder().name("HealthCheckId").value(health_check).build();
        cloudwatch
            .put_metric_alarm()
            .alarm_name(&alarm)
            .alarm_description(format!("{region} endpoint health (Route 53 HealthCheckStatus seen from {watcher})"))
            .namespace("AWS/Route53")
            .metric_name("HealthCheckStatus")
            .dimensions(dimension.clone())
            .statistic(Statistic::Minimum)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::LessThanThreshold)
            .send()
            .await
            .ctx(format!("PutMetricAlarm {alarm} in {watcher}"))?;
        cloudwatch
            .put_metric_data()
            .namespace("AWS/Route53")
            .metric_data(
                MetricDatum::builder()
                    .metric_name("HealthCheckStatus")
                    .dimensions(dimension)
                    .value(1.0)
                    .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_millis(now_ms() as i64))
                    .build(),
            )
            .send()
            .await
            .ctx(format!("PutMetricData HealthCheckStatus of {region} in {watcher}"))?;
        let (state, reason) = alarm_state(clients, &watcher, &alarm).await?;
        if state != "OK" {
            return Err(fail(format!(
                "alarm {alarm} in {watcher} is {state} after a healthy HealthCheckStatus datapoint, not OK ({reason})"
            )));
        }
    }

    let cells: Vec<Value> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            json!({"region": r, "health_check_id": record_checks[i], "auto_scaling_group": asg_name(r),
                   "aurora_cluster_arn": cluster_arns[i],
                   "alarms": [{"name": alarm_name(r), "region": watcher_of(regions, r)}]})
        })
        .collect();
    let topology_json = json!({
        "name": "user-sessions",
        "cells": cells,
        "routing": {"hosted_zone_id": zone_id, "record_name": RECORD},
        "global_table": TABLE,
        "aurora": {"global_cluster_id": GLOBAL_CLUSTER},
        "ledger_table": LEDGER,
        "arbiter": {"region": arbiter},
        "rpo_budget_ms": policy.rpo_budget_ms,
        "failover_policy": {"min_healthy_regions": policy.min_healthy_regions, "cooldown_seconds": policy.cooldown_seconds, "auto_failback": true, "dry_run": false},
        "scaling": {"raise_max_size": false, "readiness_wait_seconds": 0, "readiness_poll_ms": 5000}
    });
    let mut topology_json = topology_json;
    if let Some(arc) = &arc {
        topology_json["routing"]["backend"] = "arc".into();
        topology_json["routing"]["arc"] = arc.topology_block();
    }
    let topology = Topology::from_json(&topology_json.to_string()).map_err(|e| fail(e.to_string()))?;
    // What the stacks are deployed with. The Region1 stack manages the data table's replicas
    // (DataTableReplicas, Custom::GlobalTableReplicas: the provisioner) and creates the ledger.
    let mut parameters = multisite_tests::roles::template_parameters(&topology)
        .map_err(|e| fail(format!("the drill's topology cannot be expressed as template.yaml parameters: {e}")))?;
    parameters.insert("DataTableHomeRegion".into(), json!(first));
    Ok(Deployment {
        topology,
        topology_json,
        zone_id,
        record_values,
        alarm_regions,
        parameters,
        endpoint_health_checks,
        arc,
    })
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

/// Waits until `region` is an ACTIVE replica of `table` (DescribeTable in the table's Region).
async fn wait_replica_active(ddb: &aws_sdk_dynamodb::Client, table: &str, region: &str) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = ddb.describe_table().table_name(table).send().await.ctx(format!("DescribeTable {table}"))?;
        let status = out
            .table
            .and_then(|t| t.replicas)
            .unwrap_or_default()
            .into_iter()
            .find(|r| r.region_name.as_deref() == Some(region))
            .and_then(|r| r.replica_status)
            .map(|s| s.as_str().to_owned());
        if status.as_deref() == Some("ACTIVE") {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(fail(format!("the {region} replica of {table} is {status:?}, not ACTIVE, after 30 s")));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// (min, desired, max, InService instances) of a Region's group.
pub async fn group_sizes(clients: &RegionalClients, region: &str) -> Result<(i32, i32, i32, usize)> {
    let g = shared::aws::describe_group(&clients.region(region)?.autoscaling, region, &asg_name(region)).await?;
    Ok((g.min, g.desired, g.max, g.in_service))
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

//! A multisite deployment built in the emulator the way a real one looks, for tests, benchmarks
//! and the drill: one place that knows how to make health checks, latency records, the Aurora
//! global cluster, Auto Scaling groups, the Global Table and the ledger, and the topology that
//! describes them.

use crate::Emulator;
use crate::arc::ArcSetup;
use crate::fixtures::{
    create_aurora_global, create_global_table, create_group, request_replica, unique_name, wait_replicas_active,
};
use crate::roles::{Function, StackRoles};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetRegion, RrType,
};
use serde_json::{Value, json};
use shared::topology::RoutingBackend;
use shared::{Ledger, RegionalClients, Topology};
use std::collections::BTreeMap;

pub const LEDGER_TABLE: &str = "multisite-ledger";
pub const DOMAIN: &str = "example.com";
pub const RECORD_NAME: &str = "app.example.com";
/// The Global Table's TTL attribute.
pub const TTL_ATTRIBUTE: &str = "expires_at";

/// Sizes of an Auto Scaling group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSizes {
    pub min: i32,
    pub desired: i32,
    pub max: i32,
}

/// What to build. `Deployment::spec(regions)` gives the bare minimum (health checks, ledger); the
/// `with_*` methods add the rest.
#[derive(Debug, Clone)]
pub struct DeploymentSpec {
    /// Cells in failover priority order; the first holds the Aurora writer.
    pub regions: Vec<String>,
    /// Where the functions run: the ledger is created here.
    pub home: String,
    pub name: String,
    /// A hosted zone with a latency record per Region, guarded by its health check.
    pub dns: bool,
    /// An Aurora global cluster with one member per Region.
    pub aurora: bool,
    /// An Auto Scaling group (with a launch configuration; the emulator starts instances) per Region.
    pub groups: Option<GroupSizes>,
    /// A Global Table with a replica in every Region and TTL on (`None`: only named in the topology).
    pub global_table: Option<String>,
    pub rpo_budget_ms: u64,
    pub failover_policy: Value,
    pub scaling: Value,
    /// The ledger as a Global Table with a replica in every Region (as the template creates it),
    /// instead of a table in the home Region only.
    pub ledger_replicas: bool,
    /// How failover takes a Region out of routing: health checks (default) or ARC routing
    /// controls (a cluster, controls, safety rule and RECOVERY_CONTROL health checks are built).
    pub routing: RoutingBackend,
}

impl DeploymentSpec {
    pub fn with_ledger_replicas(mut self) -> Self {
        self.ledger_replicas = true;
        self
    }

    /// Route with ARC routing controls instead of health checks.
    pub fn with_arc(mut self) -> Self {
        self.routing = RoutingBackend::Arc;
        self
    }

    /// Route with `backend` (a test suite run against both backends).
    pub fn with_routing(mut self, backend: RoutingBackend) -> Self {
        self.routing = backend;
        self
    }

    pub fn with_dns(mut self) -> Self {
        self.dns = true;
        self
    }

    pub fn with_aurora(mut self) -> Self {
        self.aurora = true;
        self
    }

    pub fn with_groups(mut self, min: i32, desired: i32, max: i32) -> Self {
        self.groups = Some(GroupSizes { min, desired, max });
        self
    }

    pub fn with_global_table(mut self, table: &str) -> Self {
        self.global_table = Some(table.to_owned());
        self
    }

    pub fn with_failover_policy(mut self, policy: Value) -> Self {
        self.failover_policy = policy;
        self
    }

    pub fn with_scaling(mut self, scaling: Value) -> Self {
        self.scaling = scaling;
        self
    }

    pub fn with_rpo_budget_ms(mut self, ms: u64) -> Self {
        self.rpo_budget_ms = ms;
        self
    }

    /// Builds everything in the emulator and returns the deployment.
    pub async fn create(self, emulator: &Emulator) -> Deployment {
        Deployment::create(emulator, self).await
    }
}

/// What was built, and the topology that describes it.
pub struct Deployment {
    pub topology: Topology,
    pub clients: RegionalClients,
    pub home: String,
    /// The endpoint health check of each Region (its alarm watches it).
    pub health_checks: BTreeMap<String, String>,
    /// With the ARC backend: the cluster, controls, rule and RECOVERY_CONTROL health checks.
    pub arc: Option<ArcSetup>,
    pub hosted_zone_id: Option<String>,
    pub global_cluster_id: Option<String>,
}

impl Deployment {
    /// The minimum: `regions` as cells (the home Region is the second one when there are several,
    /// so that the first, usually the one tests fail, is not where the functions run).
    pub fn spec(regions: &[&str]) -> DeploymentSpec {
        let home = regions.get(1).or(regions.first()).copied().unwrap_or("eu-west-1");
        DeploymentSpec {
            regions: regions.iter().map(|r| (*r).to_owned()).collect(),
            home: home.to_owned(),
            name: "drill".into(),
            dns: false,
            aurora: false,
            groups: None,
            global_table: None,
            rpo_budget_ms: 2000,
            failover_policy: json!({}),
            scaling: json!({}),
            ledger_replicas: false,
            routing: RoutingBackend::HealthCheck,
        }
    }

    pub async fn create(emulator: &Emulator, spec: DeploymentSpec) -> Deployment {
        let regions: Vec<&str> = spec.regions.iter().map(String::as_str).collect();
        let clients = emulator.clients(&regions).await;
        let home = spec.home.as_str();
        let route53 = &clients.region(home).expect("home Region").route53;

        let mut health_checks = BTreeMap::new();
        for region in &regions {
            let created = route53
                .create_health_check()
                .caller_reference(unique_name(region))
                .health_check_config(
                    HealthCheckConfig::builder()
                        .r#type(HealthCheckType::Https)
                        .fully_qualified_domain_name(format!("{region}.{RECORD_NAME}"))
                        .port(443)
                        .resource_path("/health")
                        .build()
                        .expect("health check config"),
                )
                .send()
                .await
                .expect("create health check");
            health_checks.insert((*region).to_owned(), created.health_check.map(|h| h.id).expect("health check id"));
        }

        let arc = match spec.routing {
            RoutingBackend::HealthCheck => None,
            RoutingBackend::Arc => {
                let at_least = spec.failover_policy["min_healthy_regions"].as_u64().unwrap_or(1) as usize;
                Some(crate::arc::create(emulator, &regions, at_least, route53).await.expect("the ARC routing setup"))
            }
        };
        // The health check that guards each Region's record: its routing control's with ARC.
        let record_checks = arc.as_ref().map(|a| a.health_checks.clone()).unwrap_or_else(|| health_checks.clone());

        let hosted_zone_id = if spec.dns {
            let zone = route53
                .create_hosted_zone()
                .name(DOMAIN)
                .caller_reference(unique_name("zone"))
                .send()
                .await
                .expect("create hosted zone");
            let id = zone.hosted_zone.map(|z| z.id).expect("zone id");
            let id = id.trim_start_matches("/hostedzone/").to_owned();
            let mut batch = ChangeBatch::builder();
            for (i, region) in regions.iter().enumerate() {
                let record = ResourceRecordSet::builder()
                    .name(RECORD_NAME)
                    .r#type(RrType::A)
                    .set_identifier(*region)
                    .region(ResourceRecordSetRegion::from(*region))
                    .ttl(60)
                    .health_check_id(&record_checks[*region])
                    .resource_records(ResourceRecord::builder().value(address_of(i)).build().expect("record"))
                    .build()
                    .expect("record set");
                batch = batch.changes(
                    Change::builder().action(ChangeAction::Create).resource_record_set(record).build().expect("change"),
                );
            }
            route53
                .change_resource_record_sets()
                .hosted_zone_id(&id)
                .change_batch(batch.build().expect("batch"))
                .send()
                .await
                .expect("latency records");
            Some(id)
        } else {
            None
        };

        let (global_cluster_id, arns) = if spec.aurora {
            let id = unique_name("sessions");
            let members: Vec<(&str, String)> = regions.iter().map(|r| (*r, format!("db-{r}"))).collect();
            let member_refs: Vec<(&str, &str)> = members.iter().map(|(r, m)| (*r, m.as_str())).collect();
            let arns = create_aurora_global(&clients, &id, &member_refs).await;
            (Some(id), arns)
        } else {
            (None, Vec::new())
        };

        if let Some(sizes) = spec.groups {
            for region in &regions {
                let autoscaling = &clients.region(region).expect("region").autoscaling;
                create_group(autoscaling, region, sizes.min, sizes.desired, sizes.max).await;
            }
        }

        let table = spec.global_table.clone().unwrap_or_else(|| "UserSessions".into());
        if spec.global_table.is_some() {
            let others: Vec<&str> = regions.iter().copied().filter(|r| *r != home).collect();
            create_global_table(&clients, &table, home, &others).await;
            // TTL on, as a deployment has it: lag-probe's canaries expire through it.
            for region in &regions {
                clients
                    .region(region)
                    .expect("region")
                    .dynamodb
                    .update_time_to_live()
                    .table_name(&table)
                    .time_to_live_specification(
                        aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                            .enabled(true)
                            .attribute_name(TTL_ATTRIBUTE)
                            .build()
                            .expect("ttl"),
                    )
                    .send()
                    .await
                    .expect("enable TTL");
            }
        }
        let home_ddb = &clients.region(home).expect("home Region").dynamodb;
        Ledger::create_table(home_ddb, LEDGER_TABLE, home).await.expect("ledger table");
        if spec.ledger_replicas {
            for region in regions.iter().copied().filter(|r| *r != home) {
                request_replica(home_ddb, LEDGER_TABLE, region).await;
                wait_replicas_active(home_ddb, LEDGER_TABLE, &[region]).await;
            }
        }

        // CloudWatch: each Region's health alarm lives in its watcher Region (the next cell), in
        // state OK, as on a deployment that has been running. failover confirms a change against
        // it (DescribeAlarms) before acting.
        for region in &regions {
            let watcher = watcher_of(&regions, region);
            let cloudwatch = &clients.region(watcher).expect("watcher Region").cloudwatch;
            let dimension = aws_sdk_cloudwatch::types::Dimension::builder()
                .name("HealthCheckId")
                .value(&health_checks[*region])
                .build();
            cloudwatch
                .put_metric_alarm()
                .alarm_name(alarm_name(region))
                .namespace("AWS/Route53")
                .metric_name("HealthCheckStatus")
                .dimensions(dimension)
                .statistic(aws_sdk_cloudwatch::types::Statistic::Minimum)
                .period(60)
                .evaluation_periods(1)
                .threshold(1.0)
                .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::LessThanThreshold)
                .send()
                .await
                .expect("PutMetricAlarm");
            set_alarm_state(&clients, watcher, &alarm_name(region), "OK").await;
        }

        let cells: Vec<Value> = regions
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let mut cell = json!({"region": r, "health_check_id": record_checks[*r],
                    "auto_scaling_group": format!("web-{r}"),
                    "alarms": [{"name": alarm_name(r), "region": watcher_of(&regions, r)}]});
                if let Some(arn) = arns.get(i) {
                    cell["aurora_cluster_arn"] = arn.clone().into();
                }
                cell
            })
            .collect();
        let mut topology = json!({
            "name": spec.name, "cells": cells,
            "routing": {"hosted_zone_id": hosted_zone_id.clone().unwrap_or_else(|| "Z1".into()), "record_name": RECORD_NAME},
            "global_table": table, "ledger_table": LEDGER_TABLE, "rpo_budget_ms": spec.rpo_budget_ms,
            "failover_policy": spec.failover_policy, "scaling": spec.scaling,
            // The ledger replica every fleet decision goes to: where the ledger table is created.
            "arbiter": {"region": home}
        });
        if let Some(id) = &global_cluster_id {
            topology["aurora"] = json!({"global_cluster_id": id});
        }
        if let Some(arc) = &arc {
            topology["routing"]["backend"] = "arc".into();
            topology["routing"]["arc"] = arc.topology_block();
        }
        let topology = Topology::from_json(&topology.to_string()).expect("the deployment's topology is valid");
        Deployment { topology, clients, home: spec.home, health_checks, arc, hosted_zone_id, global_cluster_id }
    }

    /// The roles of the stack deployed in `region`, rendered from `template.yaml` for this
    /// deployment's parameters and created in the emulator.
    pub fn stack_roles(&self, emulator: &Emulator, region: &str) -> StackRoles {
        crate::roles::stack_roles_for(emulator, &self.topology, region)
    }

    /// Clients for every Region of the topology signed with `function`'s role as deployed in
    /// `region`: what the handler under test may use.
    pub async fn function_clients(&self, emulator: &Emulator, function: Function, region: &str) -> RegionalClients {
        crate::roles::function_clients(emulator, &self.topology, function, region).await
    }

    /// The ledger, as the functions running in the home Region see it.
    pub fn ledger(&self) -> Ledger {
        Ledger::new(self.clients.region(&self.home).expect("home Region").dynamodb.clone(), LEDGER_TABLE, &self.home)
    }
}

impl Deployment {
    /// The Region whose CloudWatch evaluates `region`'s health alarm (and whose functions act on
    /// its changes).
    pub fn watcher(&self, region: &str) -> String {
        let regions: Vec<&str> = self.topology.regions().collect();
        watcher_of(&regions, region).to_owned()
    }

    /// Sets `region`'s health alarm to `state` (`ALARM`, `OK`) with SetAlarmState in its watcher
    /// Region and returns the "CloudWatch Alarm State Change" event CloudWatch put on that
    /// Region's default bus for it, exactly as EventBridge delivers it.
    pub async fn alarm_change(&self, emulator: &Emulator, region: &str, state: &str) -> Value {
        let watcher = self.watcher(region);
        let alarm = alarm_name(region);
        let seen = recorded_events(emulator, &watcher).len();
        set_alarm_state(&self.clients, &watcher, &alarm, state).await;
        let found = crate::fixtures::eventually(
            std::time::Duration::from_secs(5),
            std::time::Duration::from_millis(20),
            || async {
                recorded_events(emulator, &watcher)
                    .into_iter()
                    .skip(seen)
                    .find(|e| e["detail"]["alarmName"] == alarm.as_str() && e["detail"]["state"]["value"] == state)
            },
        )
        .await;
        found.unwrap_or_else(|| panic!("no state-change event for {alarm} -> {state} in {watcher}"))
    }
}

/// The account the emulator's resources live in (moto's default) and the identity the functions
/// under test run as.
pub const ACCOUNT: &str = "123456789012";

pub fn identity() -> shared::alarm::Identity {
    shared::alarm::Identity { partition: "aws".into(), account: ACCOUNT.into() }
}

/// The next cell in priority order: it never shares the fate of the Region it watches.
pub fn watcher_of<'a>(regions: &[&'a str], region: &str) -> &'a str {
    let i = regions.iter().position(|r| *r == region).unwrap_or(0);
    regions[(i + 1) % regions.len()]
}

/// SetAlarmState (as the administrator).
pub async fn set_alarm_state(clients: &RegionalClients, region: &str, alarm: &str, state: &str) {
    clients
        .region(region)
        .expect("Region")
        .cloudwatch
        .set_alarm_state()
        .alarm_name(alarm)
        .state_value(aws_sdk_cloudwatch::types::StateValue::from(state))
        .state_reason(format!("test sets {state}"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("SetAlarmState {alarm} {state} in {region}: {e:?}"));
}

/// The alarm state-change events recorded on `region`'s default bus, oldest first.
pub fn recorded_events(emulator: &Emulator, region: &str) -> Vec<Value> {
    let (status, body) = emulator.control("GET", &format!("/_multisite/events?region={region}"), None);
    assert_eq!(status, 200, "GET /_multisite/events: {body}");
    body["events"].as_array().cloned().unwrap_or_default()
}

/// The health alarm of a Region in deployments built here (and in the `events/` samples).
pub fn alarm_name(region: &str) -> String {
    format!("web-{region}-unhealthy")
}

/// The address the latency record of the `index`-th Region answers with (TEST-NET-1).
pub fn address_of(index: usize) -> String {
    format!("192.0.2.{}", 10 + index)
}

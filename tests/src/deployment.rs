//! The one builder of a multisite deployment in the emulator, for the tests, the benchmarks and
//! the drill (`bench/runner.py` takes the drill's, `drill --setup-only`): health checks, optionally
//! a hosted zone with a latency record per Region, ARC routing controls, an Aurora global cluster,
//! Auto Scaling groups and the data Global Table; always the ledger and a real CloudWatch health
//! alarm per Region, evaluated in its watcher Region; and the topology that describes it, validated
//! by the same code the functions use. All of it as the administrator (set-up). Every step returns
//! a [`BuildError`] naming what failed, with the SDK's error chain.

use crate::Emulator;
use crate::arc::ArcSetup;
use crate::roles::{Function, StackRoles};
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricDatum, StateValue, Statistic};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateReplicationGroupMemberAction, KeySchemaElement, KeyType,
    ReplicationGroupUpdate, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_route53::types::{
    Change, ChangeAction, ChangeBatch, HealthCheckConfig, HealthCheckType, ResourceRecord, ResourceRecordSet,
    ResourceRecordSetRegion, RrType,
};
use serde_json::{Map, Value, json};
use shared::capacity::GroupSizes;
use shared::topology::RoutingBackend;
use shared::{Ledger, RegionalClients, Topology};
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

pub const LEDGER_TABLE: &str = "multisite-ledger";
pub const DOMAIN: &str = "example.com";
pub const RECORD_NAME: &str = "app.example.com";
/// The data table's name when a spec names none (the topology always names one).
pub const DATA_TABLE: &str = "UserSessions";
/// The data table's TTL attribute unless the spec says otherwise.
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// The Aurora global cluster (its members are `sessions-<region>`), as in `shared/topology.example.json`.
pub const GLOBAL_CLUSTER: &str = "sessions-global";
/// How long a replica may take to become ACTIVE.
const REPLICA_WAIT: Duration = Duration::from_secs(30);

/// A set-up step that failed: what was being done, and why (the SDK's error chain).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

/// `.step("what was being done")` on any error, keeping the SDK's error chain in the message.
trait Step<T> {
    fn step(self, what: impl fmt::Display) -> Result<T, BuildError>;
}

impl<T, E: std::error::Error> Step<T> for Result<T, E> {
    fn step(self, what: impl fmt::Display) -> Result<T, BuildError> {
        self.map_err(|e| BuildError(format!("{what}: {}", DisplayErrorContext(&e))))
    }
}

fn missing(what: impl fmt::Display) -> BuildError {
    BuildError(format!("{what}"))
}

/// The data Global Table (`topology.global_table`), created in the first Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTable {
    pub name: String,
    /// A replica in every other Region (ACTIVE before the build returns); `false`: the table in
    /// the first Region only, as the drill builds it for the provisioner to add the replicas.
    pub replicated: bool,
    /// TTL enabled on this attribute in every replica built (`None`: TTL off).
    pub ttl_attribute: Option<String>,
}

impl DataTable {
    /// `name` with a replica in every Region and TTL on [`TTL_ATTRIBUTE`].
    pub fn named(name: &str) -> Self {
        Self { name: name.to_owned(), replicated: true, ttl_attribute: Some(TTL_ATTRIBUTE.to_owned()) }
    }

    /// Only the first Region's table: the replicas are the provisioner's work.
    pub fn unreplicated(mut self) -> Self {
        self.replicated = false;
        self
    }

    pub fn with_ttl_attribute(mut self, attribute: Option<&str>) -> Self {
        self.ttl_attribute = attribute.map(str::to_owned);
        self
    }
}

/// What to build. `Deployment::spec(regions)` gives the bare minimum (health checks, alarms,
/// ledger); the `with_*` methods add the rest.
#[derive(Debug, Clone)]
pub struct DeploymentSpec {
    /// Cells in failover priority order; the first holds the Aurora writer and the data table.
    pub regions: Vec<String>,
    /// Where the functions under test run.
    pub home: String,
    /// The ledger replica every fleet decision goes to (`topology.arbiter`): the ledger is
    /// created there. The home Region unless set.
    pub arbiter: Option<String>,
    pub name: String,
    /// A hosted zone with a latency record per Region, guarded by its health check.
    pub dns: bool,
    /// An Aurora global cluster with one member per Region.
    pub aurora: bool,
    /// An Auto Scaling group (with a launch configuration; the emulator starts instances) per Region.
    pub groups: Option<GroupSizes>,
    /// The data Global Table (`None`: only named in the topology, [`DATA_TABLE`]).
    pub data_table: Option<DataTable>,
    pub rpo_budget_ms: u64,
    pub rto_objective_seconds: u64,
    pub failover_policy: Value,
    pub scaling: Value,
    /// The ledger as a Global Table with a replica in every Region (as the template creates it),
    /// instead of a table in the arbiter's Region only.
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

    pub fn with_groups(mut self, sizes: GroupSizes) -> Self {
        self.groups = Some(sizes);
        self
    }

    /// A data table `table` with a replica in every Region and TTL on [`TTL_ATTRIBUTE`].
    pub fn with_global_table(self, table: &str) -> Self {
        self.with_data_table(DataTable::named(table))
    }

    pub fn with_data_table(mut self, table: DataTable) -> Self {
        self.data_table = Some(table);
        self
    }

    pub fn with_home(mut self, region: &str) -> Self {
        self.home = region.to_owned();
        self
    }

    pub fn with_arbiter(mut self, region: &str) -> Self {
        self.arbiter = Some(region.to_owned());
        self
    }

    pub fn with_name(mut self, name: &str) -> Self {
        self.name = name.to_owned();
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

    pub fn with_rto_objective_seconds(mut self, seconds: u64) -> Self {
        self.rto_objective_seconds = seconds;
        self
    }

    /// The ledger's Region: the arbiter.
    pub fn arbiter(&self) -> &str {
        self.arbiter.as_deref().unwrap_or(&self.home)
    }

    /// Builds everything in the emulator and returns the deployment, or the step that failed.
    pub async fn build(self, emulator: &Emulator) -> Result<Deployment, BuildError> {
        Deployment::build(emulator, self).await
    }

    /// [`Self::build`] for tests: a failed step is a test failure.
    pub async fn create(self, emulator: &Emulator) -> Deployment {
        self.build(emulator).await.unwrap_or_else(|e| panic!("building the deployment: {e}"))
    }
}

/// What was built, and the topology that describes it.
pub struct Deployment {
    pub topology: Topology,
    /// The topology as JSON (what `MULTISITE_TOPOLOGY` holds).
    pub topology_json: Value,
    pub clients: RegionalClients,
    pub home: String,
    /// The ledger's Region (the topology's arbiter).
    pub arbiter: String,
    /// The endpoint health check of each Region (its alarm watches it).
    pub health_checks: BTreeMap<String, String>,
    /// Each Region's health alarm -> the Region whose CloudWatch evaluates it.
    pub alarm_regions: BTreeMap<String, String>,
    /// The latency record's value -> the Region whose record holds it (with `dns`).
    pub record_values: BTreeMap<String, String>,
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
            arbiter: None,
            name: "drill".into(),
            dns: false,
            aurora: false,
            groups: None,
            data_table: None,
            rpo_budget_ms: 2000,
            rto_objective_seconds: shared::topology::DEFAULT_RTO_OBJECTIVE_SECONDS,
            failover_policy: json!({}),
            scaling: json!({}),
            ledger_replicas: false,
            routing: RoutingBackend::HealthCheck,
        }
    }

    /// Builds `spec` in the emulator, step by step (each a function below), then the topology.
    pub async fn build(emulator: &Emulator, spec: DeploymentSpec) -> Result<Deployment, BuildError> {
        let regions: Vec<&str> = spec.regions.iter().map(String::as_str).collect();
        if regions.is_empty() {
            return Err(missing("a deployment needs at least one Region"));
        }
        let clients = emulator.clients(&regions).await;
        let home = spec.home.as_str();
        let arbiter = spec.arbiter().to_owned();
        let route53 = &clients.region(home).map_err(missing)?.route53;

        let health_checks = build_health_checks(route53, &regions).await?;
        let arc = match spec.routing {
            RoutingBackend::HealthCheck => None,
            RoutingBackend::Arc => {
                let at_least = spec.failover_policy["min_healthy_regions"].as_u64().unwrap_or(1) as usize;
                let arc = crate::arc::create(emulator, &regions, at_least, route53).await;
                Some(arc.map_err(|e| BuildError(format!("the ARC routing setup: {e}")))?)
            }
        };
        // The health check that guards each Region's record: its routing control's with ARC.
        let record_checks = arc.as_ref().map(|a| a.health_checks.clone()).unwrap_or_else(|| health_checks.clone());
        let (hosted_zone_id, record_values) = match spec.dns {
            true => {
                let (zone, values) = build_latency_records(route53, &regions, &record_checks).await?;
                (Some(zone), values)
            }
            false => (None, BTreeMap::new()),
        };
        let (global_cluster_id, aurora_arns) = match spec.aurora {
            true => {
                let members: Vec<(&str, String)> = regions.iter().map(|r| (*r, aurora_member(r))).collect();
                let members: Vec<(&str, &str)> = members.iter().map(|(r, m)| (*r, m.as_str())).collect();
                (Some(GLOBAL_CLUSTER.to_owned()), new_aurora_global(&clients, GLOBAL_CLUSTER, &members).await?)
            }
            false => (None, Vec::new()),
        };
        if let Some(sizes) = spec.groups {
            for region in &regions {
                let autoscaling = &clients.region(region).map_err(missing)?.autoscaling;
                new_group(autoscaling, region, sizes).await?;
            }
        }
        if let Some(table) = &spec.data_table {
            build_data_table(&clients, &regions, table).await?;
        }
        build_ledger(&clients, &regions, &arbiter, spec.ledger_replicas).await?;
        let alarm_regions = build_alarms(&clients, &regions, &health_checks).await?;

        let topology_json = describe(
            &spec,
            &record_checks,
            &aurora_arns,
            hosted_zone_id.as_deref(),
            global_cluster_id.as_deref(),
            arc.as_ref(),
        );
        let topology = Topology::from_json(&topology_json.to_string())
            .map_err(|e| BuildError(format!("the deployment's topology is invalid: {e}")))?;
        Ok(Deployment {
            topology,
            topology_json,
            clients,
            home: spec.home,
            arbiter,
            health_checks,
            alarm_regions,
            record_values,
            arc,
            hosted_zone_id,
            global_cluster_id,
        })
    }

    /// The template.yaml parameters that deploy this topology (one stack per Region); the first
    /// Region's stack manages the data table's replicas (`DataTableHomeRegion`).
    pub fn template_parameters(&self) -> Result<Map<String, Value>, BuildError> {
        let mut parameters = crate::roles::template_parameters(&self.topology)
            .map_err(|e| BuildError(format!("the topology cannot be expressed as template.yaml parameters: {e}")))?;
        if let Some(first) = self.topology.regions().next() {
            parameters.insert("DataTableHomeRegion".into(), json!(first));
        }
        Ok(parameters)
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

    /// The ledger, as the functions see it: the arbiter's replica.
    pub fn ledger(&self) -> Ledger {
        let dynamodb = self.clients.region(&self.arbiter).expect("the arbiter's Region").dynamodb.clone();
        Ledger::new(dynamodb, LEDGER_TABLE, &self.arbiter)
    }

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
        let found = crate::fixtures::eventually(Duration::from_secs(5), Duration::from_millis(20), || async {
            recorded_events(emulator, &watcher)
                .into_iter()
                .skip(seen)
                .find(|e| e["detail"]["alarmName"] == alarm.as_str() && e["detail"]["state"]["value"] == state)
        })
        .await;
        found.unwrap_or_else(|| panic!("no state-change event for {alarm} -> {state} in {watcher}"))
    }
}

// ---- the steps -----------------------------------------------------------------------------

/// An HTTPS endpoint health check per Region (10 s interval, one failure: the fast detection a
/// multi-Region deployment wants), by Region.
async fn build_health_checks(
    route53: &aws_sdk_route53::Client,
    regions: &[&str],
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut health_checks = BTreeMap::new();
    for region in regions {
        let config = HealthCheckConfig::builder()
            .r#type(HealthCheckType::Https)
            .fully_qualified_domain_name(format!("{region}.{RECORD_NAME}"))
            .port(443)
            .resource_path("/health")
            .request_interval(10)
            .failure_threshold(1)
            .build()
            .step("health check config")?;
        let created = route53
            .create_health_check()
            .caller_reference(crate::fixtures::unique_name(region))
            .health_check_config(config)
            .send()
            .await
            .step(format!("CreateHealthCheck for {region}"))?;
        let id = created.health_check.map(|h| h.id).ok_or_else(|| missing("CreateHealthCheck answered no id"))?;
        health_checks.insert((*region).to_owned(), id);
    }
    Ok(health_checks)
}

/// The hosted zone [`DOMAIN`] with a latency record [`RECORD_NAME`] per Region guarded by
/// `record_checks`; returns the zone id (without `/hostedzone/`) and value -> Region.
async fn build_latency_records(
    route53: &aws_sdk_route53::Client,
    regions: &[&str],
    record_checks: &BTreeMap<String, String>,
) -> Result<(String, BTreeMap<String, String>), BuildError> {
    let zone = route53
        .create_hosted_zone()
        .name(DOMAIN)
        .caller_reference(crate::fixtures::unique_name("zone"))
        .send()
        .await
        .step("CreateHostedZone")?;
    let id = zone.hosted_zone.map(|z| z.id).ok_or_else(|| missing("CreateHostedZone answered no zone"))?;
    let id = id.trim_start_matches("/hostedzone/").to_owned();
    let mut values = BTreeMap::new();
    let mut batch = ChangeBatch::builder();
    for (i, region) in regions.iter().enumerate() {
        let check = record_checks.get(*region).ok_or_else(|| missing(format!("no health check for {region}")))?;
        let value = address_of(i);
        values.insert(value.clone(), (*region).to_owned());
        let record = ResourceRecordSet::builder()
            .name(RECORD_NAME)
            .r#type(RrType::A)
            .set_identifier(*region)
            .region(ResourceRecordSetRegion::from(*region))
            .ttl(60)
            .health_check_id(check)
            .resource_records(ResourceRecord::builder().value(value).build().step("record")?)
            .build()
            .step("record set")?;
        batch = batch.changes(
            Change::builder().action(ChangeAction::Create).resource_record_set(record).build().step("change")?,
        );
    }
    route53
        .change_resource_record_sets()
        .hosted_zone_id(&id)
        .change_batch(batch.build().step("change batch")?)
        .send()
        .await
        .step("ChangeResourceRecordSets (latency records)")?;
    Ok((id, values))
}

/// The data table in the first Region, its replicas (one change at a time, each ACTIVE before the
/// next, as DynamoDB requires) and TTL in each replica built.
async fn build_data_table(clients: &RegionalClients, regions: &[&str], table: &DataTable) -> Result<(), BuildError> {
    let first = regions[0];
    let ddb = &clients.region(first).map_err(missing)?.dynamodb;
    new_table(ddb, &table.name, &["pk"]).await?;
    let built: &[&str] = if table.replicated { regions } else { &regions[..1] };
    for region in &built[1..] {
        add_replica(ddb, &table.name, region).await?;
        replicas_active(ddb, &table.name, &[region]).await?;
    }
    // TTL on, as a deployment has it: lag-probe's canaries expire through it.
    let Some(attribute) = &table.ttl_attribute else { return Ok(()) };
    for region in built {
        let ttl = TimeToLiveSpecification::builder().enabled(true).attribute_name(attribute).build().step("ttl")?;
        clients
            .region(region)
            .map_err(missing)?
            .dynamodb
            .update_time_to_live()
            .table_name(&table.name)
            .time_to_live_specification(ttl)
            .send()
            .await
            .step(format!("UpdateTimeToLive {} in {region}", table.name))?;
    }
    Ok(())
}

/// The ledger, created in the arbiter's Region (as the template's LedgerTable,
/// `AWS::DynamoDB::GlobalTable`), with a replica in every other Region when `replicas`.
async fn build_ledger(
    clients: &RegionalClients,
    regions: &[&str],
    arbiter: &str,
    replicas: bool,
) -> Result<(), BuildError> {
    let ddb = &clients.region(arbiter).map_err(missing)?.dynamodb;
    Ledger::create_table(ddb, LEDGER_TABLE, arbiter).await.step(format!("the ledger table in {arbiter}"))?;
    if replicas {
        for region in regions.iter().copied().filter(|r| *r != arbiter) {
            add_replica(ddb, LEDGER_TABLE, region).await?;
            replicas_active(ddb, LEDGER_TABLE, &[region]).await?;
        }
    }
    Ok(())
}

/// Each Region's health alarm, in its watcher Region (the next cell): Route 53's
/// HealthCheckStatus of its endpoint check below 1. One healthy datapoint brings the new alarm from
/// INSUFFICIENT_DATA to OK, as on a deployment that has been running; it must then be OK.
/// failover confirms a change against it (DescribeAlarms) before acting. Alarm -> watcher.
async fn build_alarms(
    clients: &RegionalClients,
    regions: &[&str],
    health_checks: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, BuildError> {
    let mut alarm_regions = BTreeMap::new();
    for region in regions {
        let watcher = watcher_of(regions, region);
        let alarm = alarm_name(region);
        alarm_regions.insert(alarm.clone(), watcher.to_owned());
        let cloudwatch = &clients.region(watcher).map_err(missing)?.cloudwatch;
        let check = health_checks.get(*region).ok_or_else(|| missing(format!("no health check for {region}")))?;
        let dimension = Dimension::builder().name("HealthCheckId").value(check).build();
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
            .step(format!("PutMetricAlarm {alarm} in {watcher}"))?;
        let now = aws_sdk_cloudwatch::primitives::DateTime::from(std::time::SystemTime::now());
        cloudwatch
            .put_metric_data()
            .namespace("AWS/Route53")
            .metric_data(
                MetricDatum::builder()
                    .metric_name("HealthCheckStatus")
                    .dimensions(dimension)
                    .value(1.0)
                    .timestamp(now)
                    .build(),
            )
            .send()
            .await
            .step(format!("PutMetricData HealthCheckStatus of {region} in {watcher}"))?;
        let described = cloudwatch.describe_alarms().alarm_names(&alarm).send().await;
        let described = described.step(format!("DescribeAlarms {alarm} in {watcher}"))?;
        let state = described.metric_alarms().first().and_then(|a| a.state_value().cloned());
        if state != Some(StateValue::Ok) {
            return Err(BuildError(format!(
                "alarm {alarm} in {watcher} is {state:?} after a healthy HealthCheckStatus datapoint, not OK"
            )));
        }
    }
    Ok(alarm_regions)
}

/// The topology describing what was built.
fn describe(
    spec: &DeploymentSpec,
    record_checks: &BTreeMap<String, String>,
    aurora_arns: &[String],
    hosted_zone_id: Option<&str>,
    global_cluster_id: Option<&str>,
    arc: Option<&ArcSetup>,
) -> Value {
    let regions: Vec<&str> = spec.regions.iter().map(String::as_str).collect();
    let cells: Vec<Value> = regions
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut cell = json!({"region": r, "health_check_id": record_checks.get(*r),
                "auto_scaling_group": group_name(r),
                "alarms": [{"name": alarm_name(r), "region": watcher_of(&regions, r)}]});
            if let Some(arn) = aurora_arns.get(i) {
                cell["aurora_cluster_arn"] = arn.clone().into();
            }
            cell
        })
        .collect();
    let table = spec.data_table.as_ref().map_or(DATA_TABLE, |t| t.name.as_str());
    let mut topology = json!({
        "name": spec.name, "cells": cells,
        "routing": {"hosted_zone_id": hosted_zone_id.unwrap_or("Z1"), "record_name": RECORD_NAME},
        "global_table": table, "ledger_table": LEDGER_TABLE, "rpo_budget_ms": spec.rpo_budget_ms,
        "rto_objective_seconds": spec.rto_objective_seconds,
        "failover_policy": spec.failover_policy, "scaling": spec.scaling,
        "arbiter": {"region": spec.arbiter()}
    });
    if let Some(id) = global_cluster_id {
        topology["aurora"] = json!({"global_cluster_id": id});
    }
    if let Some(arc) = arc {
        topology["routing"]["backend"] = "arc".into();
        topology["routing"]["arc"] = arc.topology_block();
    }
    topology
}

// ---- building blocks (the panicking `fixtures` wrap them for tests) ---------------------------

/// An on-demand table keyed by the string attributes `keys` (hash, then range), ACTIVE.
pub(crate) async fn new_table(ddb: &aws_sdk_dynamodb::Client, name: &str, keys: &[&str]) -> Result<(), BuildError> {
    let mut create = ddb.create_table().table_name(name).billing_mode(BillingMode::PayPerRequest);
    for (key, kind) in keys.iter().zip([KeyType::Hash, KeyType::Range]) {
        let attribute = AttributeDefinition::builder().attribute_name(*key).attribute_type(ScalarAttributeType::S);
        create = create
            .attribute_definitions(attribute.build().step("attribute definition")?)
            .key_schema(KeySchemaElement::builder().attribute_name(*key).key_type(kind).build().step("key")?);
    }
    create.send().await.step(format!("CreateTable {name}"))?;
    let active = crate::fixtures::eventually(Duration::from_secs(10), Duration::from_millis(50), || async {
        let table = ddb.describe_table().table_name(name).send().await.ok()?.table?;
        (table.table_status == Some(TableStatus::Active)).then_some(())
    })
    .await;
    active.ok_or_else(|| missing(format!("table {name} never became ACTIVE")))
}

/// Asks for one replica of `table` in `region` (one replica change per UpdateTable, as AWS allows).
pub(crate) async fn add_replica(ddb: &aws_sdk_dynamodb::Client, table: &str, region: &str) -> Result<(), BuildError> {
    let create = CreateReplicationGroupMemberAction::builder().region_name(region).build().step("replica")?;
    ddb.update_table()
        .table_name(table)
        .replica_updates(ReplicationGroupUpdate::builder().create(create).build())
        .send()
        .await
        .step(format!("UpdateTable {table}: add the {region} replica"))?;
    Ok(())
}

/// Waits until every Region in `regions` is an ACTIVE replica of `table`.
pub(crate) async fn replicas_active(
    ddb: &aws_sdk_dynamodb::Client,
    table: &str,
    regions: &[&str],
) -> Result<(), BuildError> {
    let statuses = || async {
        let described = ddb.describe_table().table_name(table).send().await.step(format!("DescribeTable {table}"))?;
        let replicas = described.table.and_then(|t| t.replicas).unwrap_or_default();
        Ok::<BTreeMap<String, String>, BuildError>(
            replicas
                .into_iter()
                .filter_map(|r| Some((r.region_name?, r.replica_status?.as_str().to_owned())))
                .collect(),
        )
    };
    let deadline = std::time::Instant::now() + REPLICA_WAIT;
    loop {
        let now = statuses().await?;
        if regions.iter().all(|r| now.get(*r).map(String::as_str) == Some("ACTIVE")) {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(BuildError(format!("replicas {regions:?} of {table} not all ACTIVE after 30 s: {now:?}")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An Aurora global cluster with one member cluster per `(region, cluster_id)`; the first member
/// is the writer. Returns the member ARNs in the same order.
pub(crate) async fn new_aurora_global(
    clients: &RegionalClients,
    global_id: &str,
    members: &[(&str, &str)],
) -> Result<Vec<String>, BuildError> {
    let mut arns = Vec::new();
    for (i, (region, cluster_id)) in members.iter().enumerate() {
        let rds = &clients.region(region).map_err(missing)?.rds;
        if i == 0 {
            rds.create_global_cluster()
                .global_cluster_identifier(global_id)
                .engine("aurora-postgresql")
                .engine_version("15.4")
                .send()
                .await
                .step(format!("CreateGlobalCluster {global_id}"))?;
        }
        let mut create = rds
            .create_db_cluster()
            .db_cluster_identifier(*cluster_id)
            .engine("aurora-postgresql")
            .engine_version("15.4")
            .global_cluster_identifier(global_id);
        if i == 0 {
            create = create.master_username("app").master_user_password("correct-horse-battery");
        }
        let created = create.send().await.step(format!("CreateDBCluster {cluster_id} in {region}"))?;
        let arn = created.db_cluster.and_then(|c| c.db_cluster_arn);
        arns.push(arn.ok_or_else(|| missing(format!("CreateDBCluster {cluster_id} answered no ARN")))?);
    }
    Ok(arns)
}

/// An Auto Scaling group [`group_name`] with its launch configuration `lc-web-<region>` (the
/// emulator starts instances for it).
pub(crate) async fn new_group(
    autoscaling: &aws_sdk_autoscaling::Client,
    region: &str,
    sizes: GroupSizes,
) -> Result<(), BuildError> {
    let launch_configuration = format!("lc-web-{region}");
    autoscaling
        .create_launch_configuration()
        .launch_configuration_name(&launch_configuration)
        .image_id("ami-12c6146b")
        .instance_type("t3.micro")
        .send()
        .await
        .step(format!("CreateLaunchConfiguration in {region}"))?;
    autoscaling
        .create_auto_scaling_group()
        .auto_scaling_group_name(group_name(region))
        .launch_configuration_name(&launch_configuration)
        .min_size(sizes.min)
        .desired_capacity(sizes.desired)
        .max_size(sizes.max)
        .availability_zones(format!("{region}a"))
        .send()
        .await
        .step(format!("CreateAutoScalingGroup in {region}"))?;
    Ok(())
}

// ---- names and the administrator's CloudWatch ----------------------------------------------

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
        .state_value(StateValue::from(state))
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

/// The Auto Scaling group of a Region in deployments built here.
pub fn group_name(region: &str) -> String {
    format!("web-{region}")
}

/// The Aurora member cluster of a Region in deployments built here (of [`GLOBAL_CLUSTER`]).
pub fn aurora_member(region: &str) -> String {
    format!("sessions-{region}")
}

/// The address the latency record of the `index`-th Region answers with (TEST-NET-1).
pub fn address_of(index: usize) -> String {
    format!("192.0.2.{}", 10 + index)
}

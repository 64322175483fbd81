//! The ledger: a DynamoDB table (a Global Table in production) where multisite records what it
//! decided and did, so that duplicate deliveries are recognised, restores know what to put back,
//! and failback can read the latest lag-probe verdict. Every fleet decision goes to one replica,
//! the topology's arbiter.
//!
//! Schema: partition key `pk` (S), sort key `sk` (S). A record stores its body as JSON in the
//! `doc` attribute plus `updated_at_ms`; conditional writes compare `version` (N).
//!
//! | pk                     | sk                          | record                                  |
//! |------------------------|-----------------------------|-----------------------------------------|
//! | `status`               | `fleet`                     | every Region's current status (below)   |
//! | `transition#<region>`  | `<alarm change time>#<to>`  | one transition and its steps' outcomes  |
//! | `scaling`              | `<the group's Region>`      | one group's pre-evacuation baseline     |
//! | `probe`                | `latest`                    | the latest lag-probe summary (gates)    |
//! | `probe`                | `report`                    | the latest full lag-probe report        |
//! | `approval`             | `<region>`                  | the Region's latest approval request    |
//!
//! The fleet record is the exception to `doc`: each Region's status is its own map attribute
//! `region#<name>` = `{status, changed_at_ms, cause}`, beside `alarm#<name>` (the newest alarm
//! change handled) and `settled#<region>` (the cause of its last fully applied transition), so an
//! evacuation can be claimed with one conditional write whose condition *is* the safety rules
//! ([`crate::policy::evacuation_condition`], rendered here), without reading the record first.

use crate::error::{AwsResultExt, Error};
use crate::policy::EvacuationRule;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue, ScalarAttributeType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

// The storage encoding (attribute names, the fleet record's key and shape) is the ledger's own:
// other crates go through `Ledger`'s methods and the record keys below.
const PK: &str = "pk";
const SK: &str = "sk";
const DOC: &str = "doc";
const UPDATED_AT: &str = "updated_at_ms";
const VERSION: &str = "version";

/// Partition of the fleet status record.
const STATUS_PK: &str = "status";
/// Sort key of the one record holding every Region's status. One record, changed with an
/// optimistic version check, serialises concurrent evacuations: two Regions alarming at once
/// cannot both pass the min-healthy rule.
const FLEET_SK: &str = "fleet";
/// Partition of the lag-probe results.
pub const PROBE_PK: &str = "probe";
/// Sort key of the latest lag-probe summary (what failback gates read).
pub const PROBE_LATEST_SK: &str = "latest";
/// Sort key of the latest full lag-probe report.
pub const PROBE_REPORT_SK: &str = "report";

/// Partition of the approval requests (`failover_policy.approval: required`): one item per
/// Region, its sort key the Region, holding the latest alarm evacuation that waited for an operator.
pub const APPROVAL_PK: &str = "approval";

/// Partition of one Region's transitions.
pub fn transition_pk(region: &str) -> String {
    format!("transition#{region}")
}

/// Partition of the scaler's records: one item per Auto Scaling group, its sort key the group's
/// Region.
pub const SCALING_PK: &str = "scaling";

/// Whether a Region serves traffic. A Region without a status entry is `Active`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub enum RegionStatus {
    Active,
    Evacuated,
}

/// One Region's entry in the fleet status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RegionStatusEntry {
    pub status: RegionStatus,
    /// When the status last changed (epoch ms, the writer's clock).
    pub changed_at_ms: u64,
    /// What caused it: the alarm change id, or `manual`.
    pub cause: String,
}

impl RegionStatusEntry {
    /// Whether an operator's request (not an alarm) set this status: `multisite evacuate` holds
    /// until `multisite failback`, whatever the alarms say (docs/operators.md).
    pub fn by_operator(&self) -> bool {
        self.cause.starts_with(crate::alarm::OPERATOR_CAUSE_PREFIX)
    }
}

/// The body of `status/fleet`: every Region's recorded status, written by failover.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FleetStatus {
    pub regions: std::collections::BTreeMap<String, RegionStatusEntry>,
    /// Per alarm, the state-change time (epoch ms) of the newest change that moved a Region: an
    /// older change of that alarm is stale and changes nothing (stored as `alarm#<name>`).
    #[serde(default)]
    pub alarms: std::collections::BTreeMap<String, u64>,
    /// Per Region, the cause of its latest entry once every step of that transition succeeded
    /// (stored as `settled#<region>`). An entry whose cause is not settled has work left: the
    /// scheduled reconcile finishes it.
    #[serde(default)]
    pub settled: std::collections::BTreeMap<String, String>,
}

impl FleetStatus {
    /// Region -> status for the Regions that have an entry.
    pub fn statuses(&self) -> HashMap<String, RegionStatus> {
        self.regions.iter().map(|(r, e)| (r.clone(), e.status)).collect()
    }

    pub fn status_of(&self, region: &str) -> RegionStatus {
        self.regions.get(region).map(|e| e.status).unwrap_or(RegionStatus::Active)
    }

    pub fn last_change_ms(&self, region: &str) -> Option<u64> {
        self.regions.get(region).map(|e| e.changed_at_ms)
    }

    /// Whether `region`'s latest transition still has steps to finish (it has an entry whose
    /// cause is not recorded as settled).
    pub fn unsettled(&self, region: &str) -> bool {
        self.regions.get(region).is_some_and(|e| self.settled.get(region) != Some(&e.cause))
    }

    /// The newest handled change time of `alarm`, if any.
    pub fn alarm_mark(&self, alarm: &str) -> Option<u64> {
        self.alarms.get(alarm).copied()
    }
}

/// The body of `probe/latest`, written by lag-probe and read by failback gates.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ProbeSummary {
    /// When the probe finished (epoch ms).
    pub measured_at_ms: u64,
    /// Largest replication lag measured over the pairs between active Regions (None when nothing
    /// was measured).
    pub max_lag_ms: Option<u64>,
    pub rpo_budget_ms: u64,
    /// A pair between active Regions exceeded the budget, timed out or could not be measured.
    pub rpo_breached: bool,
    /// Regions whose APIs could not be reached (Evacuated ones included).
    pub unreachable_regions: Vec<String>,
    /// Number of readiness rules that failed.
    pub readiness_failures: usize,
    /// What the probe found about each Region of the topology, Evacuated ones included (an
    /// evacuated Region that is back is measured before it may fail back). Records written
    /// before per-Region entries existed decode with an empty map: no Region was measured.
    #[serde(default)]
    pub regions: std::collections::BTreeMap<String, RegionProbe>,
}

/// One Region's entry in [`ProbeSummary::regions`]. Its pairs are the ordered pairs that involve
/// it in either direction (it is the source or the destination).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RegionProbe {
    /// Its DynamoDB API answered during the run.
    pub reachable: bool,
    /// Its pairs whose canaries arrived (every sample taken became visible).
    pub pairs_measured: usize,
    /// Its pairs in the topology: 2 x (Regions - 1).
    pub pairs_expected: usize,
    /// Largest replication lag over its pairs, a timed-out canary's wait included (None when
    /// nothing was measured).
    pub max_lag_ms: Option<u64>,
    /// One of its pairs exceeded the RPO budget or timed out.
    pub rpo_breached: bool,
    /// Every readiness rule about this Region passed (a rule that could not be checked has not
    /// passed).
    pub ready: bool,
    /// The rules about this Region that failed or could not be checked, one sentence each.
    pub readiness_failures: Vec<String>,
}

impl ProbeSummary {
    /// Whether this probe lets `region` fail back at `now_ms`: it must have measured `region`,
    /// be at most `max_age_ms` old, and found the Region reachable, every one of its pairs
    /// measured within the RPO budget and every readiness rule about it passed. `Err` says why
    /// the gate stays closed.
    pub fn failback_verdict(&self, region: &str, now_ms: u64, max_age_ms: u64) -> Result<(), String> {
        let Some(probe) = self.regions.get(region) else {
            return Err(format!("the latest lag-probe did not measure {region}: wait for one that does"));
        };
        let age_ms = now_ms.saturating_sub(self.measured_at_ms);
        if age_ms > max_age_ms {
            return Err(format!(
                "the latest lag-probe ran {age_ms} ms ago, more than the {max_age_ms} ms allowed: wait for a fresh one"
            ));
        }
        if !probe.reachable {
            return Err(format!("the latest lag-probe could not reach {region}"));
        }
        if probe.pairs_measured < probe.pairs_expected {
            return Err(format!(
                "the latest lag-probe measured {} of {region}'s {} Region pairs",
                probe.pairs_measured, probe.pairs_expected
            ));
        }
        if probe.rpo_breached {
            let lag = probe.max_lag_ms.map(|m| format!("{m} ms")).unwrap_or_else(|| "an unknown lag".into());
            return Err(format!(
                "the latest lag-probe measured {lag} of replication lag on {region}'s pairs, over the RPO budget of {} ms",
                self.rpo_budget_ms
            ));
        }
        if !probe.ready {
            return Err(format!(
                "the latest lag-probe found {region} not ready: {}",
                if probe.readiness_failures.is_empty() {
                    "no reason recorded".to_owned()
                } else {
                    probe.readiness_failures.join("; ")
                }
            ));
        }
        Ok(())
    }
}

/// A stored record: its body and bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct Record<T> {
    pub pk: String,
    pub sk: String,
    pub body: T,
    pub updated_at_ms: u64,
    pub version: u64,
}

/// What a successful claim changed: the fleet as it now is, and the claimed Region's entry
/// before (so a claim whose confirmation fails can be withdrawn exactly).
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub fleet: FleetStatus,
    pub version: u64,
    pub previous: Option<RegionStatusEntry>,
}

/// Whether a conditional write took effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WriteOutcome {
    Written,
    /// The condition failed: another writer (or an earlier delivery) got there first.
    AlreadyPresent,
}

/// The ledger table as seen from one Region.
#[derive(Debug, Clone)]
pub struct Ledger {
    dynamodb: Client,
    table: String,
    region: String,
}

impl Ledger {
    pub fn new(dynamodb: Client, table: impl Into<String>, region: impl Into<String>) -> Self {
        Self { dynamodb, table: table.into(), region: region.into() }
    }

    /// Reads one record (strongly consistent within this Region).
    pub async fn get<T: DeserializeOwned>(&self, pk: &str, sk: &str) -> Result<Option<Record<T>>, Error> {
        self.get_item(pk, sk).await?.map(|item| decode(&item)).transpose()
    }

    async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<HashMap<String, AttributeValue>>, Error> {
        let out = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(pk.to_owned()))
            .key(SK, AttributeValue::S(sk.to_owned()))
            .consistent_read(true)
            .send()
            .await
            .aws_context("GetItem", &self.region)?;
        Ok(out.item)
    }

    /// A Query of one partition.
    fn partition_query(&self, pk: &str) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.dynamodb
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
    }

    /// Reads every record under one partition key (one Query; ledgers stay small).
    pub async fn list<T: DeserializeOwned>(&self, pk: &str) -> Result<Vec<Record<T>>, Error> {
        let mut records = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .partition_query(pk)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .aws_context("Query", &self.region)?;
            for item in out.items() {
                records.push(decode(item)?);
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(records),
            }
        }
    }

    /// The `limit` records of one partition with the greatest sort keys, greatest first (one
    /// Query, newest first where the sort key starts with a time, as a transition's does).
    pub async fn newest<T: DeserializeOwned>(&self, pk: &str, limit: i32) -> Result<Vec<Record<T>>, Error> {
        let out = self
            .partition_query(pk)
            .scan_index_forward(false)
            .limit(limit)
            .send()
            .await
            .aws_context("Query", &self.region)?;
        out.items().iter().map(decode).collect()
    }

    /// Writes a record unconditionally (last writer wins), bumping its version.
    pub async fn put<T: Serialize>(
        &self,
        pk: &str,
        sk: &str,
        body: &T,
        version: u64,
        now_ms: u64,
    ) -> Result<(), Error> {
        self.dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(pk, sk, body, version, now_ms)?))
            .send()
            .await
            .aws_context("PutItem", &self.region)?;
        Ok(())
    }

    /// Writes a record only if none exists under its key: the primitive that makes a duplicate
    /// delivery recognisable.
    pub async fn put_if_absent<T: Serialize>(
        &self,
        pk: &str,
        sk: &str,
        body: &T,
        now_ms: u64,
    ) -> Result<WriteOutcome, Error> {
        let result = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .set_item(Some(encode(pk, sk, body, 1, now_ms)?))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        conditional_outcome(result.map(|_| ()), "PutItem", &self.region)
    }

    /// Replaces a record only if its stored version is still `expected_version` (optimistic
    /// concurrency); `expected_version` 0 means "only if absent".
    pub async fn put_if_version<T: Serialize>(
        &self,
        pk: &str,
        sk: &str,
        body: &T,
        expected_version: u64,
        now_ms: u64,
    ) -> Result<WriteOutcome, Error> {
        let request = self.dynamodb.put_item().table_name(&self.table).set_item(Some(encode(
            pk,
            sk,
            body,
            expected_version + 1,
            now_ms,
        )?));
        let request = if expected_version == 0 {
            request.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", PK)
        } else {
            request
                .condition_expression("#v = :v")
                .expression_attribute_names("#v", VERSION)
                .expression_attribute_values(":v", AttributeValue::N(expected_version.to_string()))
        };
        conditional_outcome(request.send().await.map(|_| ()), "PutItem", &self.region)
    }

    /// The fleet status and its version (0 when never written: every Region `Active`).
    pub async fn fleet_status(&self) -> Result<(FleetStatus, u64), Error> {
        match self.get_item(STATUS_PK, FLEET_SK).await? {
            Some(item) => decode_fleet(&item),
            None => Ok((FleetStatus::default(), 0)),
        }
    }

    /// Deletes the fleet record: every Region `Active` again, no alarm marks, nothing to settle
    /// (tests and the drill reset a ledger with it; production never forgets the fleet).
    pub async fn delete_fleet_status(&self) -> Result<(), Error> {
        self.dynamodb
            .delete_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(STATUS_PK.to_owned()))
            .key(SK, AttributeValue::S(FLEET_SK.to_owned()))
            .send()
            .await
            .aws_context("DeleteItem", &self.region)?;
        Ok(())
    }

    /// Writes the whole fleet status if its version is still `expected_version` (0: the record
    /// does not exist yet). The read-decide-write path: failback, dry runs, and evacuations whose
    /// one-shot claim did not pass.
    pub async fn put_fleet_if_version(
        &self,
        fleet: &FleetStatus,
        expected_version: u64,
        now_ms: u64,
    ) -> Result<WriteOutcome, Error> {
        let mut update = FleetUpdate::new(now_ms);
        for (region, entry) in &fleet.regions {
            update.set_region(region, entry);
        }
        for (alarm, changed_at_ms) in &fleet.alarms {
            update.set_alarm(alarm, *changed_at_ms);
        }
        let expression = update.set_expression();
        let condition = FleetCondition::version(expected_version);
        let result = self.update_fleet(&expression, update, &condition, ReturnValue::None).await;
        conditional_outcome(result.map(|_| ()), "UpdateItem", &self.region)
    }

    /// Sets one Region's status in a single conditional write, without reading the record first:
    /// the write's condition is `rule` ([`crate::policy::evacuation_condition`]) rendered on the
    /// fleet record. On `Written` the record as it now is comes back; `AlreadyPresent` means the
    /// condition did not hold (a duplicate, a refusal or a race): read the record and decide
    /// from it.
    pub async fn claim_region_status(
        &self,
        region: &str,
        entry: &RegionStatusEntry,
        alarm: Option<(&str, u64)>,
        rule: &EvacuationRule,
        now_ms: u64,
    ) -> Result<(WriteOutcome, Option<Claimed>), Error> {
        let condition = &FleetCondition::evacuation(rule);
        let mut update = FleetUpdate::new(now_ms);
        update.set_region(region, entry);
        if let Some((name, changed_at_ms)) = alarm {
            update.set_alarm(name, changed_at_ms);
        }
        let expression = update.set_expression();
        match self.update_fleet(&expression, update, condition, ReturnValue::AllOld).await {
            Ok(attributes) => {
                let (before, version) = decode_fleet(&attributes)?;
                let mut after = before.clone();
                after.regions.insert(region.to_owned(), entry.clone());
                if let Some((name, changed_at_ms)) = alarm {
                    after.alarms.insert(name.to_owned(), changed_at_ms);
                }
                Ok((
                    WriteOutcome::Written,
                    Some(Claimed { previous: before.regions.get(region).cloned(), fleet: after, version: version + 1 }),
                ))
            }
            Err(err) => conditional_outcome(Err(err), "UpdateItem", &self.region).map(|outcome| (outcome, None)),
        }
    }

    /// Records that every step of `region`'s transition caused by `cause` succeeded, only while
    /// that transition is still the Region's latest.
    pub async fn mark_settled(&self, region: &str, cause: &str, now_ms: u64) -> Result<WriteOutcome, Error> {
        let mut update = FleetUpdate::new(now_ms);
        let attr = update.names.name(&settled_attr(region));
        update.values.insert(":usettled".into(), AttributeValue::S(cause.to_owned()));
        let expression = format!("{}, {attr} = :usettled", update.set_expression());
        let condition = FleetCondition::new(|names, values| {
            values.insert(":ccause".into(), AttributeValue::S(cause.to_owned()));
            format!("{}.{} = :ccause", names.name(&region_attr(region)), names.name(CAUSE_FIELD))
        });
        let result = self.update_fleet(&expression, update, &condition, ReturnValue::None).await;
        conditional_outcome(result.map(|_| ()), "UpdateItem", &self.region)
    }

    /// Withdraws a claim this delivery made (its confirmation failed): puts `previous` back as
    /// `region`'s entry, only while the entry is still the one `cause` wrote. `AlreadyPresent`:
    /// someone changed it since, and their entry stays.
    pub async fn withdraw_region_status(
        &self,
        region: &str,
        previous: Option<&RegionStatusEntry>,
        cause: &str,
        now_ms: u64,
    ) -> Result<WriteOutcome, Error> {
        let mut update = FleetUpdate::new(now_ms);
        let expression = match previous {
            Some(entry) => {
                update.set_region(region, entry);
                update.set_expression()
            }
            None => {
                let attr = update.names.name(&region_attr(region));
                format!("{} REMOVE {attr}", update.set_expression())
            }
        };
        let condition = FleetCondition::new(|names, values| {
            values.insert(":ccause".into(), AttributeValue::S(cause.to_owned()));
            format!("{}.{} = :ccause", names.name(&region_attr(region)), names.name(CAUSE_FIELD))
        });
        let result = self.update_fleet(&expression, update, &condition, ReturnValue::None).await;
        conditional_outcome(result.map(|_| ()), "UpdateItem", &self.region)
    }

    async fn update_fleet(
        &self,
        expression: &str,
        update: FleetUpdate,
        condition: &FleetCondition,
        return_values: ReturnValue,
    ) -> Result<
        HashMap<String, AttributeValue>,
        aws_sdk_dynamodb::error::SdkError<
            aws_sdk_dynamodb::operation::update_item::UpdateItemError,
            aws_smithy_runtime_api::client::orchestrator::HttpResponse,
        >,
    > {
        let names: HashMap<String, String> = update.names.entries().chain(condition.names.entries()).collect();
        let mut values = update.values;
        values.extend(condition.values.clone());
        let out = self
            .dynamodb
            .update_item()
            .table_name(&self.table)
            .key(PK, AttributeValue::S(STATUS_PK.to_owned()))
            .key(SK, AttributeValue::S(FLEET_SK.to_owned()))
            .update_expression(expression)
            .condition_expression(&condition.expression)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values(return_values)
            .send()
            .await?;
        Ok(out.attributes.unwrap_or_default())
    }

    /// The latest lag-probe summary, if a probe has run.
    pub async fn latest_probe(&self) -> Result<Option<Record<ProbeSummary>>, Error> {
        self.get(PROBE_PK, PROBE_LATEST_SK).await
    }

    /// Creates the ledger table (tests and the drill; production creates it with the template).
    pub async fn create_table(dynamodb: &Client, table: &str, region: &str) -> Result<(), Error> {
        let key = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| Error::Ledger(format!("ledger key schema: {e}")))
        };
        let attribute = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| Error::Ledger(format!("ledger attribute: {e}")))
        };
        dynamodb
            .create_table()
            .table_name(table)
            .attribute_definitions(attribute(PK)?)
            .attribute_definitions(attribute(SK)?)
            .key_schema(key(PK, KeyType::Hash)?)
            .key_schema(key(SK, KeyType::Range)?)
            .billing_mode(BillingMode::PayPerRequest)
            .send()
            .await
            .aws_context("CreateTable", region)?;
        Ok(())
    }
}

fn conditional_outcome<E>(
    result: Result<
        (),
        aws_sdk_dynamodb::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    >,
    operation: &'static str,
    region: &str,
) -> Result<WriteOutcome, Error>
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result.aws_context(operation, region) {
        Ok(()) => Ok(WriteOutcome::Written),
        Err(err) if err.aws_code() == Some("ConditionalCheckFailedException") => Ok(WriteOutcome::AlreadyPresent),
        Err(err) => Err(err),
    }
}

/// Prefix of a Region's status attribute in the fleet record.
const REGION_ATTR_PREFIX: &str = "region#";
const STATUS_FIELD: &str = "status";
const CHANGED_AT_FIELD: &str = "changed_at_ms";
const CAUSE_FIELD: &str = "cause";

/// Prefix of an alarm's newest handled change time in the fleet record.
const ALARM_ATTR_PREFIX: &str = "alarm#";

/// Prefix of a Region's settled cause in the fleet record.
const SETTLED_ATTR_PREFIX: &str = "settled#";

/// The fleet record's attribute holding the cause of `region`'s last fully applied transition.
fn settled_attr(region: &str) -> String {
    format!("{SETTLED_ATTR_PREFIX}{region}")
}

/// The fleet record's attribute holding `alarm`'s newest handled change time.
fn alarm_attr(alarm: &str) -> String {
    format!("{ALARM_ATTR_PREFIX}{alarm}")
}

/// The fleet record's attribute holding `region`'s status.
fn region_attr(region: &str) -> String {
    format!("{REGION_ATTR_PREFIX}{region}")
}

/// Expression attribute names: one placeholder per distinct attribute name, all with one prefix
/// (`#c0`, `#c1`, ... for a condition, `#u0`, ... for an update), so the tables of a condition
/// and of an update never collide when both go into one request.
#[derive(Debug, Clone, PartialEq)]
struct ExpressionNames {
    prefix: &'static str,
    by_name: std::collections::BTreeMap<String, String>,
}

impl ExpressionNames {
    fn new(prefix: &'static str) -> Self {
        Self { prefix, by_name: Default::default() }
    }

    /// The placeholder standing for `attribute`.
    fn name(&mut self, attribute: &str) -> String {
        let next = format!("{}{}", self.prefix, self.by_name.len());
        self.by_name.entry(attribute.to_owned()).or_insert(next).clone()
    }

    /// placeholder → attribute, as `ExpressionAttributeNames` wants it.
    fn entries(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.by_name.iter().map(|(attribute, placeholder)| (placeholder.clone(), attribute.clone()))
    }
}

/// A condition on the fleet record in DynamoDB's expression language.
#[derive(Debug, Clone, PartialEq)]
struct FleetCondition {
    expression: String,
    names: ExpressionNames,
    /// Value placeholders start with `:c`.
    values: HashMap<String, AttributeValue>,
}

impl FleetCondition {
    /// Builds a condition: `build` gets a `#c` name table and the value table (whose
    /// placeholders it must start with `:c`) and returns the expression.
    fn new(build: impl FnOnce(&mut ExpressionNames, &mut HashMap<String, AttributeValue>) -> String) -> Self {
        let mut names = ExpressionNames::new("#c");
        let mut values = HashMap::new();
        let expression = build(&mut names, &mut values);
        debug_assert!(values.keys().all(|k| k.starts_with(":c")), "condition values are :c...");
        Self { expression, names, values }
    }

    /// The record is at `expected` (0: it does not exist yet).
    fn version(expected: u64) -> Self {
        Self::new(|names, values| {
            if expected == 0 {
                format!("attribute_not_exists({})", names.name(PK))
            } else {
                values.insert(":cversion".into(), AttributeValue::N(expected.to_string()));
                format!("{} = :cversion", names.name(VERSION))
            }
        })
    }

    /// An evacuation's rules on the fleet record: the Region's entry is absent, or active and
    /// changed at or before the cool-down cutoff; the alarm's mark (if any) is absent or older
    /// than the change; and at least `min_active` of the other Regions' entries are absent or
    /// active (an OR over the ways to pick them).
    fn evacuation(rule: &EvacuationRule) -> Self {
        Self::new(|names, values| {
            let (status, changed) = (names.name(STATUS_FIELD), names.name(CHANGED_AT_FIELD));
            values.insert(":cactive".into(), AttributeValue::S(status_name(RegionStatus::Active).to_owned()));
            values.insert(":ccutoff".into(), AttributeValue::N(rule.cooldown_cutoff_ms.to_string()));
            let own = names.name(&region_attr(&rule.region));
            let mut clauses = vec![format!(
                "(attribute_not_exists({own}) OR ({own}.{status} = :cactive AND {own}.{changed} <= :ccutoff))"
            )];
            if let Some((name, changed_at_ms)) = &rule.alarm {
                let mark = names.name(&alarm_attr(name));
                values.insert(":cchange".into(), AttributeValue::N(changed_at_ms.to_string()));
                clauses.push(format!("(attribute_not_exists({mark}) OR {mark} < :cchange)"));
            }
            let active: Vec<String> = rule
                .others
                .iter()
                .map(|r| {
                    let attr = names.name(&region_attr(r));
                    format!("(attribute_not_exists({attr}) OR {attr}.{status} = :cactive)")
                })
                .collect();
            // DynamoDB rejects doubled parentheses: each clause above is parenthesised once, and a
            // group is wrapped only when it joins more than one of them.
            let ways = choose(active.len(), rule.min_active);
            if let [only] = ways.as_slice() {
                clauses.extend(only.iter().map(|&i| active[i].clone()));
            } else if !ways.is_empty() {
                let ways: Vec<String> = ways
                    .iter()
                    .map(|picked| match picked.as_slice() {
                        [one] => active[*one].clone(),
                        many => {
                            format!("({})", many.iter().map(|&i| active[i].as_str()).collect::<Vec<_>>().join(" AND "))
                        }
                    })
                    .collect();
                clauses.push(format!("({})", ways.join(" OR ")));
            }
            clauses.join(" AND ")
        })
    }
}

/// Every way of picking `k` of `0..n`, in order.
fn choose(n: usize, k: usize) -> Vec<Vec<usize>> {
    fn go(start: usize, n: usize, k: usize, picked: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if picked.len() == k {
            out.push(picked.clone());
            return;
        }
        for i in start..n {
            picked.push(i);
            go(i + 1, n, k, picked, out);
            picked.pop();
        }
    }
    let mut out = Vec::new();
    go(0, n, k, &mut Vec::with_capacity(k), &mut out);
    out
}

/// The update half of a fleet write: `SET` of Region attributes, `updated_at_ms` and `version`.
struct FleetUpdate {
    names: ExpressionNames,
    values: HashMap<String, AttributeValue>,
    sets: Vec<String>,
}

impl FleetUpdate {
    fn new(now_ms: u64) -> Self {
        let mut names = ExpressionNames::new("#u");
        let (updated, version) = (names.name(UPDATED_AT), names.name(VERSION));
        let values = HashMap::from([
            (":unow".to_owned(), AttributeValue::N(now_ms.to_string())),
            (":uzero".to_owned(), AttributeValue::N("0".into())),
            (":uone".to_owned(), AttributeValue::N("1".into())),
        ]);
        let sets = vec![format!("{updated} = :unow"), format!("{version} = if_not_exists({version}, :uzero) + :uone")];
        Self { names, values, sets }
    }

    fn set_region(&mut self, region: &str, entry: &RegionStatusEntry) {
        let placeholder = self.names.name(&region_attr(region));
        let value = format!(":uentry{}", self.sets.len());
        self.values.insert(value.clone(), encode_entry(entry));
        self.sets.push(format!("{placeholder} = {value}"));
    }

    fn set_alarm(&mut self, alarm: &str, changed_at_ms: u64) {
        let placeholder = self.names.name(&alarm_attr(alarm));
        let value = format!(":ualarm{}", self.sets.len());
        self.values.insert(value.clone(), AttributeValue::N(changed_at_ms.to_string()));
        self.sets.push(format!("{placeholder} = {value}"));
    }

    fn set_expression(&self) -> String {
        format!("SET {}", self.sets.join(", "))
    }
}

fn status_name(status: RegionStatus) -> &'static str {
    match status {
        RegionStatus::Active => "Active",
        RegionStatus::Evacuated => "Evacuated",
    }
}

/// A Region's status as the fleet record stores it: `{status, changed_at_ms, cause}`.
fn encode_entry(entry: &RegionStatusEntry) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        (STATUS_FIELD.to_owned(), AttributeValue::S(status_name(entry.status).to_owned())),
        (CHANGED_AT_FIELD.to_owned(), AttributeValue::N(entry.changed_at_ms.to_string())),
        (CAUSE_FIELD.to_owned(), AttributeValue::S(entry.cause.clone())),
    ]))
}

/// The fleet record → statuses and version.
fn decode_fleet(item: &HashMap<String, AttributeValue>) -> Result<(FleetStatus, u64), Error> {
    let version = item.get(VERSION).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    let mut fleet = FleetStatus::default();
    for (attribute, value) in item {
        if let Some(region) = attribute.strip_prefix(SETTLED_ATTR_PREFIX) {
            let cause = value
                .as_s()
                .map_err(|_| Error::Ledger(format!("fleet record attribute {attribute} is not a transition cause")))?;
            fleet.settled.insert(region.to_owned(), cause.clone());
            continue;
        }
        if let Some(alarm) = attribute.strip_prefix(ALARM_ATTR_PREFIX) {
            let mark = value.as_n().ok().and_then(|n| n.parse::<u64>().ok()).ok_or_else(|| {
                Error::Ledger(format!("fleet record attribute {attribute} is not a change time (epoch ms)"))
            })?;
            fleet.alarms.insert(alarm.to_owned(), mark);
            continue;
        }
        let Some(region) = attribute.strip_prefix(REGION_ATTR_PREFIX) else { continue };
        let damaged = || Error::Ledger(format!("fleet record attribute {attribute} is not a Region status entry"));
        let map = value.as_m().map_err(|_| damaged())?;
        let status = match map.get(STATUS_FIELD).and_then(|v| v.as_s().ok()).map(String::as_str) {
            Some("Active") => RegionStatus::Active,
            Some("Evacuated") => RegionStatus::Evacuated,
            _ => return Err(damaged()),
        };
        let changed_at_ms = map
            .get(CHANGED_AT_FIELD)
            .and_then(|v| v.as_n().ok())
            .and_then(|n| n.parse::<u64>().ok())
            .ok_or_else(damaged)?;
        let cause = map.get(CAUSE_FIELD).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
        fleet.regions.insert(region.to_owned(), RegionStatusEntry { status, changed_at_ms, cause });
    }
    Ok((fleet, version))
}

/// The DynamoDB item for a record.
fn encode<T: Serialize>(
    pk: &str,
    sk: &str,
    body: &T,
    version: u64,
    now_ms: u64,
) -> Result<HashMap<String, AttributeValue>, Error> {
    let doc = serde_json::to_string(body)
        .map_err(|e| Error::Ledger(format!("cannot serialise ledger record {pk}/{sk}: {e}")))?;
    Ok(HashMap::from([
        (PK.to_owned(), AttributeValue::S(pk.to_owned())),
        (SK.to_owned(), AttributeValue::S(sk.to_owned())),
        (DOC.to_owned(), AttributeValue::S(doc)),
        (UPDATED_AT.to_owned(), AttributeValue::N(now_ms.to_string())),
        (VERSION.to_owned(), AttributeValue::N(version.to_string())),
    ]))
}

/// A record from its DynamoDB item; a damaged item is an error naming its key, never a panic.
fn decode<T: DeserializeOwned>(item: &HashMap<String, AttributeValue>) -> Result<Record<T>, Error> {
    let text = |name: &str| item.get(name).and_then(|v| v.as_s().ok()).cloned();
    let number = |name: &str| item.get(name).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok());
    let pk = text(PK).unwrap_or_default();
    let sk = text(SK).unwrap_or_default();
    let doc = text(DOC).ok_or_else(|| Error::Ledger(format!("ledger record {pk}/{sk} has no `{DOC}`")))?;
    let body = serde_json::from_str(&doc)
        .map_err(|e| Error::Ledger(format!("ledger record {pk}/{sk} is not the expected shape: {e}")))?;
    Ok(Record { pk, sk, body, updated_at_ms: number(UPDATED_AT).unwrap_or(0), version: number(VERSION).unwrap_or(0) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Body {
        status: String,
    }

    #[test]
    fn encode_then_decode_round_trips() {
        let item = encode("status", "eu-west-1", &Body { status: "Evacuated".into() }, 3, 42).expect("encode");
        let record: Record<Body> = decode(&item).expect("decode");
        assert_eq!(record.body, Body { status: "Evacuated".into() });
        assert_eq!(
            (record.pk.as_str(), record.sk.as_str(), record.version, record.updated_at_ms),
            ("status", "eu-west-1", 3, 42)
        );
    }

    #[test]
    fn fleet_entries_round_trip_and_damaged_ones_name_the_attribute() {
        let entry = RegionStatusEntry { status: RegionStatus::Evacuated, changed_at_ms: 42, cause: "alarm#1".into() };
        let mut item = HashMap::from([
            (VERSION.to_owned(), AttributeValue::N("3".into())),
            (region_attr("eu-west-1"), encode_entry(&entry)),
            ("unrelated".to_owned(), AttributeValue::S("ignored".into())),
        ]);
        let (fleet, version) = decode_fleet(&item).expect("decode");
        assert_eq!((fleet.regions.get("eu-west-1"), version), (Some(&entry), 3));
        assert_eq!(fleet.status_of("us-east-1"), RegionStatus::Active, "no entry: active");

        for damaged in [
            AttributeValue::S("Evacuated".into()),
            AttributeValue::M(HashMap::from([(STATUS_FIELD.to_owned(), AttributeValue::S("Gone".into()))])),
            AttributeValue::M(HashMap::from([(STATUS_FIELD.to_owned(), AttributeValue::S("Active".into()))])),
        ] {
            item.insert(region_attr("us-east-1"), damaged.clone());
            let err = decode_fleet(&item).expect_err("damaged entry");
            assert!(err.to_string().contains("region#us-east-1"), "{damaged:?}: {err}");
        }
    }

    fn rule(others: &[&str], min_active: usize, alarm: Option<(&str, u64)>) -> EvacuationRule {
        EvacuationRule {
            region: "us-east-1".into(),
            cooldown_cutoff_ms: 940_000,
            others: others.iter().map(|r| r.to_string()).collect(),
            min_active,
            alarm: alarm.map(|(name, at)| (name.to_owned(), at)),
        }
    }

    #[test]
    fn an_evacuation_rule_renders_every_rule_with_its_names_and_values() {
        let condition = FleetCondition::evacuation(&rule(&["eu-west-1", "ap-southeast-1"], 1, Some(("a", 7))));
        assert_eq!(
            condition.expression,
            "(attribute_not_exists(#c2) OR (#c2.#c0 = :cactive AND #c2.#c1 <= :ccutoff)) \
             AND (attribute_not_exists(#c3) OR #c3 < :cchange) \
             AND ((attribute_not_exists(#c4) OR #c4.#c0 = :cactive) OR (attribute_not_exists(#c5) OR #c5.#c0 = :cactive))"
        );
        let names: HashMap<String, String> = condition.names.entries().collect();
        let want = [
            ("#c0", "status"),
            ("#c1", "changed_at_ms"),
            ("#c2", "region#us-east-1"),
            ("#c3", "alarm#a"),
            ("#c4", "region#eu-west-1"),
            ("#c5", "region#ap-southeast-1"),
        ];
        assert_eq!(names, want.iter().map(|(p, a)| (p.to_string(), a.to_string())).collect());
        assert_eq!(
            condition.values,
            HashMap::from([
                (":cactive".to_owned(), AttributeValue::S("Active".into())),
                (":ccutoff".to_owned(), AttributeValue::N("940000".into())),
                (":cchange".to_owned(), AttributeValue::N("7".into())),
            ])
        );
        // A negative cutoff (a clock younger than one cool-down) is sent as is.
        let young = FleetCondition::evacuation(&EvacuationRule { cooldown_cutoff_ms: -59_000, ..rule(&[], 0, None) });
        assert_eq!(young.values.get(":ccutoff"), Some(&AttributeValue::N("-59000".into())));
        assert_eq!(young.expression, "(attribute_not_exists(#c2) OR (#c2.#c0 = :cactive AND #c2.#c1 <= :ccutoff))");
    }

    #[test]
    fn an_evacuation_rule_renders_the_ways_to_keep_enough_regions_active() {
        // One of two others: two ways, one OR group.
        let text = FleetCondition::evacuation(&rule(&["eu-west-1", "ap-southeast-1"], 1, None)).expression;
        assert!(text.starts_with("(attribute_not_exists(#c"), "{text}");
        assert_eq!(text.matches(":cactive").count(), 3, "own + 2 others: {text}");
        assert_eq!(text.matches(":ccutoff").count(), 1, "{text}");
        assert_eq!(text.matches(" OR (attribute_not_exists").count(), 1, "C(2,1) = 2 ways: {text}");

        // Both of two others: one way, its clauses joined without a group.
        let both = FleetCondition::evacuation(&rule(&["eu-west-1", "ap-southeast-1"], 2, None)).expression;
        assert_eq!(both.matches(" AND (attribute_not_exists").count(), 2, "own, then both others: {both}");
        assert!(!both.contains("(("), "no doubled parentheses: {both}");

        // Two of three others: three ways, each a parenthesised AND.
        let three = FleetCondition::evacuation(&rule(&["a", "b", "c"], 2, None)).expression;
        assert_eq!(three.matches(") AND (attribute_not_exists").count(), 3, "one AND per way: {three}");
        assert_eq!(three.matches(" OR ((attribute_not_exists").count(), 2, "C(3,2) = 3 ways: {three}");
    }

    #[test]
    fn choosing_survivors_enumerates_every_combination_once() {
        assert_eq!(choose(3, 2), vec![vec![0, 1], vec![0, 2], vec![1, 2]]);
        assert_eq!(choose(2, 1), vec![vec![0], vec![1]]);
        assert_eq!(choose(4, 0), vec![Vec::<usize>::new()]);
        for (n, k) in [(5, 2), (6, 3), (8, 4), (4, 4)] {
            assert_eq!(choose(n, k).len(), crate::policy::combinations(n, k), "C({n},{k})");
        }
    }

    #[test]
    fn damaged_items_are_errors_naming_the_key() {
        let mut item = encode("probe", "latest", &Body { status: "x".into() }, 1, 1).expect("encode");
        item.insert(DOC.into(), AttributeValue::S("{\"other\": 1}".into()));
        let err = decode::<Body>(&item).expect_err("wrong shape");
        assert!(err.to_string().contains("probe/latest"), "{err}");
        item.remove(DOC);
        assert!(decode::<Body>(&item).is_err());
    }

    #[test]
    fn failback_verdict_needs_a_fresh_probe_that_measured_the_region_ready_within_budget() {
        const NOW: u64 = 1_800_000_000_000;
        const MAX_AGE: u64 = 900_000;
        let good = RegionProbe {
            reachable: true,
            pairs_measured: 4,
            pairs_expected: 4,
            max_lag_ms: Some(120),
            rpo_breached: false,
            ready: true,
            readiness_failures: vec![],
        };
        let summary = |measured_at_ms: u64, probe: Option<RegionProbe>| ProbeSummary {
            measured_at_ms,
            max_lag_ms: Some(120),
            rpo_budget_ms: 2_000,
            rpo_breached: false,
            unreachable_regions: vec![],
            readiness_failures: 0,
            regions: probe.into_iter().map(|p| ("us-east-1".to_owned(), p)).collect(),
        };
        let cases: Vec<(&str, ProbeSummary, Option<&[&str]>)> = vec![
            ("fresh, measured, ready", summary(NOW - 1_000, Some(good.clone())), None),
            ("exactly the maximum age", summary(NOW - MAX_AGE, Some(good.clone())), None),
            ("a clock ahead of ours", summary(NOW + 5_000, Some(good.clone())), None),
            ("no entry", summary(NOW, None), Some(&["did not measure us-east-1"])),
            (
                "too old",
                summary(NOW - MAX_AGE - 1, Some(good.clone())),
                Some(&["900001 ms ago", "900000 ms allowed", "fresh"]),
            ),
            (
                "unreachable",
                summary(NOW, Some(RegionProbe { reachable: false, pairs_measured: 0, ..good.clone() })),
                Some(&["could not reach us-east-1"]),
            ),
            (
                "a pair not measured",
                summary(NOW, Some(RegionProbe { pairs_measured: 3, ..good.clone() })),
                Some(&["measured 3 of us-east-1's 4"]),
            ),
            (
                "over the budget",
                summary(NOW, Some(RegionProbe { rpo_breached: true, max_lag_ms: Some(2_500), ..good.clone() })),
                Some(&["2500 ms", "RPO budget of 2000 ms"]),
            ),
            (
                "breached without a lag",
                summary(NOW, Some(RegionProbe { rpo_breached: true, max_lag_ms: None, ..good.clone() })),
                Some(&["an unknown lag", "2000 ms"]),
            ),
            (
                "not ready",
                summary(
                    NOW,
                    Some(RegionProbe {
                        ready: false,
                        readiness_failures: vec!["replica CREATING".into(), "MaxSize 0".into()],
                        ..good.clone()
                    }),
                ),
                Some(&["us-east-1 not ready", "replica CREATING; MaxSize 0"]),
            ),
            (
                "not ready without a reason",
                summary(NOW, Some(RegionProbe { ready: false, ..good.clone() })),
                Some(&["not ready: no reason recorded"]),
            ),
        ];
        for (name, summary, expected) in cases {
            let verdict = summary.failback_verdict("us-east-1", NOW, MAX_AGE);
            match (expected, verdict) {
                (None, Ok(())) => {}
                (Some(parts), Err(reason)) => {
                    assert!(parts.iter().all(|p| reason.contains(p)), "{name}: {reason:?} lacks one of {parts:?}")
                }
                (expected, verdict) => panic!("{name}: expected {expected:?}, got {verdict:?}"),
            }
        }
        // Another Region's entry does not open the gate for this one.
        assert!(summary(NOW, Some(good)).failback_verdict("eu-west-1", NOW, MAX_AGE).is_err());
    }

    #[test]
    fn a_probe_summary_written_before_per_region_entries_decodes_with_none() {
        let old = r#"{"measured_at_ms": 1, "max_lag_ms": 120, "rpo_budget_ms": 2000, "rpo_breached": false,
            "unreachable_regions": [], "readiness_failures": 0}"#;
        let summary: ProbeSummary = serde_json::from_str(old).expect("an older record");
        assert!(summary.regions.is_empty());
        assert!(summary.failback_verdict("us-east-1", 1, 900_000).is_err_and(|r| r.contains("did not measure")));
    }
}

//! The ledger: a DynamoDB table (a Global Table in production) where multisite records what it
//! decided and did, so that duplicate deliveries are recognised, restores know what to put back,
//! and failback can read the latest lag-probe verdict.
//!
//! Schema: partition key `pk` (S), sort key `sk` (S). Every record stores its body as JSON in
//! the `doc` attribute plus `updated_at_ms`; conditional writes use `version` (N).
//!
//! | pk                     | sk                       | record                                   |
//! |------------------------|--------------------------|------------------------------------------|
//! | `status`               | `fleet`                  | every Region's current status (below)    |
//! | `transition#<region>`  | `<cause>#<status>`       | one transition and its steps' outcomes   |
//! | `scaling#<region>`     | `<asg region>`           | the scaler's pre-evacuation baseline     |
//! | `probe`                | `latest`                 | the latest lag-probe result              |
//!
//! The fleet record is the exception to `doc`: each Region's status is its own map attribute
//! `region#<name>` = `{status, changed_at_ms, cause}`, so an evacuation can be claimed with one
//! conditional write whose condition *is* the safety rules ([`crate::policy::evacuation_condition`]),
//! without reading the record first. Records written by earlier builds as `doc` are still read,
//! and rewritten in the new shape by the next versioned write.

use crate::error::{AwsResultExt, Error};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue, ScalarAttributeType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const DOC: &str = "doc";
pub const UPDATED_AT: &str = "updated_at_ms";
pub const VERSION: &str = "version";

/// Partition of the fleet status record.
pub const STATUS_PK: &str = "status";
/// Sort key of the one record holding every Region's status. One record, changed with an
/// optimistic version check, serialises concurrent evacuations: two Regions alarming at once
/// cannot both pass the min-healthy rule.
pub const FLEET_SK: &str = "fleet";
/// Partition of the lag-probe results.
pub const PROBE_PK: &str = "probe";
/// Sort key of the latest lag-probe summary (what failback gates read).
pub const PROBE_LATEST_SK: &str = "latest";
/// Sort key of the latest full lag-probe report.
pub const PROBE_REPORT_SK: &str = "report";

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

/// The body of `status/fleet`: every Region's recorded status, written by failover.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FleetStatus {
    pub regions: std::collections::BTreeMap<String, RegionStatusEntry>,
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
}

/// The body of `probe/latest`, written by lag-probe and read by failback gates.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct ProbeSummary {
    /// When the probe finished (epoch ms).
    pub measured_at_ms: u64,
    /// Largest replication lag measured over all Region pairs (None when nothing was measured).
    pub max_lag_ms: Option<u64>,
    pub rpo_budget_ms: u64,
    /// A pair exceeded the budget or timed out.
    pub rpo_breached: bool,
    /// Regions whose APIs could not be reached.
    pub unreachable_regions: Vec<String>,
    /// Number of readiness rules that failed.
    pub readiness_failures: usize,
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

    pub fn table(&self) -> &str {
        &self.table
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    pub fn client(&self) -> &Client {
        &self.dynamodb
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

    /// Reads every record under one partition key (one Query; ledgers stay small).
    pub async fn list<T: DeserializeOwned>(&self, pk: &str) -> Result<Vec<Record<T>>, Error> {
        let mut records = Vec::new();
        let mut start: Option<HashMap<String, AttributeValue>> = None;
        loop {
            let out = self
                .dynamodb
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_values(":pk", AttributeValue::S(pk.to_owned()))
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
        // Migrates a record written as `doc` by an earlier build: every status is in `fleet`.
        let expression = format!("{} REMOVE {}", update.set_expression(), update.names.name(DOC));
        let condition = FleetCondition::version(expected_version);
        let result = self.update_fleet(&expression, update, &condition).await;
        conditional_outcome(result.map(|_| ()), "UpdateItem", &self.region)
    }

    /// Sets one Region's status in a single conditional write, without reading the record first:
    /// the condition carries the rules the change must pass. On `Written` the record as it now
    /// is comes back; `AlreadyPresent` means the condition did not hold (a duplicate, a refusal
    /// or a race): read the record and decide from it.
    pub async fn claim_region_status(
        &self,
        region: &str,
        entry: &RegionStatusEntry,
        condition: &FleetCondition,
        now_ms: u64,
    ) -> Result<(WriteOutcome, Option<(FleetStatus, u64)>), Error> {
        let mut update = FleetUpdate::new(now_ms);
        update.set_region(region, entry);
        let expression = update.set_expression();
        match self.update_fleet(&expression, update, condition).await {
            Ok(attributes) => Ok((WriteOutcome::Written, Some(decode_fleet(&attributes)?))),
            Err(err) => conditional_outcome(Err(err), "UpdateItem", &self.region).map(|outcome| (outcome, None)),
        }
    }

    async fn update_fleet(
        &self,
        expression: &str,
        update: FleetUpdate,
        condition: &FleetCondition,
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
            .return_values(ReturnValue::AllNew)
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

/// The DynamoDB item for a record.
/// Prefix of a Region's status attribute in the fleet record.
pub const REGION_ATTR_PREFIX: &str = "region#";
const STATUS_FIELD: &str = "status";
const CHANGED_AT_FIELD: &str = "changed_at_ms";
const CAUSE_FIELD: &str = "cause";

/// The fleet record's attribute holding `region`'s status.
pub fn region_attr(region: &str) -> String {
    format!("{REGION_ATTR_PREFIX}{region}")
}

/// Expression attribute names: one placeholder per distinct attribute name, all with one prefix
/// (`#c0`, `#c1`, ... for a condition, `#u0`, ... for an update), so the tables of a condition
/// and of an update never collide when both go into one request.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpressionNames {
    prefix: &'static str,
    by_name: std::collections::BTreeMap<String, String>,
}

impl ExpressionNames {
    pub fn new(prefix: &'static str) -> Self {
        Self { prefix, by_name: Default::default() }
    }

    /// The placeholder standing for `attribute`.
    pub fn name(&mut self, attribute: &str) -> String {
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
pub struct FleetCondition {
    pub expression: String,
    names: ExpressionNames,
    /// Value placeholders start with `:c`.
    values: HashMap<String, AttributeValue>,
}

impl FleetCondition {
    /// Builds a condition: `build` gets a `#c` name table and the value table (whose
    /// placeholders it must start with `:c`) and returns the expression.
    pub fn new(build: impl FnOnce(&mut ExpressionNames, &mut HashMap<String, AttributeValue>) -> String) -> Self {
        let mut names = ExpressionNames::new("#c");
        let mut values = HashMap::new();
        let expression = build(&mut names, &mut values);
        debug_assert!(values.keys().all(|k| k.starts_with(":c")), "condition values are :c...");
        Self { expression, names, values }
    }

    /// The record is at `expected` (0: it does not exist yet).
    pub fn version(expected: u64) -> Self {
        Self::new(|names, values| {
            if expected == 0 {
                format!("attribute_not_exists({})", names.name(PK))
            } else {
                values.insert(":cversion".into(), AttributeValue::N(expected.to_string()));
                format!("{} = :cversion", names.name(VERSION))
            }
        })
    }
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

/// The attribute names of a Region entry's fields, for conditions.
pub fn entry_fields() -> (&'static str, &'static str) {
    (STATUS_FIELD, CHANGED_AT_FIELD)
}

/// The stored name of `status`, for conditions.
pub fn stored_status(status: RegionStatus) -> AttributeValue {
    AttributeValue::S(status_name(status).to_owned())
}

/// The fleet record (either shape) → statuses and version.
pub fn decode_fleet(item: &HashMap<String, AttributeValue>) -> Result<(FleetStatus, u64), Error> {
    let version = item.get(VERSION).and_then(|v| v.as_n().ok()).and_then(|n| n.parse::<u64>().ok()).unwrap_or(0);
    let mut fleet = match item.get(DOC) {
        Some(_) => decode::<FleetStatus>(item)?.body,
        None => FleetStatus::default(),
    };
    for (attribute, value) in item {
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

pub fn encode<T: Serialize>(
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
pub fn decode<T: DeserializeOwned>(item: &HashMap<String, AttributeValue>) -> Result<Record<T>, Error> {
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

    #[test]
    fn damaged_items_are_errors_naming_the_key() {
        let mut item = encode("probe", "latest", &Body { status: "x".into() }, 1, 1).expect("encode");
        item.insert(DOC.into(), AttributeValue::S("{\"other\": 1}".into()));
        let err = decode::<Body>(&item).expect_err("wrong shape");
        assert!(err.to_string().contains("probe/latest"), "{err}");
        item.remove(DOC);
        assert!(decode::<Body>(&item).is_err());
    }
}

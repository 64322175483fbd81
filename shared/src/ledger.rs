//! The ledger: a DynamoDB table (a Global Table in production) where multisite records what it
//! decided and did, so that duplicate deliveries are recognised, restores know what to put back,
//! and failback can read the latest lag-probe verdict.
//!
//! Schema: partition key `pk` (S), sort key `sk` (S). Every record stores its body as JSON in
//! the `doc` attribute plus `updated_at_ms`; conditional writes use `version` (N).
//!
//! | pk                     | sk                       | record                                   |
//! |------------------------|--------------------------|------------------------------------------|
//! | `status`               | `<region>`               | a Region's current status                |
//! | `transition#<region>`  | `<cause>#<status>`       | one transition and its steps' outcomes   |
//! | `scaling#<region>`     | `<asg region>`           | the scaler's pre-evacuation baseline     |
//! | `probe`                | `latest`                 | the latest lag-probe result              |

use crate::error::{AwsResultExt, Error};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
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
        out.item.map(|item| decode(&item)).transpose()
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
        Ok(match self.get::<FleetStatus>(STATUS_PK, FLEET_SK).await? {
            Some(record) => (record.body, record.version),
            None => (FleetStatus::default(), 0),
        })
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
    fn damaged_items_are_errors_naming_the_key() {
        let mut item = encode("probe", "latest", &Body { status: "x".into() }, 1, 1).expect("encode");
        item.insert(DOC.into(), AttributeValue::S("{\"other\": 1}".into()));
        let err = decode::<Body>(&item).expect_err("wrong shape");
        assert!(err.to_string().contains("probe/latest"), "{err}");
        item.remove(DOC);
        assert!(decode::<Body>(&item).is_err());
    }
}

//! Canary items (pure): where they live in the application's table and what they hold.
//!
//! A canary's partition key is `__multisite_canary#<source>#<destination>#<prober Region>`: the
//! reserved prefix [`CANARY_PREFIX`] that application keys must not use, so a canary never
//! overwrites (or is overwritten by) application data. There is one canary item per ordered pair
//! and prober Region, overwritten by every sample (the table never accumulates canaries) and
//! carrying a TTL attribute so it also expires once the pair stops being probed.

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ScalarAttributeType};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

/// Application partition keys must not start with this.
pub const CANARY_PREFIX: &str = "__multisite_canary#";
/// Sort key value of a canary, when the table has a sort key.
pub const CANARY_SORT_VALUE: &str = "__multisite_canary";
/// TTL attribute used when the table has no TTL configured (epoch seconds, DynamoDB's TTL format).
pub const DEFAULT_TTL_ATTRIBUTE: &str = "expires_at";
/// The sample's sequence number (N): the destination has the sample when it holds this value.
pub const SEQ_ATTRIBUTE: &str = "multisite_canary_seq";
/// When the sample was written (N, epoch ms, the prober's wall clock; informational).
pub const WRITTEN_AT_ATTRIBUTE: &str = "multisite_canary_written_at_ms";

/// Whether an application key would collide with canaries (application writers can check it).
pub fn is_canary_key(partition_key: &str) -> bool {
    partition_key.starts_with(CANARY_PREFIX)
}

/// The partition key value of a pair's canary.
pub fn canary_partition_key(source: &str, destination: &str, prober: &str) -> String {
    format!("{CANARY_PREFIX}{source}#{destination}#{prober}")
}

/// The table's primary key as DescribeTable reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySchema {
    pub partition_key: String,
    pub partition_type: KeyType,
    pub sort_key: Option<(String, KeyType)>,
}

/// A key attribute's scalar type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum KeyType {
    S,
    N,
    B,
}

impl KeyType {
    pub fn from_sdk(t: &ScalarAttributeType) -> Option<Self> {
        match t {
            ScalarAttributeType::S => Some(KeyType::S),
            ScalarAttributeType::N => Some(KeyType::N),
            ScalarAttributeType::B => Some(KeyType::B),
            _ => None,
        }
    }
}

/// Why a canary cannot be placed in a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanaryError {
    #[error(
        "the partition key `{0}` of the global table is a number: canaries need a string (S) or binary (B) partition key to carry the reserved prefix `{CANARY_PREFIX}`"
    )]
    NumericPartitionKey(String),
}

impl KeySchema {
    /// The key of a pair's canary, in the table's own key attributes and types.
    pub fn canary_key(
        &self,
        source: &str,
        destination: &str,
        prober: &str,
    ) -> Result<HashMap<String, AttributeValue>, CanaryError> {
        let value = canary_partition_key(source, destination, prober);
        let partition = match self.partition_type {
            KeyType::S => AttributeValue::S(value),
            KeyType::B => AttributeValue::B(Blob::new(value.into_bytes())),
            KeyType::N => return Err(CanaryError::NumericPartitionKey(self.partition_key.clone())),
        };
        let mut key = HashMap::from([(self.partition_key.clone(), partition)]);
        if let Some((name, kind)) = &self.sort_key {
            let sort = match kind {
                KeyType::S => AttributeValue::S(CANARY_SORT_VALUE.to_owned()),
                KeyType::N => AttributeValue::N("0".to_owned()),
                KeyType::B => AttributeValue::B(Blob::new(CANARY_SORT_VALUE.as_bytes().to_vec())),
            };
            key.insert(name.clone(), sort);
        }
        Ok(key)
    }
}

/// The full canary item of one sample.
pub fn canary_item(
    key: &HashMap<String, AttributeValue>,
    seq: u64,
    now_ms: u64,
    ttl_attribute: &str,
    ttl_seconds: u64,
) -> HashMap<String, AttributeValue> {
    let mut item = key.clone();
    item.insert(SEQ_ATTRIBUTE.to_owned(), AttributeValue::N(seq.to_string()));
    item.insert(WRITTEN_AT_ATTRIBUTE.to_owned(), AttributeValue::N(now_ms.to_string()));
    item.insert(ttl_attribute.to_owned(), AttributeValue::N((now_ms / 1000 + ttl_seconds).to_string()));
    item
}

/// The sequence number an item read back carries, if any.
pub fn seq_of(item: &HashMap<String, AttributeValue>) -> Option<u64> {
    item.get(SEQ_ATTRIBUTE)?.as_n().ok()?.parse().ok()
}

/// A new sequence number: the wall clock in ms times 1000 plus a process-wide counter, so numbers
/// are unique within a container and increase across runs. A sample waits for exactly its own
/// number, so a stale canary from an earlier run never counts as visible.
pub fn next_seq(now_ms: u64) -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    now_ms.saturating_mul(1000).saturating_add(COUNTER.fetch_add(1, Ordering::Relaxed) % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(partition: KeyType, sort: Option<KeyType>) -> KeySchema {
        KeySchema {
            partition_key: "pk".into(),
            partition_type: partition,
            sort_key: sort.map(|t| ("sk".to_owned(), t)),
        }
    }

    #[test]
    fn canary_keys_use_the_reserved_prefix_and_differ_per_pair_and_prober() {
        let regions = ["us-east-1", "eu-west-1", "ap-southeast-1"];
        let mut keys = std::collections::HashSet::new();
        for s in regions {
            for d in regions.iter().filter(|d| **d != s) {
                for p in regions {
                    let key = canary_partition_key(s, d, p);
                    assert!(is_canary_key(&key));
                    assert!(keys.insert(key), "one item per pair and prober");
                }
            }
        }
        for app in ["user#42", "__multisite_canar", "multisite_canary#x", "", "__MULTISITE_CANARY#x"] {
            assert!(!is_canary_key(app), "{app}");
        }
    }

    #[test]
    fn canary_key_follows_the_tables_key_schema() {
        let key = schema(KeyType::S, None).canary_key("us-east-1", "eu-west-1", "eu-west-1").expect("S");
        assert_eq!(key.len(), 1);
        assert_eq!(key["pk"], AttributeValue::S("__multisite_canary#us-east-1#eu-west-1#eu-west-1".into()));

        let key = schema(KeyType::B, Some(KeyType::N)).canary_key("a-b-1", "c-d-2", "a-b-1").expect("B+N");
        assert_eq!(key["pk"], AttributeValue::B(Blob::new(b"__multisite_canary#a-b-1#c-d-2#a-b-1".to_vec())));
        assert_eq!(key["sk"], AttributeValue::N("0".into()));

        let key = schema(KeyType::S, Some(KeyType::S)).canary_key("a-b-1", "c-d-2", "a-b-1").expect("S+S");
        assert_eq!(key["sk"], AttributeValue::S(CANARY_SORT_VALUE.into()));

        let err = schema(KeyType::N, None).canary_key("a-b-1", "c-d-2", "a-b-1").expect_err("numeric");
        assert!(err.to_string().contains("`pk`"), "{err}");
    }

    #[test]
    fn canary_item_carries_seq_and_a_ttl_in_epoch_seconds() {
        let key = schema(KeyType::S, None).canary_key("a-b-1", "c-d-2", "a-b-1").expect("key");
        let item = canary_item(&key, 77, 1_800_000_000_123, "ttl", 3600);
        assert_eq!(seq_of(&item), Some(77));
        assert_eq!(item["ttl"], AttributeValue::N((1_800_000_000 + 3600).to_string()));
        assert_eq!(item[WRITTEN_AT_ATTRIBUTE], AttributeValue::N("1800000000123".into()));
        assert_eq!(item["pk"], key["pk"]);
    }

    #[test]
    fn sequence_numbers_are_unique_even_with_a_frozen_clock() {
        let a = next_seq(5);
        let b = next_seq(5);
        assert_ne!(a, b);
        assert!(next_seq(6) > a.max(b), "a later millisecond gives a larger number");
    }
}

//! Which replicas this resource added, recorded as tags on the home table (pure encoding).
//!
//! Delete must never remove a replica the resource did not create (a table that was already
//! global before the stack adopted it keeps its replicas). The record lives where the replicas
//! do, on the table itself, so it survives Lambda containers, continuations and function updates:
//! tag `multisite:replicas:<LogicalResourceId>` = space-separated Region names. DynamoDB tag
//! values hold at most 256 characters, so a long list continues in `<key>:2`, `<key>:3`, ...
//! (LogicalResourceIds are alphanumeric, so a `:` suffix never collides with another resource's
//! key). Keys longer than DynamoDB's 128-character limit keep a prefix plus a stable hash.
//!
//! The provisioner records a Region *before* asking DynamoDB to add it (and forgets it again if
//! DynamoDB refuses): a crash between the two leaves a record of a Region that is not a replica,
//! which Delete skips, rather than a replica nobody remembers adding.

use crate::response::fnv1a;
use std::collections::{BTreeMap, BTreeSet};

pub const TAG_PREFIX: &str = "multisite:replicas:";
/// DynamoDB limits.
pub const MAX_KEY_CHARS: usize = 128;
pub const MAX_VALUE_CHARS: usize = 256;
/// Room kept for a `:NN` continuation suffix.
const SUFFIX_ROOM: usize = 3;

/// The base tag key for the resource `logical_resource_id`.
pub fn tag_key(logical_resource_id: &str) -> String {
    let key = format!("{TAG_PREFIX}{logical_resource_id}");
    let limit = MAX_KEY_CHARS - SUFFIX_ROOM;
    if key.len() <= limit {
        return key;
    }
    let hash = format!("+{:016x}", fnv1a(logical_resource_id.as_bytes()));
    // Tag keys here are ASCII (the prefix and an alphanumeric logical id), but cut safely anyway.
    let mut cut = limit - hash.len();
    while !key.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hash}", &key[..cut])
}

fn is_part_of(key: &str, base: &str) -> bool {
    key == base
        || key.strip_prefix(base).and_then(|rest| rest.strip_prefix(':')).is_some_and(|n| n.parse::<u32>().is_ok())
}

/// The recorded Regions, from all of a table's tags.
pub fn decode(base: &str, tags: &BTreeMap<String, String>) -> BTreeSet<String> {
    tags.iter()
        .filter(|(k, _)| is_part_of(k, base))
        .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned))
        .collect()
}

/// The tags that record `regions` (none for an empty set).
pub fn encode(base: &str, regions: &BTreeSet<String>) -> Vec<(String, String)> {
    let mut chunks: Vec<String> = Vec::new();
    for region in regions {
        match chunks.last_mut() {
            Some(chunk) if chunk.len() + 1 + region.len() <= MAX_VALUE_CHARS => {
                chunk.push(' ');
                chunk.push_str(region);
            }
            _ => chunks.push(region.clone()),
        }
    }
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, value)| (if i == 0 { base.to_owned() } else { format!("{base}:{}", i + 1) }, value))
        .collect()
}

/// The tag writes and removals that turn the current tags into a record of `regions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TagChanges {
    pub put: Vec<(String, String)>,
    pub remove: Vec<String>,
}

impl TagChanges {
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.remove.is_empty()
    }
}

pub fn changes(base: &str, current: &BTreeMap<String, String>, regions: &BTreeSet<String>) -> TagChanges {
    let wanted = encode(base, regions);
    let put = wanted.iter().filter(|(k, v)| current.get(k) != Some(v)).cloned().collect();
    let remove =
        current.keys().filter(|k| is_part_of(k, base) && !wanted.iter().any(|(w, _)| w == *k)).cloned().collect();
    TagChanges { put, remove }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(regions: &[&str]) -> BTreeSet<String> {
        regions.iter().map(|r| (*r).to_owned()).collect()
    }

    #[test]
    fn keys_follow_the_logical_resource_id_within_dynamodb_limits() {
        assert_eq!(tag_key("UserSessionsReplicas"), "multisite:replicas:UserSessionsReplicas");
        let long = tag_key(&"L".repeat(255));
        assert!(long.len() <= MAX_KEY_CHARS - SUFFIX_ROOM, "{}", long.len());
        assert!(long.starts_with(TAG_PREFIX));
        assert_ne!(long, tag_key(&format!("{}M", "L".repeat(254))));
    }

    #[test]
    fn round_trips_and_ignores_other_resources_tags() {
        let base = tag_key("A");
        let mut tags: BTreeMap<String, String> =
            encode(&base, &set(&["eu-west-1", "ap-southeast-1"])).into_iter().collect();
        tags.insert(tag_key("AB"), "us-west-2".into());
        tags.insert(format!("{}:x", base), "sa-east-1".into());
        tags.insert("team".into(), "sessions".into());
        assert_eq!(decode(&base, &tags), set(&["ap-southeast-1", "eu-west-1"]));
    }

    #[test]
    fn long_lists_continue_in_numbered_keys_of_at_most_256_characters() {
        let regions: BTreeSet<String> = (0..40).map(|i| format!("ap-southeast-{i}")).collect();
        let tags = encode("k", &regions);
        assert!(tags.len() > 1);
        assert_eq!(tags[0].0, "k");
        assert_eq!(tags[1].0, "k:2");
        assert!(tags.iter().all(|(_, v)| v.len() <= MAX_VALUE_CHARS));
        assert_eq!(decode("k", &tags.into_iter().collect()), regions);
    }

    #[test]
    fn changes_write_only_what_differs_and_remove_stale_chunks() {
        let regions: BTreeSet<String> = (0..40).map(|i| format!("ap-southeast-{i}")).collect();
        let current: BTreeMap<String, String> = encode("k", &regions).into_iter().collect();
        assert!(changes("k", &current, &regions).is_empty(), "nothing to do when the record is current");

        let fewer = set(&["eu-west-1"]);
        let diff = changes("k", &current, &fewer);
        assert_eq!(diff.put, vec![("k".to_owned(), "eu-west-1".to_owned())]);
        assert!(diff.remove.iter().all(|k| k.starts_with("k:")) && !diff.remove.is_empty());

        let gone = changes("k", &current, &BTreeSet::new());
        assert!(gone.put.is_empty());
        assert_eq!(gone.remove.len(), current.len());
    }
}

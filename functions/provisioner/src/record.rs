//! Which replicas each resource added, recorded as tags on the home table, keyed by
//! PhysicalResourceId (pure encoding and reading).
//!
//! Delete must never remove a replica the resource did not create (a table that was already
//! global before the stack adopted it keeps its replicas), nor one another live resource relies
//! on. The record lives where the replicas do, on the table itself, so it survives Lambda
//! containers, continuations and function updates.
//!
//! * **The record** of the resource with PhysicalResourceId `<id>` is the tag
//!   `multisite:replicas-added:<id>` = space-separated Region names. DynamoDB tag values hold at
//!   most 256 characters, so a long list continues in `<key>:2`, `<key>:3`, ... An id with a
//!   character outside `A-Za-z0-9/._=-` (`:` would read as a continuation), or too long for
//!   DynamoDB's 128-character keys, is written as a readable prefix of it, `+` and a stable hash of
//!   the whole id.
//! * **Ownership is by id**: a request acts on its own id's record; every other record on the
//!   table (another resource's, another stack's) is that resource's *claim*, and nothing claimed by
//!   another record is removed (see [`crate::plan::Goal::removals`]).
//! * **Records from before ids** (`multisite:replicas:<LogicalResourceId>`, written by the
//!   provisioner when its ids were `<home Region>/<TableName>/<LogicalResourceId>`) are read as
//!   belonging to exactly the id that provisioner answered for that LogicalResourceId and table
//!   ([`crate::identity::legacy`]). A non-replacing Update whose id is not a v1 id (a resource that
//!   predates this build, whatever its id's format) also owns the legacy record of its
//!   LogicalResourceId on its table: CloudFormation sends Updates only for a resource's live id, so
//!   that record is the live resource's. For any other request the legacy record is another
//!   resource's claim. The first write by its owner moves it to the owner's id record.
//!
//! The provisioner records a Region *before* asking DynamoDB to add it (and forgets it again if
//! DynamoDB refuses): a crash between the two leaves a record of a Region that is not a replica,
//! which Delete skips, rather than a replica nobody remembers adding.

use crate::identity;
use crate::response::fnv1a;
use std::collections::{BTreeMap, BTreeSet};

/// Records keyed by PhysicalResourceId.
pub const PREFIX: &str = "multisite:replicas-added:";
/// Records from before ids (keyed by LogicalResourceId).
pub const LEGACY_PREFIX: &str = "multisite:replicas:";
/// DynamoDB limits.
pub const MAX_KEY_CHARS: usize = 128;
pub const MAX_VALUE_CHARS: usize = 256;
/// Room kept for a `:NN` continuation suffix.
const SUFFIX_ROOM: usize = 3;

/// The base tag key of the record of the resource with PhysicalResourceId `id`.
pub fn key(id: &str) -> String {
    let plain = id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'=' | b'-'));
    let key = format!("{PREFIX}{id}");
    if plain && !id.is_empty() && key.len() <= MAX_KEY_CHARS - SUFFIX_ROOM {
        return key;
    }
    let readable: String =
        id.chars().map(|c| if c.is_ascii_alphanumeric() || "/._=-".contains(c) { c } else { '_' }).collect();
    hashed(PREFIX, &readable, id)
}

/// The base tag key of a record from before ids, for `logical_resource_id`.
pub fn legacy_key(logical_resource_id: &str) -> String {
    let key = format!("{LEGACY_PREFIX}{logical_resource_id}");
    if key.len() <= MAX_KEY_CHARS - SUFFIX_ROOM {
        return key;
    }
    hashed(LEGACY_PREFIX, logical_resource_id, logical_resource_id)
}

/// `prefix` + as much of `readable` as fits + `+` + the hash of `whole`.
fn hashed(prefix: &str, readable: &str, whole: &str) -> String {
    let hash = format!("+{:016x}", fnv1a(whole.as_bytes()));
    let room = MAX_KEY_CHARS - SUFFIX_ROOM - prefix.len() - hash.len();
    let mut cut = room.min(readable.len());
    while !readable.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{prefix}{}{hash}", &readable[..cut])
}

/// The base key of a record tag (`None` for other tags): the key without its `:N` continuation.
fn base_of(key: &str) -> Option<&str> {
    let prefix = [PREFIX, LEGACY_PREFIX].into_iter().find(|p| key.starts_with(p))?;
    // Neither ids in keys nor LogicalResourceIds contain `:`, so only a continuation adds one.
    match key[prefix.len()..].rsplit_once(':') {
        Some((_, n)) if n.parse::<u32>().is_ok_and(|n| n >= 2) => key.rsplit_once(':').map(|(base, _)| base),
        Some(_) => None,
        None => Some(key),
    }
}

/// Whose record a request reads and writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// The id's record.
    pub key: String,
    /// A record from before ids that this id owns too (see the module docs).
    pub legacy: Option<String>,
}

/// The request an [`Owner`] is derived from.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub id: &'a str,
    pub logical_resource_id: &'a str,
    pub home_region: &'a str,
    pub table: &'a str,
    /// A non-replacing Update (the only request sent for a live id alone).
    pub non_replacing_update: bool,
}

impl Owner {
    pub fn of(request: &Request<'_>) -> Self {
        let wrote_it = identity::legacy(request.home_region, request.table, request.logical_resource_id) == request.id;
        let predates_v1 = !matches!(identity::Format::of(request.id), identity::Format::V1 { .. });
        let owns_legacy = wrote_it || (request.non_replacing_update && predates_v1);
        Self { key: key(request.id), legacy: owns_legacy.then(|| legacy_key(request.logical_resource_id)) }
    }

    fn owns(&self, base: &str) -> bool {
        base == self.key || self.legacy.as_deref() == Some(base)
    }

    /// The tags an operator reads, for messages.
    pub fn describe(&self) -> String {
        match &self.legacy {
            Some(legacy) => format!("{} (or, before ids, {legacy})", self.key),
            None => self.key.clone(),
        }
    }
}

/// What a table's tags say, for one owner.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// The Regions this owner recorded as added.
    pub mine: BTreeSet<String>,
    /// The Regions any other record on the table lists.
    pub others: BTreeSet<String>,
    /// Whether part of this owner's record is still in the form from before ids.
    pub legacy: bool,
}

pub fn read(owner: &Owner, tags: &BTreeMap<String, String>) -> Claims {
    let mut claims = Claims::default();
    for (key, value) in tags {
        let Some(base) = base_of(key) else { continue };
        let regions = value.split_whitespace().map(str::to_owned);
        if owner.owns(base) {
            claims.legacy |= owner.legacy.as_deref() == Some(base);
            claims.mine.extend(regions);
        } else {
            claims.others.extend(regions);
        }
    }
    claims
}

/// The tags that record `regions` under `base` (none for an empty set).
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

/// Writes the owner's record as `regions` under its id's key; its record from before ids, if any,
/// goes (it is moved, not copied). Other records are never touched.
pub fn changes(owner: &Owner, current: &BTreeMap<String, String>, regions: &BTreeSet<String>) -> TagChanges {
    let wanted = encode(&owner.key, regions);
    let put = wanted.iter().filter(|(k, v)| current.get(k) != Some(v)).cloned().collect();
    let remove = current
        .keys()
        .filter(|k| base_of(k).is_some_and(|base| owner.owns(base)) && !wanted.iter().any(|(w, _)| w == *k))
        .cloned()
        .collect();
    TagChanges { put, remove }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(regions: &[&str]) -> BTreeSet<String> {
        regions.iter().map(|r| (*r).to_owned()).collect()
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn owner(id: &str, non_replacing_update: bool) -> Owner {
        Owner::of(&Request {
            id,
            logical_resource_id: "R",
            home_region: "us-east-1",
            table: "T12",
            non_replacing_update,
        })
    }

    #[test]
    fn keys_follow_the_id_within_dynamodb_limits() {
        assert_eq!(
            key("v1/us-east-1/user-sessions/UserSessions/UserSessionsReplicas"),
            "multisite:replicas-added:v1/us-east-1/user-sessions/UserSessions/UserSessionsReplicas"
        );
        assert_eq!(
            key("global-table-replicas/UserSessions"),
            "multisite:replicas-added:global-table-replicas/UserSessions"
        );
        for id in ["a:2", "a b", "x".repeat(300).as_str(), "", "é/ü"] {
            let k = key(id);
            assert!(k.len() <= MAX_KEY_CHARS - SUFFIX_ROOM, "{k}");
            assert!(k.starts_with(PREFIX) && k.contains('+'), "{k}");
            assert!(!k[PREFIX.len()..].contains(':'), "no `:` but the continuation's: {k}");
        }
        assert_ne!(key("a:2"), key("a_2"), "replaced characters keep the ids apart");
        assert_ne!(key(&"x".repeat(300)), key(&format!("{}y", "x".repeat(299))));
        assert_eq!(legacy_key("UserSessionsReplicas"), "multisite:replicas:UserSessionsReplicas");
        let long = legacy_key(&"L".repeat(255));
        assert!(long.len() <= MAX_KEY_CHARS - SUFFIX_ROOM && long.starts_with(LEGACY_PREFIX), "{long}");
    }

    #[test]
    fn each_record_is_its_ids_and_every_other_one_is_a_claim() {
        let table = tags(&[
            ("multisite:replicas-added:v1/us-east-1/s/T12/R", "eu-west-1"),
            ("multisite:replicas-added:v1/us-east-1/s/T12/R:2", "ap-southeast-1"),
            ("multisite:replicas-added:v1/us-east-1/other/T12/R", "sa-east-1"),
            ("multisite:replicas:Q", "us-west-2"),
            ("multisite:replicas-added:v1/us-east-1/s/T12/R:x", "ca-central-1"),
            ("team", "sessions"),
        ]);
        let claims = read(&owner("v1/us-east-1/s/T12/R", false), &table);
        assert_eq!(claims.mine, set(&["ap-southeast-1", "eu-west-1"]));
        assert_eq!(claims.others, set(&["sa-east-1", "us-west-2"]), "another stack's, another resource's");
        assert!(!claims.legacy);
    }

    #[test]
    fn a_record_from_before_ids_is_read_as_the_id_that_provisioner_answered() {
        let table = tags(&[("multisite:replicas:R", "eu-west-1"), ("multisite:replicas:R:2", "ap-southeast-1")]);
        // (owner, whether the legacy record is its own)
        let cases = [
            (owner("us-east-1/T12/R", false), true), // the id that provisioner answered: a Delete too
            (owner("global-table-replicas/T12", true), true), // a non-replacing Update of a resource from before v1
            (owner("us-east-1/T12/R", true), true),
            (owner("global-table-replicas/T12", false), false), // a Delete of another provider's id
            (owner("us-east-1/Other/R", false), false),         // another table's legacy id
            (owner("v1/us-east-1/s/T12/R", true), false),       // minted after the record: not its
            (owner("v1/us-east-1/s/T12/R", false), false),
        ];
        for (owner, owns) in cases {
            let claims = read(&owner, &table);
            let all = set(&["ap-southeast-1", "eu-west-1"]);
            let (mine, others) = if owns { (all, BTreeSet::new()) } else { (BTreeSet::new(), all) };
            assert_eq!((claims.mine, claims.others, claims.legacy), (mine, others, owns), "{owner:?}");
        }
    }

    #[test]
    fn long_lists_continue_in_numbered_keys_of_at_most_256_characters() {
        let regions: BTreeSet<String> = (0..40).map(|i| format!("ap-southeast-{i}")).collect();
        let o = owner("v1/us-east-1/s/T12/R", false);
        let written = encode(&o.key, &regions);
        assert!(written.len() > 1);
        assert_eq!(written[1].0, format!("{}:2", o.key));
        assert!(written.iter().all(|(_, v)| v.len() <= MAX_VALUE_CHARS));
        assert_eq!(read(&o, &written.into_iter().collect()).mine, regions);
    }

    #[test]
    fn changes_write_the_ids_record_move_a_legacy_one_and_leave_others_alone() {
        let regions: BTreeSet<String> = (0..40).map(|i| format!("ap-southeast-{i}")).collect();
        let o = owner("v1/us-east-1/s/T12/R", false);
        let mut current: BTreeMap<String, String> = encode(&o.key, &regions).into_iter().collect();
        current.insert("multisite:replicas-added:other".into(), "eu-west-1".into());
        current.insert("multisite:replicas:R".into(), "eu-west-1".into());
        assert!(changes(&o, &current, &regions).is_empty(), "nothing to do when the record is current");

        let fewer = set(&["eu-west-1"]);
        let diff = changes(&o, &current, &fewer);
        assert_eq!(diff.put, vec![(o.key.clone(), "eu-west-1".to_owned())]);
        assert!(!diff.remove.is_empty() && diff.remove.iter().all(|k| k.starts_with(&format!("{}:", o.key))));

        let gone = changes(&o, &current, &BTreeSet::new());
        assert!(gone.put.is_empty());
        assert_eq!(gone.remove.len(), current.len() - 2, "only its own record goes");

        // A legacy record is moved to the id's key, even with the same Regions.
        let legacy = owner("us-east-1/T12/R", false);
        let before = tags(&[("multisite:replicas:R", "eu-west-1"), ("multisite:replicas-added:other", "eu-west-1")]);
        let moved = changes(&legacy, &before, &set(&["eu-west-1"]));
        assert_eq!(moved.put, vec![("multisite:replicas-added:us-east-1/T12/R".to_owned(), "eu-west-1".to_owned())]);
        assert_eq!(moved.remove, vec!["multisite:replicas:R".to_owned()]);
    }
}

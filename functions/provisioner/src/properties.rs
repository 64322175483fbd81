//! `ResourceProperties` of `Custom::GlobalTableReplicas`: parsing and validation (pure).
//!
//! CloudFormation passes every scalar property value as a string (`ServiceTimeout: 900` arrives
//! as `"900"`, `true` as `"true"`), so scalars are accepted both as JSON scalars and as strings.
//! Validation reports every problem at once, each naming its property and what to fix, so a bad
//! template is fixed in one pass. Unknown properties are rejected (a typo is an error, not a silent
//! default) with a suggestion when one is close.
//!
//! Delete and `OldResourceProperties` are read leniently ([`LenientProperties`]): a Delete must
//! succeed even when the properties it carries would not validate today (the Create failed on
//! them, or a newer provisioner is stricter than the one that created the resource).

use crate::consistency::{Consistency, check_strong};
use crate::regions::{KnownRegions, partition};
use serde_json::{Map, Value};
use shared::topology::is_table_name;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

pub const SERVICE_TOKEN: &str = "ServiceToken";
pub const SERVICE_TIMEOUT: &str = "ServiceTimeout";
pub const TABLE_NAME: &str = "TableName";
pub const REGIONS: &str = "Regions";
pub const RETAIN_REPLICAS_ON_DELETE: &str = "RetainReplicasOnDelete";
pub const NO_ECHO: &str = "NoEcho";
pub const MULTI_REGION_CONSISTENCY: &str = "MultiRegionConsistency";
pub const WITNESS_REGION: &str = "WitnessRegion";

/// Every property the resource understands.
pub const KNOWN_PROPERTIES: &[&str] = &[
    SERVICE_TOKEN,
    SERVICE_TIMEOUT,
    TABLE_NAME,
    REGIONS,
    RETAIN_REPLICAS_ON_DELETE,
    NO_ECHO,
    MULTI_REGION_CONSISTENCY,
    WITNESS_REGION,
];

pub const REGION_NAME: &str = "RegionName";
pub const KMS_MASTER_KEY_ID: &str = "KMSMasterKeyId";
pub const TABLE_CLASS_OVERRIDE: &str = "TableClassOverride";
const KNOWN_REGION_KEYS: &[&str] = &[REGION_NAME, KMS_MASTER_KEY_ID, TABLE_CLASS_OVERRIDE];
const TABLE_CLASSES: &[&str] = &["STANDARD", "STANDARD_INFREQUENT_ACCESS"];

/// CloudFormation's own default (and maximum) wait for a custom resource: one hour.
pub const DEFAULT_SERVICE_TIMEOUT: Duration = Duration::from_secs(3600);
/// `ServiceTimeout` bounds CloudFormation accepts.
pub const SERVICE_TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=3600;

/// One Region of the table and, for a replica, the settings it is created with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaSpec {
    pub region: String,
    /// KMS key for the replica's encryption at rest (`CreateReplicationGroupMemberAction.KMSMasterKeyId`).
    pub kms_master_key_id: Option<String>,
    /// `STANDARD` or `STANDARD_INFREQUENT_ACCESS`.
    pub table_class: Option<String>,
}

impl ReplicaSpec {
    pub fn new(region: impl Into<String>) -> Self {
        Self { region: region.into(), kms_master_key_id: None, table_class: None }
    }

    pub fn has_settings(&self) -> bool {
        self.kms_master_key_id.is_some() || self.table_class.is_some()
    }

    /// Whether the replica settings (not the Region) differ.
    pub fn settings_differ(&self, other: &ReplicaSpec) -> bool {
        self.kms_master_key_id != other.kms_master_key_id || self.table_class != other.table_class
    }
}

/// Validated properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Properties {
    pub table_name: String,
    /// As listed, the home Region included.
    pub regions: Vec<ReplicaSpec>,
    pub retain_replicas_on_delete: bool,
    pub no_echo: bool,
    pub service_timeout: Duration,
    /// `MultiRegionConsistency`: EVENTUAL (default) or STRONG.
    pub consistency: Consistency,
    /// `WitnessRegion` (STRONG only): the third Region of an MRSC set of two replicas.
    pub witness: Option<String>,
}

/// What validation needs to know about the deployment.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The Region of this function and of the table (AWS_REGION).
    pub home_region: &'a str,
    pub known_regions: &'a KnownRegions,
}

/// One thing wrong with the properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

/// Every problem found, in property order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidProperties {
    pub problems: Vec<Problem>,
}

impl fmt::Display for InvalidProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(f, "invalid properties ({n} problem{}): ", if n == 1 { "" } else { "s" })?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.field, p.message)?;
        }
        Ok(())
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem { field: field.into(), message: message.into() });
    }
}

impl Properties {
    /// Parses and validates `ResourceProperties`.
    pub fn parse(value: &Value, rules: &Rules<'_>) -> Result<Self, InvalidProperties> {
        let mut problems = Problems::default();
        let Some(object) = value.as_object() else {
            problems.add(
                "ResourceProperties",
                format!("must be an object with {TABLE_NAME} and {REGIONS}; got {}", kind(value)),
            );
            return Err(InvalidProperties { problems: problems.0 });
        };

        for key in object.keys().filter(|k| !KNOWN_PROPERTIES.contains(&k.as_str())) {
            let hint = suggestion(key, KNOWN_PROPERTIES).map(|s| format!("; did you mean {s}?")).unwrap_or_default();
            problems.add(key.as_str(), format!("unknown property (known: {}){hint}", KNOWN_PROPERTIES.join(", ")));
        }

        let table_name = match object.get(TABLE_NAME) {
            None | Some(Value::Null) => {
                problems
                    .add(TABLE_NAME, "required: the name of the DynamoDB table whose replicas this resource manages");
                None
            }
            Some(Value::String(name)) if is_table_name(name) => Some(name.clone()),
            Some(Value::String(name)) => {
                problems.add(
                    TABLE_NAME,
                    format!(
                        "`{name}` is not a valid DynamoDB table name (3-255 characters: letters, digits, `_`, `-`, `.`)"
                    ),
                );
                None
            }
            Some(other) => {
                problems.add(TABLE_NAME, format!("must be a string (a table name); got {}", kind(other)));
                None
            }
        };

        let regions = parse_regions(object, rules, &mut problems);
        let retain_replicas_on_delete = parse_bool(object, RETAIN_REPLICAS_ON_DELETE, false, &mut problems);
        let no_echo = parse_bool(object, NO_ECHO, false, &mut problems);
        let service_timeout = match object.get(SERVICE_TIMEOUT) {
            None | Some(Value::Null) => DEFAULT_SERVICE_TIMEOUT,
            Some(v) => match service_timeout_secs(v) {
                Some(secs) => Duration::from_secs(secs),
                None => {
                    problems.add(
                        SERVICE_TIMEOUT,
                        format!("must be a whole number of seconds from 1 to 3600; got {}", show(v)),
                    );
                    DEFAULT_SERVICE_TIMEOUT
                }
            },
        };

        let consistency = match object.get(MULTI_REGION_CONSISTENCY) {
            None | Some(Value::Null) => Some(Consistency::default()),
            Some(Value::String(s)) if Consistency::parse(s).is_some() => Consistency::parse(s),
            Some(other) => {
                problems.add(
                    MULTI_REGION_CONSISTENCY,
                    format!(
                        "must be {} (the default: multi-Region eventual consistency) or {} (multi-Region strong consistency); got {}",
                        Consistency::EVENTUAL,
                        Consistency::STRONG,
                        show(other)
                    ),
                );
                None
            }
        };
        let witness = parse_witness(object, rules, consistency, &mut problems);
        if let (Some(Consistency::Strong), Some(regions), Some(witness)) = (consistency, &regions, &witness) {
            let names: Vec<&str> = regions.iter().map(|r| r.region.as_str()).collect();
            for v in check_strong(rules.home_region, &names, witness.as_deref()) {
                problems.add(v.field, v.message);
            }
        }

        match (table_name, regions, consistency, witness, problems.0.is_empty()) {
            (Some(table_name), Some(regions), Some(consistency), Some(witness), true) => Ok(Self {
                table_name,
                regions,
                retain_replicas_on_delete,
                no_echo,
                service_timeout,
                consistency,
                witness,
            }),
            _ => Err(InvalidProperties { problems: problems.0 }),
        }
    }

    /// The listed Regions other than `home`, in listed order.
    pub fn replicas<'a>(&'a self, home: &'a str) -> impl Iterator<Item = &'a ReplicaSpec> + 'a {
        self.regions.iter().filter(move |r| r.region != home)
    }

    pub fn region_names(&self) -> Vec<&str> {
        self.regions.iter().map(|r| r.region.as_str()).collect()
    }
}

fn parse_regions(object: &Map<String, Value>, rules: &Rules<'_>, problems: &mut Problems) -> Option<Vec<ReplicaSpec>> {
    let list = match object.get(REGIONS) {
        None | Some(Value::Null) => {
            problems.add(
                REGIONS,
                format!(
                    "required: the list of Regions the table must have a replica in, including {}",
                    rules.home_region
                ),
            );
            return None;
        }
        Some(Value::Array(list)) => list,
        Some(Value::String(s)) if s.contains(',') => {
            problems.add(
                REGIONS,
                format!("must be a list of Region names, not a comma-separated string (`{s}`): write `[us-east-1, eu-west-1]` or use Fn::Split"),
            );
            return None;
        }
        Some(other) => {
            problems.add(
                REGIONS,
                format!("must be a list of Region names, e.g. [us-east-1, eu-west-1]; got {}", kind(other)),
            );
            return None;
        }
    };
    if list.is_empty() {
        problems
            .add(REGIONS, format!("must not be empty: list at least {}, the table's own Region", rules.home_region));
        return None;
    }

    let before = problems.0.len();
    let home_partition = partition(rules.home_region);
    let mut seen = BTreeSet::new();
    let mut specs = Vec::with_capacity(list.len());
    for (i, entry) in list.iter().enumerate() {
        let field = format!("{REGIONS}[{i}]");
        let Some(spec) = parse_region_entry(entry, &field, problems) else { continue };
        if !rules.known_regions.contains(&spec.region) {
            problems.add(
                &field,
                format!(
                    "`{}` is not an AWS Region with DynamoDB global tables (expected a name like `eu-west-1`; set PROVISIONER_EXTRA_REGIONS for a Region launched after this build)",
                    spec.region
                ),
            );
            continue;
        }
        if !seen.insert(spec.region.clone()) {
            problems.add(&field, format!("`{}` is listed more than once; list each Region once", spec.region));
            continue;
        }
        if partition(&spec.region) != home_partition {
            problems.add(
                &field,
                format!(
                    "`{}` is in partition {}, the table's Region {} in {}; a global table cannot span partitions",
                    spec.region,
                    partition(&spec.region),
                    rules.home_region,
                    home_partition
                ),
            );
            continue;
        }
        if spec.region == rules.home_region && spec.has_settings() {
            problems.add(
                &field,
                format!(
                    "{KMS_MASTER_KEY_ID}/{TABLE_CLASS_OVERRIDE} apply to replicas only; configure the table in {} where it is created",
                    rules.home_region
                ),
            );
            continue;
        }
        specs.push(spec);
    }
    if problems.0.len() == before && !seen.contains(rules.home_region) {
        problems.add(
            REGIONS,
            format!(
                "must include {home}, the Region of the table and of this function (the ServiceToken's Region): the table lives in {home} and is replicated from there",
                home = rules.home_region
            ),
        );
    }
    (problems.0.len() == before).then_some(specs)
}

/// `WitnessRegion`: `Some(None)` when absent, `Some(Some(region))` when valid, `None` when wrong.
fn parse_witness(
    object: &Map<String, Value>,
    rules: &Rules<'_>,
    consistency: Option<Consistency>,
    problems: &mut Problems,
) -> Option<Option<String>> {
    let region = match object.get(WITNESS_REGION) {
        None | Some(Value::Null) => return Some(None),
        Some(Value::String(r)) if !r.trim().is_empty() => r.trim().to_owned(),
        Some(other) => {
            problems.add(WITNESS_REGION, format!("must be a Region name, e.g. us-east-2; got {}", show(other)));
            return None;
        }
    };
    if consistency == Some(Consistency::Eventual) {
        problems.add(
            WITNESS_REGION,
            format!(
                "a witness exists only with {MULTI_REGION_CONSISTENCY}: {}: remove {WITNESS_REGION}, or set {MULTI_REGION_CONSISTENCY} to {}",
                Consistency::STRONG,
                Consistency::STRONG
            ),
        );
        return None;
    }
    if !rules.known_regions.contains(&region) {
        problems.add(
            WITNESS_REGION,
            format!("`{region}` is not an AWS Region with DynamoDB global tables (expected a name like `us-east-2`)"),
        );
        return None;
    }
    if region == rules.home_region {
        problems.add(
            WITNESS_REGION,
            format!(
                "`{region}` is the table's own Region: the witness is a third Region without a replica; name another Region"
            ),
        );
        return None;
    }
    Some(Some(region))
}

fn parse_region_entry(entry: &Value, field: &str, problems: &mut Problems) -> Option<ReplicaSpec> {
    match entry {
        Value::String(region) => Some(ReplicaSpec::new(region.clone())),
        Value::Object(map) => {
            let mut ok = true;
            for key in map.keys().filter(|k| !KNOWN_REGION_KEYS.contains(&k.as_str())) {
                let hint =
                    suggestion(key, KNOWN_REGION_KEYS).map(|s| format!("; did you mean {s}?")).unwrap_or_default();
                problems.add(
                    format!("{field}.{key}"),
                    format!("unknown key (known: {}){hint}", KNOWN_REGION_KEYS.join(", ")),
                );
                ok = false;
            }
            let region = match map.get(REGION_NAME) {
                Some(Value::String(r)) => Some(r.clone()),
                Some(other) => {
                    problems
                        .add(format!("{field}.{REGION_NAME}"), format!("must be a Region name; got {}", kind(other)));
                    None
                }
                None => {
                    problems.add(format!("{field}.{REGION_NAME}"), "required: the Region of this replica");
                    None
                }
            };
            let kms_master_key_id = match map.get(KMS_MASTER_KEY_ID) {
                None | Some(Value::Null) => None,
                Some(Value::String(k)) if !k.trim().is_empty() => Some(k.clone()),
                Some(other) => {
                    problems.add(
                        format!("{field}.{KMS_MASTER_KEY_ID}"),
                        format!("must be a KMS key id, ARN or alias; got {}", show(other)),
                    );
                    ok = false;
                    None
                }
            };
            let table_class = match map.get(TABLE_CLASS_OVERRIDE) {
                None | Some(Value::Null) => None,
                Some(Value::String(c)) if TABLE_CLASSES.contains(&c.as_str()) => Some(c.clone()),
                Some(other) => {
                    problems.add(
                        format!("{field}.{TABLE_CLASS_OVERRIDE}"),
                        format!("must be one of {}; got {}", TABLE_CLASSES.join(", "), show(other)),
                    );
                    ok = false;
                    None
                }
            };
            let region = region?;
            ok.then_some(ReplicaSpec { region, kms_master_key_id, table_class })
        }
        other => {
            problems.add(field, format!("must be a Region name or an object with {REGION_NAME}; got {}", kind(other)));
            None
        }
    }
}

fn parse_bool(object: &Map<String, Value>, key: &str, default: bool, problems: &mut Problems) -> bool {
    match object.get(key) {
        None | Some(Value::Null) => default,
        Some(v) => bool_value(v).unwrap_or_else(|| {
            problems.add(key, format!("must be true or false; got {}", show(v)));
            default
        }),
    }
}

/// `true`/`false` as JSON or as the strings CloudFormation sends (case-insensitive).
pub fn bool_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

/// A `ServiceTimeout` value (number or numeric string) in 1..=3600 seconds.
pub fn service_timeout_secs(v: &Value) -> Option<u64> {
    let secs = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse::<u64>().ok()?,
        _ => return None,
    };
    SERVICE_TIMEOUT_RANGE.contains(&secs).then_some(secs)
}

/// Properties read without validation, for Delete and for `OldResourceProperties`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LenientProperties {
    /// Present only when it is a valid table name.
    pub table_name: Option<String>,
    /// Whatever entries name a Region (string or `RegionName`), in listed order.
    pub regions: Vec<ReplicaSpec>,
    /// `RetainReplicasOnDelete`; an unreadable value counts as `true` (keeping data is the safe side).
    pub retain_replicas_on_delete: bool,
    /// Set when `RetainReplicasOnDelete` was present but not a boolean.
    pub retain_unreadable: bool,
    /// `NoEcho`; an unreadable value counts as `true` (logging less is the safe side).
    pub no_echo: bool,
    pub service_timeout: Option<Duration>,
}

impl LenientProperties {
    pub fn read(value: &Value) -> Self {
        let Some(object) = value.as_object() else { return Self::default() };
        let table_name = object.get(TABLE_NAME).and_then(Value::as_str).filter(|n| is_table_name(n)).map(str::to_owned);
        let regions = object
            .get(REGIONS)
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(|entry| match entry {
                        Value::String(r) => Some(ReplicaSpec::new(r.clone())),
                        Value::Object(map) => Some(ReplicaSpec {
                            region: map.get(REGION_NAME)?.as_str()?.to_owned(),
                            kms_master_key_id: map.get(KMS_MASTER_KEY_ID).and_then(Value::as_str).map(str::to_owned),
                            table_class: map.get(TABLE_CLASS_OVERRIDE).and_then(Value::as_str).map(str::to_owned),
                        }),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let (retain_replicas_on_delete, retain_unreadable) = match object.get(RETAIN_REPLICAS_ON_DELETE) {
            None | Some(Value::Null) => (false, false),
            Some(v) => bool_value(v).map(|b| (b, false)).unwrap_or((true, true)),
        };
        let no_echo = match object.get(NO_ECHO) {
            None | Some(Value::Null) => false,
            Some(v) => bool_value(v).unwrap_or(true),
        };
        let service_timeout = object.get(SERVICE_TIMEOUT).and_then(service_timeout_secs).map(Duration::from_secs);
        Self { table_name, regions, retain_replicas_on_delete, retain_unreadable, no_echo, service_timeout }
    }
}

/// Reads only `NoEcho` from raw properties, counting anything unreadable (even a non-object) as
/// set when the key is there, so the earliest log lines never echo what might be secret.
pub fn no_echo_hint(properties: Option<&Value>) -> bool {
    match properties.and_then(Value::as_object).and_then(|o| o.get(NO_ECHO)) {
        None | Some(Value::Null) => false,
        Some(v) => bool_value(v).unwrap_or(true),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// A short rendering of a bad value for a message (never long: reasons have a size limit).
fn show(v: &Value) -> String {
    let text = match v {
        Value::String(s) => format!("`{s}`"),
        other => other.to_string(),
    };
    if text.chars().count() > 60 { format!("{}…", text.chars().take(60).collect::<String>()) } else { text }
}

/// The known name closest to `key`: at most 2 edits away ignoring case, or one name the start of
/// the other (`Region` for `RegionName`).
fn suggestion(key: &str, known: &[&'static str]) -> Option<&'static str> {
    let lower = key.to_ascii_lowercase();
    let close = known
        .iter()
        .map(|k| (*k, edit_distance(&lower, &k.to_ascii_lowercase())))
        .filter(|(_, d)| *d <= 2)
        .min_by_key(|(_, d)| *d)
        .map(|(k, _)| k);
    close.or_else(|| {
        known.iter().copied().find(|k| {
            let k = k.to_ascii_lowercase();
            lower.len() >= 3 && (k.starts_with(&lower) || lower.starts_with(&k))
        })
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(value: Value) -> Result<Properties, InvalidProperties> {
        let known = KnownRegions::default();
        Properties::parse(&value, &Rules { home_region: "us-east-1", known_regions: &known })
    }

    fn problems(value: Value) -> Vec<(String, String)> {
        parse(value).expect_err("invalid").problems.into_iter().map(|p| (p.field, p.message)).collect()
    }

    #[test]
    fn accepts_the_seed_resource_as_cloudformation_sends_it() {
        let props = parse(json!({
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provisioner",
            "ServiceTimeout": "900",
            "TableName": "UserSessions",
            "Regions": ["us-east-1", "eu-west-1", "ap-southeast-1"]
        }))
        .expect("valid");
        assert_eq!(props.table_name, "UserSessions");
        assert_eq!(props.region_names(), ["us-east-1", "eu-west-1", "ap-southeast-1"]);
        assert_eq!(props.service_timeout, Duration::from_secs(900));
        assert!(!props.retain_replicas_on_delete);
        assert!(!props.no_echo);
        let replicas: Vec<_> = props.replicas("us-east-1").map(|r| r.region.as_str()).collect();
        assert_eq!(replicas, ["eu-west-1", "ap-southeast-1"]);
    }

    #[test]
    fn scalars_are_accepted_as_strings_or_json_values() {
        let cases = [
            (json!("true"), json!("1"), true, 1),
            (json!("False"), json!(3600), false, 3600),
            (json!(true), json!(" 60 "), true, 60),
            (json!(false), json!(null), false, 3600),
        ];
        for (flag, timeout, want_flag, want_secs) in cases {
            let props = parse(json!({
                "TableName": "T12", "Regions": ["us-east-1"],
                "RetainReplicasOnDelete": flag, "NoEcho": flag, "ServiceTimeout": timeout
            }))
            .unwrap_or_else(|e| panic!("{flag} {timeout}: {e}"));
            assert_eq!(props.retain_replicas_on_delete, want_flag);
            assert_eq!(props.no_echo, want_flag);
            assert_eq!(props.service_timeout, Duration::from_secs(want_secs));
        }
    }

    #[test]
    fn object_entries_carry_replica_settings() {
        let props = parse(json!({
            "TableName": "T12",
            "Regions": ["us-east-1", {"RegionName": "eu-west-1", "KMSMasterKeyId": "alias/sessions", "TableClassOverride": "STANDARD_INFREQUENT_ACCESS"}]
        }))
        .expect("valid");
        assert_eq!(
            props.regions[1],
            ReplicaSpec {
                region: "eu-west-1".into(),
                kms_master_key_id: Some("alias/sessions".into()),
                table_class: Some("STANDARD_INFREQUENT_ACCESS".into())
            }
        );
    }

    #[test]
    fn each_malformed_input_names_its_property_and_the_fix() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (json!({"Regions": ["us-east-1"]}), "TableName", "required"),
            (json!({"TableName": 7, "Regions": ["us-east-1"]}), "TableName", "must be a string"),
            (json!({"TableName": "a b", "Regions": ["us-east-1"]}), "TableName", "not a valid DynamoDB table name"),
            (json!({"TableName": "T12"}), "Regions", "required"),
            (json!({"TableName": "T12", "Regions": []}), "Regions", "must not be empty"),
            (json!({"TableName": "T12", "Regions": "us-east-1"}), "Regions", "must be a list"),
            (json!({"TableName": "T12", "Regions": "us-east-1,eu-west-1"}), "Regions", "comma-separated"),
            (json!({"TableName": "T12", "Regions": {"a": 1}}), "Regions", "got an object"),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1", "eu-west-1", "eu-west-1"]}),
                "Regions[2]",
                "more than once",
            ),
            (json!({"TableName": "T12", "Regions": ["us-east-1", "mars-east-1"]}), "Regions[1]", "not an AWS Region"),
            (json!({"TableName": "T12", "Regions": ["us-east-1", 5]}), "Regions[1]", "must be a Region name"),
            (
                json!({"TableName": "T12", "Regions": ["eu-west-1", "ap-southeast-1"]}),
                "Regions",
                "must include us-east-1",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1", "cn-north-1"]}),
                "Regions[1]",
                "cannot span partitions",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1", {"Region": "eu-west-1"}]}),
                "Regions[1].Region",
                "did you mean RegionName?",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1", {"RegionName": "eu-west-1", "TableClassOverride": "COLD"}]}),
                "Regions[1].TableClassOverride",
                "must be one of",
            ),
            (
                json!({"TableName": "T12", "Regions": [{"RegionName": "us-east-1", "KMSMasterKeyId": "k"}]}),
                "Regions[0]",
                "apply to replicas only",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1"], "ServiceTimeout": "4000"}),
                "ServiceTimeout",
                "from 1 to 3600",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1"], "ServiceTimeout": "soon"}),
                "ServiceTimeout",
                "from 1 to 3600",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1"], "RetainReplicasOnDelete": "yes"}),
                "RetainReplicasOnDelete",
                "true or false",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1"], "Region": ["eu-west-1"]}),
                "Region",
                "did you mean Regions?",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1"], "tablename": "x"}),
                "tablename",
                "did you mean TableName?",
            ),
            (json!(["us-east-1"]), "ResourceProperties", "must be an object"),
        ];
        for (input, field, needle) in cases {
            let found = problems(input.clone());
            assert!(
                found.iter().any(|(f, m)| f == field && m.contains(needle)),
                "{input}: wanted {field}: …{needle}…, got {found:?}"
            );
        }
    }

    #[test]
    fn multi_region_consistency_strong_takes_three_regions_or_two_and_a_witness() {
        let three = parse(json!({
            "TableName": "T12", "Regions": ["us-east-1", "us-east-2", "us-west-2"], "MultiRegionConsistency": "STRONG"
        }))
        .expect("three replicas");
        assert_eq!((three.consistency, three.witness.as_deref()), (Consistency::Strong, None));
        let witnessed = parse(json!({
            "TableName": "T12", "Regions": ["us-east-1", "us-west-2"], "MultiRegionConsistency": "STRONG",
            "WitnessRegion": "us-east-2"
        }))
        .expect("two and a witness");
        assert_eq!((witnessed.consistency, witnessed.witness.as_deref()), (Consistency::Strong, Some("us-east-2")));
        let default = parse(json!({"TableName": "T12", "Regions": ["us-east-1", "eu-west-1"]})).expect("eventual");
        assert_eq!((default.consistency, default.witness), (Consistency::Eventual, None));
    }

    #[test]
    fn invalid_consistency_combinations_say_what_to_change() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"TableName": "T12", "Regions": ["us-east-1"], "MultiRegionConsistency": "STRICT"}),
                "MultiRegionConsistency",
                "must be EVENTUAL (the default",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1", "us-east-2"], "WitnessRegion": "us-west-2"}),
                "WitnessRegion",
                "remove WitnessRegion, or set MultiRegionConsistency to STRONG",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1", "us-east-2"], "MultiRegionConsistency": "STRONG"}),
                "Regions",
                "exactly three Regions",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1", "us-east-2", "eu-west-1"], "MultiRegionConsistency": "STRONG"}),
                "Regions[2]",
                "not in the Region set of us-east-1, US (us-east-1, us-east-2, us-west-2)",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1", "us-east-2"], "MultiRegionConsistency": "STRONG", "WitnessRegion": "mars-1"}),
                "WitnessRegion",
                "not an AWS Region",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1", "us-east-2"], "MultiRegionConsistency": "STRONG", "WitnessRegion": "us-east-1"}),
                "WitnessRegion",
                "the table's own Region",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1", "us-east-2"], "MultiRegionConsistency": "STRONG", "WitnessRegion": 3}),
                "WitnessRegion",
                "must be a Region name",
            ),
            (
                json!({"TableName": "T12", "Regions": ["us-east-1", "us-east-2"], "MultiRegionConsistency": "STRONG", "Witness": "us-west-2"}),
                "Witness",
                "did you mean WitnessRegion?",
            ),
        ];
        for (input, field, needle) in cases {
            let found = problems(input.clone());
            assert!(
                found.iter().any(|(f, m)| f == field && m.contains(needle)),
                "{input}: wanted {field}: …{needle}…, got {found:?}"
            );
        }
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let err = parse(json!({"Regions": ["us-east-1", "nowhere-1"], "NoEcho": "maybe"})).expect_err("invalid");
        let fields: Vec<_> = err.problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["TableName", "Regions[1]", "NoEcho"]);
        let text = err.to_string();
        assert!(text.starts_with("invalid properties (3 problems): TableName: required"), "{text}");
    }

    #[test]
    fn lenient_read_takes_what_it_can_and_errs_on_the_safe_side() {
        let read = LenientProperties::read(&json!({
            "TableName": "T12", "Regions": ["us-east-1", {"RegionName": "eu-west-1"}, 5, "mars-1"],
            "RetainReplicasOnDelete": "perhaps", "NoEcho": "???"
        }));
        assert_eq!(read.table_name.as_deref(), Some("T12"));
        let regions: Vec<_> = read.regions.iter().map(|r| r.region.as_str()).collect();
        assert_eq!(regions, ["us-east-1", "eu-west-1", "mars-1"]);
        assert!(read.retain_replicas_on_delete && read.retain_unreadable, "unreadable retain keeps the replicas");
        assert!(read.no_echo, "unreadable NoEcho hides values");

        let empty = LenientProperties::read(&json!("garbage"));
        assert_eq!(empty, LenientProperties::default());
        assert_eq!(LenientProperties::read(&json!({"TableName": "x"})).table_name, None, "invalid names are dropped");
    }

    #[test]
    fn no_echo_hint_is_conservative() {
        assert!(!no_echo_hint(None));
        assert!(!no_echo_hint(Some(&json!({"TableName": "T12"}))));
        assert!(no_echo_hint(Some(&json!({"NoEcho": "true"}))));
        assert!(no_echo_hint(Some(&json!({"NoEcho": 1}))));
        assert!(!no_echo_hint(Some(&json!({"NoEcho": "false"}))));
    }

    #[test]
    fn edit_distance_is_levenshtein() {
        assert_eq!(edit_distance("regions", "regions"), 0);
        assert_eq!(edit_distance("region", "regions"), 1);
        assert_eq!(edit_distance("tabelname", "tablename"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}

//! Multi-Region strong consistency (MRSC): the Region sets and AWS's rules for an MRSC replica
//! set, checked before any AWS call (pure, table-tested).
//!
//! What AWS documents (DynamoDB API reference `UpdateTable`, `GlobalTableWitnessGroupUpdate`,
//! `CreateGlobalTableWitnessGroupMemberAction`; CloudFormation `AWS::DynamoDB::GlobalTable
//! GlobalTableWitness`; developer guide "How DynamoDB global tables work"):
//! - an MRSC global table has exactly three Regions: three replicas, or two replicas and one
//!   witness; all three are in one Region set (US, EU, AP below), the witness in a Region of its
//!   own;
//! - it is created by one `UpdateTable` on an empty single-Region table, carrying the replicas'
//!   `ReplicaUpdates` Create entries, `MultiRegionConsistency: STRONG` and the witness's
//!   `GlobalTableWitnessUpdates` Create (a witness can be added only then);
//! - a global table's consistency mode never changes, and an MRSC table takes no new replica;
//!   its witness goes only together with a replica, which leaves a single-Region table;
//! - MRSC tables have no Time to Live, no local secondary indexes, no transactions.

use std::fmt;

/// `MultiRegionConsistency`: how the replica set is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Consistency {
    /// Multi-Region eventual consistency (MREC), DynamoDB's default.
    #[default]
    Eventual,
    /// Multi-Region strong consistency (MRSC).
    Strong,
}

impl Consistency {
    pub const EVENTUAL: &'static str = "EVENTUAL";
    pub const STRONG: &'static str = "STRONG";

    /// The property value (case-insensitive), `None` for anything else.
    pub fn parse(value: &str) -> Option<Self> {
        match value.trim().to_ascii_uppercase().as_str() {
            Self::EVENTUAL => Some(Self::Eventual),
            Self::STRONG => Some(Self::Strong),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Eventual => Self::EVENTUAL,
            Self::Strong => Self::STRONG,
        }
    }
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Region sets of MRSC, as the DynamoDB API reference lists them.
pub const REGION_SETS: &[(&str, &[&str])] = &[
    ("US", &["us-east-1", "us-east-2", "us-west-2"]),
    ("EU", &["eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1"]),
    ("AP", &["ap-northeast-1", "ap-northeast-2", "ap-northeast-3"]),
];

/// The Region set `region` belongs to, with its Regions.
pub fn region_set(region: &str) -> Option<(&'static str, &'static [&'static str])> {
    REGION_SETS.iter().copied().find(|(_, regions)| regions.contains(&region))
}

fn describe_set(name: &str, regions: &[&str]) -> String {
    format!("{name} ({})", regions.join(", "))
}

fn all_sets() -> String {
    REGION_SETS.iter().map(|(name, regions)| describe_set(name, regions)).collect::<Vec<_>>().join(", ")
}

/// One rule an MRSC request breaks: the property it concerns and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

/// The problems of a `STRONG` replica set: `regions` as listed (the home Region included, already
/// checked to be unique known Regions of one partition), `witness` the `WitnessRegion`.
pub fn check_strong(home: &str, regions: &[&str], witness: Option<&str>) -> Vec<Violation> {
    let mut found = Vec::new();
    let mut add = |field: String, message: String| found.push(Violation { field, message });
    let Some((set, members)) = region_set(home) else {
        add(
            "MultiRegionConsistency".to_owned(),
            format!(
                "STRONG needs all three Regions in one Region set ({}), and the table's Region {home} is in none: use EVENTUAL, or keep the table in a Region of one of these sets",
                all_sets()
            ),
        );
        return found;
    };
    let this_set = describe_set(set, members);
    for (i, region) in regions.iter().enumerate() {
        if !members.contains(region) {
            add(
                format!("Regions[{i}]"),
                format!(
                    "`{region}` is not in the Region set of {home}, {this_set}: with MultiRegionConsistency STRONG every Region is in one set; list Regions of {set} only"
                ),
            );
        }
    }
    if let Some(witness) = witness {
        if regions.contains(&witness) {
            add(
                "WitnessRegion".to_owned(),
                format!(
                    "`{witness}` is also listed in Regions: the witness is a third Region without a replica; name another Region of {this_set}, or remove it from Regions"
                ),
            );
        } else if !members.contains(&witness) {
            add(
                "WitnessRegion".to_owned(),
                format!("`{witness}` is not in the Region set of {home}, {this_set}: name a Region of {set}"),
            );
        }
    }
    match (witness, regions.len()) {
        (None, 3) | (Some(_), 2) => {}
        (None, n) => add(
            "Regions".to_owned(),
            format!(
                "MultiRegionConsistency STRONG needs exactly three Regions: list three Regions of {this_set} ({n} listed), or two and a WitnessRegion"
            ),
        ),
        (Some(_), n) => add(
            "Regions".to_owned(),
            format!(
                "with a WitnessRegion, MultiRegionConsistency STRONG needs exactly two Regions (the table's and one replica; the witness is the third), {n} listed"
            ),
        ),
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(home: &str, regions: &[&str], witness: Option<&str>) -> Vec<(String, String)> {
        check_strong(home, regions, witness).into_iter().map(|v| (v.field, v.message)).collect()
    }

    #[test]
    fn valid_sets_pass() {
        let cases: &[(&str, &[&str], Option<&str>)] = &[
            ("us-east-1", &["us-east-1", "us-east-2", "us-west-2"], None),
            ("us-east-1", &["us-east-1", "us-west-2"], Some("us-east-2")),
            ("eu-west-1", &["eu-west-1", "eu-central-1", "eu-west-3"], None),
            ("eu-west-2", &["eu-west-2", "eu-west-1"], Some("eu-central-1")),
            ("ap-northeast-1", &["ap-northeast-1", "ap-northeast-2", "ap-northeast-3"], None),
        ];
        for (home, regions, witness) in cases {
            assert_eq!(problems(home, regions, *witness), vec![], "{home} {regions:?} {witness:?}");
        }
    }

    /// (home, Regions, WitnessRegion, field, what the message says)
    type Case = (&'static str, &'static [&'static str], Option<&'static str>, &'static str, &'static str);

    #[test]
    fn each_broken_rule_names_its_property_and_what_to_change() {
        let cases: &[Case] = &[
            ("us-east-1", &["us-east-1", "us-west-2"], None, "Regions", "exactly three Regions"),
            ("us-east-1", &["us-east-1"], None, "Regions", "or two and a WitnessRegion"),
            ("us-east-1", &["us-east-1", "us-east-2", "us-west-2"], Some("us-west-1"), "Regions", "exactly two"),
            ("us-east-1", &["us-east-1", "us-east-2", "eu-west-1"], None, "Regions[2]", "list Regions of US only"),
            ("us-east-1", &["us-east-1", "us-east-2"], Some("eu-west-1"), "WitnessRegion", "name a Region of US"),
            ("us-east-1", &["us-east-1", "us-east-2"], Some("us-east-2"), "WitnessRegion", "also listed in Regions"),
            (
                "ap-southeast-1",
                &["ap-southeast-1", "ap-northeast-1"],
                Some("ap-northeast-2"),
                "MultiRegionConsistency",
                "use EVENTUAL",
            ),
            ("sa-east-1", &["sa-east-1", "us-east-1", "us-east-2"], None, "MultiRegionConsistency", "is in none"),
        ];
        for (home, regions, witness, field, needle) in cases {
            let found = problems(home, regions, *witness);
            assert!(
                found.iter().any(|(f, m)| f == field && m.contains(needle)),
                "{home} {regions:?} {witness:?}: wanted {field}: …{needle}…, got {found:?}"
            );
        }
    }

    #[test]
    fn the_region_sets_are_awss() {
        assert_eq!(region_set("us-east-2").map(|s| s.0), Some("US"));
        assert_eq!(region_set("eu-central-1").map(|s| s.0), Some("EU"));
        assert_eq!(region_set("ap-northeast-3").map(|s| s.0), Some("AP"));
        assert_eq!(region_set("ap-southeast-1"), None);
        assert_eq!(region_set("us-west-1"), None);
    }

    #[test]
    fn consistency_values_parse_case_insensitively() {
        assert_eq!(Consistency::parse("STRONG"), Some(Consistency::Strong));
        assert_eq!(Consistency::parse(" eventual "), Some(Consistency::Eventual));
        assert_eq!(Consistency::parse("strict"), None);
        assert_eq!(Consistency::default(), Consistency::Eventual);
    }
}

//! The AWS Regions a Global Table replica can live in, and their partitions.
//!
//! A `Regions` entry is checked against this list before any AWS call, so a typo
//! (`eu-west1`, `mars-east-1`) is answered with a clear FAILED instead of a ValidationException
//! minutes into a deployment. The list is the one DynamoDB itself prints when it rejects a Region
//! for global tables version 2019.11.21; Regions launched later can be allowed without a new build
//! through `PROVISIONER_EXTRA_REGIONS` (see [`crate::Config`]).

use std::collections::BTreeSet;

/// Regions where DynamoDB global tables (version 2019.11.21) are available, as DynamoDB lists them.
pub const GLOBAL_TABLE_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "cn-north-1",
    "cn-northwest-1",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isob-west-1",
    "eu-isoe-west-1",
    "us-isof-east-1",
    "us-isof-south-1",
    "eusc-de-east-1",
];

/// The set of Region names this deployment accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownRegions {
    names: BTreeSet<String>,
}

impl Default for KnownRegions {
    fn default() -> Self {
        Self::with_extra(std::iter::empty::<String>())
    }
}

impl KnownRegions {
    /// [`GLOBAL_TABLE_REGIONS`] plus `extra`.
    pub fn with_extra<I, S>(extra: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut names: BTreeSet<String> = GLOBAL_TABLE_REGIONS.iter().map(|r| (*r).to_owned()).collect();
        names.extend(extra.into_iter().map(Into::into));
        Self { names }
    }

    pub fn contains(&self, region: &str) -> bool {
        self.names.contains(region)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

/// The AWS partition of a Region: a global table cannot span partitions.
pub fn partition(region: &str) -> &'static str {
    const PREFIXES: &[(&str, &str)] = &[
        ("cn-", "aws-cn"),
        ("us-gov-", "aws-us-gov"),
        ("us-isob-", "aws-iso-b"),
        ("us-isof-", "aws-iso-f"),
        ("us-iso-", "aws-iso"),
        ("eu-isoe-", "aws-iso-e"),
        ("eusc-", "aws-eusc"),
    ];
    PREFIXES.iter().find(|(prefix, _)| region.starts_with(prefix)).map(|(_, p)| *p).unwrap_or("aws")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_seed_regions_and_rejects_typos() {
        let known = KnownRegions::default();
        for region in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
            assert!(known.contains(region), "{region}");
        }
        for typo in ["eu-west1", "mars-east-1", "US-EAST-1", " us-east-1", ""] {
            assert!(!known.contains(typo), "{typo:?}");
        }
    }

    #[test]
    fn every_listed_region_is_a_region_name_for_the_topology_too() {
        // One rule for what a Region name looks like: the topology and the drill refuse what
        // `shared::topology::is_region_name` refuses, so the list must not hold such a name.
        for region in GLOBAL_TABLE_REGIONS {
            assert!(shared::topology::is_region_name(region), "{region}");
        }
    }

    #[test]
    fn extra_regions_extend_the_list() {
        let known = KnownRegions::with_extra(["xx-new-1"]);
        assert!(known.contains("xx-new-1"));
        assert!(known.contains("us-east-1"));
    }

    #[test]
    fn partitions_follow_the_region_prefix() {
        let cases = [
            ("us-east-1", "aws"),
            ("eu-west-1", "aws"),
            ("cn-north-1", "aws-cn"),
            ("us-gov-west-1", "aws-us-gov"),
            ("us-iso-east-1", "aws-iso"),
            ("us-isob-east-1", "aws-iso-b"),
            ("us-isof-south-1", "aws-iso-f"),
            ("eu-isoe-west-1", "aws-iso-e"),
            ("eusc-de-east-1", "aws-eusc"),
        ];
        for (region, want) in cases {
            assert_eq!(partition(region), want, "{region}");
        }
    }
}

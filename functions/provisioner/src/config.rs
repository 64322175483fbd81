//! The provisioner's configuration, read once per container from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `AWS_REGION` | (set by Lambda; required) | the function's Region: the table's home Region |
//! | `AWS_LAMBDA_FUNCTION_NAME` | (set by Lambda) | fallback name for continuations when the invoked ARN is unknown |
//! | `PROVISIONER_EXTRA_REGIONS` | empty | comma-separated Regions to accept beyond the built-in list |
//! | `PROVISIONER_DEADLINE_MARGIN_MS` | 5000 | answer FAILED this long before the Lambda deadline / the ServiceTimeout |
//! | `PROVISIONER_POLL_INTERVAL_MS` | 5000 | wait between DescribeTable rounds while replicas change |
//! | `PROVISIONER_RESPONSE_ATTEMPTS` | 5 | at most this many PUTs of the response |
//! | `PROVISIONER_TABLE_NAMES` | empty | comma-separated tables any request may touch (template parameter `ProvisionerTableNames`); empty: any the role allows |
//! | `MULTISITE_PROVISIONER_ALLOW_LOCAL_RESPONSE_URL` | off | `1`/`true`: also accept a loopback ResponseURL (tests and the drill only; see [`crate::trust`]) |

use crate::delivery::DeliveryPolicy;
use crate::regions::KnownRegions;
use std::collections::BTreeSet;
use std::time::Duration;

pub const REGION_ENV: &str = "AWS_REGION";
pub const FUNCTION_NAME_ENV: &str = "AWS_LAMBDA_FUNCTION_NAME";
pub const EXTRA_REGIONS_ENV: &str = "PROVISIONER_EXTRA_REGIONS";
pub const DEADLINE_MARGIN_ENV: &str = "PROVISIONER_DEADLINE_MARGIN_MS";
pub const POLL_INTERVAL_ENV: &str = "PROVISIONER_POLL_INTERVAL_MS";
pub const RESPONSE_ATTEMPTS_ENV: &str = "PROVISIONER_RESPONSE_ATTEMPTS";
pub const TABLE_NAMES_ENV: &str = "PROVISIONER_TABLE_NAMES";
/// The template parameter that sets [`TABLE_NAMES_ENV`], named in reasons.
pub const TABLE_NAMES_PARAMETER: &str = "ProvisionerTableNames";
pub const ALLOW_LOCAL_RESPONSE_URL_ENV: &str = "MULTISITE_PROVISIONER_ALLOW_LOCAL_RESPONSE_URL";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The function's Region, where the table lives and `UpdateTable` is called.
    pub home_region: String,
    pub function_name: Option<String>,
    pub known_regions: KnownRegions,
    /// The deadline guard answers FAILED this long before the Lambda deadline (or the end of the
    /// ServiceTimeout): room for the PUT of the response and its retries.
    pub deadline_margin: Duration,
    /// Pause between observations while replicas are in transition.
    pub poll_interval: Duration,
    /// Time kept, before the guard, to queue a continuation.
    pub continue_reserve: Duration,
    /// The invocation budget when the context has no deadline (not running in Lambda).
    pub default_invocation_time: Duration,
    pub delivery: DeliveryPolicy,
    /// Test switch: also accept a ResponseURL on a loopback host (the local response server).
    pub allow_local_response_url: bool,
    /// The only tables a request may touch; `None`: any the role allows.
    pub table_names: Option<BTreeSet<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{REGION_ENV} is not set: the provisioner must know its own Region (the table's home Region)")]
    MissingRegion,
    #[error("{name}: `{value}` is not {expected}")]
    Invalid { name: &'static str, value: String, expected: &'static str },
}

impl Config {
    /// Defaults for a function running in `home_region`.
    pub fn for_region(home_region: impl Into<String>) -> Self {
        let home_region = home_region.into();
        Self {
            known_regions: KnownRegions::with_extra([home_region.clone()]),
            home_region,
            function_name: None,
            deadline_margin: Duration::from_secs(5),
            poll_interval: Duration::from_secs(5),
            continue_reserve: Duration::from_secs(3),
            default_invocation_time: Duration::from_secs(900),
            delivery: DeliveryPolicy::default(),
            allow_local_response_url: false,
            table_names: None,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let home = lookup(REGION_ENV)
            .map(|r| r.trim().to_owned())
            .filter(|r| !r.is_empty())
            .ok_or(ConfigError::MissingRegion)?;
        let mut config = Self::for_region(home.clone());
        config.function_name = lookup(FUNCTION_NAME_ENV).filter(|n| !n.trim().is_empty());
        if let Some(extra) = lookup(EXTRA_REGIONS_ENV) {
            let names: Vec<String> =
                extra.split(',').map(str::trim).filter(|r| !r.is_empty()).map(str::to_owned).collect();
            if let Some(bad) = names.iter().find(|r| !shared::topology::is_region_name(r)) {
                return Err(ConfigError::Invalid {
                    name: EXTRA_REGIONS_ENV,
                    value: bad.clone(),
                    expected: "a Region name like `xx-east-1` (comma-separated list)",
                });
            }
            config.known_regions = KnownRegions::with_extra(names.into_iter().chain([home]));
        }
        if let Some(ms) = millis(&lookup, DEADLINE_MARGIN_ENV, 1000..=60_000)? {
            config.deadline_margin = ms;
        }
        if let Some(ms) = millis(&lookup, POLL_INTERVAL_ENV, 100..=60_000)? {
            config.poll_interval = ms;
        }
        if let Some(raw) = lookup(RESPONSE_ATTEMPTS_ENV) {
            config.delivery.attempts =
                raw.trim().parse::<u32>().ok().filter(|n| (1..=10).contains(n)).ok_or(ConfigError::Invalid {
                    name: RESPONSE_ATTEMPTS_ENV,
                    value: raw,
                    expected: "a whole number from 1 to 10",
                })?;
        }
        if let Some(raw) = lookup(TABLE_NAMES_ENV) {
            let names: BTreeSet<String> =
                raw.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_owned).collect();
            if let Some(bad) = names.iter().find(|n| !shared::topology::is_table_name(n)) {
                return Err(ConfigError::Invalid {
                    name: TABLE_NAMES_ENV,
                    value: bad.clone(),
                    expected: "a DynamoDB table name (comma-separated list; empty for any table)",
                });
            }
            config.table_names = (!names.is_empty()).then_some(names);
        }
        if let Some(raw) = lookup(ALLOW_LOCAL_RESPONSE_URL_ENV) {
            config.allow_local_response_url = switch(ALLOW_LOCAL_RESPONSE_URL_ENV, raw)?;
        }
        Ok(config)
    }
}

/// A TableName outside `ProvisionerTableNames`; the message says what to change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "TableName `{table}` is not one of the tables this provisioner may manage ({TABLE_NAMES_PARAMETER}: {allowed}): add it to the {TABLE_NAMES_PARAMETER} parameter of the provisioner's stack, or name one of those tables"
)]
pub struct OutsideTables {
    pub table: String,
    /// The allowed tables, comma-separated.
    pub allowed: String,
}

impl Config {
    /// Whether a request may touch `table` at all.
    pub fn allows_table(&self, table: &str) -> Result<(), OutsideTables> {
        match &self.table_names {
            Some(names) if !names.contains(table) => Err(OutsideTables {
                table: table.to_owned(),
                allowed: names.iter().map(String::as_str).collect::<Vec<_>>().join(", "),
            }),
            _ => Ok(()),
        }
    }
}

/// An on/off setting: `1`/`true` or `0`/`false`/empty; anything else is an error rather than a
/// guess (a typo must not switch a safety check off, nor leave a test wondering).
fn switch(name: &'static str, raw: String) -> Result<bool, ConfigError> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" => Ok(true),
        "" | "0" | "false" => Ok(false),
        _ => Err(ConfigError::Invalid { name, value: raw, expected: "1, true, 0, false or empty" }),
    }
}

fn millis(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<Duration>, ConfigError> {
    let Some(raw) = lookup(name) else { return Ok(None) };
    let ms = raw.trim().parse::<u64>().ok().filter(|ms| range.contains(ms)).ok_or(ConfigError::Invalid {
        name,
        value: raw.clone(),
        expected: "a whole number of milliseconds in the allowed range (see the README)",
    })?;
    Ok(Some(Duration::from_millis(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| (*v).to_owned()))
    }

    #[test]
    fn defaults_need_only_the_region() {
        let c = config(&[("AWS_REGION", "us-east-1")]).expect("valid");
        assert_eq!(c, Config::for_region("us-east-1"));
        assert_eq!(c.deadline_margin, Duration::from_secs(5));
        assert_eq!(c.delivery.attempts, 5);
        assert!(!c.allow_local_response_url, "the local ResponseURL switch is off by default");
        assert_eq!(config(&[]), Err(ConfigError::MissingRegion));
    }

    #[test]
    fn settings_are_read_and_checked() {
        let c = config(&[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_LAMBDA_FUNCTION_NAME", "provisioner"),
            ("PROVISIONER_EXTRA_REGIONS", "xx-new-1, yy-new-2"),
            ("PROVISIONER_DEADLINE_MARGIN_MS", "8000"),
            ("PROVISIONER_POLL_INTERVAL_MS", "250"),
            ("PROVISIONER_RESPONSE_ATTEMPTS", "3"),
            ("MULTISITE_PROVISIONER_ALLOW_LOCAL_RESPONSE_URL", "1"),
        ])
        .expect("valid");
        assert!(c.allow_local_response_url);
        assert_eq!(c.function_name.as_deref(), Some("provisioner"));
        assert!(c.known_regions.contains("yy-new-2") && c.known_regions.contains("us-east-1"));
        assert_eq!(
            (c.deadline_margin, c.poll_interval, c.delivery.attempts),
            (Duration::from_secs(8), Duration::from_millis(250), 3)
        );

        for (name, value) in [
            ("PROVISIONER_EXTRA_REGIONS", "not a region"),
            ("PROVISIONER_DEADLINE_MARGIN_MS", "10"),
            ("PROVISIONER_POLL_INTERVAL_MS", "soon"),
            ("PROVISIONER_RESPONSE_ATTEMPTS", "0"),
            ("MULTISITE_PROVISIONER_ALLOW_LOCAL_RESPONSE_URL", "yes"),
            ("PROVISIONER_TABLE_NAMES", "UserSessions,a b"),
        ] {
            let err = config(&[("AWS_REGION", "us-east-1"), (name, value)]).expect_err("invalid");
            assert!(err.to_string().starts_with(name), "{err}");
        }
    }

    #[test]
    fn the_home_region_is_always_known() {
        let c = config(&[("AWS_REGION", "xx-brandnew-1")]).expect("valid");
        assert!(c.known_regions.contains("xx-brandnew-1"));
    }

    #[test]
    fn the_table_allow_list_bounds_the_tables_and_empty_allows_any() {
        let any = config(&[("AWS_REGION", "us-east-1"), ("PROVISIONER_TABLE_NAMES", " , ")]).expect("valid");
        assert_eq!(any.table_names, None);
        assert_eq!(any.allows_table("Anything"), Ok(()));
        let some =
            config(&[("AWS_REGION", "us-east-1"), ("PROVISIONER_TABLE_NAMES", "UserSessions, Carts")]).expect("valid");
        assert_eq!(some.allows_table("Carts"), Ok(()));
        let reason = some.allows_table("Orders").expect_err("outside").to_string();
        assert!(
            reason.starts_with("TableName `Orders` is not one of the tables this provisioner may manage (ProvisionerTableNames: Carts, UserSessions): add it to the ProvisionerTableNames parameter"),
            "{reason}"
        );
    }
}

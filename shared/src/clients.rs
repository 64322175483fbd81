//! Per-Region AWS clients, built once per Lambda container and reused by every invocation.
//!
//! One base configuration is loaded from the standard sources (environment, profile, credential
//! chain, and the standard `AWS_ENDPOINT_URL` override that points tests at the local emulator);
//! each Region's `SdkConfig` and clients are derived from it the first time that Region is used,
//! so a cold start never pays for Regions an invocation does not touch.

use crate::error::Error;
use crate::topology::Topology;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_types::timeout::TimeoutConfig;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// Short timeouts keep a call into a failed Region from eating the invocation: static stability
/// (DESIGN.md section 3) means such calls are best-effort, never on the critical path.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// The clients of one Region.
#[derive(Debug, Clone)]
pub struct RegionClients {
    pub region: String,
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// Route 53 is a global service whose control plane lives in us-east-1; a client "in" another
    /// Region reaches the same global endpoint on AWS. Use a survivor's client for failover calls.
    pub route53: aws_sdk_route53::Client,
    pub rds: aws_sdk_rds::Client,
    pub autoscaling: aws_sdk_autoscaling::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
}

impl RegionClients {
    fn build(base: &SdkConfig, region: &str) -> Self {
        let config = base.to_builder().region(Region::new(region.to_owned())).build();
        Self {
            region: region.to_owned(),
            dynamodb: aws_sdk_dynamodb::Client::new(&config),
            route53: aws_sdk_route53::Client::new(&config),
            rds: aws_sdk_rds::Client::new(&config),
            autoscaling: aws_sdk_autoscaling::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        }
    }
}

/// Lazily built clients for every Region of the topology.
#[derive(Debug)]
pub struct RegionalClients {
    base: SdkConfig,
    regions: BTreeMap<String, OnceLock<RegionClients>>,
}

impl RegionalClients {
    /// Loads the standard AWS configuration once and prepares (without building) the clients of
    /// every Region in the topology.
    pub async fn new(topology: &Topology) -> Self {
        let base = aws_config::defaults(BehaviorVersion::latest()).timeout_config(default_timeouts()).load().await;
        Self::with_base(base, topology.regions())
    }

    /// Uses an already loaded base configuration (tests load one pointing at the emulator with the
    /// same standard endpoint override `AWS_ENDPOINT_URL` sets).
    pub fn with_base<I, S>(base: SdkConfig, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let regions = regions.into_iter().map(|r| (r.into(), OnceLock::new())).collect();
        Self { base, regions }
    }

    /// The clients of `region`, built on first use.
    pub fn region(&self, region: &str) -> Result<&RegionClients, Error> {
        let slot = self.regions.get(region).ok_or_else(|| Error::UnknownRegion(region.to_owned()))?;
        Ok(slot.get_or_init(|| RegionClients::build(&self.base, region)))
    }

    /// Regions these clients serve, in name order.
    pub fn regions(&self) -> impl Iterator<Item = &str> {
        self.regions.keys().map(String::as_str)
    }

    /// How many Regions have had their clients built so far.
    pub fn built_regions(&self) -> usize {
        self.regions.values().filter(|slot| slot.get().is_some()).count()
    }

    /// The base configuration every Region's configuration derives from.
    pub fn base_config(&self) -> &SdkConfig {
        &self.base
    }
}

/// Timeouts applied to every client unless the environment's configuration already sets them.
pub fn default_timeouts() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> SdkConfig {
        SdkConfig::builder().behavior_version(BehaviorVersion::latest()).build()
    }

    #[test]
    fn builds_each_region_once_and_only_when_used() {
        let clients = RegionalClients::with_base(base(), ["us-east-1", "eu-west-1", "ap-southeast-1"]);
        assert_eq!(clients.built_regions(), 0, "nothing is built at construction (cold start)");

        let first = clients.region("eu-west-1").expect("known region");
        assert_eq!(first.region, "eu-west-1");
        assert_eq!(first.dynamodb.config().region().map(|r| r.as_ref()), Some("eu-west-1"));
        assert_eq!(clients.built_regions(), 1);

        let again = clients.region("eu-west-1").expect("known region");
        assert!(std::ptr::eq(first, again), "the same clients are reused");
        assert_eq!(clients.built_regions(), 1);
    }

    #[test]
    fn unknown_region_is_an_error_not_a_new_client() {
        let clients = RegionalClients::with_base(base(), ["us-east-1", "eu-west-1"]);
        let err = clients.region("sa-east-1").expect_err("not in topology");
        assert!(matches!(err, Error::UnknownRegion(r) if r == "sa-east-1"));
        assert_eq!(clients.built_regions(), 0);
    }
}

//! Per-Region AWS clients, built once per Lambda container and reused by every invocation.
//!
//! One base configuration is loaded from the standard sources (environment, profile, credential
//! chain, and the standard `AWS_ENDPOINT_URL` override that points tests at the local emulator);
//! each Region's `SdkConfig` and clients are derived from it the first time that Region is used,
//! so a cold start never pays for Regions an invocation does not touch.

use crate::arc::ArcCluster;
use crate::error::Error;
use crate::topology::{ArcRouting, Topology};
use aws_config::environment::{EnvironmentVariableCredentialsProvider, EnvironmentVariableRegionProvider};
use aws_config::meta::region::ProvideRegion;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::ProvideCredentials;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use aws_smithy_http_client::{Builder, ConnectorBuilder};
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpClient, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::timeout::TimeoutConfig;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

/// Short timeouts keep a call into a failed Region from eating the invocation: static stability
/// (docs/architecture.md, section 3) means such calls are best-effort, never on the critical path.
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

/// Lazily built clients for every Region of the topology, and for the ARC cluster's endpoints.
#[derive(Debug)]
pub struct RegionalClients {
    base: SdkConfig,
    regions: BTreeMap<String, OnceLock<RegionClients>>,
    arc: OnceLock<ArcCluster>,
}

impl RegionalClients {
    /// Loads the standard AWS configuration once and prepares (without building) the clients of
    /// every Region in the topology.
    pub async fn new(topology: &Topology) -> Self {
        Self::with_base(load_base_config().await, topology.client_regions())
    }

    /// Uses an already loaded base configuration (tests load one pointing at the emulator with the
    /// same standard endpoint override `AWS_ENDPOINT_URL` sets).
    pub fn with_base<I, S>(base: SdkConfig, regions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let regions = regions.into_iter().map(|r| (r.into(), OnceLock::new())).collect();
        Self { base, regions, arc: OnceLock::new() }
    }

    /// The data plane of the topology's ARC cluster, built on first use; the endpoint in
    /// `home_region` (if the cluster has one) is tried first.
    pub fn arc(&self, arc: &ArcRouting, home_region: &str) -> &ArcCluster {
        self.arc.get_or_init(|| ArcCluster::new(&self.base, arc, Some(home_region)))
    }

    /// The clients of `region`, built on first use.
    pub fn region(&self, region: &str) -> Result<&RegionClients, Error> {
        let slot = self.regions.get(region).ok_or_else(|| Error::UnknownRegion(region.to_owned()))?;
        Ok(slot.get_or_init(|| RegionClients::build(&self.base, region)))
    }

    /// The configuration of `region` (the base with that Region), for a client of a service
    /// only one function calls (failover's SNS notification): built when used, not per Region.
    pub fn sdk_config(&self, region: &str) -> SdkConfig {
        self.base.to_builder().region(Region::new(region.to_owned())).build()
    }

    /// How many Regions have had their clients built so far.
    pub fn built_regions(&self) -> usize {
        self.regions.values().filter(|slot| slot.get().is_some()).count()
    }
}

/// The standard AWS configuration (environment, profile, credential chain, `AWS_ENDPOINT_URL`)
/// with multisite's timeouts and an HTTPS client that sets itself up on the first request.
///
/// Region and credentials: the default chains try the environment first, and on Lambda the
/// environment always has both (`AWS_REGION`, the execution role's `AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`). Building the chains anyway constructs two
/// IMDS clients (region chain, IMDS credentials) and the ECS, web identity and profile credential
/// providers, none of which is ever asked once the environment has answered: about 0.4 ms of a
/// cold start. So when the environment answers, its providers are used directly (what the chains
/// would return); otherwise (local use: a profile, SSO, IMDS...) the loader builds the full
/// default chains as before.
pub async fn load_base_config() -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .timeout_config(default_timeouts())
        .http_client(LazyHttpsClient::default());
    if let Some(region) = EnvironmentVariableRegionProvider::new().region().await {
        loader = loader.region(region);
    }
    let env_credentials = EnvironmentVariableCredentialsProvider::new();
    if env_credentials.provide_credentials().await.is_ok() {
        loader = loader.credentials_provider(env_credentials);
    }
    loader.load().await
}

/// The SDK's HTTPS client (hyper 1.x, rustls with ring, proxy settings from the environment),
/// created on the first request rather than when an SDK client is constructed. Every SDK
/// configuration must carry it: the SDK crates are built without a default client.
///
/// Why: the default client builds a TLS connector, loading and parsing the platform's root
/// certificates, every time an SDK client is constructed (`validate_base_client_config`): during
/// Lambda init for clients that may never be used, and once per client and Region (5 per Region)
/// on first use. Here connectors are built on demand and cached per connector settings, so the
/// certificates are parsed once, when a request needs them.
#[derive(Debug, Default, Clone)]
pub struct LazyHttpsClient {
    inner: std::sync::Arc<OnceLock<SharedHttpClient>>,
}

impl LazyHttpsClient {
    /// Whether the underlying client exists yet (it does after the first request).
    pub fn is_initialised(&self) -> bool {
        self.inner.get().is_some()
    }

    fn inner(&self) -> &SharedHttpClient {
        self.inner.get_or_init(|| {
            Builder::new().build_with_connector_fn(|settings, components| {
                let mut connector = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::Ring));
                connector.set_connector_settings(settings.cloned());
                if let Some(components) = components {
                    connector.set_sleep_impl(components.sleep_impl());
                }
                connector.set_proxy_config(Some(ProxyConfig::from_env()));
                connector.build()
            })
        })
    }
}

impl HttpClient for LazyHttpsClient {
    fn http_connector(&self, settings: &HttpConnectorSettings, components: &RuntimeComponents) -> SharedHttpConnector {
        self.inner().http_connector(settings, components)
    }

    // `validate_base_client_config` keeps its default (nothing): that hook is where the default
    // client would build its connector eagerly.

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        Some(ConnectorMetadata::new("hyper", Some(Cow::Borrowed("1.x"))))
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

    #[tokio::test]
    async fn the_https_client_is_set_up_by_the_first_request_not_by_client_construction() {
        let http = LazyHttpsClient::default();
        let base = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http.clone())
            .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("AKIDTEST", "secret", None, None, "test"),
            ))
            // Nothing listens on port 1: the request fails fast, after asking for a connector.
            .endpoint_url("http://127.0.0.1:1")
            .build();
        let clients = RegionalClients::with_base(base, ["us-east-1", "eu-west-1"]);
        clients.region("us-east-1").expect("known region");
        let eu = clients.region("eu-west-1").expect("known region");
        assert_eq!(clients.built_regions(), 2);
        assert!(!http.is_initialised(), "constructing 10 SDK clients built no connector");

        let err = eu.dynamodb.list_tables().send().await.expect_err("nothing listens on port 1");
        assert!(matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)), "a connection failure: {err:?}");
        assert!(http.is_initialised(), "the first request set the client up");
    }

    #[test]
    fn unknown_region_is_an_error_not_a_new_client() {
        let clients = RegionalClients::with_base(base(), ["us-east-1", "eu-west-1"]);
        let err = clients.region("sa-east-1").expect_err("not in topology");
        assert!(matches!(err, Error::UnknownRegion(r) if r == "sa-east-1"));
        assert_eq!(clients.built_regions(), 0);
    }
}

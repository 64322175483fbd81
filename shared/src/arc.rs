//! Route 53 ARC routing controls, read and set only through the cluster's data plane.
//!
//! An ARC cluster answers at five Regional endpoints that share one state; any one of them is
//! enough. AWS's guidance (Route 53 ARC developer guide, "Get and update routing control states
//! using the API"): keep the endpoints in the configuration, and when one does not answer, try the
//! next. So every call here tries the endpoints in turn, starting with the last one that answered,
//! each attempt with a short deadline and no SDK retry (the next endpoint is the retry). Answers
//! that another endpoint would repeat end the search at once: a safety rule's refusal, an IAM
//! denial, a validation error, an unknown routing control.

use crate::error::{AwsErrorKind, Error};
use crate::topology::ArcRouting;
use aws_config::{Region, SdkConfig};
use aws_sdk_route53recoverycluster::Client;
use aws_sdk_route53recoverycluster::types::{RoutingControlState, UpdateRoutingControlStateEntry};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Deadline of one attempt at one endpoint (connect included). Five endpoints, two passes: a
/// cluster with every endpoint timing out costs at most 20 s, within failover's Lambda timeout.
pub const ENDPOINT_TIMEOUT: Duration = Duration::from_secs(2);
/// How many times the whole endpoint list is tried before giving up.
pub const PASSES: usize = 2;

/// The error code ARC answers when a safety rule refuses a routing-control change.
pub const SAFETY_RULE_REFUSAL_CODE: &str = "ConflictException";

/// One cluster endpoint and its client.
#[derive(Debug)]
struct Endpoint {
    region: String,
    client: Client,
}

/// The data plane of one ARC cluster.
#[derive(Debug)]
pub struct ArcCluster {
    endpoints: Vec<Endpoint>,
    /// The endpoint to try first: the last one that answered.
    preferred: AtomicUsize,
}

/// What a read of the control panel saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlStates {
    /// Routing control ARN -> On.
    pub on: BTreeMap<String, bool>,
    /// The Region of the endpoint that answered.
    pub endpoint_region: String,
}

/// How a routing-control change ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    /// ARC applied every entry, atomically.
    Applied { endpoint_region: String },
    /// A safety rule refused the change: nothing changed. `reason` is ARC's message.
    Refused { reason: String },
}

/// One endpoint's answer to a read of the control panel (lag-probe's readiness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointAnswer {
    pub region: String,
    /// Routing control ARN -> On, as this endpoint answered; `Err`: why it did not answer.
    pub states: Result<BTreeMap<String, bool>, String>,
}

impl ArcCluster {
    /// Clients for every endpoint of `arc`, derived from `base` (credentials, HTTP client); the
    /// endpoint URL is the cluster's own, never the base configuration's override. `home_region`
    /// goes first when the cluster has an endpoint there (the nearest).
    pub fn new(base: &SdkConfig, arc: &ArcRouting, home_region: Option<&str>) -> Self {
        let endpoints: Vec<Endpoint> = arc
            .cluster_endpoints
            .iter()
            .map(|endpoint| {
                let config = aws_sdk_route53recoverycluster::config::Builder::from(base)
                    .region(Region::new(endpoint.region.clone()))
                    .endpoint_url(endpoint.url.clone())
                    .retry_config(aws_sdk_route53recoverycluster::config::retry::RetryConfig::disabled())
                    .timeout_config(
                        aws_sdk_route53recoverycluster::config::timeout::TimeoutConfig::builder()
                            .connect_timeout(ENDPOINT_TIMEOUT)
                            .operation_attempt_timeout(ENDPOINT_TIMEOUT)
                            .operation_timeout(ENDPOINT_TIMEOUT)
                            .build(),
                    )
                    .build();
                Endpoint { region: endpoint.region.clone(), client: Client::from_conf(config) }
            })
            .collect();
        let first = home_region.and_then(|home| endpoints.iter().position(|e| e.region == home)).unwrap_or(0);
        Self { endpoints, preferred: AtomicUsize::new(first) }
    }

    /// The endpoints' Regions, in configuration order.
    pub fn endpoint_regions(&self) -> impl Iterator<Item = &str> {
        self.endpoints.iter().map(|e| e.region.as_str())
    }

    /// The order of one search: the preferred endpoint, then the others in turn, `PASSES` times.
    fn order(&self) -> impl Iterator<Item = usize> + '_ {
        let n = self.endpoints.len();
        let start = self.preferred.load(Ordering::Relaxed) % n.max(1);
        (0..n * PASSES).map(move |i| (start + i) % n)
    }

    /// Runs `call` at one endpoint after the other until one answers with something other than
    /// an endpoint's failure; remembers the endpoint that answered.
    async fn search<T, F, Fut>(&self, operation: &'static str, mut call: F) -> Result<(T, String), Error>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let mut last = None;
        for index in self.order() {
            let endpoint = &self.endpoints[index];
            match call(endpoint.client.clone()).await {
                Ok(value) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok((value, endpoint.region.clone()));
                }
                Err(err) if endpoint_failure(&err) => {
                    tracing::warn!(operation, endpoint = %endpoint.region, error = %err, "ARC cluster endpoint did not answer; trying the next");
                    last = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last.unwrap_or_else(|| {
            Error::Unexpected(format!("{operation}: the ARC cluster has no endpoints in the topology"))
        }))
    }

    /// Every routing control of `control_panel_arn` and whether it is On
    /// (`ListRoutingControls`, all pages, from one endpoint).
    pub async fn states(&self, control_panel_arn: &str) -> Result<ControlStates, Error> {
        let (on, endpoint_region) = self
            .search("ListRoutingControls", |client| async move { list_states(&client, control_panel_arn).await })
            .await?;
        Ok(ControlStates { on, endpoint_region })
    }

    /// Sets every `(routing control ARN, on)` in one `UpdateRoutingControlStates`: ARC applies
    /// them together or not at all, after evaluating the control panel's safety rules on the
    /// result. Never overrides a safety rule.
    pub async fn set_states(&self, entries: &[(String, bool)]) -> Result<ChangeOutcome, Error> {
        self.change(entries, &[]).await
    }

    /// As [`set_states`](Self::set_states), overriding the named safety rules: the operator's
    /// break glass, never failover's.
    pub async fn set_states_overriding(
        &self,
        entries: &[(String, bool)],
        safety_rules_to_override: &[String],
    ) -> Result<ChangeOutcome, Error> {
        self.change(entries, safety_rules_to_override).await
    }

    async fn change(&self, entries: &[(String, bool)], overrides: &[String]) -> Result<ChangeOutcome, Error> {
        let mut built = Vec::with_capacity(entries.len());
        for (arn, on) in entries {
            let entry = UpdateRoutingControlStateEntry::builder()
                .routing_control_arn(arn)
                .routing_control_state(if *on { RoutingControlState::On } else { RoutingControlState::Off })
                .build()
                .map_err(|err| Error::Unexpected(format!("routing control entry for {arn}: {err}")))?;
            built.push(entry);
        }
        let result = self
            .search("UpdateRoutingControlStates", |client| {
                let request = client
                    .update_routing_control_states()
                    .set_update_routing_control_state_entries(Some(built.clone()))
                    .set_safety_rules_to_override((!overrides.is_empty()).then(|| overrides.to_vec()));
                async move {
                    let region = client.config().region().map(|r| r.to_string()).unwrap_or_default();
                    request
                        .send()
                        .await
                        .map(|_| ())
                        .map_err(|err| Error::aws("UpdateRoutingControlStates", region, err))
                }
            })
            .await;
        match result {
            Ok(((), endpoint_region)) => Ok(ChangeOutcome::Applied { endpoint_region }),
            Err(err) if err.aws_code() == Some(SAFETY_RULE_REFUSAL_CODE) => {
                let reason = match &err {
                    Error::Aws { message, .. } => message.clone(),
                    other => other.to_string(),
                };
                Ok(ChangeOutcome::Refused { reason })
            }
            Err(err) => Err(err),
        }
    }

    /// Asks every endpoint once, in parallel, whether it answers a read of the control panel.
    pub async fn probe_endpoints(&self, control_panel_arn: &str) -> Vec<EndpointAnswer> {
        let asks = self.endpoints.iter().map(|endpoint| async move {
            let states = list_states(&endpoint.client, control_panel_arn).await.map_err(|err| err.to_string());
            EndpointAnswer { region: endpoint.region.clone(), states }
        });
        futures_util::future::join_all(asks).await
    }
}

/// One endpoint's `ListRoutingControls` of a control panel, every page.
async fn list_states(client: &Client, control_panel_arn: &str) -> Result<BTreeMap<String, bool>, Error> {
    let region = client.config().region().map(|r| r.to_string()).unwrap_or_default();
    let mut on = BTreeMap::new();
    let mut token = None;
    loop {
        let page = client
            .list_routing_controls()
            .control_panel_arn(control_panel_arn)
            .set_next_token(token)
            .send()
            .await
            .map_err(|err| Error::aws("ListRoutingControls", region.clone(), err))?;
        for control in page.routing_controls() {
            if let Some(arn) = control.routing_control_arn() {
                on.insert(arn.to_owned(), control.routing_control_state() == Some(&RoutingControlState::On));
            }
        }
        match page.next_token() {
            Some(next) if !next.is_empty() => token = Some(next.to_owned()),
            _ => return Ok(on),
        }
    }
}

/// Whether another endpoint may answer where this one failed: it was unreachable, timed out,
/// throttled, said `EndpointTemporarilyUnavailableException` or failed internally.
fn endpoint_failure(err: &Error) -> bool {
    match err {
        Error::Aws { kind: AwsErrorKind::Unavailable | AwsErrorKind::Throttling, .. } => true,
        Error::Aws { code: Some(code), .. } => {
            matches!(code.as_str(), "EndpointTemporarilyUnavailableException" | "InternalServerException")
        }
        _ => false,
    }
}

//! A Route 53 ARC routing setup built in the emulator as an operator builds one on AWS: a
//! cluster (five Regional endpoints), a control panel, one routing control per cell, an
//! assertion safety rule (at least `min_healthy_regions` controls On), every control turned On
//! through the cluster's data plane, and a RECOVERY_CONTROL health check per cell that guards its
//! latency record.

use crate::Emulator;
use crate::fixtures::unique_name;
use aws_config::{Region, SdkConfig};
use aws_sdk_route53::types::{HealthCheckConfig, HealthCheckType};
use aws_sdk_route53recoverycontrolconfig::types::{NewAssertionRule, RuleConfig, RuleType, Status};
use serde_json::{Value, json};
use shared::arc::ArcCluster;
use shared::topology::{ArcEndpoint, ArcRouting, ArcSafetyRule};
use std::collections::BTreeMap;
use std::time::Duration;

/// The Region of ARC's control-config API (the only one it has).
pub const CONTROL_CONFIG_REGION: &str = "us-west-2";

/// What was built.
#[derive(Debug, Clone)]
pub struct ArcSetup {
    pub routing: ArcRouting,
    /// The RECOVERY_CONTROL health check of each cell, by Region.
    pub health_checks: BTreeMap<String, String>,
}

impl ArcSetup {
    /// The topology's `routing.arc` block.
    pub fn topology_block(&self) -> Value {
        serde_json::to_value(&self.routing).expect("ARC routing serializes")
    }
}

/// The control-config client (as the administrator).
pub fn control_config(base: &SdkConfig) -> aws_sdk_route53recoverycontrolconfig::Client {
    let config = aws_sdk_route53recoverycontrolconfig::config::Builder::from(base)
        .region(Region::new(CONTROL_CONFIG_REGION))
        .build();
    aws_sdk_route53recoverycontrolconfig::Client::from_conf(config)
}

/// Builds the cluster, control panel, controls (On), the assertion rule and the health checks.
pub async fn create(
    emulator: &Emulator,
    regions: &[&str],
    at_least: usize,
    route53: &aws_sdk_route53::Client,
) -> Result<ArcSetup, String> {
    let base = emulator.sdk_config().await;
    let config = control_config(&base);
    let cluster = config
        .create_cluster()
        .cluster_name(unique_name("cluster"))
        .send()
        .await
        .map_err(|e| format!("CreateCluster: {e:?}"))?
        .cluster
        .ok_or("cluster: missing in the answer")?;
    let cluster_arn = cluster.cluster_arn.clone().ok_or("cluster ARN: missing in the answer")?;
    wait_deployed(|| async { config.describe_cluster().cluster_arn(&cluster_arn).send().await.ok()?.cluster?.status })
        .await?;
    let endpoints: Vec<ArcEndpoint> = config
        .describe_cluster()
        .cluster_arn(&cluster_arn)
        .send()
        .await
        .map_err(|e| format!("DescribeCluster: {e:?}"))?
        .cluster
        .and_then(|c| c.cluster_endpoints)
        .unwrap_or_default()
        .into_iter()
        .map(|e| ArcEndpoint { region: e.region.unwrap_or_default(), url: e.endpoint.unwrap_or_default() })
        .collect();
    if endpoints.len() != 5 {
        return Err(format!("an ARC cluster has five Regional endpoints: {endpoints:?}"));
    }

    let panel = config
        .create_control_panel()
        .cluster_arn(&cluster_arn)
        .control_panel_name(unique_name("panel"))
        .send()
        .await
        .map_err(|e| format!("CreateControlPanel: {e:?}"))?
        .control_panel
        .ok_or("control panel: missing in the answer")?;
    let control_panel_arn = panel.control_panel_arn.clone().ok_or("control panel ARN: missing in the answer")?;
    wait_deployed(|| async {
        config.describe_control_panel().control_panel_arn(&control_panel_arn).send().await.ok()?.control_panel?.status
    })
    .await?;

    let mut routing_controls = BTreeMap::new();
    for region in regions {
        let control = config
            .create_routing_control()
            .cluster_arn(&cluster_arn)
            .control_panel_arn(&control_panel_arn)
            .routing_control_name(format!("cell-{region}"))
            .send()
            .await
            .map_err(|e| format!("CreateRoutingControl: {e:?}"))?
            .routing_control
            .and_then(|c| c.routing_control_arn)
            .ok_or("routing control ARN: missing in the answer")?;
        routing_controls.insert((*region).to_owned(), control);
    }

    let rule = config
        .create_safety_rule()
        .assertion_rule(
            NewAssertionRule::builder()
                .set_asserted_controls(Some(routing_controls.values().cloned().collect()))
                .control_panel_arn(&control_panel_arn)
                .name("min-healthy-regions")
                .rule_config(
                    RuleConfig::builder().r#type(RuleType::Atleast).threshold(at_least as i32).inverted(false).build(),
                )
                // No wait between changes (AWS defaults to 5 s; tests change controls back to back).
                .wait_period_ms(0)
                .build(),
        )
        .send()
        .await
        .map_err(|e| format!("CreateSafetyRule: {e:?}"))?
        .assertion_rule
        .and_then(|r| r.safety_rule_arn)
        .ok_or("safety rule ARN: missing in the answer")?;

    let routing = ArcRouting {
        cluster_arn,
        cluster_endpoints: endpoints,
        control_panel_arn,
        routing_controls,
        safety_rule: ArcSafetyRule { arn: rule, at_least },
    };
    // New routing controls are Off: turn every cell On before its record depends on it.
    let all_on: Vec<(String, bool)> = routing.routing_controls.values().map(|arn| (arn.clone(), true)).collect();
    let outcome = ArcCluster::new(&base, &routing, None)
        .set_states(&all_on)
        .await
        .map_err(|e| format!("every control On: {e}"))?;
    if !matches!(outcome, shared::arc::ChangeOutcome::Applied { .. }) {
        return Err(format!("turning every control On: {outcome:?}"));
    }

    let mut health_checks = BTreeMap::new();
    for region in regions {
        let created = route53
            .create_health_check()
            .caller_reference(unique_name(&format!("rc-{region}")))
            .health_check_config(
                HealthCheckConfig::builder()
                    .r#type(HealthCheckType::RecoveryControl)
                    .routing_control_arn(&routing.routing_controls[*region])
                    .build()
                    .map_err(|e| format!("RECOVERY_CONTROL health check config: {e}"))?,
            )
            .send()
            .await
            .map_err(|e| format!("create RECOVERY_CONTROL health check: {e:?}"))?;
        health_checks.insert(
            (*region).to_owned(),
            created.health_check.map(|h| h.id).ok_or("health check id: missing in the answer")?,
        );
    }
    Ok(ArcSetup { routing, health_checks })
}

async fn wait_deployed<F, Fut>(mut status: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Status>>,
{
    let deployed = crate::fixtures::eventually(Duration::from_secs(10), Duration::from_millis(50), || {
        let fut = status();
        async move { (fut.await == Some(Status::Deployed)).then_some(()) }
    })
    .await;
    deployed.ok_or_else(|| "ARC resource not DEPLOYED within 10 s".to_owned())
}

/// The routing controls' states by Region, as the emulator holds them (its control API: a
/// test's look at the world is neither subject to injected faults nor in the request log).
pub async fn states(emulator: &Emulator, routing: &ArcRouting) -> BTreeMap<String, bool> {
    let state = emulator.state();
    let states = &state["arc"]["routing_control_states"];
    routing
        .routing_controls
        .iter()
        .map(|(region, arn)| (region.clone(), states[arn.as_str()].as_str() == Some("On")))
        .collect()
}

/// Sets one cell's routing control as an operator would (no override): `Ok(false)` when a
/// safety rule refused it.
pub async fn set(emulator: &Emulator, routing: &ArcRouting, region: &str, on: bool) -> bool {
    let base = emulator.sdk_config().await;
    let arn = routing.routing_controls[region].clone();
    match ArcCluster::new(&base, routing, None).set_states(&[(arn, on)]).await.expect("UpdateRoutingControlStates") {
        shared::arc::ChangeOutcome::Applied { .. } => true,
        shared::arc::ChangeOutcome::Refused { .. } => false,
    }
}

/// Fails (or restores) one cluster endpoint: `mode` is `unavailable` or `timeout`.
pub fn set_endpoint_down(emulator: &Emulator, region: &str, down: bool, mode: &str) {
    emulator.post_json("/_multisite/arc/endpoint", &json!({"region": region, "down": down, "mode": mode}));
}

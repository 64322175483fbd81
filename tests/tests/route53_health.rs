//! Route 53 health-check status in the emulator follows `Inverted`, `Disabled` and an injected
//! endpoint failure, as AWS documents (a disabled check counts as healthy; Disabled + Inverted
//! is the documented way to force a check unhealthy).

use aws_sdk_route53::types::{HealthCheckConfig, HealthCheckType};
use multisite_tests::Emulator;
use multisite_tests::fixtures::unique_name;

async fn create_check(route53: &aws_sdk_route53::Client) -> String {
    let created = route53
        .create_health_check()
        .caller_reference(unique_name("hc"))
        .health_check_config(
            HealthCheckConfig::builder()
                .r#type(HealthCheckType::Https)
                .fully_qualified_domain_name("eu-west-1.app.example.com")
                .port(443)
                .resource_path("/health")
                .build()
                .expect("health check config"),
        )
        .send()
        .await
        .expect("create health check");
    created.health_check.map(|h| h.id).expect("health check id")
}

/// Healthy when every checker reports success.
async fn is_healthy(route53: &aws_sdk_route53::Client, id: &str) -> bool {
    let status = route53.get_health_check_status().health_check_id(id).send().await.expect("status");
    let observations = status.health_check_observations();
    assert!(!observations.is_empty(), "checkers report observations");
    observations.iter().all(|o| o.status_report().and_then(|r| r.status()).is_some_and(|s| s.starts_with("Success")))
}

async fn set_flags(route53: &aws_sdk_route53::Client, id: &str, inverted: bool, disabled: bool) {
    route53
        .update_health_check()
        .health_check_id(id)
        .inverted(inverted)
        .disabled(disabled)
        .send()
        .await
        .expect("update");
}

#[tokio::test]
async fn health_status_follows_inverted_disabled_and_endpoint_failure() {
    let lease = Emulator::lease();
    let emulator = &*lease;
    let clients = emulator.clients(&["us-east-1"]).await;
    let route53 = &clients.region("us-east-1").expect("region").route53;
    let id = create_check(route53).await;

    // (inverted, disabled, endpoint failing) -> healthy
    let table = [
        (false, false, false, true),
        (true, false, false, false),
        (false, false, true, false),
        (true, false, true, true),
        (false, true, true, true),
        (true, true, false, false),
    ];
    for (inverted, disabled, failing, healthy) in table {
        set_flags(route53, &id, inverted, disabled).await;
        emulator.set_health_check_failure(&id, failing);
        assert_eq!(
            is_healthy(route53, &id).await,
            healthy,
            "inverted={inverted} disabled={disabled} failing={failing}"
        );
    }
    emulator.set_health_check_failure(&id, false);
}

#[tokio::test]
async fn unknown_health_check_is_no_such_health_check() {
    let lease = Emulator::lease();
    let emulator = &*lease;
    let clients = emulator.clients(&["us-east-1"]).await;
    let route53 = &clients.region("us-east-1").expect("region").route53;
    let err = route53
        .get_health_check_status()
        .health_check_id("00000000-0000-0000-0000-000000000000")
        .send()
        .await
        .expect_err("unknown id");
    assert_eq!(aws_sdk_route53::error::ProvideErrorMetadata::code(&err), Some("NoSuchHealthCheck"));
}

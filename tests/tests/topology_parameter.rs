//! The topology as the deployed functions read it: from the stack's SSM parameter
//! (`/multisite/<stack>/topology`, template.yaml's TopologyParameter), with each function's role
//! as the template grants it, through `shared::TopologyStore`: read on first use, re-read when the
//! parameter changes, kept when a re-read fails or is invalid, refused with a clear error when
//! the parameter is missing or not this stack's.

use multisite_tests::Emulator;
use multisite_tests::deployment::Deployment;
use multisite_tests::roles::{Function, stack_name, stack_roles_for};
use serde_json::Value;
use shared::topology_source::Refresh;
use shared::{TopologyError, TopologySource, TopologyStore};
use std::time::Duration;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const REGION: &str = "eu-west-1";

fn parameter_name(stack: &str) -> String {
    format!("/multisite/{stack}/topology")
}

async fn put(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) -> i64 {
    let out = ssm
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .expect("put the parameter (administrator)");
    out.version
}

/// A store reading `name` in REGION, signed with `function`'s role of the REGION stack.
async fn store_of(emulator: &Emulator, deployment: &Deployment, function: Function, name: &str) -> TopologyStore {
    let roles = stack_roles_for(emulator, &deployment.topology, REGION);
    let credentials = roles.session(emulator, function).credentials();
    let base = emulator.sdk_config_with(credentials).await.to_builder().region(aws_config::Region::new(REGION)).build();
    TopologyStore::new(TopologySource::Parameter(name.to_owned()), base).with_refresh_interval(Duration::ZERO)
}

#[tokio::test]
async fn functions_read_their_stacks_topology_parameter_and_follow_its_changes() {
    let emulator = Emulator::lease();
    let deployment = Deployment::spec(&REGIONS).create(&emulator).await;
    let admin = aws_sdk_ssm::Client::new(
        &emulator.sdk_config().await.to_builder().region(aws_config::Region::new(REGION)).build(),
    );
    let name = parameter_name(&stack_name(REGION));
    assert_eq!(put(&admin, &name, &deployment.topology_json.to_string()).await, 1);

    // Each function that reads the topology may read it with its own role; the provisioner, which
    // does not read it, may not (least privilege).
    for function in [Function::Failover, Function::Scaler, Function::LagProbe] {
        let store = store_of(&emulator, &deployment, function, &name).await;
        let configured = store.current().await.unwrap_or_else(|e| panic!("{function:?}: {e}"));
        assert_eq!(configured.topology, deployment.topology, "{function:?}");
        assert_eq!(configured.version, Some(1));
        assert_eq!(configured.clients.built_regions(), 0, "clients are built when a Region is first used");
    }
    let provisioner = store_of(&emulator, &deployment, Function::Provisioner, &name).await;
    let refused = provisioner.current().await.expect_err("the provisioner's role does not grant it");
    assert!(refused.to_string().contains("AccessDenied"), "{refused}");

    // A warm function: unchanged, then changed (the next event sees the new version), then an
    // invalid value and an unreadable parameter, both of which keep the topology in use.
    let store = store_of(&emulator, &deployment, Function::Failover, &name).await;
    let first = store.current().await.expect("first read");
    assert!(matches!(store.refresh_if_due().await, Refresh::Unchanged));

    let mut changed: Value = deployment.topology_json.clone();
    changed["rpo_budget_ms"] = Value::from(4321);
    assert_eq!(put(&admin, &name, &changed.to_string()).await, 2);
    let refresh = store.refresh_if_due().await;
    assert!(matches!(refresh, Refresh::Replaced { from: Some(1), to: Some(2) }), "{refresh:?}");
    let second = store.current().await.expect("after the change");
    assert_eq!((second.version, second.topology.rpo_budget_ms), (Some(2), 4321));
    assert_eq!(first.topology.rpo_budget_ms, deployment.topology.rpo_budget_ms, "the event in flight kept its own");

    put(&admin, &name, "{\"cells\": []}").await;
    let refresh = store.refresh_if_due().await;
    assert!(
        matches!(&refresh, Refresh::Kept(TopologyError::Malformed { .. } | TopologyError::Invalid(_))),
        "{refresh:?}"
    );
    assert_eq!(store.current().await.expect("kept").version, Some(2));

    admin.delete_parameter().name(&name).send().await.expect("delete");
    let refresh = store.refresh_if_due().await;
    assert!(matches!(&refresh, Refresh::Kept(TopologyError::ParameterUnreadable { .. })), "{refresh:?}");
    assert_eq!(store.current().await.expect("kept").version, Some(2));

    // A cold start with the parameter missing fails with what to check, and is not remembered:
    // once the parameter is back, the next event reads it.
    let cold = store_of(&emulator, &deployment, Function::Failover, &name).await;
    let missing = cold.current().await.expect_err("no parameter");
    let message = missing.to_string();
    assert!(message.contains("ParameterNotFound") && message.contains("/multisite/<stack name>/topology"), "{message}");
    put(&admin, &name, &deployment.topology_json.to_string()).await;
    assert_eq!(cold.current().await.expect("read after it is back").topology, deployment.topology);

    // Another stack's parameter is not this function's to read.
    let other = parameter_name("someone-else");
    put(&admin, &other, &deployment.topology_json.to_string()).await;
    let foreign = store_of(&emulator, &deployment, Function::Failover, &other).await;
    let refused = foreign.current().await.expect_err("another stack's parameter");
    assert!(refused.to_string().contains("AccessDenied"), "{refused}");
}

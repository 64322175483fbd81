//! Forged requests, through the real handler against the emulator: an event whose ResponseURL is
//! not CloudFormation's response bucket of this Region, or whose StackId is not of this function's
//! account and Region, is refused: the invocation returns an error naming why, no AWS call is made
//! (the emulator's request log has none from the provisioner's role, the table is untouched) and
//! nothing is PUT (the local ResponseURL server, which the forged event points at, gets nothing).

mod common;

use common::*;
use multisite_tests::Emulator;
use multisite_tests::fixtures::{create_table, replica_statuses, unique_name};
use multisite_tests::response_server::ResponseServer;
use provisioner::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

const TWO: [&str; 2] = ["us-east-1", "eu-west-1"];
const GENEROUS: Duration = Duration::from_secs(60);

/// A table the event names, the provisioner's role for it, and the emulator's request log cleared.
struct Target {
    table: String,
    deps: Arc<provisioner::Deps>,
    server: ResponseServer,
}

async fn target(emulator: &Emulator, config: provisioner::Config) -> Target {
    let table = unique_name("Forged");
    let clients = role_clients(emulator, &config, &table, &TWO).await;
    let deps = deps(config, clients, Arc::new(CapturedContinuations::default()));
    create_table(&emulator.clients(&TWO).await.region(HOME).expect("home").dynamodb, &table).await;
    emulator.clear_requests();
    Target { table, deps, server: ResponseServer::start() }
}

/// Nothing happened: no call signed by the provisioner's role, no replica, no PUT.
async fn nothing_was_done(emulator: &Emulator, target: &Target) {
    let calls: Vec<String> = emulator
        .requests()
        .into_iter()
        .filter(|r| r.principal.as_deref().is_some_and(|p| p.contains("ProvisionerRole")))
        .map(|r| format!("{} {}", r.region, r.operation))
        .collect();
    assert!(calls.is_empty(), "no AWS call: {calls:?}");
    let clients = emulator.clients(&TWO).await;
    let ddb = &clients.region(HOME).expect("home").dynamodb;
    assert!(replica_statuses(ddb, &target.table).await.is_empty(), "no replica");
    assert!(target.server.requests().is_empty(), "nothing PUT: {:?}", target.server.requests());
}

#[tokio::test]
async fn a_response_url_that_is_not_cloudformations_is_refused_and_nothing_is_done() {
    init_logs();
    // Given the provisioner as deployed (the local ResponseURL switch off) and a Create whose
    // ResponseURL is the local server: for this function, anyone's URL but CloudFormation's
    let lease = Emulator::lease();
    let emulator = &*lease;
    let mut config = test_config();
    config.allow_local_response_url = false;
    let target = target(emulator, config).await;
    let event = create_event(&target.server.response_url("forged"), "R", &target.table, json!(TWO));

    // When it is invoked
    let refused = invoke_as(&target.deps, event, GENEROUS, FUNCTION_ARN).await.expect_err("refused");

    // Then the invocation fails naming the host and what was expected, and nothing is done
    let message = refused.to_string();
    assert!(message.contains("the ResponseURL is not an https URL (scheme `http`)"), "{message}");
    assert!(message.contains("nothing was done and CloudFormation was not answered"), "{message}");
    let diagnostic = lambda_runtime::Diagnostic::from(refused);
    assert_eq!(diagnostic.error_type, "Refused", "the invocation's error, counted in the Errors metric");
    nothing_was_done(emulator, &target).await;
}

#[tokio::test]
async fn the_forged_sample_event_is_refused_even_with_the_local_switch_on() {
    init_logs();
    // Given the events/ sample whose ResponseURL only looks like CloudFormation's bucket, and the
    // test switch on (which allows loopback hosts, not look-alikes)
    let lease = Emulator::lease();
    let emulator = &*lease;
    let target = target(emulator, test_config()).await;
    let mut event = event_file("provisioner-create-forged-response-url.json");
    event["ResourceProperties"]["TableName"] = json!(target.table);
    event["ResourceProperties"]["Regions"] = json!(TWO);

    let refused = invoke_as(&target.deps, event, GENEROUS, FUNCTION_ARN).await.expect_err("refused");

    let message = refused.to_string();
    assert!(
        message.contains(
            "host `cloudformation-custom-resource-response-useast1.s3.amazonaws.com.attacker.example` is not CloudFormation's response bucket for us-east-1"
        ),
        "{message}"
    );
    assert!(!message.contains("X-Amz-Signature"), "the URL's query is never repeated: {message}");
    nothing_was_done(emulator, &target).await;
}

#[tokio::test]
async fn a_stack_of_another_account_or_region_is_refused_even_with_cloudformations_url() {
    init_logs();
    // Given a ResponseURL the provisioner would answer (the local server, the switch on)
    let lease = Emulator::lease();
    let emulator = &*lease;
    let target = target(emulator, test_config()).await;
    let event = |stack: &str| {
        let mut event = create_event(&target.server.response_url("foreign"), "R", &target.table, json!(TWO));
        event["StackId"] = json!(stack);
        event
    };
    let foreign: [(Value, &str); 4] = [
        (json!("arn:aws:cloudformation:us-east-1:210987654321:stack/user-sessions/5b7c9a40"), "210987654321"),
        (json!("arn:aws:cloudformation:eu-west-1:123456789012:stack/user-sessions/5b7c9a40"), "eu-west-1"),
        (json!("arn:aws-cn:cloudformation:us-east-1:123456789012:stack/user-sessions/5b7c9a40"), "aws-cn"),
        (json!("user-sessions"), "user-sessions"),
    ];

    // When events of stacks that are not this function's arrive
    for (stack, named) in foreign {
        let refused = invoke_as(&target.deps, event(stack.as_str().expect("stack")), GENEROUS, FUNCTION_ARN)
            .await
            .expect_err("refused");

        // Then each is refused naming the stack and what this function serves
        let message = refused.to_string();
        assert!(message.contains("is not a stack of this function's partition, Region and account"), "{message}");
        assert!(message.contains(named), "{message}");
        assert!(message.contains("(arn:aws:cloudformation:us-east-1:123456789012:stack/...)"), "{message}");
    }
    // And when the function's own ARN is unknown, nothing can be compared: refused too
    let stack = "arn:aws:cloudformation:us-east-1:123456789012:stack/user-sessions/5b7c9a40";
    let refused = invoke_as(&target.deps, event(stack), GENEROUS, "").await.expect_err("refused");
    assert!(refused.to_string().contains("this function's own ARN is unknown"), "{refused}");
    nothing_was_done(emulator, &target).await;

    // While the same event from this function's own stack is worked on and answered
    let summary = invoke(&target.deps, event(stack), GENEROUS).await;
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    assert_eq!(target.server.requests_for("foreign").len(), 1);
}

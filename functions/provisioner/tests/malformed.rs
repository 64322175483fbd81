//! Malformed events and properties: each is answered FAILED with a reason that says what to fix,
//! and no DynamoDB client is even asked for. An event without a ResponseURL cannot be answered:
//! it is refused (logged, the invocation's error), and nothing else happens.

mod common;

use common::*;
use multisite_tests::response_server::ResponseServer;
use provisioner::Outcome;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

const SEED: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

struct Case {
    name: &'static str,
    event: Value,
    /// A phrase the Reason must contain.
    reason: &'static str,
    physical_resource_id: &'static str,
}

fn cases(server: &ResponseServer) -> Vec<Case> {
    let create =
        |name: &str, table: &str, regions: Value| create_event(&server.response_url(name), "Sessions", table, regions);
    let mut missing_table = create("missing-table", "T", json!(SEED));
    missing_table["ResourceProperties"].as_object_mut().expect("props").remove("TableName");
    let mut unknown_type = create("unknown-type", "UserSessions", json!(SEED));
    unknown_type["RequestType"] = json!("Upsert");
    unknown_type["PhysicalResourceId"] = json!("us-east-1/UserSessions/Sessions");
    let mut not_an_object = create("not-an-object", "UserSessions", json!(SEED));
    not_an_object["ResourceProperties"] = json!("TableName=UserSessions");
    let mut bad_update = update_event(
        &server.response_url("bad-update"),
        "Sessions",
        "us-east-1/UserSessions/Sessions",
        ("UserSessions", json!(["us-east-1", "eu-west-1", "eu-west-1"])),
        ("UserSessions", json!(SEED)),
    );
    bad_update["ResourceProperties"]["ServiceTimeout"] = json!("7200");
    vec![
        Case {
            name: "missing-table",
            event: missing_table,
            reason: "TableName: required",
            physical_resource_id: "v1/us-east-1/user-sessions/(invalid)/Sessions",
        },
        Case {
            name: "empty-regions",
            event: create("empty-regions", "UserSessions", json!([])),
            reason: "Regions: must not be empty",
            physical_resource_id: "v1/us-east-1/user-sessions/UserSessions/Sessions",
        },
        Case {
            name: "duplicate-regions",
            event: create("duplicate-regions", "UserSessions", json!(["us-east-1", "eu-west-1", "eu-west-1"])),
            reason: "Regions[2]: `eu-west-1` is listed more than once",
            physical_resource_id: "v1/us-east-1/user-sessions/UserSessions/Sessions",
        },
        Case {
            name: "unknown-region",
            event: create("unknown-region", "UserSessions", json!(["us-east-1", "eu-wset-1"])),
            reason: "Regions[1]: `eu-wset-1` is not an AWS Region",
            physical_resource_id: "v1/us-east-1/user-sessions/UserSessions/Sessions",
        },
        Case {
            name: "non-list-regions",
            event: create("non-list-regions", "UserSessions", json!("us-east-1,eu-west-1")),
            reason: "Regions: must be a list of Region names, not a comma-separated string",
            physical_resource_id: "v1/us-east-1/user-sessions/UserSessions/Sessions",
        },
        Case {
            name: "scalar-regions",
            event: create("scalar-regions", "UserSessions", json!(3)),
            reason: "Regions: must be a list of Region names",
            physical_resource_id: "v1/us-east-1/user-sessions/UserSessions/Sessions",
        },
        Case {
            name: "home-missing",
            event: create("home-missing", "UserSessions", json!(["eu-west-1", "ap-southeast-1"])),
            reason: "Regions: must include us-east-1",
            physical_resource_id: "v1/us-east-1/user-sessions/UserSessions/Sessions",
        },
        Case {
            name: "unknown-type",
            event: unknown_type,
            reason: "RequestType `Upsert` is not one of Create, Update, Delete",
            physical_resource_id: "us-east-1/UserSessions/Sessions",
        },
        Case {
            name: "not-an-object",
            event: not_an_object,
            reason: "ResourceProperties: must be an object",
            physical_resource_id: "v1/us-east-1/user-sessions/(invalid)/Sessions",
        },
        Case {
            name: "bad-update",
            event: bad_update,
            reason: "invalid properties (2 problems): Regions[2]: `eu-west-1` is listed more than once; list each Region once; ServiceTimeout: must be a whole number of seconds from 1 to 3600",
            physical_resource_id: "us-east-1/UserSessions/Sessions",
        },
    ]
}

#[tokio::test]
async fn each_malformed_input_is_answered_failed_with_a_clear_reason_and_no_dynamodb_call() {
    init_logs();
    let server = ResponseServer::start();
    let dynamodb = Arc::new(NoDynamoDb::default());
    let deps = deps(test_config(), dynamodb.clone(), Arc::new(CapturedContinuations::default()));

    for case in cases(&server) {
        // When the handler gets the malformed event
        let summary = invoke(&deps, case.event, Duration::from_secs(30)).await;

        // Then CloudFormation gets exactly one FAILED that says what to fix, with a usable id
        assert_eq!(summary.outcome, Outcome::Failed, "{}: {summary:?}", case.name);
        let requests = server.requests_for(case.name);
        assert_eq!(requests.len(), 1, "{}: one answer", case.name);
        assert_eq!(requests[0].header("content-type"), Some(""));
        let answer = requests[0].json();
        assert_eq!(answer["Status"], "FAILED", "{}", case.name);
        let reason = answer["Reason"].as_str().unwrap_or_default();
        assert!(reason.contains(case.reason), "{}: reason {reason:?} lacks {:?}", case.name, case.reason);
        assert_eq!(answer["PhysicalResourceId"], case.physical_resource_id, "{}", case.name);
        assert_eq!(answer["LogicalResourceId"], "Sessions");
        assert!(answer["StackId"].as_str().is_some_and(|s| !s.is_empty()));
    }
    assert_eq!(dynamodb.requests.load(Ordering::SeqCst), 0, "no DynamoDB call for malformed input");
}

#[tokio::test]
async fn an_event_without_a_response_url_is_refused_and_nothing_else_happens() {
    init_logs();
    let server = ResponseServer::start();
    let dynamodb = Arc::new(NoDynamoDb::default());
    let deps = deps(test_config(), dynamodb.clone(), Arc::new(CapturedContinuations::default()));
    for (url, why) in [
        (None, "the event has no ResponseURL"),
        (Some(json!(42)), "the event has no ResponseURL"),
        (Some(json!("")), "not an https URL"),
        (Some(json!("s3://bucket/key")), "not an https URL (scheme `s3`)"),
    ] {
        let mut event = create_event(&server.response_url("x"), "Sessions", "UserSessions", json!(SEED));
        match url {
            None => {
                event.as_object_mut().expect("object").remove("ResponseURL");
            }
            Some(url) => event["ResponseURL"] = url,
        }

        let refused = invoke_as(&deps, event, Duration::from_secs(30), FUNCTION_ARN).await.expect_err("refused");

        assert!(refused.to_string().contains(why), "{refused}");
    }
    assert!(server.requests().is_empty());
    assert_eq!(dynamodb.requests.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn garbage_events_are_answered_when_they_come_from_a_stack_of_this_function() {
    init_logs();
    let server = ResponseServer::start();
    let deps = deps(test_config(), Arc::new(NoDynamoDb::default()), Arc::new(CapturedContinuations::default()));
    let stack = "arn:aws:cloudformation:us-east-1:123456789012:stack/user-sessions/5b7c9a40";
    let event = json!({"ResponseURL": server.response_url("garbage"), "StackId": stack, "Hello": "world"});

    let summary = invoke(&deps, event, Duration::from_secs(30)).await;

    assert_eq!(summary.outcome, Outcome::Failed);
    let answer = server.requests_for("garbage")[0].json();
    assert_eq!(answer["Reason"], "the event has no RequestType: expected Create, Update or Delete");
    assert_eq!(answer["PhysicalResourceId"], "v1/us-east-1/user-sessions/(invalid)/", "deterministic and non-empty");

    // Without a StackId nothing says whose it is: refused, not answered.
    let anonymous = json!({"ResponseURL": server.response_url("anonymous"), "Hello": "world"});
    let refused = invoke_as(&deps, anonymous, Duration::from_secs(30), FUNCTION_ARN).await.expect_err("refused");
    assert!(refused.to_string().contains("the StackId `` is not a stack of this function's"), "{refused}");
    assert!(server.requests_for("anonymous").is_empty());
}

#[tokio::test]
async fn a_response_that_cannot_be_delivered_is_reported_not_retried_forever() {
    init_logs();
    // Given a ResponseURL nobody listens on
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr")
    };
    let deps = deps(test_config(), Arc::new(NoDynamoDb::default()), Arc::new(CapturedContinuations::default()));
    let mut event =
        create_event(&format!("http://{closed}/x?X-Amz-Signature=1"), "Sessions", "UserSessions", json!([]));
    event["ResourceProperties"]["Regions"] = json!([]);
    let started = std::time::Instant::now();

    let summary = invoke(&deps, event, Duration::from_secs(30)).await;

    assert_eq!(summary.outcome, Outcome::Failed);
    assert!(!summary.delivered);
    assert_eq!(summary.delivery_attempts, 5, "bounded attempts");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

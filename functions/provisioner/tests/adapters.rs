//! SDK adapters tested with aws-smithy-mocks: the request shapes the provisioner sends to
//! DynamoDB and Lambda, and the handler converging through throttling and 5xx answers.

mod common;

use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
use aws_sdk_dynamodb::operation::list_tags_of_resource::ListTagsOfResourceOutput;
use aws_sdk_dynamodb::operation::tag_resource::TagResourceOutput;
use aws_sdk_dynamodb::operation::untag_resource::UntagResourceOutput;
use aws_sdk_dynamodb::operation::update_table::{UpdateTableInput, UpdateTableOutput};
use aws_sdk_dynamodb::types::{ReplicaDescription, ReplicaStatus, TableDescription, TableStatus, Tag};
use aws_sdk_lambda::operation::invoke::InvokeOutput;
use aws_sdk_lambda::types::InvocationType;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;
use common::*;
use multisite_tests::response_server::ResponseServer;
use provisioner::continuation::ContinuationError;
use provisioner::dynamodb::Tables;
use provisioner::properties::ReplicaSpec;
use provisioner::record::{self, Owner};
use provisioner::{Continuation, DynamoDbClients, LambdaContinuation, Outcome};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TABLE_ARN: &str = "arn:aws:dynamodb:us-east-1:123456789012:table/UserSessions";

fn fast_retries() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(3).with_initial_backoff(Duration::from_millis(1))
}

fn throttling() -> HttpResponse {
    HttpResponse::new(
        StatusCode::try_from(400).expect("status"),
        SdkBody::from(
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#,
        ),
    )
}

fn table(replica_active: bool) -> DescribeTableOutput {
    let mut table = TableDescription::builder()
        .table_name("UserSessions")
        .table_arn(TABLE_ARN)
        .table_status(TableStatus::Active)
        .latest_stream_arn(format!("{TABLE_ARN}/stream/2026-01-01T00:00:00.000"));
    if replica_active {
        table = table.replicas(
            ReplicaDescription::builder().region_name("eu-west-1").replica_status(ReplicaStatus::Active).build(),
        );
    }
    DescribeTableOutput::builder().table(table.build()).build()
}

/// ListTagsOfResource (of [`TABLE_ARN`]), TagResource and UntagResource over one in-memory tag set.
fn tag_mocks(tags: &Arc<Mutex<BTreeMap<String, String>>>) -> [aws_smithy_mocks::Rule; 3] {
    let list = {
        let tags = tags.clone();
        mock!(aws_sdk_dynamodb::Client::list_tags_of_resource).then_compute_output(move |input| {
            assert_eq!(input.resource_arn(), Some(TABLE_ARN));
            let all = tags
                .lock()
                .expect("tags")
                .iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build().expect("tag"))
                .collect();
            ListTagsOfResourceOutput::builder().set_tags(Some(all)).build()
        })
    };
    let tag = {
        let tags = tags.clone();
        mock!(aws_sdk_dynamodb::Client::tag_resource).then_compute_output(move |input| {
            for t in input.tags() {
                tags.lock().expect("tags").insert(t.key().to_owned(), t.value().to_owned());
            }
            TagResourceOutput::builder().build()
        })
    };
    let untag = {
        let tags = tags.clone();
        mock!(aws_sdk_dynamodb::Client::untag_resource).then_compute_output(move |input| {
            for k in input.tag_keys() {
                tags.lock().expect("tags").remove(k);
            }
            UntagResourceOutput::builder().build()
        })
    };
    [list, tag, untag]
}

fn clients(home: aws_sdk_dynamodb::Client) -> Arc<dyn DynamoDbClients> {
    Arc::new(BTreeMap::from([(HOME.to_owned(), home)]))
}

#[tokio::test]
async fn throttling_and_5xx_from_dynamodb_are_retried_and_the_create_converges() {
    init_logs();
    // Given DynamoDB that throttles DescribeTable twice and answers UpdateTable with 503 four
    // times (more than the SDK's own 3 attempts) before accepting it
    let added = Arc::new(AtomicBool::new(false));
    let tags: Arc<Mutex<Vec<Tag>>> = Arc::default();
    let describe = {
        let added = added.clone();
        mock!(aws_sdk_dynamodb::Client::describe_table)
            .sequence()
            .http_response(throttling)
            .times(2)
            .output(move || table(added.load(Ordering::SeqCst)))
            .repeatedly()
            .build()
    };
    let update = {
        let added = added.clone();
        mock!(aws_sdk_dynamodb::Client::update_table)
            .sequence()
            .http_status(503, None)
            .times(4)
            .output(move || {
                added.store(true, Ordering::SeqCst);
                UpdateTableOutput::builder().build()
            })
            .repeatedly()
            .build()
    };
    let list_tags = {
        let tags = tags.clone();
        mock!(aws_sdk_dynamodb::Client::list_tags_of_resource).then_output(move || {
            ListTagsOfResourceOutput::builder().set_tags(Some(tags.lock().expect("tags").clone())).build()
        })
    };
    let tag = {
        let tags = tags.clone();
        mock!(aws_sdk_dynamodb::Client::tag_resource).then_compute_output(move |input| {
            tags.lock().expect("tags").extend(input.tags().iter().cloned());
            TagResourceOutput::builder().build()
        })
    };
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&describe, &update, &list_tags, &tag], |c| c
        .retry_config(fast_retries()));
    let server = ResponseServer::start();
    let deps = deps(test_config(), clients(client), Arc::new(CapturedContinuations::default()));
    let event = create_event(
        &server.response_url("mocked"),
        "UserSessionsReplicas",
        "UserSessions",
        json!(["us-east-1", "eu-west-1"]),
    );

    // When the Create runs
    let summary = invoke(&deps, event, Duration::from_secs(30)).await;

    // Then it converges to SUCCESS: the SDK retried the throttling, the loop retried past the
    // SDK's attempts for the 503s, and exactly one replica was added
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    assert!(describe.num_calls() >= 4, "two throttled, then observed: {}", describe.num_calls());
    assert_eq!(update.num_calls(), 5, "4 × 503 across two rounds, then accepted");
    let answer = server.requests_for("mocked")[0].json();
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["Data"]["TableArn.eu-west-1"], "arn:aws:dynamodb:eu-west-1:123456789012:table/UserSessions");
    let recorded: Vec<_> =
        tags.lock().expect("tags").iter().map(|t| (t.key().to_owned(), t.value().to_owned())).collect();
    assert!(
        recorded.contains(&(
            "multisite:replicas-added:v1/us-east-1/user-sessions/UserSessions/UserSessionsReplicas".to_owned(),
            "eu-west-1".to_owned()
        )),
        "{recorded:?}"
    );
}

#[tokio::test]
async fn persistent_5xx_fails_the_resource_once_the_service_timeout_is_spent() {
    init_logs();
    let describe =
        mock!(aws_sdk_dynamodb::Client::describe_table).sequence().http_status(503, None).repeatedly().build();
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&describe], |c| c.retry_config(fast_retries()));
    let server = ResponseServer::start();
    let deps = deps(test_config(), clients(client), Arc::new(CapturedContinuations::default()));
    let mut event = create_event(&server.response_url("down"), "R", "UserSessions", json!(["us-east-1", "eu-west-1"]));
    event["ServiceTimeout"] = json!("2");

    let summary = invoke(&deps, event, Duration::from_secs(30)).await;

    assert_eq!(summary.outcome, Outcome::Failed);
    let reason = server.requests_for("down")[0].json()["Reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.contains("ServiceTimeout of 2 s") && reason.contains("DescribeTable in us-east-1 failed (unavailable"),
        "{reason}"
    );
}

fn access_denied(action: &str, region: &str) -> HttpResponse {
    let body = json!({
        "__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException",
        "Message": format!(
            "User: arn:aws:sts::123456789012:assumed-role/stack-ProvisionerRole/provisioner-us-east-1 is not authorized to perform: {action} on resource: arn:aws:dynamodb:{region}:123456789012:table/UserSessions because no identity-based policy allows the {action} action"
        ),
    });
    HttpResponse::new(StatusCode::try_from(400).expect("status"), SdkBody::from(body.to_string()))
}

#[tokio::test]
async fn a_delete_that_iam_stops_part_way_answers_failed_at_once_saying_what_it_removed_and_what_stays() {
    init_logs();
    // Given replicas in ap-southeast-1 and eu-west-1 recorded as added by R (in the record's form
    // from before ids, which belongs to the id that provisioner answered), and a role that lets
    // the Delete remove the first (ap-southeast-1) but not the second (DeleteTableReplica denied
    // in eu-west-1)
    let record = "multisite:replicas:R";
    let tags: Arc<Mutex<BTreeMap<String, String>>> =
        Arc::new(Mutex::new(BTreeMap::from([(record.to_owned(), "ap-southeast-1 eu-west-1".to_owned())])));
    let first_removed = Arc::new(AtomicBool::new(false));
    let describe = {
        let first_removed = first_removed.clone();
        mock!(aws_sdk_dynamodb::Client::describe_table).then_output(move || {
            let replica = |region: &str| {
                ReplicaDescription::builder().region_name(region).replica_status(ReplicaStatus::Active).build()
            };
            let mut table = TableDescription::builder()
                .table_name("UserSessions")
                .table_arn(TABLE_ARN)
                .table_status(TableStatus::Active)
                .replicas(replica("eu-west-1"));
            if !first_removed.load(Ordering::SeqCst) {
                table = table.replicas(replica("ap-southeast-1"));
            }
            DescribeTableOutput::builder().table(table.build()).build()
        })
    };
    let [list, tag, untag] = tag_mocks(&tags);
    let update = {
        let first_removed = first_removed.clone();
        mock!(aws_sdk_dynamodb::Client::update_table)
            .sequence()
            .output(move || {
                first_removed.store(true, Ordering::SeqCst);
                UpdateTableOutput::builder().build()
            })
            .http_response(|| access_denied("dynamodb:DeleteTableReplica", "eu-west-1"))
            .repeatedly()
            .build()
    };
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&describe, &list, &tag, &untag, &update], |c| c
        .retry_config(fast_retries()));
    let server = ResponseServer::start();
    let deps = deps(test_config(), clients(client), Arc::new(CapturedContinuations::default()));
    let id = "us-east-1/UserSessions/R";
    let event = delete_event(
        &server.response_url("d"),
        "R",
        id,
        "UserSessions",
        json!(["us-east-1", "eu-west-1", "ap-southeast-1"]),
    );

    // When the Delete runs
    let summary = invoke(&deps, event, Duration::from_secs(30)).await;

    // Then it answers FAILED on the first refusal, never retrying it, and says what happened
    assert_eq!(summary.outcome, Outcome::Failed, "{summary:?}");
    assert_eq!(update.num_calls(), 2, "one removal, one refused, not retried");
    let answer = server.requests_for("d")[0].json();
    assert_eq!(answer["PhysicalResourceId"], id);
    let reason = answer["Reason"].as_str().expect("reason");
    assert!(reason.starts_with("IAM refused removing the replica of UserSessions in eu-west-1: "), "{reason}");
    assert!(
        reason.contains(
            "dynamodb:DeleteTableReplica on resource: arn:aws:dynamodb:eu-west-1:123456789012:table/UserSessions"
        ),
        "{reason}"
    );
    assert!(reason.contains("This Delete removed the replicas in ap-southeast-1 only and stopped there"), "{reason}");
    assert!(reason.contains("those it added in eu-west-1 stay"), "{reason}");
    // And the record names exactly what stays, moved from its form before ids to the id's tag
    let tags = tags.lock().expect("tags");
    assert_eq!(tags.get("multisite:replicas-added:us-east-1/UserSessions/R").map(String::as_str), Some("eu-west-1"));
    assert_eq!(tags.get(record), None, "{tags:?}");
}

#[tokio::test]
async fn replica_changes_are_one_update_table_call_each_with_the_documented_shape() {
    let seen: Arc<Mutex<Vec<UpdateTableInput>>> = Arc::default();
    let update = {
        let seen = seen.clone();
        mock!(aws_sdk_dynamodb::Client::update_table).then_compute_output(move |input| {
            seen.lock().expect("seen").push(input.clone());
            UpdateTableOutput::builder().build()
        })
    };
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update]);
    let map = BTreeMap::from([(HOME.to_owned(), client)]);
    let tables = Tables::new(&map);
    let spec = ReplicaSpec {
        region: "eu-west-1".into(),
        kms_master_key_id: Some("alias/sessions".into()),
        table_class: Some("STANDARD_INFREQUENT_ACCESS".into()),
    };

    tables.add_replica(HOME, "UserSessions", &spec).await.expect("add");
    tables.update_replica(HOME, "UserSessions", &spec).await.expect("update");
    tables.remove_replica(HOME, "UserSessions", "eu-west-1").await.expect("remove");

    let seen = seen.lock().expect("seen");
    assert_eq!(seen.len(), 3);
    for input in seen.iter() {
        assert_eq!(input.table_name(), Some("UserSessions"));
        assert_eq!(input.replica_updates().len(), 1, "DynamoDB allows one replica change per UpdateTable");
        assert!(input.billing_mode().is_none() && input.stream_specification().is_none(), "ReplicaUpdates alone");
    }
    let create = seen[0].replica_updates()[0].create().expect("Create action");
    assert_eq!(create.region_name(), "eu-west-1");
    assert_eq!(create.kms_master_key_id(), Some("alias/sessions"));
    assert_eq!(create.table_class_override().map(|c| c.as_str()), Some("STANDARD_INFREQUENT_ACCESS"));
    let updated = seen[1].replica_updates()[0].update().expect("Update action");
    assert_eq!(updated.region_name(), "eu-west-1");
    assert_eq!(seen[2].replica_updates()[0].delete().map(|d| d.region_name()), Some("eu-west-1"));
}

#[tokio::test]
async fn an_mrsc_set_is_made_and_dissolved_by_one_update_table_each() {
    let seen: Arc<Mutex<Vec<UpdateTableInput>>> = Arc::default();
    let update = {
        let seen = seen.clone();
        mock!(aws_sdk_dynamodb::Client::update_table).then_compute_output(move |input| {
            seen.lock().expect("seen").push(input.clone());
            UpdateTableOutput::builder().build()
        })
    };
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&update]);
    let map = BTreeMap::from([(HOME.to_owned(), client)]);
    let tables = Tables::new(&map);

    // Two replicas and a witness; then three replicas; then the dissolving of each
    let one = [ReplicaSpec::new("us-west-2")];
    let two = [ReplicaSpec::new("us-east-2"), ReplicaSpec::new("us-west-2")];
    tables.create_strong(HOME, "Ledger", &one, Some("us-east-2")).await.expect("with a witness");
    tables.create_strong(HOME, "Ledger", &two, None).await.expect("three replicas");
    tables.dissolve_strong(HOME, "Ledger", &["us-west-2".to_owned()], Some("us-east-2")).await.expect("dissolve");
    tables.dissolve_strong(HOME, "Ledger", &["us-east-2".to_owned(), "us-west-2".to_owned()], None).await.expect("d3");

    let seen = seen.lock().expect("seen");
    assert_eq!(seen.len(), 4, "one UpdateTable per change of the set");
    let creates = |i: usize| -> Vec<String> {
        seen[i].replica_updates().iter().filter_map(|u| u.create()).map(|c| c.region_name().to_owned()).collect()
    };
    let deletes = |i: usize| -> Vec<String> {
        seen[i].replica_updates().iter().filter_map(|u| u.delete()).map(|d| d.region_name().to_owned()).collect()
    };
    let witness = |i: usize| -> Vec<(Option<String>, Option<String>)> {
        seen[i]
            .global_table_witness_updates()
            .iter()
            .map(|w| (w.create().map(|c| c.region_name().to_owned()), w.delete().map(|d| d.region_name().to_owned())))
            .collect()
    };
    assert_eq!(seen[0].multi_region_consistency().map(|c| c.as_str()), Some("STRONG"));
    assert_eq!(creates(0), ["us-west-2"]);
    assert_eq!(witness(0), [(Some("us-east-2".to_owned()), None)]);
    assert_eq!(seen[1].multi_region_consistency().map(|c| c.as_str()), Some("STRONG"));
    assert_eq!(creates(1), ["us-east-2", "us-west-2"]);
    assert!(seen[1].global_table_witness_updates.is_none(), "no witness list without a witness");
    assert!(seen[2].multi_region_consistency().is_none(), "the mode is given only when the set is created");
    assert_eq!(deletes(2), ["us-west-2"]);
    assert_eq!(witness(2), [(None, Some("us-east-2".to_owned()))]);
    assert_eq!(deletes(3), ["us-east-2", "us-west-2"]);
    assert!(seen[3].global_table_witness_updates.is_none());
}

#[tokio::test]
async fn the_record_of_added_replicas_is_written_and_cleared_with_tag_calls() {
    let tags: Arc<Mutex<BTreeMap<String, String>>> =
        Arc::new(Mutex::new(BTreeMap::from([("team".to_owned(), "sessions".to_owned())])));
    let [list, tag, untag] = tag_mocks(&tags);
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&list, &tag, &untag]);
    let map = BTreeMap::from([(HOME.to_owned(), client)]);
    let tables = Tables::new(&map);
    let owner = Owner::of(&record::Request {
        id: "v1/us-east-1/user-sessions/UserSessions/R",
        logical_resource_id: "R",
        home_region: HOME,
        table: "UserSessions",
        non_replacing_update: false,
    });
    let key = "multisite:replicas-added:v1/us-east-1/user-sessions/UserSessions/R";
    let two: BTreeSet<String> = ["eu-west-1".to_owned(), "ap-southeast-1".to_owned()].into();

    tables.write_record(HOME, TABLE_ARN, &owner, &two).await.expect("write");
    assert_eq!(tags.lock().expect("tags").get(key).map(String::as_str), Some("ap-southeast-1 eu-west-1"));
    tables.write_record(HOME, TABLE_ARN, &owner, &BTreeSet::new()).await.expect("clear");
    assert_eq!(
        *tags.lock().expect("tags"),
        BTreeMap::from([("team".to_owned(), "sessions".to_owned())]),
        "other tags untouched"
    );
    assert_eq!(untag.num_calls(), 1);
}

#[tokio::test]
async fn a_missing_table_is_none_not_an_error() {
    let describe = mock!(aws_sdk_dynamodb::Client::describe_table).then_http_response(|| {
        HttpResponse::new(
            StatusCode::try_from(400).expect("status"),
            SdkBody::from(r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::MatchAny, [&describe]);
    let map = BTreeMap::from([(HOME.to_owned(), client)]);
    assert_eq!(Tables::new(&map).describe(HOME, "Gone").await.expect("not an error"), None);
}

#[tokio::test]
async fn the_continuation_is_an_asynchronous_invoke_of_the_function_itself_with_the_event() {
    type Invoked = (Option<String>, Option<InvocationType>, Value);
    let seen: Arc<Mutex<Option<Invoked>>> = Arc::default();
    let invoke_rule = {
        let seen = seen.clone();
        mock!(aws_sdk_lambda::Client::invoke).then_compute_output(move |input| {
            let payload = input
                .payload()
                .map(|b| serde_json::from_slice(b.as_ref()).expect("JSON payload"))
                .unwrap_or(Value::Null);
            *seen.lock().expect("seen") =
                Some((input.function_name().map(str::to_owned), input.invocation_type().cloned(), payload));
            InvokeOutput::builder().status_code(202).build()
        })
    };
    let client = mock_client!(aws_sdk_lambda, RuleMode::MatchAny, [&invoke_rule]);
    let event = json!({"RequestType": "Create", "MultisiteContinuation": {"StartedAtMs": 1, "Attempt": 1}});

    LambdaContinuation::new(client).continue_later(FUNCTION_ARN, &event).await.expect("queued");

    let (function, invocation_type, payload) = seen.lock().expect("seen").clone().expect("invoked");
    assert_eq!(function.as_deref(), Some(FUNCTION_ARN));
    assert_eq!(invocation_type, Some(InvocationType::Event), "asynchronous: the caller does not wait");
    assert_eq!(payload, event);
}

#[tokio::test]
async fn a_failed_continuation_is_an_error_the_handler_can_answer() {
    let unavailable = mock!(aws_sdk_lambda::Client::invoke).sequence().http_status(503, None).times(3).build();
    let client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, [&unavailable], |c| c.retry_config(fast_retries()));
    let err = LambdaContinuation::new(client).continue_later(FUNCTION_ARN, &json!({})).await.expect_err("503");
    assert!(matches!(&err, ContinuationError::Aws(e) if e.is_retryable()), "{err:?}");
    assert_eq!(unavailable.num_calls(), 3, "the SDK retried");

    let synchronous =
        mock!(aws_sdk_lambda::Client::invoke).then_output(|| InvokeOutput::builder().status_code(200).build());
    let client = mock_client!(aws_sdk_lambda, RuleMode::Sequential, [&synchronous]);
    let err = LambdaContinuation::new(client).continue_later(FUNCTION_ARN, &json!({})).await.expect_err("not 202");
    assert!(matches!(err, ContinuationError::UnexpectedStatus(200)));
}

//! The provisioner against the emulator, through the real handler, answering a local ResponseURL
//! server that records exactly what CloudFormation would receive.
//!
//! The handler always runs with ProvisionerRole as `template.yaml` renders it for the stack the
//! test models (GlobalTableName = the resource's table, Region1..N = its Regions), which the
//! emulator enforces as IAM would; a step that is a stack update re-renders the role first, as
//! CloudFormation updates it before the custom resource. Set-up and checks use the administrator.
//!
//! Each test leases an emulator of its own for its duration (`Emulator::lease`: reset before it
//! is lent, reused within this binary), so tests may change emulator-wide settings (replica
//! timings, latency).

mod common;

use common::*;
use multisite_tests::Emulator;
use multisite_tests::fixtures::{create_global_table, create_table, unique_name};
use multisite_tests::response_server::ResponseServer;
use provisioner::Outcome;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

const SEED: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const GENEROUS: Duration = Duration::from_secs(60);

#[tokio::test]
async fn create_of_three_regions_adds_the_replicas_and_answers_success_with_data() {
    init_logs();
    // Given a table in us-east-1 and a Create for the seed's three Regions
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Sessions");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &SEED).await,
        Arc::new(CapturedContinuations::default()),
    );
    create_table(&emulator.clients(&SEED).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let event = create_event(&server.response_url("create"), "SessionsReplicas", &table, json!(SEED));

    // When the handler runs
    let summary = invoke(&deps, event, GENEROUS).await;

    // Then both replicas are ACTIVE and CloudFormation got one SUCCESS with a stable id and Data
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    assert_eq!(
        home_statuses(emulator, &table).await,
        statuses(&[("eu-west-1", "ACTIVE"), ("ap-southeast-1", "ACTIVE")])
    );
    let answer = the_answer(&server, "create");
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], v1_id(&table, "SessionsReplicas"));
    assert_eq!(answer["LogicalResourceId"], "SessionsReplicas");
    assert_eq!(answer["RequestId"], "e3f0c7d2-6a9d-4c3b-9a53-4f2b2f6a9d10");
    assert!(answer["StackId"].as_str().is_some_and(|s| s.contains(":stack/user-sessions/")));
    assert_eq!(answer["NoEcho"], false);
    let data = &answer["Data"];
    assert_eq!(data["TableName"], table.as_str());
    assert_eq!(data["Regions"], "us-east-1,eu-west-1,ap-southeast-1");
    assert_eq!(data["ReplicaRegions"], "eu-west-1,ap-southeast-1");
    assert_eq!(data["TableArn"], format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}"));
    assert_eq!(data["TableArn.eu-west-1"], format!("arn:aws:dynamodb:eu-west-1:123456789012:table/{table}"));
    assert_eq!(data["TableArn.ap-southeast-1"], format!("arn:aws:dynamodb:ap-southeast-1:123456789012:table/{table}"));
    assert!(data["StreamArn.eu-west-1"].as_str().is_some_and(|s| s.contains(":eu-west-1:")), "{data}");
    // And the table records which replicas this resource added
    assert_eq!(
        record_tags(emulator, &table).await,
        BTreeMap::from([(record_key(&v1_id(&table, "SessionsReplicas")), "ap-southeast-1 eu-west-1".to_owned())])
    );

    // When the same Create is delivered again (a retry), nothing changes and the answer is the same
    let again = create_event(&server.response_url("create-again"), "SessionsReplicas", &table, json!(SEED));
    assert_eq!(invoke(&deps, again, GENEROUS).await.outcome, Outcome::Success);
    assert_eq!(the_answer(&server, "create-again")["PhysicalResourceId"], answer["PhysicalResourceId"]);
}

#[tokio::test]
async fn update_adds_and_removes_regions_and_keeps_the_physical_id() {
    init_logs();
    // Given a resource that created replicas in eu-west-1 and ap-southeast-1
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Carts");
    let mut stack = ProvisionerStack::deploy(emulator, &table, &SEED);
    let deps = deps(config.clone(), stack.clients(emulator, &config).await, Arc::new(CapturedContinuations::default()));
    create_table(&emulator.clients(&SEED).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let create = create_event(&server.response_url("c"), "CartsReplicas", &table, json!(SEED));
    assert_eq!(invoke(&deps, create, GENEROUS).await.outcome, Outcome::Success);
    let id = v1_id(&table, "CartsReplicas");

    // When the stack's Regions change to [us-east-1, ap-southeast-1, us-west-2]: CloudFormation
    // updates ProvisionerRole first, then sends the custom resource its Update
    let regions = ["us-east-1", "ap-southeast-1", "us-west-2"];
    stack.update(emulator, &table, &regions);
    let update = update_event(
        &server.response_url("u"),
        "CartsReplicas",
        &id,
        (&table, json!(["us-east-1", "ap-southeast-1", "us-west-2"])),
        (&table, json!(SEED)),
    );
    let summary = invoke(&deps, update, GENEROUS).await;

    // Then us-west-2 is added, eu-west-1 removed, and the id is echoed unchanged
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    assert_eq!(
        home_statuses(emulator, &table).await,
        statuses(&[("ap-southeast-1", "ACTIVE"), ("us-west-2", "ACTIVE")])
    );
    let answer = the_answer(&server, "u");
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], id.as_str());
    assert_eq!(answer["Data"]["Regions"], "us-east-1,ap-southeast-1,us-west-2");
    assert_eq!(
        record_tags(emulator, &table).await.values().cloned().collect::<Vec<_>>(),
        ["ap-southeast-1 us-west-2"],
        "the record follows the replicas"
    );
}

#[tokio::test]
async fn delete_removes_only_the_replicas_this_resource_added() {
    init_logs();
    // Given a table that already had a replica in eu-west-1 before the stack adopted it
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Orders");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &SEED).await,
        Arc::new(CapturedContinuations::default()),
    );
    create_global_table(&emulator.clients(&SEED).await, &table, HOME, &["eu-west-1"]).await;
    let server = ResponseServer::start();
    let create = create_event(&server.response_url("c"), "OrdersReplicas", &table, json!(SEED));
    assert_eq!(invoke(&deps, create, GENEROUS).await.outcome, Outcome::Success);
    assert_eq!(home_statuses(emulator, &table).await.len(), 2);

    // When the resource is deleted
    let id = v1_id(&table, "OrdersReplicas");
    let delete = delete_event(&server.response_url("d"), "OrdersReplicas", &id, &table, json!(SEED));
    let summary = invoke(&deps, delete, GENEROUS).await;

    // Then only ap-southeast-1 (which it added) is gone; eu-west-1 (pre-existing) stays
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    assert_eq!(home_statuses(emulator, &table).await, statuses(&[("eu-west-1", "ACTIVE")]));
    let answer = the_answer(&server, "d");
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], id.as_str());
    assert!(record_tags(emulator, &table).await.is_empty(), "the record is removed with the resource");

    // And deleting again (the table's replicas already gone) still succeeds
    let again = delete_event(&server.response_url("d2"), "OrdersReplicas", &id, &table, json!(SEED));
    assert_eq!(invoke(&deps, again, GENEROUS).await.outcome, Outcome::Success);
}

#[tokio::test]
async fn retain_replicas_on_delete_keeps_them_and_forgets_the_record() {
    init_logs();
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Keep");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &["us-east-1", "eu-west-1"]).await,
        Arc::new(CapturedContinuations::default()),
    );
    create_table(&emulator.clients(&SEED).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let mut create = create_event(&server.response_url("c"), "KeepReplicas", &table, json!(["us-east-1", "eu-west-1"]));
    create["ResourceProperties"]["RetainReplicasOnDelete"] = json!("true");
    assert_eq!(invoke(&deps, create, GENEROUS).await.outcome, Outcome::Success);

    let mut delete = delete_event(
        &server.response_url("d"),
        "KeepReplicas",
        &v1_id(&table, "KeepReplicas"),
        &table,
        json!(["us-east-1", "eu-west-1"]),
    );
    delete["ResourceProperties"]["RetainReplicasOnDelete"] = json!("true");
    let summary = invoke(&deps, delete, GENEROUS).await;

    assert_eq!(summary.outcome, Outcome::Success);
    assert_eq!(home_statuses(emulator, &table).await, statuses(&[("eu-west-1", "ACTIVE")]));
    assert!(record_tags(emulator, &table).await.is_empty());
    assert!(the_answer(&server, "d")["Reason"].as_str().is_some_and(|r| r.contains("retained")));
}

#[tokio::test]
async fn delete_after_a_failed_create_succeeds() {
    init_logs();
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let server = ResponseServer::start();

    // Case 1: the Create failed on its properties (no TableName). The template's own resource
    // always has one (!Ref GlobalTableName), so no stack models this; neither request may reach
    // DynamoDB at all, whatever the role.
    let no_dynamodb = Arc::new(NoDynamoDb::default());
    let offline = deps(config.clone(), no_dynamodb.clone(), Arc::new(CapturedContinuations::default()));
    let mut bad = create_event(&server.response_url("c1"), "BadReplicas", "x", json!(SEED));
    bad["ResourceProperties"].as_object_mut().expect("props").remove("TableName");
    assert_eq!(invoke(&offline, bad.clone(), GENEROUS).await.outcome, Outcome::Failed);
    let failed = the_answer(&server, "c1");
    let id = failed["PhysicalResourceId"].as_str().expect("an id even on failure").to_owned();
    assert_eq!(id, "v1/us-east-1/user-sessions/(invalid)/BadReplicas", "deterministic, never random, never empty");
    let mut rollback = bad;
    rollback["RequestType"] = json!("Delete");
    rollback["PhysicalResourceId"] = json!(id);
    rollback["ResponseURL"] = json!(server.response_url("d1"));
    assert_eq!(invoke(&offline, rollback, GENEROUS).await.outcome, Outcome::Success);
    let answer = the_answer(&server, "d1");
    assert_eq!(
        (answer["Status"].as_str(), answer["PhysicalResourceId"].as_str()),
        (Some("SUCCESS"), Some(id.as_str()))
    );
    assert_eq!(no_dynamodb.requests.load(std::sync::atomic::Ordering::SeqCst), 0, "no DynamoDB call");

    // Case 2: the Create failed because the table does not exist (a stack whose GlobalTableName
    // names no table yet)
    let table = unique_name("Missing");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &SEED).await,
        Arc::new(CapturedContinuations::default()),
    );
    let create = create_event(&server.response_url("c2"), "MissingReplicas", &table, json!(SEED));
    assert_eq!(invoke(&deps, create, GENEROUS).await.outcome, Outcome::Failed);
    let failed = the_answer(&server, "c2");
    assert!(failed["Reason"].as_str().is_some_and(|r| r.contains("does not exist in us-east-1")), "{failed}");
    let id = v1_id(&table, "MissingReplicas");
    assert_eq!(failed["PhysicalResourceId"], id.as_str(), "the id the resource would have had");
    let delete = delete_event(&server.response_url("d2"), "MissingReplicas", &id, &table, json!(SEED));
    assert_eq!(invoke(&deps, delete, GENEROUS).await.outcome, Outcome::Success);
    assert_eq!(the_answer(&server, "d2")["Status"], "SUCCESS");
}

/// A table whose replicas R added, and a TableName change to another table: the Create, the
/// Update (a replacement) and the stack's roles as CloudFormation would have them afterwards.
struct Replaced {
    stack: ProvisionerStack,
    deps: Arc<provisioner::Deps>,
    server: ResponseServer,
    old: String,
    new: String,
    old_id: String,
}

const TWO: [&str; 2] = ["us-east-1", "eu-west-1"];

async fn replace_the_table(emulator: &Emulator) -> Replaced {
    // Given replicas of Old in eu-west-1, added by R in a stack whose GlobalTableName is Old
    let config = test_config();
    let (old, new) = (unique_name("Old"), unique_name("New"));
    let mut stack = ProvisionerStack::deploy(emulator, &old, &TWO);
    let deps = deps(config.clone(), stack.clients(emulator, &config).await, Arc::new(CapturedContinuations::default()));
    let home = emulator.clients(&SEED).await;
    create_table(&home.region(HOME).expect("home").dynamodb, &old).await;
    create_table(&home.region(HOME).expect("home").dynamodb, &new).await;
    let server = ResponseServer::start();
    assert_eq!(
        invoke(&deps, create_event(&server.response_url("c"), "R", &old, json!(TWO)), GENEROUS).await.outcome,
        Outcome::Success
    );
    let old_id = v1_id(&old, "R");

    // When the stack's GlobalTableName changes to New: CloudFormation updates ProvisionerRole
    // first (it now names New only), then sends R its Update
    stack.update(emulator, &new, &TWO);
    let update = update_event(&server.response_url("u"), "R", &old_id, (&new, json!(TWO)), (&old, json!(TWO)));
    assert_eq!(invoke(&deps, update, GENEROUS).await.outcome, Outcome::Success);

    // Then New gets the replicas under a new PhysicalResourceId, and Old is untouched for now
    let answer = the_answer(&server, "u");
    assert_eq!(answer["PhysicalResourceId"], v1_id(&new, "R"));
    assert_eq!(home_statuses(emulator, &new).await, statuses(&[("eu-west-1", "ACTIVE")]));
    assert_eq!(home_statuses(emulator, &old).await, statuses(&[("eu-west-1", "ACTIVE")]));
    Replaced { stack, deps, server, old, new, old_id }
}

#[tokio::test]
async fn a_table_name_change_is_a_replacement_and_the_old_resource_is_deleted_afterwards() {
    init_logs();
    let lease = Emulator::lease();
    let emulator = &*lease;
    let Replaced { deps, server, old, new, old_id, .. } = replace_the_table(emulator).await;

    // When CloudFormation's clean-up deletes the old resource (old id, old properties), after the
    // update and so under the updated role, which covers only New (on AWS too)
    let delete = delete_event(&server.response_url("d"), "R", &old_id, &old, json!(TWO));
    let summary = invoke(&deps, delete, GENEROUS).await;

    // Then it is answered FAILED (a clean-up failure does not roll the update back) with a reason
    // that names the refused action and resource and says what stays and what to do
    assert_eq!(summary.outcome, Outcome::Failed, "{summary:?}");
    let answer = the_answer(&server, "d");
    assert_eq!(answer["PhysicalResourceId"], old_id.as_str());
    let reason = answer["Reason"].as_str().expect("reason");
    let old_arn = format!("arn:aws:dynamodb:us-east-1:123456789012:table/{old}");
    assert!(reason.contains(&format!("dynamodb:DescribeTable on resource: {old_arn} ")), "{reason}");
    assert!(reason.contains("This Delete removed no replica and stopped there"), "{reason}");
    assert!(reason.contains(&format!("the tag {} of {old} in us-east-1", record_key(&old_id))), "{reason}");
    assert!(reason.contains("clean-up Delete after a TableName change"), "{reason}");
    assert!(reason.contains("remove these replicas by hand"), "{reason}");
    // And Old's replicas and their record are left exactly as they were; New keeps its own
    assert_eq!(home_statuses(emulator, &old).await, statuses(&[("eu-west-1", "ACTIVE")]));
    assert_eq!(
        record_tags(emulator, &old).await,
        BTreeMap::from([(record_key(&old_id), "eu-west-1".to_owned())]),
        "the record still tells an operator which replicas R added"
    );
    assert_eq!(home_statuses(emulator, &new).await, statuses(&[("eu-west-1", "ACTIVE")]));
}

// The template cannot give ProvisionerRole two table names (one GlobalTableName), so no stack
// keeps covering Old after the change. What can: an operator's temporary grant on the role for
// the old table, put before the update and removed after it (the remedy for that clean-up).
#[tokio::test]
async fn a_table_name_change_cleans_up_the_old_table_when_the_role_still_covers_it() {
    init_logs();
    let lease = Emulator::lease();
    let emulator = &*lease;
    let Replaced { stack, deps, server, old, new, old_id } = replace_the_table(emulator).await;
    let grant = grant_for_table(&stack.policy(), &new, &old);
    stack.put_policy(emulator, "operator-old-table", Some(&grant));

    // When CloudFormation's clean-up deletes the old resource
    let delete = delete_event(&server.response_url("d"), "R", &old_id, &old, json!(TWO));
    assert_eq!(invoke(&deps, delete, GENEROUS).await.outcome, Outcome::Success);

    // Then Old loses the replica it was given, New keeps its own
    assert_eq!(the_answer(&server, "d")["PhysicalResourceId"], old_id.as_str());
    assert!(home_statuses(emulator, &old).await.is_empty());
    assert!(record_tags(emulator, &old).await.is_empty(), "the record goes with the replicas");
    assert_eq!(home_statuses(emulator, &new).await, statuses(&[("eu-west-1", "ACTIVE")]));
    stack.put_policy(emulator, "operator-old-table", None);
}

#[tokio::test]
async fn a_rolled_back_region_change_is_undone_under_either_version_of_the_role() {
    init_logs();
    // Given replicas in eu-west-1 and ap-southeast-1, and a stack update to another Region list
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Rollback");
    let mut stack = ProvisionerStack::deploy(emulator, &table, &SEED);
    let deps = deps(config.clone(), stack.clients(emulator, &config).await, Arc::new(CapturedContinuations::default()));
    create_table(&emulator.clients(&SEED).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let id = v1_id(&table, "R");
    assert_eq!(
        invoke(&deps, create_event(&server.response_url("c"), "R", &table, json!(SEED)), GENEROUS).await.outcome,
        Outcome::Success
    );
    let swapped = ["us-east-1", "ap-southeast-1", "us-west-2"];
    let forward = |name: &str| {
        update_event(&server.response_url(name), "R", &id, (&table, json!(swapped)), (&table, json!(SEED)))
    };
    let back = |name: &str| {
        update_event(&server.response_url(name), "R", &id, (&table, json!(SEED)), (&table, json!(swapped)))
    };
    let before = statuses(&[("eu-west-1", "ACTIVE"), ("ap-southeast-1", "ACTIVE")]);
    let after = statuses(&[("ap-southeast-1", "ACTIVE"), ("us-west-2", "ACTIVE")]);

    // When the update succeeds for R but fails elsewhere, and CloudFormation rolls R back while
    // ProvisionerRole still names the new Regions (eu-west-1 is re-added in a Region it does not name)
    stack.update(emulator, &table, &swapped);
    assert_eq!(invoke(&deps, forward("u1"), GENEROUS).await.outcome, Outcome::Success);
    assert_eq!(home_statuses(emulator, &table).await, after);
    let summary = invoke(&deps, back("r1"), GENEROUS).await;
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    assert_eq!(home_statuses(emulator, &table).await, before);

    // When (the rollback having restored the role, and the same update run again) it rolls R back
    // after restoring ProvisionerRole (us-west-2 is removed in a Region the restored role does not
    // name)
    stack.update(emulator, &table, &SEED);
    stack.update(emulator, &table, &swapped);
    assert_eq!(invoke(&deps, forward("u2"), GENEROUS).await.outcome, Outcome::Success);
    assert_eq!(home_statuses(emulator, &table).await, after);
    stack.update(emulator, &table, &SEED);
    let summary = invoke(&deps, back("r2"), GENEROUS).await;

    // Then both rollbacks restore the replicas
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    assert_eq!(home_statuses(emulator, &table).await, before);
    assert_eq!(the_answer(&server, "r2")["PhysicalResourceId"], id.as_str());
}

#[tokio::test]
async fn without_update_table_in_the_role_the_create_fails_naming_the_action_and_the_table() {
    init_logs();
    // Given ProvisionerRole as rendered, minus dynamodb:UpdateTable
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Denied");
    let stack = ProvisionerStack::deploy(emulator, &table, &TWO);
    let mut policy = stack.policy();
    let mut removed = 0;
    for statement in policy["Statement"].as_array_mut().expect("statements") {
        if let Some(actions) = statement["Action"].as_array_mut() {
            let before = actions.len();
            actions.retain(|a| a != "dynamodb:UpdateTable");
            removed += before - actions.len();
        }
    }
    assert_eq!(removed, 1, "the rendered policy grants dynamodb:UpdateTable once: {policy}");
    stack.put_policy(emulator, "provisioner", Some(&policy));
    let deps = deps(config.clone(), stack.clients(emulator, &config).await, Arc::new(CapturedContinuations::default()));
    create_table(&emulator.clients(&SEED).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();

    // When the Create runs
    let summary = invoke(&deps, create_event(&server.response_url("c"), "R", &table, json!(TWO)), GENEROUS).await;

    // Then it is answered FAILED naming the action and the table, and no replica was created
    assert_eq!(summary.outcome, Outcome::Failed, "{summary:?}");
    let answer = the_answer(&server, "c");
    assert_eq!(answer["Status"], "FAILED");
    assert_eq!(answer["PhysicalResourceId"], v1_id(&table, "R"));
    let reason = answer["Reason"].as_str().expect("reason");
    let arn = format!("arn:aws:dynamodb:us-east-1:123456789012:table/{table}");
    assert!(reason.contains(&format!("dynamodb:UpdateTable on resource: {arn} ")), "{reason}");
    assert!(reason.contains("adding the replica"), "{reason}");
    assert!(home_statuses(emulator, &table).await.is_empty(), "no replica");
    assert!(record_tags(emulator, &table).await.is_empty(), "the intent is taken back from the record");
}

#[tokio::test]
async fn the_response_url_failing_twice_then_accepting_gets_the_same_answer_three_times() {
    init_logs();
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Flaky");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &["us-east-1", "eu-west-1"]).await,
        Arc::new(CapturedContinuations::default()),
    );
    create_table(&emulator.clients(&SEED).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    server.fail_next(2);

    let summary = invoke(
        &deps,
        create_event(&server.response_url("flaky"), "R", &table, json!(["us-east-1", "eu-west-1"])),
        GENEROUS,
    )
    .await;

    assert!(summary.delivered, "{summary:?}");
    assert_eq!(summary.delivery_attempts, 3);
    let requests = server.requests_for("flaky");
    assert_eq!(requests.iter().map(|r| r.answered).collect::<Vec<_>>(), [500, 500, 200]);
    assert!(requests.windows(2).all(|w| w[0].body == w[1].body), "every retry carries the same answer");
    assert_eq!(checked_answer(&requests[2])["Status"], "SUCCESS");
}

#[tokio::test]
async fn a_panic_in_the_handler_is_still_answered_failed() {
    init_logs();
    // Given a continuation with a bug, reached at the first wait (a poll interval longer than
    // the invocation's remaining time means "continue now")
    let lease = Emulator::lease();
    let emulator = &*lease;
    let mut config = test_config();
    config.poll_interval = Duration::from_secs(3);
    let table = unique_name("Panic");
    let regions = ["us-east-1", "eu-west-1"];
    let deps =
        deps(config.clone(), role_clients(emulator, &config, &table, &regions).await, Arc::new(PanickingContinuation));
    create_table(&emulator.clients(&SEED).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let event = create_event(&server.response_url("p"), "PanicReplicas", &table, json!(["us-east-1", "eu-west-1"]));

    let summary = invoke(&deps, event, Duration::from_secs(3)).await;

    assert_eq!(summary.outcome, Outcome::Failed);
    let answer = the_answer(&server, "p");
    assert_eq!(answer["Status"], "FAILED");
    let reason = answer["Reason"].as_str().expect("reason");
    assert!(reason.contains("panicked (simulated bug while queueing the continuation)"), "{reason}");
    assert_eq!(answer["PhysicalResourceId"], v1_id(&table, "PanicReplicas"));
}

#[tokio::test]
async fn the_wait_continues_across_invocations_and_one_of_them_answers() {
    init_logs();
    // Given replicas that stay CREATING longer than one (short) invocation
    let emulator = Emulator::lease();
    emulator.set_timing(1500, 300, 300);
    let config = test_config();
    let captured = Arc::new(CapturedContinuations::default());
    let table = unique_name("Slow");
    let deps = deps(config.clone(), role_clients(&emulator, &config, &table, &SEED).await, captured.clone());
    create_table(&emulator.clients(&SEED).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let event = create_event(&server.response_url("slow"), "SlowReplicas", &table, json!(SEED));
    let started = Instant::now();

    // When every invocation has 1.4 s and continuations are fed back as Lambda would
    let (summary, continuations) =
        invoke_until_answered(&deps, &captured, event.clone(), Duration::from_millis(1400), 20).await;

    // Then several invocations continued, carrying the first start time and counting attempts
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    assert!(continuations.len() >= 2, "{} continuations", continuations.len());
    let started_at: Vec<_> = continuations.iter().map(|c| c["MultisiteContinuation"]["StartedAtMs"].clone()).collect();
    assert!(started_at.windows(2).all(|w| w[0] == w[1]), "the budget is measured from the first invocation");
    let attempts: Vec<_> = continuations.iter().map(|c| c["MultisiteContinuation"]["Attempt"].as_u64()).collect();
    assert_eq!(attempts, (1..=continuations.len() as u64).map(Some).collect::<Vec<_>>());
    for c in &continuations {
        let mut original = c.clone();
        original.as_object_mut().expect("object").remove("MultisiteContinuation");
        assert_eq!(original, event, "the continuation carries the original event unchanged");
    }
    // And exactly one answer was sent, SUCCESS, once both replicas were ACTIVE
    assert_eq!(the_answer(&server, "slow")["Status"], "SUCCESS");
    assert_eq!(
        home_statuses(&emulator, &table).await,
        statuses(&[("eu-west-1", "ACTIVE"), ("ap-southeast-1", "ACTIVE")])
    );
    assert!(started.elapsed() >= Duration::from_millis(3000), "two replicas of 1.5 s each, one after the other");
}

#[tokio::test]
async fn a_spent_service_timeout_answers_failed_and_the_rollback_delete_cleans_up() {
    init_logs();
    // Given a replica that stays CREATING for 4 s and a ServiceTimeout of 2 s
    let emulator = Emulator::lease();
    emulator.set_timing(4000, 300, 300);
    let config = test_config();
    let captured = Arc::new(CapturedContinuations::default());
    let table = unique_name("Budget");
    let deps = deps(
        config.clone(),
        role_clients(&emulator, &config, &table, &["us-east-1", "eu-west-1"]).await,
        captured.clone(),
    );
    create_table(&emulator.clients(&SEED).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let mut event =
        create_event(&server.response_url("budget"), "BudgetReplicas", &table, json!(["us-east-1", "eu-west-1"]));
    event["ServiceTimeout"] = json!("2");
    event["ResourceProperties"]["ServiceTimeout"] = json!("2");
    let started = Instant::now();

    // When invocations of 1.2 s each continue until one answers
    let (summary, continuations) =
        invoke_until_answered(&deps, &captured, event, Duration::from_millis(1200), 20).await;

    // Then the resource fails on its budget (across invocations), well before the replica is ready
    assert_eq!(summary.outcome, Outcome::Failed, "{summary:?}");
    assert!(!continuations.is_empty(), "the budget spans invocations");
    assert!(started.elapsed() < Duration::from_millis(3000), "{:?}", started.elapsed());
    let answer = the_answer(&server, "budget");
    let reason = answer["Reason"].as_str().expect("reason");
    assert!(reason.contains("ServiceTimeout of 2 s"), "{reason}");
    assert!(reason.contains("eu-west-1 CREATING"), "says what it was waiting for: {reason}");
    let id = v1_id(&table, "BudgetReplicas");
    assert_eq!(answer["PhysicalResourceId"], id.as_str());

    // When CloudFormation rolls back with a Delete
    let delete = delete_event(
        &server.response_url("rollback"),
        "BudgetReplicas",
        &id,
        &table,
        json!(["us-east-1", "eu-west-1"]),
    );
    let summary = invoke(&deps, delete, GENEROUS).await;

    // Then the replica it started is removed once it can be, and the Delete succeeds
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    assert!(home_statuses(&emulator, &table).await.is_empty());
}

#[tokio::test]
async fn the_deadline_guard_answers_failed_before_the_lambda_times_out() {
    init_logs();
    // Given every us-east-1 call takes 4 s and the invocation has 2.5 s left
    let emulator = Emulator::lease();
    let config = test_config();
    let table = unique_name("Stuck");
    let deps = deps(
        config.clone(),
        role_clients(&emulator, &config, &table, &SEED).await,
        Arc::new(CapturedContinuations::default()),
    );
    create_table(&emulator.clients(&SEED).await.region(HOME).expect("home").dynamodb, &table).await;
    emulator.set_latency(HOME, 4000);
    let server = ResponseServer::start();
    let started = Instant::now();

    let summary = invoke(
        &deps,
        create_event(&server.response_url("stuck"), "StuckReplicas", &table, json!(SEED)),
        Duration::from_millis(2500),
    )
    .await;

    // Then FAILED is delivered a margin before the deadline, saying why
    let elapsed = started.elapsed();
    emulator.set_latency(HOME, 0);
    assert_eq!(summary.outcome, Outcome::Failed, "{summary:?}");
    assert!(summary.delivered);
    assert!(elapsed < Duration::from_millis(2500), "answered before the Lambda deadline: {elapsed:?}");
    assert!(elapsed >= Duration::from_millis(1800), "not before the guard: {elapsed:?}");
    let answer = the_answer(&server, "stuck");
    let reason = answer["Reason"].as_str().expect("reason");
    assert!(reason.contains("deadline guard"), "{reason}");
    assert_eq!(answer["PhysicalResourceId"], v1_id(&table, "StuckReplicas"));
}

/// Collects the JSON log lines of the current thread.
#[derive(Clone, Default)]
struct LogBuffer(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuffer {
    fn lines(&self) -> Vec<Value> {
        let text = String::from_utf8(self.0.lock().expect("log buffer").clone()).expect("utf-8 logs");
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect()
    }
}

// current_thread: the handler's spawned task runs on this thread, under this thread's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn each_request_logs_structured_events_and_no_echo_keeps_property_values_out_of_them() {
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("SecretTable");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &["us-east-1", "eu-west-1"]).await,
        Arc::new(CapturedContinuations::default()),
    );
    create_table(&emulator.clients(&SEED).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_env_filter("provisioner=info")
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let mut event =
        create_event(&server.response_url("secret"), "SecretReplicas", &table, json!(["us-east-1", "eu-west-1"]));
    event["ResourceProperties"]["NoEcho"] = json!("true");
    let summary = invoke(&deps, event, GENEROUS).await;

    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    let answer = the_answer(&server, "secret");
    assert_eq!(answer["NoEcho"], true, "CloudFormation masks the Data from Fn::GetAtt output");
    let lines = logs.lines();
    let request = lines.iter().find(|l| l["message"] == "custom resource request").expect("a request event");
    assert_eq!(request["request_type"], "Create");
    assert_eq!(request["logical_resource_id"], "SecretReplicas");
    assert!(request["stack_id"].as_str().is_some_and(|s| s.contains(":stack/user-sessions/")));
    assert_eq!(request["request_id"], "e3f0c7d2-6a9d-4c3b-9a53-4f2b2f6a9d10");
    let outcome = lines.iter().find(|l| l["message"] == "answered CloudFormation").expect("an outcome event");
    assert_eq!(outcome["outcome"], "SUCCESS");
    assert_eq!(outcome["logical_resource_id"], "SecretReplicas");
    assert!(lines.iter().any(|l| l["message"] == "replica step" && l["step"] == "add"), "one event per action");
    let text = serde_json::to_string(&lines).expect("logs");
    assert!(!text.contains(&table), "the table name is not logged with NoEcho: {text}");
    assert!(!text.contains("eu-west-1"), "the Regions are not logged with NoEcho: {text}");
}

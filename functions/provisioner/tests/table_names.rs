//! `ProvisionerTableNames` (`PROVISIONER_TABLE_NAMES`) bounds what any request may touch, through
//! the real handler against the emulator: a Create or Update naming a table outside it answers
//! FAILED saying what to change, and its Delete (the rollback of such a Create) succeeds; none of
//! them makes a single AWS call, even though the provisioner's role would allow the table.

mod common;

use common::*;
use multisite_tests::Emulator;
use multisite_tests::fixtures::{create_table, unique_name};
use multisite_tests::response_server::ResponseServer;
use provisioner::{Config, Outcome};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const TWO: [&str; 2] = ["us-east-1", "eu-west-1"];
const GENEROUS: Duration = Duration::from_secs(60);

/// Every call the provisioner's role made since the request log was cleared.
fn role_calls(emulator: &Emulator) -> Vec<String> {
    emulator
        .requests()
        .into_iter()
        .filter(|r| r.principal.as_deref().is_some_and(|p| p.contains("ProvisionerRole")))
        .map(|r| format!("{} {}", r.region, r.operation))
        .collect()
}

#[tokio::test]
async fn a_table_outside_provisioner_table_names_is_answered_failed_and_touched_by_no_request() {
    init_logs();
    // Given a provisioner bounded to one table (as the environment sets it), a role that allows
    // another table too, and both tables
    let lease = Emulator::lease();
    let emulator = &*lease;
    let (allowed, other) = (unique_name("Allowed"), unique_name("Other"));
    let env = [("AWS_REGION", HOME.to_owned()), ("PROVISIONER_TABLE_NAMES", format!("{allowed}, SomeOther"))];
    let from_env =
        Config::from_lookup(|k| env.iter().find(|(key, _)| *key == k).map(|(_, v)| v.clone())).expect("configuration");
    let config = Config { table_names: from_env.table_names, ..test_config() };
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &other, &TWO).await,
        Arc::new(CapturedContinuations::default()),
    );
    let home = emulator.clients(&ALL).await;
    create_table(&home.region(HOME).expect("home").dynamodb, &other).await;
    create_table(&home.region(HOME).expect("home").dynamodb, &allowed).await;
    let server = ResponseServer::start();
    emulator.clear_requests();

    // When a Create names the other table
    let summary = invoke(&deps, create_event(&server.response_url("c"), "R", &other, json!(TWO)), GENEROUS).await;

    // Then it is answered FAILED, saying which tables are allowed and what to change
    assert_eq!(summary.outcome, Outcome::Failed, "{summary:?}");
    let answer = the_answer(&server, "c");
    let id = v1_id(&other, "R");
    assert_eq!(answer["PhysicalResourceId"], id.as_str());
    let reason = answer["Reason"].as_str().expect("reason");
    let list =
        if allowed.as_str() < "SomeOther" { format!("{allowed}, SomeOther") } else { format!("SomeOther, {allowed}") };
    assert_eq!(
        reason,
        format!(
            "TableName `{other}` is not one of the tables this provisioner may manage (ProvisionerTableNames: {list}): add it to the ProvisionerTableNames parameter of the provisioner's stack, or name one of those tables"
        )
    );

    // When CloudFormation rolls the Create back with its Delete
    let summary = invoke(&deps, delete_event(&server.response_url("d"), "R", &id, &other, json!(TWO)), GENEROUS).await;

    // Then the Delete succeeds without touching the table (the stack is not blocked)
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    let reason = the_answer(&server, "d")["Reason"].as_str().expect("reason").to_owned();
    assert!(reason.starts_with(&format!("nothing done: TableName `{other}` is not one of the tables")), "{reason}");

    // When an Update moves an allowed resource to the other table
    let update = update_event(
        &server.response_url("u"),
        "R",
        &v1_id(&allowed, "R"),
        (&other, json!(TWO)),
        (&allowed, json!(TWO)),
    );
    let summary = invoke(&deps, update, GENEROUS).await;

    // Then it is answered FAILED with the id it had (CloudFormation rolls back)
    assert_eq!(summary.outcome, Outcome::Failed, "{summary:?}");
    let answer = the_answer(&server, "u");
    assert_eq!(answer["PhysicalResourceId"], v1_id(&allowed, "R").as_str());
    assert!(answer["Reason"].as_str().is_some_and(|r| r.contains("add it to the ProvisionerTableNames parameter")));

    // And none of the three made any AWS call: no replica, no tag
    assert_eq!(role_calls(emulator), Vec::<String>::new());
    assert!(home_statuses(emulator, &other).await.is_empty());
    assert!(record_tags(emulator, &other).await.is_empty());
}

#[tokio::test]
async fn a_table_inside_provisioner_table_names_is_provisioned() {
    init_logs();
    let lease = Emulator::lease();
    let emulator = &*lease;
    let table = unique_name("Listed");
    let config = Config { table_names: Some([table.clone(), "SomeOther".to_owned()].into()), ..test_config() };
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &TWO).await,
        Arc::new(CapturedContinuations::default()),
    );
    create_table(&emulator.clients(&ALL).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();

    let summary = invoke(&deps, create_event(&server.response_url("c"), "R", &table, json!(TWO)), GENEROUS).await;

    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    assert_eq!(home_statuses(emulator, &table).await, statuses(&[("eu-west-1", "ACTIVE")]));
}

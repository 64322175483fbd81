//! Safe across upgrades: the PhysicalResourceId an Update answers, and which replicas a Delete may
//! remove, through the real handler against the emulator with the local ResponseURL server.
//!
//! CloudFormation treats a new id in an Update's answer as a replacement and, after the stack
//! update, sends a Delete of the old id with the old properties. These tests run those sequences:
//! a real TableName change (the old id's Delete cleans the old table), and an upgrade (an id minted
//! by an earlier provider, same TableName: the Update echoes it, and a Delete of some other, stale
//! id removes nothing). Records from before ids (`multisite:replicas:<LogicalResourceId>`) are
//! written by hand, as the provisioner before this build wrote them.

mod common;

use common::*;
use multisite_tests::Emulator;
use multisite_tests::fixtures::{create_global_table, create_table, unique_name};
use multisite_tests::response_server::ResponseServer;
use provisioner::Outcome;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const SEED: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
const TWO: [&str; 2] = ["us-east-1", "eu-west-1"];
const GENEROUS: Duration = Duration::from_secs(60);

/// Tags the home table as the administrator (a record as an earlier provisioner left it).
async fn tag_table(emulator: &Emulator, table: &str, tags: &[(&str, &str)]) {
    let clients = emulator.clients(&ALL).await;
    let ddb = &clients.region(HOME).expect("home").dynamodb;
    let arn = ddb.describe_table().table_name(table).send().await.expect("describe").table.and_then(|t| t.table_arn);
    let tags: Vec<_> = tags
        .iter()
        .map(|(k, v)| aws_sdk_dynamodb::types::Tag::builder().key(*k).value(*v).build().expect("tag"))
        .collect();
    ddb.tag_resource().set_resource_arn(arn).set_tags(Some(tags)).send().await.expect("tag the table");
}

/// The changes (UpdateTable, TagResource, UntagResource) the provisioner's role made since the
/// request log was cleared.
fn role_writes(emulator: &Emulator) -> Vec<String> {
    emulator
        .requests()
        .into_iter()
        .filter(|r| r.principal.as_deref().is_some_and(|p| p.contains("ProvisionerRole")))
        .filter(|r| matches!(r.operation.as_str(), "UpdateTable" | "TagResource" | "UntagResource"))
        .map(|r| format!("{} {}", r.region, r.operation))
        .collect()
}

fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// The upgrade case the issue reports: a resource whose id an earlier provider minted, its replicas
/// recorded before ids. The Update (same TableName) echoes the id; CloudFormation then sends no
/// Delete, but a stale Delete of another id for the same resource (what a provider that answered
/// a new id would have caused) removes nothing; the real Delete of the live id removes them.
#[tokio::test]
async fn an_update_echoes_an_old_format_id_and_a_stale_ids_delete_removes_nothing() {
    init_logs();
    // Given UserSessions-like replicas in eu-west-1 and ap-southeast-1, recorded before ids as
    // added by R, under the id `global-table-replicas/<table>` an earlier provider minted
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Sessions");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &SEED).await,
        Arc::new(CapturedContinuations::default()),
    );
    create_global_table(&emulator.clients(&ALL).await, &table, HOME, &["eu-west-1", "ap-southeast-1"]).await;
    tag_table(emulator, &table, &[("multisite:replicas:R", "ap-southeast-1 eu-west-1")]).await;
    let live = format!("global-table-replicas/{table}");
    let server = ResponseServer::start();
    let both = statuses(&[("eu-west-1", "ACTIVE"), ("ap-southeast-1", "ACTIVE")]);

    // When, even before any Update, a Delete of a stale id arrives (this build's id for R: a
    // provider that answered it on an Update would have caused it)
    emulator.clear_requests();
    let early = delete_event(&server.response_url("d-early"), "R", &v1_id(&table, "R"), &table, json!(SEED));
    assert_eq!(invoke(&deps, early, GENEROUS).await.outcome, Outcome::Success);

    // Then it removes nothing: the record from before ids is not that id's
    assert!(the_answer(&server, "d-early")["Reason"].as_str().is_some_and(|r| r.starts_with("nothing to remove")));
    assert_eq!(home_statuses(emulator, &table).await, both);
    assert_eq!(role_writes(emulator), Vec::<String>::new(), "it touched nothing");

    // When the stack is updated (ServiceTimeout changes, TableName and Regions do not)
    let mut update = update_event(&server.response_url("u"), "R", &live, (&table, json!(SEED)), (&table, json!(SEED)));
    update["OldResourceProperties"]["ServiceTimeout"] = json!("600");
    let summary = invoke(&deps, update, GENEROUS).await;

    // Then the answer echoes the id it was given: no replacement, so no Delete of it follows
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    let answer = the_answer(&server, "u");
    assert_eq!(answer["PhysicalResourceId"], live.as_str(), "the earlier provider's id, echoed as is");
    assert_eq!(home_statuses(emulator, &table).await, both);
    // And the record from before ids now is the live id's record
    let moved = tags(&[(&record_key(&live), "ap-southeast-1 eu-west-1")]);
    assert_eq!(record_tags(emulator, &table).await, moved);

    // When Deletes of other, stale ids of the same resource arrive with the same properties: the
    // id the provisioner before ids would have answered, and the one this build mints
    emulator.clear_requests();
    for (name, stale) in [("d-legacy", format!("us-east-1/{table}/R")), ("d-v1", v1_id(&table, "R"))] {
        let delete = delete_event(&server.response_url(name), "R", &stale, &table, json!(SEED));
        let summary = invoke(&deps, delete, GENEROUS).await;

        // Then each succeeds, having removed nothing: those ids own no record
        assert_eq!(summary.outcome, Outcome::Success, "{name}: {summary:?}");
        let answer = the_answer(&server, name);
        assert_eq!(answer["PhysicalResourceId"], stale.as_str());
        assert!(answer["Reason"].as_str().is_some_and(|r| r.starts_with("nothing to remove")), "{answer}");
    }
    assert_eq!(home_statuses(emulator, &table).await, both, "the live resource keeps its replicas");
    assert_eq!(record_tags(emulator, &table).await, moved, "and its record");
    assert_eq!(role_writes(emulator), Vec::<String>::new(), "the stale Deletes touched nothing");

    // When the live id is deleted, its replicas go
    let delete = delete_event(&server.response_url("d"), "R", &live, &table, json!(SEED));
    assert_eq!(invoke(&deps, delete, GENEROUS).await.outcome, Outcome::Success);
    assert!(home_statuses(emulator, &table).await.is_empty());
    assert!(record_tags(emulator, &table).await.is_empty());
}

/// A record from before ids keeps working: it belongs to the id the provisioner before ids
/// answered, `<home>/<table>/<LogicalResourceId>`, which may still be the live one.
#[tokio::test]
async fn a_record_from_before_ids_is_removed_by_the_delete_of_the_id_it_was_written_for() {
    init_logs();
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Legacy");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &SEED).await,
        Arc::new(CapturedContinuations::default()),
    );
    // Given eu-west-1 (there before the stack) and ap-southeast-1 (recorded as added by R)
    create_global_table(&emulator.clients(&ALL).await, &table, HOME, &["eu-west-1", "ap-southeast-1"]).await;
    tag_table(emulator, &table, &[("multisite:replicas:R", "ap-southeast-1")]).await;
    let server = ResponseServer::start();

    // When the id that provisioner answered is deleted
    let id = format!("us-east-1/{table}/R");
    let summary = invoke(&deps, delete_event(&server.response_url("d"), "R", &id, &table, json!(SEED)), GENEROUS).await;

    // Then what it recorded goes, and nothing else
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    assert_eq!(the_answer(&server, "d")["Reason"], "removed the replicas this resource added: ap-southeast-1");
    assert_eq!(home_statuses(emulator, &table).await, statuses(&[("eu-west-1", "ACTIVE")]));
    assert!(record_tags(emulator, &table).await.is_empty());
}

/// A real replacement from an old-format id: the Update answers a new (v1) id because the
/// TableName changed, and CloudFormation's clean-up Delete of the old id, with the old properties,
/// removes what the old id recorded on the old table (its record from before ids) and nothing of
/// the new table's.
#[tokio::test]
async fn a_table_name_change_from_an_old_format_id_is_a_replacement_whose_old_id_delete_cleans_the_old_table() {
    init_logs();
    // Given Old's replica in eu-west-1, recorded before ids as added by R (old id
    // `us-east-1/<Old>/R`), and a table New
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let (old, new) = (unique_name("Old"), unique_name("New"));
    let mut stack = ProvisionerStack::deploy(emulator, &old, &TWO);
    let deps = deps(config.clone(), stack.clients(emulator, &config).await, Arc::new(CapturedContinuations::default()));
    let admin = emulator.clients(&ALL).await;
    create_global_table(&admin, &old, HOME, &["eu-west-1"]).await;
    create_table(&admin.region(HOME).expect("home").dynamodb, &new).await;
    tag_table(emulator, &old, &[("multisite:replicas:R", "eu-west-1")]).await;
    let old_id = format!("us-east-1/{old}/R");
    let server = ResponseServer::start();

    // When GlobalTableName changes to New (the role is updated first), and R gets its Update
    stack.update(emulator, &new, &TWO);
    let update = update_event(&server.response_url("u"), "R", &old_id, (&new, json!(TWO)), (&old, json!(TWO)));
    assert_eq!(invoke(&deps, update, GENEROUS).await.outcome, Outcome::Success);

    // Then the answer is a new, v1 id: a replacement; New has its replica, recorded under it
    let new_id = v1_id(&new, "R");
    assert_eq!(the_answer(&server, "u")["PhysicalResourceId"], new_id.as_str());
    assert_eq!(home_statuses(emulator, &new).await, statuses(&[("eu-west-1", "ACTIVE")]));
    assert_eq!(record_tags(emulator, &new).await, tags(&[(&record_key(&new_id), "eu-west-1")]));

    // When CloudFormation's clean-up Delete of the old id arrives with the old properties (an
    // operator's grant on the old table lets the updated role reach it, as the README advises)
    let grant = grant_for_table(&stack.policy(), &new, &old);
    stack.put_policy(emulator, "operator-old-table", Some(&grant));
    let delete = delete_event(&server.response_url("d"), "R", &old_id, &old, json!(TWO));
    assert_eq!(invoke(&deps, delete, GENEROUS).await.outcome, Outcome::Success);

    // Then Old's replica and its record from before ids are gone; New keeps its own
    assert_eq!(the_answer(&server, "d")["PhysicalResourceId"], old_id.as_str());
    assert!(home_statuses(emulator, &old).await.is_empty());
    assert!(record_tags(emulator, &old).await.is_empty());
    assert_eq!(home_statuses(emulator, &new).await, statuses(&[("eu-west-1", "ACTIVE")]));
    assert_eq!(record_tags(emulator, &new).await, tags(&[(&record_key(&new_id), "eu-west-1")]));
    stack.put_policy(emulator, "operator-old-table", None);
}

/// Two live resources on one table (two stacks, same LogicalResourceId): each id has its own
/// record, and a Delete removes only what its id recorded and no other id claims.
#[tokio::test]
async fn a_delete_removes_only_what_its_id_recorded_and_no_other_live_id_claims() {
    init_logs();
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Shared");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &SEED).await,
        Arc::new(CapturedContinuations::default()),
    );
    create_table(&emulator.clients(&ALL).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let in_stack = |event: Value, stack: &str| {
        let mut event = event;
        event["StackId"] = json!(format!("arn:aws:cloudformation:us-east-1:123456789012:stack/{stack}/6c8d0b51"));
        event
    };

    // Given stack a's R added eu-west-1, then stack b's R (listing all three) added ap-southeast-1
    let create_a = in_stack(create_event(&server.response_url("ca"), "R", &table, json!(TWO)), "a");
    let create_b = in_stack(create_event(&server.response_url("cb"), "R", &table, json!(SEED)), "b");
    assert_eq!(invoke(&deps, create_a, GENEROUS).await.outcome, Outcome::Success);
    assert_eq!(invoke(&deps, create_b, GENEROUS).await.outcome, Outcome::Success);
    let (id_a, id_b) = (
        the_answer(&server, "ca")["PhysicalResourceId"].clone(),
        the_answer(&server, "cb")["PhysicalResourceId"].clone(),
    );
    let (id_a, id_b) = (id_a.as_str().expect("id a").to_owned(), id_b.as_str().expect("id b").to_owned());
    assert_eq!(
        (id_a.as_str(), id_b.as_str()),
        (format!("v1/us-east-1/a/{table}/R").as_str(), format!("v1/us-east-1/b/{table}/R").as_str())
    );
    assert_eq!(
        record_tags(emulator, &table).await,
        tags(&[(&record_key(&id_a), "eu-west-1"), (&record_key(&id_b), "ap-southeast-1")])
    );
    // And b's record also lists eu-west-1 (as a record half-way through a move can)
    tag_table(emulator, &table, &[(&record_key(&id_b), "ap-southeast-1 eu-west-1")]).await;

    // When b is deleted
    let delete_b = in_stack(delete_event(&server.response_url("db"), "R", &id_b, &table, json!(SEED)), "b");
    assert_eq!(invoke(&deps, delete_b, GENEROUS).await.outcome, Outcome::Success);

    // Then only ap-southeast-1 goes: eu-west-1 is claimed by a, which keeps it and its record
    assert_eq!(the_answer(&server, "db")["Reason"], "removed the replicas this resource added: ap-southeast-1");
    assert_eq!(home_statuses(emulator, &table).await, statuses(&[("eu-west-1", "ACTIVE")]));
    assert_eq!(record_tags(emulator, &table).await, tags(&[(&record_key(&id_a), "eu-west-1")]));
}

//! `MultiRegionConsistency: STRONG` through the real handler, against the emulator's MRSC
//! semantics, answering the local ResponseURL server: the set is made in one UpdateTable (three
//! replicas, or two and a witness), reads are strongly consistent across it, a Delete dissolves
//! it whole, and every combination AWS refuses (or the provisioner refuses before asking AWS)
//! answers FAILED with a reason that says what to change.
//!
//! The handler runs with ProvisionerRole as `template.yaml` renders it for a stack in the US
//! Region set (Region1..3 = us-east-1, us-east-2, us-west-2).

mod common;

use aws_sdk_dynamodb::types::AttributeValue;
use common::*;
use multisite_tests::Emulator;
use multisite_tests::fixtures::{create_table, get_value, put_value, unique_name};
use multisite_tests::response_server::ResponseServer;
use provisioner::Outcome;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const US: [&str; 3] = ["us-east-1", "us-east-2", "us-west-2"];
const GENEROUS: Duration = Duration::from_secs(60);

/// A Create of `logical` for `table` with these MRSC properties.
fn strong_create(url: &str, logical: &str, table: &str, regions: &[&str], witness: Option<&str>) -> Value {
    let mut event = create_event(url, logical, table, json!(regions));
    event["ResourceProperties"]["MultiRegionConsistency"] = json!("STRONG");
    if let Some(witness) = witness {
        event["ResourceProperties"]["WitnessRegion"] = json!(witness);
    }
    event
}

/// MultiRegionConsistency, replicas and witnesses as the home table's DescribeTable reports them.
async fn described(
    emulator: &Emulator,
    table: &str,
) -> (Option<String>, BTreeMap<String, String>, BTreeMap<String, String>) {
    let clients = emulator.clients(&US).await;
    let t = clients
        .region(HOME)
        .expect("home")
        .dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("describe")
        .table
        .expect("table");
    let replicas = t
        .replicas()
        .iter()
        .filter_map(|r| Some((r.region_name()?.to_owned(), r.replica_status()?.as_str().to_owned())))
        .collect();
    let witnesses = t
        .global_table_witnesses()
        .iter()
        .filter_map(|w| Some((w.region_name()?.to_owned(), w.witness_status()?.as_str().to_owned())))
        .collect();
    (t.multi_region_consistency().map(|c| c.as_str().to_owned()), replicas, witnesses)
}

/// The UpdateTable calls the provisioner's role made since the log was cleared.
fn update_tables(emulator: &Emulator) -> usize {
    emulator.requests().iter().filter(|r| r.operation == "UpdateTable" && r.principal.is_some()).count()
}

#[tokio::test]
async fn strong_with_a_witness_is_one_update_table_and_reads_are_consistent_everywhere() {
    init_logs();
    // Given an empty table in us-east-1 and a Create for us-east-1 + us-west-2 with a witness in us-east-2
    let lease = Emulator::lease();
    let emulator = &*lease;
    emulator.set_replication_delay(5_000); // eventual replication would take 5 s
    let config = test_config();
    let table = unique_name("Ledger");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &US).await,
        Arc::new(CapturedContinuations::default()),
    );
    let admin = emulator.clients(&US).await;
    create_table(&admin.region(HOME).expect("home").dynamodb, &table).await;
    emulator.clear_requests();
    let server = ResponseServer::start();
    let event = strong_create(
        &server.response_url("create"),
        "LedgerReplicas",
        &table,
        &["us-east-1", "us-west-2"],
        Some("us-east-2"),
    );

    // When the handler runs
    let summary = invoke(&deps, event, GENEROUS).await;

    // Then CloudFormation got SUCCESS naming the set, after exactly one UpdateTable
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    let answer = the_answer(&server, "create");
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["PhysicalResourceId"], v1_id(&table, "LedgerReplicas"));
    assert_eq!(
        answer["Reason"],
        "replicas ACTIVE in us-east-1, us-west-2, witness ACTIVE in us-east-2 (multi-Region strong consistency)"
    );
    assert_eq!(answer["Data"]["MultiRegionConsistency"], "STRONG");
    assert_eq!(answer["Data"]["WitnessRegion"], "us-east-2");
    assert_eq!(answer["Data"]["ReplicaRegions"], "us-west-2");
    assert_eq!(update_tables(emulator), 1, "the set is made by one UpdateTable");
    // And the table is an MRSC set, whose members this resource recorded
    assert_eq!(
        described(emulator, &table).await,
        (Some("STRONG".to_owned()), statuses(&[("us-west-2", "ACTIVE")]), statuses(&[("us-east-2", "ACTIVE")]))
    );
    assert_eq!(
        record_tags(emulator, &table).await,
        BTreeMap::from([(record_key(&v1_id(&table, "LedgerReplicas")), "us-east-2 us-west-2".to_owned())])
    );
    // And a write in one replica is read at once, strongly consistent, in the other
    put_value(&admin.region(HOME).expect("home").dynamodb, &table, "k", "v1").await;
    assert_eq!(get_value(&admin.region("us-west-2").expect("w2").dynamodb, &table, "k").await.as_deref(), Some("v1"));

    // When the same Create is delivered again, nothing changes
    let again = strong_create(
        &server.response_url("again"),
        "LedgerReplicas",
        &table,
        &["us-east-1", "us-west-2"],
        Some("us-east-2"),
    );
    assert_eq!(invoke(&deps, again, GENEROUS).await.outcome, Outcome::Success);
    assert_eq!(update_tables(emulator), 1, "a retried Create changes nothing");
}

#[tokio::test]
async fn a_delete_dissolves_the_set_it_created_and_leaves_a_single_region_table() {
    init_logs();
    // Given an MRSC set of three replicas made by the provisioner
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Ledger");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &US).await,
        Arc::new(CapturedContinuations::default()),
    );
    create_table(&emulator.clients(&US).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let create = strong_create(&server.response_url("c"), "LedgerReplicas", &table, &US, None);
    assert_eq!(invoke(&deps, create, GENEROUS).await.outcome, Outcome::Success);
    assert_eq!(
        described(emulator, &table).await,
        (Some("STRONG".to_owned()), statuses(&[("us-east-2", "ACTIVE"), ("us-west-2", "ACTIVE")]), BTreeMap::new())
    );
    assert_eq!(
        the_answer(&server, "c")["Reason"],
        "replicas ACTIVE in us-east-1, us-east-2, us-west-2 (multi-Region strong consistency)"
    );

    // When CloudFormation deletes the resource
    let id = v1_id(&table, "LedgerReplicas");
    let mut delete = delete_event(&server.response_url("d"), "LedgerReplicas", &id, &table, json!(US));
    delete["ResourceProperties"]["MultiRegionConsistency"] = json!("STRONG");
    let summary = invoke(&deps, delete, GENEROUS).await;

    // Then both other replicas went in one UpdateTable and the table is single-Region again
    assert_eq!(summary.outcome, Outcome::Success, "{summary:?}");
    let answer = the_answer(&server, "d");
    assert_eq!(answer["Status"], "SUCCESS");
    assert_eq!(answer["Reason"], "removed the replicas this resource added: us-east-2, us-west-2");
    assert_eq!(described(emulator, &table).await, (None, BTreeMap::new(), BTreeMap::new()));
    assert!(record_tags(emulator, &table).await.is_empty());
}

/// (name, Regions, MultiRegionConsistency, WitnessRegion, what the reason says)
type Case = (&'static str, &'static [&'static str], &'static str, Option<&'static str>, &'static str);

#[tokio::test]
async fn invalid_combinations_answer_failed_saying_what_to_change_without_calling_aws() {
    init_logs();
    let config = test_config();
    let none = Arc::new(NoDynamoDb::default());
    let deps = deps(config, none.clone(), Arc::new(CapturedContinuations::default()));
    let server = ResponseServer::start();
    let cases: &[Case] = &[
        (
            "two",
            &["us-east-1", "us-east-2"],
            "STRONG",
            None,
            "Regions: MultiRegionConsistency STRONG needs exactly three Regions",
        ),
        (
            "four",
            &["us-east-1", "us-east-2", "us-west-2"],
            "STRONG",
            Some("us-west-1"),
            "with a WitnessRegion, MultiRegionConsistency STRONG needs exactly two Regions",
        ),
        (
            "sets",
            &["us-east-1", "us-east-2", "eu-west-1"],
            "STRONG",
            None,
            "Regions[2]: `eu-west-1` is not in the Region set of us-east-1",
        ),
        (
            "witness-set",
            &["us-east-1", "us-west-2"],
            "STRONG",
            Some("eu-west-1"),
            "WitnessRegion: `eu-west-1` is not in the Region set of us-east-1",
        ),
        (
            "witness-replica",
            &["us-east-1", "us-west-2"],
            "STRONG",
            Some("us-west-2"),
            "WitnessRegion: `us-west-2` is also listed in Regions",
        ),
        (
            "eventual-witness",
            &["us-east-1", "us-west-2"],
            "EVENTUAL",
            Some("us-east-2"),
            "remove WitnessRegion, or set MultiRegionConsistency to STRONG",
        ),
        ("value", &["us-east-1", "us-west-2"], "strict", None, "MultiRegionConsistency: must be EVENTUAL (the default"),
    ];
    for (name, regions, consistency, witness, needle) in cases {
        let mut event = create_event(&server.response_url(name), "LedgerReplicas", "Ledger", json!(regions));
        event["ResourceProperties"]["MultiRegionConsistency"] = json!(consistency);
        if let Some(witness) = witness {
            event["ResourceProperties"]["WitnessRegion"] = json!(witness);
        }
        let summary = invoke(&deps, event, GENEROUS).await;
        assert_eq!(summary.outcome, Outcome::Failed, "{name}");
        let answer = the_answer(&server, name);
        assert_eq!(answer["Status"], "FAILED", "{name}");
        let reason = answer["Reason"].as_str().unwrap_or_default();
        assert!(reason.contains(needle), "{name}: {reason}");
    }
    assert_eq!(none.requests.load(std::sync::atomic::Ordering::SeqCst), 0, "no AWS call for an invalid request");
}

#[tokio::test]
async fn an_update_that_toggles_consistency_is_refused_and_changes_nothing() {
    init_logs();
    // Given an eventual (MREC) replica set made by the provisioner
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Toggle");
    let deps = deps(
        config.clone(),
        role_clients(emulator, &config, &table, &US).await,
        Arc::new(CapturedContinuations::default()),
    );
    create_table(&emulator.clients(&US).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let create = create_event(&server.response_url("c"), "ToggleReplicas", &table, json!(["us-east-1", "us-east-2"]));
    assert_eq!(invoke(&deps, create, GENEROUS).await.outcome, Outcome::Success);
    let id = v1_id(&table, "ToggleReplicas");

    // When an Update asks for STRONG
    let mut update = update_event(
        &server.response_url("u"),
        "ToggleReplicas",
        &id,
        (&table, json!(US)),
        (&table, json!(["us-east-1", "us-east-2"])),
    );
    update["ResourceProperties"]["MultiRegionConsistency"] = json!("STRONG");
    let summary = invoke(&deps, update, GENEROUS).await;

    // Then it is FAILED, saying why and what to change, with the id kept and the replicas untouched
    assert_eq!(summary.outcome, Outcome::Failed, "{summary:?}");
    let answer = the_answer(&server, "u");
    assert_eq!(answer["Status"], "FAILED");
    assert_eq!(answer["PhysicalResourceId"], id.as_str());
    let reason = answer["Reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("already a global table with multi-Region eventual consistency (replicas in us-east-2)"),
        "{reason}"
    );
    assert!(
        reason.contains("Set MultiRegionConsistency back to EVENTUAL, or give this resource a new, empty table"),
        "{reason}"
    );
    assert_eq!(described(emulator, &table).await, (None, statuses(&[("us-east-2", "ACTIVE")]), BTreeMap::new()));

    // And the other way: an MRSC set's resource updated to EVENTUAL is refused too
    let strong_table = unique_name("Strong");
    let deps = deps_for(emulator, &config, &strong_table).await;
    create_table(&emulator.clients(&US).await.region(HOME).expect("home").dynamodb, &strong_table).await;
    let create = strong_create(&server.response_url("c2"), "StrongReplicas", &strong_table, &US, None);
    assert_eq!(invoke(&deps, create, GENEROUS).await.outcome, Outcome::Success);
    let mut back = update_event(
        &server.response_url("u2"),
        "StrongReplicas",
        &v1_id(&strong_table, "StrongReplicas"),
        (&strong_table, json!(US)),
        (&strong_table, json!(US)),
    );
    back["OldResourceProperties"]["MultiRegionConsistency"] = json!("STRONG");
    assert_eq!(invoke(&deps, back, GENEROUS).await.outcome, Outcome::Failed);
    let reason = the_answer(&server, "u2")["Reason"].as_str().unwrap_or_default().to_owned();
    assert!(
        reason.contains("is a global table with multi-Region strong consistency (replicas in us-east-2, us-west-2)"),
        "{reason}"
    );
    assert!(reason.contains("Set MultiRegionConsistency to STRONG"), "{reason}");
    assert_eq!(described(emulator, &strong_table).await.0.as_deref(), Some("STRONG"), "still MRSC");
}

async fn deps_for(emulator: &Emulator, config: &provisioner::Config, table: &str) -> Arc<provisioner::Deps> {
    deps(config.clone(), role_clients(emulator, config, table, &US).await, Arc::new(CapturedContinuations::default()))
}

#[tokio::test]
async fn dynamodbs_refusal_of_a_table_with_items_is_answered_and_the_record_taken_back() {
    init_logs();
    // Given a table that already holds an item
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Full");
    let deps = deps_for(emulator, &config, &table).await;
    let home = emulator.clients(&US).await;
    let ddb = &home.region(HOME).expect("home").dynamodb;
    create_table(ddb, &table).await;
    ddb.put_item().table_name(&table).item("pk", AttributeValue::S("x".into())).send().await.expect("put");
    let server = ResponseServer::start();

    // When a Create asks for STRONG
    let create = strong_create(&server.response_url("c"), "FullReplicas", &table, &US, None);
    let summary = invoke(&deps, create, GENEROUS).await;

    // Then the answer is FAILED with DynamoDB's reason, and nothing is recorded or created
    assert_eq!(summary.outcome, Outcome::Failed);
    let reason = the_answer(&server, "c")["Reason"].as_str().unwrap_or_default().to_owned();
    assert!(reason.contains("making"), "{reason}");
    assert!(
        reason.contains("multi-Region strong consistency (replicas in us-east-2, us-west-2) was refused"),
        "{reason}"
    );
    assert!(reason.contains("ValidationException") && reason.contains("not empty"), "{reason}");
    assert!(record_tags(emulator, &table).await.is_empty(), "the record of the refused set is taken back");
    assert_eq!(described(emulator, &table).await, (None, BTreeMap::new(), BTreeMap::new()));

    // And the rollback Delete succeeds touching nothing
    let delete =
        delete_event(&server.response_url("d"), "FullReplicas", &v1_id(&table, "FullReplicas"), &table, json!(US));
    assert_eq!(invoke(&deps, delete, GENEROUS).await.outcome, Outcome::Success);
    assert!(the_answer(&server, "d")["Reason"].as_str().is_some_and(|r| r.contains("nothing to remove")));
}

#[tokio::test]
async fn an_update_that_changes_an_mrsc_set_is_refused_and_the_set_stays() {
    init_logs();
    // Given an MRSC set of three replicas made by the provisioner
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Change");
    let deps = deps_for(emulator, &config, &table).await;
    create_table(&emulator.clients(&US).await.region(HOME).expect("home").dynamodb, &table).await;
    let server = ResponseServer::start();
    let create = strong_create(&server.response_url("c"), "ChangeReplicas", &table, &US, None);
    assert_eq!(invoke(&deps, create, GENEROUS).await.outcome, Outcome::Success);

    // When an Update turns us-east-2 into a witness
    let id = v1_id(&table, "ChangeReplicas");
    let mut update = update_event(
        &server.response_url("u"),
        "ChangeReplicas",
        &id,
        (&table, json!(["us-east-1", "us-west-2"])),
        (&table, json!(US)),
    );
    update["ResourceProperties"]["MultiRegionConsistency"] = json!("STRONG");
    update["ResourceProperties"]["WitnessRegion"] = json!("us-east-2");
    update["OldResourceProperties"]["MultiRegionConsistency"] = json!("STRONG");
    let summary = invoke(&deps, update, GENEROUS).await;

    // Then it is FAILED saying the set cannot change and what to do, and the set is as it was
    assert_eq!(summary.outcome, Outcome::Failed, "{summary:?}");
    let answer = the_answer(&server, "u");
    assert_eq!(answer["PhysicalResourceId"], id.as_str());
    let reason = answer["Reason"].as_str().unwrap_or_default();
    assert!(reason.contains("is an MRSC global table with replicas in us-east-2, us-west-2"), "{reason}");
    assert!(reason.contains("an MRSC set cannot change after it is created"), "{reason}");
    assert!(reason.contains("delete this resource"), "{reason}");
    assert_eq!(
        described(emulator, &table).await,
        (Some("STRONG".to_owned()), statuses(&[("us-east-2", "ACTIVE"), ("us-west-2", "ACTIVE")]), BTreeMap::new())
    );
}

#[tokio::test]
async fn an_mrsc_set_the_resource_did_not_make_is_adopted_and_never_dissolved_by_it() {
    init_logs();
    // Given an MRSC set (two replicas and a witness) made outside the stack
    let lease = Emulator::lease();
    let emulator = &*lease;
    let config = test_config();
    let table = unique_name("Adopt");
    let deps = deps_for(emulator, &config, &table).await;
    let admin = emulator.clients(&US).await;
    let ddb = &admin.region(HOME).expect("home").dynamodb;
    create_table(ddb, &table).await;
    ddb.update_table()
        .table_name(&table)
        .replica_updates(
            aws_sdk_dynamodb::types::ReplicationGroupUpdate::builder()
                .create(
                    aws_sdk_dynamodb::types::CreateReplicationGroupMemberAction::builder()
                        .region_name("us-west-2")
                        .build()
                        .expect("create"),
                )
                .build(),
        )
        .multi_region_consistency(aws_sdk_dynamodb::types::MultiRegionConsistency::Strong)
        .global_table_witness_updates(
            aws_sdk_dynamodb::types::GlobalTableWitnessGroupUpdate::builder()
                .create(
                    aws_sdk_dynamodb::types::CreateGlobalTableWitnessGroupMemberAction::builder()
                        .region_name("us-east-2")
                        .build()
                        .expect("witness"),
                )
                .build(),
        )
        .send()
        .await
        .expect("MRSC set");
    let server = ResponseServer::start();

    // When a Create names exactly that set, and the resource is deleted afterwards
    let create = strong_create(
        &server.response_url("c"),
        "AdoptReplicas",
        &table,
        &["us-east-1", "us-west-2"],
        Some("us-east-2"),
    );
    assert_eq!(invoke(&deps, create, GENEROUS).await.outcome, Outcome::Success);
    assert!(record_tags(emulator, &table).await.is_empty(), "nothing recorded: it added nothing");
    let id = v1_id(&table, "AdoptReplicas");
    let delete =
        delete_event(&server.response_url("d"), "AdoptReplicas", &id, &table, json!(["us-east-1", "us-west-2"]));
    assert_eq!(invoke(&deps, delete, GENEROUS).await.outcome, Outcome::Success);

    // Then the set it did not make is still whole
    assert!(the_answer(&server, "d")["Reason"].as_str().is_some_and(|r| r.contains("nothing to remove")));
    assert_eq!(
        described(emulator, &table).await,
        (Some("STRONG".to_owned()), statuses(&[("us-west-2", "ACTIVE")]), statuses(&[("us-east-2", "ACTIVE")]))
    );
}

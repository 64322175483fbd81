//! Fault injection seen through the real SDK and shared's error type: a Region's APIs down
//! (retryable ServiceUnavailable) while the others work, a throttling burst the SDK rides out,
//! and added latency.

use multisite_tests::{Emulator, EmulatorPool};
use shared::{AwsErrorKind, AwsResultExt, Error};
use std::time::{Duration, Instant};

#[tokio::test]
async fn with_us_east_1_down_its_calls_fail_retryably_while_eu_west_1_works() {
    let emulator = Emulator::lease();
    let clients = emulator.clients(&["us-east-1", "eu-west-1"]).await;
    let use1 = &clients.region("us-east-1").expect("region").dynamodb;
    let euw1 = &clients.region("eu-west-1").expect("region").dynamodb;

    emulator.set_outage("us-east-1", true);
    let down = use1.list_tables().send().await.aws_context("ListTables", "us-east-1");
    let err = down.expect_err("us-east-1 is down");
    assert!(
        matches!(&err, Error::Aws { kind: AwsErrorKind::Unavailable, region, .. } if region == "us-east-1"),
        "{err:?}"
    );
    assert!(err.is_retryable(), "an outage is worth retrying later");
    assert_eq!(err.error_type(), "ServiceUnavailable");
    euw1.list_tables().send().await.expect("eu-west-1 still serves");
    let rds_down = clients.region("us-east-1").expect("region").rds.describe_global_clusters().send().await;
    assert!(rds_down.is_err(), "every service of the Region is down, not just DynamoDB");

    emulator.set_outage("us-east-1", false);
    use1.list_tables().send().await.expect("us-east-1 is back");
    let log = emulator.requests();
    assert!(log.iter().any(|r| r.region == "us-east-1" && r.status == 503), "the outage is in the request log");
}

#[tokio::test]
async fn a_throttling_burst_is_retried_by_the_sdk_and_converges() {
    let emulator = Emulator::lease();
    let clients = emulator.clients(&["eu-west-1"]).await;
    let ddb = &clients.region("eu-west-1").expect("region").dynamodb;

    emulator.throttle("eu-west-1", 2, Some("dynamodb"), None);
    ddb.list_tables().send().await.expect("two throttles then success within 3 attempts");
    let attempts: Vec<u16> =
        emulator.requests().iter().filter(|r| r.operation == "ListTables").map(|r| r.status).collect();
    assert_eq!(attempts, [400, 400, 200]);

    emulator.throttle("eu-west-1", 5, Some("dynamodb"), None);
    let err = ddb.list_tables().send().await.aws_context("ListTables", "eu-west-1").expect_err("still throttled");
    assert_eq!(err.error_type(), "Throttled");
}

#[tokio::test]
async fn injected_latency_slows_only_its_region() {
    let emulator = Emulator::lease();
    let clients = emulator.clients(&["us-east-1", "ap-southeast-1"]).await;
    let slow = &clients.region("ap-southeast-1").expect("region").dynamodb;
    let fast = &clients.region("us-east-1").expect("region").dynamodb;
    fast.list_tables().send().await.expect("warm up");
    slow.list_tables().send().await.expect("warm up");

    // A whole second: far above a loaded machine's noise, so both assertions stay meaningful.
    emulator.set_latency("ap-southeast-1", 1000);
    let started = Instant::now();
    slow.list_tables().send().await.expect("slow call");
    assert!(started.elapsed() >= Duration::from_millis(1000), "latency applied: {:?}", started.elapsed());
    let started = Instant::now();
    fast.list_tables().send().await.expect("fast call");
    assert!(started.elapsed() < Duration::from_millis(1000), "other Regions unaffected: {:?}", started.elapsed());
}

/// The lease pool every emulator test relies on: a process given back is reused, and the next
/// test gets it clean, whatever the last one changed (resources, faults, timings, request log).
#[tokio::test]
async fn a_leased_emulator_is_reused_and_reset_to_a_clean_world() {
    static POOL: EmulatorPool = EmulatorPool::new();
    let first = POOL.lease();
    let url = first.url().to_owned();
    let clients = first.clients(&["eu-west-1"]).await;
    let ddb = &clients.region("eu-west-1").expect("region").dynamodb;
    multisite_tests::fixtures::create_table(ddb, "left-behind").await;
    first.set_outage("us-east-1", true);
    first.set_latency("eu-west-1", 300);
    first.set_replication_delay(5_000);
    first.throttle("eu-west-1", 100, None, None);
    let second = POOL.lease();
    assert_ne!(second.url(), url, "a lent process is never lent twice");
    assert_eq!(POOL.started(), 2);
    // A process nobody has used yet: what a clean world's settings look like.
    let pristine = settings(&second);
    drop(second);
    drop(first);
    assert_eq!(POOL.idle(), 2);

    // The last one given back is lent next: the one the first lease changed.
    let again = POOL.lease();
    assert_eq!(again.url(), url, "an idle process is reused");
    assert_eq!(POOL.started(), 2, "no process started for it");
    assert!(again.requests().is_empty(), "the request log starts empty");
    assert_eq!(settings(&again), pristine, "every setting is back to its start-up value");
    let clients = again.clients(&["us-east-1", "eu-west-1"]).await;
    let started = Instant::now();
    let tables = clients.region("eu-west-1").expect("region").dynamodb.list_tables().send().await;
    let tables = tables.expect("not throttled any more").table_names.unwrap_or_default();
    assert!(started.elapsed() < Duration::from_millis(300), "no latency left: {:?}", started.elapsed());
    assert!(tables.is_empty(), "no resource left behind: {tables:?}");
    clients.region("us-east-1").expect("region").dynamodb.list_tables().send().await.expect("no outage left");
}

/// The emulator's state dump without the request log's size (which counts the dump's own call).
fn settings(emulator: &Emulator) -> serde_json::Value {
    let mut state = emulator.state();
    state.as_object_mut().expect("state is an object").remove("request_log_size");
    state
}

//! Fault injection seen through the real SDK and shared's error type: a Region's APIs down
//! (retryable ServiceUnavailable) while the others work, a throttling burst the SDK rides out,
//! and added latency.

use multisite_tests::Emulator;
use shared::{AwsErrorKind, AwsResultExt, Error};
use std::time::{Duration, Instant};

#[tokio::test]
async fn with_us_east_1_down_its_calls_fail_retryably_while_eu_west_1_works() {
    let emulator = Emulator::start();
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
    let emulator = Emulator::start();
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
    let emulator = Emulator::start();
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

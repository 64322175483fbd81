//! DynamoDB Global Tables in the emulator, through the real Rust SDK over HTTP: replicas are
//! created per ReplicaUpdates, items replicate after the configured lag (and not before), and
//! conflicting writes resolve last-writer-wins.

use multisite_tests::Emulator;
use multisite_tests::fixtures::{
    create_global_table, create_table, eventually, get_value, put_value, replica_statuses, request_replica,
    unique_name, wait_replicas_active,
};
use std::time::{Duration, Instant};

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

#[tokio::test]
async fn a_table_in_us_east_1_gets_replicas_in_eu_west_1_and_ap_southeast_1() {
    let lease = Emulator::lease();
    let emulator = &*lease;
    let clients = emulator.clients(&REGIONS).await;
    let table = unique_name("Sessions");
    let home = &clients.region("us-east-1").expect("region").dynamodb;

    create_table(home, &table).await;
    request_replica(home, &table, "eu-west-1").await;
    assert_eq!(
        replica_statuses(home, &table).await.get("eu-west-1").map(String::as_str),
        Some("CREATING"),
        "a new replica starts CREATING"
    );
    wait_replicas_active(home, &table, &["eu-west-1"]).await;
    request_replica(home, &table, "ap-southeast-1").await;
    wait_replicas_active(home, &table, &["eu-west-1", "ap-southeast-1"]).await;

    for region in REGIONS {
        let ddb = &clients.region(region).expect("region").dynamodb;
        let described = ddb.describe_table().table_name(&table).send().await.expect("replica table exists").table;
        let described = described.expect("table description");
        assert_eq!(described.global_table_version.as_deref(), Some("2019.11.21"), "{region}");
        let key: Vec<_> = described.key_schema().iter().map(|k| k.attribute_name.as_str()).collect();
        assert_eq!(key, ["pk"], "{region}: the replica has the same key schema");
        let statuses = replica_statuses(ddb, &table).await;
        for other in REGIONS.iter().filter(|r| **r != region) {
            assert_eq!(statuses.get(*other).map(String::as_str), Some("ACTIVE"), "{region} sees replica {other}");
        }
    }
}

#[tokio::test]
async fn an_item_is_read_in_every_other_region_after_the_lag_and_not_before() {
    let emulator = Emulator::lease();
    let clients = emulator.clients(&REGIONS).await;
    let table = unique_name("Lag");
    create_global_table(&clients, &table, "us-east-1", &["eu-west-1", "ap-southeast-1"]).await;
    // Generous lag so the early reads land inside it even on a loaded 2-core machine.
    let lag = Duration::from_millis(2000);
    emulator.set_replication_delay(lag.as_millis() as u64);
    for region in ["eu-west-1", "ap-southeast-1"] {
        // Warm the clients (connections, credentials) so the timed reads below are just reads.
        let ddb = &clients.region(region).expect("region").dynamodb;
        assert_eq!(get_value(ddb, &table, "user-1").await, None, "{region}: nothing before the write");
    }

    let written = Instant::now();
    put_value(&clients.region("us-east-1").expect("region").dynamodb, &table, "user-1", "v1").await;
    for region in ["eu-west-1", "ap-southeast-1"] {
        let ddb = &clients.region(region).expect("region").dynamodb;
        let early = get_value(ddb, &table, "user-1").await;
        assert!(written.elapsed() < lag, "the early read must happen inside the lag window (machine too slow)");
        assert_eq!(early, None, "{region}: the write is not visible before the replication lag");
    }
    for region in ["eu-west-1", "ap-southeast-1"] {
        let ddb = &clients.region(region).expect("region").dynamodb;
        let seen =
            eventually(Duration::from_secs(5), Duration::from_millis(20), || get_value(ddb, &table, "user-1")).await;
        assert_eq!(seen.as_deref(), Some("v1"), "{region}: the write arrives");
        assert!(written.elapsed() >= lag, "{region}: arrived after {:?}, before the {lag:?} lag", written.elapsed());
    }
}

#[tokio::test]
async fn conflicting_writes_converge_on_the_last_writer_in_every_region() {
    let emulator = Emulator::lease();
    let clients = emulator.clients(&REGIONS).await;
    let table = unique_name("Conflict");
    create_global_table(&clients, &table, "us-east-1", &["eu-west-1", "ap-southeast-1"]).await;
    emulator.set_replication_delay(400);

    // Both writes happen inside each other's replication window: a real conflict.
    put_value(&clients.region("eu-west-1").expect("region").dynamodb, &table, "cart-7", "from-europe").await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    put_value(&clients.region("ap-southeast-1").expect("region").dynamodb, &table, "cart-7", "from-asia").await;

    for region in REGIONS {
        let ddb = &clients.region(region).expect("region").dynamodb;
        let converged = eventually(Duration::from_secs(5), Duration::from_millis(25), || async {
            (get_value(ddb, &table, "cart-7").await.as_deref() == Some("from-asia")).then_some(())
        })
        .await;
        assert!(converged.is_some(), "{region} did not converge on the last writer");
    }
    // And it stays converged: the older replicated write never overwrites the newer one.
    tokio::time::sleep(Duration::from_millis(600)).await;
    for region in REGIONS {
        let ddb = &clients.region(region).expect("region").dynamodb;
        assert_eq!(get_value(ddb, &table, "cart-7").await.as_deref(), Some("from-asia"), "{region}");
    }
}

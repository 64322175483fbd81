//! Building blocks tests use to set up a multi-Region world in the emulator with the real SDK
//! (those that create resources are `crate::deployment`'s, a failure a panic here).

use crate::deployment;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_rds::types::GlobalCluster;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A name no other test of any process uses (tests sharing one emulator rely on it).
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}-{}-{}-{nanos}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Polls `check` every `every` until it yields `Some` or `timeout` passes.
pub async fn eventually<T, F, Fut>(timeout: Duration, every: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(every).await;
    }
}

/// Creates an on-demand table keyed by the string attribute `pk` and waits until it is ACTIVE.
pub async fn create_table(ddb: &aws_sdk_dynamodb::Client, name: &str) {
    deployment::new_table(ddb, name, &["pk"]).await.unwrap_or_else(|e| panic!("{e}"));
}

/// Asks for one replica of `table` in `region` (one replica change per UpdateTable, as AWS allows).
pub async fn request_replica(ddb: &aws_sdk_dynamodb::Client, table: &str, region: &str) {
    deployment::add_replica(ddb, table, region).await.unwrap_or_else(|e| panic!("{e}"));
}

/// Replica Region -> ReplicaStatus as DescribeTable reports them.
pub async fn replica_statuses(ddb: &aws_sdk_dynamodb::Client, table: &str) -> HashMap<String, String> {
    let described = ddb.describe_table().table_name(table).send().await.expect("describe table");
    described
        .table
        .and_then(|t| t.replicas)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| Some((r.region_name?, r.replica_status?.as_str().to_owned())))
        .collect()
}

/// Waits until every Region in `regions` is an ACTIVE replica of `table`.
pub async fn wait_replicas_active(ddb: &aws_sdk_dynamodb::Client, table: &str, regions: &[&str]) {
    deployment::replicas_active(ddb, table, regions).await.unwrap_or_else(|e| panic!("{e}"));
}

/// Creates `table` in `home` and adds a replica in each of `others`, one at a time, waiting for
/// each to become ACTIVE as DynamoDB requires between replica changes.
pub async fn create_global_table(clients: &shared::RegionalClients, table: &str, home: &str, others: &[&str]) {
    let ddb = &clients.region(home).expect("home region").dynamodb;
    create_table(ddb, table).await;
    for region in others {
        request_replica(ddb, table, region).await;
        wait_replicas_active(ddb, table, &[region]).await;
    }
}

/// Puts `{pk, value}` into `table`.
pub async fn put_value(ddb: &aws_sdk_dynamodb::Client, table: &str, pk: &str, value: &str) {
    ddb.put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(pk.to_owned()))
        .item("value", AttributeValue::S(value.to_owned()))
        .send()
        .await
        .unwrap_or_else(|e| panic!("put {pk}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)));
}

/// The `value` attribute of item `pk` (strongly consistent read), if the item exists.
pub async fn get_value(ddb: &aws_sdk_dynamodb::Client, table: &str, pk: &str) -> Option<String> {
    let out = ddb
        .get_item()
        .table_name(table)
        .key("pk", AttributeValue::S(pk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get {pk}: {}", aws_sdk_dynamodb::error::DisplayErrorContext(&e)));
    out.item?.get("value")?.as_s().ok().cloned()
}

/// Creates an Aurora global cluster with one member cluster per `(region, cluster_id)`; the
/// first member is the writer. Returns the member ARNs in the same order.
pub async fn create_aurora_global(
    clients: &shared::RegionalClients,
    global_id: &str,
    members: &[(&str, &str)],
) -> Vec<String> {
    deployment::new_aurora_global(clients, global_id, members).await.unwrap_or_else(|e| panic!("{e}"))
}

/// The global cluster as DescribeGlobalClusters (filtered by identifier) reports it.
pub async fn describe_global(rds: &aws_sdk_rds::Client, global_id: &str) -> GlobalCluster {
    rds.describe_global_clusters()
        .global_cluster_identifier(global_id)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe global cluster: {}", aws_sdk_rds::error::DisplayErrorContext(&e)))
        .global_clusters
        .unwrap_or_default()
        .into_iter()
        .next()
        .expect("the global cluster")
}

/// ARN of the writer member of the global cluster.
pub fn writer_arn(cluster: &GlobalCluster) -> Option<String> {
    cluster.global_cluster_members().iter().find(|m| m.is_writer() == Some(true)).and_then(|m| m.db_cluster_arn.clone())
}

/// An Auto Scaling group `web-<region>` with its launch configuration `lc-web-<region>` (the
/// emulator starts instances for it).
pub async fn create_group(
    autoscaling: &aws_sdk_autoscaling::Client,
    region: &str,
    sizes: shared::capacity::GroupSizes,
) {
    deployment::new_group(autoscaling, region, sizes).await.unwrap_or_else(|e| panic!("{e}"));
}

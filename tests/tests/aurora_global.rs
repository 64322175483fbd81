//! Aurora Global Database in the emulator through the real SDK: the writer moves on an unplanned
//! failover and on a planned switchover, and bad requests get AWS's errors.

use aws_sdk_rds::error::ProvideErrorMetadata;
use multisite_tests::Emulator;
use multisite_tests::fixtures::{create_aurora_global, describe_global, eventually, unique_name, writer_arn};
use std::time::Duration;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

async fn wait_for_writer(rds: &aws_sdk_rds::Client, global_id: &str, arn: &str) {
    let moved = eventually(Duration::from_secs(10), Duration::from_millis(50), || async {
        let cluster = describe_global(rds, global_id).await;
        (writer_arn(&cluster).as_deref() == Some(arn) && cluster.failover_state.is_none()).then_some(())
    })
    .await;
    assert!(moved.is_some(), "writer never moved to {arn}: {:?}", describe_global(rds, global_id).await);
}

#[tokio::test]
async fn the_writer_moves_on_failover_and_on_switchover() {
    let lease = Emulator::lease();
    let emulator = &*lease;
    let clients = emulator.clients(&REGIONS).await;
    let global_id = unique_name("orders");
    let members: Vec<(&str, String)> = REGIONS.iter().map(|r| (*r, format!("{global_id}-{r}"))).collect();
    let member_refs: Vec<(&str, &str)> = members.iter().map(|(r, id)| (*r, id.as_str())).collect();
    let arns = create_aurora_global(&clients, &global_id, &member_refs).await;
    let eu_rds = &clients.region("eu-west-1").expect("region").rds;
    assert_eq!(writer_arn(&describe_global(eu_rds, &global_id).await).as_deref(), Some(arns[0].as_str()));

    // Unplanned: called in the target Region, as failover does when us-east-1 is down.
    let answer = eu_rds
        .failover_global_cluster()
        .global_cluster_identifier(&global_id)
        .target_db_cluster_identifier(&arns[1])
        .allow_data_loss(true)
        .send()
        .await
        .expect("failover accepted");
    let state = answer.global_cluster.and_then(|g| g.failover_state).expect("failover in progress is reported");
    assert_eq!(state.to_db_cluster_arn.as_deref(), Some(arns[1].as_str()));
    assert_eq!(state.is_data_loss_allowed, Some(true));
    wait_for_writer(eu_rds, &global_id, &arns[1]).await;

    // Planned: switchover back to a third member.
    let ap_rds = &clients.region("ap-southeast-1").expect("region").rds;
    ap_rds
        .switchover_global_cluster()
        .global_cluster_identifier(&global_id)
        .target_db_cluster_identifier(&arns[2])
        .send()
        .await
        .expect("switchover accepted");
    wait_for_writer(ap_rds, &global_id, &arns[2]).await;
    let cluster = describe_global(ap_rds, &global_id).await;
    let writers = cluster.global_cluster_members().iter().filter(|m| m.is_writer() == Some(true)).count();
    assert_eq!(writers, 1, "exactly one writer after the moves");
}

#[tokio::test]
async fn bad_failover_requests_get_aws_errors() {
    let lease = Emulator::lease();
    let emulator = &*lease;
    let clients = emulator.clients(&REGIONS).await;
    let global_id = unique_name("billing");
    let member = format!("{global_id}-use1");
    create_aurora_global(&clients, &global_id, &[("us-east-1", member.as_str())]).await;
    let rds = &clients.region("eu-west-1").expect("region").rds;

    let unknown_global = rds
        .failover_global_cluster()
        .global_cluster_identifier("no-such-global")
        .target_db_cluster_identifier("arn:aws:rds:eu-west-1:123456789012:cluster:whatever")
        .allow_data_loss(true)
        .send()
        .await
        .expect_err("unknown global cluster");
    assert_eq!(unknown_global.code(), Some("GlobalClusterNotFoundFault"));

    let not_a_cluster = rds
        .failover_global_cluster()
        .global_cluster_identifier(&global_id)
        .target_db_cluster_identifier("arn:aws:rds:eu-west-1:123456789012:cluster:does-not-exist")
        .allow_data_loss(true)
        .send()
        .await
        .expect_err("target is not a cluster");
    assert_eq!(not_a_cluster.code(), Some("DBClusterNotFoundFault"));

    let unknown_filter = rds
        .describe_global_clusters()
        .global_cluster_identifier("no-such-global")
        .send()
        .await
        .expect_err("the identifier filter is honoured");
    assert_eq!(unknown_filter.code(), Some("GlobalClusterNotFoundFault"));
}

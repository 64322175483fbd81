//! The one deployment builder (`multisite_tests::deployment`), checked against the emulator it
//! builds in: what the topology names exists and is in the state the functions expect, and a step
//! that fails ends the build with an error naming it.

use multisite_tests::deployment::{
    DataTable, Deployment, GLOBAL_CLUSTER, LEDGER_TABLE, RECORD_NAME, alarm_name, aurora_member, group_name,
};
use multisite_tests::fixtures::{describe_global, replica_statuses, writer_arn};
use multisite_tests::{ControlPlaneFailure, Emulator};
use shared::capacity::GroupSizes;
use std::collections::BTreeMap;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

#[tokio::test]
async fn everything_the_topology_names_is_built_and_in_the_state_the_functions_expect() {
    let emulator = Emulator::lease();
    emulator.set_timing(100, 100, 200);
    let deployment = Deployment::spec(&REGIONS)
        .with_arbiter("ap-southeast-1")
        .with_dns()
        .with_aurora()
        .with_groups(GroupSizes::new(1, 2, 4))
        .with_data_table(DataTable::named("Orders").unreplicated())
        .with_ledger_replicas()
        .build(&emulator)
        .await
        .expect("the build");
    let topology = &deployment.topology;
    assert_eq!(topology.regions().collect::<Vec<_>>(), REGIONS);
    assert_eq!(topology.arbiter_region(), "ap-southeast-1");
    assert_eq!(deployment.home, "eu-west-1", "the second Region unless set");
    let admin = &deployment.clients;

    // Route 53: a health check per Region guards its latency record, whose value names it.
    let route53 = &admin.region("eu-west-1").expect("region").route53;
    let zone = deployment.hosted_zone_id.as_deref().expect("a hosted zone");
    let records = route53.list_resource_record_sets().hosted_zone_id(zone).send().await.expect("records");
    let latency: BTreeMap<String, (String, String)> = records
        .resource_record_sets()
        .iter()
        .filter(|r| r.name() == format!("{RECORD_NAME}."))
        .filter_map(|r| {
            let region = r.set_identifier()?.to_owned();
            let value = r.resource_records().first()?.value().to_owned();
            Some((region, (value, r.health_check_id()?.to_owned())))
        })
        .collect();
    assert_eq!(latency.len(), REGIONS.len(), "{latency:?}");
    for region in REGIONS {
        let (value, check) = &latency[region];
        assert_eq!(deployment.record_values[value], region);
        assert_eq!(check, &topology.cell(region).expect("cell").health_check_id);
        assert_eq!(check, &deployment.health_checks[region], "health-check routing: the endpoint check");
        route53.get_health_check().health_check_id(check).send().await.expect("the health check exists");
    }

    // CloudWatch: each Region's alarm in its watcher (the next cell), OK, as the topology says.
    for (i, region) in REGIONS.iter().enumerate() {
        let watcher = REGIONS[(i + 1) % REGIONS.len()];
        let cell = topology.cell(region).expect("cell");
        assert_eq!(cell.alarms.len(), 1);
        assert_eq!(
            (cell.alarms[0].name.as_str(), cell.alarms[0].region.as_deref()),
            (alarm_name(region).as_str(), Some(watcher))
        );
        assert_eq!(deployment.alarm_regions[&alarm_name(region)], watcher);
        let cloudwatch = &admin.region(watcher).expect("watcher").cloudwatch;
        let alarms = cloudwatch.describe_alarms().alarm_names(alarm_name(region)).send().await.expect("alarms");
        let state = alarms.metric_alarms().first().and_then(|a| a.state_value()).map(|s| s.as_str().to_owned());
        assert_eq!(state.as_deref(), Some("OK"), "{region}'s alarm in {watcher}");
    }

    // Aurora: the writer in the first Region, a member per Region named in its cell.
    let global = describe_global(&admin.region("us-east-1").expect("region").rds, GLOBAL_CLUSTER).await;
    assert_eq!(global.global_cluster_members().len(), REGIONS.len());
    let first_arn = topology.cell("us-east-1").and_then(|c| c.aurora_cluster_arn.clone());
    assert_eq!(writer_arn(&global), first_arn);
    assert!(first_arn.unwrap_or_default().ends_with(&aurora_member("us-east-1")));

    // Auto Scaling: the sizes asked for, in every Region.
    for region in REGIONS {
        let autoscaling = &admin.region(region).expect("region").autoscaling;
        let group = shared::aws::describe_group(autoscaling, region, &group_name(region)).await.expect("group");
        assert_eq!(group.sizes, GroupSizes::new(1, 2, 4), "{region}");
    }

    // DynamoDB: the unreplicated data table in the first Region only; the ledger in the arbiter
    // with a replica in every other Region.
    let first = &admin.region("us-east-1").expect("region").dynamodb;
    assert!(replica_statuses(first, "Orders").await.is_empty(), "no replica: the provisioner's work");
    let absent = admin.region("eu-west-1").expect("region").dynamodb.describe_table().table_name("Orders").send().await;
    assert!(absent.is_err(), "the data table exists in the first Region only");
    let arbiter = &admin.region("ap-southeast-1").expect("region").dynamodb;
    let ledger = replica_statuses(arbiter, LEDGER_TABLE).await;
    assert_eq!(ledger.get("us-east-1").map(String::as_str), Some("ACTIVE"), "{ledger:?}");
    assert_eq!(ledger.get("eu-west-1").map(String::as_str), Some("ACTIVE"), "{ledger:?}");
    assert_eq!(deployment.ledger().fleet_status().await.expect("the arbiter's ledger").1, 0, "no fleet record yet");

    // The template can deploy it: one parameter set, the data table managed by the first stack.
    let parameters = deployment.template_parameters().expect("parameters");
    assert_eq!(parameters["DataTableHomeRegion"], "us-east-1");
}

#[tokio::test]
async fn a_failed_step_ends_the_build_with_an_error_that_names_it() {
    let emulator = Emulator::lease();
    emulator.set_control_plane_down("route53", true, ControlPlaneFailure::Unavailable);
    let error = match Deployment::spec(&REGIONS[..2]).build(&emulator).await {
        Ok(_) => panic!("Route 53's control plane is down: the health checks cannot be created"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("CreateHealthCheck for us-east-1"), "{error}");
    assert!(error.contains("ServiceUnavailable") || error.contains("Service unavailable"), "{error}");
    emulator.set_control_plane_down("route53", false, ControlPlaneFailure::Unavailable);

    // A Region whose APIs are down stops the build at the first call into it.
    emulator.set_outage("ap-southeast-1", true);
    let error = match Deployment::spec(&REGIONS).with_groups(GroupSizes::new(1, 1, 1)).build(&emulator).await {
        Ok(_) => panic!("ap-southeast-1 is down"),
        Err(error) => error.to_string(),
    };
    assert!(error.contains("CreateLaunchConfiguration in ap-southeast-1"), "{error}");
}

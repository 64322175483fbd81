//! The drill as an end-to-end test (CI runs it with `cargo test --workspace`): the full default
//! drill against a fresh emulator, through the same library the `drill` binary runs, with the JSON
//! report checked: every check PASSED and the figures are sane; and `--scenario simultaneous`
//! (two Regions alarm at once, at most one may be evacuated).

#![recursion_limit = "512"]

use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_drill_passes_every_check_with_sane_figures() {
    // Given the default drill (3 Regions, us-east-1 fails, unplanned), with the JSON report.
    let options = drill::parse(["--json"]).expect("options");
    let started = Instant::now();

    // When it runs against a fresh emulator.
    let report = Box::pin(drill::run(&options, Box::new(std::io::stderr()))).await.expect("the drill ran");
    let elapsed = started.elapsed();
    let json = serde_json::to_value(&report).expect("report serializes");
    eprintln!("{}", report.render_summary());

    // Then every check passed.
    let checks = json["checks"].as_array().expect("checks");
    assert!(checks.len() >= 12, "{checks:?}");
    let failed: Vec<_> = checks.iter().filter(|c| c["passed"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    assert_eq!(json["passed"], true);

    // And the figures are sane.
    let f = &json["figures"];
    for key in ["detection_to_routing_ms", "writer_move_ms", "scale_up_ms", "failback_ms"] {
        let ms = f[key].as_u64().unwrap_or_else(|| panic!("{key} measured: {f}"));
        assert!(ms < 15_000, "{key} = {ms} ms");
    }
    let aurora = f["writer_move_ms"].as_u64().unwrap_or(0);
    assert!(aurora >= 400, "the emulator's failover takes 500 ms; measured {aurora} ms");
    let lag = &f["replication_lag"];
    let max = lag["max_ms"].as_u64().expect("lag measured");
    assert!((90..2_000).contains(&max), "replication delay is 100 ms; max lag {max}");
    let writes = &f["writes"];
    for region in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
        let n = writes["acknowledged"][region].as_u64().unwrap_or(0);
        assert!(n >= 5, "{region}: {n} acknowledged writes");
    }
    let lost = writes["lost"].as_u64().expect("lost counted");
    let before = writes["acknowledged_by_failed_region_before_outage"].as_u64().expect("acked before");
    assert!(lost < before, "{lost} of {before} lost");
    if lost > 0 {
        let oldest = writes["oldest_lost_before_outage_ms"].as_u64().expect("window");
        assert!(oldest <= 2_000, "lost writes within the RPO budget: {oldest} ms");
        assert_eq!(writes["recovered_after_failback"].as_u64(), Some(lost), "held writes replicate after recovery");
    }
    assert_eq!(writes["survivor_writes_missing"], 0);
    // The traffic split: North America moves to a survivor during the outage and comes back.
    let split = json["traffic_split"].as_array().expect("split");
    let na = split.iter().find(|a| a["area"] == "North America").expect("North America");
    assert_eq!(
        (na["before"].as_str(), na["during"].as_str(), na["after"].as_str()),
        (Some("us-east-1"), Some("eu-west-1"), Some("us-east-1"))
    );
    assert!(json["timeline"].as_array().is_some_and(|t| t.len() > 15));
    assert!(elapsed < Duration::from_secs(120), "the drill took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_alarms_evacuate_exactly_one_region() {
    // Given the simultaneous scenario (3 Regions, min_healthy_regions 2: us-east-1 and eu-west-1
    // alarm at the same moment, their actors in eu-west-1 and ap-southeast-1).
    let options = drill::parse(["--scenario", "simultaneous", "--json"]).expect("options");
    let started = Instant::now();

    // When it runs against a fresh emulator.
    let report = Box::pin(drill::run(&options, Box::new(std::io::stderr()))).await.expect("the drill ran");
    let json = serde_json::to_value(&report).expect("report serializes");
    eprintln!("{}", report.render_summary());

    // Then every check passed, the scenario's among them.
    let checks = json["checks"].as_array().expect("checks");
    let failed: Vec<_> = checks.iter().filter(|c| c["passed"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    assert_eq!(json["passed"], true);
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    for expected in [
        "simultaneous: exactly one Region evacuated, the other's evacuation Refused",
        "simultaneous: the Aurora writer moved at most once, never into an evacuated Region",
        "simultaneous: the ledger (arbiter fleet record) equals the world",
        "handlers ran as their template.yaml roles, no call denied",
    ] {
        assert!(names.contains(&expected), "missing check `{expected}` in {names:?}");
    }
    let one = checks.iter().find(|c| c["name"].as_str().is_some_and(|n| n.contains("exactly one"))).expect("check");
    let detail = one["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("Refused") && detail.contains("Reconciled"), "{detail}");
    assert!(started.elapsed() < Duration::from_secs(120), "the scenario took {:?}", started.elapsed());
}

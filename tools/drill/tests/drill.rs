//! The drill as an end-to-end test (CI runs it with `cargo test --workspace`): the full default
//! drill against a fresh emulator, through the same library the `drill` binary runs, with the JSON
//! report checked: every check PASSED and the figures are sane, RTO and RPO measured, the JSON
//! exactly what docs/drill-json.md lists, and the `--html` page self-contained with its charts
//! and markers; and `--scenario simultaneous` (two Regions alarm at once, at most one may be
//! evacuated).

#![recursion_limit = "512"]

mod support;

use std::time::{Duration, Instant};

/// The JSON report `json` matches docs/drill-json.md; with `every_object`, every documented object
/// is in it (a default drill's report holds them all).
fn assert_documented(json: &serde_json::Value, every_object: bool) {
    let problems = support::json_doc_problems(&support::json_doc(), json, every_object);
    assert!(problems.is_empty(), "docs/drill-json.md and the JSON report disagree:\n{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_drill_passes_every_check_with_sane_figures() {
    // Given the default drill (3 Regions, us-east-1 fails, unplanned), with the JSON report and
    // the HTML page.
    let page = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("drill-default-report.html");
    let page_arg = page.to_str().expect("a UTF-8 temp path").to_owned();
    let options = drill::parse(["--json", "--html", page_arg.as_str()]).expect("options");
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

    // RTO and RPO, measured and judged by their objectives, lead the summary.
    let (rto, rpo) = (&json["rto"], &json["rpo"]);
    let rto_ms = rto["measured_ms"].as_u64().unwrap_or_else(|| panic!("RTO measured: {rto}"));
    // The RTO asks for any survivor, detection-to-routing for the nearest: never later (the
    // offsets are whole ms, so 1 ms of rounding).
    let routing = f["detection_to_routing_ms"].as_u64().unwrap_or(0);
    assert!(rto_ms <= routing + 1, "RTO {rto_ms} ms, detection-to-routing {routing} ms");
    assert_eq!((rto["objective_ms"].as_u64(), rto["met"].as_bool()), (Some(300_000), Some(true)), "{rto}");
    let oldest = writes["oldest_lost_before_outage_ms"].as_u64().unwrap_or(0);
    assert_eq!(rpo["measured_ms"].as_u64(), Some(if lost > 0 { oldest } else { 0 }), "{rpo}");
    assert_eq!((rpo["objective_ms"].as_u64(), rpo["met"].as_bool()), (Some(2_000), Some(true)), "{rpo}");
    let summary = report.render_summary();
    let mut lines = summary.lines().filter(|l| !l.trim().is_empty());
    assert!(lines.next().is_some_and(|l| l.starts_with("RTO ") && l.contains("(objective 300 s): met")), "{summary}");
    // Next to it, the worst case the deployment's configuration allows (lag-probe's bound at the
    // baseline: a 60 s x 1 alarm on a 10 s x 1 health check, a 60 s TTL, no evacuation yet).
    assert_eq!(json["rto_bound_seconds"].as_f64(), Some(130.0), "{}", json["rto_bound_terms"]);
    assert!(
        lines.next().is_some_and(|l| l.starts_with("RTO bound 130.0 s for us-east-1 (objective 300 s): within")),
        "{summary}"
    );
    assert!(lines.next().is_some_and(|l| l.starts_with("RPO ") && l.contains("(budget 2000 ms): met")), "{summary}");
    assert_documented(&json, true);

    // The page, written as `--html` does: self-contained, a chart with data per series, each
    // marking the outage, detection, the evacuation's actions and the failback.
    drill::write_html(&report, options.html.as_deref().expect("--html parsed")).expect("page written");
    let html = std::fs::read_to_string(&page).expect("page read");
    let problems = support::html_problems(&html, &["outage", "detection", "action", "failback"]);
    assert!(problems.is_empty(), "{}: {}", page.display(), problems.join("\n"));
    let kinds: Vec<&str> =
        json["markers"].as_array().expect("markers").iter().filter_map(|m| m["kind"].as_str()).collect();
    assert_eq!(kinds.iter().filter(|k| **k == "action").count(), 3, "routing, writer, scale-up: {kinds:?}");
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
    // No Region goes down: the RTO is not measured (not missed), and the page still draws.
    for objective in ["rto", "rpo"] {
        let o = &json[objective];
        assert_eq!((o["measured_ms"].is_null(), o["met"].is_null()), (true, true), "{objective}: {o}");
    }
    assert_documented(&json, false);
    let problems = support::html_problems(&report.render_html(), &["detection", "failback"]);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(started.elapsed() < Duration::from_secs(120), "the scenario took {:?}", started.elapsed());
}

/// `--routing arc --route53-down`: Route 53's control plane fails from just before the outage
/// until after failback, and the whole drill passes with ARC routing controls: traffic leaves and
/// comes back, the writer moves and returns, and no function called Route 53's control plane.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_arc_the_drill_passes_with_route53s_control_plane_down_throughout() {
    let options = drill::parse(["--routing", "arc", "--route53-down", "--json"]).expect("options");

    let report = Box::pin(drill::run(&options, Box::new(std::io::stderr()))).await.expect("the drill ran");
    let json = serde_json::to_value(&report).expect("report serializes");
    eprintln!("{}", report.render_summary());

    let checks = json["checks"].as_array().expect("checks");
    let failed: Vec<_> = checks.iter().filter(|c| c["passed"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    assert_eq!(
        (json["routing_backend"].as_str(), json["route53_control_plane_down"].as_bool()),
        (Some("arc"), Some(true))
    );
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    for expected in [
        "routing during: us-east-1 out of DNS, every area answered by its nearest survivor",
        "failback complete: routing control restored, writer back (switchover), two transitions",
        "Route 53's control plane down from before the outage until after failback: no function's recovery path called it",
    ] {
        assert!(names.contains(&expected), "missing check `{expected}` in {names:?}");
    }
    assert!(json["degradations"].as_array().is_some_and(|d| d.is_empty()), "{}", json["degradations"]);
    assert_eq!(json["rto"]["met"].as_bool(), Some(true), "{}", json["rto"]);
    assert_documented(&json, false);
    for key in ["detection_to_routing_ms", "writer_move_ms", "scale_up_ms", "failback_ms"] {
        assert!(json["figures"][key].as_u64().is_some(), "{key} measured: {}", json["figures"]);
    }
    let na = json["traffic_split"].as_array().and_then(|s| s.iter().find(|a| a["area"] == "North America").cloned());
    let na = na.expect("North America");
    assert_eq!(
        (na["before"].as_str(), na["during"].as_str(), na["after"].as_str()),
        (Some("us-east-1"), Some("eu-west-1"), Some("us-east-1"))
    );
}

/// `--routing health_check --route53-down`: the degradation is reported as it is: failover's only
/// failed step is the Route 53 one (retryable), the failed Region leaves DNS by its endpoint
/// health check, and the scheduled reconcile finishes the forced inversion once Route 53 answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_health_checks_and_route53_down_the_drill_reports_the_degradation() {
    let options = drill::parse(["--routing", "health_check", "--route53-down", "--json"]).expect("options");

    let report = Box::pin(drill::run(&options, Box::new(std::io::stderr()))).await.expect("the drill ran");
    let json = serde_json::to_value(&report).expect("report serializes");
    eprintln!("{}", report.render_summary());

    let checks = json["checks"].as_array().expect("checks");
    let failed: Vec<_> = checks.iter().filter(|c| c["passed"] != true).collect();
    assert!(failed.is_empty(), "failed checks: {failed:#?}");
    let names: Vec<&str> = checks.iter().filter_map(|c| c["name"].as_str()).collect();
    for expected in [
        "both deliveries handled: only the Route 53 step failed (retryable) while its control plane is down; the transition recorded, scaler done",
        "the scheduled reconcile finished the forced inversion once Route 53 answered",
    ] {
        assert!(names.contains(&expected), "missing check `{expected}` in {names:?}");
    }
    assert!(names.iter().any(|n| n.contains("by its failing endpoint health check")), "{names:?}");
    let degradations = json["degradations"].as_array().expect("degradations");
    assert_eq!(degradations.len(), 1, "{degradations:?}");
    assert!(degradations[0].as_str().is_some_and(|d| d.contains("routing was left to its endpoint health check")));
    assert!(json["figures"]["route53_return_to_inversion_ms"].as_u64().is_some(), "{}", json["figures"]);
    assert_documented(&json, false);
}

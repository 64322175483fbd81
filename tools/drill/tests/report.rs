//! The report's promises, without an emulator: the JSON report is exactly what docs/drill-json.md
//! lists (so the doc cannot drift), and the HTML page is self-contained, has one chart with data
//! per series and marks the outage, detection, actions and failback. tests/drill.rs runs the same
//! checks on a real drill's report.

mod support;

use drill::report::MarkerKind;
use serde_json::{Value, json};
use support::{html_problems, json_doc, json_doc_problems, sample_report};

/// What every chart of a default drill's page marks.
pub const MARKED: [&str; 4] = ["outage", "detection", "action", "failback"];

#[test]
fn the_json_report_has_exactly_the_documented_fields() {
    let report = serde_json::to_value(sample_report()).expect("serializes");
    let documented: Vec<String> = support::documented_objects(&json_doc()).into_keys().collect();
    let mut expected = [
        "Report",
        "Objective",
        "Figures",
        "Writes",
        "Lag",
        "Check",
        "Event",
        "AreaRouting",
        "ProvisionerAnswer",
        "Series",
        "DnsSample",
        "WriterSample",
        "CapacitySample",
        "LagSample",
        "Marker",
    ];
    expected.sort();
    assert_eq!(documented, expected, "the doc's object sections");
    let problems = json_doc_problems(&json_doc(), &report, true);
    assert!(problems.is_empty(), "docs/drill-json.md and the JSON report disagree:\n{}", problems.join("\n"));
}

#[test]
fn the_doc_check_catches_a_field_added_removed_or_undocumented_deep_down() {
    let doc = json_doc();
    let good = serde_json::to_value(sample_report()).expect("serializes");
    let mutations: [(&str, fn(&mut Value)); 4] = [
        ("new top-level field", |r| r["brand_new"] = json!(1)),
        ("field gone from Figures", |r| {
            r["figures"].as_object_mut().map(|f| f.remove("total_ms"));
        }),
        ("new field in an array element", |r| r["series"]["writer"][1]["extra"] = json!(true)),
        ("new field two objects down", |r| r["figures"]["writes"]["hidden"] = json!(0)),
    ];
    for (what, mutate) in mutations {
        let mut report = good.clone();
        mutate(&mut report);
        assert!(!json_doc_problems(&doc, &report, true).is_empty(), "{what}: not caught");
    }
    // A documented-optional field may be absent.
    let mut report = good.clone();
    report["figures"].as_object_mut().map(|f| f.remove("route53_return_to_inversion_ms"));
    assert!(json_doc_problems(&doc, &report, true).is_empty());
}

#[test]
fn every_marker_kind_is_documented_as_serialized() {
    let doc = json_doc();
    let row = doc.lines().find(|l| l.starts_with("| `kind` |")).expect("the Marker table's kind row");
    for kind in MarkerKind::ALL {
        assert_eq!(serde_json::to_value(kind).expect("kind"), json!(kind.as_str()));
        assert!(row.contains(&format!("`{}`", kind.as_str())), "`{}` missing from {row}", kind.as_str());
    }
}

#[test]
fn the_html_page_is_self_contained_with_a_chart_per_series_and_the_markers() {
    let html = sample_report().render_html();
    let problems = html_problems(&html, &MARKED);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // Text from the run is escaped, never markup.
    assert!(!html.contains("<script>alert(1)</script>") && html.contains("&lt;script&gt;alert(1)"));
    assert!(!html.contains("<script"), "the page needs no script");
    // The configured worst case next to the measured RTO, judged by the same objective.
    let card = html.split(r#"id="rto-bound""#).nth(1).unwrap_or_default();
    assert!(card.contains("131.5 s") && card.contains("met") && card.contains("alarm 60 s"), "{card:.300}");
    // RTO and RPO against their objectives, and the checks.
    for text in ["RTO", "RPO", "objective 300 s", "budget 2000 ms", "FAIL", "PASS", "routing during"] {
        assert!(html.contains(text), "`{text}` missing");
    }
}

#[test]
fn the_charts_shade_the_outage_show_a_moving_writer_and_leave_unread_time_blank() {
    let html = sample_report().render_html();
    for series in drill::html::SERIES {
        let svg = support::chart(&html, series).expect("the chart");
        assert!(svg.contains("class=\"outage-span\""), "{series}: the outage is not shaded");
    }
    let writer = support::chart(&html, "writer").expect("writer chart");
    assert!(writer.contains("stroke=\"#ef6c00\"") && writer.contains("failover in progress</title>"), "{writer}");
    // us-east-1's group was unreadable from 1.0 s to 6.5 s (its outage): its lines break there.
    let capacity = support::chart(&html, "capacity").expect("capacity chart");
    let broken = capacity.split("<path d=\"").skip(1).filter(|d| d.split('"').next().is_some_and(|d| d.contains(" M")));
    assert_eq!(broken.count(), 2, "us-east-1's desired and InService lines, each broken once: {capacity}");
}

#[test]
fn the_html_check_catches_an_external_resource_and_a_chart_without_data() {
    let html = sample_report().render_html();
    let external = html.replace("</style>", "</style><script src=\"https://cdn.example/x.js\"></script>");
    assert!(!html_problems(&external, &MARKED).is_empty(), "external script not caught");
    let mut empty = sample_report();
    empty.series.capacity.clear();
    let problems = html_problems(&empty.render_html(), &MARKED);
    assert!(problems.iter().any(|p| p.contains("chart `capacity`")), "{problems:?}");
    let mut unmarked = sample_report();
    unmarked.markers.retain(|m| m.kind != MarkerKind::Failback);
    let problems = html_problems(&unmarked.render_html(), &MARKED);
    assert!(problems.iter().any(|p| p.contains("does not mark `failback`")), "{problems:?}");
}

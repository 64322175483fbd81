//! What the report's tests share: the checks of the HTML page and of the JSON report against
//! docs/drill-json.md, and a fully populated report to run them on without an emulator.

#![allow(dead_code)] // each test crate uses part of it

use drill::report::*;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// docs/drill-json.md, the JSON report's documented schema.
pub fn json_doc() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/drill-json.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// One documented field: its name, the documented object its value is (if any), and whether the
/// doc says it may be omitted.
#[derive(Debug)]
pub struct Field {
    pub name: String,
    pub object: Option<String>,
    pub optional: bool,
}

/// The doc's objects: each `## \`Name\`` section's table rows `| \`field\` | type | meaning |`.
pub fn documented_objects(doc: &str) -> BTreeMap<String, Vec<Field>> {
    let mut objects: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            current = backticked(heading).into_iter().next();
            if let Some(name) = &current {
                objects.entry(name.clone()).or_default();
            }
            continue;
        }
        let (Some(object), Some(row)) = (&current, line.strip_prefix("| `")) else { continue };
        let cells: Vec<&str> = row.split(" | ").collect();
        let Some(name) = cells.first().and_then(|c| c.split('`').next()) else { continue };
        let kind = cells.get(1).copied().unwrap_or_default().to_owned();
        objects.entry(object.clone()).or_default().push((name.to_owned(), kind));
    }
    let names: BTreeSet<String> = objects.keys().cloned().collect();
    objects
        .into_iter()
        .map(|(object, rows)| {
            let fields = rows
                .into_iter()
                .map(|(name, kind)| Field {
                    object: backticked(&kind).into_iter().find(|t| names.contains(t)),
                    optional: kind.contains("omitted"),
                    name,
                })
                .collect();
            (object, fields)
        })
        .collect()
}

fn backticked(text: &str) -> Vec<String> {
    text.split('`').skip(1).step_by(2).map(str::to_owned).collect()
}

/// Where the serialized `report` and the doc disagree: a serialized field the doc does not list,
/// a listed field not serialized (unless the doc says it may be omitted), recursively through the
/// documented objects; and with `every_object`, a documented object the report never reached (a
/// report whose arrays all hold something: else an empty array leaves its object unchecked).
pub fn json_doc_problems(doc: &str, report: &Value, every_object: bool) -> Vec<String> {
    let objects = documented_objects(doc);
    let mut problems = Vec::new();
    let mut reached = BTreeSet::new();
    walk(&objects, "Report", report, "report", &mut problems, &mut reached);
    for name in objects.keys() {
        if every_object && !reached.contains(name) {
            problems.push(format!("`{name}` is documented but no serialized value of it was reached"));
        }
    }
    problems
}

fn walk(
    objects: &BTreeMap<String, Vec<Field>>,
    object: &str,
    value: &Value,
    at: &str,
    problems: &mut Vec<String>,
    reached: &mut BTreeSet<String>,
) {
    match value {
        Value::Null => {}
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                walk(objects, object, item, &format!("{at}[{i}]"), problems, reached);
            }
        }
        Value::Object(map) => {
            reached.insert(object.to_owned());
            let Some(fields) = objects.get(object) else {
                problems.push(format!("{at}: `{object}` has no section in the doc"));
                return;
            };
            let listed: BTreeSet<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            for key in map.keys() {
                if !listed.contains(key.as_str()) {
                    problems.push(format!("{at}.{key}: serialized, but not listed in the doc's `{object}` table"));
                }
            }
            for field in fields {
                match map.get(&field.name) {
                    None if !field.optional => problems
                        .push(format!("{at}.{}: listed in the doc's `{object}` table, but not serialized", field.name)),
                    None => {}
                    Some(v) => {
                        if let Some(inner) = &field.object {
                            walk(objects, inner, v, &format!("{at}.{}", field.name), problems, reached);
                        }
                    }
                }
            }
        }
        other => problems.push(format!("{at}: the doc says `{object}`, an object; serialized {other}")),
    }
}

/// The `<svg class="chart">` of `series` in `html`, up to its `</svg>`.
pub fn chart<'a>(html: &'a str, series: &str) -> Option<&'a str> {
    let start = html.find(&format!("<svg class=\"chart\" data-series=\"{series}\""))?;
    let rest = &html[start..];
    Some(&rest[..rest.find("</svg>")?])
}

/// What is wrong with a drill HTML page: not self-contained (an external `src`/`href`, a script
/// with a source, a stylesheet link, a CSS import or `url(`), a chart series missing or without
/// data points, a chart without a marker of each kind the page must mark.
pub fn html_problems(html: &str, must_mark: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let lower = html.to_ascii_lowercase();
    for attr in ["src=", "href=", "xlink:href="] {
        for (i, _) in lower.match_indices(attr) {
            let value = lower[i + attr.len()..].trim_start_matches(['"', '\'']);
            if ["http:", "https:", "//", "data:", "file:"].iter().any(|p| value.starts_with(p)) {
                problems.push(format!("external or embedded resource: {}", &html[i..(i + 80).min(html.len())]));
            }
        }
    }
    for needle in ["<script src", "<link", "@import", "url(", "<iframe", "<img"] {
        if lower.contains(needle) {
            problems.push(format!("the page has `{needle}`"));
        }
    }
    if !lower.contains("<style>") {
        problems.push("no inline <style>".into());
    }
    for series in drill::html::SERIES {
        let open = format!("<svg class=\"chart\" data-series=\"{series}\"");
        let charts: Vec<&str> = html.match_indices(&open).map(|(i, _)| &html[i..]).collect();
        if charts.len() != 1 {
            problems.push(format!("{} charts of `{series}` (want one)", charts.len()));
            continue;
        }
        let svg = &charts[0][..charts[0].find("</svg>").unwrap_or(charts[0].len())];
        let declared: usize = svg
            .split("data-points=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let points = svg.matches("class=\"pt\"").count();
        if points == 0 || points != declared {
            problems.push(format!("chart `{series}`: {points} data points, data-points=\"{declared}\""));
        }
        for kind in must_mark {
            if !svg.contains(&format!("class=\"marker marker-{kind}\"")) {
                problems.push(format!("chart `{series}` does not mark `{kind}`"));
            }
        }
    }
    problems
}

/// A report with every field and every object filled: what a default drill produces, small.
pub fn sample_report() -> Report {
    let regions: Vec<String> = ["us-east-1", "eu-west-1", "ap-southeast-1"].map(String::from).to_vec();
    let lag = Lag { samples: 18, p50_ms: 110, p99_ms: 170, max_ms: 170 };
    let dns = |t_ms, na: &str| DnsSample {
        t_ms,
        answers: [
            ("North America".to_owned(), Some(na.to_owned())),
            ("Europe".to_owned(), Some("eu-west-1".to_owned())),
            ("Asia Pacific".to_owned(), None),
        ]
        .into(),
    };
    let dns_samples =
        vec![dns(1_000, "us-east-1"), dns(2_000, "us-east-1"), dns(3_400, "eu-west-1"), dns(7_200, "us-east-1")];
    let writer =
        |t_ms, w: &str, moving| WriterSample { t_ms, writer: Some(w.to_owned()), failover_in_progress: moving };
    let capacity = |t_ms, region: &str, desired, in_service| CapacitySample {
        t_ms,
        region: region.to_owned(),
        desired,
        in_service,
    };
    let marker = |t_ms, kind, label: &str| Marker { t_ms, kind, label: label.to_owned() };
    Report {
        drill: "unplanned (failover)".into(),
        regions: regions.clone(),
        failed_region: "us-east-1".into(),
        survivors: regions[1..].to_vec(),
        emulator_url: Some("http://127.0.0.1:4566".into()),
        roles: [("failover".to_owned(), "multisite-eu-west-1-FailoverRole <&>".to_owned())].into(),
        replication_delay_ms: 100,
        rpo_budget_ms: 2_000,
        rto_objective_seconds: 300,
        cooldown_seconds: 5,
        routing_backend: "health_check".into(),
        route53_control_plane_down: false,
        degradations: vec!["a degradation <b>".into()],
        provisioner: vec![ProvisionerAnswer {
            logical_resource_id: "DataTableReplicas".into(),
            status: "SUCCESS".into(),
            physical_resource_id: "us-east-1/UserSessions/DataTableReplicas".into(),
            reason: Some("replicas ACTIVE".into()),
            data_keys: vec!["TableName".into()],
        }],
        timeline: vec![Event { t_ms: 3_000, what: "OUTAGE: <script>alert(1)</script> & more".into() }],
        traffic_split: vec![AreaRouting {
            area: "North America".into(),
            client_ip: "192.0.2.44".into(),
            before: Some("us-east-1".into()),
            during: Some("eu-west-1".into()),
            after: None,
        }],
        figures: Figures {
            detection_to_routing_ms: Some(400),
            writer_move_ms: Some(680),
            scale_up_ms: Some(460),
            failback_ms: Some(150),
            replication_lag: Some(lag),
            writes: Writes {
                acknowledged: [("us-east-1".to_owned(), 63)].into(),
                rejected: 16,
                acknowledged_by_failed_region_before_outage: 63,
                lost: 4,
                oldest_lost_before_outage_ms: Some(110),
                survivor_writes_missing: 0,
                recovered_after_failback: Some(4),
            },
            total_ms: 8_000,
            route53_return_to_inversion_ms: Some(300),
        },
        checks: vec![
            Check { name: "routing during".into(), passed: true, detail: "North America -> eu-west-1".into() },
            Check { name: "RPO".into(), passed: false, detail: "4 of 63 lost".into() },
        ],
        passed: false,
        rto: Objective { measured_ms: Some(1_400), objective_ms: 300_000, met: Some(true) },
        rto_bound_seconds: Some(131.5),
        rto_bound_terms: "alarm 60 s + health check 10 s + record TTL 60 s + orchestration 1.5 s".into(),
        rpo: Objective { measured_ms: Some(110), objective_ms: 2_000, met: Some(true) },
        series: Series {
            dns: dns_samples,
            writer: vec![
                writer(1_000, "us-east-1", false),
                writer(3_100, "us-east-1", true),
                writer(3_700, "eu-west-1", false),
            ],
            capacity: vec![
                capacity(1_000, "eu-west-1", 2, 2),
                capacity(2_000, "eu-west-1", 2, 2),
                capacity(3_000, "eu-west-1", 2, 2),
                capacity(3_300, "eu-west-1", 3, 2),
                capacity(3_500, "eu-west-1", 3, 3),
                capacity(1_000, "us-east-1", 2, 2),
                // us-east-1 unreadable during its outage: a gap, then back.
                capacity(6_500, "us-east-1", 2, 2),
            ],
            lag: vec![
                LagSample { t_ms: 500, run: "baseline".into(), lag: Some(lag) },
                LagSample { t_ms: 5_000, run: "before failback".into(), lag: None },
                LagSample { t_ms: 7_800, run: "after failback".into(), lag: Some(lag) },
            ],
        },
        markers: vec![
            marker(3_000, MarkerKind::Outage, "outage: us-east-1 down"),
            marker(3_050, MarkerKind::Detection, "detection: web-us-east-1-unhealthy ALARM"),
            marker(3_450, MarkerKind::Action, "routing changed"),
            marker(3_700, MarkerKind::Action, "Aurora writer moved to eu-west-1"),
            marker(5_500, MarkerKind::Recovery, "recovery: us-east-1 back"),
            marker(7_000, MarkerKind::Failback, "failback: OK delivered"),
        ],
    }
}

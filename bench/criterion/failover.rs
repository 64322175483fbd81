//! In-process costs on failover's path, before and between AWS calls: decoding the three alarm
//! deliveries, parsing + validating the topology (done once per container), and planning.
//!
//! Run by `make bench` (`cargo bench --bench failover_inprocess`); `cargo test` runs each
//! benchmark once as a smoke test (criterion's test mode), so CI keeps it compiling.

use criterion::{Criterion, criterion_group, criterion_main};
use failover::plan::{AuroraMember, Observed, ObservedAurora, ObservedHealthCheck, PlanOptions, plan};
use serde_json::Value;
use shared::Topology;
use shared::alarm::{Overrides, decode_alarm_changes};
use shared::ledger::RegionStatus;
use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;

fn repo_file(relative: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn alarm_decoding(c: &mut Criterion) {
    let mut group = c.benchmark_group("alarm_decode");
    for delivery in ["alarm-action", "eventbridge", "sns"] {
        let payload: Value =
            serde_json::from_str(&repo_file(&format!("events/alarm-{delivery}-us-east-1-alarm.json"))).expect("event");
        let raw = payload.to_string();
        group.bench_function(delivery, |b| {
            b.iter(|| {
                // What the runtime + handler do per event: bytes -> Value -> alarm changes.
                let value: Value = serde_json::from_str(black_box(&raw)).expect("json");
                let overrides = Overrides::from_payload(&value).expect("overrides");
                let changes = decode_alarm_changes(&value).expect("decoded");
                black_box((overrides, changes))
            })
        });
    }
    group.finish();
}

fn topology_parsing(c: &mut Criterion) {
    let json = repo_file("shared/topology.example.json");
    c.bench_function("topology_parse_validate", |b| {
        b.iter(|| black_box(Topology::from_json(black_box(&json)).expect("valid")))
    });
    let topology = Topology::from_json(&json).expect("valid");
    c.bench_function("topology_validate_only", |b| b.iter(|| black_box(&topology).validate().expect("valid")));
}

fn observed_world(topology: &Topology) -> Observed {
    Observed {
        health_checks: topology
            .cells
            .iter()
            .map(|cell| ObservedHealthCheck {
                region: cell.region.clone(),
                health_check_id: cell.health_check_id.clone(),
                inverted: Some(false),
            })
            .collect(),
        routing_controls: Vec::new(),
        aurora: Some(ObservedAurora {
            global_cluster_id: "sessions-global".into(),
            members: topology
                .cells
                .iter()
                .enumerate()
                .filter_map(|(i, cell)| {
                    Some(AuroraMember {
                        cluster_arn: cell.aurora_cluster_arn.clone()?,
                        region: cell.region.clone(),
                        is_writer: i == 0,
                    })
                })
                .collect(),
            failover_in_progress: false,
            failover_target_arn: None,
        }),
    }
}

fn planning(c: &mut Criterion) {
    let topology = Topology::from_json(&repo_file("shared/topology.example.json")).expect("valid");
    let observed = observed_world(&topology);
    // The writer's Region (first cell) is evacuated: invert its check and move the writer.
    let mut desired: HashMap<String, RegionStatus> =
        topology.regions().map(|r| (r.to_owned(), RegionStatus::Active)).collect();
    desired.insert(topology.cells[0].region.clone(), RegionStatus::Evacuated);
    let options = PlanOptions::default();
    c.bench_function("failover_plan_evacuate_writer_region", |b| {
        b.iter(|| black_box(plan(black_box(&topology), black_box(&desired), black_box(&observed), &options)))
    });
}

criterion_group!(benches, alarm_decoding, topology_parsing, planning);
criterion_main!(benches);

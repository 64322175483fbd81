//! In-process cost of the scaler's capacity planning (pure): the survivors' targets after an
//! evacuation, a converging retry, and the restore sweep's plan for one group after failback
//! (`record::plan` with `Step::Release`, what the sweep runs per group).
//!
//! Run by `make bench` (`cargo bench --bench scaler_capacity`); `cargo test` runs each benchmark
//! once as a smoke test.

use criterion::{Criterion, criterion_group, criterion_main};
use scaler::GroupAction;
use scaler::capacity::{Limits, converge, evacuation_target};
use scaler::record::{Covering, GroupPlan, GroupScaling, Step, plan};
use shared::capacity::GroupSizes;
use shared::ledger::{FleetStatus, RegionStatus, RegionStatusEntry};
use std::collections::BTreeMap;
use std::hint::black_box;

fn capacity_math(c: &mut Criterion) {
    let limits = Limits { raise_max: true, max_ceiling: Some(40) };
    let baselines = [GroupSizes::new(2, 4, 10), GroupSizes::new(1, 3, 6), GroupSizes::new(6, 12, 20)];
    c.bench_function("scaler_evacuation_targets_3_regions", |b| {
        b.iter(|| {
            // One Region of three evacuated: each of the two survivors gets a target.
            for baseline in &baselines[1..] {
                black_box(evacuation_target(black_box(*baseline), 3, 2, limits));
            }
        })
    });
    let applied = GroupSizes::new(6, 6, 10);
    c.bench_function("scaler_converge", |b| {
        b.iter(|| black_box(converge(black_box(GroupSizes::new(2, 4, 10)), black_box(applied))))
    });

    // The restore sweep's step for one group: 3 Regions, eu-west-1's group covered the evacuation
    // of us-east-1, whose failback is recorded and past the cool-down; the group still has the
    // scaled sizes, so the plan puts the baseline back.
    let baseline = GroupSizes::new(2, 4, 10);
    let scaled = GroupSizes::new(6, 6, 10);
    let covering = Covering { since_ms: 1_000, change_id: "us-east-1#1000".into(), recorded_at_ms: 1_000 };
    let record = GroupScaling {
        region: "eu-west-1".into(),
        asg: "web-eu-west-1".into(),
        baseline,
        n_active_at_baseline: 3,
        covering: BTreeMap::from([("us-east-1".to_owned(), covering)]),
        applied: scaled,
        prior_applied: Some(baseline),
        settled: true,
        reason: "covering the evacuation of us-east-1".into(),
        closed: None,
    };
    let mut fleet = FleetStatus::default();
    for (region, changed_at_ms) in [("us-east-1", 2_000), ("eu-west-1", 0), ("ap-southeast-1", 0)] {
        let entry = RegionStatusEntry { status: RegionStatus::Active, changed_at_ms, cause: "bench".into() };
        fleet.regions.insert(region.to_owned(), entry);
    }
    let step = Step::Release { fleet: &fleet, cooldown_ms: 5_000 };
    // What is measured is what it must be: a restore to the baseline.
    match plan("eu-west-1", "web-eu-west-1", Some(&record), scaled, &step, Limits::default(), 10_000).0 {
        GroupPlan::Change { resize: Some(to), action: GroupAction::Restored, .. } if to == baseline => {}
        other => panic!("the bench's restore step must restore the baseline, planned {other:?}"),
    }
    c.bench_function("scaler_restore_plan", |b| {
        b.iter(|| {
            black_box(plan(
                "eu-west-1",
                "web-eu-west-1",
                Some(black_box(&record)),
                black_box(scaled),
                black_box(&step),
                Limits::default(),
                black_box(10_000),
            ))
        })
    });
}

criterion_group!(benches, capacity_math);
criterion_main!(benches);

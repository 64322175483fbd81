//! In-process cost of the scaler's capacity math (pure): the survivors' targets after an
//! evacuation, a converging retry, and the restore decision.
//!
//! Run by `make bench` (`cargo bench --bench scaler_capacity`); `cargo test` runs each benchmark
//! once as a smoke test.

use criterion::{Criterion, criterion_group, criterion_main};
use scaler::capacity::{Capacity, Limits, converge, evacuation_target, restore_decision};
use std::hint::black_box;

fn capacity_math(c: &mut Criterion) {
    let limits = Limits { raise_max: true, max_ceiling: Some(40) };
    let baselines = [Capacity::new(2, 4, 10), Capacity::new(1, 3, 6), Capacity::new(6, 12, 20)];
    c.bench_function("scaler_evacuation_targets_3_regions", |b| {
        b.iter(|| {
            // One Region of three evacuated: each of the two survivors gets a target.
            for baseline in &baselines[1..] {
                black_box(evacuation_target(black_box(*baseline), 3, 2, limits));
            }
        })
    });
    let applied = Capacity::new(6, 6, 10);
    c.bench_function("scaler_converge", |b| {
        b.iter(|| black_box(converge(black_box(Capacity::new(2, 4, 10)), black_box(applied))))
    });
    c.bench_function("scaler_restore_decision", |b| {
        b.iter(|| black_box(restore_decision(black_box(applied), black_box(Capacity::new(2, 4, 10)), applied)))
    });
}

criterion_group!(benches, capacity_math);
criterion_main!(benches);

//! Shared by the emulator benches: request-log analysis (how many sequential round trips a run
//! made), medians and the JSON each bench writes for `scripts/bench_report.py`.

#![allow(dead_code)]

use multisite_tests::RequestRecord;
use serde_json::{Value, json};
use std::path::PathBuf;

/// `cargo bench` passes `--bench`; `cargo test` (CI) does not: then run one quick iteration.
pub fn quick_mode() -> bool {
    !std::env::args().any(|a| a == "--bench") || std::env::var_os("MULTISITE_BENCH_QUICK").is_some()
}

/// Where the figures go: `$MULTISITE_BENCH_OUT/<name>.json` (default `target/bench/`).
pub fn write_result(name: &str, value: &Value) {
    let dir = std::env::var_os("MULTISITE_BENCH_OUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| multisite_tests::repo_root().join("target/bench"));
    std::fs::create_dir_all(&dir).expect("bench output dir");
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(value).expect("json")).expect("write bench result");
    println!("wrote {}", path.display());
}

pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

/// The longest chain of requests where each starts after the previous one ended: the number of
/// sequential round trips the run needed (calls that overlap in time count once). Returns the
/// depth and one longest chain (operation names).
pub fn sequential_chain(requests: &[&RequestRecord]) -> (usize, Vec<String>) {
    let mut sorted: Vec<&RequestRecord> = requests.to_vec();
    sorted.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    // depth[i]: longest chain ending with request i; prev[i]: its predecessor.
    let mut depth = vec![1usize; sorted.len()];
    let mut prev: Vec<Option<usize>> = vec![None; sorted.len()];
    for i in 0..sorted.len() {
        for j in 0..i {
            // Half a millisecond of slack: the log's clocks are the emulator's, not the client's.
            if sorted[j].end_ms <= sorted[i].t_ms + 0.5 && depth[j] + 1 > depth[i] {
                depth[i] = depth[j] + 1;
                prev[i] = Some(j);
            }
        }
    }
    let Some((mut at, &best)) = depth.iter().enumerate().max_by_key(|(_, d)| **d) else {
        return (0, Vec::new());
    };
    let mut chain = vec![format!("{}:{}", sorted[at].service, sorted[at].operation)];
    while let Some(p) = prev[at] {
        chain.push(format!("{}:{}", sorted[p].service, sorted[p].operation));
        at = p;
    }
    chain.reverse();
    (best, chain)
}

/// Round trips by the time they started: groups of calls in flight together, in order
/// (`GetItem | PutItem | GetHealthCheck x3 + DescribeGlobalClusters | ...`).
pub fn waves(requests: &[&RequestRecord]) -> Vec<String> {
    let mut sorted: Vec<&RequestRecord> = requests.to_vec();
    sorted.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    let mut waves: Vec<(f64, Vec<String>)> = Vec::new();
    for r in sorted {
        match waves.last_mut() {
            Some((end, ops)) if r.t_ms < *end => {
                *end = end.max(r.end_ms);
                ops.push(r.operation.clone());
            }
            _ => waves.push((r.end_ms, vec![r.operation.clone()])),
        }
    }
    waves
        .into_iter()
        .map(|(_, ops)| {
            let mut counted: Vec<(String, usize)> = Vec::new();
            for op in ops {
                match counted.iter_mut().find(|(o, _)| *o == op) {
                    Some((_, n)) => *n += 1,
                    None => counted.push((op, 1)),
                }
            }
            counted
                .into_iter()
                .map(|(op, n)| if n > 1 { format!("{op} x{n}") } else { op })
                .collect::<Vec<_>>()
                .join(" + ")
        })
        .collect()
}

pub fn summary(requests: &[&RequestRecord]) -> Value {
    let (depth, chain) = sequential_chain(requests);
    json!({
        "calls": requests.len(),
        "failed_calls": requests.iter().filter(|r| r.status >= 400).count(),
        "sequential_round_trips": depth,
        "longest_chain": chain,
        "waves": waves(requests),
    })
}

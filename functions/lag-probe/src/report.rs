//! The structured result of a run (returned by the handler, stored in the ledger) and the EMF
//! metrics derived from it.

use crate::event::Trigger;
use crate::measure::Sample;
use crate::observe::GlobalClusterView;
use crate::readiness::Readiness;
use crate::stats::LagStats;
use serde::Serialize;
use shared::ledger::ProbeSummary;
use shared::metrics::{MetricSet, NAMESPACE, Unit};

pub const FUNCTION: &str = "lag-probe";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProbeReport {
    /// The topology's workload name.
    pub workload: String,
    /// When the run finished (epoch ms, wall clock).
    pub measured_at_ms: u64,
    pub duration_ms: u64,
    /// The Region the probe ran in (its ledger replica holds the result).
    pub prober_region: String,
    pub trigger: Trigger,
    pub rpo_budget_ms: u64,
    /// A pair exceeded the budget, timed out, or could not be measured between reachable Regions.
    pub rpo_breached: bool,
    /// Regions the ledger's fleet status says are active (the ones probed).
    pub active_regions: Vec<String>,
    pub unreachable_regions: Vec<UnreachableRegion>,
    pub replication: Replication,
    pub aurora: Option<AuroraReport>,
    pub readiness: Readiness,
    /// Things worth knowing that are not failures (e.g. a table without TTL, a ledger read error).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnreachableRegion {
    pub region: String,
    pub error: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Replication {
    pub table: String,
    pub samples_per_pair: u32,
    pub sample_timeout_ms: u64,
    pub poll_initial_ms: u64,
    pub poll_max_ms: u64,
    /// Upper bound on destination reads per sample (see README: calls per run).
    pub max_reads_per_sample: u32,
    /// Over every visible sample of every pair.
    pub overall: Option<LagStats>,
    pub pairs: Vec<PairReport>,
    /// Canary writes and reads started (SDK retries not counted; a read still in flight when
    /// another one saw the canary is abandoned).
    pub calls: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PairOutcome {
    /// Every sample became visible (`breached` if one exceeded the budget).
    Measured,
    /// A canary did not become visible within the sample timeout: a breach.
    TimedOut,
    /// The source or destination Region did not answer: not measured.
    Unreachable,
    /// The pair could not be measured (no replica, unusable key schema, a rejected call): a breach,
    /// since nothing vouches for its RPO.
    Failed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PairReport {
    pub source: String,
    pub destination: String,
    pub outcome: PairOutcome,
    pub breached: bool,
    pub stats: Option<LagStats>,
    pub samples: Vec<Sample>,
    /// For a timed-out sample: how long it waited (the lag is at least this).
    pub waited_ms: Option<u64>,
    pub skipped_samples: u32,
    pub error: Option<String>,
    /// The Region that did not answer, for `Unreachable`.
    pub unreachable_region: Option<String>,
    pub canary_key: Option<String>,
    pub ttl_attribute: Option<String>,
    pub calls: u32,
}

impl PairReport {
    pub fn new(source: &str, destination: &str, outcome: PairOutcome) -> Self {
        Self {
            source: source.to_owned(),
            destination: destination.to_owned(),
            outcome,
            breached: matches!(outcome, PairOutcome::TimedOut | PairOutcome::Failed),
            stats: None,
            samples: Vec::new(),
            waited_ms: None,
            skipped_samples: 0,
            error: None,
            unreachable_region: None,
            canary_key: None,
            ttl_attribute: None,
            calls: 0,
        }
    }

    /// The largest lag this pair showed: measured, or waited for a canary that never came.
    pub fn worst_lag_ms(&self) -> Option<u64> {
        self.stats.map(|s| s.max_ms).into_iter().chain(self.waited_ms).max()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuroraReport {
    pub global_cluster_id: String,
    /// The Region whose RDS API answered `DescribeGlobalClusters`.
    pub read_from: Option<String>,
    pub cluster: Option<GlobalClusterView>,
    pub writer_region: Option<String>,
    pub lag: Vec<AuroraLag>,
    /// What could not be read, one sentence each.
    pub unreadable: Vec<String>,
}

/// The lag CloudWatch reports for a secondary cluster.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuroraLag {
    pub region: String,
    pub cluster_id: String,
    /// `AuroraGlobalDBReplicationLag`, latest datapoint (ms).
    pub replication_lag_ms: Option<f64>,
    /// `AuroraGlobalDBRPOLag`, latest datapoint (ms).
    pub rpo_lag_ms: Option<f64>,
}

impl ProbeReport {
    /// The summary failover's failback gate reads (`probe/latest`).
    pub fn summary(&self) -> ProbeSummary {
        ProbeSummary {
            measured_at_ms: self.measured_at_ms,
            max_lag_ms: self.replication.pairs.iter().filter_map(PairReport::worst_lag_ms).max(),
            rpo_budget_ms: self.rpo_budget_ms,
            rpo_breached: self.rpo_breached,
            unreachable_regions: self.unreachable_regions.iter().map(|u| u.region.clone()).collect(),
            readiness_failures: self.readiness.failures.len(),
        }
    }

    /// The EMF metric sets of this run (namespace `multisite`).
    pub fn metric_sets(&self) -> Vec<MetricSet> {
        let mut sets = Vec::new();
        for pair in &self.replication.pairs {
            let mut set = MetricSet::new(NAMESPACE)
                .dimension("Function", FUNCTION)
                .dimension("Source", &pair.source)
                .dimension("Destination", &pair.destination);
            for sample in &pair.samples {
                set.push("ReplicationLagMs".into(), sample.lag_ms as f64, Unit::Milliseconds);
            }
            if pair.outcome == PairOutcome::TimedOut {
                set.push("ReplicationTimeouts".into(), 1.0, Unit::Count);
            }
            sets.push(set);
        }
        if let Some(aurora) = &self.aurora {
            for lag in &aurora.lag {
                let mut set =
                    MetricSet::new(NAMESPACE).dimension("Function", FUNCTION).dimension("Region", &lag.region);
                if let Some(v) = lag.replication_lag_ms {
                    set.push("AuroraReplicationLagMs".into(), v, Unit::Milliseconds);
                }
                if let Some(v) = lag.rpo_lag_ms {
                    set.push("AuroraRpoLagMs".into(), v, Unit::Milliseconds);
                }
                sets.push(set);
            }
        }
        let mut run = MetricSet::new(NAMESPACE)
            .dimension("Function", FUNCTION)
            .metric("RpoBudgetBreached", if self.rpo_breached { 1.0 } else { 0.0 }, Unit::Count)
            .metric("ReadinessFailures", self.readiness.failures.len() as f64, Unit::Count)
            .metric("UnreachableRegions", self.unreachable_regions.len() as f64, Unit::Count)
            .metric("HandlerDuration", self.duration_ms as f64, Unit::Milliseconds);
        if let Some(overall) = &self.replication.overall {
            run = run.metric("ReplicationLagMaxMs", overall.max_ms as f64, Unit::Milliseconds);
        }
        sets.push(run);
        sets
    }
}

//! The structured result of a run (returned by the handler, stored in the ledger) and the EMF
//! metrics derived from it.

use crate::event::Trigger;
use crate::measure::Sample;
use crate::observe::GlobalClusterView;
use crate::readiness::{Readiness, Rule};
use crate::stats::LagStats;
use serde::Serialize;
use shared::ledger::{ProbeSummary, RegionProbe};
use shared::metrics::{MetricSet, NAMESPACE, Unit};
use std::collections::BTreeMap;

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
    /// A pair between active Regions exceeded the budget, timed out, or could not be measured
    /// between reachable Regions.
    pub rpo_breached: bool,
    /// Regions the ledger's fleet status says are active. Every Region of the topology is probed;
    /// the fleet-wide figures (`rpo_breached`, `replication.overall`, the summary's `max_lag_ms`,
    /// `readiness.ok`) are about the pairs between these.
    pub active_regions: Vec<String>,
    /// Regions the fleet status says are Evacuated: probed too (their pairs are measured when
    /// they answer), so that one that is back can be judged for its failback.
    pub evacuated_regions: Vec<String>,
    /// Probed Regions (active or evacuated) that did not answer.
    pub unreachable_regions: Vec<UnreachableRegion>,
    /// What the probe found about each Region, from its pairs and the readiness rules about it
    /// ([`region_probes`]); copied into the summary for the failback gate.
    pub regions: BTreeMap<String, RegionProbe>,
    pub replication: Replication,
    pub aurora: Option<AuroraReport>,
    pub readiness: Readiness,
    /// Backend `arc`: the routing controls' states and which cluster endpoints answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingReport>,
    /// Things worth knowing that are not failures (e.g. a table without TTL, a ledger read error).
    pub notes: Vec<String>,
}

/// The ARC routing seen by the probe: every cluster endpoint asked once, in parallel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutingReport {
    /// Each cell's routing control: `"On"`, `"Off"`, or `null` when no endpoint answered.
    pub routing_controls: BTreeMap<String, Option<&'static str>>,
    pub endpoints: Vec<EndpointReport>,
    /// How many endpoints answered (one is enough for failover).
    pub endpoints_answering: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndpointReport {
    pub region: String,
    pub answered: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl RoutingReport {
    /// From every endpoint's answer: the states are the first answering endpoint's (the cluster
    /// holds one state; any endpoint that answers reads it).
    pub fn from_answers(arc: &shared::topology::ArcRouting, answers: Option<Vec<shared::arc::EndpointAnswer>>) -> Self {
        let answers = answers.unwrap_or_default();
        let states = answers.iter().find_map(|a| a.states.as_ref().ok());
        let routing_controls = arc
            .routing_controls
            .iter()
            .map(|(region, arn)| {
                let state = states.and_then(|s| s.get(arn)).map(|on| if *on { "On" } else { "Off" });
                (region.clone(), state)
            })
            .collect();
        let endpoints: Vec<EndpointReport> = answers
            .iter()
            .map(|a| EndpointReport {
                region: a.region.clone(),
                answered: a.states.is_ok(),
                error: a.states.as_ref().err().cloned(),
            })
            .collect();
        let endpoints_answering = endpoints.iter().filter(|e| e.answered).count();
        Self { routing_controls, endpoints, endpoints_answering }
    }

    /// Each cell's control On, by Region, for the readiness rules; `Err` when no endpoint answered.
    pub fn states_by_region(&self) -> Result<BTreeMap<String, bool>, String> {
        if self.endpoints_answering == 0 {
            let errors: Vec<String> = self
                .endpoints
                .iter()
                .map(|e| format!("{}: {}", e.region, e.error.as_deref().unwrap_or("no answer")))
                .collect();
            return Err(format!("{} endpoint(s) asked: {}", self.endpoints.len(), errors.join("; ")));
        }
        Ok(self
            .routing_controls
            .iter()
            .filter_map(|(region, state)| state.map(|s| (region.clone(), s == "On")))
            .collect())
    }
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
    /// Over every visible sample of every pair between active Regions.
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

    /// Both ends are among `regions`.
    pub fn between(&self, regions: &[String]) -> bool {
        regions.contains(&self.source) && regions.contains(&self.destination)
    }

    pub fn involves(&self, region: &str) -> bool {
        self.source == region || self.destination == region
    }

    /// Its canaries arrived: every sample taken became visible (and at least one was taken).
    pub fn measured(&self) -> bool {
        self.outcome == PairOutcome::Measured && !self.samples.is_empty()
    }

    /// A sample exceeded the RPO budget or a canary timed out (a pair that could not be measured
    /// at all is not counted here: it is not measured).
    pub fn over_budget(&self) -> bool {
        match self.outcome {
            PairOutcome::Measured => self.breached,
            PairOutcome::TimedOut => true,
            PairOutcome::Unreachable | PairOutcome::Failed => false,
        }
    }
}

/// Each Region's entry of the summary: its pairs (either direction) and the readiness rules about
/// it. `regions` are the probed Regions (every Region of the topology), `unreachable` those that
/// did not answer, with the error.
pub fn region_probes(
    regions: &[String],
    pairs: &[PairReport],
    unreachable: &[UnreachableRegion],
    readiness: &Readiness,
) -> BTreeMap<String, RegionProbe> {
    let pairs_expected = 2 * regions.len().saturating_sub(1);
    regions
        .iter()
        .map(|region| {
            let own: Vec<&PairReport> = pairs.iter().filter(|p| p.involves(region)).collect();
            let down = unreachable.iter().find(|u| &u.region == region);
            let mut readiness_failures = readiness.about(region);
            let named = readiness
                .failures
                .iter()
                .any(|f| matches!(&f.rule, Rule::RegionUnreachable { region: r, .. } if r == region));
            if let (Some(down), false) = (down, named) {
                readiness_failures.insert(0, format!("{region} is unreachable: {}", down.error));
            }
            let probe = RegionProbe {
                reachable: down.is_none(),
                pairs_measured: own.iter().filter(|p| p.measured()).count(),
                pairs_expected,
                max_lag_ms: own.iter().filter_map(|p| p.worst_lag_ms()).max(),
                rpo_breached: own.iter().any(|p| p.over_budget()),
                ready: down.is_none() && readiness_failures.is_empty(),
                readiness_failures,
            };
            (region.clone(), probe)
        })
        .collect()
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
            max_lag_ms: self
                .replication
                .pairs
                .iter()
                .filter(|p| p.between(&self.active_regions))
                .filter_map(PairReport::worst_lag_ms)
                .max(),
            rpo_budget_ms: self.rpo_budget_ms,
            rpo_breached: self.rpo_breached,
            unreachable_regions: self.unreachable_regions.iter().map(|u| u.region.clone()).collect(),
            readiness_failures: self.readiness.failures.len(),
            regions: self.regions.clone(),
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
        for bound in &self.readiness.rto {
            let mut set = MetricSet::new(NAMESPACE).dimension("Function", FUNCTION).dimension("Region", &bound.region);
            if let Some(seconds) = bound.bound_seconds {
                set.push("RtoBoundSeconds".into(), seconds, Unit::Seconds);
                set.push("RtoObjectiveExceeded".into(), if bound.exceeds_objective { 1.0 } else { 0.0 }, Unit::Count);
            }
            sets.push(set);
        }
        let exceeding = self.readiness.rto.iter().filter(|b| b.exceeds_objective).count();
        let mut run = MetricSet::new(NAMESPACE)
            .dimension("Function", FUNCTION)
            .metric("RtoObjectiveExceeded", exceeding as f64, Unit::Count)
            // The fleet status as this run read it (the dashboard's fleet widget).
            .metric("ActiveRegions", self.active_regions.len() as f64, Unit::Count)
            .metric("EvacuatedRegions", self.evacuated_regions.len() as f64, Unit::Count)
            .metric("RpoBudgetBreached", if self.rpo_breached { 1.0 } else { 0.0 }, Unit::Count)
            .metric("ReadinessFailures", self.readiness.failures.len() as f64, Unit::Count)
            .metric("UnreachableRegions", self.unreachable_regions.len() as f64, Unit::Count)
            .metric("HandlerDuration", self.duration_ms as f64, Unit::Milliseconds);
        if let Some(overall) = &self.replication.overall {
            run = run.metric("ReplicationLagMaxMs", overall.max_ms as f64, Unit::Milliseconds);
        }
        if let Some(routing) = &self.routing {
            run = run.metric("ArcEndpointsAnswering", routing.endpoints_answering as f64, Unit::Count);
        }
        sets.push(run);
        sets
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::readiness::Failure;

    const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

    fn regions() -> Vec<String> {
        REGIONS.iter().map(|r| r.to_string()).collect()
    }

    /// A pair whose samples showed `lags` (the budget is 2000 ms).
    fn pair(source: &str, destination: &str, outcome: PairOutcome, lags: &[u64]) -> PairReport {
        let mut p = PairReport::new(source, destination, outcome);
        p.samples = lags
            .iter()
            .enumerate()
            .map(|(i, lag)| Sample { seq: i as u64, lag_ms: *lag, not_visible_at_ms: None, reads: 1 })
            .collect();
        p.stats = LagStats::of(lags);
        if outcome == PairOutcome::Measured {
            p.breached = lags.iter().any(|l| *l > 2_000);
        }
        p
    }

    fn readiness(failures: Vec<Rule>) -> Readiness {
        let failures: Vec<Failure> =
            failures.into_iter().map(|rule| Failure { message: rule.to_string(), rule }).collect();
        Readiness {
            ok: failures.is_empty(),
            failures,
            failback_failures: Vec::new(),
            not_checked: Vec::new(),
            rto: Vec::new(),
        }
    }

    #[test]
    fn each_region_counts_its_pairs_in_both_directions() {
        use PairOutcome::{Measured, Unreachable};
        // ap-southeast-1 (evacuated) is down: its four pairs are not measured.
        let pairs = vec![
            pair("us-east-1", "eu-west-1", Measured, &[100, 120]),
            pair("eu-west-1", "us-east-1", Measured, &[150]),
            pair("us-east-1", "ap-southeast-1", Unreachable, &[]),
            pair("ap-southeast-1", "us-east-1", Unreachable, &[]),
            pair("eu-west-1", "ap-southeast-1", Unreachable, &[]),
            pair("ap-southeast-1", "eu-west-1", Unreachable, &[]),
        ];
        let down = [UnreachableRegion { region: "ap-southeast-1".into(), error: "DescribeTable: 503".into() }];

        let probes = region_probes(&regions(), &pairs, &down, &readiness(vec![]));

        assert_eq!(probes.keys().map(String::as_str).collect::<Vec<_>>(), ["ap-southeast-1", "eu-west-1", "us-east-1"]);
        let us = &probes["us-east-1"];
        assert_eq!(
            us,
            &RegionProbe {
                reachable: true,
                pairs_measured: 2,
                pairs_expected: 4,
                max_lag_ms: Some(150),
                rpo_breached: false,
                ready: true,
                readiness_failures: vec![],
            }
        );
        let ap = &probes["ap-southeast-1"];
        assert_eq!((ap.reachable, ap.pairs_measured, ap.pairs_expected, ap.max_lag_ms), (false, 0, 4, None));
        assert!(!ap.ready);
        assert_eq!(ap.readiness_failures, ["ap-southeast-1 is unreachable: DescribeTable: 503"]);

        // An active Region that is down already has its RegionUnreachable failure: not said twice.
        let named = readiness(vec![Rule::RegionUnreachable { region: "ap-southeast-1".into(), reason: "503".into() }]);
        let ap = &region_probes(&regions(), &pairs, &down, &named)["ap-southeast-1"];
        assert_eq!(ap.readiness_failures.len(), 1, "{:?}", ap.readiness_failures);
        assert!(ap.readiness_failures[0].contains("active but unreachable"), "{:?}", ap.readiness_failures);
    }

    #[test]
    fn a_region_is_breached_by_its_own_slow_or_lost_pairs_and_unready_by_its_own_rules() {
        use PairOutcome::{Failed, Measured, TimedOut};
        let mut lost = pair("eu-west-1", "us-east-1", TimedOut, &[]);
        lost.waited_ms = Some(4_000);
        let pairs = vec![
            pair("us-east-1", "eu-west-1", Measured, &[100]),
            lost,
            pair("us-east-1", "ap-southeast-1", Measured, &[2_500]),
            pair("ap-southeast-1", "us-east-1", Measured, &[90]),
            pair("eu-west-1", "ap-southeast-1", Measured, &[80]),
            pair("ap-southeast-1", "eu-west-1", Failed, &[]),
        ];
        let rules = readiness(vec![Rule::ReplicaNotActive {
            region: "ap-southeast-1".into(),
            status: "CREATING".into(),
            seen_from: "us-east-1".into(),
        }]);

        let probes = region_probes(&regions(), &pairs, &[], &rules);

        let (us, eu, ap) = (&probes["us-east-1"], &probes["eu-west-1"], &probes["ap-southeast-1"]);
        assert_eq!((us.pairs_measured, us.max_lag_ms, us.rpo_breached, us.ready), (3, Some(4_000), true, true));
        assert_eq!((eu.pairs_measured, eu.max_lag_ms, eu.rpo_breached), (2, Some(4_000), true));
        // ap-southeast-1: one pair over the budget, one that could not be measured (not a
        // breach of its own: it is not measured), and a rule about it failed.
        assert_eq!((ap.pairs_measured, ap.max_lag_ms, ap.rpo_breached), (3, Some(2_500), true));
        assert!(!ap.ready && ap.reachable);
        assert!(ap.readiness_failures.len() == 1 && ap.readiness_failures[0].contains("CREATING"), "{ap:?}");
        assert!(eu.ready, "a rule about another Region is not eu-west-1's: {eu:?}");
    }

    #[test]
    fn the_summary_keeps_fleet_figures_to_active_pairs_and_carries_every_region() {
        use PairOutcome::Measured;
        // us-east-1 is evacuated and catching up: its pairs are slow, the active fleet's are not.
        let pairs = vec![
            pair("us-east-1", "eu-west-1", Measured, &[5_000]),
            pair("eu-west-1", "us-east-1", Measured, &[90]),
            pair("eu-west-1", "ap-southeast-1", Measured, &[100]),
            pair("ap-southeast-1", "eu-west-1", Measured, &[110]),
        ];
        let readiness = readiness(vec![]);
        let regions = region_probes(&regions()[..2], &pairs, &[], &readiness);
        let report = ProbeReport {
            workload: "w".into(),
            measured_at_ms: 42,
            duration_ms: 1,
            prober_region: "eu-west-1".into(),
            trigger: Trigger { id: None, resources: vec![], time: None },
            rpo_budget_ms: 2_000,
            rpo_breached: false,
            active_regions: vec!["eu-west-1".into(), "ap-southeast-1".into()],
            evacuated_regions: vec!["us-east-1".into()],
            unreachable_regions: vec![],
            regions: regions.clone(),
            replication: Replication {
                table: "T".into(),
                samples_per_pair: 1,
                sample_timeout_ms: 4_000,
                poll_initial_ms: 10,
                poll_max_ms: 25,
                max_reads_per_sample: 10,
                overall: None,
                pairs,
                calls: 8,
            },
            aurora: None,
            readiness,
            routing: None,
            notes: vec![],
        };

        let summary = report.summary();

        assert_eq!(summary.max_lag_ms, Some(110), "the evacuated Region's 5000 ms is its own, not the fleet's");
        assert_eq!(summary.regions, regions);
        assert!(summary.regions["us-east-1"].rpo_breached);
        let reason = summary.failback_verdict("us-east-1", 42, 60_000).expect_err("over the budget");
        assert!(reason.contains("5000 ms") && reason.contains("2000 ms"), "{reason}");
    }
}

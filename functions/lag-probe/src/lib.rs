//! lag-probe: on an EventBridge schedule, measures the Global Table's replication lag for every
//! ordered pair of Regions against the RPO budget, reports the Aurora global cluster's health and
//! lag, checks every active Region can take 100% and every evacuated one its share back
//! (docs/architecture.md, section 5).
//!
//! A run:
//! 1. decodes the scheduled event (a malformed one is `InvalidEvent`, before any AWS call);
//! 2. reads the fleet status from the ledger replica of its own Region: which Regions are active
//!    and which Evacuated;
//! 3. observes, all at once, each Region's table (`DescribeTable`, `DescribeTimeToLive`) and
//!    Auto Scaling group, every cell's health check, the Aurora global cluster and the lag metrics
//!    of the active secondaries; a Region whose DynamoDB API does not answer is unreachable and is
//!    not called again;
//! 4. measures every ordered pair of reachable Regions concurrently ([`measure`]), Evacuated ones
//!    included: an evacuated Region that is back must be measured before it can fail back. The
//!    fleet-wide figures (`rpo_breached`, the overall lag) cover the pairs between active Regions;
//! 5. evaluates the readiness rules ([`readiness`]), sums up each Region (its pairs and the rules
//!    about it, [`report::region_probes`]), emits EMF metrics, stores the summary (`probe/latest`,
//!    read by failover's failback gate) and the full report (`probe/report`) in the ledger, and
//!    returns the report.
//!
//! Every call has a time limit and the measurement phase a budget, so a run ends well inside a
//! 60 s Lambda timeout even when a Region is down.

pub mod canary;
pub mod config;
pub mod event;
pub mod measure;
pub mod observe;
pub mod readiness;
pub mod report;
pub mod rto;
pub mod stats;

use crate::config::ProbeConfig;
use crate::measure::{PairTarget, SampleOutcome, SamplePlan, within};
use crate::observe::{GlobalClusterView, HealthCheckFlags, TableView};
use crate::report::{
    AuroraLag, AuroraReport, PairOutcome, PairReport, ProbeReport, Replication, UnreachableRegion, region_probes,
};
use crate::stats::{LagStats, PollSchedule};
use futures_util::future::join_all;
use serde_json::Value;
use shared::capacity::GroupSizes;
use shared::clock::Clock;
use shared::ledger::{self, FleetStatus, RegionStatus};
use shared::topology::RdsClusterArn;
use shared::{AwsErrorKind, Error, Ledger, RegionalClients, Topology};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

/// How many of a Region's newest transitions are looked at for the latest evacuation.
const TRANSITIONS_PER_REGION: i32 = 10;

/// What the handler needs, built once per container (see `main.rs`).
pub struct Deps<'a> {
    pub topology: &'a Topology,
    pub clients: &'a RegionalClients,
    /// The Region this function runs in: its ledger replica is read and written, and global
    /// services (Route 53, RDS global clusters) are called from it.
    pub home_region: &'a str,
    pub clock: &'a dyn Clock,
    pub config: &'a ProbeConfig,
}

/// Handles one scheduled invocation; see the crate documentation.
pub async fn handle(payload: Value, deps: &Deps<'_>) -> Result<ProbeReport, Error> {
    let trigger = event::decode_scheduled_event(&payload)?;
    let report = probe(trigger, deps).await?;
    for set in report.metric_sets() {
        set.emit();
    }
    tracing::info!(
        rpo_breached = report.rpo_breached,
        max_lag_ms = ?report.replication.overall.map(|s| s.max_ms),
        readiness_failures = report.readiness.failures.len(),
        unreachable = ?report.unreachable_regions.iter().map(|u| u.region.as_str()).collect::<Vec<_>>(),
        calls = report.replication.calls,
        duration_ms = report.duration_ms,
        "lag-probe run finished"
    );
    store(&report, deps).await?;
    Ok(report)
}

/// Writes the summary and the full report to the ledger replica of the home Region.
async fn store(report: &ProbeReport, deps: &Deps<'_>) -> Result<(), Error> {
    let ledger = home_ledger(deps)?;
    let now = deps.clock.now_ms();
    let limit = deps.config.call_timeout;
    let summary = report.summary();
    let (latest, full) = futures_util::join!(
        within(
            limit,
            "PutItem",
            deps.home_region,
            ledger.put(ledger::PROBE_PK, ledger::PROBE_LATEST_SK, &summary, 1, now)
        ),
        within(
            limit,
            "PutItem",
            deps.home_region,
            ledger.put(ledger::PROBE_PK, ledger::PROBE_REPORT_SK, report, 1, now)
        ),
    );
    if let Err(err) = &full {
        tracing::error!(error = %err, "could not store the full lag-probe report in the ledger");
    }
    latest.inspect_err(|err| tracing::error!(error = %err, "could not store the lag-probe summary; failback gates will not see this run"))
}

fn home_ledger(deps: &Deps<'_>) -> Result<Ledger, Error> {
    let home = deps.clients.region(deps.home_region)?;
    Ok(Ledger::new(home.dynamodb.clone(), &deps.topology.ledger_table, deps.home_region))
}

/// One Region's observations.
struct RegionView {
    region: String,
    table: Result<Option<TableView>, Error>,
    ttl: Result<Option<String>, Error>,
    group: Result<GroupSizes, Error>,
}

/// Runs the probe and builds the report (no metrics, no ledger write), in phases: read the
/// fleet, observe every Region at once, measure every pair, judge readiness, sum up.
pub async fn probe(trigger: event::Trigger, deps: &Deps<'_>) -> Result<ProbeReport, Error> {
    let started = Instant::now();
    let config = deps.config;
    let topology = deps.topology;
    let mut notes = Vec::new();
    let fleet = read_fleet(deps, &mut notes).await?;
    let probed: Vec<String> = topology.regions().map(str::to_owned).collect();
    let mut observed = observe_all(deps, &probed, &fleet).await?;
    let timeout = config.sample_timeout(topology.rpo_budget_ms);
    let schedule = PollSchedule { initial: config.poll_initial, max: config.poll_max, timeout };
    let plan = SamplePlan {
        samples: config.samples,
        schedule,
        ttl_seconds: config.ttl.as_secs(),
        call_timeout: config.call_timeout,
        run_deadline: started + config.run_budget,
    };
    // The RTO bound's reads are independent of the canaries: they run meanwhile.
    let known_checks = observed.health_check_detection.clone();
    let (pairs, rto) = futures_util::join!(
        measure_pairs(deps, &probed, &plan, &mut observed, &mut notes),
        observe_rto(deps, &known_checks)
    );
    let mut readiness = judge_readiness(deps, &fleet, &observed);
    judge_rto(&mut readiness, rto);

    // The fleet's figures: the pairs between active Regions (an evacuated Region catching up
    // after an outage is judged in its own entry, not as a breach of the serving fleet).
    let fleet_pairs = || pairs.iter().filter(|p| p.between(&fleet.active));
    let all_lags: Vec<u64> = fleet_pairs().flat_map(|p| p.samples.iter().map(|s| s.lag_ms)).collect();
    let rpo_breached = fleet_pairs().any(|p| p.breached);
    let calls = pairs.iter().map(|p| p.calls).sum();
    let unreachable_regions: Vec<UnreachableRegion> =
        observed.unreachable.into_iter().map(|(region, error)| UnreachableRegion { region, error }).collect();
    let regions = region_probes(&probed, &pairs, &unreachable_regions, &readiness);
    Ok(ProbeReport {
        workload: topology.name.clone(),
        measured_at_ms: deps.clock.now_ms(),
        duration_ms: started.elapsed().as_millis() as u64,
        prober_region: deps.home_region.to_owned(),
        trigger,
        rpo_budget_ms: topology.rpo_budget_ms,
        rpo_breached,
        active_regions: fleet.active,
        evacuated_regions: fleet.evacuated,
        unreachable_regions,
        regions,
        replication: Replication {
            table: topology.global_table.clone(),
            samples_per_pair: config.samples,
            sample_timeout_ms: timeout.as_millis() as u64,
            poll_initial_ms: config.poll_initial.as_millis() as u64,
            poll_max_ms: config.poll_max.as_millis() as u64,
            max_reads_per_sample: schedule.max_reads(),
            overall: LagStats::of(&all_lags),
            pairs,
            calls,
        },
        aurora: observed.aurora,
        readiness,
        routing: observed.routing,
        notes,
    })
}

/// The fleet as the ledger replica of this Region says: which Regions are active, which
/// evacuated. Unreadable, every Region is treated as active and nothing is judged against it.
struct FleetRead {
    statuses: BTreeMap<String, RegionStatus>,
    active: Vec<String>,
    evacuated: Vec<String>,
    /// Why the statuses could not be read, if they could not.
    error: Option<String>,
}

async fn read_fleet(deps: &Deps<'_>, notes: &mut Vec<String>) -> Result<FleetRead, Error> {
    let ledger = home_ledger(deps)?;
    let (fleet, error) =
        match within(deps.config.call_timeout, "GetItem", deps.home_region, ledger.fleet_status()).await {
            Ok((fleet, _)) => (fleet, None),
            Err(err) => {
                tracing::warn!(error = %err, "fleet status unreadable: every Region is treated as active");
                notes.push(format!("the fleet status could not be read ({err}): every Region is treated as active"));
                (FleetStatus::default(), Some(err.to_string()))
            }
        };
    let regions = || deps.topology.regions();
    let with_status =
        |status: RegionStatus| regions().filter(|r| fleet.status_of(r) == status).map(str::to_owned).collect();
    Ok(FleetRead {
        statuses: regions().map(|r| (r.to_owned(), fleet.status_of(r))).collect(),
        active: with_status(RegionStatus::Active),
        evacuated: with_status(RegionStatus::Evacuated),
        error,
    })
}

/// Everything observed at once, before any canary.
struct Observed {
    views: BTreeMap<String, RegionView>,
    /// Regions whose DynamoDB API did not answer (later also those a pair found unreachable).
    unreachable: BTreeMap<String, String>,
    /// Backend `health_check`: each cell's check, or why it is not judged.
    health_checks: BTreeMap<String, Result<HealthCheckFlags, String>>,
    /// Each health check read: `RequestInterval` x `FailureThreshold`, by id (the RTO bound).
    health_check_detection: BTreeMap<String, Result<Option<u64>, String>>,
    aurora: Option<AuroraReport>,
    /// Backend `arc`: the routing controls and which endpoints answered.
    routing: Option<report::RoutingReport>,
}

async fn observe_all(deps: &Deps<'_>, probed: &[String], fleet: &FleetRead) -> Result<Observed, Error> {
    let (config, topology) = (deps.config, deps.topology);
    let home = deps.clients.region(deps.home_region)?;
    let regions_future = join_all(probed.iter().map(|region| observe_region(deps, region)));
    // Backend `arc`: every cluster endpoint asked once; the records' health checks follow the
    // controls (RECOVERY_CONTROL), so Route 53 is not read at all.
    let arc_future = async {
        let arc = topology.arc()?;
        let cluster = deps.clients.arc(arc, deps.home_region);
        // Each endpoint's client has its own short deadline (shared::arc::ENDPOINT_TIMEOUT).
        Some(cluster.probe_endpoints(&arc.control_panel_arn).await)
    };
    let health_future = join_all(topology.cells.iter().filter(|_| topology.arc().is_none()).map(|cell| async move {
        let view = within(
            config.call_timeout,
            "GetHealthCheck",
            deps.home_region,
            observe::health_check_view(&home.route53, deps.home_region, &cell.health_check_id),
        )
        .await;
        (cell.region.clone(), cell.health_check_id.clone(), view.map_err(|e| e.to_string()))
    }));
    let aurora_future = observe_aurora(deps, &fleet.active);
    let (views, health, aurora, endpoints) =
        futures_util::join!(regions_future, health_future, aurora_future, arc_future);
    let routing = topology.arc().map(|arc| report::RoutingReport::from_answers(arc, endpoints));
    // The checks' timing, for the RTO bound (its alarms usually watch these very checks).
    let health_check_detection =
        health.iter().map(|(_, id, view)| (id.clone(), view.as_ref().map(|v| v.1).map_err(Clone::clone))).collect();
    // Without the ledger's statuses there is nothing to compare the health checks with.
    let health_checks = health
        .into_iter()
        .map(|(region, _, view)| match &fleet.error {
            Some(err) => (region, Err(format!("the ledger's fleet status could not be read: {err}"))),
            None => (region, view.map(|v| v.0)),
        })
        .collect();
    let mut unreachable = BTreeMap::new();
    for view in &views {
        if let Err(err) = &view.table {
            if is_unavailable(err) {
                tracing::warn!(region = %view.region, error = %err, "Region unreachable");
                unreachable.insert(view.region.clone(), err.to_string());
            }
        }
    }
    let views = views.into_iter().map(|v| (v.region.clone(), v)).collect();
    Ok(Observed { views, unreachable, health_checks, health_check_detection, aurora, routing })
}

/// Every ordered pair of Regions, evacuated ones included, measured concurrently; a Region a
/// pair finds unreachable is added to `observed.unreachable`.
async fn measure_pairs(
    deps: &Deps<'_>,
    probed: &[String],
    plan: &SamplePlan,
    observed: &mut Observed,
    notes: &mut Vec<String>,
) -> Vec<PairReport> {
    let views: BTreeMap<&str, &RegionView> = observed.views.iter().map(|(r, v)| (r.as_str(), v)).collect();
    let mut ttl_notes = BTreeSet::new();
    let mut ready_pairs = Vec::new();
    let mut pairs = Vec::new();
    for source in probed {
        for destination in probed.iter().filter(|d| *d != source) {
            match prepare_pair(deps, source, destination, &views, &observed.unreachable, &mut ttl_notes) {
                Ok(target) => ready_pairs.push(target),
                Err(report) => pairs.push(*report),
            }
        }
    }
    notes.extend(ttl_notes);
    let measured = join_all(ready_pairs.into_iter().map(|(target, report)| async move {
        let measurement = measure::measure_pair(&target, plan, deps.clock).await;
        judge_pair(report, measurement, deps.topology.rpo_budget_ms)
    }))
    .await;
    pairs.extend(measured);
    pairs.sort_by(|a, b| (&a.source, &a.destination).cmp(&(&b.source, &b.destination)));
    for pair in &pairs {
        if let (PairOutcome::Unreachable, Some(region), Some(error)) =
            (pair.outcome, &pair.unreachable_region, &pair.error)
        {
            observed.unreachable.entry(region.clone()).or_insert_with(|| error.clone());
        }
    }
    pairs
}

/// A pair's report from its measurement: measured (breached above the budget), timed out (a
/// breach), or failed / unreachable at the side that did not answer.
fn judge_pair(mut report: PairReport, m: measure::PairMeasurement, rpo_budget_ms: u64) -> PairReport {
    report.calls = m.calls;
    report.skipped_samples = m.skipped;
    report.samples = m.samples;
    report.stats = LagStats::of(&report.samples.iter().map(|s| s.lag_ms).collect::<Vec<_>>());
    match m.last {
        None => {
            report.outcome = PairOutcome::Measured;
            report.breached = report.stats.is_some_and(|s| s.max_ms > rpo_budget_ms);
            if m.skipped > 0 {
                report.error = Some(format!("{} sample(s) skipped: the run's budget was spent", m.skipped));
            }
        }
        Some(SampleOutcome::TimedOut { waited_ms, reads, cut_by_run_budget, last_error, .. }) => {
            report.outcome = PairOutcome::TimedOut;
            report.breached = true;
            report.waited_ms = Some(waited_ms);
            report.error = Some(format!(
                "canary not visible in {} after {waited_ms} ms ({reads} reads){}{}",
                report.destination,
                if cut_by_run_budget { "; cut short by the run's budget" } else { "" },
                last_error.map(|e| format!("; last read error: {e}")).unwrap_or_default()
            ));
        }
        Some(SampleOutcome::WriteFailed(err)) => {
            let source = report.source.clone();
            fail_pair(&mut report, &source, err)
        }
        Some(SampleOutcome::ReadFailed { error, .. }) => {
            let destination = report.destination.clone();
            fail_pair(&mut report, &destination, error)
        }
        Some(SampleOutcome::Visible(_)) => {}
    }
    report
}

/// The readiness rules over what was observed ([`readiness`]); Regions found unreachable are
/// judged by that alone.
fn judge_readiness(deps: &Deps<'_>, fleet: &FleetRead, observed: &Observed) -> readiness::Readiness {
    let unreachable = &observed.unreachable;
    let reachable = || observed.views.iter().filter(|(r, _)| !unreachable.contains_key(*r));
    let tables: BTreeMap<String, Result<Option<TableView>, String>> = reachable()
        .map(|(r, v)| (r.clone(), v.table.as_ref().map(Clone::clone).map_err(ToString::to_string)))
        .collect();
    let groups: BTreeMap<String, Result<GroupSizes, String>> =
        reachable().map(|(r, v)| (r.clone(), v.group.as_ref().map(|g| *g).map_err(ToString::to_string))).collect();
    let cluster_result: Option<Result<GlobalClusterView, String>> = observed
        .aurora
        .as_ref()
        .map(|a| a.cluster.clone().ok_or_else(|| a.unreadable.first().cloned().unwrap_or_else(|| "not read".into())));
    // As with the health checks: without the ledger's statuses there is nothing to compare the
    // routing controls with.
    let routing_states = observed.routing.as_ref().map(report::RoutingReport::states_by_region);
    let unjudged = fleet.error.as_ref().map(|err| format!("the ledger's fleet status could not be read: {err}"));
    let readiness = readiness::evaluate(&readiness::Observed {
        topology: deps.topology,
        statuses: &fleet.statuses,
        unreachable,
        tables: &tables,
        groups: &groups,
        aurora: cluster_result.as_ref(),
        health_checks: &observed.health_checks,
        routing_controls: routing_states.as_ref().map(|read| match (read, &unjudged) {
            (Err(reason), _) => readiness::RoutingRead::ClusterUnreachable { prober: deps.home_region, reason },
            (Ok(_), Some(reason)) => readiness::RoutingRead::Unjudged(reason),
            (Ok(on), None) => readiness::RoutingRead::Read(on),
        }),
    });
    for failure in &readiness.failures {
        tracing::warn!(rule = failure.rule.name(), region = failure.rule.region(), "{}", failure.message);
    }
    readiness
}

/// Every Region's RTO bound ([`rto`]) from the deployment's configuration: its alarms (one
/// DescribeAlarms per Region they live in), the health checks they watch, the latency records'
/// TTLs and the latest evacuation's orchestration time in the ledger.
async fn observe_rto(
    deps: &Deps<'_>,
    known_checks: &BTreeMap<String, Result<Option<u64>, String>>,
) -> Vec<rto::RtoBound> {
    let (topology, limit, home) = (deps.topology, deps.config.call_timeout, deps.home_region);
    let mut alarms_by_region: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for cell in &topology.cells {
        for alarm in &cell.alarms {
            alarms_by_region.entry(cell.alarm_region(alarm)).or_default().push(alarm.name.clone());
        }
    }
    let alarm_reads = join_all(alarms_by_region.iter().map(|(region, names)| async move {
        let read = match deps.clients.region(region) {
            Ok(clients) => {
                within(limit, "DescribeAlarms", region, observe::alarm_timings(&clients.cloudwatch, region, names))
                    .await
            }
            Err(err) => Err(err),
        };
        ((*region).to_owned(), read.map_err(|e| e.to_string()))
    }));
    let home_clients = deps.clients.region(home);
    let ttl_read = async {
        let clients = home_clients.as_ref().map_err(ToString::to_string)?;
        let routing = &topology.routing;
        let read = observe::latency_record_ttls(&clients.route53, home, &routing.hosted_zone_id, &routing.record_name);
        within(limit, "ListResourceRecordSets", home, read).await.map_err(|e| e.to_string())
    };
    let orchestration_read = async {
        let ledger = home_ledger(deps).map_err(|e| e.to_string())?;
        let regions: Vec<String> = topology.regions().map(str::to_owned).collect();
        let read = observe::latest_orchestration_seconds(&ledger, &regions, TRANSITIONS_PER_REGION);
        within(limit, "Query", home, read).await.map_err(|e| e.to_string())
    };
    let (alarm_reads, ttls, orchestration) = futures_util::join!(alarm_reads, ttl_read, orchestration_read);
    let timings: BTreeMap<String, Result<Vec<rto::AlarmTiming>, String>> = alarm_reads.into_iter().collect();
    // The health checks the alarms watch, each read once: the cells' were read for readiness.
    let check_ids: BTreeSet<String> = timings
        .values()
        .filter_map(|t| t.as_ref().ok())
        .flatten()
        .filter_map(|a| a.health_check_id.clone())
        .filter(|id| !known_checks.contains_key(id))
        .collect();
    let check_reads = join_all(check_ids.into_iter().map(|id| async {
        let read = match &home_clients {
            Ok(clients) => {
                let read = observe::health_check_view(&clients.route53, home, &id);
                within(limit, "GetHealthCheck", home, read).await.map(|v| v.1).map_err(|e| e.to_string())
            }
            Err(err) => Err(err.to_string()),
        };
        (id, read)
    }))
    .await;
    let mut checks = known_checks.clone();
    checks.extend(check_reads);
    let orchestration = match orchestration {
        Ok(seconds) => seconds,
        Err(err) => {
            tracing::warn!(error = %err, "the latest evacuation's orchestration time could not be read");
            None
        }
    };
    topology
        .cells
        .iter()
        .map(|cell| {
            let detections: Vec<rto::DetectionRead> = cell
                .alarms
                .iter()
                .map(|alarm| {
                    let region = cell.alarm_region(alarm);
                    let timing = match timings.get(region) {
                        Some(Ok(found)) => found
                            .iter()
                            .find(|t| t.name == alarm.name)
                            .cloned()
                            .ok_or_else(|| format!("DescribeAlarms in {region}: no metric alarm {}", alarm.name)),
                        Some(Err(err)) => Err(format!("alarm {} could not be read: {err}", alarm.name)),
                        None => Err(format!("alarm {} was not read", alarm.name)),
                    };
                    let health_check_seconds = match timing.as_ref().ok().and_then(|t| t.health_check_id.as_ref()) {
                        Some(id) => match checks.get(id) {
                            Some(Ok(seconds)) => Ok(*seconds),
                            Some(Err(err)) => Err(format!("health check {id} could not be read: {err}")),
                            None => Err(format!("health check {id} was not read")),
                        },
                        None => Ok(None),
                    };
                    rto::DetectionRead { alarm: timing, health_check_seconds }
                })
                .collect();
            let ttl = match &ttls {
                Ok(by_region) => by_region.get(&cell.region).copied().ok_or_else(|| {
                    format!("no latency record {} for {} in the hosted zone", topology.routing.record_name, cell.region)
                }),
                Err(err) => Err(format!("the latency records could not be read: {err}")),
            };
            rto::bound(&cell.region, &detections, &ttl, orchestration, topology.rto_objective_seconds)
        })
        .collect()
}

/// The RTO bounds go into readiness, not into its verdict: a Region whose worst case exceeds the
/// objective can still take traffic (its own failure would take longer than promised to move),
/// and a bound that could not be read says why in its notes. Both are logged.
fn judge_rto(readiness: &mut readiness::Readiness, bounds: Vec<rto::RtoBound>) {
    for bound in &bounds {
        if let Some(reason) = bound.unknown_reason() {
            tracing::warn!(region = %bound.region, %reason, "the RTO bound could not be computed");
        } else if bound.exceeds_objective {
            tracing::warn!(
                region = %bound.region,
                bound_seconds = ?bound.bound_seconds,
                objective_seconds = bound.objective_seconds,
                terms = ?bound.terms,
                "the worst-case time to move this Region's users exceeds the RTO objective"
            );
        }
    }
    readiness.rto = bounds;
}

/// A pair that could not be written to or read from: unreachable when the Region did not answer,
/// failed otherwise.
fn fail_pair(report: &mut PairReport, region: &str, err: Error) {
    if is_unavailable(&err) {
        report.outcome = PairOutcome::Unreachable;
        report.breached = false;
        report.unreachable_region = Some(region.to_owned());
    } else {
        report.outcome = PairOutcome::Failed;
        report.breached = true;
    }
    report.error = Some(err.to_string());
}

fn is_unavailable(err: &Error) -> bool {
    matches!(err, Error::Aws { kind: AwsErrorKind::Unavailable, .. })
}

/// Reads one Region's table, TTL and group, concurrently, each within the call limit. When
/// the table read shows the Region down, the other results are not waited for longer than that.
async fn observe_region(deps: &Deps<'_>, region: &str) -> RegionView {
    let limit = deps.config.call_timeout;
    let table_name = &deps.topology.global_table;
    let clients = match deps.clients.region(region) {
        Ok(c) => c,
        // No clients for the Region (`RegionalClients::region` fails only that way): none of the
        // three reads can run, and each keeps the typed cause (`Error` is not `Clone`).
        Err(err) => {
            let unknown = || Error::UnknownRegion(region.to_owned());
            return RegionView {
                region: region.to_owned(),
                table: Err(err),
                ttl: Err(unknown()),
                group: Err(unknown()),
            };
        }
    };
    let asg = deps.topology.cell(region).map(|c| c.auto_scaling_group.as_str()).unwrap_or_default();
    let (table, ttl, group) = futures_util::join!(
        within(limit, "DescribeTable", region, observe::describe_table(&clients.dynamodb, region, table_name)),
        within(limit, "DescribeTimeToLive", region, observe::ttl_attribute(&clients.dynamodb, region, table_name)),
        within(limit, "DescribeAutoScalingGroups", region, observe::group_sizes(&clients.autoscaling, region, asg)),
    );
    RegionView { region: region.to_owned(), table, ttl, group }
}

/// The canary target of one pair, or the report of why it cannot be measured.
#[allow(clippy::type_complexity)]
fn prepare_pair<'a>(
    deps: &'a Deps<'_>,
    source: &'a str,
    destination: &'a str,
    views: &BTreeMap<&str, &'a RegionView>,
    unreachable: &BTreeMap<String, String>,
    ttl_notes: &mut BTreeSet<String>,
) -> Result<(PairTarget<'a>, PairReport), Box<PairReport>> {
    let table = deps.topology.global_table.as_str();
    let failed = |msg: String| {
        let mut r = PairReport::new(source, destination, PairOutcome::Failed);
        r.error = Some(msg);
        Box::new(r)
    };
    for region in [source, destination] {
        if let Some(err) = unreachable.get(region) {
            let mut r = PairReport::new(source, destination, PairOutcome::Unreachable);
            r.unreachable_region = Some(region.to_owned());
            r.error = Some(format!("{region} is unreachable: {err}"));
            return Err(Box::new(r));
        }
    }
    let view_of = |region: &str| -> Result<&'a TableView, Box<PairReport>> {
        let Some(view) = views.get(region).copied() else {
            return Err(failed(format!("{region} was not observed")));
        };
        match &view.table {
            Ok(Some(t)) if matches!(t.status.as_str(), "ACTIVE" | "UPDATING") => Ok(t),
            Ok(Some(t)) => Err(failed(format!("the replica of {table} in {region} is {}, not ACTIVE", t.status))),
            Ok(None) => Err(failed(format!("{table} has no replica in {region}"))),
            Err(err) => Err(failed(format!("{table} in {region} could not be described: {err}"))),
        }
    };
    let source_view = view_of(source)?;
    view_of(destination)?;
    let schema = source_view.key_schema.as_ref().map_err(|e| failed(e.clone()))?;
    let key = schema.canary_key(source, destination, deps.home_region).map_err(|e| failed(e.to_string()))?;
    let ttl_attribute = match views.get(source).map(|v| &v.ttl) {
        Some(Ok(Some(name))) => name.as_str(),
        Some(Ok(None)) => {
            ttl_notes.insert(format!(
                "TTL is not enabled on {table} in {source}: canaries carry `{}` (epoch seconds) but will not expire until TTL is enabled on that attribute",
                canary::DEFAULT_TTL_ATTRIBUTE
            ));
            canary::DEFAULT_TTL_ATTRIBUTE
        }
        Some(Err(err)) => {
            ttl_notes.insert(format!(
                "the TTL setting of {table} in {source} could not be read ({err}): canaries carry `{}`",
                canary::DEFAULT_TTL_ATTRIBUTE
            ));
            canary::DEFAULT_TTL_ATTRIBUTE
        }
        None => canary::DEFAULT_TTL_ATTRIBUTE,
    };
    let clients = |region: &str| deps.clients.region(region).map_err(|e| failed(e.to_string()));
    let mut report = PairReport::new(source, destination, PairOutcome::Measured);
    report.canary_key = Some(canary::canary_partition_key(source, destination, deps.home_region));
    report.ttl_attribute = Some(ttl_attribute.to_owned());
    let target = PairTarget {
        source,
        destination,
        source_dynamodb: &clients(source)?.dynamodb,
        destination_dynamodb: &clients(destination)?.dynamodb,
        table,
        key,
        ttl_attribute,
    };
    Ok((target, report))
}

/// The global cluster (from the home Region, else another active Region) and the lag metrics of
/// its secondary members (each in its own Region).
async fn observe_aurora(deps: &Deps<'_>, active: &[String]) -> Option<AuroraReport> {
    let aurora = deps.topology.aurora.as_ref()?;
    let limit = deps.config.call_timeout;
    let id = aurora.global_cluster_id.as_str();
    let mut report = AuroraReport {
        global_cluster_id: id.to_owned(),
        read_from: None,
        cluster: None,
        writer_region: None,
        lag: Vec::new(),
        unreadable: Vec::new(),
    };
    // Global clusters are global: any Region's RDS API can describe it. Try home, then one other.
    let candidates: Vec<&str> = std::iter::once(deps.home_region)
        .chain(active.iter().map(String::as_str).filter(|r| *r != deps.home_region))
        .take(2)
        .collect();
    for region in candidates {
        let Ok(clients) = deps.clients.region(region) else { continue };
        match within(limit, "DescribeGlobalClusters", region, observe::global_cluster(&clients.rds, region, id)).await {
            Ok(view) => {
                report.read_from = Some(region.to_owned());
                report.cluster = Some(view);
                break;
            }
            Err(err) => report.unreadable.push(format!("the global cluster {id} could not be read: {err}")),
        }
    }
    if report.cluster.is_some() {
        report.unreadable.clear();
    }
    let writer_arn =
        report.cluster.as_ref().and_then(|c| c.members.iter().find(|m| m.is_writer)).map(|m| m.cluster_arn.clone());
    report.writer_region =
        report.cluster.as_ref().and_then(|c| c.members.iter().find(|m| m.is_writer)).and_then(|m| m.region.clone());
    if report.cluster.is_some() && writer_arn.is_none() {
        report.unreadable.push(format!("the global cluster {id} has no writer member"));
    }

    // Lag metrics: every active cell's cluster except the writer (the primary has no lag).
    let now_ms = deps.clock.now_ms();
    let secondaries: Vec<(&str, &str)> = deps
        .topology
        .cells
        .iter()
        .filter(|c| active.contains(&c.region))
        .filter_map(|c| Some((c.region.as_str(), c.aurora_cluster_arn.as_deref()?)))
        .filter(|(_, arn)| Some(*arn) != writer_arn.as_deref())
        .collect();
    let lags = join_all(secondaries.into_iter().map(|(region, arn)| async move {
        let cluster_id = RdsClusterArn::parse(arn).map(|a| a.cluster_id.to_owned()).unwrap_or_else(|| arn.to_owned());
        let clients = deps.clients.region(region);
        let read = match clients {
            Ok(c) => {
                within(
                    limit,
                    "GetMetricData",
                    region,
                    observe::aurora_lag_metrics(&c.cloudwatch, region, &cluster_id, now_ms),
                )
                .await
            }
            Err(err) => Err(err),
        };
        (region, cluster_id, read)
    }))
    .await;
    for (region, cluster_id, read) in lags {
        let mut lag = AuroraLag {
            region: region.to_owned(),
            cluster_id: cluster_id.clone(),
            replication_lag_ms: None,
            rpo_lag_ms: None,
        };
        match read {
            Ok(values) => {
                for (name, value) in values {
                    match (name, value) {
                        ("AuroraGlobalDBReplicationLag", v @ Some(_)) => lag.replication_lag_ms = v,
                        ("AuroraGlobalDBRPOLag", v @ Some(_)) => lag.rpo_lag_ms = v,
                        (name, _) => report.unreadable.push(format!(
                            "{name} for {cluster_id} in {region}: no datapoint in the last {} min",
                            observe::METRIC_LOOKBACK_SECONDS / 60
                        )),
                    }
                }
            }
            Err(err) => report.unreadable.push(format!("the lag metrics of {cluster_id} could not be read: {err}")),
        }
        report.lag.push(lag);
    }
    Some(report)
}

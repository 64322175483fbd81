//! `multisite status`: the fleet on one screen, in phases: observe (every read at once, each
//! failure kept as what could not be read), then render (pure).

use crate::{CliError, Fleet, format_ms};
use futures_util::future::join_all;
use serde::Serialize;
use shared::capacity::GroupSizes;
use shared::ledger::{FleetStatus, ProbeSummary, RegionProbe, SCALING_PK};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Everything `status` shows (its `--json` form).
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub workload: String,
    pub arbiter: String,
    pub routing_backend: &'static str,
    pub regions: Vec<RegionLine>,
    pub lag_probe: Option<ProbeLine>,
    /// Evacuations waiting for `multisite approve` (approval mode), oldest first.
    pub pending_approvals: Vec<PendingApproval>,
    /// What could not be read, each naming the read and why.
    pub unreadable: Vec<String>,
}

/// One Region.
#[derive(Debug, Clone, Serialize)]
pub struct RegionLine {
    pub region: String,
    /// `Active` or `Evacuated` in the ledger; `unknown` when the fleet status could not be read.
    pub status: String,
    pub since: Option<String>,
    /// The alarm change (or operator) that set the status.
    pub cause: Option<String>,
    /// Whether latency routing sends users here: `true` in, `false` out, `None` not read.
    pub in_routing: Option<bool>,
    /// What routing was read from (the health check's flags, or the routing control).
    pub routing: String,
    /// The Aurora writer is in this Region.
    pub writer: bool,
    /// The latest lag-probe's entry for this Region.
    pub probe: Option<RegionProbe>,
    pub capacity: Option<Capacity>,
    /// The scaler's record of this Region's group, while it covers an evacuation.
    pub scaling: Option<Scaling>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Capacity {
    pub asg: String,
    pub sizes: GroupSizes,
    pub in_service: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Scaling {
    pub baseline: GroupSizes,
    pub applied: GroupSizes,
    /// The evacuated Regions this group's capacity covers.
    pub covering: Vec<String>,
    pub settled: bool,
}

/// An evacuation waiting for an operator.
#[derive(Debug, Clone, Serialize)]
pub struct PendingApproval {
    pub region: String,
    /// What `multisite approve` takes.
    pub change: String,
    pub alarm: String,
    pub since: String,
    pub waiting_seconds: u64,
    /// When it acts unapproved (`approval_timeout_seconds`), if ever.
    pub times_out_at: Option<String>,
    /// Whether the approval topic was told.
    pub notified: bool,
}

/// The latest lag-probe run.
#[derive(Debug, Clone, Serialize)]
pub struct ProbeLine {
    pub measured_at: String,
    pub age_seconds: u64,
    pub max_lag_ms: Option<u64>,
    pub rpo_budget_ms: u64,
    pub rpo_breached: bool,
    pub readiness_failures: usize,
    pub unreachable_regions: Vec<String>,
}

/// What was read, before it is put in lines.
struct Observed {
    fleet: Result<FleetStatus, String>,
    probe: Result<Option<ProbeSummary>, String>,
    scaling: Result<Vec<scaler::record::GroupScaling>, String>,
    /// Region -> in routing (and how it was read).
    routing: BTreeMap<String, Result<(bool, String), String>>,
    writer: Result<Option<String>, String>,
    groups: BTreeMap<String, Result<Capacity, String>>,
    approvals: Result<Vec<failover::approval::ApprovalRequest>, String>,
}

/// Reads everything at once and puts it in lines. Only a missing arbiter client fails it; every
/// read that fails is named in `unreadable`.
pub async fn status(fleet: &Fleet, now_ms: u64) -> Result<Status, CliError> {
    let observed = observe(fleet).await?;
    Ok(render_status(fleet, observed, now_ms))
}

async fn observe(fleet: &Fleet) -> Result<Observed, CliError> {
    let topology = &fleet.topology;
    let ledger = fleet.ledger()?;
    let arbiter = topology.arbiter_region();
    let text = |e: shared::Error| e.to_string();
    let fleet_read = async { ledger.fleet_status().await.map(|(f, _)| f).map_err(text) };
    let probe_read = async { ledger.latest_probe().await.map(|r| r.map(|r| r.body)).map_err(text) };
    let scaling_read = async {
        let records = ledger.list::<scaler::record::GroupScaling>(SCALING_PK).await.map_err(text)?;
        Ok(records.into_iter().map(|r| r.body).collect())
    };
    let routing_read = async {
        let mut routing = BTreeMap::new();
        match topology.arc() {
            Some(arc) => {
                let states = fleet.clients.arc(arc, arbiter).states(&arc.control_panel_arn).await;
                for cell in &topology.cells {
                    let read = match (&states, arc.routing_controls.get(&cell.region)) {
                        (Ok(states), Some(control)) => match states.on.get(control) {
                            Some(on) => Ok((*on, format!("routing control {}", if *on { "On" } else { "Off" }))),
                            None => Err(format!("routing control {control} not in the control panel")),
                        },
                        (Ok(_), None) => Err("no routing control in the topology".into()),
                        (Err(err), _) => Err(err.to_string()),
                    };
                    routing.insert(cell.region.clone(), read);
                }
            }
            None => {
                let route53 = fleet.clients.region(arbiter).map(|c| c.route53.clone());
                let reads = join_all(topology.cells.iter().map(|cell| {
                    let route53 = route53.as_ref().map_err(|e| e.to_string());
                    async move {
                        let route53 = route53?;
                        let flags = shared::aws::health_check_flags(route53, arbiter, &cell.health_check_id).await;
                        let flags = flags.map_err(|e| e.to_string())?;
                        let how = if flags.forced_unhealthy() {
                            format!("health check {} forced unhealthy", cell.health_check_id)
                        } else {
                            format!("health check {}", cell.health_check_id)
                        };
                        Ok::<_, String>((!flags.forced_unhealthy(), how))
                    }
                }))
                .await;
                for (cell, read) in topology.cells.iter().zip(reads) {
                    routing.insert(cell.region.clone(), read);
                }
            }
        }
        routing
    };
    let writer_read = async {
        let Some(aurora) = &topology.aurora else { return Ok(None) };
        // The global cluster as any member Region sees it: the first that answers.
        let mut last = String::from("no Region to ask");
        for region in topology.regions() {
            let Ok(clients) = fleet.clients.region(region) else { continue };
            match shared::aws::describe_global_cluster(&clients.rds, region, &aurora.global_cluster_id).await {
                Ok(view) => return Ok(view.members.into_iter().find(|m| m.is_writer).and_then(|m| m.region)),
                Err(err) => last = err.to_string(),
            }
        }
        Err(last)
    };
    let groups_read = join_all(topology.cells.iter().map(|cell| async move {
        let read = match fleet.clients.region(&cell.region) {
            Ok(clients) => shared::aws::describe_group(&clients.autoscaling, &cell.region, &cell.auto_scaling_group)
                .await
                .map(|g| Capacity { asg: cell.auto_scaling_group.clone(), sizes: g.sizes, in_service: g.in_service }),
            Err(err) => Err(err),
        };
        (cell.region.clone(), read.map_err(|e| e.to_string()))
    }));
    let approvals_read = async {
        let records = ledger.list::<failover::approval::ApprovalRequest>(shared::ledger::APPROVAL_PK).await;
        Ok(records.map_err(text)?.into_iter().map(|r| r.body).collect())
    };
    let (fleet_status, probe, scaling, routing, writer, groups, approvals) = futures_util::join!(
        fleet_read,
        probe_read,
        scaling_read,
        routing_read,
        writer_read,
        groups_read,
        approvals_read
    );
    Ok(Observed {
        fleet: fleet_status,
        probe,
        scaling,
        routing,
        writer,
        groups: groups.into_iter().collect(),
        approvals,
    })
}

/// The lines of `status` from what was read (pure).
fn render_status(fleet: &Fleet, observed: Observed, now_ms: u64) -> Status {
    let topology = &fleet.topology;
    let mut unreadable = Vec::new();
    let fleet_status = observed
        .fleet
        .map_err(|e| unreadable.push(format!("the fleet status (ledger, {}): {e}", topology.arbiter_region())))
        .ok();
    let probe =
        observed.probe.map_err(|e| unreadable.push(format!("the latest lag-probe (ledger): {e}"))).ok().flatten();
    let scaling = observed
        .scaling
        .map_err(|e| unreadable.push(format!("the scaler's records (ledger): {e}")))
        .unwrap_or_default();
    let writer = observed.writer.map_err(|e| unreadable.push(format!("the Aurora global cluster: {e}"))).ok().flatten();
    let mut pending_approvals: Vec<PendingApproval> = observed
        .approvals
        .map_err(|e| unreadable.push(format!("the pending approvals (ledger): {e}")))
        .unwrap_or_default()
        .into_iter()
        .filter(|a| a.state == failover::approval::ApprovalState::Pending)
        .map(|a| PendingApproval {
            region: a.region,
            change: a.change_id,
            alarm: a.change.alarm_name,
            since: format_ms(a.requested_at_ms),
            waiting_seconds: now_ms.saturating_sub(a.requested_at_ms) / 1000,
            times_out_at: a.timeout_at_ms.map(format_ms),
            notified: a.notified,
        })
        .collect();
    pending_approvals.sort_by_key(|a| std::cmp::Reverse(a.waiting_seconds));
    let mut regions = Vec::new();
    for cell in &topology.cells {
        let region = &cell.region;
        let entry = fleet_status.as_ref().and_then(|f| f.regions.get(region));
        let status = match (&fleet_status, entry) {
            (None, _) => "unknown".to_owned(),
            (Some(f), _) => format!("{:?}", f.status_of(region)),
        };
        let (in_routing, routing) = match observed.routing.get(region) {
            Some(Ok((on, how))) => (Some(*on), how.clone()),
            Some(Err(err)) => {
                unreadable.push(format!("{region}'s routing: {err}"));
                (None, "not read".into())
            }
            None => (None, "not read".into()),
        };
        let capacity = match observed.groups.get(region) {
            Some(Ok(c)) => Some(c.clone()),
            Some(Err(err)) => {
                unreadable.push(format!("{region}'s Auto Scaling group {}: {err}", cell.auto_scaling_group));
                None
            }
            None => None,
        };
        let scaling = scaling.iter().find(|s| s.region == *region && s.is_open()).map(|s| Scaling {
            baseline: s.baseline,
            applied: s.applied,
            covering: s.covering.keys().cloned().collect(),
            settled: s.settled,
        });
        regions.push(RegionLine {
            region: region.clone(),
            status,
            since: entry.map(|e| format_ms(e.changed_at_ms)),
            cause: entry.map(|e| e.cause.clone()),
            in_routing,
            routing,
            writer: writer.as_deref() == Some(region.as_str()),
            probe: probe.as_ref().and_then(|p| p.regions.get(region).cloned()),
            capacity,
            scaling,
        });
    }
    Status {
        workload: topology.name.clone(),
        arbiter: topology.arbiter_region().to_owned(),
        routing_backend: if topology.arc().is_some() { "arc" } else { "health_check" },
        regions,
        lag_probe: probe.map(|p| ProbeLine {
            measured_at: format_ms(p.measured_at_ms),
            age_seconds: now_ms.saturating_sub(p.measured_at_ms) / 1000,
            max_lag_ms: p.max_lag_ms,
            rpo_budget_ms: p.rpo_budget_ms,
            rpo_breached: p.rpo_breached,
            readiness_failures: p.readiness_failures,
            unreachable_regions: p.unreachable_regions,
        }),
        pending_approvals,
        unreadable,
    }
}

impl Status {
    /// The human screen.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "multisite status: {} ({} Regions, arbiter {}, routing {})",
            self.workload,
            self.regions.len(),
            self.arbiter,
            self.routing_backend
        );
        let _ = writeln!(
            s,
            "{:<16} {:<10} {:<21} {:<12} {:<9} {:<7} {:<14} CAPACITY (min/desired/max, InService)",
            "REGION", "STATUS", "SINCE", "ROUTING", "WRITER", "PROBE", "MAX LAG"
        );
        for r in &self.regions {
            let routing = match r.in_routing {
                Some(true) => "in",
                Some(false) => "out",
                None => "not read",
            };
            let probe = match &r.probe {
                Some(p) if !p.reachable => "down",
                Some(p) if p.ready => "ready",
                Some(_) => "not ready",
                None => "-",
            };
            let lag = r.probe.as_ref().and_then(|p| p.max_lag_ms).map_or("-".into(), |l| format!("{l} ms"));
            let capacity = r.capacity.as_ref().map_or("not read".into(), |c| format!("{} ({})", c.sizes, c.in_service));
            let _ = writeln!(
                s,
                "{:<16} {:<10} {:<21} {:<12} {:<9} {:<7} {:<14} {capacity}",
                r.region,
                r.status,
                r.since.as_deref().unwrap_or("-"),
                routing,
                if r.writer { "writer" } else { "" },
                probe,
                lag
            );
        }
        for r in &self.regions {
            if let Some(cause) = &r.cause {
                let _ = writeln!(s, "  {}: {} by {cause} ({})", r.region, r.status, r.routing);
            }
            if let Some(scaling) = &r.scaling {
                let _ = writeln!(
                    s,
                    "  {}: scaled from {} to {} covering {}{}",
                    r.region,
                    scaling.baseline,
                    scaling.applied,
                    scaling.covering.join(", "),
                    if scaling.settled { "" } else { " (resize in progress)" }
                );
            }
            if let Some(p) = &r.probe {
                for failure in &p.readiness_failures {
                    let _ = writeln!(s, "  {}: {failure}", r.region);
                }
            }
        }
        match &self.lag_probe {
            Some(p) => {
                let _ = writeln!(
                    s,
                    "lag-probe: measured {} ({} s ago), max lag {} (budget {} ms): {}; readiness failures {}{}",
                    p.measured_at,
                    p.age_seconds,
                    p.max_lag_ms.map_or("-".into(), |l| format!("{l} ms")),
                    p.rpo_budget_ms,
                    if p.rpo_breached { "BREACHED" } else { "within budget" },
                    p.readiness_failures,
                    if p.unreachable_regions.is_empty() {
                        String::new()
                    } else {
                        format!("; unreachable: {}", p.unreachable_regions.join(", "))
                    }
                );
            }
            None => {
                let _ = writeln!(s, "lag-probe: no run recorded yet");
            }
        }
        for a in &self.pending_approvals {
            let _ = writeln!(
                s,
                "PENDING APPROVAL: evacuate {} (alarm {}) since {} ({} s){}{}: multisite approve {}",
                a.region,
                a.alarm,
                a.since,
                a.waiting_seconds,
                a.times_out_at.as_ref().map(|t| format!(", acts unapproved at {t}")).unwrap_or_default(),
                if a.notified { "" } else { ", operator topic NOT told yet" },
                a.change
            );
        }
        for what in &self.unreadable {
            let _ = writeln!(s, "could not read {what}");
        }
        s
    }
}

//! The drill's report: timeline, figures, traffic split and checks; rendered as text or JSON.

use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write;
use std::sync::Mutex;
use std::time::Instant;

/// One event of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    /// Milliseconds since the drill started.
    pub t_ms: u64,
    pub what: String,
}

/// One PASS/FAIL check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    pub detail: String,
}

/// Which Region Route 53 answers for users in one area, at each phase.
#[derive(Debug, Clone, Serialize)]
pub struct AreaRouting {
    pub area: String,
    pub client_ip: String,
    pub before: Option<String>,
    pub during: Option<String>,
    pub after: Option<String>,
}

/// Replication lag measured by the lag-probe (all pairs).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Lag {
    pub samples: usize,
    pub p50_ms: u64,
    pub p99_ms: u64,
    pub max_ms: u64,
}

/// The application writes and what became of them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Writes {
    /// Acknowledged writes per source Region.
    pub acknowledged: std::collections::BTreeMap<String, usize>,
    /// Writes the failing Region refused during the outage (the client saw the error: not data
    /// loss).
    pub rejected: usize,
    /// Writes acknowledged by the failed Region before the outage.
    pub acknowledged_by_failed_region_before_outage: usize,
    /// Of those, not readable in some survivor during the outage (caught in the replication
    /// window).
    pub lost: usize,
    /// How long before the outage the oldest lost write was acknowledged, ms.
    pub oldest_lost_before_outage_ms: Option<u64>,
    /// Survivors' own writes missing in another survivor (must be 0).
    pub survivor_writes_missing: usize,
    /// Lost writes that showed up in the survivors once the failed Region was back.
    pub recovered_after_failback: Option<usize>,
}

/// The measured figures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    /// Alarm ALARM -> Route 53 answers no area with the failed Region.
    pub detection_to_routing_ms: Option<u64>,
    /// Alarm ALARM -> the Aurora writer is in a survivor, no failover in progress.
    pub writer_move_ms: Option<u64>,
    /// Alarm ALARM -> every survivor's group at its target with its instances InService.
    pub scale_up_ms: Option<u64>,
    /// Alarm OK (failback gates open) -> routing back to the original split.
    pub failback_ms: Option<u64>,
    /// Baseline replication lag (lag-probe, every ordered Region pair).
    pub replication_lag: Option<Lag>,
    pub writes: Writes,
    /// Wall-clock time of the whole drill, ms.
    pub total_ms: u64,
    /// `--routing health_check --route53-down`: Route 53 answers again -> the scheduled reconcile
    /// has forced the failed Region's health check unhealthy.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route53_return_to_inversion_ms: Option<u64>,
}

/// The CloudFormation answer the provisioner sent to the drill's ResponseURL.
#[derive(Debug, Clone, Serialize)]
pub struct ProvisionerAnswer {
    pub logical_resource_id: String,
    pub status: String,
    pub physical_resource_id: String,
    pub reason: Option<String>,
    pub data_keys: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub drill: String,
    pub regions: Vec<String>,
    pub failed_region: String,
    pub survivors: Vec<String>,
    pub emulator_url: Option<String>,
    /// Function -> the role its handler ran as (`<stack>-<LogicalId>`, the stack of the Region it
    /// ran in).
    pub roles: std::collections::BTreeMap<String, String>,
    pub replication_delay_ms: u64,
    pub rpo_budget_ms: u64,
    pub cooldown_seconds: u64,
    /// How failover took the Region out of routing: `health_check` or `arc`.
    pub routing_backend: String,
    /// Route 53's control plane was down from just before the outage (`--route53-down`).
    pub route53_control_plane_down: bool,
    /// What this run could not promise, and why (e.g. routing left to the endpoint health checks
    /// while Route 53's control plane was down).
    pub degradations: Vec<String>,
    pub provisioner: Vec<ProvisionerAnswer>,
    pub timeline: Vec<Event>,
    pub traffic_split: Vec<AreaRouting>,
    pub figures: Figures,
    pub checks: Vec<Check>,
    pub passed: bool,
}

/// Collects the timeline and prints each event as it happens.
pub struct Timeline {
    started: Instant,
    events: Mutex<Vec<Event>>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Timeline {
    pub fn new(started: Instant, out: Box<dyn Write + Send>) -> Self {
        Self { started, events: Mutex::new(Vec::new()), out: Mutex::new(out) }
    }

    pub fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Records and prints one event.
    pub fn event(&self, what: impl Into<String>) {
        let event = Event { t_ms: self.ms(), what: what.into() };
        self.print(&format!("{:>9}  {}", offset(event.t_ms), event.what));
        if let Ok(mut events) = self.events.lock() {
            events.push(event);
        }
    }

    /// Prints a detail line (not part of the timeline).
    pub fn detail(&self, text: impl AsRef<str>) {
        for line in text.as_ref().lines() {
            self.print(&format!("           {line}"));
        }
    }

    pub fn print(&self, line: &str) {
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

/// `+12.345s`
pub fn offset(ms: u64) -> String {
    format!("+{}.{:03}s", ms / 1000, ms % 1000)
}

fn figure(ms: Option<u64>) -> String {
    ms.map(|m| format!("{m} ms")).unwrap_or_else(|| "not reached".into())
}

impl Report {
    /// The traffic split table and the summary (printed after the timeline).
    pub fn render_summary(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "\nTraffic split: the Region Route 53 answers (TestDNSAnswer, latency routing + health checks)"
        );
        let _ = writeln!(
            s,
            "  {:<15} {:<15} {:<16} {:<16} {:<16}",
            "users in", "client IP", "before", "during outage", "after failback"
        );
        for a in &self.traffic_split {
            let show = |r: &Option<String>| r.clone().unwrap_or_else(|| "-".into());
            let _ = writeln!(
                s,
                "  {:<15} {:<15} {:<16} {:<16} {:<16}",
                a.area,
                a.client_ip,
                show(&a.before),
                show(&a.during),
                show(&a.after)
            );
        }
        for (label, pick) in [("before", 0usize), ("during", 1), ("after", 2)] {
            let answers: Vec<Option<&String>> = self
                .traffic_split
                .iter()
                .map(|a| match pick {
                    0 => a.before.as_ref(),
                    1 => a.during.as_ref(),
                    _ => a.after.as_ref(),
                })
                .collect();
            let total = answers.len().max(1);
            let shares: Vec<String> = self
                .regions
                .iter()
                .map(|r| {
                    let n = answers.iter().filter(|a| a.map(String::as_str) == Some(r.as_str())).count();
                    format!("{r} {}%", (n * 100 + total / 2) / total)
                })
                .collect();
            let _ = writeln!(s, "  share of areas {label:<7} {}", shares.join(", "));
        }

        let f = &self.figures;
        let w = &f.writes;
        let _ = writeln!(
            s,
            "\nSummary ({} drill, {} down, survivors {})",
            self.drill,
            self.failed_region,
            self.survivors.join(", ")
        );
        let mut rows: Vec<(String, String)> = vec![
            ("detection-to-routing (alarm -> DNS answers only survivors)".into(), figure(f.detection_to_routing_ms)),
            ("Aurora writer move (alarm -> writer in a survivor)".into(), figure(f.writer_move_ms)),
            ("scale-up (alarm -> survivors at target, InService)".into(), figure(f.scale_up_ms)),
            ("failback (gates open -> original routing)".into(), figure(f.failback_ms)),
        ];
        if let Some(ms) = f.route53_return_to_inversion_ms {
            rows.push(("forced inversion (Route 53 back -> reconcile done)".into(), format!("{ms} ms")));
        }
        if let Some(lag) = f.replication_lag {
            rows.push((
                "replication lag, lag-probe (p50 / p99 / max)".into(),
                format!("{} / {} / {} ms ({} samples)", lag.p50_ms, lag.p99_ms, lag.max_ms, lag.samples),
            ));
        }
        let acked: usize = w.acknowledged.values().sum();
        rows.push((
            "writes acknowledged (per source Region)".into(),
            format!(
                "{acked} ({})",
                w.acknowledged.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", ")
            ),
        ));
        rows.push((
            format!("writes lost in the replication window ({} acked before the outage)", self.failed_region),
            {
                let mut v = format!("{} of {}", w.lost, w.acknowledged_by_failed_region_before_outage);
                if let Some(oldest) = w.oldest_lost_before_outage_ms {
                    let _ = write!(v, ", all within the last {oldest} ms");
                }
                if let Some(rec) = w.recovered_after_failback {
                    let _ = write!(v, "; {rec} replicated after recovery");
                }
                v
            },
        ));
        rows.push(("writes refused during the outage (client saw an error)".into(), w.rejected.to_string()));
        rows.push(("total drill time".into(), format!("{:.1} s", f.total_ms as f64 / 1000.0)));
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, v) in rows {
            let _ = writeln!(s, "  {k:<width$}  {v}");
        }
        let _ = writeln!(s, "\nChecks");
        for c in &self.checks {
            let _ = writeln!(s, "  {}  {}: {}", if c.passed { "PASS" } else { "FAIL" }, c.name, c.detail);
        }
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        let _ = writeln!(
            s,
            "\n{}: {} of {} checks passed",
            if self.passed { "DRILL PASSED" } else { "DRILL FAILED" },
            self.checks.len() - failed,
            self.checks.len()
        );
        s
    }
}

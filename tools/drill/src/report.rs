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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// A measured recovery objective (RTO or RPO) against the topology's objective.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Objective {
    /// What the drill measured, ms; `None` when it was not reached or not measured.
    pub measured_ms: Option<u64>,
    /// The topology's objective (RTO: `rto_objective_seconds`; RPO: `rpo_budget_ms`), ms.
    pub objective_ms: u64,
    /// `None` when this scenario does not measure it (no Region taken down).
    pub met: Option<bool>,
}

/// What Route 53 answered for every shown area at one moment (one `TestDNSAnswer` poll of all
/// areas).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsSample {
    /// Milliseconds since the drill started, when the last answer of the poll came back.
    pub t_ms: u64,
    /// Area -> the Region answered (`None`: no answer).
    pub answers: std::collections::BTreeMap<String, Option<String>>,
}

/// Where the Aurora writer was at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WriterSample {
    pub t_ms: u64,
    pub writer: Option<String>,
    pub failover_in_progress: bool,
}

/// One Region's Auto Scaling group at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapacitySample {
    pub t_ms: u64,
    pub region: String,
    pub desired: i32,
    pub in_service: usize,
}

/// One lag-probe run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LagSample {
    /// When the run's report came back.
    pub t_ms: u64,
    /// Which run: `baseline`, `before failback`, `after failback`.
    pub run: String,
    /// `None` when the run measured no pair.
    pub lag: Option<Lag>,
}

/// Time-stamped samples of every poll the drill made (its own measurements and a background
/// sampler), for the charts: DNS answers, the writer, capacities and replication lag over time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Series {
    pub dns: Vec<DnsSample>,
    pub writer: Vec<WriterSample>,
    pub capacity: Vec<CapacitySample>,
    pub lag: Vec<LagSample>,
}

/// What a marker on the timeline charts stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MarkerKind {
    /// The Region's APIs start failing.
    Outage,
    /// Its alarm goes to ALARM.
    Detection,
    /// An evacuation step done: routing changed, writer moved, survivors scaled up.
    Action,
    /// The Region's APIs answer again.
    Recovery,
    /// The failback: OK delivered, routing back.
    Failback,
}

impl MarkerKind {
    pub const ALL: [MarkerKind; 5] =
        [MarkerKind::Outage, MarkerKind::Detection, MarkerKind::Action, MarkerKind::Recovery, MarkerKind::Failback];

    pub fn as_str(self) -> &'static str {
        match self {
            MarkerKind::Outage => "outage",
            MarkerKind::Detection => "detection",
            MarkerKind::Action => "action",
            MarkerKind::Recovery => "recovery",
            MarkerKind::Failback => "failback",
        }
    }
}

/// A moment the charts mark with a vertical line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Marker {
    pub t_ms: u64,
    pub kind: MarkerKind,
    pub label: String,
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
    /// The topology's RTO objective (`rto_objective_seconds`).
    pub rto_objective_seconds: u64,
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
    /// Alarm ALARM -> every user area answered by a survivor (from the `TestDNSAnswer` samples).
    pub rto: Objective,
    /// The failed Region's worst case as the deployment's configuration allows it, from the
    /// baseline lag-probe run (`readiness.rto`: alarm + health check + record TTL + the latest
    /// evacuation's orchestration); null when lag-probe could not compute it.
    pub rto_bound_seconds: Option<f64>,
    /// Its terms, in words (or why it is unknown).
    pub rto_bound_terms: String,
    /// The oldest lost acknowledged write's age at the outage (0 when none was lost).
    pub rpo: Objective,
    pub series: Series,
    pub markers: Vec<Marker>,
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

/// The RTO from the `TestDNSAnswer` samples: from `detection_ms` (the alarm's ALARM, drill clock)
/// to the first poll at or after it in which every area is answered by a survivor.
pub fn measure_rto(dns: &[DnsSample], detection_ms: u64, survivors: &[String], objective_seconds: u64) -> Objective {
    let objective_ms = objective_seconds.saturating_mul(1000);
    let measured_ms = dns
        .iter()
        .filter(|s| s.t_ms >= detection_ms && !s.answers.is_empty())
        .filter(|s| s.answers.values().all(|a| a.as_ref().is_some_and(|r| survivors.contains(r))))
        .map(|s| s.t_ms - detection_ms)
        .min();
    // Not reached is missed: users were still sent to the failed Region (or nowhere).
    Objective { measured_ms, objective_ms, met: Some(measured_ms.is_some_and(|m| m <= objective_ms)) }
}

/// The RPO as a time window: how long before the outage the oldest lost acknowledged write was
/// acknowledged, 0 when none was lost; not measured when the scenario wrote nothing.
pub fn measure_rpo(writes: &Writes, budget_ms: u64) -> Objective {
    if writes.acknowledged.is_empty() {
        return Objective { measured_ms: None, objective_ms: budget_ms, met: None };
    }
    let measured = if writes.lost == 0 { 0 } else { writes.oldest_lost_before_outage_ms.unwrap_or(0) };
    Objective { measured_ms: Some(measured), objective_ms: budget_ms, met: Some(measured <= budget_ms) }
}

/// `0.41 s`, `12.3 s`: seconds, with the precision a sub-10-second figure needs.
fn seconds(ms: u64) -> String {
    if ms < 10_000 { format!("{:.2} s", ms as f64 / 1000.0) } else { format!("{:.1} s", ms as f64 / 1000.0) }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "MISSED",
        None => "not measured",
    }
}

impl Report {
    /// The two lines that lead the summary: measured RTO and RPO against their objectives.
    pub fn headline(&self) -> String {
        let rto = &self.rto;
        let rto_line = match (rto.measured_ms, rto.met) {
            (Some(ms), met) => format!(
                "RTO {} (objective {} s): {}  (alarm ALARM -> every user area answered by a survivor, TestDNSAnswer)",
                seconds(ms),
                rto.objective_ms / 1000,
                verdict(met)
            ),
            (None, None) => format!(
                "RTO not measured (objective {} s): no Region was taken down in this scenario",
                rto.objective_ms / 1000
            ),
            (None, Some(_)) => format!(
                "RTO not reached (objective {} s): MISSED  (some user area was never answered by a survivor while the drill polled)",
                rto.objective_ms / 1000
            ),
        };
        let rpo = &self.rpo;
        let w = &self.figures.writes;
        let rpo_line = match rpo.measured_ms {
            Some(ms) => format!(
                "RPO {ms} ms (budget {} ms): {}  ({})",
                rpo.objective_ms,
                verdict(rpo.met),
                if w.lost == 0 {
                    "no acknowledged write lost".to_owned()
                } else {
                    format!(
                        "{} acknowledged write{} lost, the oldest acknowledged {ms} ms before the outage",
                        w.lost,
                        if w.lost == 1 { "" } else { "s" }
                    )
                }
            ),
            None => format!("RPO not measured (budget {} ms): no traffic in this scenario", rpo.objective_ms),
        };
        let bound_line = match self.rto_bound_seconds {
            Some(bound) => format!(
                "RTO bound {bound:.1} s for {} (objective {} s): {}  (the worst case its configuration allows: {})",
                self.failed_region,
                self.rto_objective_seconds,
                if bound <= self.rto_objective_seconds as f64 { "within" } else { "ABOVE" },
                self.rto_bound_terms
            ),
            None if self.rto_bound_terms.is_empty() => "RTO bound not computed in this scenario".to_owned(),
            None => format!("RTO bound not computed: {}", self.rto_bound_terms),
        };
        format!("{rto_line}\n{bound_line}\n{rpo_line}\n")
    }

    /// The traffic split table and the summary (printed after the timeline), led by the RTO and
    /// RPO against their objectives.
    pub fn render_summary(&self) -> String {
        let mut s = String::new();
        let _ = write!(s, "\n{}", self.headline());
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

        let _ = writeln!(
            s,
            "\nSummary ({} drill, {} down, survivors {})",
            self.drill,
            self.failed_region,
            self.survivors.join(", ")
        );
        let rows = self.figure_rows();
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

    /// The summary's figures, (what, value) each: the text summary's and the HTML page's.
    pub fn figure_rows(&self) -> Vec<(String, String)> {
        let f = &self.figures;
        let w = &f.writes;
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
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_ms: u64, answers: &[(&str, Option<&str>)]) -> DnsSample {
        DnsSample { t_ms, answers: answers.iter().map(|(a, r)| ((*a).to_owned(), r.map(str::to_owned))).collect() }
    }

    fn survivors() -> Vec<String> {
        vec!["eu-west-1".into(), "ap-southeast-1".into()]
    }

    #[test]
    fn rto_is_detection_to_the_first_poll_with_every_area_on_a_survivor() {
        let dns = [
            // Before detection every area is on a survivor too (a planned drain): not counted.
            sample(500, &[("North America", Some("eu-west-1")), ("Europe", Some("eu-west-1"))]),
            sample(1_000, &[("North America", Some("us-east-1")), ("Europe", Some("eu-west-1"))]),
            sample(1_200, &[("North America", None), ("Europe", Some("eu-west-1"))]),
            sample(1_900, &[("North America", Some("eu-west-1")), ("Europe", Some("ap-southeast-1"))]),
            sample(2_500, &[("North America", Some("eu-west-1")), ("Europe", Some("eu-west-1"))]),
        ];
        let rto = measure_rto(&dns, 1_000, &survivors(), 300);
        assert_eq!(rto, Objective { measured_ms: Some(900), objective_ms: 300_000, met: Some(true) });
        assert_eq!(measure_rto(&dns, 1_000, &survivors(), 0).met, Some(false), "900 ms > an objective of 0 s");
        let never = measure_rto(&dns[1..3], 1_000, &survivors(), 300);
        assert_eq!((never.measured_ms, never.met), (None, Some(false)), "never reached is missed");
    }

    #[test]
    fn rpo_is_the_oldest_lost_writes_age_and_zero_without_loss() {
        let mut w = Writes { acknowledged: [("us-east-1".to_owned(), 10)].into(), ..Writes::default() };
        assert_eq!(measure_rpo(&w, 2_000), Objective { measured_ms: Some(0), objective_ms: 2_000, met: Some(true) });
        w.lost = 3;
        w.oldest_lost_before_outage_ms = Some(2_500);
        assert_eq!(measure_rpo(&w, 2_000).met, Some(false));
        assert_eq!(measure_rpo(&w, 2_000).measured_ms, Some(2_500));
        assert_eq!(measure_rpo(&Writes::default(), 2_000).met, None, "no traffic, nothing measured");
    }

    #[test]
    fn the_summary_opens_with_rto_and_rpo_against_their_objectives() {
        let report = Report {
            rto: Objective { measured_ms: Some(1_900), objective_ms: 300_000, met: Some(true) },
            rpo: Objective { measured_ms: Some(0), objective_ms: 2_000, met: Some(true) },
            ..Report::default()
        };
        let summary = report.render_summary();
        let mut lines = summary.lines().filter(|l| !l.trim().is_empty());
        assert!(lines.next().is_some_and(|l| l.starts_with("RTO 1.90 s (objective 300 s): met")), "{summary}");
        assert!(lines.next().is_some_and(|l| l == "RTO bound not computed in this scenario"), "{summary}");
        assert!(lines.next().is_some_and(|l| l.starts_with("RPO 0 ms (budget 2000 ms): met")), "{summary}");
        let bounded = Report {
            failed_region: "us-east-1".into(),
            rto_objective_seconds: 120,
            rto_bound_seconds: Some(131.5),
            rto_bound_terms: "alarm 60 s + health check 10 s + record TTL 60 s + orchestration 1.5 s".into(),
            ..Report::default()
        };
        let headline = bounded.headline();
        assert!(
            headline.contains("RTO bound 131.5 s for us-east-1 (objective 120 s): ABOVE  (the worst case its configuration allows: alarm 60 s"),
            "{headline}"
        );
        let missed = Report {
            rto: Objective { measured_ms: None, objective_ms: 300_000, met: Some(false) },
            rpo: Objective { measured_ms: Some(2_500), objective_ms: 2_000, met: Some(false) },
            ..Report::default()
        };
        let headline = missed.headline();
        assert!(headline.contains("RTO not reached (objective 300 s): MISSED"), "{headline}");
        assert!(headline.contains("RPO 2500 ms (budget 2000 ms): MISSED"), "{headline}");
        let unmeasured = Report {
            rto: Objective { measured_ms: None, objective_ms: 300_000, met: None },
            rpo: Objective { measured_ms: None, objective_ms: 2_000, met: None },
            ..Report::default()
        };
        let headline = unmeasured.headline();
        assert!(headline.contains("RTO not measured (objective 300 s)"), "{headline}");
        assert!(headline.contains("RPO not measured (budget 2000 ms)"), "{headline}");
    }
}

//! `drill --html FILE`: the report as one self-contained HTML page. Inline CSS and inline SVG
//! drawn here (no script, no external resource: it opens offline, from a CI artifact or a mail):
//! the RTO and RPO against their objectives, charts of the run (the share of user areas per
//! Region from the `TestDNSAnswer` samples, the Aurora writer, each Region's capacity, the
//! replication lag of each lag-probe run) with the outage, detection, actions, recovery and
//! failback as vertical markers, the figures, the traffic split, the checks and the timeline.
//!
//! Every chart is an `<svg class="chart" data-series=NAME data-points=N>` whose data points are
//! its `.pt` elements (N of them): what scripts/check-report.sh and the tests count.

use crate::report::{Marker, MarkerKind, Objective, Report};
use std::fmt::Write as _;

/// The chart series, in page order (their `data-series` names).
pub const SERIES: [&str; 4] = ["dns-share", "writer", "capacity", "lag"];

const WIDTH: f64 = 960.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 20.0;
/// Room above the plot for the markers' numbered badges (two staggered rows).
const TOP: f64 = 34.0;
const BOTTOM: f64 = 28.0;

/// A colour per Region, in the report's Region order; the last is for "no answer".
const PALETTE: [&str; 5] = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#bbbbbb"];

const CSS: &str = "
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1000px;color:#222;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#555;margin:0 0 16px}.badge{display:inline-block;padding:2px 10px;border-radius:10px;color:#fff;font-weight:600}
.pass{background:#2e7d32}.fail{background:#c62828}.na{background:#757575}
.objectives{display:flex;gap:16px;flex-wrap:wrap}.objective{flex:1 1 300px;border:1px solid #ddd;border-radius:8px;padding:10px 16px}
.objective .big{font-size:26px;font-weight:700}.objective .what{color:#555;font-size:13px}
table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #eee;padding:3px 8px;text-align:left;vertical-align:top}
figure{margin:0 0 18px}figcaption{font-weight:600;margin-bottom:4px}figcaption span{font-weight:400;color:#555}
svg.chart{display:block;background:#fcfcfc;border:1px solid #e5e5e5;border-radius:4px}
svg text{font-size:11px;fill:#444}.axis{stroke:#999;stroke-width:1}.grid{stroke:#eee;stroke-width:1}
.outage-span{fill:#c62828;fill-opacity:.06}.marker{stroke-width:1.5;stroke-dasharray:4 3}
.marker-outage{stroke:#c62828}.marker-detection{stroke:#ef6c00}.marker-action{stroke:#00897b}.marker-recovery{stroke:#5c6bc0}.marker-failback{stroke:#6a1b9a}
.kind-outage{fill:#c62828}.kind-detection{fill:#ef6c00}.kind-action{fill:#00897b}.kind-recovery{fill:#5c6bc0}.kind-failback{fill:#6a1b9a}
.badge-text{fill:#fff;font-size:10px;font-weight:700}.legend{font-size:12px;color:#444;margin:4px 0}
.legend i{display:inline-block;width:12px;height:12px;margin:0 4px -2px 12px;border-radius:2px}
.checks li{margin:2px 0;list-style:none}.checks .detail{color:#555;font-size:12px}
details pre{font-size:12px;white-space:pre-wrap}
";

/// Escapes text for HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The time axis shared by every chart: 0 to the end of the drill.
struct Axis {
    end_ms: u64,
}

impl Axis {
    fn x(&self, t_ms: u64) -> f64 {
        LEFT + (t_ms.min(self.end_ms) as f64 / self.end_ms as f64) * (WIDTH - LEFT - RIGHT)
    }

    /// A tick every 1, 2, 5, 10, ... s, at most about a dozen.
    fn step_ms(&self) -> u64 {
        [1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 60_000, 120_000, 300_000]
            .into_iter()
            .find(|s| self.end_ms / s <= 12)
            .unwrap_or(600_000)
    }
}

/// An SVG chart being drawn: its elements and how many data points it holds.
struct Chart {
    series: &'static str,
    height: f64,
    body: String,
    points: usize,
}

impl Chart {
    fn new(series: &'static str, height: f64) -> Self {
        Self { series, height, body: String::new(), points: 0 }
    }

    fn plot_bottom(&self) -> f64 {
        self.height - BOTTOM
    }

    /// One data point: a circle with its value as a tooltip.
    fn point(&mut self, x: f64, y: f64, r: f64, style: &str, title: &str) {
        self.points += 1;
        let _ = write!(
            self.body,
            r#"<circle class="pt" cx="{x:.1}" cy="{y:.1}" r="{r}" {style}><title>{}</title></circle>"#,
            escape(title)
        );
    }

    fn finish(self, axis: &Axis, markers: &[Marker], label: &str) -> String {
        let mut s = String::new();
        let (h, bottom) = (self.height, self.plot_bottom());
        let _ = write!(
            s,
            r#"<svg class="chart" data-series="{}" data-points="{}" width="{WIDTH}" height="{h}" viewBox="0 0 {WIDTH} {h}" role="img" aria-label="{}">"#,
            self.series,
            self.points,
            escape(label)
        );
        // The outage, shaded from the Region going down to its recovery.
        let start = markers.iter().find(|m| m.kind == MarkerKind::Outage).map(|m| m.t_ms);
        let end = markers.iter().find(|m| m.kind == MarkerKind::Recovery).map(|m| m.t_ms).unwrap_or(axis.end_ms);
        if let Some(start) = start {
            let (x0, x1) = (axis.x(start), axis.x(end.max(start)));
            let _ = write!(
                s,
                r#"<rect class="outage-span" x="{x0:.1}" y="{TOP}" width="{:.1}" height="{:.1}"/>"#,
                x1 - x0,
                bottom - TOP
            );
        }
        let step = axis.step_ms();
        let mut t = 0;
        while t <= axis.end_ms {
            let x = axis.x(t);
            let _ = write!(
                s,
                r#"<line class="grid" x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{} s</text>"#,
                bottom + 16.0,
                t / 1000
            );
            t += step;
        }
        let _ = write!(
            s,
            r#"<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{:.1}" y2="{bottom}"/><line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/>"#,
            WIDTH - RIGHT
        );
        s.push_str(&self.body);
        if self.points == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">no samples in this run</text>"#,
                (LEFT + WIDTH - RIGHT) / 2.0,
                (TOP + bottom) / 2.0
            );
        }
        for (i, m) in markers.iter().enumerate() {
            let x = axis.x(m.t_ms);
            let kind = m.kind.as_str();
            // Two rows of badges: markers a few ms apart (outage, detection) stay readable.
            let y = if i % 2 == 0 { 10.0 } else { 24.0 };
            let _ = write!(
                s,
                r#"<g data-kind="{kind}"><title>{} +{:.3} s: {}</title><line class="marker marker-{kind}" x1="{x:.1}" y1="{y}" x2="{x:.1}" y2="{bottom}"/><circle class="kind-{kind}" cx="{x:.1}" cy="{y}" r="7"/><text class="badge-text" x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text></g>"#,
                i + 1,
                m.t_ms as f64 / 1000.0,
                escape(&m.label),
                y + 3.5,
                i + 1
            );
        }
        s.push_str("</svg>");
        s
    }
}

/// Samples further apart than this are not joined: the source did not answer in between (a
/// Region's API during its outage), and a line would claim a value nobody read.
const GAP_MS: u64 = 1_500;

/// A step line through `(t, y)` points: each value holds until the next sample; broken at gaps.
fn step_path(axis: &Axis, points: &[(u64, f64)]) -> String {
    steps(axis, points, GAP_MS)
}

/// [`step_path`] joining samples at most `max_gap_ms` apart (`u64::MAX`: one unbroken line, the
/// edge of a filled band).
fn steps(axis: &Axis, points: &[(u64, f64)], max_gap_ms: u64) -> String {
    let mut d = String::new();
    let mut last: Option<u64> = None;
    for (t, y) in points {
        let x = axis.x(*t);
        match last {
            Some(prev) if t.saturating_sub(prev) <= max_gap_ms => {
                let _ = write!(d, " H{x:.1} V{y:.1}");
            }
            _ => {
                let _ = write!(d, " M{x:.1},{y:.1}");
            }
        }
        last = Some(*t);
    }
    d.trim_start().to_owned()
}

fn region_colour(regions: &[String], region: &str) -> &'static str {
    regions.iter().position(|r| r == region).map(|i| PALETTE[i % (PALETTE.len() - 1)]).unwrap_or(PALETTE[4])
}

fn legend(regions: &[String], extra: &[(&str, &str)]) -> String {
    let mut s = String::from(r#"<div class="legend">"#);
    for r in regions {
        let _ = write!(s, r#"<i style="background:{}"></i>{}"#, region_colour(regions, r), escape(r));
    }
    for (colour, label) in extra {
        let _ = write!(s, r#"<i style="background:{colour}"></i>{}"#, escape(label));
    }
    s.push_str("</div>");
    s
}

impl Report {
    fn axis(&self) -> Axis {
        let s = &self.series;
        let last = [
            self.figures.total_ms,
            s.dns.last().map_or(0, |x| x.t_ms),
            s.writer.last().map_or(0, |x| x.t_ms),
            s.capacity.iter().map(|x| x.t_ms).max().unwrap_or(0),
            s.lag.last().map_or(0, |x| x.t_ms),
            self.markers.iter().map(|m| m.t_ms).max().unwrap_or(0),
        ];
        Axis { end_ms: last.into_iter().max().unwrap_or(0).max(1) }
    }

    /// The share of the shown areas each Region answers, stacked (100% = every area).
    fn dns_chart(&self, axis: &Axis) -> String {
        let mut chart = Chart::new("dns-share", 230.0);
        let bottom = chart.plot_bottom();
        let y = |share: f64| bottom - share * (bottom - TOP);
        for pct in [0, 50, 100] {
            let yy = y(pct as f64 / 100.0);
            let _ = write!(
                chart.body,
                r#"<line class="grid" x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{pct}%</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                yy + 4.0
            );
        }
        // Bands bottom-up: the Regions in order, then "no answer".
        let mut bands: Vec<Option<&str>> = self.regions.iter().map(|r| Some(r.as_str())).collect();
        bands.push(None);
        let samples = &self.series.dns;
        let mut below = vec![0.0; samples.len()];
        for band in bands {
            let shares: Vec<f64> = samples
                .iter()
                .map(|s| {
                    let total = s.answers.len().max(1) as f64;
                    s.answers.values().filter(|a| a.as_deref() == band).count() as f64 / total
                })
                .collect();
            if shares.iter().all(|v| *v == 0.0) {
                continue;
            }
            let colour = band.map_or(PALETTE[4], |r| region_colour(&self.regions, r));
            let tops: Vec<(u64, f64)> =
                samples.iter().zip(&shares).zip(&below).map(|((s, v), b)| (s.t_ms, y(b + v))).collect();
            let bottoms: Vec<(u64, f64)> = samples.iter().zip(&below).map(|(s, b)| (s.t_ms, y(*b))).rev().collect();
            let mut d = steps(axis, &tops, u64::MAX);
            // Back along the band's lower edge, stepping the other way.
            for (i, (t, yy)) in bottoms.iter().enumerate() {
                let x = axis.x(*t);
                if i == 0 {
                    let _ = write!(d, " V{yy:.1}");
                } else {
                    let _ = write!(d, " V{yy:.1} H{x:.1}");
                }
            }
            let _ = write!(
                chart.body,
                r#"<path d="{d} Z" fill="{colour}" fill-opacity="0.55" stroke="{colour}" stroke-width="1"/>"#
            );
            let name = band.unwrap_or("no answer");
            for ((s, v), b) in samples.iter().zip(&shares).zip(&below) {
                if *v > 0.0 {
                    let title = format!("+{:.3} s: {name} {:.0}% of areas", s.t_ms as f64 / 1000.0, v * 100.0);
                    chart.point(axis.x(s.t_ms), y(b + v), 1.6, &format!(r#"fill="{colour}""#), &title);
                }
            }
            for (b, v) in below.iter_mut().zip(&shares) {
                *b += v;
            }
        }
        let areas =
            samples.first().map(|s| s.answers.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default();
        let label = format!("share of user areas ({areas}) answered by each Region over time, {} polls", samples.len());
        chart.finish(axis, &self.markers, &label)
    }

    /// Which Region holds the Aurora writer: a lane per Region.
    fn writer_chart(&self, axis: &Axis) -> String {
        let samples = &self.series.writer;
        let mut lanes: Vec<String> = self.regions.clone();
        let has_none = samples.iter().any(|s| s.writer.is_none());
        if has_none {
            lanes.push("no writer".into());
        }
        let height = TOP + BOTTOM + 26.0 * lanes.len().max(1) as f64;
        let mut chart = Chart::new("writer", height);
        let lane_y = |i: usize| TOP + 13.0 + 26.0 * i as f64;
        for (i, lane) in lanes.iter().enumerate() {
            let yy = lane_y(i);
            let _ = write!(
                chart.body,
                r#"<line class="grid" x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                yy + 4.0,
                escape(lane)
            );
        }
        let lane_of = |w: &Option<String>| match w {
            Some(r) => lanes.iter().position(|l| l == r).unwrap_or(0),
            None => lanes.len() - 1,
        };
        let path: Vec<(u64, f64)> = samples.iter().map(|s| (s.t_ms, lane_y(lane_of(&s.writer)))).collect();
        if !path.is_empty() {
            let _ = write!(
                chart.body,
                r##"<path d="{}" fill="none" stroke="#555" stroke-width="1.5"/>"##,
                step_path(axis, &path)
            );
        }
        for s in samples {
            let (x, yy) = (axis.x(s.t_ms), lane_y(lane_of(&s.writer)));
            let writer = s.writer.as_deref().unwrap_or("no writer");
            let (style, note) = if s.failover_in_progress {
                (r##"fill="#fff" stroke="#ef6c00" stroke-width="1.5""##.to_owned(), ", failover in progress")
            } else {
                (format!(r#"fill="{}""#, region_colour(&self.regions, writer)), "")
            };
            chart.point(x, yy, 3.0, &style, &format!("+{:.3} s: writer {writer}{note}", s.t_ms as f64 / 1000.0));
        }
        let label = format!("the Aurora global cluster's writer Region over time, {} polls", samples.len());
        chart.finish(axis, &self.markers, &label)
    }

    /// Desired capacity (solid) and InService instances (dashed), a panel per Region.
    fn capacity_chart(&self, axis: &Axis) -> String {
        const PANEL: f64 = 64.0;
        let samples = &self.series.capacity;
        let top_value =
            samples.iter().map(|s| (s.desired.max(0) as usize).max(s.in_service)).max().unwrap_or(1).max(1) + 1;
        let height = TOP + BOTTOM + PANEL * self.regions.len().max(1) as f64;
        let mut chart = Chart::new("capacity", height);
        for (i, region) in self.regions.iter().enumerate() {
            let (panel_top, panel_bottom) = (TOP + PANEL * i as f64 + 6.0, TOP + PANEL * (i + 1) as f64);
            let y = |v: usize| panel_bottom - (v as f64 / top_value as f64) * (panel_bottom - panel_top);
            let colour = region_colour(&self.regions, region);
            let _ = write!(
                chart.body,
                r#"<line class="grid" x1="{LEFT}" y1="{panel_bottom:.1}" x2="{:.1}" y2="{panel_bottom:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end">{top_value}</text><text x="{:.1}" y="{:.1}" text-anchor="end">0</text>"#,
                WIDTH - RIGHT,
                LEFT - 26.0,
                (panel_top + panel_bottom) / 2.0 + 4.0,
                escape(region),
                LEFT - 6.0,
                panel_top + 8.0,
                LEFT - 6.0,
                panel_bottom
            );
            let mine: Vec<_> = samples.iter().filter(|s| s.region == *region).collect();
            let desired: Vec<(u64, f64)> = mine.iter().map(|s| (s.t_ms, y(s.desired.max(0) as usize))).collect();
            let in_service: Vec<(u64, f64)> = mine.iter().map(|s| (s.t_ms, y(s.in_service))).collect();
            if !mine.is_empty() {
                let _ = write!(
                    chart.body,
                    r#"<path d="{}" fill="none" stroke="{colour}" stroke-width="2"/><path d="{}" fill="none" stroke="{colour}" stroke-width="1.5" stroke-dasharray="5 3" opacity="0.8"/>"#,
                    step_path(axis, &desired),
                    step_path(axis, &in_service)
                );
            }
            for s in mine {
                let title = format!(
                    "+{:.3} s: {region} desired {}, {} InService",
                    s.t_ms as f64 / 1000.0,
                    s.desired,
                    s.in_service
                );
                chart.point(axis.x(s.t_ms), y(s.desired.max(0) as usize), 1.8, &format!(r#"fill="{colour}""#), &title);
            }
        }
        let label = format!("each Region's Auto Scaling group over time (desired, InService), {} polls", samples.len());
        chart.finish(axis, &self.markers, &label)
    }

    /// The replication lag of every lag-probe run: p50, p99 and max over every Region pair.
    fn lag_chart(&self, axis: &Axis) -> (String, String) {
        let mut chart = Chart::new("lag", 200.0);
        let bottom = chart.plot_bottom();
        let runs: Vec<_> = self.series.lag.iter().filter_map(|s| s.lag.map(|l| (s, l))).collect();
        let max = runs.iter().map(|(_, l)| l.max_ms).max().unwrap_or(0).max(1);
        // The budget joins the scale only when it is near the lag; far above it would flatten it.
        let budget_on_scale = self.rpo_budget_ms <= max.saturating_mul(3);
        let top_value = if budget_on_scale { max.max(self.rpo_budget_ms) } else { max } as f64 * 1.15;
        let y = |ms: u64| bottom - (ms as f64 / top_value) * (bottom - TOP);
        for v in [0.0, top_value / 2.0, top_value] {
            let yy = y(v as u64);
            let _ = write!(
                chart.body,
                r#"<line class="grid" x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}"/><text x="{:.1}" y="{:.1}" text-anchor="end">{} ms</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                yy + 4.0,
                v as u64
            );
        }
        let note = if budget_on_scale {
            let yy = y(self.rpo_budget_ms);
            let _ = write!(
                chart.body,
                r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#c62828" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" text-anchor="end">RPO budget {} ms</text>"##,
                WIDTH - RIGHT,
                WIDTH - RIGHT - 4.0,
                yy - 4.0,
                self.rpo_budget_ms
            );
            format!("RPO budget {} ms dashed", self.rpo_budget_ms)
        } else {
            format!("RPO budget {} ms, above the scale", self.rpo_budget_ms)
        };
        let stats: [(&str, &str, fn(&crate::report::Lag) -> u64); 3] =
            [("p50", "#26a69a", |l| l.p50_ms), ("p99", "#ffa726", |l| l.p99_ms), ("max", "#ef5350", |l| l.max_ms)];
        for (name, colour, pick) in stats {
            let line: Vec<String> =
                runs.iter().map(|(s, l)| format!("{:.1},{:.1}", axis.x(s.t_ms), y(pick(l)))).collect();
            if line.len() > 1 {
                let _ = write!(
                    chart.body,
                    r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="1.5"/>"#,
                    line.join(" ")
                );
            }
            for (s, l) in &runs {
                let title = format!(
                    "+{:.3} s, lag-probe {}: {name} {} ms ({} samples)",
                    s.t_ms as f64 / 1000.0,
                    s.run,
                    pick(l),
                    l.samples
                );
                chart.point(axis.x(s.t_ms), y(pick(l)), 4.0, &format!(r#"fill="{colour}""#), &title);
            }
        }
        let label = format!("replication lag of each lag-probe run (p50, p99, max), {} runs", runs.len());
        (chart.finish(axis, &self.markers, &label), note)
    }

    /// The whole page.
    pub fn render_html(&self) -> String {
        let axis = self.axis();
        let mut s = String::new();
        let title = format!("multisite drill: {}, {} down", self.drill, self.failed_region);
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body>\n",
            escape(&title)
        );
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        let _ = write!(
            s,
            r#"<h1>{}</h1><p class="sub">Regions {}; survivors {}; routing {}; replication delay {} ms; {} <span class="badge {}">{}: {} of {} checks passed</span></p>"#,
            escape(&title),
            escape(&self.regions.join(", ")),
            escape(&self.survivors.join(", ")),
            escape(&self.routing_backend),
            self.replication_delay_ms,
            if self.route53_control_plane_down { "Route 53's control plane down;" } else { "" },
            if self.passed { "pass" } else { "fail" },
            if self.passed { "DRILL PASSED" } else { "DRILL FAILED" },
            self.checks.len() - failed,
            self.checks.len()
        );

        s.push_str(r#"<h2>Recovery objectives</h2><div class="objectives">"#);
        objective_card(
            &mut s,
            "RTO",
            &self.rto,
            |ms| format!("{:.2} s", ms as f64 / 1000.0),
            &format!("objective {} s", self.rto.objective_ms / 1000),
            "from the alarm going to ALARM until every user area is answered by a survivor (TestDNSAnswer samples)",
        );
        // The worst case the configuration allows, judged against the same objective.
        let bound = Objective {
            measured_ms: self.rto_bound_seconds.map(|b| (b * 1000.0).round() as u64),
            objective_ms: self.rto_objective_seconds.saturating_mul(1000),
            met: self.rto_bound_seconds.map(|b| b <= self.rto_objective_seconds as f64),
        };
        objective_card(
            &mut s,
            "RTO bound",
            &bound,
            |ms| format!("{:.1} s", ms as f64 / 1000.0),
            &format!("objective {} s", self.rto_objective_seconds),
            &format!("the worst case {}'s configuration allows: {}", self.failed_region, self.rto_bound_terms),
        );
        objective_card(
            &mut s,
            "RPO",
            &self.rpo,
            |ms| format!("{ms} ms"),
            &format!("budget {} ms", self.rpo.objective_ms),
            &format!(
                "acknowledged writes lost: the oldest one's age at the outage ({} lost of {} acknowledged by {} before it)",
                self.figures.writes.lost,
                self.figures.writes.acknowledged_by_failed_region_before_outage,
                self.failed_region
            ),
        );
        s.push_str("</div>");
        for d in &self.degradations {
            let _ = write!(s, r#"<p><span class="badge na">DEGRADED</span> {}</p>"#, escape(d));
        }

        s.push_str("<h2>Timeline</h2><table><tr><th>#</th><th>time</th><th>marker</th><th>what</th></tr>");
        for (i, m) in self.markers.iter().enumerate() {
            let _ = write!(
                s,
                r#"<tr class="marker-row" data-kind="{}"><td>{}</td><td>+{:.3} s</td><td><svg width="12" height="12"><circle class="kind-{}" cx="6" cy="6" r="6"/></svg> {}</td><td>{}</td></tr>"#,
                m.kind.as_str(),
                i + 1,
                m.t_ms as f64 / 1000.0,
                m.kind.as_str(),
                m.kind.as_str(),
                escape(&m.label)
            );
        }
        s.push_str("</table>");

        let no_answer = [(PALETTE[4], "no answer")];
        let (lag, lag_note) = self.lag_chart(&axis);
        let charts = [
            (
                "Share of user areas per Region",
                format!("Route 53 TestDNSAnswer for each area, {} polls", self.series.dns.len()),
                legend(&self.regions, &no_answer),
                self.dns_chart(&axis),
            ),
            (
                "Aurora writer",
                format!(
                    "the global cluster's writer, {} polls; hollow: failover in progress",
                    self.series.writer.len()
                ),
                legend(&self.regions, &[]),
                self.writer_chart(&axis),
            ),
            (
                "Capacity per Region",
                format!("desired (solid) and InService (dashed), {} polls", self.series.capacity.len()),
                legend(&self.regions, &[]),
                self.capacity_chart(&axis),
            ),
            (
                "Replication lag",
                format!("each lag-probe run over every Region pair; {lag_note}"),
                legend(&[], &[("#26a69a", "p50"), ("#ffa726", "p99"), ("#ef5350", "max")]),
                lag,
            ),
        ];
        s.push_str("<h2>The run</h2>");
        for (caption, what, legend, svg) in charts {
            let _ = write!(
                s,
                "<figure><figcaption>{} <span>({})</span></figcaption>{legend}{svg}</figure>\n",
                escape(caption),
                escape(&what)
            );
        }

        s.push_str("<h2>Checks</h2><ul class=\"checks\">");
        for c in &self.checks {
            let _ = write!(
                s,
                r#"<li><span class="badge {}">{}</span> {}<br><span class="detail">{}</span></li>"#,
                if c.passed { "pass" } else { "fail" },
                if c.passed { "PASS" } else { "FAIL" },
                escape(&c.name),
                escape(&c.detail)
            );
        }
        s.push_str("</ul>");

        s.push_str("<h2>Figures</h2><table>");
        for (k, v) in self.figure_rows() {
            let _ = write!(s, "<tr><td>{}</td><td>{}</td></tr>", escape(&k), escape(&v));
        }
        s.push_str("</table>");

        s.push_str(
            "<h2>Traffic split</h2><table><tr><th>users in</th><th>client IP</th><th>before</th><th>during outage</th><th>after failback</th></tr>",
        );
        let show = |r: &Option<String>| escape(r.as_deref().unwrap_or("-"));
        for a in &self.traffic_split {
            let _ = write!(
                s,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&a.area),
                escape(&a.client_ip),
                show(&a.before),
                show(&a.during),
                show(&a.after)
            );
        }
        s.push_str("</table>");

        s.push_str("<h2>Log</h2><details><summary>every event of the run</summary><pre>");
        for e in &self.timeline {
            let _ = writeln!(s, "{:>9}  {}", crate::report::offset(e.t_ms), escape(&e.what));
        }
        s.push_str("</pre></details>\n</body></html>\n");
        s
    }
}

fn objective_card(s: &mut String, name: &str, o: &Objective, show: fn(u64) -> String, objective: &str, what: &str) {
    let (class, verdict) = match o.met {
        Some(true) => ("pass", "met"),
        Some(false) => ("fail", "MISSED"),
        None => ("na", "not measured"),
    };
    let measured =
        o.measured_ms.map(show).unwrap_or_else(|| if o.met.is_some() { "not reached".into() } else { "-".into() });
    let _ = write!(
        s,
        r#"<div class="objective" id="{}"><div>{name}</div><div class="big">{}</div><div>{} <span class="badge {class}">{verdict}</span></div><div class="what">{}</div></div>"#,
        name.to_lowercase().replace(' ', "-"),
        escape(&measured),
        escape(objective),
        escape(what)
    );
}

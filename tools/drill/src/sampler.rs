//! Time-stamped samples for the report's charts: every poll the drill makes for its figures is
//! recorded, and a background sampler polls at a steady pace in between, so the charts have data
//! between the drill's own bursts of polling (which stop as soon as a figure is measured).

use crate::dns::{self, Area};
use crate::report::{CapacitySample, DnsSample, Lag, LagSample, Series, WriterSample};
use shared::aws::GroupState;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The background sampler's pace: slow enough to add little load to the emulator next to the
/// drill's own 25 ms polls, fast enough to draw a step every phase of a ~20 s drill.
const PACE: Duration = Duration::from_millis(250);

/// Collects samples on the drill's clock (ms since it started).
pub struct Recorder {
    started: Instant,
    series: Mutex<Series>,
}

impl Recorder {
    pub fn new(started: Instant) -> Self {
        Self { started, series: Mutex::new(Series::default()) }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn with(&self, f: impl FnOnce(&mut Series, u64)) {
        let t = self.now_ms();
        if let Ok(mut series) = self.series.lock() {
            f(&mut series, t);
        }
    }

    /// One poll of every area: `answers` in the order of `areas`.
    pub fn dns(&self, areas: &[Area], answers: &[Option<String>]) {
        let answers = areas.iter().zip(answers).map(|(a, r)| (a.name.clone(), r.clone())).collect();
        self.with(|s, t_ms| s.dns.push(DnsSample { t_ms, answers }));
    }

    pub fn writer(&self, writer: Option<&str>, failover_in_progress: bool) {
        let writer = writer.map(str::to_owned);
        self.with(|s, t_ms| s.writer.push(WriterSample { t_ms, writer, failover_in_progress }));
    }

    pub fn capacity(&self, region: &str, group: &GroupState) {
        let (desired, in_service) = (group.sizes.desired, group.in_service);
        self.with(|s, t_ms| s.capacity.push(CapacitySample { t_ms, region: region.to_owned(), desired, in_service }));
    }

    pub fn lag(&self, run: &str, lag: Option<Lag>) {
        self.with(|s, t_ms| s.lag.push(LagSample { t_ms, run: run.to_owned(), lag }));
    }

    /// Every sample so far, each series in time order (the drill's polls and the sampler's
    /// interleave).
    pub fn series(&self) -> Series {
        let mut series = self.series.lock().map(|s| s.clone()).unwrap_or_default();
        series.dns.sort_by_key(|s| s.t_ms);
        series.writer.sort_by_key(|s| s.t_ms);
        series.capacity.sort_by_key(|s| s.t_ms);
        series.lag.sort_by_key(|s| s.t_ms);
        series
    }
}

/// What the background sampler reads, as the administrator: cloned SDK clients (the tasks outlive
/// no borrow of the drill).
pub struct Sources {
    /// Route 53 (TestDNSAnswer) and RDS (the global cluster) from a survivor.
    pub home: shared::RegionClients,
    /// Each Region's Auto Scaling client.
    pub groups: BTreeMap<String, aws_sdk_autoscaling::Client>,
    pub zone_id: String,
    pub record: String,
    pub areas: Vec<Area>,
    pub record_values: BTreeMap<String, String>,
    pub global_cluster: String,
}

/// One task per series (and per Region's group), so a Region that is down (its calls fail after
/// their retries) holds up only its own samples.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Sampler {
    pub fn start(recorder: Arc<Recorder>, sources: Sources) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        let sources = Arc::new(sources);
        {
            let (stop, recorder, sources) = (Arc::clone(&stop), Arc::clone(&recorder), Arc::clone(&sources));
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let polled = dns::answers(
                        &sources.home.route53,
                        &sources.zone_id,
                        &sources.record,
                        &sources.areas,
                        &sources.record_values,
                    )
                    .await;
                    if let Ok(answers) = polled {
                        recorder.dns(&sources.areas, &answers);
                    }
                    tokio::time::sleep(PACE).await;
                }
            }));
        }
        {
            let (stop, recorder, sources) = (Arc::clone(&stop), Arc::clone(&recorder), Arc::clone(&sources));
            tasks.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    let view = shared::aws::describe_global_cluster(
                        &sources.home.rds,
                        &sources.home.region,
                        &sources.global_cluster,
                    )
                    .await;
                    if let Ok(view) = view {
                        let writer = view.members.iter().find(|m| m.is_writer).and_then(|m| m.region.as_deref());
                        recorder.writer(writer, view.failover.is_some());
                    }
                    tokio::time::sleep(PACE).await;
                }
            }));
        }
        for (region, autoscaling) in &sources.groups {
            let (stop, recorder) = (Arc::clone(&stop), Arc::clone(&recorder));
            let (region, autoscaling) = (region.clone(), autoscaling.clone());
            tasks.push(tokio::spawn(async move {
                let name = multisite_tests::deployment::group_name(&region);
                while !stop.load(Ordering::SeqCst) {
                    if let Ok(group) = shared::aws::describe_group(&autoscaling, &region, &name).await {
                        recorder.capacity(&region, &group);
                    }
                    tokio::time::sleep(PACE).await;
                }
            }));
        }
        Self { stop, tasks }
    }

    /// Stops every task and waits for the polls in flight.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for Sampler {
    /// A drill that ends early (a setup error) stops its sampler too, rather than leave it polling.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

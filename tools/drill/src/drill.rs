//! The drill against the local emulator: every step of the README's "The drill" section.

use crate::args::{Mode, Options, Scenario};
use crate::dns::{self, Area};
use crate::error::{Ctx, Result, fail};
use crate::report::{AreaRouting, Check, Lag, Marker, MarkerKind, Report, Timeline, Writes};
use crate::roles::Identities;
use crate::sampler::{Recorder, Sampler, Sources};
use crate::traffic::{self, Traffic};
use crate::world;
use aws_sdk_cloudwatch::types::StateValue;
use multisite_tests::Emulator;
use multisite_tests::deployment::{
    DATA_TABLE, DOMAIN, Deployment, GLOBAL_CLUSTER, LEDGER_TABLE, RECORD_NAME, alarm_name, watcher_of,
};
use multisite_tests::response_server::ResponseServer;
use multisite_tests::roles::Function;
use serde_json::{Value, json};
use shared::clock::SystemClock;
use shared::ledger::{self, RegionStatus};
use shared::{Ledger, RegionalClients};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod simultaneous;

/// The emulator's account (moto's default), in the aws partition: who the handlers run as.
pub const ACCOUNT: &str = "123456789012";

fn drill_identity() -> shared::alarm::Identity {
    shared::alarm::Identity { partition: "aws".into(), account: ACCOUNT.into() }
}

const PROBE_EVENT: &str = include_str!("../../../events/scheduled-lag-probe.json");
const SWEEP_EVENT: &str = include_str!("../../../events/scheduled-restore-sweep.json");
const RECONCILE_EVENT: &str = include_str!("../../../events/scheduled-reconcile.json");

/// Emulator timings: replicas CREATING for 200 ms, a global-cluster failover/switchover in
/// progress for 500 ms (AWS: minutes; the drill measures the orchestration, not AWS's speed).
const REPLICA_MS: u64 = 200;
const AURORA_FAILOVER_MS: u64 = 500;
/// How long the survivors keep taking traffic after the evacuation, before the RPO accounting.
const SURVIVOR_TRAFFIC_MS: u64 = 1_000;
/// Longest wait for any converging state.
const CONVERGE: Duration = Duration::from_secs(30);
/// Longest wait for CloudWatch's EventBridge event of an alarm state change to be recorded.
const ALARM_EVENT_WAIT: Duration = Duration::from_secs(5);

/// Runs the drill (or, with `--setup-only`, builds the deployment and waits). `out` receives the
/// human report as it happens.
pub async fn run(options: &Options, out: Box<dyn Write + Send>) -> Result<Report> {
    // The handlers emit EMF metrics on stdout (Lambda's contract); the drill owns stdout.
    shared::metrics::redirect_emit(Box::new(std::io::sink()));
    let started = Instant::now();
    let tl = Timeline::new(started, out);
    let regions = options.regions.clone();
    let failing = options.failing().to_owned();
    let survivors: Vec<String> = regions.iter().filter(|r| **r != failing).cloned().collect();
    // The functions reacting to the failing Region's alarm run where the alarm is evaluated: a
    // survivor (static stability: nothing on the critical path runs in the failed Region).
    let names: Vec<&str> = regions.iter().map(String::as_str).collect();
    let home = watcher_of(&names, &failing).to_owned();

    tl.print(&format!(
        "multisite drill: {} Regions ({}), {} goes down, {} drill, replication delay {} ms, RPO budget {} ms",
        regions.len(),
        regions.join(", "),
        failing,
        if options.planned { "planned (switchover)" } else { "unplanned (failover)" },
        options.replication_delay_ms,
        options.rpo_budget_ms
    ));
    crate::ensure_venv()?;
    let emulator =
        tokio::task::spawn_blocking(Emulator::start).await.map_err(|e| fail(format!("emulator start: {e}")))?;
    emulator.set_timing(REPLICA_MS, REPLICA_MS, AURORA_FAILOVER_MS);
    emulator.set_replication_delay(options.replication_delay_ms);
    tl.event(format!("emulator up at {} (moto + multisite DR extension)", emulator.url()));

    // The administrator: set-up, the users' traffic, CloudWatch (the drill plays the alarm) and
    // every check. The handlers get their role's clients (`Identities`).
    let clients = emulator.clients(&regions.iter().map(String::as_str).collect::<Vec<_>>()).await;
    let alarming = options.alarming();
    let policy = world::Policy {
        rpo_budget_ms: options.rpo_budget_ms,
        rto_objective_seconds: options.rto_objective_seconds,
        cooldown_seconds: options.cooldown_seconds,
        // Simultaneous: at most one Region may be evacuated.
        min_healthy_regions: if options.scenario == Scenario::Simultaneous { regions.len() - 1 } else { 1 },
        arbiter: world::arbiter_for(&regions, &alarming),
        routing: options.routing,
        home: home.clone(),
    };
    let deployment = world::build(&emulator, &regions, &policy).await?;
    let zone_id = deployment.hosted_zone_id.clone().unwrap_or_default();
    if let Some(arc) = &deployment.arc {
        tl.event(format!(
            "routing backend arc: ARC cluster {} ({} endpoints: {}), control panel {}, a routing control per Region (all On), assertion rule ATLEAST {} (WaitPeriodMs 0), RECOVERY_CONTROL health checks guarding the latency records",
            arc.routing.cluster_arn,
            arc.routing.cluster_endpoints.len(),
            arc.routing.cluster_endpoints.iter().map(|e| e.region.as_str()).collect::<Vec<_>>().join(", "),
            arc.routing.control_panel_arn,
            arc.routing.safety_rule.at_least
        ));
    }
    tl.event(format!(
        "deployment built: hosted zone {} ({}) with {} latency records + health checks, ledger {} (Global Table created in the arbiter Region {}, a replica in every other Region; min_healthy_regions {}), Aurora global cluster {} (writer {}), {} Auto Scaling groups {}/{}/{} (min/desired/max), CloudWatch alarms {} (PutMetricAlarm; OK from a HealthCheckStatus 1 datapoint)",
        DOMAIN,
        zone_id,
        regions.len(),
        LEDGER_TABLE,
        policy.arbiter,
        policy.min_healthy_regions,
        GLOBAL_CLUSTER,
        regions[0],
        regions.len(),
        world::BASELINE.min,
        world::BASELINE.desired,
        world::BASELINE.max,
        deployment.alarm_regions.iter().map(|(a, r)| format!("{a} (in {r})")).collect::<Vec<_>>().join(", ")
    ));
    let topology_path = write_topology(&deployment.topology_json)?;

    // template.yaml's roles for this deployment, one stack per Region; each handler runs as its
    // function's role in the stack of the Region it runs in.
    let identities =
        Identities::create(&emulator, &deployment.template_parameters().map_err(|e| fail(e.to_string()))?, &regions)?;
    let roles_path = identities
        .write_file(&emulator, topology_path.parent().unwrap_or_else(|| std::path::Path::new("target/drill")))?;
    let provisioner_region = regions[0].clone();
    let mut failover_clients = BTreeMap::new();
    let mut scaler_clients = BTreeMap::new();
    for region in &regions {
        failover_clients
            .insert(region.clone(), identities.clients(&emulator, Function::Failover, region, &regions).await?);
        scaler_clients.insert(region.clone(), identities.clients(&emulator, Function::Scaler, region, &regions).await?);
    }
    let handlers = Handlers {
        failover: failover_clients,
        scaler: scaler_clients,
        lag_probe: identities.clients(&emulator, Function::LagProbe, &home, &regions).await?,
        provisioner: identities.sdk_config(&emulator, Function::Provisioner, &provisioner_region).await?,
    };
    tl.event(format!(
        "IAM: template.yaml rendered for the deployment's parameters ({} Regions, DataTableHomeRegion {provisioner_region}) as the stack in each Region ({}); handlers sign with their role's session: failover {}, scaler {}, lag-probe {} (running in {home}), provisioner {} (in {provisioner_region}); set-up, traffic, CloudWatch and checks as the administrator; sessions in {}",
        regions.len(),
        regions.iter().map(|r| multisite_tests::roles::stack_name(r)).collect::<Vec<_>>().join(", "),
        identities.role_name(Function::Failover, &home),
        identities.role_name(Function::Scaler, &home),
        identities.role_name(Function::LagProbe, &home),
        identities.role_name(Function::Provisioner, &provisioner_region),
        roles_path.display()
    ));

    let mut drill = Drill {
        options,
        tl: &tl,
        emulator: &emulator,
        clients,
        handlers,
        identities,
        deployment,
        regions,
        failing,
        survivors,
        home,
        areas: Vec::new(),
        report: Report::default(),
        recorder: Arc::new(Recorder::new(started)),
        detection_ms: None,
    };
    drill.report.emulator_url = Some(emulator.url().to_owned());
    drill.report.roles = [
        ("failover", Function::Failover, &drill.home),
        ("scaler", Function::Scaler, &drill.home),
        ("lag-probe", Function::LagProbe, &drill.home),
        ("provisioner", Function::Provisioner, &provisioner_region),
    ]
    .into_iter()
    .map(|(name, f, region)| (name.to_owned(), drill.identities.role_name(f, region)))
    .collect();
    drill.provision().await?;

    if options.mode == Mode::SetupOnly {
        drill.announce(&topology_path, &roles_path);
        wait_for_stdin_eof();
        return Ok(drill.finish(started));
    }

    // The charts' steady samples, from before the baseline until the scenario's end.
    let sampler = drill.start_sampler()?;
    let outcome = match options.scenario {
        Scenario::Default => Box::pin(drill.run_scenario()).await,
        Scenario::Simultaneous => Box::pin(drill.run_simultaneous()).await,
    };
    sampler.stop().await;
    outcome?;
    let report = drill.finish(started);
    if options.keep_running {
        tl.print(&report.render_summary());
        drill_announce(&tl, &emulator, &topology_path, &roles_path);
        wait_for_stdin_eof();
    }
    Ok(report)
}

fn write_topology(topology: &Value) -> Result<std::path::PathBuf> {
    let dir = multisite_tests::repo_root().join("target/drill");
    std::fs::create_dir_all(&dir).ctx(format!("create {}", dir.display()))?;
    let path = dir.join("topology.json");
    std::fs::write(&path, serde_json::to_string_pretty(topology).unwrap_or_default())
        .ctx(format!("write {}", path.display()))?;
    Ok(path)
}

fn drill_announce(tl: &Timeline, emulator: &Emulator, topology: &std::path::Path, roles: &std::path::Path) {
    tl.print(&format!(
        "\nThe emulator keeps running. To reach it (as the administrator):\n  export AWS_ENDPOINT_URL={} AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=eu-west-1 AWS_EC2_METADATA_DISABLED=true\n  export MULTISITE_TOPOLOGY_FILE={}\n  # e.g. aws route53 test-dns-answer ... / curl $AWS_ENDPOINT_URL/_multisite/state\nA function as deployed in a Region signs with its role's session in {} (functions.<function>.<region>:\naccess_key_id, secret_access_key, session_token; the emulator enforces that role's policies).\nPress Enter (or close stdin) to stop it.",
        emulator.url(),
        topology.display(),
        roles.display()
    ));
    // Machine-readable lines for scripts (scripts/lambda-invoke-test.sh): DRILL_ROLES first, then
    // DRILL_READY <endpoint> <topology file>, unchanged.
    tl.print(&format!("DRILL_ROLES {}", roles.display()));
    tl.print(&format!("DRILL_READY {} {}", emulator.url(), topology.display()));
}

fn wait_for_stdin_eof() {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
}

/// Polls `check` every 25 ms until it yields `Some`, or `CONVERGE` passes.
async fn until<T, F, Fut>(check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    until_within(CONVERGE, check).await
}

/// Polls `check` every 25 ms until it yields `Some`, or `limit` passes.
async fn until_within<T, F, Fut>(limit: Duration, check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    multisite_tests::fixtures::eventually(limit, Duration::from_millis(25), check).await
}

fn ms_since(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

pub(crate) struct Drill<'a> {
    options: &'a Options,
    tl: &'a Timeline,
    emulator: &'a Emulator,
    /// The administrator's clients: set-up, traffic, CloudWatch, checks.
    clients: RegionalClients,
    /// What the handlers sign with: their role in the stack of the Region they run in.
    handlers: Handlers,
    identities: Identities,
    deployment: Deployment,
    regions: Vec<String>,
    failing: String,
    survivors: Vec<String>,
    home: String,
    areas: Vec<Area>,
    report: Report,
    /// Every poll's sample, for the report's charts.
    recorder: Arc<Recorder>,
    /// When the failing Region's alarm went to ALARM (drill clock): where the RTO starts.
    detection_ms: Option<u64>,
}

/// Each handler's clients, signed with a session of its function's role (template.yaml, rendered
/// for the drill's parameters) in the stack of the Region it runs in.
struct Handlers {
    /// failover and scaler as deployed in each Region (a change is acted on in its alarm's Region,
    /// `Topology::actor_region`); lag-probe runs in the failing Region's watcher Region (`home`).
    failover: BTreeMap<String, RegionalClients>,
    scaler: BTreeMap<String, RegionalClients>,
    lag_probe: RegionalClients,
    /// The provisioner runs in the first Region (DataTableHomeRegion); it builds its own clients.
    provisioner: aws_config::SdkConfig,
}

/// One alarm state change: SetAlarmState by the drill (administrator) in the watcher Region, and
/// the "CloudWatch Alarm State Change" event CloudWatch put on that Region's default bus for it,
/// read back from the emulator (`GET /_multisite/events?region=<watcher>`).
struct AlarmChange {
    alarm: String,
    watcher: String,
    /// When SetAlarmState returned (detection, for the figures).
    changed: Instant,
    /// The recorded EventBridge event, exactly as CloudWatch put it on the bus.
    event: Value,
}

impl AlarmChange {
    fn field(&self, pointer: &str) -> &str {
        self.event.pointer(pointer).and_then(Value::as_str).unwrap_or("?")
    }

    /// `OK -> ALARM at <state timestamp>; EventBridge event <id> (time <time>)`
    fn describe(&self) -> String {
        format!(
            "{} -> {} at {}; EventBridge event {} (\"{}\", time {}) read from {}'s default bus",
            self.field("/detail/previousState/value"),
            self.field("/detail/state/value"),
            self.field("/detail/state/timestamp"),
            self.field("/id"),
            self.field("/detail-type"),
            self.field("/time"),
            self.watcher
        )
    }

    /// The event to deliver: the recorded one, plus the `multisite` operator overrides if any.
    fn payload(&self, overrides: Option<Value>) -> Value {
        let mut event = self.event.clone();
        if let Some(overrides) = overrides {
            event["multisite"] = overrides;
        }
        event
    }
}

/// How the timeline names a delivered payload: the recorded event, with or without overrides.
fn delivered_as(change: &AlarmChange, overrides: Option<&Value>) -> String {
    match overrides {
        None => format!("event {} as recorded", change.field("/id")),
        Some(o) => format!("event {} as recorded + \"multisite\": {o} added by the drill", change.field("/id")),
    }
}

/// What the dry run before the cool-down's end showed of the failback gate.
struct FailbackGate {
    /// Why the gate was closed (None: it was open).
    closed_reason: Option<String>,
    /// The gate was seen closed, or was rightly open (the cool-down over when the dry run answered).
    shown: bool,
}

/// What one delivery of an alarm change did.
struct Delivery {
    failover: std::result::Result<failover::Response, String>,
    scaler: std::result::Result<Vec<scaler::Report>, String>,
}

impl Drill<'_> {
    fn announce(&self, topology: &std::path::Path, roles: &std::path::Path) {
        drill_announce(self.tl, self.emulator, topology, roles);
    }

    fn check(&mut self, name: &str, passed: bool, detail: impl Into<String>) {
        let detail = detail.into();
        self.tl.event(format!("check {}: {name} ({detail})", if passed { "PASS" } else { "FAIL" }));
        self.report.checks.push(Check { name: name.to_owned(), passed, detail });
    }

    fn finish(mut self, started: Instant) -> Report {
        let r = &mut self.report;
        r.drill = if self.options.planned { "planned (switchover)" } else { "unplanned (failover)" }.into();
        r.regions = self.regions.clone();
        r.failed_region = self.failing.clone();
        r.survivors = self.survivors.clone();
        r.replication_delay_ms = self.options.replication_delay_ms;
        r.rpo_budget_ms = self.options.rpo_budget_ms;
        r.rto_objective_seconds = self.options.rto_objective_seconds;
        r.cooldown_seconds = self.options.cooldown_seconds;
        r.routing_backend = if self.deployment.arc.is_some() { "arc" } else { "health_check" }.into();
        r.route53_control_plane_down = self.options.route53_control_plane_down;
        r.figures.total_ms = ms_since(started);
        r.timeline = self.tl.events();
        r.passed = !r.checks.is_empty() && r.checks.iter().all(|c| c.passed);
        r.series = self.recorder.series();
        r.markers.sort_by_key(|m| m.t_ms);
        r.rto = match self.detection_ms {
            Some(detected) => {
                crate::report::measure_rto(&r.series.dns, detected, &r.survivors, r.rto_objective_seconds)
            }
            None => crate::report::Objective {
                measured_ms: None,
                objective_ms: r.rto_objective_seconds.saturating_mul(1000),
                met: None,
            },
        };
        r.rpo = crate::report::measure_rpo(&r.figures.writes, r.rpo_budget_ms);
        std::mem::take(r)
    }

    /// `t` on the drill's clock (ms since it started).
    fn offset_of(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.tl.started()).as_millis() as u64
    }

    /// Marks a moment on the report's charts.
    fn mark(&mut self, t_ms: u64, kind: MarkerKind, label: impl Into<String>) {
        self.report.markers.push(Marker { t_ms, kind, label: label.into() });
    }

    /// Starts the background sampler (loading the areas first if the scenario has not).
    pub(crate) fn start_sampler(&mut self) -> Result<Sampler> {
        if self.areas.is_empty() {
            let (_, table) = self.emulator.control("GET", "/_multisite/dns-areas", None);
            self.areas = dns::areas(&table)?;
        }
        let mut groups = BTreeMap::new();
        for region in &self.regions {
            groups.insert(region.clone(), self.clients.region(region)?.autoscaling.clone());
        }
        let sources = Sources {
            home: self.clients.region(&self.home)?.clone(),
            groups,
            zone_id: self.deployment.hosted_zone_id.clone().unwrap_or_default(),
            record: RECORD_NAME.to_owned(),
            areas: self.areas.clone(),
            record_values: self.deployment.record_values.clone(),
            global_cluster: GLOBAL_CLUSTER.to_owned(),
        };
        Ok(Sampler::start(Arc::clone(&self.recorder), sources))
    }

    /// (writer Region, failover in progress) of the global cluster, recorded for the charts.
    pub(crate) async fn writer_state(&self) -> Result<(Option<String>, bool)> {
        let (writer, in_progress) = world::aurora_writer(&self.clients, &self.home).await?;
        self.recorder.writer(writer.as_deref(), in_progress);
        Ok((writer, in_progress))
    }

    /// A Region's group, recorded for the charts.
    pub(crate) async fn group_state(&self, region: &str) -> Result<shared::aws::GroupState> {
        let group = world::group_sizes(&self.clients, region).await?;
        self.recorder.capacity(region, &group);
        Ok(group)
    }

    fn cell_health_check(&self, region: &str) -> String {
        self.deployment.topology.cell(region).map(|c| c.health_check_id.clone()).unwrap_or_default()
    }

    /// Whether failover has taken `region` out of routing: its health check forced unhealthy
    /// (GetHealthCheck, Route 53's control plane: unreadable while it is down), or its ARC
    /// routing control Off (as the emulator holds it).
    pub(crate) async fn out_of_routing(&self, region: &str) -> std::result::Result<bool, String> {
        match &self.deployment.arc {
            Some(arc) => Ok(!multisite_tests::arc::states(self.emulator, &arc.routing).await[region]),
            None => world::health_check_inverted(&self.clients, &self.home, &self.cell_health_check(region))
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// What failover's routing step is called in this deployment.
    fn routing_step(&self) -> &'static str {
        if self.deployment.arc.is_some() { "routing control" } else { "health check" }
    }

    /// Route 53's control plane is down and routing depends on it (`--routing health_check
    /// --route53-down`): failover cannot force the health check, the endpoint checks route alone.
    fn routing_degraded(&self) -> bool {
        self.options.route53_control_plane_down && self.deployment.arc.is_none()
    }

    /// The Region whose CloudWatch evaluates the failing Region's alarm (where failover, scaler
    /// and the lag-probe run).
    fn watcher(&self) -> String {
        let alarm = alarm_name(&self.failing);
        self.deployment.alarm_regions.get(&alarm).cloned().unwrap_or_else(|| self.home.clone())
    }

    /// The alarm events the emulator recorded for `region`'s default bus, oldest first.
    fn recorded_alarm_events(&self, region: &str) -> Result<Vec<Value>> {
        let path = format!("/_multisite/events?region={region}");
        let (status, body) = self.emulator.control("GET", &path, None);
        if status != 200 {
            return Err(fail(format!("GET {path}: HTTP {status} {body}")));
        }
        body["events"].as_array().cloned().ok_or_else(|| fail(format!("GET {path}: no `events` in {body}")))
    }

    /// Sets the failing Region's alarm to `state` (SetAlarmState in its watcher Region) and reads
    /// the EventBridge event CloudWatch recorded for that change (waiting briefly for it).
    async fn change_alarm(&self, state: StateValue, reason: &str) -> Result<AlarmChange> {
        self.change_alarm_of(&self.failing, state, reason).await
    }

    /// [`Self::change_alarm`] for `region`'s alarm.
    async fn change_alarm_of(&self, region: &str, state: StateValue, reason: &str) -> Result<AlarmChange> {
        let alarm = alarm_name(region);
        let watcher = self.deployment.alarm_regions.get(&alarm).cloned().unwrap_or_else(|| self.home.clone());
        let seen = self.recorded_alarm_events(&watcher)?.len();
        world::set_alarm(&self.clients, &watcher, &alarm, state.clone(), reason).await?;
        let changed = Instant::now();
        let found = until_within(ALARM_EVENT_WAIT, || async {
            let events = self.recorded_alarm_events(&watcher).ok()?;
            events.into_iter().skip(seen).find(|e| {
                e["detail-type"] == "CloudWatch Alarm State Change"
                    && e["detail"]["alarmName"] == alarm.as_str()
                    && e["detail"]["state"]["value"] == state.as_str()
            })
        })
        .await;
        match found {
            Some(event) => Ok(AlarmChange { alarm, watcher, changed, event }),
            None => Err(fail(format!(
                "SetAlarmState {alarm} {} in {watcher}: no \"CloudWatch Alarm State Change\" event for it on {watcher}'s default bus after {} s (GET /_multisite/events?region={watcher})",
                state.as_str(),
                ALARM_EVENT_WAIT.as_secs()
            ))),
        }
    }

    /// Checks the failing Region's alarm is in `expected` (DescribeAlarms as the administrator:
    /// template.yaml grants DescribeAlarms to no function).
    async fn check_alarm_state(&mut self, name: &str, expected: &str) -> Result<()> {
        let alarm = alarm_name(&self.failing);
        let watcher = self.watcher();
        let (state, reason) = world::alarm_state(&self.clients, &watcher, &alarm).await?;
        self.check(
            name,
            state == expected,
            format!(
                "DescribeAlarms {alarm} in {watcher} (administrator): StateValue {state}, StateReason \"{reason}\""
            ),
        );
        Ok(())
    }

    /// The ledger's arbiter replica (the topology's `arbiter`): where every fleet decision goes.
    fn ledger(&self) -> Result<Ledger> {
        let arbiter = self.deployment.topology.arbiter_region();
        Ok(Ledger::new(self.clients.region(arbiter)?.dynamodb.clone(), LEDGER_TABLE, arbiter))
    }

    fn failover_clients(&self, region: &str) -> Result<&RegionalClients> {
        self.handlers.failover.get(region).ok_or_else(|| fail(format!("no failover deployed in {region}")))
    }

    /// The scaler's scheduled restore sweep, as deployed in the drill's home Region.
    async fn restore_sweep(&self) -> Result<std::result::Result<Vec<scaler::Report>, String>> {
        let identity = drill_identity();
        let scaler_deps = scaler::Deps {
            topology: &self.deployment.topology,
            clients: self.scaler_clients(&self.home)?,
            home_region: &self.home,
            clock: &SystemClock,
            identity: &identity,
        };
        let sweep: Value = serde_json::from_str(SWEEP_EVENT).unwrap_or_default();
        Ok(Box::pin(scaler::handle(sweep, &scaler_deps)).await.map_err(|e| e.to_string()))
    }

    fn scaler_clients(&self, region: &str) -> Result<&RegionalClients> {
        self.handlers.scaler.get(region).ok_or_else(|| fail(format!("no scaler deployed in {region}")))
    }

    // -----------------------------------------------------------------------------------------
    // Step 2: provisioning

    /// The Region1 stack's DataTableReplicas (Custom::GlobalTableReplicas of GlobalTableName):
    /// the provisioner, as its role in that stack. (The ledger is the template's LedgerTable, a
    /// Global Table CloudFormation itself creates: set-up made it, outside the provisioner's role.)
    async fn provision(&mut self) -> Result<()> {
        let server = ResponseServer::start();
        let home = self.regions[0].clone();
        let mut answers = Vec::new();
        for (logical, table) in [("DataTableReplicas", DATA_TABLE)] {
            let answer = crate::provision::create_replicas(
                &self.handlers.provisioner,
                &home,
                logical,
                table,
                &self.regions,
                &server,
            )
            .await?;
            self.tl.event(format!(
                "provisioner (in {home}, as {}): CloudFormation Create {logical} (Custom::GlobalTableReplicas, {table} in {}) -> ResponseURL got {} PhysicalResourceId={} Data keys [{}]{}",
                self.identities.role_name(Function::Provisioner, &home),
                self.regions.join(", "),
                answer.status,
                answer.physical_resource_id,
                answer.data_keys.join(", "),
                answer.reason.as_ref().map(|r| format!(" Reason={r}")).unwrap_or_default()
            ));
            answers.push(answer);
        }
        let statuses = self.replica_statuses(DATA_TABLE).await?;
        let all_active = self.regions[1..].iter().all(|r| statuses.get(r).map(String::as_str) == Some("ACTIVE"));
        let ok = answers.iter().all(|a| a.status == "SUCCESS") && all_active;
        self.report.provisioner = answers;
        self.check(
            "provisioner answered SUCCESS",
            ok,
            format!(
                "replicas of {} seen from {}: {}",
                DATA_TABLE,
                self.regions[0],
                statuses.iter().map(|(r, s)| format!("{r} {s}")).collect::<Vec<_>>().join(", ")
            ),
        );
        Ok(())
    }

    async fn replica_statuses(&self, table: &str) -> Result<BTreeMap<String, String>> {
        let out = self
            .clients
            .region(&self.regions[0])?
            .dynamodb
            .describe_table()
            .table_name(table)
            .send()
            .await
            .ctx("DescribeTable")?;
        Ok(out
            .table
            .and_then(|t| t.replicas)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|r| Some((r.region_name?, r.replica_status?.as_str().to_owned())))
            .collect())
    }

    // -----------------------------------------------------------------------------------------
    // Steps 3-9

    async fn run_scenario(&mut self) -> Result<()> {
        // 3. Baseline lag and readiness.
        let baseline = self.lag_probe("baseline").await?;
        self.record_rto_bound(&baseline);
        self.report.figures.replication_lag = baseline.replication.overall.map(|s| Lag {
            samples: s.samples,
            p50_ms: s.p50_ms,
            p99_ms: s.p99_ms,
            max_ms: s.max_ms,
        });
        self.check(
            "baseline: replication lag within the RPO budget, every Region ready for 100%",
            !baseline.rpo_breached && baseline.readiness.ok,
            probe_detail(&baseline),
        );

        // 8 (before). Routing as users see it.
        let (_, table) = self.emulator.control("GET", "/_multisite/dns-areas", None);
        self.areas = dns::areas(&table)?;
        let before = self.routing("before").await?;
        let expected_before: Vec<Option<String>> = self.areas.iter().map(|a| a.expected(&self.regions)).collect();
        self.check(
            "routing before: every area answered by its nearest Region",
            before == expected_before,
            routing_detail(&self.areas, &before),
        );

        // 4. Steady traffic.
        let traffic = Traffic::start(
            &self.clients,
            &self.regions,
            DATA_TABLE,
            Duration::from_millis(self.options.write_interval_ms),
            self.tl.started(),
        )?;
        self.tl.event(format!(
            "traffic: one writer per Region, a sequenced item every {} ms",
            self.options.write_interval_ms
        ));
        tokio::time::sleep(Duration::from_millis(self.options.traffic_ms)).await;

        // 5. The Region goes down; the alarm goes to ALARM and is delivered twice.
        let outage_ms = if self.options.planned {
            self.planned_evacuation(&traffic).await?
        } else {
            self.unplanned_evacuation().await?
        };
        tokio::time::sleep(Duration::from_millis(SURVIVOR_TRAFFIC_MS)).await;
        let writes = traffic.stop().await;
        self.tl.event(format!("traffic stopped: {} writes sent", writes.len()));

        // 6. End state and RPO.
        let during = self.routing("during").await?;
        let expected_during: Vec<Option<String>> = self.areas.iter().map(|a| a.expected(&self.survivors)).collect();
        // GetHealthCheck is Route 53's control plane: unreadable while it is down (then the DNS
        // answers, its data plane, decide alone).
        let out = self.out_of_routing(&self.failing).await;
        let name = if self.routing_degraded() {
            format!(
                "routing during: {} out of DNS by its failing endpoint health check (the forced inversion waits for Route 53), every area answered by its nearest survivor",
                self.failing
            )
        } else {
            format!("routing during: {} out of DNS, every area answered by its nearest survivor", self.failing)
        };
        let forced_ok = if self.routing_degraded() { !matches!(out, Ok(true)) } else { matches!(out, Ok(true)) };
        self.check(
            &name,
            forced_ok && during == expected_during,
            format!(
                "{} {}; {}",
                self.routing_step(),
                match &out {
                    Ok(true) => "taken out by failover".to_owned(),
                    Ok(false) => "not taken out by failover".to_owned(),
                    Err(e) => format!("unreadable ({e})"),
                },
                routing_detail(&self.areas, &during)
            ),
        );
        self.check_alarm_state(&format!("alarm {} in ALARM during the outage", alarm_name(&self.failing)), "ALARM")
            .await?;
        self.end_state_checks().await?;
        let lost_keys = self.rpo(&writes, outage_ms).await?;

        // 6b. Health checks with Route 53 down: it answers again (the Region is still down) and the
        // scheduled reconcile finishes the forced inversion before the endpoint recovers.
        if self.routing_degraded() {
            self.finish_inversion_after_route53().await?;
        }

        // 7. Back up, gated failback.
        self.failback(&lost_keys).await?;
        let after = self.routing("after").await?;
        self.check(
            "routing after failback: back to the original split",
            after == expected_before,
            routing_detail(&self.areas, &after),
        );
        let final_probe = self.lag_probe("after failback").await?;
        self.check(
            "after failback: every Region active and ready, lag within budget",
            !final_probe.rpo_breached
                && final_probe.readiness.ok
                && final_probe.active_regions.len() == self.regions.len(),
            probe_detail(&final_probe),
        );
        self.report.traffic_split = self
            .areas
            .iter()
            .enumerate()
            .map(|(i, a)| AreaRouting {
                area: a.name.clone(),
                client_ip: a.example_ip.clone(),
                before: before[i].clone(),
                during: during[i].clone(),
                after: after[i].clone(),
            })
            .collect();
        self.check_authorization();
        if self.options.route53_control_plane_down {
            self.route53_findings();
        }
        Ok(())
    }

    /// `--route53-down`: what the functions asked of Route 53's control plane while it was down,
    /// and (ARC) its return after the failback.
    fn route53_findings(&mut self) {
        let (_, log) = self.emulator.control("GET", "/_multisite/requests", None);
        // lag-probe reads Route 53's configuration for the RTO bound (the records' TTLs, the
        // alarms' health checks): not on any recovery path, and reported unknown while down.
        let is_rto_read = |r: &Value| {
            r["principal"].as_str().is_some_and(|p| p.contains("LagProbeRole"))
                && matches!(r["operation"].as_str(), Some("ListResourceRecordSets" | "GetHealthCheck"))
        };
        let calls: Vec<&Value> = log["requests"]
            .as_array()
            .map(|requests| {
                requests
                    .iter()
                    .filter(|r| r["service"] == "route53" && r["operation"] != "TestDNSAnswer")
                    .filter(|r| r["principal"].as_str().is_some_and(|p| p.contains(":assumed-role/")))
                    .collect()
            })
            .unwrap_or_default();
        let describe = |r: &&Value| format!("{} {}", r["operation"].as_str().unwrap_or("?"), r["status"]);
        let by_functions: Vec<String> = calls.iter().filter(|r| !is_rto_read(r)).map(describe).collect();
        let rto_reads = calls.iter().filter(|r| is_rto_read(r)).count();
        if self.deployment.arc.is_some() {
            self.emulator.set_control_plane_down("route53", false, multisite_tests::ControlPlaneFailure::Unavailable);
            self.tl.event("Route 53's control plane answers again (after the failback: nothing needed it)");
            self.check(
                "Route 53's control plane down from before the outage until after failback: no function's recovery path called it",
                by_functions.is_empty(),
                format!(
                    "{} Route 53 control-plane call(s) by the functions' roles{}; besides, {rto_reads} read(s) of configuration by lag-probe for the RTO bound",
                    by_functions.len(),
                    if by_functions.is_empty() { String::new() } else { format!(": {}", by_functions.join(", ")) }
                ),
            );
        } else {
            let degradation = format!(
                "routing backend health_check with Route 53's control plane down: failover could not force {}'s health check unhealthy; routing was left to its endpoint health check until Route 53 answered again, and the scheduled reconcile finished the forced inversion then (a Region whose endpoints answered while unhealthy, or came back before Route 53, would have been routed to); --routing arc does not depend on Route 53's control plane",
                self.failing
            );
            self.tl.event(format!("DEGRADED: {degradation}"));
            self.report.degradations.push(degradation);
            self.tl.event(format!(
                "Route 53 control-plane calls by the functions' roles during the drill: {}",
                if by_functions.is_empty() { "none".into() } else { by_functions.join(", ") }
            ));
        }
    }

    /// The Region Route 53 answers with for each area (TestDNSAnswer), as users would see it.
    async fn dns_answers(&self) -> Result<Vec<Option<String>>> {
        let route53 = &self.clients.region(&self.home)?.route53;
        let answers = dns::answers(
            route53,
            self.deployment.hosted_zone_id.as_deref().unwrap_or_default(),
            RECORD_NAME,
            &self.areas,
            &self.deployment.record_values,
        )
        .await?;
        self.recorder.dns(&self.areas, &answers);
        Ok(answers)
    }

    async fn routing(&self, phase: &str) -> Result<Vec<Option<String>>> {
        let answers = self.dns_answers().await?;
        self.tl.event(format!("Route 53 TestDNSAnswer {phase}: {}", routing_detail(&self.areas, &answers)));
        Ok(answers)
    }

    /// The failed Region's RTO bound from a lag-probe run (the worst case its configuration
    /// allows), printed next to the RTO the drill measures.
    fn record_rto_bound(&mut self, probe: &lag_probe::report::ProbeReport) {
        let bound = probe.readiness.rto.iter().find(|b| b.region == self.failing);
        let (seconds, terms) = match bound {
            Some(b) => {
                let t = &b.terms;
                let show = |v: Option<u64>| v.map_or("?".to_owned(), |v| format!("{v} s"));
                let orchestration = match t.orchestration_seconds {
                    Some(s) => format!("{s:.1} s"),
                    None => "not measured yet (a lower bound)".to_owned(),
                };
                let terms = format!(
                    "alarm {} + health check {} + record TTL {} + orchestration {orchestration}",
                    show(t.alarm_seconds),
                    show(t.health_check_seconds),
                    show(t.record_ttl_seconds)
                );
                match b.unknown_reason() {
                    Some(reason) => (None, reason),
                    None => (b.bound_seconds, terms),
                }
            }
            None => (None, format!("lag-probe reported no bound for {}", self.failing)),
        };
        self.tl.event(format!(
            "RTO bound of {} from its configuration: {} ({terms})",
            self.failing,
            seconds.map_or("unknown".to_owned(), |s| format!("{s:.1} s"))
        ));
        self.report.rto_bound_seconds = seconds;
        self.report.rto_bound_terms = terms;
    }

    async fn lag_probe(&self, label: &str) -> Result<lag_probe::report::ProbeReport> {
        let config = lag_probe::config::ProbeConfig::default();
        let deps = lag_probe::Deps {
            topology: &self.deployment.topology,
            clients: &self.handlers.lag_probe,
            home_region: &self.home,
            clock: &SystemClock,
            config: &config,
        };
        let payload: Value = serde_json::from_str(PROBE_EVENT).map_err(|e| fail(format!("scheduled event: {e}")))?;
        let report =
            Box::pin(lag_probe::handle(payload, &deps)).await.map_err(|e| fail(format!("lag-probe ({label}): {e}")))?;
        self.tl.event(format!("lag-probe ({label}, in {}): {}", self.home, probe_detail(&report)));
        self.recorder.lag(
            label,
            report.replication.overall.map(|s| Lag {
                samples: s.samples,
                p50_ms: s.p50_ms,
                p99_ms: s.p99_ms,
                max_ms: s.max_ms,
            }),
        );
        if self.options.verbose {
            self.tl.detail(serde_json::to_string(&report).unwrap_or_default());
        }
        Ok(report)
    }

    // -----------------------------------------------------------------------------------------
    // Alarm delivery

    /// Delivers one payload to failover and scaler at once, through their handlers, as the two
    /// Lambda targets of the alarm's EventBridge rule; a failed invocation is retried twice, as
    /// Lambda retries an asynchronous invocation.
    async fn deliver(&self, payload: &Value, label: &str) -> Delivery {
        self.deliver_in(&self.home, payload, label).await
    }

    /// [`Self::deliver`] to failover and scaler as deployed in `region`.
    async fn deliver_in(&self, region: &str, payload: &Value, label: &str) -> Delivery {
        let identity = drill_identity();
        let (Some(failover_clients), Some(scaler_clients)) =
            (self.handlers.failover.get(region), self.handlers.scaler.get(region))
        else {
            let e = format!("no handler deployed in {region}");
            return Delivery { failover: Err(e.clone()), scaler: Err(e) };
        };
        let failover_deps = failover::Deps {
            topology: &self.deployment.topology,
            clients: failover_clients,
            home_region: region,
            clock: &SystemClock,
            identity: &identity,
        };
        let scaler_deps = scaler::Deps {
            topology: &self.deployment.topology,
            clients: scaler_clients,
            home_region: region,
            clock: &SystemClock,
            identity: &identity,
        };
        let (failover, scaler) = tokio::join!(
            retried(|| Box::pin(failover::handle(payload.clone(), &failover_deps))),
            retried(|| Box::pin(scaler::handle(payload.clone(), &scaler_deps))),
        );
        let delivery = Delivery { failover, scaler };
        self.tl.event(format!("{label}: failover -> {}", summarize_failover(&delivery.failover)));
        self.tl.event(format!("{label}: scaler -> {}", summarize_scaler(&delivery.scaler)));
        if self.options.verbose {
            if let Ok(r) = &delivery.failover {
                self.tl.detail(serde_json::to_string(r).unwrap_or_default());
            }
            if let Ok(r) = &delivery.scaler {
                self.tl.detail(serde_json::to_string(r).unwrap_or_default());
            }
        }
        delivery
    }

    // -----------------------------------------------------------------------------------------
    // Step 5

    /// Takes the failing Region down: every API of it answers 503, Route 53's global control plane
    /// spared (it is not regional: on AWS it lives in us-east-1 and serves every Region, and a
    /// Regional outage does not take it), unless `--route53-control-plane-down` fails it too, for
    /// the whole outage. Returns the outage's timeline offset.
    fn take_region_down(&mut self, planned: bool) -> u64 {
        if self.options.route53_control_plane_down {
            self.emulator.set_control_plane_down("route53", true, multisite_tests::ControlPlaneFailure::Unavailable);
            // The Region's endpoints fail with it: its endpoint health check sees that.
            self.emulator.set_health_check_failure(&self.deployment.health_checks[&self.failing], true);
        }
        self.emulator.control(
            "POST",
            "/_multisite/outage",
            Some(&json!({"region": self.failing, "down": true, "except_services": ["route53"]})),
        );
        let outage_ms = self.tl.ms();
        let label = format!("outage: {} down", self.failing);
        self.mark(outage_ms, MarkerKind::Outage, label);
        self.tl.event(format!(
            "OUTAGE{}: every {} API now fails with HTTP 503{}",
            if planned { " (planned maintenance)" } else { "" },
            self.failing,
            if self.options.route53_control_plane_down {
                ", and Route 53's control plane just before it (POST /_multisite/control-plane: HTTP 503 whichever Region signs; DNS answers, TestDNSAnswer, keep working); its endpoint health check fails (POST /_multisite/health-check-failure)"
            } else {
                " (Route 53's global control plane spared)"
            }
        ));
        outage_ms
    }

    /// Unplanned: the Region's APIs fail, its alarm goes to ALARM, the alarm is delivered twice
    /// while the drill measures routing, writer and capacity. Returns the outage time (ms).
    async fn unplanned_evacuation(&mut self) -> Result<u64> {
        let outage_ms = self.take_region_down(false);
        self.alarm_and_measure(None).await?;
        Ok(outage_ms)
    }

    /// Planned: the alarm is set by the operator and delivered with `planned: true` (switchover,
    /// no data loss); the Region's traffic is drained, then it goes down. Returns the outage time.
    async fn planned_evacuation(&mut self, traffic: &Traffic) -> Result<u64> {
        self.alarm_and_measure(Some(json!({"planned": true}))).await?;
        traffic.stop_region(&self.failing);
        self.tl.event(format!("{} drained: its writer stopped (users are routed to the survivors)", self.failing));
        tokio::time::sleep(Duration::from_millis(2 * self.options.replication_delay_ms + 300)).await;
        Ok(self.take_region_down(true))
    }

    async fn alarm_and_measure(&mut self, overrides: Option<Value>) -> Result<()> {
        let change = self.change_alarm(StateValue::Alarm, "drill: Region down").await?;
        let detected = change.changed;
        let detected_ms = self.offset_of(detected);
        self.detection_ms = Some(detected_ms);
        self.mark(detected_ms, MarkerKind::Detection, format!("detection: {} ALARM", change.alarm));
        self.tl.event(format!(
            "DETECTION: alarm {} (CloudWatch in {}, SetAlarmState) {}",
            change.alarm,
            change.watcher,
            change.describe()
        ));
        let payload = change.payload(overrides.clone());
        self.tl.event(format!(
            "delivering {} to failover and scaler (the AlarmStateChangeRule's two targets, as deployed in {}), then the same again{}",
            delivered_as(&change, overrides.as_ref()),
            self.home,
            if overrides.is_some() { " (operator override: a planned switchover)" } else { "" }
        ));
        let routing_limit = CONVERGE;

        let baseline_desired = world::BASELINE.desired;
        let n = self.regions.len() as i32;
        let target = baseline_desired.max((baseline_desired * n + (n - 2)) / (n - 1));
        let expected_writer = self.survivors[0].clone();
        let expected_dns: Vec<Option<String>> = self.areas.iter().map(|a| a.expected(&self.survivors)).collect();
        let this = &*self;
        let deliveries = async {
            let first = this.deliver(&payload, "alarm delivery 1/2").await;
            let second = this.deliver(&payload, "alarm delivery 2/2 (duplicate, at-least-once)").await;
            (first, second)
        };
        let routed = until_within(routing_limit, || async {
            let answers = this.dns_answers().await.ok()?;
            (answers == expected_dns).then(|| ms_since(detected))
        });
        let writer_moved = until(|| async {
            let (writer, in_progress) = this.writer_state().await.ok()?;
            (writer.as_deref() == Some(expected_writer.as_str()) && !in_progress).then(|| ms_since(detected))
        });
        let scaled = until(|| async {
            for region in &this.survivors {
                let group = this.group_state(region).await.ok()?;
                let (desired, in_service) = (group.sizes.desired, group.in_service);
                if desired < target || in_service < target as usize {
                    return None;
                }
            }
            Some(ms_since(detected))
        });
        let ((first, second), routed, writer_moved, scaled) = tokio::join!(deliveries, routed, writer_moved, scaled);

        let f = &mut self.report.figures;
        f.detection_to_routing_ms = routed;
        f.writer_move_ms = writer_moved;
        f.scale_up_ms = scaled;
        for (ms, label) in [
            (routed, "routing changed: every area on its nearest survivor".to_owned()),
            (writer_moved, format!("Aurora writer moved to {expected_writer}")),
            (scaled, format!("survivors scaled up to {target} InService")),
        ] {
            if let Some(ms) = ms {
                self.mark(detected_ms + ms, MarkerKind::Action, label);
            }
        }
        self.tl.event(format!(
            "measured from detection: routing {}, Aurora writer in {} {}, survivors at {} instances {}",
            fmt_ms(routed),
            expected_writer,
            fmt_ms(writer_moved),
            target,
            fmt_ms(scaled)
        ));
        let recorded: usize = [&first, &second]
            .iter()
            .filter_map(|d| d.failover.as_ref().ok())
            .flat_map(|r| &r.reports)
            .filter(|r| r.transition_recorded)
            .count();
        if first.failover.is_err() || second.failover.is_err() {
            // The handler's report is not returned with its error: its steps are in the ledger.
            self.tl.event(format!(
                "failover's steps, as its transition record in the ledger has them: {}",
                self.recorded_steps().await
            ));
        }
        let errors: Vec<&String> = [&first, &second].iter().filter_map(|d| d.failover.as_ref().err()).collect();
        if self.routing_degraded() {
            // What health checks can promise without Route 53's control plane: the routing step
            // fails (retryable: Lambda retries, the schedule finishes it), everything else runs.
            let steps = self.recorded_step_outcomes().await;
            // (The latest record is the last retry's: the writer had moved by then, so its plan
            // held only the routing step; the writer is checked on its own below.)
            let routing_failed = steps.iter().any(|(a, ok)| a == "InvertHealthCheck" && !ok);
            let only_routing_failed = steps.iter().all(|(a, ok)| *ok || a == "InvertHealthCheck");
            let retryable = errors.len() == 2 && errors.iter().all(|e| e.contains("[retryable]"));
            self.check(
                "both deliveries handled: only the Route 53 step failed (retryable) while its control plane is down; the transition recorded, scaler done",
                retryable && routing_failed && only_routing_failed && first.scaler.is_ok() && second.scaler.is_ok(),
                format!(
                    "failover answered a retryable error in {} of 2 deliveries ({}); recorded steps {}",
                    errors.len(),
                    errors.first().map(|e| e.as_str()).unwrap_or("none"),
                    self.recorded_steps().await
                ),
            );
            return Ok(());
        }
        let handled =
            first.failover.is_ok() && second.failover.is_ok() && first.scaler.is_ok() && second.scaler.is_ok();
        self.check(
            "both deliveries handled, the transition recorded by exactly one",
            handled && recorded == 1,
            format!(
                "failover recorded the transition in {recorded} of 2 deliveries{}",
                match errors.first() {
                    None => String::new(),
                    Some(e) => format!(
                        "; failover answered an error in {} of 2 (its report is not returned with it; Lambda would retry): {e}",
                        errors.len()
                    ),
                }
            ),
        );
        Ok(())
    }

    /// (action, ok) of each step of the failing Region's latest transition record.
    async fn recorded_step_outcomes(&self) -> Vec<(String, bool)> {
        let Ok(ledger) = self.ledger() else { return Vec::new() };
        let Ok(records) = ledger.list::<Value>(&ledger::transition_pk(&self.failing)).await else { return Vec::new() };
        let Some(latest) = records.iter().max_by_key(|r| r.updated_at_ms) else { return Vec::new() };
        latest.body["steps"]
            .as_array()
            .map(|steps| {
                steps
                    .iter()
                    .map(|s| (s["action"]["action"].as_str().unwrap_or("?").to_owned(), s["ok"] == true))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Health checks with Route 53 down: Route 53's control plane answers again while the Region
    /// is still down, and the scheduled reconcile (failover in the alarm's Region, the minute's
    /// `ReconcileSchedule` event) finishes the forced inversion, before the Region's endpoints
    /// recover and would make its plain health check healthy again.
    async fn finish_inversion_after_route53(&mut self) -> Result<()> {
        self.emulator.set_control_plane_down("route53", false, multisite_tests::ControlPlaneFailure::Unavailable);
        let back = Instant::now();
        self.tl.event(format!(
            "Route 53's control plane answers again ({} still down); until now routing was left to the endpoint health checks",
            self.failing
        ));
        let payload: Value =
            serde_json::from_str(RECONCILE_EVENT).map_err(|e| fail(format!("scheduled reconcile event: {e}")))?;
        let identity = drill_identity();
        let region = self.watcher();
        let deps = failover::Deps {
            topology: &self.deployment.topology,
            clients: self.failover_clients(&region)?,
            home_region: &region,
            clock: &SystemClock,
            identity: &identity,
        };
        let result = Box::pin(failover::handle(payload, &deps)).await;
        let summary = match &result {
            Ok(response) => summarize_failover(&Ok(response.clone())),
            Err(e) => format!("ERROR {e}"),
        };
        self.tl.event(format!("scheduled reconcile (failover in {region}): {summary}"));
        let out = self.out_of_routing(&self.failing).await;
        let settled = self.ledger()?.fleet_status().await?.0;
        self.report.figures.route53_return_to_inversion_ms =
            matches!(out, Ok(true)).then(|| back.elapsed().as_millis() as u64);
        self.check(
            "the scheduled reconcile finished the forced inversion once Route 53 answered",
            result.is_ok() && matches!(out, Ok(true)) && !settled.unsettled(&self.failing),
            format!(
                "health check {}; transition {}; {} ms after Route 53 answered",
                match &out {
                    Ok(v) => format!("forced unhealthy={v}"),
                    Err(e) => format!("unreadable ({e})"),
                },
                if settled.unsettled(&self.failing) { "still unsettled" } else { "settled" },
                back.elapsed().as_millis()
            ),
        );
        Ok(())
    }

    /// The steps of the failing Region's latest transition record (what failover did, each ok or
    /// failed with its error).
    async fn recorded_steps(&self) -> String {
        let records = match self.ledger() {
            Ok(ledger) => ledger.list::<Value>(&ledger::transition_pk(&self.failing)).await,
            Err(e) => return format!("ledger unreadable: {e}"),
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => return format!("ledger unreadable: {e}"),
        };
        let Some(latest) = records.iter().max_by_key(|r| r.updated_at_ms) else {
            return "no transition recorded".into();
        };
        let steps: Vec<String> = latest.body["steps"]
            .as_array()
            .map(|steps| {
                steps
                    .iter()
                    .map(|step| {
                        let action = &step["action"];
                        let what = match action["action"].as_str().unwrap_or("?") {
                            "MoveAuroraWriter" => format!(
                                "{} Aurora writer {} -> {}",
                                action["mode"].as_str().unwrap_or("?"),
                                action["from_region"].as_str().unwrap_or("?"),
                                action["to_region"].as_str().unwrap_or("?")
                            ),
                            other => format!("{other} {}", action["region"].as_str().unwrap_or("?")),
                        };
                        if step["ok"] == true {
                            format!("{what} ok")
                        } else {
                            format!("{what} FAILED ({})", step["error"].as_str().unwrap_or("?"))
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        if steps.is_empty() { "no steps recorded".into() } else { format!("[{}]", steps.join("; ")) }
    }

    /// Every call a handler signed with its role, authorized by that role: the emulator's request
    /// log has no IAM denial.
    fn check_authorization(&mut self) {
        let (per_role, denied) = crate::roles::authorization_summary(self.emulator);
        let calls: usize = per_role.values().sum();
        self.check(
            "handlers ran as their template.yaml roles, no call denied",
            calls > 0 && denied.is_empty(),
            format!(
                "{calls} calls signed by role sessions ({}); {} denied{}",
                per_role.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", "),
                denied.len(),
                if denied.is_empty() { String::new() } else { format!(": {}", denied.join("; ")) }
            ),
        );
    }

    // -----------------------------------------------------------------------------------------
    // Step 6

    async fn end_state_checks(&mut self) -> Result<()> {
        let (writer, in_progress) = self.writer_state().await?;
        let expected = &self.survivors[0];
        self.check(
            "Aurora writer in a survivor",
            writer.as_deref() == Some(expected.as_str()) && !in_progress,
            format!(
                "writer {} (expected {expected}, the first survivor in priority order), {}",
                writer.as_deref().unwrap_or("none"),
                if self.options.planned { "switchover" } else { "failover with AllowDataLoss" }
            ),
        );

        let n = self.regions.len() as i32;
        let d = world::BASELINE.desired;
        let target = d.max((d * n + (n - 2)) / (n - 1));
        let mut sizes = Vec::new();
        let mut ok = true;
        for region in self.survivors.clone() {
            let group = self.group_state(&region).await?;
            let (shared::capacity::GroupSizes { min, desired, max }, in_service) = (group.sizes, group.in_service);
            ok &= desired == target && in_service >= target as usize;
            sizes.push(format!("{region} {min}/{desired}/{max} ({in_service} InService)"));
        }
        let total = target * (n - 1);
        self.check(
            "survivors scaled to carry 100%",
            ok,
            format!(
                "target desired {target} each = ceil({d} x {n} / {}), {total} instances for a baseline of {}; {}",
                n - 1,
                d * n,
                sizes.join(", ")
            ),
        );

        let transitions = self.ledger()?.list::<Value>(&ledger::transition_pk(&self.failing)).await?;
        let (fleet, _) = self.ledger()?.fleet_status().await?;
        let status = fleet.status_of(&self.failing);
        self.check(
            "exactly one transition in the ledger",
            transitions.len() == 1 && status == RegionStatus::Evacuated,
            format!(
                "{} transition record(s) for {} after 2 deliveries; fleet status {:?}",
                transitions.len(),
                self.failing,
                status
            ),
        );
        Ok(())
    }

    /// RPO accounting: every acknowledged write looked up in every survivor.
    async fn rpo(&mut self, writes: &[traffic::Write], outage_ms: u64) -> Result<Vec<String>> {
        let acked: Vec<&traffic::Write> = writes.iter().filter(|w| w.acknowledged).collect();
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for w in &acked {
            *counts.entry(w.region.clone()).or_default() += 1;
        }
        let rejected = writes.iter().filter(|w| !w.acknowledged).count();
        // Let replication between the survivors settle (their writes must all arrive).
        tokio::time::sleep(Duration::from_millis(2 * self.options.replication_delay_ms + 500)).await;
        let keys: Vec<String> = acked.iter().map(|w| w.pk.clone()).collect();
        let mut present: BTreeMap<String, HashSet<String>> = BTreeMap::new();
        for survivor in &self.survivors {
            present.insert(survivor.clone(), traffic::present_in(&self.clients, survivor, DATA_TABLE, &keys).await?);
        }
        let missing_somewhere =
            |w: &traffic::Write| present.iter().any(|(region, found)| *region != w.region && !found.contains(&w.pk));
        let from_failed: Vec<&&traffic::Write> = acked.iter().filter(|w| w.region == self.failing).collect();
        let lost: Vec<&&traffic::Write> = from_failed.iter().copied().filter(|w| missing_somewhere(w)).collect();
        let survivor_missing = acked.iter().filter(|w| w.region != self.failing && missing_somewhere(w)).count();
        let oldest = lost.iter().map(|w| outage_ms.saturating_sub(w.answered_ms)).max();
        let last_seq = from_failed.iter().map(|w| w.seq).max().unwrap_or(0);
        self.report.figures.writes = Writes {
            acknowledged: counts,
            rejected,
            acknowledged_by_failed_region_before_outage: from_failed.len(),
            lost: lost.len(),
            oldest_lost_before_outage_ms: oldest,
            survivor_writes_missing: survivor_missing,
            recovered_after_failback: None,
        };
        self.tl.event(format!(
            "RPO: {} writes acknowledged by {} before the outage (last seq {last_seq}); {} not readable in the survivors{}; {} writes refused during the outage; {} survivor writes missing",
            from_failed.len(),
            self.failing,
            lost.len(),
            oldest.map(|o| format!(" (seq {}..={}, acknowledged within the last {o} ms)", lost.iter().map(|w| w.seq).min().unwrap_or(0), lost.iter().map(|w| w.seq).max().unwrap_or(0))).unwrap_or_default(),
            rejected,
            survivor_missing
        ));
        let budget = self.options.rpo_budget_ms;
        let (passed, detail) = if self.options.planned {
            (
                lost.is_empty() && survivor_missing == 0,
                format!(
                    "planned: {} of {} writes lost (must be 0), survivor writes missing {survivor_missing}",
                    lost.len(),
                    from_failed.len()
                ),
            )
        } else {
            (
                oldest.is_none_or(|o| o <= budget) && survivor_missing == 0,
                format!(
                    "{} of {} writes acknowledged by {} lost, {}; survivor writes missing {survivor_missing}",
                    lost.len(),
                    from_failed.len(),
                    self.failing,
                    match oldest {
                        Some(o) =>
                            format!("all acknowledged within the last {o} ms before the outage (budget {budget} ms)"),
                        None => "none".into(),
                    }
                ),
            )
        };
        self.check("RPO: no acknowledged write lost outside the replication window", passed, detail);
        Ok(lost.iter().map(|w| w.pk.clone()).collect())
    }

    // -----------------------------------------------------------------------------------------
    // Step 7

    async fn failback(&mut self, lost_keys: &[String]) -> Result<()> {
        self.end_outage();
        // The failback gate reads the latest lag-probe verdict: run it before the OK.
        let probe = self.lag_probe("before failback").await?;
        let ok = self.change_alarm(StateValue::Ok, "drill: Region healthy again").await?;
        self.tl.event(format!("alarm {} (CloudWatch in {}, SetAlarmState) {}", ok.alarm, ok.watcher, ok.describe()));
        self.check_alarm_state(&format!("alarm {} back to OK after recovery", ok.alarm), "OK").await?;
        let gate = self.show_failback_gate(&ok, &probe).await?;
        let gate_open = self.deliver_failback(&ok, &probe, &gate).await;
        let routed_back = self.until_routed_back(gate_open).await;
        let sizes = self.restore_survivors().await?;
        self.report.figures.failback_ms = routed_back;
        if let Some(ms) = routed_back {
            self.mark(self.offset_of(gate_open) + ms, MarkerKind::Failback, "failback: original routing");
        }
        self.check(
            "capacities restored",
            sizes.iter().all(|g| g.sizes == world::BASELINE),
            format!(
                "{} (baseline {})",
                self.survivors
                    .iter()
                    .zip(&sizes)
                    .map(|(r, s)| format!("{r} {}", s.sizes))
                    .collect::<Vec<_>>()
                    .join(", "),
                world::BASELINE
            ),
        );
        self.check_failback_complete().await?;
        self.count_lost_writes_recovered(lost_keys).await;
        Ok(())
    }

    /// The failing Region's APIs answer again (held replication released), and its endpoint
    /// health check passes when the scenario failed it.
    fn end_outage(&mut self) {
        self.emulator.set_outage(&self.failing, false);
        let recovered_ms = self.tl.ms();
        self.mark(recovered_ms, MarkerKind::Recovery, format!("recovery: {} back", self.failing));
        if self.options.route53_control_plane_down {
            self.emulator.set_health_check_failure(&self.deployment.health_checks[&self.failing], false);
        }
        self.tl.event(format!(
            "RECOVERY: {} APIs answer again (held replication released){}",
            self.failing,
            match (self.options.route53_control_plane_down, self.deployment.arc.is_some()) {
                (true, true) => "; its endpoint health check passes; Route 53's control plane is still down (failback needs only ARC)",
                (true, false) => "; its endpoint health check passes",
                _ => "",
            }
        ));
    }

    /// Shows the gate: a dry-run delivery of the OK says whether failback may proceed now, and
    /// why not; then waits out the cool-down.
    async fn show_failback_gate(
        &mut self,
        ok: &AlarmChange,
        probe: &lag_probe::report::ProbeReport,
    ) -> Result<FailbackGate> {
        let (fleet, _) = self.ledger()?.fleet_status().await?;
        let changed = fleet.last_change_ms(&self.failing).unwrap_or(0);
        let cooldown_ms = self.options.cooldown_seconds * 1000;
        let elapsed = world::now_ms().saturating_sub(changed);
        let identity = drill_identity();
        let failover_deps = failover::Deps {
            topology: &self.deployment.topology,
            clients: self.failover_clients(&ok.watcher)?,
            home_region: &ok.watcher,
            clock: &SystemClock,
            identity: &identity,
        };
        let probe_line = format!(
            "lag-probe verdict {} ms old, max lag {} ms vs budget {} ms, breached={}",
            world::now_ms().saturating_sub(probe.measured_at_ms),
            probe.summary().max_lag_ms.map(|m| m.to_string()).unwrap_or_else(|| "-".into()),
            probe.rpo_budget_ms,
            probe.rpo_breached
        );
        let dry_run = json!({"dry_run": true});
        let dry = Box::pin(failover::handle(ok.payload(Some(dry_run.clone())), &failover_deps)).await;
        let closed_reason = match &dry {
            Ok(response) => response
                .reports
                .iter()
                .find(|r| r.outcome == failover::Outcome::FailbackPending)
                .and_then(|r| r.reason.clone()),
            Err(e) => Some(e.to_string()),
        };
        // The gate judged the cool-down at some moment during the dry run: an open gate is right
        // only if the cool-down was over by the time the dry run answered (a slow machine may
        // reach this step at the cool-down's very end, or after it).
        let elapsed_after_dry_run = world::now_ms().saturating_sub(changed);
        self.tl.event(format!(
            "failback gate (failover given {}): auto_failback on; cool-down {} s, {:.1} s since the evacuation; {probe_line} -> {}",
            delivered_as(ok, Some(&dry_run)),
            self.options.cooldown_seconds,
            elapsed as f64 / 1000.0,
            match &closed_reason {
                Some(reason) => format!("CLOSED ({reason})"),
                None => "OPEN".into(),
            }
        ));
        if elapsed < cooldown_ms {
            let wait = cooldown_ms - elapsed + 300;
            self.tl.event(format!("waiting {:.1} s for the cool-down", wait as f64 / 1000.0));
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        let shown = closed_reason.is_some() || elapsed_after_dry_run >= cooldown_ms;
        Ok(FailbackGate { closed_reason, shown })
    }

    /// The OK, delivered to both functions with the writer asked back (a planned switchover);
    /// checks the gate held and then let it through. The moment the gates opened.
    async fn deliver_failback(
        &mut self,
        ok: &AlarmChange,
        probe: &lag_probe::report::ProbeReport,
        gate: &FailbackGate,
    ) -> Instant {
        let gate_open = Instant::now();
        let gate_open_ms = self.offset_of(gate_open);
        self.mark(gate_open_ms, MarkerKind::Failback, "failback: OK delivered (gates open)");
        let restore_writer = json!({"restore_writer": true});
        self.tl.event(format!(
            "delivering {} to failover and scaler (operator override: the Aurora writer switches back)",
            delivered_as(ok, Some(&restore_writer))
        ));
        let payload = ok.payload(Some(restore_writer));
        let delivery = self.deliver(&payload, "OK delivery").await;
        let failed_back = delivery
            .failover
            .as_ref()
            .map(|r| r.reports.iter().any(|r| r.outcome == failover::Outcome::Reconciled))
            .unwrap_or(false);
        self.check(
            "failback gated: waits for the cool-down and a fresh lag-probe verdict, then proceeds",
            failed_back && gate.shown && !probe.rpo_breached,
            format!(
                "before the cool-down: {}; after: failover {}",
                gate.closed_reason.as_deref().unwrap_or("(cool-down already over)"),
                summarize_failover(&delivery.failover)
            ),
        );
        gate_open
    }

    /// Milliseconds from `gate_open` until every client area resolves as before the outage.
    async fn until_routed_back(&self, gate_open: Instant) -> Option<u64> {
        let expected_dns: Vec<Option<String>> = self.areas.iter().map(|a| a.expected(&self.regions)).collect();
        until(|| async {
            let answers = self.dns_answers().await.ok()?;
            (answers == expected_dns).then(|| ms_since(gate_open))
        })
        .await
    }

    /// The scaler restores once failback is recorded and its own cool-down (counted from the
    /// failback) has passed; an OK that raced ahead is caught by the scheduled restore sweep
    /// (events/scheduled-restore-sweep.json), as in production: the drill runs it every second.
    /// The survivors' groups as last seen.
    async fn restore_survivors(&mut self) -> Result<Vec<shared::aws::GroupState>> {
        let restored = |groups: &[shared::aws::GroupState]| groups.iter().all(|g| g.sizes == world::BASELINE);
        let mut sizes = self.survivor_sizes().await?;
        let deadline = Instant::now() + Duration::from_secs(self.options.cooldown_seconds + 10);
        let mut attempt = 0;
        let mut last_summary = String::new();
        while !restored(&sizes) && Instant::now() < deadline {
            attempt += 1;
            let result = self.restore_sweep().await?;
            let summary = summarize_scaler(&result);
            sizes = self.survivor_sizes().await?;
            if summary != last_summary || restored(&sizes) {
                self.tl.event(format!("scheduled restore sweep {attempt}: scaler -> {summary}"));
                last_summary = summary;
            }
            if !restored(&sizes) {
                tokio::time::sleep(Duration::from_millis(1_000)).await;
            }
        }
        Ok(sizes)
    }

    /// The Region is back in routing, the writer back in it, and the ledger holds two transitions.
    async fn check_failback_complete(&mut self) -> Result<()> {
        let this = &*self;
        let writer_back = until(|| async {
            let (writer, in_progress) = this.writer_state().await.ok()?;
            (writer.as_deref() == Some(this.failing.as_str()) && !in_progress).then_some(())
        })
        .await;
        let out = self.out_of_routing(&self.failing).await.map_err(fail)?;
        let transitions = self.ledger()?.list::<Value>(&ledger::transition_pk(&self.failing)).await?;
        self.check(
            &format!("failback complete: {} restored, writer back (switchover), two transitions", self.routing_step()),
            writer_back.is_some() && !out && transitions.len() == 2,
            format!(
                "{} {}, writer {}, {} transition records (evacuation + failback: {})",
                self.routing_step(),
                if out { "still out of routing" } else { "back in routing" },
                if writer_back.is_some() { format!("back in {}", self.failing) } else { "not back".into() },
                transitions.len(),
                transitions.iter().map(|t| t.sk.as_str()).collect::<Vec<_>>().join(", ")
            ),
        );
        Ok(())
    }

    /// Writes caught in the replication window reach the survivors once the Region is back.
    async fn count_lost_writes_recovered(&mut self, lost_keys: &[String]) {
        if lost_keys.is_empty() {
            return;
        }
        let this = &*self;
        let recovered = until(|| async {
            let mut all = 0;
            for survivor in &this.survivors {
                let found = traffic::present_in(&this.clients, survivor, DATA_TABLE, lost_keys).await.ok()?;
                all = found.len();
                if found.len() < lost_keys.len() {
                    return None;
                }
            }
            Some(all)
        })
        .await;
        self.report.figures.writes.recovered_after_failback = Some(recovered.unwrap_or(0));
        self.tl.event(format!(
            "the {} writes caught in the replication window: {} replicated to the survivors after recovery",
            lost_keys.len(),
            recovered.unwrap_or(0)
        ));
    }

    async fn survivor_sizes(&self) -> Result<Vec<shared::aws::GroupState>> {
        let mut sizes = Vec::new();
        for region in &self.survivors {
            sizes.push(self.group_state(region).await?);
        }
        Ok(sizes)
    }
}

/// Runs a handler; an error is retried twice after a short pause (Lambda's asynchronous retries).
async fn retried<T, F, Fut>(mut call: F) -> std::result::Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, shared::Error>>,
{
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) => last = format!("{e} [{}]", if e.is_retryable() { "retryable" } else { "permanent" }),
        }
    }
    Err(format!("failed 3 times, last: {last}"))
}

fn fmt_ms(ms: Option<u64>) -> String {
    ms.map(|m| format!("{m} ms")).unwrap_or_else(|| "NOT REACHED".into())
}

fn routing_detail(areas: &[Area], answers: &[Option<String>]) -> String {
    areas
        .iter()
        .zip(answers)
        .map(|(a, r)| format!("{} -> {}", a.name, r.as_deref().unwrap_or("no answer")))
        .collect::<Vec<_>>()
        .join(", ")
}

fn probe_detail(report: &lag_probe::report::ProbeReport) -> String {
    let lag = report
        .replication
        .overall
        .map(|s| format!("lag p50 {} / p99 {} / max {} ms over {} samples", s.p50_ms, s.p99_ms, s.max_ms, s.samples))
        .unwrap_or_else(|| "no lag measured".into());
    format!(
        "{} active Regions, {} pairs: {lag}, RPO budget {} ms {}; readiness {}",
        report.active_regions.len(),
        report.replication.pairs.len(),
        report.rpo_budget_ms,
        if report.rpo_breached { "BREACHED" } else { "met" },
        if report.readiness.ok {
            "OK".to_owned()
        } else {
            format!(
                "FAILED: {}",
                report.readiness.failures.iter().map(|f| f.message.clone()).collect::<Vec<_>>().join("; ")
            )
        }
    )
}

fn summarize_failover(result: &std::result::Result<failover::Response, String>) -> String {
    match result {
        Err(e) => format!("ERROR {e}"),
        Ok(response) => response
            .reports
            .iter()
            .map(|r| {
                let actions: Vec<String> = r
                    .steps
                    .iter()
                    .map(|s| format!("{}{}", action_text(&s.action), if s.ok { "" } else { " FAILED" }))
                    .collect();
                let planned: Vec<String> =
                    r.plan.as_ref().map(|p| p.actions.iter().map(action_text).collect()).unwrap_or_default();
                format!(
                    "{:?}{}{}{}",
                    r.outcome,
                    if r.transition_recorded { ", transition recorded" } else { ", no new transition" },
                    if !actions.is_empty() {
                        format!(", did [{}]", actions.join(", "))
                    } else if !planned.is_empty() {
                        format!(", planned [{}]", planned.join(", "))
                    } else {
                        ", nothing to do".into()
                    },
                    r.reason.as_ref().map(|x| format!(" ({x})")).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

fn action_text(action: &failover::plan::Action) -> String {
    use failover::plan::Action;
    match action {
        Action::InvertHealthCheck { region, .. } => format!("invert health check {region}"),
        Action::RestoreHealthCheck { region, .. } => format!("restore health check {region}"),
        Action::MoveAuroraWriter { from_region, to_region, mode, .. } => {
            format!("{mode:?} Aurora writer {from_region} -> {to_region}")
        }
        Action::ObserveAurora { from_region } => format!("observe Aurora from {from_region}"),
        Action::SetRoutingControl { region, on, .. } => {
            format!("routing control {region} {}", if *on { "On" } else { "Off" })
        }
    }
}

fn summarize_scaler(result: &std::result::Result<Vec<scaler::Report>, String>) -> String {
    match result {
        Err(e) => format!("ERROR {e}"),
        Ok(reports) => reports
            .iter()
            .map(|r| {
                let groups: Vec<String> = r
                    .groups
                    .iter()
                    .map(|g| {
                        let from = g.current.map(|c| c.desired.to_string()).unwrap_or_else(|| "?".into());
                        let to = g.target.map(|c| c.desired.to_string()).unwrap_or_else(|| "?".into());
                        format!("{} {:?} {from}->{to}", g.region, g.action)
                    })
                    .collect();
                format!(
                    "{:?} {:?}{}{}",
                    r.trigger,
                    r.outcome,
                    if groups.is_empty() { String::new() } else { format!(" [{}]", groups.join(", ")) },
                    r.reason.as_ref().map(|x| format!(" ({x})")).unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
    }
}

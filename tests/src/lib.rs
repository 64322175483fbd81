//! Test support for multisite: starts the local AWS emulator (moto plus multisite's DR
//! extension, `tests/emulator/`), drives its control API (outages, latency, throttling,
//! replication delay) and builds real aws-sdk-rust configurations pointed at it through the
//! standard endpoint override.
//!
//! Test code only: panics here are test failures with a message, never production behaviour.

pub mod arc;
pub mod deployment;
pub mod fixtures;
mod http;
pub mod instances;
pub mod response_server;
pub mod roles;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use serde::Deserialize;
use serde_json::{Value, json};
use shared::RegionalClients;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long the emulator may take to import moto and start listening.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(90);
const READY_PREFIX: &str = "MULTISITE_EMULATOR_READY ";

/// The repository root: the nearest ancestor holding `tests/emulator/multisite_emulator`, looked
/// up at run time from the package under test (cargo sets `CARGO_MANIFEST_DIR` when it runs tests)
/// or the working directory, so a checkout that moved or shares a target dir still finds itself.
pub fn repo_root() -> PathBuf {
    let starts = [std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from), std::env::current_dir().ok()];
    starts
        .into_iter()
        .flatten()
        .find_map(|start| {
            start.ancestors().find(|dir| dir.join("tests/emulator/multisite_emulator").is_dir()).map(Path::to_path_buf)
        })
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."))
        })
}

/// The Python interpreter of the venv the project's scripts create (`scripts/venv.sh`), or the
/// one named by `MULTISITE_EMULATOR_PYTHON`.
pub fn emulator_python() -> PathBuf {
    venv_python("MULTISITE_EMULATOR_PYTHON", ".venv", "make venv")
}

/// The interpreter named by `override_var`, else `<repo>/<venv>/bin/python`, which must exist:
/// tests never create a venv (`make test` prepares them first; `make_target` makes this one).
pub fn venv_python(override_var: &str, venv: &str, make_target: &str) -> PathBuf {
    if let Some(python) = std::env::var_os(override_var) {
        return PathBuf::from(python);
    }
    let python = repo_root().join(venv).join("bin/python");
    assert!(
        python.exists(),
        "the venv {} is missing: run `{make_target}` (or `make test`, which prepares every venv) first",
        python.display()
    );
    python
}

/// How a global control plane taken down with [`Emulator::set_control_plane_down`] fails calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlPlaneFailure {
    /// HTTP 503 `ServiceUnavailable` (server fault): the SDKs retry it as transient.
    Unavailable,
    /// HTTP 400 `Throttling`, "Rate exceeded" (Route 53's documented throttling answer): the SDKs
    /// retry it with throttling backoff.
    Throttling,
}

impl ControlPlaneFailure {
    /// The control API's name of the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::Throttling => "throttling",
        }
    }
}

/// One row of the emulator's request log.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RequestRecord {
    /// Milliseconds since the emulator started, when the request arrived.
    pub t_ms: f64,
    /// When the response was sent.
    pub end_ms: f64,
    pub region: String,
    pub service: String,
    pub operation: String,
    pub status: u16,
    /// The role session that signed the call (its assumed-role ARN), `None` for the administrator.
    #[serde(default)]
    pub principal: Option<String>,
    /// Set when IAM denied the call: the action and the resource it was checked against.
    #[serde(default)]
    pub denied: Option<Denial>,
}

/// An IAM denial the emulator recorded.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Denial {
    pub action: String,
    pub resource: String,
}

/// A running emulator process. Dropping it stops the process.
pub struct Emulator {
    url: String,
    child: Mutex<Child>,
    // Held open: the emulator (started with --exit-on-stdin-eof) exits when this closes, so a
    // test process that dies never leaves it behind.
    _stdin: Mutex<Option<ChildStdin>>,
}

impl Emulator {
    /// Starts a new emulator process on a free loopback port and waits until it is ready. Tests
    /// use [`Emulator::lease`], which reuses this binary's processes; `start` is for a program
    /// that owns its emulator (the drill, the benchmarks).
    pub fn start() -> Self {
        let python = emulator_python();
        let mut child = Command::new(&python)
            .args(["-m", "multisite_emulator", "--host", "127.0.0.1", "--port", "0", "--exit-on-stdin-eof"])
            .current_dir(repo_root().join("tests/emulator"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the emulator with {}: {e}", python.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stdin = child.stdin.take();

        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut ready_tx = Some(ready_tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                match (line.strip_prefix(READY_PREFIX), ready_tx.take()) {
                    (Some(url), Some(tx)) => {
                        let _ = tx.send(url.trim().to_owned());
                    }
                    (_, tx) => {
                        ready_tx = tx;
                        // Keep draining so the emulator never blocks on a full pipe.
                        eprintln!("[emulator] {line}");
                    }
                }
            }
        });
        let url = match ready_rx.recv_timeout(STARTUP_TIMEOUT) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("the emulator did not report ready within {STARTUP_TIMEOUT:?}");
            }
        };
        let emulator = Self { url, child: Mutex::new(child), _stdin: Mutex::new(stdin) };
        let (status, _) = emulator.control("GET", "/_multisite/health", None);
        assert_eq!(status, 200, "emulator health check");
        emulator
    }

    /// An emulator for one test, from this test binary's pool ([`EmulatorPool::lease`]).
    pub fn lease() -> EmulatorLease {
        static POOL: EmulatorPool = EmulatorPool::new();
        POOL.lease()
    }

    /// The endpoint URL, as `AWS_ENDPOINT_URL` would hold it.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A base SDK configuration reaching the emulator through the standard endpoint override,
    /// with the administrator's static test credentials (set-up: tables, groups, clusters) and
    /// fast retries.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.sdk_config_with(Credentials::new("testing", "testing", None, None, "multisite-tests")).await
    }

    /// The same configuration signed with other credentials, e.g. a session of a function's role
    /// ([`roles::StackRoles::session`]).
    pub async fn sdk_config_with(&self, credentials: Credentials) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.url)
            .region(Region::new("us-east-1"))
            .credentials_provider(credentials)
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(20))
                    .with_max_backoff(Duration::from_millis(200)),
            )
            .timeout_config(shared::clients::default_timeouts())
            .http_client(shared::clients::LazyHttpsClient::default())
            .load()
            .await
    }

    /// Per-Region clients for `regions`, built as production builds them.
    pub async fn clients(&self, regions: &[&str]) -> RegionalClients {
        RegionalClients::with_base(self.sdk_config().await, regions.iter().copied())
    }

    /// Environment a function process needs to reach this emulator (for binaries and the drill).
    pub fn process_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.url.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ]
    }

    /// Clears all AWS state and every injected fault.
    pub fn reset(&self) {
        self.post("/_multisite/reset", json!({}));
    }

    /// Takes every API of `region` down (HTTP 503) or brings it back. Bringing it back also ends
    /// every [`Emulator::set_service_outage`] of the Region.
    pub fn set_outage(&self, region: &str, down: bool) {
        self.post("/_multisite/outage", json!({"region": region, "down": down}));
    }

    /// Takes only `services` (SigV4 signing names: `dynamodb`, `rds`, `autoscaling`, ...) of
    /// `region` down (HTTP 503 `ServiceUnavailable`) or brings just those back; the rest of the
    /// Region keeps answering. Outages of several services add up. A DynamoDB outage holds Global
    /// Table replication to and from the Region until DynamoDB there is back; other services'
    /// outages hold none.
    pub fn set_service_outage(&self, region: &str, services: &[&str], down: bool) {
        self.post("/_multisite/outage", json!({"region": region, "services": services, "down": down}));
    }

    /// Takes the control plane of a global service (only `route53` today) down or brings it back:
    /// while down, every call to it fails whichever Region signs it, as `mode` says, except its
    /// data plane (`TestDNSAnswer`, i.e. DNS answers, keeps working). Independent of Region
    /// outages; only [`Emulator::reset`] or `down: false` clears it.
    pub fn set_control_plane_down(&self, service: &str, down: bool, mode: ControlPlaneFailure) {
        self.post("/_multisite/control-plane", json!({"service": service, "down": down, "mode": mode.as_str()}));
    }

    /// Adds `ms` of latency to every call signed for `region` (0 clears).
    pub fn set_latency(&self, region: &str, ms: u64) {
        self.post("/_multisite/latency", json!({"region": region, "ms": ms}));
    }

    /// The next `count` calls to `service` (all services when `None`) in `region` are throttled.
    pub fn throttle(&self, region: &str, count: u32, service: Option<&str>, operation: Option<&str>) {
        self.post(
            "/_multisite/throttle",
            json!({"region": region, "count": count, "service": service, "operation": operation}),
        );
    }

    /// Sets the Global Table replication delay for every Region pair.
    pub fn set_replication_delay(&self, ms: u64) {
        self.post("/_multisite/replication", json!({"delay_ms": ms}));
    }

    /// Sets the replication delay from `source` to `destination` only.
    pub fn set_pair_replication_delay(&self, source: &str, destination: &str, ms: u64) {
        self.post("/_multisite/replication", json!({"delay_ms": ms, "source": source, "destination": destination}));
    }

    /// Sets how long replicas stay CREATING/DELETING and a global failover stays in progress.
    pub fn set_timing(&self, replica_creating_ms: u64, replica_deleting_ms: u64, failover_ms: u64) {
        self.post(
            "/_multisite/timing",
            json!({"replica_creating_ms": replica_creating_ms, "replica_deleting_ms": replica_deleting_ms, "failover_ms": failover_ms}),
        );
    }

    /// Injects (or clears) an endpoint failure behind a Route 53 health check.
    pub fn set_health_check_failure(&self, health_check_id: &str, failing: bool) {
        self.post("/_multisite/health-check-failure", json!({"health_check_id": health_check_id, "failing": failing}));
    }

    /// Every AWS call served since start (or the last [`Emulator::clear_requests`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        let (status, body) = self.control("GET", "/_multisite/requests", None);
        assert_eq!(status, 200, "request log: {body}");
        serde_json::from_value(body["requests"].clone()).expect("request log shape")
    }

    pub fn clear_requests(&self) {
        let (status, body) = self.control("DELETE", "/_multisite/requests", None);
        assert_eq!(status, 200, "clear request log: {body}");
    }

    /// The emulator's settings and replica groups, as JSON.
    pub fn state(&self) -> Value {
        self.control("GET", "/_multisite/state", None).1
    }

    fn post(&self, path: &str, body: Value) {
        self.post_json(path, &body);
    }

    /// POSTs `body` to a control-API path, asserts 200 and returns the answer.
    pub fn post_json(&self, path: &str, body: &Value) -> Value {
        let (status, answer) = self.control("POST", path, Some(body));
        assert_eq!(status, 200, "POST {path} {body} -> {answer}");
        answer
    }

    /// A raw control-API call: (status, JSON body).
    pub fn control(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let response = http::request(&self.url, method, path, body.map(|b| b.to_string()).as_deref())
            .unwrap_or_else(|e| panic!("{method} {path} to the emulator failed: {e}"));
        let json = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        (response.status, json)
    }

    /// [`Emulator::control`] that answers `None` for the status when the process does not answer.
    fn try_control(&self, method: &str, path: &str, body: Option<&Value>) -> (Option<u16>, Value) {
        match http::request(&self.url, method, path, body.map(|b| b.to_string()).as_deref()) {
            Ok(response) => (Some(response.status), serde_json::from_slice(&response.body).unwrap_or(Value::Null)),
            Err(_) => (None, Value::Null),
        }
    }
}

/// Emulator processes that tests lease one at a time. A lease is reset to the emulator's
/// start-up state (no AWS resources, no faults, default timings, an empty request log) before it
/// is lent, as `tests/emulator/conftest.py` resets its one emulator before every test. An idle
/// process is reused; a new one is started only when every process is lent to a running test,
/// so a test binary starts as many as it runs tests at once (`--test-threads`).
pub struct EmulatorPool {
    idle: Mutex<Vec<Emulator>>,
    started: AtomicUsize,
}

impl EmulatorPool {
    pub const fn new() -> Self {
        Self { idle: Mutex::new(Vec::new()), started: AtomicUsize::new(0) }
    }

    /// A reset emulator for one test. The lease gives the process back when dropped, unless the
    /// test is panicking: a failed test may leave work in flight against it, so that process is
    /// stopped instead.
    pub fn lease(&'static self) -> EmulatorLease {
        loop {
            let idle = self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).pop();
            let Some(emulator) = idle else {
                self.started.fetch_add(1, Ordering::Relaxed);
                return EmulatorLease { emulator: Some(Emulator::start()), pool: self };
            };
            // A process that died or cannot reset is dropped (stopped) and the next one tried.
            let (status, _) = emulator.try_control("POST", "/_multisite/reset", Some(&json!({})));
            if status == Some(200) {
                return EmulatorLease { emulator: Some(emulator), pool: self };
            }
        }
    }

    /// How many processes this pool has started.
    pub fn started(&self) -> usize {
        self.started.load(Ordering::Relaxed)
    }

    /// How many processes are idle (started and not lent).
    pub fn idle(&self) -> usize {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).len()
    }
}

impl Default for EmulatorPool {
    fn default() -> Self {
        Self::new()
    }
}

/// One test's emulator ([`Emulator::lease`]); derefs to [`Emulator`].
pub struct EmulatorLease {
    emulator: Option<Emulator>,
    pool: &'static EmulatorPool,
}

impl std::ops::Deref for EmulatorLease {
    type Target = Emulator;

    fn deref(&self) -> &Emulator {
        self.emulator.as_ref().expect("a lease holds its emulator until dropped")
    }
}

impl Drop for EmulatorLease {
    fn drop(&mut self) {
        if let Some(emulator) = self.emulator.take() {
            if !std::thread::panicking() {
                self.pool.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(emulator);
            }
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        if let Ok(mut stdin) = self._stdin.lock() {
            if let Some(mut pipe) = stdin.take() {
                let _ = pipe.flush();
            }
        }
        if let Ok(mut child) = self.child.lock() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

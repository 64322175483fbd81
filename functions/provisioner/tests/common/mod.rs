//! Helpers shared by the provisioner's integration tests: real-shaped events built from the files
//! in `events/`, a fast test configuration, continuations the test captures, the provisioner's
//! role as `template.yaml` renders it for the stack a test models, and invoking the real handler
//! with a Lambda context whose deadline the test chooses.
#![allow(dead_code)] // each test binary uses a different subset

use lambda_runtime::{Context, LambdaEvent};
use multisite_tests::Emulator;
use multisite_tests::fixtures::replica_statuses;
use multisite_tests::response_server::{RecordedRequest, ResponseServer};
use multisite_tests::roles::{Function, StackRoles};
use provisioner::continuation::{BoxFuture, ContinuationError};
use provisioner::delivery::DeliveryPolicy;
use provisioner::{Config, Continuation, Deps, DynamoDbClients, Refused, ResponseClient, Summary};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const HOME: &str = "us-east-1";
/// Every Region the tests use, for the administrator's clients.
pub const ALL: [&str; 4] = ["us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2"];
pub const FUNCTION_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:multisite-provisioner";

/// The stack of the sample events' StackId.
pub const STACK_NAME: &str = "user-sessions";

/// The PhysicalResourceId a Create of `logical` for `table` answers in the sample events' stack.
pub fn v1_id(table: &str, logical: &str) -> String {
    format!("v1/{HOME}/{STACK_NAME}/{table}/{logical}")
}

/// The tag that records the replicas the resource `id` added.
pub fn record_key(id: &str) -> String {
    format!("multisite:replicas-added:{id}")
}

pub fn events_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events")
}

/// An event file from `events/`, as JSON.
pub fn event_file(name: &str) -> Value {
    let path = events_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// `events/provisioner-create.json` pointed at `url`, for `logical`, with these properties.
pub fn create_event(url: &str, logical: &str, table: &str, regions: Value) -> Value {
    let mut event = event_file("provisioner-create.json");
    event["ResponseURL"] = json!(url);
    event["LogicalResourceId"] = json!(logical);
    event["ResourceProperties"]["TableName"] = json!(table);
    event["ResourceProperties"]["Regions"] = regions;
    event
}

/// `events/provisioner-update.json` pointed at `url`.
pub fn update_event(url: &str, logical: &str, physical_id: &str, new: (&str, Value), old: (&str, Value)) -> Value {
    let mut event = event_file("provisioner-update.json");
    event["ResponseURL"] = json!(url);
    event["LogicalResourceId"] = json!(logical);
    event["PhysicalResourceId"] = json!(physical_id);
    event["ResourceProperties"]["TableName"] = json!(new.0);
    event["ResourceProperties"]["Regions"] = new.1;
    event["OldResourceProperties"]["TableName"] = json!(old.0);
    event["OldResourceProperties"]["Regions"] = old.1;
    event
}

/// `events/provisioner-delete.json` pointed at `url`.
pub fn delete_event(url: &str, logical: &str, physical_id: &str, table: &str, regions: Value) -> Value {
    let mut event = event_file("provisioner-delete.json");
    event["ResponseURL"] = json!(url);
    event["LogicalResourceId"] = json!(logical);
    event["PhysicalResourceId"] = json!(physical_id);
    event["ResourceProperties"]["TableName"] = json!(table);
    event["ResourceProperties"]["Regions"] = regions;
    event
}

/// Production defaults with test-sized timings, and the local ResponseURL server allowed (the
/// test switch `MULTISITE_PROVISIONER_ALLOW_LOCAL_RESPONSE_URL`).
pub fn test_config() -> Config {
    let mut config = Config::for_region(HOME);
    config.allow_local_response_url = true;
    config.poll_interval = Duration::from_millis(50);
    config.deadline_margin = Duration::from_millis(600);
    config.continue_reserve = Duration::from_millis(300);
    config.default_invocation_time = Duration::from_secs(60);
    config.delivery = DeliveryPolicy {
        attempts: 5,
        first_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        attempt_timeout: Duration::from_millis(500),
    };
    config
}

/// A continuation the test delivers itself (moto cannot run Lambda code).
#[derive(Default)]
pub struct CapturedContinuations {
    pub calls: Mutex<Vec<(String, Value)>>,
}

impl CapturedContinuations {
    pub fn take(&self) -> Vec<(String, Value)> {
        std::mem::take(&mut *self.calls.lock().expect("calls"))
    }
}

impl Continuation for CapturedContinuations {
    fn continue_later<'a>(
        &'a self,
        function: &'a str,
        event: &'a Value,
    ) -> BoxFuture<'a, Result<(), ContinuationError>> {
        self.calls.lock().expect("calls").push((function.to_owned(), event.clone()));
        Box::pin(async { Ok(()) })
    }
}

/// A continuation with a bug in it: it panics.
pub struct PanickingContinuation;

impl Continuation for PanickingContinuation {
    fn continue_later<'a>(&'a self, _: &'a str, _: &'a Value) -> BoxFuture<'a, Result<(), ContinuationError>> {
        panic!("simulated bug while queueing the continuation")
    }
}

/// DynamoDB clients that must never be asked for: counts the requests and refuses them.
#[derive(Default)]
pub struct NoDynamoDb {
    pub requests: AtomicUsize,
}

impl DynamoDbClients for NoDynamoDb {
    fn dynamodb(&self, region: &str) -> Result<aws_sdk_dynamodb::Client, shared::Error> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Err(shared::Error::UnknownRegion(region.to_owned()))
    }
}

pub fn deps(config: Config, dynamodb: Arc<dyn DynamoDbClients>, continuation: Arc<dyn Continuation>) -> Arc<Deps> {
    Arc::new(Deps { config, dynamodb, continuation, responses: ResponseClient::default() })
}

/// The CloudFormation parameters of the stack a test models: the template's own custom resource
/// (`DataTableReplicas`, in the stack of `DataTableHomeRegion` = [`HOME`]) manages `table`
/// (GlobalTableName) in `regions` (Region1..N, 2-4 of them, as the template takes them).
///
/// Only GlobalTableName and the Regions shape the provisioner's role. The other required
/// parameters (health checks, Auto Scaling groups, alarms, hosted zone, record) are placeholders
/// that match the template's patterns: they name what the other functions' roles cover.
pub fn stack_parameters(table: &str, regions: &[&str]) -> Map<String, Value> {
    assert!((2..=4).contains(&regions.len()), "template.yaml deploys 2-4 Regions, not {regions:?}");
    let mut p = Map::new();
    let mut put = |key: String, value: String| {
        p.insert(key, Value::String(value));
    };
    put("GlobalTableName".into(), table.to_owned());
    put("DataTableHomeRegion".into(), HOME.to_owned());
    put("HostedZoneId".into(), "Z0PLACEHOLDER00000000".into());
    put("RecordName".into(), "app.example.com".into());
    for (i, region) in regions.iter().enumerate() {
        let n = i + 1;
        put(format!("Region{n}"), (*region).to_owned());
        put(format!("Region{n}HealthCheckId"), format!("00000000-0000-4000-8000-{n:012x}"));
        put(format!("Region{n}AutoScalingGroup"), format!("web-{region}"));
        put(format!("Region{n}AlarmName"), format!("web-{region}-unhealthy"));
    }
    p
}

/// The stack in [`HOME`] a test models, with its roles created in the emulator. Each test has a
/// stack of its own (tests share an emulator; the roles are named `<stack>-<LogicalId>`).
pub struct ProvisionerStack {
    pub roles: StackRoles,
}

impl ProvisionerStack {
    /// Creates a new stack for `table` in `regions` (see [`stack_parameters`]).
    pub fn deploy(emulator: &Emulator, table: &str, regions: &[&str]) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!("prov-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed));
        Self { roles: render(emulator, &name, table, regions) }
    }

    /// A stack update with other parameters: CloudFormation updates ProvisionerRole (the custom
    /// resource depends on the function, which depends on the role) before it sends the custom
    /// resource its Update, and the clean-up Delete of a replaced resource runs after the update,
    /// still under the new role. Re-posting the stack replaces its roles; sessions read the
    /// policies at each call, so clients made earlier get the new policies (as a running function
    /// does on AWS).
    pub fn update(&mut self, emulator: &Emulator, table: &str, regions: &[&str]) {
        self.roles = render(emulator, &self.roles.stack_name, table, regions);
    }

    /// Clients for every Region the provisioner knows, signed with a session of ProvisionerRole.
    pub async fn clients(&self, emulator: &Emulator, config: &Config) -> Arc<dyn DynamoDbClients> {
        let credentials = self.roles.session(emulator, Function::Provisioner).credentials();
        let base = emulator.sdk_config_with(credentials).await;
        Arc::new(shared::RegionalClients::with_base(base, config.known_regions.iter()))
    }

    /// ProvisionerRole's inline policy `provisioner`, as rendered.
    pub fn policy(&self) -> Value {
        self.roles.role_of(Function::Provisioner).policies.get("provisioner").cloned().expect("policy provisioner")
    }

    /// Replaces (or with `None` deletes) one inline policy of ProvisionerRole.
    pub fn put_policy(&self, emulator: &Emulator, name: &str, document: Option<&Value>) {
        self.roles.put_policy(emulator, Function::Provisioner, name, document);
    }
}

fn render(emulator: &Emulator, stack_name: &str, table: &str, regions: &[&str]) -> StackRoles {
    StackRoles::create_named(emulator, &stack_parameters(table, regions), HOME, stack_name)
}

/// Clients signed with ProvisionerRole of a new stack for `table` in `regions`: what the handler
/// under test may use.
pub async fn role_clients(
    emulator: &Emulator,
    config: &Config,
    table: &str,
    regions: &[&str],
) -> Arc<dyn DynamoDbClients> {
    ProvisionerStack::deploy(emulator, table, regions).clients(emulator, config).await
}

/// A Lambda context whose deadline is `remaining` from now.
pub fn context(remaining: Duration) -> Context {
    let mut context = Context::default();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64;
    context.deadline = now + remaining.as_millis() as u64;
    context.invoked_function_arn = FUNCTION_ARN.to_owned();
    context.request_id = format!("lambda-{now}");
    context
}

/// One invocation of the real handler, which must not refuse the event.
pub async fn invoke(deps: &Arc<Deps>, event: Value, remaining: Duration) -> Summary {
    invoke_as(deps, event, remaining, FUNCTION_ARN).await.unwrap_or_else(|refused| panic!("{refused}"))
}

/// One invocation of the real handler as the function `function_arn`, refused or not.
pub async fn invoke_as(
    deps: &Arc<Deps>,
    event: Value,
    remaining: Duration,
    function_arn: &str,
) -> Result<Summary, Refused> {
    let mut context = context(remaining);
    context.invoked_function_arn = function_arn.to_owned();
    provisioner::handle(LambdaEvent::new(event, context), deps).await
}

/// Invokes, then feeds each captured continuation back to the handler (as Lambda would), until
/// an invocation answers. Returns the final summary and every continuation event.
pub async fn invoke_until_answered(
    deps: &Arc<Deps>,
    captured: &CapturedContinuations,
    event: Value,
    remaining: Duration,
    max_invocations: usize,
) -> (Summary, Vec<Value>) {
    let mut continuations = Vec::new();
    let mut next = event;
    for _ in 0..max_invocations {
        let summary = invoke(deps, next, remaining).await;
        if summary.outcome != provisioner::Outcome::Continued {
            return (summary, continuations);
        }
        let mut calls = captured.take();
        assert_eq!(calls.len(), 1, "a continued invocation queues exactly one continuation");
        let (function, event) = calls.remove(0);
        assert_eq!(function, FUNCTION_ARN, "the function re-invokes itself by its invoked ARN");
        continuations.push(event.clone());
        next = event;
    }
    panic!("no answer after {max_invocations} invocations");
}

/// Logs of the code under test, shown when a test fails (RUST_LOG filters; default info).
pub fn init_logs() {
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
}

/// The single answer CloudFormation got for `name`, checked for what S3 and CloudFormation require.
pub fn the_answer(server: &ResponseServer, name: &str) -> Value {
    let requests = server.requests_for(name);
    assert_eq!(
        requests.len(),
        1,
        "exactly one answer: {requests:?} (all: {:?})",
        server.requests().iter().map(|r| r.target.clone()).collect::<Vec<_>>()
    );
    checked_answer(&requests[0])
}

pub fn checked_answer(request: &RecordedRequest) -> Value {
    assert_eq!(request.method, "PUT");
    assert_eq!(request.header("content-type"), Some(""), "S3 pre-signed URLs need an empty Content-Type");
    assert_eq!(request.header("content-length"), Some(request.body.len().to_string().as_str()));
    for name in ["content-type", "content-length"] {
        assert_eq!(request.headers.iter().filter(|(k, _)| k == name).count(), 1, "one {name} header");
    }
    assert!(request.header("transfer-encoding").is_none(), "not chunked");
    assert!(request.body.len() <= 4096, "CloudFormation's limit: {} bytes", request.body.len());
    request.json()
}

pub async fn home_statuses(emulator: &Emulator, table: &str) -> BTreeMap<String, String> {
    let clients = emulator.clients(&ALL).await;
    replica_statuses(&clients.region(HOME).expect("home").dynamodb, table).await.into_iter().collect()
}

pub async fn record_tags(emulator: &Emulator, table: &str) -> BTreeMap<String, String> {
    let clients = emulator.clients(&ALL).await;
    let ddb = &clients.region(HOME).expect("home").dynamodb;
    let arn = ddb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .expect("describe")
        .table
        .and_then(|t| t.table_arn)
        .expect("arn");
    let tags = ddb.list_tags_of_resource().resource_arn(arn).send().await.expect("tags");
    tags.tags()
        .iter()
        .filter(|t| t.key().starts_with("multisite:replicas-added:") || t.key().starts_with("multisite:replicas:"))
        .map(|t| (t.key().to_owned(), t.value().to_owned()))
        .collect()
}

pub fn statuses(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(r, s)| ((*r).to_owned(), (*s).to_owned())).collect()
}

/// The parts of ProvisionerRole's policy that name `from`, made to name `to` instead: an
/// operator's grant for another table, in the shape the template gives the provisioner.
pub fn grant_for_table(policy: &Value, from: &str, to: &str) -> Value {
    let statements: Vec<Value> = policy["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .filter(|s| s["Resource"].to_string().contains(&format!("table/{from}")))
        .map(|s| {
            let text = s.to_string().replace(&format!("table/{from}\""), &format!("table/{to}\""));
            serde_json::from_str(&text).expect("statement")
        })
        .collect();
    assert!(!statements.is_empty(), "the policy names table {from}: {policy}");
    json!({"Version": "2012-10-17", "Statement": statements})
}

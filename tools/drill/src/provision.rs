//! Step 2: the Global Table replicas come from the provisioner's real handler, sent a real
//! CloudFormation Create event whose ResponseURL is a local server the drill runs; the answer
//! CloudFormation would receive is read back from that server.

use crate::error::{Result, fail};
use crate::report::ProvisionerAnswer;
use lambda_runtime::{Context, LambdaEvent};
use multisite_tests::response_server::ResponseServer;
use provisioner::continuation::{BoxFuture, ContinuationError};
use provisioner::{Config, Continuation, Deps, ResponseClient, Summary};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CREATE_EVENT: &str = include_str!("../../../events/provisioner-create.json");
/// The emulator's account: the function's ARN and the stack's share it (the provisioner checks).
const ACCOUNT: &str = "123456789012";

/// Continuations (long waits) the drill delivers itself, as Lambda would.
#[derive(Default)]
struct Captured(Mutex<Vec<Value>>);

impl Continuation for Captured {
    fn continue_later<'a>(
        &'a self,
        _: &'a str,
        event: &'a Value,
    ) -> BoxFuture<'a, std::result::Result<(), ContinuationError>> {
        if let Ok(mut events) = self.0.lock() {
            events.push(event.clone());
        }
        Box::pin(async { Ok(()) })
    }
}

/// Sends a Create event for `table` with `regions` to the provisioner running in `home`; `base`
/// is signed with the provisioner's role in `home`'s stack (the clients it builds for every
/// Region it knows use it, as the function's `main.rs` builds them from its environment).
pub async fn create_replicas(
    base: &aws_config::SdkConfig,
    home: &str,
    logical_id: &str,
    table: &str,
    regions: &[String],
    server: &ResponseServer,
) -> Result<ProvisionerAnswer> {
    let mut config = Config::for_region(home);
    config.poll_interval = Duration::from_millis(100);
    // The ResponseURL is the drill's local server (MULTISITE_PROVISIONER_ALLOW_LOCAL_RESPONSE_URL).
    config.allow_local_response_url = true;
    let partition = provisioner::regions::partition(home);
    let function_arn = format!("arn:{partition}:lambda:{home}:{ACCOUNT}:function:multisite-provisioner");
    let clients = shared::RegionalClients::with_base(base.clone(), config.known_regions.iter());
    let continuation = Arc::new(Captured::default());
    let deps = Arc::new(Deps {
        config,
        dynamodb: Arc::new(clients),
        continuation: continuation.clone(),
        responses: ResponseClient::default(),
    });
    let name = format!("drill-{}", logical_id.to_lowercase());
    let mut event: Value =
        serde_json::from_str(CREATE_EVENT).map_err(|e| fail(format!("events/provisioner-create.json: {e}")))?;
    event["ResponseURL"] = json!(server.response_url(&name));
    event["LogicalResourceId"] = json!(logical_id);
    // The stack in `home` that owns the resource (the drill names its stacks multisite-<Region>).
    event["StackId"] = json!(format!(
        "arn:{partition}:cloudformation:{home}:{ACCOUNT}:stack/multisite-{home}/00000000-0000-4000-8000-000000000001"
    ));
    event["RequestId"] = json!(format!("drill-{logical_id}-{}", crate::world::now_ms()));
    event["ResourceProperties"]["TableName"] = json!(table);
    event["ResourceProperties"]["Regions"] = json!(regions);

    let mut summary: Summary;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut context = Context::default();
        context.deadline = crate::world::now_ms() + 120_000;
        context.invoked_function_arn = function_arn.clone();
        context.request_id = format!("drill-{attempt}");
        summary = provisioner::handle(LambdaEvent::new(event.clone(), context), &deps)
            .await
            .map_err(|refused| fail(format!("the provisioner refused the drill's Create: {refused}")))?;
        let next = continuation.0.lock().ok().and_then(|mut e| e.pop());
        match next {
            Some(next) if summary.outcome == provisioner::Outcome::Continued && attempt < 20 => event = next,
            _ => break,
        }
    }
    let answer = server
        .requests_for(&name)
        .last()
        .cloned()
        .ok_or_else(|| fail(format!("the provisioner never answered the ResponseURL ({summary:?})")))?;
    let body = answer.json();
    Ok(ProvisionerAnswer {
        logical_resource_id: logical_id.to_owned(),
        status: body["Status"].as_str().unwrap_or_default().to_owned(),
        physical_resource_id: body["PhysicalResourceId"].as_str().unwrap_or_default().to_owned(),
        reason: body["Reason"].as_str().map(str::to_owned),
        data_keys: body["Data"]
            .as_object()
            .map(|d| {
                let mut keys: Vec<String> = d.keys().cloned().collect();
                keys.sort();
                keys
            })
            .unwrap_or_default(),
    })
}

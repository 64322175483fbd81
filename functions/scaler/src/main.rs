// The handler future nests the SDK futures of several parallel calls; its type is deeper than
// rustc's default query depth allows when laid out.
#![recursion_limit = "256"]

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::alarm::Identity;
use shared::clock::SystemClock;

// One event at a time and I/O-bound (parallel AWS calls are concurrent futures, not threads): a
// single-threaded runtime does the same work and starts without spawning a worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // The topology is read on the first event, not here (shared::topology_source).
    let store = shared::TopologyStore::from_env(shared::clients::load_base_config().await)?;
    let home_region = std::env::var("AWS_REGION").map_err(|_| "AWS_REGION is not set (Lambda always sets it)")?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (store, home_region) = (&store, &home_region);
        async move {
            // The account and partition alarm changes must come from: this function's own.
            let identity = Identity::from_function_arn(&event.context.invoked_function_arn)?;
            let configured = store.current().await?;
            let (topology, clients) = (&configured.topology, &configured.clients);
            let deps = scaler::Deps { topology, clients, home_region, clock: &SystemClock, identity: &identity };
            let (handled, _) = tokio::join!(scaler::handle(event.payload, &deps), store.refresh_if_due());
            let reports = handled?;
            Ok::<Value, lambda_runtime::Error>(serde_json::json!({ "reports": reports }))
        }
    }))
    .await
}

// The handler future nests the SDK futures of many parallel calls; its type is deeper than
// rustc's default query depth allows when laid out.
#![recursion_limit = "256"]

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;
use shared::clock::SystemClock;

// One event at a time and I/O-bound (parallel AWS calls are concurrent futures, not threads): a
// single-threaded runtime does the same work and starts without spawning a worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    // The topology is read on the first event, not here (shared::topology_source).
    let store = shared::TopologyStore::from_env(shared::clients::load_base_config().await)?;
    let config = lag_probe::config::ProbeConfig::from_env()?;
    let home_region = std::env::var("AWS_REGION").map_err(|_| "AWS_REGION is not set (Lambda always sets it)")?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let (store, config, home_region) = (&store, &config, &home_region);
        async move {
            let configured = store.current().await?;
            let deps = lag_probe::Deps {
                topology: &configured.topology,
                clients: &configured.clients,
                home_region,
                clock: &SystemClock,
                config,
            };
            let (handled, _) = tokio::join!(lag_probe::handle(event.payload, &deps), store.refresh_if_due());
            handled.map_err(lambda_runtime::Error::from)
        }
    }))
    .await
}

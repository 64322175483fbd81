//! Lambda entry point: wiring only (see the crate docs in lib.rs).

use lambda_runtime::service_fn;
use provisioner::{Config, Deps, LambdaContinuation, ResponseClient};
use std::sync::Arc;

// One event at a time and I/O-bound (parallel AWS calls are concurrent futures, not threads): a
// single-threaded runtime does the same work and starts without spawning a worker per core.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init();
    let config = Config::from_env()?; // fail at cold start, clearly
    let base = shared::clients::load_base_config().await;
    let clients = shared::RegionalClients::with_base(base.clone(), config.known_regions.iter());
    let deps = Arc::new(Deps {
        continuation: Arc::new(LambdaContinuation::lazy(base.clone())),
        dynamodb: Arc::new(clients),
        responses: ResponseClient::default(),
        config,
    });
    lambda_runtime::run(service_fn(|event| provisioner::handle(event, &deps))).await
}

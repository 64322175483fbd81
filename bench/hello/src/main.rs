//! The cold-start baseline: the smallest useful `lambda_runtime` function (echo the payload), built
//! with the workspace's release profile and lock so `make bench` compares like with like.
use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

async fn handle(event: LambdaEvent<Value>) -> Result<Value, Error> {
    Ok(serde_json::json!({ "hello": event.payload }))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(handle)).await
}

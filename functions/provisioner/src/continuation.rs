//! Continuing a long wait in a later invocation instead of blocking (crhelper polls forever).
//!
//! When the Lambda deadline approaches while replicas are still in transition, the provisioner
//! re-invokes itself asynchronously (`Invoke`, `InvocationType=Event`) with the original event
//! plus a [`crate::request::ContinuationState`] (when the first invocation started, how many
//! continuations so far) and returns without answering; the next invocation observes the table
//! and carries on. The [`Continuation`] trait hides the Lambda call so tests can capture the event
//! and feed it back to the handler (the emulator cannot run Lambda code).

use aws_config::SdkConfig;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use serde_json::Value;
use shared::AwsResultExt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, thiserror::Error)]
pub enum ContinuationError {
    #[error(transparent)]
    Aws(#[from] shared::Error),
    #[error("Lambda accepted the asynchronous invocation with status {0} instead of 202")]
    UnexpectedStatus(i32),
    #[error("the function's own name is unknown (no invoked function ARN, no AWS_LAMBDA_FUNCTION_NAME)")]
    NoFunctionName,
    #[error("{0}")]
    Other(String),
}

/// Delivers an event to a later invocation of this function.
pub trait Continuation: Send + Sync {
    /// Queues `event` for `function` (a name or ARN, with qualifier) and returns once queued.
    fn continue_later<'a>(
        &'a self,
        function: &'a str,
        event: &'a Value,
    ) -> BoxFuture<'a, Result<(), ContinuationError>>;
}

/// The production [`Continuation`]: an asynchronous Lambda `Invoke` of this very function.
#[derive(Debug)]
pub struct LambdaContinuation {
    /// Built on the first continuation, not at cold start: most invocations finish within their
    /// deadline and never need one.
    client: OnceLock<aws_sdk_lambda::Client>,
    base: SdkConfig,
}

impl LambdaContinuation {
    /// With a ready client (tests pass a mocked one).
    pub fn new(client: aws_sdk_lambda::Client) -> Self {
        Self { client: OnceLock::from(client), base: SdkConfig::builder().build() }
    }

    /// With the client built from `base` when the first continuation is needed.
    pub fn lazy(base: SdkConfig) -> Self {
        Self { client: OnceLock::new(), base }
    }

    fn client(&self) -> &aws_sdk_lambda::Client {
        self.client.get_or_init(|| aws_sdk_lambda::Client::new(&self.base))
    }
}

impl Continuation for LambdaContinuation {
    fn continue_later<'a>(
        &'a self,
        function: &'a str,
        event: &'a Value,
    ) -> BoxFuture<'a, Result<(), ContinuationError>> {
        Box::pin(async move {
            let payload = serde_json::to_vec(event).map_err(|e| ContinuationError::Other(e.to_string()))?;
            let client = self.client();
            let region = client.config().region().map(|r| r.to_string()).unwrap_or_default();
            let out = client
                .invoke()
                .function_name(function)
                .invocation_type(InvocationType::Event)
                .payload(Blob::new(payload))
                .send()
                .await
                .aws_context("Invoke", &region)?;
            match out.status_code() {
                202 => Ok(()),
                other => Err(ContinuationError::UnexpectedStatus(other)),
            }
        })
    }
}

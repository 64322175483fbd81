//! The deployed failover function: found in the stack's outputs (CloudFormation `DescribeStacks`,
//! output `FailoverFunctionArn`) or named with `--function`, and invoked synchronously (Lambda
//! `Invoke`), so its execution role acts. Errors say what to fix.

use crate::CliError;
use aws_sdk_cloudformation::error::ProvideErrorMetadata;
use aws_smithy_types::Blob;
use serde_json::Value;

/// The stack name `samconfig.toml` deploys in every Region.
pub const DEFAULT_STACK: &str = "multisite";
/// The stack output naming failover's function.
pub const FUNCTION_OUTPUT: &str = "FailoverFunctionArn";
/// The stack output naming the ledger table (checked against the topology).
pub const LEDGER_OUTPUT: &str = "LedgerTableName";

/// What the stack says about the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackFunction {
    pub function_arn: String,
    pub ledger_table: Option<String>,
}

/// The failover function of `stack` in `region`.
pub async fn find_function(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: &str,
    region: &str,
) -> Result<StackFunction, CliError> {
    let out = cloudformation.describe_stacks().stack_name(stack).send().await.map_err(|err| {
        let missing =
            err.code() == Some("ValidationError") && err.message().is_some_and(|m| m.contains("does not exist"));
        if missing {
            CliError::Deployment(format!(
                "stack {stack} does not exist in {region}: deploy it there (scripts/deploy.sh), name another with \
                 --stack or the function with --function, or run failover here with --local"
            ))
        } else {
            CliError::Aws(shared::Error::aws("DescribeStacks", region, err))
        }
    })?;
    let Some(found) = out.stacks().first() else {
        return Err(CliError::Deployment(format!("DescribeStacks in {region} returned no stack {stack}")));
    };
    let output = |key: &str| {
        found.outputs().iter().find(|o| o.output_key() == Some(key)).and_then(|o| o.output_value()).map(str::to_owned)
    };
    let Some(function_arn) = output(FUNCTION_OUTPUT) else {
        return Err(CliError::Deployment(format!(
            "stack {stack} in {region} has no output {FUNCTION_OUTPUT}: is it a multisite stack? Name the function \
             with --function"
        )));
    };
    Ok(StackFunction { function_arn, ledger_table: output(LEDGER_OUTPUT) })
}

/// failover's timeout in template.yaml (`FailoverFunction.Timeout`): a synchronous Invoke waits
/// for the function at most this long.
pub const FUNCTION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// The Lambda client's configuration for `Invoke`: one attempt that may last the function's
/// timeout (the shared 5 s attempt timeout would cut a slow reconcile short, and the retry would
/// invoke it again), no retries (a retried operator request is the same change, but the
/// operator sees the first answer and decides).
pub fn invoke_config(base: &aws_config::SdkConfig) -> aws_sdk_lambda::Config {
    let timeouts = aws_smithy_types::timeout::TimeoutConfig::builder()
        .connect_timeout(shared::clients::CONNECT_TIMEOUT)
        .operation_attempt_timeout(FUNCTION_TIMEOUT + std::time::Duration::from_secs(10))
        .operation_timeout(FUNCTION_TIMEOUT + std::time::Duration::from_secs(15))
        .build();
    aws_sdk_lambda::config::Builder::from(base)
        .timeout_config(timeouts)
        .retry_config(aws_smithy_types::retry::RetryConfig::disabled())
        .build()
}

/// Invokes failover with `payload` and returns its response (failover's `Response` as JSON). A
/// function error (failover refused the request, or a step failed) is [`CliError::Remote`] with
/// its `errorType` and message.
pub async fn invoke(
    lambda: &aws_sdk_lambda::Client,
    function: &str,
    region: &str,
    payload: &Value,
) -> Result<Value, CliError> {
    let body = serde_json::to_vec(payload).map_err(|e| CliError::Usage(format!("request not serialisable: {e}")))?;
    let out = lambda.invoke().function_name(function).payload(Blob::new(body)).send().await.map_err(|err| {
        if err.code() == Some("ResourceNotFoundException") {
            CliError::Deployment(format!(
                "function {function} does not exist in {region}: check --function, --stack or --via"
            ))
        } else {
            CliError::Aws(shared::Error::aws("Invoke", region, err))
        }
    })?;
    let bytes = out.payload().map(|b| b.as_ref().to_vec()).unwrap_or_default();
    let answer: Value =
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    if let Some(kind) = out.function_error() {
        let error_type = answer["errorType"].as_str().unwrap_or(kind).to_owned();
        let message = answer["errorMessage"].as_str().map(str::to_owned).unwrap_or_else(|| answer.to_string());
        return Err(CliError::Remote { function: function.to_owned(), error_type, message });
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_cloudformation::operation::describe_stacks::DescribeStacksOutput;
    use aws_sdk_cloudformation::types::{Output, Stack, StackStatus};
    use aws_sdk_lambda::operation::invoke::InvokeOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use serde_json::json;

    fn error_response(status: u16, body: &str) -> aws_smithy_runtime_api::client::orchestrator::HttpResponse {
        aws_smithy_runtime_api::client::orchestrator::HttpResponse::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(status).expect("status"),
            aws_smithy_types::body::SdkBody::from(body.to_owned()),
        )
    }

    #[tokio::test]
    async fn the_function_is_read_from_the_stacks_outputs_and_a_missing_stack_says_what_to_do() {
        let stack = Stack::builder()
            .stack_name("multisite")
            .creation_time(aws_smithy_types::DateTime::from_secs(0))
            .stack_status(StackStatus::UpdateComplete)
            .outputs(
                Output::builder()
                    .output_key("FailoverFunctionArn")
                    .output_value("arn:aws:lambda:eu-west-1:123456789012:function:f")
                    .build(),
            )
            .outputs(Output::builder().output_key("LedgerTableName").output_value("multisite-ledger").build())
            .build();
        let found = mock!(aws_sdk_cloudformation::Client::describe_stacks)
            .match_requests(|r| r.stack_name() == Some("multisite"))
            .then_output(move || DescribeStacksOutput::builder().stacks(stack.clone()).build());
        let missing = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_http_response(|| {
            error_response(
                400,
                "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>Stack with id nope does \
                 not exist</Message></Error><RequestId>1</RequestId></ErrorResponse>",
            )
        });
        let no_output = mock!(aws_sdk_cloudformation::Client::describe_stacks).then_output(|| {
            let bare = Stack::builder()
                .stack_name("other")
                .creation_time(aws_smithy_types::DateTime::from_secs(0))
                .stack_status(StackStatus::CreateComplete)
                .build();
            DescribeStacksOutput::builder().stacks(bare).build()
        });
        let cloudformation = mock_client!(aws_sdk_cloudformation, RuleMode::Sequential, [&found, &missing, &no_output]);
        let got = find_function(&cloudformation, "multisite", "eu-west-1").await.expect("found");
        assert_eq!(
            got,
            StackFunction {
                function_arn: "arn:aws:lambda:eu-west-1:123456789012:function:f".into(),
                ledger_table: Some("multisite-ledger".into())
            }
        );
        let err = find_function(&cloudformation, "nope", "eu-west-1").await.expect_err("missing");
        assert!(matches!(err, CliError::Deployment(_)), "{err}");
        assert!(
            err.to_string().contains("stack nope does not exist in eu-west-1") && err.to_string().contains("--local"),
            "{err}"
        );
        let err = find_function(&cloudformation, "other", "eu-west-1").await.expect_err("no output");
        assert!(err.to_string().contains("has no output FailoverFunctionArn"), "{err}");
    }

    #[test]
    fn the_invoke_client_waits_for_the_function_once() {
        let base = aws_config::SdkConfig::builder().behavior_version(aws_config::BehaviorVersion::latest()).build();
        let config = invoke_config(&base);
        let timeouts = config.timeout_config().expect("timeouts");
        assert!(timeouts.operation_attempt_timeout() > Some(FUNCTION_TIMEOUT), "{timeouts:?}");
        assert_eq!(config.retry_config().map(|r| r.max_attempts()), Some(1));
    }

    #[tokio::test]
    async fn invoke_sends_the_request_as_the_payload_and_maps_function_and_service_errors() {
        let request = json!({"multisite_operator_request": {"action": "evacuate", "region": "us-east-1"}});
        let sent = request.clone();
        let ok = mock!(aws_sdk_lambda::Client::invoke)
            .match_requests(move |r| {
                r.function_name() == Some("f")
                    && r.payload().and_then(|p| serde_json::from_slice::<Value>(p.as_ref()).ok()).as_ref()
                        == Some(&sent)
            })
            .then_output(|| {
                InvokeOutput::builder()
                    .status_code(200)
                    .payload(Blob::new(br#"{"reports":[{"outcome":"Reconciled"}],"calls":{}}"#.to_vec()))
                    .build()
            });
        let function_error = mock!(aws_sdk_lambda::Client::invoke).then_output(|| {
            InvokeOutput::builder()
                .status_code(200)
                .function_error("Unhandled")
                .payload(Blob::new(
                    br#"{"errorType":"InvalidEvent","errorMessage":"invalid event: operator request refused: the operator is not of this deployment's account"}"#.to_vec(),
                ))
                .build()
        });
        let not_found = mock!(aws_sdk_lambda::Client::invoke).then_http_response(|| {
            error_response(
                404,
                r#"{"Type":"User","message":"Function not found: arn:aws:lambda:eu-west-1:1:function:g"}"#,
            )
            .tap_header("x-amzn-errortype", "ResourceNotFoundException")
        });
        let denied = mock!(aws_sdk_lambda::Client::invoke).then_http_response(|| {
            error_response(403, r#"{"message":"not authorized to perform: lambda:InvokeFunction"}"#)
                .tap_header("x-amzn-errortype", "AccessDeniedException")
        });
        let lambda =
            mock_client!(aws_sdk_lambda, RuleMode::Sequential, [&ok, &function_error, &not_found, &denied], |c| c
                .retry_config(aws_smithy_types::retry::RetryConfig::disabled()));
        let answer = invoke(&lambda, "f", "eu-west-1", &request).await.expect("answered");
        assert_eq!(answer["reports"][0]["outcome"], "Reconciled");
        let err = invoke(&lambda, "f", "eu-west-1", &request).await.expect_err("function error");
        assert!(
            matches!(&err, CliError::Remote { error_type, message, .. } if error_type == "InvalidEvent" && message.contains("not of this deployment's account")),
            "{err}"
        );
        assert_eq!(err.exit_code(), 3, "failover refused the request");
        let err = invoke(&lambda, "g", "eu-west-1", &request).await.expect_err("not found");
        assert!(err.to_string().contains("function g does not exist in eu-west-1"), "{err}");
        let err = invoke(&lambda, "f", "eu-west-1", &request).await.expect_err("denied");
        assert!(
            matches!(
                &err,
                CliError::Aws(shared::Error::Aws { kind: shared::AwsErrorKind::AccessDenied, operation: "Invoke", .. })
            ),
            "{err:?}"
        );
    }

    trait TapHeader {
        fn tap_header(self, name: &'static str, value: &'static str) -> Self;
    }

    impl TapHeader for aws_smithy_runtime_api::client::orchestrator::HttpResponse {
        fn tap_header(mut self, name: &'static str, value: &'static str) -> Self {
            self.headers_mut().insert(name, value);
            self
        }
    }
}

//! The error type shared by all functions. It keeps the SDK's source error, names the operation
//! and the Region, and says whether trying again can help; at the Lambda edge it becomes a
//! `Diagnostic` whose `errorType` is a stable word operators and retry policies can match on.

use crate::topology::TopologyError;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::Serialize;
use std::fmt;

pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// How an AWS call failed, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AwsErrorKind {
    /// The service asked us to slow down; retrying later succeeds.
    Throttling,
    /// 5xx, timeout, connection failure or unreadable response: the Region or service may be down.
    Unavailable,
    /// The service understood and refused the request (4xx): retrying the same request fails again.
    Rejected,
    /// IAM refused the call (the role lacks the action on that resource): permanent until the
    /// role is fixed, so never retried. The message names the action and the resource.
    AccessDenied,
}

impl fmt::Display for AwsErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AwsErrorKind::Throttling => "throttled",
            AwsErrorKind::Unavailable => "unavailable",
            AwsErrorKind::Rejected => "rejected",
            AwsErrorKind::AccessDenied => "access denied",
        })
    }
}

/// Error codes AWS services use when IAM denies a call (DynamoDB and Lambda say
/// `AccessDeniedException`; Route 53, RDS, Auto Scaling, CloudWatch and STS say `AccessDenied`).
const ACCESS_DENIED_CODES: &[&str] =
    &["AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "UnauthorizedException"];

/// Error codes AWS services use for throttling (the SDK's own retry classifier uses this list too).
const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "LimitExceededException",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{operation} in {region} failed ({kind}{}): {message}", code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Aws {
        /// The AWS API operation, e.g. `UpdateTable`.
        operation: &'static str,
        region: String,
        kind: AwsErrorKind,
        /// The service's error code, when it answered with one.
        code: Option<String>,
        message: String,
        #[source]
        source: BoxError,
    },
    #[error(transparent)]
    Topology(#[from] TopologyError),
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    #[error("Region {0} is not in the topology: add a cell for it or fix the caller")]
    UnknownRegion(String),
    #[error("ledger: {0}")]
    Ledger(String),
    /// AWS answered, but not with the state the call should have produced; a retry may converge.
    #[error("unexpected state: {0}")]
    Unexpected(String),
    /// Some independent steps failed (the others ran). A retry can help when one of the failures
    /// is transient; when every failure is permanent (an IAM denial, a rejected request) retrying
    /// cannot, and the Lambda `errorType` is the permanent cause's.
    #[error("{failed} step(s) failed, first: {first}")]
    StepsFailed { failed: usize, first: String, retryable: bool, cause: &'static str },
}

/// What a failed step leaves for the invocation's verdict: whether a retry can help, and the
/// stable error type of its cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FailureClass {
    pub retryable: bool,
    pub error_type: &'static str,
}

impl Error {
    /// How this error counts when it fails one step of several.
    pub fn class(&self) -> FailureClass {
        FailureClass { retryable: self.is_retryable(), error_type: self.error_type() }
    }

    /// The verdict over failed steps (`(message, class)` each): `None` when none failed.
    /// Retryable as soon as one failure is; otherwise the first failure's cause names the type.
    pub fn steps_failed<'a>(failures: impl IntoIterator<Item = (&'a str, FailureClass)>) -> Option<Error> {
        let failures: Vec<(&str, FailureClass)> = failures.into_iter().collect();
        let (first, first_class) = *failures.first()?;
        let retryable = failures.iter().any(|(_, class)| class.retryable);
        Some(Error::StepsFailed {
            failed: failures.len(),
            first: first.to_owned(),
            retryable,
            cause: if retryable { "StepsFailed" } else { first_class.error_type },
        })
    }
}

impl Error {
    /// Wraps an SDK error with the operation and Region it came from.
    pub fn aws<E>(operation: &'static str, region: impl Into<String>, err: SdkError<E, HttpResponse>) -> Self
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let (kind, code, message) = match &err {
            SdkError::ServiceError(ctx) => {
                let code = ctx.err().code().map(str::to_owned);
                let status = ctx.raw().status().as_u16();
                let kind = if code.as_deref().is_some_and(|c| ACCESS_DENIED_CODES.contains(&c)) {
                    AwsErrorKind::AccessDenied
                } else if code.as_deref().is_some_and(|c| THROTTLING_CODES.contains(&c)) || status == 429 {
                    AwsErrorKind::Throttling
                } else if status >= 500 {
                    AwsErrorKind::Unavailable
                } else {
                    AwsErrorKind::Rejected
                };
                let mut message = ctx.err().message().map(str::to_owned).unwrap_or_else(|| {
                    format!("HTTP {status}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())
                });
                if kind == AwsErrorKind::AccessDenied {
                    message = access_denied_message(operation, &message);
                }
                (kind, code, message)
            }
            // The request could not be built: a bug on our side, not worth retrying.
            SdkError::ConstructionFailure(_) => (AwsErrorKind::Rejected, None, DisplayErrorContext(&err).to_string()),
            _ => (AwsErrorKind::Unavailable, None, DisplayErrorContext(&err).to_string()),
        };
        Error::Aws { operation, region: region.into(), kind, code, message, source: Box::new(err) }
    }

    /// Whether a later attempt (a Lambda retry) can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Aws { kind: AwsErrorKind::Throttling | AwsErrorKind::Unavailable, .. }
                | Error::Unexpected(_)
                | Error::StepsFailed { retryable: true, .. }
        )
    }

    /// The AWS error code, e.g. `ResourceNotFoundException`.
    pub fn aws_code(&self) -> Option<&str> {
        match self {
            Error::Aws { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// The stable word reported as the Lambda `errorType`.
    pub fn error_type(&self) -> &'static str {
        match self {
            Error::Aws { kind: AwsErrorKind::Throttling, .. } => "Throttled",
            Error::Aws { kind: AwsErrorKind::Unavailable, .. } => "ServiceUnavailable",
            Error::Aws { kind: AwsErrorKind::Rejected, .. } => "AwsRequestRejected",
            Error::Aws { kind: AwsErrorKind::AccessDenied, .. } => "AccessDenied",
            Error::Topology(_) => "InvalidTopology",
            Error::InvalidEvent(_) => "InvalidEvent",
            Error::UnknownRegion(_) => "UnknownRegion",
            Error::Ledger(_) => "LedgerError",
            Error::Unexpected(_) => "UnexpectedState",
            Error::StepsFailed { cause, .. } => cause,
        }
    }
}

/// AWS's denial message names the action and the resource ("... is not authorized to perform:
/// dynamodb:UpdateItem on resource: arn:..."); when a service's message does not, say which
/// operation was refused and what to fix, so the operator never has to guess.
fn access_denied_message(operation: &str, aws_message: &str) -> String {
    if aws_message.contains("not authorized to perform") {
        format!("{aws_message} (grant it in the function's role in template.yaml)")
    } else {
        format!(
            "{aws_message} (IAM denied {operation}; the service did not name the resource: grant the action in the \
             function's role in template.yaml)"
        )
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(err: Error) -> Self {
        lambda_runtime::Diagnostic { error_type: err.error_type().to_owned(), error_message: err.to_string() }
    }
}

/// `result.aws_context("UpdateTable", region)?` instead of a `map_err` closure at every call.
pub trait AwsResultExt<T> {
    fn aws_context(self, operation: &'static str, region: &str) -> Result<T, Error>;
}

impl<T, E> AwsResultExt<T> for Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn aws_context(self, operation: &'static str, region: &str) -> Result<T, Error> {
        self.map_err(|err| Error::aws(operation, region, err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::describe_table::DescribeTableOutput;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::retry::RetryConfig;
    use std::time::Duration;

    fn fast_retries(attempts: u32) -> RetryConfig {
        RetryConfig::standard().with_max_attempts(attempts).with_initial_backoff(Duration::from_millis(1))
    }

    fn throttling_response() -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(400).expect("status"),
            SdkBody::from(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate exceeded"}"#,
            ),
        )
    }

    #[tokio::test]
    async fn persistent_503_becomes_a_retryable_unavailable_error_naming_operation_and_region() {
        let rule = mock!(Client::describe_table).sequence().http_status(503, None).times(3).build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| c.retry_config(fast_retries(3)));

        let err = client.describe_table().table_name("T").send().await.aws_context("DescribeTable", "eu-west-1");

        let err = err.expect_err("503 three times");
        assert_eq!(rule.num_calls(), 3, "the SDK retried 5xx before giving up");
        assert!(
            matches!(&err, Error::Aws { kind: AwsErrorKind::Unavailable, region, operation: "DescribeTable", .. } if region == "eu-west-1"),
            "{err:?}"
        );
        assert!(err.is_retryable());
        let diagnostic = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diagnostic.error_type, "ServiceUnavailable");
        assert!(
            diagnostic.error_message.starts_with("DescribeTable in eu-west-1 failed (unavailable"),
            "{}",
            diagnostic.error_message
        );
    }

    #[tokio::test]
    async fn throttling_is_retried_and_converges() {
        let rule = mock!(Client::describe_table)
            .sequence()
            .http_response(throttling_response)
            .times(2)
            .output(|| DescribeTableOutput::builder().build())
            .build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| c.retry_config(fast_retries(3)));

        let out = client.describe_table().table_name("T").send().await.aws_context("DescribeTable", "us-east-1");

        assert!(out.is_ok(), "{out:?}");
        assert_eq!(rule.num_calls(), 3);
    }

    #[tokio::test]
    async fn persistent_throttling_is_classified_as_throttling() {
        let rule = mock!(Client::describe_table).sequence().http_response(throttling_response).times(2).build();
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| c.retry_config(fast_retries(2)));

        let err = client.describe_table().table_name("T").send().await.aws_context("DescribeTable", "us-east-1");

        let err = err.expect_err("throttled");
        assert_eq!(err.aws_code(), Some("ThrottlingException"));
        assert_eq!(err.error_type(), "Throttled");
        assert!(err.is_retryable());
    }

    #[tokio::test]
    async fn a_modeled_4xx_is_rejected_not_retried_and_keeps_its_code_and_source() {
        // The wire shape DynamoDB answers with, parsed by the real SDK deserializer.
        let rule = mock!(Client::describe_table).then_http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(400).expect("status"),
                SdkBody::from(
                    r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#,
                ),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| c.retry_config(fast_retries(3)));

        let err = client.describe_table().table_name("T").send().await.aws_context("DescribeTable", "us-east-1");

        let err = err.expect_err("not found");
        assert_eq!(rule.num_calls(), 1);
        assert_eq!(err.aws_code(), Some("ResourceNotFoundException"));
        assert!(!err.is_retryable());
        assert_eq!(err.error_type(), "AwsRequestRejected");
        assert!(err.to_string().contains("Requested resource not found"), "{err}");
        assert!(std::error::Error::source(&err).is_some(), "the SDK error is kept as the source");
    }

    #[tokio::test]
    async fn access_denied_is_permanent_and_names_the_action_and_the_resource() {
        let denial = "User: arn:aws:sts::123456789012:assumed-role/multisite-FailoverRole/s is not authorized to \
                      perform: dynamodb:UpdateItem on resource: arn:aws:dynamodb:eu-west-1:123456789012:table/ledger \
                      because no identity-based policy allows the dynamodb:UpdateItem action";
        let rule = mock!(Client::describe_table).then_http_response(move || {
            HttpResponse::new(
                StatusCode::try_from(400).expect("status"),
                SdkBody::from(
                    serde_json::json!({
                        "__type": "com.amazonaws.dynamodb.v20120810#AccessDeniedException",
                        "message": denial,
                    })
                    .to_string(),
                ),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| c.retry_config(fast_retries(3)));

        let err = client.describe_table().table_name("T").send().await.aws_context("UpdateItem", "eu-west-1");

        let err = err.expect_err("denied");
        assert_eq!(rule.num_calls(), 1, "the SDK does not retry a denial");
        assert!(matches!(&err, Error::Aws { kind: AwsErrorKind::AccessDenied, .. }), "{err:?}");
        assert!(!err.is_retryable(), "a denial is permanent until the role changes");
        assert_eq!(err.error_type(), "AccessDenied");
        let text = err.to_string();
        assert!(text.contains("dynamodb:UpdateItem"), "names the action: {text}");
        assert!(text.contains("arn:aws:dynamodb:eu-west-1:123456789012:table/ledger"), "names the resource: {text}");
    }

    #[tokio::test]
    async fn a_bare_403_access_denied_still_says_which_operation_was_refused() {
        let rule = mock!(Client::describe_table).then_http_response(|| {
            HttpResponse::new(
                StatusCode::try_from(400).expect("status"),
                SdkBody::from(r#"{"__type":"AccessDeniedException","message":"Access denied"}"#),
            )
        });
        let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&rule], |c| c.retry_config(fast_retries(3)));

        let err = client.describe_table().table_name("T").send().await.aws_context("DescribeTable", "us-east-1");

        let err = err.expect_err("denied");
        assert_eq!(err.error_type(), "AccessDenied");
        assert!(err.to_string().contains("IAM denied DescribeTable"), "{err}");
    }

    #[test]
    fn failed_steps_are_retryable_when_one_failure_is_and_permanent_with_their_cause_otherwise() {
        let denied = FailureClass { retryable: false, error_type: "AccessDenied" };
        let throttled = FailureClass { retryable: true, error_type: "Throttled" };
        let cases: [(&[(&str, FailureClass)], Option<(bool, &str)>); 4] = [
            (&[], None),
            (&[("a", denied)], Some((false, "AccessDenied"))),
            (&[("a", denied), ("b", throttled)], Some((true, "StepsFailed"))),
            (&[("a", throttled)], Some((true, "StepsFailed"))),
        ];
        for (failures, want) in cases {
            let err = Error::steps_failed(failures.iter().copied());
            let got = err.as_ref().map(|e| (e.is_retryable(), e.error_type()));
            assert_eq!(got, want, "{failures:?}");
            if let Some(err) = err {
                assert!(err.to_string().starts_with(&format!("{} step(s) failed, first: a", failures.len())), "{err}");
            }
        }
    }

    #[test]
    fn non_aws_errors_have_their_own_error_types() {
        assert_eq!(Error::InvalidEvent("x".into()).error_type(), "InvalidEvent");
        assert_eq!(Error::UnknownRegion("xx-1".into()).error_type(), "UnknownRegion");
        assert_eq!(Error::from(TopologyError::Missing).error_type(), "InvalidTopology");
        assert!(!Error::InvalidEvent("x".into()).is_retryable());
    }
}

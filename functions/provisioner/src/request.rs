//! Reading the event CloudFormation (or a continuation) delivers (pure).
//!
//! The function's input type is raw JSON, not the typed request, on purpose: if the Lambda
//! runtime deserialized into `CloudFormationCustomResourceRequest` itself, a malformed event
//! (an unknown `RequestType`, a missing field) would fail before our code runs and CloudFormation
//! would never get an answer. Instead [`Envelope::read`] first picks out, leniently, what any
//! answer needs (`ResponseURL`, `StackId`, `RequestId`, `LogicalResourceId`,
//! `PhysicalResourceId`), then [`parse`] reads the typed request from aws_lambda_events.

use aws_lambda_events::event::cloudformation::CloudFormationCustomResourceRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The typed request; properties stay JSON and are validated by [`crate::properties`].
pub type Request = CloudFormationCustomResourceRequest<Value, Value>;

/// Top-level key under which a continuation carries its state in the re-invocation event.
/// CloudFormation never sends it; the typed request ignores it.
pub const CONTINUATION_KEY: &str = "MultisiteContinuation";

/// State carried from one invocation to the next while a wait continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct ContinuationState {
    /// When the first invocation for this request started (ms since the Unix epoch): the
    /// `ServiceTimeout` budget is measured from here.
    pub started_at_ms: u64,
    /// 1 for the first continuation, 2 for the next, ...
    pub attempt: u32,
    /// Regions whose replica settings were already updated (never sent twice).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub settings_applied: Vec<String>,
    /// Regions whose replicas this request already removed (a Delete waits for them to go).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed: Vec<String>,
}

/// What any answer needs, read without failing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Envelope {
    pub request_type: Option<String>,
    /// As sent (`None` when missing or not a string); [`crate::trust`] decides whether it is
    /// CloudFormation's.
    pub response_url: Option<String>,
    pub stack_id: String,
    pub request_id: String,
    pub logical_resource_id: String,
    pub physical_resource_id: Option<String>,
    /// From `ResourceProperties.NoEcho`, conservatively (see [`crate::properties::no_echo_hint`]).
    pub no_echo: bool,
    /// `ServiceTimeout` as CloudFormation sends it at the top level of the event (a string).
    pub service_timeout: Option<Duration>,
}

impl Envelope {
    pub fn read(event: &Value) -> Self {
        let text = |key: &str| event.get(key).and_then(Value::as_str).map(str::to_owned);
        Self {
            request_type: text("RequestType"),
            response_url: text("ResponseURL"),
            stack_id: text("StackId").unwrap_or_default(),
            request_id: text("RequestId").unwrap_or_default(),
            logical_resource_id: text("LogicalResourceId").unwrap_or_default(),
            physical_resource_id: text("PhysicalResourceId").filter(|id| !id.is_empty()),
            no_echo: crate::properties::no_echo_hint(event.get("ResourceProperties")),
            service_timeout: event
                .get("ServiceTimeout")
                .and_then(crate::properties::service_timeout_secs)
                .map(Duration::from_secs),
        }
    }

    /// The stack's name, from the StackId ARN.
    pub fn stack_name(&self) -> &str {
        stack_name(&self.stack_id)
    }
}

/// The stack's name in a StackId ARN (`arn:aws:cloudformation:R:A:stack/NAME/GUID`).
pub fn stack_name(stack_id: &str) -> &str {
    stack_id.split(":stack/").nth(1).and_then(|rest| rest.split('/').next()).unwrap_or("")
}

/// Why an event is not a request this function can act on. Each message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the event is not a JSON object (CloudFormation sends an object with RequestType, ResponseURL, ...)")]
    NotAnObject,
    #[error("the event has no RequestType: expected Create, Update or Delete")]
    MissingRequestType,
    #[error("RequestType `{0}` is not one of Create, Update, Delete")]
    UnknownRequestType(String),
    #[error("the {request_type} event is malformed: {message}")]
    Malformed { request_type: String, message: String },
    #[error("the continuation state under {CONTINUATION_KEY} is malformed: {0}")]
    Continuation(String),
}

/// Parses the typed request and the continuation state (if this is a continuation).
pub fn parse(event: &Value) -> Result<(Request, Option<ContinuationState>), RequestError> {
    let object = event.as_object().ok_or(RequestError::NotAnObject)?;
    let request_type = match object.get("RequestType") {
        None | Some(Value::Null) => return Err(RequestError::MissingRequestType),
        Some(Value::String(t)) => t.clone(),
        Some(other) => return Err(RequestError::UnknownRequestType(other.to_string())),
    };
    if !matches!(request_type.as_str(), "Create" | "Update" | "Delete") {
        return Err(RequestError::UnknownRequestType(request_type));
    }
    let continuation = match object.get(CONTINUATION_KEY) {
        None => None,
        Some(state) => Some(
            serde_json::from_value::<ContinuationState>(state.clone())
                .map_err(|e| RequestError::Continuation(e.to_string()))?,
        ),
    };
    let mut plain = object.clone();
    plain.remove(CONTINUATION_KEY);
    let request = serde_json::from_value::<Request>(Value::Object(plain))
        .map_err(|e| RequestError::Malformed { request_type, message: e.to_string() })?;
    Ok((request, continuation))
}

/// The event to deliver to the next invocation: the original event plus `state`.
pub fn continuation_event(event: &Value, state: &ContinuationState) -> Value {
    let mut next = event.clone();
    if let (Some(object), Ok(state)) = (next.as_object_mut(), serde_json::to_value(state)) {
        object.insert(CONTINUATION_KEY.to_owned(), state);
    }
    next
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create_event() -> Value {
        json!({
            "RequestType": "Create",
            "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provisioner",
            "ServiceTimeout": "900",
            "ResponseURL": "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x?X-Amz-Signature=abc",
            "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/sessions/5b7c9a40-0000-11ef-9c8e-0a1b2c3d4e5f",
            "RequestId": "e3f0c7d2-1111-4c3b-9a53-4f2b2f6a9d10",
            "LogicalResourceId": "UserSessionsReplicas",
            "ResourceType": "Custom::GlobalTableReplicas",
            "ResourceProperties": {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provisioner", "TableName": "UserSessions", "Regions": ["us-east-1"]}
        })
    }

    #[test]
    fn reads_the_envelope_of_a_real_shaped_event() {
        let envelope = Envelope::read(&create_event());
        assert_eq!(envelope.request_type.as_deref(), Some("Create"));
        assert!(envelope.response_url.as_deref().is_some_and(|u| u.starts_with("https://cloudformation-custom")));
        assert_eq!(envelope.logical_resource_id, "UserSessionsReplicas");
        assert_eq!(envelope.physical_resource_id, None);
        assert_eq!(envelope.stack_name(), "sessions");
        assert!(!envelope.no_echo);
        assert_eq!(envelope.service_timeout, Some(Duration::from_secs(900)));
    }

    #[test]
    fn the_envelope_of_garbage_is_empty_not_an_error() {
        for event in [json!(null), json!("x"), json!([1]), json!({"ResponseURL": 5})] {
            let envelope = Envelope::read(&event);
            assert_eq!(envelope.response_url, None, "{event}");
        }
        // Any string is kept: whether it is CloudFormation's is `trust`'s decision.
        assert_eq!(Envelope::read(&json!({"ResponseURL": "ftp://x"})).response_url.as_deref(), Some("ftp://x"));
    }

    #[test]
    fn parses_create_update_and_delete() {
        let (request, continuation) = parse(&create_event()).expect("create");
        assert!(matches!(request, Request::Create(_)));
        assert_eq!(continuation, None);

        let mut update = create_event();
        update["RequestType"] = json!("Update");
        update["PhysicalResourceId"] = json!("us-east-1/UserSessions/UserSessionsReplicas");
        update["OldResourceProperties"] = json!({"TableName": "UserSessions", "Regions": ["us-east-1"]});
        assert!(matches!(parse(&update).expect("update").0, Request::Update(_)));

        let mut delete = create_event();
        delete["RequestType"] = json!("Delete");
        delete["PhysicalResourceId"] = json!("us-east-1/UserSessions/UserSessionsReplicas");
        assert!(matches!(parse(&delete).expect("delete").0, Request::Delete(_)));
    }

    #[test]
    fn malformed_requests_say_what_is_wrong() {
        let mut unknown = create_event();
        unknown["RequestType"] = json!("Upsert");
        assert_eq!(parse(&unknown).expect_err("unknown"), RequestError::UnknownRequestType("Upsert".into()));

        let mut missing = create_event();
        missing.as_object_mut().expect("object").remove("RequestType");
        assert_eq!(parse(&missing).expect_err("missing"), RequestError::MissingRequestType);

        let mut update_without_id = create_event();
        update_without_id["RequestType"] = json!("Update");
        update_without_id["OldResourceProperties"] = json!({});
        let err = parse(&update_without_id).expect_err("no physical id").to_string();
        assert!(err.contains("PhysicalResourceId"), "{err}");

        assert_eq!(parse(&json!([])).expect_err("array"), RequestError::NotAnObject);
    }

    #[test]
    fn a_continuation_round_trips_through_the_event() {
        let state = ContinuationState {
            started_at_ms: 1_700_000_000_000,
            attempt: 2,
            settings_applied: vec![],
            removed: vec!["eu-west-1".into()],
        };
        let next = continuation_event(&create_event(), &state);
        assert_eq!(next[CONTINUATION_KEY]["StartedAtMs"], json!(1_700_000_000_000u64));
        let (request, continuation) = parse(&next).expect("continuation parses");
        assert!(matches!(request, Request::Create(_)));
        assert_eq!(continuation, Some(state));

        let mut broken = create_event();
        broken[CONTINUATION_KEY] = json!({"Attempt": "two"});
        assert!(matches!(parse(&broken), Err(RequestError::Continuation(_))));
    }
}

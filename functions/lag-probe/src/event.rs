//! The trigger: an EventBridge scheduled event (`detail-type: "Scheduled Event"`). Nothing in it
//! changes what the probe does; it is decoded so that a misrouted or malformed payload is a clear
//! `InvalidEvent` error (made before any AWS call) instead of a silent probe run.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde_json::Value;
use shared::Error;

pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// What the probe keeps of its trigger, for logs and the report.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Trigger {
    pub id: Option<String>,
    /// The schedule rule's ARN(s).
    pub resources: Vec<String>,
    pub time: Option<String>,
}

/// Decodes an EventBridge scheduled event; any field the probe does not need is ignored.
pub fn decode_scheduled_event(payload: &Value) -> Result<Trigger, Error> {
    if !payload.is_object() {
        return Err(Error::InvalidEvent(format!(
            "lag-probe expects an EventBridge scheduled event (a JSON object with \"detail-type\": \"{SCHEDULED_EVENT}\"), got {}",
            kind(payload)
        )));
    }
    let event: EventBridgeEvent<Value> = serde_path_to_error::deserialize(payload).map_err(|err| {
        let at = err.path().to_string();
        Error::InvalidEvent(format!(
            "not an EventBridge scheduled event: at `{at}`: {}; expected the shape EventBridge delivers (see events/scheduled-lag-probe.json)",
            err.into_inner()
        ))
    })?;
    if event.detail_type != SCHEDULED_EVENT {
        return Err(Error::InvalidEvent(format!(
            "detail-type is {:?}, expected {SCHEDULED_EVENT:?}: lag-probe is triggered by an EventBridge schedule, not by {} events",
            event.detail_type, event.source
        )));
    }
    Ok(Trigger {
        id: event.id,
        resources: event.resources.unwrap_or_default(),
        time: event.time.map(|t| t.to_rfc3339()),
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scheduled() -> Value {
        json!({
            "version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
            "source": "aws.events", "account": "123456789012", "time": "2026-01-01T00:00:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:events:eu-west-1:123456789012:rule/lag-probe"], "detail": {}
        })
    }

    #[test]
    fn decodes_a_scheduled_event_and_ignores_what_it_does_not_need() {
        let mut e = scheduled();
        e["detail"] = json!({"anything": [1, 2]});
        e["extra"] = json!("ignored");
        let t = decode_scheduled_event(&e).expect("scheduled");
        assert_eq!(t.resources, ["arn:aws:events:eu-west-1:123456789012:rule/lag-probe"]);
        assert_eq!(t.id.as_deref(), Some("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa"));
    }

    #[test]
    fn malformed_events_are_invalid_with_a_clear_message() {
        let cases: Vec<(Value, &str)> = vec![
            (json!(null), "got null"),
            (json!("tick"), "got a string"),
            (json!([]), "got an array"),
            (json!({}), "detail-type"),
            (
                {
                    let mut e = scheduled();
                    e.as_object_mut().map(|o| o.remove("detail"));
                    e
                },
                "detail",
            ),
            (
                {
                    let mut e = scheduled();
                    e["time"] = json!("yesterday");
                    e
                },
                "`time`",
            ),
            (
                {
                    let mut e = scheduled();
                    e["detail-type"] = json!(7);
                    e
                },
                "`detail-type`",
            ),
            (
                {
                    let mut e = scheduled();
                    e["detail-type"] = json!("CloudWatch Alarm State Change");
                    e["source"] = json!("aws.cloudwatch");
                    e
                },
                "expected \"Scheduled Event\"",
            ),
        ];
        for (payload, needle) in cases {
            let err = decode_scheduled_event(&payload).expect_err(&payload.to_string());
            assert_eq!(err.error_type(), "InvalidEvent");
            assert!(err.to_string().contains(needle), "{payload}: {err}");
        }
    }
}

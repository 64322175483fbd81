//! Decoding of CloudWatch alarm state changes in the three ways they reach a Lambda function:
//! the alarm's direct Lambda action, an EventBridge "CloudWatch Alarm State Change" event, and an
//! SNS notification whose message is the alarm JSON. failover and scaler share this decoder.
//!
//! A payload that is not one of these shapes, or lacks the alarm name, the new state or the time
//! of the change, is an `InvalidEvent` error: it never defaults to a state (an alarm read as OK
//! when its state is missing could trigger a failback).

use crate::error::Error;
use aws_lambda_events::cloudwatch_alarms::{CloudWatchAlarm, CloudWatchAlarmData, CloudWatchAlarmStateValue};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use aws_lambda_events::sns::SnsEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The `detail-type` EventBridge uses for alarm state changes.
pub const EVENTBRIDGE_DETAIL_TYPE: &str = "CloudWatch Alarm State Change";

/// An alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }
}

/// How the change was delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Delivery {
    AlarmAction,
    EventBridge,
    Sns,
    /// Not delivered: read from the alarm's current state by a scheduled reconcile.
    Schedule,
    /// Not an alarm: an operator's request (`multisite evacuate` / `failback`), typed as such
    /// (failover's `multisite_operator_request` event). `alarm_name` holds the operator's ARN
    /// (from STS `GetCallerIdentity`) and `changed_at` the time of the request.
    Operator,
}

/// One alarm state change, whatever its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmChange {
    pub alarm_name: String,
    pub state: AlarmState,
    pub previous_state: Option<AlarmState>,
    /// When the alarm changed state, as CloudWatch reports it (ISO 8601). The same change
    /// delivered twice carries the same value: it identifies duplicates.
    pub changed_at: String,
    /// The same instant in epoch milliseconds: what orders the changes of one alarm.
    pub changed_at_ms: u64,
    /// The alarm's ARN as the delivery states it (`alarmArn`, the EventBridge `resources`, the
    /// SNS `AlarmArn`): its account, partition and Region are checked against the topology.
    pub alarm_arn: Option<String>,
    pub reason: String,
    pub delivery: Delivery,
}

/// The parts of a CloudWatch alarm ARN (`arn:<partition>:cloudwatch:<region>:<account>:alarm:<name>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmArn<'a> {
    pub partition: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub name: &'a str,
}

impl<'a> AlarmArn<'a> {
    pub fn parse(arn: &'a str) -> Option<Self> {
        let mut parts = arn.splitn(7, ':');
        let (prefix, partition, service, region, account, kind, name) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let valid = prefix == "arn"
            && partition.starts_with("aws")
            && service == "cloudwatch"
            && !region.is_empty()
            && account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && kind == "alarm"
            && !name.is_empty();
        valid.then_some(Self { partition, region, account, name })
    }
}

/// What a function acting on alarm changes (failover, scaler) needs to handle one event: the
/// topology in use and its clients, its own Region, a clock, and whose alarms are its own.
/// Built per event from the topology store in each `main.rs`.
pub struct HandlerDeps<'a> {
    pub topology: &'a crate::Topology,
    pub clients: &'a crate::RegionalClients,
    /// The Region this function runs in; its ledger replica is the one it reads and writes.
    pub home_region: &'a str,
    pub clock: &'a dyn crate::clock::Clock,
    /// This deployment's account and partition: alarm changes of any other are foreign.
    pub identity: &'a Identity,
}

/// Who this deployment is: alarm changes from any other account or partition are foreign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub partition: String,
    pub account: String,
}

impl Identity {
    /// From the invoked function's ARN (`arn:<partition>:lambda:<region>:<account>:function:...`),
    /// which Lambda gives every invocation.
    pub fn from_function_arn(arn: &str) -> Result<Self, String> {
        let parts: Vec<&str> = arn.split(':').collect();
        match parts.as_slice() {
            ["arn", partition, "lambda", _, account, "function", ..]
                if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(Self { partition: (*partition).to_owned(), account: (*account).to_owned() })
            }
            _ => Err(format!("cannot read the account from the invoked function ARN `{arn}`")),
        }
    }
}

/// Why an alarm change is not authentic for this deployment.
pub fn check_authentic(change: &AlarmChange, identity: &Identity, expected_region: &str) -> Result<(), String> {
    let Some(text) = change.alarm_arn.as_deref() else {
        return Err(format!(
            "the change of `{}` carries no alarm ARN: its origin cannot be checked",
            change.alarm_name
        ));
    };
    let Some(arn) = AlarmArn::parse(text) else {
        return Err(format!("`{text}` is not a CloudWatch alarm ARN"));
    };
    if arn.partition != identity.partition || arn.account != identity.account {
        return Err(format!(
            "alarm {text} belongs to account {} ({}), not this deployment's {} ({}): a foreign alarm with the same name",
            arn.account, arn.partition, identity.account, identity.partition
        ));
    }
    if arn.name != change.alarm_name {
        return Err(format!("alarm ARN {text} names another alarm than `{}`", change.alarm_name));
    }
    if arn.region != expected_region {
        return Err(format!(
            "alarm {text} lives in {}, but the topology says `{}` lives in {expected_region}",
            arn.region, change.alarm_name
        ));
    }
    Ok(())
}

/// Why an alarm change is not acted on here, decided before any AWS call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screened {
    /// Not for this function here: unknown alarm, INSUFFICIENT_DATA, or another Region acts.
    Ignored { region: Option<String>, reason: String },
    /// Not authentic: another account, partition or Region than the topology names.
    Rejected { region: String, reason: String },
}

/// Maps a change to its cell and alarm, and checks that it is authentic, changes a status, and
/// that `home_region` is its one actor ([`crate::Topology::actor_region`]). failover and scaler
/// screen with this one function, so they agree on which changes they act on.
pub fn screen<'t>(
    change: &AlarmChange,
    topology: &'t crate::Topology,
    identity: &Identity,
    home_region: &str,
) -> Result<(&'t crate::topology::Cell, &'t crate::topology::AlarmRef), Screened> {
    let Some((cell, alarm)) = topology.alarm(&change.alarm_name) else {
        return Err(Screened::Ignored {
            region: None,
            reason: "alarm not mapped to any Region in the topology".into(),
        });
    };
    let region = cell.region.clone();
    if let Err(reason) = check_authentic(change, identity, cell.alarm_region(alarm)) {
        return Err(Screened::Rejected { region, reason });
    }
    if change.state == AlarmState::InsufficientData {
        return Err(Screened::Ignored {
            region: Some(region),
            reason: "INSUFFICIENT_DATA does not change a Region's status".into(),
        });
    }
    let actor = topology.actor_region(cell, alarm);
    if actor != home_region {
        return Err(Screened::Ignored {
            region: Some(region),
            reason: format!(
                "changes of {} are acted on in {actor} (its actor Region), not in {home_region}",
                change.alarm_name
            ),
        });
    }
    Ok((cell, alarm))
}

/// The `detail-type` of scheduled events, from an EventBridge rule (`source: aws.events`) or from
/// EventBridge Scheduler (`source: aws.scheduler`, whose `detail` is the string `"{}"`).
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// How the cause of a Region status set by an operator starts: `operator#<ARN>#<time>#<what>`.
pub const OPERATOR_CAUSE_PREFIX: &str = "operator#";

/// Whether `payload` is a scheduled event of either kind.
pub fn is_scheduled_event(payload: &Value) -> bool {
    matches!(payload.get("source").and_then(Value::as_str), Some("aws.events" | "aws.scheduler"))
        && payload.get("detail-type").and_then(Value::as_str) == Some(SCHEDULED_EVENT)
}

impl AlarmChange {
    /// A stable identity of this state change, for de-duplication.
    pub fn change_id(&self) -> String {
        if self.delivery == Delivery::Operator {
            let what = if self.state == AlarmState::Alarm { "evacuate" } else { "failback" };
            return format!("{OPERATOR_CAUSE_PREFIX}{}#{}#{what}", self.alarm_name, self.changed_at);
        }
        format!("{}#{}#{:?}", self.alarm_name, self.changed_at, self.state)
    }
}

/// Operator overrides an alarm payload may carry under `"multisite"` (the alarm decoders ignore
/// the key). One drill payload goes to failover and scaler alike, so both read the same set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Overrides {
    /// Return the plan (or the computed targets) without changing anything.
    pub dry_run: bool,
    /// A planned drill: move the Aurora writer with a switchover (no data loss).
    pub planned: bool,
    /// On failback, also move the Aurora writer back to the recovered Region.
    pub restore_writer: bool,
    /// Never from a payload: set by failover when an operator approved this change
    /// (`multisite approve`), with the operator's ARN; the approval gate lets it pass.
    #[serde(skip)]
    pub approved_by: Option<String>,
}

impl Overrides {
    /// The overrides of `payload`; an unknown key is an `InvalidEvent` naming the allowed ones.
    pub fn from_payload(payload: &Value) -> Result<Self, Error> {
        match payload.get("multisite") {
            None => Ok(Self::default()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
                Error::InvalidEvent(format!("`multisite` overrides: {e} (allowed: dry_run, planned, restore_writer)"))
            }),
        }
    }
}

/// Decodes every alarm change in a payload (an SNS event may carry several records).
pub fn decode_alarm_changes(payload: &Value) -> Result<Vec<AlarmChange>, Error> {
    let invalid = |what: String| Error::InvalidEvent(what);
    if payload.get("Records").is_some() {
        let event: SnsEvent =
            serde_json::from_value(payload.clone()).map_err(|e| invalid(format!("SNS event is malformed: {e}")))?;
        if event.records.is_empty() {
            return Err(invalid("SNS event has no records".into()));
        }
        return event
            .records
            .iter()
            .map(|record| {
                let message: Value = serde_json::from_str(&record.sns.message).map_err(|e| {
                    invalid(format!(
                        "SNS message {} is not JSON (expected a CloudWatch alarm notification): {e}",
                        record.sns.message_id
                    ))
                })?;
                decode_sns_alarm_message(&message)
            })
            .collect();
    }
    if payload.get("detail-type").is_some() {
        let detail_type = payload["detail-type"].as_str().unwrap_or_default();
        if detail_type != EVENTBRIDGE_DETAIL_TYPE {
            return Err(invalid(format!(
                "EventBridge event `{detail_type}` is not a `{EVENTBRIDGE_DETAIL_TYPE}` event"
            )));
        }
        require_state_value(payload.get("detail"), "detail")?;
        let event: EventBridgeEvent<CloudWatchAlarmData> = serde_json::from_value(payload.clone())
            .map_err(|e| invalid(format!("EventBridge alarm event is malformed: {e}")))?;
        let arn = payload.get("resources").and_then(|r| r.get(0)).and_then(Value::as_str);
        return Ok(vec![from_alarm_data(&event.detail, arn, Delivery::EventBridge)?]);
    }
    if payload.get("alarmData").is_some() {
        require_state_value(payload.get("alarmData"), "alarmData")?;
        let alarm: CloudWatchAlarm = serde_json::from_value(payload.clone())
            .map_err(|e| invalid(format!("CloudWatch alarm action event is malformed: {e}")))?;
        let arn = payload.get("alarmArn").and_then(Value::as_str);
        return Ok(vec![from_alarm_data(&alarm.alarm_data, arn, Delivery::AlarmAction)?]);
    }
    Err(invalid(
        "not a CloudWatch alarm state change: expected an alarm action event (`alarmData`), an EventBridge \
         `CloudWatch Alarm State Change` event (`detail-type`) or an SNS event (`Records`)"
            .into(),
    ))
}

/// The alarm types default a missing state to OK; refuse that instead.
fn require_state_value(data: Option<&Value>, at: &str) -> Result<(), Error> {
    let value = data.and_then(|d| d.get("state")).and_then(|s| s.get("value")).and_then(Value::as_str);
    match value {
        Some(v) if AlarmState::parse(v).is_some() => Ok(()),
        Some(v) => Err(Error::InvalidEvent(format!("{at}.state.value `{v}` is not OK, ALARM or INSUFFICIENT_DATA"))),
        None => Err(Error::InvalidEvent(format!("{at}.state.value is missing: the new alarm state is required"))),
    }
}

fn from_alarm_data(data: &CloudWatchAlarmData, arn: Option<&str>, delivery: Delivery) -> Result<AlarmChange, Error> {
    if data.alarm_name.trim().is_empty() {
        return Err(Error::InvalidEvent("alarm name is empty".into()));
    }
    let state = data.state.as_ref().ok_or_else(|| Error::InvalidEvent("alarm state is missing".into()))?;
    let convert = |v: &CloudWatchAlarmStateValue| match v {
        CloudWatchAlarmStateValue::Alarm => AlarmState::Alarm,
        CloudWatchAlarmStateValue::InsufficientData => AlarmState::InsufficientData,
        _ => AlarmState::Ok,
    };
    let changed_at_ms = u64::try_from(state.timestamp.timestamp_millis())
        .map_err(|_| Error::InvalidEvent(format!("alarm state timestamp {} is before 1970", state.timestamp)))?;
    Ok(AlarmChange {
        alarm_name: data.alarm_name.clone(),
        state: convert(&state.value),
        previous_state: data.previous_state.as_ref().map(|p| convert(&p.value)),
        changed_at: state.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        changed_at_ms,
        alarm_arn: arn.map(str::to_owned),
        reason: state.reason.clone(),
        delivery,
    })
}

/// The JSON CloudWatch publishes to SNS. Only what multisite needs is required, so a payload
/// with extra or null fields (e.g. `AlarmDescription: null`) still decodes.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SnsAlarmMessage {
    alarm_name: Option<String>,
    new_state_value: Option<String>,
    old_state_value: Option<String>,
    state_change_time: Option<String>,
    #[serde(default)]
    new_state_reason: Option<String>,
    #[serde(default)]
    alarm_arn: Option<String>,
}

fn decode_sns_alarm_message(message: &Value) -> Result<AlarmChange, Error> {
    let invalid =
        |what: &str| Error::InvalidEvent(format!("SNS message is not a CloudWatch alarm notification: {what}"));
    let parsed: SnsAlarmMessage = serde_json::from_value(message.clone()).map_err(|e| invalid(&e.to_string()))?;
    let alarm_name =
        parsed.alarm_name.filter(|n| !n.trim().is_empty()).ok_or_else(|| invalid("AlarmName is missing"))?;
    let state_text = parsed.new_state_value.ok_or_else(|| invalid("NewStateValue is missing"))?;
    let state =
        AlarmState::parse(&state_text).ok_or_else(|| invalid(&format!("NewStateValue `{state_text}` is unknown")))?;
    let changed_at =
        parsed.state_change_time.filter(|t| !t.is_empty()).ok_or_else(|| invalid("StateChangeTime is missing"))?;
    let time = parse_alarm_time(&changed_at)
        .ok_or_else(|| invalid(&format!("StateChangeTime `{changed_at}` is not a time (expected ISO 8601)")))?;
    Ok(AlarmChange {
        alarm_name,
        state,
        previous_state: parsed.old_state_value.as_deref().and_then(AlarmState::parse),
        changed_at: time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        changed_at_ms: u64::try_from(time.timestamp_millis()).map_err(|_| invalid("StateChangeTime is before 1970"))?,
        alarm_arn: parsed.alarm_arn,
        reason: parsed.new_state_reason.unwrap_or_default(),
        delivery: Delivery::Sns,
    })
}

/// Epoch milliseconds as the RFC 3339 text alarm changes carry (`2026-11-26T10:00:04.123Z`).
pub fn format_alarm_time(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// SNS alarm messages write `2024-05-01T12:00:00.000+0000`; the other deliveries use RFC 3339.
/// Normalised so the same change has the same identity whichever way it came.
pub fn parse_alarm_time(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z")
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(text))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn direct(state: &str) -> Value {
        json!({
            "source": "aws.cloudwatch",
            "alarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:web-us-east-1-unhealthy",
            "accountId": "123456789012",
            "time": "2026-11-26T10:00:05.000+0000",
            "region": "eu-west-1",
            "alarmData": {
                "alarmName": "web-us-east-1-unhealthy",
                "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2026-11-26T10:00:04.123+0000"},
                "previousState": {"value": "OK", "reason": "ok", "timestamp": "2026-11-25T10:00:00.000+0000"},
                "configuration": {"description": "5xx rate", "metrics": []}
            }
        })
    }

    fn eventbridge(state: &str) -> Value {
        json!({
            "version": "0", "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
            "detail-type": "CloudWatch Alarm State Change", "source": "aws.cloudwatch",
            "account": "123456789012", "time": "2026-11-26T10:00:05Z", "region": "eu-west-1",
            "resources": ["arn:aws:cloudwatch:eu-west-1:123456789012:alarm:web-us-east-1-unhealthy"],
            "detail": {
                "alarmName": "web-us-east-1-unhealthy",
                "state": {"value": state, "reason": "Threshold Crossed", "timestamp": "2026-11-26T10:00:04.123+0000"},
                "previousState": {"value": "OK", "reason": "ok", "timestamp": "2026-11-25T10:00:00.000+0000"},
                "configuration": {"metrics": []}
            }
        })
    }

    fn sns(message: &str) -> Value {
        json!({"Records": [{
            "EventSource": "aws:sns", "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:eu-west-1:123456789012:alarms:1d1c6c0e-0000-4000-8000-000000000000",
            "Sns": {
                "Type": "Notification", "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                "TopicArn": "arn:aws:sns:eu-west-1:123456789012:alarms",
                "Subject": "ALARM: \"web-us-east-1-unhealthy\" in EU (Ireland)",
                "Message": message, "Timestamp": "2026-11-26T10:00:05.000Z",
                "SignatureVersion": "1", "Signature": "EXAMPLE", "SigningCertUrl": "EXAMPLE", "UnsubscribeUrl": "EXAMPLE",
                "MessageAttributes": {}
            }
        }]})
    }

    fn sns_alarm_message(state: &str) -> String {
        json!({
            "AlarmName": "web-us-east-1-unhealthy", "AlarmDescription": null, "AWSAccountId": "123456789012",
            "NewStateValue": state, "NewStateReason": "Threshold Crossed",
            "StateChangeTime": "2026-11-26T10:00:04.123+0000", "Region": "EU (Ireland)",
            "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:web-us-east-1-unhealthy",
            "OldStateValue": "OK", "Trigger": {"MetricName": "HealthCheckStatus"}
        })
        .to_string()
    }

    #[test]
    fn the_three_deliveries_of_one_change_decode_to_the_same_change() {
        let changes: Vec<AlarmChange> = [direct("ALARM"), eventbridge("ALARM"), sns(&sns_alarm_message("ALARM"))]
            .iter()
            .map(|p| decode_alarm_changes(p).expect("decodes").remove(0))
            .collect();
        for change in &changes {
            assert_eq!(change.alarm_name, "web-us-east-1-unhealthy");
            assert_eq!(change.state, AlarmState::Alarm);
            assert_eq!(change.previous_state, Some(AlarmState::Ok));
            assert_eq!(change.changed_at, "2026-11-26T10:00:04.123Z");
            assert_eq!(change.changed_at_ms, 1_795_687_204_123);
            assert_eq!(
                change.alarm_arn.as_deref(),
                Some("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:web-us-east-1-unhealthy")
            );
        }
        assert_eq!(changes[0].change_id(), changes[2].change_id(), "duplicates are recognised across deliveries");
        let deliveries: Vec<Delivery> = changes.iter().map(|c| c.delivery).collect();
        assert_eq!(deliveries, [Delivery::AlarmAction, Delivery::EventBridge, Delivery::Sns]);
    }

    #[test]
    fn authenticity_needs_this_account_this_partition_and_the_topology_region() {
        let change = decode_alarm_changes(&direct("ALARM")).expect("decodes").remove(0);
        let me = Identity::from_function_arn("arn:aws:lambda:eu-west-1:123456789012:function:failover").expect("arn");
        assert_eq!(check_authentic(&change, &me, "eu-west-1"), Ok(()));
        let wrong_region = check_authentic(&change, &me, "us-east-1").expect_err("region");
        assert!(wrong_region.contains("lives in eu-west-1, but the topology says"), "{wrong_region}");
        let other = Identity { partition: "aws".into(), account: "210987654321".into() };
        let foreign = check_authentic(&change, &other, "eu-west-1").expect_err("account");
        assert!(foreign.contains("foreign alarm"), "{foreign}");
        let gov = Identity { partition: "aws-us-gov".into(), account: "123456789012".into() };
        assert!(check_authentic(&change, &gov, "eu-west-1").is_err(), "another partition");
        let mut no_arn = change.clone();
        no_arn.alarm_arn = None;
        assert!(check_authentic(&no_arn, &me, "eu-west-1").expect_err("no arn").contains("no alarm ARN"));
        let mut renamed = change.clone();
        renamed.alarm_arn = Some("arn:aws:cloudwatch:eu-west-1:123456789012:alarm:other".into());
        assert!(check_authentic(&renamed, &me, "eu-west-1").expect_err("name").contains("names another alarm"));
        assert!(Identity::from_function_arn("arn:aws:lambda:eu-west-1:12345:function:f").is_err());
    }

    #[test]
    fn scheduled_events_of_the_rule_and_of_scheduler_are_recognised() {
        let rule = json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        let scheduler = json!({"source": "aws.scheduler", "detail-type": "Scheduled Event", "detail": "{}"});
        assert!(is_scheduled_event(&rule) && is_scheduled_event(&scheduler));
        assert!(!is_scheduled_event(&eventbridge("ALARM")));
        assert!(!is_scheduled_event(&json!({"source": "evil", "detail-type": "Scheduled Event"})));
    }

    #[test]
    fn overrides_default_off_parse_and_reject_unknown_keys() {
        assert_eq!(Overrides::from_payload(&direct("ALARM")).expect("none"), Overrides::default());
        let mut payload = direct("ALARM");
        payload["multisite"] = json!({"dry_run": true, "planned": true});
        let parsed = Overrides::from_payload(&payload).expect("valid");
        assert!(parsed.dry_run && parsed.planned && !parsed.restore_writer);
        payload["multisite"] = json!({"dry-run": true});
        let err = Overrides::from_payload(&payload).expect_err("unknown key");
        assert_eq!(err.error_type(), "InvalidEvent");
        assert!(err.to_string().contains("allowed: dry_run, planned, restore_writer"), "{err}");
    }

    #[test]
    fn ok_and_insufficient_data_states_decode() {
        assert_eq!(decode_alarm_changes(&direct("OK")).expect("ok")[0].state, AlarmState::Ok);
        assert_eq!(
            decode_alarm_changes(&eventbridge("INSUFFICIENT_DATA")).expect("id")[0].state,
            AlarmState::InsufficientData
        );
        assert_eq!(decode_alarm_changes(&sns(&sns_alarm_message("OK"))).expect("ok")[0].state, AlarmState::Ok);
    }

    #[test]
    fn malformed_payloads_are_invalid_events_with_a_reason() {
        let mut no_state = direct("ALARM");
        no_state["alarmData"].as_object_mut().map(|o| o.remove("state"));
        let mut no_value = eventbridge("ALARM");
        no_value["detail"]["state"].as_object_mut().map(|o| o.remove("value"));
        let mut other_detail = eventbridge("ALARM");
        other_detail["detail-type"] = "EC2 Instance State-change Notification".into();
        let mut bad_time = direct("ALARM");
        bad_time["alarmData"]["state"]["timestamp"] = "soon".into();
        let mut no_name = direct("ALARM");
        no_name["alarmData"]["alarmName"] = "".into();
        let cases: Vec<(&str, Value, &str)> = vec![
            ("not an object", json!("ALARM"), "not a CloudWatch alarm state change"),
            ("empty object", json!({}), "not a CloudWatch alarm state change"),
            ("missing state", no_state, "state.value is missing"),
            ("missing state value", no_value, "state.value is missing"),
            ("bogus state", direct("BROKEN"), "is not OK, ALARM or INSUFFICIENT_DATA"),
            ("other EventBridge event", other_detail, "is not a `CloudWatch Alarm State Change` event"),
            ("empty alarm name", no_name, "alarm name is empty"),
            ("SNS message not JSON", sns("hello"), "is not JSON"),
            ("SNS message not an alarm", sns(r#"{"foo": 1}"#), "AlarmName is missing"),
            ("SNS without records", json!({"Records": []}), "no records"),
            ("SNS record wrong shape", json!({"Records": [{"Sns": 5}]}), "SNS event is malformed"),
            (
                "SNS time not a time",
                sns(&sns_alarm_message("ALARM").replace("2026-11-26T10:00:04.123+0000", "yesterday")),
                "is not a time",
            ),
            ("direct time not a time", bad_time.clone(), "malformed"),
        ];
        for (what, payload, words) in cases {
            let err = decode_alarm_changes(&payload).expect_err(what);
            assert_eq!(err.error_type(), "InvalidEvent", "{what}");
            assert!(err.to_string().contains(words), "{what}: `{err}` lacks `{words}`");
        }
    }
}

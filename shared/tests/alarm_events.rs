//! Every alarm sample in `events/` decodes to the change it describes, whichever delivery.

use shared::alarm::{AlarmState, Delivery, decode_alarm_changes};
use std::path::PathBuf;

fn event(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_alarm_sample_decodes_to_its_change() {
    let cases = [
        ("alarm-alarm-action-us-east-1-alarm.json", Delivery::AlarmAction, AlarmState::Alarm),
        ("alarm-alarm-action-us-east-1-ok.json", Delivery::AlarmAction, AlarmState::Ok),
        ("alarm-eventbridge-us-east-1-alarm.json", Delivery::EventBridge, AlarmState::Alarm),
        ("alarm-eventbridge-us-east-1-ok.json", Delivery::EventBridge, AlarmState::Ok),
        ("alarm-sns-us-east-1-alarm.json", Delivery::Sns, AlarmState::Alarm),
        ("alarm-sns-us-east-1-ok.json", Delivery::Sns, AlarmState::Ok),
    ];
    let mut ids = Vec::new();
    for (file, delivery, state) in cases {
        let changes = decode_alarm_changes(&event(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(changes.len(), 1, "{file}");
        let change = &changes[0];
        assert_eq!((change.delivery, change.state), (delivery, state), "{file}");
        assert_eq!(change.alarm_name, "web-us-east-1-unhealthy", "{file}");
        ids.push((state, change.change_id()));
    }
    // The same state change delivered three ways has one identity.
    let alarm_ids: Vec<_> = ids.iter().filter(|(s, _)| *s == AlarmState::Alarm).map(|(_, id)| id).collect();
    assert!(alarm_ids.windows(2).all(|w| w[0] == w[1]), "{alarm_ids:?}");
}

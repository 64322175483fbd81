//! Every `events/` file lag-probe accepts is decoded by the real decoder (and is usable with
//! `cargo lambda invoke lag-probe --data-file events/scheduled-lag-probe.json`).

use std::path::PathBuf;

#[test]
fn the_scheduled_event_sample_decodes() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../events/scheduled-lag-probe.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let payload: serde_json::Value = serde_json::from_str(&text).expect("JSON");

    let trigger = lag_probe::event::decode_scheduled_event(&payload).expect("a scheduled event");

    assert_eq!(trigger.id.as_deref(), Some("89d1a02d-5ec7-412e-82f5-13505f849b41"));
    assert_eq!(trigger.resources, ["arn:aws:events:eu-west-1:123456789012:rule/multisite-lag-probe-every-minute"]);
    assert_eq!(trigger.time.as_deref(), Some("2026-01-01T12:00:00+00:00"));
}

//! The answer to CloudFormation: the response body, kept under CloudFormation's 4096-byte limit
//! (pure). Which PhysicalResourceId it carries is [`crate::identity`]'s decision.
//!
//! * The body is at most 4096 bytes: the Reason is truncated first (with a marker); then optional
//!   Data keys (per-Region ones) are dropped, last first; if the essential Data still does not fit
//!   the answer becomes FAILED saying so, rather than a body CloudFormation would reject.

use aws_lambda_events::event::cloudformation::{
    CloudFormationCustomResourceResponse, CloudFormationCustomResourceResponseStatus,
};
use std::collections::HashMap;

use crate::request::Envelope;

/// CloudFormation rejects response bodies larger than this.
pub const MAX_BODY_BYTES: usize = 4096;
/// CloudFormation's limit on PhysicalResourceId.
pub const MAX_PHYSICAL_ID_BYTES: usize = 1024;
const TRUNCATED: &str = " […truncated; the full text is in the function's logs]";

/// Cuts `text` to at most `max` bytes, replacing the tail by a stable hash of the whole so two long
/// inputs never map to the same result by accident.
pub fn cap(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    let hash = format!("#{:016x}", fnv1a(text.as_bytes()));
    let mut cut = max.saturating_sub(hash.len());
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{hash}", &text[..cut])
}

/// FNV-1a 64: stable across builds and Rust versions (unlike `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Success,
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Success => "SUCCESS",
            Status::Failed => "FAILED",
        }
    }
}

/// One `Data` entry. Essential entries are never dropped to fit the size limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataEntry {
    pub key: String,
    pub value: String,
    pub essential: bool,
}

/// What to answer, before it is fitted into a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: Status,
    pub reason: String,
    pub physical_resource_id: String,
    /// In priority order: optional entries are dropped from the end when the body is too large.
    pub data: Vec<DataEntry>,
    pub no_echo: bool,
}

impl Answer {
    pub fn success(
        physical_resource_id: String,
        reason: impl Into<String>,
        data: Vec<DataEntry>,
        no_echo: bool,
    ) -> Self {
        Self { status: Status::Success, reason: reason.into(), physical_resource_id, data, no_echo }
    }

    pub fn failed(physical_resource_id: String, reason: impl Into<String>, no_echo: bool) -> Self {
        Self { status: Status::Failed, reason: reason.into(), physical_resource_id, data: Vec::new(), no_echo }
    }
}

/// A body ready to PUT, and what had to give way to fit it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub bytes: Vec<u8>,
    pub status: Status,
    pub reason_truncated: bool,
    pub dropped_data_keys: Vec<String>,
}

/// Builds the response body for `answer` to the request in `envelope`, within [`MAX_BODY_BYTES`].
pub fn body(envelope: &Envelope, answer: &Answer) -> Body {
    let mut answer = answer.clone();
    answer.physical_resource_id = cap(answer.physical_resource_id, MAX_PHYSICAL_ID_BYTES);
    let mut dropped = Vec::new();
    loop {
        let (bytes, reason_truncated) = fit_reason(envelope, &answer);
        if bytes.len() <= MAX_BODY_BYTES {
            return Body { bytes, status: answer.status, reason_truncated, dropped_data_keys: dropped };
        }
        // The reason is already as short as it gets: the data is what does not fit.
        match answer.data.iter().rposition(|e| !e.essential) {
            Some(i) => dropped.push(answer.data.remove(i).key),
            None => {
                let keys = answer.data.len();
                answer = Answer::failed(
                    answer.physical_resource_id.clone(),
                    format!(
                        "the response Data ({keys} keys) would exceed CloudFormation's {MAX_BODY_BYTES}-byte limit"
                    ),
                    answer.no_echo,
                );
            }
        }
    }
}

/// Serializes, shortening the reason to the longest prefix (plus a marker) whose JSON form fits.
fn fit_reason(envelope: &Envelope, answer: &Answer) -> (Vec<u8>, bool) {
    let bytes = serialize(envelope, answer, &answer.reason);
    if bytes.len() <= MAX_BODY_BYTES {
        return (bytes, false);
    }
    let base = serialize(envelope, answer, "").len();
    let budget = MAX_BODY_BYTES.saturating_sub(base);
    let marker = escaped_len(TRUNCATED);
    if budget < marker {
        return (serialize(envelope, answer, ""), true);
    }
    let mut used = marker;
    let mut cut = 0;
    for (i, c) in answer.reason.char_indices() {
        let mut buf = [0u8; 4];
        let width = escaped_len(c.encode_utf8(&mut buf));
        if used + width > budget {
            break;
        }
        used += width;
        cut = i + c.len_utf8();
    }
    let reason = format!("{}{TRUNCATED}", &answer.reason[..cut]);
    (serialize(envelope, answer, &reason), true)
}

/// Length of `text` inside a JSON string literal (escapes included).
fn escaped_len(text: &str) -> usize {
    serde_json::to_string(text).map(|s| s.len() - 2).unwrap_or(text.len() * 6)
}

fn serialize(envelope: &Envelope, answer: &Answer, reason: &str) -> Vec<u8> {
    let mut response = CloudFormationCustomResourceResponse::default();
    response.status = match answer.status {
        Status::Success => CloudFormationCustomResourceResponseStatus::Success,
        Status::Failed => CloudFormationCustomResourceResponseStatus::Failed,
    };
    response.reason = Some(reason.to_owned());
    response.physical_resource_id = answer.physical_resource_id.clone();
    response.stack_id = envelope.stack_id.clone();
    response.request_id = envelope.request_id.clone();
    response.logical_resource_id = envelope.logical_resource_id.clone();
    response.no_echo = answer.no_echo;
    response.data = answer.data.iter().map(|e| (e.key.clone(), e.value.clone())).collect::<HashMap<_, _>>();
    // Serializing a struct of strings, a bool and a string map cannot fail.
    serde_json::to_vec(&response).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn envelope() -> Envelope {
        Envelope {
            request_type: Some("Create".into()),
            response_url: Some("http://127.0.0.1/x".into()),
            stack_id:
                "arn:aws:cloudformation:us-east-1:123456789012:stack/sessions/5b7c9a40-0000-11ef-9c8e-0a1b2c3d4e5f"
                    .into(),
            request_id: "e3f0c7d2-1111-4c3b-9a53-4f2b2f6a9d10".into(),
            logical_resource_id: "UserSessionsReplicas".into(),
            physical_resource_id: None,
            no_echo: false,
            service_timeout: None,
        }
    }

    fn parsed(body: &Body) -> Value {
        serde_json::from_slice(&body.bytes).expect("body is JSON")
    }

    fn entry(key: &str, value: &str, essential: bool) -> DataEntry {
        DataEntry { key: key.into(), value: value.into(), essential }
    }

    #[test]
    fn a_success_body_has_every_field_cloudformation_reads() {
        let answer = Answer::success(
            "us-east-1/T/R".into(),
            "ok",
            vec![entry("TableName", "T", true), entry("TableArn.eu-west-1", "arn:x", false)],
            true,
        );
        let body = body(&envelope(), &answer);
        let json = parsed(&body);
        assert_eq!(json["Status"], "SUCCESS");
        assert_eq!(json["PhysicalResourceId"], "us-east-1/T/R");
        assert_eq!(json["LogicalResourceId"], "UserSessionsReplicas");
        assert_eq!(json["RequestId"], "e3f0c7d2-1111-4c3b-9a53-4f2b2f6a9d10");
        assert_eq!(json["StackId"], envelope().stack_id);
        assert_eq!(json["NoEcho"], true);
        assert_eq!(json["Data"]["TableArn.eu-west-1"], "arn:x");
        assert!(!body.reason_truncated && body.dropped_data_keys.is_empty());
    }

    #[test]
    fn long_reasons_are_truncated_to_fit_4096_bytes() {
        let cases = [
            "x".repeat(5000),
            "é".repeat(3000),           // multi-byte characters: cut on a char boundary
            "\"quoted\"\n".repeat(600), // escapes make the JSON longer than the text
            "\u{1}".repeat(2000),       // \u0001 escapes: 6 bytes each
        ];
        for reason in cases {
            let body = body(&envelope(), &Answer::failed("id".into(), reason.clone(), false));
            assert!(body.bytes.len() <= MAX_BODY_BYTES, "{} bytes", body.bytes.len());
            assert!(body.reason_truncated);
            let json = parsed(&body);
            let got = json["Reason"].as_str().expect("reason");
            assert!(got.ends_with(TRUNCATED), "marker kept");
            assert!(reason.starts_with(got.strip_suffix(TRUNCATED).expect("suffix")), "a prefix of the original");
            assert!(body.bytes.len() > MAX_BODY_BYTES - 8, "not cut more than needed: {}", body.bytes.len());
        }
    }

    #[test]
    fn short_reasons_are_untouched() {
        let body = body(&envelope(), &Answer::failed("id".into(), "TableName: required", false));
        assert_eq!(parsed(&body)["Reason"], "TableName: required");
        assert!(!body.reason_truncated);
    }

    #[test]
    fn optional_data_is_dropped_last_first_when_too_large() {
        let mut data = vec![entry("TableName", "T", true)];
        for i in 0..40 {
            data.push(entry(&format!("TableArn.r{i}"), &"a".repeat(90), false));
        }
        let body = body(&envelope(), &Answer::success("id".into(), "", data, false));
        assert!(body.bytes.len() <= MAX_BODY_BYTES);
        assert_eq!(body.status, Status::Success);
        assert!(!body.dropped_data_keys.is_empty());
        assert_eq!(body.dropped_data_keys[0], "TableArn.r39", "the last entry goes first");
        let json = parsed(&body);
        assert_eq!(json["Data"]["TableName"], "T");
        assert!(json["Data"].get("TableArn.r0").is_some(), "earlier entries stay");
    }

    #[test]
    fn essential_data_that_cannot_fit_becomes_a_clear_failure() {
        let data = (0..60).map(|i| entry(&format!("K{i}"), &"v".repeat(100), true)).collect();
        let body = body(&envelope(), &Answer::success("id".into(), "", data, false));
        let json = parsed(&body);
        assert_eq!(json["Status"], "FAILED");
        assert!(json["Reason"].as_str().expect("reason").contains("4096-byte limit"));
        assert_eq!(json["PhysicalResourceId"], "id", "the id is still the resource's");
    }
}

//! CloudWatch metrics as Embedded Metric Format (EMF) log lines: one JSON object per line on
//! stdout, which CloudWatch Logs turns into metrics without any API call on the hot path.
//!
//! Shape (EMF specification): a root `_aws` object with `Timestamp` (epoch ms) and
//! `CloudWatchMetrics`: a list of directives, each with `Namespace`, `Dimensions` (a list of
//! dimension-name sets) and `Metrics` (`Name`, `Unit`); every dimension and metric named there is
//! a root member holding its value. Limits: at most 100 metrics per directive, at most 30
//! dimensions per set; values are finite numbers (or arrays of up to 100 of them).

use serde::Serialize;
use serde_json::{Map, Value, json};
use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Namespace of every multisite metric.
pub const NAMESPACE: &str = "multisite";
const MAX_METRICS_PER_DIRECTIVE: usize = 100;
const MAX_DIMENSIONS: usize = 30;
const MAX_VALUES_PER_METRIC: usize = 100;

/// CloudWatch metric units (the subset multisite uses, spelled as CloudWatch expects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Unit {
    Milliseconds,
    Seconds,
    Count,
    Percent,
    Bytes,
    None,
}

impl Unit {
    fn as_str(self) -> &'static str {
        match self {
            Unit::Milliseconds => "Milliseconds",
            Unit::Seconds => "Seconds",
            Unit::Count => "Count",
            Unit::Percent => "Percent",
            Unit::Bytes => "Bytes",
            Unit::None => "None",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Metric {
    name: String,
    unit: Unit,
    values: Vec<f64>,
}

/// A set of metrics sharing one namespace and one set of dimensions.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSet {
    namespace: String,
    dimensions: Vec<(String, String)>,
    metrics: Vec<Metric>,
    properties: Map<String, Value>,
}

impl MetricSet {
    pub fn new(namespace: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), dimensions: Vec::new(), metrics: Vec::new(), properties: Map::new() }
    }

    /// Adds a dimension; a name given twice keeps the last value. Beyond EMF's 30 dimensions
    /// further ones are ignored (with a warning) rather than producing a line CloudWatch drops.
    pub fn dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let (name, value) = (name.into(), value.into());
        if let Some(existing) = self.dimensions.iter_mut().find(|(n, _)| *n == name) {
            existing.1 = value;
        } else if self.dimensions.len() < MAX_DIMENSIONS {
            self.dimensions.push((name, value));
        } else {
            tracing::warn!(dimension = %name, "EMF allows at most {MAX_DIMENSIONS} dimensions; dimension dropped");
        }
        self
    }

    /// Records one value of a metric; repeated values of the same metric become an EMF value array.
    /// Non-finite values (NaN, infinity) are not valid EMF and are dropped with a warning.
    pub fn metric(mut self, name: impl Into<String>, value: f64, unit: Unit) -> Self {
        self.push(name.into(), value, unit);
        self
    }

    /// Like [`MetricSet::metric`] on a borrowed set, for loops.
    pub fn push(&mut self, name: String, value: f64, unit: Unit) {
        if !value.is_finite() {
            tracing::warn!(metric = %name, "non-finite metric value dropped");
            return;
        }
        match self.metrics.iter_mut().find(|m| m.name == name) {
            Some(metric) if metric.values.len() < MAX_VALUES_PER_METRIC => metric.values.push(value),
            Some(_) => {
                tracing::warn!(metric = %name, "EMF allows at most {MAX_VALUES_PER_METRIC} values per metric; value dropped")
            }
            None => self.metrics.push(Metric { name, unit, values: vec![value] }),
        }
    }

    /// Adds a searchable property that is not a metric (e.g. a request id or a plan summary).
    pub fn property(mut self, name: impl Into<String>, value: impl Serialize) -> Self {
        let value = serde_json::to_value(value).unwrap_or(Value::Null);
        self.properties.insert(name.into(), value);
        self
    }

    /// The EMF documents for this set at `timestamp_ms`: one per 100 metrics (EMF's limit).
    pub fn to_documents(&self, timestamp_ms: u64) -> Vec<Value> {
        let dimension_names: Vec<&str> = self.dimensions.iter().map(|(n, _)| n.as_str()).collect();
        self.metrics
            .chunks(MAX_METRICS_PER_DIRECTIVE)
            .map(|chunk| {
                let mut root = self.properties.clone();
                for (name, value) in &self.dimensions {
                    root.insert(name.clone(), Value::String(value.clone()));
                }
                let definitions: Vec<Value> =
                    chunk.iter().map(|m| json!({"Name": m.name, "Unit": m.unit.as_str()})).collect();
                for metric in chunk {
                    let value = match metric.values.as_slice() {
                        [single] => json!(single),
                        many => json!(many),
                    };
                    root.insert(metric.name.clone(), value);
                }
                root.insert(
                    "_aws".to_owned(),
                    json!({
                        "Timestamp": timestamp_ms,
                        "CloudWatchMetrics": [{
                            "Namespace": self.namespace,
                            "Dimensions": [dimension_names],
                            "Metrics": definitions,
                        }]
                    }),
                );
                Value::Object(root)
            })
            .collect()
    }

    /// Writes the documents to stdout (or the writer given to [`redirect_emit`]), one line each,
    /// stamped now, with the fields Lambda's JSON log format reads ([`log_fields`]).
    pub fn emit(&self) {
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
        let configured = std::env::var("AWS_LAMBDA_LOG_LEVEL").ok();
        let fields = log_fields(configured.as_deref(), crate::telemetry::current_request_id());
        let mut docs = self.to_documents(now_ms);
        for doc in &mut docs {
            if let Value::Object(root) = doc {
                for (name, value) in &fields {
                    root.entry(name.clone()).or_insert_with(|| value.clone());
                }
            }
        }
        if let Some(sink) = EMIT_SINK.get() {
            if let Ok(mut sink) = sink.lock() {
                for doc in docs {
                    let _ = writeln!(sink, "{doc}");
                }
            }
            return;
        }
        for doc in docs {
            println!("{doc}");
        }
    }
}

/// Lambda's log levels, least severe first: its log-level filter keeps a line whose `level` is
/// at or after the configured one.
pub const LAMBDA_LEVELS: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];

/// The level a metric line carries: INFO, or the application log level Lambda is configured with
/// (`AWS_LAMBDA_LOG_LEVEL`) when that is stricter. Lambda gives a line without a valid level (or
/// without a valid timestamp) the level INFO, so with a WARN filter a bare EMF line, and the
/// metric in it, would be dropped.
pub fn metric_level(configured: Option<&str>) -> &'static str {
    let rank = |level: &str| LAMBDA_LEVELS.iter().position(|l| l.eq_ignore_ascii_case(level.trim()));
    match configured.and_then(rank) {
        Some(i) if i > 2 => LAMBDA_LEVELS[i],
        _ => "INFO",
    }
}

/// What a metric line carries besides EMF: `level` ([`metric_level`]), `timestamp` (RFC 3339: a
/// line without a valid one also counts as INFO) and the invocation's `requestId`.
pub fn log_fields(configured: Option<&str>, request_id: Option<String>) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("level".into(), Value::String(metric_level(configured).into()));
    fields.insert("timestamp".into(), Value::String(crate::telemetry::rfc3339_now()));
    if let Some(request_id) = request_id {
        fields.insert("requestId".into(), Value::String(request_id));
    }
    fields
}

static EMIT_SINK: std::sync::OnceLock<std::sync::Mutex<Box<dyn std::io::Write + Send>>> = std::sync::OnceLock::new();

/// Sends every later [`MetricSet::emit`] to `writer` instead of stdout, for a process that runs the
/// handlers in-process and owns its stdout (the drill). Lambda never calls it. The first call
/// wins; returns whether this call took effect.
pub fn redirect_emit(writer: Box<dyn std::io::Write + Send>) -> bool {
    EMIT_SINK.set(std::sync::Mutex::new(writer)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks a document against the EMF specification's structural rules.
    fn assert_valid_emf(doc: &Value) {
        let aws = &doc["_aws"];
        assert!(aws["Timestamp"].is_u64(), "Timestamp is epoch milliseconds");
        let directives = aws["CloudWatchMetrics"].as_array().expect("CloudWatchMetrics array");
        for directive in directives {
            assert!(directive["Namespace"].as_str().is_some_and(|n| !n.is_empty() && n.len() <= 255));
            for set in directive["Dimensions"].as_array().expect("Dimensions array") {
                let set = set.as_array().expect("a dimension set is an array");
                assert!(set.len() <= MAX_DIMENSIONS);
                for name in set {
                    let name = name.as_str().expect("dimension name");
                    assert!(doc[name].is_string(), "dimension {name} has a string value at the root");
                }
            }
            let metrics = directive["Metrics"].as_array().expect("Metrics array");
            assert!(metrics.len() <= MAX_METRICS_PER_DIRECTIVE);
            for m in metrics {
                let name = m["Name"].as_str().expect("metric name");
                assert!(!name.is_empty() && name.len() <= 255);
                let value = &doc[name];
                assert!(
                    value.is_number() || value.as_array().is_some_and(|a| a.iter().all(Value::is_number)),
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn renders_the_emf_shape_with_dimensions_metrics_and_properties() {
        let docs = MetricSet::new(NAMESPACE)
            .dimension("Function", "failover")
            .dimension("Region", "eu-west-1")
            .metric("Evacuations", 1.0, Unit::Count)
            .metric("HandlerDuration", 12.5, Unit::Milliseconds)
            .property("RequestId", "abc-123")
            .to_documents(1_700_000_000_000);

        assert_eq!(docs.len(), 1);
        let doc = &docs[0];
        assert_valid_emf(doc);
        assert_eq!(
            doc["_aws"],
            json!({"Timestamp": 1_700_000_000_000u64, "CloudWatchMetrics": [{
                "Namespace": "multisite",
                "Dimensions": [["Function", "Region"]],
                "Metrics": [{"Name": "Evacuations", "Unit": "Count"}, {"Name": "HandlerDuration", "Unit": "Milliseconds"}]
            }]})
        );
        assert_eq!(doc["Function"], "failover");
        assert_eq!(doc["Evacuations"], 1.0);
        assert_eq!(doc["RequestId"], "abc-123");
    }

    #[test]
    fn repeated_values_become_an_array_and_non_finite_values_are_dropped() {
        let mut set = MetricSet::new(NAMESPACE).dimension("Source", "us-east-1");
        for v in [10.0, 20.0, f64::NAN, 30.0] {
            set.push("ReplicationLagMs".into(), v, Unit::Milliseconds);
        }
        let doc = &set.to_documents(1)[0];
        assert_valid_emf(doc);
        assert_eq!(doc["ReplicationLagMs"], json!([10.0, 20.0, 30.0]));
    }

    #[test]
    fn more_than_100_metrics_are_split_across_documents() {
        let mut set = MetricSet::new(NAMESPACE).dimension("Function", "lag-probe");
        for i in 0..150 {
            set.push(format!("M{i}"), i as f64, Unit::Count);
        }
        let docs = set.to_documents(1);
        assert_eq!(docs.len(), 2);
        docs.iter().for_each(assert_valid_emf);
        assert_eq!(docs[0]["_aws"]["CloudWatchMetrics"][0]["Metrics"].as_array().map(Vec::len), Some(100));
        assert_eq!(docs[1]["M149"], 149.0);
    }

    #[test]
    fn dimension_limits_hold() {
        let mut set = MetricSet::new(NAMESPACE).metric("X", 1.0, Unit::Count);
        for i in 0..40 {
            set = set.dimension(format!("D{i}"), "v");
        }
        set = set.dimension("D0", "changed");
        let doc = &set.to_documents(1)[0];
        assert_valid_emf(doc);
        assert_eq!(doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0].as_array().map(Vec::len), Some(30));
        assert_eq!(doc["D0"], "changed");
    }

    #[test]
    fn metric_lines_carry_a_level_that_lambdas_filter_keeps_and_a_timestamp() {
        // Whatever application log level Lambda filters at, the metric line's level passes it.
        for (i, configured) in LAMBDA_LEVELS.iter().enumerate() {
            let level = metric_level(Some(configured));
            let kept_from = LAMBDA_LEVELS.iter().position(|l| *l == level).expect("a Lambda level");
            assert!(kept_from >= i, "{configured}: a line at {level} would be filtered out");
            assert!(kept_from >= 2, "{configured}: metrics are never below INFO ({level})");
        }
        assert_eq!(metric_level(Some("warn")), "WARN");
        assert_eq!(metric_level(Some("LOUD")), "INFO");
        assert_eq!(metric_level(None), "INFO");
        let fields = log_fields(Some("ERROR"), Some("req-1".into()));
        assert_eq!(fields["level"], "ERROR");
        assert_eq!(fields["requestId"], "req-1");
        let stamp = fields["timestamp"].as_str().expect("a timestamp");
        assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "RFC 3339: {stamp}");
        assert!(!log_fields(None, None).contains_key("requestId"), "outside an invocation: no request id");
    }

    #[test]
    fn a_set_without_metrics_emits_nothing() {
        assert!(MetricSet::new(NAMESPACE).dimension("A", "b").to_documents(1).is_empty());
    }
}

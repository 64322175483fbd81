//! Tracing set-up for every function: JSON logs when Lambda's log format is JSON (so CloudWatch
//! Logs Insights can query fields, and Lambda's log-level filter reads each line's `level`), plain
//! text otherwise; level from Lambda's log level or RUST_LOG. Every line inside an invocation
//! carries its `requestId` (lambda_runtime opens a "Lambda runtime invoke" span holding it), the
//! metric lines ([`crate::metrics`]) included, through [`current_request_id`].

use serde_json::{Map, Value};
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// The span field lambda_runtime names the invocation's request id with.
const REQUEST_ID_FIELD: &str = "requestId";

/// Initialises the global subscriber from the process environment. Safe to call more than once:
/// later calls keep the first subscriber.
pub fn init() {
    init_with(|key| std::env::var(key).ok());
}

/// [`init`] with an environment stand-in. Returns whether this call installed the subscriber
/// (false: one was already installed, and it is kept).
pub fn init_with(lookup: impl Fn(&str) -> Option<String>) -> bool {
    init_with_writer(lookup, std::io::stdout)
}

/// [`init_with`] writing to `writer` instead of stdout (what Lambda sends to CloudWatch Logs).
fn init_with_writer<W>(lookup: impl Fn(&str) -> Option<String>, writer: W) -> bool
where
    W: for<'a> tracing_subscriber::fmt::MakeWriter<'a> + Send + Sync + 'static,
{
    let settings = LogSettings::from_lookup(lookup);
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(RequestIdLayer).with(filter);
    // An error only means a subscriber is already installed: keep it.
    let installed = if settings.json {
        let layer = tracing_subscriber::fmt::layer().event_format(LambdaJson).with_writer(writer);
        registry.with(layer).try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_target(false).with_ansi(false).with_writer(writer))
            .try_init()
    };
    installed.is_ok()
}

/// The request id of the invocation the current span belongs to, if any.
pub fn current_request_id() -> Option<String> {
    tracing::Span::current()
        .with_subscriber(|(id, dispatch)| {
            let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
            let span = registry.span(id)?;
            span.scope().find_map(|s| s.extensions().get::<RequestId>().map(|r| r.0.clone()))
        })
        .flatten()
}

/// A span's request id, kept in its extensions by [`RequestIdLayer`].
struct RequestId(String);

/// Keeps each span's `requestId` field where events (and [`current_request_id`]) find it.
struct RequestIdLayer;

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for RequestIdLayer {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut visitor = JsonFields::default();
        attrs.record(&mut visitor);
        if let (Some(Value::String(request_id)), Some(span)) = (visitor.0.remove(REQUEST_ID_FIELD), ctx.span(id)) {
            span.extensions_mut().insert(RequestId(request_id));
        }
    }
}

/// One JSON object per event, as Lambda's JSON log format reads it: `timestamp` (RFC 3339) and
/// `level` (what the log-level filter uses; a line without both counts as INFO), `requestId`,
/// `message` and the event's fields at the top level.
struct LambdaJson;

impl<S, N> FormatEvent<S, N> for LambdaJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut line = Map::new();
        line.insert("timestamp".into(), Value::String(rfc3339_now()));
        line.insert("level".into(), Value::String(event.metadata().level().to_string()));
        let request_id = ctx
            .event_scope()
            .and_then(|scope| scope.from_root().find_map(|s| s.extensions().get::<RequestId>().map(|r| r.0.clone())));
        if let Some(request_id) = request_id {
            line.insert(REQUEST_ID_FIELD.into(), Value::String(request_id));
        }
        let mut fields = JsonFields::default();
        event.record(&mut fields);
        for (name, value) in fields.0 {
            line.entry(name).or_insert(value);
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// The current time as RFC 3339 with milliseconds, UTC.
pub(crate) fn rfc3339_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An event's or span's fields as JSON values.
#[derive(Default)]
struct JsonFields(Map<String, Value>);

impl Visit for JsonFields {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().into(), Value::String(format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), Value::String(value.into()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

/// What [`init`] derives from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    pub json: bool,
    /// An `EnvFilter` directive.
    pub filter: String,
}

impl LogSettings {
    /// `AWS_LAMBDA_LOG_FORMAT=JSON` selects JSON. The level comes from `AWS_LAMBDA_LOG_LEVEL`
    /// (set by Lambda's logging configuration) if present, else `RUST_LOG`, else `info`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let json = lookup("AWS_LAMBDA_LOG_FORMAT").is_some_and(|v| v.trim().eq_ignore_ascii_case("json"));
        let filter = lookup("AWS_LAMBDA_LOG_LEVEL")
            .and_then(|level| lambda_level_to_filter(&level))
            .or_else(|| lookup("RUST_LOG").filter(|v| !v.trim().is_empty()))
            .unwrap_or_else(|| "info".to_owned());
        Self { json, filter }
    }
}

fn lambda_level_to_filter(level: &str) -> Option<String> {
    let level = match level.trim().to_ascii_uppercase().as_str() {
        "TRACE" => "trace",
        "DEBUG" => "debug",
        "INFO" => "info",
        "WARN" => "warn",
        "ERROR" | "FATAL" => "error",
        _ => return None,
    };
    Some(level.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> LogSettings {
        LogSettings::from_lookup(|k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn lambda_settings_win_over_rust_log() {
        let s =
            settings(&[("AWS_LAMBDA_LOG_FORMAT", "JSON"), ("AWS_LAMBDA_LOG_LEVEL", "FATAL"), ("RUST_LOG", "debug")]);
        assert_eq!(s, LogSettings { json: true, filter: "error".into() });
    }

    #[test]
    fn falls_back_to_rust_log_then_info() {
        assert_eq!(settings(&[("RUST_LOG", "shared=debug")]).filter, "shared=debug");
        assert_eq!(settings(&[("AWS_LAMBDA_LOG_LEVEL", "LOUD")]).filter, "info");
        let plain = settings(&[("AWS_LAMBDA_LOG_FORMAT", "Text")]);
        assert_eq!(plain, LogSettings { json: false, filter: "info".into() });
    }

    /// A writer whose output the test can read back.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
        }
    }

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    // The only test of this crate that installs the global subscriber (it can be set once per
    // process): the first call installs it, the second keeps it, and events reach the first one's
    // writer in its format (JSON, fields flattened) at its level.
    #[test]
    fn init_twice_is_harmless() {
        let first = Captured::default();
        let second = Captured::default();
        let json = |k: &str| match k {
            "AWS_LAMBDA_LOG_FORMAT" => Some("JSON".to_owned()),
            "AWS_LAMBDA_LOG_LEVEL" => Some("INFO".to_owned()),
            _ => None,
        };
        assert!(init_with_writer(json, first.clone()), "the first call installs the subscriber");
        let debug_text = |k: &str| (k == "RUST_LOG").then(|| "debug".to_owned());
        assert!(!init_with_writer(debug_text, second.clone()), "the second call must keep the first subscriber");
        assert!(!init_with(|_| None), "so must a plain init");

        tracing::info!(probe = "init_twice_is_harmless", "still logging");
        tracing::debug!(probe = "init_twice_is_harmless", "below the first subscriber's level");
        // Inside an invocation (lambda_runtime's span): every line names its request id, and so
        // can the metric lines.
        assert_eq!(current_request_id(), None, "outside an invocation");
        tracing::info_span!("Lambda runtime invoke", requestId = "req-42").in_scope(|| {
            tracing::info_span!("inner").in_scope(|| {
                tracing::warn!(probe = "in_invocation", attempts = 3u64, "inside");
                assert_eq!(current_request_id().as_deref(), Some("req-42"), "from any span inside the invocation");
            });
        });

        let ours: Vec<serde_json::Value> = first
            .text()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["probe"] == "init_twice_is_harmless")
            .collect();
        assert_eq!(ours.len(), 1, "one JSON event at info, none at debug: {}", first.text());
        assert_eq!(ours[0]["message"], "still logging");
        assert_eq!(ours[0]["level"], "INFO");
        let stamp = ours[0]["timestamp"].as_str().unwrap_or_default();
        assert!(chrono::DateTime::parse_from_rfc3339(stamp).is_ok(), "Lambda reads an RFC 3339 timestamp: {stamp}");
        assert!(ours[0].get("requestId").is_none(), "outside an invocation: {}", ours[0]);
        let inside: Vec<serde_json::Value> = first
            .text()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["probe"] == "in_invocation")
            .collect();
        assert_eq!(inside.len(), 1, "{}", first.text());
        assert_eq!(inside[0]["requestId"], "req-42");
        assert_eq!((inside[0]["level"].as_str(), inside[0]["attempts"].as_u64()), (Some("WARN"), Some(3)));
        assert_eq!(inside[0]["message"], "inside");
        assert!(second.text().is_empty(), "the second subscriber was never installed: {}", second.text());
    }
}

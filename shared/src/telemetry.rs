//! Tracing set-up for every function: JSON logs when Lambda's log format is JSON (so CloudWatch
//! Logs Insights can query fields), plain text otherwise; level from Lambda's log level or RUST_LOG.

use tracing_subscriber::EnvFilter;

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
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(false).with_writer(writer);
    // An error only means a subscriber is already installed: keep it.
    let installed = if settings.json {
        builder.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init()
    } else {
        builder.try_init()
    };
    installed.is_ok()
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

        let ours: Vec<serde_json::Value> = first
            .text()
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["probe"] == "init_twice_is_harmless")
            .collect();
        assert_eq!(ours.len(), 1, "one JSON event at info, none at debug: {}", first.text());
        assert_eq!(ours[0]["message"], "still logging");
        assert_eq!(ours[0]["level"], "INFO");
        assert!(second.text().is_empty(), "the second subscriber was never installed: {}", second.text());
    }
}

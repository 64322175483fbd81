//! Tracing set-up for every function: JSON logs when Lambda's log format is JSON (so CloudWatch
//! Logs Insights can query fields), plain text otherwise; level from Lambda's log level or RUST_LOG.

use tracing_subscriber::EnvFilter;

/// Initialises the global subscriber from the process environment. Safe to call more than once:
/// later calls keep the first subscriber.
pub fn init() {
    init_with(|key| std::env::var(key).ok());
}

/// [`init`] with an environment stand-in.
pub fn init_with(lookup: impl Fn(&str) -> Option<String>) {
    let settings = LogSettings::from_lookup(lookup);
    let filter = EnvFilter::try_new(&settings.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(false);
    // An error only means a subscriber is already installed: keep it.
    let _ = if settings.json {
        builder.json().flatten_event(true).with_current_span(false).with_span_list(false).try_init()
    } else {
        builder.try_init()
    };
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

    #[test]
    fn init_twice_is_harmless() {
        init_with(|_| None);
        init_with(|k| (k == "AWS_LAMBDA_LOG_FORMAT").then(|| "JSON".to_owned()));
        tracing::info!("still logging");
    }
}

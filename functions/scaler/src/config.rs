//! The scaler's own settings, read from its environment. The topology has no scaling settings yet;
//! these belong in its `failover_policy` (or a `scaling` section) once the shared crate grows one.

use crate::capacity::Limits;
use std::time::Duration;

pub const RAISE_MAX: &str = "MULTISITE_SCALER_RAISE_MAX";
pub const MAX_CEILING: &str = "MULTISITE_SCALER_MAX_CEILING";
pub const WAIT_SECONDS: &str = "MULTISITE_SCALER_WAIT_SECONDS";
pub const POLL_MS: &str = "MULTISITE_SCALER_POLL_MS";

/// The longest readiness wait: a Lambda invocation lasts at most 15 minutes.
pub const MAX_WAIT_SECONDS: u64 = 900;
pub const DEFAULT_POLL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalerConfig {
    /// Raise MaxSize (up to `max_ceiling`) when a target does not fit under it.
    pub raise_max: bool,
    pub max_ceiling: Option<i32>,
    /// Wait up to this long for the new instances to be InService (`None`: do not wait).
    pub wait: Option<Duration>,
    /// How often the readiness wait polls.
    pub poll_interval: Duration,
}

impl Default for ScalerConfig {
    fn default() -> Self {
        Self { raise_max: false, max_ceiling: None, wait: None, poll_interval: DEFAULT_POLL }
    }
}

/// A setting that cannot be used; the message names the variable and what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub problem: String,
}

impl ScalerConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &'static str| lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty());
        let error = |name: &'static str, value: &str, problem: &str| ConfigError {
            name,
            value: value.to_owned(),
            problem: problem.to_owned(),
        };
        let raise_max = match get(RAISE_MAX).as_deref() {
            None => false,
            Some(v) if v.eq_ignore_ascii_case("true") => true,
            Some(v) if v.eq_ignore_ascii_case("false") => false,
            Some(v) => return Err(error(RAISE_MAX, v, "expected `true` or `false`")),
        };
        let max_ceiling = match get(MAX_CEILING) {
            None => None,
            Some(v) => match v.parse::<i32>() {
                Ok(n) if n >= 1 => Some(n),
                _ => return Err(error(MAX_CEILING, &v, "expected a whole number of instances >= 1")),
            },
        };
        match (raise_max, max_ceiling) {
            (true, None) => {
                return Err(error(
                    RAISE_MAX,
                    "true",
                    &format!("raising MaxSize needs a ceiling: set {MAX_CEILING} to the largest MaxSize allowed"),
                ));
            }
            (false, Some(n)) => {
                return Err(error(
                    MAX_CEILING,
                    &n.to_string(),
                    &format!("the ceiling only applies when MaxSize may be raised: set {RAISE_MAX}=true or unset it"),
                ));
            }
            _ => {}
        }
        let wait = match get(WAIT_SECONDS) {
            None => None,
            Some(v) => match v.parse::<u64>() {
                Ok(0) => None,
                Ok(n) if n <= MAX_WAIT_SECONDS => Some(Duration::from_secs(n)),
                _ => {
                    return Err(error(
                        WAIT_SECONDS,
                        &v,
                        &format!("expected whole seconds from 0 (no wait) to {MAX_WAIT_SECONDS}"),
                    ));
                }
            },
        };
        let poll_interval = match get(POLL_MS) {
            None => DEFAULT_POLL,
            Some(v) => match v.parse::<u64>() {
                Ok(n) if (10..=60_000).contains(&n) => Duration::from_millis(n),
                _ => return Err(error(POLL_MS, &v, "expected milliseconds from 10 to 60000")),
            },
        };
        Ok(Self { raise_max, max_ceiling, wait, poll_interval })
    }

    pub fn limits(&self) -> Limits {
        Limits { raise_max: self.raise_max, max_ceiling: self.max_ceiling }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(pairs: &[(&str, &str)]) -> Result<ScalerConfig, ConfigError> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        ScalerConfig::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        assert_eq!(load(&[]).expect("defaults"), ScalerConfig::default());
        assert_eq!(load(&[(WAIT_SECONDS, "0"), (RAISE_MAX, "")]).expect("empty"), ScalerConfig::default());
    }

    #[test]
    fn all_settings_parse() {
        let config =
            load(&[(RAISE_MAX, "TRUE"), (MAX_CEILING, "40"), (WAIT_SECONDS, "120"), (POLL_MS, "250")]).expect("valid");
        assert_eq!(
            config,
            ScalerConfig {
                raise_max: true,
                max_ceiling: Some(40),
                wait: Some(Duration::from_secs(120)),
                poll_interval: Duration::from_millis(250)
            }
        );
        assert_eq!(config.limits(), Limits { raise_max: true, max_ceiling: Some(40) });
    }

    #[test]
    fn invalid_settings_name_the_variable_and_the_fix() {
        type Case = (Vec<(&'static str, &'static str)>, &'static str, &'static str);
        let cases: Vec<Case> = vec![
            (vec![(RAISE_MAX, "yes")], RAISE_MAX, "expected `true` or `false`"),
            (vec![(RAISE_MAX, "true")], RAISE_MAX, "set MULTISITE_SCALER_MAX_CEILING"),
            (vec![(MAX_CEILING, "10")], MAX_CEILING, "set MULTISITE_SCALER_RAISE_MAX=true"),
            (vec![(RAISE_MAX, "true"), (MAX_CEILING, "0")], MAX_CEILING, ">= 1"),
            (vec![(RAISE_MAX, "true"), (MAX_CEILING, "ten")], MAX_CEILING, "whole number"),
            (vec![(WAIT_SECONDS, "-1")], WAIT_SECONDS, "0 (no wait) to 900"),
            (vec![(WAIT_SECONDS, "901")], WAIT_SECONDS, "0 (no wait) to 900"),
            (vec![(POLL_MS, "1")], POLL_MS, "10 to 60000"),
        ];
        for (env, name, words) in cases {
            let err = load(&env).expect_err(words);
            assert_eq!(err.name, name);
            let text = err.to_string();
            assert!(text.starts_with(name) && text.contains(words), "`{text}` lacks `{words}`");
        }
    }
}

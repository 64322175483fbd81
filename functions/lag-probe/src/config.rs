//! lag-probe's own settings, read from its environment (validated at cold start, each message
//! naming the variable). Defaults keep a run of 3 Regions well inside a 60 s Lambda timeout.

use std::time::Duration;

pub const SAMPLES: &str = "MULTISITE_PROBE_SAMPLES";
pub const TIMEOUT_MS: &str = "MULTISITE_PROBE_TIMEOUT_MS";
pub const POLL_INITIAL_MS: &str = "MULTISITE_PROBE_POLL_INITIAL_MS";
pub const POLL_MAX_MS: &str = "MULTISITE_PROBE_POLL_MAX_MS";
pub const TTL_SECONDS: &str = "MULTISITE_PROBE_TTL_SECONDS";
pub const CALL_TIMEOUT_MS: &str = "MULTISITE_PROBE_CALL_TIMEOUT_MS";
pub const RUN_BUDGET_MS: &str = "MULTISITE_PROBE_RUN_BUDGET_MS";

/// The longest a sample may wait for its canary: past it, a pair is a breach anyway.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeConfig {
    /// Canary writes per Region pair per run (sequential within a pair).
    pub samples: u32,
    /// How long one sample polls the destination before it counts as a breach. `None`: twice the
    /// topology's RPO budget, at least 1 s and at most [`MAX_TIMEOUT`].
    pub timeout: Option<Duration>,
    /// First gap between two reads of the destination; it doubles up to `poll_max`.
    pub poll_initial: Duration,
    /// Largest gap between two reads: the measured lag overstates the real one by at most this
    /// (plus one read's round trip).
    pub poll_max: Duration,
    /// Canary items expire this long after they were written (the table's TTL attribute).
    pub ttl: Duration,
    /// Limit on any single discovery or ledger call (a Region that does not answer is unreachable).
    pub call_timeout: Duration,
    /// The measurement phase ends this long after the run started, whatever is left (pairs still
    /// waiting are reported timed out): keeps a run inside the Lambda timeout.
    pub run_budget: Duration,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        Self {
            samples: 3,
            timeout: None,
            poll_initial: Duration::from_millis(10),
            poll_max: Duration::from_millis(25),
            ttl: Duration::from_secs(3600),
            call_timeout: Duration::from_secs(5),
            run_budget: Duration::from_secs(40),
        }
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

impl ProbeConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|key| std::env::var(key).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let number = |name: &'static str,
                      range: std::ops::RangeInclusive<u64>,
                      unit: &str|
         -> Result<Option<u64>, ConfigError> {
            let Some(value) = lookup(name).map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()) else {
                return Ok(None);
            };
            match value.parse::<u64>() {
                Ok(n) if range.contains(&n) => Ok(Some(n)),
                _ => Err(ConfigError {
                    name,
                    value,
                    problem: format!("expected a whole number of {unit} from {} to {}", range.start(), range.end()),
                }),
            }
        };
        let ms = |n: u64| Duration::from_millis(n);
        let config = Self {
            samples: number(SAMPLES, 1..=20, "samples")?.map(|n| n as u32).unwrap_or(defaults.samples),
            timeout: number(TIMEOUT_MS, 100..=MAX_TIMEOUT.as_millis() as u64, "milliseconds")?.map(ms),
            poll_initial: number(POLL_INITIAL_MS, 1..=1000, "milliseconds")?.map(ms).unwrap_or(defaults.poll_initial),
            poll_max: number(POLL_MAX_MS, 1..=5000, "milliseconds")?.map(ms).unwrap_or(defaults.poll_max),
            ttl: number(TTL_SECONDS, 60..=30 * 86_400, "seconds")?.map(Duration::from_secs).unwrap_or(defaults.ttl),
            call_timeout: number(CALL_TIMEOUT_MS, 100..=20_000, "milliseconds")?
                .map(ms)
                .unwrap_or(defaults.call_timeout),
            run_budget: number(RUN_BUDGET_MS, 1_000..=840_000, "milliseconds")?.map(ms).unwrap_or(defaults.run_budget),
        };
        if config.poll_max < config.poll_initial {
            return Err(ConfigError {
                name: POLL_MAX_MS,
                value: config.poll_max.as_millis().to_string(),
                problem: format!(
                    "must be at least {POLL_INITIAL_MS} ({} ms): it caps the growing gap between reads",
                    config.poll_initial.as_millis()
                ),
            });
        }
        Ok(config)
    }

    /// The per-sample timeout for an RPO budget: the configured one, else twice the budget within
    /// [1 s, 20 s] (long enough to measure a lag beyond the budget, not just flag it).
    pub fn sample_timeout(&self, rpo_budget_ms: u64) -> Duration {
        self.timeout.unwrap_or_else(|| {
            Duration::from_millis(rpo_budget_ms.saturating_mul(2)).clamp(Duration::from_secs(1), MAX_TIMEOUT)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<ProbeConfig, ConfigError> {
        ProbeConfig::from_lookup(|k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string()))
    }

    /// The defaults documented in README.md (lag-probe's "Settings"; template.yaml sets none of
    /// these variables, so they are what runs): changing one means changing the docs too.
    #[test]
    fn defaults_without_any_variable() {
        let c = load(&[]).expect("defaults");
        assert_eq!(c.samples, 3, "{SAMPLES}");
        assert_eq!(c.timeout, None, "{TIMEOUT_MS}: 2 x rpo_budget_ms within 1-20 s");
        assert_eq!(c.sample_timeout(2_000), Duration::from_millis(4_000));
        assert_eq!(c.poll_initial, Duration::from_millis(10), "{POLL_INITIAL_MS}");
        assert_eq!(c.poll_max, Duration::from_millis(25), "{POLL_MAX_MS}");
        assert_eq!(c.ttl, Duration::from_secs(3_600), "{TTL_SECONDS}");
        assert_eq!(c.call_timeout, Duration::from_millis(5_000), "{CALL_TIMEOUT_MS}");
        assert_eq!(c.run_budget, Duration::from_millis(40_000), "{RUN_BUDGET_MS}");
        assert_eq!(MAX_TIMEOUT, Duration::from_secs(20));
        // Nothing else in the struct: a new field gets a documented default and a line above.
        let ProbeConfig {
            samples: _,
            timeout: _,
            poll_initial: _,
            poll_max: _,
            ttl: _,
            call_timeout: _,
            run_budget: _,
        } = c;
    }

    #[test]
    fn reads_every_variable() {
        let c = load(&[
            (SAMPLES, "5"),
            (TIMEOUT_MS, "3000"),
            (POLL_INITIAL_MS, "5"),
            (POLL_MAX_MS, "40"),
            (TTL_SECONDS, "600"),
            (CALL_TIMEOUT_MS, "2000"),
            (RUN_BUDGET_MS, "30000"),
        ])
        .expect("valid");
        assert_eq!(c.samples, 5);
        assert_eq!(c.timeout, Some(Duration::from_secs(3)));
        assert_eq!((c.poll_initial, c.poll_max), (Duration::from_millis(5), Duration::from_millis(40)));
        assert_eq!(c.ttl, Duration::from_secs(600));
        assert_eq!(c.call_timeout, Duration::from_secs(2));
        assert_eq!(c.run_budget, Duration::from_secs(30));
    }

    #[test]
    fn bad_values_name_the_variable_and_the_range() {
        let err = load(&[(SAMPLES, "0")]).expect_err("zero samples");
        assert_eq!(err.name, SAMPLES);
        assert!(err.to_string().contains("from 1 to 20"), "{err}");
        assert_eq!(load(&[(TIMEOUT_MS, "lots")]).expect_err("not a number").name, TIMEOUT_MS);
        assert_eq!(load(&[(TIMEOUT_MS, "60000")]).expect_err("beyond 20 s").name, TIMEOUT_MS);
        let err = load(&[(POLL_INITIAL_MS, "50"), (POLL_MAX_MS, "20")]).expect_err("cap below start");
        assert_eq!(err.name, POLL_MAX_MS);
    }

    #[test]
    fn sample_timeout_is_twice_the_budget_within_bounds() {
        let c = ProbeConfig::default();
        assert_eq!(c.sample_timeout(2_000), Duration::from_secs(4));
        assert_eq!(c.sample_timeout(100), Duration::from_secs(1));
        assert_eq!(c.sample_timeout(60_000), MAX_TIMEOUT);
        let fixed = ProbeConfig { timeout: Some(Duration::from_millis(1500)), ..c };
        assert_eq!(fixed.sample_timeout(60_000), Duration::from_millis(1500));
    }
}

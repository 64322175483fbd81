//! The scaler's settings, from the topology's `scaling` section (validated when the topology is
//! loaded, so nothing here can fail).

use crate::capacity::Limits;
use shared::topology::ScalingPolicy;
use std::time::Duration;

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

impl ScalerConfig {
    pub fn from_policy(policy: &ScalingPolicy) -> Self {
        Self {
            raise_max: policy.raise_max_size,
            max_ceiling: policy.max_size_ceiling,
            wait: (policy.readiness_wait_seconds > 0).then(|| Duration::from_secs(policy.readiness_wait_seconds)),
            poll_interval: Duration::from_millis(policy.readiness_poll_ms),
        }
    }

    pub fn limits(&self) -> Limits {
        Limits { raise_max: self.raise_max, max_ceiling: self.max_ceiling }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_mean_no_raise_and_no_wait() {
        let config = ScalerConfig::from_policy(&ScalingPolicy::default());
        assert_eq!(config.limits(), Limits { raise_max: false, max_ceiling: None });
        assert_eq!((config.wait, config.poll_interval), (None, Duration::from_secs(5)));
    }

    #[test]
    fn every_setting_is_carried_over() {
        let policy = ScalingPolicy {
            raise_max_size: true,
            max_size_ceiling: Some(40),
            readiness_wait_seconds: 120,
            readiness_poll_ms: 250,
        };
        let config = ScalerConfig::from_policy(&policy);
        assert_eq!(config.limits(), Limits { raise_max: true, max_ceiling: Some(40) });
        assert_eq!((config.wait, config.poll_interval), (Some(Duration::from_secs(120)), Duration::from_millis(250)));
    }
}

//! The RTO bound (pure): per Region, the worst-case time from its failure to its users being
//! served elsewhere, read from the deployment's own configuration, against
//! `rto_objective_seconds`:
//!
//! | term | from |
//! |---|---|
//! | detection: the health alarm | its `Period` x `EvaluationPeriods` (DescribeAlarms, in the Region the alarm lives in) |
//! | detection: the health check the alarm watches | its `RequestInterval` x `FailureThreshold` (GetHealthCheck; 0 when the alarm watches no Route 53 health check) |
//! | resolvers' caches | the Region's latency record's TTL (ListResourceRecordSets) |
//! | orchestration | from the alarm change to failover's transition record, in the latest evacuation the ledger holds (any Region) |
//!
//! With several alarms, the fastest complete detection counts. A term that could not be read
//! leaves the bound unknown (the reason is in `notes`); no
//! evacuation measured yet leaves the orchestration out, and the bound is then a lower bound.

use serde::Serialize;

/// One health alarm's timing, as DescribeAlarms reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmTiming {
    pub name: String,
    pub region: String,
    pub period_seconds: u64,
    pub evaluation_periods: u64,
    /// The Route 53 health check whose `HealthCheckStatus` it watches, if any.
    pub health_check_id: Option<String>,
}

/// One alarm's detection as read: its timing, and its health check's `RequestInterval` x
/// `FailureThreshold` (`Ok(None)`: the alarm watches no health check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectionRead {
    pub alarm: Result<AlarmTiming, String>,
    pub health_check_seconds: Result<Option<u64>, String>,
}

/// The terms of one Region's bound, in seconds (`None`: not known).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RtoTerms {
    pub alarm_seconds: Option<u64>,
    pub health_check_seconds: Option<u64>,
    pub record_ttl_seconds: Option<u64>,
    pub orchestration_seconds: Option<f64>,
}

/// One Region's worst case against the objective.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RtoBound {
    pub region: String,
    /// The sum of the terms; `None` when a detection or TTL term is unknown.
    pub bound_seconds: Option<f64>,
    /// The orchestration term is missing (no evacuation measured yet): the real bound is higher.
    pub lower_bound: bool,
    pub objective_seconds: u64,
    /// The (lower) bound is above the objective.
    pub exceeds_objective: bool,
    pub terms: RtoTerms,
    /// Which alarm, health check and record the terms come from; what could not be read.
    pub notes: Vec<String>,
}

impl RtoBound {
    /// Why the bound is unknown, when it is.
    pub fn unknown_reason(&self) -> Option<String> {
        self.bound_seconds.is_none().then(|| self.notes.join("; "))
    }
}

/// The bound of `region` from what was read: its alarms' detections, its record's TTL
/// (`Ok(None)`: an alias record, whose TTL is its target's) and the latest measured orchestration.
pub fn bound(
    region: &str,
    detections: &[DetectionRead],
    record_ttl: &Result<Option<u64>, String>,
    orchestration_seconds: Option<f64>,
    objective_seconds: u64,
) -> RtoBound {
    let mut notes = Vec::new();
    let mut fastest: Option<(u64, u64, &AlarmTiming)> = None;
    for detection in detections {
        match (&detection.alarm, &detection.health_check_seconds) {
            (Err(reason), _) => notes.push(reason.clone()),
            (Ok(alarm), Err(reason)) => notes.push(format!("alarm {}: {reason}", alarm.name)),
            (Ok(alarm), Ok(check)) => {
                let alarm_s = alarm.period_seconds.saturating_mul(alarm.evaluation_periods);
                let check_s = check.unwrap_or(0);
                if fastest.is_none_or(|(a, c, _)| alarm_s + check_s < a + c) {
                    fastest = Some((alarm_s, check_s, alarm));
                }
            }
        }
    }
    if detections.is_empty() {
        notes.push("the cell names no alarm".into());
    }
    let mut terms = RtoTerms { orchestration_seconds, ..RtoTerms::default() };
    if let Some((alarm_s, check_s, alarm)) = fastest {
        terms.alarm_seconds = Some(alarm_s);
        terms.health_check_seconds = Some(check_s);
        notes.insert(
            0,
            format!(
                "detection by alarm {} in {} ({} s x {} periods){}",
                alarm.name,
                alarm.region,
                alarm.period_seconds,
                alarm.evaluation_periods,
                match &alarm.health_check_id {
                    Some(id) => format!(" on health check {id} ({check_s} s)"),
                    None => ", on no Route 53 health check".into(),
                }
            ),
        );
    }
    match record_ttl {
        Ok(Some(ttl)) => terms.record_ttl_seconds = Some(*ttl),
        Ok(None) => notes.push("the latency record is an alias: its TTL is its target's, not known here".into()),
        Err(reason) => notes.push(reason.clone()),
    }
    if orchestration_seconds.is_none() {
        notes.push("no evacuation measured yet: the orchestration time is not counted (a lower bound)".into());
    }
    let known = match (terms.alarm_seconds, terms.health_check_seconds, terms.record_ttl_seconds) {
        (Some(a), Some(c), Some(t)) => Some((a + c + t) as f64 + orchestration_seconds.unwrap_or(0.0)),
        _ => None,
    };
    RtoBound {
        region: region.to_owned(),
        bound_seconds: known,
        lower_bound: orchestration_seconds.is_none(),
        objective_seconds,
        exceeds_objective: known.is_some_and(|b| b > objective_seconds as f64),
        terms,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alarm(name: &str, period: u64, periods: u64, check: Option<&str>) -> AlarmTiming {
        AlarmTiming {
            name: name.into(),
            region: "eu-west-1".into(),
            period_seconds: period,
            evaluation_periods: periods,
            health_check_id: check.map(str::to_owned),
        }
    }

    fn read(alarm: AlarmTiming, check_s: Option<u64>) -> DetectionRead {
        DetectionRead { alarm: Ok(alarm), health_check_seconds: Ok(check_s) }
    }

    #[test]
    fn the_bound_sums_alarm_health_check_ttl_and_orchestration() {
        let b = bound("us-east-1", &[read(alarm("a", 60, 3, Some("hc")), Some(30))], &Ok(Some(60)), Some(1.5), 300);
        assert_eq!(b.bound_seconds, Some(180.0 + 30.0 + 60.0 + 1.5));
        assert_eq!(
            b.terms,
            RtoTerms {
                alarm_seconds: Some(180),
                health_check_seconds: Some(30),
                record_ttl_seconds: Some(60),
                orchestration_seconds: Some(1.5)
            }
        );
        assert!(!b.exceeds_objective && !b.lower_bound);
        assert!(
            b.notes[0].contains("alarm a in eu-west-1 (60 s x 3 periods) on health check hc (30 s)"),
            "{:?}",
            b.notes
        );
    }

    #[test]
    fn table_of_bounds_against_the_objective() {
        // (alarm period, periods, health check s, ttl, orchestration, objective) -> (bound, exceeds, lower bound)
        let cases: &[(u64, u64, Option<u64>, u64, Option<f64>, u64, f64, bool, bool)] = &[
            (60, 1, Some(10), 60, Some(2.0), 300, 132.0, false, false),
            (60, 5, Some(90), 300, Some(2.0), 300, 692.0, true, false),
            (10, 1, None, 10, Some(0.5), 20, 20.5, true, false),
            (10, 1, None, 10, None, 20, 20.0, false, true),
            (60, 5, Some(30), 60, None, 300, 390.0, true, true),
        ];
        for &(period, periods, check, ttl, orchestration, objective, want, exceeds, lower) in cases {
            let b =
                bound("r", &[read(alarm("a", period, periods, None), check)], &Ok(Some(ttl)), orchestration, objective);
            assert_eq!(
                (b.bound_seconds, b.exceeds_objective, b.lower_bound),
                (Some(want), exceeds, lower),
                "{period}x{periods} +{check:?} +{ttl} +{orchestration:?} vs {objective}"
            );
        }
    }

    #[test]
    fn the_fastest_complete_detection_counts() {
        let slow = read(alarm("slow", 60, 5, Some("hc1")), Some(30));
        let fast = read(alarm("fast", 10, 3, Some("hc2")), Some(10));
        let b = bound("r", &[slow, fast.clone()], &Ok(Some(60)), Some(1.0), 300);
        assert_eq!((b.terms.alarm_seconds, b.terms.health_check_seconds), (Some(30), Some(10)));
        assert!(b.notes[0].contains("alarm fast"), "{:?}", b.notes);
        // An unreadable alarm next to a readable one: the readable one counts, nothing is unknown.
        let missing = DetectionRead { alarm: Err("DescribeAlarms: no alarm x".into()), health_check_seconds: Ok(None) };
        let b = bound("r", &[missing, fast], &Ok(Some(60)), Some(1.0), 300);
        assert_eq!(b.bound_seconds, Some(30.0 + 10.0 + 60.0 + 1.0));
    }

    #[test]
    fn an_unreadable_term_leaves_the_bound_unknown_and_says_why() {
        let b = bound(
            "r",
            &[DetectionRead {
                alarm: Err("alarm web-r-unhealthy not found in eu-west-1".into()),
                health_check_seconds: Ok(None),
            }],
            &Ok(Some(60)),
            Some(1.0),
            300,
        );
        assert_eq!(b.bound_seconds, None);
        assert!(!b.exceeds_objective, "an unknown bound is not flagged");
        assert!(b.unknown_reason().is_some_and(|r| r.contains("not found in eu-west-1")), "{b:?}");
        let hc = DetectionRead {
            alarm: Ok(alarm("a", 60, 1, Some("hc"))),
            health_check_seconds: Err("AccessDenied".into()),
        };
        let b = bound("r", &[hc], &Ok(Some(60)), Some(1.0), 300);
        assert!(b.bound_seconds.is_none() && b.notes.iter().any(|n| n == "alarm a: AccessDenied"), "{b:?}");
        let b = bound("r", &[read(alarm("a", 60, 1, None), None)], &Ok(None), Some(1.0), 300);
        assert!(b.bound_seconds.is_none() && b.notes.iter().any(|n| n.contains("alias")), "{b:?}");
        let b = bound("r", &[], &Ok(Some(60)), Some(1.0), 300);
        assert!(b.bound_seconds.is_none() && b.notes.iter().any(|n| n.contains("no alarm")), "{b:?}");
    }
}

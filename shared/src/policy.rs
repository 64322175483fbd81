//! Safety rules shared by failover and scaler, so both reach the same verdict on the same event.
//!
//! Pure: the rules are values and verdicts. How a rule becomes a DynamoDB condition on the fleet
//! record is the ledger's business ([`crate::ledger::Ledger::claim_region_status`]).

use crate::ledger::RegionStatus;
use crate::topology::Topology;
use serde::Serialize;
use std::collections::HashMap;

/// Why an evacuation is refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
pub enum Refusal {
    #[error(
        "evacuating {region} would leave {remaining} active Region(s), fewer than min_healthy_regions = {min}: refusing to black-hole traffic"
    )]
    TooFewHealthy { region: String, remaining: usize, min: usize },
    #[error("{region} changed status {elapsed_s} s ago, inside the {cooldown_s} s cool-down: refusing to flap")]
    CoolDown { region: String, elapsed_s: u64, cooldown_s: u64 },
}

/// Statuses of every cell: recorded ones, `Active` for the rest.
pub fn statuses_with_defaults(
    topology: &Topology,
    recorded: &HashMap<String, RegionStatus>,
) -> Vec<(String, RegionStatus)> {
    topology.regions().map(|r| (r.to_owned(), recorded.get(r).copied().unwrap_or(RegionStatus::Active))).collect()
}

/// Regions that stay active if `evacuating` leaves, in failover priority order.
pub fn survivors(topology: &Topology, recorded: &HashMap<String, RegionStatus>, evacuating: &str) -> Vec<String> {
    statuses_with_defaults(topology, recorded)
        .into_iter()
        .filter(|(r, s)| r != evacuating && *s == RegionStatus::Active)
        .map(|(r, _)| r)
        .collect()
}

/// The assertion rule: an evacuation must leave at least `min_healthy_regions` active Regions.
/// (A Region already evacuated passes: re-running an evacuation changes nothing.)
pub fn check_evacuation(
    topology: &Topology,
    recorded: &HashMap<String, RegionStatus>,
    region: &str,
) -> Result<(), Refusal> {
    if recorded.get(region) == Some(&RegionStatus::Evacuated) {
        return Ok(());
    }
    let remaining = survivors(topology, recorded, region).len();
    let min = topology.failover_policy.min_healthy_regions;
    if remaining < min {
        return Err(Refusal::TooFewHealthy { region: region.to_owned(), remaining, min });
    }
    Ok(())
}

/// The cool-down rule: a Region's status may change again only `cooldown_seconds` after its
/// last change.
pub fn check_cooldown(
    topology: &Topology,
    region: &str,
    last_change_ms: Option<u64>,
    now_ms: u64,
) -> Result<(), Refusal> {
    let cooldown_s = topology.failover_policy.cooldown_seconds;
    match last_change_ms {
        Some(last) if now_ms.saturating_sub(last) < cooldown_s * 1000 => Err(Refusal::CoolDown {
            region: region.to_owned(),
            elapsed_s: now_ms.saturating_sub(last) / 1000,
            cooldown_s,
        }),
        _ => Ok(()),
    }
}

/// Beyond this many ways of choosing the Regions that must stay active, the one-shot condition
/// is not built (its expression would grow past what is sensible to send): failover then reads
/// the fleet first and applies the rules above in code.
const MAX_SURVIVOR_COMBINATIONS: usize = 64;

/// The rules an evacuation must pass, as a value the ledger renders into a condition on the fleet
/// record, so that the claim is one conditional write with no read before it (docs/performance.md:
/// observe and act in two round trips). It holds only if all of these do:
/// - `region` is active (else the delivery is a duplicate, or a repeat);
/// - its last change is at or before `cooldown_cutoff_ms` ([`check_cooldown`]);
/// - at least `min_active` of `others` are active ([`check_evacuation`]; a Region without an
///   entry is active);
/// - with `alarm` = (name, change time): no newer change of that alarm was handled (ordering).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvacuationRule {
    /// The Region being evacuated.
    pub region: String,
    /// A recorded change of `region` at or before this time (epoch ms) is outside the cool-down.
    /// Negative when the clock is younger than one cool-down: then no recorded change passes.
    pub cooldown_cutoff_ms: i128,
    /// The other Regions of the topology, in failover priority order.
    pub others: Vec<String>,
    /// How many of `others` must be active.
    pub min_active: usize,
    /// The alarm whose change causes the evacuation, and that change's time (epoch ms).
    pub alarm: Option<(String, u64)>,
}

/// The rules an evacuation of `region` at `now_ms` must pass, as an [`EvacuationRule`] for the
/// one-shot claim.
///
/// It may be stricter than the rules, never looser: when it does not hold, failover reads the
/// record and decides in code. `None` when it would be too large to send.
pub fn evacuation_condition(
    topology: &Topology,
    region: &str,
    now_ms: u64,
    alarm: Option<(&str, u64)>,
) -> Option<EvacuationRule> {
    let others: Vec<String> = topology.regions().filter(|r| *r != region).map(str::to_owned).collect();
    let min = topology.failover_policy.min_healthy_regions;
    if min > others.len() || combinations(others.len(), min) > MAX_SURVIVOR_COMBINATIONS {
        // Too few Regions can never pass; too many ways to pass: decide in code.
        return None;
    }
    let cooldown_ms = i128::from(topology.failover_policy.cooldown_seconds) * 1000;
    // A change at or before the cutoff is outside the cool-down. Negative when the clock is
    // younger than one cool-down: then no recorded change passes, as in `check_cooldown`.
    let cooldown_cutoff_ms = i128::from(now_ms) - cooldown_ms;
    Some(EvacuationRule {
        region: region.to_owned(),
        cooldown_cutoff_ms,
        others,
        min_active: min,
        alarm: alarm.map(|(name, changed_at_ms)| (name.to_owned(), changed_at_ms)),
    })
}

/// How many ways there are of picking `k` of `n`.
pub(crate) fn combinations(n: usize, k: usize) -> usize {
    (0..k).fold(1usize, |acc, i| acc.saturating_mul(n - i) / (i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology(regions: &[&str], min_healthy: usize) -> Topology {
        let cells: Vec<_> = regions
            .iter()
            .map(|r| serde_json::json!({"region": r, "health_check_id": format!("hc-{r}"), "auto_scaling_group": format!("asg-{r}"), "alarms": [format!("alarm-{r}")]}))
            .collect();
        let json = serde_json::json!({
            "name": "t", "cells": cells, "routing": {"hosted_zone_id": "Z", "record_name": "app.example.com"},
            "global_table": "Data", "ledger_table": "Ledger", "rpo_budget_ms": 1000,
            "failover_policy": {"min_healthy_regions": min_healthy, "cooldown_seconds": 60}
        });
        Topology::from_json(&json.to_string()).expect("valid topology")
    }

    fn recorded(pairs: &[(&str, RegionStatus)]) -> HashMap<String, RegionStatus> {
        pairs.iter().map(|(r, s)| (r.to_string(), *s)).collect()
    }

    #[test]
    fn evacuation_table() {
        use RegionStatus::*;
        let two = topology(&["us-east-1", "eu-west-1"], 1);
        let three = topology(&["us-east-1", "eu-west-1", "ap-southeast-1"], 1);
        let three_min2 = topology(&["us-east-1", "eu-west-1", "ap-southeast-1"], 2);
        let cases: Vec<(&str, &Topology, HashMap<String, RegionStatus>, &str, bool)> = vec![
            ("2 regions, both active", &two, recorded(&[]), "us-east-1", true),
            (
                "2 regions, other evacuated: last healthy",
                &two,
                recorded(&[("eu-west-1", Evacuated)]),
                "us-east-1",
                false,
            ),
            (
                "2 regions, already evacuated: re-run passes",
                &two,
                recorded(&[("us-east-1", Evacuated)]),
                "us-east-1",
                true,
            ),
            ("3 regions, one evacuated", &three, recorded(&[("us-east-1", Evacuated)]), "eu-west-1", true),
            (
                "3 regions, two evacuated",
                &three,
                recorded(&[("us-east-1", Evacuated), ("eu-west-1", Evacuated)]),
                "ap-southeast-1",
                false,
            ),
            ("3 regions min 2, none evacuated", &three_min2, recorded(&[]), "eu-west-1", true),
            ("3 regions min 2, one evacuated", &three_min2, recorded(&[("us-east-1", Evacuated)]), "eu-west-1", false),
        ];
        for (what, topology, statuses, region, allowed) in cases {
            assert_eq!(check_evacuation(topology, &statuses, region).is_ok(), allowed, "{what}");
        }
    }

    #[test]
    fn the_one_shot_rule_carries_every_rule_or_is_not_built() {
        let three = topology(&["us-east-1", "eu-west-1", "ap-southeast-1"], 1);
        let rule = evacuation_condition(&three, "us-east-1", 1_000_000, Some(("alarm-us-east-1", 7))).expect("small");
        assert_eq!(
            rule,
            EvacuationRule {
                region: "us-east-1".into(),
                cooldown_cutoff_ms: 1_000_000 - 60_000,
                others: vec!["eu-west-1".into(), "ap-southeast-1".into()],
                min_active: 1,
                alarm: Some(("alarm-us-east-1".into(), 7)),
            }
        );
        // A clock younger than one cool-down: a negative cutoff, no recorded change passes.
        assert_eq!(evacuation_condition(&three, "us-east-1", 1_000, None).expect("small").cooldown_cutoff_ms, -59_000);

        // 10 Regions, 4 must stay: C(9,4) = 126 ways is too large to send; the rules decide in code.
        let ten = [
            "us-east-1",
            "us-east-2",
            "us-west-1",
            "us-west-2",
            "eu-west-1",
            "eu-west-2",
            "eu-west-3",
            "eu-central-1",
            "ap-south-1",
            "ap-northeast-1",
        ];
        assert!(evacuation_condition(&topology(&ten, 4), "us-east-1", 1_000_000, None).is_none());
        assert!(
            evacuation_condition(&topology(&ten[..4], 2), "us-east-1", 0, Some(("a", 1))).is_some(),
            "C(3,2) = 3 ways"
        );
    }

    #[test]
    fn combinations_count_the_ways() {
        let cases = [(3, 2, 3), (2, 1, 2), (4, 0, 1), (5, 2, 10), (6, 3, 20), (8, 4, 70), (4, 4, 1), (9, 4, 126)];
        for (n, k, ways) in cases {
            assert_eq!(combinations(n, k), ways, "C({n},{k})");
        }
    }

    #[test]
    fn survivors_keep_priority_order() {
        let three = topology(&["us-east-1", "eu-west-1", "ap-southeast-1"], 1);
        assert_eq!(survivors(&three, &recorded(&[]), "us-east-1"), ["eu-west-1", "ap-southeast-1"]);
        assert_eq!(
            survivors(&three, &recorded(&[("eu-west-1", RegionStatus::Evacuated)]), "us-east-1"),
            ["ap-southeast-1"]
        );
    }

    #[test]
    fn cooldown_table() {
        let t = topology(&["us-east-1", "eu-west-1"], 1);
        assert!(check_cooldown(&t, "us-east-1", None, 1_000_000).is_ok());
        assert!(check_cooldown(&t, "us-east-1", Some(1_000_000), 1_059_999).is_err());
        assert!(check_cooldown(&t, "us-east-1", Some(1_000_000), 1_060_000).is_ok());
        let refusal = check_cooldown(&t, "us-east-1", Some(1_000_000), 1_030_000).expect_err("inside");
        assert!(refusal.to_string().contains("30 s ago, inside the 60 s cool-down"), "{refusal}");
    }
}

//! Safety rules shared by failover and scaler, so both reach the same verdict on the same event.

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

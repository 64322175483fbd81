//! The fleet record's one-shot evacuation claim against the emulator's own condition evaluator:
//! the write passes exactly when the safety rules in code (`shared::policy`) allow the
//! evacuation, and is never looser.

use RegionStatus::{Active, Evacuated};
use multisite_tests::Emulator;
use multisite_tests::fixtures::unique_name;
use serde_json::json;
use shared::Ledger;
use shared::Topology;
use shared::ledger::{FleetStatus, RegionStatus, RegionStatusEntry, WriteOutcome};
use shared::policy;

const REGIONS: [&str; 4] = ["us-east-1", "eu-west-1", "ap-southeast-1", "us-west-2"];
const NOW: u64 = 1_800_000_000_000;
const COOLDOWN_S: u64 = 300;

fn topology(regions: &[&str], min_healthy: usize) -> Topology {
    let cells: Vec<_> = regions
        .iter()
        .map(|r| json!({"region": r, "health_check_id": format!("hc-{r}"), "auto_scaling_group": format!("asg-{r}"), "alarms": [format!("alarm-{r}")]}))
        .collect();
    let json = json!({
        "name": "t", "cells": cells, "routing": {"hosted_zone_id": "Z", "record_name": "app.example.com"},
        "global_table": "Data", "ledger_table": "Ledger", "rpo_budget_ms": 1000,
        "failover_policy": {"min_healthy_regions": min_healthy, "cooldown_seconds": COOLDOWN_S}
    });
    Topology::from_json(&json.to_string()).expect("valid topology")
}

async fn fresh_ledger(emulator: &Emulator) -> Ledger {
    let clients = emulator.clients(&["eu-west-1"]).await;
    let dynamodb = clients.region("eu-west-1").expect("region").dynamodb.clone();
    let table = unique_name("fleet");
    Ledger::create_table(&dynamodb, &table, "eu-west-1").await.expect("ledger table");
    Ledger::new(dynamodb, table, "eu-west-1")
}

fn entry(status: RegionStatus, changed_at_ms: u64) -> RegionStatusEntry {
    RegionStatusEntry { status, changed_at_ms, cause: "test".into() }
}

/// The rules in code, as failover applies them after a read.
fn rules_allow(topology: &Topology, fleet: &FleetStatus, region: &str) -> bool {
    fleet.status_of(region) == Active
        && policy::check_evacuation(topology, &fleet.statuses(), region).is_ok()
        && policy::check_cooldown(topology, region, fleet.last_change_ms(region), NOW).is_ok()
}

#[tokio::test]
async fn the_one_shot_claim_passes_exactly_when_the_rules_allow() {
    let lease = Emulator::lease();
    let emulator = &*lease;
    let old = NOW - COOLDOWN_S * 1000; // exactly one cool-down ago: outside it
    let recent = NOW - COOLDOWN_S * 1000 + 1; // inside it
    // (regions, min healthy, recorded entries) for an evacuation of us-east-1.
    let cases: Vec<(&str, usize, usize, Vec<(&str, RegionStatusEntry)>)> = vec![
        ("never written", 2, 1, vec![]),
        ("2 Regions, the other evacuated: the last healthy", 2, 1, vec![("eu-west-1", entry(Evacuated, old))]),
        ("2 Regions, the other failed back", 2, 1, vec![("eu-west-1", entry(Active, recent))]),
        ("already evacuated: a duplicate", 2, 1, vec![("us-east-1", entry(Evacuated, old))]),
        ("failed back outside the cool-down", 3, 1, vec![("us-east-1", entry(Active, old))]),
        ("failed back inside the cool-down", 3, 1, vec![("us-east-1", entry(Active, recent))]),
        ("changed in the future (clock skew)", 3, 1, vec![("us-east-1", entry(Active, NOW + 5))]),
        ("3 Regions, one other out", 3, 1, vec![("eu-west-1", entry(Evacuated, old))]),
        (
            "3 Regions, both others out",
            3,
            1,
            vec![("eu-west-1", entry(Evacuated, old)), ("ap-southeast-1", entry(Evacuated, old))],
        ),
        ("3 Regions min 2, none out", 3, 2, vec![]),
        ("3 Regions min 2, one other out", 3, 2, vec![("ap-southeast-1", entry(Evacuated, old))]),
        ("4 Regions min 2, one other out", 4, 2, vec![("ap-southeast-1", entry(Evacuated, old))]),
        (
            "4 Regions min 2, two others out",
            4,
            2,
            vec![("ap-southeast-1", entry(Evacuated, old)), ("us-west-2", entry(Evacuated, old))],
        ),
        (
            "4 Regions min 2, one other out and one back",
            4,
            2,
            vec![("ap-southeast-1", entry(Evacuated, old)), ("us-west-2", entry(Active, recent))],
        ),
    ];
    let mut allowed_seen = (0, 0);
    for (what, n, min, recorded) in cases {
        let topology = topology(&REGIONS[..n], min);
        let ledger = fresh_ledger(emulator).await;
        let seeded = FleetStatus {
            regions: recorded.into_iter().map(|(r, e)| (r.to_owned(), e)).collect(),
            ..Default::default()
        };
        if !seeded.regions.is_empty() {
            let written = ledger.put_fleet_if_version(&seeded, 0, 1).await.expect("seed");
            assert_eq!(written, WriteOutcome::Written, "{what}: seeding");
        }
        let (before, before_version) = ledger.fleet_status().await.expect("read");
        assert_eq!(before.statuses(), seeded.statuses(), "{what}: the record reads back as written");

        let expected = rules_allow(&topology, &before, "us-east-1");
        let condition = policy::evacuation_condition(&topology, "us-east-1", NOW, None).expect("small topology");
        let (outcome, after) = ledger
            .claim_region_status("us-east-1", &entry(Evacuated, NOW), None, &condition, NOW)
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(outcome == WriteOutcome::Written, expected, "{what}: claim {outcome:?}, rules allow: {expected}");
        let (now_fleet, now_version) = ledger.fleet_status().await.expect("read");
        if expected {
            allowed_seen.0 += 1;
            let claimed = after.expect("the new record comes back");
            let (returned, returned_version) = (claimed.fleet, claimed.version);
            assert_eq!(returned, now_fleet, "{what}: the returned record is the stored one");
            assert_eq!(returned_version, before_version + 1, "{what}");
            assert_eq!(now_fleet.status_of("us-east-1"), Evacuated);
            assert_eq!(now_fleet.last_change_ms("us-east-1"), Some(NOW));
        } else {
            allowed_seen.1 += 1;
            assert!(after.is_none());
            assert_eq!((now_fleet, now_version), (before, before_version), "{what}: a refused claim changes nothing");
        }
    }
    assert!(allowed_seen.0 >= 5 && allowed_seen.1 >= 5, "both verdicts are exercised: {allowed_seen:?}");
}

#[tokio::test]
async fn two_concurrent_claims_in_a_two_region_fleet_evacuate_exactly_one() {
    let lease = Emulator::lease();
    let emulator = &*lease;
    let ledger = fresh_ledger(emulator).await;
    let topology = topology(&REGIONS[..2], 1);
    let claim = |region: &'static str| {
        let (ledger, topology) = (ledger.clone(), topology.clone());
        async move {
            let condition = policy::evacuation_condition(&topology, region, NOW, None).expect("small topology");
            ledger.claim_region_status(region, &entry(Evacuated, NOW), None, &condition, NOW).await.expect("claim").0
        }
    };
    let (a, b) = tokio::join!(claim("us-east-1"), claim("eu-west-1"));
    let written = [a, b].iter().filter(|o| **o == WriteOutcome::Written).count();
    assert_eq!(written, 1, "exactly one Region is evacuated: {a:?} {b:?}");
    let (fleet, version) = ledger.fleet_status().await.expect("read");
    let out: Vec<_> = fleet.statuses().into_iter().filter(|(_, s)| *s == Evacuated).collect();
    assert_eq!((out.len(), version), (1, 1), "{fleet:?}");
}

#[tokio::test]
async fn a_claim_carrying_an_older_change_than_the_alarm_s_mark_fails_and_a_withdrawn_claim_restores_the_entry() {
    let lease = Emulator::lease();
    let emulator = &*lease;
    let ledger = fresh_ledger(emulator).await;
    let topology = topology(&REGIONS[..3], 1);
    let alarm = "alarm-us-east-1";
    let claim = |region: &'static str, change_ms: u64| {
        let (ledger, topology) = (ledger.clone(), topology.clone());
        async move {
            let condition =
                policy::evacuation_condition(&topology, region, NOW, Some((alarm, change_ms))).expect("small topology");
            ledger.claim_region_status(region, &entry(Evacuated, NOW), Some((alarm, change_ms)), &condition, NOW).await
        }
    };
    let (outcome, claimed) = claim("us-east-1", 500).await.expect("claim");
    assert_eq!(outcome, WriteOutcome::Written);
    let claimed = claimed.expect("claimed");
    assert_eq!((claimed.previous.clone(), claimed.fleet.alarm_mark(alarm)), (None, Some(500)));
    assert_eq!(ledger.fleet_status().await.expect("read"), (claimed.fleet.clone(), claimed.version));

    // Withdrawn by the cause that wrote it: the Region is as before (no entry: Active).
    let cause = entry(Evacuated, NOW).cause;
    assert_eq!(
        ledger.withdraw_region_status("us-east-1", None, "someone-else", NOW).await.expect("w"),
        WriteOutcome::AlreadyPresent
    );
    assert_eq!(ledger.withdraw_region_status("us-east-1", None, &cause, NOW).await.expect("w"), WriteOutcome::Written);
    let (fleet, _) = ledger.fleet_status().await.expect("read");
    assert_eq!((fleet.regions.get("us-east-1"), fleet.alarm_mark(alarm)), (None, Some(500)), "the mark stays");

    // An older change of the same alarm no longer passes; a newer one does.
    assert_eq!(claim("us-east-1", 499).await.expect("claim").0, WriteOutcome::AlreadyPresent);
    assert_eq!(claim("us-east-1", 500).await.expect("claim").0, WriteOutcome::AlreadyPresent, "the same change again");
    assert_eq!(claim("us-east-1", 501).await.expect("claim").0, WriteOutcome::Written);
}

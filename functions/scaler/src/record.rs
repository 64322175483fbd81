//! The scaler's ledger record, one per Auto Scaling group, and the pure planning of one step on
//! it. No I/O; table-tested.
//!
//! The record holds the group's pre-evacuation baseline and the set of evacuations its capacity
//! covers. Every target is recomputed from that baseline and the number of Regions still covered
//! (`baseline x n_active / (n_active - covered)`), so overlapping evacuations that end in any
//! order give every group the right size, and duplicates never compound. Steps change the set by
//! one delta (cover X, release the Regions whose failback is recorded), written with a version
//! check: concurrent deliveries serialise on the record instead of trusting a fleet snapshot.

use crate::GroupAction;
use crate::capacity::{self, Limits, Target};
use serde::{Deserialize, Serialize};
use shared::capacity::GroupSizes;
use shared::ledger::{FleetStatus, RegionStatus};
use std::collections::BTreeMap;

/// The body of the `scaling` / `<group's Region>` ledger record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupScaling {
    pub region: String,
    pub asg: String,
    /// The group's sizes before the first evacuation it covers: what the final restore puts back.
    pub baseline: GroupSizes,
    /// Regions active when the baseline was recorded (the one being evacuated included).
    pub n_active_at_baseline: usize,
    /// The evacuations this group's capacity covers, by evacuated Region.
    pub covering: BTreeMap<String, Covering>,
    /// The sizes the scaler last decided on.
    pub applied: GroupSizes,
    /// The sizes decided before those: a group still at them is ours to converge (a resize that
    /// failed after the record was written), not a change by hand.
    pub prior_applied: Option<GroupSizes>,
    /// `applied` is known to be on the group (false between the record write and the resize).
    pub settled: bool,
    /// Why the last change was made, for operators reading the ledger.
    pub reason: String,
    /// Set once no evacuation is covered any more: restored, or left because changed by hand.
    pub closed: Option<Closed>,
}

impl GroupScaling {
    /// A closed and settled record is history: the next evacuation records a fresh baseline.
    pub fn is_open(&self) -> bool {
        self.closed.is_none() || !self.settled
    }

    fn survivors(&self, covered: usize) -> usize {
        self.n_active_at_baseline.saturating_sub(covered).max(1)
    }

    /// The target for `covered` Regions evacuated.
    fn target(&self, covered: usize, limits: Limits) -> Target {
        capacity::evacuation_target(self.baseline, self.n_active_at_baseline, self.survivors(covered), limits)
    }
}

/// One evacuation a group's capacity covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Covering {
    /// When the evacuation started (the alarm's change time, epoch ms): only a failback recorded
    /// after it releases the coverage.
    pub since_ms: u64,
    pub change_id: String,
    /// When the scaler recorded it (its own clock; 0 in records of earlier builds): an
    /// evacuation failover never recorded is released a cool-down after this.
    #[serde(default)]
    pub recorded_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    pub at_ms: u64,
    pub action: GroupAction,
}

/// What one step wants to do to one group.
#[derive(Debug, Clone, PartialEq)]
pub enum Step<'a> {
    /// `evacuated` is being evacuated: cover it.
    Cover { evacuated: &'a str, covering: Covering, n_active_before: usize },
    /// Release every covered Region whose failback is recorded and past the cool-down.
    Release { fleet: &'a FleetStatus, cooldown_ms: u64 },
}

/// The outcome of planning a step.
#[derive(Debug, Clone, PartialEq)]
pub enum GroupPlan {
    /// Nothing to write or resize.
    Nothing { action: GroupAction, note: Option<String> },
    /// Write `record` (version-checked), then resize the group to `resize` when set.
    Change { record: GroupScaling, resize: Option<GroupSizes>, action: GroupAction, note: Option<String> },
}

/// Details for the report, whatever the plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Planned {
    pub baseline: Option<GroupSizes>,
    pub baseline_reused: bool,
    pub target: Option<Target>,
    /// Covered Regions after the step.
    pub covering: Vec<String>,
}

/// Why a covered Region is not released yet (`None`: it can be).
pub fn release_blocker(
    fleet: &FleetStatus,
    region: &str,
    covering: &Covering,
    cooldown_ms: u64,
    now_ms: u64,
) -> Option<String> {
    // An evacuation failover never recorded (it refused it: the scaler's verdict is made at the
    // same time as failover's, from what the fleet record said then, e.g. two Regions alarming
    // at once) is released once failover has had a cool-down's time to record it.
    let never_evacuated = match fleet.regions.get(region) {
        None => true,
        Some(entry) => entry.status == RegionStatus::Active && entry.changed_at_ms < covering.since_ms,
    };
    if never_evacuated {
        if now_ms >= covering.since_ms.max(covering.recorded_at_ms).saturating_add(cooldown_ms) {
            return None;
        }
        return Some(format!(
            "failback of {region} is not recorded in the fleet status (nor its evacuation, yet): the capacity stays"
        ));
    }
    let Some(entry) = fleet.regions.get(region) else { return None };
    if entry.status != RegionStatus::Active || entry.changed_at_ms < covering.since_ms {
        return Some(format!(
            "{region} is still Evacuated in the fleet status: the capacity stays until failback is recorded"
        ));
    }
    let ready_at = entry.changed_at_ms.saturating_add(cooldown_ms);
    if now_ms < ready_at {
        return Some(format!(
            "{region} failed back {} s ago; restore waits for the cool-down of {} s",
            now_ms.saturating_sub(entry.changed_at_ms) / 1000,
            cooldown_ms / 1000
        ));
    }
    None
}

/// Plans one step for one group from its open record (if any) and its current sizes.
pub fn plan(
    region: &str,
    asg: &str,
    open: Option<&GroupScaling>,
    current: GroupSizes,
    step: &Step<'_>,
    limits: Limits,
    now_ms: u64,
) -> (GroupPlan, Planned) {
    match step {
        Step::Cover { evacuated, covering, n_active_before } => {
            plan_cover(region, asg, open, current, evacuated, covering, *n_active_before, limits)
        }
        Step::Release { fleet, cooldown_ms } => plan_release(open, current, fleet, *cooldown_ms, limits, now_ms),
    }
}

#[allow(clippy::too_many_arguments)]
fn plan_cover(
    region: &str,
    asg: &str,
    open: Option<&GroupScaling>,
    current: GroupSizes,
    evacuated: &str,
    covering: &Covering,
    n_active_before: usize,
    limits: Limits,
) -> (GroupPlan, Planned) {
    let mut record = match open {
        Some(record) => record.clone(),
        None => GroupScaling {
            region: region.to_owned(),
            asg: asg.to_owned(),
            baseline: current,
            n_active_at_baseline: n_active_before,
            covering: BTreeMap::new(),
            applied: current,
            prior_applied: None,
            settled: true,
            reason: String::new(),
            closed: None,
        },
    };
    let duplicate = record.covering.contains_key(evacuated);
    if !duplicate {
        record.covering.insert(evacuated.to_owned(), covering.clone());
    }
    let target = record.target(record.covering.len(), limits);
    let planned = Planned {
        baseline: Some(record.baseline),
        baseline_reused: open.is_some(),
        target: Some(target),
        covering: record.covering.keys().cloned().collect(),
    };
    // Scaling up never takes capacity away: a group above the target (by hand, or by an earlier
    // step) keeps its sizes.
    let resize = capacity::converge(current, target.capacity);
    if duplicate && resize.is_none() && record.settled {
        return (
            GroupPlan::Nothing { action: GroupAction::Unchanged, note: Some("already at or above the target".into()) },
            planned,
        );
    }
    if !duplicate || record.applied != target.capacity {
        record.prior_applied = Some(record.applied);
        record.applied = target.capacity;
    }
    record.closed = None;
    record.settled = resize.is_none();
    let survivors = record.survivors(record.covering.len());
    record.reason = format!(
        "covering the evacuation of {}: {} Region(s) active at the baseline, {survivors} carry the load; desired {} x {} / {survivors} = {} wanted, {} applied",
        planned.covering.join(", "),
        record.n_active_at_baseline,
        record.baseline.desired,
        record.n_active_at_baseline,
        target.wanted_desired,
        target.capacity.desired
    );
    let action = if resize.is_some() { GroupAction::Scaled } else { GroupAction::Unchanged };
    (GroupPlan::Change { record, resize, action, note: None }, planned)
}

fn plan_release(
    open: Option<&GroupScaling>,
    current: GroupSizes,
    fleet: &FleetStatus,
    cooldown_ms: u64,
    limits: Limits,
    now_ms: u64,
) -> (GroupPlan, Planned) {
    let Some(record) = open else {
        return (GroupPlan::Nothing { action: GroupAction::AlreadyRestored, note: None }, Planned::default());
    };
    let mut blockers = Vec::new();
    let mut released = Vec::new();
    for (region, covering) in &record.covering {
        match release_blocker(fleet, region, covering, cooldown_ms, now_ms) {
            Some(why) => blockers.push(why),
            None => released.push(region.clone()),
        }
    }
    let mut next = record.clone();
    for region in &released {
        next.covering.remove(region);
    }
    let remaining: Vec<String> = next.covering.keys().cloned().collect();
    let target = if remaining.is_empty() { None } else { Some(next.target(remaining.len(), limits)) };
    let new_applied = target.map_or(record.baseline, |t| t.capacity);
    let planned =
        Planned { baseline: Some(record.baseline), baseline_reused: true, target, covering: remaining.clone() };
    let note = (!blockers.is_empty()).then(|| blockers.join("; "));

    if released.is_empty() {
        // Nothing new to release; finish a resize an earlier step recorded but could not apply.
        if !record.settled && current != record.applied && Some(current) == record.prior_applied {
            let mut retry = record.clone();
            retry.settled = false;
            return (
                GroupPlan::Change { record: retry, resize: Some(record.applied), action: GroupAction::Restored, note },
                planned,
            );
        }
        if !record.settled && current == record.applied {
            let mut settled = record.clone();
            settled.settled = true;
            let action =
                if record.closed.is_some() { GroupAction::AlreadyRestored } else { GroupAction::RestorePending };
            return (GroupPlan::Change { record: settled, resize: None, action, note }, planned);
        }
        let action = if remaining.is_empty() { GroupAction::AlreadyRestored } else { GroupAction::RestorePending };
        return (GroupPlan::Nothing { action, note }, planned);
    }

    next.reason = if remaining.is_empty() {
        format!("failback of {} recorded: previous sizes put back", released.join(", "))
    } else {
        format!(
            "failback of {} recorded; still covering {}: desired {} wanted",
            released.join(", "),
            remaining.join(", "),
            new_applied.desired
        )
    };
    let ours = current == record.applied || Some(current) == record.prior_applied || current == new_applied;
    if !ours {
        // Somebody resized the group since the scaler did: the operator owns it now.
        next.closed = Some(Closed { at_ms: now_ms, action: GroupAction::LeftChangedByHand });
        next.settled = true;
        let note = format!(
            "changed since the scaler applied {:?} (now {:?}): left as it is, restore it by hand if needed",
            record.applied, current
        );
        return (
            GroupPlan::Change { record: next, resize: None, action: GroupAction::LeftChangedByHand, note: Some(note) },
            planned,
        );
    }
    next.prior_applied = Some(record.applied);
    next.applied = new_applied;
    let resize = (current != new_applied).then_some(new_applied);
    next.settled = resize.is_none();
    let action = if remaining.is_empty() {
        next.closed = Some(Closed {
            at_ms: now_ms,
            action: if resize.is_some() { GroupAction::Restored } else { GroupAction::AlreadyRestored },
        });
        if resize.is_some() { GroupAction::Restored } else { GroupAction::AlreadyRestored }
    } else {
        GroupAction::Restored
    };
    (GroupPlan::Change { record: next, resize, action, note }, planned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ledger::RegionStatusEntry;

    const NO_RAISE: Limits = Limits { raise_max: false, max_ceiling: None };
    const BASE: GroupSizes = GroupSizes::new(1, 10, 40);

    fn cover<'a>(evacuated: &'a str, since_ms: u64, n: usize) -> Step<'a> {
        Step::Cover {
            evacuated,
            covering: Covering { since_ms, change_id: format!("{evacuated}#{since_ms}"), recorded_at_ms: since_ms },
            n_active_before: n,
        }
    }

    fn fleet(entries: &[(&str, RegionStatus, u64)]) -> FleetStatus {
        let mut fleet = FleetStatus::default();
        for (region, status, at) in entries {
            fleet.regions.insert(
                (*region).to_owned(),
                RegionStatusEntry { status: *status, changed_at_ms: *at, cause: "test".into() },
            );
        }
        fleet
    }

    fn change(plan: GroupPlan) -> (GroupScaling, Option<GroupSizes>, GroupAction) {
        match plan {
            GroupPlan::Change { record, resize, action, .. } => (record, resize, action),
            other => panic!("expected a change, got {other:?}"),
        }
    }

    /// Applies a planned change as the handler would (record written, resize done).
    fn settle(mut record: GroupScaling) -> GroupScaling {
        record.settled = true;
        record
    }

    #[test]
    fn first_evacuation_records_the_baseline_and_scales_to_carry_the_share() {
        let (plan, planned) = plan("eu-west-1", "web", None, BASE, &cover("us-east-1", 5, 3), NO_RAISE, 10);
        let (record, resize, action) = change(plan);
        assert_eq!((resize, action), (Some(GroupSizes::new(15, 15, 40)), GroupAction::Scaled));
        assert_eq!((record.baseline, record.n_active_at_baseline), (BASE, 3));
        assert_eq!(record.applied, GroupSizes::new(15, 15, 40));
        assert!(!record.settled && record.closed.is_none());
        assert!(!planned.baseline_reused);
        assert!(record.reason.contains("3 Region(s) active at the baseline, 2 carry the load"), "{}", record.reason);
    }

    #[test]
    fn a_duplicate_reuses_the_baseline_and_changes_nothing() {
        let (plan1, _) = plan("eu-west-1", "web", None, BASE, &cover("us-east-1", 5, 3), NO_RAISE, 10);
        let record = settle(change(plan1).0);
        let scaled = record.applied;
        let (plan2, planned) = plan("eu-west-1", "web", Some(&record), scaled, &cover("us-east-1", 5, 3), NO_RAISE, 20);
        assert_eq!(
            plan2,
            GroupPlan::Nothing { action: GroupAction::Unchanged, note: Some("already at or above the target".into()) }
        );
        assert!(planned.baseline_reused);
        assert_eq!(
            planned.target.map(|t| t.capacity),
            Some(scaled),
            "the target comes from the baseline, not the scaled value"
        );
    }

    #[test]
    fn a_retry_after_a_failed_resize_converges() {
        let (plan1, _) = plan("eu-west-1", "web", None, BASE, &cover("us-east-1", 5, 3), NO_RAISE, 10);
        let record = change(plan1).0; // written, resize failed: not settled, group still at BASE
        let (record2, resize, action) =
            change(plan("eu-west-1", "web", Some(&record), BASE, &cover("us-east-1", 5, 3), NO_RAISE, 20).0);
        assert_eq!((resize, action), (Some(GroupSizes::new(15, 15, 40)), GroupAction::Scaled));
        assert_eq!(record2.baseline, BASE);
    }

    #[test]
    fn overlapping_evacuations_restore_in_any_order() {
        // Three Regions of 10; us-east-1 then eu-west-1 evacuated: ap-southeast-1 carries 30.
        let r1 = settle(change(plan("ap", "web", None, BASE, &cover("us-east-1", 5, 3), NO_RAISE, 10).0).0);
        assert_eq!(r1.applied.desired, 15);
        let r2 = settle(change(plan("ap", "web", Some(&r1), r1.applied, &cover("eu-west-1", 50, 3), NO_RAISE, 60).0).0);
        assert_eq!(r2.applied, GroupSizes::new(30, 30, 40));
        assert_eq!(r2.covering.len(), 2);

        for (first, second) in [("us-east-1", "eu-west-1"), ("eu-west-1", "us-east-1")] {
            let cooldown = 100;
            let f1 = fleet(&[(first, RegionStatus::Active, 1_000), (second, RegionStatus::Evacuated, 50)]);
            let release = Step::Release { fleet: &f1, cooldown_ms: cooldown };
            let (mid, resize, action) = change(plan("ap", "web", Some(&r2), r2.applied, &release, NO_RAISE, 1_200).0);
            assert_eq!((resize, action), (Some(GroupSizes::new(15, 15, 40)), GroupAction::Restored), "{first} first");
            assert!(mid.closed.is_none());
            let mid = settle(mid);
            let f2 = fleet(&[(first, RegionStatus::Active, 1_000), (second, RegionStatus::Active, 2_000)]);
            let release = Step::Release { fleet: &f2, cooldown_ms: cooldown };
            let (done, resize, action) =
                change(plan("ap", "web", Some(&mid), mid.applied, &release, NO_RAISE, 2_200).0);
            assert_eq!((resize, action), (Some(BASE), GroupAction::Restored), "{first} first");
            assert_eq!(done.closed.map(|c| c.action), Some(GroupAction::Restored));
        }
    }

    #[test]
    fn release_waits_for_a_failback_recorded_after_the_evacuation_and_the_cooldown() {
        let r = settle(change(plan("eu", "web", None, BASE, &cover("us-east-1", 500, 2), NO_RAISE, 600).0).0);
        let cases: [(&str, FleetStatus, u64, &str); 4] = [
            ("no status yet", fleet(&[]), 2_000, "nor its evacuation, yet"),
            ("evacuated", fleet(&[("us-east-1", RegionStatus::Evacuated, 550)]), 10_000, "still Evacuated"),
            (
                "active before the evacuation, failover not recorded it yet",
                fleet(&[("us-east-1", RegionStatus::Active, 100)]),
                2_000,
                "nor its evacuation, yet",
            ),
            ("inside the cool-down", fleet(&[("us-east-1", RegionStatus::Active, 5_000)]), 6_000, "cool-down"),
        ];
        for (what, fleet, now, words) in cases {
            let release = Step::Release { fleet: &fleet, cooldown_ms: 3_000 };
            match plan("eu", "web", Some(&r), r.applied, &release, NO_RAISE, now).0 {
                GroupPlan::Nothing { action: GroupAction::RestorePending, note: Some(note) } => {
                    assert!(note.contains(words), "{what}: {note}")
                }
                other => panic!("{what}: {other:?}"),
            }
        }
        let f = fleet(&[("us-east-1", RegionStatus::Active, 5_000)]);
        let (_, resize, _) = change(
            plan("eu", "web", Some(&r), r.applied, &Step::Release { fleet: &f, cooldown_ms: 3_000 }, NO_RAISE, 8_000).0,
        );
        assert_eq!(resize, Some(BASE));
        // An evacuation failover never recorded (it refused it) is released a cool-down after it
        // began: the capacity was never needed.
        for never in [fleet(&[]), fleet(&[("us-east-1", RegionStatus::Active, 100)])] {
            let release = Step::Release { fleet: &never, cooldown_ms: 3_000 };
            let (_, resize, _) = change(plan("eu", "web", Some(&r), r.applied, &release, NO_RAISE, 3_500).0);
            assert_eq!(resize, Some(BASE), "{never:?}");
        }
    }

    #[test]
    fn a_group_changed_by_hand_is_left_and_the_record_closed() {
        let r = settle(change(plan("eu", "web", None, BASE, &cover("us-east-1", 5, 2), NO_RAISE, 10).0).0);
        let f = fleet(&[("us-east-1", RegionStatus::Active, 100)]);
        let by_hand = GroupSizes::new(3, 7, 40);
        let (record, resize, action) =
            change(plan("eu", "web", Some(&r), by_hand, &Step::Release { fleet: &f, cooldown_ms: 0 }, NO_RAISE, 200).0);
        assert_eq!((resize, action), (None, GroupAction::LeftChangedByHand));
        assert!(!record.is_open());
    }

    #[test]
    fn an_interrupted_restore_is_finished_by_the_next_sweep() {
        let r = settle(change(plan("eu", "web", None, BASE, &cover("us-east-1", 5, 2), NO_RAISE, 10).0).0);
        let f = fleet(&[("us-east-1", RegionStatus::Active, 100)]);
        let release = Step::Release { fleet: &f, cooldown_ms: 0 };
        let (written, resize, _) = change(plan("eu", "web", Some(&r), r.applied, &release, NO_RAISE, 200).0);
        assert_eq!(resize, Some(BASE));
        assert!(written.is_open(), "closed but not settled: still open");
        // The resize failed: the group still has the scaled sizes.
        let (_, resize, action) = change(plan("eu", "web", Some(&written), r.applied, &release, NO_RAISE, 300).0);
        assert_eq!((resize, action), (Some(BASE), GroupAction::Restored));
        // It succeeded but the settle write was lost: settle without a resize.
        let (settled, resize, action) = change(plan("eu", "web", Some(&written), BASE, &release, NO_RAISE, 300).0);
        assert_eq!((resize, action), (None, GroupAction::AlreadyRestored));
        assert!(!settled.is_open());
    }

    #[test]
    fn a_new_evacuation_after_an_interrupted_restore_keeps_the_real_baseline() {
        let r = settle(change(plan("eu", "web", None, BASE, &cover("us-east-1", 5, 2), NO_RAISE, 10).0).0);
        let f = fleet(&[("us-east-1", RegionStatus::Active, 100)]);
        let (written, _, _) = change(
            plan("eu", "web", Some(&r), r.applied, &Step::Release { fleet: &f, cooldown_ms: 0 }, NO_RAISE, 200).0,
        );
        let (again, _, _) =
            change(plan("eu", "web", Some(&written), r.applied, &cover("us-east-1", 900, 2), NO_RAISE, 1_000).0);
        assert_eq!(again.baseline, BASE);
        assert!(again.closed.is_none());
    }
}

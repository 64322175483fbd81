//! Pure capacity math: what the survivors' Auto Scaling groups must become so that they carry the
//! whole load, and how a retry converges on it (what a restore puts back is planned in `record.rs`).
//! No I/O; table-tested.

use serde::Serialize;
use shared::capacity::GroupSizes;

/// How far MaxSize may move (scaler settings; see `config.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Raise MaxSize when the target does not fit under it...
    pub raise_max: bool,
    /// ...up to this ceiling (never lowering a MaxSize already above it).
    pub max_ceiling: Option<i32>,
}

/// A survivor's computed target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Target {
    /// The sizes to apply.
    pub capacity: GroupSizes,
    /// The desired capacity that would carry the survivor's full share.
    pub wanted_desired: i32,
    /// `wanted_desired - capacity.desired`: instances the bounds did not allow (0 when reached).
    pub shortfall: i32,
    /// MaxSize was raised (towards the ceiling).
    pub max_raised: bool,
}

/// The target of one survivor when `n_active_before` Regions carried the load and
/// `n_survivors` carry it from now on: desired = ceil(baseline.desired x n_active_before /
/// n_survivors), never below the baseline; MinSize raised to match so a scale-in policy cannot
/// undo it; bounded by MaxSize, or by MaxSize raised up to the ceiling when `limits` allow.
pub fn evacuation_target(baseline: GroupSizes, n_active_before: usize, n_survivors: usize, limits: Limits) -> Target {
    if n_survivors == 0 || n_active_before <= n_survivors {
        // Nothing to take over (or nobody to take it): keep the group as it is.
        return Target { capacity: baseline, wanted_desired: baseline.desired, shortfall: 0, max_raised: false };
    }
    let desired = baseline.desired.max(0) as u64;
    let scaled = (desired * n_active_before as u64).div_ceil(n_survivors as u64);
    let wanted = scaled.max(desired).min(i32::MAX as u64) as i32;
    let allowed_max = match (limits.raise_max, limits.max_ceiling) {
        (true, Some(ceiling)) => baseline.max.max(ceiling),
        _ => baseline.max,
    };
    let max = if wanted > baseline.max { wanted.min(allowed_max) } else { baseline.max };
    let new_desired = wanted.min(max).max(baseline.desired);
    let capacity = GroupSizes { min: baseline.min.max(new_desired), desired: new_desired, max };
    Target { capacity, wanted_desired: wanted, shortfall: wanted - new_desired, max_raised: max > baseline.max }
}

/// What a delivery that finds an existing scaling record does to the group: nothing when the
/// group already covers the recorded target (duplicates, or a later evacuation scaled it further:
/// never scale down), else the target merged with the current sizes (a retry converging).
pub fn converge(current: GroupSizes, applied: GroupSizes) -> Option<GroupSizes> {
    if current.covers(&applied) { None } else { Some(current.merge_max(&applied)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (what, baseline, n_active_before, n_survivors, limits, expected capacity, wanted, shortfall)
    type Case = (&'static str, GroupSizes, usize, usize, Limits, GroupSizes, i32, i32);

    const NO_RAISE: Limits = Limits { raise_max: false, max_ceiling: None };
    const fn c(min: i32, desired: i32, max: i32) -> GroupSizes {
        GroupSizes::new(min, desired, max)
    }

    #[test]
    fn evacuation_target_table() {
        let raise_to_20 = Limits { raise_max: true, max_ceiling: Some(20) };
        let cases: Vec<Case> = vec![
            ("2 Regions, one evacuated: doubles", c(2, 4, 10), 2, 1, NO_RAISE, c(8, 8, 10), 8, 0),
            ("3 Regions, one evacuated: x3/2", c(2, 4, 10), 3, 2, NO_RAISE, c(6, 6, 10), 6, 0),
            ("3 Regions, x3/2 rounds up", c(1, 3, 10), 3, 2, NO_RAISE, c(5, 5, 10), 5, 0),
            ("3 Regions, two evacuated at once: triples", c(1, 3, 10), 3, 1, NO_RAISE, c(9, 9, 10), 9, 0),
            ("3 Regions, second evacuation (2 active before)", c(5, 5, 12), 2, 1, NO_RAISE, c(10, 10, 12), 10, 0),
            ("1 instance x3/2 rounds up to 2", c(0, 1, 5), 3, 2, NO_RAISE, c(2, 2, 5), 2, 0),
            ("bounded by MaxSize: shortfall", c(2, 4, 6), 2, 1, NO_RAISE, c(6, 6, 6), 8, 2),
            (
                "ceiling without raise_max is not used",
                c(2, 4, 6),
                2,
                1,
                Limits { raise_max: false, max_ceiling: Some(20) },
                c(6, 6, 6),
                8,
                2,
            ),
            ("MaxSize raised to what is needed", c(2, 4, 6), 2, 1, raise_to_20, c(8, 8, 8), 8, 0),
            ("MaxSize raised up to the ceiling only", c(5, 10, 12), 2, 1, raise_to_20, c(20, 20, 20), 20, 0),
            ("ceiling reached: shortfall", c(5, 15, 16), 2, 1, raise_to_20, c(20, 20, 20), 30, 10),
            (
                "ceiling below MaxSize never lowers it",
                c(2, 10, 30),
                2,
                1,
                Limits { raise_max: true, max_ceiling: Some(5) },
                c(20, 20, 30),
                20,
                0,
            ),
            ("zero capacity stays zero", c(0, 0, 10), 2, 1, NO_RAISE, c(0, 0, 10), 0, 0),
            ("MinSize raised to the new desired", c(9, 9, 20), 3, 2, NO_RAISE, c(14, 14, 20), 14, 0),
            (
                "desired already at MaxSize: MinSize raised, shortfall",
                c(1, 10, 10),
                2,
                1,
                NO_RAISE,
                c(10, 10, 10),
                20,
                10,
            ),
            ("no survivor: unchanged", c(1, 2, 5), 1, 0, NO_RAISE, c(1, 2, 5), 2, 0),
            ("nobody left (same count): unchanged", c(1, 2, 5), 2, 2, NO_RAISE, c(1, 2, 5), 2, 0),
            (
                "huge numbers saturate",
                c(1, i32::MAX - 1, i32::MAX),
                3,
                1,
                NO_RAISE,
                c(i32::MAX, i32::MAX, i32::MAX),
                i32::MAX,
                0,
            ),
        ];
        for (what, baseline, before, survivors, limits, expected, wanted, shortfall) in cases {
            let target = evacuation_target(baseline, before, survivors, limits);
            assert_eq!(target.capacity, expected, "{what}");
            assert_eq!(target.wanted_desired, wanted, "{what}: wanted");
            assert_eq!(target.shortfall, shortfall, "{what}: shortfall");
            assert_eq!(target.max_raised, expected.max > baseline.max, "{what}: max_raised");
            assert!(target.capacity.covers(&baseline), "{what}: never below the baseline");
        }
    }

    #[test]
    fn recomputing_from_the_recorded_baseline_does_not_double_twice() {
        let baseline = c(2, 4, 20);
        let first = evacuation_target(baseline, 2, 1, NO_RAISE);
        // A duplicate uses the recorded baseline, so it computes the same target...
        assert_eq!(evacuation_target(baseline, 2, 1, NO_RAISE), first);
        // ...and, finding the group already there, changes nothing.
        assert_eq!(converge(first.capacity, first.capacity), None);
        // Computing from the already-scaled group would have doubled again: the bug avoided.
        assert_eq!(evacuation_target(first.capacity, 2, 1, NO_RAISE).capacity.desired, 16);
    }

    #[test]
    fn converge_table() {
        let applied = c(8, 8, 10);
        assert_eq!(converge(c(2, 4, 10), applied), Some(applied), "a retry after a failed update re-applies");
        assert_eq!(converge(applied, applied), None, "a duplicate changes nothing");
        assert_eq!(converge(c(16, 16, 20), applied), None, "never scales down a group scaled further");
        assert_eq!(converge(c(8, 12, 10), c(8, 8, 12)), Some(c(8, 12, 12)), "only raises what is short");
    }
}

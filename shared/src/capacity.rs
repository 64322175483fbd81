//! An Auto Scaling group's three sizes, as every function reads and writes them.

use serde::{Deserialize, Serialize};

/// An Auto Scaling group's MinSize, DesiredCapacity and MaxSize. The scaler stores it in the
/// ledger and lag-probe reports it: the JSON field names `min`, `desired` and `max` are part of
/// both formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSizes {
    pub min: i32,
    pub desired: i32,
    pub max: i32,
}

/// `min/desired/max`, as operators write a group's sizes.
impl std::fmt::Display for GroupSizes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.min, self.desired, self.max)
    }
}

impl GroupSizes {
    pub const fn new(min: i32, desired: i32, max: i32) -> Self {
        Self { min, desired, max }
    }

    /// Whether every size is at least the other's (a group already scaled at least as far).
    pub fn covers(&self, other: &GroupSizes) -> bool {
        self.min >= other.min && self.desired >= other.desired && self.max >= other.max
    }

    /// Size by size, the larger of the two.
    pub fn merge_max(&self, other: &GroupSizes) -> GroupSizes {
        GroupSizes {
            min: self.min.max(other.min),
            desired: self.desired.max(other.desired),
            max: self.max.max(other.max),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_and_merge_max_compare_size_by_size() {
        let a = GroupSizes::new(2, 4, 10);
        assert!(a.covers(&a));
        assert!(a.covers(&GroupSizes::new(1, 4, 8)));
        assert!(!a.covers(&GroupSizes::new(1, 5, 8)), "one size short is not covered");
        assert_eq!(a.merge_max(&GroupSizes::new(3, 1, 12)), GroupSizes::new(3, 4, 12));
    }

    #[test]
    fn the_json_names_the_three_sizes() {
        let json = serde_json::to_value(GroupSizes::new(1, 2, 3)).expect("serializes");
        assert_eq!(json, serde_json::json!({ "min": 1, "desired": 2, "max": 3 }));
        assert_eq!(serde_json::from_value::<GroupSizes>(json).expect("deserializes"), GroupSizes::new(1, 2, 3));
    }
}

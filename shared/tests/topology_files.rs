//! The example topology shipped in the repository loads, and each bad file in
//! `tests/fixtures/topology/` is rejected with the documented error naming its field.

use shared::topology::{TOPOLOGY_FILE_ENV, Topology, TopologyError};
use std::path::PathBuf;

fn path(relative: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(relative).display().to_string()
}

fn load_file(relative: &str) -> Result<Topology, TopologyError> {
    let file = path(relative);
    Topology::from_lookup(|key| (key == TOPOLOGY_FILE_ENV).then(|| file.clone()))
}

#[test]
fn example_topology_file_loads_with_three_regions_in_priority_order() {
    let topology = load_file("topology.example.json").expect("the example topology is valid");
    assert_eq!(topology.regions().collect::<Vec<_>>(), ["us-east-1", "eu-west-1", "ap-southeast-1"]);
    assert_eq!(topology.global_table, "UserSessions");
    assert_eq!(topology.cell_for_alarm("web-eu-west-1-unhealthy").map(|c| c.region.as_str()), Some("eu-west-1"));
    let reparsed =
        Topology::from_json(&serde_json::to_string_pretty(&topology).expect("serialize")).expect("round trip");
    assert_eq!(reparsed, topology);
}

#[test]
fn bad_topology_files_give_the_documented_errors() {
    // (file, the field the error must name, words the message must contain)
    let cases = [
        ("one_region.json", "cells", "at least 2 cells"),
        ("duplicate_region.json", "cells[2].region", "listed twice"),
        ("alarm_in_two_regions.json", "cells[1].alarms[0]", "already mapped to us-east-1"),
        ("zero_rpo_budget.json", "rpo_budget_ms", "must be positive"),
        ("min_healthy_too_high.json", "failover_policy.min_healthy_regions", "no Region could ever be evacuated"),
        ("missing_cell_entry.json", "cells[1]", "missing field `auto_scaling_group`"),
        ("misspelt_field.json", "cells[0].healthcheck_id", "unknown field `healthcheck_id`"),
        ("regions_not_a_list.json", "cells", "expected a sequence"),
        ("not_json.json", "", "EOF while parsing"),
    ];
    for (file, field, words) in cases {
        let err = load_file(&format!("tests/fixtures/topology/{file}")).expect_err(file);
        let message = err.to_string();
        match &err {
            TopologyError::Invalid(violations) => {
                assert!(violations.iter().any(|v| v.field == field), "{file}: no violation on {field}: {message}")
            }
            TopologyError::Malformed { field: at, .. } => {
                assert!(field.is_empty() || at == field, "{file}: error at `{at}`, expected `{field}`: {message}")
            }
            other => panic!("{file}: unexpected error {other}"),
        }
        assert!(message.contains(words), "{file}: `{message}` does not say `{words}`");
    }
}

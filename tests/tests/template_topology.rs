//! template.yaml's Parameters -> topology mapping: for sample parameter sets
//! (tests/deploy/params/*.json), tests/deploy/render_topology.py resolves the template's intrinsic
//! functions as CloudFormation would and prints MULTISITE_TOPOLOGY; the shared crate must accept
//! it (`Topology::from_json`) and it must say what the parameters say. Invalid parameter sets must
//! be rejected, by the template's AllowedPattern/Rules or, with the Rules skipped, by the
//! topology's own validation.
//!
//! The script runs in the venv `scripts/check-template.sh venv` creates (pinned cfn-lint, whose
//! decoder reads the template's short-form tags); `MULTISITE_DEPLOY_PYTHON` overrides it.

use serde_json::Value;
use shared::topology::{Topology, TopologyError};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn root() -> PathBuf {
    multisite_tests::repo_root()
}

/// The deploy venv's python, created once per test binary.
fn python() -> &'static Path {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON.get_or_init(|| {
        if let Some(python) = std::env::var_os("MULTISITE_DEPLOY_PYTHON") {
            return PathBuf::from(python);
        }
        let out = Command::new("bash")
            .arg(root().join("scripts/check-template.sh"))
            .arg("venv")
            .output()
            .expect("run scripts/check-template.sh venv");
        assert!(
            out.status.success(),
            "scripts/check-template.sh venv failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim())
    })
}

/// One parameter set to render: the parameters, the stack's Region (default Region1), and whether
/// to skip the template's Rules.
struct Case<'a> {
    params: &'a Value,
    region: Option<&'a str>,
    skip_rules: bool,
}

impl<'a> Case<'a> {
    fn new(params: &'a Value) -> Self {
        Self { params, region: None, skip_rules: false }
    }
}

/// What the script answered for one case: status 0 with its output, or 2 with the problems.
struct Rendered {
    status: i64,
    output: Value,
    problems: Vec<String>,
}

/// Renders every case in one run of the script (importing cfn-lint takes seconds).
fn render_all(cases: &[Case]) -> Vec<Rendered> {
    let dir = std::env::temp_dir().join(format!("multisite-template-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let file = dir.join(format!("cases-{n}.json"));
    let doc: Vec<Value> = cases
        .iter()
        .map(|c| serde_json::json!({"params": c.params, "region": c.region, "skip_rules": c.skip_rules}))
        .collect();
    std::fs::write(&file, serde_json::to_string(&doc).expect("cases JSON")).expect("write cases");
    let out = Command::new(python())
        .current_dir(root())
        .arg("tests/deploy/render_topology.py")
        .arg("--cases")
        .arg(&file)
        .output()
        .expect("run render_topology.py");
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "render_topology.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let results: Vec<Value> = serde_json::from_slice(&out.stdout).expect("script output is JSON");
    assert_eq!(results.len(), cases.len());
    results
        .into_iter()
        .map(|r| Rendered {
            status: r["status"].as_i64().expect("status"),
            problems: r["problems"]
                .as_array()
                .expect("problems")
                .iter()
                .map(|p| p.as_str().expect("problem").to_owned())
                .collect(),
            output: r["output"].clone(),
        })
        .collect()
}

fn params(name: &str) -> Value {
    let path = root().join("tests/deploy/params").join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).expect("read params")).expect("params JSON")
}

/// The topology of a rendered case that must have been accepted (and accepted by the shared crate).
fn accepted(r: &Rendered) -> Topology {
    assert_eq!(r.status, 0, "rejected: {:?}", r.problems);
    let json = r.output["topology"].as_str().expect("topology string");
    Topology::from_json(json).unwrap_or_else(|e| panic!("the shared crate rejects {json}: {e}"))
}

fn p<'a>(params: &'a Value, key: &str) -> &'a str {
    params[key].as_str().unwrap_or_else(|| panic!("{key} missing"))
}

#[test]
fn example_parameters_reproduce_the_example_topology() {
    let params = params("three-regions-aurora.json");
    let rendered = render_all(&[Case::new(&params), Case { region: Some("eu-west-1"), ..Case::new(&params) }]);
    let (out, topology) = (&rendered[0].output, accepted(&rendered[0]));
    let example = std::fs::read_to_string(root().join("shared/topology.example.json")).expect("example");
    let example = Topology::from_json(&example).expect("example topology");
    assert_eq!(topology, example, "the example parameters must produce shared/topology.example.json");

    // Every function that reads the topology gets the same one (the script checks they agree).
    let functions = out["functions"].as_object().expect("functions");
    for name in ["FailoverFunction", "ScalerFunction", "LagProbeFunction", "ProvisionerFunction"] {
        assert!(functions.contains_key(name), "{name} missing");
        assert!(functions[name]["env"]["MULTISITE_TOPOLOGY"].is_string(), "{name} has no topology");
    }
    // The provisioner's timeout is 900 s (its deadline guard and continuation are tuned for it).
    assert_eq!(functions["ProvisionerFunction"]["timeout"], 900);
    assert_eq!(functions["ProvisionerFunction"]["env"]["PROVISIONER_DEADLINE_MARGIN_MS"], "5000");
    assert_eq!(functions["FailoverFunction"]["reserved_concurrency"], "5");
    assert_eq!(functions["FailoverFunction"]["code_uri"], "target/lambda/failover/");
    assert_eq!(functions["LagProbeFunction"]["code_uri"], "target/lambda/lag-probe/");

    // Wiring follows the topology: alarm rule names, ledger replicas (the Region1 stack), and the
    // example custom resource (the data table's home Region only).
    let alarms: Vec<&str> = topology.cells.iter().map(|c| c.alarms[0].as_str()).collect();
    assert_eq!(out["alarm_rule_names"], serde_json::json!(alarms));
    let regions: Vec<&str> = topology.regions().collect();
    assert_eq!(regions, ["us-east-1", "eu-west-1", "ap-southeast-1"]);
    assert_eq!(out["ledger_replicas"], serde_json::json!(regions));
    assert_eq!(out["replica_resource_regions"], serde_json::json!(regions));

    // In another Region's stack: no ledger table (it uses Region1's) and no custom resource.
    let (out, again) = (&rendered[1].output, accepted(&rendered[1]));
    assert_eq!(again, topology, "every Region's stack passes the same topology");
    assert!(out["ledger_replicas"].is_null());
    assert!(out["replica_resource_regions"].is_null());
}

#[test]
fn two_regions_without_aurora() {
    let params = params("two-regions.json");
    let rendered = render_all(&[Case::new(&params)]);
    let (out, topology) = (&rendered[0].output, accepted(&rendered[0]));
    assert_eq!(topology.name, p(&params, "WorkloadName"));
    assert_eq!(topology.regions().collect::<Vec<_>>(), [p(&params, "Region1"), p(&params, "Region2")]);
    for (i, cell) in topology.cells.iter().enumerate() {
        let n = i + 1;
        assert_eq!(cell.health_check_id, p(&params, &format!("Region{n}HealthCheckId")));
        assert_eq!(cell.auto_scaling_group, p(&params, &format!("Region{n}AutoScalingGroup")));
        assert_eq!(cell.alarms, [p(&params, &format!("Region{n}AlarmName"))]);
        assert_eq!(cell.aurora_cluster_arn, None);
    }
    assert_eq!(topology.aurora, None);
    assert_eq!(topology.routing.hosted_zone_id, p(&params, "HostedZoneId"));
    assert_eq!(topology.routing.record_name, p(&params, "RecordName"));
    assert_eq!(topology.global_table, p(&params, "GlobalTableName"));
    assert_eq!(topology.ledger_table, p(&params, "LedgerTableName"));
    assert_eq!(topology.rpo_budget_ms, 1500);
    assert_eq!(topology.failover_policy.min_healthy_regions, 1);
    assert_eq!(topology.failover_policy.cooldown_seconds, 600);
    assert!(topology.failover_policy.auto_failback);
    assert!(topology.failover_policy.dry_run);

    assert!(topology.scaling.raise_max_size);
    assert_eq!(topology.scaling.max_size_ceiling, Some(40));
    assert_eq!(topology.scaling.readiness_wait_seconds, 300);
    assert_eq!(topology.scaling.readiness_poll_ms, 5000);
    assert_eq!(out["functions"]["ScalerFunction"]["timeout"], 900, "a readiness wait needs the long timeout");
    assert!(out["functions"]["FailoverFunction"]["reserved_concurrency"].is_null(), "0 reserves nothing");
    assert!(out["replica_resource_regions"].is_null(), "no DataTableHomeRegion: no custom resource");
}

#[test]
fn four_regions_with_aurora() {
    let params = params("four-regions.json");
    let rendered = render_all(&[Case::new(&params)]);
    let (out, topology) = (&rendered[0].output, accepted(&rendered[0]));
    assert_eq!(topology.regions().collect::<Vec<_>>(), ["us-east-1", "eu-west-1", "ap-southeast-1", "sa-east-1"]);
    assert_eq!(topology.failover_policy.min_healthy_regions, 2);
    assert_eq!(topology.scaling.max_size_ceiling, Some(40));
    assert_eq!(topology.scaling.readiness_poll_ms, 1000);
    let fourth = topology.cell("sa-east-1").expect("fourth cell");
    assert_eq!(
        fourth.aurora_cluster_arn.as_deref(),
        Some("arn:aws:rds:sa-east-1:123456789012:cluster:sessions-sa-east-1")
    );
    assert_eq!(out["ledger_replicas"].as_array().map(Vec::len), Some(4));
    assert_eq!(out["alarm_rule_names"].as_array().map(Vec::len), Some(4));
}

#[test]
fn invalid_parameter_sets_are_rejected() {
    let bad_region = params("invalid-region-name.json");
    let min_healthy = params("invalid-min-healthy.json");
    // A table of single mistakes on a valid 3-Region set, each refused naming its parameter or rule.
    let base = params("three-regions-aurora.json");
    let mistakes: &[(&str, &str, &str)] = &[
        ("Region3", "eu-west-1", "rule Region3IsComplete"),
        ("Region1HealthCheckId", "not-a-uuid", "Region1HealthCheckId:"),
        ("Region2AlarmName", "quote\"breaks json", "Region2AlarmName:"),
        ("Region3AuroraClusterId", "", "rule AuroraIsComplete"),
        ("LedgerTableName", "UserSessions", "rule LedgerIsNotTheDataTable"),
        ("Region4", "sa-east-1", "rule Region4IsComplete"),
        ("ScalerRaiseMax", "false", "rule ScalerCeilingGoesWithRaiseMax"),
        ("RpoBudgetMs", "0", "RpoBudgetMs: 0 is below MinValue"),
        ("ScalerWaitSeconds", "900", "ScalerWaitSeconds: 900 is above MaxValue"),
        ("DryRun", "yes", "DryRun: `yes` is not one of"),
        ("HostedZoneId", "", "HostedZoneId:"),
        ("NoSuchParameter", "x", "NoSuchParameter: not a parameter"),
    ];
    let mut variants: Vec<Value> = mistakes
        .iter()
        .map(|(key, value, _)| {
            let mut params = base.clone();
            params[*key] = Value::String((*value).to_owned());
            params
        })
        .collect();
    let mut missing = base.clone();
    missing.as_object_mut().expect("object").remove("Region2");
    variants.push(missing);

    let mut cases =
        vec![Case::new(&bad_region), Case::new(&min_healthy), Case { skip_rules: true, ..Case::new(&min_healthy) }];
    cases.extend(variants.iter().map(Case::new));
    let rendered = render_all(&cases);

    // By the parameters' AllowedPattern (CloudFormation refuses the stack before anything runs).
    assert_eq!(rendered[0].status, 2, "accepted: {}", rendered[0].output);
    assert!(
        rendered[0].problems.iter().any(|p| p.contains("Region2: `Europe` does not match AllowedPattern")),
        "{:?}",
        rendered[0].problems
    );
    // By the template's Rules ...
    assert_eq!(rendered[1].status, 2);
    assert!(
        rendered[1].problems.iter().any(|p| p.contains("rule MinHealthyBelowRegionCount")),
        "{:?}",
        rendered[1].problems
    );
    // ... and, were the Rules bypassed, by the topology validation at cold start.
    assert_eq!(rendered[2].status, 0, "{:?}", rendered[2].problems);
    let err =
        Topology::from_json(rendered[2].output["topology"].as_str().expect("topology")).expect_err("invalid topology");
    assert!(
        matches!(&err, TopologyError::Invalid(v) if v.iter().any(|v| v.field == "failover_policy.min_healthy_regions")),
        "{err}"
    );

    let expected = mistakes
        .iter()
        .map(|(k, v, e)| (format!("{k}={v:?}"), *e))
        .chain([("no Region2".to_owned(), "Region2: required")]);
    for ((what, expected), r) in expected.zip(&rendered[3..]) {
        assert_eq!(r.status, 2, "{what} was accepted");
        assert!(r.problems.iter().any(|p| p.contains(expected)), "{what}: expected `{expected}` in {:?}", r.problems);
    }
}

/// The README's least-privilege table lists, per function, exactly the actions its role in
/// template.yaml allows (besides its log group and the failed-events queue, which the text above
/// the table names for every function). The roles are rendered in the emulator as CloudFormation
/// would render them for the 3-Region Aurora sample, so every conditional statement is in.
#[test]
fn the_readme_least_privilege_table_matches_the_template_roles() {
    use std::collections::{BTreeMap, BTreeSet};
    let emulator = multisite_tests::Emulator::start();
    let params = params("three-regions-aurora.json");
    let roles = multisite_tests::roles::StackRoles::create(
        &emulator,
        params.as_object().expect("params object"),
        p(&params, "Region2"),
    );
    let common: BTreeSet<&str> = ["logs:CreateLogStream", "logs:PutLogEvents", "sqs:SendMessage"].into();
    let mut in_template: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for function in multisite_tests::roles::Function::ALL {
        let mut actions = BTreeSet::new();
        for document in roles.role_of(function).policies.values() {
            for statement in document["Statement"].as_array().expect("statements") {
                assert_eq!(statement["Effect"], "Allow", "{function:?}: only Allow statements: {statement}");
                match &statement["Action"] {
                    Value::String(a) => actions.insert(a.clone()),
                    Value::Array(list) => list.iter().all(|a| actions.insert(a.as_str().expect("action").to_owned())),
                    other => panic!("{function:?}: Action {other}"),
                };
            }
        }
        for action in &common {
            assert!(actions.remove(*action), "{function:?} lacks {action}");
        }
        assert!(!actions.iter().any(|a| a.contains('*')), "{function:?}: no wildcard action: {actions:?}");
        in_template.insert(function.binary(), actions);
    }

    let readme = std::fs::read_to_string(root().join("README.md")).expect("README");
    let section = readme.split("### Least privilege").nth(1).expect("Least privilege section");
    let mut in_readme: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for row in section.lines().take_while(|l| !l.starts_with("### ")).filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let (function, actions) = (cells[1], cells[2]);
        if function == "function" {
            continue;
        }
        let named = actions.split('`').skip(1).step_by(2).filter(|a| a.contains(':')).map(str::to_owned);
        in_readme.entry(function).or_default().extend(named);
    }
    assert_eq!(in_readme, in_template, "README.md's least-privilege table and template.yaml's roles disagree");
}

//! template.yaml's Parameters -> topology mapping: for sample parameter sets
//! (tests/deploy/params/*.json), tests/deploy/render_topology.py resolves the template's intrinsic
//! functions as CloudFormation would and prints the topology (TopologyParameter's value, which the
//! functions read through MULTISITE_TOPOLOGY_PARAMETER); the shared crate must accept
//! it (`Topology::from_json`) and it must say what the parameters say. Invalid parameter sets must
//! be rejected, by the template's AllowedPattern/Rules or, with the Rules skipped, by the
//! topology's own validation.
//!
//! The script runs in the deploy venv `.venv-sam` (pinned cfn-lint, whose decoder reads the
//! template's short-form tags), which `make venv-sam` creates before the tests;
//! `MULTISITE_DEPLOY_PYTHON` overrides it.

use serde_json::{Value, json};
use shared::topology::{AlarmRef, Arbiter, Topology, TopologyError};
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    multisite_tests::repo_root()
}

/// The deploy venv's python (`make venv-sam`); `MULTISITE_DEPLOY_PYTHON` names another.
fn python() -> PathBuf {
    multisite_tests::venv_python("MULTISITE_DEPLOY_PYTHON", ".venv-sam", "make venv-sam")
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

/// `topology` with every default spelled out: each alarm's Region and the arbiter. The template
/// always renders both; a hand-written topology may leave them to their defaults (the cell's own
/// Region, the first cell's Region), which mean the same.
fn explicit(mut topology: Topology) -> Topology {
    topology.arbiter = Some(Arbiter { region: topology.arbiter_region().to_owned() });
    for cell in &mut topology.cells {
        let region = cell.region.clone();
        for alarm in &mut cell.alarms {
            alarm.region.get_or_insert_with(|| region.clone());
        }
    }
    topology
}

/// The raw MULTISITE_TOPOLOGY of a rendered case, as JSON (what the functions read, before the
/// shared crate's defaults).
fn raw_topology(r: &Rendered) -> Value {
    serde_json::from_str(r.output["topology"].as_str().expect("topology string")).expect("topology is JSON")
}

#[test]
fn example_parameters_reproduce_the_example_topology() {
    let params = params("three-regions-aurora.json");
    let rendered = render_all(&[Case::new(&params), Case { region: Some("eu-west-1"), ..Case::new(&params) }]);
    let (out, topology) = (&rendered[0].output, accepted(&rendered[0]));
    let example = std::fs::read_to_string(root().join("shared/topology.example.json")).expect("example");
    let example = Topology::from_json(&example).expect("example topology");
    assert_eq!(
        topology,
        explicit(example),
        "the example parameters must produce shared/topology.example.json (defaults spelled out)"
    );
    // With RegionNAlarmRegion and ArbiterRegion empty, each alarm lives in its cell's Region and the
    // arbiter is Region1, both written out in the JSON.
    let raw = raw_topology(&rendered[0]);
    assert_eq!(raw["arbiter"], serde_json::json!({"region": "us-east-1"}));
    for (cell, raw_cell) in topology.cells.iter().zip(raw["cells"].as_array().expect("cells")) {
        assert_eq!(raw_cell["alarms"], serde_json::json!([{"name": cell.alarms[0].name, "region": cell.region}]));
    }

    // Every function is told the stack's topology parameter, not given the JSON (Lambda's 4 KB
    // environment limit: topology_size_fits_its_limits).
    let functions = out["functions"].as_object().expect("functions");
    assert_eq!(
        out["topology_parameter"],
        json!({"name": "/multisite/multisite/topology", "tier": "Intelligent-Tiering"})
    );
    assert_eq!(out["outputs"]["TopologyParameterName"], "/multisite/multisite/topology");
    for name in ["FailoverFunction", "ScalerFunction", "LagProbeFunction", "ProvisionerFunction"] {
        assert!(functions.contains_key(name), "{name} missing");
        let env = &functions[name]["env"];
        assert_eq!(env["MULTISITE_TOPOLOGY_PARAMETER"], "/multisite/multisite/topology", "{name}");
        assert!(env.get("MULTISITE_TOPOLOGY").is_none() && env.get("MULTISITE_TOPOLOGY_FILE").is_none(), "{name}");
    }
    // The provisioner's timeout is 900 s (its deadline guard and continuation are tuned for it).
    assert_eq!(functions["ProvisionerFunction"]["timeout"], 900);
    assert_eq!(functions["ProvisionerFunction"]["env"]["PROVISIONER_DEADLINE_MARGIN_MS"], "5000");
    // ProvisionerTableNames left empty: the provisioner may manage any table its role allows.
    assert_eq!(functions["ProvisionerFunction"]["env"]["PROVISIONER_TABLE_NAMES"], "");
    assert!(
        functions["ProvisionerFunction"]["env"].get("MULTISITE_PROVISIONER_ALLOW_LOCAL_RESPONSE_URL").is_none(),
        "the test switch for a local ResponseURL is never deployed"
    );
    assert_eq!(functions["FailoverFunction"]["reserved_concurrency"], "5");
    assert_eq!(functions["FailoverFunction"]["code_uri"], "target/lambda/failover/");
    assert_eq!(functions["LagProbeFunction"]["code_uri"], "target/lambda/lag-probe/");

    // Wiring follows the topology: alarm rule names, ledger replicas (the Region1 stack), and the
    // example custom resource (the data table's home Region only).
    let alarms: Vec<&str> = topology.cells.iter().map(|c| c.alarms[0].name.as_str()).collect();
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

/// `ProvisionerTableNames` reaches the provisioner (and only it) as `PROVISIONER_TABLE_NAMES`, the
/// comma-separated allow-list `provisioner::Config` reads (its own tests parse that form).
#[test]
fn provisioner_table_names_reach_the_provisioner() {
    let mut params = params("three-regions-aurora.json");
    params["ProvisionerTableNames"] = Value::String("UserSessions,Carts".to_owned());
    let rendered = render_all(&[Case::new(&params)]);
    accepted(&rendered[0]);
    let functions = rendered[0].output["functions"].as_object().expect("functions");
    let env = &functions["ProvisionerFunction"]["env"];
    assert_eq!(env["PROVISIONER_TABLE_NAMES"], "UserSessions,Carts");
    for name in ["FailoverFunction", "ScalerFunction", "LagProbeFunction"] {
        assert!(functions[name]["env"].get("PROVISIONER_TABLE_NAMES").is_none(), "{name}");
    }
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
        let alarm =
            AlarmRef { name: p(&params, &format!("Region{n}AlarmName")).to_owned(), region: Some(cell.region.clone()) };
        assert_eq!(cell.alarms, [alarm], "no Region{n}AlarmRegion: the alarm lives in Region{n}");
        assert_eq!(cell.aurora_cluster_arn, None);
    }
    assert_eq!(topology.aurora, None);
    assert_eq!(topology.routing.hosted_zone_id, p(&params, "HostedZoneId"));
    assert_eq!(topology.routing.record_name, p(&params, "RecordName"));
    assert_eq!(topology.global_table, p(&params, "GlobalTableName"));
    assert_eq!(topology.ledger_table, p(&params, "LedgerTableName"));
    assert_eq!(topology.arbiter_region(), p(&params, "Region1"), "no ArbiterRegion: Region1");
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

/// The three-Region sample with the alarms living elsewhere (web-us-east-1-unhealthy in eu-west-1,
/// web-eu-west-1-unhealthy in ap-southeast-1, web-ap-southeast-1-unhealthy left to its own Region)
/// and the arbiter in `arbiter`.
fn alarms_elsewhere(arbiter: &str) -> Value {
    let mut params = params("three-regions-aurora.json");
    params["Region1AlarmRegion"] = "eu-west-1".into();
    params["Region2AlarmRegion"] = "ap-southeast-1".into();
    params["ArbiterRegion"] = arbiter.into();
    params
}

/// RegionNAlarmRegion and ArbiterRegion reach MULTISITE_TOPOLOGY: each alarm as {"name", "region"}
/// (an empty RegionNAlarmRegion: the cell's own Region), and "arbiter". The Region1 stack's ledger
/// gets a replica in an arbiter Region that is none of the cells; only the stacks of Regions where
/// an alarm lives have the alarm rule. The parameters `roles::template_parameters` derives from
/// the rendered topology render the same cells and arbiter again.
#[test]
fn alarm_regions_and_the_arbiter_reach_the_topology() {
    let params = alarms_elsewhere("us-east-2");
    let in_a_cell = alarms_elsewhere("eu-west-1");
    let rendered = render_all(&[
        Case::new(&params),
        Case { region: Some("eu-west-1"), ..Case::new(&params) },
        Case { region: Some("ap-southeast-1"), ..Case::new(&params) },
        Case::new(&in_a_cell),
    ]);
    let topology = accepted(&rendered[0]);
    let alarms: Vec<(&str, &str, &str)> = topology
        .cells
        .iter()
        .map(|c| (c.region.as_str(), c.alarms[0].name.as_str(), c.alarm_region(&c.alarms[0])))
        .collect();
    assert_eq!(
        alarms,
        [
            ("us-east-1", "web-us-east-1-unhealthy", "eu-west-1"),
            ("eu-west-1", "web-eu-west-1-unhealthy", "ap-southeast-1"),
            ("ap-southeast-1", "web-ap-southeast-1-unhealthy", "ap-southeast-1"),
        ]
    );
    assert_eq!(topology.arbiter, Some(Arbiter { region: "us-east-2".into() }));
    assert_eq!(topology.arbiter_region(), "us-east-2");
    assert_eq!(topology.client_regions(), ["us-east-1", "eu-west-1", "ap-southeast-1", "us-east-2"]);

    // The JSON itself, as the functions read it.
    let raw = raw_topology(&rendered[0]);
    assert_eq!(raw["arbiter"], serde_json::json!({"region": "us-east-2"}));
    let raw_alarms: Vec<&Value> = raw["cells"].as_array().expect("cells").iter().map(|c| &c["alarms"]).collect();
    assert_eq!(
        raw_alarms,
        [
            &serde_json::json!([{"name": "web-us-east-1-unhealthy", "region": "eu-west-1"}]),
            &serde_json::json!([{"name": "web-eu-west-1-unhealthy", "region": "ap-southeast-1"}]),
            &serde_json::json!([{"name": "web-ap-southeast-1-unhealthy", "region": "ap-southeast-1"}]),
        ]
    );

    // Every Region's stack passes the same topology; the alarm rule exists where an alarm lives.
    let has_alarm_rule = |r: &Rendered| r.output["conditions"]["HasAlarmHere"].as_bool().expect("HasAlarmHere");
    for r in &rendered[1..3] {
        assert_eq!(accepted(r), topology, "every Region's stack passes the same topology");
        assert!(has_alarm_rule(r), "an alarm lives in this Region: {}", r.output["conditions"]);
    }
    assert!(!has_alarm_rule(&rendered[0]), "no alarm lives in us-east-1: its stack has no alarm rule");
    // The rule takes only this account's changes of the alarms that live in its Region.
    for (r, region, living_here) in [(&rendered[1], "eu-west-1", 1), (&rendered[2], "ap-southeast-1", 2)] {
        let accounts = r.output["alarm_rule_accounts"].as_array().cloned().unwrap_or_default();
        assert_eq!(accounts.len(), 1, "{region}: the rule filters one account: {accounts:?}");
        let resources: Vec<String> = r.output["alarm_rule_resources"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default();
        assert_eq!(resources.len(), living_here, "{region}: {resources:?}");
        let account = accounts[0].as_str().unwrap_or_default();
        for arn in &resources {
            assert!(arn.starts_with(&format!("arn:aws:cloudwatch:{region}:{account}:alarm:")), "{region}: {arn}");
        }
    }
    assert_eq!(rendered[0].output["alarm_rule_names"].as_array().map(Vec::len), Some(3), "the name filter stays");

    // The ledger (Region1's stack) has a replica in the arbiter Region; not twice when the arbiter
    // is one of the cells.
    assert_eq!(
        rendered[0].output["ledger_replicas"],
        serde_json::json!(["us-east-1", "eu-west-1", "ap-southeast-1", "us-east-2"])
    );
    assert_eq!(accepted(&rendered[3]).arbiter_region(), "eu-west-1");
    assert_eq!(rendered[3].output["ledger_replicas"], serde_json::json!(["us-east-1", "eu-west-1", "ap-southeast-1"]));

    // The test-support crate's parameters for this topology render it again.
    let derived = Value::Object(multisite_tests::roles::template_parameters(&topology).expect("expressible"));
    for key in ["ArbiterRegion", "Region1AlarmRegion", "Region2AlarmRegion"] {
        assert_eq!(derived[key], params[key], "{key}");
    }
    assert_eq!(derived["Region3AlarmRegion"], "ap-southeast-1", "written out: the cell's own Region");
    let again = accepted(&render_all(&[Case::new(&derived)])[0]);
    assert_eq!((&again.cells, &again.arbiter), (&topology.cells, &topology.arbiter));
}

/// The roles follow the alarm Regions and the arbiter, as CloudFormation renders them in the
/// emulator: failover's DescribeAlarms names each alarm in the Region it lives in; failover's
/// ledger statement and the scaler's fleet-status read add the arbiter replica (failover's names
/// it once in the arbiter Region's own stack).
#[test]
fn the_roles_name_each_alarm_in_its_region_and_the_arbiter_replica() {
    use multisite_tests::roles::{Function, StackRoles};
    let emulator = multisite_tests::Emulator::lease();
    let statement = |roles: &StackRoles, function: Function, sid: &str| -> (Vec<String>, Vec<String>) {
        let found: Vec<&Value> = roles
            .role_of(function)
            .policies
            .values()
            .flat_map(|d| d["Statement"].as_array().expect("statements"))
            .filter(|s| s["Sid"] == sid)
            .collect();
        assert_eq!(found.len(), 1, "{function:?}: one statement {sid}");
        let strings = |v: &Value| match v {
            Value::String(s) => vec![s.clone()],
            Value::Array(list) => list.iter().map(|s| s.as_str().expect("string").to_owned()).collect(),
            other => panic!("{function:?} {sid}: {other}"),
        };
        (strings(&found[0]["Action"]), strings(&found[0]["Resource"]))
    };
    let account = "123456789012";
    let ledger = |region: &str| format!("arn:aws:dynamodb:{region}:{account}:table/multisite-ledger");
    let alarm = |region: &str, name: &str| format!("arn:aws:cloudwatch:{region}:{account}:alarm:{name}");

    let params = alarms_elsewhere("us-east-2");
    let roles = StackRoles::create_named(
        &emulator,
        params.as_object().expect("params object"),
        "eu-west-1",
        "template-topology-eu-west-1",
    );
    assert!(roles.role_of(Function::Failover).role_arn.contains(&format!(":{account}:")));
    assert_eq!(
        statement(&roles, Function::Failover, "ConfirmAlarms"),
        (
            vec!["cloudwatch:DescribeAlarms".to_owned()],
            vec![
                alarm("eu-west-1", "web-us-east-1-unhealthy"),
                alarm("ap-southeast-1", "web-eu-west-1-unhealthy"),
                alarm("ap-southeast-1", "web-ap-southeast-1-unhealthy"),
            ]
        )
    );
    let (actions, resources) = statement(&roles, Function::Failover, "Ledger");
    assert_eq!(actions, ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem"]);
    assert_eq!(resources, [ledger("eu-west-1"), ledger("us-east-2")]);
    assert_eq!(
        statement(&roles, Function::Scaler, "ArbiterFleetStatus"),
        (
            vec!["dynamodb:GetItem".to_owned(), "dynamodb:PutItem".to_owned(), "dynamodb:Query".to_owned()],
            vec![ledger("us-east-2")]
        )
    );
    assert_eq!(statement(&roles, Function::Scaler, "Ledger").1, [ledger("eu-west-1")]);

    // The stack in the arbiter's own Region: failover's ledger statement names that replica once.
    let params = alarms_elsewhere("eu-west-1");
    let roles = StackRoles::create_named(
        &emulator,
        params.as_object().expect("params object"),
        "eu-west-1",
        "template-topology-arbiter",
    );
    assert_eq!(statement(&roles, Function::Failover, "Ledger").1, [ledger("eu-west-1")]);
    assert_eq!(statement(&roles, Function::Scaler, "ArbiterFleetStatus").1, [ledger("eu-west-1")]);
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
        ("ArbiterRegion", "Europe", "ArbiterRegion: `Europe` does not match AllowedPattern"),
        ("Region2AlarmRegion", "eu_west_1", "Region2AlarmRegion: `eu_west_1` does not match AllowedPattern"),
        ("Region4AlarmRegion", "eu-west-1", "rule AlarmRegionsNeedTheirSlot"),
        ("ReconcileSchedule", "every minute", "ReconcileSchedule: `every minute` does not match AllowedPattern"),
        ("ProvisionerTableNames", "UserSessions, Carts", "ProvisionerTableNames: `UserSessions, Carts` does not match"),
        ("ProvisionerTableNames", "ab", "ProvisionerTableNames: `ab` does not match"),
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
    let emulator = multisite_tests::Emulator::lease();
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

/// `ArcClusterEndpoints` (`region=url,...`) as the JSON list the topology carries.
fn endpoints_of(param: &str) -> Value {
    Value::Array(
        param
            .split(',')
            .map(|entry| {
                let (region, url) = entry.split_once('=').expect("region=url");
                serde_json::json!({"region": region, "url": url})
            })
            .collect(),
    )
}

/// The `routing` block the template must render for RoutingBackend=arc: the cluster, its five
/// endpoints, the control panel, one routing control per cell (by the cell's Region) and the safety
/// rule with `at_least` = MinHealthyRegions.
fn expected_arc_routing(params: &Value, cluster: &str, panel: &str, rule: &str, controls: &[String]) -> Value {
    let regions: Vec<&str> = (1..=4).map(|n| params[format!("Region{n}")].as_str().unwrap_or("")).collect();
    let controls: serde_json::Map<String, Value> = regions
        .iter()
        .filter(|r| !r.is_empty())
        .zip(controls)
        .map(|(r, c)| ((*r).to_owned(), c.clone().into()))
        .collect();
    let at_least: u64 = params["MinHealthyRegions"].as_str().unwrap_or("1").parse().expect("MinHealthyRegions");
    serde_json::json!({
        "hosted_zone_id": params["HostedZoneId"],
        "record_name": params["RecordName"],
        "backend": "arc",
        "arc": {
            "cluster_arn": cluster,
            "cluster_endpoints": endpoints_of(p(params, "ArcClusterEndpoints")),
            "control_panel_arn": panel,
            "routing_controls": controls,
            "safety_rule": {"arn": rule, "at_least": at_least},
        },
    })
}

/// RoutingBackend=arc with ArcResources=existing (2 and 4 Regions): `routing` gains `"backend":"arc"`
/// and the `arc` block, exactly the parameters'; each cell's `health_check_id` is its
/// RECOVERY_CONTROL health check; every Region's stack renders the same topology, and none creates
/// an ARC resource. RoutingBackend=health_check (the default) renders `routing` as before.
#[test]
fn arc_existing_parameters_reach_the_topology() {
    let two = params("arc-two-regions.json");
    let four = params("arc-four-regions.json");
    let plain = params("two-regions.json");
    let rendered = render_all(&[
        Case::new(&two),
        Case { region: Some(p(&two, "Region2")), ..Case::new(&two) },
        Case::new(&four),
        Case { region: Some("sa-east-1"), ..Case::new(&four) },
        Case::new(&plain),
    ]);
    for (params, region1, other) in [(&two, &rendered[0], &rendered[1]), (&four, &rendered[2], &rendered[3])] {
        let cells = if params["Region4"].is_string() { 4 } else { 2 };
        let controls: Vec<String> =
            (1..=cells).map(|n| p(params, &format!("Region{n}RoutingControlArn")).to_owned()).collect();
        let raw = raw_topology(region1);
        assert_eq!(
            raw["routing"],
            expected_arc_routing(
                params,
                p(params, "ArcClusterArn"),
                p(params, "ArcControlPanelArn"),
                p(params, "ArcSafetyRuleArn"),
                &controls
            )
        );
        assert_eq!(raw["routing"]["arc"]["cluster_endpoints"].as_array().map(Vec::len), Some(5));
        let health_checks: Vec<&Value> =
            raw["cells"].as_array().expect("cells").iter().map(|c| &c["health_check_id"]).collect();
        let given: Vec<Value> = (1..=cells).map(|n| params[format!("Region{n}HealthCheckId")].clone()).collect();
        assert_eq!(health_checks, given.iter().collect::<Vec<_>>(), "the RECOVERY_CONTROL health checks");
        assert_eq!(raw_topology(other), raw, "every Region's stack renders the same topology");
        for r in [region1, other] {
            assert_eq!(r.output["arc_resources"], serde_json::json!({}), "existing: nothing created");
            assert!(!r.output["outputs"].as_object().expect("outputs").contains_key("ArcClusterArn"));
        }
        // Needs the shared crate's `backend`/`arc` (the topology's routing backend) to pass.
        let topology = accepted(region1);
        assert_eq!(topology.cells.len(), cells);
    }
    let raw = raw_topology(&rendered[4]);
    assert_eq!(
        raw["routing"],
        serde_json::json!({"hosted_zone_id": plain["HostedZoneId"], "record_name": plain["RecordName"]}),
        "health_check: routing as before (no backend, no arc block)"
    );
}

/// ArcResources=create: the Region1 stack creates the cluster, control panel, one routing control
/// per cell, the assertion rule (ATLEAST MinHealthyRegions over every cell's control) and one
/// RECOVERY_CONTROL health check per cell following its control; its own topology names them
/// (Ref/GetAtt); its outputs, given to another Region's stack as parameters (ArcResources=existing),
/// render the same topology there. The first deploy (RoutingBackend=health_check) already creates
/// them while health checks still route; a stack in another Region creates nothing.
#[test]
fn arc_create_parameters_create_the_arc_resources_and_refer_to_them() {
    let create = params("arc-create.json");
    let first = params("arc-create-first-deploy.json");
    let rendered = render_all(&[
        Case::new(&create),
        Case::new(&first),
        Case { region: Some(p(&first, "Region2")), ..Case::new(&first) },
    ]);
    let out = &rendered[0].output;
    let outputs = out["outputs"].as_object().expect("outputs");
    let output = |name: &str| outputs.get(name).and_then(Value::as_str).unwrap_or_else(|| panic!("output {name}"));
    let controls: Vec<String> = (1..=3).map(|n| output(&format!("Region{n}RoutingControlArn")).to_owned()).collect();
    let (cluster, panel, rule) = (output("ArcClusterArn"), output("ArcControlPanelArn"), output("ArcSafetyRuleArn"));
    let raw = raw_topology(&rendered[0]);
    assert_eq!(raw["routing"], expected_arc_routing(&create, cluster, panel, rule, &controls));
    let health_checks: Vec<&str> = (1..=3).map(|n| output(&format!("Region{n}HealthCheckId"))).collect();
    let in_cells: Vec<&str> =
        raw["cells"].as_array().expect("cells").iter().map(|c| c["health_check_id"].as_str().expect("id")).collect();
    assert_eq!(in_cells, health_checks, "the cells route with the created RECOVERY_CONTROL health checks");
    assert!(cluster.starts_with("arn:aws:route53-recovery-control::123456789012:cluster/"), "{cluster}");
    for control in &controls {
        assert!(control.starts_with(&format!("{panel}/routingcontrol/")), "{control} is not in {panel}");
    }
    assert!(rule.starts_with(&format!("{panel}/safetyrule/")), "{rule}");

    // The resources themselves.
    let resources = out["arc_resources"].as_object().expect("arc_resources");
    let resource =
        |id: &str| &resources.get(id).unwrap_or_else(|| panic!("{id} not created: {resources:?}"))["properties"];
    assert_eq!(resources["ArcCluster"]["type"], "AWS::Route53RecoveryControl::Cluster");
    assert_eq!(resource("ArcControlPanel")["ClusterArn"], cluster);
    for (n, control) in (1..=3).zip(&controls) {
        let routing_control = resource(&format!("Region{n}RoutingControl"));
        assert_eq!(routing_control["ClusterArn"], cluster);
        assert_eq!(routing_control["ControlPanelArn"], panel);
        assert_eq!(routing_control["Name"], create[format!("Region{n}")]);
        let health_check = resource(&format!("Region{n}RecoveryHealthCheck"));
        assert_eq!(
            health_check["HealthCheckConfig"],
            serde_json::json!({"Type": "RECOVERY_CONTROL", "RoutingControlArn": control})
        );
    }
    assert!(!resources.contains_key("Region4RoutingControl") && !resources.contains_key("Region4RecoveryHealthCheck"));
    let safety_rule = resource("ArcSafetyRule");
    assert_eq!(safety_rule["ControlPanelArn"], panel);
    assert_eq!(
        safety_rule["RuleConfig"],
        serde_json::json!({"Type": "ATLEAST", "Threshold": create["MinHealthyRegions"], "Inverted": false})
    );
    assert_eq!(safety_rule["AssertionRule"]["AssertedControls"], serde_json::json!(controls));
    assert!(safety_rule["AssertionRule"]["WaitPeriodMs"].as_u64().is_some_and(|ms| ms > 0));

    // Another Region's stack, given the outputs as parameters (ArcResources=existing), renders the
    // same topology.
    let mut elsewhere = create.clone();
    elsewhere["ArcResources"] = "existing".into();
    for name in ["ArcClusterArn", "ArcControlPanelArn", "ArcSafetyRuleArn"] {
        elsewhere[name] = output(name).into();
    }
    for n in 1..=3 {
        for name in [format!("Region{n}RoutingControlArn"), format!("Region{n}HealthCheckId")] {
            elsewhere[&name] = output(&name).into();
        }
    }
    let again = render_all(&[Case { region: Some(p(&create, "Region2")), ..Case::new(&elsewhere) }]);
    assert_eq!(raw_topology(&again[0]), raw, "the outputs are the other stacks' parameters");
    assert_eq!(again[0].output["arc_resources"], serde_json::json!({}));

    // The first deploy: health checks still route (topology as without ARC), the ARC resources exist.
    let raw_first = raw_topology(&rendered[1]);
    assert!(raw_first["routing"].get("backend").is_none() && raw_first["routing"].get("arc").is_none());
    assert_eq!(raw_first["cells"][0]["health_check_id"], first["Region1HealthCheckId"]);
    assert_eq!(rendered[1].output["arc_resources"].as_object().map(|r| r.len()), Some(2 + 3 + 1 + 3));
    assert_eq!(rendered[2].output["arc_resources"], serde_json::json!({}), "only the Region1 stack creates");
    assert_eq!(raw_topology(&rendered[2]), raw_first);
    accepted(&rendered[1]);

    // Needs the shared crate's `backend`/`arc` (the topology's routing backend) to pass.
    accepted(&rendered[0]);
}

/// Inconsistent routing-backend parameter sets are refused, each naming its parameter or rule; and
/// with the Rules bypassed, the shared crate refuses an `arc` block without a cell's control.
#[test]
fn invalid_arc_parameter_sets_are_rejected() {
    let four = params("arc-four-regions.json");
    let two = params("arc-two-regions.json");
    let create = params("arc-create.json");
    let plain = params("three-regions-aurora.json");
    let arn = |path: &str| format!("arn:aws:route53-recovery-control::123456789012:{path}");
    let panel = p(&four, "ArcControlPanelArn").to_owned();
    let one_endpoint = "us-east-1=https://a.route53-recovery-cluster.us-east-1.amazonaws.com/v1".to_owned();
    let mistakes: Vec<(&Value, &str, String, &str)> = vec![
        (&four, "ArcClusterEndpoints", String::new(), "rule ArcNeedsClusterEndpoints"),
        (&four, "ArcClusterEndpoints", one_endpoint, "ArcClusterEndpoints: `"),
        (
            &four,
            "ArcClusterEndpoints",
            p(&four, "ArcClusterEndpoints").replace("/v1,", "/v1\",\""),
            "ArcClusterEndpoints: `",
        ),
        (&four, "ArcClusterEndpoints", p(&four, "ArcClusterEndpoints").replace(",", ", "), "ArcClusterEndpoints: `"),
        (&four, "ArcClusterArn", String::new(), "rule ArcExistingIsComplete"),
        (&four, "ArcSafetyRuleArn", String::new(), "rule ArcExistingIsComplete"),
        (&four, "Region1RoutingControlArn", String::new(), "rule ArcExistingIsComplete"),
        (&four, "Region4RoutingControlArn", String::new(), "rule ArcExistingIsComplete"),
        (&four, "Region1RoutingControlArn", arn("cluster/x"), "Region1RoutingControlArn: `"),
        (&four, "ArcSafetyRuleArn", format!("{panel}/routingcontrol/x"), "ArcSafetyRuleArn: `"),
        (&four, "ArcControlPanelArn", "arn:aws:route53:::controlpanel/x".to_owned(), "ArcControlPanelArn: `"),
        (&four, "RoutingBackend", "route53".to_owned(), "RoutingBackend: `route53` is not one of"),
        (&four, "ArcResources", "import".to_owned(), "ArcResources: `import` is not one of"),
        (&two, "Region3RoutingControlArn", format!("{panel}/routingcontrol/x"), "rule RoutingControlsNeedTheirSlot"),
        (&plain, "Region1RoutingControlArn", format!("{panel}/routingcontrol/x"), "rule HealthCheckBackendTakesNoArc"),
        (
            &plain,
            "ArcClusterEndpoints",
            p(&four, "ArcClusterEndpoints").to_owned(),
            "rule HealthCheckBackendTakesNoArc",
        ),
        (&plain, "Region1HealthCheckId", String::new(), "rule HealthChecksAreGiven"),
        (&plain, "Region3HealthCheckId", String::new(), "rule Region3IsComplete"),
        (&create, "ArcClusterArn", p(&four, "ArcClusterArn").to_owned(), "rule ArcCreateMakesItsOwn"),
        (&create, "Region2RoutingControlArn", format!("{panel}/routingcontrol/x"), "rule ArcCreateMakesItsOwn"),
        (&create, "Region1", "eu-central-1".to_owned(), "rule ArcCreateMakesItsOwn"),
        (
            &create,
            "Region2HealthCheckId",
            "22222222-2222-4222-8222-222222222222".to_owned(),
            "rule ArcCreatesTheHealthChecks",
        ),
    ];
    let variants: Vec<Value> = mistakes
        .iter()
        .map(|(base, key, value, _)| {
            let mut params = (*base).clone();
            params[*key] = Value::String(value.clone());
            params
        })
        .collect();
    let files = [
        ("invalid-arc-missing-routing-control.json", "rule ArcExistingIsComplete"),
        ("invalid-arc-values-with-health-check.json", "rule HealthCheckBackendTakesNoArc"),
        ("invalid-arc-create-region.json", "rule ArcCreateMakesItsOwn"),
    ];
    let file_params: Vec<Value> = files.iter().map(|(f, _)| params(f)).collect();
    let mut cases: Vec<Case> = variants.iter().map(Case::new).collect();
    cases.extend(file_params.iter().map(Case::new));
    cases.push(Case { skip_rules: true, ..Case::new(&file_params[0]) });
    let rendered = render_all(&cases);

    let expected = mistakes
        .iter()
        .map(|(_, k, v, e)| (format!("{k}={v:?}"), *e))
        .chain(files.iter().map(|(f, e)| ((*f).to_owned(), *e)));
    for ((what, expected), r) in expected.zip(&rendered) {
        assert_eq!(r.status, 2, "{what} was accepted");
        assert!(r.problems.iter().any(|p| p.contains(expected)), "{what}: expected `{expected}` in {:?}", r.problems);
    }
    // Rules bypassed: the arc block lacks Region3's control, which the shared crate refuses (needs
    // the shared crate's routing-backend validation).
    let bypassed = rendered.last().expect("bypassed case");
    assert_eq!(bypassed.status, 0, "{:?}", bypassed.problems);
    let json = bypassed.output["topology"].as_str().expect("topology");
    let err = Topology::from_json(json).expect_err("a cell without a routing control");
    assert!(
        matches!(&err, TopologyError::Invalid(v) if v.iter().any(|v| v.field.starts_with("routing.arc.routing_controls"))),
        "{err}"
    );
}

/// Every signal an operator must act on has an alarm that notifies the operator topic: the one
/// the stack creates when `OperatorTopicArn` is empty, else the one named. The dashboard is valid
/// JSON and draws what the README says, with the RPO budget and the RTO objective as lines.
#[test]
fn operators_are_alarmed_on_every_signal_and_see_a_dashboard() {
    let created = params("two-regions.json");
    let mut given = created.clone();
    given["OperatorTopicArn"] = "arn:aws:sns:eu-central-1:123456789012:on-call".into();
    given["RpoBudgetMs"] = "2500".into();
    given["RtoObjectiveSeconds"] = "120".into();
    let rendered = render_all(&[Case::new(&created), Case::new(&given)]);
    // The created topic's Ref, as render_topology.py stands it in (CloudFormation's naming).
    let created_topic = "arn:aws:sns:eu-central-1:123456789012:multisite-OperatorTopic-0D984D9DF0D4";
    for (r, topic) in
        rendered.iter().zip([json!(created_topic), json!("arn:aws:sns:eu-central-1:123456789012:on-call")])
    {
        assert_eq!(r.status, 0, "{:?}", r.problems);
        let monitoring = r.output["monitoring"].as_object().expect("monitoring resources");
        assert_eq!(monitoring.contains_key("OperatorTopic"), topic == created_topic, "a topic only when none is given");
        let alarms: Vec<(&String, &Value)> = monitoring
            .iter()
            .filter(|(_, m)| m["type"] == "AWS::CloudWatch::Alarm")
            .map(|(id, m)| (id, &m["properties"]))
            .collect();
        for (id, alarm) in &alarms {
            assert_eq!(alarm["AlarmActions"], json!([topic]), "{id} notifies the operator topic");
        }
        // What each alarm watches: a metric (namespace, name, the function dimension) or a query.
        let watched = |alarm: &Value| -> String {
            match alarm["Metrics"].as_array() {
                Some(queries) => queries.iter().filter_map(|q| q["Expression"].as_str()).collect::<Vec<_>>().join(" "),
                None => format!(
                    "{}/{} {}",
                    alarm["Namespace"].as_str().unwrap_or_default(),
                    alarm["MetricName"].as_str().unwrap_or_default(),
                    alarm["Dimensions"]
                        .as_array()
                        .map(|d| d.iter().map(|d| d["Value"].to_string()).collect::<Vec<_>>().join(","))
                        .unwrap_or_default()
                ),
            }
        };
        let all: Vec<String> = alarms.iter().map(|(_, a)| watched(a)).collect();
        let has = |needle: &str| all.iter().any(|w| w.contains(needle));
        for signal in [
            "SUM(Refusals)",
            "SUM(StepFailures)",
            "MAX(ScalingShortfall)",
            "multisite/RpoBudgetBreached \"lag-probe\"",
            "multisite/ReadinessFailures \"lag-probe\"",
            "multisite/RtoObjectiveExceeded \"lag-probe\"",
            "AWS/SQS/ApproximateNumberOfMessagesVisible",
        ] {
            assert!(has(signal), "an alarm on {signal}: {all:#?}");
        }
        for function in ["Failover", "Scaler", "LagProbe", "Provisioner"] {
            for metric in ["Errors", "Throttles"] {
                assert!(
                    has(&format!("AWS/Lambda/{metric} \"<Ref:{function}Function>\"")),
                    "{function} {metric}: {all:#?}"
                );
            }
        }
        // A lag-probe that stopped reporting: no datapoint is breaching.
        let silent = &monitoring["LagProbeSilentAlarm"]["properties"];
        assert_eq!(
            (silent["TreatMissingData"].as_str(), silent["Statistic"].as_str()),
            (Some("breaching"), Some("SampleCount"))
        );
        assert_eq!(silent["ComparisonOperator"], "LessThanThreshold");
        // Every other alarm stays quiet without data (a metric only emitted when something happens).
        for (id, alarm) in alarms.iter().filter(|(id, _)| id.as_str() != "LagProbeSilentAlarm") {
            assert_eq!(alarm["TreatMissingData"], "notBreaching", "{id}");
        }

        let body: Value = serde_json::from_str(
            monitoring["Dashboard"]["properties"]["DashboardBody"].as_str().expect("a rendered body"),
        )
        .expect("the dashboard body is JSON");
        let widgets = body["widgets"].as_array().expect("widgets");
        let text = body.to_string();
        for drawn in [
            "ActiveRegions",
            "EvacuatedRegions",
            "ReplicationLagMs",
            "ReadinessFailures",
            "RtoBoundSeconds",
            "Evacuations",
            "Failbacks",
            "Refusals",
            "Errors",
            "Duration",
        ] {
            assert!(text.contains(drawn), "the dashboard draws {drawn}");
        }
        let line = |title: &str| {
            widgets
                .iter()
                .find(|w| w["properties"]["title"].as_str().is_some_and(|t| t.contains(title)))
                .map(|w| w["properties"]["annotations"]["horizontal"][0]["value"].clone())
        };
        let (rpo, rto) = if topic == created_topic { (1500, 300) } else { (2500, 120) };
        assert_eq!(line("RPO budget"), Some(json!(rpo)), "the RPO budget line follows RpoBudgetMs");
        assert_eq!(line("RTO bound"), Some(json!(rto)), "the RTO objective line follows RtoObjectiveSeconds");
        assert!(widgets.iter().all(|w| w["properties"]["region"] == "eu-central-1"), "the stack's own Region");
        assert_eq!(r.output["outputs"]["OperatorTopicArn"], topic);
    }
}

/// tests/deploy/topology_size.py on the template as it is, and on three broken copies it must
/// refuse: a String reaching the topology without MaxLength, a MaxLength raised without a longer
/// value in the largest file, and the Standard tier (4 KB) for a topology that can be larger.
#[test]
fn topology_size_fits_its_limits() {
    let run = |template: &std::path::Path| {
        let out = Command::new(python())
            .current_dir(root())
            .arg("tests/deploy/topology_size.py")
            .arg("--template")
            .arg(template)
            .arg("--json")
            .output()
            .expect("run topology_size.py");
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    };
    let (status, report) = run(&root().join("template.yaml"));
    assert_eq!(status, Some(0), "{report:#}");
    let topology = report["largest"]["topology"].as_u64().expect("topology size");
    // Larger than the Standard tier's 4 KB (why the tier is Intelligent-Tiering), within 8 KB.
    assert!((4097..=8192).contains(&topology), "{report:#}");
    for (name, size) in report["largest"].as_object().expect("largest") {
        if name != "topology" {
            assert!(size.as_u64().expect("size") <= 4096, "{name}: {size}");
        }
    }
    assert_eq!(report["shapes"].as_object().expect("shapes").len(), 3, "every shape rendered: {report:#}");
    // The largest is a deployment the functions accept, not just a long string.
    let largest = params("largest-arc.json");
    let topology = accepted(&render_all(&[Case::new(&largest)])[0]);
    assert_eq!(topology.cells.len(), 4);

    let template = std::fs::read_to_string(root().join("template.yaml")).expect("template");
    let dir = std::env::temp_dir().join(format!("multisite-topology-size-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let broken = [
        (
            "unbounded",
            template.replacen(
                "  Region2AlarmName:\n    Type: String\n    MaxLength: 255\n",
                "  Region2AlarmName:\n    Type: String\n",
                1,
            ),
            "Region2AlarmName: a String that reaches the topology or an environment needs MaxLength",
        ),
        (
            "raised",
            template.replacen(
                "  Region3AutoScalingGroup:\n    Type: String\n    MaxLength: 255\n",
                "  Region3AutoScalingGroup:\n    Type: String\n    MaxLength: 300\n",
                1,
            ),
            "Region3AutoScalingGroup: the largest file's value has 255 characters, MaxLength is 300",
        ),
        (
            "standard",
            template.replacen("      Tier: Intelligent-Tiering\n", "      Tier: Standard\n", 1),
            "TopologyParameter: Tier Standard holds 4096 bytes",
        ),
    ];
    for (name, text, problem) in broken {
        assert_ne!(text, template, "{name}: the edit must apply");
        let path = dir.join(format!("{name}.yaml"));
        std::fs::write(&path, text).expect("write template");
        let (status, report) = run(&path);
        assert_eq!(status, Some(1), "{name}: {report:#}");
        let problems = report["problems"].to_string();
        assert!(problems.contains(problem), "{name}: {problems}");
    }
}

/// RegionNEndpointUrl: the canary probing a cell and the cell's health alarm on it are created in
/// the stack of the Region the alarm lives in (its watcher) and nowhere else; the alarm has the
/// name the topology gives it, so failover and scaler act on it; a cell whose alarm would live in
/// the cell's own Region (or nowhere given) is refused.
#[test]
fn watcher_canaries_probe_each_cell_from_outside_it() {
    let mut watched = alarms_elsewhere("us-east-1");
    watched["Region3AlarmRegion"] = "us-east-1".into();
    watched["Region1EndpointUrl"] = "https://us-east-1.origin.example.com/health".into();
    watched["Region2EndpointUrl"] = "https://eu-west-1.origin.example.com/health".into();
    watched["Region3EndpointUrl"] = "https://ap-southeast-1.origin.example.com/health".into();
    let mut own_region = watched.clone();
    own_region["Region2AlarmRegion"] = "eu-west-1".into();
    let mut no_watcher = watched.clone();
    no_watcher["Region3AlarmRegion"] = "".into();
    let rendered = render_all(&[
        Case { region: Some("us-east-1"), ..Case::new(&watched) },
        Case { region: Some("eu-west-1"), ..Case::new(&watched) },
        Case { region: Some("ap-southeast-1"), ..Case::new(&watched) },
        Case::new(&own_region),
        Case::new(&no_watcher),
    ]);
    // (stack Region, cell slot watched there, the cell's Region, its alarm name)
    let expected = [
        ("us-east-1", 3, "ap-southeast-1", "web-ap-southeast-1-unhealthy"),
        ("eu-west-1", 1, "us-east-1", "web-us-east-1-unhealthy"),
        ("ap-southeast-1", 2, "eu-west-1", "web-eu-west-1-unhealthy"),
    ];
    for (r, (stack, slot, cell, alarm)) in rendered.iter().zip(expected) {
        assert_eq!(r.status, 0, "{stack}: {:?}", r.problems);
        let monitoring = r.output["monitoring"].as_object().expect("monitoring");
        let canaries: Vec<&String> =
            monitoring.iter().filter(|(_, m)| m["type"] == "AWS::Synthetics::Canary").map(|(id, _)| id).collect();
        assert_eq!(canaries, [&format!("Region{slot}Canary")], "{stack}: one canary, for the cell it watches");
        let canary = &monitoring[&format!("Region{slot}Canary")]["properties"];
        assert_eq!(
            canary["RunConfig"]["EnvironmentVariables"]["ENDPOINT_URL"],
            format!("https://{cell}.origin.example.com/health")
        );
        assert_eq!(canary["Schedule"]["Expression"], "rate(1 minute)");
        assert_eq!(canary["RuntimeVersion"], "syn-nodejs-3.1");
        assert!(
            canary["Code"]["Script"].as_str().expect("script").contains("throw new Error"),
            "a failed probe fails the run"
        );
        let health = &monitoring[&format!("Region{slot}HealthAlarm")]["properties"];
        assert_eq!(health["AlarmName"], alarm, "{stack}: the alarm the topology names for {cell}");
        assert_eq!(
            (&health["Namespace"], &health["MetricName"]),
            (&json!("CloudWatchSynthetics"), &json!("SuccessPercent"))
        );
        assert_eq!(health["Dimensions"][0]["Value"], format!("<Ref:Region{slot}Canary>"));
        assert_eq!(health["TreatMissingData"], "missing", "a silent canary never evacuates a Region");
        let silent = &monitoring[&format!("Region{slot}CanarySilentAlarm")]["properties"];
        assert_eq!((&silent["TreatMissingData"], &silent["Statistic"]), (&json!("breaching"), &json!("SampleCount")));
        assert!(silent["AlarmActions"][0].as_str().is_some_and(|a| a.contains("OperatorTopic")), "{silent}");
        // The stack's EventBridge rule catches the alarm it created (the watcher's rule, by name).
        let names = r.output["alarm_rule_names"].as_array().expect("names");
        assert!(names.contains(&json!(alarm)), "{stack}: {names:?}");
    }
    for (r, slot) in [(&rendered[3], 2), (&rendered[4], 3)] {
        assert_eq!(r.status, 2, "refused");
        assert!(
            r.problems
                .iter()
                .any(|p| p.contains(&format!("Region{slot}EndpointUrl needs Region{slot}AlarmRegion, another Region"))),
            "{:?}",
            r.problems
        );
    }
    // Without RegionNEndpointUrl no stack creates a canary.
    let plain = params("three-regions-aurora.json");
    let out = &render_all(&[Case::new(&plain)])[0].output;
    assert!(
        !out["monitoring"].as_object().expect("monitoring").values().any(|m| m["type"] == "AWS::Synthetics::Canary")
    );
}

/// Approval and ApprovalTimeoutSeconds reach the topology's failover_policy with the operator topic
/// (the given one, else the one the stack creates); none leaves the approval fields out; a timeout
/// without approval is refused by a Rule.
#[test]
fn approval_parameters_reach_the_failover_policy() {
    use shared::topology::ApprovalMode;
    let base = params("two-regions.json");
    let mut required = base.clone();
    required["Approval"] = "required".into();
    let mut timed = required.clone();
    timed["ApprovalTimeoutSeconds"] = "600".into();
    timed["OperatorTopicArn"] = "arn:aws:sns:eu-central-1:123456789012:on-call".into();
    let mut stray = base.clone();
    stray["ApprovalTimeoutSeconds"] = "600".into();
    let rendered = render_all(&[Case::new(&base), Case::new(&required), Case::new(&timed), Case::new(&stray)]);
    let none = accepted(&rendered[0]).failover_policy;
    assert_eq!(
        (none.approval, none.approval_timeout_seconds, none.approval_topic_arn),
        (ApprovalMode::None, None, None)
    );
    assert!(raw_topology(&rendered[0])["failover_policy"].get("approval").is_none());
    let created = accepted(&rendered[1]).failover_policy;
    assert_eq!(created.approval, ApprovalMode::Required);
    assert_eq!(created.approval_timeout_seconds, None, "0: wait for an operator");
    assert_eq!(
        created.approval_topic_arn.as_deref(),
        Some("arn:aws:sns:eu-central-1:123456789012:multisite-OperatorTopic-0D984D9DF0D4")
    );
    let given = accepted(&rendered[2]).failover_policy;
    assert_eq!(given.approval_timeout_seconds, Some(600));
    assert_eq!(given.approval_topic_arn.as_deref(), Some("arn:aws:sns:eu-central-1:123456789012:on-call"));
    assert_eq!(rendered[3].status, 2);
    assert!(
        rendered[3].problems.iter().any(|p| p.contains("ApprovalTimeoutSeconds is the wait of Approval=required")),
        "{:?}",
        rendered[3].problems
    );
}

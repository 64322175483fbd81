//! `scripts/deploy.sh` with a stand-in `sam` on PATH that records its calls and deploys as `sam`
//! would: a CloudFormation stack `multisite` with those parameters, in the emulator's
//! CloudFormation (moto), which the script reads back with DescribeStacks. Every Region gets the
//! same parameters, Region1 first; a set that differs from what a Region runs is refused, and
//! says how to fix it; an invalid set is refused before anything is deployed.

use multisite_tests::{Emulator, repo_root};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The stand-in: `sam --version`, and `sam deploy --config-file F --region R --parameter-overrides
/// K=V...` (what the script runs), recorded as one JSON line in $SAM_CALLS; the deploy creates or
/// updates the stack with a template declaring exactly those parameters.
const STAND_IN: &str = r#"#!PYTHON
import json, os, sys
import boto3
args = sys.argv[1:]
if args[:1] == ["--version"]:
    print("SAM CLI, version 1.170.0"); sys.exit(0)
with open(os.environ["SAM_CALLS"], "a") as log:
    log.write(json.dumps(args) + "\n")
if args[:1] != ["deploy"]:
    sys.exit("stand-in sam: only deploy")
region = args[args.index("--region") + 1]
overrides = args[args.index("--parameter-overrides") + 1:]
params = dict(o.split("=", 1) for o in overrides)
template = {"Parameters": {k: {"Type": "String"} for k in params},
            "Resources": {"Stand": {"Type": "AWS::CloudFormation::WaitConditionHandle"}}}
cfn = boto3.client("cloudformation", region_name=region)
body = dict(StackName="multisite", TemplateBody=json.dumps(template),
            Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in params.items()])
try:
    cfn.describe_stacks(StackName="multisite")
    exists = True
except cfn.exceptions.ClientError as e:
    if "does not exist" not in str(e):
        raise
    exists = False
if not exists:
    cfn.create_stack(**body)
    print(f"Successfully created stack - multisite in {region}")
else:
    try:
        cfn.update_stack(**body)
        print(f"Successfully updated stack - multisite in {region}")
    except cfn.exceptions.ClientError as e:
        # As sam with fail_on_empty_changeset = false (samconfig.toml): nothing to change is fine.
        if "No updates" not in str(e):
            raise
        print(f"No changes to deploy. Stack multisite is up to date")
"#;

struct Run {
    code: i32,
    stderr: String,
}

struct Setup {
    emulator: multisite_tests::EmulatorLease,
    dir: PathBuf,
}

impl Setup {
    fn new() -> Self {
        let emulator = Emulator::lease();
        let dir =
            std::env::temp_dir().join(format!("multisite-deploy-{}", multisite_tests::fixtures::unique_name("t")));
        std::fs::create_dir_all(dir.join("bin")).expect("temp dir");
        let python = multisite_tests::emulator_python();
        let sam = dir.join("bin/sam");
        std::fs::write(&sam, STAND_IN.replace("PYTHON", &python.display().to_string())).expect("stand-in");
        make_executable(&sam);
        Self { emulator, dir }
    }

    fn params(&self, name: &str, edit: impl FnOnce(&mut Value)) -> PathBuf {
        let text = std::fs::read_to_string(repo_root().join("tests/deploy/params/two-regions.json")).expect("params");
        let mut params: Value = serde_json::from_str(&text).expect("JSON");
        edit(&mut params);
        let path = self.dir.join(name);
        std::fs::write(&path, params.to_string()).expect("write params");
        path
    }

    fn deploy(&self, params: &Path, extra: &[&str]) -> Run {
        let path = format!("{}:{}", self.dir.join("bin").display(), std::env::var("PATH").unwrap_or_default());
        let out = Command::new(repo_root().join("scripts/deploy.sh"))
            .arg(params)
            .arg("--skip-build")
            .args(extra)
            .envs(self.emulator.process_env())
            .env("PATH", path)
            .env("SAM_CALLS", self.dir.join("calls.jsonl"))
            .output()
            .expect("run deploy.sh");
        Run { code: out.status.code().unwrap_or(-1), stderr: String::from_utf8_lossy(&out.stderr).into_owned() }
    }

    /// Every `sam` call so far, as argument lists.
    fn calls(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.dir.join("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a call"))
            .collect()
    }
}

fn make_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = std::fs::metadata(path).expect("metadata").permissions();
    permissions.set_mode(0o755);
    std::fs::set_permissions(path, permissions).expect("chmod");
}

fn region_of(call: &[String]) -> &str {
    call.iter().position(|a| a == "--region").map_or("", |i| call[i + 1].as_str())
}

fn overrides(call: &[String]) -> Vec<String> {
    let at = call.iter().position(|a| a == "--parameter-overrides").expect("overrides");
    let mut o = call[at + 1..].to_vec();
    o.sort();
    o
}

#[test]
fn every_region_gets_the_same_parameters_region1_first_and_a_differing_set_is_refused() {
    let setup = Setup::new();
    let first = setup.params("first.json", |_| {});
    let run = setup.deploy(&first, &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = setup.calls();
    assert_eq!(calls.iter().map(|c| region_of(c)).collect::<Vec<_>>(), ["eu-central-1", "us-west-2"], "{calls:?}");
    for call in &calls {
        assert_eq!(&call[..3], ["deploy", "--config-file", "samconfig.toml"], "{call:?}");
    }
    assert_eq!(overrides(&calls[0]), overrides(&calls[1]), "the same parameters everywhere");
    assert!(
        overrides(&calls[0]).contains(&"Region1AlarmName=shop euc1 5xx".to_owned()),
        "a value with spaces stays whole"
    );
    // The topology the functions will read, for `multisite --topology`.
    let written =
        std::fs::read_to_string(repo_root().join("target/deploy/first.topology.json")).expect("topology file");
    let topology = shared::Topology::from_json(&written).expect("a valid topology");
    assert_eq!(topology.regions().collect::<Vec<_>>(), ["eu-central-1", "us-west-2"]);

    // Another budget: refused until --update, naming each Region and the parameter.
    let changed = setup.params("changed.json", |p| p["RpoBudgetMs"] = "2500".into());
    let run = setup.deploy(&changed, &[]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("eu-central-1 runs other parameters: RpoBudgetMs=1500 -> 2500"), "{}", run.stderr);
    assert!(run.stderr.contains("us-west-2 runs other parameters"), "{}", run.stderr);
    assert!(run.stderr.contains("--update"), "says how to fix it: {}", run.stderr);
    // One Region alone may not drift from the others, --update or not.
    let run = setup.deploy(&changed, &["--region", "us-west-2", "--update"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("a single Region must run what the others run"), "{}", run.stderr);
    assert_eq!(setup.calls().len(), 2, "nothing deployed by a refused run");

    let run = setup.deploy(&changed, &["--update"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let calls = setup.calls();
    assert_eq!(calls[2..].iter().map(|c| region_of(c)).collect::<Vec<_>>(), ["eu-central-1", "us-west-2"]);
    assert!(calls[2..].iter().all(|c| overrides(c).contains(&"RpoBudgetMs=2500".to_owned())));
    // Now every Region runs the file: one Region may be deployed again on its own.
    let run = setup.deploy(&changed, &["--region", "us-west-2"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(setup.calls().len(), 5);
    assert_eq!(region_of(&setup.calls()[4]), "us-west-2");

    // A run that stopped half way left us-west-2 on the old set (deployed here by `sam` itself):
    // deploying that one Region brings it back to what the others run.
    let sam = Command::new(setup.dir.join("bin/sam"))
        .args(["deploy", "--config-file", "samconfig.toml", "--region", "us-west-2", "--parameter-overrides"])
        .args(overrides(&calls[0]))
        .envs(setup.emulator.process_env())
        .env("SAM_CALLS", setup.dir.join("calls.jsonl"))
        .status()
        .expect("stand-in sam");
    assert!(sam.success());
    let run = setup.deploy(&changed, &["--region", "eu-central-1"]);
    assert_eq!(run.code, 1, "eu-central-1 alone may not follow a file us-west-2 does not run: {}", run.stderr);
    assert!(run.stderr.contains("us-west-2 runs other parameters: RpoBudgetMs=1500 -> 2500"), "{}", run.stderr);
    let run = setup.deploy(&changed, &["--region", "us-west-2"]);
    assert_eq!(run.code, 0, "the lagging Region catches up: {}", run.stderr);
    assert_eq!(setup.calls().len(), 7);
    assert!(overrides(&setup.calls()[6]).contains(&"RpoBudgetMs=2500".to_owned()));
}

#[test]
fn an_invalid_parameter_set_or_region_is_refused_before_anything_is_deployed() {
    let setup = Setup::new();
    let run = setup.deploy(&repo_root().join("tests/deploy/params/invalid-region-name.json"), &[]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("is not a parameter set template.yaml accepts"), "{}", run.stderr);
    let valid = setup.params("valid.json", |_| {});
    let run = setup.deploy(&valid, &["--region", "ap-south-1"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--region ap-south-1 is not a Region of"), "{}", run.stderr);
    assert!(setup.calls().is_empty(), "{:?}", setup.calls());
}

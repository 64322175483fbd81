//! The `multisite` binary end to end against the emulator: a deployment in which us-east-1 was
//! evacuated by failover and scaler (real handlers, signed with their template.yaml roles, fed the
//! event CloudWatch emitted) and measured by lag-probe; `status` and `history`, human and JSON,
//! read it back as the operator (the administrator's credentials); bad input is a clear error.
//!
//! The operator's transitions (`plan`, `evacuate`, `failback`, `approve`) run here with `--local`:
//! failover's own code in the `multisite` process, with the operator's credentials (the emulator
//! serves no Lambda Invoke of our functions; the remote path's request shape and error mapping
//! are tested with aws-smithy-mocks in `src/remote.rs`). What failover itself calls on its own
//! (the approval's SNS notification, the scheduled reconcile) runs as failover's role.

use multisite_tests::deployment::Deployment;
use multisite_tests::fixtures::unique_name;
use multisite_tests::roles::Function;
use multisite_tests::{Emulator, EmulatorLease};
use serde_json::{Value, json};
use shared::capacity::GroupSizes;
use shared::clock::SystemClock;
use std::process::Command;

const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];
/// Where the functions reacting to us-east-1 run: its alarm's watcher.
const HOME: &str = "eu-west-1";

struct World {
    emulator: EmulatorLease,
    deployment: Deployment,
}

impl World {
    async fn new() -> Self {
        Self::with_policy(json!({"min_healthy_regions": 1, "cooldown_seconds": 0})).await
    }

    async fn with_policy(policy: Value) -> Self {
        let emulator = Emulator::lease();
        emulator.set_timing(100, 100, 200);
        let deployment = Deployment::spec(&REGIONS)
            .with_dns()
            .with_aurora()
            .with_groups(GroupSizes::new(2, 2, 8))
            .with_global_table(&unique_name("sessions"))
            .with_ledger_replicas()
            .with_failover_policy(policy)
            .create(&emulator)
            .await;
        assert_eq!(deployment.watcher("us-east-1"), HOME);
        Self { emulator, deployment }
    }

    /// us-east-1's alarm goes to ALARM; failover, scaler and lag-probe run in HOME as deployed.
    async fn evacuate_us_east_1(&self) -> String {
        let change = self.deployment.alarm_change(&self.emulator, "us-east-1", "ALARM").await;
        let identity = multisite_tests::deployment::identity();
        let topology = &self.deployment.topology;
        let failover_clients = self.deployment.function_clients(&self.emulator, Function::Failover, HOME).await;
        let deps = failover::Deps {
            topology,
            clients: &failover_clients,
            home_region: HOME,
            clock: &SystemClock,
            identity: &identity,
        };
        let response = failover::handle(change.clone(), &deps).await.expect("failover");
        assert_eq!(response.reports[0].outcome, failover::Outcome::Reconciled, "{response:#?}");
        let scaler_clients = self.deployment.function_clients(&self.emulator, Function::Scaler, HOME).await;
        let deps = scaler::Deps {
            topology,
            clients: &scaler_clients,
            home_region: HOME,
            clock: &SystemClock,
            identity: &identity,
        };
        scaler::handle(change.clone(), &deps).await.expect("scaler");
        self.lag_probe().await;
        // The change's id as failover records it: the alarm, when its state changed, the state.
        let at = change["detail"]["state"]["timestamp"].as_str().and_then(shared::alarm::parse_alarm_time);
        let at = at.map(|t| t.timestamp_millis() as u64).expect("the state change's time");
        format!("web-us-east-1-unhealthy#{}#Alarm", shared::alarm::format_alarm_time(at))
    }

    /// Runs `multisite ARGS` as the operator, with the topology in the environment.
    fn multisite(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_multisite"))
            .args(args)
            .envs(self.emulator.process_env())
            .env("MULTISITE_TOPOLOGY", self.deployment.topology_json.to_string())
            .env_remove("MULTISITE_TOPOLOGY_FILE")
            .output()
            .expect("run multisite");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn json(&self, args: &[&str]) -> Value {
        let (code, stdout, stderr) = self.multisite(args);
        assert_eq!(code, 0, "multisite {args:?}: {stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{args:?} is not JSON ({e}): {stdout}"))
    }
}

fn region<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["regions"].as_array().and_then(|r| r.iter().find(|r| r["region"] == name)).expect(name)
}

#[tokio::test]
async fn status_and_history_show_an_evacuation_as_the_ledger_and_the_deployment_have_it() {
    let world = World::new().await;
    // Before anything happened: every Region active and in routing, the writer in the first.
    let status = world.json(&["status", "--json"]);
    for name in REGIONS {
        let r = region(&status, name);
        assert_eq!((r["status"].as_str(), r["in_routing"].as_bool()), (Some("Active"), Some(true)), "{r}");
        assert_eq!(r["capacity"]["sizes"], json!({"min": 2, "desired": 2, "max": 8}), "{r}");
    }
    assert_eq!(region(&status, "us-east-1")["writer"], true);
    assert!(status["lag_probe"].is_null(), "no probe ran yet: {status}");
    assert_eq!(status["unreadable"], json!([]));
    assert_eq!(world.json(&["history", "--json"]), json!([]));
    // As against a deployed stack: the topology from its SSM parameter in the operator's Region.
    let ssm = aws_sdk_ssm::Client::new(
        &world.emulator.sdk_config().await.to_builder().region(aws_config::Region::new("us-east-1")).build(),
    );
    let topology = world.deployment.topology_json.to_string();
    let put = ssm.put_parameter().name("/multisite/multisite/topology").value(topology);
    put.r#type(aws_sdk_ssm::types::ParameterType::String).send().await.expect("put the topology parameter");
    let from_parameter = Command::new(env!("CARGO_BIN_EXE_multisite"))
        .args(["status", "--json"])
        .envs(world.emulator.process_env())
        .env("MULTISITE_TOPOLOGY_PARAMETER", "/multisite/multisite/topology")
        .env_remove("MULTISITE_TOPOLOGY")
        .env_remove("MULTISITE_TOPOLOGY_FILE")
        .output()
        .expect("run multisite");
    assert!(from_parameter.status.success(), "{}", String::from_utf8_lossy(&from_parameter.stderr));
    let read: Value = serde_json::from_slice(&from_parameter.stdout).expect("status JSON");
    assert_eq!(read["regions"], status["regions"], "the same fleet, read through the parameter");

    let change_id = world.evacuate_us_east_1().await;
    let status = world.json(&["status", "--json"]);
    let us = region(&status, "us-east-1");
    assert_eq!(us["status"], "Evacuated", "{us}");
    assert_eq!(us["cause"], change_id.as_str(), "by which alarm change: {us}");
    assert!(us["since"].as_str().is_some_and(|s| s.ends_with('Z')), "{us}");
    assert_eq!(us["in_routing"], false, "its health check forced unhealthy: {us}");
    assert_eq!(us["writer"], false);
    let eu = region(&status, "eu-west-1");
    assert_eq!((eu["writer"].as_bool(), eu["in_routing"].as_bool()), (Some(true), Some(true)), "{eu}");
    for survivor in ["eu-west-1", "ap-southeast-1"] {
        let r = region(&status, survivor);
        // Two survivors carry three Regions' desired 2: ceil(6 / 2) = 3 each.
        assert_eq!(r["capacity"]["sizes"]["desired"], 3, "{r}");
        assert_eq!(r["scaling"]["covering"], json!(["us-east-1"]), "{r}");
        assert_eq!(r["scaling"]["baseline"], json!({"min": 2, "desired": 2, "max": 8}), "{r}");
        assert_eq!(r["probe"]["reachable"], true, "{r}");
    }
    let probe = &status["lag_probe"];
    assert!(probe["measured_at"].is_string() && probe["rpo_budget_ms"] == 2000, "{status}");
    assert_eq!(status["unreadable"], json!([]), "{status}");
    assert_eq!((status["arbiter"].as_str(), status["routing_backend"].as_str()), (Some(HOME), Some("health_check")));

    // The human screen: one line per Region, and why us-east-1 is out.
    let (code, screen, _) = world.multisite(&["status"]);
    assert_eq!(code, 0);
    eprintln!("{screen}");
    let line = |name: &str| screen.lines().find(|l| l.starts_with(name)).unwrap_or_default().to_owned();
    let us_line = line("us-east-1");
    assert!(us_line.contains("Evacuated") && us_line.contains(" out "), "{screen}");
    assert!(line("eu-west-1").contains("writer") && line("eu-west-1").contains("3/3/8"), "{screen}");
    assert!(screen.contains(&format!("us-east-1: Evacuated by {change_id}")), "{screen}");
    assert!(screen.contains("scaled from 2/2/8 to 3/3/8 covering us-east-1"), "{screen}");
    assert!(screen.contains("lag-probe: measured"), "{screen}");

    // History: the transition and its steps, newest first; one Region's; the human listing.
    let history = world.json(&["history", "--json"]);
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
    let t = &history[0];
    assert_eq!((t["region"].as_str(), t["to"].as_str()), (Some("us-east-1"), Some("Evacuated")));
    assert_eq!(t["change_id"], change_id.as_str());
    let steps: Vec<(&str, bool)> = t["steps"]
        .as_array()
        .map(|s| s.iter().map(|s| (s["action"].as_str().unwrap_or("?"), s["ok"] == true)).collect())
        .unwrap_or_default();
    assert_eq!(steps, [("InvertHealthCheck", true), ("MoveAuroraWriter", true)], "{t}");
    assert_eq!(world.json(&["history", "--region", "eu-west-1", "--json"]), json!([]));
    let (code, listing, _) = world.multisite(&["history"]);
    assert_eq!(code, 0);
    assert!(listing.contains("us-east-1 -> Evacuated") && listing.contains("MoveAuroraWriter"), "{listing}");
}

#[tokio::test]
async fn bad_input_is_a_clear_error_and_an_unreadable_region_is_named_not_fatal() {
    let world = World::new().await;
    let (code, _, stderr) = world.multisite(&["history", "--region", "sa-east-1"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("sa-east-1 is not a Region of the topology (us-east-1, eu-west-1, ap-southeast-1)"),
        "{stderr}"
    );
    let (code, _, stderr) = world.multisite(&["evacuate"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("name the Region"), "{stderr}");
    let (code, _, stderr) = world.multisite(&["--topology", "/nonexistent.json", "status"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("the topology: read /nonexistent.json"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_multisite"))
        .arg("status")
        .env("MULTISITE_TOPOLOGY", "{\"cells\": []}")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("the topology"), "{}", String::from_utf8_lossy(&out.stderr));

    // A Region whose APIs are down: status still answers, and says what it could not read.
    world.emulator.set_outage("ap-southeast-1", true);
    let status = world.json(&["status", "--json"]);
    let ap = region(&status, "ap-southeast-1");
    assert!(ap["capacity"].is_null(), "{ap}");
    let unreadable = status["unreadable"].to_string();
    assert!(unreadable.contains("ap-southeast-1's Auto Scaling group web-ap-southeast-1"), "{unreadable}");
    assert_eq!(region(&status, "us-east-1")["status"], "Active", "the ledger (in eu-west-1) still answers");
}

// ---- the operator's transitions -------------------------------------------------------------

impl World {
    /// failover as deployed in HOME (its role's clients) handles `payload`.
    async fn failover(&self, payload: Value) -> Result<failover::Response, shared::Error> {
        let identity = multisite_tests::deployment::identity();
        let clients = self.deployment.function_clients(&self.emulator, Function::Failover, HOME).await;
        let deps = failover::Deps {
            topology: &self.deployment.topology,
            clients: &clients,
            home_region: HOME,
            clock: &SystemClock,
            identity: &identity,
        };
        failover::handle(payload, &deps).await
    }

    /// The scheduled reconcile in HOME (which reconciles us-east-1: its alarm's watcher).
    async fn scheduled_reconcile(&self) -> failover::Response {
        let event: Value =
            serde_json::from_str(include_str!("../../../events/scheduled-reconcile.json")).expect("event");
        self.failover(event).await.expect("scheduled reconcile")
    }

    /// lag-probe in HOME: the verdict a failback's gate reads.
    async fn lag_probe(&self) {
        let clients = self.deployment.function_clients(&self.emulator, Function::LagProbe, HOME).await;
        let config = lag_probe::config::ProbeConfig::default();
        let deps = lag_probe::Deps {
            topology: &self.deployment.topology,
            clients: &clients,
            home_region: HOME,
            clock: &SystemClock,
            config: &config,
        };
        let event: Value =
            serde_json::from_str(include_str!("../../../events/scheduled-lag-probe.json")).expect("event");
        lag_probe::handle(event, &deps).await.expect("lag-probe");
    }

    /// `multisite ARGS` with `stdin` as its standard input.
    fn multisite_with_input(&self, args: &[&str], stdin: &str) -> (i32, String, String) {
        use std::io::Write as _;
        let mut child = Command::new(env!("CARGO_BIN_EXE_multisite"))
            .args(args)
            .envs(self.emulator.process_env())
            .env("MULTISITE_TOPOLOGY", self.deployment.topology_json.to_string())
            .env_remove("MULTISITE_TOPOLOGY_FILE")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn multisite");
        if let Some(mut input) = child.stdin.take() {
            let _ = input.write_all(stdin.as_bytes());
        }
        let out = child.wait_with_output().expect("multisite output");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Whether `status` shows the Aurora writer in `name` within 5 s.
    async fn eventually_writer(&self, name: &str) -> bool {
        for _ in 0..50 {
            if region(&self.json(&["status", "--json"]), name)["writer"] == true {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        false
    }

    async fn fleet(&self) -> shared::ledger::FleetStatus {
        self.deployment.ledger().fleet_status().await.expect("fleet status").0
    }

    async fn transitions(&self, region: &str) -> usize {
        let records: Vec<shared::ledger::Record<failover::TransitionRecord>> =
            self.deployment.ledger().list(&shared::ledger::transition_pk(region)).await.expect("transitions");
        records.len()
    }
}

fn report(answer: &Value) -> &Value {
    &answer["response"]["reports"][0]
}

fn actions(report: &Value) -> Vec<String> {
    report["plan"]["actions"]
        .as_array()
        .map(|a| a.iter().map(|a| a["action"].as_str().unwrap_or("?").to_owned()).collect())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_operator_plans_evacuates_and_fails_back_with_auto_failback_off_and_the_schedule_respects_it() {
    // Given auto_failback off (the template's default) and us-east-1 healthy.
    let world = World::new().await;
    assert!(!world.deployment.topology.failover_policy.auto_failback);

    // plan: failover's dry run, nothing written.
    let plan = world.json(&["--local", "plan", "evacuate", "us-east-1", "--planned", "--json"]);
    let r = report(&plan);
    assert_eq!(r["outcome"], "DryRun", "{plan:#}");
    assert_eq!(r["trigger"], "Operator");
    assert_eq!(actions(r), ["InvertHealthCheck", "MoveAuroraWriter"], "{r:#}");
    assert!(r["plan"]["actions"][1]["mode"] == "Switchover", "--planned moves the writer by switchover: {r:#}");
    assert_eq!((plan["via"].as_str(), plan["runner"].as_str()), (Some(HOME), Some("local")));
    assert!(r["operator"].as_str().is_some_and(|a| a.starts_with("arn:aws:")), "the STS identity: {r:#}");
    let (code, human, stderr) = world.multisite(&["--local", "plan", "failback", "us-east-1"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        human.contains("multisite plan failback us-east-1: Ignored")
            && human.contains("us-east-1 is Active already: nothing to do"),
        "{human}"
    );
    let (code, human, _) = world.multisite(&["--local", "plan", "evacuate", "us-east-1"]);
    assert_eq!(code, 0);
    assert!(
        human.contains("multisite plan evacuate us-east-1: DryRun")
            && human.contains("    InvertHealthCheck region=us-east-1"),
        "{human}"
    );
    assert_eq!(
        world.fleet().await.status_of("us-east-1"),
        shared::ledger::RegionStatus::Active,
        "a plan writes nothing"
    );
    assert_eq!(world.json(&["history", "--json"]), json!([]));

    // Without --yes the plan is shown and the question asked: no answer, nothing done.
    let (code, _, stderr) = world.multisite_with_input(&["--local", "evacuate", "us-east-1"], "");
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("plan evacuate us-east-1") && stderr.contains("evacuate us-east-1? [y/N]"), "{stderr}");
    assert!(stderr.contains("not confirmed: nothing was done"), "{stderr}");
    assert_eq!(world.transitions("us-east-1").await, 0);

    // evacuate, answering yes: reconciled through failover's path, recorded with the operator.
    let (code, out, stderr) = world.multisite_with_input(&["--local", "evacuate", "us-east-1", "--planned"], "y\n");
    assert_eq!(code, 0, "{stderr}");
    assert!(out.contains("multisite evacuate us-east-1 (planned: switchover): Reconciled"), "{out}");
    assert!(out.contains("transition recorded in the ledger: us-east-1 -> Evacuated"), "{out}");
    let status = world.json(&["status", "--json"]);
    let us = region(&status, "us-east-1");
    assert_eq!((us["status"].as_str(), us["in_routing"].as_bool()), (Some("Evacuated"), Some(false)), "{us}");
    assert!(
        us["cause"].as_str().is_some_and(|c| c.starts_with("operator#arn:aws:") && c.ends_with("#evacuate")),
        "{us}"
    );
    // The switchover takes the emulator's 200 ms: the writer shows in eu-west-1 once it is done.
    assert!(world.eventually_writer("eu-west-1").await, "switched over to the first survivor");
    let history = world.json(&["history", "--json"]);
    assert_eq!(history.as_array().map(Vec::len), Some(1), "{history}");
    assert!(history[0]["operator"].as_str().is_some_and(|a| a.starts_with("arn:aws:")), "{history}");
    let (_, listing, _) = world.multisite(&["history"]);
    assert!(listing.contains("us-east-1 -> Evacuated") && listing.contains("(operator arn:aws:"), "{listing}");

    // The same request again, and two at once: harmless (one transition, exit 0).
    let again = world.json(&["--local", "evacuate", "us-east-1", "--yes", "--json"]);
    assert_eq!(report(&again)["outcome"], "Ignored", "{again:#}");
    assert!(report(&again)["reason"].as_str().is_some_and(|r| r.contains("is Evacuated already")), "{again:#}");
    let spawn = || {
        Command::new(env!("CARGO_BIN_EXE_multisite"))
            .args(["--local", "evacuate", "us-east-1", "--yes", "--json"])
            .envs(world.emulator.process_env())
            .env("MULTISITE_TOPOLOGY", world.deployment.topology_json.to_string())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    for child in [a, b] {
        let out = child.wait_with_output().expect("output");
        assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(world.transitions("us-east-1").await, 1, "duplicates record no transition");

    // The alarm is OK: neither its OK event nor the scheduled reconcile fails the Region back.
    // (Its ALARM first, so that OK is a change: for a Region the operator evacuated, nothing to do.)
    let alarm = world.deployment.alarm_change(&world.emulator, "us-east-1", "ALARM").await;
    let answer = world.failover(alarm).await.expect("ALARM event");
    assert_eq!(answer.reports[0].outcome, failover::Outcome::Ignored, "{answer:#?}");
    let ok = world.deployment.alarm_change(&world.emulator, "us-east-1", "OK").await;
    let answer = world.failover(ok).await.expect("OK event");
    assert_eq!(answer.reports[0].outcome, failover::Outcome::FailbackPending, "{answer:#?}");
    assert!(answer.reports[0].reason.as_deref().is_some_and(|r| r.contains("evacuated by an operator")), "{answer:#?}");
    let scheduled = world.scheduled_reconcile().await;
    assert!(
        scheduled.reports.iter().all(|r| r.outcome != failover::Outcome::Reconciled || r.steps.is_empty()),
        "{scheduled:#?}"
    );
    assert_eq!(world.fleet().await.status_of("us-east-1"), shared::ledger::RegionStatus::Evacuated, "{scheduled:#?}");

    // failback with auto_failback off: the manual way (the gate's lag-probe verdict first).
    world.lag_probe().await;
    let back = world.json(&["--local", "failback", "us-east-1", "--restore-writer", "--yes", "--json"]);
    let r = report(&back);
    assert_eq!(r["outcome"], "Reconciled", "{back:#}");
    assert_eq!(actions(r), ["RestoreHealthCheck", "MoveAuroraWriter"], "{r:#}");
    assert!(world.eventually_writer("us-east-1").await, "the writer restored by switchover");
    let status = world.json(&["status", "--json"]);
    let us = region(&status, "us-east-1");
    assert_eq!((us["status"].as_str(), us["in_routing"].as_bool()), (Some("Active"), Some(true)), "{us}");
    assert!(us["cause"].as_str().is_some_and(|c| c.ends_with("#failback")), "{us}");
    assert_eq!(world.transitions("us-east-1").await, 2);
    // The schedule leaves it active: the alarm is OK.
    world.scheduled_reconcile().await;
    assert_eq!(world.fleet().await.status_of("us-east-1"), shared::ledger::RegionStatus::Active);
}

#[tokio::test]
async fn the_safety_rules_refuse_an_operator_and_malformed_or_forged_requests_change_nothing() {
    let world = World::new().await;
    for r in ["us-east-1", "eu-west-1"] {
        let (code, _, stderr) = world.multisite(&["--local", "evacuate", r, "--yes"]);
        assert_eq!(code, 0, "{r}: {stderr}");
    }
    // The last healthy Region: refused by min_healthy_regions, named, nothing changed.
    let (code, out, stderr) = world.multisite(&["--local", "evacuate", "ap-southeast-1", "--yes"]);
    assert_eq!(code, 3, "{out}\n{stderr}");
    assert!(stderr.contains("failover refused (Refused)") && stderr.contains("min_healthy_regions = 1"), "{stderr}");
    let (code, _, stderr) = world.multisite(&["--local", "plan", "evacuate", "ap-southeast-1"]);
    assert_eq!(code, 3, "the plan says so too: {stderr}");
    let status = world.json(&["status", "--json"]);
    let ap = region(&status, "ap-southeast-1");
    assert_eq!((ap["status"].as_str(), ap["in_routing"].as_bool()), (Some("Active"), Some(true)), "{ap}");
    assert_eq!(world.transitions("ap-southeast-1").await, 0);

    // A failback while the Region's alarm is in ALARM: refused, naming the alarm.
    let alarm = world.deployment.alarm_change(&world.emulator, "us-east-1", "ALARM").await;
    drop(alarm);
    let (code, _, stderr) = world.multisite(&["--local", "failback", "us-east-1", "--yes"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("web-us-east-1-unhealthy") && stderr.contains("is in ALARM"), "{stderr}");

    // Unknown Region, missing credentials, a stack that is not there: clear, before any change.
    let (code, _, stderr) = world.multisite(&["--local", "evacuate", "sa-east-1", "--yes"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("sa-east-1 is not a Region of the topology"), "{stderr}");
    let out = Command::new(env!("CARGO_BIN_EXE_multisite"))
        .args(["--local", "plan", "evacuate", "us-east-1"])
        .envs(world.emulator.process_env().into_iter().filter(|(k, _)| {
            !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET") && !k.starts_with("AWS_SESSION")
        }))
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
        .env("AWS_CONFIG_FILE", "/nonexistent/config")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("MULTISITE_TOPOLOGY", world.deployment.topology_json.to_string())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("credentials: no AWS credentials"), "{stderr}");
    let (code, _, stderr) = world.multisite(&["plan", "evacuate", "us-east-1"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("stack multisite does not exist in eu-west-1"), "{stderr}");

    // Malformed and forged requests, straight to failover as deployed: refused, no AWS call.
    let operator = json!({"arn": "arn:aws:iam::123456789012:user/alice", "account": "123456789012"});
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let request = |patch: Value| {
        let mut body =
            json!({"action": "evacuate", "region": "ap-southeast-1", "operator": operator, "requested_at_ms": now});
        if let (Some(b), Some(p)) = (body.as_object_mut(), patch.as_object()) {
            b.extend(p.clone());
        }
        json!({"multisite_operator_request": body})
    };
    world.emulator.clear_requests();
    let cases = [
        (
            "another account",
            request(json!({"operator": {"arn": "arn:aws:iam::999999999999:user/eve", "account": "999999999999"}})),
            "is not of this deployment's account",
        ),
        ("an unknown field", request(json!({"force": true})), "unknown field `force`"),
        ("a replay", request(json!({"requested_at_ms": now - 3_600_000})), "an old request is not replayed"),
        (
            "not a principal",
            request(json!({"operator": {"arn": "alice", "account": "123456789012"}})),
            "is not an IAM or STS principal ARN",
        ),
        (
            "mixed with an alarm",
            {
                let mut p = request(json!({}));
                p["detail-type"] = json!("CloudWatch Alarm State Change");
                p
            },
            "carries only",
        ),
    ];
    for (case, payload, why) in cases {
        let err = world.failover(payload).await.expect_err(case);
        assert_eq!(err.error_type(), "InvalidEvent", "{case}: {err}");
        assert!(err.to_string().contains(why), "{case}: {err}");
    }
    let calls: Vec<String> =
        world.emulator.requests().iter().filter(|r| r.principal.is_some()).map(|r| r.operation.clone()).collect();
    assert_eq!(calls, Vec::<String>::new(), "refused before any AWS call");
    assert_eq!(world.fleet().await.status_of("ap-southeast-1"), shared::ledger::RegionStatus::Active);
}

/// A world in approval mode, its topic created in HOME (what the stack's operator topic is).
async fn approval_world(timeout_seconds: Option<u64>) -> World {
    let name = unique_name("operators");
    let topic = format!("arn:aws:sns:{HOME}:{}:{name}", multisite_tests::deployment::ACCOUNT);
    let mut policy =
        json!({"min_healthy_regions": 1, "cooldown_seconds": 0, "approval": "required", "approval_topic_arn": topic});
    if let Some(t) = timeout_seconds {
        policy["approval_timeout_seconds"] = t.into();
    }
    let world = World::with_policy(policy).await;
    let sns = aws_sdk_sns::Client::new(&world.deployment.clients.sdk_config(HOME));
    let created = sns.create_topic().name(&name).send().await.expect("topic");
    assert_eq!(created.topic_arn(), Some(topic.as_str()));
    world
}

fn publishes(world: &World) -> Vec<(u16, Option<String>)> {
    world
        .emulator
        .requests()
        .into_iter()
        .filter(|r| r.service == "sns" && r.operation == "Publish")
        .map(|r| (r.status, r.principal))
        .collect()
}

#[tokio::test]
async fn in_approval_mode_an_alarm_waits_as_a_pending_plan_until_an_operator_approves() {
    let world = approval_world(None).await;
    world.emulator.clear_requests();
    // ALARM: recorded as pending with its plan, the topic told (as failover's role), nothing moved.
    let change = world.deployment.alarm_change(&world.emulator, "us-east-1", "ALARM").await;
    let answer = world.failover(change.clone()).await.expect("ALARM");
    let r = &answer.reports[0];
    assert_eq!(r.outcome, failover::Outcome::ApprovalPending, "{answer:#?}");
    assert!(r.reason.as_deref().is_some_and(|w| w.contains("multisite approve web-us-east-1-unhealthy#")), "{r:#?}");
    let published = publishes(&world);
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].0, 200, "{published:?}");
    assert!(
        published[0].1.as_deref().is_some_and(|p| p.contains("FailoverRole")),
        "signed by failover's role: {published:?}"
    );
    assert_eq!(world.fleet().await.status_of("us-east-1"), shared::ledger::RegionStatus::Active);
    // A duplicate delivery and the scheduled reconcile: still waiting, told once.
    assert_eq!(world.failover(change).await.expect("again").reports[0].outcome, failover::Outcome::ApprovalPending);
    let scheduled = world.scheduled_reconcile().await;
    assert!(scheduled.reports.iter().all(|r| r.outcome == failover::Outcome::ApprovalPending), "{scheduled:#?}");
    assert_eq!(publishes(&world).len(), 1);

    // status shows it, and since when.
    let status = world.json(&["status", "--json"]);
    let pending = &status["pending_approvals"];
    assert_eq!(pending.as_array().map(Vec::len), Some(1), "{status:#}");
    assert_eq!((pending[0]["region"].as_str(), pending[0]["notified"].as_bool()), (Some("us-east-1"), Some(true)));
    assert!(pending[0]["since"].as_str().is_some_and(|s| s.ends_with('Z')) && pending[0]["times_out_at"].is_null());
    let change_id = pending[0]["change"].as_str().expect("change id").to_owned();
    let (_, screen, _) = world.multisite(&["status"]);
    assert!(
        screen.contains("PENDING APPROVAL: evacuate us-east-1")
            && screen.contains(&format!("multisite approve {change_id}")),
        "{screen}"
    );

    // approve: the evacuation runs, recorded as the alarm's with the approver.
    let (code, _, stderr) = world.multisite(&["--local", "approve", "nonexistent-alarm#x#Alarm", "--yes"]);
    assert_eq!(code, 2, "{stderr}");
    let approved = world.json(&["--local", "approve", &change_id, "--yes", "--json"]);
    let r = report(&approved);
    assert_eq!(r["outcome"], "Reconciled", "{approved:#}");
    assert!(r["operator"].as_str().is_some_and(|a| a.starts_with("arn:aws:")), "{r:#}");
    let status = world.json(&["status", "--json"]);
    let us = region(&status, "us-east-1");
    assert_eq!((us["status"].as_str(), us["in_routing"].as_bool()), (Some("Evacuated"), Some(false)), "{us}");
    assert!(
        us["cause"].as_str().is_some_and(|c| c.starts_with("web-us-east-1-unhealthy#")),
        "the alarm's change: {us}"
    );
    assert_eq!(status["pending_approvals"], json!([]), "{status:#}");
    let history = world.json(&["history", "--json"]);
    assert!(history[0]["operator"].as_str().is_some_and(|a| a.starts_with("arn:aws:")), "approved by: {history}");
    let (_, listing, _) = world.multisite(&["history"]);
    assert!(listing.contains(", approved by arn:aws:"), "{listing}");
    // Approving twice is harmless: the same transition, no other.
    let again = world.json(&["--local", "approve", &change_id, "--yes", "--json"]);
    assert_ne!(report(&again)["outcome"], "Refused", "{again:#}");
    assert_eq!(world.transitions("us-east-1").await, 1);
}

#[tokio::test]
async fn in_approval_mode_with_a_timeout_the_scheduled_reconcile_acts_on_an_expired_approval() {
    let world = approval_world(Some(1)).await;
    let change = world.deployment.alarm_change(&world.emulator, "us-east-1", "ALARM").await;
    assert_eq!(world.failover(change).await.expect("ALARM").reports[0].outcome, failover::Outcome::ApprovalPending);
    let status = world.json(&["status", "--json"]);
    assert!(status["pending_approvals"][0]["times_out_at"].is_string(), "{status:#}");
    // Before the timeout: waiting. After it: the schedule evacuates, unapproved.
    let scheduled = world.scheduled_reconcile().await;
    assert_eq!(scheduled.reports[0].outcome, failover::Outcome::ApprovalPending, "{scheduled:#?}");
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let scheduled = world.scheduled_reconcile().await;
    assert_eq!(scheduled.reports[0].outcome, failover::Outcome::Reconciled, "{scheduled:#?}");
    assert_eq!(world.fleet().await.status_of("us-east-1"), shared::ledger::RegionStatus::Evacuated);
    let status = world.json(&["status", "--json"]);
    assert_eq!(status["pending_approvals"], json!([]));
    let record: Option<shared::ledger::Record<failover::approval::ApprovalRequest>> =
        world.deployment.ledger().get(shared::ledger::APPROVAL_PK, "us-east-1").await.expect("approval");
    assert_eq!(record.map(|r| r.body.state), Some(failover::approval::ApprovalState::TimedOut));
}

#[tokio::test]
async fn a_pending_approval_whose_alarm_returns_to_ok_is_withdrawn_and_cannot_be_approved() {
    let world = approval_world(None).await;
    let alarm = world.deployment.alarm_change(&world.emulator, "us-east-1", "ALARM").await;
    assert_eq!(world.failover(alarm).await.expect("ALARM").reports[0].outcome, failover::Outcome::ApprovalPending);
    let change_id =
        world.json(&["status", "--json"])["pending_approvals"][0]["change"].as_str().expect("pending").to_owned();
    // The alarm is OK again before anyone approved: the OK withdraws the pending evacuation.
    let ok = world.deployment.alarm_change(&world.emulator, "us-east-1", "OK").await;
    world.failover(ok).await.expect("OK");
    let status = world.json(&["status", "--json"]);
    assert_eq!(status["pending_approvals"], json!([]), "{status:#}");
    let (code, _, stderr) = world.multisite(&["--local", "approve", &change_id, "--yes"]);
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("was withdrawn"), "{stderr}");
    assert_eq!(world.fleet().await.status_of("us-east-1"), shared::ledger::RegionStatus::Active);
    assert_eq!(world.transitions("us-east-1").await, 0);
}

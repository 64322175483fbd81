//! The `multisite` binary end to end against the emulator: a deployment in which us-east-1 was
//! evacuated by failover and scaler (real handlers, signed with their template.yaml roles, fed the
//! event CloudWatch emitted) and measured by lag-probe; `status` and `history`, human and JSON,
//! read it back as the operator (the administrator's credentials); bad input is a clear error.

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
        let emulator = Emulator::lease();
        emulator.set_timing(100, 100, 200);
        let deployment = Deployment::spec(&REGIONS)
            .with_dns()
            .with_aurora()
            .with_groups(GroupSizes::new(2, 2, 8))
            .with_global_table(&unique_name("sessions"))
            .with_ledger_replicas()
            .with_failover_policy(json!({"min_healthy_regions": 1, "cooldown_seconds": 0}))
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
        let probe_clients = self.deployment.function_clients(&self.emulator, Function::LagProbe, HOME).await;
        let config = lag_probe::config::ProbeConfig::default();
        let deps = lag_probe::Deps {
            topology,
            clients: &probe_clients,
            home_region: HOME,
            clock: &SystemClock,
            config: &config,
        };
        let event: Value =
            serde_json::from_str(include_str!("../../../events/scheduled-lag-probe.json")).expect("event");
        lag_probe::handle(event, &deps).await.expect("lag-probe");
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

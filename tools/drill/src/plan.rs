//! `--plan`: against a real deployment, what failover and scaler would do if the failing Region's
//! first alarm went to ALARM. Their real handlers run with `"multisite": {"dry_run": true}`: they
//! read (the ledger's fleet status, health checks, the global cluster, the groups) and change
//! nothing. Credentials and Region come from the standard AWS chain (environment, profile, SSO,
//! instance role); an `AWS_ENDPOINT_URL` in the environment is honoured like everywhere else, so
//! make sure it is unset when you mean AWS.

use crate::error::{Ctx, Result, fail};
use serde::Serialize;
use serde_json::{Value, json};
use shared::clock::SystemClock;
use shared::{RegionalClients, Topology};

const ALARM_EVENT: &str = include_str!("../../../events/alarm-eventbridge-us-east-1-alarm.json");

#[derive(Debug, Serialize)]
pub struct PlanReport {
    pub topology: String,
    pub failing_region: String,
    pub alarm: String,
    pub home_region: String,
    pub planned: bool,
    pub endpoint_override: Option<String>,
    pub failover: std::result::Result<failover::Response, String>,
    pub scaler: std::result::Result<Vec<scaler::Report>, String>,
}

/// The deployment's account and partition (what its functions run as, and the account of its
/// alarms' ARNs): from the topology's Aurora cluster ARNs, else `MULTISITE_ACCOUNT_ID` (partition
/// `aws`). The drill builds no STS client (it adds no crate the workspace does not build).
fn deployment_identity(topology: &Topology) -> Result<shared::alarm::Identity> {
    let from_arn = topology
        .cells
        .iter()
        .filter_map(|c| c.aurora_cluster_arn.as_deref())
        .find_map(shared::topology::RdsClusterArn::parse)
        .map(|a| shared::alarm::Identity { partition: a.partition.to_owned(), account: a.account.to_owned() });
    match from_arn {
        Some(identity) => Ok(identity),
        None => std::env::var("MULTISITE_ACCOUNT_ID")
            .ok()
            .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
            .map(|account| shared::alarm::Identity { partition: "aws".into(), account })
            .ok_or_else(|| {
                fail("the topology has no Aurora cluster ARN to read the account from: set MULTISITE_ACCOUNT_ID")
            }),
    }
}

/// The alarm event (EventBridge delivery) for `alarm`, as CloudWatch in `watcher` would send it.
fn alarm_payload(alarm: &str, watcher: &str, account: &str, partition: &str, planned: bool) -> Value {
    let mut event: Value = serde_json::from_str(ALARM_EVENT).unwrap_or_default();
    let now = chrono::DateTime::from_timestamp_millis(crate::world::now_ms() as i64).unwrap_or_default();
    event["region"] = json!(watcher);
    event["account"] = json!(account);
    event["resources"] = json!([format!("arn:{partition}:cloudwatch:{watcher}:{account}:alarm:{alarm}")]);
    event["detail"]["alarmName"] = json!(alarm);
    event["detail"]["state"]["timestamp"] = json!(now.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    event["detail"]["state"]["reason"] = json!("multisite drill --plan: synthetic ALARM (dry run)");
    event["multisite"] = json!({"dry_run": true, "planned": planned});
    event
}

pub async fn run(path: &str, failing: Option<&str>, home: Option<&str>, planned: bool) -> Result<PlanReport> {
    let text = std::fs::read_to_string(path).ctx(format!("read the topology {path}"))?;
    let topology = Topology::from_json(&text).map_err(|e| fail(format!("{path}: {e}")))?;
    let failing = match failing {
        Some(r) => topology.cell(r).map(|c| c.region.clone()).ok_or_else(|| {
            fail(format!("--fail {r}: not a cell of {path} ({})", topology.regions().collect::<Vec<_>>().join(", ")))
        })?,
        None => topology.cells[0].region.clone(),
    };
    let cell = topology.cell(&failing).ok_or_else(|| fail("no such cell"))?;
    let alarm_ref = cell.alarms.first().cloned().ok_or_else(|| fail(format!("{failing} has no alarm")))?;
    let alarm = alarm_ref.name.clone();
    // The alarm lives (and its events start) in its own Region; only its actor Region acts.
    let alarm_region = cell.alarm_region(&alarm_ref).to_owned();
    let home = match home {
        Some(h) => h.to_owned(),
        None => topology.actor_region(cell, &alarm_ref).to_owned(),
    };
    if topology.cell(&home).is_none() {
        return Err(fail(format!("--home-region {home}: not a cell of the topology")));
    }
    let clients = RegionalClients::new(&topology).await;
    let identity = deployment_identity(&topology)?;
    let payload = alarm_payload(&alarm, &alarm_region, &identity.account, &identity.partition, planned);
    let failover_deps = failover::Deps {
        topology: &topology,
        clients: &clients,
        home_region: &home,
        clock: &SystemClock,
        identity: &identity,
    };
    let scaler_deps = scaler::Deps {
        topology: &topology,
        clients: &clients,
        home_region: &home,
        clock: &SystemClock,
        identity: &identity,
    };
    let (failover, scaler) =
        tokio::join!(failover::handle(payload.clone(), &failover_deps), scaler::handle(payload.clone(), &scaler_deps));
    Ok(PlanReport {
        topology: path.to_owned(),
        failing_region: failing,
        alarm,
        home_region: home,
        planned,
        endpoint_override: std::env::var("AWS_ENDPOINT_URL").ok(),
        failover: failover.map_err(|e| e.to_string()),
        scaler: scaler.map_err(|e| e.to_string()),
    })
}

impl PlanReport {
    pub fn render(&self) -> String {
        let mut s = format!(
            "multisite drill --plan (dry run, nothing is changed)\n  topology {}\n  synthetic ALARM of {} ({}), handled as in {}{}{}\n",
            self.topology,
            self.alarm,
            self.failing_region,
            self.home_region,
            if self.planned { ", planned (switchover)" } else { "" },
            self.endpoint_override
                .as_ref()
                .map(|e| format!("\n  NOTE: AWS_ENDPOINT_URL={e} is set: calls go there, not to AWS"))
                .unwrap_or_default()
        );
        s.push_str("\nfailover would:\n");
        match &self.failover {
            Err(e) => s.push_str(&format!("  ERROR {e}\n")),
            Ok(response) => {
                for r in &response.reports {
                    s.push_str(&format!(
                        "  outcome {:?}{}\n",
                        r.outcome,
                        r.reason.as_ref().map(|x| format!(": {x}")).unwrap_or_default()
                    ));
                    if let Some(plan) = &r.plan {
                        if plan.actions.is_empty() {
                            s.push_str("  (no action: already in the desired state)\n");
                        }
                        for a in &plan.actions {
                            s.push_str(&format!("  - {}\n", serde_json::to_string(a).unwrap_or_default()));
                        }
                        for n in &plan.notes {
                            s.push_str(&format!("  note: {n}\n"));
                        }
                    }
                }
            }
        }
        s.push_str("\nscaler would:\n");
        match &self.scaler {
            Err(e) => s.push_str(&format!("  ERROR {e}\n")),
            Ok(reports) => {
                for r in reports {
                    s.push_str(&format!(
                        "  outcome {:?}{}\n",
                        r.outcome,
                        r.reason.as_ref().map(|x| format!(": {x}")).unwrap_or_default()
                    ));
                    for g in &r.groups {
                        let cap = |c: Option<shared::capacity::GroupSizes>| {
                            c.map(|c| format!("{}/{}/{}", c.min, c.desired, c.max)).unwrap_or_else(|| "?".into())
                        };
                        s.push_str(&format!(
                            "  - {} {}: {} -> {} (min/desired/max){}{}\n",
                            g.region,
                            g.asg,
                            cap(g.current),
                            cap(g.target),
                            if g.shortfall > 0 { format!(", SHORTFALL {}", g.shortfall) } else { String::new() },
                            g.error.as_ref().map(|e| format!(", error: {e}")).unwrap_or_default()
                        ));
                    }
                }
            }
        }
        s
    }

    pub fn ok(&self) -> bool {
        self.failover.is_ok() && self.scaler.is_ok()
    }
}

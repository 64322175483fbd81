//! The functions' IAM roles, as `template.yaml` deploys them, inside the emulator.
//!
//! A stack is deployed in every Region of the topology, and each stack has its own roles: the
//! template scopes some statements to `${AWS::Region}` (the ledger replica of that Region), others
//! to every Region's resources. [`StackRoles::create`] asks the emulator to render the template
//! for the deployment's parameter set and one Region, exactly as CloudFormation would, and to
//! create the roles; [`StackRoles::clients`] then gives per-Region SDK clients signed with a
//! session of one function's role, so a handler under test gets only what its role allows. The
//! emulator enforces those policies (action and resource ARN) and answers the service's own
//! AccessDenied error otherwise. Set-up code keeps the administrator identity
//! ([`Emulator::clients`]).

use crate::Emulator;
use aws_credential_types::Credentials;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use shared::{RegionalClients, Topology};
use std::collections::BTreeMap;

/// A function of `template.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Function {
    Provisioner,
    Failover,
    Scaler,
    LagProbe,
}

impl Function {
    pub const ALL: [Function; 4] = [Function::Provisioner, Function::Failover, Function::Scaler, Function::LagProbe];

    /// The function's logical id in the template.
    pub fn logical_id(self) -> &'static str {
        match self {
            Function::Provisioner => "ProvisionerFunction",
            Function::Failover => "FailoverFunction",
            Function::Scaler => "ScalerFunction",
            Function::LagProbe => "LagProbeFunction",
        }
    }

    /// The binary (and cargo package) name.
    pub fn binary(self) -> &'static str {
        match self {
            Function::Provisioner => "provisioner",
            Function::Failover => "failover",
            Function::Scaler => "scaler",
            Function::LagProbe => "lag-probe",
        }
    }
}

/// One role the emulator created from the template.
#[derive(Debug, Clone, Deserialize)]
pub struct Role {
    pub role_name: String,
    pub role_arn: String,
    /// Inline policy name -> policy document, as CloudFormation resolved them.
    pub policies: BTreeMap<String, Value>,
}

/// One function of the rendered stack.
#[derive(Debug, Clone, Deserialize)]
pub struct StackFunction {
    /// Logical id of the function's role.
    pub role: String,
    pub function_name: String,
    pub function_arn: String,
}

/// The roles of the stack deployed in one Region.
#[derive(Debug, Clone, Deserialize)]
pub struct StackRoles {
    #[serde(skip)]
    pub region: String,
    #[serde(skip)]
    pub stack_name: String,
    /// Role logical id -> role.
    pub roles: BTreeMap<String, Role>,
    /// Function logical id -> function.
    pub functions: BTreeMap<String, StackFunction>,
}

/// Temporary credentials of one role session.
#[derive(Debug, Clone, Deserialize)]
pub struct RoleSession {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub assumed_role_arn: String,
}

impl RoleSession {
    pub fn credentials(&self) -> Credentials {
        Credentials::new(
            &self.access_key_id,
            &self.secret_access_key,
            Some(self.session_token.clone()),
            None,
            "multisite-tests-role-session",
        )
    }
}

impl StackRoles {
    /// Renders `template.yaml` for `parameters` as the stack in `region` and creates its roles in
    /// the emulator (re-creating them if this stack was rendered before).
    pub fn create(emulator: &Emulator, parameters: &Map<String, Value>, region: &str) -> StackRoles {
        Self::create_named(emulator, parameters, region, &stack_name(region))
    }

    /// [`StackRoles::create`] for a stack name of the caller's (tests sharing one emulator give
    /// each stack its own name: the roles are named `<stack>-<LogicalId>`).
    pub fn create_named(
        emulator: &Emulator,
        parameters: &Map<String, Value>,
        region: &str,
        stack_name: &str,
    ) -> StackRoles {
        Self::try_create_named(emulator, parameters, region, stack_name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`StackRoles::create_named`] for tools: a rejected parameter set or a stack without every
    /// function and role of [`Function::ALL`] is an error, not a panic.
    pub fn try_create_named(
        emulator: &Emulator,
        parameters: &Map<String, Value>,
        region: &str,
        stack_name: &str,
    ) -> Result<StackRoles, String> {
        let template = crate::repo_root().join("template.yaml");
        let body = json!({
            "template": template.to_string_lossy(),
            "parameters": parameters,
            "region": region,
            "stack_name": stack_name,
        });
        let answer = control_post(emulator, "/_multisite/iam/template-roles", &body)
            .map_err(|e| format!("template.yaml rendered as the stack {stack_name} in {region}: {e}"))?;
        let mut roles: StackRoles =
            serde_json::from_value(answer.clone()).map_err(|e| format!("iam/template-roles answer {answer}: {e}"))?;
        roles.region = region.to_owned();
        roles.stack_name = stack_name.to_owned();
        for function in Function::ALL {
            let f = roles
                .functions
                .get(function.logical_id())
                .ok_or_else(|| format!("{} is not in the stack rendered for {region}", function.logical_id()))?;
            if !roles.roles.contains_key(&f.role) {
                return Err(format!("role {} is not in the stack rendered for {region}", f.role));
            }
        }
        Ok(roles)
    }

    /// The role of `function` (every stack [`StackRoles::try_create_named`] returns has it).
    pub fn role_of(&self, function: Function) -> &Role {
        let f = self.function(function);
        self.roles.get(&f.role).unwrap_or_else(|| panic!("role {} is not in the rendered stack", f.role))
    }

    /// The deployed function (name and ARN as CloudFormation would name it in this stack).
    pub fn function(&self, function: Function) -> &StackFunction {
        self.functions
            .get(function.logical_id())
            .unwrap_or_else(|| panic!("{} is not in the rendered stack", function.logical_id()))
    }

    /// A fresh session of `function`'s role.
    pub fn session(&self, emulator: &Emulator, function: Function) -> RoleSession {
        self.try_session(emulator, function).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`StackRoles::session`], with errors as values.
    pub fn try_session(&self, emulator: &Emulator, function: Function) -> Result<RoleSession, String> {
        let role = self.role_of(function);
        let body =
            json!({"role_name": role.role_name, "session_name": format!("{}-{}", function.binary(), self.region)});
        let answer = control_post(emulator, "/_multisite/iam/session", &body)
            .map_err(|e| format!("a session of {}: {e}", role.role_name))?;
        serde_json::from_value(answer.clone()).map_err(|e| format!("iam/session answer {answer}: {e}"))
    }

    /// Per-Region clients (for `regions`) signed with a session of `function`'s role, built as
    /// production builds them: what the function deployed in this stack's Region can do.
    pub async fn clients(&self, emulator: &Emulator, function: Function, regions: &[&str]) -> RegionalClients {
        let credentials = self.session(emulator, function).credentials();
        RegionalClients::with_base(emulator.sdk_config_with(credentials).await, regions.iter().copied())
    }

    /// Replaces (or with `None` deletes) one inline policy of `function`'s role: tests take an
    /// action away and see the function fail with AccessDenied.
    pub fn put_policy(&self, emulator: &Emulator, function: Function, policy_name: &str, document: Option<&Value>) {
        let role = self.role_of(function);
        emulator.post_json(
            "/_multisite/iam/role-policy",
            &json!({"role_name": role.role_name, "policy_name": policy_name, "document": document}),
        );
    }
}

/// A control-API POST whose non-200 answer is an error.
fn control_post(emulator: &Emulator, path: &str, body: &Value) -> Result<Value, String> {
    match emulator.control("POST", path, Some(body)) {
        (200, answer) => Ok(answer),
        (status, answer) => Err(format!("POST {path}: HTTP {status} {answer}")),
    }
}

/// The roles of the stack that deploys `topology` in `region`, created in the emulator.
pub fn stack_roles_for(emulator: &Emulator, topology: &Topology, region: &str) -> StackRoles {
    let parameters = template_parameters(topology)
        .unwrap_or_else(|e| panic!("the topology cannot be expressed as template.yaml parameters: {e}"));
    StackRoles::create(emulator, &parameters, region)
}

/// Clients for every Region of `topology` signed with `function`'s role as the stack in `region`
/// deploys it: what that function, running in `region`, may use.
pub async fn function_clients(
    emulator: &Emulator,
    topology: &Topology,
    function: Function,
    region: &str,
) -> RegionalClients {
    let regions: Vec<&str> = topology.regions().collect();
    stack_roles_for(emulator, topology, region).clients(emulator, function, &regions).await
}

/// The stack name used for the stack in `region` (the roles are named `<stack>-<LogicalId>`).
pub fn stack_name(region: &str) -> String {
    format!("multisite-{region}")
}

/// The CloudFormation parameters of `template.yaml` that deploy `topology`: every parameter that
/// names a resource (Regions, health checks, groups, alarms and the Region each lives in, tables,
/// the arbiter Region, Aurora clusters, the hosted zone and record) and the policy values. The
/// template takes 2-4 Regions and one alarm per Region; a topology it cannot express is an error.
/// Alarm Regions and the arbiter Region are always given explicitly (the Region the topology
/// resolves them to), so the stack renders exactly the Regions the topology names.
pub fn template_parameters(topology: &Topology) -> Result<Map<String, Value>, String> {
    if !(2..=4).contains(&topology.cells.len()) {
        return Err(format!("template.yaml deploys 2-4 Regions; this topology has {}", topology.cells.len()));
    }
    let mut p = Map::new();
    let mut put = |key: String, value: String| {
        p.insert(key, Value::String(value));
    };
    put("WorkloadName".into(), topology.name.clone());
    put("HostedZoneId".into(), topology.routing.hosted_zone_id.clone());
    put("RecordName".into(), topology.routing.record_name.clone());
    put("GlobalTableName".into(), topology.global_table.clone());
    put("LedgerTableName".into(), topology.ledger_table.clone());
    put("ArbiterRegion".into(), topology.arbiter_region().to_owned());
    if let Some(aurora) = &topology.aurora {
        put("AuroraGlobalClusterId".into(), aurora.global_cluster_id.clone());
    }
    // Approval mode publishes to the operator topic: the topology's is the stack's.
    if let Some(topic) = &topology.failover_policy.approval_topic_arn {
        put("OperatorTopicArn".into(), topic.clone());
    }
    for (i, cell) in topology.cells.iter().enumerate() {
        let n = i + 1;
        put(format!("Region{n}"), cell.region.clone());
        put(format!("Region{n}HealthCheckId"), cell.health_check_id.clone());
        put(format!("Region{n}AutoScalingGroup"), cell.auto_scaling_group.clone());
        match cell.alarms.as_slice() {
            [alarm] => {
                put(format!("Region{n}AlarmName"), alarm.name.clone());
                put(format!("Region{n}AlarmRegion"), cell.alarm_region(alarm).to_owned());
            }
            alarms => return Err(format!("template.yaml takes one alarm per Region; {} has {alarms:?}", cell.region)),
        }
        if let Some(arn) = &cell.aurora_cluster_arn {
            let parsed =
                shared::topology::RdsClusterArn::parse(arn).ok_or_else(|| format!("{arn} is not a cluster ARN"))?;
            put(format!("Region{n}AuroraClusterId"), parsed.cluster_id.to_owned());
        }
    }
    if let Some(arc) = topology.arc() {
        put("RoutingBackend".into(), "arc".into());
        put("ArcResources".into(), "existing".into());
        put("ArcClusterArn".into(), arc.cluster_arn.clone());
        put("ArcControlPanelArn".into(), arc.control_panel_arn.clone());
        put("ArcSafetyRuleArn".into(), arc.safety_rule.arn.clone());
        // The template takes AWS's https endpoints; the emulator's are local http URLs. No policy
        // depends on an endpoint URL, so the canonical AWS URL of each endpoint stands in.
        let cluster_id = arc.cluster_arn.rsplit('/').next().unwrap_or_default();
        let endpoints: Vec<String> = arc
            .cluster_endpoints
            .iter()
            .map(|e| {
                let url = if e.url.starts_with("https://") {
                    e.url.clone()
                } else {
                    format!("https://{cluster_id}.route53-recovery-cluster.{}.amazonaws.com/v1", e.region)
                };
                format!("{}={url}", e.region)
            })
            .collect();
        put("ArcClusterEndpoints".into(), endpoints.join(","));
        for (i, cell) in topology.cells.iter().enumerate() {
            if let Some(control) = arc.routing_controls.get(&cell.region) {
                put(format!("Region{}RoutingControlArn", i + 1), control.clone());
            }
        }
    }
    put("ArbiterRegion".into(), topology.arbiter_region().to_owned());
    let policy = &topology.failover_policy;
    put("MinHealthyRegions".into(), policy.min_healthy_regions.to_string());
    put("CooldownSeconds".into(), policy.cooldown_seconds.to_string());
    put("AutoFailback".into(), policy.auto_failback.to_string());
    put("DryRun".into(), policy.dry_run.to_string());
    put("RpoBudgetMs".into(), topology.rpo_budget_ms.to_string());
    put("RtoObjectiveSeconds".into(), topology.rto_objective_seconds.to_string());
    Ok(p)
}

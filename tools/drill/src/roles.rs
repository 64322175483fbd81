//! Who each handler runs as: template.yaml's roles, rendered by the emulator for the drill's
//! deployment (`template_parameters` of its topology) once per Region, as the stack deployed in
//! that Region has them (the template scopes the ledger statement to `${AWS::Region}`, the rest
//! to Region1..4's resources). A handler gets clients signed with a session of its function's role
//! in the stack of the Region it runs in, so the emulator authorizes each of its calls against
//! exactly that role (tests/emulator/README.md section 6). Set-up, the users' traffic, CloudWatch
//! (the drill plays the alarm) and the checks keep the administrator identity.
//!
//! The sessions are also written to `target/drill/roles.json` (function -> Region -> credentials),
//! with the parameters they were rendered for, for processes that run the functions outside the
//! drill (`scripts/lambda-invoke-test.sh`).

use crate::error::{Ctx, Result, fail};
use multisite_tests::Emulator;
use multisite_tests::roles::{Function, RoleSession, StackRoles, stack_name};
use serde_json::{Map, Value, json};
use shared::RegionalClients;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The rendered stacks (one per Region) and a session of every function's role in each.
pub struct Identities {
    pub parameters: Map<String, Value>,
    /// Region -> the roles of the stack deployed there.
    pub stacks: BTreeMap<String, StackRoles>,
    /// (function, Region) -> a session of that function's role in that Region's stack.
    sessions: BTreeMap<(Function, String), RoleSession>,
}

impl Identities {
    /// Renders the template's roles for `parameters` as the stack of every Region in `regions`
    /// and starts a session of each function's role.
    pub fn create(emulator: &Emulator, parameters: &Map<String, Value>, regions: &[String]) -> Result<Self> {
        let mut stacks = BTreeMap::new();
        let mut sessions = BTreeMap::new();
        for region in regions {
            let stack = render(emulator, parameters, region)?;
            for function in Function::ALL {
                sessions.insert((function, region.clone()), session(emulator, &stack, function)?);
            }
            stacks.insert(region.clone(), stack);
        }
        Ok(Self { parameters: parameters.clone(), stacks, sessions })
    }

    /// The role `function` has in the stack of `region` (its name, `<stack>-<LogicalId>`).
    pub fn role_name(&self, function: Function, region: &str) -> String {
        self.stacks.get(region).map(|s| s.role_of(function).role_name.clone()).unwrap_or_default()
    }

    /// A base SDK configuration signed with `function`'s role session in `region`'s stack.
    pub async fn sdk_config(
        &self,
        emulator: &Emulator,
        function: Function,
        region: &str,
    ) -> Result<aws_config::SdkConfig> {
        let session = self
            .sessions
            .get(&(function, region.to_owned()))
            .ok_or_else(|| fail(format!("no stack rendered in {region} for {}", function.binary())))?;
        Ok(emulator.sdk_config_with(session.credentials()).await)
    }

    /// Clients for `regions` signed with `function`'s role as deployed in `region`: what that
    /// function, running in `region`, may use.
    pub async fn clients(
        &self,
        emulator: &Emulator,
        function: Function,
        region: &str,
        regions: &[String],
    ) -> Result<RegionalClients> {
        let base = self.sdk_config(emulator, function, region).await?;
        Ok(RegionalClients::with_base(base, regions.iter()))
    }

    /// Writes `roles.json` next to `topology`: the parameters, the template and, per function and
    /// Region, the role and its session's credentials.
    pub fn write_file(&self, emulator: &Emulator, dir: &Path) -> Result<PathBuf> {
        let mut functions = Map::new();
        for ((function, region), session) in &self.sessions {
            let role = self.stacks.get(region).map(|s| s.role_of(*function));
            let entry = functions.entry(function.binary()).or_insert_with(|| json!({}));
            entry[region] = json!({
                "stack_name": stack_name(region),
                "role_name": role.map(|r| r.role_name.clone()),
                "role_arn": role.map(|r| r.role_arn.clone()),
                "assumed_role_arn": session.assumed_role_arn,
                "access_key_id": session.access_key_id,
                "secret_access_key": session.secret_access_key,
                "session_token": session.session_token,
            });
        }
        let document = json!({
            "endpoint": emulator.url(),
            "template": multisite_tests::repo_root().join("template.yaml"),
            "parameters": self.parameters,
            "functions": functions,
        });
        let path = dir.join("roles.json");
        std::fs::write(&path, serde_json::to_string_pretty(&document).unwrap_or_default() + "\n")
            .ctx(format!("write {}", path.display()))?;
        Ok(path)
    }
}

fn render(emulator: &Emulator, parameters: &Map<String, Value>, region: &str) -> Result<StackRoles> {
    StackRoles::try_create_named(emulator, parameters, region, &stack_name(region)).map_err(fail)
}

fn session(emulator: &Emulator, stack: &StackRoles, function: Function) -> Result<RoleSession> {
    stack.try_session(emulator, function).map_err(fail)
}

/// Of the emulator's request log: the calls signed by a role session, per role, and the ones IAM
/// denied (`role: action on resource`).
pub fn authorization_summary(emulator: &Emulator) -> (BTreeMap<String, usize>, Vec<String>) {
    let mut per_role = BTreeMap::new();
    let mut denied = Vec::new();
    for record in emulator.requests() {
        let Some(principal) = record.principal.as_deref().filter(|p| p.contains(":assumed-role/")) else {
            continue;
        };
        // arn:aws:sts::123456789012:assumed-role/ROLE/SESSION
        let role = principal.split('/').nth(1).unwrap_or(principal).to_owned();
        *per_role.entry(role.clone()).or_insert(0) += 1;
        if let Some(d) = record.denied {
            denied.push(format!(
                "{role}: {} on {} ({} {} in {})",
                d.action, d.resource, record.service, record.operation, record.region
            ));
        }
    }
    (per_role, denied)
}

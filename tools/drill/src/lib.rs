// The drill nests the handlers' futures (each nesting parallel SDK calls): deeper than rustc's default
// query depth allows when laid out.
#![recursion_limit = "512"]

//! The drill: a disaster-recovery game day in one command, with measured RTO and RPO.
//!
//! Against the local emulator (default) it builds a multi-Region deployment (2-4 Regions, what
//! template.yaml deploys) with a real CloudWatch alarm per Region, renders template.yaml's roles
//! for it (one stack per Region), provisions the Global Table replicas through the provisioner,
//! measures replication lag with the lag-probe, writes steady traffic, takes one Region down, sets
//! its alarm to ALARM and delivers the EventBridge event CloudWatch recorded for that change
//! (twice) to failover and scaler, checks the end state and the RPO, brings the Region back through
//! the gated failback (the alarm's OK event), and reports a timeline, figures and PASS/FAIL checks.
//! Every handler runs through its real code, signed with its function's role in the stack of the
//! Region it runs in. `--plan` points failover and scaler at a real deployment in dry-run mode.
//! See README.md, section "The drill".

pub mod args;
mod dns;
pub(crate) mod drill;
pub mod error;
pub mod html;
pub mod plan;
mod provision;
pub mod report;
mod roles;
mod sampler;
mod traffic;
mod world;

pub use args::{JsonOut, Mode, Options, Scenario, parse};
pub use drill::run;
pub use error::DrillError;
pub use report::Report;

/// Writes the report as one self-contained HTML page (`--html FILE`).
pub fn write_html(report: &Report, path: &str) -> Result<(), DrillError> {
    std::fs::write(path, report.render_html())
        .map_err(|e| DrillError(format!("cannot write the HTML report to {path}: {e}")))
}

/// Makes sure the emulator's venv exists (`scripts/venv.sh`, idempotent), so the drill works on a
/// fresh machine without `make venv` first.
pub fn ensure_venv() -> Result<(), DrillError> {
    if std::env::var_os("MULTISITE_EMULATOR_PYTHON").is_some() {
        return Ok(());
    }
    let root = multisite_tests::repo_root();
    let script = root.join("scripts/venv.sh");
    if !script.exists() {
        return Err(DrillError(format!(
            "cannot find the repository (looked for {}): run the drill from the multisite checkout",
            script.display()
        )));
    }
    let status = std::process::Command::new("bash")
        .arg(&script)
        .status()
        .map_err(|e| DrillError(format!("cannot run {}: {e}", script.display())))?;
    if !status.success() {
        return Err(DrillError(format!(
            "{} failed ({status}): the emulator's venv could not be created",
            script.display()
        )));
    }
    Ok(())
}

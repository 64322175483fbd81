//! `multisite`: the operator's command. `status` shows the fleet on one screen (each Region's
//! status and since when, by which alarm change or operator, its routing, where the Aurora writer
//! is, the latest lag-probe verdict and readiness, the scaler's coverage and capacities, pending
//! approvals); `history` the transitions and their steps, from the ledger. Both only read, with
//! the operator's own credentials (the standard AWS chain; `AWS_ENDPOINT_URL` reaches the local
//! emulator, whose endpoint and topology `drill --keep-running` prints). `plan`, `evacuate`,
//! `failback` and `approve` send failover an operator's request ([`operate`]): to the deployed
//! function ([`remote`]), or run in this process with `--local`.

pub mod args;
pub mod history;
pub mod operate;
pub mod remote;
pub mod status;

use shared::{Ledger, RegionalClients, Topology};

/// What went wrong. Exit status 2: the command line, the topology, the credentials or the
/// deployment to fix; 1: an AWS call that failed, or a transition with a failed step (failover's
/// scheduled reconcile finishes it); 3: failover refused the request (a safety rule, a gate, a
/// malformed or foreign request) and changed nothing; 4: the operator did not confirm.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("the topology: {0}")]
    Topology(String),
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("the deployment: {0}")]
    Deployment(String),
    #[error(transparent)]
    Aws(#[from] shared::Error),
    #[error("failover refused ({outcome}): {reason}")]
    Refused { outcome: String, reason: String },
    #[error("{function} refused the request ({error_type}): {message}")]
    Remote { function: String, error_type: String, message: String },
    #[error("not finished: {0} (the scheduled reconcile retries; see `multisite history`)")]
    Incomplete(String),
    #[error("not confirmed: nothing was done")]
    NotConfirmed,
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Topology(_) | CliError::Credentials(_) | CliError::Deployment(_) => 2,
            CliError::Aws(_) | CliError::Incomplete(_) => 1,
            CliError::Refused { .. } => 3,
            // failover's refusals of a request are permanent errors; anything else it answered
            // with an error (a failed step: retryable) is not a refusal.
            CliError::Remote { error_type, .. } => match error_type.as_str() {
                "InvalidEvent" | "UnknownRegion" => 3,
                _ => 1,
            },
            CliError::NotConfirmed => 4,
        }
    }
}

/// The deployment as the operator reaches it: its topology, clients for its Regions, and the
/// ledger's arbiter replica, where every fleet decision is recorded.
pub struct Fleet {
    pub topology: Topology,
    pub clients: RegionalClients,
}

impl Fleet {
    pub async fn connect(topology: Topology) -> Self {
        let clients = RegionalClients::new(&topology).await;
        Self { topology, clients }
    }

    /// The arbiter replica of the ledger.
    pub fn ledger(&self) -> Result<Ledger, CliError> {
        let arbiter = self.topology.arbiter_region();
        let dynamodb = self.clients.region(arbiter)?.dynamodb.clone();
        Ok(Ledger::new(dynamodb, &self.topology.ledger_table, arbiter))
    }

    /// `region` if it is a cell of the topology, else a usage error naming the cells.
    pub fn cell_region(&self, region: &str) -> Result<String, CliError> {
        match self.topology.cell(region) {
            Some(cell) => Ok(cell.region.clone()),
            None => Err(CliError::Usage(format!(
                "{region} is not a Region of the topology ({})",
                self.topology.regions().collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// Epoch milliseconds as RFC 3339 (UTC, seconds).
pub fn format_ms(ms: u64) -> String {
    i64::try_from(ms)
        .ok()
        .and_then(chrono::DateTime::<chrono::Utc>::from_timestamp_millis)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| ms.to_string())
}

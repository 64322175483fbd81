//! `multisite`: the operator's command. `status` shows the fleet on one screen (each Region's
//! status and since when, by which alarm change, its routing, where the Aurora writer is, the
//! latest lag-probe verdict and readiness, the scaler's coverage and capacities); `history` the
//! transitions and their steps, from the ledger. Both only read, with the operator's own
//! credentials (the standard AWS chain; `AWS_ENDPOINT_URL` reaches the local emulator, whose
//! endpoint and topology `drill --keep-running` prints).

pub mod args;
pub mod history;
pub mod status;

use shared::{Ledger, RegionalClients, Topology};

/// What went wrong: the command line or the topology (exit status 2), or an AWS read that the
/// command cannot do without (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("the topology: {0}")]
    Topology(String),
    #[error(transparent)]
    Aws(#[from] shared::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Usage(_) | CliError::Topology(_) => 2,
            CliError::Aws(_) => 1,
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

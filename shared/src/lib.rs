//! multisite's common crate: the typed topology every function reads, per-Region AWS clients,
//! the shared error type, tracing set-up and Embedded Metric Format metrics.

pub mod alarm;
pub mod arc;
pub mod aws;
pub mod capacity;
pub mod clients;
pub mod clock;
pub mod error;
pub mod ledger;
pub mod metrics;
pub mod policy;
pub mod telemetry;
pub mod topology;
pub mod topology_source;

pub use clients::{RegionClients, RegionalClients};
pub use error::{AwsErrorKind, AwsResultExt, Error};
pub use ledger::Ledger;
pub use metrics::{MetricSet, Unit};
pub use topology::{Cell, FailoverPolicy, Topology, TopologyError};
pub use topology_source::{Configured, TopologySource, TopologyStore};

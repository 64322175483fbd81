//! Where a function's topology comes from, and how a warm function keeps it current.
//!
//! On AWS the stack writes the topology to an SSM parameter and gives the functions its name
//! (`MULTISITE_TOPOLOGY_PARAMETER`): Lambda allows 4 KB for all of a function's environment
//! variables together, and the largest topology the template's parameters allow is larger
//! (docs/topology-size.md). Local runs and tests may set `MULTISITE_TOPOLOGY` (the JSON) or
//! `MULTISITE_TOPOLOGY_FILE` (a path) instead.
//!
//! [`TopologyStore`] reads the parameter on the first invocation, not during init, so a cold start
//! pays no network round trip before the runtime asks for its first event; that invocation pays
//! one (GetParameter, in the function's own Region). A change of an environment variable made
//! Lambda start new execution environments; a change of the parameter does not, so a warm function
//! asks again at most once per [`REFRESH_INTERVAL`], concurrently with the event it serves
//! ([`TopologyStore::refresh_if_due`]), and serves the next event with the new topology. The
//! window is shorter than the one a multi-Region deploy already has (one stack after the other).
//! A refresh that fails or reads an invalid topology keeps the one in use and says so in the log.

use crate::clients::RegionalClients;
use crate::topology::{TOPOLOGY_ENV, TOPOLOGY_FILE_ENV, TOPOLOGY_PARAMETER_ENV, Topology, TopologyError};
use aws_config::SdkConfig;
use aws_sdk_ssm::error::DisplayErrorContext;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a warm function asks whether the topology parameter changed.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(60);

/// Where the topology is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopologySource {
    /// The JSON itself (`MULTISITE_TOPOLOGY`).
    Inline(String),
    /// A path to a JSON file (`MULTISITE_TOPOLOGY_FILE`).
    File(String),
    /// The name or ARN of an SSM parameter holding the JSON (`MULTISITE_TOPOLOGY_PARAMETER`).
    Parameter(String),
}

impl TopologySource {
    /// The one source `lookup` (an environment stand-in) names; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, TopologyError> {
        let set = |key: &str| lookup(key).filter(|v| !v.trim().is_empty());
        let found: Vec<(&'static str, String)> = [TOPOLOGY_PARAMETER_ENV, TOPOLOGY_ENV, TOPOLOGY_FILE_ENV]
            .into_iter()
            .filter_map(|key| set(key).map(|value| (key, value)))
            .collect();
        match found.as_slice() {
            [] => Err(TopologyError::Missing),
            [(key, value)] => Ok(match *key {
                TOPOLOGY_PARAMETER_ENV => TopologySource::Parameter(value.trim().to_owned()),
                TOPOLOGY_ENV => TopologySource::Inline(value.clone()),
                _ => TopologySource::File(value.clone()),
            }),
            many => Err(TopologyError::Ambiguous(many.iter().map(|(key, _)| *key).collect())),
        }
    }
}

/// A validated topology and the clients of its Regions: what a handler needs.
#[derive(Debug)]
pub struct Configured {
    pub topology: Topology,
    pub clients: RegionalClients,
    /// The parameter version it was read from (SSM numbers every change); `None` for the other
    /// sources.
    pub version: Option<i64>,
}

/// What [`TopologyStore::refresh_if_due`] did.
#[derive(Debug)]
pub enum Refresh {
    /// Nothing to do: not read from a parameter, never loaded yet, or asked too recently.
    NotDue,
    /// The parameter has the version in use.
    Unchanged,
    /// The next invocation uses the topology of version `to`.
    Replaced { from: Option<i64>, to: Option<i64> },
    /// The parameter could not be read or holds an invalid topology: the one in use stays.
    Kept(TopologyError),
}

#[derive(Debug, Default)]
struct State {
    current: Option<Arc<Configured>>,
    asked_at: Option<Instant>,
}

/// The topology of one execution environment: loaded on first use, kept current (module docs).
#[derive(Debug)]
pub struct TopologyStore {
    source: TopologySource,
    base: SdkConfig,
    ssm: Option<aws_sdk_ssm::Client>,
    refresh_interval: Duration,
    state: Mutex<State>,
}

impl TopologyStore {
    /// Reads nothing yet. `base` is the configuration every client derives from (its Region is
    /// the function's own: the parameter is read there).
    pub fn new(source: TopologySource, base: SdkConfig) -> Self {
        let ssm = matches!(source, TopologySource::Parameter(_)).then(|| aws_sdk_ssm::Client::new(&base));
        Self { source, base, ssm, refresh_interval: REFRESH_INTERVAL, state: Mutex::new(State::default()) }
    }

    /// The source the process environment names.
    pub fn from_env(base: SdkConfig) -> Result<Self, TopologyError> {
        Ok(Self::new(TopologySource::from_lookup(|key| std::env::var(key).ok())?, base))
    }

    /// How often a warm environment asks again (tests shorten it).
    pub fn with_refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    pub fn source(&self) -> &TopologySource {
        &self.source
    }

    /// The topology in use, read on the first call. A failed first read is not remembered: the
    /// next invocation tries again.
    pub async fn current(&self) -> Result<Arc<Configured>, TopologyError> {
        if let Some(current) = self.lock().current.clone() {
            return Ok(current);
        }
        let configured = Arc::new(self.read().await?);
        tracing::info!(source = ?self.source_label(), version = ?configured.version, "topology loaded");
        let mut state = self.lock();
        state.asked_at = Some(Instant::now());
        Ok(state.current.get_or_insert(configured).clone())
    }

    /// Asks the parameter for a newer topology if the last ask is older than the refresh
    /// interval; run it beside the event's work (`tokio::join!`), it never fails the event.
    pub async fn refresh_if_due(&self) -> Refresh {
        let in_use = {
            let mut state = self.lock();
            let due = state.asked_at.is_none_or(|at| at.elapsed() >= self.refresh_interval);
            let in_use = match (&state.current, &self.source) {
                (Some(current), TopologySource::Parameter(_)) if due => current.version,
                _ => return Refresh::NotDue,
            };
            state.asked_at = Some(Instant::now());
            in_use
        };
        // One GetParameter: its answer carries the value with the version, so a change costs no
        // second call.
        let outcome = match self.read().await {
            Ok(fresh) if fresh.version == in_use => Refresh::Unchanged,
            Ok(fresh) => {
                let to = fresh.version;
                self.lock().current = Some(Arc::new(fresh));
                Refresh::Replaced { from: in_use, to }
            }
            Err(error) => Refresh::Kept(error),
        };
        match &outcome {
            Refresh::Replaced { from, to } => {
                tracing::info!(from = ?from, to = ?to, "topology parameter changed: the next invocation uses the new version")
            }
            Refresh::Kept(error) => {
                tracing::warn!(error = %error, version = ?in_use, "topology refresh failed: keeping the topology in use")
            }
            _ => {}
        }
        outcome
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is two fields assigned whole: a panic elsewhere cannot leave it half-written.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn source_label(&self) -> &'static str {
        match self.source {
            TopologySource::Inline(_) => TOPOLOGY_ENV,
            TopologySource::File(_) => TOPOLOGY_FILE_ENV,
            TopologySource::Parameter(_) => TOPOLOGY_PARAMETER_ENV,
        }
    }

    async fn read(&self) -> Result<Configured, TopologyError> {
        let (topology, version) = match &self.source {
            TopologySource::Inline(json) => (Topology::from_json(json)?, None),
            TopologySource::File(path) => (Topology::from_file(path)?, None),
            TopologySource::Parameter(name) => {
                let (json, version) = self.get_parameter(name).await?;
                (Topology::from_json(&json)?, Some(version))
            }
        };
        let clients = RegionalClients::with_base(self.base.clone(), topology.client_regions());
        Ok(Configured { topology, clients, version })
    }

    async fn get_parameter(&self, name: &str) -> Result<(String, i64), TopologyError> {
        let unreadable = |detail: String, source: Box<dyn std::error::Error + Send + Sync>| {
            TopologyError::ParameterUnreadable { name: name.to_owned(), detail, source }
        };
        let ssm = self.ssm.as_ref().ok_or_else(|| unreadable("no SSM client".into(), "no SSM client".into()))?;
        let output = ssm.get_parameter().name(name).send().await.map_err(|error| {
            let hint = match error.as_service_error() {
                Some(e) if e.is_parameter_not_found() => {
                    " (the stack creates it as /multisite/<stack name>/topology: is the stack deployed in this Region?)"
                }
                _ => "",
            };
            unreadable(format!("{}{hint}", DisplayErrorContext(&error)), Box::new(error))
        })?;
        let parameter = output
            .parameter
            .ok_or_else(|| unreadable("the answer holds no parameter".into(), "empty answer".into()))?;
        let value = parameter.value.filter(|v| !v.trim().is_empty());
        let value = value.ok_or_else(|| unreadable("the parameter is empty".into(), "empty parameter".into()))?;
        Ok((value, parameter.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(pairs: &[(&str, &str)]) -> Result<TopologySource, TopologyError> {
        TopologySource::from_lookup(|k| pairs.iter().find(|(key, _)| *key == k).map(|(_, v)| v.to_string()))
    }

    #[test]
    fn exactly_one_source_is_named() {
        let cases: &[(&[(&str, &str)], Result<TopologySource, &str>)] = &[
            (
                &[(TOPOLOGY_PARAMETER_ENV, "/multisite/s/topology")],
                Ok(TopologySource::Parameter("/multisite/s/topology".into())),
            ),
            (&[(TOPOLOGY_PARAMETER_ENV, " /p \n")], Ok(TopologySource::Parameter("/p".into()))),
            (&[(TOPOLOGY_ENV, "{}")], Ok(TopologySource::Inline("{}".into()))),
            (&[(TOPOLOGY_FILE_ENV, "/t.json")], Ok(TopologySource::File("/t.json".into()))),
            // Empty values are unset (a template's empty parameter).
            (&[(TOPOLOGY_ENV, " "), (TOPOLOGY_FILE_ENV, "/t.json")], Ok(TopologySource::File("/t.json".into()))),
            (&[], Err("no topology configured")),
            (
                &[(TOPOLOGY_PARAMETER_ENV, "/p"), (TOPOLOGY_ENV, "{}")],
                Err("MULTISITE_TOPOLOGY_PARAMETER, MULTISITE_TOPOLOGY are all set"),
            ),
            (
                &[(TOPOLOGY_ENV, "{}"), (TOPOLOGY_FILE_ENV, "/t")],
                Err("MULTISITE_TOPOLOGY, MULTISITE_TOPOLOGY_FILE are all set"),
            ),
        ];
        for (pairs, expected) in cases {
            match (source(pairs), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{pairs:?}"),
                (Err(got), Err(want)) => assert!(got.to_string().contains(want), "{pairs:?}: {got}"),
                (got, want) => panic!("{pairs:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_parameter_source_is_refused_where_no_store_reads_it() {
        let err = Topology::from_lookup(|k| (k == TOPOLOGY_PARAMETER_ENV).then(|| "/multisite/s/topology".to_string()))
            .expect_err("needs a store");
        assert!(matches!(&err, TopologyError::InParameterStore(name) if name == "/multisite/s/topology"), "{err}");
        assert!(err.to_string().contains(TOPOLOGY_FILE_ENV), "says what to set instead: {err}");
    }
}

//! Thin DynamoDB adapter: DescribeTable, UpdateTable ReplicaUpdates (one change per call), and
//! the tags that record which replicas this resource added. Every call names its operation and
//! Region in its error ([`shared::AwsResultExt`]); deciding what to do is [`crate::plan`]'s job.

use crate::plan::{Observed, RegionFacts, ReplicaObserved};
use crate::properties::ReplicaSpec;
use crate::record::Owner;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    CreateGlobalTableWitnessGroupMemberAction, CreateReplicationGroupMemberAction,
    DeleteGlobalTableWitnessGroupMemberAction, DeleteReplicationGroupMemberAction, GlobalTableWitnessGroupUpdate,
    MultiRegionConsistency, ReplicationGroupUpdate, TableClass, Tag, UpdateReplicationGroupMemberAction,
};
use aws_smithy_types::error::operation::BuildError;
use shared::AwsResultExt;
use std::collections::{BTreeMap, BTreeSet};

/// Where the per-Region DynamoDB clients come from: [`shared::RegionalClients`] in production,
/// a map of mocked clients in adapter tests.
pub trait DynamoDbClients: Send + Sync {
    fn dynamodb(&self, region: &str) -> Result<Client, shared::Error>;
}

impl DynamoDbClients for shared::RegionalClients {
    fn dynamodb(&self, region: &str) -> Result<Client, shared::Error> {
        Ok(self.region(region)?.dynamodb.clone())
    }
}

impl DynamoDbClients for BTreeMap<String, Client> {
    fn dynamodb(&self, region: &str) -> Result<Client, shared::Error> {
        self.get(region).cloned().ok_or_else(|| shared::Error::UnknownRegion(region.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Aws(#[from] shared::Error),
    #[error("cannot build the {operation} request: {source}")]
    Build {
        operation: &'static str,
        #[source]
        source: BuildError,
    },
}

impl TableError {
    /// Throttling, 5xx, timeouts: a later attempt can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, TableError::Aws(e) if e.is_retryable())
    }

    pub fn aws_code(&self) -> Option<&str> {
        match self {
            TableError::Aws(e) => e.aws_code(),
            TableError::Build { .. } => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.aws_code() == Some("ResourceNotFoundException")
    }

    /// Another replica change is in progress (DynamoDB allows one at a time).
    pub fn is_in_use(&self) -> bool {
        self.aws_code() == Some("ResourceInUseException")
    }

    /// IAM refused the call (the message names the action and the resource): permanent until the
    /// role changes.
    pub fn is_access_denied(&self) -> bool {
        matches!(self, TableError::Aws(shared::Error::Aws { kind: shared::AwsErrorKind::AccessDenied, .. }))
    }
}

fn build<T>(operation: &'static str, result: Result<T, BuildError>) -> Result<T, TableError> {
    result.map_err(|source| TableError::Build { operation, source })
}

/// The home table as DescribeTable reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableView {
    pub arn: String,
    pub status: String,
    pub stream_arn: Option<String>,
    pub replicas: BTreeMap<String, ReplicaObserved>,
    /// `MultiRegionConsistency`, when DescribeTable reports it.
    pub consistency: Option<String>,
    /// `GlobalTableWitnesses`: Region -> `WitnessStatus`.
    pub witnesses: BTreeMap<String, String>,
}

/// DynamoDB operations on one table across Regions.
pub struct Tables<'a> {
    clients: &'a dyn DynamoDbClients,
}

impl<'a> Tables<'a> {
    pub fn new(clients: &'a dyn DynamoDbClients) -> Self {
        Self { clients }
    }

    /// DescribeTable in `region`; `None` when the table does not exist there.
    pub async fn describe(&self, region: &str, table: &str) -> Result<Option<TableView>, TableError> {
        let client = self.clients.dynamodb(region)?;
        let out = client.describe_table().table_name(table).send().await.aws_context("DescribeTable", region);
        let description = match out {
            Ok(out) => out.table,
            Err(e) if e.aws_code() == Some("ResourceNotFoundException") => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let Some(t) = description else { return Ok(None) };
        let replicas = t
            .replicas()
            .iter()
            .filter_map(|r| {
                let region = r.region_name()?.to_owned();
                let status = r.replica_status().map(|s| s.as_str().to_owned()).unwrap_or_else(|| "UNKNOWN".to_owned());
                Some((
                    region,
                    ReplicaObserved { status, description: r.replica_status_description().map(str::to_owned) },
                ))
            })
            .collect();
        let witnesses = t
            .global_table_witnesses()
            .iter()
            .filter_map(|w| {
                let status = w.witness_status().map(|s| s.as_str().to_owned()).unwrap_or_else(|| "UNKNOWN".to_owned());
                Some((w.region_name()?.to_owned(), status))
            })
            .collect();
        Ok(Some(TableView {
            arn: t.table_arn().unwrap_or_default().to_owned(),
            status: t.table_status().map(|s| s.as_str().to_owned()).unwrap_or_else(|| "UNKNOWN".to_owned()),
            stream_arn: t.latest_stream_arn().map(str::to_owned),
            replicas,
            consistency: t.multi_region_consistency().map(|c| c.as_str().to_owned()),
            witnesses,
        }))
    }

    /// The home table, this resource's record and the other records' claims, or `None` when the
    /// table does not exist.
    pub async fn observe(
        &self,
        home: &str,
        table: &str,
        owner: &Owner,
    ) -> Result<Option<(TableView, Observed)>, TableError> {
        let Some(view) = self.describe(home, table).await? else { return Ok(None) };
        let Some(tags) = self.tags(home, &view.arn).await? else { return Ok(None) };
        let claims = crate::record::read(owner, &tags);
        let observed = Observed {
            table_status: view.status.clone(),
            replicas: view.replicas.clone(),
            recorded: claims.mine,
            claimed: claims.others,
            legacy_record: claims.legacy,
            removed_by_request: BTreeSet::new(),
            consistency: view.consistency.clone(),
            witnesses: view.witnesses.clone(),
        };
        Ok(Some((view, observed)))
    }

    /// Facts for the response Data, from each Region's own DescribeTable, concurrently. A Region
    /// that cannot be described contributes what can be derived (the home table already reports
    /// its replica ACTIVE, which is what the resource promises).
    pub async fn region_facts(&self, regions: &[&str], table: &str) -> Vec<RegionFacts> {
        let lookups = regions.iter().map(|region| async move {
            match self.describe(region, table).await {
                Ok(Some(view)) => {
                    RegionFacts { region: (*region).to_owned(), table_arn: Some(view.arn), stream_arn: view.stream_arn }
                }
                other => {
                    if let Err(e) = other {
                        let code = e.aws_code().unwrap_or("error");
                        tracing::warn!(region = %region, code, "could not describe the replica for the response Data; deriving its ARN");
                    }
                    RegionFacts { region: (*region).to_owned(), table_arn: None, stream_arn: None }
                }
            }
        });
        join_all(lookups).await
    }

    pub async fn add_replica(&self, home: &str, table: &str, spec: &ReplicaSpec) -> Result<(), TableError> {
        self.update_table(home, table, create_update(spec)?).await
    }

    /// Makes the single-Region table an MRSC set: one UpdateTable with every replica's Create,
    /// `MultiRegionConsistency: STRONG` and the witness's Create, as DynamoDB requires.
    pub async fn create_strong(
        &self,
        home: &str,
        table: &str,
        replicas: &[ReplicaSpec],
        witness: Option<&str>,
    ) -> Result<(), TableError> {
        let updates = replicas.iter().map(create_update).collect::<Result<Vec<_>, _>>()?;
        let witnesses = witness
            .map(|region| {
                let action = build(
                    "UpdateTable",
                    CreateGlobalTableWitnessGroupMemberAction::builder().region_name(region).build(),
                )?;
                Ok::<_, TableError>(vec![GlobalTableWitnessGroupUpdate::builder().create(action).build()])
            })
            .transpose()?;
        let client = self.clients.dynamodb(home)?;
        client
            .update_table()
            .table_name(table)
            .set_replica_updates(Some(updates))
            .multi_region_consistency(MultiRegionConsistency::Strong)
            .set_global_table_witness_updates(witnesses)
            .send()
            .await
            .aws_context("UpdateTable", home)?;
        Ok(())
    }

    /// Removes every other member of an MRSC set in one UpdateTable (the replicas' Deletes and
    /// the witness's), which leaves the home table single-Region.
    pub async fn dissolve_strong(
        &self,
        home: &str,
        table: &str,
        replicas: &[String],
        witness: Option<&str>,
    ) -> Result<(), TableError> {
        let updates = replicas
            .iter()
            .map(|region| {
                let action =
                    build("UpdateTable", DeleteReplicationGroupMemberAction::builder().region_name(region).build())?;
                Ok(ReplicationGroupUpdate::builder().delete(action).build())
            })
            .collect::<Result<Vec<_>, TableError>>()?;
        let witnesses = witness
            .map(|region| {
                let action = build(
                    "UpdateTable",
                    DeleteGlobalTableWitnessGroupMemberAction::builder().region_name(region).build(),
                )?;
                Ok::<_, TableError>(vec![GlobalTableWitnessGroupUpdate::builder().delete(action).build()])
            })
            .transpose()?;
        let client = self.clients.dynamodb(home)?;
        client
            .update_table()
            .table_name(table)
            .set_replica_updates(Some(updates))
            .set_global_table_witness_updates(witnesses)
            .send()
            .await
            .aws_context("UpdateTable", home)?;
        Ok(())
    }

    pub async fn update_replica(&self, home: &str, table: &str, spec: &ReplicaSpec) -> Result<(), TableError> {
        let mut action = UpdateReplicationGroupMemberAction::builder().region_name(&spec.region);
        if let Some(key) = &spec.kms_master_key_id {
            action = action.kms_master_key_id(key);
        }
        if let Some(class) = &spec.table_class {
            action = action.table_class_override(TableClass::from(class.as_str()));
        }
        let update = ReplicationGroupUpdate::builder().update(build("UpdateTable", action.build())?).build();
        self.update_table(home, table, update).await
    }

    pub async fn remove_replica(&self, home: &str, table: &str, region: &str) -> Result<(), TableError> {
        let action = build("UpdateTable", DeleteReplicationGroupMemberAction::builder().region_name(region).build())?;
        let update = ReplicationGroupUpdate::builder().delete(action).build();
        self.update_table(home, table, update).await
    }

    async fn update_table(&self, home: &str, table: &str, update: ReplicationGroupUpdate) -> Result<(), TableError> {
        let client = self.clients.dynamodb(home)?;
        client
            .update_table()
            .table_name(table)
            .replica_updates(update)
            .send()
            .await
            .aws_context("UpdateTable", home)?;
        Ok(())
    }

    /// All tags of the table (every page), or `None` when the table does not exist.
    pub async fn tags(&self, home: &str, arn: &str) -> Result<Option<BTreeMap<String, String>>, TableError> {
        let client = self.clients.dynamodb(home)?;
        let mut tags = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let out = client
                .list_tags_of_resource()
                .resource_arn(arn)
                .set_next_token(token.take())
                .send()
                .await
                .aws_context("ListTagsOfResource", home);
            let out = match out {
                Ok(out) => out,
                Err(e) if e.aws_code() == Some("ResourceNotFoundException") => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            tags.extend(out.tags().iter().map(|t| (t.key().to_owned(), t.value().to_owned())));
            match out.next_token {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(Some(tags)),
            }
        }
    }

    /// Makes `owner`'s record on the table say `regions` under its id's key (writing and removing
    /// only what changed; a record from before ids is moved). Other records are left alone.
    pub async fn write_record(
        &self,
        home: &str,
        arn: &str,
        owner: &Owner,
        regions: &BTreeSet<String>,
    ) -> Result<(), TableError> {
        // Re-read the tags so stale continuation chunks are removed too.
        let tags = self.tags(home, arn).await?.unwrap_or_default();
        let changes = crate::record::changes(owner, &tags, regions);
        let client = self.clients.dynamodb(home)?;
        if !changes.put.is_empty() {
            let tags = changes
                .put
                .iter()
                .map(|(k, v)| build("TagResource", Tag::builder().key(k).value(v).build()))
                .collect::<Result<Vec<_>, _>>()?;
            client
                .tag_resource()
                .resource_arn(arn)
                .set_tags(Some(tags))
                .send()
                .await
                .aws_context("TagResource", home)?;
        }
        if !changes.remove.is_empty() {
            client
                .untag_resource()
                .resource_arn(arn)
                .set_tag_keys(Some(changes.remove.clone()))
                .send()
                .await
                .aws_context("UntagResource", home)?;
        }
        Ok(())
    }
}

/// The `ReplicaUpdates` Create entry of one replica, with its settings.
fn create_update(spec: &ReplicaSpec) -> Result<ReplicationGroupUpdate, TableError> {
    let mut action = CreateReplicationGroupMemberAction::builder().region_name(&spec.region);
    if let Some(key) = &spec.kms_master_key_id {
        action = action.kms_master_key_id(key);
    }
    if let Some(class) = &spec.table_class {
        action = action.table_class_override(TableClass::from(class.as_str()));
    }
    Ok(ReplicationGroupUpdate::builder().create(build("UpdateTable", action.build())?).build())
}

/// Runs futures concurrently and collects their outputs in order (no extra crate for `join_all`).
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    use std::pin::Pin;
    use std::task::{Context, Poll};

    /// A future, pinned in its box, and its output once ready.
    type Slot<F> = (Pin<Box<F>>, Option<<F as std::future::Future>::Output>);
    struct JoinAll<F: std::future::Future> {
        slots: Vec<Slot<F>>,
    }
    // The futures are pinned in their boxes and outputs are never pinned, so moving the struct is
    // fine whatever the output type.
    impl<F: std::future::Future> Unpin for JoinAll<F> {}
    impl<F: std::future::Future> std::future::Future for JoinAll<F> {
        type Output = Vec<F::Output>;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let this = self.get_mut();
            let mut pending = false;
            for (future, output) in this.slots.iter_mut() {
                if output.is_none() {
                    match future.as_mut().poll(cx) {
                        Poll::Ready(value) => *output = Some(value),
                        Poll::Pending => pending = true,
                    }
                }
            }
            if pending {
                return Poll::Pending;
            }
            Poll::Ready(this.slots.iter_mut().filter_map(|(_, output)| output.take()).collect())
        }
    }
    JoinAll { slots: futures.into_iter().map(|f| (Box::pin(f), None)).collect() }.await
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn join_all_runs_concurrently_and_keeps_order() {
        let started = std::time::Instant::now();
        let outputs = join_all((0..3u64).map(|i| async move {
            tokio::time::sleep(Duration::from_millis(100 - i * 30)).await;
            i
        }))
        .await;
        assert_eq!(outputs, [0, 1, 2]);
        assert!(started.elapsed() < Duration::from_millis(250), "ran concurrently: {:?}", started.elapsed());
    }
}

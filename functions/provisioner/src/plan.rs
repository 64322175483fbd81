//! What to do next to the table's replica set (pure, table-tested).
//!
//! Provisioning is a reconciliation: each round observes the home table (its status, the other
//! Regions' replica statuses, and this resource's record of the replicas it added), and
//! [`next_step`] picks exactly one action, because DynamoDB allows one replica change per
//! `UpdateTable` and none while any replica is CREATING/UPDATING/DELETING. Running the same
//! request again (a continuation, a duplicate delivery, a retry) observes what the last run did
//! and carries on from there, so nothing is done twice.
//!
//! Adds come before removals, so a Region swap never leaves the table with fewer replicas than
//! both the old and the new list.

use crate::consistency::Consistency;
use crate::properties::{LenientProperties, Properties, ReplicaSpec};
use crate::response::DataEntry;
use std::collections::{BTreeMap, BTreeSet};

/// What one request wants of the table's replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    pub table: String,
    pub home: String,
    /// Replicas that must exist and be ACTIVE, in listed order (never the home Region).
    pub ensure: Vec<ReplicaSpec>,
    /// Regions whose replicas must go if present.
    pub remove_listed: BTreeSet<String>,
    /// Whether Regions this resource recorded as added, and that are no longer in `ensure`, go too.
    pub remove_recorded: bool,
    /// Replicas whose settings changed since the previous properties.
    pub update_settings: Vec<ReplicaSpec>,
    /// Delete goals succeed when the table is gone or going.
    pub deleting: bool,
    /// How the replica set must be (or have been) created: STRONG makes it an MRSC set of
    /// `ensure` and `witness` in one `UpdateTable` ([`crate::consistency`]).
    pub consistency: Consistency,
    /// The witness Region of an MRSC set of two replicas.
    pub witness: Option<String>,
}

impl Goal {
    /// Create: add every listed Region that is not a replica yet. Create never removes anything.
    pub fn create(props: &Properties, home: &str) -> Self {
        Self {
            table: props.table_name.clone(),
            home: home.to_owned(),
            ensure: props.replicas(home).cloned().collect(),
            remove_listed: BTreeSet::new(),
            remove_recorded: false,
            update_settings: Vec::new(),
            deleting: false,
            consistency: props.consistency,
            witness: props.witness.clone(),
        }
    }

    /// Update: add what `new` lists and is missing; remove what `old` listed (for the same table)
    /// and `new` no longer lists, and what this resource added and `new` no longer lists; update
    /// the settings of replicas whose settings changed. Regions never listed are left alone.
    pub fn update(new: &Properties, old: &LenientProperties, home: &str) -> Self {
        let mut goal = Self::create(new, home);
        let listed: BTreeSet<&str> = new.regions.iter().map(|r| r.region.as_str()).collect();
        if old.table_name.as_deref() == Some(new.table_name.as_str()) {
            goal.remove_listed = old
                .regions
                .iter()
                .map(|r| r.region.as_str())
                .filter(|r| !listed.contains(r) && *r != home)
                .map(str::to_owned)
                .collect();
            goal.update_settings = new
                .replicas(home)
                .filter(|spec| old.regions.iter().any(|o| o.region == spec.region && o.settings_differ(spec)))
                .cloned()
                .collect();
        }
        goal.remove_recorded = true;
        goal
    }

    /// Delete: remove the replicas this resource added (see [`crate::record`]).
    pub fn delete(table: &str, home: &str) -> Self {
        Self {
            table: table.to_owned(),
            home: home.to_owned(),
            ensure: Vec::new(),
            remove_listed: BTreeSet::new(),
            remove_recorded: true,
            update_settings: Vec::new(),
            deleting: true,
            consistency: Consistency::default(),
            witness: None,
        }
    }

    /// The Regions whose replicas must go, given what this resource recorded and what the table's
    /// other records claim: a replica another live resource recorded is never removed, whatever
    /// this one listed or recorded.
    pub fn removals(&self, recorded: &BTreeSet<String>, claimed: &BTreeSet<String>) -> BTreeSet<String> {
        let ensured: BTreeSet<&str> = self.ensure.iter().map(|s| s.region.as_str()).collect();
        let recorded = recorded.iter().filter(|_| self.remove_recorded);
        self.remove_listed
            .iter()
            .chain(recorded)
            .filter(|r| {
                **r != self.home
                    && !ensured.contains(r.as_str())
                    && self.witness.as_deref() != Some(r.as_str())
                    && !claimed.contains(*r)
            })
            .cloned()
            .collect()
    }
}

/// One replica as the home table's DescribeTable reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaObserved {
    pub status: String,
    pub description: Option<String>,
}

/// The home table as observed in one round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub table_status: String,
    /// The other Regions' replicas (DescribeTable does not list the Region it is called in).
    pub replicas: BTreeMap<String, ReplicaObserved>,
    /// Regions this resource recorded as added.
    pub recorded: BTreeSet<String>,
    /// Regions the table's other records (other resources, other stacks) list.
    pub claimed: BTreeSet<String>,
    /// Whether this resource's record is (partly) still in the form from before ids.
    pub legacy_record: bool,
    /// Regions whose replicas this request already removed (in this invocation or an earlier one
    /// of the same request): their removal is this request's own change, waited for.
    pub removed_by_request: BTreeSet<String>,
    /// `MultiRegionConsistency` as DescribeTable reports it (`None`: not reported, i.e. eventual).
    pub consistency: Option<String>,
    /// The witnesses of an MRSC set (Region -> `WitnessStatus`).
    pub witnesses: BTreeMap<String, String>,
}

impl Observed {
    /// Whether the table is an MRSC global table.
    pub fn is_strong(&self) -> bool {
        self.consistency.as_deref() == Some(Consistency::STRONG)
    }

    /// The table's other Regions (replicas and witnesses), named for a reason.
    fn members_text(&self) -> String {
        let mut parts = Vec::new();
        if !self.replicas.is_empty() {
            parts.push(format!("replicas in {}", self.replicas.keys().cloned().collect::<Vec<_>>().join(", ")));
        }
        if !self.witnesses.is_empty() {
            parts.push(format!("witness in {}", self.witnesses.keys().cloned().collect::<Vec<_>>().join(", ")));
        }
        parts.join(", ")
    }
}

/// An MRSC set: the replicas besides the home table, and the witness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrongSet {
    pub replicas: Vec<ReplicaSpec>,
    pub witness: Option<String>,
}

/// The members an MRSC set is dissolved by (one `UpdateTable`: the remaining table is single-Region).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dissolve {
    pub replicas: Vec<String>,
    pub witness: Option<String>,
}

/// The one thing to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// The replica set is what the goal wants (every ensured replica ACTIVE).
    Done,
    /// Something is in transition; look again later. The text says what.
    Wait(String),
    Add(ReplicaSpec),
    UpdateSettings(ReplicaSpec),
    Remove(String),
    /// Make the single-Region table an MRSC set, in one `UpdateTable`.
    CreateStrong(StrongSet),
    /// Remove every other member of an MRSC set, in one `UpdateTable`.
    DissolveStrong(Dissolve),
    /// Move this resource's record from its form before ids to its id's record.
    Record,
    /// The goal cannot be reached; the text says why and what to do.
    Fail(String),
}

const TRANSITIONAL: &[&str] = &["CREATING", "UPDATING", "DELETING", "ARCHIVING"];

pub fn next_step(goal: &Goal, observed: &Observed, settings_applied: &BTreeSet<String>) -> Step {
    let table = &goal.table;
    let removals = goal.removals(&observed.recorded, &observed.claimed);
    // A Delete with nothing of its own to remove or to wait for is done whatever state the table
    // is in: it must not wait for, or fail on, changes that are not its own.
    if goal.deleting
        && observed.removed_by_request.is_empty()
        && !removals.iter().any(|r| observed.replicas.contains_key(r) || observed.witnesses.contains_key(r))
    {
        return Step::Done;
    }
    let busy: Vec<String> = observed
        .replicas
        .iter()
        .map(|(region, r)| (region, r.status.as_str(), ""))
        .chain(observed.witnesses.iter().map(|(region, status)| (region, status.as_str(), "witness ")))
        .filter(|(_, status, _)| TRANSITIONAL.contains(status))
        .map(|(region, status, what)| format!("{what}{region} {status}"))
        .collect();
    match observed.table_status.as_str() {
        "ACTIVE" => {}
        "CREATING" | "UPDATING" if busy.is_empty() => {
            return Step::Wait(format!("table {table} is {}", observed.table_status));
        }
        "CREATING" | "UPDATING" => return Step::Wait(format!("replicas of {table}: {}", busy.join(", "))),
        "DELETING" if goal.deleting => return Step::Done,
        other if goal.deleting => {
            // Replicas of a table in this state cannot be changed; blocking the stack's deletion
            // would not help anyone.
            return Step::Fail(format!(
                "table {table} in {} is {other}: its replicas cannot be removed now; set RetainReplicasOnDelete to true to delete the stack and remove them later",
                goal.home
            ));
        }
        other => {
            return Step::Fail(format!("table {table} in {} is {other}, so its replicas cannot be changed", goal.home));
        }
    }

    if !busy.is_empty() {
        return Step::Wait(format!("replicas of {table}: {}", busy.join(", ")));
    }

    if let Some(step) = consistency_step(goal, observed, &removals) {
        return step;
    }

    for spec in &goal.ensure {
        match observed.replicas.get(&spec.region) {
            None => return Step::Add(spec.clone()),
            Some(r) if r.status == "CREATION_FAILED" => {
                return Step::Fail(format!(
                    "the replica of {table} in {} failed to create{}; fix the cause, then remove {} from Regions and add it again",
                    spec.region,
                    r.description.as_deref().map(|d| format!(": {d}")).unwrap_or_default(),
                    spec.region
                ));
            }
            Some(_) => {}
        }
    }
    for spec in &goal.update_settings {
        if observed.replicas.contains_key(&spec.region) && !settings_applied.contains(&spec.region) {
            return Step::UpdateSettings(spec.clone());
        }
    }
    for region in removals {
        if observed.replicas.contains_key(&region) {
            return Step::Remove(region);
        }
    }
    for spec in &goal.ensure {
        if let Some(r) = observed.replicas.get(&spec.region).filter(|r| r.status != "ACTIVE") {
            return Step::Fail(format!(
                "the replica of {table} in {} is {}{}",
                spec.region,
                r.status,
                r.description.as_deref().map(|d| format!(": {d}")).unwrap_or_default()
            ));
        }
    }
    if let Some(witness) = &goal.witness
        && let Some(status) = observed.witnesses.get(witness).filter(|s| s.as_str() != "ACTIVE")
    {
        return Step::Fail(format!("the witness of {table} in {witness} is {status}"));
    }
    if observed.legacy_record && !goal.deleting {
        return Step::Record;
    }
    Step::Done
}

/// What the consistency mode decides before replicas are added or removed one by one: an MRSC set
/// is created and dissolved whole, and a global table's mode never changes (AWS's rules, see
/// [`crate::consistency`]). `None`: carry on as for any table.
fn consistency_step(goal: &Goal, observed: &Observed, removals: &BTreeSet<String>) -> Option<Step> {
    let table = &goal.table;
    let home = &goal.home;
    let global = !observed.replicas.is_empty() || !observed.witnesses.is_empty();
    if goal.deleting {
        if !observed.is_strong() {
            return None;
        }
        // An MRSC set loses its other members all at once or not at all: only when this resource
        // may remove every one of them (it added them and no other record claims one).
        let members: BTreeSet<&String> = observed.replicas.keys().chain(observed.witnesses.keys()).collect();
        if members.is_empty() || !members.iter().all(|m| removals.contains(*m)) {
            return Some(Step::Done);
        }
        return Some(Step::DissolveStrong(Dissolve {
            replicas: observed.replicas.keys().cloned().collect(),
            witness: observed.witnesses.keys().next().cloned(),
        }));
    }
    match (goal.consistency, observed.is_strong()) {
        (Consistency::Strong, false) if global => Some(Step::Fail(format!(
            "table {table} in {home} is already a global table with multi-Region eventual consistency ({}): DynamoDB never changes a global table's consistency mode, and makes an MRSC set only from an empty single-Region table. Set MultiRegionConsistency back to EVENTUAL, or give this resource a new, empty table (a new TableName) for STRONG",
            observed.members_text()
        ))),
        (Consistency::Strong, false) => {
            Some(Step::CreateStrong(StrongSet { replicas: goal.ensure.clone(), witness: goal.witness.clone() }))
        }
        (Consistency::Strong, true) => {
            let wanted: BTreeSet<&str> = goal.ensure.iter().map(|s| s.region.as_str()).collect();
            let have: BTreeSet<&str> = observed.replicas.keys().map(String::as_str).collect();
            let witnesses: BTreeSet<&str> = observed.witnesses.keys().map(String::as_str).collect();
            let wanted_witness: BTreeSet<&str> = goal.witness.iter().map(String::as_str).collect();
            if wanted == have && witnesses == wanted_witness {
                return None;
            }
            Some(Step::Fail(format!(
                "table {table} in {home} is an MRSC global table with {}: an MRSC set cannot change after it is created (DynamoDB adds no replica or witness to it and removes its members only all together). List exactly these Regions (and WitnessRegion) again; to change the set, delete this resource (which makes the table single-Region again when it created the set) and create it with the new Regions",
                observed.members_text()
            )))
        }
        (Consistency::Eventual, true) => Some(Step::Fail(format!(
            "table {table} in {home} is a global table with multi-Region strong consistency ({}): DynamoDB never changes a global table's consistency mode. Set MultiRegionConsistency to STRONG (with the table's Regions and WitnessRegion), or delete this resource first to make the table single-Region",
            observed.members_text()
        ))),
        (Consistency::Eventual, false) => None,
    }
}

/// Where a Delete stopped because IAM refused one of its calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Reading the table or this resource's record (DescribeTable, ListTagsOfResource): which
    /// replicas this resource added is unknown.
    Reading,
    /// Removing the replica in this Region (UpdateTable in the home Region, or what DynamoDB
    /// checks in the Region the replica is removed from).
    Removing(String),
    /// Updating the record after the replica in this Region was removed.
    Recording(String),
}

/// A Delete that IAM refused. The decision: answer FAILED at once and stop at the refused call.
/// Retrying cannot help (the role does not change under a running request), SUCCESS would tell
/// CloudFormation the replicas are gone while they stay, and carrying on with other Regions would
/// leave the table half-cleaned for no one to notice. The reason names the refused action and
/// resource, what this Delete removed, what stays, and what to do about it.
///
/// The case that makes this more than a misconfiguration: a TableName change replaces the
/// resource, and CloudFormation's clean-up Delete of the old one runs after the stack update,
/// under the updated role, which (by design) covers only the new table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedDelete {
    pub table: String,
    pub home: String,
    /// The tag(s) that record the replicas this resource added ([`crate::record::Owner::describe`]).
    pub record_key: String,
    pub refused: Refused,
    /// The refused call as [`shared::Error`] renders it (it names the action and the resource).
    pub denial: String,
    /// Replicas this invocation removed before the refusal.
    pub removed: BTreeSet<String>,
    /// Replicas this resource added that are still there; `None` when they could not be read.
    pub left: Option<BTreeSet<String>>,
}

impl DeniedDelete {
    pub fn reason(&self) -> String {
        let Self { table, home, record_key, refused, denial, removed, left } = self;
        let list = |set: &BTreeSet<String>| set.iter().map(String::as_str).collect::<Vec<_>>().join(", ");
        let what = match refused {
            Refused::Reading => format!("IAM refused reading table {table} in {home}"),
            Refused::Removing(region) => format!("IAM refused removing the replica of {table} in {region}"),
            Refused::Recording(region) => format!(
                "the replica of {table} in {region} was removed, but IAM refused updating this resource's record of it"
            ),
        };
        let done = if removed.is_empty() {
            "This Delete removed no replica".to_owned()
        } else {
            format!("This Delete removed the replicas in {} only", list(removed))
        };
        let stays = match left {
            None => format!(
                "every replica this resource added stays as it is (the tag {record_key} of {table} in {home} lists them)"
            ),
            Some(left) if left.is_empty() => "no replica this resource added is left".to_owned(),
            Some(left) => {
                format!("those it added in {} stay (listed in the tag {record_key} of {table} in {home})", list(left))
            }
        };
        format!(
            "{what}: {denial}. {done} and stopped there; {stays}. If this is CloudFormation's clean-up Delete after a \
             TableName change (the resource was replaced), the stack update has already succeeded and the provisioner's \
             role now covers only the new table, as intended: remove these replicas by hand if they are no longer wanted \
             (UpdateTable on {table} in {home}, one ReplicaUpdates Delete at a time), then the tag. Otherwise the role \
             lacks this permission: grant it and delete again."
        )
    }
}

/// What one Region's DescribeTable said, for the response Data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionFacts {
    pub region: String,
    pub table_arn: Option<String>,
    pub stream_arn: Option<String>,
}

/// The ARN of the same table in another Region (table ARNs differ only by Region).
pub fn arn_in_region(home_arn: &str, home: &str, region: &str) -> String {
    home_arn.replacen(&format!(":{home}:"), &format!(":{region}:"), 1)
}

/// The response `Data` for `Fn::GetAtt`, essential keys first, then per-Region keys in the order
/// they may be dropped last (see [`crate::response`]).
pub fn data(props: &Properties, home: &str, home_arn: &str, facts: &[RegionFacts]) -> Vec<DataEntry> {
    let essential = |key: &str, value: String| DataEntry { key: key.to_owned(), value, essential: true };
    let optional = |key: String, value: String| DataEntry { key, value, essential: false };
    let fact = |region: &str| facts.iter().find(|f| f.region == region);
    let mut data = vec![
        essential("TableName", props.table_name.clone()),
        essential("HomeRegion", home.to_owned()),
        essential("Regions", props.region_names().join(",")),
        essential("ReplicaRegions", props.replicas(home).map(|r| r.region.as_str()).collect::<Vec<_>>().join(",")),
        essential("TableArn", home_arn.to_owned()),
    ];
    // Only for an MRSC set, so an eventual resource's Data stays what it always was.
    if props.consistency == Consistency::Strong {
        data.push(essential("MultiRegionConsistency", Consistency::STRONG.to_owned()));
        if let Some(witness) = &props.witness {
            data.push(essential("WitnessRegion", witness.clone()));
        }
    }
    for region in props.region_names() {
        let arn =
            fact(region).and_then(|f| f.table_arn.clone()).unwrap_or_else(|| arn_in_region(home_arn, home, region));
        data.push(optional(format!("TableArn.{region}"), arn));
    }
    if let Some(stream) = fact(home).and_then(|f| f.stream_arn.clone()) {
        data.push(optional("StreamArn".to_owned(), stream));
    }
    for region in props.region_names() {
        if let Some(stream) = fact(region).and_then(|f| f.stream_arn.clone()) {
            data.push(optional(format!("StreamArn.{region}"), stream));
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const HOME: &str = "us-east-1";

    fn props(table: &str, regions: &[&str]) -> Properties {
        Properties {
            table_name: table.into(),
            regions: regions.iter().map(|r| ReplicaSpec::new(*r)).collect(),
            retain_replicas_on_delete: false,
            no_echo: false,
            service_timeout: Duration::from_secs(3600),
            consistency: Consistency::Eventual,
            witness: None,
        }
    }

    fn strong_props(table: &str, regions: &[&str], witness: Option<&str>) -> Properties {
        Properties { consistency: Consistency::Strong, witness: witness.map(str::to_owned), ..props(table, regions) }
    }

    fn strong(mut observed: Observed, witnesses: &[(&str, &str)]) -> Observed {
        observed.consistency = Some("STRONG".into());
        observed.witnesses = witnesses.iter().map(|(r, s)| ((*r).to_owned(), (*s).to_owned())).collect();
        observed
    }

    fn lenient(table: &str, regions: &[&str]) -> LenientProperties {
        LenientProperties {
            table_name: Some(table.into()),
            regions: regions.iter().map(|r| ReplicaSpec::new(*r)).collect(),
            ..LenientProperties::default()
        }
    }

    fn observed(status: &str, replicas: &[(&str, &str)], recorded: &[&str]) -> Observed {
        Observed {
            table_status: status.into(),
            replicas: replicas
                .iter()
                .map(|(r, s)| ((*r).to_owned(), ReplicaObserved { status: (*s).to_owned(), description: None }))
                .collect(),
            recorded: recorded.iter().map(|r| (*r).to_owned()).collect(),
            claimed: BTreeSet::new(),
            legacy_record: false,
            removed_by_request: BTreeSet::new(),
            consistency: None,
            witnesses: BTreeMap::new(),
        }
    }

    fn claimed(mut observed: Observed, claimed: &[&str]) -> Observed {
        observed.claimed = claimed.iter().map(|r| (*r).to_owned()).collect();
        observed
    }

    fn none() -> BTreeSet<String> {
        BTreeSet::new()
    }

    #[test]
    fn create_adds_missing_replicas_one_at_a_time_in_listed_order_then_is_done() {
        let goal = Goal::create(&props("T", &["us-east-1", "eu-west-1", "ap-southeast-1"]), HOME);
        let cases: Vec<(Observed, Step)> = vec![
            (observed("ACTIVE", &[], &[]), Step::Add(ReplicaSpec::new("eu-west-1"))),
            (observed("UPDATING", &[], &["eu-west-1"]), Step::Wait("table T is UPDATING".into())),
            (
                observed("UPDATING", &[("eu-west-1", "CREATING")], &["eu-west-1"]),
                Step::Wait("replicas of T: eu-west-1 CREATING".into()),
            ),
            (
                observed("ACTIVE", &[("eu-west-1", "CREATING")], &["eu-west-1"]),
                Step::Wait("replicas of T: eu-west-1 CREATING".into()),
            ),
            (
                observed("ACTIVE", &[("eu-west-1", "ACTIVE")], &["eu-west-1"]),
                Step::Add(ReplicaSpec::new("ap-southeast-1")),
            ),
            (observed("ACTIVE", &[("eu-west-1", "ACTIVE"), ("ap-southeast-1", "ACTIVE")], &[]), Step::Done),
        ];
        for (obs, want) in cases {
            assert_eq!(next_step(&goal, &obs, &none()), want, "{obs:?}");
        }
    }

    #[test]
    fn create_keeps_replicas_it_was_not_told_about() {
        let goal = Goal::create(&props("T", &["us-east-1", "eu-west-1"]), HOME);
        let obs = observed("ACTIVE", &[("eu-west-1", "ACTIVE"), ("sa-east-1", "ACTIVE")], &[]);
        assert_eq!(next_step(&goal, &obs, &none()), Step::Done);
    }

    #[test]
    fn waits_for_any_replica_in_transition_even_one_it_does_not_manage() {
        let goal = Goal::create(&props("T", &["us-east-1", "eu-west-1"]), HOME);
        let obs = observed("ACTIVE", &[("sa-east-1", "DELETING")], &[]);
        assert!(matches!(next_step(&goal, &obs, &none()), Step::Wait(w) if w.contains("sa-east-1 DELETING")));
    }

    #[test]
    fn update_adds_before_it_removes_and_never_touches_unlisted_replicas() {
        let goal = Goal::update(
            &props("T", &["us-east-1", "ap-southeast-1", "us-west-2"]),
            &lenient("T", &["us-east-1", "eu-west-1", "ap-southeast-1"]),
            HOME,
        );
        let base = [("eu-west-1", "ACTIVE"), ("ap-southeast-1", "ACTIVE"), ("sa-east-1", "ACTIVE")];
        assert_eq!(
            next_step(&goal, &observed("ACTIVE", &base, &[]), &none()),
            Step::Add(ReplicaSpec::new("us-west-2"))
        );
        let with_new = [base.as_slice(), &[("us-west-2", "ACTIVE")]].concat();
        assert_eq!(next_step(&goal, &observed("ACTIVE", &with_new, &[]), &none()), Step::Remove("eu-west-1".into()));
        let after = [("ap-southeast-1", "ACTIVE"), ("sa-east-1", "ACTIVE"), ("us-west-2", "ACTIVE")];
        assert_eq!(
            next_step(&goal, &observed("ACTIVE", &after, &[]), &none()),
            Step::Done,
            "sa-east-1 was never listed"
        );
    }

    #[test]
    fn update_removes_recorded_regions_no_longer_listed_even_when_old_properties_are_unreadable() {
        let goal = Goal::update(&props("T", &["us-east-1"]), &LenientProperties::default(), HOME);
        let obs = observed("ACTIVE", &[("eu-west-1", "ACTIVE"), ("sa-east-1", "ACTIVE")], &["eu-west-1"]);
        assert_eq!(next_step(&goal, &obs, &none()), Step::Remove("eu-west-1".into()));
    }

    #[test]
    fn update_to_another_table_does_not_apply_the_old_tables_list() {
        let goal = Goal::update(&props("New", &["us-east-1"]), &lenient("Old", &["us-east-1", "eu-west-1"]), HOME);
        assert!(goal.remove_listed.is_empty());
        let obs = observed("ACTIVE", &[("eu-west-1", "ACTIVE")], &[]);
        assert_eq!(next_step(&goal, &obs, &none()), Step::Done);
    }

    #[test]
    fn changed_replica_settings_are_updated_once() {
        let mut new = props("T", &["us-east-1", "eu-west-1"]);
        new.regions[1].table_class = Some("STANDARD_INFREQUENT_ACCESS".into());
        let goal = Goal::update(&new, &lenient("T", &["us-east-1", "eu-west-1"]), HOME);
        let obs = observed("ACTIVE", &[("eu-west-1", "ACTIVE")], &[]);
        assert_eq!(next_step(&goal, &obs, &none()), Step::UpdateSettings(new.regions[1].clone()));
        let applied: BTreeSet<String> = ["eu-west-1".to_owned()].into();
        assert_eq!(next_step(&goal, &obs, &applied), Step::Done);
    }

    #[test]
    fn delete_removes_only_recorded_replicas_and_succeeds_when_the_table_goes() {
        let goal = Goal::delete("T", HOME);
        let cases: Vec<(Observed, Step)> = vec![
            (
                observed("ACTIVE", &[("eu-west-1", "ACTIVE"), ("sa-east-1", "ACTIVE")], &["eu-west-1", "us-east-1"]),
                Step::Remove("eu-west-1".into()),
            ),
            (observed("ACTIVE", &[("sa-east-1", "ACTIVE")], &["eu-west-1"]), Step::Done),
            (observed("ACTIVE", &[("eu-west-1", "CREATION_FAILED")], &["eu-west-1"]), Step::Remove("eu-west-1".into())),
            (observed("DELETING", &[("eu-west-1", "ACTIVE")], &["eu-west-1"]), Step::Done),
        ];
        for (obs, want) in cases {
            assert_eq!(next_step(&goal, &obs, &none()), want, "{obs:?}");
        }
        let stuck = observed("ARCHIVED", &[("eu-west-1", "ACTIVE")], &["eu-west-1"]);
        assert!(matches!(next_step(&goal, &stuck, &none()), Step::Fail(f) if f.contains("RetainReplicasOnDelete")));
    }

    #[test]
    fn failures_say_what_happened_and_what_to_do() {
        let goal = Goal::create(&props("T", &["us-east-1", "eu-west-1"]), HOME);
        let mut obs = observed("ACTIVE", &[("eu-west-1", "CREATION_FAILED")], &[]);
        obs.replicas.get_mut("eu-west-1").expect("replica").description = Some("KMS key not found".into());
        assert!(
            matches!(next_step(&goal, &obs, &none()), Step::Fail(f) if f.contains("failed to create: KMS key not found"))
        );
        let disabled = observed("ACTIVE", &[("eu-west-1", "REGION_DISABLED")], &[]);
        assert!(
            matches!(next_step(&goal, &disabled, &none()), Step::Fail(f) if f.contains("eu-west-1 is REGION_DISABLED"))
        );
        let archived = observed("ARCHIVED", &[], &[]);
        assert!(matches!(next_step(&goal, &archived, &none()), Step::Fail(f) if f.contains("is ARCHIVED")));
    }

    #[test]
    fn a_denied_delete_names_the_refusal_what_it_removed_what_stays_and_what_to_do() {
        let denial = "DescribeTable in us-east-1 failed (access denied, AccessDeniedException): User: arn:aws:sts::123456789012:assumed-role/stack-ProvisionerRole/provisioner is not authorized to perform: dynamodb:DescribeTable on resource: arn:aws:dynamodb:us-east-1:123456789012:table/Old";
        let set = |regions: &[&str]| regions.iter().map(|r| (*r).to_owned()).collect::<BTreeSet<String>>();
        let denied = |refused: Refused, removed: &[&str], left: Option<&[&str]>| DeniedDelete {
            table: "Old".into(),
            home: HOME.into(),
            record_key: "multisite:replicas:R".into(),
            refused,
            denial: denial.into(),
            removed: set(removed),
            left: left.map(set),
        };
        // (refusal, what it says happened, what it says stays)
        let cases: Vec<(DeniedDelete, &str, &str)> = vec![
            (
                denied(Refused::Reading, &[], None),
                "IAM refused reading table Old in us-east-1: DescribeTable in us-east-1 failed",
                "This Delete removed no replica and stopped there; every replica this resource added stays as it is (the tag multisite:replicas:R of Old in us-east-1 lists them).",
            ),
            (
                denied(Refused::Removing("eu-west-1".into()), &[], Some(&["ap-southeast-1", "eu-west-1"])),
                "IAM refused removing the replica of Old in eu-west-1: ",
                "This Delete removed no replica and stopped there; those it added in ap-southeast-1, eu-west-1 stay",
            ),
            (
                denied(Refused::Removing("eu-west-1".into()), &["ap-southeast-1"], Some(&["eu-west-1"])),
                "IAM refused removing the replica of Old in eu-west-1: ",
                "This Delete removed the replicas in ap-southeast-1 only and stopped there; those it added in eu-west-1 stay",
            ),
            (
                denied(Refused::Recording("eu-west-1".into()), &["eu-west-1"], Some(&[])),
                "the replica of Old in eu-west-1 was removed, but IAM refused updating this resource's record of it: ",
                "This Delete removed the replicas in eu-west-1 only and stopped there; no replica this resource added is left.",
            ),
        ];
        for (denied, happened, stays) in cases {
            let reason = denied.reason();
            assert!(reason.starts_with(happened), "{reason}");
            assert!(reason.contains(stays), "{reason}");
            assert!(reason.contains(denial), "the refused action and resource, verbatim: {reason}");
            assert!(reason.contains("clean-up Delete after a TableName change"), "{reason}");
            assert!(reason.contains("remove these replicas by hand"), "{reason}");
            assert!(reason.len() < 2048, "room in the 4096-byte answer: {} bytes", reason.len());
        }
    }

    #[test]
    fn nothing_another_record_claims_is_removed() {
        let update = Goal::update(&props("T", &["us-east-1"]), &lenient("T", &["us-east-1", "eu-west-1"]), HOME);
        let delete = Goal::delete("T", HOME);
        let both = [("eu-west-1", "ACTIVE"), ("ap-southeast-1", "ACTIVE")];
        // (goal, observed, step)
        let cases: Vec<(&Goal, Observed, Step)> = vec![
            // Unlisted by this resource, but another resource recorded it: it stays.
            (&update, claimed(observed("ACTIVE", &both, &[]), &["eu-west-1"]), Step::Done),
            (&update, observed("ACTIVE", &both, &[]), Step::Remove("eu-west-1".into())),
            // Recorded by this resource and by another (a record moved half-way): it stays.
            (
                &delete,
                claimed(observed("ACTIVE", &both, &["eu-west-1", "ap-southeast-1"]), &["eu-west-1"]),
                Step::Remove("ap-southeast-1".into()),
            ),
            (
                &delete,
                claimed(observed("ACTIVE", &[("eu-west-1", "ACTIVE")], &["eu-west-1"]), &["eu-west-1"]),
                Step::Done,
            ),
        ];
        for (goal, obs, want) in cases {
            assert_eq!(next_step(goal, &obs, &none()), want, "{obs:?}");
        }
    }

    #[test]
    fn a_delete_that_owns_nothing_is_done_at_once_whatever_the_table_is_doing() {
        let goal = Goal::delete("T", HOME);
        for status in ["ACTIVE", "UPDATING", "ARCHIVED", "INACCESSIBLE_ENCRYPTION_CREDENTIALS"] {
            let nothing = claimed(observed(status, &[("eu-west-1", "CREATING")], &[]), &["eu-west-1"]);
            assert_eq!(next_step(&goal, &nothing, &none()), Step::Done, "{status}");
            let gone = observed(status, &[("eu-west-1", "ACTIVE")], &["sa-east-1"]);
            assert_eq!(next_step(&goal, &gone, &none()), Step::Done, "{status}: its replica is already gone");
        }
        // What it does own is still waited for, and so is a removal it made (no longer recorded).
        let creating = observed("UPDATING", &[("eu-west-1", "CREATING")], &["eu-west-1"]);
        assert!(matches!(next_step(&goal, &creating, &none()), Step::Wait(_)));
        let mut deleting = observed("UPDATING", &[("eu-west-1", "DELETING")], &[]);
        deleting.removed_by_request = ["eu-west-1".to_owned()].into();
        assert!(matches!(next_step(&goal, &deleting, &none()), Step::Wait(w) if w.contains("eu-west-1 DELETING")));
        deleting.replicas.clear();
        deleting.table_status = "ACTIVE".into();
        assert_eq!(next_step(&goal, &deleting, &none()), Step::Done);
    }

    #[test]
    fn a_record_from_before_ids_is_moved_once_the_replicas_are_right() {
        let goal =
            Goal::update(&props("T", &["us-east-1", "eu-west-1"]), &lenient("T", &["us-east-1", "eu-west-1"]), HOME);
        let mut obs = observed("ACTIVE", &[("eu-west-1", "ACTIVE")], &["eu-west-1"]);
        obs.legacy_record = true;
        assert_eq!(next_step(&goal, &obs, &none()), Step::Record);
        let mut adding = observed("ACTIVE", &[], &[]);
        adding.legacy_record = true;
        assert_eq!(next_step(&goal, &adding, &none()), Step::Add(ReplicaSpec::new("eu-west-1")), "replicas first");
        obs.legacy_record = false;
        assert_eq!(next_step(&goal, &obs, &none()), Step::Done);
    }

    #[test]
    fn strong_creates_the_whole_set_in_one_step_then_waits_and_is_done() {
        let goal = Goal::create(&strong_props("T", &["us-east-1", "us-west-2"], Some("us-east-2")), HOME);
        let set = StrongSet { replicas: vec![ReplicaSpec::new("us-west-2")], witness: Some("us-east-2".into()) };
        let cases: Vec<(Observed, Step)> = vec![
            (observed("ACTIVE", &[], &[]), Step::CreateStrong(set)),
            (
                strong(observed("UPDATING", &[("us-west-2", "CREATING")], &[]), &[("us-east-2", "CREATING")]),
                Step::Wait("replicas of T: us-west-2 CREATING, witness us-east-2 CREATING".into()),
            ),
            (
                strong(
                    observed("ACTIVE", &[("us-west-2", "ACTIVE")], &["us-west-2", "us-east-2"]),
                    &[("us-east-2", "ACTIVE")],
                ),
                Step::Done,
            ),
        ];
        for (obs, want) in cases {
            assert_eq!(next_step(&goal, &obs, &none()), want, "{obs:?}");
        }
        let three = Goal::create(&strong_props("T", &["us-east-1", "us-east-2", "us-west-2"], None), HOME);
        assert_eq!(
            next_step(&three, &observed("ACTIVE", &[], &[]), &none()),
            Step::CreateStrong(StrongSet {
                replicas: vec![ReplicaSpec::new("us-east-2"), ReplicaSpec::new("us-west-2")],
                witness: None
            })
        );
    }

    #[test]
    fn consistency_never_changes_and_an_mrsc_set_never_changes_each_refusal_says_what_to_do() {
        let strong_goal = Goal::create(&strong_props("T", &["us-east-1", "us-east-2", "us-west-2"], None), HOME);
        let eventual_goal = Goal::update(
            &props("T", &["us-east-1", "us-east-2", "us-west-2"]),
            &lenient("T", &["us-east-1", "us-east-2", "us-west-2"]),
            HOME,
        );
        let witnessed_goal = Goal::create(&strong_props("T", &["us-east-1", "us-west-2"], Some("us-east-2")), HOME);
        let mrec = observed("ACTIVE", &[("us-east-2", "ACTIVE")], &["us-east-2"]);
        let mrsc = strong(observed("ACTIVE", &[("us-east-2", "ACTIVE"), ("us-west-2", "ACTIVE")], &[]), &[]);
        // (goal, observed, what the reason says)
        let cases: Vec<(&Goal, Observed, &[&str])> = vec![
            (
                &strong_goal,
                mrec,
                &[
                    "multi-Region eventual consistency (replicas in us-east-2)",
                    "Set MultiRegionConsistency back to EVENTUAL",
                    "new, empty table",
                ],
            ),
            (
                &eventual_goal,
                mrsc.clone(),
                &[
                    "multi-Region strong consistency (replicas in us-east-2, us-west-2)",
                    "Set MultiRegionConsistency to STRONG",
                ],
            ),
            (
                &witnessed_goal,
                mrsc,
                &[
                    "MRSC global table with replicas in us-east-2, us-west-2",
                    "cannot change after it is created",
                    "delete this resource",
                ],
            ),
        ];
        for (goal, obs, needles) in cases {
            let step = next_step(goal, &obs, &none());
            let Step::Fail(reason) = &step else { panic!("{obs:?}: wanted a refusal, got {step:?}") };
            for needle in needles {
                assert!(reason.contains(needle), "{reason}: wanted …{needle}…");
            }
        }
    }

    #[test]
    fn a_delete_dissolves_an_mrsc_set_whole_or_leaves_it_whole() {
        let goal = Goal::delete("T", HOME);
        let set = |recorded: &[&str]| {
            strong(observed("ACTIVE", &[("us-west-2", "ACTIVE")], recorded), &[("us-east-2", "ACTIVE")])
        };
        let dissolve =
            Step::DissolveStrong(Dissolve { replicas: vec!["us-west-2".into()], witness: Some("us-east-2".into()) });
        let cases: Vec<(Observed, Step)> = vec![
            (set(&["us-east-2", "us-west-2"]), dissolve),
            // It added only part of the set (or another record claims a member): nothing is removed.
            (set(&["us-west-2"]), Step::Done),
            (claimed(set(&["us-east-2", "us-west-2"]), &["us-east-2"]), Step::Done),
            (set(&[]), Step::Done),
        ];
        for (obs, want) in cases {
            assert_eq!(next_step(&goal, &obs, &none()), want, "{obs:?}");
        }
        // Its removals are waited for, then it is done.
        let mut going = strong(observed("UPDATING", &[("us-west-2", "DELETING")], &[]), &[("us-east-2", "DELETING")]);
        going.removed_by_request = ["us-west-2".to_owned(), "us-east-2".to_owned()].into();
        assert!(matches!(next_step(&goal, &going, &none()), Step::Wait(w) if w.contains("witness us-east-2 DELETING")));
        let mut gone = observed("ACTIVE", &[], &[]);
        gone.removed_by_request = going.removed_by_request.clone();
        assert_eq!(next_step(&goal, &gone, &none()), Step::Done);
    }

    #[test]
    fn an_update_of_an_mrsc_set_keeps_its_witness() {
        let goal = Goal::update(
            &strong_props("T", &["us-east-1", "us-west-2"], Some("us-east-2")),
            &lenient("T", &["us-east-1", "us-west-2"]),
            HOME,
        );
        let obs = strong(
            observed("ACTIVE", &[("us-west-2", "ACTIVE")], &["us-east-2", "us-west-2"]),
            &[("us-east-2", "ACTIVE")],
        );
        assert_eq!(next_step(&goal, &obs, &none()), Step::Done, "the recorded witness is not removed");
    }

    #[test]
    fn data_lists_regions_and_arns_with_essentials_first() {
        let p = props("T", &["us-east-1", "eu-west-1", "ap-southeast-1"]);
        let home_arn = "arn:aws:dynamodb:us-east-1:123456789012:table/T";
        let facts = vec![
            RegionFacts {
                region: "us-east-1".into(),
                table_arn: Some(home_arn.into()),
                stream_arn: Some("s-use1".into()),
            },
            RegionFacts {
                region: "eu-west-1".into(),
                table_arn: Some("arn:aws:dynamodb:eu-west-1:123456789012:table/T".into()),
                stream_arn: None,
            },
        ];
        let data = data(&p, HOME, home_arn, &facts);
        let get = |k: &str| data.iter().find(|e| e.key == k).map(|e| e.value.as_str());
        assert_eq!(get("Regions"), Some("us-east-1,eu-west-1,ap-southeast-1"));
        assert_eq!(get("ReplicaRegions"), Some("eu-west-1,ap-southeast-1"));
        assert_eq!(get("TableArn"), Some(home_arn));
        assert_eq!(
            get("TableArn.ap-southeast-1"),
            Some("arn:aws:dynamodb:ap-southeast-1:123456789012:table/T"),
            "derived when not described"
        );
        assert_eq!(get("StreamArn"), Some("s-use1"));
        let first_optional = data.iter().position(|e| !e.essential).expect("optional keys");
        assert!(data[first_optional..].iter().all(|e| !e.essential), "essentials come first");
        assert!(data.last().is_some_and(|e| e.key.starts_with("StreamArn")), "stream ARNs are dropped first");
    }
}

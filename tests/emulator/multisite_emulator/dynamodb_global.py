"""DynamoDB global tables, version 2019.11.21, on top of moto's DynamoDB.

moto 5.2.5 accepts ``UpdateTable`` with ``ReplicaUpdates`` and ignores it. We
patch moto's ``DynamoHandler`` in-process so that:

* ``ReplicaUpdates`` Create/Delete build and tear down real replica tables in
  the target Region's moto backend, with AWS's validation and error texts;
* ``DescribeTable`` (any member Region) shows ``GlobalTableVersion``,
  ``Replicas`` (the *other* Regions, as AWS lists them) and the right
  ``TableStatus`` (CREATING/UPDATING/DELETING/ACTIVE) while changes run;
* item writes (PutItem, UpdateItem, DeleteItem, BatchWriteItem,
  TransactWriteItems) replicate to every other member after the replication
  delay, last writer wins, and are held while either Region is in an outage.

Replication carries the item image as it was right after the write (or a
tombstone for a delete) with a write timestamp. A destination applies it
only if it is newer than what it last stored for that key: the same
last-writer-wins rule AWS documents for multi-Region eventual consistency.

Multi-Region strong consistency (MRSC, ``MultiRegionConsistency: STRONG``):
one ``UpdateTable`` turns an empty single-Region table into a set of exactly
three Regions of one Region set (three replicas, or two plus a witness from
``GlobalTableWitnessUpdates``), with AWS's validation. In such a set a write
is applied to every other replica before it is acknowledged, so a strongly
consistent read in any member sees the latest acknowledged write and a
conditional write is evaluated against it; a write to an item another
Region wrote less than ``mrsc_conflict_window_ms`` ago fails with
``ReplicatedWriteConflictException``. A witness holds no readable table.
"""

from __future__ import annotations

import copy
import functools
import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from moto.dynamodb.exceptions import (
    ERROR_TYPE_PREFIX,
    DynamodbException,
    MockValidationException,
    ResourceInUseException,
    ResourceNotFoundException,
)
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.responses import DynamoHandler

from .state import EmulatorState

GLOBAL_TABLE_VERSION = "2019.11.21"
ACTIVE, CREATING, DELETING, UPDATING = "ACTIVE", "CREATING", "DELETING", "UPDATING"

# UpdateTable parameters that cannot be combined with ReplicaUpdates (AWS:
# ReplicaUpdates must be the only operation in the request).
_OTHER_TABLE_UPDATES = (
    "GlobalSecondaryIndexUpdates",
    "ProvisionedThroughput",
    "BillingMode",
    "StreamSpecification",
    "SSESpecification",
    "TableClass",
    "DeletionProtectionEnabled",
    "WarmThroughput",
    "OnDemandThroughput",
)
EVENTUAL, STRONG = "EVENTUAL", "STRONG"
# The Region sets of multi-Region strong consistency (DynamoDB API reference,
# CreateGlobalTableWitnessGroupMemberAction; CloudFormation GlobalTableWitness):
# an MRSC set's three Regions (replicas and witness) are all in one of them.
MRSC_REGION_SETS = {
    "US": ("us-east-1", "us-east-2", "us-west-2"),
    "EU": ("eu-west-1", "eu-west-2", "eu-west-3", "eu-central-1"),
    "AP": ("ap-northeast-1", "ap-northeast-2", "ap-northeast-3"),
}
_TRANSACT_OPS = ("transact_get_items", "transact_write_items")
_READ_OPS = ("get_item", "query", "scan", "batch_get_item", "transact_get_items")
_WRITE_OPS = ("put_item", "update_item", "delete_item", "batch_write_item", "transact_write_items")

# Key of an item inside one table: (hash DynamoType, range DynamoType | None).
ItemKey = tuple[DynamoType, Any]
# Last-writer-wins stamp: (write time in ns, Region of the original write).
Stamp = tuple[int, str]


@dataclass
class ReplicaGroup:
    """The Regions holding one global table, in the order replicas were added."""

    account: str
    table: str
    members: dict[str, str]  # Region -> replica status
    consistency: str = EVENTUAL
    witnesses: dict[str, str] = field(default_factory=dict)  # Region -> witness status (MRSC only)

    def busy(self) -> bool:
        statuses = list(self.members.values()) + list(self.witnesses.values())
        return any(s in (CREATING, DELETING) for s in statuses)


class ReplicatedWriteConflictException(DynamodbException):
    """An MRSC write to an item another Region is modifying (retryable, HTTP 400)."""

    def __init__(self) -> None:
        super().__init__(
            ERROR_TYPE_PREFIX + "ReplicatedWriteConflictException",
            message="One or more items in this request are being modified by a request in another Region.",
        )


def region_set(region: str) -> str | None:
    for name, regions in MRSC_REGION_SETS.items():
        if region in regions:
            return name
    return None


def _region_sets_text() -> str:
    return "; ".join(f"{name}: {', '.join(regions)}" for name, regions in MRSC_REGION_SETS.items())


@dataclass
class Replication:
    """One item write travelling from ``source`` to ``destination``."""

    id: int
    account: str
    table: str
    source: str
    destination: str
    key: ItemKey
    image: Item | None  # None = the item was deleted
    stamp: Stamp


def _table_name(value: str) -> str:
    # TableName may be given as a table ARN (arn:aws:dynamodb:r:acct:table/NAME).
    if value.startswith("arn:") and ":table/" in value:
        return value.split(":table/", 1)[1].split("/", 1)[0]
    return value


class GlobalTables:
    def __init__(self, state: EmulatorState):
        self.state = state
        self._ids = itertools.count(1)
        self.reset()

    # -- feature protocol -------------------------------------------------
    def reset(self) -> None:
        self.groups: dict[tuple[str, str], ReplicaGroup] = {}
        self.stamps: dict[tuple[str, str, str], dict[ItemKey, Stamp]] = {}
        self.in_flight: dict[int, Replication] = {}
        self.held: dict[int, Replication] = {}
        self._last_ts = 0
        # MRSC: (account, table, item key) -> (Region of the last write, monotonic end of its conflict window).
        self.mrsc_writes: dict[tuple[str, str, ItemKey], tuple[str, float]] = {}

    def snapshot(self) -> dict[str, Any]:
        return {
            "replica_groups": [
                {
                    "account": g.account,
                    "table": g.table,
                    "replicas": [{"region": r, "status": s} for r, s in g.members.items()],
                    "consistency": g.consistency,
                    "witnesses": [{"region": r, "status": s} for r, s in g.witnesses.items()],
                }
                for g in self.groups.values()
            ],
            "pending_replications": len(self.in_flight) + len(self.held),
            "held_replications": len(self.held),
        }

    def on_region_up(self, region: str) -> None:
        # Writes held by an outage flow again once both ends are reachable.
        for rep in list(self.held.values()):
            if not self.state.is_down(rep.source, "dynamodb") and not self.state.is_down(rep.destination, "dynamodb"):
                del self.held[rep.id]
                self.in_flight[rep.id] = rep
                self.state.scheduler.call_later(0, functools.partial(self._deliver, rep.id))

    # -- helpers ----------------------------------------------------------
    @staticmethod
    def backend(account: str, region: str) -> Any:
        return dynamodb_backends[account][region]

    def member_group(self, account: str, table: str, region: str) -> ReplicaGroup | None:
        group = self.groups.get((account, table))
        if group is not None and region in group.members:
            return group
        return None

    def table_status(self, group: ReplicaGroup, region: str) -> str:
        own = group.members[region]
        if own in (CREATING, DELETING):
            return own
        return UPDATING if group.busy() else ACTIVE

    def decorate(self, description: dict[str, Any], account: str, region: str) -> None:
        """Add the global-table view of ``region``'s table to a TableDescription."""
        group = self.member_group(account, description.get("TableName", ""), region)
        if group is None:
            return
        description["TableStatus"] = self.table_status(group, region)
        description["GlobalTableVersion"] = GLOBAL_TABLE_VERSION
        # AWS lists the other Regions of the global table, not the one asked.
        description["Replicas"] = [
            {"RegionName": r, "ReplicaStatus": s} for r, s in group.members.items() if r != region
        ]
        if group.consistency == STRONG:
            description["MultiRegionConsistency"] = STRONG
            if group.witnesses:
                description["GlobalTableWitnesses"] = [
                    {"RegionName": r, "WitnessStatus": s} for r, s in group.witnesses.items()
                ]

    def _next_stamp(self, region: str) -> Stamp:
        # Wall-clock ns like AWS's write timestamps, forced strictly increasing so
        # two writes in the emulator never tie; the Region breaks ties anyway.
        self._last_ts = max(time.time_ns(), self._last_ts + 1)
        return (self._last_ts, region)

    def _drop_member(self, group: ReplicaGroup, region: str) -> None:
        group.members.pop(region, None)
        self.stamps.pop((group.account, region, group.table), None)
        if len(group.members) <= 1:
            # A table with no other replica is a plain regional table again.
            self.groups.pop((group.account, group.table), None)
            for remaining in group.members:
                self.stamps.pop((group.account, remaining, group.table), None)

    # -- ReplicaUpdates ---------------------------------------------------
    def replica_updates(self, account: str, region: str, body: dict[str, Any]) -> None:
        """Validate and apply UpdateTable.ReplicaUpdates (raises moto errors)."""
        name = _table_name(body["TableName"])
        if any(body.get(k) is not None for k in _OTHER_TABLE_UPDATES):
            raise MockValidationException(
                "ReplicaUpdates cannot be combined with other table updates in the same UpdateTable request."
            )
        consistency = body.get("MultiRegionConsistency")
        if consistency is not None and consistency not in (EVENTUAL, STRONG):
            raise MockValidationException(
                f"1 validation error detected: Value '{consistency}' at 'multiRegionConsistency' failed to satisfy "
                "constraint: Member must satisfy enum value set: [EVENTUAL, STRONG]"
            )
        witness_actions = self._witness_actions(body.get("GlobalTableWitnessUpdates"))
        updates = body.get("ReplicaUpdates") or []
        if consistency is not None and not any(u.get("Create") is not None for u in updates):
            raise MockValidationException(
                "MultiRegionConsistency is only valid when creating a global table: specify one or more Create "
                "actions in ReplicaUpdates."
            )
        group = self.groups.get((account, name))
        if group is not None and region in group.members and group.consistency == STRONG:
            self._mrsc_change(group, region, updates, witness_actions)
            return
        if consistency == STRONG:
            self._create_mrsc(account, region, name, updates, witness_actions)
            return
        if witness_actions:
            raise MockValidationException(
                "GlobalTableWitnessUpdates apply only to global tables with multi-Region strong consistency: "
                "a witness must be added when the MRSC global table is created (MultiRegionConsistency STRONG)."
            )
        if not updates:
            raise MockValidationException(
                "1 validation error detected: Value '[]' at 'replicaUpdates' failed to satisfy constraint: "
                "Member must have length greater than or equal to 1"
            )
        actions = []
        for update in updates:
            kinds = [k for k in ("Create", "Update", "Delete") if update.get(k) is not None]
            if not kinds:
                raise MockValidationException("There are no actions specified in the Replica Update Action of the request.")
            if len(kinds) > 1:
                raise MockValidationException("Update table operation with more than one type of replica actions not allowed.")
            action = (kinds[0], (update[kinds[0]] or {}).get("RegionName") or "")
            if action not in actions:  # AWS de-duplicates identical actions
                actions.append(action)
        if len(actions) > 1:
            raise MockValidationException(
                "Update table operation with more than one create or delete replica actions not allowed."
            )
        kind, target = actions[0]
        known = dynamodb_backends[account].regions
        if target not in known:
            raise MockValidationException(
                f"Region {target} is not supported. The latest version of global tables are only supported "
                f"in the following regions: [{', '.join(known)}]."
            )
        if target == region:
            raise MockValidationException(
                "Cannot add or delete the local region through ReplicaUpdates. "
                "Use CreateTable, DeleteTable, or UpdateTable as required."
            )
        source_table = self.backend(account, region).get_table(name)  # ResourceNotFound if absent
        group = self.groups.get((account, name))
        if group is not None and region not in group.members:
            # A standalone same-name table outside the global table: the group's
            # Regions already hold tables of that name, the caller is no member.
            if kind == "Create":
                raise MockValidationException(
                    f"Failed to create a the new replica of table with name: '{name}' because one or more "
                    "replicas already existed as tables."
                )
            group = None
        members = group.members if group else {region: ACTIVE}
        if kind == "Create":
            if target in members or name in self.backend(account, target).tables:
                raise MockValidationException(
                    f"Failed to create a the new replica of table with name: '{name}' because one or more "
                    "replicas already existed as tables."
                )
        elif target not in members:
            raise MockValidationException(
                "Update global table operation failed because one or more replicas were not part of the "
                f"global table. Please retry the request without these replicas: [{target}]."
            )
        if group is not None and group.busy():
            raise ResourceInUseException(
                f"Attempt to change a resource which is still in use: Table is being updated: {name}"
            )
        if kind == "Create":
            self._create_replica(account, region, source_table, target)
        elif kind == "Delete":
            self._delete_replica(group, target)  # type: ignore[arg-type]
        # Update (per-replica overrides) is accepted and has no effect here.

    # -- multi-Region strong consistency -----------------------------------
    @staticmethod
    def _witness_actions(updates: Any) -> list[tuple[str, str]]:
        if updates is None:
            return []
        actions: list[tuple[str, str]] = []
        for update in updates:
            kinds = [k for k in ("Create", "Delete") if update.get(k) is not None]
            if len(kinds) != 1:
                raise MockValidationException(
                    "Each GlobalTableWitnessUpdates entry must specify exactly one of Create or Delete."
                )
            actions.append((kinds[0], (update[kinds[0]] or {}).get("RegionName") or ""))
        if len(actions) > 1:
            raise MockValidationException("You can create or delete only one witness per UpdateTable operation.")
        return actions

    def _create_mrsc(
        self,
        account: str,
        region: str,
        name: str,
        updates: list[dict[str, Any]],
        witness_actions: list[tuple[str, str]],
    ) -> None:
        """UpdateTable with MultiRegionConsistency STRONG: a new MRSC set from a single-Region table."""
        if any(u.get("Create") is None for u in updates):
            raise MockValidationException(
                "Creating a global table with multi-Region strong consistency accepts only Create actions in ReplicaUpdates."
            )
        targets = [(u["Create"] or {}).get("RegionName") or "" for u in updates]
        group = self.groups.get((account, name))
        if group is not None:
            if region in group.members:
                raise MockValidationException(
                    f"Table {name} is already a global table with multi-Region eventual consistency: the consistency "
                    "mode of a global table cannot be changed after it is created."
                )
            raise MockValidationException(
                f"Failed to create a the new replica of table with name: '{name}' because one or more "
                "replicas already existed as tables."
            )
        if any(kind != "Create" for kind, _ in witness_actions):
            raise MockValidationException(
                "A witness can only be created together with the MRSC global table, not deleted on its own."
            )
        witnesses = [w for _, w in witness_actions]
        known = dynamodb_backends[account].regions
        for target in targets + witnesses:
            if target not in known:
                raise MockValidationException(
                    f"Region {target} is not supported. The latest version of global tables are only supported "
                    f"in the following regions: [{', '.join(known)}]."
                )
        if region in targets or region in witnesses:
            raise MockValidationException(
                "Cannot add or delete the local region through ReplicaUpdates. "
                "Use CreateTable, DeleteTable, or UpdateTable as required."
            )
        if len(set(targets)) != len(targets):
            raise MockValidationException("Duplicate replica Regions in ReplicaUpdates.")
        if set(witnesses) & set(targets):
            raise MockValidationException(
                f"The witness Region {witnesses[0]} must be different from the replica Regions."
            )
        replicas = [region, *targets]
        if not ((len(replicas) == 3 and not witnesses) or (len(replicas) == 2 and len(witnesses) == 1)):
            raise MockValidationException(
                "A global table with multi-Region strong consistency must have exactly three Regions: three replicas, "
                f"or two replicas and one witness; this request has {len(replicas)} replica(s) "
                f"({', '.join(replicas)}) and {len(witnesses)} witness(es)."
            )
        sets = {r: region_set(r) for r in replicas + witnesses}
        if None in sets.values() or len(set(sets.values())) != 1:
            got = ", ".join(f"{r} ({s or 'no set'})" for r, s in sets.items())
            raise MockValidationException(
                "The Regions of a global table with multi-Region strong consistency must all be in one Region set "
                f"({_region_sets_text()}); got {got}."
            )
        source = self.backend(account, region).get_table(name)  # ResourceNotFound if absent
        for target in targets:
            if name in self.backend(account, target).tables:
                raise MockValidationException(
                    f"Failed to create a the new replica of table with name: '{name}' because one or more "
                    "replicas already existed as tables."
                )
        if any(True for _ in source.all_items()):
            raise MockValidationException(
                f"Table {name} is not empty: a global table with multi-Region strong consistency can only be "
                "created from an empty table."
            )
        if (source.ttl or {}).get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
            raise MockValidationException(
                f"Table {name} has Time to Live enabled: global tables with multi-Region strong consistency do not "
                "support Time to Live."
            )
        if source.indexes:
            raise MockValidationException(
                f"Table {name} has local secondary indexes: global tables with multi-Region strong consistency do "
                "not support local secondary indexes."
            )
        group = ReplicaGroup(account, name, {region: ACTIVE}, consistency=STRONG)
        self.groups[(account, name)] = group
        for target in targets:
            self._create_replica(account, region, source, target)
        for witness in witnesses:
            group.witnesses[witness] = CREATING

            def activate(witness: str = witness) -> None:
                if group.witnesses.get(witness) == CREATING and self.groups.get((account, name)) is group:
                    group.witnesses[witness] = ACTIVE

            self.state.scheduler.call_later(self.state.timings["replica_creating_ms"], activate)

    def _mrsc_change(
        self,
        group: ReplicaGroup,
        region: str,
        updates: list[dict[str, Any]],
        witness_actions: list[tuple[str, str]],
    ) -> None:
        """ReplicaUpdates/GlobalTableWitnessUpdates on an MRSC set: only dissolving it to one replica."""
        name = group.table
        creates = [u for u in updates if u.get("Create") is not None]
        if creates or any(kind == "Create" for kind, _ in witness_actions):
            raise MockValidationException(
                f"Table {name} is a global table with multi-Region strong consistency: replicas and witnesses "
                "cannot be added to it after it is created."
            )
        deletes = [(u["Delete"] or {}).get("RegionName") or "" for u in updates if u.get("Delete") is not None]
        witness_deletes = [w for _, w in witness_actions]
        if not deletes and not witness_deletes:
            return  # Update actions: accepted, no effect (overrides are not modelled)
        if region in deletes:
            raise MockValidationException(
                "Cannot add or delete the local region through ReplicaUpdates. "
                "Use CreateTable, DeleteTable, or UpdateTable as required."
            )
        missing = [r for r in deletes if r not in group.members] + [w for w in witness_deletes if w not in group.witnesses]
        if missing:
            raise MockValidationException(
                "Update global table operation failed because one or more replicas were not part of the "
                f"global table. Please retry the request without these replicas: [{', '.join(missing)}]."
            )
        if group.busy():
            raise ResourceInUseException(
                f"Attempt to change a resource which is still in use: Table is being updated: {name}"
            )
        others = [r for r in group.members if r != region]
        if sorted(set(deletes)) != sorted(others) or sorted(witness_deletes) != sorted(group.witnesses):
            if group.witnesses:
                need = f"the replica in {others[0] if others else '?'} and the witness in {next(iter(group.witnesses))}"
            else:
                need = f"the replicas in {' and '.join(others)}"
            raise MockValidationException(
                f"A global table with multi-Region strong consistency keeps its three Regions: delete {need} "
                "together in one UpdateTable, which converts the remaining replica to a single-Region table."
            )
        for target in deletes:
            self._delete_replica(group, target)
        for witness in witness_deletes:
            group.witnesses[witness] = DELETING

            def finish(witness: str = witness) -> None:
                if group.witnesses.get(witness) == DELETING:
                    group.witnesses.pop(witness, None)

            self.state.scheduler.call_later(self.state.timings["replica_deleting_ms"], finish)

    def check_mrsc_operation(self, account: str, region: str, op: str, names: list[str]) -> None:
        """Operations MRSC replicas refuse: transactions (AWS: not supported with MRSC)."""
        if op not in _TRANSACT_OPS:
            return
        for name in names:
            group = self.member_group(account, name, region)
            if group is not None and group.consistency == STRONG:
                raise MockValidationException(
                    f"Table {name} is a global table with multi-Region strong consistency, which does not support "
                    "transactions (TransactWriteItems, TransactGetItems)."
                )

    def check_ttl_change(self, account: str, region: str, name: str, spec: dict[str, Any]) -> None:
        group = self.member_group(account, name, region)
        if group is not None and group.consistency == STRONG and (spec or {}).get("Enabled"):
            raise MockValidationException(
                f"Table {name} is a global table with multi-Region strong consistency, which does not support "
                "Time to Live."
            )

    def check_write_conflicts(self, account: str, region: str, keys: list[tuple[str, dict[str, Any]]]) -> None:
        """MRSC: a write to an item another Region is still modifying fails (ReplicatedWriteConflictException)."""
        now = time.monotonic()
        backend = self.backend(account, region)
        for name, key in keys:
            group = self.member_group(account, name, region)
            if group is None or group.consistency != STRONG:
                continue
            table = backend.tables.get(name)
            item_key = self._item_key(table, key) if table is not None else None
            if item_key is None:
                continue
            last = self.mrsc_writes.get((account, name, item_key))
            if last is not None and last[0] != region and now < last[1]:
                raise ReplicatedWriteConflictException()

    def _create_replica(self, account: str, region: str, source: Any, target: str) -> None:
        name = source.name
        group = self.groups.setdefault((account, name), ReplicaGroup(account, name, {region: ACTIVE}))
        # AWS turns on a NEW_AND_OLD_IMAGES stream: replication is built on it.
        if not (source.stream_specification or {}).get("StreamEnabled"):
            source.set_stream_specification({"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
        provisioned = source.billing_mode != "PAY_PER_REQUEST"

        def throughput(tp: dict[str, Any]) -> dict[str, Any] | None:
            if not provisioned:
                return None
            return {"ReadCapacityUnits": tp["ReadCapacityUnits"], "WriteCapacityUnits": tp["WriteCapacityUnits"]}

        gsis = []
        for index in source.global_indexes:
            spec = {"IndexName": index.name, "KeySchema": copy.deepcopy(index.schema), "Projection": copy.deepcopy(index.projection)}
            if provisioned:
                spec["ProvisionedThroughput"] = throughput(index.throughput)
            gsis.append(spec)
        lsis = [
            {"IndexName": i.name, "KeySchema": copy.deepcopy(i.schema), "Projection": copy.deepcopy(i.projection)}
            for i in source.indexes
        ]
        replica = self.backend(account, target).create_table(
            name,
            schema=copy.deepcopy(source.schema),
            throughput=throughput(source.throughput),
            attr=copy.deepcopy(source.attr),
            global_indexes=gsis,
            indexes=lsis,
            streams=copy.deepcopy(source.stream_specification),
            billing_mode=source.billing_mode,
            sse_specification=None,
            tags=[],
            deletion_protection_enabled=False,
            warm_throughput=None,
        )
        # A new replica starts as a full copy of the table; later writes reach
        # it through replication (it receives them while CREATING too).
        replica.items = copy.deepcopy(source.items)
        self.stamps[(account, target, name)] = dict(self.stamps.get((account, region, name), {}))
        group.members[target] = CREATING

        def activate() -> None:
            if group.members.get(target) == CREATING and self.groups.get((account, name)) is group:
                group.members[target] = ACTIVE

        self.state.scheduler.call_later(self.state.timings["replica_creating_ms"], activate)

    def _delete_replica(self, group: ReplicaGroup, target: str) -> None:
        # Replication to and from a DELETING replica stops at once.
        group.members[target] = DELETING

        def finish() -> None:
            if group.members.get(target) != DELETING:
                return
            self.backend(group.account, target).tables.pop(group.table, None)
            self._drop_member(group, target)

        self.state.scheduler.call_later(self.state.timings["replica_deleting_ms"], finish)

    # -- gates on other operations ------------------------------------------
    def check_table_change(self, account: str, region: str, name: str) -> None:
        """UpdateTable/DeleteTable on a member while the group changes: ResourceInUse."""
        group = self.member_group(account, name, region)
        if group is None or not group.busy():
            return
        own = group.members[region]
        what = {CREATING: "created", DELETING: "deleted"}.get(own, "updated")
        raise ResourceInUseException(f"Attempt to change a resource which is still in use: Table is being {what}: {name}")

    def check_data_access(self, account: str, region: str, names: list[str]) -> None:
        """A CREATING or DELETING replica answers only DescribeTable, as in AWS."""
        for name in names:
            group = self.member_group(account, name, region)
            if group is not None and group.members[region] in (CREATING, DELETING):
                raise ResourceNotFoundException()

    def table_deleted(self, account: str, region: str, name: str) -> None:
        group = self.member_group(account, name, region)
        if group is not None:
            self._drop_member(group, region)

    # -- replication --------------------------------------------------------
    def record_writes(self, account: str, region: str, keys: list[tuple[str, dict[str, Any]]]) -> None:
        """After a successful write in ``region``: stamp it and send it to the other members."""
        backend = self.backend(account, region)
        for name, key in keys:
            group = self.member_group(account, name, region)
            if group is None or group.members[region] != ACTIVE:
                continue
            table = backend.tables.get(name)
            if table is None:
                continue
            item_key = self._item_key(table, key)
            if item_key is None:
                continue
            current = table.get_item(*item_key)
            image = copy.deepcopy(current) if current is not None else None
            stamp = self._next_stamp(region)
            self.stamps.setdefault((account, region, name), {})[item_key] = stamp
            strong = group.consistency == STRONG
            if strong:
                window = self.state.timings.get("mrsc_conflict_window_ms", 0) / 1000
                self.mrsc_writes[(account, name, item_key)] = (region, time.monotonic() + window)
            for destination, status in group.members.items():
                if destination == region or status not in (ACTIVE, CREATING):
                    continue
                rep = Replication(next(self._ids), account, name, region, destination, item_key, image, stamp)
                self.in_flight[rep.id] = rep
                if strong:
                    # MRSC: the write is in every reachable replica before it is acknowledged (a
                    # replica in an outage catches up when it is back).
                    self._deliver(rep.id)
                else:
                    self.state.scheduler.call_later(
                        self.state.replication_delay(region, destination), functools.partial(self._deliver, rep.id)
                    )

    @staticmethod
    def _item_key(table: Any, key: dict[str, Any]) -> ItemKey | None:
        try:
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr else None
        except KeyError:
            return None
        return (hash_value, range_value)

    def _deliver(self, rep_id: int) -> None:
        rep = self.in_flight.pop(rep_id, None)
        if rep is None:
            return
        group = self.groups.get((rep.account, rep.table))
        if group is None:
            return
        if group.members.get(rep.source) not in (ACTIVE,) or group.members.get(rep.destination) not in (ACTIVE, CREATING):
            return  # a replica left (or is leaving) the group: replication to/from it stopped
        if self.state.is_down(rep.source, "dynamodb") or self.state.is_down(rep.destination, "dynamodb"):
            self.held[rep.id] = rep  # resumes in on_region_up
            return
        table = self.backend(rep.account, rep.destination).tables.get(rep.table)
        if table is None:
            return
        stamps = self.stamps.setdefault((rep.account, rep.destination, rep.table), {})
        existing = stamps.get(rep.key)
        if existing is not None and existing >= rep.stamp:
            return  # last writer wins: the destination already has a newer write
        stamps[rep.key] = rep.stamp
        hash_value, range_value = rep.key
        old = table.get_item(hash_value, range_value)
        if rep.image is None:
            if old is not None:
                table.delete_item(hash_value, range_value)  # also records the stream event
            return
        new = copy.deepcopy(rep.image)
        if range_value is not None:
            table.items[hash_value][range_value] = new
        else:
            table.items[hash_value] = new
        if table.stream_shard is not None:
            table.stream_shard.add(old, new)


# -- moto patches -------------------------------------------------------------


def _written_keys(handler: DynamoHandler, op: str) -> list[tuple[str, dict[str, Any]]]:
    """(table, key) of every item a successful write operation touched."""
    body = handler.body
    backend = handler.dynamodb_backend

    def key_of_item(name: str, item: dict[str, Any]) -> dict[str, Any]:
        table = backend.tables.get(name)
        if table is None:
            return {}
        return {a: item[a] for a in table.table_key_attrs if a in item}

    if op == "put_item":
        name = _table_name(body["TableName"])
        return [(name, key_of_item(name, body["Item"]))]
    if op in ("update_item", "delete_item"):
        return [(_table_name(body["TableName"]), body["Key"])]
    out: list[tuple[str, dict[str, Any]]] = []
    if op == "batch_write_item":
        for raw_name, requests in (body.get("RequestItems") or {}).items():
            name = _table_name(raw_name)
            for request in requests:
                if "PutRequest" in request:
                    out.append((name, key_of_item(name, request["PutRequest"]["Item"])))
                elif "DeleteRequest" in request:
                    out.append((name, request["DeleteRequest"]["Key"]))
    elif op == "transact_write_items":
        for entry in body.get("TransactItems") or []:
            for kind in ("Put", "Update", "Delete"):
                if kind in entry:
                    name = _table_name(entry[kind]["TableName"])
                    key = key_of_item(name, entry[kind]["Item"]) if kind == "Put" else entry[kind]["Key"]
                    out.append((name, key))
    return out


def _touched_tables(handler: DynamoHandler) -> list[str]:
    body = handler.body
    names = []
    if body.get("TableName"):
        names.append(_table_name(body["TableName"]))
    names += [_table_name(n) for n in (body.get("RequestItems") or {})]
    for entry in body.get("TransactItems") or []:
        for op in entry.values():
            if isinstance(op, dict) and op.get("TableName"):
                names.append(_table_name(op["TableName"]))
    return names


def install(state: EmulatorState) -> GlobalTables:
    gt = GlobalTables(state)

    def patch(name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> None:
        original = getattr(DynamoHandler, name)
        setattr(DynamoHandler, name, functools.wraps(original)(make(original)))

    # moto is not thread-safe and replication must see each write atomically:
    # serialize every DynamoDB call with the emulator lock.
    def locked(original: Callable[..., Any]) -> Callable[..., Any]:
        def call_action(self: DynamoHandler) -> Any:
            with state.lock:
                return original(self)

        return call_action

    patch("call_action", locked)

    def describe_table(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: DynamoHandler) -> Any:
            result = original(self)
            gt.decorate(result.result["Table"], self.current_account, self.region)
            return result

        return wrapper

    patch("describe_table", describe_table)

    def update_table(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: DynamoHandler) -> Any:
            account, region = self.current_account, self.region
            if any(self.body.get(k) is not None for k in ("ReplicaUpdates", "GlobalTableWitnessUpdates", "MultiRegionConsistency")):
                gt.replica_updates(account, region, self.body)
            else:
                gt.check_table_change(account, region, _table_name(self.body["TableName"]))
            result = original(self)
            gt.decorate(result.result["TableDescription"], account, region)
            return result

        return wrapper

    patch("update_table", update_table)

    def delete_table(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: DynamoHandler) -> Any:
            account, region = self.current_account, self.region
            name = _table_name(self.body["TableName"])
            gt.check_table_change(account, region, name)
            result = original(self)
            gt.table_deleted(account, region, name)
            # moto answers ACTIVE; AWS's DeleteTable response says DELETING.
            result.result["TableDescription"]["TableStatus"] = DELETING
            return result

        return wrapper

    patch("delete_table", delete_table)

    def update_time_to_live(original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: DynamoHandler) -> Any:
            name = _table_name(self.body.get("TableName") or "")
            gt.check_ttl_change(self.current_account, self.region, name, self.body.get("TimeToLiveSpecification") or {})
            return original(self)

        return wrapper

    patch("update_time_to_live", update_time_to_live)

    def reader_for(op: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def make(original: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(self: DynamoHandler) -> Any:
                tables = _touched_tables(self)
                gt.check_data_access(self.current_account, self.region, tables)
                gt.check_mrsc_operation(self.current_account, self.region, op, tables)
                return original(self)

            return wrapper

        return make

    def writer(op: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def make(original: Callable[..., Any]) -> Callable[..., Any]:
            def wrapper(self: DynamoHandler) -> Any:
                tables = _touched_tables(self)
                gt.check_data_access(self.current_account, self.region, tables)
                gt.check_mrsc_operation(self.current_account, self.region, op, tables)
                gt.check_write_conflicts(self.current_account, self.region, _written_keys(self, op))
                result = original(self)  # raises on failure: nothing to replicate
                gt.record_writes(self.current_account, self.region, _written_keys(self, op))
                return result

            return wrapper

        return make

    for op in _READ_OPS:
        patch(op, reader_for(op))
    for op in _WRITE_OPS:
        patch(op, writer(op))
    return gt

"""Aurora global database failover/switchover on top of moto's RDS.

moto 5.2.5 answers FailoverGlobalCluster/SwitchoverGlobalCluster with HTTP 500
(not implemented), ignores DescribeGlobalClusters' GlobalClusterIdentifier,
and builds a global cluster's ARN by deleting every occurrence of its Region
name from the string (so an id containing "us-east-1" loses it). We patch
moto's RDS classes in-process:

* FailoverGlobalCluster (AllowDataLoss -> failover, otherwise switchover) and
  SwitchoverGlobalCluster: validated as AWS documents; the global cluster
  shows Status and FailoverState "failing-over"/"switching-over" for
  ``failover_ms``, then the target becomes the writer and the old writer a
  reader member.
* DescribeGlobalClusters honours GlobalClusterIdentifier (GlobalClusterNotFoundFault).
* ARNs are ``arn:aws:rds::ACCOUNT:global-cluster:ID`` (no Region).
* A cluster that sources CreateGlobalCluster becomes the writer (moto left
  IsWriter false), and deleting/removing a member works from any Region.

moto keeps every global cluster in the us-east-1 backend of the account
whatever Region the call is signed for; global clusters are global, so the
calls here may be signed for any Region.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.core.responses import ActionResult
from moto.rds.exceptions import DBClusterNotFoundError, RDSClientError
from moto.rds.models import DBCluster, GlobalCluster, RDSBackend, rds_backends
from moto.rds.responses import RDSResponse

from .state import EmulatorState

GLOBAL_STORE_REGION = "us-east-1"  # where moto stores global clusters


def _flag(value: Any) -> bool | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def _not_found(identifier: str) -> RDSClientError:
    return RDSClientError("GlobalClusterNotFoundFault", f"Global cluster {identifier} not found.")


def _invalid_state(message: str) -> RDSClientError:
    return RDSClientError("InvalidGlobalClusterStateFault", message)


class AuroraGlobal:
    def __init__(self, state: EmulatorState):
        self.state = state

    def reset(self) -> None:
        pass  # all failover state lives on moto's GlobalCluster objects, reset by moto

    def snapshot(self) -> dict[str, Any]:
        in_progress = []
        for account, regional in list(rds_backends.items()):
            if GLOBAL_STORE_REGION not in regional.keys():
                continue
            for gc in regional[GLOBAL_STORE_REGION].global_clusters.values():
                if getattr(gc, "failover_state", None):
                    in_progress.append({"account": account, "global_cluster": gc.global_cluster_identifier, **gc.failover_state})
        return {"global_cluster_failovers": in_progress}

    def on_region_up(self, region: str) -> None:
        pass

    # -- lookups ------------------------------------------------------------
    @staticmethod
    def global_clusters(account: str) -> Any:
        return rds_backends[account][GLOBAL_STORE_REGION].global_clusters

    def find_global(self, account: str, identifier: str) -> GlobalCluster:
        clusters = self.global_clusters(account)
        for gc in clusters.values():
            if identifier.lower() in (gc.global_cluster_identifier.lower(), gc.global_cluster_arn.lower()):
                return gc
        raise _not_found(identifier)

    @staticmethod
    def find_cluster(account: str, region: str, identifier: str) -> DBCluster:
        # AWS asks for the target's ARN "so that Aurora can locate the cluster in
        # its Region"; a bare identifier is looked up in the Region called.
        if identifier.startswith("arn:"):
            parts = identifier.split(":")
            if len(parts) >= 7 and parts[5] == "cluster":
                cluster_region, cluster_id = parts[3], parts[6]
                if cluster_region in rds_backends[account].regions:
                    cluster = rds_backends[account][cluster_region].clusters.get(cluster_id)
                    if cluster is not None:
                        return cluster
            raise DBClusterNotFoundError(identifier)
        cluster = rds_backends[account][region].clusters.get(identifier)
        if cluster is None:
            raise DBClusterNotFoundError(identifier)
        return cluster

    # -- operations ----------------------------------------------------------
    def start(self, account: str, region: str, gc_id: str | None, target_id: str | None, switchover: bool) -> GlobalCluster:
        if not gc_id or not target_id:
            raise RDSClientError(
                "InvalidParameterValue", "GlobalClusterIdentifier and TargetDbClusterIdentifier are required."
            )
        gc = self.find_global(account, gc_id)
        target = self.find_cluster(account, region, target_id)
        if gc.failover_state:
            raise _invalid_state(
                f"Global cluster {gc.global_cluster_identifier} is already {gc.failover_state['Status']}; "
                "wait for it to finish before starting another failover or switchover."
            )
        if target not in gc.members:
            raise _invalid_state(
                f"DB cluster {target.db_cluster_arn} is not a member of global cluster {gc.global_cluster_identifier}."
            )
        writer = next((m for m in gc.members if m.is_writer), None)
        if target is writer:
            raise _invalid_state(
                f"DB cluster {target.db_cluster_arn} is already the primary cluster of global cluster "
                f"{gc.global_cluster_identifier}."
            )
        if switchover and writer is not None and self.state.is_down(writer.region, "rds"):
            # A switchover synchronizes from the healthy primary first; with the
            # primary Region down only a failover (AllowDataLoss) can proceed.
            raise _invalid_state(
                f"The primary cluster {writer.db_cluster_arn} is unavailable; a switchover needs a healthy "
                "primary. Use FailoverGlobalCluster with AllowDataLoss to fail over."
            )
        status = "switching-over" if switchover else "failing-over"
        gc.failover_state = {
            "Status": status,
            "FromDbClusterArn": writer.db_cluster_arn if writer is not None else None,
            "ToDbClusterArn": target.db_cluster_arn,
            "IsDataLossAllowed": not switchover,
        }
        gc.status = status

        def finish() -> None:
            if gc.failover_state is None:
                return
            if target in gc.members:
                for member in gc.members:
                    member.is_writer = member is target
            gc.failover_state = None
            gc.status = "available"

        self.state.scheduler.call_later(self.state.timings["failover_ms"], finish)
        return gc


def install(state: EmulatorState) -> AuroraGlobal:
    aurora = AuroraGlobal(state)

    # -- model fixes --------------------------------------------------------
    GlobalCluster.failover_state = None  # serialized as FailoverState when set

    def arn(self: GlobalCluster) -> str:
        return f"arn:{self.partition}:rds::{self.account_id}:global-cluster:{self.global_cluster_identifier}"

    GlobalCluster.arn = property(arn)  # type: ignore[assignment]

    original_create_global = RDSBackend.create_global_cluster

    @functools.wraps(original_create_global)
    def create_global_cluster(self: RDSBackend, *args: Any, **kwargs: Any) -> GlobalCluster:
        gc = original_create_global(self, *args, **kwargs)
        if len(gc.members) == 1:
            gc.members[0].is_writer = True  # the source cluster is the primary
        return gc

    RDSBackend.create_global_cluster = create_global_cluster  # type: ignore[method-assign]

    original_create_cluster = RDSBackend.create_db_cluster

    @functools.wraps(original_create_cluster)
    def create_db_cluster(self: RDSBackend, kwargs: dict[str, Any]) -> DBCluster:
        # moto joins a member only when GlobalClusterIdentifier equals a stored
        # id, and silently creates a standalone cluster otherwise. AWS rejects an
        # unknown global cluster; resolve ARNs and ids the way AWS does.
        identifier = kwargs.get("global_cluster_identifier")
        if identifier:
            kwargs = dict(kwargs, global_cluster_identifier=aurora.find_global(self.account_id, identifier).global_cluster_identifier)
        return original_create_cluster(self, kwargs)

    RDSBackend.create_db_cluster = create_db_cluster  # type: ignore[method-assign]

    def detach(account: str, cluster: DBCluster) -> Any:
        for gc in list(aurora.global_clusters(account).values()):
            if cluster in gc.members:
                gc.members.remove(cluster)
                cluster.is_writer = False
                cluster.global_cluster_identifier = None
                return gc
        return None

    original_delete_cluster = RDSBackend.delete_db_cluster

    @functools.wraps(original_delete_cluster)
    def delete_db_cluster(self: RDSBackend, *args: Any, **kwargs: Any) -> DBCluster:
        cluster = original_delete_cluster(self, *args, **kwargs)
        detach(self.account_id, cluster)  # moto only looked in the calling Region
        return cluster

    RDSBackend.delete_db_cluster = delete_db_cluster  # type: ignore[method-assign]

    def remove_from_global_cluster(self: RDSBackend, global_cluster_identifier: str, db_cluster_identifier: str) -> Any:
        gc = aurora.find_global(self.account_id, global_cluster_identifier)
        cluster = aurora.find_cluster(self.account_id, self.region_name, db_cluster_identifier)
        if cluster not in gc.members:
            raise DBClusterNotFoundError(db_cluster_identifier)
        detach(self.account_id, cluster)
        return gc

    RDSBackend.remove_from_global_cluster = remove_from_global_cluster  # type: ignore[method-assign]

    # -- API ----------------------------------------------------------------
    original_call_action = RDSResponse.call_action

    @functools.wraps(original_call_action)
    def call_action(self: RDSResponse) -> Any:
        # Failover state is changed by the scheduler thread: keep reads consistent.
        with state.lock:
            return original_call_action(self)

    RDSResponse.call_action = call_action  # type: ignore[method-assign]

    def describe_global_clusters(self: RDSResponse) -> ActionResult:
        identifier = self._get_param("GlobalClusterIdentifier")
        if identifier:
            clusters = [aurora.find_global(self.current_account, identifier)]
        else:
            clusters = list(aurora.global_clusters(self.current_account).values())
        return ActionResult({"GlobalClusters": clusters})

    def failover_global_cluster(self: RDSResponse) -> ActionResult:
        allow_data_loss = _flag(self._get_param("AllowDataLoss"))
        switchover_flag = _flag(self._get_param("Switchover"))
        if allow_data_loss is not None and switchover_flag is not None:
            raise RDSClientError(
                "InvalidParameterCombination", "AllowDataLoss and Switchover can't be specified together."
            )
        switchover = not allow_data_loss  # AWS: without AllowDataLoss it is a switchover
        gc = aurora.start(
            self.current_account,
            self.region,
            self._get_param("GlobalClusterIdentifier"),
            self._get_param("TargetDbClusterIdentifier"),
            switchover,
        )
        return ActionResult({"GlobalCluster": gc})

    def switchover_global_cluster(self: RDSResponse) -> ActionResult:
        gc = aurora.start(
            self.current_account,
            self.region,
            self._get_param("GlobalClusterIdentifier"),
            self._get_param("TargetDbClusterIdentifier"),
            switchover=True,
        )
        return ActionResult({"GlobalCluster": gc})

    RDSResponse.describe_global_clusters = describe_global_clusters  # type: ignore[method-assign]
    RDSResponse.failover_global_cluster = failover_global_cluster  # type: ignore[attr-defined]
    RDSResponse.switchover_global_cluster = switchover_global_cluster  # type: ignore[attr-defined]
    return aurora

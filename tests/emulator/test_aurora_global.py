"""Aurora global database: failover/switchover, FailoverState, errors, identifier filter, ARNs."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from conftest import Emulator, wait_for

A, B, C = "us-east-1", "eu-west-1", "ap-southeast-2"
GLOBAL_ID = "orders-us-east-1-global"  # a Region inside the id must survive in the ARN


def make_global(emu: Emulator, regions=(A, B)) -> dict[str, str]:
    """A global cluster with a primary in regions[0] and secondaries elsewhere: {region: cluster ARN}."""
    rds = emu.client("rds", regions[0])
    rds.create_global_cluster(GlobalClusterIdentifier=GLOBAL_ID, Engine="aurora-postgresql")
    arns = {}
    for i, region in enumerate(regions):
        kwargs = {"DBClusterIdentifier": f"orders-{region}", "Engine": "aurora-postgresql",
                  "GlobalClusterIdentifier": GLOBAL_ID}
        if i == 0:
            kwargs.update(MasterUsername="app", MasterUserPassword="correct-horse-battery")
        arns[region] = emu.client("rds", region).create_db_cluster(**kwargs)["DBCluster"]["DBClusterArn"]
    return arns


def describe(emu: Emulator, region: str = B) -> dict:
    clusters = emu.client("rds", region).describe_global_clusters(GlobalClusterIdentifier=GLOBAL_ID)["GlobalClusters"]
    assert len(clusters) == 1
    return clusters[0]


def writer(gc: dict) -> str:
    writers = [m["DBClusterArn"] for m in gc["GlobalClusterMembers"] if m["IsWriter"]]
    assert len(writers) == 1, gc
    return writers[0]


def code(excinfo) -> str:
    return excinfo.value.response["Error"]["Code"]


def test_failover_moves_writer_with_failover_state_visible(emu):
    emu.post("timing", {"failover_ms": 1000})  # room to observe the in-progress state
    arns = make_global(emu)
    assert writer(describe(emu)) == arns[A]

    rds_b = emu.client("rds", B)  # the caller calls RDS in the target Region
    gc = rds_b.failover_global_cluster(
        GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=arns[B], AllowDataLoss=True
    )["GlobalCluster"]
    expected_state = {"Status": "failing-over", "FromDbClusterArn": arns[A], "ToDbClusterArn": arns[B],
                      "IsDataLossAllowed": True}
    assert gc["Status"] == "failing-over" and gc["FailoverState"] == expected_state
    during = describe(emu)
    assert during["FailoverState"] == expected_state and writer(during) == arns[A]

    after = wait_for(lambda: (g := describe(emu)).get("FailoverState") is None and g, timeout=4)
    assert after["Status"] == "available"
    assert writer(after) == arns[B]
    members = {m["DBClusterArn"]: m for m in after["GlobalClusterMembers"]}
    assert members[arns[B]]["Readers"] == [arns[A]]  # the old writer is now a reader member
    assert members[arns[A]]["IsWriter"] is False


def test_switchover_moves_writer_and_back(emu):
    arns = make_global(emu)
    gc = emu.client("rds", B).switchover_global_cluster(
        GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=arns[B]
    )["GlobalCluster"]
    assert gc["Status"] == "switching-over"
    assert gc["FailoverState"]["Status"] == "switching-over"
    assert gc["FailoverState"]["IsDataLossAllowed"] is False
    wait_for(lambda: writer(describe(emu)) == arns[B])

    # FailoverGlobalCluster without AllowDataLoss is a switchover too (AWS default).
    gc = emu.client("rds", A).failover_global_cluster(
        GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=f"orders-{A}"  # bare id: caller's Region
    )["GlobalCluster"]
    assert gc["FailoverState"]["Status"] == "switching-over"
    wait_for(lambda: writer(describe(emu)) == arns[A])


def test_second_failover_while_one_is_in_progress(emu):
    emu.post("timing", {"failover_ms": 1500})
    arns = make_global(emu, (A, B, C))
    rds = emu.client("rds", B)
    rds.failover_global_cluster(GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=arns[B], AllowDataLoss=True)
    with pytest.raises(ClientError) as excinfo:
        rds.failover_global_cluster(GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=arns[C], AllowDataLoss=True)
    assert code(excinfo) == "InvalidGlobalClusterStateFault"
    with pytest.raises(ClientError) as excinfo:
        rds.switchover_global_cluster(GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=arns[C])
    assert code(excinfo) == "InvalidGlobalClusterStateFault"
    wait_for(lambda: "FailoverState" not in describe(emu))
    assert writer(describe(emu)) == arns[B]


def test_failover_errors(emu):
    arns = make_global(emu)
    rds = emu.client("rds", B)
    with pytest.raises(ClientError) as excinfo:
        rds.failover_global_cluster(GlobalClusterIdentifier="nope", TargetDbClusterIdentifier=arns[B], AllowDataLoss=True)
    assert code(excinfo) == "GlobalClusterNotFoundFault"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    missing = arns[B].replace(f"orders-{B}", "ghost")
    with pytest.raises(ClientError) as excinfo:
        rds.switchover_global_cluster(GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=missing)
    assert code(excinfo) == "DBClusterNotFoundFault"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

    outsider = emu.client("rds", C).create_db_cluster(
        DBClusterIdentifier="standalone", Engine="aurora-postgresql", MasterUsername="u", MasterUserPassword="password-123"
    )["DBCluster"]["DBClusterArn"]
    with pytest.raises(ClientError) as excinfo:
        rds.failover_global_cluster(GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=outsider, AllowDataLoss=True)
    assert code(excinfo) == "InvalidGlobalClusterStateFault"

    with pytest.raises(ClientError) as excinfo:
        rds.switchover_global_cluster(GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=arns[A])
    assert code(excinfo) == "InvalidGlobalClusterStateFault"  # already the writer

    with pytest.raises(ClientError) as excinfo:
        rds.failover_global_cluster(
            GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=arns[B], AllowDataLoss=True, Switchover=True
        )
    assert code(excinfo) == "InvalidParameterCombination"
    assert writer(describe(emu)) == arns[A] and "FailoverState" not in describe(emu)


def test_switchover_needs_a_reachable_primary(emu):
    arns = make_global(emu)
    emu.post("outage", {"region": A, "down": True})
    rds = emu.client("rds", B)
    with pytest.raises(ClientError) as excinfo:
        rds.switchover_global_cluster(GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=arns[B])
    assert code(excinfo) == "InvalidGlobalClusterStateFault"
    rds.failover_global_cluster(GlobalClusterIdentifier=GLOBAL_ID, TargetDbClusterIdentifier=arns[B], AllowDataLoss=True)
    wait_for(lambda: writer(describe(emu)) == arns[B])


def test_describe_global_clusters_identifier_filter_and_arn(emu):
    make_global(emu)
    rds = emu.client("rds", C)  # global clusters are global: any Region sees them
    rds.create_global_cluster(GlobalClusterIdentifier="other", Engine="aurora-postgresql")
    assert len(rds.describe_global_clusters()["GlobalClusters"]) == 2
    gc = describe(emu, C)
    assert gc["GlobalClusterIdentifier"] == GLOBAL_ID
    assert gc["GlobalClusterArn"] == f"arn:aws:rds::123456789012:global-cluster:{GLOBAL_ID}"
    with pytest.raises(ClientError) as excinfo:
        rds.describe_global_clusters(GlobalClusterIdentifier="missing")
    assert code(excinfo) == "GlobalClusterNotFoundFault"


def test_source_cluster_of_create_global_cluster_is_the_writer(emu):
    rds = emu.client("rds", A)
    arn = rds.create_db_cluster(
        DBClusterIdentifier="solo", Engine="aurora-postgresql", MasterUsername="u", MasterUserPassword="password-123"
    )["DBCluster"]["DBClusterArn"]
    rds.create_global_cluster(GlobalClusterIdentifier=GLOBAL_ID, SourceDBClusterIdentifier=arn)
    assert writer(describe(emu)) == arn


def test_deleting_a_secondary_leaves_the_global_cluster(emu):
    arns = make_global(emu)
    emu.client("rds", B).delete_db_cluster(DBClusterIdentifier=f"orders-{B}", SkipFinalSnapshot=True)
    assert [m["DBClusterArn"] for m in describe(emu)["GlobalClusterMembers"]] == [arns[A]]


def test_create_db_cluster_resolves_the_global_cluster(emu):
    arns = make_global(emu, (A,))
    rds_b = emu.client("rds", B)
    arn_b = rds_b.create_db_cluster(  # joining by the global cluster's ARN works as by its id
        DBClusterIdentifier="by-arn", Engine="aurora-postgresql",
        GlobalClusterIdentifier=f"arn:aws:rds::123456789012:global-cluster:{GLOBAL_ID}",
    )["DBCluster"]["DBClusterArn"]
    assert [m["DBClusterArn"] for m in describe(emu)["GlobalClusterMembers"]] == [arns[A], arn_b]
    with pytest.raises(ClientError) as excinfo:
        rds_b.create_db_cluster(DBClusterIdentifier="orphan", Engine="aurora-postgresql", GlobalClusterIdentifier="missing")
    assert code(excinfo) == "GlobalClusterNotFoundFault"

"""Control API: validation, request log, state dump, reset; and the CLI contract."""

from __future__ import annotations

import signal
import time

import pytest
from botocore.exceptions import ClientError

from conftest import (
    FAILOVER_MS,
    REPLICA_CREATING_MS,
    REPLICA_DELETING_MS,
    REPLICATION_DELAY_MS,
    Emulator,
    start_emulator,
    stop_emulator,
    wait_for,
)

A, B = "us-east-1", "eu-west-1"


def make_table(ddb, name: str = "t") -> None:
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")


def test_health(emu):
    assert emu.get("health") == {"ok": True}


@pytest.mark.parametrize(
    "path, body",
    [
        ("outage", {"down": True}),
        ("outage", {"region": "us-east-1", "down": "yes"}),
        ("outage", {"region": "us-east-1", "down": True, "except_services": "route53"}),
        ("latency", {"region": "us-east-1", "ms": -5}),
        ("latency", {"region": "us-east-1"}),
        ("throttle", {"region": "us-east-1", "count": 1.5}),
        ("throttle", {"region": "us-east-1", "count": 1, "service": 3}),
        ("replication", {"delay_ms": "fast"}),
        ("replication", {"delay_ms": 10, "source": "us-east-1"}),
        ("timing", {"failover_ms": -1}),
        ("timing", {"bogus_ms": 1}),
        ("health-check-failure", {"health_check_id": "x"}),
        ("health-check-failure", {"failing": True}),
    ],
)
def test_bad_input_is_400(emu, path, body):
    status, payload = emu.control("POST", path, body)
    assert status == 400 and isinstance(payload["error"], str) and payload["error"]


def test_bad_json_unknown_path_and_method(emu):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{emu.url}/_multisite/outage", data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(request, timeout=5)
    assert excinfo.value.code == 400
    assert emu.control("GET", "nope")[0] == 404
    assert emu.control("GET", "outage")[0] == 405


def test_request_log_records_aws_calls_only(emu):
    emu.control("DELETE", "requests")
    make_table(emu.client("dynamodb", A))
    emu.client("rds", B).describe_global_clusters()
    r53 = emu.client("route53")
    hc = r53.create_health_check(CallerReference="c", HealthCheckConfig={
        "Type": "HTTP", "FullyQualifiedDomainName": "x.example.com"})["HealthCheck"]["Id"]
    r53.get_health_check_status(HealthCheckId=hc)
    emu.post("outage", {"region": B, "down": True})
    with pytest.raises(ClientError):
        emu.client("dynamodb", B).list_tables()
    emu.get("state")  # control calls are not logged

    log = emu.get("requests")["requests"]
    assert [(r["region"], r["service"], r["operation"], r["status"]) for r in log] == [
        (A, "dynamodb", "CreateTable", 200),
        (B, "rds", "DescribeGlobalClusters", 200),
        (A, "route53", "CreateHealthCheck", 201),
        (A, "route53", "GetHealthCheckStatus", 200),
        (B, "dynamodb", "ListTables", 503),
    ]
    assert all(0 <= r["t_ms"] <= r["end_ms"] for r in log)
    assert [r["t_ms"] for r in log] == sorted(r["t_ms"] for r in log)

    emu.control("DELETE", "requests")
    assert emu.get("requests") == {"requests": []}


def test_state_dump(emu):
    emu.post("outage", {"region": B, "down": True})
    emu.post("latency", {"region": A, "ms": 5})
    emu.post("throttle", {"region": A, "count": 3, "service": "rds"})
    emu.post("replication", {"delay_ms": 50, "source": A, "destination": B})
    emu.post("timing", {"failover_ms": 700, "replica_creating_ms": 3000})
    ddb = emu.client("dynamodb", A)
    make_table(ddb)
    ddb.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": "ap-southeast-2"}}])
    state = emu.get("state")
    assert state["outages"] == [B]
    assert state["latency_ms"] == {A: 5}
    assert state["throttles"] == [{"region": A, "service": "rds", "operation": None, "remaining": 3}]
    assert state["pair_delay_ms"] == [{"source": A, "destination": B, "delay_ms": 50}]
    assert state["timings"]["failover_ms"] == 700 and state["timings"]["replica_creating_ms"] == 3000
    assert state["replica_groups"] == [{"account": "123456789012", "table": "t", "replicas": [
        {"region": A, "status": "ACTIVE"}, {"region": "ap-southeast-2", "status": "CREATING"}],
        "consistency": "EVENTUAL", "witnesses": []}]
    assert state["pending_replications"] == 0


def test_reset_clears_everything(emu):
    ddb_a, ddb_b = emu.client("dynamodb", A), emu.client("dynamodb", B)
    make_table(ddb_a)
    ddb_a.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": B}}])
    wait_for(lambda: ddb_a.describe_table(TableName="t")["Table"]["TableStatus"] == "ACTIVE")
    emu.post("replication", {"delay_ms": 5000})
    ddb_a.put_item(TableName="t", Item={"pk": {"S": "pending"}})
    emu.post("outage", {"region": "ap-southeast-2", "down": True})
    emu.post("latency", {"region": B, "ms": 100})
    emu.post("throttle", {"region": "ap-southeast-2", "count": 5})
    emu.post("replication", {"delay_ms": 1, "source": A, "destination": B})
    emu.post("timing", {"replica_creating_ms": 1, "replica_deleting_ms": 2, "failover_ms": 3})
    emu.post("health-check-failure", {"health_check_id": "abc", "failing": True})
    assert emu.get("state")["pending_replications"] == 1

    emu.post("reset")
    state = emu.get("state")
    assert state["outages"] == [] and state["latency_ms"] == {} and state["throttles"] == []
    assert state["replication_delay_ms"] == REPLICATION_DELAY_MS and state["pair_delay_ms"] == []
    assert state["timings"] == {"replica_creating_ms": REPLICA_CREATING_MS,
                                "replica_deleting_ms": REPLICA_DELETING_MS, "failover_ms": FAILOVER_MS,
                                "mrsc_conflict_window_ms": 0}
    assert state["failing_health_checks"] == [] and state["replica_groups"] == []
    assert state["pending_replications"] == 0 and state["scheduled_tasks"] == 0
    assert emu.get("requests") == {"requests": []}
    assert ddb_a.list_tables()["TableNames"] == [] and ddb_b.list_tables()["TableNames"] == []


# -- CLI contract --------------------------------------------------------------------------


def test_cli_ready_line_and_signals():
    for how in ("SIGTERM", "stdin-eof"):
        proc, url = start_emulator("--exit-on-stdin-eof")
        try:
            assert url.startswith("http://127.0.0.1:") and int(url.rsplit(":", 1)[1]) > 0
            assert Emulator(url).get("health") == {"ok": True}
            started = time.monotonic()
            if how == "SIGTERM":
                proc.send_signal(signal.SIGTERM)
            else:
                proc.stdin.close()  # what happens when the parent test process dies
            assert proc.wait(10) == 0
            assert time.monotonic() - started < 5
            assert proc.stdout.read() == ""  # exactly one stdout line
        finally:
            stop_emulator(proc)

"""Fault injection: Region outages, latency and throttling, with protocol-correct errors."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from conftest import Emulator

A, B = "us-east-1", "eu-west-1"


def raw_call(emu: Emulator, region: str, service: str, body: bytes, headers: dict, path: str = "/", method: str = "POST"):
    """An AWS-shaped HTTP call (moto does not check signatures, only the credential scope)."""
    auth = (
        f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/{region}/{service}/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0"
    )
    request = urllib.request.Request(
        emu.url + path, data=body if method == "POST" else None, method=method,
        headers={"Authorization": auth, "X-Amz-Date": "20260101T000000Z", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def error_of(excinfo) -> tuple[int, str]:
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


# -- outage ---------------------------------------------------------------------------


def test_outage_fails_every_service_in_that_region_only(emu):
    emu.client("dynamodb", B).list_tables()
    emu.post("outage", {"region": A, "down": True})
    calls = {
        "dynamodb": lambda c: c.list_tables(),
        "rds": lambda c: c.describe_db_clusters(),
        "autoscaling": lambda c: c.describe_auto_scaling_groups(),
        "cloudwatch": lambda c: c.describe_alarms(),
        "sns": lambda c: c.list_topics(),
        "route53": lambda c: c.list_health_checks(),  # Route 53 is signed for us-east-1
    }
    for service, call in calls.items():
        with pytest.raises(ClientError) as excinfo:
            call(emu.client(service, A))
        assert error_of(excinfo) == (503, "ServiceUnavailable"), service
    for service, call in calls.items():
        if service != "route53":
            call(emu.client(service, B))  # the other Region keeps working
    assert emu.get("health") == {"ok": True}  # the control API is never affected
    emu.post("outage", {"region": A, "down": False})
    emu.client("dynamodb", A).list_tables()


def test_outage_error_bodies_are_protocol_correct(emu):
    emu.post("outage", {"region": A, "down": True})

    status, headers, body = raw_call(emu, A, "dynamodb", b"{}", {
        "X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"})
    assert status == 503 and headers["Content-Type"] == "application/x-amz-json-1.0"
    assert json.loads(body)["__type"] == "com.amazonaws.dynamodb.v20120810#ServiceUnavailable"

    status, headers, body = raw_call(emu, A, "rds", b"Action=DescribeDBClusters&Version=2014-10-31", {
        "Content-Type": "application/x-www-form-urlencoded"})
    assert status == 503 and headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(body)
    ns = {"r": "http://rds.amazonaws.com/doc/2014-10-31/"}
    assert root.tag == "{http://rds.amazonaws.com/doc/2014-10-31/}ErrorResponse"
    assert root.find("r:Error/r:Code", ns).text == "ServiceUnavailable"
    assert root.find("r:Error/r:Type", ns).text == "Receiver"
    assert root.find("r:RequestId", ns).text

    status, _, body = raw_call(emu, A, "route53", b"", {}, path="/2013-04-01/healthcheck", method="GET")
    root = ET.fromstring(body)
    assert status == 503 and root.tag == "{https://route53.amazonaws.com/doc/2013-04-01/}ErrorResponse"

    # CloudWatch over smithy rpcv2Cbor: a CBOR map, plus the awsQuery-compatible code header.
    status, headers, body = raw_call(emu, A, "monitoring", b"\xa0", {
        "smithy-protocol": "rpc-v2-cbor", "Content-Type": "application/cbor", "Accept": "application/cbor"},
        path="/service/GraniteServiceVersion20100801/operation/DescribeAlarms")
    assert status == 503 and headers["Content-Type"] == "application/cbor"
    assert headers["x-amzn-query-error"] == "ServiceUnavailable;Receiver"
    assert b"__type" in body and b"ServiceUnavailable" in body


# -- latency -----------------------------------------------------------------------------


def test_latency_delays_calls_in_that_region(emu):
    a, b = emu.client("dynamodb", A), emu.client("dynamodb", B)
    a.list_tables()
    b.list_tables()
    emu.post("latency", {"region": B, "ms": 300})

    def timed(call) -> float:
        start = time.monotonic()
        call()
        return time.monotonic() - start

    assert timed(b.list_tables) >= 0.3
    assert timed(a.list_tables) < 0.25
    slow = [r for r in emu.get("requests")["requests"] if r["region"] == B][-1]
    assert slow["end_ms"] - slow["t_ms"] >= 300
    emu.post("latency", {"region": B, "ms": 0})
    assert timed(b.list_tables) < 0.25


# -- throttling ------------------------------------------------------------------------------


def test_throttle_k_calls_then_ok(emu):
    ddb = emu.client("dynamodb", A)
    emu.post("throttle", {"region": A, "count": 2})
    for _ in range(2):
        with pytest.raises(ClientError) as excinfo:
            ddb.list_tables()
        assert error_of(excinfo) == (400, "ThrottlingException")
    ddb.list_tables()


def test_throttle_codes_per_protocol_and_filters(emu):
    emu.post("throttle", {"region": A, "count": 1, "service": "rds", "operation": "DescribeGlobalClusters"})
    emu.client("dynamodb", A).list_tables()  # other service: not throttled
    rds = emu.client("rds", A)
    rds.describe_db_clusters()  # other operation: not throttled
    with pytest.raises(ClientError) as excinfo:
        rds.describe_global_clusters()
    assert error_of(excinfo) == (400, "Throttling")
    rds.describe_global_clusters()

    emu.post("throttle", {"region": A, "count": 1, "service": "route53"})
    r53 = emu.client("route53")
    with pytest.raises(ClientError) as excinfo:
        r53.list_health_checks()
    assert error_of(excinfo) == (400, "Throttling")
    r53.list_health_checks()

    emu.post("throttle", {"region": B, "count": 1, "service": "autoscaling"})
    emu.client("autoscaling", A).describe_auto_scaling_groups()  # other Region
    with pytest.raises(ClientError) as excinfo:
        emu.client("autoscaling", B).describe_auto_scaling_groups()
    assert error_of(excinfo) == (400, "Throttling")

    emu.post("throttle", {"region": A, "count": 1, "service": "dynamodb", "operation": "UpdateTable"})
    ddb = emu.client("dynamodb", A)
    ddb.create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    with pytest.raises(ClientError) as excinfo:
        ddb.update_table(TableName="t", ReplicaUpdates=[{"Create": {"RegionName": B}}])
    assert error_of(excinfo) == (400, "ThrottlingException")
    assert "Replicas" not in ddb.describe_table(TableName="t")["Table"]  # the throttled call did nothing

"""Fault injection: Region outages, latency and throttling, with protocol-correct errors."""

from __future__ import annotations

import json
import time
import uuid
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from botocore.exceptions import ClientError

from conftest import Emulator, wait_for

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


# -- global control plane down (Route 53) ---------------------------------------------------

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-1")
R53_NS = {"r": "https://route53.amazonaws.com/doc/2013-04-01/"}


@pytest.fixture
def r53_setup(emu):
    """A health check and a zone with one simple A record, made while Route 53 is up."""
    r53 = emu.client("route53")
    check = r53.create_health_check(CallerReference=str(uuid.uuid4()), HealthCheckConfig={
        "Type": "HTTPS", "FullyQualifiedDomainName": "api.example.com", "Port": 443})["HealthCheck"]["Id"]
    zone = r53.create_hosted_zone(Name="example.com", CallerReference=str(uuid.uuid4()))["HostedZone"]["Id"]
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [{"Action": "CREATE", "ResourceRecordSet": {
        "Name": "api.example.com", "Type": "A", "TTL": 60, "ResourceRecords": [{"Value": "192.0.2.10"}]}}]})
    return check, zone


def r53_control_calls(check: str) -> dict:
    return {
        "GetHealthCheck": lambda c: c.get_health_check(HealthCheckId=check),
        "UpdateHealthCheck": lambda c: c.update_health_check(HealthCheckId=check, Inverted=True),
        "ListHealthChecks": lambda c: c.list_health_checks(),
    }


def dns_answer(r53, zone: str) -> list[str]:
    response = r53.test_dns_answer(HostedZoneId=zone, RecordName="api.example.com", RecordType="A")
    assert response["ResponseCode"] == "NOERROR"
    return response["RecordData"]


def assert_control_plane_fails(emu, check: str, zone: str, expected: tuple[int, str]) -> None:
    emu.control("DELETE", "requests")
    for region in REGIONS:
        r53 = emu.client("route53", region)
        for operation, call in r53_control_calls(check).items():
            with pytest.raises(ClientError) as excinfo:
                call(r53)
            assert error_of(excinfo) == expected, (region, operation)
        assert dns_answer(r53, zone) == ["192.0.2.10"], region  # the data plane keeps answering
    log = emu.get("requests")["requests"]
    for region in REGIONS:  # each call really was signed for that Region
        mine = [(r["operation"], r["status"]) for r in log if r["region"] == region]
        assert mine == [(op, expected[0]) for op in r53_control_calls(check)] + [("TestDNSAnswer", 200)], region


def test_control_plane_down_fails_route53_from_every_region_but_dns_answers(emu, r53_setup):
    check, zone = r53_setup
    assert emu.post("control-plane", {"service": "route53", "down": True, "mode": "unavailable"}) == {
        "ok": True, "control_planes_down": {"route53": "unavailable"}}
    assert_control_plane_fails(emu, check, zone, (503, "ServiceUnavailable"))

    # The body is Route 53's restXml ErrorResponse, a server (Receiver) fault.
    status, headers, body = raw_call(emu, "eu-west-1", "route53", b"", {}, path="/2013-04-01/healthcheck", method="GET")
    assert status == 503 and headers["Content-Type"].startswith("text/xml")
    root = ET.fromstring(body)
    assert root.tag == "{https://route53.amazonaws.com/doc/2013-04-01/}ErrorResponse"
    assert root.find("r:Error/r:Code", R53_NS).text == "ServiceUnavailable"
    assert root.find("r:Error/r:Type", R53_NS).text == "Receiver"
    assert root.find("r:Error/r:Message", R53_NS).text == (
        "Service unavailable (multisite emulator: route53 control plane down)")
    assert root.find("r:RequestId", R53_NS).text

    emu.client("dynamodb", "us-east-1").list_tables()  # other services are unaffected
    emu.post("control-plane", {"service": "route53", "down": False})
    assert emu.get("state")["control_planes_down"] == {}
    for region in REGIONS:
        r53 = emu.client("route53", region)
        for call in r53_control_calls(check).values():
            call(r53)


def test_control_plane_throttling_mode(emu, r53_setup):
    check, zone = r53_setup
    emu.post("control-plane", {"service": "Route53", "down": True, "mode": "throttling"})
    assert emu.get("state")["control_planes_down"] == {"route53": "throttling"}
    assert_control_plane_fails(emu, check, zone, (400, "Throttling"))
    with pytest.raises(ClientError) as excinfo:
        emu.client("route53", "ap-southeast-1").list_health_checks()
    assert excinfo.value.response["Error"]["Message"] == "Rate exceeded"

    status, _, body = raw_call(emu, "us-east-1", "route53", b"", {}, path="/2013-04-01/healthcheck", method="GET")
    root = ET.fromstring(body)
    assert status == 400 and root.find("r:Error/r:Code", R53_NS).text == "Throttling"
    assert root.find("r:Error/r:Type", R53_NS).text == "Sender"

    # Switching mode while down replaces it; coming back up restores every Region.
    emu.post("control-plane", {"service": "route53", "down": True})  # mode defaults to unavailable
    with pytest.raises(ClientError) as excinfo:
        emu.client("route53", "eu-west-1").list_health_checks()
    assert error_of(excinfo) == (503, "ServiceUnavailable")
    emu.post("control-plane", {"service": "route53", "down": False})
    for region in REGIONS:
        emu.client("route53", region).list_health_checks()


def test_control_plane_is_independent_of_region_outages(emu, r53_setup):
    check, zone = r53_setup
    # A us-east-1 outage sparing Route 53 plus the control plane down: Route 53 fails everywhere.
    emu.post("outage", {"region": "us-east-1", "down": True, "except_services": ["route53"]})
    emu.post("control-plane", {"service": "route53", "down": True})
    assert_control_plane_fails(emu, check, zone, (503, "ServiceUnavailable"))
    with pytest.raises(ClientError) as excinfo:
        emu.client("dynamodb", "us-east-1").list_tables()
    assert error_of(excinfo) == (503, "ServiceUnavailable")

    # The control plane back: Route 53 answers from every Region; the Region outage stays.
    emu.post("control-plane", {"service": "route53", "down": False})
    for region in REGIONS:
        emu.client("route53", region).list_health_checks()
    with pytest.raises(ClientError):
        emu.client("dynamodb", "us-east-1").list_tables()

    # The Region outage back up leaves the control plane switch alone.
    emu.post("control-plane", {"service": "route53", "down": True})
    emu.post("outage", {"region": "us-east-1", "down": False})
    emu.client("dynamodb", "us-east-1").list_tables()
    with pytest.raises(ClientError):
        emu.client("route53", "eu-west-1").list_health_checks()
    assert emu.get("state")["control_planes_down"] == {"route53": "unavailable"}


def test_control_plane_survives_until_reset(emu, r53_setup):
    check, _ = r53_setup
    emu.post("control-plane", {"service": "route53", "down": True, "mode": "throttling"})
    emu.post("outage", {"region": "eu-west-1", "down": True})
    emu.post("outage", {"region": "eu-west-1", "down": False})  # a Region coming back does not clear it
    with pytest.raises(ClientError):
        emu.client("route53", "eu-west-1").get_health_check(HealthCheckId=check)
    emu.post("reset")
    assert emu.get("state")["control_planes_down"] == {}
    emu.client("route53", "eu-west-1").list_health_checks()


# -- one service of one Region down -----------------------------------------------------------


def test_service_outage_fails_only_that_service_of_that_region(emu):
    down = emu.post("outage", {"region": B, "down": True, "services": ["DynamoDB"]})
    assert down["outages"] == [] and down["outage_services"] == {B: ["dynamodb"]}
    state = emu.get("state")
    assert state["outages"] == [] and state["outage_exceptions"] == {}
    assert state["outage_services"] == {B: ["dynamodb"]}

    with pytest.raises(ClientError) as excinfo:
        emu.client("dynamodb", B).list_tables()
    assert error_of(excinfo) == (503, "ServiceUnavailable")
    status, _, body = raw_call(emu, B, "dynamodb", b"{}", {
        "X-Amz-Target": "DynamoDB_20120810.ListTables", "Content-Type": "application/x-amz-json-1.0"})
    assert status == 503 and json.loads(body) == {
        "__type": "com.amazonaws.dynamodb.v20120810#ServiceUnavailable",
        "message": "Service unavailable in eu-west-1 (multisite emulator: dynamodb outage)"}
    emu.client("rds", B).describe_db_clusters()  # the rest of the Region is up
    emu.client("autoscaling", B).describe_auto_scaling_groups()
    emu.client("route53", B).list_health_checks()
    emu.client("dynamodb", A).list_tables()  # and DynamoDB elsewhere

    # Service outages add up; each comes back on its own.
    emu.post("outage", {"region": B, "down": True, "services": ["rds"]})
    assert emu.get("state")["outage_services"] == {B: ["dynamodb", "rds"]}
    with pytest.raises(ClientError):
        emu.client("rds", B).describe_db_clusters()
    emu.post("outage", {"region": B, "down": False, "services": ["dynamodb"]})
    assert emu.get("state")["outage_services"] == {B: ["rds"]}
    emu.client("dynamodb", B).list_tables()
    with pytest.raises(ClientError):
        emu.client("rds", B).describe_db_clusters()

    # The Region coming back (no services) ends every outage of it.
    emu.post("outage", {"region": B, "down": True, "services": ["autoscaling"]})
    emu.post("outage", {"region": B, "down": False})
    assert emu.get("state")["outage_services"] == {}
    emu.client("rds", B).describe_db_clusters()
    emu.client("autoscaling", B).describe_auto_scaling_groups()

    emu.post("outage", {"region": B, "down": True, "services": ["dynamodb"]})
    emu.post("reset")
    assert emu.get("state")["outage_services"] == {}
    emu.client("dynamodb", B).list_tables()


def global_table(emu) -> tuple:
    """Table g in us-east-1 (A) with an ACTIVE replica in eu-west-1 (B)."""
    a, b = emu.client("dynamodb", A), emu.client("dynamodb", B)
    a.create_table(TableName="g", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    a.update_table(TableName="g", ReplicaUpdates=[{"Create": {"RegionName": B}}])
    wait_for(lambda: b.describe_table(TableName="g")["Table"]["TableStatus"] == "ACTIVE")
    return a, b


def replicated(ddb, pk: str) -> bool:
    return "Item" in ddb.get_item(TableName="g", Key={"pk": {"S": pk}}, ConsistentRead=True)


def test_dynamodb_outage_holds_replication_into_that_region(emu):
    a, b = global_table(emu)
    emu.post("outage", {"region": B, "down": True, "services": ["dynamodb", "autoscaling"]})
    a.put_item(TableName="g", Item={"pk": {"S": "held"}})
    wait_for(lambda: emu.get("state")["held_replications"] == 1, timeout=3)

    # Another service of B coming back releases nothing: DynamoDB of B is still down.
    emu.post("outage", {"region": B, "down": False, "services": ["autoscaling"]})
    time.sleep(0.3)
    assert emu.get("state")["held_replications"] == 1

    emu.post("outage", {"region": B, "down": False, "services": ["dynamodb"]})
    wait_for(lambda: replicated(b, "held"))
    assert emu.get("state")["pending_replications"] == 0

    # A DynamoDB outage of the source holds its writes caught in the replication
    # window too, until its DynamoDB comes back.
    emu.post("replication", {"delay_ms": 500})
    a.put_item(TableName="g", Item={"pk": {"S": "in-window"}})
    emu.post("outage", {"region": A, "down": True, "services": ["dynamodb"]})
    wait_for(lambda: emu.get("state")["held_replications"] == 1, timeout=3)
    assert not replicated(b, "in-window")
    emu.post("outage", {"region": A, "down": False})
    wait_for(lambda: replicated(b, "in-window"))


def test_non_dynamodb_service_outage_holds_no_replication(emu):
    a, b = global_table(emu)
    emu.post("outage", {"region": B, "down": True, "services": ["autoscaling"]})
    a.put_item(TableName="g", Item={"pk": {"S": "flows"}})
    wait_for(lambda: replicated(b, "flows"), timeout=3)
    state = emu.get("state")
    assert state["held_replications"] == 0 and state["outage_services"] == {B: ["autoscaling"]}


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path, body", [
    ("outage", {"region": B, "down": True, "services": ["dynamodb"], "except_services": ["rds"]}),
    ("outage", {"region": B, "down": True, "services": []}),
    ("outage", {"region": B, "down": True, "services": "dynamodb"}),
    ("outage", {"region": B, "down": True, "services": ["dynamodb", ""]}),
    ("outage", {"region": B, "services": ["dynamodb"]}),
    ("control-plane", {"service": "dynamodb", "down": True}),
    ("control-plane", {"service": "route53", "down": True, "mode": "slow"}),
    ("control-plane", {"service": "route53", "down": "yes"}),
    ("control-plane", {"down": True}),
    ("control-plane", {"service": "", "down": True}),
])
def test_outage_and_control_plane_bad_input(emu, path, body):
    status, payload = emu.control("POST", path, body)
    assert status == 400 and payload["error"], payload
    state = emu.get("state")
    assert state["outage_services"] == {} and state["control_planes_down"] == {} and state["outages"] == []

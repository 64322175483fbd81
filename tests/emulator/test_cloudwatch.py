"""CloudWatch over rpcv2Cbor (the Rust SDK's protocol), alarm states and their EventBridge events.

botocore 1.44 knows rpcv2Cbor for CloudWatch but prefers awsJson, so the boto3
clients here are forced onto rpcv2Cbor: botocore's own CBOR serializer and
parser then check the emulator's wire format independently of the emulator's
codec. Raw HTTP calls check headers and bytes where the Rust SDK is strict.
"""

from __future__ import annotations

import json
import math
import re
import struct
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from email.message import Message
from pathlib import Path
from typing import Any, Callable

import botocore.model
import botocore.parsers
import pytest
from botocore.exceptions import ClientError
from botocore.serialize import create_serializer

from conftest import Emulator
from multisite_emulator.cloudwatch_alarms import ALARM, INSUFFICIENT_DATA, OK, Datapoint, judge
from multisite_emulator.cloudwatch_cbor import CBORDecodeError, Simple, Tag, decode_cbor, encode_cbor
from multisite_emulator.cloudwatch_rpcv2 import service_model

A, B = "us-east-1", "eu-west-1"
CBOR_PATH = "/service/GraniteServiceVersion20100801/operation/"
HEALTH_CHECK = "11111111-1111-4111-8111-111111111111"
TOPIC = "arn:aws:sns:us-east-1:123456789012:alarms"
EVENT_EXAMPLE = Path(__file__).resolve().parents[2] / "events" / "alarm-eventbridge-us-east-1-alarm.json"
STATE_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


# -- helpers ---------------------------------------------------------------------------


def client_speaking(emu: Emulator, monkeypatch: pytest.MonkeyPatch, protocol: str, region: str = A) -> Any:
    """A boto3 CloudWatch client that uses ``protocol`` (resolved when the client is made)."""
    monkeypatch.setattr(botocore.model, "PRIORITY_ORDERED_SUPPORTED_PROTOCOLS", (protocol,))
    client = emu.client("cloudwatch", region)
    assert client.meta.service_model.resolved_protocol == protocol
    return client


@pytest.fixture
def cbor(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    return lambda region=A: client_speaking(emu, monkeypatch, "smithy-rpc-v2-cbor", region)


def raw_cbor(emu: Emulator, operation: str, body: bytes, region: str = A) -> tuple[int, Message, bytes]:
    """An rpcv2Cbor call as aws-sdk-rust sends it (signature not checked, scope is)."""
    auth = (
        f"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20260101/{region}/monitoring/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=0"
    )
    headers = {"Authorization": auth, "X-Amz-Date": "20260101T000000Z", "smithy-protocol": "rpc-v2-cbor",
               "Content-Type": "application/cbor", "Accept": "application/cbor"}
    request = urllib.request.Request(emu.url + CBOR_PATH + operation, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def alarm_params(name: str = "web-us-east-1-unhealthy", **overrides: Any) -> dict[str, Any]:
    """A single-metric alarm like the drill's Route 53 health alarm."""
    params: dict[str, Any] = {
        "AlarmName": name,
        "AlarmDescription": "us-east-1 endpoint health",
        "ActionsEnabled": False,
        "OKActions": [TOPIC],
        "AlarmActions": [TOPIC],
        "InsufficientDataActions": [],
        "MetricName": "HealthCheckStatus",
        "Namespace": "AWS/Route53",
        "Statistic": "Minimum",
        "Dimensions": [{"Name": "HealthCheckId", "Value": HEALTH_CHECK}],
        "Period": 60,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": 1.0,
        "ComparisonOperator": "LessThanThreshold",
        "TreatMissingData": "missing",
    }
    params.update(overrides)
    return params


def events(emu: Emulator, region: str | None = None) -> list[dict[str, Any]]:
    return emu.get("events" + (f"?region={region}" if region else ""))["events"]


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    response = excinfo.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def key_shape(doc: Any) -> Any:
    """The nested key structure of a JSON document (values dropped)."""
    if isinstance(doc, dict):
        return {key: key_shape(value) for key, value in doc.items()}
    if isinstance(doc, list):
        return [key_shape(item) for item in doc]
    return None


def period_start(periods_back: int, period: int = 60) -> datetime:
    """Start of the period ``periods_back`` before the current one (aware UTC)."""
    current = math.floor(time.time() / period) * period
    return datetime.fromtimestamp(current - period * periods_back, tz=timezone.utc)


# -- the CBOR codec against RFC 8949 Appendix A ------------------------------------------

RFC_VECTORS: list[tuple[Any, str]] = [
    (0, "00"), (1, "01"), (10, "0a"), (23, "17"), (24, "1818"), (25, "1819"), (100, "1864"),
    (1000, "1903e8"), (1000000, "1a000f4240"), (1000000000000, "1b000000e8d4a51000"),
    (18446744073709551615, "1bffffffffffffffff"), (18446744073709551616, "c249010000000000000000"),
    (-18446744073709551616, "3bffffffffffffffff"), (-18446744073709551617, "c349010000000000000000"),
    (-1, "20"), (-10, "29"), (-100, "3863"), (-1000, "3903e7"),
    (1.1, "fb3ff199999999999a"), (1.0e300, "fb7e37e43c8800759c"), (-4.1, "fbc010666666666666"),
    (False, "f4"), (True, "f5"), (None, "f6"), (Simple(16), "f0"), (Simple(255), "f8ff"),
    (Tag(0, "2013-03-21T20:04:00Z"), "c074323031332d30332d32315432303a30343a30305a"),
    (datetime(2013, 3, 21, 20, 4, tzinfo=timezone.utc), "c11a514b67b0"),
    (datetime(2013, 3, 21, 20, 4, 0, 500000, tzinfo=timezone.utc), "c1fb41d452d9ec200000"),
    (Tag(23, b"\x01\x02\x03\x04"), "d74401020304"),
    (Tag(32, "http://www.example.com"), "d82076687474703a2f2f7777772e6578616d706c652e636f6d"),
    (b"", "40"), (b"\x01\x02\x03\x04", "4401020304"),
    ("", "60"), ("a", "6161"), ("IETF", "6449455446"), ("\"\\", "62225c"), ("\u00fc", "62c3bc"),
    ("\u6c34", "63e6b0b4"), ("\U00010151", "64f0908591"),
    ([], "80"), ([1, 2, 3], "83010203"), ([1, [2, 3], [4, 5]], "8301820203820405"),
    (list(range(1, 26)), "98190102030405060708090a0b0c0d0e0f101112131415161718181819"),
    ({}, "a0"), ({1: 2, 3: 4}, "a201020304"), ({"a": 1, "b": [2, 3]}, "a26161016162820203"),
    (["a", {"b": "c"}], "826161a161626163"),
    ({"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}, "a56161614161626142616361436164614461656145"),
]

# Decode-only vectors: shorter float encodings than the always-64-bit encoder
# writes, "undefined", and indefinite-length items.
RFC_DECODE_ONLY: list[tuple[Any, str]] = [
    (0.0, "f90000"), (-0.0, "f98000"), (1.0, "f93c00"), (1.5, "f93e00"), (65504.0, "f97bff"),
    (100000.0, "fa47c35000"), (3.4028234663852886e38, "fa7f7fffff"), (5.960464477539063e-8, "f90001"),
    (0.00006103515625, "f90400"), (-4.0, "f9c400"), (math.inf, "f97c00"), (-math.inf, "f9fc00"),
    (math.inf, "fa7f800000"), (-math.inf, "fbfff0000000000000"), (None, "f7"),
    (b"\x01\x02\x03\x04\x05", "5f42010243030405ff"), ("streaming", "7f657374726561646d696e67ff"),
    ([], "9fff"), ([1, [2, 3], [4, 5]], "9f018202039f0405ffff"), ([1, [2, 3], [4, 5]], "9f01820203820405ff"),
    ([1, [2, 3], [4, 5]], "83018202039f0405ff"), ([1, [2, 3], [4, 5]], "83019f0203ff820405"),
    (list(range(1, 26)), "9f0102030405060708090a0b0c0d0e0f101112131415161718181819ff"),
    ({"a": 1, "b": [2, 3]}, "bf61610161629f0203ffff"), (["a", {"b": "c"}], "826161bf61626163ff"),
    ({"Fun": True, "Amt": -2}, "bf6346756ef563416d7421ff"),
]


@pytest.mark.parametrize("value,encoded", RFC_VECTORS + RFC_DECODE_ONLY)
def test_cbor_decodes_rfc8949_appendix_a(value: Any, encoded: str) -> None:
    decoded = decode_cbor(bytes.fromhex(encoded))
    assert decoded == value and type(decoded) is type(value)
    if isinstance(value, float):
        assert math.copysign(1.0, decoded) == math.copysign(1.0, value)  # -0.0 stays negative


@pytest.mark.parametrize("value,encoded", RFC_VECTORS)
def test_cbor_encodes_rfc8949_appendix_a(value: Any, encoded: str) -> None:
    assert encode_cbor(value).hex() == encoded


def test_cbor_nan_and_errors() -> None:
    assert math.isnan(decode_cbor(bytes.fromhex("f97e00")))
    assert math.isnan(decode_cbor(bytes.fromhex("fb7ff8000000000000")))
    assert encode_cbor(1.0) == b"\xfb" + struct.pack(">d", 1.0)  # doubles stay doubles, even when whole
    for bad in ("", "18", "1c", "ff", "0101", "5f01ff", "62c3", "a16161", "9f01", "c1f5", "f818"):
        with pytest.raises(CBORDecodeError):
            decode_cbor(bytes.fromhex(bad))


# -- rpcv2Cbor wire protocol ---------------------------------------------------------------


def test_put_metric_alarm_round_trips_over_cbor_and_query(emu: Emulator, cbor: Callable[..., Any],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    client = cbor()
    sent: list[Any] = []
    client.meta.events.register("before-send.cloudwatch.*", lambda request, **_: sent.append(request))
    params = alarm_params(Unit="Count", EvaluationPeriods=3, DatapointsToAlarm=2, TreatMissingData="breaching")
    client.put_metric_alarm(**params)
    assert sent[0].url == emu.url + CBOR_PATH + "PutMetricAlarm"
    assert sent[0].headers["smithy-protocol"] == b"rpc-v2-cbor"

    [alarm] = client.describe_alarms(AlarmNames=[params["AlarmName"]])["MetricAlarms"]
    for key, value in params.items():
        assert alarm[key] == value, key
    assert alarm["AlarmArn"] == f"arn:aws:cloudwatch:{A}:123456789012:alarm:{params['AlarmName']}"
    # A new alarm starts in INSUFFICIENT_DATA; with "breaching" and no data it is then evaluated to ALARM.
    assert alarm["StateValue"] == ALARM
    assert alarm["StateReason"].startswith("Threshold Crossed: 3 out of the last 3 datapoints []")
    for stamp in ("AlarmConfigurationUpdatedTimestamp", "StateUpdatedTimestamp", "StateTransitionedTimestamp"):
        assert isinstance(alarm[stamp], datetime), stamp

    query = client_speaking(emu, monkeypatch, "query")
    [seen] = query.describe_alarms(AlarmNames=[params["AlarmName"]])["MetricAlarms"]
    assert {k: v for k, v in seen.items() if "Timestamp" not in k} == {
        k: v for k, v in alarm.items() if "Timestamp" not in k
    }
    assert abs(seen["StateUpdatedTimestamp"] - alarm["StateUpdatedTimestamp"]) < timedelta(milliseconds=1)


def test_cbor_bytes_and_headers_are_what_the_rust_sdk_parses(emu: Emulator) -> None:
    params = alarm_params()
    operation = service_model().operation_model("PutMetricAlarm")
    request = create_serializer("smithy-rpc-v2-cbor").serialize_to_request(params, operation)
    assert request["url_path"] == CBOR_PATH + "PutMetricAlarm"
    assert request["body"] == encode_cbor(params)  # our encoder agrees with botocore's, byte for byte

    status, headers, body = raw_cbor(emu, "PutMetricAlarm", request["body"])
    assert (status, body) == (200, b"")  # Unit output: no body, no Content-Type
    assert headers["smithy-protocol"] == "rpc-v2-cbor" and headers["Content-Type"] is None
    assert headers["Content-Length"] == "0" and headers["x-amzn-RequestId"]

    status, headers, body = raw_cbor(emu, "DescribeAlarms", encode_cbor({"AlarmNames": [params["AlarmName"]]}))
    assert status == 200
    assert headers["Content-Type"] == "application/cbor" and headers["smithy-protocol"] == "rpc-v2-cbor"
    assert b"\x69Threshold\xfb" + struct.pack(">d", 1.0) in body  # a double, never an int
    assert b"\x66Period\x18\x3c" in body and b"\x71EvaluationPeriods\x01" in body
    assert b"\x78\x22AlarmConfigurationUpdatedTimestamp\xc1" in body  # tag 1
    decoded = decode_cbor(body)
    [alarm] = decoded["MetricAlarms"]
    members = service_model().shape_for("MetricAlarm").members
    assert set(alarm) <= set(members) and "StateReasonData" not in alarm and "ExtendedStatistic" not in alarm
    assert isinstance(alarm["StateUpdatedTimestamp"], datetime)

    shape = service_model().operation_model("DescribeAlarms").output_shape
    parsed = botocore.parsers.create_parser("smithy-rpc-v2-cbor").parse(
        {"body": body, "headers": dict(headers), "status_code": 200}, shape
    )
    assert parsed["MetricAlarms"][0]["Dimensions"] == params["Dimensions"]
    assert parsed["MetricAlarms"][0]["StateValue"] == INSUFFICIENT_DATA


def test_set_alarm_state_alarm_then_ok_emits_two_documented_events(emu: Emulator, cbor: Callable[..., Any],
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    client = cbor()
    params = alarm_params()
    client.put_metric_alarm(**params)
    assert events(emu) == []  # creation (INSUFFICIENT_DATA) is not a state change
    client.set_alarm_state(AlarmName=params["AlarmName"], StateValue=ALARM, StateReason="drill: us-east-1 down")
    reason_data = json.dumps({"version": "1.0", "drill": True})
    client.set_alarm_state(AlarmName=params["AlarmName"], StateValue=OK, StateReason="drill: recovered",
                           StateReasonData=reason_data)
    client.set_alarm_state(AlarmName=params["AlarmName"], StateValue=OK, StateReason="again")  # no change

    first, second = events(emu)
    # Key for key the documented example the repository's fixture was written from.
    assert key_shape(first) == key_shape(json.loads(EVENT_EXAMPLE.read_text()))
    arn = f"arn:aws:cloudwatch:{A}:123456789012:alarm:{params['AlarmName']}"
    assert first["version"] == "0" and uuid.UUID(first["id"]) and first["id"] != second["id"]
    assert (first["detail-type"], first["source"], first["account"]) == (
        "CloudWatch Alarm State Change", "aws.cloudwatch", "123456789012")
    assert (first["region"], first["resources"]) == (A, [arn])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", first["time"])
    detail = first["detail"]
    assert detail["alarmName"] == params["AlarmName"]
    assert detail["previousState"]["value"] == INSUFFICIENT_DATA
    assert detail["previousState"]["reason"] == "Unchecked: Initial alarm creation"
    assert (detail["state"]["value"], detail["state"]["reason"]) == (ALARM, "drill: us-east-1 down")
    assert STATE_TIMESTAMP.match(detail["state"]["timestamp"]) and STATE_TIMESTAMP.match(
        detail["previousState"]["timestamp"])
    [metric] = detail["configuration"]["metrics"]
    assert detail["configuration"]["description"] == params["AlarmDescription"]
    assert metric["metricStat"] == {
        "metric": {"namespace": "AWS/Route53", "name": "HealthCheckStatus",
                   "dimensions": {"HealthCheckId": HEALTH_CHECK}},
        "period": 60,
        "stat": "Minimum",
    }
    assert metric["returnData"] is True and metric["id"]

    assert second["detail"]["previousState"] == detail["state"]  # the chain
    assert second["detail"]["state"]["value"] == OK
    assert second["detail"]["state"]["reasonData"] == reason_data
    assert second["detail"]["configuration"] == detail["configuration"]  # same metric id

    query = client_speaking(emu, monkeypatch, "query")
    [alarm] = query.describe_alarms(AlarmNames=[params["AlarmName"]])["MetricAlarms"]
    assert (alarm["StateValue"], alarm["StateReason"]) == (OK, "again")


def test_the_events_state_time_is_describe_alarms_transition_time_to_the_millisecond(
        emu: Emulator, cbor: Callable[..., Any]) -> None:
    # CloudWatch keeps state times to the millisecond: a consumer that sees a change both as its
    # event and through DescribeAlarms must find the same instant (multisite's change identity).
    client = cbor()
    params = alarm_params()
    client.put_metric_alarm(**params)
    for state in [ALARM, OK] * 10:
        client.set_alarm_state(AlarmName=params["AlarmName"], StateValue=state, StateReason="x")
        event = events(emu)[-1]
        # The raw CBOR answer (botocore's parser would round to the millisecond itself).
        _, _, body = raw_cbor(emu, "DescribeAlarms", encode_cbor({"AlarmNames": [params["AlarmName"]]}))
        [alarm] = decode_cbor(body)["MetricAlarms"]
        transitioned = alarm["StateTransitionedTimestamp"]
        assert transitioned.microsecond % 1000 == 0, transitioned
        from_event = datetime.strptime(event["detail"]["state"]["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")
        assert from_event == transitioned.astimezone(timezone.utc), (event["detail"]["state"], transitioned)


def test_error_responses_are_rpcv2cbor_and_query_compatible(emu: Emulator, cbor: Callable[..., Any]) -> None:
    client = cbor()
    with pytest.raises(ClientError) as excinfo:
        client.set_alarm_state(AlarmName="nope", StateValue=ALARM, StateReason="x")
    assert error_of(excinfo) == (404, "ResourceNotFound")

    status, headers, body = raw_cbor(emu, "SetAlarmState",
                                     encode_cbor({"AlarmName": "nope", "StateValue": "ALARM", "StateReason": "x"}))
    assert status == 404
    assert headers["x-amzn-query-error"] == "ResourceNotFound;Sender"
    assert headers["smithy-protocol"] == "rpc-v2-cbor" and headers["Content-Type"] == "application/cbor"
    document = decode_cbor(body)
    assert document["__type"] == "com.amazonaws.cloudwatch#ResourceNotFound" and "message" in document

    client.put_metric_alarm(**alarm_params("a"))
    cases = [
        ({"AlarmName": "a", "StateValue": "BROKEN", "StateReason": "x"}, 400,
         "com.amazonaws.cloudwatch#ValidationException", "ValidationError;Sender"),
        ({"AlarmName": "a", "StateValue": "OK", "StateReason": "x", "StateReasonData": "{not json"}, 400,
         "com.amazonaws.cloudwatch#InvalidFormatFault", "InvalidFormat;Sender"),
        ({"AlarmName": "a"}, 400,
         "com.amazonaws.cloudwatch#MissingRequiredParameterException", "MissingParameter;Sender"),
    ]
    for request, want_status, want_type, want_header in cases:
        status, headers, body = raw_cbor(emu, "SetAlarmState", encode_cbor(request))
        assert (status, decode_cbor(body)["__type"], headers["x-amzn-query-error"]) == (
            want_status, want_type, want_header), request
    assert decode_cbor(body)["message"] == (
        "The parameter StateValue is required.\nThe parameter StateReason is required.")

    status, _, body = raw_cbor(emu, "PutMetricData", encode_cbor({"Namespace": "n", "MetricData": [{"Value": 1.0}]}))
    assert (status, decode_cbor(body)["message"]) == (400, "The parameter MetricData.member.1.MetricName is required.")

    status, headers, body = raw_cbor(emu, "DescribeAlarms", b"\xa1\x61")  # truncated CBOR
    assert (status, headers["x-amzn-query-error"]) == (400, "SerializationException;Sender")
    assert client.describe_alarms()["MetricAlarms"][0]["StateValue"] == INSUFFICIENT_DATA  # nothing changed


def test_unsupported_operations_answer_unknown_operation(emu: Emulator) -> None:
    for operation in ("DescribeAlarmHistory", "NoSuchOperation"):
        status, headers, body = raw_cbor(emu, operation, b"\xa0")
        document = decode_cbor(body)
        assert status == 400 and headers["x-amzn-query-error"] == "UnknownOperationException;Sender"
        assert document["__type"] == "UnknownOperationException" and operation in document["message"]
    log = [r for r in emu.get("requests")["requests"] if r["service"] == "monitoring"]
    assert [(r["operation"], r["status"]) for r in log] == [("DescribeAlarmHistory", 400), ("NoSuchOperation", 400)]


def test_delete_alarms(emu: Emulator, cbor: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    client = cbor()
    for name in ("keep", "drop"):
        client.put_metric_alarm(**alarm_params(name))
    client.delete_alarms(AlarmNames=["drop"])
    assert [a["AlarmName"] for a in client.describe_alarms()["MetricAlarms"]] == ["keep"]
    query = client_speaking(emu, monkeypatch, "query")
    assert [a["AlarmName"] for a in query.describe_alarms()["MetricAlarms"]] == ["keep"]


def test_put_metric_data_and_get_metric_data_round_trip(emu: Emulator, cbor: Callable[..., Any]) -> None:
    client = cbor()
    start = period_start(5)
    dims = [{"Name": "Region", "Value": A}]
    client.put_metric_data(Namespace="Multisite/Probe", MetricData=[
        {"MetricName": "Latency", "Dimensions": dims, "Timestamp": start, "Value": 10.0, "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": dims, "Timestamp": start + timedelta(seconds=5), "Value": 30.0,
         "Unit": "Milliseconds"},
        {"MetricName": "Latency", "Dimensions": dims, "Timestamp": start + timedelta(seconds=60),
         "Values": [1.0, 3.0], "Counts": [1.0, 3.0], "Unit": "Milliseconds"},
    ])
    query = {"Id": "latency", "MetricStat": {"Metric": {"Namespace": "Multisite/Probe", "MetricName": "Latency",
                                                         "Dimensions": dims}, "Period": 60, "Stat": "Average"}}
    [result] = client.get_metric_data(MetricDataQueries=[query], StartTime=start, EndTime=start + timedelta(minutes=3),
                                      ScanBy="TimestampAscending")["MetricDataResults"]
    assert result["Id"] == "latency" and result["StatusCode"] == "Complete"
    assert result["Timestamps"] == [start, start + timedelta(seconds=60)]
    assert result["Values"] == [20.0, 2.5]


# -- evaluation ---------------------------------------------------------------------------------


def test_breaching_datapoints_put_the_alarm_in_alarm_and_back_to_ok(emu: Emulator, cbor: Callable[..., Any]) -> None:
    client = cbor()
    params = alarm_params("probe", Namespace="Multisite/Probe", MetricName="Healthy", Statistic="Average",
                          Dimensions=[{"Name": "Region", "Value": A}], EvaluationPeriods=3, DatapointsToAlarm=3)
    client.put_metric_alarm(**params)

    base = period_start(0)  # fixed once: the datapoints must not move if a minute ends mid-test

    def put(value: float, periods_back: int) -> None:
        client.put_metric_data(Namespace="Multisite/Probe", MetricData=[{
            "MetricName": "Healthy", "Dimensions": params["Dimensions"], "Value": value,
            "Timestamp": base - timedelta(seconds=60 * periods_back - 1)}])

    stamps = [f"{base - timedelta(seconds=60 * k):%d/%m/%y %H:%M:%S}" for k in range(3)]
    put(0.0, 1)
    put(0.0, 0)
    assert events(emu) == []  # 2 of the 3 datapoints, all breaching: still INSUFFICIENT_DATA
    put(0.0, 2)
    [alarmed] = events(emu)
    state = alarmed["detail"]["state"]
    assert state["value"] == ALARM
    assert state["reason"] == (
        f"Threshold Crossed: 3 out of the last 3 datapoints [0.0 ({stamps[0]}), 0.0 ({stamps[1]}), "
        f"0.0 ({stamps[2]})] was less than the threshold (1.0) "
        "(minimum 3 datapoints for INSUFFICIENT_DATA -> ALARM transition)."
    )
    data = json.loads(state["reasonData"])
    assert {k: data[k] for k in ("version", "statistic", "period", "recentDatapoints", "threshold")} == {
        "version": "1.0", "statistic": "Average", "period": 60, "recentDatapoints": [0.0, 0.0, 0.0],
        "threshold": 1.0}
    assert STATE_TIMESTAMP.match(data["queryDate"]) and len(data["evaluatedDatapoints"]) == 3
    assert alarmed["detail"]["previousState"]["reason"] == "Unchecked: Initial alarm creation"

    put(5.0, 0)  # the newest period now averages 2.5: not breaching
    recovered = events(emu)[1]["detail"]
    assert recovered["previousState"] == state
    assert recovered["state"]["value"] == OK
    assert recovered["state"]["reason"] == (
        f"Threshold Crossed: 1 out of the last 3 datapoints [2.5 ({stamps[0]})] was not less than the threshold "
        "(1.0) (minimum 1 datapoint for ALARM -> OK transition)."
    )
    [alarm] = client.describe_alarms(AlarmNames=["probe"])["MetricAlarms"]
    assert (alarm["StateValue"], alarm["StateReason"]) == (OK, recovered["state"]["reason"])

    # Another metric (other dimensions) does not touch the alarm.
    client.put_metric_data(Namespace="Multisite/Probe", MetricData=[
        {"MetricName": "Healthy", "Dimensions": [{"Name": "Region", "Value": B}], "Value": 0.0}])
    assert len(events(emu)) == 2


def test_missing_data_and_the_evaluate_control_call(emu: Emulator, cbor: Callable[..., Any]) -> None:
    client = cbor()
    client.put_metric_alarm(**alarm_params("quiet", TreatMissingData="notBreaching"))
    [created] = events(emu)  # evaluated at creation: no data, not breaching -> OK
    assert (created["detail"]["previousState"]["value"], created["detail"]["state"]["value"]) == (
        INSUFFICIENT_DATA, OK)

    client.put_metric_alarm(**alarm_params("strict"))  # TreatMissingData "missing"
    client.put_metric_data(Namespace="AWS/Route53", MetricData=[
        {"MetricName": "HealthCheckStatus", "Dimensions": [{"Name": "HealthCheckId", "Value": HEALTH_CHECK}],
         "Value": 0.0}])
    assert [e["detail"]["alarmName"] for e in events(emu)] == ["quiet", "quiet", "strict"]
    assert [e["detail"]["state"]["value"] for e in events(emu)] == [OK, ALARM, ALARM]

    assert emu.post("alarms/evaluate", {"region": A}) == {"ok": True, "evaluated": 2, "changed": []}
    later = emu.post("alarms/evaluate", {"at": time.time() + 600})  # the metric stopped 10 minutes ago
    assert later["changed"] == [
        {"region": A, "alarmName": "quiet", "previous": ALARM, "state": OK},
        {"region": A, "alarmName": "strict", "previous": ALARM, "state": INSUFFICIENT_DATA},
    ]
    assert events(emu)[-1]["detail"]["state"]["reason"] == "Insufficient Data: 1 datapoint was unknown."
    assert emu.post("alarms/evaluate", {"region": B})["evaluated"] == 0
    for bad in ({"region": ""}, {"at": -1}, {"at": "soon"}):
        assert emu.control("POST", "alarms/evaluate", bad)[0] == 400


ROW_TABLES = [
    # (datapoints oldest -> newest, DatapointsToAlarm, {treatment: expected}) from the user guide's
    # "How alarm state is evaluated when data is missing" (EvaluationPeriods 3, 5 datapoints retrieved).
    ("0 - X - X", 3, {"missing": OK, "ignore": OK, "breaching": OK, "notBreaching": OK}),
    ("0 - - - -", 3, {"missing": OK, "ignore": OK, "breaching": OK, "notBreaching": OK}),
    ("- - - - -", 3, {"missing": INSUFFICIENT_DATA, "ignore": None, "breaching": ALARM, "notBreaching": OK}),
    ("0 X X - X", 3, {"missing": ALARM, "ignore": ALARM, "breaching": ALARM, "notBreaching": ALARM}),
    ("- - - - X", 3, {"missing": INSUFFICIENT_DATA, "ignore": None, "breaching": ALARM, "notBreaching": OK}),
    # The guide says ALARM for "missing" here; the emulator answers INSUFFICIENT_DATA (README §6).
    ("X - - - -", 3, {"missing": INSUFFICIENT_DATA, "ignore": None, "breaching": ALARM, "notBreaching": OK}),
    ("0 - X - X", 2, {"missing": ALARM, "ignore": ALARM, "breaching": ALARM, "notBreaching": ALARM}),
    ("0 0 X 0 X", 2, {"missing": ALARM, "ignore": ALARM, "breaching": ALARM, "notBreaching": ALARM}),
    ("0 - X - -", 2, {"missing": OK, "ignore": OK, "breaching": ALARM, "notBreaching": OK}),
    ("- - - - 0", 2, {"missing": OK, "ignore": OK, "breaching": ALARM, "notBreaching": OK}),
    ("- - - - X", 2, {"missing": INSUFFICIENT_DATA, "ignore": None, "breaching": ALARM, "notBreaching": OK}),
]


@pytest.mark.parametrize("row,to_alarm,expected", ROW_TABLES)
def test_judge_follows_the_user_guide_missing_data_tables(row: str, to_alarm: int, expected: dict[str, str]) -> None:
    start = datetime(2026, 1, 1)
    points = [None if c == "-" else Datapoint(start, 1.0 if c == "X" else 0.0, 1.0) for c in row.split()]
    for treat, state in expected.items():
        assert judge(points, 3, to_alarm, treat, lambda value: value > 0.5).state == state, treat


# -- faults, Regions, reset ---------------------------------------------------------------------


def test_faults_apply_to_cbor_calls(emu: Emulator, cbor: Callable[..., Any]) -> None:
    emu.post("outage", {"region": A, "down": True})
    with pytest.raises(ClientError) as excinfo:
        cbor(A).put_metric_alarm(**alarm_params())
    assert error_of(excinfo) == (503, "ServiceUnavailable")
    status, headers, _ = raw_cbor(emu, "DescribeAlarms", b"\xa0")
    assert (status, headers["x-amzn-query-error"], headers["smithy-protocol"]) == (
        503, "ServiceUnavailable;Receiver", "rpc-v2-cbor")
    cbor(B).put_metric_alarm(**alarm_params())  # the other Region is fine
    emu.post("outage", {"region": A, "down": False})
    assert cbor(A).describe_alarms()["MetricAlarms"] == []  # the failed call did nothing

    emu.post("throttle", {"region": A, "count": 1, "service": "monitoring", "operation": "DescribeAlarms"})
    with pytest.raises(ClientError) as excinfo:
        cbor(A).describe_alarms()
    assert error_of(excinfo) == (400, "Throttling")
    cbor(A).describe_alarms()
    log = [(r["region"], r["operation"], r["status"]) for r in emu.get("requests")["requests"]]
    assert log[:3] == [(A, "PutMetricAlarm", 503), (A, "DescribeAlarms", 503), (B, "PutMetricAlarm", 200)]
    assert log[-2:] == [(A, "DescribeAlarms", 400), (A, "DescribeAlarms", 200)]


def test_events_are_kept_per_region(emu: Emulator, cbor: Callable[..., Any]) -> None:
    for region in (A, B):
        client = cbor(region)
        client.put_metric_alarm(**alarm_params("web"))
        client.set_alarm_state(AlarmName="web", StateValue=ALARM, StateReason=f"{region} test")
    assert [e["region"] for e in events(emu)] == [A, B]
    [in_b] = events(emu, B)
    assert in_b["resources"] == [f"arn:aws:cloudwatch:{B}:123456789012:alarm:web"]
    assert in_b["detail"]["state"]["reason"] == f"{B} test"
    assert events(emu, "ap-southeast-1") == []
    assert emu.control("GET", "events?region=")[0] == 400
    assert emu.control("DELETE", "events") == (200, {"ok": True})
    assert events(emu) == []


def test_reset_clears_alarms_and_events(emu: Emulator, cbor: Callable[..., Any]) -> None:
    client = cbor()
    client.put_metric_alarm(**alarm_params())
    client.set_alarm_state(AlarmName=alarm_params()["AlarmName"], StateValue=ALARM, StateReason="x")
    assert emu.get("state")["alarm_events"] == 1
    emu.post("reset")
    assert client.describe_alarms()["MetricAlarms"] == [] and events(emu) == []
    assert emu.get("state")["alarm_events"] == 0


def test_describe_alarms_filters_and_pages(emu: Emulator, cbor: Callable[..., Any]) -> None:
    client = cbor()
    for name in ("c", "a", "e", "b", "d"):
        client.put_metric_alarm(**alarm_params(name))
    for name in ("b", "d"):
        client.set_alarm_state(AlarmName=name, StateValue=ALARM, StateReason="x")

    pages, token = [], None
    while True:
        page = client.describe_alarms(MaxRecords=2, **({"NextToken": token} if token else {}))
        pages.append([a["AlarmName"] for a in page["MetricAlarms"]])
        token = page.get("NextToken")
        if not token:
            break
    assert pages == [["a", "b"], ["c", "d"], ["e"]]
    names = lambda **kw: [a["AlarmName"] for a in client.describe_alarms(**kw)["MetricAlarms"]]  # noqa: E731
    assert names(StateValue=ALARM) == ["b", "d"]
    assert names(StateValue=ALARM, AlarmNamePrefix="b") == ["b"]
    assert names(StateValue=ALARM, AlarmNames=["a", "d"]) == ["d"]
    assert names(ActionPrefix="arn:aws:sns:") == ["a", "b", "c", "d", "e"]
    assert names(AlarmTypes=["CompositeAlarm"]) == []

    with pytest.raises(ClientError) as excinfo:
        client.describe_alarms(NextToken="!not-a-token!")
    assert error_of(excinfo) == (400, "InvalidNextToken")
    status, headers, _ = raw_cbor(emu, "DescribeAlarms", encode_cbor({"MaxRecords": 0}))
    assert (status, headers["x-amzn-query-error"]) == (400, "ValidationError;Sender")

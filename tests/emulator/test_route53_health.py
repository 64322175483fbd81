"""Route 53 GetHealthCheckStatus: Inverted, Disabled, Disabled+Inverted, injected failure."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import Emulator


def create_check(r53, **config) -> str:
    base = {"Type": "HTTPS", "FullyQualifiedDomainName": "api.example.com", "Port": 443, "ResourcePath": "/health"}
    return r53.create_health_check(CallerReference=str(uuid.uuid4()), HealthCheckConfig={**base, **config})[
        "HealthCheck"
    ]["Id"]


def statuses(r53, health_check_id: str) -> list[str]:
    observations = r53.get_health_check_status(HealthCheckId=health_check_id)["HealthCheckObservations"]
    assert observations and all(o["Region"] and o["StatusReport"]["CheckedTime"] for o in observations)
    return [o["StatusReport"]["Status"] for o in observations]


def healthy(r53, health_check_id: str) -> bool:
    values = statuses(r53, health_check_id)
    assert len({v.split(":")[0] for v in values}) == 1, values  # every checker agrees
    return values[0].startswith("Success")


@pytest.fixture
def r53(emu: Emulator):
    return emu.client("route53")


def test_plain_check_is_healthy_and_reports_each_checker_region(r53):
    hc = create_check(r53)
    observations = r53.get_health_check_status(HealthCheckId=hc)["HealthCheckObservations"]
    assert {o["Region"] for o in observations} >= {"us-east-1", "eu-west-1", "ap-southeast-1"}
    assert all(o["StatusReport"]["Status"] == "Success: HTTP Status Code 200, OK" for o in observations)
    regional = create_check(r53, Regions=["us-east-1", "eu-west-1", "us-west-2"])
    assert [o["Region"] for o in r53.get_health_check_status(HealthCheckId=regional)["HealthCheckObservations"]] == [
        "us-east-1", "eu-west-1", "us-west-2"
    ]


def test_inverted_disabled_and_both(r53):
    assert healthy(r53, create_check(r53)) is True
    assert healthy(r53, create_check(r53, Inverted=True)) is False
    assert healthy(r53, create_check(r53, Disabled=True)) is True  # disabled counts as healthy
    assert healthy(r53, create_check(r53, Disabled=True, Inverted=True)) is False  # the forced-unhealthy idiom


def test_injected_failure_and_its_interplay(emu, r53):
    hc = create_check(r53)
    emu.post("health-check-failure", {"health_check_id": hc, "failing": True})
    assert statuses(r53, hc)[0].startswith("Failure: HTTP Status Code 503")

    r53.update_health_check(HealthCheckId=hc, Inverted=True)
    assert healthy(r53, hc) is True  # failing endpoint, inverted -> healthy
    r53.update_health_check(HealthCheckId=hc, Inverted=False, Disabled=True)
    assert healthy(r53, hc) is True  # disabled ignores the endpoint
    r53.update_health_check(HealthCheckId=hc, Disabled=False)
    assert healthy(r53, hc) is False
    emu.post("health-check-failure", {"health_check_id": hc, "failing": False})
    assert healthy(r53, hc) is True


def test_calculated_check_follows_children(emu, r53):
    children = [create_check(r53) for _ in range(3)]
    parent = r53.create_health_check(
        CallerReference=str(uuid.uuid4()),
        HealthCheckConfig={"Type": "CALCULATED", "ChildHealthChecks": children, "HealthThreshold": 2},
    )["HealthCheck"]["Id"]
    assert healthy(r53, parent)
    emu.post("health-check-failure", {"health_check_id": children[0], "failing": True})
    assert healthy(r53, parent)
    emu.post("health-check-failure", {"health_check_id": children[1], "failing": True})
    assert not healthy(r53, parent)


def test_unknown_health_check(r53):
    with pytest.raises(ClientError) as excinfo:
        r53.get_health_check_status(HealthCheckId=str(uuid.uuid4()))
    assert excinfo.value.response["Error"]["Code"] == "NoSuchHealthCheck"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404

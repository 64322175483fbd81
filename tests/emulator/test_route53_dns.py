"""Route 53 TestDNSAnswer: latency routing by client area, health checks, fail-open, errors."""

from __future__ import annotations

import ipaddress
import uuid

import pytest
from botocore.exceptions import ClientError

from conftest import Emulator

NAME = "api.example.com"
# Record values per Region (what the drill maps back to a Region).
VALUES = {"us-east-1": "192.0.2.10", "eu-west-1": "192.0.2.20", "ap-southeast-1": "192.0.2.30"}
REGION_OF = {v: k for k, v in VALUES.items()}
NA, SA, EU, AF, ME, AP = "North America", "South America", "Europe", "Africa", "Middle East", "Asia Pacific"


@pytest.fixture
def r53(emu: Emulator):
    return emu.client("route53")


@pytest.fixture
def areas(emu: Emulator) -> dict:
    return emu.get("dns-areas")


@pytest.fixture
def latency_zone(r53):
    """A zone with three latency records, each with its own health check."""
    zone = r53.create_hosted_zone(Name="example.com", CallerReference=str(uuid.uuid4()))["HostedZone"]["Id"]
    checks = {}
    changes = []
    for region, value in VALUES.items():
        checks[region] = r53.create_health_check(
            CallerReference=str(uuid.uuid4()),
            HealthCheckConfig={"Type": "HTTPS", "FullyQualifiedDomainName": f"{region}.example.com", "Port": 443},
        )["HealthCheck"]["Id"]
        changes.append({"Action": "CREATE", "ResourceRecordSet": {
            "Name": NAME, "Type": "A", "SetIdentifier": region, "Region": region, "TTL": 60,
            "HealthCheckId": checks[region], "ResourceRecords": [{"Value": value}]}})
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": changes})
    return zone, checks


def answer(r53, zone: str, name: str = NAME, rtype: str = "A", **kwargs) -> dict:
    response = r53.test_dns_answer(HostedZoneId=zone, RecordName=name, RecordType=rtype, **kwargs)
    assert response["Protocol"] == "UDP" and response["Nameserver"]
    assert response["RecordName"] == name and response["RecordType"] == rtype
    return response


def region_for(r53, zone: str, ip: str) -> str:
    response = answer(r53, zone, ResolverIP=ip)
    assert response["ResponseCode"] == "NOERROR"
    assert len(response["RecordData"]) == 1, response["RecordData"]
    return REGION_OF[response["RecordData"][0]]


def by_area(r53, zone: str, areas: dict) -> dict[str, str]:
    return {area: region_for(r53, zone, spec["example_ip"]) for area, spec in areas.items()}


NEAREST = {NA: "us-east-1", SA: "us-east-1", EU: "eu-west-1", AF: "eu-west-1", ME: "ap-southeast-1",
           AP: "ap-southeast-1"}


def test_dns_areas_endpoint(emu, areas):
    assert set(areas) == {NA, SA, EU, AF, ME, AP}
    for area, spec in areas.items():
        networks = [ipaddress.ip_network(c) for c in spec["cidrs"]]
        assert networks, area
        example = ipaddress.ip_address(spec["example_ip"])
        assert any(example in n for n in networks if n.version == example.version), area
        assert {"us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-southeast-1",
                "ap-northeast-1", "sa-east-1"} <= set(spec["regions_by_latency"])
    assert areas[NA]["regions_by_latency"][0] == "us-east-1"
    assert areas[EU]["regions_by_latency"][0] == "eu-central-1"
    assert areas[AP]["regions_by_latency"][0] == "ap-southeast-1"
    assert areas[SA]["regions_by_latency"][0] == "sa-east-1"
    assert emu.control("POST", "dns-areas", {})[0] == 405


def test_each_area_gets_its_nearest_region(r53, latency_zone, areas):
    zone, _ = latency_zone
    assert by_area(r53, zone, areas) == NEAREST
    # No resolver IP: a resolver in us-east-1 asks (North America).
    assert REGION_OF[answer(r53, zone)["RecordData"][0]] == "us-east-1"
    # Realistic public addresses fall in the RIR blocks; IPv6 documentation /48s too.
    assert region_for(r53, zone, "81.2.69.142") == "eu-west-1"
    assert region_for(r53, zone, "2001:db8:6::1") == "ap-southeast-1"
    assert region_for(r53, zone, "10.0.0.1") == "us-east-1"  # no block: default area


def test_unhealthy_nearest_region_moves_only_its_clients(emu, r53, latency_zone, areas):
    zone, checks = latency_zone
    r53.update_health_check(HealthCheckId=checks["us-east-1"], Inverted=True)
    moved = by_area(r53, zone, areas)
    assert moved[NA] == "eu-west-1" and moved[SA] == "eu-west-1"  # next-nearest healthy Region
    assert {a: r for a, r in moved.items() if a not in (NA, SA)} == {
        a: r for a, r in NEAREST.items() if a not in (NA, SA)
    }
    # An injected endpoint failure counts the same; the first Region recovering takes its clients back.
    emu.post("health-check-failure", {"health_check_id": checks["eu-west-1"], "failing": True})
    assert region_for(r53, zone, areas[NA]["example_ip"]) == "ap-southeast-1"
    assert region_for(r53, zone, areas[EU]["example_ip"]) == "ap-southeast-1"
    r53.update_health_check(HealthCheckId=checks["us-east-1"], Inverted=False)
    assert by_area(r53, zone, areas)[NA] == "us-east-1"
    assert by_area(r53, zone, areas)[EU] == "us-east-1"  # eu-west-1 still failing


def test_disabled_check_counts_healthy_and_disabled_inverted_unhealthy(r53, latency_zone, areas):
    zone, checks = latency_zone
    eu_ip = areas[EU]["example_ip"]
    r53.update_health_check(HealthCheckId=checks["eu-west-1"], Disabled=True)
    assert region_for(r53, zone, eu_ip) == "eu-west-1"
    r53.update_health_check(HealthCheckId=checks["eu-west-1"], Inverted=True)
    assert region_for(r53, zone, eu_ip) == "us-east-1"


def test_all_unhealthy_fails_open(emu, r53, latency_zone, areas):
    zone, checks = latency_zone
    for health_check in checks.values():
        emu.post("health-check-failure", {"health_check_id": health_check, "failing": True})
    # Route 53 considers them all healthy: every area gets its nearest Region again.
    assert by_area(r53, zone, areas) == NEAREST


def test_edns0_client_subnet_takes_precedence(r53, latency_zone, areas):
    zone, _ = latency_zone
    eu, ap = areas[EU]["example_ip"], areas[AP]["example_ip"]
    response = answer(r53, zone, ResolverIP=eu, EDNS0ClientSubnetIP=ap)
    assert REGION_OF[response["RecordData"][0]] == "ap-southeast-1"
    response = answer(r53, zone, ResolverIP=eu, EDNS0ClientSubnetIP=ap, EDNS0ClientSubnetMask="16")
    assert REGION_OF[response["RecordData"][0]] == "ap-southeast-1"  # 203.0.0.0/16: APNIC 203/8
    response = answer(r53, zone, EDNS0ClientSubnetIP="2001:db8:3::77")
    assert REGION_OF[response["RecordData"][0]] == "eu-west-1"
    # A /0 subnet carries no location: the resolver's is used.
    response = answer(r53, zone, ResolverIP=eu, EDNS0ClientSubnetIP=ap, EDNS0ClientSubnetMask="0")
    assert REGION_OF[response["RecordData"][0]] == "eu-west-1"


def test_unknown_zone_and_bad_input(r53, latency_zone):
    with pytest.raises(ClientError) as excinfo:
        r53.test_dns_answer(HostedZoneId="Z0000000NOSUCHZONE", RecordName=NAME, RecordType="A")
    assert excinfo.value.response["Error"]["Code"] == "NoSuchHostedZone"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    zone, _ = latency_zone
    for kwargs in ({"ResolverIP": "not-an-ip"}, {"EDNS0ClientSubnetIP": "192.0.2.1", "EDNS0ClientSubnetMask": "33"}):
        with pytest.raises(ClientError) as excinfo:
            r53.test_dns_answer(HostedZoneId=zone, RecordName=NAME, RecordType="A", **kwargs)
        assert excinfo.value.response["Error"]["Code"] == "InvalidInput"


def test_simple_records_nxdomain_and_nodata(r53, latency_zone):
    zone, _ = latency_zone
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "www.example.com", "Type": "A", "TTL": 300,
                                                   "ResourceRecords": [{"Value": "192.0.2.1"}, {"Value": "192.0.2.2"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "alias.example.com", "Type": "CNAME", "TTL": 300,
                                                   "ResourceRecords": [{"Value": "www.example.com"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {"Name": "*.wild.example.com", "Type": "TXT", "TTL": 300,
                                                   "ResourceRecords": [{"Value": '"hi"'}]}},
    ]})
    simple = answer(r53, zone, name="www.example.com", ResolverIP="203.0.113.44")
    assert (simple["ResponseCode"], simple["RecordData"]) == ("NOERROR", ["192.0.2.1", "192.0.2.2"])
    assert answer(r53, zone, name="WWW.example.com.")["RecordData"] == ["192.0.2.1", "192.0.2.2"]
    assert answer(r53, zone, name="alias.example.com")["RecordData"] == ["www.example.com"]
    assert answer(r53, zone, name="x.wild.example.com", rtype="TXT")["RecordData"] == ['"hi"']
    missing = answer(r53, zone, name="nope.example.com")
    assert (missing["ResponseCode"], missing["RecordData"]) == ("NXDOMAIN", [])
    nodata = answer(r53, zone, name="www.example.com", rtype="AAAA")
    assert (nodata["ResponseCode"], nodata["RecordData"]) == ("NOERROR", [])


def test_failover_and_weighted_records(emu, r53, latency_zone):
    zone, checks = latency_zone
    r53.change_resource_record_sets(HostedZoneId=zone, ChangeBatch={"Changes": [
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": "fo.example.com", "Type": "A", "TTL": 60, "SetIdentifier": "p", "Failover": "PRIMARY",
            "HealthCheckId": checks["us-east-1"], "ResourceRecords": [{"Value": "192.0.2.10"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": "fo.example.com", "Type": "A", "TTL": 60, "SetIdentifier": "s", "Failover": "SECONDARY",
            "HealthCheckId": checks["eu-west-1"], "ResourceRecords": [{"Value": "192.0.2.20"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": "w.example.com", "Type": "A", "TTL": 60, "SetIdentifier": "a", "Weight": 100,
            "HealthCheckId": checks["us-east-1"], "ResourceRecords": [{"Value": "192.0.2.10"}]}},
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": "w.example.com", "Type": "A", "TTL": 60, "SetIdentifier": "b", "Weight": 0,
            "ResourceRecords": [{"Value": "192.0.2.20"}]}},
    ]})
    assert answer(r53, zone, name="fo.example.com")["RecordData"] == ["192.0.2.10"]
    assert answer(r53, zone, name="w.example.com")["RecordData"] == ["192.0.2.10"]
    emu.post("health-check-failure", {"health_check_id": checks["us-east-1"], "failing": True})
    assert answer(r53, zone, name="fo.example.com")["RecordData"] == ["192.0.2.20"]
    assert answer(r53, zone, name="w.example.com")["RecordData"] == ["192.0.2.20"]  # weight 0 as last resort
    emu.post("health-check-failure", {"health_check_id": checks["eu-west-1"], "failing": True})
    assert answer(r53, zone, name="fo.example.com")["RecordData"] == ["192.0.2.10"]  # both down: primary


def test_follows_route53_faults_and_is_logged(emu, r53, latency_zone):
    zone, _ = latency_zone
    emu.control("DELETE", "requests")
    emu.post("throttle", {"region": "us-east-1", "count": 1, "service": "route53", "operation": "TestDNSAnswer"})
    with pytest.raises(ClientError) as excinfo:
        answer(r53, zone)
    assert excinfo.value.response["Error"]["Code"] == "Throttling"
    emu.post("outage", {"region": "us-east-1", "down": True})
    with pytest.raises(ClientError) as excinfo:
        answer(r53, zone)
    assert excinfo.value.response["Error"]["Code"] == "ServiceUnavailable"
    emu.post("outage", {"region": "us-east-1", "down": True, "except_services": ["route53"]})
    assert answer(r53, zone)["ResponseCode"] == "NOERROR"
    log = [(r["operation"], r["status"]) for r in emu.get("requests")["requests"]]
    assert log == [("TestDNSAnswer", 400), ("TestDNSAnswer", 503), ("TestDNSAnswer", 200)]


def test_hosted_zone_ids_are_aws_shaped(r53):
    """AWS zone ids start with Z (the template's HostedZoneId pattern ^Z[A-Z0-9]{1,32}$)."""
    import re

    for i in range(20):
        zone = r53.create_hosted_zone(Name=f"z{i}.example.com", CallerReference=str(uuid.uuid4()))
        zone_id = zone["HostedZone"]["Id"].rsplit("/", 1)[-1]
        assert re.fullmatch(r"Z[A-Z0-9]{1,32}", zone_id), zone_id
        assert r53.get_hosted_zone(Id=zone_id)["HostedZone"]["Name"] == f"z{i}.example.com."

"""Route 53 TestDNSAnswer (GET /2013-04-01/testdnsanswer) following routing policies.

moto 5.2.5 does not implement TestDNSAnswer. This module adds the route to
moto's Route 53 URL map and a ``Route53.test_dns_answer`` handler, so the call
goes through the emulator's middleware (request log, outage, latency and
throttle injection for ``route53`` signed in us-east-1) like every other
Route 53 call, and the answer is serialized by moto from botocore's model:
``<TestDNSAnswerResponse xmlns="https://route53.amazonaws.com/doc/2013-04-01/">``
with Nameserver, RecordName, RecordType, RecordData/RecordDataEntry,
ResponseCode and Protocol.

What Route 53 answers (AWS semantics followed, deviations in README):

* The client's location is the EDNS0 client subnet (``edns0clientsubnetip``
  masked to ``edns0clientsubnetmask`` bits, default 24 / 64) if given, else
  ``resolverip``, else a resolver in us-east-1; ``dns_geo`` maps it to an area.
* A record is healthy when it has no HealthCheckId or its health check is
  healthy as GetHealthCheckStatus reports it (``HealthChecks.is_healthy``:
  Disabled, Inverted, CALCULATED children, injected failures); an alias with
  EvaluateTargetHealth to a record in a hosted zone of the account is healthy
  only if that target resolves to a healthy record too.
* Latency records: the healthy record whose Region is nearest the client
  (``dns_geo.LATENCY_MS``). Weighted: a random healthy record, by weight.
  Failover: PRIMARY if healthy, else SECONDARY if healthy. Multivalue answer:
  up to eight healthy records. Whenever every record of the group is
  unhealthy, Route 53 considers them all healthy (fail-open) and answers
  accordingly (failover: the primary).
* Simple records answer all their values; CNAME records answer their target
  for any type asked at that name; wildcards (``*``) match names that do not
  exist (RFC 4592); a name with no records at all is NXDOMAIN, a name that
  exists without the asked type answers NOERROR with no data.
"""

from __future__ import annotations

import ipaddress
import random
from dataclasses import dataclass, field
from typing import Any

from moto.core.responses import ActionResult
from moto.route53 import urls as route53_urls
from moto.route53.exceptions import InvalidInput
from moto.route53.models import HostedZoneIdentifier
from moto.route53.responses import Route53

from . import dns_geo
from .route53_health import HealthChecks, _truthy
from .state import EmulatorState

URL_PATH = r"{0}/(?P<api_version>[\d_-]+)/testdnsanswer$"
DEFAULT_NAMESERVER = "ns-2048.awsdns-64.com"
RR_TYPES = frozenset(
    "SOA A TXT NS CNAME MX NAPTR PTR SRV SPF AAAA CAA DS TLSA SSHFP SVCB HTTPS".split()
)  # botocore's RRType enum
MULTIVALUE_MAX = 8
MAX_ALIAS_DEPTH = 8


@dataclass
class Answer:
    rcode: str
    values: list[str] = field(default_factory=list)
    healthy: bool = True  # False when the answer came from a fail-open selection


def _norm(name: str) -> str:
    name = (name or "").strip().lower().replace("\\052", "*")
    return name if name.endswith(".") else name + "."


def _zone_id(value: str) -> str:
    return (value or "").replace("/hostedzone/", "").strip("/")


def client_location(resolver_ip: str | None, ecs_ip: str | None, ecs_mask: str | None) -> str:
    """The area the simulated query comes from (see module doc)."""
    if ecs_ip:
        try:
            address = ipaddress.ip_address(ecs_ip)
        except ValueError:
            raise InvalidInput(f"Invalid IP address for edns0clientsubnetip: {ecs_ip}")
        max_bits = 32 if address.version == 4 else 128
        if ecs_mask in (None, ""):
            bits = 24 if address.version == 4 else 64
        else:
            try:
                bits = int(ecs_mask)
            except ValueError:
                bits = -1
            if not 0 <= bits <= max_bits:
                raise InvalidInput(f"edns0clientsubnetmask must be between 0 and {max_bits}: {ecs_mask}")
        if bits > 0:  # a /0 subnet says nothing about the client: use the resolver
            network = ipaddress.ip_network(f"{address}/{bits}", strict=False)
            return dns_geo.area_of(network.network_address)
    if resolver_ip:
        try:
            return dns_geo.area_of(ipaddress.ip_address(resolver_ip))
        except ValueError:
            raise InvalidInput(f"Invalid IP address for resolverip: {resolver_ip}")
    return dns_geo.DEFAULT_AREA


class Resolver:
    """Answers one query against moto's Route 53 backend (caller holds the state lock)."""

    def __init__(self, backend: Any, checks: HealthChecks, area: str):
        self.backend = backend
        self.checks = checks
        self.area = area

    # -- names ---------------------------------------------------------------
    def resolve(self, zone: Any, qname: str, qtype: str, depth: int = 0) -> Answer:
        qname = _norm(qname)
        apex = _norm(zone.name)
        if qname != apex and not qname.endswith("." + apex):
            return Answer("NXDOMAIN")  # not in this zone (deviation: see README)
        rrsets = self._at(zone, qname)
        if not rrsets:
            if self._exists(zone, qname):
                return Answer("NOERROR")  # empty non-terminal
            rrsets = self._wildcard(zone, qname, apex)
            if not rrsets:
                return Answer("NXDOMAIN")
        group = [r for r in rrsets if (r.type or "").upper() == qtype]
        if not group and qtype != "CNAME":
            group = [r for r in rrsets if (r.type or "").upper() == "CNAME"]
        if not group:
            return Answer("NOERROR")  # the name exists, not with this type
        return self.select(group, qtype, depth)

    @staticmethod
    def _at(zone: Any, name: str) -> list[Any]:
        return [r for r in zone.rrsets if _norm(r.name) == name]

    @staticmethod
    def _exists(zone: Any, name: str) -> bool:
        return any(_norm(r.name) == name or _norm(r.name).endswith("." + name) for r in zone.rrsets)

    def _wildcard(self, zone: Any, qname: str, apex: str) -> list[Any]:
        encloser = qname
        while encloser != apex:
            encloser = encloser.split(".", 1)[1]
            if encloser == apex or self._exists(zone, encloser):
                return self._at(zone, "*." + encloser)
        return []

    # -- routing policies --------------------------------------------------
    def select(self, group: list[Any], qtype: str, depth: int) -> Answer:
        healthy = [r for r in group if self.is_healthy(r, qtype, depth)]
        all_healthy = bool(healthy)
        pool = healthy or group  # Route 53: all unhealthy -> consider all healthy
        first = group[0]
        if first.region:
            chosen = [min(pool, key=lambda r: dns_geo.latency_rank(self.area, r.region))]
        elif first.failover:
            def role(r: Any) -> str:
                return (r.failover or "").upper()
            primary = [r for r in group if role(r) == "PRIMARY"]
            secondary = [r for r in group if role(r) == "SECONDARY"]
            chosen = (
                [r for r in primary if r in healthy][:1]
                or [r for r in secondary if r in healthy][:1]
                or primary[:1]
                or secondary[:1]
            )
        elif first.weight is not None:
            weighted = [r for r in pool if _weight(r) > 0] or pool
            weights = [_weight(r) for r in weighted]
            chosen = [random.choices(weighted, weights=weights if any(weights) else None)[0]]
        elif _truthy(first.multi_value_answer):
            chosen = pool[:MULTIVALUE_MAX]
        elif first.geo_location or first.set_identifier:
            raise InvalidInput(
                "multisite emulator: TestDNSAnswer supports simple, latency, weighted, failover and "
                f"multivalue answer records only, not the routing policy of {first.name} {first.type}"
            )
        else:
            chosen = group  # simple routing: one record set
        values: list[str] = []
        for record in chosen:
            values.extend(self.values(record, qtype, depth))
        return Answer("NOERROR", values, all_healthy)

    def is_healthy(self, record: Any, qtype: str, depth: int) -> bool:
        if record.health_check_id:
            health_check = self.backend.health_checks.get(record.health_check_id)
            # A deleted health check: treated as no health check (deviation, README).
            if health_check is not None and not self.checks.is_healthy(self.backend, health_check):
                return False
        alias = record.alias_target
        if alias and _truthy(alias.get("EvaluateTargetHealth")):
            target = self._alias_zone(alias)
            if target is not None:
                if depth >= MAX_ALIAS_DEPTH:
                    return False
                answer = self.resolve(target, alias.get("DNSName", ""), qtype, depth + 1)
                return answer.healthy and bool(answer.values)
        return True

    def values(self, record: Any, qtype: str, depth: int) -> list[str]:
        alias = record.alias_target
        if not alias:
            return [str(v) for v in (record.records or [])]
        target = self._alias_zone(alias)
        if target is None:  # an AWS resource (ELB, CloudFront, ...): its DNS name
            return [str(alias.get("DNSName", ""))]
        if depth >= MAX_ALIAS_DEPTH:
            return []
        return self.resolve(target, alias.get("DNSName", ""), qtype, depth + 1).values

    def _alias_zone(self, alias: dict[str, Any]) -> Any:
        return self.backend.zones.get(_zone_id(alias.get("HostedZoneId", "")))


def _weight(record: Any) -> int:
    try:
        return int(record.weight or 0)
    except (TypeError, ValueError):
        return 0


class TestDnsAnswer:
    __test__ = False  # not a pytest class

    def __init__(self, state: EmulatorState, checks: HealthChecks):
        self.state = state
        self.checks = checks

    def reset(self) -> None:
        pass

    def snapshot(self) -> dict[str, Any]:
        return {}

    def on_region_up(self, region: str) -> None:
        pass


def _aws_shaped_zone_ids() -> None:
    """Hosted zone ids start with ``Z`` on AWS (``Z0123456789ABCDEFGHIJ``); moto draws all 22
    characters at random. Anything validated like AWS ids (the template's ``HostedZoneId``
    AllowedPattern ``^Z[A-Z0-9]{1,32}$``) must accept the emulator's ids too."""
    original = HostedZoneIdentifier.generate
    if getattr(original, "_multisite_aws_shaped", False):
        return

    def generate(self: HostedZoneIdentifier, existing_ids: Any = None, tags: Any = None) -> str:
        zone_id = original(self, existing_ids=existing_ids, tags=tags)
        return zone_id if zone_id.startswith("Z") else "Z" + zone_id[1:]

    generate._multisite_aws_shaped = True  # type: ignore[attr-defined]
    HostedZoneIdentifier.generate = generate  # type: ignore[method-assign]


def install(state: EmulatorState) -> TestDnsAnswer:
    checks = next(f for f in state.features if isinstance(f, HealthChecks))  # route53_health first
    feature = TestDnsAnswer(state, checks)
    _aws_shaped_zone_ids()

    def test_dns_answer(self: Route53) -> ActionResult:
        zone_id = self._get_param("HostedZoneId")
        record_name = self._get_param("RecordName")
        record_type = (self._get_param("RecordType") or "").upper()
        if not zone_id or not record_name or not record_type:
            raise InvalidInput("hostedzoneid, recordname and recordtype are required")
        if record_type not in RR_TYPES:
            raise InvalidInput(f"Invalid record type: {record_type}")
        zone = self.backend.get_hosted_zone(zone_id)  # NoSuchHostedZone (404)
        area = client_location(
            self._get_param("ResolverIP"),
            self._get_param("EDNS0ClientSubnetIP"),
            self._get_param("EDNS0ClientSubnetMask"),
        )
        with state.lock:
            answer = Resolver(self.backend, checks, area).resolve(zone, record_name, record_type)
        name_servers = zone.delegation_set.name_servers if zone.delegation_set else None
        return ActionResult(
            {
                "Nameserver": (name_servers or [DEFAULT_NAMESERVER])[0],
                "RecordName": record_name,
                "RecordType": record_type,
                "RecordData": answer.values,
                "ResponseCode": answer.rcode,
                "Protocol": "UDP",
            }
        )

    Route53.test_dns_answer = test_dns_answer  # type: ignore[attr-defined]
    route53_urls.url_paths[URL_PATH] = Route53.dispatch
    return feature

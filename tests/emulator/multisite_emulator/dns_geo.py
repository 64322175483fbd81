"""Fixed client-location and latency tables used by Route 53 TestDNSAnswer.

Real Route 53 locates a DNS client with its own geo-IP data and picks latency
records from AWS's measured latency between that location and each Region.
The emulator has neither, so it uses two small, fixed, documented tables
(README "Route 53 TestDNSAnswer"): they are data, edit them here.

``AREAS`` maps an area to example CIDR blocks. An IP address belongs to the
area of the longest matching block. The blocks are:

* documentation prefixes, so tests can use addresses that are never routed:
  IPv4 TEST-NET-1/2/3 (RFC 5737) for the three main areas, and one /48 of the
  IPv6 documentation prefix 2001:db8::/32 (RFC 3849) per area;
* whole IPv4 /8s that IANA's IPv4 address space registry lists as allocated
  to the Regional Internet Registry serving the area (ARIN, LACNIC, RIPE NCC,
  AFRINIC, APNIC), so realistic public addresses land somewhere sensible;
* for the Middle East (served by RIPE NCC, which has no Middle-East-only /8)
  two blocks carved out of RIPE NCC /8s that this table assigns to the
  Middle East (the longest prefix wins over Europe's /8s).

This is an illustrative table, not a geo-IP database. An address matching no
block is located in ``DEFAULT_AREA`` (North America): Route 53 answers a
TestDNSAnswer without a resolver IP as if asked by a resolver in us-east-1.

``LATENCY_MS`` holds a rough round-trip time (ms) from each area to each AWS
Region: only the ORDER matters (lowest first). A Region missing from an
area's row ranks after every listed Region (ties broken by Region name).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

NORTH_AMERICA = "North America"
SOUTH_AMERICA = "South America"
EUROPE = "Europe"
AFRICA = "Africa"
MIDDLE_EAST = "Middle East"
ASIA_PACIFIC = "Asia Pacific"

DEFAULT_AREA = NORTH_AMERICA

# area -> {"cidrs": [...], "example_ip": "..."}; example_ip lies in the area's blocks.
AREAS: dict[str, dict[str, object]] = {
    NORTH_AMERICA: {
        "cidrs": ["192.0.2.0/24", "2001:db8:1::/48", "23.0.0.0/8", "24.0.0.0/8", "50.0.0.0/8",
                  "63.0.0.0/8", "64.0.0.0/8", "96.0.0.0/8", "104.0.0.0/8", "108.0.0.0/8"],
        "example_ip": "192.0.2.44",
    },
    SOUTH_AMERICA: {
        "cidrs": ["2001:db8:2::/48", "177.0.0.0/8", "179.0.0.0/8", "181.0.0.0/8", "186.0.0.0/8",
                  "187.0.0.0/8", "189.0.0.0/8", "190.0.0.0/8", "200.0.0.0/8", "201.0.0.0/8"],
        "example_ip": "200.0.2.44",
    },
    EUROPE: {
        "cidrs": ["198.51.100.0/24", "2001:db8:3::/48", "2.0.0.0/8", "5.0.0.0/8", "31.0.0.0/8",
                  "37.0.0.0/8", "46.0.0.0/8", "62.0.0.0/8", "77.0.0.0/8", "78.0.0.0/8", "79.0.0.0/8",
                  "80.0.0.0/8", "81.0.0.0/8", "82.0.0.0/8", "83.0.0.0/8", "84.0.0.0/8", "85.0.0.0/8",
                  "86.0.0.0/8", "87.0.0.0/8", "88.0.0.0/8", "89.0.0.0/8", "90.0.0.0/8", "91.0.0.0/8",
                  "92.0.0.0/8", "93.0.0.0/8", "94.0.0.0/8", "95.0.0.0/8", "193.0.0.0/8", "194.0.0.0/8",
                  "195.0.0.0/8", "212.0.0.0/8", "213.0.0.0/8", "217.0.0.0/8"],
        "example_ip": "198.51.100.44",
    },
    AFRICA: {
        "cidrs": ["2001:db8:4::/48", "41.0.0.0/8", "102.0.0.0/8", "105.0.0.0/8", "154.0.0.0/8",
                  "196.0.0.0/8", "197.0.0.0/8"],
        "example_ip": "41.0.2.44",
    },
    MIDDLE_EAST: {
        # More specific than the RIPE NCC /8s of Europe: longest prefix wins.
        "cidrs": ["2001:db8:5::/48", "2.88.0.0/13", "94.200.0.0/13"],
        "example_ip": "94.200.2.44",
    },
    ASIA_PACIFIC: {
        "cidrs": ["203.0.113.0/24", "2001:db8:6::/48", "1.0.0.0/8", "14.0.0.0/8", "27.0.0.0/8",
                  "36.0.0.0/8", "39.0.0.0/8", "42.0.0.0/8", "49.0.0.0/8", "58.0.0.0/8", "59.0.0.0/8",
                  "60.0.0.0/8", "61.0.0.0/8", "101.0.0.0/8", "110.0.0.0/8", "111.0.0.0/8",
                  "112.0.0.0/8", "113.0.0.0/8", "114.0.0.0/8", "115.0.0.0/8", "116.0.0.0/8",
                  "117.0.0.0/8", "118.0.0.0/8", "119.0.0.0/8", "120.0.0.0/8", "121.0.0.0/8",
                  "122.0.0.0/8", "123.0.0.0/8", "124.0.0.0/8", "125.0.0.0/8", "126.0.0.0/8",
                  "175.0.0.0/8", "180.0.0.0/8", "182.0.0.0/8", "183.0.0.0/8", "202.0.0.0/8", "203.0.0.0/8",
                  "210.0.0.0/8", "211.0.0.0/8", "218.0.0.0/8", "219.0.0.0/8", "220.0.0.0/8",
                  "221.0.0.0/8", "222.0.0.0/8", "223.0.0.0/8"],
        "example_ip": "203.0.113.44",
    },
}

# area -> {Region: rough RTT in ms}. Only the order within an area matters.
LATENCY_MS: dict[str, dict[str, int]] = {
    NORTH_AMERICA: {
        "us-east-1": 20, "us-east-2": 25, "ca-central-1": 30, "us-west-2": 60, "us-west-1": 65,
        "eu-west-1": 85, "eu-west-2": 90, "eu-west-3": 95, "eu-central-1": 100, "eu-north-1": 110,
        "eu-south-1": 115, "sa-east-1": 130, "ap-northeast-1": 150, "ap-northeast-3": 155,
        "ap-northeast-2": 165, "ap-east-1": 185, "ap-southeast-2": 190, "me-south-1": 195,
        "me-central-1": 200, "ap-southeast-1": 210, "ap-south-1": 215, "af-south-1": 230,
    },
    SOUTH_AMERICA: {
        "sa-east-1": 15, "us-east-1": 115, "us-east-2": 130, "ca-central-1": 135, "us-west-1": 170,
        "us-west-2": 180, "eu-west-3": 185, "eu-west-1": 190, "eu-west-2": 190, "eu-south-1": 200,
        "eu-central-1": 200, "eu-north-1": 220, "ap-northeast-1": 260, "me-south-1": 280,
        "me-central-1": 285, "ap-northeast-3": 265, "ap-northeast-2": 290, "ap-south-1": 300,
        "ap-southeast-2": 310, "ap-east-1": 315, "ap-southeast-1": 330, "af-south-1": 340,
    },
    EUROPE: {
        "eu-central-1": 10, "eu-west-3": 15, "eu-south-1": 15, "eu-west-2": 18, "eu-west-1": 25,
        "eu-north-1": 25, "us-east-1": 85, "ca-central-1": 95, "us-east-2": 100, "me-south-1": 120,
        "me-central-1": 120, "ap-south-1": 125, "us-west-1": 145, "us-west-2": 150, "af-south-1": 160,
        "ap-southeast-1": 165, "ap-east-1": 190, "sa-east-1": 200, "ap-northeast-1": 225,
        "ap-northeast-3": 235, "ap-northeast-2": 245, "ap-southeast-2": 280,
    },
    AFRICA: {
        "af-south-1": 30, "eu-west-2": 150, "eu-west-3": 155, "eu-south-1": 160, "eu-west-1": 160,
        "eu-central-1": 165, "me-central-1": 170, "me-south-1": 175, "eu-north-1": 185,
        "ap-south-1": 230, "us-east-1": 235, "us-east-2": 245, "ca-central-1": 250,
        "ap-southeast-1": 270, "us-west-2": 300, "us-west-1": 305, "ap-east-1": 310,
        "sa-east-1": 330, "ap-southeast-2": 340, "ap-northeast-1": 360, "ap-northeast-3": 365,
        "ap-northeast-2": 375,
    },
    MIDDLE_EAST: {
        "me-central-1": 10, "me-south-1": 15, "ap-south-1": 45, "ap-southeast-1": 90,
        "eu-south-1": 100, "eu-central-1": 110, "eu-west-3": 115, "eu-west-2": 120, "eu-west-1": 125,
        "eu-north-1": 130, "ap-east-1": 130, "ap-northeast-1": 170, "af-south-1": 175,
        "ap-northeast-3": 175, "ap-northeast-2": 180, "ap-southeast-2": 185, "us-east-1": 190,
        "ca-central-1": 200, "us-east-2": 200, "us-west-2": 245, "us-west-1": 250, "sa-east-1": 300,
    },
    ASIA_PACIFIC: {
        "ap-southeast-1": 10, "ap-east-1": 35, "ap-south-1": 60, "ap-northeast-1": 70,
        "ap-northeast-3": 75, "ap-northeast-2": 75, "me-central-1": 90, "ap-southeast-2": 95,
        "me-south-1": 100, "us-west-2": 160, "us-west-1": 165, "eu-central-1": 165,
        "eu-south-1": 170, "eu-west-3": 170, "eu-west-2": 175, "eu-west-1": 180, "eu-north-1": 190,
        "ca-central-1": 200, "us-east-2": 210, "us-east-1": 220, "af-south-1": 290, "sa-east-1": 330,
    },
}


@lru_cache(maxsize=1)
def _networks() -> tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]:
    nets = [(ipaddress.ip_network(c), area) for area, spec in AREAS.items() for c in spec["cidrs"]]  # type: ignore[union-attr]
    return tuple(sorted(nets, key=lambda n: -n[0].prefixlen))  # longest prefix first


def area_of(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """The area of the longest matching block, else DEFAULT_AREA."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network, area in _networks():
        if address.version == network.version and address in network:
            return area
    return DEFAULT_AREA


def latency_rank(area: str, region: str | None) -> tuple[float, str]:
    """Sort key: lower is nearer. Unknown Regions rank last, by name."""
    ms = LATENCY_MS.get(area, {}).get(region or "")
    return (float(ms) if ms is not None else float("inf"), region or "")


def regions_by_latency(area: str) -> list[str]:
    return sorted(LATENCY_MS.get(area, {}), key=lambda r: latency_rank(area, r))


def areas_document() -> dict[str, dict[str, object]]:
    """What GET /_multisite/dns-areas returns."""
    return {
        area: {
            "cidrs": list(spec["cidrs"]),  # type: ignore[call-overload]
            "example_ip": spec["example_ip"],
            "regions_by_latency": regions_by_latency(area),
        }
        for area, spec in AREAS.items()
    }

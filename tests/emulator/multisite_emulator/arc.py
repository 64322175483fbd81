"""Route 53 Application Recovery Controller (ARC): routing controls, from scratch (moto has none).

Two services, shapes and error codes from botocore 1.44.8's models (and the Smithy model's
``httpError`` traits, which the botocore JSON omits for awsJson):

* ``route53-recovery-control-config`` (restJson1, SigV4 name of the same name): clusters,
  control panels, routing controls, safety rules. On AWS the API exists only in us-west-2;
  a call signed for any other Region is answered like a call to an endpoint that does not
  exist: the connection is closed without an HTTP answer.
* ``route53-recovery-cluster`` (awsJson1_0, target prefix ``ToggleCustomerAPI``): the cluster
  data plane, served ONLY at a cluster's endpoint URLs
  ``http://<host>/_multisite-arc/<cluster-id>/<region>/v1`` (five per cluster, one per Region of
  ``ENDPOINT_REGIONS``). A call must be signed for the endpoint's Region. The five endpoints
  share the cluster's state; each can be failed on its own (control API ``arc/endpoint``), and
  a Region outage takes the Region's endpoint down.

Routing controls start ``Off``. ``UpdateRoutingControlState(s)`` evaluates the control panels'
safety rules atomically over the resulting state of the whole request; a rule that fails
rejects the whole request (nothing changes) with ``ConflictException`` (HTTP 409) naming the
rule's ARN. Everything is DEPLOYED at once. README §8 has the details and the deviations.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import parse_qs, unquote

from .protocols import CallInfo
from .state import EmulatorState

ACCOUNT = "123456789012"
PARTITION = "aws"
ARN_PREFIX = f"arn:{PARTITION}:route53-recovery-control::"

CONFIG_SERVICE = "route53-recovery-control-config"
CLUSTER_SERVICE = "route53-recovery-cluster"
SERVICES = frozenset({CONFIG_SERVICE, CLUSTER_SERVICE})
CONFIG_REGION = "us-west-2"  # the only Region of the recovery control configuration API
# The five Regions of every cluster's endpoints, in the order AWS's DescribeCluster example
# lists them (Recovery Control Configuration API Reference, "Describe a cluster").
ENDPOINT_REGIONS = ("us-east-1", "ap-southeast-2", "eu-west-1", "us-west-2", "ap-northeast-1")
ENDPOINT_PATH_PREFIX = "/_multisite-arc/"
_ENDPOINT_PATH = re.compile(r"^/_multisite-arc/(?P<cluster>[^/]+)/(?P<region>[^/]+)/v1/?$")
TARGET_PREFIX = "ToggleCustomerAPI"
DATA_PLANE_OPERATIONS = frozenset(
    {"GetRoutingControlState", "ListRoutingControls", "UpdateRoutingControlState", "UpdateRoutingControlStates"}
)
ENDPOINT_MODES = ("unavailable", "timeout")
HOLD_SECONDS = 30.0  # "timeout" mode: how long an endpoint holds a call before answering 503
DEFAULT_PANEL_NAME = "DefaultControlPanel"
DATA_PLANE_PAGE = 500  # ListRoutingControls' documented default MaxResults
CONFIG_PAGE = 50

DROP = "drop"  # gate(): close the connection without answering (a non-existent endpoint)

_NAME = re.compile(r"^\S+$")
_CONFIG_ARN = re.compile(r"^[A-Za-z0-9:\/_-]*$")
_DATA_ARN = re.compile(r"^[A-Za-z0-9:.\/_-]*$")

ErrorResponse = tuple[int, list[tuple[str, str]], bytes]

REGISTERED: list["Arc"] = []  # every Arc feature made in this process (iam.py looks panels up)


# =============================================================================================
# Resources
# =============================================================================================


@dataclass
class Cluster:
    id: str
    arn: str
    name: str
    network_type: str
    endpoints: list[dict[str, str]]
    status: str = "DEPLOYED"
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class ControlPanel:
    id: str
    arn: str
    name: str
    cluster_arn: str
    default: bool
    status: str = "DEPLOYED"
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class RoutingControl:
    id: str
    arn: str
    name: str
    panel_arn: str
    status: str = "DEPLOYED"
    state: str = "Off"  # AWS: a new routing control is Off


@dataclass
class SafetyRule:
    id: str
    arn: str
    kind: str  # ASSERTION | GATING
    name: str
    panel_arn: str
    config: dict[str, Any]  # {"Type", "Threshold", "Inverted"}
    wait_ms: int
    asserted: list[str] = field(default_factory=list)
    gating: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    status: str = "DEPLOYED"
    tags: dict[str, str] = field(default_factory=dict)
    last_change: float | None = None  # monotonic time its controls last changed state

    @property
    def constrained(self) -> list[str]:
        """The controls whose updates the rule rules on."""
        return self.asserted if self.kind == "ASSERTION" else self.targets

    @property
    def covered(self) -> list[str]:
        return self.asserted if self.kind == "ASSERTION" else self.gating + self.targets


class ApiError(Exception):
    """An AWS error of either ARC service: status, code, message and extra body members."""

    def __init__(self, status: int, code: str, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def _validation(message: str) -> ApiError:
    return ApiError(400, "ValidationException", message)


def _not_found(message: str, resource_id: str = "", resource_type: str = "") -> ApiError:
    return ApiError(404, "ResourceNotFoundException", message, resourceId=resource_id, resourceType=resource_type)


def _conflict(message: str, **extra: Any) -> ApiError:
    return ApiError(409, "ConflictException", message, **extra)


def satisfied(config: dict[str, Any], on: list[bool]) -> bool:
    """A rule configuration over some controls' On/Off states: ATLEAST Threshold On, AND (all
    On), OR (at least one On); Inverted negates (CloudFormation RuleConfig: "Logical negation
    of the rule. If the rule would usually evaluate true, it's evaluated as false")."""
    count = sum(on)
    kind = config["Type"]
    if kind == "ATLEAST":
        result = count >= int(config["Threshold"])
    elif kind == "AND":
        result = count == len(on)
    else:  # OR
        result = count >= 1
    return result != bool(config["Inverted"])


def _describe_config(config: dict[str, Any], n: int) -> str:
    base = f"{config['Type']} {config['Threshold']}" if config["Type"] == "ATLEAST" else config["Type"]
    return f"{'NOT ' if config['Inverted'] else ''}{base} of {n}"


# =============================================================================================
# Request parsing and validation helpers
# =============================================================================================


def _check_str(value: Any, member: str, *, required: bool = True, lo: int = 1, hi: int = 256,
               pattern: re.Pattern[str] | None = None) -> str | None:
    if value is None:
        if required:
            raise _validation(f"1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null")
        return None
    if not isinstance(value, str):
        raise _validation(f"1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must be a string")
    if not lo <= len(value) <= hi:
        raise _validation(
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
            f"Member must have length between {lo} and {hi}"
        )
    if pattern is not None and not pattern.fullmatch(value):
        raise _validation(
            f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
            f"Member must satisfy regular expression pattern: {pattern.pattern}"
        )
    return value


def _check_int(value: Any, member: str, *, required: bool = True, lo: int | None = None, hi: int | None = None) -> int | None:
    if value is None:
        if required:
            raise _validation(f"1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _validation(f"1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must be an integer")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        bound = f"greater than or equal to {lo}" if hi is None else f"between {lo} and {hi}"
        raise _validation(f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must be {bound}")
    return value


def _check_arn_list(value: Any, member: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _validation(f"1 validation error detected: Value at '{member}' failed to satisfy constraint: Member must be a non-empty list")
    out = [_check_str(v, f"{member}.member", pattern=_CONFIG_ARN) for v in value]
    if len(set(out)) != len(out):
        raise _validation(f"{member} lists a routing control more than once")
    return [str(v) for v in out]


def _check_tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise _validation("1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must be a map of strings")
    for k, v in value.items():
        if len(v) > 256:
            raise _validation(f"1 validation error detected: Value at 'tags.{k}' failed to satisfy constraint: Member must have length less than or equal to 256")
    return dict(value)


def _page(items: list[Any], token: Any, max_results: Any, default: int, hi: int | None) -> tuple[list[Any], str | None]:
    size = _check_int(max_results, "maxResults", required=False, lo=1, hi=hi)
    size = size or default
    start = 0
    if token not in (None, ""):
        try:
            start = int(base64.urlsafe_b64decode(str(token).encode()).decode().split(":", 1)[1])
        except Exception:
            raise _validation(f"The NextToken {token} is not valid")
        if not 0 <= start <= len(items):
            raise _validation(f"The NextToken {token} is not valid")
    chunk = items[start:start + size]
    end = start + size
    return chunk, (base64.urlsafe_b64encode(f"arc:{end}".encode()).decode() if end < len(items) else None)


# -- control-config routing (restJson1: method + path, ARNs percent-encoded in the path) ------

# (method, literal path segments with {Label} for one encoded segment) -> operation
_CONFIG_ROUTES: list[tuple[str, tuple[str, ...], str]] = [
    ("POST", ("cluster",), "CreateCluster"),
    ("GET", ("cluster",), "ListClusters"),
    ("PUT", ("cluster",), "UpdateCluster"),
    ("GET", ("cluster", "{ClusterArn}"), "DescribeCluster"),
    ("DELETE", ("cluster", "{ClusterArn}"), "DeleteCluster"),
    ("POST", ("controlpanel",), "CreateControlPanel"),
    ("PUT", ("controlpanel",), "UpdateControlPanel"),
    ("GET", ("controlpanels",), "ListControlPanels"),
    ("GET", ("controlpanel", "{ControlPanelArn}"), "DescribeControlPanel"),
    ("DELETE", ("controlpanel", "{ControlPanelArn}"), "DeleteControlPanel"),
    ("GET", ("controlpanel", "{ControlPanelArn}", "routingcontrols"), "ListRoutingControls"),
    ("GET", ("controlpanel", "{ControlPanelArn}", "safetyrules"), "ListSafetyRules"),
    ("POST", ("routingcontrol",), "CreateRoutingControl"),
    ("PUT", ("routingcontrol",), "UpdateRoutingControl"),
    ("GET", ("routingcontrol", "{RoutingControlArn}"), "DescribeRoutingControl"),
    ("DELETE", ("routingcontrol", "{RoutingControlArn}"), "DeleteRoutingControl"),
    ("GET", ("routingcontrol", "{RoutingControlArn}", "associatedRoute53HealthChecks"), "ListAssociatedRoute53HealthChecks"),
    ("POST", ("safetyrule",), "CreateSafetyRule"),
    ("PUT", ("safetyrule",), "UpdateSafetyRule"),
    ("GET", ("safetyrule", "{SafetyRuleArn}"), "DescribeSafetyRule"),
    ("DELETE", ("safetyrule", "{SafetyRuleArn}"), "DeleteSafetyRule"),
    ("GET", ("tags", "{ResourceArn}"), "ListTagsForResource"),
    ("POST", ("tags", "{ResourceArn}"), "TagResource"),
    ("DELETE", ("tags", "{ResourceArn}"), "UntagResource"),
]


def _raw_path(environ: dict[str, Any]) -> str:
    """The path as sent (percent-encoded): PATH_INFO is already decoded, which would split an ARN
    label (``%2F``) into several segments."""
    raw = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if raw:
        raw = str(raw).split("?", 1)[0]
        if raw.startswith("http://") or raw.startswith("https://"):
            raw = "/" + raw.split("/", 3)[-1]
        return raw
    return str(environ.get("PATH_INFO") or "/")


def route(environ: dict[str, Any]) -> tuple[str | None, dict[str, str]]:
    """(operation, path labels) of a control-config call; (None, {}) if no route matches."""
    method = str(environ.get("REQUEST_METHOD") or "GET").upper()
    segments = [unquote(s) for s in _raw_path(environ).strip("/").split("/") if s != ""]
    for route_method, pattern, operation in _CONFIG_ROUTES:
        if route_method != method or len(pattern) != len(segments):
            continue
        labels: dict[str, str] = {}
        for expected, actual in zip(pattern, segments):
            if expected.startswith("{"):
                labels[expected[1:-1]] = actual
            elif expected != actual:
                break
        else:
            return operation, labels
    return None, {}


def endpoint_of(path: str) -> tuple[str, str] | None:
    """(cluster id, Region) of a data-plane endpoint path, else None."""
    match = _ENDPOINT_PATH.match(path)
    return (match["cluster"], match["region"]) if match else None


def _request_id() -> str:
    return str(uuid.uuid4())


def _json_response(status: int, payload: Any, content_type: str) -> ErrorResponse:
    body = json.dumps(payload).encode()
    rid = _request_id()
    return status, [("Content-Type", content_type), ("x-amzn-RequestId", rid), ("Content-Length", str(len(body)))], body


def error_response(service: str, error: ApiError) -> ErrorResponse:
    """The error in the service's protocol: awsJson1_0 (data plane) or restJson1 (config).
    ``__type`` and ``x-amzn-ErrorType`` carry the bare shape name, which botocore and
    aws-sdk-rust (``json_errors::parse_error_metadata``: the header first, then ``code`` /
    ``__type``, namespace and ``:``-suffix stripped) both read as the modelled error."""
    payload = {"__type": error.code, "message": error.message, **error.extra}
    content_type = "application/x-amz-json-1.0" if service == CLUSTER_SERVICE else "application/json"
    status, headers, body = _json_response(error.status, payload, content_type)
    return status, headers + [("x-amzn-ErrorType", error.code)], body


# =============================================================================================
# The feature
# =============================================================================================


class Arc:
    """ARC resources and routing control states, endpoint faults, and the two APIs."""

    def __init__(self, state: EmulatorState):
        self.state = state
        REGISTERED.append(self)
        self._hold = threading.Condition()
        self._generation = 0
        self._clear()

    def _clear(self) -> None:
        self.clusters: dict[str, Cluster] = {}
        self.panels: dict[str, ControlPanel] = {}
        self.controls: dict[str, RoutingControl] = {}
        self.rules: dict[str, SafetyRule] = {}
        self.tokens: dict[tuple[str, str], str] = {}  # (operation, ClientToken) -> ARN created
        # (Region, cluster ARN or None = every cluster) -> "unavailable" | "timeout"
        self.endpoint_faults: dict[tuple[str, str | None], str] = {}

    # -- Feature ---------------------------------------------------------------------------
    def reset(self) -> None:
        with self.state.lock:
            self._clear()
        with self._hold:  # held "timeout" calls answer now
            self._generation += 1
            self._hold.notify_all()

    def on_region_up(self, region: str) -> None:
        pass

    def faults_snapshot(self) -> list[dict[str, Any]]:
        return [
            {"region": r, "cluster_arn": c, "mode": m}
            for (r, c), m in sorted(self.endpoint_faults.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
        ]

    def snapshot(self) -> dict[str, Any]:
        faults = self.faults_snapshot()
        return {
            "arc_endpoints_down": faults,
            "arc": {
                "clusters": [
                    {"arn": c.arn, "name": c.name, "status": c.status, "endpoints": [dict(e) for e in c.endpoints]}
                    for c in self.clusters.values()
                ],
                "control_panels": [
                    {"arn": p.arn, "name": p.name, "cluster_arn": p.cluster_arn, "default": p.default, "status": p.status}
                    for p in self.panels.values()
                ],
                "routing_controls": [
                    {"arn": rc.arn, "name": rc.name, "control_panel_arn": rc.panel_arn, "state": rc.state}
                    for rc in self.controls.values()
                ],
                "routing_control_states": {rc.arn: rc.state for rc in self.controls.values()},
                "safety_rules": [
                    {"arn": r.arn, "name": r.name, "type": r.kind, "control_panel_arn": r.panel_arn,
                     "rule_config": dict(r.config), "wait_period_ms": r.wait_ms,
                     **({"asserted_controls": list(r.asserted)} if r.kind == "ASSERTION" else
                        {"gating_controls": list(r.gating), "target_controls": list(r.targets)})}
                    for r in self.rules.values()
                ],
                "endpoints_down": faults,
            },
        }

    # -- lookups for other modules (caller may or may not hold the lock) ------------------
    def routing_control_state(self, arn: str) -> str | None:
        with self.state.lock:
            control = self.controls.get(arn)
            return control.state if control else None

    def cluster_of_panel(self, panel_arn: str) -> str | None:
        with self.state.lock:
            panel = self.panels.get(panel_arn)
            return panel.cluster_arn if panel else None

    # -- control API -----------------------------------------------------------------------
    def control_routes(self) -> dict[tuple[str, str], Callable[[dict[str, Any]], Any]]:
        return {("POST", "arc/endpoint"): self.set_endpoint}

    def set_endpoint(self, body: dict[str, Any]) -> dict[str, Any]:
        from .iam import InvalidInput

        region = body.get("region")
        if not isinstance(region, str) or region not in ENDPOINT_REGIONS:
            raise InvalidInput(f"'region' must be one of the cluster endpoint Regions {list(ENDPOINT_REGIONS)}")
        down = body.get("down")
        if not isinstance(down, bool):
            raise InvalidInput("'down' must be true or false")
        mode = body.get("mode", "unavailable")
        if mode not in ENDPOINT_MODES:
            raise InvalidInput(f"'mode' must be one of {list(ENDPOINT_MODES)}")
        cluster_arn = body.get("cluster_arn")
        with self.state.lock:
            if cluster_arn is not None and (not isinstance(cluster_arn, str) or cluster_arn not in self.clusters):
                raise InvalidInput(f"'cluster_arn' must be the ARN of an existing cluster: {cluster_arn!r}")
            if down:
                self.endpoint_faults[(region, cluster_arn)] = mode
            elif cluster_arn is None:  # the whole Region's endpoints come back
                for key in [k for k in self.endpoint_faults if k[0] == region]:
                    del self.endpoint_faults[key]
            else:
                self.endpoint_faults.pop((region, cluster_arn), None)
            return {"ok": True, "arc_endpoints_down": self.faults_snapshot()}

    def endpoint_fault(self, region: str, cluster_arn: str) -> str | None:
        with self.state.lock:
            return self.endpoint_faults.get((region, cluster_arn)) or self.endpoint_faults.get((region, None))

    # -- middleware hooks --------------------------------------------------------------------
    @staticmethod
    def intercepts(info: CallInfo, path: str) -> bool:
        return info.service in SERVICES or path.startswith(ENDPOINT_PATH_PREFIX)

    @staticmethod
    def refine(info: CallInfo, environ: dict[str, Any]) -> None:
        """Name the operation (request log, IAM, throttles) and fix the protocol."""
        path = str(environ.get("PATH_INFO") or "")
        if path.startswith(ENDPOINT_PATH_PREFIX) or info.service == CLUSTER_SERVICE:
            info.protocol, info.json_version = "json", "1.0"
            target = str(environ.get("HTTP_X_AMZ_TARGET") or "")
            if target:
                info.operation = target.rsplit(".", 1)[-1]
            return
        operation, _ = route(environ)
        if operation is not None:
            info.operation = operation
        info.protocol = "rest-json"

    def gate(self, environ: dict[str, Any], info: CallInfo) -> ErrorResponse | str | None:
        """What comes before the generic faults: endpoint existence, endpoint faults (and the
        Region outage of the endpoint), the signature's scope. ``DROP``: close the connection."""
        path = str(environ.get("PATH_INFO") or "")
        endpoint = endpoint_of(path)
        if endpoint is None and path.startswith(ENDPOINT_PATH_PREFIX):
            return DROP  # no such endpoint host
        if endpoint is None:
            if info.service == CLUSTER_SERVICE:
                # The data plane has no endpoint of its own: only a cluster's endpoints serve it.
                return error_response(CLUSTER_SERVICE, ApiError(
                    404, "UnknownOperationException",
                    "multisite emulator: route53-recovery-cluster is served only at a cluster endpoint "
                    "(ClusterEndpoints of DescribeCluster), not at the emulator's base URL"))
            if info.region != CONFIG_REGION:
                return DROP  # route53-recovery-control-config.<region>.amazonaws.com does not exist
            return None
        cluster_id, region = endpoint
        with self.state.lock:
            cluster = self.clusters.get(f"{ARN_PREFIX}{ACCOUNT}:cluster/{cluster_id}")
            if cluster is None or region not in ENDPOINT_REGIONS:
                return DROP  # a deleted cluster's endpoints are gone
            fault = self.endpoint_fault(region, cluster.arn)
            region_down = self.state.is_down(region, CLUSTER_SERVICE)
        unavailable = ApiError(503, "EndpointTemporarilyUnavailableException",
                               f"The cluster endpoint in {region} isn't available. Try another cluster endpoint.")
        if fault == "timeout":
            self._hold_call()
            return error_response(CLUSTER_SERVICE, unavailable)
        if fault == "unavailable" or region_down:
            return error_response(CLUSTER_SERVICE, unavailable)
        # The signature: what AWS answers a request signed for the wrong scope.
        if not info.access_key:
            return error_response(CLUSTER_SERVICE, ApiError(403, "MissingAuthenticationTokenException", "Missing Authentication Token"))
        if info.service != CLUSTER_SERVICE:
            return error_response(CLUSTER_SERVICE, ApiError(
                403, "InvalidSignatureException", f"Credential should be scoped to correct service: '{CLUSTER_SERVICE}'. "))
        if info.region != region:
            return error_response(CLUSTER_SERVICE, ApiError(
                403, "InvalidSignatureException", f"Credential should be scoped to a valid region, not '{info.region}'. "))
        target = str(environ.get("HTTP_X_AMZ_TARGET") or "")
        if str(environ.get("REQUEST_METHOD") or "").upper() != "POST" or target.rsplit(".", 1)[0] != TARGET_PREFIX \
                or info.operation not in DATA_PLANE_OPERATIONS:
            return error_response(CLUSTER_SERVICE, ApiError(
                400, "ValidationException", f"Unknown operation: {target or '(no X-Amz-Target)'}", reason="unknownOperation"))
        return None

    def _hold_call(self) -> None:
        """Hold a call HOLD_SECONDS (outside the state lock), or until the next reset."""
        deadline = time.monotonic() + HOLD_SECONDS
        with self._hold:
            generation = self._generation
            while self._generation == generation:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._hold.wait(remaining)

    def handle(self, environ: dict[str, Any], body: bytes, info: CallInfo) -> ErrorResponse:
        path = str(environ.get("PATH_INFO") or "")
        endpoint = endpoint_of(path)
        if endpoint is not None:
            return self._data_plane(endpoint, body, info)
        return self._config(environ, body, info)

    # =========================================================================================
    # route53-recovery-cluster (data plane)
    # =========================================================================================
    def _data_plane(self, endpoint: tuple[str, str], body: bytes, info: CallInfo) -> ErrorResponse:
        try:
            try:
                request = json.loads(body or b"{}")
            except ValueError:
                raise ApiError(400, "ValidationException", "Unable to parse the request body as JSON", reason="cannotParse")
            if not isinstance(request, dict):
                raise ApiError(400, "ValidationException", "The request body must be a JSON object", reason="cannotParse")
            with self.state.lock:
                cluster = self.clusters.get(f"{ARN_PREFIX}{ACCOUNT}:cluster/{endpoint[0]}")
                if cluster is None:
                    raise ApiError(503, "EndpointTemporarilyUnavailableException", "The cluster endpoint isn't available.")
                handler = {
                    "GetRoutingControlState": self._get_state,
                    "ListRoutingControls": self._list_states,
                    "UpdateRoutingControlState": self._update_state,
                    "UpdateRoutingControlStates": self._update_states,
                }[info.operation]
                payload = handler(cluster, request)
        except ApiError as error:
            return error_response(CLUSTER_SERVICE, error)
        return _json_response(200, payload, "application/x-amz-json-1.0")

    @staticmethod
    def _field_error(member: str, message: str) -> ApiError:
        return ApiError(
            400, "ValidationException", f"1 validation error detected: {message}",
            reason="fieldValidationFailed", fields=[{"name": member, "message": message}],
        )

    def _arn_member(self, value: Any, member: str) -> str:
        if value is None:
            raise self._field_error(member, f"Value null at '{member}' failed to satisfy constraint: Member must not be null")
        if not isinstance(value, str) or not 1 <= len(value) <= 255:
            raise self._field_error(member, f"Value at '{member}' failed to satisfy constraint: Member must have length between 1 and 255")
        if not _DATA_ARN.fullmatch(value):
            raise self._field_error(
                member, f"Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: {_DATA_ARN.pattern}")
        return value

    def _state_member(self, value: Any, member: str) -> str:
        if value is None:
            raise self._field_error(member, f"Value null at '{member}' failed to satisfy constraint: Member must not be null")
        if value not in ("On", "Off"):
            raise self._field_error(member, f"Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy enum value set: [On, Off]")
        return str(value)

    def _control_in(self, cluster: Cluster, arn: str) -> RoutingControl:
        control = self.controls.get(arn)
        if control is None or self.panels[control.panel_arn].cluster_arn != cluster.arn:
            raise _not_found(f"Routing control {arn} was not found in this cluster", arn, "RoutingControl")
        return control

    def _get_state(self, cluster: Cluster, request: dict[str, Any]) -> dict[str, Any]:
        arn = self._arn_member(request.get("RoutingControlArn"), "RoutingControlArn")
        control = self._control_in(cluster, arn)
        return {"RoutingControlArn": control.arn, "RoutingControlState": control.state, "RoutingControlName": control.name}

    def _list_states(self, cluster: Cluster, request: dict[str, Any]) -> dict[str, Any]:
        panel_arn = request.get("ControlPanelArn")
        if panel_arn is not None:
            panel_arn = self._arn_member(panel_arn, "ControlPanelArn")
            panel = self.panels.get(panel_arn)
            if panel is None or panel.cluster_arn != cluster.arn:
                raise _not_found(f"Control panel {panel_arn} was not found in this cluster", panel_arn, "ControlPanel")
        max_results = request.get("MaxResults")
        if max_results is not None and (isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1):
            raise self._field_error("MaxResults", f"Value '{max_results}' at 'maxResults' failed to satisfy constraint: Member must have value greater than or equal to 1")
        controls = [
            c for c in self.controls.values()
            if self.panels[c.panel_arn].cluster_arn == cluster.arn and (panel_arn is None or c.panel_arn == panel_arn)
        ]
        try:
            chunk, token = _page(controls, request.get("NextToken"), max_results, DATA_PLANE_PAGE, None)
        except ApiError as error:
            raise ApiError(400, "ValidationException", error.message, reason="fieldValidationFailed",
                           fields=[{"name": "NextToken", "message": error.message}])
        result: dict[str, Any] = {
            "RoutingControls": [
                {
                    "ControlPanelArn": c.panel_arn,
                    "ControlPanelName": self.panels[c.panel_arn].name,
                    "RoutingControlArn": c.arn,
                    "RoutingControlName": c.name,
                    "RoutingControlState": c.state,
                    "Owner": ACCOUNT,
                }
                for c in chunk
            ]
        }
        if token:
            result["NextToken"] = token
        return result

    def _update_state(self, cluster: Cluster, request: dict[str, Any]) -> dict[str, Any]:
        arn = self._arn_member(request.get("RoutingControlArn"), "RoutingControlArn")
        state = self._state_member(request.get("RoutingControlState"), "RoutingControlState")
        self._transaction(cluster, [(arn, state)], self._overrides(request))
        return {}

    def _update_states(self, cluster: Cluster, request: dict[str, Any]) -> dict[str, Any]:
        entries = request.get("UpdateRoutingControlStateEntries")
        if entries is None:
            raise self._field_error("UpdateRoutingControlStateEntries",
                                    "Value null at 'updateRoutingControlStateEntries' failed to satisfy constraint: Member must not be null")
        if not isinstance(entries, list) or not entries:
            raise self._field_error("UpdateRoutingControlStateEntries",
                                    "Value at 'updateRoutingControlStateEntries' failed to satisfy constraint: Member must be a non-empty list")
        changes: list[tuple[str, str]] = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise self._field_error(f"UpdateRoutingControlStateEntries.{i}", "Each entry must be an object")
            changes.append((
                self._arn_member(entry.get("RoutingControlArn"), f"UpdateRoutingControlStateEntries.{i}.RoutingControlArn"),
                self._state_member(entry.get("RoutingControlState"), f"UpdateRoutingControlStateEntries.{i}.RoutingControlState"),
            ))
        arns = [a for a, _ in changes]
        if len(set(arns)) != len(arns):
            duplicate = next(a for a in arns if arns.count(a) > 1)
            raise self._field_error("UpdateRoutingControlStateEntries",
                                    f"Routing control {duplicate} is listed more than once in updateRoutingControlStateEntries")
        self._transaction(cluster, changes, self._overrides(request))
        return {}

    def _overrides(self, request: dict[str, Any]) -> list[str]:
        value = request.get("SafetyRulesToOverride")
        if value is None:
            return []
        if not isinstance(value, list):
            raise self._field_error("SafetyRulesToOverride", "Value at 'safetyRulesToOverride' failed to satisfy constraint: Member must be a list")
        return [self._arn_member(v, f"SafetyRulesToOverride.{i}") for i, v in enumerate(value)]

    def _transaction(self, cluster: Cluster, changes: list[tuple[str, str]], overrides: list[str]) -> None:
        """Evaluate every applicable safety rule over the request's resulting state; change all or
        nothing (caller holds the lock)."""
        controls = [(self._control_in(cluster, arn), state) for arn, state in changes]
        for arn in overrides:
            rule = self.rules.get(arn)
            if rule is None or self.panels[rule.panel_arn].cluster_arn != cluster.arn:
                raise _not_found(f"Safety rule {arn} in SafetyRulesToOverride was not found in this cluster", arn, "SafetyRule")
        result = {c.arn: s for c, s in controls}
        touched = set(result)

        def after(arn: str) -> bool:
            return result.get(arn, self.controls[arn].state) == "On"

        def before(arn: str) -> bool:
            return self.controls[arn].state == "On"

        now = time.monotonic()
        panels = {p.arn for p in self.panels.values() if p.cluster_arn == cluster.arn}
        for rule in self.rules.values():
            if rule.panel_arn not in panels or rule.arn in overrides or not touched & set(rule.constrained):
                continue
            what = f"{rule.kind} rule {rule.arn} ({rule.name})"
            if rule.wait_ms > 0 and rule.last_change is not None and (now - rule.last_change) * 1000.0 < rule.wait_ms:
                raise _conflict(
                    f"Cannot update routing control states: the wait period of the {what}, {rule.wait_ms} ms since the "
                    f"last state change of its routing controls, has not elapsed. Retry later or override the rule.",
                    resourceId=rule.arn, resourceType="SafetyRule")
            if rule.kind == "ASSERTION":
                if not satisfied(rule.config, [after(a) for a in rule.asserted]):
                    on = sum(after(a) for a in rule.asserted)
                    raise _conflict(
                        f"Cannot update routing control states: the {what} would not be satisfied: it asserts "
                        f"{_describe_config(rule.config, len(rule.asserted))} routing controls On, and {on} would be On.",
                        resourceId=rule.arn, resourceType="SafetyRule")
            else:
                for label, state_of in (("currently", before), ("after the change", after)):
                    if not satisfied(rule.config, [state_of(g) for g in rule.gating]):
                        on = sum(state_of(g) for g in rule.gating)
                        raise _conflict(
                            f"Cannot update routing control states: the {what} gates its target routing controls and is not "
                            f"satisfied {label}: it needs {_describe_config(rule.config, len(rule.gating))} gating routing "
                            f"controls On, and {on} are On.",
                            resourceId=rule.arn, resourceType="SafetyRule")
        changed = {c.arn for c, s in controls if c.state != s}
        for control, state in controls:
            control.state = state
        if changed:
            for rule in self.rules.values():
                if changed & set(rule.covered):
                    rule.last_change = now

    # =========================================================================================
    # route53-recovery-control-config
    # =========================================================================================
    def _config(self, environ: dict[str, Any], body: bytes, info: CallInfo) -> ErrorResponse:
        operation, labels = route(environ)
        try:
            if operation is None:
                raise ApiError(404, "UnknownOperationException",
                               f"multisite emulator: {environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')} is not an operation "
                               f"of {CONFIG_SERVICE} the emulator implements")
            method = str(environ.get("REQUEST_METHOD") or "GET").upper()
            request: dict[str, Any] = {}
            if method in ("POST", "PUT") and body.strip():
                try:
                    request = json.loads(body)
                except ValueError:
                    raise _validation("Unable to parse the request body as JSON")
                if not isinstance(request, dict):
                    raise _validation("The request body must be a JSON object")
            query = {k: v for k, v in parse_qs(str(environ.get("QUERY_STRING") or "")).items()}
            host = str(environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}")
            with self.state.lock:
                payload = getattr(self, f"_op_{operation}")(request, labels, query, host)
        except ApiError as error:
            return error_response(CONFIG_SERVICE, error)
        return _json_response(200, payload, "application/json")

    # -- shapes --------------------------------------------------------------------------
    @staticmethod
    def _cluster_shape(c: Cluster) -> dict[str, Any]:
        return {"ClusterArn": c.arn, "ClusterEndpoints": [dict(e) for e in c.endpoints], "Name": c.name,
                "Status": c.status, "Owner": ACCOUNT, "NetworkType": c.network_type}

    def _panel_shape(self, p: ControlPanel) -> dict[str, Any]:
        count = sum(1 for c in self.controls.values() if c.panel_arn == p.arn)
        return {"ClusterArn": p.cluster_arn, "ControlPanelArn": p.arn, "DefaultControlPanel": p.default, "Name": p.name,
                "RoutingControlCount": count, "Status": p.status, "Owner": ACCOUNT}

    @staticmethod
    def _control_shape(c: RoutingControl) -> dict[str, Any]:
        return {"ControlPanelArn": c.panel_arn, "Name": c.name, "RoutingControlArn": c.arn, "Status": c.status, "Owner": ACCOUNT}

    @staticmethod
    def _rule_shape(r: SafetyRule) -> dict[str, Any]:
        """{"AssertionRule": ...} or {"GatingRule": ...} (Create/Describe/UpdateSafetyRule)."""
        common = {"ControlPanelArn": r.panel_arn, "Name": r.name, "RuleConfig": dict(r.config), "SafetyRuleArn": r.arn,
                  "Status": r.status, "WaitPeriodMs": r.wait_ms, "Owner": ACCOUNT}
        if r.kind == "ASSERTION":
            return {"AssertionRule": {**common, "AssertedControls": list(r.asserted)}}
        return {"GatingRule": {**common, "GatingControls": list(r.gating), "TargetControls": list(r.targets)}}

    # -- lookups -------------------------------------------------------------------------
    def _cluster(self, arn: Any, member: str = "ClusterArn") -> Cluster:
        arn = _check_str(arn, member[0].lower() + member[1:], pattern=_CONFIG_ARN)
        cluster = self.clusters.get(str(arn))
        if cluster is None:
            raise ApiError(404, "ResourceNotFoundException", f"Cluster {arn} was not found")
        return cluster

    def _panel(self, arn: Any, member: str = "ControlPanelArn") -> ControlPanel:
        arn = _check_str(arn, member[0].lower() + member[1:], pattern=_CONFIG_ARN)
        panel = self.panels.get(str(arn))
        if panel is None:
            raise ApiError(404, "ResourceNotFoundException", f"Control panel {arn} was not found")
        return panel

    def _routing_control(self, arn: Any) -> RoutingControl:
        arn = _check_str(arn, "routingControlArn", pattern=_CONFIG_ARN)
        control = self.controls.get(str(arn))
        if control is None:
            raise ApiError(404, "ResourceNotFoundException", f"Routing control {arn} was not found")
        return control

    def _rule(self, arn: Any) -> SafetyRule:
        arn = _check_str(arn, "safetyRuleArn", pattern=_CONFIG_ARN)
        rule = self.rules.get(str(arn))
        if rule is None:
            raise ApiError(404, "ResourceNotFoundException", f"Safety rule {arn} was not found")
        return rule

    def _replay(self, operation: str, request: dict[str, Any]) -> tuple[str | None, str | None]:
        token = _check_str(request.get("ClientToken"), "clientToken", required=False, hi=64, pattern=_NAME)
        if token is None:
            return None, None
        return token, self.tokens.get((operation, token))

    @staticmethod
    def _query(query: dict[str, list[str]], name: str) -> str | None:
        values = query.get(name)
        return values[0] if values else None

    def _query_int(self, query: dict[str, list[str]], name: str) -> int | None:
        raw = self._query(query, name)
        if raw is None:
            return None
        try:
            return int(raw)
        except ValueError:
            raise _validation(f"1 validation error detected: Value '{raw}' at '{name[0].lower() + name[1:]}' failed to satisfy constraint: Member must be an integer")

    # -- clusters --------------------------------------------------------------------------
    def _op_CreateCluster(self, request: dict[str, Any], _: dict[str, str], __: Any, host: str) -> dict[str, Any]:
        name = _check_str(request.get("ClusterName"), "clusterName", hi=64, pattern=_NAME)
        network_type = request.get("NetworkType", "IPV4")
        if network_type not in ("IPV4", "DUALSTACK"):
            raise _validation(f"1 validation error detected: Value '{network_type}' at 'networkType' failed to satisfy constraint: Member must satisfy enum value set: [IPV4, DUALSTACK]")
        tags = _check_tags(request.get("Tags"))
        token, replay = self._replay("CreateCluster", request)
        if replay in self.clusters:
            return {"Cluster": self._cluster_shape(self.clusters[replay])}
        cluster_id = str(uuid.uuid4())
        arn = f"{ARN_PREFIX}{ACCOUNT}:cluster/{cluster_id}"
        endpoints = [{"Endpoint": f"http://{host}{ENDPOINT_PATH_PREFIX}{cluster_id}/{r}/v1", "Region": r} for r in ENDPOINT_REGIONS]
        cluster = Cluster(cluster_id, arn, str(name), str(network_type), endpoints, tags=tags)
        self.clusters[arn] = cluster
        # AWS creates each cluster with a control panel named DefaultControlPanel.
        panel_id = uuid.uuid4().hex
        panel_arn = f"{ARN_PREFIX}{ACCOUNT}:controlpanel/{panel_id}"
        self.panels[panel_arn] = ControlPanel(panel_id, panel_arn, DEFAULT_PANEL_NAME, arn, True)
        if token:
            self.tokens[("CreateCluster", token)] = arn
        return {"Cluster": self._cluster_shape(cluster)}

    def _op_DescribeCluster(self, _: dict[str, Any], labels: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        return {"Cluster": self._cluster_shape(self._cluster(labels["ClusterArn"]))}

    def _op_ListClusters(self, _: dict[str, Any], __: dict[str, str], query: dict[str, list[str]], ___: str) -> dict[str, Any]:
        chunk, token = _page(list(self.clusters.values()), self._query(query, "NextToken"),
                             self._query_int(query, "MaxResults"), CONFIG_PAGE, 1000)
        result: dict[str, Any] = {"Clusters": [self._cluster_shape(c) for c in chunk]}
        if token:
            result["NextToken"] = token
        return result

    def _op_UpdateCluster(self, request: dict[str, Any], _: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        cluster = self._cluster(request.get("ClusterArn"))
        network_type = request.get("NetworkType")
        if network_type not in ("IPV4", "DUALSTACK"):
            raise _validation(f"1 validation error detected: Value '{network_type}' at 'networkType' failed to satisfy constraint: Member must satisfy enum value set: [IPV4, DUALSTACK]")
        cluster.network_type = str(network_type)
        return {"Cluster": self._cluster_shape(cluster)}

    def _op_DeleteCluster(self, _: dict[str, Any], labels: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        cluster = self._cluster(labels["ClusterArn"])
        panels = [p for p in self.panels.values() if p.cluster_arn == cluster.arn]
        if any(not p.default for p in panels) or any(c.panel_arn in {p.arn for p in panels} for c in self.controls.values()):
            raise _conflict(f"Cluster {cluster.arn} still has control panels or routing controls: delete them first")
        for panel in panels:
            for rule in [r for r in self.rules.values() if r.panel_arn == panel.arn]:
                del self.rules[rule.arn]
            del self.panels[panel.arn]
        del self.clusters[cluster.arn]
        for key in [k for k in self.endpoint_faults if k[1] == cluster.arn]:
            del self.endpoint_faults[key]
        return {}

    # -- control panels --------------------------------------------------------------------
    def _op_CreateControlPanel(self, request: dict[str, Any], _: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        name = _check_str(request.get("ControlPanelName"), "controlPanelName", hi=64, pattern=_NAME)
        cluster = self._cluster(request.get("ClusterArn"))
        tags = _check_tags(request.get("Tags"))
        token, replay = self._replay("CreateControlPanel", request)
        if replay in self.panels:
            return {"ControlPanel": self._panel_shape(self.panels[replay])}
        panel_id = uuid.uuid4().hex
        arn = f"{ARN_PREFIX}{ACCOUNT}:controlpanel/{panel_id}"
        self.panels[arn] = ControlPanel(panel_id, arn, str(name), cluster.arn, False, tags=tags)
        if token:
            self.tokens[("CreateControlPanel", token)] = arn
        return {"ControlPanel": self._panel_shape(self.panels[arn])}

    def _op_DescribeControlPanel(self, _: dict[str, Any], labels: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        return {"ControlPanel": self._panel_shape(self._panel(labels["ControlPanelArn"]))}

    def _op_UpdateControlPanel(self, request: dict[str, Any], _: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        panel = self._panel(request.get("ControlPanelArn"))
        panel.name = str(_check_str(request.get("ControlPanelName"), "controlPanelName", hi=64, pattern=_NAME))
        return {"ControlPanel": self._panel_shape(panel)}

    def _op_ListControlPanels(self, _: dict[str, Any], __: dict[str, str], query: dict[str, list[str]], ___: str) -> dict[str, Any]:
        cluster_arn = self._query(query, "ClusterArn")
        if cluster_arn is not None:
            self._cluster(cluster_arn)
        panels = [p for p in self.panels.values() if cluster_arn is None or p.cluster_arn == cluster_arn]
        chunk, token = _page(panels, self._query(query, "NextToken"), self._query_int(query, "MaxResults"), CONFIG_PAGE, 1000)
        result: dict[str, Any] = {"ControlPanels": [self._panel_shape(p) for p in chunk]}
        if token:
            result["NextToken"] = token
        return result

    def _op_DeleteControlPanel(self, _: dict[str, Any], labels: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        panel = self._panel(labels["ControlPanelArn"])
        if panel.default:
            raise _validation(f"Control panel {panel.arn} is the cluster's default control panel: it is deleted with its cluster")
        if any(c.panel_arn == panel.arn for c in self.controls.values()) or any(r.panel_arn == panel.arn for r in self.rules.values()):
            raise _conflict(f"Control panel {panel.arn} still has routing controls or safety rules: delete them first")
        del self.panels[panel.arn]
        return {}

    # -- routing controls ------------------------------------------------------------------
    def _op_CreateRoutingControl(self, request: dict[str, Any], _: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        name = _check_str(request.get("RoutingControlName"), "routingControlName", hi=64, pattern=_NAME)
        cluster = self._cluster(request.get("ClusterArn"))
        if request.get("ControlPanelArn") is not None:
            panel = self._panel(request.get("ControlPanelArn"))
            if panel.cluster_arn != cluster.arn:
                raise _validation(f"Control panel {panel.arn} is not in cluster {cluster.arn}")
        else:
            panel = next(p for p in self.panels.values() if p.cluster_arn == cluster.arn and p.default)
        token, replay = self._replay("CreateRoutingControl", request)
        if replay in self.controls:
            return {"RoutingControl": self._control_shape(self.controls[replay])}
        control_id = uuid.uuid4().hex[:16]
        arn = f"{panel.arn}/routingcontrol/{control_id}"
        self.controls[arn] = RoutingControl(control_id, arn, str(name), panel.arn)
        if token:
            self.tokens[("CreateRoutingControl", token)] = arn
        return {"RoutingControl": self._control_shape(self.controls[arn])}

    def _op_DescribeRoutingControl(self, _: dict[str, Any], labels: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        return {"RoutingControl": self._control_shape(self._routing_control(labels["RoutingControlArn"]))}

    def _op_UpdateRoutingControl(self, request: dict[str, Any], _: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        control = self._routing_control(request.get("RoutingControlArn"))
        control.name = str(_check_str(request.get("RoutingControlName"), "routingControlName", hi=64, pattern=_NAME))
        return {"RoutingControl": self._control_shape(control)}

    def _op_ListRoutingControls(self, _: dict[str, Any], labels: dict[str, str], query: dict[str, list[str]], ___: str) -> dict[str, Any]:
        panel = self._panel(labels["ControlPanelArn"])
        controls = [c for c in self.controls.values() if c.panel_arn == panel.arn]
        chunk, token = _page(controls, self._query(query, "NextToken"), self._query_int(query, "MaxResults"), CONFIG_PAGE, 1000)
        result: dict[str, Any] = {"RoutingControls": [self._control_shape(c) for c in chunk]}
        if token:
            result["NextToken"] = token
        return result

    def _op_DeleteRoutingControl(self, _: dict[str, Any], labels: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        control = self._routing_control(labels["RoutingControlArn"])
        users = [r.arn for r in self.rules.values() if control.arn in r.covered]
        if users:
            raise _conflict(f"Routing control {control.arn} is used by safety rules {users}: delete them first")
        del self.controls[control.arn]
        return {}

    def _op_ListAssociatedRoute53HealthChecks(self, _: dict[str, Any], labels: dict[str, str], query: dict[str, list[str]], ___: str) -> dict[str, Any]:
        control = self._routing_control(labels["RoutingControlArn"])
        from moto.route53.models import route53_backends

        backend = route53_backends[ACCOUNT][PARTITION]
        ids = [hc.id for hc in list(backend.health_checks.values()) if getattr(hc, "routing_control_arn", None) == control.arn]
        chunk, token = _page(ids, self._query(query, "NextToken"), self._query_int(query, "MaxResults"), CONFIG_PAGE, 1000)
        result: dict[str, Any] = {"HealthCheckIds": chunk}
        if token:
            result["NextToken"] = token
        return result

    # -- safety rules ----------------------------------------------------------------------
    @staticmethod
    def _rule_config(value: Any, prefix: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _validation(f"1 validation error detected: Value null at '{prefix}.ruleConfig' failed to satisfy constraint: Member must not be null")
        kind = value.get("Type")
        if kind not in ("ATLEAST", "AND", "OR"):
            raise _validation(f"1 validation error detected: Value '{kind}' at '{prefix}.ruleConfig.type' failed to satisfy constraint: Member must satisfy enum value set: [ATLEAST, AND, OR]")
        threshold = _check_int(value.get("Threshold"), f"{prefix}.ruleConfig.threshold")
        inverted = value.get("Inverted")
        if not isinstance(inverted, bool):
            raise _validation(f"1 validation error detected: Value at '{prefix}.ruleConfig.inverted' failed to satisfy constraint: Member must not be null")
        return {"Type": kind, "Threshold": threshold, "Inverted": inverted}

    def _rule_controls(self, arns: list[str], panel: ControlPanel, member: str) -> None:
        for arn in arns:
            control = self.controls.get(arn)
            if control is None:
                raise _validation(f"{member}: routing control {arn} does not exist")
            if control.panel_arn != panel.arn:
                raise _validation(f"{member}: routing control {arn} is not in control panel {panel.arn}")

    def _op_CreateSafetyRule(self, request: dict[str, Any], _: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        assertion, gating = request.get("AssertionRule"), request.get("GatingRule")
        if (assertion is None) == (gating is None):
            raise _validation("Specify exactly one of AssertionRule and GatingRule")
        spec = assertion if assertion is not None else gating
        prefix = "assertionRule" if assertion is not None else "gatingRule"
        if not isinstance(spec, dict):
            raise _validation(f"1 validation error detected: Value at '{prefix}' failed to satisfy constraint: Member must be a structure")
        name = str(_check_str(spec.get("Name"), f"{prefix}.name", hi=64, pattern=_NAME))
        panel_arn = _check_str(spec.get("ControlPanelArn"), f"{prefix}.controlPanelArn", pattern=_CONFIG_ARN)
        panel = self.panels.get(str(panel_arn))
        if panel is None:  # CreateSafetyRule models only ValidationException and InternalServerException
            raise _validation(f"Control panel {panel_arn} does not exist")
        config = self._rule_config(spec.get("RuleConfig"), prefix)
        wait_ms = int(_check_int(spec.get("WaitPeriodMs"), f"{prefix}.waitPeriodMs", lo=0) or 0)
        tags = _check_tags(request.get("Tags"))
        if assertion is not None:
            asserted = _check_arn_list(spec.get("AssertedControls"), f"{prefix}.assertedControls")
            self._rule_controls(asserted, panel, "AssertedControls")
            counted, gating_controls, targets = asserted, [], []
        else:
            gating_controls = _check_arn_list(spec.get("GatingControls"), f"{prefix}.gatingControls")
            targets = _check_arn_list(spec.get("TargetControls"), f"{prefix}.targetControls")
            self._rule_controls(gating_controls, panel, "GatingControls")
            self._rule_controls(targets, panel, "TargetControls")
            if set(gating_controls) & set(targets):
                raise _validation("A routing control cannot be both a gating control and a target control of one gating rule")
            counted, asserted = gating_controls, []
        if config["Type"] == "ATLEAST" and not 1 <= int(config["Threshold"]) <= len(counted):
            raise _validation(f"RuleConfig.Threshold {config['Threshold']} must be between 1 and the number of controls ({len(counted)}) for ATLEAST")
        if any(r.panel_arn == panel.arn and r.name == name for r in self.rules.values()):
            raise _validation(f"A safety rule named {name} already exists in control panel {panel.arn}: names must be unique within a control panel")
        token, replay = self._replay("CreateSafetyRule", request)
        if replay in self.rules:
            return self._rule_shape(self.rules[replay])
        rule_id = uuid.uuid4().hex[:16]
        arn = f"{panel.arn}/safetyrule/{rule_id}"
        kind = "ASSERTION" if assertion is not None else "GATING"
        self.rules[arn] = SafetyRule(rule_id, arn, kind, name, panel.arn, config, wait_ms,
                                     asserted=asserted, gating=gating_controls, targets=targets, tags=tags)
        if token:
            self.tokens[("CreateSafetyRule", token)] = arn
        return self._rule_shape(self.rules[arn])

    def _op_DescribeSafetyRule(self, _: dict[str, Any], labels: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        return self._rule_shape(self._rule(labels["SafetyRuleArn"]))

    def _op_UpdateSafetyRule(self, request: dict[str, Any], _: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        assertion, gating = request.get("AssertionRuleUpdate"), request.get("GatingRuleUpdate")
        if (assertion is None) == (gating is None):
            raise _validation("Specify exactly one of AssertionRuleUpdate and GatingRuleUpdate")
        spec = assertion if assertion is not None else gating
        prefix = "assertionRuleUpdate" if assertion is not None else "gatingRuleUpdate"
        if not isinstance(spec, dict):
            raise _validation(f"1 validation error detected: Value at '{prefix}' failed to satisfy constraint: Member must be a structure")
        rule = self._rule(spec.get("SafetyRuleArn"))
        if (rule.kind == "ASSERTION") != (assertion is not None):
            raise _validation(f"Safety rule {rule.arn} is a {rule.kind} rule: use {'AssertionRuleUpdate' if rule.kind == 'ASSERTION' else 'GatingRuleUpdate'}")
        name = str(_check_str(spec.get("Name"), f"{prefix}.name", hi=64, pattern=_NAME))
        wait_ms = int(_check_int(spec.get("WaitPeriodMs"), f"{prefix}.waitPeriodMs", lo=0) or 0)
        if name != rule.name and any(r.panel_arn == rule.panel_arn and r.name == name for r in self.rules.values()):
            raise _validation(f"A safety rule named {name} already exists in control panel {rule.panel_arn}")
        rule.name, rule.wait_ms = name, wait_ms
        return self._rule_shape(rule)

    def _op_ListSafetyRules(self, _: dict[str, Any], labels: dict[str, str], query: dict[str, list[str]], ___: str) -> dict[str, Any]:
        panel = self._panel(labels["ControlPanelArn"])
        rules = [r for r in self.rules.values() if r.panel_arn == panel.arn]
        chunk, token = _page(rules, self._query(query, "NextToken"), self._query_int(query, "MaxResults"), CONFIG_PAGE, 1000)
        items = []
        for r in chunk:
            shape = self._rule_shape(r)
            items.append({"ASSERTION": shape["AssertionRule"]} if r.kind == "ASSERTION" else {"GATING": shape["GatingRule"]})
        result: dict[str, Any] = {"SafetyRules": items}
        if token:
            result["NextToken"] = token
        return result

    def _op_DeleteSafetyRule(self, _: dict[str, Any], labels: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        rule = self._rule(labels["SafetyRuleArn"])
        del self.rules[rule.arn]
        return {}

    # -- tags ------------------------------------------------------------------------------
    def _taggable(self, arn: str) -> Any:
        resource = self.clusters.get(arn) or self.panels.get(arn) or self.rules.get(arn)
        if resource is None:
            raise ApiError(404, "ResourceNotFoundException", f"Resource {arn} was not found")
        return resource

    def _op_ListTagsForResource(self, _: dict[str, Any], labels: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        return {"Tags": dict(self._taggable(labels["ResourceArn"]).tags)}

    def _op_TagResource(self, request: dict[str, Any], labels: dict[str, str], __: Any, ___: str) -> dict[str, Any]:
        resource = self._taggable(labels["ResourceArn"])
        if request.get("Tags") is None:
            raise _validation("1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
        resource.tags.update(_check_tags(request.get("Tags")))
        return {}

    def _op_UntagResource(self, _: dict[str, Any], labels: dict[str, str], query: dict[str, list[str]], ___: str) -> dict[str, Any]:
        resource = self._taggable(labels["ResourceArn"])
        keys = query.get("TagKeys")
        if not keys:
            raise _validation("1 validation error detected: Value null at 'tagKeys' failed to satisfy constraint: Member must not be null")
        for key in keys:
            resource.tags.pop(key, None)
        return {}


def install(state: EmulatorState) -> Arc:
    """build_app registers what this returns (after the Route 53 features)."""
    return Arc(state)


def for_state(state: EmulatorState) -> Arc:
    """The state's Arc feature, registered on first use (middleware, control API and the Route 53
    health checks share it)."""
    with state.lock:
        for feature in state.features:
            if isinstance(feature, Arc):
                return feature
        feature = Arc(state)
        state.features.append(feature)
        return feature

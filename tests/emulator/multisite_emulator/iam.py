"""IAM enforced per role, with real resource ARNs, the way AWS evaluates identity policies.

Why: moto's own authorization (when enabled at all) checks actions against resource "*"
only, so the template's least-privilege roles (scoped to table, health-check, cluster and
group ARNs) could never fail a test. Here every call signed with a role session's access
key is authorized against that role's policies, read from moto's IAM backend at request
time, for the resource ARNs AWS's Service Authorization Reference defines for the call.
Any other access key is the administrator (the identity tests use to set things up) and
is allowed everything.

Evaluation (IAM User Guide, "Policy evaluation logic", identity-based policies only): an
explicit Deny in any applicable policy wins; otherwise each gate (identity-based policies,
the role's permissions boundary if set, the session policy if given) must Allow; otherwise
implicit deny. Whenever something cannot be evaluated here (a policy variable, a wildcard in
an ARN's service segment), the statement is read the strict way: an Allow does not apply,
a Deny does. The emulator may be stricter than AWS, never kinder.

Layout: ``OPERATIONS`` maps each operation multisite calls to its IAM action and a
resource function; ``Iam`` is the state feature (middleware hooks, control API, reset).
"""

from __future__ import annotations

import functools
import importlib.util
import ipaddress
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import parse_qs, unquote

from .protocols import QUERY_COMPATIBLE, CallInfo, cbor_encode_text_map, render_error
from .state import EmulatorState

ACCOUNT = "123456789012"  # moto's default account
PARTITION = "aws"
DEFAULT_STACK = "multisite"
DEFAULT_SESSION = "multisite"
RENDER_TOPOLOGY = Path(__file__).resolve().parents[2] / "deploy" / "render_topology.py"

# SigV4 signing name -> IAM action prefix, where they differ.
IAM_PREFIXES = {"monitoring": "cloudwatch", "email": "ses"}

# The emulator is plain HTTP, but the functions it stands in for always reach AWS over TLS:
# a "Deny unless aws:SecureTransport" statement (a common guard) must not deny every call.
SECURE_TRANSPORT = "true"

ErrorResponse = tuple[int, list[tuple[str, str]], bytes]
Context = Mapping[str, tuple[str, ...]]


class InvalidInput(Exception):
    """Bad control-API input (HTTP 400); ``details`` are merged into the error body."""

    def __init__(self, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.details = details or {}


# =============================================================================================
# Patterns: actions (case-insensitive globs) and ARNs (case-sensitive, segment-aware globs)
# =============================================================================================


def _glob(pattern: str, arn_segments: bool) -> str:
    """Regex for an IAM wildcard pattern.

    With ``arn_segments`` (Resource, Arn* conditions) a ``*`` stays within its colon-delimited
    segment unless it is the segment's last character, which "can expand to match beyond the
    colon boundaries" (IAM User Guide, Resource element); ``?`` is one character of a segment.
    """
    out = []
    for i, char in enumerate(pattern):
        if char == "*":
            last_in_segment = i + 1 == len(pattern) or pattern[i + 1] == ":"
            out.append(".*" if last_in_segment or not arn_segments else "[^:]*")
        elif char == "?":
            out.append("[^:]" if arn_segments else ".")
        else:
            out.append(re.escape(char))
    return "".join(out)


def _is_unevaluable_arn(pattern: str) -> bool:
    """Policy variables are not substituted; a wildcard service segment is not valid IAM."""
    if "${" in pattern:
        return True
    parts = pattern.split(":", 3)
    return len(parts) > 2 and parts[0] == "arn" and ("*" in parts[2] or "?" in parts[2])


def _alternation(regexes: Iterable[str]) -> re.Pattern[str] | None:
    regexes = list(regexes)
    return re.compile("(?:" + "|".join(regexes) + ")") if regexes else None


@dataclass(frozen=True)
class _Actions:
    regex: re.Pattern[str] | None  # over lower-cased actions
    negated: bool  # NotAction

    @classmethod
    def compile(cls, patterns: list[str], negated: bool) -> _Actions:
        return cls(_alternation(_glob(p.lower(), arn_segments=False) for p in patterns), negated)

    def applies(self, action: str) -> bool:
        listed = self.regex is not None and self.regex.fullmatch(action) is not None
        return listed != self.negated


@dataclass(frozen=True)
class _Resources:
    regex: re.Pattern[str] | None
    has_unevaluable: bool
    negated: bool  # NotResource

    @classmethod
    def compile(cls, patterns: list[str], negated: bool) -> _Resources:
        unevaluable = [p for p in patterns if _is_unevaluable_arn(p)]
        known = [p for p in patterns if p not in unevaluable]
        return cls(_alternation(_glob(p, arn_segments=True) for p in known), bool(unevaluable), negated)

    def applies(self, resource: str, deny: bool) -> bool:
        # An unevaluable pattern is read so that a Deny applies and an Allow does not.
        listed = (self.regex is not None and self.regex.fullmatch(resource) is not None) or (
            self.has_unevaluable and deny != self.negated
        )
        return listed != self.negated


# =============================================================================================
# Conditions
# =============================================================================================


def _parse_date(value: str) -> float:
    """aws:CurrentTime style ISO 8601, or epoch seconds (both accepted by Date operators)."""
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _safe(compile_value: Callable[[str], Any]) -> Callable[[str], Any]:
    """A policy value that does not parse (bad number, date, CIDR) matches nothing."""

    def compile_or_none(value: str) -> Any:
        try:
            return compile_value(value)
        except ValueError:
            return None

    return compile_or_none


def _compare(parse: Callable[[str], float], test: Callable[[float, float], bool]) -> Callable[[str, Any], bool]:
    def match(request_value: str, policy_value: Any) -> bool:
        if policy_value is None:
            return False
        try:
            return test(parse(request_value), policy_value)
        except ValueError:
            return False

    return match


def _ip_in(request_value: str, network: Any) -> bool:
    try:
        return network is not None and ipaddress.ip_address(request_value) in network
    except ValueError:
        return False


@dataclass(frozen=True)
class _Operator:
    negated: bool
    compile_value: Callable[[str], Any]
    match: Callable[[str, Any], bool]  # (request value, compiled policy value)


def _operators() -> dict[str, _Operator]:
    """Every operator of the IAM User Guide's "Condition operators" page, lower-cased."""
    ops: dict[str, _Operator] = {}

    def pair(
        positive: str, negative: str | None, compile_value: Callable[[str], Any], match: Callable[[str, Any], bool]
    ) -> None:
        ops[positive.lower()] = _Operator(False, compile_value, match)
        if negative:
            ops[negative.lower()] = _Operator(True, compile_value, match)

    equal = lambda v, p: v == p  # noqa: E731
    pair("StringEquals", "StringNotEquals", str, equal)
    pair("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", str.lower, lambda v, p: v.lower() == p)
    like = lambda p: re.compile(_glob(p, arn_segments=False), re.DOTALL)  # noqa: E731
    pair("StringLike", "StringNotLike", like, lambda v, p: p.fullmatch(v) is not None)
    arn = lambda p: re.compile(_glob(p, arn_segments=True))  # noqa: E731
    arn_match = lambda v, p: p.fullmatch(v) is not None  # noqa: E731
    pair("ArnEquals", "ArnNotEquals", arn, arn_match)  # both take wildcards, per the guide
    pair("ArnLike", "ArnNotLike", arn, arn_match)
    pair("Bool", None, str.lower, lambda v, p: v.lower() == p)
    pair("BinaryEquals", None, str, equal)
    pair("IpAddress", "NotIpAddress", _safe(lambda p: ipaddress.ip_network(p, strict=False)), _ip_in)
    for name, test in (
        ("Equals", lambda a, b: a == b),
        ("LessThan", lambda a, b: a < b),
        ("LessThanEquals", lambda a, b: a <= b),
        ("GreaterThan", lambda a, b: a > b),
        ("GreaterThanEquals", lambda a, b: a >= b),
    ):
        pair(f"Numeric{name}", None, _safe(float), _compare(float, test))
        pair(f"Date{name}", None, _safe(_parse_date), _compare(_parse_date, test))
    pair("NumericNotEquals", None, _safe(float), _compare(float, lambda a, b: a != b))
    pair("DateNotEquals", None, _safe(_parse_date), _compare(_parse_date, lambda a, b: a != b))
    return ops


OPERATORS = _operators()


def _policy_values(raw: Any) -> list[str]:
    items = raw if isinstance(raw, list) else [raw]
    return [json.dumps(v) if isinstance(v, bool) else str(v) for v in items]


@dataclass(frozen=True)
class _Clause:
    """One (operator, key) pair of a Condition block; values are OR-ed (NOR when negated)."""

    key: str  # lower-cased: condition keys are case-insensitive
    operator: _Operator | None  # None: Null, handled apart
    qualifier: str  # "", "forallvalues", "foranyvalue"
    if_exists: bool
    values: tuple[Any, ...]
    evaluable: bool

    def evaluate(self, context: Context) -> bool | None:
        """True/False, or None when it cannot be evaluated here (the caller decides strictly)."""
        if not self.evaluable:
            return None
        request = context.get(self.key) or ()
        if self.operator is None:  # Null: "true" means the key is absent
            return any((value == "true") == (not request) for value in self.values)
        if not request:
            if self.if_exists or self.qualifier == "forallvalues":
                return True
            if self.qualifier == "foranyvalue":
                return False
            # A missing key never matches: true only for a negated operator.
            return self.operator.negated
        op = self.operator

        def satisfied(value: str) -> bool:
            return any(op.match(value, p) for p in self.values) != op.negated

        if self.qualifier == "forallvalues":
            return all(satisfied(v) for v in request)
        return any(satisfied(v) for v in request)


def _compile_clause(operator_name: str, key: str, raw_values: Any) -> _Clause:
    name = operator_name.lower()
    qualifier = ""
    for prefix in ("forallvalues:", "foranyvalue:"):
        if name.startswith(prefix):
            qualifier, name = prefix[:-1], name[len(prefix):]
    if_exists = name.endswith("ifexists") and name != "ifexists"
    base = name[: -len("ifexists")] if if_exists else name
    values = _policy_values(raw_values)
    evaluable = (base == "null" or base in OPERATORS) and not any("${" in v for v in values)
    if base == "null":
        return _Clause(key.lower(), None, qualifier, False, tuple(v.lower() for v in values), evaluable)
    operator = OPERATORS.get(base)
    compiled = tuple(operator.compile_value(v) for v in values) if operator and evaluable else ()
    return _Clause(key.lower(), operator, qualifier, if_exists, compiled, evaluable)


def _evaluate_conditions(clauses: tuple[_Clause, ...], context: Context) -> bool | None:
    """Operators and keys are AND-ed: any False wins, then any unevaluable."""
    verdict: bool | None = True
    for clause in clauses:
        result = clause.evaluate(context)
        if result is False:
            return False
        if result is None:
            verdict = None
    return verdict


# =============================================================================================
# Policies
# =============================================================================================


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


@dataclass(frozen=True)
class _Statement:
    deny: bool
    actions: _Actions
    resources: _Resources
    conditions: tuple[_Clause, ...]

    def applies(self, action: str, resource: str, context: Context) -> bool:
        """``action`` is lower-cased."""
        if not self.actions.applies(action) or not self.resources.applies(resource, self.deny):
            return False
        verdict = _evaluate_conditions(self.conditions, context)
        return verdict is True or (verdict is None and self.deny)


def _compile_statement(raw: Any) -> _Statement | None:
    """None for a statement IAM would have rejected (moto validates documents on put)."""
    if not isinstance(raw, dict) or raw.get("Effect") not in ("Allow", "Deny"):
        return None
    action_key = "Action" if "Action" in raw else "NotAction" if "NotAction" in raw else None
    resource_key = "Resource" if "Resource" in raw else "NotResource" if "NotResource" in raw else None
    if action_key is None or resource_key is None:
        return None
    condition = raw.get("Condition") or {}
    clauses = tuple(
        _compile_clause(op, key, values)
        for op, keys in (condition.items() if isinstance(condition, dict) else ())
        if isinstance(keys, dict)
        for key, values in keys.items()
    )
    return _Statement(
        raw["Effect"] == "Deny",
        _Actions.compile(_as_list(raw[action_key]), action_key == "NotAction"),
        _Resources.compile(_as_list(raw[resource_key]), resource_key == "NotResource"),
        clauses,
    )


@functools.lru_cache(maxsize=4096)
def compile_policy(document: str) -> tuple[_Statement, ...]:
    """Compiled statements of a policy document (cached by its text: documents change by
    replacement in moto, so the next call after a PutRolePolicy compiles the new text)."""
    try:
        parsed = json.loads(document)
    except ValueError:
        return ()
    statements = parsed.get("Statement", []) if isinstance(parsed, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    return tuple(s for s in map(_compile_statement, statements) if s is not None)


@dataclass(frozen=True)
class _Gate:
    """Policies that must jointly allow a call: AWS's identity policies, boundary, session."""

    kind: str  # wording of AWS's messages: "identity-based policy", "permissions boundary", ...
    article: str
    policies: tuple[tuple[str, tuple[_Statement, ...]], ...]  # (label, statements)


@dataclass(frozen=True)
class Check:
    """One authorization AWS makes for a call: an action on a resource (``*``: none)."""

    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Denial:
    action: str
    resource: str
    message: str


def evaluate(principal_arn: str, gates: list[_Gate], checks: list[Check], context: Context) -> Denial | None:
    """The first check that is not allowed, or None. Each check is authorized on its own."""
    for check in checks:
        ctx = {**context, **check.context} if check.context else context
        action = check.action.lower()
        prefix = f"User: {principal_arn} is not authorized to perform: {check.action} on resource: {check.resource}"
        for gate in gates:
            for label, statements in gate.policies:
                if any(s.deny and s.applies(action, check.resource, ctx) for s in statements):
                    where = f"{gate.article} {gate.kind}" + (f": {label}" if label else "")
                    return Denial(check.action, check.resource, f"{prefix} with an explicit deny in {where}")
        for gate in gates:
            if not any(
                not s.deny and s.applies(action, check.resource, ctx)
                for _, statements in gate.policies
                for s in statements
            ):
                reason = f"because no {gate.kind} allows the {check.action} action"
                return Denial(check.action, check.resource, f"{prefix} {reason}")
    return None


# =============================================================================================
# Resources of each operation
# =============================================================================================


@dataclass
class _Request:
    """The parts of a call the resource functions read, parsed at most once."""

    info: CallInfo
    environ: dict[str, Any]
    body: bytes
    account: str

    @property
    def region(self) -> str:
        return self.info.region or "us-east-1"

    @property
    def path(self) -> str:
        return str(self.environ.get("PATH_INFO") or "")

    @functools.cached_property
    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body or b"{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @functools.cached_property
    def params(self) -> dict[str, str]:
        """Query-string plus form-body parameters (awsQuery), first value of each."""
        merged = parse_qs(str(self.environ.get("QUERY_STRING") or ""))
        content_type = str(self.environ.get("CONTENT_TYPE") or "").lower()
        if content_type.startswith("application/x-www-form-urlencoded") and self.body:
            merged.update(parse_qs(self.body.decode("utf-8", "replace")))
        return {k: v[0] for k, v in merged.items()}

    @functools.cached_property
    def cbor(self) -> dict[str, Any] | None:
        """The rpcv2Cbor body, if the CBOR decoder module is available and it decodes."""
        try:
            from .cloudwatch_cbor import decode_cbor
        except ImportError:
            return None
        try:
            value = decode_cbor(self.body)
        except Exception:  # undecodable body: moto will reject it anyway
            return None
        return value if isinstance(value, dict) else None


ResourceFn = Callable[[_Request, str], list[Check]]


def _arn(service: str, region: str, account: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{region}:{account}:{resource}"


def _everything(_: _Request, action: str) -> list[Check]:
    return [Check(action, "*")]


def _no_check(_: _Request, __: str) -> list[Check]:
    return []


def _one_each(action: str, resources: list[str]) -> list[Check]:
    """A check per resource; an empty list still checks ``*`` (never allow unchecked)."""
    return [Check(action, r) for r in resources] or [Check(action, "*")]


# -- DynamoDB -------------------------------------------------------------------------------

# docs: DynamoDB developer guide, "Using IAM with global tables" (version 2019.11.21): creating
# a replica needs dynamodb:UpdateTable in the source Region and these in the destination Region;
# deleting one needs the second list in the destination Region.
REPLICA_CREATE_ACTIONS = (
    "dynamodb:CreateTable",
    "dynamodb:CreateTableReplica",
    "dynamodb:Scan",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
    "dynamodb:PutItem",
    "dynamodb:GetItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
)
REPLICA_DELETE_ACTIONS = ("dynamodb:DeleteTable", "dynamodb:DeleteTableReplica")
# docs: DynamoDB developer guide, "Tutorials: Creating global tables" (MRSC): the sample policy
# for an MRSC table with a witness grants dynamodb:CreateGlobalTableWitness and
# dynamodb:DeleteGlobalTableWitness on the table; the Service Authorization Reference lists
# CreateGlobalTableWitness among UpdateTable's dependent actions. Which Region's table ARN DynamoDB
# checks is not stated (the sample grants all three): checked here, as for a replica, on the
# table ARN in the witness's Region.
WITNESS_ACTIONS = {"Create": "dynamodb:CreateGlobalTableWitness", "Delete": "dynamodb:DeleteGlobalTableWitness"}
TRANSACT_ACTIONS = {
    "ConditionCheck": "dynamodb:ConditionCheckItem",
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "Get": "dynamodb:GetItem",
}


def _table_arn(req: _Request, name: Any, region: str | None = None) -> str:
    """TableName may be a name or (as DynamoDB accepts) the table's ARN."""
    if not isinstance(name, str) or not name:
        return "*"
    if name.startswith("arn:"):
        if region is None:
            return name
        parts = name.split(":", 5)
        return _arn("dynamodb", region, parts[4], parts[5]) if len(parts) == 6 else name
    return _arn("dynamodb", region or req.region, req.account, f"table/{name}")


def _ddb_table(req: _Request, action: str) -> list[Check]:
    return [Check(action, _table_arn(req, req.json.get("TableName")))]


def _ddb_table_or_index(req: _Request, action: str) -> list[Check]:
    arn = _table_arn(req, req.json.get("TableName"))
    index = req.json.get("IndexName")
    if isinstance(index, str) and index and arn != "*":
        arn = f"{arn}/index/{index}"
    return [Check(action, arn)]


def _ddb_resource_arn(req: _Request, action: str) -> list[Check]:
    arn = req.json.get("ResourceArn")
    return [Check(action, arn if isinstance(arn, str) and arn else "*")]


def _ddb_batch(req: _Request, action: str) -> list[Check]:
    items = req.json.get("RequestItems")
    return _one_each(action, [_table_arn(req, t) for t in (items if isinstance(items, dict) else {})])


def _ddb_transact(req: _Request, action: str) -> list[Check]:
    """Transactions authorize each element's own action (there is no Transact* action)."""
    checks = []
    items = req.json.get("TransactItems")
    for item in items if isinstance(items, list) else []:
        for kind, spec in (item.items() if isinstance(item, dict) else ()):
            element_action = TRANSACT_ACTIONS.get(kind, f"dynamodb:{kind}")
            table = spec.get("TableName") if isinstance(spec, dict) else None
            checks.append(Check(element_action, _table_arn(req, table)))
    return checks or [Check(action, "*")]


def _ddb_update_table(req: _Request, action: str) -> list[Check]:
    name = req.json.get("TableName")
    checks = [Check(action, _table_arn(req, name))]
    updates = req.json.get("ReplicaUpdates")
    for update in updates if isinstance(updates, list) else []:
        for kind, actions in (("Create", REPLICA_CREATE_ACTIONS), ("Delete", REPLICA_DELETE_ACTIONS)):
            spec = update.get(kind) if isinstance(update, dict) else None
            region = spec.get("RegionName") if isinstance(spec, dict) else None
            if isinstance(region, str) and region:
                replica = _table_arn(req, name, region)
                checks += [Check(a, replica) for a in actions]
    witnesses = req.json.get("GlobalTableWitnessUpdates")
    for update in witnesses if isinstance(witnesses, list) else []:
        for kind, witness_action in WITNESS_ACTIONS.items():
            spec = update.get(kind) if isinstance(update, dict) else None
            region = spec.get("RegionName") if isinstance(spec, dict) else None
            if isinstance(region, str) and region:
                checks.append(Check(witness_action, _table_arn(req, name, region)))
    return checks


# -- Route 53 -------------------------------------------------------------------------------

_ROUTE53_PATH = re.compile(r"^/\d{4}-\d{2}-\d{2}/(healthcheck|hostedzone)/([^/]+)")


def _route53(kind: str) -> ResourceFn:
    """Health checks and hosted zones are global: ``arn:aws:route53:::{kind}/{Id}``."""

    def resources(req: _Request, action: str) -> list[Check]:
        match = _ROUTE53_PATH.match(req.path)
        if match is None or match[1] != kind:
            return [Check(action, "*")]
        return [Check(action, f"arn:{PARTITION}:route53:::{kind}/{unquote(match[2])}")]

    return resources


# -- RDS ------------------------------------------------------------------------------------


def _global_cluster_arn(req: _Request, identifier: str) -> str:
    # RDS stores identifiers lower-cased, and its ARNs carry them that way.
    if identifier.startswith("arn:"):
        return identifier
    return _arn("rds", "", req.account, f"global-cluster:{identifier.lower()}")


def _cluster_arn(req: _Request, identifier: str) -> str:
    """A bare id names a cluster in the Region called; an ARN its own Region."""
    if identifier.startswith("arn:"):
        return identifier
    return _arn("rds", req.region, req.account, f"cluster:{identifier.lower()}")


def _rds_describe_global(req: _Request, action: str) -> list[Check]:
    identifier = req.params.get("GlobalClusterIdentifier")
    return [Check(action, _global_cluster_arn(req, identifier) if identifier else "*")]


def _rds_move_writer(req: _Request, action: str) -> list[Check]:
    """RDS authorizes Failover/SwitchoverGlobalCluster on the global cluster AND the target."""
    checks = []
    if req.params.get("GlobalClusterIdentifier"):
        checks.append(Check(action, _global_cluster_arn(req, req.params["GlobalClusterIdentifier"])))
    if req.params.get("TargetDbClusterIdentifier"):
        checks.append(Check(action, _cluster_arn(req, req.params["TargetDbClusterIdentifier"])))
    return checks or [Check(action, "*")]


def _rds_describe_clusters(req: _Request, action: str) -> list[Check]:
    identifier = req.params.get("DBClusterIdentifier")
    return [Check(action, _cluster_arn(req, identifier) if identifier else "*")]


# -- Auto Scaling ---------------------------------------------------------------------------

MISSING_GROUP_UUID = "00000000-0000-0000-0000-000000000000"


def _asg(req: _Request, action: str) -> list[Check]:
    """The group's real ARN (its UUID comes from moto); for an unknown group a nil UUID
    stands in (the call then fails in moto, as AWS fails it, once authorized)."""
    from moto.autoscaling.models import autoscaling_backends

    name = req.params.get("AutoScalingGroupName")
    if not name:
        return [Check(action, "*")]
    try:
        group = autoscaling_backends[req.account][req.region].autoscaling_groups.get(name)
    except KeyError:
        group = None
    if group is not None:
        return [Check(action, str(group.arn))]
    resource = f"autoScalingGroup:{MISSING_GROUP_UUID}:autoScalingGroupName/{name}"
    return [Check(action, _arn("autoscaling", req.region, req.account, resource))]


# -- CloudWatch -----------------------------------------------------------------------------


def _alarm_names(req: _Request, key: str) -> list[str] | None:
    """Alarm names of an awsQuery (``AlarmNames.member.N`` / ``AlarmName``), awsJson1_0 or
    rpcv2Cbor body (CloudWatch speaks all three); None when a CBOR body cannot be read here
    (then only ``*`` is checked: stricter)."""
    if req.info.protocol in ("json", "cbor"):
        body = req.json if req.info.protocol == "json" else req.cbor
        if body is None:
            return None
        value = body.get(key)
        return [str(v) for v in (value if isinstance(value, list) else [value] if value else [])]
    if key in req.params:
        return [req.params[key]]
    members = sorted(
        ((int(k.rsplit(".", 1)[1]), v) for k, v in req.params.items() if re.fullmatch(rf"{key}\.member\.\d+", k)),
    )
    return [v for _, v in members]


def _alarms(key: str) -> ResourceFn:
    def resources(req: _Request, action: str) -> list[Check]:
        names = _alarm_names(req, key)
        arns = [_arn("cloudwatch", req.region, req.account, f"alarm:{n}") for n in names or []]
        return _one_each(action, arns)

    return resources


# -- SNS ------------------------------------------------------------------------------------


def _sns_topic(req: _Request, action: str) -> list[Check]:
    """Publish names its topic by ARN (``TopicArn``); without one (``TargetArn``,
    ``PhoneNumber``) the check is on "*"."""
    topic = req.params.get("TopicArn")
    return [Check(action, str(topic) if topic else "*")]


# -- Lambda ---------------------------------------------------------------------------------

_LAMBDA_INVOKE_PATH = re.compile(r"^/\d{4}-\d{2}-\d{2}/functions/([^/]+)/invocations")


def _lambda_invoke(req: _Request, action: str) -> list[Check]:
    """FunctionName: a name, ``ACCOUNT:function:NAME`` or a full ARN (whose Region and
    account win), each optionally ``:QUALIFIER``; else the Qualifier query parameter."""
    match = _LAMBDA_INVOKE_PATH.match(req.path)
    if match is None:
        return [Check(action, "*")]
    reference = unquote(match[1])
    region, account = req.region, req.account
    parts = reference.split(":")
    if reference.startswith("arn:") and len(parts) >= 7:
        region, account, name, qualifier = parts[3], parts[4], parts[6], parts[7] if len(parts) > 7 else None
    elif len(parts) >= 3 and parts[1] == "function":
        account, name, qualifier = parts[0], parts[2], parts[3] if len(parts) > 3 else None
    else:
        name, qualifier = parts[0], parts[1] if len(parts) > 1 else None
    qualifier = qualifier or req.params.get("Qualifier")
    resource = f"function:{name}" + (f":{qualifier}" if qualifier else "")
    return [Check(action, _arn("lambda", region, account, resource))]


# -- SSM ------------------------------------------------------------------------------------


def _ssm_parameter(req: _Request, action: str) -> list[Check]:
    """Name: a parameter name (``/a/b`` or ``a``) or its ARN; the ARN of ``/a/b`` is
    ``...:parameter/a/b`` (one slash), of ``a`` ``...:parameter/a`` (Parameter Store's IAM page),
    and a ``:version`` or ``:label`` selector is not part of the resource."""
    name = str(req.json.get("Name", ""))
    if name.startswith("arn:"):
        return [Check(action, name.rsplit(":", 1)[0] if name.count(":") > 5 else name)]
    name = name.split(":", 1)[0]
    return [Check(action, _arn("ssm", req.region, req.account, "parameter/" + name.lstrip("/")))]


# -- STS / IAM ------------------------------------------------------------------------------

# Real AWS names of the service-linked roles multisite meets; others as moto names them.
SERVICE_LINKED_ROLE_NAMES = {
    "replication.dynamodb.amazonaws.com": "AWSServiceRoleForDynamoDBReplication",
    "autoscaling.amazonaws.com": "AWSServiceRoleForAutoScaling",
    "rds.amazonaws.com": "AWSServiceRoleForRDS",
}


def _service_linked_role_name(service_name: str) -> str:
    if service_name in SERVICE_LINKED_ROLE_NAMES:
        return SERVICE_LINKED_ROLE_NAMES[service_name]
    labels = service_name.split(".")
    service = labels[-3] if len(labels) >= 3 else labels[0]
    if labels[0] != service:
        service = f"{service}_" + "".join(x.capitalize() for x in labels[0].split("-"))
    return f"AWSServiceRoleFor{service}"


def _create_service_linked_role(req: _Request, action: str) -> list[Check]:
    """Resource: the role it creates; context: iam:AWSServiceName."""
    service_name = req.params.get("AWSServiceName", "")
    name = _service_linked_role_name(service_name)
    if req.params.get("CustomSuffix"):
        name += f"_{req.params['CustomSuffix']}"
    arn = f"arn:{PARTITION}:iam::{req.account}:role/aws-service-role/{service_name}/{name}"
    return [Check(action, arn, {"iam:awsservicename": (service_name,)})]


def _assume_role(req: _Request, action: str) -> list[Check]:
    return [Check(action, req.params.get("RoleArn") or "*")]


# -- Route 53 ARC (Service Authorization Reference: "Amazon Route 53 Recovery Controls" and
# "Amazon Route 53 Recovery Cluster"; ARNs arn:aws:route53-recovery-control::ACCOUNT:cluster/ID,
# ...:controlpanel/ID, ...:controlpanel/ID/routingcontrol/ID, ...:controlpanel/ID/safetyrule/ID) --

ARC_OVERRIDE_KEY = "route53-recovery-cluster:allowsafetyrulesoverrides"


def _arc_str(value: Any) -> str:
    return value if isinstance(value, str) and value else "*"


def _arc_path(label: str) -> ResourceFn:
    """A control-config call naming its resource in the path (DescribeCluster, DeleteSafetyRule, ...)."""

    def resources(req: _Request, action: str) -> list[Check]:
        from .arc import route

        return [Check(action, _arc_str(route(req.environ)[1].get(label)))]

    return resources


def _arc_body(*members: str) -> ResourceFn:
    """The resource ARN is a body member (``members`` is its path: UpdateSafetyRule's
    ``AssertionRuleUpdate.SafetyRuleArn`` or ``GatingRuleUpdate.SafetyRuleArn``, whichever is given)."""

    def resources(req: _Request, action: str) -> list[Check]:
        for member in members:
            value: Any = req.json
            for part in member.split("."):
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                return [Check(action, _arc_str(value))]
        return [Check(action, "*")]

    return resources


def _arc_create(req: _Request, action: str) -> list[Check]:
    """Create*: CreateCluster on no resource, CreateControlPanel / CreateRoutingControl on the body's
    ClusterArn, CreateSafetyRule on the cluster of its control panel (``*`` if that panel is
    unknown: stricter). With Tags also route53-recovery-control-config:TagResource (the reference
    lists it for CreateCluster, CreateControlPanel, CreateSafetyRule), on ``*``: the new
    resource has no ARN yet."""
    operation = req.info.operation
    if operation == "CreateCluster":
        resource = "*"
    elif operation == "CreateSafetyRule":
        spec = req.json.get("AssertionRule") or req.json.get("GatingRule") or {}
        panel = spec.get("ControlPanelArn") if isinstance(spec, dict) else None
        resource = _arc_str(_arc_panel_cluster(panel) if isinstance(panel, str) else None)
    else:
        resource = _arc_str(req.json.get("ClusterArn"))
    checks = [Check(action, resource)]
    if req.json.get("Tags") and operation != "CreateRoutingControl":
        checks.append(Check("route53-recovery-control-config:TagResource", "*"))
    return checks


def _arc_panel_cluster(panel_arn: str) -> str | None:
    """The cluster ARN of a control panel, from the emulator's ARC feature."""
    from . import arc

    for feature in list(arc.REGISTERED):
        cluster = feature.cluster_of_panel(panel_arn)
        if cluster is not None:
            return cluster
    return None


def _arc_data_plane(req: _Request, action: str) -> list[Check]:
    """GetRoutingControlState / UpdateRoutingControlState: the body's RoutingControlArn;
    UpdateRoutingControlStates: each entry's. The two updates carry the condition key
    route53-recovery-cluster:AllowSafetyRulesOverrides (Bool): true when SafetyRulesToOverride
    names any rule, else false."""
    body = req.json
    if req.info.operation == "UpdateRoutingControlStates":
        entries = body.get("UpdateRoutingControlStateEntries")
        arns = [_arc_str(e.get("RoutingControlArn")) for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
    else:
        arns = [_arc_str(body.get("RoutingControlArn"))]
    if req.info.operation == "GetRoutingControlState":
        return _one_each(action, arns)
    overrides = body.get("SafetyRulesToOverride")
    context = {ARC_OVERRIDE_KEY: ("true" if isinstance(overrides, list) and overrides else "false",)}
    return [Check(action, arn, context) for arn in arns] or [Check(action, "*", context)]


_ARC_CONFIG = "route53-recovery-control-config"
_ARC_CLUSTER = "route53-recovery-cluster"


# (SigV4 signing name, operation) -> (IAM action, resource function). Anything else from a role
# session is checked as "{prefix}:{Operation}" on "*" (stricter than AWS, never kinder).
OPERATIONS: dict[tuple[str, str], tuple[str, ResourceFn]] = {
    **{
        ("dynamodb", op): (f"dynamodb:{op}", fn)
        for op, fn in {
            "GetItem": _ddb_table,
            "PutItem": _ddb_table,
            "UpdateItem": _ddb_table,
            "DeleteItem": _ddb_table,
            "Query": _ddb_table_or_index,
            "Scan": _ddb_table_or_index,
            "DescribeTable": _ddb_table,
            "UpdateTable": _ddb_update_table,
            "CreateTable": _ddb_table,
            "DeleteTable": _ddb_table,
            "DescribeTimeToLive": _ddb_table,
            "UpdateTimeToLive": _ddb_table,
            "ListTagsOfResource": _ddb_resource_arn,
            "TagResource": _ddb_resource_arn,
            "UntagResource": _ddb_resource_arn,
            "BatchGetItem": _ddb_batch,
            "BatchWriteItem": _ddb_batch,
            "TransactWriteItems": _ddb_transact,
            "TransactGetItems": _ddb_transact,
            "ListTables": _everything,
        }.items()
    },
    **{
        ("route53", op): (f"route53:{op}", fn)
        for op, fn in {
            "GetHealthCheck": _route53("healthcheck"),
            "UpdateHealthCheck": _route53("healthcheck"),
            "DeleteHealthCheck": _route53("healthcheck"),
            "GetHealthCheckStatus": _route53("healthcheck"),
            "CreateHealthCheck": _everything,
            "ListHealthChecks": _everything,
            "TestDNSAnswer": _everything,
            "CreateHostedZone": _everything,
            "ListHostedZones": _everything,
            "ChangeResourceRecordSets": _route53("hostedzone"),
            "ListResourceRecordSets": _route53("hostedzone"),
            "GetHostedZone": _route53("hostedzone"),
        }.items()
    },
    ("rds", "DescribeGlobalClusters"): ("rds:DescribeGlobalClusters", _rds_describe_global),
    ("rds", "FailoverGlobalCluster"): ("rds:FailoverGlobalCluster", _rds_move_writer),
    ("rds", "SwitchoverGlobalCluster"): ("rds:SwitchoverGlobalCluster", _rds_move_writer),
    ("rds", "DescribeDBClusters"): ("rds:DescribeDBClusters", _rds_describe_clusters),
    ("autoscaling", "DescribeAutoScalingGroups"): ("autoscaling:DescribeAutoScalingGroups", _everything),
    ("autoscaling", "UpdateAutoScalingGroup"): ("autoscaling:UpdateAutoScalingGroup", _asg),
    ("autoscaling", "SetDesiredCapacity"): ("autoscaling:SetDesiredCapacity", _asg),
    ("monitoring", "DescribeAlarms"): ("cloudwatch:DescribeAlarms", _alarms("AlarmNames")),
    ("monitoring", "SetAlarmState"): ("cloudwatch:SetAlarmState", _alarms("AlarmName")),
    ("monitoring", "PutMetricAlarm"): ("cloudwatch:PutMetricAlarm", _alarms("AlarmName")),
    ("monitoring", "DeleteAlarms"): ("cloudwatch:DeleteAlarms", _alarms("AlarmNames")),
    ("monitoring", "GetMetricData"): ("cloudwatch:GetMetricData", _everything),
    ("monitoring", "PutMetricData"): ("cloudwatch:PutMetricData", _everything),
    ("monitoring", "ListMetrics"): ("cloudwatch:ListMetrics", _everything),
    ("lambda", "Invoke"): ("lambda:InvokeFunction", _lambda_invoke),
    ("ssm", "GetParameter"): ("ssm:GetParameter", _ssm_parameter),
    ("sns", "Publish"): ("sns:Publish", _sns_topic),
    # "No permissions are required to perform this operation" (STS API reference).
    ("sts", "GetCallerIdentity"): ("sts:GetCallerIdentity", _no_check),
    ("sts", "AssumeRole"): ("sts:AssumeRole", _assume_role),
    ("iam", "CreateServiceLinkedRole"): ("iam:CreateServiceLinkedRole", _create_service_linked_role),
    **{
        (_ARC_CONFIG, op): (f"{_ARC_CONFIG}:{op}", fn)
        for op, fn in {
            "CreateCluster": _arc_create,
            "DescribeCluster": _arc_path("ClusterArn"),
            "DeleteCluster": _arc_path("ClusterArn"),
            "UpdateCluster": _arc_body("ClusterArn"),
            "ListClusters": _everything,
            "CreateControlPanel": _arc_create,
            "DescribeControlPanel": _arc_path("ControlPanelArn"),
            "DeleteControlPanel": _arc_path("ControlPanelArn"),
            "UpdateControlPanel": _arc_body("ControlPanelArn"),
            "ListControlPanels": _everything,
            "ListRoutingControls": _arc_path("ControlPanelArn"),
            "ListSafetyRules": _arc_path("ControlPanelArn"),
            "CreateRoutingControl": _arc_create,
            "DescribeRoutingControl": _arc_path("RoutingControlArn"),
            "DeleteRoutingControl": _arc_path("RoutingControlArn"),
            "UpdateRoutingControl": _arc_body("RoutingControlArn"),
            "ListAssociatedRoute53HealthChecks": _arc_path("RoutingControlArn"),
            "CreateSafetyRule": _arc_create,
            "DescribeSafetyRule": _arc_path("SafetyRuleArn"),
            "DeleteSafetyRule": _arc_path("SafetyRuleArn"),
            "UpdateSafetyRule": _arc_body("AssertionRuleUpdate.SafetyRuleArn", "GatingRuleUpdate.SafetyRuleArn"),
            "ListTagsForResource": _arc_path("ResourceArn"),
            "TagResource": _arc_path("ResourceArn"),
            "UntagResource": _arc_path("ResourceArn"),
        }.items()
    },
    (_ARC_CLUSTER, "GetRoutingControlState"): (f"{_ARC_CLUSTER}:GetRoutingControlState", _arc_data_plane),
    (_ARC_CLUSTER, "ListRoutingControls"): (f"{_ARC_CLUSTER}:ListRoutingControls", _everything),
    (_ARC_CLUSTER, "UpdateRoutingControlState"): (f"{_ARC_CLUSTER}:UpdateRoutingControlState", _arc_data_plane),
    (_ARC_CLUSTER, "UpdateRoutingControlStates"): (f"{_ARC_CLUSTER}:UpdateRoutingControlStates", _arc_data_plane),
}


def checks_for(req: _Request) -> list[Check]:
    service, operation = req.info.service or "", req.info.operation
    action, resources = OPERATIONS.get(
        (service, operation), (f"{IAM_PREFIXES.get(service, service)}:{operation}", _everything)
    )
    return resources(req, action)


# =============================================================================================
# Identity: moto's STS sessions -> role -> policies
# =============================================================================================


@dataclass(frozen=True)
class Session:
    access_key_id: str
    arn: str  # arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION
    role_arn: str
    account: str
    session_policy: str | None


@dataclass(frozen=True)
class Caller:
    """Who signed a call: a role session, the administrator, or nobody (unsigned)."""

    session: Session | None
    signed: bool

    @property
    def principal(self) -> str | None:
        if self.session is not None:
            return self.session.arn
        return "admin" if self.signed else None


class _SessionIndex:
    """access key -> Session over moto's STS sessions, rebuilt only when their list changes
    (AssumeRole appends; moto's reset replaces the list), so a lookup is two dict reads."""

    def __init__(self) -> None:
        self._version: tuple[int, int] | None = None
        self._by_key: dict[str, Session] = {}

    def clear(self) -> None:
        self._version, self._by_key = None, {}

    def lookup(self, access_key: str) -> Session | None:
        from moto.sts.models import sts_backends

        assumed = sts_backends[ACCOUNT][PARTITION].assumed_roles
        version = (id(assumed), len(assumed))
        if version != self._version:
            self._by_key = {
                r.access_key_id: Session(r.access_key_id, r.arn, r.role_arn, r.account_id, r.policy or None)
                for r in list(assumed)
            }
            self._version = version
        return self._by_key.get(access_key)


def _default_document(policy: Any) -> str:
    for version in policy.versions:
        if version.is_default:
            document = version.document
            return document if isinstance(document, str) else json.dumps(document)
    return "{}"


def _gates(session: Session) -> list[_Gate]:
    """The role's policies as they are now in moto's IAM backend (no caching: a policy changed
    after the session started applies to the next call, as on AWS)."""
    from moto.iam.models import iam_backends

    backend = iam_backends[session.account][PARTITION]
    role = next((r for r in list(backend.roles.values()) if r.arn == session.role_arn), None)
    if role is None:  # deleted role: nothing allows anything
        return [_Gate("identity-based policy", "an", ())]
    inline = tuple((name, compile_policy(doc)) for name, doc in list(role.policies.items()))
    managed = tuple((p.arn, compile_policy(_default_document(p))) for p in list(role.managed_policies.values()))
    gates = [_Gate("identity-based policy", "an", inline + managed)]
    if role.permissions_boundary_arn:
        boundary = backend.managed_policies.get(role.permissions_boundary_arn)
        statements = compile_policy(_default_document(boundary)) if boundary is not None else ()
        gates.append(_Gate("permissions boundary", "a", ((role.permissions_boundary_arn, statements),)))
    if session.session_policy:
        gates.append(_Gate("session policy", "a", (("", compile_policy(session.session_policy)),)))
    return gates


def _context(session: Session, info: CallInfo) -> dict[str, tuple[str, ...]]:
    """The request-context keys evaluated here (README: "IAM, enforced per role")."""
    now = time.time()
    return {
        "aws:requestedregion": (info.region or "us-east-1",),
        "aws:principalarn": (session.role_arn,),
        "aws:principalaccount": (session.account,),
        "aws:principaltype": ("AssumedRole",),
        "aws:currenttime": (datetime.fromtimestamp(now, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),),
        "aws:epochtime": (str(int(now)),),
        "aws:securetransport": (SECURE_TRANSPORT,),
    }


def denial_response(info: CallInfo, message: str) -> ErrorResponse:
    """AccessDenied in the service's own error shape.

    awsQuery / restXml: 403 ``AccessDenied``. Query-compatible JSON/CBOR services (CloudWatch's
    rpcv2Cbor): 403, query code ``AccessDenied`` in ``x-amzn-query-error`` (what the SDKs
    read), ``__type`` the framework's unmodeled AccessDeniedException (CloudWatch models no
    access-denied shape). Other JSON services (DynamoDB): 400 ``AccessDeniedException``.
    restJson (Lambda): 403 ``AccessDeniedException``.
    """
    if info.protocol in ("query", "rest-xml"):
        return render_error(info, 403, "AccessDenied", message, "Sender")
    if info.service in QUERY_COMPATIBLE:
        status, headers, _ = render_error(info, 403, "AccessDenied", message, "Sender")
        type_name = "com.amazon.coral.service#AccessDeniedException"
        headers = [(k, type_name if k.lower() == "x-amzn-errortype" else v) for k, v in headers]
        payload = {"__type": type_name, "message": message}
        body = cbor_encode_text_map(payload) if info.protocol == "cbor" else json.dumps(payload).encode()
        return status, headers, body
    if info.protocol == "json":
        # DynamoDB answers 400; the ARC data plane's model gives AccessDeniedException httpError 403.
        status = 403 if info.service == _ARC_CLUSTER else 400
        return render_error(info, status, "AccessDeniedException", message, "Sender")
    return render_error(info, 403, "AccessDeniedException", message, "Sender")


# =============================================================================================
# Template roles: render template.yaml as CloudFormation would, create its roles in moto
# =============================================================================================


@functools.cache
def _render_topology() -> ModuleType:
    """tests/deploy/render_topology.py, imported by path (it imports cfn-lint: seconds)."""
    spec = importlib.util.spec_from_file_location("multisite_render_topology", RENDER_TOPOLOGY)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"cannot load {RENDER_TOPOLOGY}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_TEMPLATES: dict[str, tuple[int, dict[str, Any]]] = {}
_TEMPLATES_LOCK = threading.Lock()


def _decoded_template(path: Path) -> dict[str, Any]:
    """Decoded once per (path, mtime): the file, not emulator state, is its only input."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise InvalidInput(f"cannot read template {path}: {exc}")
    with _TEMPLATES_LOCK:
        cached = _TEMPLATES.get(str(path))
        if cached is not None and cached[0] == mtime:
            return cached[1]
        from cfnlint.decode import decode

        template, matches = decode(str(path))
        if matches or not isinstance(template, dict):
            raise InvalidInput(f"cannot decode {path}", {"problems": [str(m) for m in matches]})
        _TEMPLATES[str(path)] = (mtime, template)
        return template


@functools.cache
def _stack_resolver() -> type:
    """render_topology's Resolver, plus the names and ARNs CloudFormation would give the
    resources the roles' policies reference (``!Ref`` / ``!GetAtt X.Arn``)."""
    base = _render_topology().Resolver

    class StackResolver(base):  # type: ignore[misc, valid-type]
        def _props(self, logical_id: str) -> dict[str, Any]:
            return self.resources[logical_id].get("Properties", {})

        def _name(self, logical_id: str, prop: str) -> str:
            given = self._props(logical_id).get(prop)
            return str(self.value(given)) if given is not None else f"{self.pseudo['AWS::StackName']}-{logical_id}"

        def _where(self) -> tuple[str, str]:
            return self.pseudo["AWS::Region"], self.pseudo["AWS::AccountId"]

        def resource_ref(self, logical_id: str) -> Any:
            kind = self.resources[logical_id].get("Type")
            region, account = self._where()
            if kind == "AWS::IAM::Role":
                return self._name(logical_id, "RoleName")
            if kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
                return self._name(logical_id, "FunctionName")
            if kind == "AWS::Logs::LogGroup":
                return self._name(logical_id, "LogGroupName")
            if kind in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable"):
                return self._name(logical_id, "TableName")
            if kind == "AWS::SNS::Topic":  # Ref of a topic is its ARN
                return _arn("sns", region, account, self._name(logical_id, "TopicName"))
            if kind == "AWS::SQS::Queue":  # Ref of a queue is its URL
                return f"https://sqs.{region}.amazonaws.com/{account}/{self._name(logical_id, 'QueueName')}"
            return super().resource_ref(logical_id)

        def get_att(self, target: str) -> Any:
            logical_id, _, attribute = target.partition(".")
            kind = self.resources.get(logical_id, {}).get("Type")
            region, account = self._where()
            if attribute == "Arn":
                queue = kind == "AWS::SQS::Queue"  # its Ref is the URL, its ARN ends in the name
                name = self._name(logical_id, "QueueName") if queue else self.resource_ref(logical_id)
                arns = {
                    "AWS::IAM::Role": f"arn:{PARTITION}:iam::{account}:role{self._role_path(logical_id)}{name}",
                    "AWS::Serverless::Function": _arn("lambda", region, account, f"function:{name}"),
                    "AWS::Lambda::Function": _arn("lambda", region, account, f"function:{name}"),
                    "AWS::Logs::LogGroup": _arn("logs", region, account, f"log-group:{name}:*"),
                    "AWS::SQS::Queue": _arn("sqs", region, account, str(name)),
                    "AWS::DynamoDB::Table": _arn("dynamodb", region, account, f"table/{name}"),
                    "AWS::DynamoDB::GlobalTable": _arn("dynamodb", region, account, f"table/{name}"),
                }
                if kind in arns:
                    return arns[kind]
            if kind == "AWS::SQS::Queue" and attribute == "QueueName":
                return self._name(logical_id, "QueueName")
            return super().get_att(target)

        def _role_path(self, logical_id: str) -> str:
            return str(self.value(self._props(logical_id).get("Path", "/")))

    return StackResolver


@dataclass
class _RolePlan:
    logical_id: str
    name: str
    path: str
    arn: str
    description: str
    trust: dict[str, Any]
    policies: dict[str, dict[str, Any]]


def _raw_logical_id(node: Any) -> str | None:
    """The role a function's ``Role: !GetAtt X.Arn`` names, read from the unresolved node."""
    if isinstance(node, dict) and set(node) == {"Fn::GetAtt"}:
        target = node["Fn::GetAtt"]
        return (target.split(".", 1)[0] if isinstance(target, str) else str(target[0])) or None
    return None


def _check_resolved(where: str, document: Any) -> None:
    text = json.dumps(document)
    leftover = re.search(r"<(?:Ref|GetAtt):[^>]+>", text)
    if leftover:
        raise InvalidInput(f"{where}: {leftover[0]} is not resolvable offline")


def _plan_stack(template: dict[str, Any], resolver: Any) -> tuple[dict[str, _RolePlan], dict[str, Any]]:
    """Roles (with inline and AWS::IAM::RolePolicy/Policy documents) and functions of the
    active resources, all resolved; nothing is created yet."""
    resources = template.get("Resources", {})

    def active(resource: dict[str, Any]) -> bool:
        return "Condition" not in resource or bool(resolver.condition(resource["Condition"]))

    roles: dict[str, _RolePlan] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::IAM::Role" or not active(resource):
            continue
        props = resource.get("Properties", {})
        unsupported = sorted({"ManagedPolicyArns", "PermissionsBoundary"} & set(props))
        if unsupported:
            raise InvalidInput(f"{logical_id}: {unsupported} are not supported by the emulator")
        policies = {str(p["PolicyName"]): p["PolicyDocument"] for p in resolver.value(props.get("Policies", []))}
        roles[logical_id] = _RolePlan(
            logical_id,
            str(resolver.resource_ref(logical_id)),
            str(resolver.value(props.get("Path", "/"))),
            str(resolver.get_att(f"{logical_id}.Arn")),
            str(resolver.value(props.get("Description", ""))),
            resolver.value(props["AssumeRolePolicyDocument"]),
            policies,
        )
    by_name = {plan.name: plan for plan in roles.values()}
    for logical_id, resource in resources.items():
        kind = resource.get("Type")
        if kind not in ("AWS::IAM::RolePolicy", "AWS::IAM::Policy") or not active(resource):
            continue
        props = resolver.value(resource.get("Properties", {}))
        names = [props.get("RoleName")] if kind == "AWS::IAM::RolePolicy" else props.get("Roles", [])
        for name in names:
            if name not in by_name:
                raise InvalidInput(f"{logical_id}: role {name!r} is not a role of this template")
            by_name[name].policies[str(props["PolicyName"])] = props["PolicyDocument"]
    functions = {
        logical_id: {
            "role": _raw_logical_id(resource.get("Properties", {}).get("Role")),
            "function_name": resolver.resource_ref(logical_id),
            "function_arn": resolver.get_att(f"{logical_id}.Arn"),
        }
        for logical_id, resource in resources.items()
        if resource.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function") and active(resource)
    }
    for plan in roles.values():
        _check_resolved(f"{plan.logical_id} trust policy", plan.trust)
        for policy_name, document in plan.policies.items():
            _check_resolved(f"{plan.logical_id} policy {policy_name}", document)
    return roles, functions


def _validate_documents(roles: dict[str, _RolePlan]) -> None:
    """moto's own IAM validation, before anything is replaced (all or nothing)."""
    from moto.iam.policy_validation import IAMPolicyDocumentValidator, IAMTrustPolicyDocumentValidator

    for plan in roles.values():
        documents = [("trust policy", plan.trust, IAMTrustPolicyDocumentValidator)]
        documents += [(f"policy {n}", d, IAMPolicyDocumentValidator) for n, d in plan.policies.items()]
        for what, document, validator in documents:
            try:
                validator(json.dumps(document)).validate()
            except Exception as exc:
                raise InvalidInput(f"{plan.logical_id} {what}: {getattr(exc, 'message', exc)}")


def _delete_role(backend: Any, name: str) -> None:
    role = next((r for r in list(backend.roles.values()) if r.name == name), None)
    if role is None:
        return
    for arn in list(role.managed_policies):
        backend.detach_role_policy(arn, name)
    role.policies.clear()
    backend.delete_role(name)


# =============================================================================================
# Control-API input helpers
# =============================================================================================


def _required_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"'{key}' must be a non-empty string")
    return value


def _optional_str(body: dict[str, Any], key: str, default: str) -> str:
    return default if body.get(key) is None else _required_str(body, key)


# =============================================================================================
# The feature
# =============================================================================================


class Iam:
    """IAM per role: authorization for the middleware, handlers for the control API, and
    reset (a state Feature). One per EmulatorState (see ``for_state``)."""

    def __init__(self, state: EmulatorState):
        self.state = state
        self._sessions = _SessionIndex()
        self._stacks: dict[str, list[str]] = {}  # stack name -> role names it created

    # -- Feature ---------------------------------------------------------------------------
    def reset(self) -> None:
        """moto's reset drops the roles and sessions; drop everything derived from them."""
        self._sessions.clear()
        self._stacks.clear()
        compile_policy.cache_clear()

    def snapshot(self) -> dict[str, Any]:
        return {"iam_stacks": {stack: list(names) for stack, names in sorted(self._stacks.items())}}

    def on_region_up(self, region: str) -> None:
        """IAM is global: outages do not concern it."""

    # -- middleware --------------------------------------------------------------------------
    def identify(self, info: CallInfo) -> Caller:
        """Cheap (two dict reads): done before the faults, so every logged call names its caller."""
        if not info.access_key:
            return Caller(None, False)
        return Caller(self._sessions.lookup(info.access_key), True)

    def authorize(
        self, caller: Caller, info: CallInfo, environ: dict[str, Any], body: bytes
    ) -> tuple[Denial, ErrorResponse] | None:
        """None if allowed (administrator, unsigned, or every check allowed); else the denial
        and its response in the call's protocol."""
        session = caller.session
        if session is None:
            return None
        checks = checks_for(_Request(info, environ, body, session.account))
        if not checks:
            return None
        denial = evaluate(session.arn, _gates(session), checks, _context(session, info))
        return None if denial is None else (denial, denial_response(info, denial.message))

    @staticmethod
    def log_fields(caller: Caller, denial: Denial | None) -> dict[str, Any]:
        """``principal`` (and ``denied``) for the request log entry."""
        fields: dict[str, Any] = {"principal": caller.principal}
        if denial is not None:
            fields["denied"] = {"action": denial.action, "resource": denial.resource}
        return fields

    # -- control API -----------------------------------------------------------------------
    def control_routes(self) -> dict[tuple[str, str], Callable[[dict[str, Any]], Any]]:
        return {
            ("POST", "iam/template-roles"): self.template_roles,
            ("POST", "iam/session"): self.session,
            ("POST", "iam/role-policy"): self.role_policy,
            ("GET", "iam/roles"): self.roles,
        }

    def template_roles(self, body: dict[str, Any]) -> dict[str, Any]:
        path = Path(_required_str(body, "template"))
        if not path.is_absolute():
            raise InvalidInput("'template' must be an absolute path")
        parameters = body.get("parameters", {})
        if not isinstance(parameters, dict):
            raise InvalidInput("'parameters' must be an object of CloudFormation parameter values")
        region = _required_str(body, "region")
        stack = _optional_str(body, "stack_name", DEFAULT_STACK)
        template = _decoded_template(path)
        render = _render_topology()
        try:
            values = render.check_parameters(template, parameters)
            resolver = _stack_resolver()(template, values, region, ACCOUNT, PARTITION, stack)
            render.check_rules(template, resolver)
        except render.Rejected as rejected:
            raise InvalidInput("parameters rejected", {"problems": list(rejected.args[0])})
        roles, functions = _plan_stack(template, resolver)
        _validate_documents(roles)
        with self.state.lock:
            self._replace_stack(stack, roles)
        return {
            "roles": {
                lid: {"role_name": p.name, "role_arn": p.arn, "policies": p.policies} for lid, p in roles.items()
            },
            "functions": functions,
        }

    def _replace_stack(self, stack: str, roles: dict[str, _RolePlan]) -> None:
        """Re-posting a stack replaces its roles (and any same-named role): idempotent."""
        from moto.iam.models import iam_backends

        backend = iam_backends[ACCOUNT][PARTITION]
        for name in set(self._stacks.get(stack, [])) | {p.name for p in roles.values()}:
            _delete_role(backend, name)
        for plan in roles.values():
            backend.create_role(plan.name, json.dumps(plan.trust), plan.path, None, plan.description, [], None)
            for policy_name, document in plan.policies.items():
                backend.put_role_policy(plan.name, policy_name, json.dumps(document))
        self._stacks[stack] = [p.name for p in roles.values()]

    def session(self, body: dict[str, Any]) -> dict[str, Any]:
        """AssumeRole through moto's STS backend, so GetCallerIdentity knows the session."""
        from moto.iam.models import iam_backends
        from moto.sts.models import sts_backends

        role_name = _required_str(body, "role_name")
        session_name = _optional_str(body, "session_name", DEFAULT_SESSION)
        if not re.fullmatch(r"[\w+=,.@-]{2,64}", session_name):
            raise InvalidInput("'session_name' must be 2-64 characters of [A-Za-z0-9_+=,.@-]")
        with self.state.lock:
            role = next((r for r in list(iam_backends[ACCOUNT][PARTITION].roles.values()) if r.name == role_name), None)
            if role is None:
                raise InvalidInput(f"no role named {role_name!r}")
            assumed = sts_backends[ACCOUNT][PARTITION].assume_role(
                region_name="us-east-1",
                role_session_name=session_name,
                role_arn=role.arn,
                policy=None,
                duration=3600,
                external_id=None,
            )
        return {
            "access_key_id": assumed.access_key_id,
            "secret_access_key": assumed.secret_access_key,
            "session_token": assumed.session_token,
            "assumed_role_arn": assumed.arn,
        }

    def role_policy(self, body: dict[str, Any]) -> dict[str, Any]:
        """PutRolePolicy / DeleteRolePolicy (``"document": null``) through moto's IAM backend."""
        from moto.iam.models import iam_backends

        role_name = _required_str(body, "role_name")
        policy_name = _required_str(body, "policy_name")
        if "document" not in body or not isinstance(body["document"], (dict, type(None))):
            raise InvalidInput("'document' must be a policy document object, or null to delete the policy")
        backend = iam_backends[ACCOUNT][PARTITION]
        with self.state.lock:
            try:
                if body["document"] is None:
                    backend.delete_role_policy(role_name, policy_name)
                else:
                    backend.put_role_policy(role_name, policy_name, json.dumps(body["document"]))
            except Exception as exc:  # moto's NoSuchEntity / MalformedPolicyDocument
                raise InvalidInput(str(getattr(exc, "message", exc)))
        return {"ok": True}

    def roles(self, _: dict[str, Any]) -> dict[str, Any]:
        """Every role in moto's IAM backend with its documents (debugging)."""
        from moto.iam.models import iam_backends

        backend = iam_backends[ACCOUNT][PARTITION]
        with self.state.lock:
            return {
                "roles": [
                    {
                        "role_name": role.name,
                        "role_arn": role.arn,
                        "inline_policies": {n: json.loads(d) for n, d in role.policies.items()},
                        "managed_policies": {
                            p.arn: json.loads(_default_document(p)) for p in role.managed_policies.values()
                        },
                        "permissions_boundary": role.permissions_boundary_arn,
                    }
                    for role in backend.roles.values()
                ],
                "stacks": {stack: list(names) for stack, names in sorted(self._stacks.items())},
            }


def for_state(state: EmulatorState) -> Iam:
    """The state's Iam feature, registered on first use (middleware and control API share it)."""
    with state.lock:
        for feature in state.features:
            if isinstance(feature, Iam):
                return feature
        feature = Iam(state)
        state.features.append(feature)
        return feature

"""Route 53 GetHealthCheckStatus that follows Inverted, Disabled and injected failures.

moto 5.2.5 always reports one "Success" observation. AWS semantics followed:

* the endpoint check fails while a failure is injected for the health check
  id (control API ``/_multisite/health-check-failure``), else succeeds;
* a CALCULATED check is healthy when at least HealthThreshold of its child
  checks are healthy;
* a Disabled check is considered healthy whatever its endpoint does;
* Inverted flips the result, so Disabled + Inverted is the documented way to
  force a check unhealthy.
* A RECOVERY_CONTROL check (``HealthCheckConfig{Type: RECOVERY_CONTROL,
  RoutingControlArn}``, which moto 5.2.5 drops the ARN of: patched here) is healthy
  exactly while its Route 53 ARC routing control is On (``arc.py``); its ARN must name an
  existing routing control (else InvalidInput), and UpdateHealthCheck on it is InvalidInput
  "Invalid parameter : Update is not supported for this health check type." as AWS answers.

The effective status is reported by every checker Region as a
HealthCheckObservation whose StatusReport.Status starts with "Success:" or
"Failure:", as AWS's do.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.route53.exceptions import InvalidInput
from moto.route53.models import HealthCheck
from moto.route53.responses import Route53

from .state import EmulatorState

# Route 53's default health checker Regions (used when a check names none).
DEFAULT_CHECKER_REGIONS = (
    "us-east-1",
    "us-west-1",
    "us-west-2",
    "eu-west-1",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-northeast-1",
    "sa-east-1",
)
HEALTHY = "Success: HTTP Status Code 200, OK"
ENDPOINT_FAILING = "Failure: HTTP Status Code 503, Service Unavailable"
RECOVERY_CONTROL = "RECOVERY_CONTROL"
CONTROL_ON = "Success: the routing control state is On"
CONTROL_OFF = "Failure: the routing control state is Off"
# HealthCheckConfig members that do not apply to a RECOVERY_CONTROL check (AWS rejects a
# RequestInterval / FailureThreshold / MeasureLatency on one: aws-cdk issue 34262).
_NOT_FOR_RECOVERY_CONTROL = (
    "IPAddress", "Port", "ResourcePath", "FullyQualifiedDomainName", "SearchString", "RequestInterval",
    "FailureThreshold", "MeasureLatency", "HealthThreshold", "ChildHealthChecks", "EnableSNI", "Regions",
    "AlarmIdentifier", "InsufficientDataHealthStatus",
)


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


class HealthChecks:
    def __init__(self, state: EmulatorState):
        self.state = state

    def reset(self) -> None:
        pass  # injected failures live in EmulatorState and are cleared there

    def snapshot(self) -> dict[str, Any]:
        return {}

    def on_region_up(self, region: str) -> None:
        pass

    def is_healthy(self, backend: Any, health_check: Any, depth: int = 0) -> bool:
        """Effective status: (Disabled ? healthy : endpoint/children result) XOR Inverted."""
        return self._unflipped(backend, health_check, depth) != _truthy(health_check.inverted)

    def _unflipped(self, backend: Any, health_check: Any, depth: int) -> bool:
        if _truthy(health_check.disabled):
            return True  # AWS: Route 53 considers a disabled health check healthy
        if health_check.type_ == RECOVERY_CONTROL:
            if health_check.id in self.state.failing_health_checks:
                return False
            return _routing_control_state(self.state, health_check) == "On"
        if health_check.type_ == "CALCULATED":
            children = [backend.health_checks.get(c) for c in (health_check.children or [])]
            healthy_children = sum(
                1 for c in children if c is not None and depth < 10 and self.is_healthy(backend, c, depth + 1)
            )
            return healthy_children >= int(health_check.health_threshold or 0)
        return health_check.id not in self.state.failing_health_checks

    def status_text(self, backend: Any, health_check: Any) -> str:
        if self.is_healthy(backend, health_check):
            plain = health_check.type_ == RECOVERY_CONTROL and not _truthy(health_check.inverted) and not _truthy(health_check.disabled)
            return CONTROL_ON if plain else HEALTHY
        if _truthy(health_check.inverted):
            return "Failure: the health check is inverted and its check succeeded"
        if health_check.type_ == "CALCULATED":
            return "Failure: fewer child health checks are healthy than the health threshold"
        if health_check.type_ == RECOVERY_CONTROL and health_check.id not in self.state.failing_health_checks:
            return CONTROL_OFF
        return ENDPOINT_FAILING


def _routing_control_state(state: EmulatorState, health_check: Any) -> str | None:
    """On / Off of the check's routing control; None if it no longer exists (unhealthy)."""
    from .arc import for_state

    arn = getattr(health_check, "routing_control_arn", None)
    return for_state(state).routing_control_state(arn) if arn else None


def _recovery_control_config(original: Any) -> Any:
    """HealthCheck.health_check_config with RoutingControlArn, and for a RECOVERY_CONTROL check
    only the members that apply to it (Type, Inverted, Disabled, RoutingControlArn)."""

    def health_check_config(self: HealthCheck) -> dict[str, Any]:
        config = original.fget(self)
        arn = getattr(self, "routing_control_arn", None)
        if self.type_ == RECOVERY_CONTROL:
            config = {k: config[k] for k in ("Type", "Inverted", "Disabled") if k in config}
        if arn:
            config["RoutingControlArn"] = arn
        return config

    return property(health_check_config)


def install(state: EmulatorState) -> HealthChecks:
    checks = HealthChecks(state)

    @functools.wraps(Route53.get_health_check_status)
    def get_health_check_status(self: Route53) -> ActionResult:
        health_check = self.backend.get_health_check(self._get_param("HealthCheckId"))  # NoSuchHealthCheck
        with state.lock:
            status = checks.status_text(self.backend, health_check)
        checked = utcnow()
        observations = [
            {
                "Region": region,
                "IPAddress": f"15.177.{i}.{10 + i}",
                "StatusReport": {"Status": status, "CheckedTime": checked},
            }
            for i, region in enumerate(health_check.regions or DEFAULT_CHECKER_REGIONS)
        ]
        return ActionResult({"HealthCheckObservations": observations})

    Route53.get_health_check_status = get_health_check_status  # type: ignore[method-assign]

    original_create = Route53.create_health_check
    original_update = Route53.update_health_check

    @functools.wraps(original_create)
    def create_health_check(self: Route53) -> ActionResult:
        config = self._get_param("HealthCheckConfig") or {}
        check_type = config.get("Type")
        arn = config.get("RoutingControlArn")
        if check_type == RECOVERY_CONTROL:
            if not arn:
                raise InvalidInput("Invalid parameter : RoutingControlArn is required for a RECOVERY_CONTROL health check.")
            extra = [k for k in _NOT_FOR_RECOVERY_CONTROL if config.get(k) not in (None, "", [], {})]
            if extra:
                raise InvalidInput(f"Invalid parameter : {', '.join(extra)} cannot be specified for a RECOVERY_CONTROL health check.")
            from .arc import for_state

            if for_state(state).routing_control_state(arn) is None:
                raise InvalidInput(f"Invalid parameter : RoutingControlArn {arn} is not an existing routing control.")
        elif arn:
            raise InvalidInput(f"Invalid parameter : RoutingControlArn applies only to RECOVERY_CONTROL health checks, not {check_type}.")
        with state.lock:  # so that the new check is the one this call made
            before = set(self.backend.health_checks)
            result = original_create(self)
            if arn:
                for health_check_id in set(self.backend.health_checks) - before:
                    self.backend.health_checks[health_check_id].routing_control_arn = arn
        return result

    @functools.wraps(original_update)
    def update_health_check(self: Route53) -> ActionResult:
        health_check = self.backend.get_health_check(self._get_param("HealthCheckId"))  # NoSuchHealthCheck
        if health_check.type_ == RECOVERY_CONTROL:
            # What AWS answers (terraform-provider-aws issue 44247: changing Inverted of one).
            raise InvalidInput("Invalid parameter : Update is not supported for this health check type.")
        return original_update(self)

    Route53.create_health_check = create_health_check  # type: ignore[method-assign]
    Route53.update_health_check = update_health_check  # type: ignore[method-assign]
    if not getattr(HealthCheck.health_check_config.fget, "_multisite", False):
        patched = _recovery_control_config(HealthCheck.health_check_config)
        patched.fget._multisite = True  # type: ignore[attr-defined]
        HealthCheck.health_check_config = patched  # type: ignore[method-assign]
    return checks

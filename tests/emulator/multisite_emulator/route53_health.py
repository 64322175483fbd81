"""Route 53 GetHealthCheckStatus that follows Inverted, Disabled and injected failures.

moto 5.2.5 always reports one "Success" observation. AWS semantics followed:

* the endpoint check fails while a failure is injected for the health check
  id (control API ``/_multisite/health-check-failure``), else succeeds;
* a CALCULATED check is healthy when at least HealthThreshold of its child
  checks are healthy;
* a Disabled check is considered healthy whatever its endpoint does;
* Inverted flips the result, so Disabled + Inverted is the documented way to
  force a check unhealthy.

The effective status is reported by every checker Region as a
HealthCheckObservation whose StatusReport.Status starts with "Success:" or
"Failure:", as AWS's do.
"""

from __future__ import annotations

import functools
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
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
        if health_check.type_ == "CALCULATED":
            children = [backend.health_checks.get(c) for c in (health_check.children or [])]
            healthy_children = sum(
                1 for c in children if c is not None and depth < 10 and self.is_healthy(backend, c, depth + 1)
            )
            return healthy_children >= int(health_check.health_threshold or 0)
        return health_check.id not in self.state.failing_health_checks

    def status_text(self, backend: Any, health_check: Any) -> str:
        if self.is_healthy(backend, health_check):
            return HEALTHY
        if _truthy(health_check.inverted):
            return "Failure: the health check is inverted and its check succeeded"
        if health_check.type_ == "CALCULATED":
            return "Failure: fewer child health checks are healthy than the health threshold"
        return ENDPOINT_FAILING


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
    return checks

"""The control API: JSON over HTTP under /_multisite/ on the emulator's port.

Tests and the drill use it to inject faults and tune timings. It is never
subject to the faults it injects. Bad input gets 400 {"error": "..."}.
"""

from __future__ import annotations

import json
from typing import Any, Callable
from urllib.parse import parse_qsl

from . import arc, cloudwatch_alarms, dns_geo, iam
from .faults import CONTROL_PLANE_MODES, GLOBAL_CONTROL_PLANES
from .protocols import UNAVAILABLE
from .state import EmulatorState

PREFIX = "/_multisite/"


class BadRequest(Exception):
    pass


def _json_response(start_response: Callable[..., Any], status: int, payload: Any) -> list[bytes]:
    body = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}.get(status, "")
    start_response(
        f"{status} {reason}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def _region(body: dict[str, Any], key: str = "region", required: bool = True) -> str | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{key}' must be a non-empty string")
    return value


def _number(body: dict[str, Any], key: str, required: bool = True) -> float | None:
    value = body.get(key)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise BadRequest(f"'{key}' must be a non-negative number")
    return float(value)


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if not isinstance(value, bool):
        raise BadRequest(f"'{key}' must be true or false")
    return value


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequest(f"'{key}' must be a non-empty string when given")
    return value


class ControlApi:
    def __init__(self, state: EmulatorState):
        self.state = state
        self.routes: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {
            ("GET", "health"): lambda _: {"ok": True},
            ("POST", "reset"): self.reset,
            ("POST", "outage"): self.outage,
            ("POST", "control-plane"): self.control_plane,
            ("POST", "latency"): self.latency,
            ("POST", "throttle"): self.throttle,
            ("POST", "replication"): self.replication,
            ("POST", "timing"): self.timing,
            ("POST", "health-check-failure"): self.health_check_failure,
            ("GET", "requests"): self.requests,
            ("DELETE", "requests"): self.clear_requests,
            ("GET", "state"): lambda _: self.state.snapshot(),
            ("GET", "dns-areas"): lambda _: dns_geo.areas_document(),
            **iam.for_state(state).control_routes(),
            **arc.for_state(state).control_routes(),
            **self._alarm_routes(cloudwatch_alarms.for_state(state)),
        }

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET").upper()
        name = environ.get("PATH_INFO", "")[len(PREFIX):].strip("/")
        handler = self.routes.get((method, name))
        if handler is None:
            if any(path == name for (_, path) in self.routes):
                return _json_response(start_response, 405, {"error": f"{method} not allowed on {PREFIX}{name}"})
            return _json_response(start_response, 404, {"error": f"unknown control path {PREFIX}{name}"})
        try:
            body = self._read_json(environ) if method == "POST" else dict(parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True))
            return _json_response(start_response, 200, handler(body))
        except BadRequest as exc:
            return _json_response(start_response, 400, {"error": str(exc)})
        except iam.InvalidInput as exc:
            return _json_response(start_response, 400, {"error": str(exc), **exc.details})

    @staticmethod
    def _read_json(environ: dict[str, Any]) -> dict[str, Any]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise BadRequest("bad Content-Length")
        raw = environ["wsgi.input"].read(length) if length else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BadRequest(f"body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            raise BadRequest("body must be a JSON object")
        return body

    # -- handlers ---------------------------------------------------------
    @staticmethod
    def _alarm_routes(alarms: cloudwatch_alarms.CloudWatchAlarms) -> dict[tuple[str, str], Callable[[dict[str, Any]], Any]]:
        return {
            ("GET", "events"): lambda query: alarms.events_of(_region(query, required=False)),
            ("DELETE", "events"): lambda _: alarms.clear_events(),
            ("POST", "alarms/evaluate"): lambda body: alarms.evaluate_all(
                _region(body, required=False), _number(body, "at", required=False)
            ),
        }

    def reset(self, _: dict[str, Any]) -> dict[str, Any]:
        self.state.reset()
        return {"ok": True}

    def outage(self, body: dict[str, Any]) -> dict[str, Any]:
        region = _region(body)
        spared = body.get("except_services", [])
        if not isinstance(spared, list) or not all(isinstance(s, str) and s for s in spared):
            raise BadRequest("'except_services' must be a list of SigV4 service names")
        services = body.get("services")
        if services is not None:
            if not isinstance(services, list) or not services or not all(isinstance(s, str) and s for s in services):
                raise BadRequest("'services' must be a non-empty list of SigV4 service names")
            if body.get("except_services") is not None:
                raise BadRequest("'services' and 'except_services' cannot be given together")
            services = frozenset(s.lower() for s in services)
        self.state.set_outage(region, _bool(body, "down"), frozenset(s.lower() for s in spared), services)
        with self.state.lock:
            return {
                "ok": True,
                "outages": sorted(self.state.outages),
                "outage_services": {r: sorted(s) for r, s in sorted(self.state.outage_services.items())},
            }

    def control_plane(self, body: dict[str, Any]) -> dict[str, Any]:
        service = _region(body, "service").lower()
        if service not in GLOBAL_CONTROL_PLANES:
            raise BadRequest(
                f"'service' must be a global service with a separate control plane: {sorted(GLOBAL_CONTROL_PLANES)}"
            )
        down = _bool(body, "down")
        mode = body.get("mode")
        if mode is None:
            mode = UNAVAILABLE
        if mode not in CONTROL_PLANE_MODES:
            raise BadRequest(f"'mode' must be one of {list(CONTROL_PLANE_MODES)}")
        self.state.set_control_plane(service, down, mode)
        with self.state.lock:
            return {"ok": True, "control_planes_down": dict(sorted(self.state.control_planes_down.items()))}

    def latency(self, body: dict[str, Any]) -> dict[str, Any]:
        region = _region(body)
        ms = _number(body, "ms")
        with self.state.lock:
            if ms:
                self.state.latency_ms[region] = ms
            else:
                self.state.latency_ms.pop(region, None)
        return {"ok": True}

    def throttle(self, body: dict[str, Any]) -> dict[str, Any]:
        region = _region(body)
        count = body.get("count")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise BadRequest("'count' must be a non-negative integer")
        service = _optional_str(body, "service")
        operation = _optional_str(body, "operation")
        self.state.set_throttle(region, count, service.lower() if service else None, operation)
        return {"ok": True}

    def replication(self, body: dict[str, Any]) -> dict[str, Any]:
        delay = _number(body, "delay_ms")
        source = _region(body, "source", required=False)
        destination = _region(body, "destination", required=False)
        if (source is None) != (destination is None):
            raise BadRequest("'source' and 'destination' must be given together")
        with self.state.lock:
            if source is None:
                self.state.replication_delay_ms = delay
            else:
                self.state.pair_delay_ms[(source, destination)] = delay
        return {"ok": True}

    def timing(self, body: dict[str, Any]) -> dict[str, Any]:
        keys = ("replica_creating_ms", "replica_deleting_ms", "failover_ms", "mrsc_conflict_window_ms")
        unknown = set(body) - set(keys)
        if unknown:
            raise BadRequest(f"unknown timing keys: {sorted(unknown)}")
        values = {k: _number(body, k, required=False) for k in keys}
        with self.state.lock:
            for key, value in values.items():
                if value is not None:
                    self.state.timings[key] = value
            return {"ok": True, "timings": dict(self.state.timings)}

    def health_check_failure(self, body: dict[str, Any]) -> dict[str, Any]:
        health_check_id = _region(body, "health_check_id")
        failing = _bool(body, "failing")
        with self.state.lock:
            if failing:
                self.state.failing_health_checks.add(health_check_id)
            else:
                self.state.failing_health_checks.discard(health_check_id)
        return {"ok": True}

    def requests(self, _: dict[str, Any]) -> dict[str, Any]:
        with self.state.lock:
            return {"requests": [dict(r) for r in self.state.requests]}

    def clear_requests(self, _: dict[str, Any]) -> dict[str, Any]:
        with self.state.lock:
            self.state.requests.clear()
        return {"ok": True}

"""Shared emulator state: the one lock, the fault settings, timings and the scheduler.

Everything that mutates emulator or moto state does so while holding
``EmulatorState.lock`` (an RLock): the threaded HTTP server, the control API
and the scheduler thread all take it, so the DR features never observe a
half-applied change. Sleeping (latency injection) happens outside the lock.
"""

from __future__ import annotations

import heapq
import itertools
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class Defaults:
    """CLI-provided defaults; ``reset`` brings every setting back to these."""

    replication_delay_ms: float = 100.0
    replica_creating_ms: float = 300.0
    replica_deleting_ms: float = 300.0
    failover_ms: float = 300.0


class Feature(Protocol):
    """What a DR feature module registers with the state."""

    def reset(self) -> None: ...

    def snapshot(self) -> dict[str, Any]: ...

    def on_region_up(self, region: str) -> None: ...


class Scheduler:
    """A single background thread running delayed tasks (replication, status changes).

    Tasks run while holding the state lock. ``clear`` bumps a generation so a
    task popped just before a reset can never touch the fresh state.
    """

    def __init__(self, lock: threading.RLock):
        self._state_lock = lock
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._generation = 0
        self._stopped = False
        self._thread = threading.Thread(
            target=self._run, name="multisite-scheduler", daemon=True
        )
        self._thread.start()

    def call_later(self, delay_ms: float, fn: Callable[[], None]) -> None:
        due = time.monotonic() + max(0.0, delay_ms) / 1000.0
        with self._cv:
            heapq.heappush(self._heap, (due, next(self._seq), self._generation, fn))
            self._cv.notify()

    def clear(self) -> None:
        """Drop every pending task (caller holds the state lock)."""
        with self._cv:
            self._heap.clear()
            self._generation += 1
            self._cv.notify()

    def pending(self) -> int:
        with self._cv:
            return len(self._heap)

    def stop(self) -> None:
        with self._cv:
            self._stopped = True
            self._cv.notify()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._stopped:
                    now = time.monotonic()
                    if self._heap and self._heap[0][0] <= now:
                        break
                    timeout = (self._heap[0][0] - now) if self._heap else None
                    self._cv.wait(timeout)
                if self._stopped:
                    return
                due = []
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap))
            for _, _, generation, fn in due:
                with self._state_lock:
                    if generation != self._generation:
                        continue
                    try:
                        fn()
                    except Exception:  # a broken task must not kill the thread
                        traceback.print_exc(file=sys.stderr)


class EmulatorState:
    """Fault settings, timings and request log; features plug in for reset/dump."""

    REQUEST_LOG_LIMIT = 200_000

    def __init__(self, defaults: Defaults):
        self.defaults = defaults
        self.lock = threading.RLock()
        self._t0 = time.monotonic()
        self.scheduler = Scheduler(self.lock)
        self.features: list[Feature] = []
        # Number of resets so far: a call that straddles a reset (e.g. one an ARC endpoint held
        # in "timeout" mode) belongs to the previous test and is not logged after it.
        self.resets = 0
        self._clear_settings()

    # -- time -------------------------------------------------------------
    def now_ms(self) -> float:
        """Monotonic milliseconds since the emulator started (request log clock)."""
        return (time.monotonic() - self._t0) * 1000.0

    # -- settings ---------------------------------------------------------
    def _clear_settings(self) -> None:
        # Region -> services spared by the outage (empty: every API of the Region fails).
        self.outages: dict[str, frozenset[str]] = {}
        # Region -> the only services of it that are down (a service outage; the
        # rest of the Region answers). Independent of ``outages``: a call fails if
        # either says so.
        self.outage_services: dict[str, frozenset[str]] = {}
        # Global service (SigV4 name) -> failure mode ("unavailable" | "throttling")
        # while its control plane is down, whatever Region signs the call.
        self.control_planes_down: dict[str, str] = {}
        self.latency_ms: dict[str, float] = {}
        # Each rule: {"region", "service", "operation", "remaining"}.
        self.throttles: list[dict[str, Any]] = []
        self.replication_delay_ms = self.defaults.replication_delay_ms
        self.pair_delay_ms: dict[tuple[str, str], float] = {}
        self.timings = {
            "replica_creating_ms": self.defaults.replica_creating_ms,
            "replica_deleting_ms": self.defaults.replica_deleting_ms,
            "failover_ms": self.defaults.failover_ms,
            # MRSC: how long after a write another Region's write to the same item conflicts.
            "mrsc_conflict_window_ms": 0.0,
        }
        self.failing_health_checks: set[str] = set()
        self.requests: list[dict[str, Any]] = []

    def is_down(self, region: str | None, service: str | None = None) -> bool:
        """Whether calls to ``service`` (SigV4 signing name) in ``region`` fail.

        ``service=None`` asks whether any API of the Region is down. Region
        outages only: a global control plane being down is ``control_planes_down``.
        """
        if region is None:
            return False
        spared = self.outages.get(region)
        if spared is not None and (service is None or service not in spared):
            return True
        down = self.outage_services.get(region)
        return bool(down) and (service is None or service in down)

    def replication_delay(self, source: str, destination: str) -> float:
        return self.pair_delay_ms.get((source, destination), self.replication_delay_ms)

    def set_outage(
        self,
        region: str,
        down: bool,
        except_services: frozenset[str] = frozenset(),
        services: frozenset[str] | None = None,
    ) -> None:
        """Region outage (``services`` None) or service outage (only ``services``).

        Down: a Region outage replaces the Region's spared set; a service outage
        adds ``services`` to the Region's down services. Up: without ``services``
        the whole Region comes back (Region and service outages); with them, just
        those services' outage ends (a Region outage stays). Whenever something
        came back, features' ``on_region_up`` hooks run: they must check
        ``is_down`` for the services they need (replication asks for dynamodb).
        """
        with self.lock:
            if down:
                if services is None:
                    self.outages[region] = except_services
                else:
                    self.outage_services[region] = self.outage_services.get(region, frozenset()) | services
                return
            if services is None:
                was_down = region in self.outages or region in self.outage_services
                self.outages.pop(region, None)
                self.outage_services.pop(region, None)
            else:
                current = self.outage_services.get(region, frozenset())
                was_down = bool(current & services)
                if current - services:
                    self.outage_services[region] = current - services
                else:
                    self.outage_services.pop(region, None)
            if was_down:
                for feature in self.features:
                    feature.on_region_up(region)

    def set_control_plane(self, service: str, down: bool, mode: str) -> None:
        """Take a global service's control plane down (in ``mode``) or bring it back."""
        with self.lock:
            if down:
                self.control_planes_down[service] = mode
            else:
                self.control_planes_down.pop(service, None)

    def take_throttle(self, region: str | None, service: str | None, operation: str) -> bool:
        """Consume one throttled call from the first matching rule, if any."""
        with self.lock:
            for rule in self.throttles:
                if rule["remaining"] <= 0 or rule["region"] != region:
                    continue
                if rule["service"] is not None and rule["service"] != service:
                    continue
                if rule["operation"] is not None and rule["operation"] != operation:
                    continue
                rule["remaining"] -= 1
                return True
            return False

    def set_throttle(self, region: str, count: int, service: str | None, operation: str | None) -> None:
        with self.lock:
            self.throttles = [
                r
                for r in self.throttles
                if (r["region"], r["service"], r["operation"]) != (region, service, operation)
                and r["remaining"] > 0
            ]
            if count > 0:
                self.throttles.append(
                    {"region": region, "service": service, "operation": operation, "remaining": count}
                )

    def log_request(self, entry: dict[str, Any], since_reset: int | None = None) -> None:
        """Append to the request log; ``since_reset`` (``resets`` when the call arrived): a call
        that a reset overtook is dropped, so the fresh log holds only calls made after it."""
        with self.lock:
            if since_reset is not None and since_reset != self.resets:
                return
            if len(self.requests) >= self.REQUEST_LOG_LIMIT:
                del self.requests[: self.REQUEST_LOG_LIMIT // 10]
            self.requests.append(entry)

    # -- reset / dump -----------------------------------------------------
    def reset(self) -> None:
        """Clear every emulator setting and all of moto's backends."""
        from moto.moto_api._internal.models import moto_api_backend

        with self.lock:
            self.resets += 1
            self.scheduler.clear()
            self._clear_settings()
            for feature in self.features:
                feature.reset()
            moto_api_backend.reset()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            dump: dict[str, Any] = {
                "outages": sorted(self.outages),
                "outage_exceptions": {r: sorted(s) for r, s in sorted(self.outages.items()) if s},
                "outage_services": {r: sorted(s) for r, s in sorted(self.outage_services.items())},
                "control_planes_down": dict(sorted(self.control_planes_down.items())),
                "latency_ms": dict(sorted(self.latency_ms.items())),
                "throttles": [dict(r) for r in self.throttles if r["remaining"] > 0],
                "replication_delay_ms": self.replication_delay_ms,
                "pair_delay_ms": [
                    {"source": s, "destination": d, "delay_ms": ms}
                    for (s, d), ms in sorted(self.pair_delay_ms.items())
                ],
                "timings": dict(self.timings),
                "failing_health_checks": sorted(self.failing_health_checks),
                "scheduled_tasks": self.scheduler.pending(),
                "request_log_size": len(self.requests),
            }
            for feature in self.features:
                dump.update(feature.snapshot())
            return dump

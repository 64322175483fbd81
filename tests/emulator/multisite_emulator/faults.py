"""Per-Region fault injection applied before a call reaches moto.

Order matters and mirrors a sick Region: first the injected latency (the call
is slow), then the outage (it fails with 503 ServiceUnavailable), then
throttling (it is rejected with the protocol's throttling error).
"""

from __future__ import annotations

import time

from .protocols import THROTTLING, UNAVAILABLE, CallInfo, error_code, render_error
from .state import EmulatorState

ErrorResponse = tuple[int, list[tuple[str, str]], bytes]


def apply_latency(state: EmulatorState, info: CallInfo) -> None:
    # Read under the lock, sleep outside it: other calls must not wait for us.
    with state.lock:
        delay_ms = state.latency_ms.get(info.region or "", 0.0)
    if delay_ms > 0:
        time.sleep(delay_ms / 1000.0)


def injected_error(state: EmulatorState, info: CallInfo) -> ErrorResponse | None:
    if state.is_down(info.region, info.service):
        # 503 + ServiceUnavailable: every SDK classifies this as transient/retryable.
        return render_error(
            info,
            503,
            error_code(info, UNAVAILABLE),
            f"Service unavailable in {info.region} (multisite emulator: Region outage)",
            "Receiver",
        )
    if state.take_throttle(info.region, info.service, info.operation):
        return render_error(info, 400, error_code(info, THROTTLING), "Rate exceeded", "Sender")
    return None

"""Per-Region fault injection applied before a call reaches moto.

Order matters and mirrors a sick Region: first the injected latency (the call
is slow), then the outage (it fails with 503 ServiceUnavailable), then a
global service's control plane being down (whatever Region signs the call),
then throttling (it is rejected with the protocol's throttling error).
"""

from __future__ import annotations

import time

from .protocols import THROTTLING, UNAVAILABLE, CallInfo, error_code, render_error
from .state import EmulatorState

ErrorResponse = tuple[int, list[tuple[str, str]], bytes]

# Global services whose control plane can be taken down on its own
# (POST /_multisite/control-plane). Route 53 is the one we depend on: its control
# plane lives in us-east-1 whichever Region a client signs for, while its data
# plane (DNS answers) is spread worldwide and keeps answering. IAM, CloudFront
# and Organizations are also us-east-1 control planes, but multisite calls none
# of them at run time, so modelling them would be untested surface.
GLOBAL_CONTROL_PLANES = frozenset({"route53"})

# Operations of those services that are data plane, i.e. stay up while the
# control plane is down. TestDNSAnswer is how the emulator answers DNS queries.
DATA_PLANE: dict[str, frozenset[str]] = {"route53": frozenset({"TestDNSAnswer"})}

# How a downed control plane fails a call: 503 ServiceUnavailable (impaired), or
# 400 Throttling "Rate exceeded" (shedding load). For Route 53 the throttling
# answer is the one its Developer Guide documents ("Throttling for Amazon Route 53
# API requests": HTTP 400, Code Throttling, Message "Rate exceeded"), which is
# account-wide like a control-plane brown-out. PriorRequestNotComplete (also 400,
# also classified as throttling by the SDKs) is not used: Route 53 returns it when
# a hosted zone's previous request is still being processed, and the model lists it
# only for zone/tag operations (ChangeResourceRecordSets, DeleteHostedZone, ...),
# not for the health-check ones (GetHealthCheck, UpdateHealthCheck, ListHealthChecks
# could not return it). The 503 ServiceUnavailable is the AWS common error "the
# request has failed due to a temporary failure of the server", as a Region outage
# renders it; InternalFailure (500) is an unknown server error, not an outage.
CONTROL_PLANE_MODES = (UNAVAILABLE, THROTTLING)

# HTTP status of the throttling error where a service's model gives its ThrottlingException
# another status than the usual 400 (Smithy httpError 429 for both Route 53 ARC services).
THROTTLING_STATUS = {"route53-recovery-cluster": 429, "route53-recovery-control-config": 429}


def _throttled(info: CallInfo) -> ErrorResponse:
    return render_error(info, THROTTLING_STATUS.get(info.service or "", 400), error_code(info, THROTTLING), "Rate exceeded", "Sender")


def apply_latency(state: EmulatorState, info: CallInfo) -> None:
    # Read under the lock, sleep outside it: other calls must not wait for us.
    with state.lock:
        delay_ms = state.latency_ms.get(info.region or "", 0.0)
    if delay_ms > 0:
        time.sleep(delay_ms / 1000.0)


def injected_error(state: EmulatorState, info: CallInfo) -> ErrorResponse | None:
    if state.is_down(info.region, info.service):
        # 503 + ServiceUnavailable: every SDK classifies this as transient/retryable.
        with state.lock:
            spared = state.outages.get(info.region or "")
        what = "Region outage" if spared is not None and info.service not in spared else f"{info.service} outage"
        return render_error(
            info,
            503,
            error_code(info, UNAVAILABLE),
            f"Service unavailable in {info.region} (multisite emulator: {what})",
            "Receiver",
        )
    mode = control_plane_failure(state, info)
    if mode == UNAVAILABLE:
        return render_error(
            info,
            503,
            error_code(info, UNAVAILABLE),
            f"Service unavailable (multisite emulator: {info.service} control plane down)",
            "Receiver",
        )
    if mode == THROTTLING:
        return _throttled(info)
    if state.take_throttle(info.region, info.service, info.operation):
        return _throttled(info)
    return None


def control_plane_failure(state: EmulatorState, info: CallInfo) -> str | None:
    """The failure mode of the call's global control plane if it is down, else None.

    Applies whatever Region signed the call; data-plane operations are spared.
    """
    if info.service is None:
        return None
    with state.lock:
        mode = state.control_planes_down.get(info.service)
    if mode is None or info.operation in DATA_PLANE.get(info.service, frozenset()):
        return None
    return mode

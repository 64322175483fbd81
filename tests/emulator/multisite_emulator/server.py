"""WSGI middleware around moto's server app, and the threaded HTTP server.

Every AWS call passes through ``EmulatorMiddleware``: it is classified
(Region, service, operation), subjected to injected faults, forwarded to
moto (whose classes the feature modules have patched in-process), and logged.
"""

from __future__ import annotations

import io
import socket
import sys
import traceback
from typing import Any, Callable, Iterable

from . import arc, aurora_global, cloudwatch_alarms, cloudwatch_rpcv2, dynamodb_global, iam, route53_dns, route53_health
from .control import PREFIX, ControlApi
from .faults import apply_latency, injected_error
from .protocols import CallInfo, classify, render_error
from .state import Defaults, EmulatorState

_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _read_body(environ: dict[str, Any]) -> bytes:
    """Buffer the request body so we can inspect it and still hand it to moto."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        body = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):  # chunked upload, de-chunked by werkzeug
        body = stream.read()
    else:
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


class EmulatorMiddleware:
    def __init__(self, moto_app: Callable[..., Iterable[bytes]], state: EmulatorState):
        self.moto_app = moto_app
        self.state = state
        self.control = ControlApi(state)
        self.iam = iam.for_state(state)
        self.arc = arc.for_state(state)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(PREFIX) or path == PREFIX.rstrip("/"):
            return self.control(environ, start_response)
        if path.startswith("/moto-api") or path == "/favicon.ico":
            if path.rstrip("/") == "/moto-api/reset" and environ.get("REQUEST_METHOD") == "POST":
                # moto's own reset must not leave replica groups etc. pointing at nothing.
                self.state.reset()
            return self.moto_app(environ, start_response)

        body = _read_body(environ)
        info = classify(environ, body)
        arc_call = self.arc.intercepts(info, path)  # Route 53 ARC: our own handlers, not moto
        if arc_call:
            self.arc.refine(info, environ)
        started, resets = self.state.now_ms(), self.state.resets
        status = 500
        caller, denial = self.iam.identify(info), None
        try:
            apply_latency(self.state, info)
            # ARC endpoints: existence, per-endpoint faults and the signature's scope come first.
            injected = self.arc.gate(environ, info) if arc_call else None
            if injected == arc.DROP:  # an endpoint that does not exist: no HTTP answer at all
                status = 0
                return _drop_connection(environ, start_response)
            if injected is None:
                injected = injected_error(self.state, info)
            if injected is None:  # an endpoint that is down answers 503 even to a denied caller
                denied = self.iam.authorize(caller, info, environ, body)
                if denied is not None:
                    denial, injected = denied
            if injected is not None:
                status, headers, payload = injected
            elif arc_call:
                status, headers, payload = self.arc.handle(environ, body, info)
            elif info.protocol == "cbor" and info.service == "monitoring":  # moto lacks rpcv2Cbor
                status, headers, payload = cloudwatch_rpcv2.handle(environ, body, info, self._call_moto)
            else:
                status, headers, payload = self._call_moto(environ, info)
        finally:
            self.state.log_request(
                {
                    "t_ms": started,
                    "end_ms": self.state.now_ms(),
                    "region": info.region,
                    "service": info.service,
                    "operation": info.operation,
                    "status": status,
                    **self.iam.log_fields(caller, denial),
                },
                since_reset=resets,
            )
        start_response(f"{status} {_REASONS.get(status, 'Unknown')}", headers)
        return [payload]

    def _call_moto(self, environ: dict[str, Any], info: CallInfo) -> tuple[int, list[tuple[str, str]], bytes]:
        captured: dict[str, Any] = {}

        def capture(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"] = int(status_line.split(" ", 1)[0])
            captured["headers"] = list(headers)
            return lambda _data: None

        try:
            result = self.moto_app(environ, capture)
            try:
                payload = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception as exc:  # moto bug or unsupported call: answer like AWS would
            traceback.print_exc(file=sys.stderr)
            return render_error(info, 500, "InternalFailure", f"multisite emulator: {exc!r}", "Receiver")
        headers = [(k, v) for k, v in captured["headers"] if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(payload))))
        return captured["status"], headers, payload


def _drop_connection(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Close the client's connection without an HTTP response, as a host that does not exist
    would fail the call (SDKs see an I/O error, not a service error). werkzeug's write then
    meets a shut-down socket, which it treats as a dropped connection (silently)."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    start_response("500 Internal Server Error", [("Content-Length", "0")])
    return [b""]


def build_app(defaults: Defaults) -> tuple[EmulatorMiddleware, EmulatorState]:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    state = EmulatorState(defaults)
    # route53_dns reuses route53_health's HealthChecks: keep it after route53_health.
    for module in (dynamodb_global, aurora_global, route53_health, route53_dns, cloudwatch_alarms, arc):
        state.features.append(module.install(state))
    moto_app = DomainDispatcherApplication(create_backend_app)
    return EmulatorMiddleware(moto_app, state), state


def make_http_server(host: str, port: int, app: Any) -> Any:
    """A threaded werkzeug server using moto's request handler, as ThreadedMotoServer does."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    return make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)

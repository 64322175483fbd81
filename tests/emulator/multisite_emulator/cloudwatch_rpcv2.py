"""CloudWatch over Smithy rpcv2Cbor, served by transcoding to moto's awsJson 1.0.

Current aws-sdk-rust (aws-sdk-cloudwatch 1.140) speaks rpcv2Cbor to CloudWatch:
``POST /service/GraniteServiceVersion20100801/operation/<Op>`` with
``smithy-protocol: rpc-v2-cbor`` and CBOR bodies. moto 5.2.5 answers that with
a 404, but it does serve CloudWatch's other JSON-shaped protocol, awsJson 1.0
(``X-Amz-Target: GraniteServiceVersion20100801.<Op>``), from the very same
backend as its awsQuery path. So instead of re-implementing operations, each
CBOR call is re-encoded as the equivalent awsJson request, handed to moto's
app, and moto's JSON answer is re-encoded as CBOR. Both directions are driven
by botocore's CloudWatch model, the authority for member names and types:

* request: CBOR map -> input shape (required members checked, tag-1
  timestamps -> epoch seconds, byte strings -> base64) -> JSON;
* response: JSON -> output shape -> CBOR (timestamps as tag 1, doubles as
  64-bit floats even when whole, integers as integers, absent members
  omitted); operations without output answer an empty body with no
  Content-Type, as the spec requires;
* errors: ``__type`` is the error's absolute shape id
  (``com.amazonaws.cloudwatch#ResourceNotFound``), plus
  ``x-amzn-query-error: <awsQuery code>;Sender|Receiver`` because CloudWatch
  is awsQueryCompatible: the Rust SDK takes the error code from that header.

Alarm semantics (initial state, events, evaluation) are not here: they live in
``cloudwatch_alarms``, which patches moto's backend so that every protocol
sees them.
"""

from __future__ import annotations

import base64
import functools
import io
import json
import re
import uuid
from datetime import datetime
from typing import Any, Callable

from .cloudwatch_cbor import CBORDecodeError, Tag, decode_cbor, encode_cbor
from .protocols import CallInfo

SERVICE_NAME = "GraniteServiceVersion20100801"
SHAPE_NAMESPACE = "com.amazonaws.cloudwatch"
# The spec lets servers accept the absolute service id with '#' written as '.'.
_PATH = re.compile(
    rf"/service/(?:{re.escape(SHAPE_NAMESPACE)}\.)?{SERVICE_NAME}/operation/(?P<operation>\w+)$"
)
_JSON_CONTENT_TYPE = "application/x-amz-json-1.0"

Response = tuple[int, list[tuple[str, str]], bytes]
CallMoto = Callable[[dict[str, Any], CallInfo], Response]


class _BadInput(Exception):
    """The CBOR body does not fit the operation's input shape."""


@functools.lru_cache(maxsize=1)
def service_model() -> Any:
    """botocore's CloudWatch model (loading it takes ~100 ms: do it once)."""
    import botocore.session

    return botocore.session.get_session().get_service_model("cloudwatch")


def handle(environ: dict[str, Any], body: bytes, info: CallInfo, call_moto: CallMoto) -> Response:
    """Serve one rpcv2Cbor CloudWatch call (faults were already applied by the caller)."""
    match = _PATH.search(environ.get("PATH_INFO", ""))
    operation = match["operation"] if match else info.operation
    if match is None or not _moto_serves(operation):
        return _unknown_operation(operation)
    operation_model = service_model().operation_model(operation)
    try:
        params = decode_cbor(body) if body else {}
        if not isinstance(params, dict):
            raise _BadInput("the request body must be a CBOR map")
        document = _to_json(params, operation_model.input_shape, "")
    except (CBORDecodeError, _BadInput) as exc:
        return error_response(400, "SerializationException", str(exc), "Sender")
    missing = missing_members(params, operation_model.input_shape)
    if missing:
        message = "\n".join(f"The parameter {name} is required." for name in missing)
        return _modelled_error(400, "MissingRequiredParameterException", message)
    status, headers, payload = call_moto(_json_environ(environ, operation, document), info)
    if any(k.lower() == "smithy-protocol" for k, _ in headers):
        return status, headers, payload  # the emulator already answered in CBOR (InternalFailure)
    request_id = _header(headers, "x-amzn-requestid") or str(uuid.uuid4())
    if status == 200:
        return _success(operation_model, payload, request_id)
    return _moto_error(status, headers, payload, request_id)


def _moto_serves(operation: str) -> bool:
    """Whether the model has the operation and moto's CloudWatchResponse implements it."""
    from moto.cloudwatch.responses import CloudWatchResponse
    from moto.core.utils import camelcase_to_underscores

    if operation not in service_model().operation_names:
        return False
    return callable(getattr(CloudWatchResponse, camelcase_to_underscores(operation), None))


def _json_environ(environ: dict[str, Any], operation: str, document: dict[str, Any]) -> dict[str, Any]:
    """The awsJson 1.0 request moto's CloudWatch understands, same signer and Region."""
    data = json.dumps(document).encode()
    env = {k: v for k, v in environ.items() if k not in ("HTTP_SMITHY_PROTOCOL", "HTTP_ACCEPT")}
    env.update(
        {
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "RAW_URI": "/",
            "REQUEST_URI": "/",
            "CONTENT_TYPE": _JSON_CONTENT_TYPE,
            "HTTP_X_AMZ_TARGET": f"{SERVICE_NAME}.{operation}",
            "CONTENT_LENGTH": str(len(data)),
            "wsgi.input": io.BytesIO(data),
        }
    )
    return env


# -- request: CBOR values -> awsJson document -----------------------------------


def missing_members(value: dict[str, Any], shape: Any, prefix: str = "") -> list[str]:
    """Required members absent anywhere in the input, named as CloudWatch names them
    in its MissingParameter messages (``MetricData.member.1.MetricName``)."""
    if shape is None:
        return []
    missing = [f"{prefix}{name}" for name in shape.required_members if value.get(name) is None]
    for name, member in shape.members.items():
        item = value.get(name)
        if member.type_name == "structure" and isinstance(item, dict):
            missing += missing_members(item, member, f"{prefix}{name}.")
        elif member.type_name == "list" and member.member.type_name == "structure" and isinstance(item, list):
            for index, element in enumerate(item, start=1):
                if isinstance(element, dict):
                    missing += missing_members(element, member.member, f"{prefix}{name}.member.{index}.")
    return missing


def _to_json(value: Any, shape: Any, path: str) -> Any:
    """Check ``value`` against ``shape`` and convert it to its awsJson form."""
    if shape is None:
        return {}
    kind = shape.type_name
    if kind == "structure":
        _expect(value, dict, path, "a map")
        return {
            name: _to_json(item, shape.members[name], f"{path}.{name}".lstrip("."))
            for name, item in value.items()
            if name in shape.members and item is not None
        }
    if kind == "list":
        _expect(value, list, path, "an array")
        return [_to_json(item, shape.member, f"{path}[{i}]") for i, item in enumerate(value) if item is not None]
    if kind == "map":
        _expect(value, dict, path, "a map")
        return {key: _to_json(item, shape.value, f"{path}.{key}") for key, item in value.items() if item is not None}
    return _scalar_to_json(value, kind, path)


def _scalar_to_json(value: Any, kind: str, path: str) -> Any:
    if kind == "timestamp":
        if isinstance(value, datetime):
            return value.timestamp()
        _expect_number(value, path)
        return value
    if kind == "blob":
        _expect(value, bytes, path, "a byte string")
        return base64.b64encode(value).decode()
    if kind == "boolean":
        _expect(value, bool, path, "a boolean")
        return value
    if kind in ("integer", "long", "short", "byte"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _BadInput(f"{path} must be an integer")
        return value
    if kind in ("float", "double"):
        _expect_number(value, path)
        return float(value)
    _expect(value, str, path, "a text string")
    return value


def _expect(value: Any, kind: type, path: str, what: str) -> None:
    if not isinstance(value, kind):
        raise _BadInput(f"{path or 'the input'} must be {what}")


def _expect_number(value: Any, path: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _BadInput(f"{path} must be a number")


# -- response: awsJson document -> CBOR values -----------------------------------


def _success(operation_model: Any, payload: bytes, request_id: str) -> Response:
    output_shape = operation_model.output_shape
    if output_shape is None:  # Unit output: no body and no Content-Type (rpcv2Cbor spec)
        return 200, _headers(request_id, b""), b""
    document = json.loads(payload) if payload.strip() else {}
    body = encode_cbor(_to_cbor(document, output_shape))
    return 200, _headers(request_id, body), body


def _to_cbor(value: Any, shape: Any) -> Any:
    """Convert moto's awsJson value of ``shape`` to the values rpcv2Cbor puts on the wire."""
    kind = shape.type_name
    if kind == "structure":
        return {
            name: _to_cbor(value[name], member)
            for name, member in shape.members.items()
            if value.get(name) is not None
        }
    if kind == "list":
        return [_to_cbor(item, shape.member) for item in value]
    if kind == "map":
        return {key: _to_cbor(item, shape.value) for key, item in value.items()}
    if kind == "timestamp":
        # Tag 1 over the epoch seconds moto computed (int when whole, else float).
        return Tag(1, value)
    if kind in ("float", "double"):
        return float(value)  # never an int on the wire: minicbor's f64() rejects ints
    if kind in ("integer", "long", "short", "byte"):
        return int(value)
    if kind == "blob":
        return base64.b64decode(value)
    return value


# -- errors ----------------------------------------------------------------------


def error_response(status: int, type_name: str, message: str, fault: str, code: str | None = None,
                   request_id: str | None = None, members: dict[str, Any] | None = None) -> Response:
    """An rpcv2Cbor error: ``{"__type", "message", ...}`` plus the awsQuery code header."""
    request_id = request_id or str(uuid.uuid4())
    body = encode_cbor({"__type": type_name, "message": message, **(members or {})})
    headers = _headers(request_id, body)
    headers.append(("x-amzn-query-error", f"{code or type_name.rsplit('#', 1)[-1]};{fault}"))
    return status, headers, body


def _modelled_error(status: int, shape_name: str, message: str, request_id: str | None = None,
                    members: dict[str, Any] | None = None) -> Response:
    shape = service_model().shape_for(shape_name)
    error = shape.metadata.get("error", {})
    fault = "Sender" if error.get("senderFault") else "Receiver"
    return error_response(status, f"{SHAPE_NAMESPACE}#{shape_name}", message, fault,
                          error.get("code", shape_name), request_id, members)


def _moto_error(status: int, headers: list[tuple[str, str]], payload: bytes, request_id: str) -> Response:
    """Re-encode moto's awsJson error; modelled errors get their absolute shape id."""
    try:
        document = json.loads(payload) if payload.strip() else {}
    except ValueError:
        document = {}
    raw_type = str(document.get("__type") or _header(headers, "x-amzn-errortype") or "InternalFailure")
    name = raw_type.split(":", 1)[0].rsplit("#", 1)[-1]
    message = str(document.get("message") or document.get("Message") or "")
    shape = _error_shapes().get(name)
    if shape is not None:
        members = {
            member: _to_cbor(document[member], member_shape)
            for member, member_shape in shape.members.items()
            if member.lower() != "message" and document.get(member) is not None
        }
        return _modelled_error(status, shape.name, message, request_id, members)
    code, _, fault = (_header(headers, "x-amzn-query-error") or "").partition(";")
    fault = fault or ("Receiver" if status >= 500 else "Sender")
    return error_response(status, name, message, fault, code or name, request_id)


@functools.lru_cache(maxsize=1)
def _error_shapes() -> dict[str, Any]:
    """Error shapes by shape name and by awsQuery code (moto names either)."""
    shapes: dict[str, Any] = {}
    for shape in service_model().error_shapes:
        shapes.setdefault(shape.metadata.get("error", {}).get("code", shape.name), shape)
    for shape in service_model().error_shapes:
        shapes[shape.name] = shape
    return shapes


def _unknown_operation(operation: str) -> Response:
    message = (
        f"multisite emulator: CloudWatch operation {operation or '(none)'} is not served over "
        "rpcv2Cbor (not in the CloudWatch model, or not implemented by moto 5.2.5)"
    )
    return error_response(400, "UnknownOperationException", message, "Sender")


def _headers(request_id: str, body: bytes) -> list[tuple[str, str]]:
    headers = [("x-amzn-RequestId", request_id), ("smithy-protocol", "rpc-v2-cbor")]
    if body:
        headers.append(("Content-Type", "application/cbor"))
    headers.append(("Content-Length", str(len(body))))
    return headers


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)

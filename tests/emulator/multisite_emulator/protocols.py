"""Classify an incoming AWS call and render protocol-correct error responses.

The Region and service come from the SigV4 credential scope, exactly as moto
routes the call. Injected errors (outage, throttling) must be parsed by the
real SDKs as if AWS sent them, so each protocol gets its own body shape:

* awsJson1_0/1_1 (DynamoDB, EventBridge, ...): ``{"__type", "message"}``
* smithy rpcv2Cbor (CloudWatch in current SDKs): the same map, CBOR-encoded
* awsQuery (RDS, Auto Scaling, SNS, STS, CloudWatch query): ``<ErrorResponse>``
* restXml (Route 53): ``<ErrorResponse>`` with the Route 53 namespace
* restJson (Lambda, ...): ``{"message"}`` plus ``x-amzn-ErrorType``
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

_CREDENTIAL = re.compile(
    r"Credential=(?P<akid>[^/,\s]+)/(?P<date>\d{8})/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request"
)

DYNAMODB_ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"

# awsQuery / restXml error namespaces, by SigV4 signing name.
XML_NAMESPACES = {
    "rds": "http://rds.amazonaws.com/doc/2014-10-31/",
    "autoscaling": "http://autoscaling.amazonaws.com/doc/2011-01-01/",
    "monitoring": "http://monitoring.amazonaws.com/doc/2010-08-01/",
    "sns": "http://sns.amazonaws.com/doc/2010-03-31/",
    "sts": "https://sts.amazonaws.com/doc/2011-06-15/",
    "route53": "https://route53.amazonaws.com/doc/2013-04-01/",
    "elasticloadbalancing": "http://elasticloadbalancing.amazonaws.com/doc/2015-12-01/",
    "iam": "https://iam.amazonaws.com/doc/2010-05-08/",
}

# Services whose JSON/CBOR errors also carry the awsQuery code header.
QUERY_COMPATIBLE = {"monitoring", "sqs"}

REST_XML_SERVICES = {"route53", "s3", "cloudfront"}

# SigV4 signing name -> botocore service name (for routing rest calls).
BOTOCORE_NAMES = {"monitoring": "cloudwatch", "execute-api": "apigateway"}


@dataclass
class CallInfo:
    region: str | None
    service: str | None  # SigV4 signing name: dynamodb, rds, route53, ...
    access_key: str | None
    operation: str
    protocol: str  # json | cbor | query | rest-xml | rest-json
    json_version: str = "1.0"


def parse_credential(environ: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(access key, region, service) from the Authorization header or a presigned URL."""
    auth = environ.get("HTTP_AUTHORIZATION") or ""
    match = _CREDENTIAL.search(auth)
    if match is None:
        qs = parse_qs(environ.get("QUERY_STRING", ""))
        cred = (qs.get("X-Amz-Credential") or [""])[0]
        match = _CREDENTIAL.search("Credential=" + cred)
    if match is None:
        return None, None, None
    return match["akid"], match["region"], match["service"].lower()


def classify(environ: dict[str, Any], body: bytes) -> CallInfo:
    access_key, region, service = parse_credential(environ)
    method = environ.get("REQUEST_METHOD", "GET")
    path = environ.get("PATH_INFO", "") or "/"
    content_type = (environ.get("CONTENT_TYPE") or "").lower()
    target = environ.get("HTTP_X_AMZ_TARGET")
    smithy_protocol = (environ.get("HTTP_SMITHY_PROTOCOL") or "").lower()

    if smithy_protocol == "rpc-v2-cbor" or content_type.startswith("application/cbor"):
        operation = path.rstrip("/").rsplit("/", 1)[-1]
        return CallInfo(region, service, access_key, operation, "cbor")
    if target:
        version = "1.1" if "1.1" in content_type else "1.0"
        return CallInfo(region, service, access_key, target.rsplit(".", 1)[-1], "json", version)
    if service not in REST_XML_SERVICES:
        action = _query_action(environ, body, content_type)
        if action:
            return CallInfo(region, service, access_key, action, "query")
    protocol = "rest-xml" if service in REST_XML_SERVICES else "rest-json"
    return CallInfo(region, service, access_key, _rest_operation(environ, service, method, path), protocol)


def _query_action(environ: dict[str, Any], body: bytes, content_type: str) -> str | None:
    params = parse_qs(environ.get("QUERY_STRING", ""))
    if content_type.startswith("application/x-www-form-urlencoded") and body:
        params.update(parse_qs(body.decode("utf-8", "replace")))
    action = params.get("Action")
    return action[0] if action else None


_ROUTERS: dict[str, Any] = {}


def _rest_operation(environ: dict[str, Any], service: str | None, method: str, path: str) -> str:
    """Name a REST call like the AWS operation (GetHealthCheckStatus, ...) via moto's router."""
    fallback = f"{method} {path}"
    if not service:
        return fallback
    try:
        from moto.core.request import Request
        from moto.core.routing import get_service_router

        name = BOTOCORE_NAMES.get(service, service)
        router = _ROUTERS.get(name)
        if router is None:
            router = _ROUTERS[name] = get_service_router(name)
        operation, _ = router.match(Request(dict(environ)))
        return str(operation.name)
    except Exception:  # unknown service or path: keep the raw method + path
        return fallback


# -- error rendering ----------------------------------------------------------

THROTTLING = "throttling"
UNAVAILABLE = "unavailable"


def error_code(info: CallInfo, kind: str) -> str:
    if kind == UNAVAILABLE:
        return "ServiceUnavailable"
    # Throttling: awsQuery services (and their JSON/CBOR query-compatible
    # successors) say "Throttling"; JSON services say "ThrottlingException".
    if info.protocol in ("query", "rest-xml") or info.service in QUERY_COMPATIBLE:
        return "Throttling"
    return "ThrottlingException"


def render_error(info: CallInfo, status: int, code: str, message: str, fault: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """Return (status, headers, body) for an error in the call's own protocol.

    ``fault`` is "Sender" (client error, e.g. throttling) or "Receiver" (server error).
    """
    request_id = str(uuid.uuid4())
    headers = [("x-amzn-RequestId", request_id), ("x-amz-request-id", request_id)]
    if info.protocol in ("json", "cbor", "rest-json"):
        type_name = code
        if info.service == "dynamodb":
            type_name = DYNAMODB_ERROR_PREFIX + code
        headers.append(("x-amzn-ErrorType", type_name))
        if info.service in QUERY_COMPATIBLE:
            headers.append(("x-amzn-query-error", f"{code};{fault}"))
        payload = {"__type": type_name, "message": message}
        if info.protocol == "cbor":
            headers += [("Content-Type", "application/cbor"), ("smithy-protocol", "rpc-v2-cbor")]
            return status, headers, cbor_encode_text_map(payload)
        if info.protocol == "json":
            headers.append(("Content-Type", f"application/x-amz-json-{info.json_version}"))
        else:
            headers.append(("Content-Type", "application/json"))
        return status, headers, json.dumps(payload).encode()
    if info.service == "s3":
        body = (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message><RequestId>{request_id}</RequestId></Error>"
        )
        return status, headers + [("Content-Type", "application/xml")], body.encode()
    namespace = XML_NAMESPACES.get(info.service or "", f"https://{info.service}.amazonaws.com/doc/")
    body = (
        f'<ErrorResponse xmlns="{namespace}"><Error><Type>{fault}</Type>'
        f"<Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>"
        f"<RequestId>{request_id}</RequestId></ErrorResponse>"
    )
    return status, headers + [("Content-Type", "text/xml")], body.encode()


def cbor_encode_text_map(data: dict[str, str]) -> bytes:
    """Minimal CBOR (RFC 8949) encoder for a map of text strings: all errors need."""

    def head(major: int, length: int) -> bytes:
        if length < 24:
            return bytes([(major << 5) | length])
        for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
            if length < 1 << (8 * size):
                return bytes([(major << 5) | info]) + length.to_bytes(size, "big")
        raise ValueError("too long")

    def text(value: str) -> bytes:
        raw = value.encode("utf-8")
        return head(3, len(raw)) + raw

    out = head(5, len(data))
    for key, value in data.items():
        out += text(key) + text(value)
    return out

"""OTLP/HTTP decoding and encoding: protobuf and JSON, gzip, limits, error bodies.

Errors carry the HTTP status to answer and a message naming the problem;
handlers never see a half-parsed request. ``parse_request`` raises nothing but
``OtlpError``, whatever the bytes.

On an OTLP route every 4xx/5xx body is a ``google.rpc.Status`` carrying that
message, in the request's encoding: protobuf for a protobuf request, its JSON
form otherwise (the OTLP/HTTP spec's "Failures"), so that an OpenTelemetry
Collector or SDK in front of us can log the reason.
"""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any, TypeVar, cast

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from starlette.responses import Response

from agentledger.pipeline.normalize.native import compiled as _native
from agentledger.pipeline.sinks.base import SinkResult

__all__ = [
    "OtlpError",
    "PROTOBUF",
    "JSON",
    "MAX_JSON_DEPTH",
    "OTLP_PATHS",
    "TRACES_PATH",
    "LOGS_PATH",
    "METRICS_PATH",
    "error_media",
    "error_response",
    "media_type",
    "decode_body",
    "inspect_protobuf",
    "parse_request",
    "parse_into",
    "encode_message",
    "count_spans",
    "drop_invalid_spans",
    "export_response",
    "partial_success",
]

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
TRACES_PATH = "/v1/traces"
LOGS_PATH = "/v1/logs"
METRICS_PATH = "/v1/metrics"
OTLP_PATHS = frozenset({TRACES_PATH, LOGS_PATH, METRICS_PATH})
"""Routes that speak OTLP/HTTP: their errors are ``google.rpc.Status`` bodies."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of objects and arrays accepted in an OTLP/JSON body (a span's attribute
value sits at depth 10; each nested array or key-value list adds 3)."""
_ID_FIELDS = {"traceId": 16, "spanId": 8, "parentSpanId": 8}
# HTTP status -> google.rpc.Code (Status.code is informative only; clients act on the HTTP status)
_RPC_CODES = {
    400: 3,  # INVALID_ARGUMENT
    401: 16,  # UNAUTHENTICATED
    403: 7,  # PERMISSION_DENIED
    404: 5,  # NOT_FOUND
    405: 12,  # UNIMPLEMENTED
    413: 8,  # RESOURCE_EXHAUSTED
    415: 3,  # INVALID_ARGUMENT
    422: 3,  # INVALID_ARGUMENT
    429: 8,  # RESOURCE_EXHAUSTED
    500: 13,  # INTERNAL
    503: 14,  # UNAVAILABLE
    504: 4,  # DEADLINE_EXCEEDED
}


class OtlpError(Exception):
    """A request the collector refuses; ``status`` is the HTTP status to answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(content_type: str | None) -> str:
    """``application/x-protobuf`` or ``application/json``, else OtlpError 415."""
    base = (content_type or "").split(";")[0].strip().lower()
    if base in (PROTOBUF, "application/protobuf"):
        return PROTOBUF
    if base == JSON:
        return JSON
    raise OtlpError(
        415,
        f"unsupported content type {content_type or '(none)'!r}: send {PROTOBUF} or {JSON}",
    )


def error_media(content_type: str | None) -> str:
    """The encoding of an error answer: protobuf for a protobuf request, else JSON (the spec
    answers in the request's Content-Type; an unknown one gets JSON, the readable choice)."""
    try:
        return media_type(content_type)
    except OtlpError:
        return JSON


def error_response(
    status: int, message: str, media: str, headers: dict[str, str] | None = None
) -> Response:
    """An OTLP error answer: ``google.rpc.Status`` with ``message``, in ``media``."""
    status_message = Status(code=_RPC_CODES.get(status, 2), message=message)  # 2: UNKNOWN
    return Response(
        encode_message(status_message, media), status_code=status, media_type=media, headers=headers
    )


def decode_body(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """The body with its content-encoding removed, never larger than ``max_bytes``."""
    if len(body) > max_bytes:
        raise OtlpError(413, f"request body is {len(body)} bytes, over the limit of {max_bytes}")
    encoding = (content_encoding or "identity").strip().lower()
    if encoding in ("identity", ""):
        return body
    if encoding in ("gzip", "deflate"):
        wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        d = zlib.decompressobj(wbits)
        try:
            out = d.decompress(body, max_bytes + 1)
        except zlib.error as exc:
            raise OtlpError(400, f"body is not valid {encoding} data: {exc}") from exc
        if len(out) > max_bytes or d.unconsumed_tail:
            raise OtlpError(413, f"decompressed body exceeds the limit of {max_bytes} bytes")
        if not d.eof:
            raise OtlpError(400, f"body is not valid {encoding} data: the stream is truncated")
        return out
    raise OtlpError(415, f"unsupported content encoding {content_encoding!r}: use gzip or none")


def _prepare_json(doc: Any) -> Any:
    """One iterative walk over a parsed OTLP/JSON document: refuse nesting deeper than
    ``MAX_JSON_DEPTH`` (protobuf's JSON parser would recurse on it), and rewrite trace and span
    ids from OTLP/JSON's hex to the base64 protobuf's JSON parser expects."""
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise OtlpError(400, f"OTLP/JSON is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ID_FIELDS and isinstance(value, str):
                    node[key] = _id_to_base64(key, value)
                elif isinstance(value, (dict, list)):
                    stack.append((value, depth + 1))
        else:
            stack.extend((item, depth + 1) for item in node if isinstance(item, (dict, list)))
    return doc


def _id_to_base64(key: str, value: str) -> str:
    if value == "":
        return value
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise OtlpError(400, f"{key} {value[:40]!r} is not hex") from exc
    if len(raw) != _ID_FIELDS[key]:
        raise OtlpError(400, f"{key} {value[:40]!r} must be {_ID_FIELDS[key] * 2} hex digits")
    return base64.b64encode(raw).decode()


def inspect_protobuf(data: bytes, max_attribute_length: int) -> int | None:
    """The span count of a serialized request that can be accepted exactly as received (it parses,
    every span has valid ids, no attribute value is over the limit), read by the compiled
    normalizer without building the message; None otherwise, or when that is not installed (the
    request then goes through ``parse_request``, which names any problem)."""
    if _native is None:
        return None
    try:
        spans, invalid, over = _native.inspect(data, max_attribute_length)
    except ValueError:
        return None
    return spans if not invalid and not over else None


def parse_request(data: bytes, media: str) -> ExportTraceServiceRequest:
    """Parse an ExportTraceServiceRequest, or raise OtlpError 400 saying why."""
    if media == PROTOBUF:
        try:
            request: ExportTraceServiceRequest = ExportTraceServiceRequest.FromString(data)
        except DecodeError as exc:
            raise OtlpError(400, f"malformed OTLP protobuf: {exc}") from exc
    else:
        request = cast(ExportTraceServiceRequest, _parse_json(data))
    return request


M = TypeVar("M", bound=Message)


def parse_into(data: bytes, media: str, message: M, what: str = "resourceLogs") -> M:
    """Parse an OTLP request of any signal (logs, metrics) into ``message``, or raise OtlpError
    400 saying why: the same checks as ``parse_request`` (JSON nesting, hex ids, UTF-8)."""
    if media == PROTOBUF:
        try:
            message.ParseFromString(data)
        except DecodeError as exc:
            raise OtlpError(400, f"malformed OTLP protobuf: {exc}") from exc
        return message
    return cast(M, _parse_json(data, message, what))


def _parse_json(
    data: bytes, into: M | None = None, what: str = "resourceSpans"
) -> ExportTraceServiceRequest | M:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OtlpError(400, f"body is not valid UTF-8 at byte {exc.start}") from exc
    try:
        doc = json.loads(text)
    except RecursionError as exc:  # the C scanner's guard, far beyond MAX_JSON_DEPTH
        raise OtlpError(400, f"OTLP/JSON is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except ValueError as exc:  # JSONDecodeError, or an integer too long to convert
        raise OtlpError(400, f"malformed JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise OtlpError(400, f"OTLP/JSON body must be an object with {what}")
    request = ExportTraceServiceRequest() if into is None else into
    try:
        json_format.ParseDict(_prepare_json(doc), request, ignore_unknown_fields=True)
    except json_format.ParseError as exc:
        raise OtlpError(400, f"malformed OTLP/JSON: {exc}") from exc
    return request


def _span_problem(span: Any) -> str:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "invalid trace_id (must be 16 bytes, not all zero)"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "invalid span_id (must be 8 bytes, not all zero)"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "invalid parent_span_id (must be 8 bytes or empty)"
    return ""


def drop_invalid_spans(request: ExportTraceServiceRequest) -> tuple[int, str]:
    """Remove spans that cannot be stored; return how many and the first reason.

    The rest of the request is still accepted (OTLP partial success).
    """
    rejected, first = 0, ""
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            bad = [i for i, span in enumerate(ss.spans) if _span_problem(span)]
            if not bad:
                continue
            if not first:
                span = ss.spans[bad[0]]
                first = f"span {span.name!r}: {_span_problem(span)}"
            for i in reversed(bad):
                del ss.spans[i]
            rejected += len(bad)
    return rejected, first


def count_spans(request: ExportTraceServiceRequest) -> int:
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def encode_message(message: Any, media: str) -> bytes:
    """A protobuf message (response or google.rpc.Status) in the request's encoding."""
    if media == PROTOBUF:
        return bytes(message.SerializeToString())
    return cast(str, json_format.MessageToJson(message, indent=None)).encode()


def partial_success(rejected: int, message: str, result: SinkResult | None) -> tuple[int, str]:
    """The rejected count and message of an answer: spans dropped before the sink (``rejected``,
    ``message``) plus those the sink reports, their messages joined."""
    if result is None or not result.rejected:
        return rejected, message
    return rejected + result.rejected, "; ".join(m for m in (message, result.message) if m)


def export_response(rejected: int = 0, message: str = "") -> ExportTraceServiceResponse:
    response = ExportTraceServiceResponse()
    if rejected or message:
        response.partial_success.rejected_spans = rejected
        response.partial_success.error_message = message
    return response

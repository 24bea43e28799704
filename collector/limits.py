"""The collector's limits: request bodies (every route), concurrent exports, attribute values.

A body over the limit is refused without being read: a ``Content-Length`` over it is
refused before the first byte, a body streamed past it stops at the first chunk that
crosses it. The refusal is raised from the app's own read of the body, as ``BodyTooLarge``
(an ``HTTPException``), so each route answers it in its own error format (``collector.main``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentledger.collector.otlp import OTLP_PATHS
from agentledger.schemas.attributes import AgentLedger as AL

__all__ = [
    "BodyLimit",
    "BodyTooLarge",
    "ConcurrencyLimit",
    "UnsupportedBody",
    "truncate_attributes",
]

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLarge(HTTPException):
    """A request body over the limit (HTTP 413)."""

    def __init__(self, message: str) -> None:
        super().__init__(413, message)


class UnsupportedBody(HTTPException):
    """A body in an encoding the route does not read (HTTP 415)."""

    def __init__(self, message: str) -> None:
        super().__init__(415, message)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


def _is_json(content_type: str) -> bool:
    base = content_type.split(";")[0].strip().lower()
    return base == "application/json" or (
        base.startswith("application/") and base.endswith("+json")
    )


def _is_console_form(path: str, content_type: str) -> bool:
    """The web console's forms (``collector/console``) post url-encoded fields, as browsers do."""
    base = content_type.split(";")[0].strip().lower()
    return path.startswith("/console/") and base == "application/x-www-form-urlencoded"


class BodyLimit:
    """ASGI middleware: every request body is at most ``max_bytes``; outside the OTLP routes
    (which name their own encodings) a body is JSON.

    Nothing is checked until the app reads the body, so a route that reads none is not
    refused for one, and the route's own checks (the API key) come first where it reads the
    body late. The body then is delivered chunk by chunk as it arrives, never buffered here.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        length = _header(scope, b"content-length")
        declared = int(length) if length is not None and length.strip().isdigit() else None
        content_type = _header(scope, b"content-type")
        check_type = (
            scope["method"] in _BODY_METHODS
            and scope["path"] not in OTLP_PATHS
            and scope["path"] != "/clickhouse"  # SQL text, as ClickHouse's HTTP interface takes it
        )
        received, checked, refused = 0, False, False

        async def bounded_receive() -> Message:
            nonlocal received, checked, refused
            if refused:  # the app read on after the refusal: no body will come
                return {"type": "http.disconnect"}
            if not checked:
                checked = True
                if declared is not None and declared > limit:
                    refused = True
                    raise BodyTooLarge(
                        f"request body is {declared} bytes, over the limit of {limit}"
                    )
                if (
                    check_type
                    and content_type
                    and declared != 0
                    and not _is_json(content_type)
                    and not _is_console_form(scope["path"], content_type)
                ):
                    refused = True
                    raise UnsupportedBody(
                        f"unsupported content type {content_type!r}: send application/json"
                    )
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise BodyTooLarge(f"request body exceeds the limit of {limit} bytes")
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, bounded_receive, tracking_send)
        except (BodyTooLarge, UnsupportedBody) as exc:  # read where no handler answers it
            if started:
                raise
            await JSONResponse({"detail": exc.detail}, status_code=exc.status_code)(
                scope, receive, send
            )


class ConcurrencyLimit:
    """At most ``limit`` requests in progress at once. The next is refused (HTTP 429 with
    Retry-After), not queued: each in-progress export holds its body in memory, and the
    client's retry with backoff is the queue. Used from the event loop only, so unlocked."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.active = 0

    @contextmanager
    def slot(self) -> Iterator[bool]:
        """Yields whether a slot was free; a taken slot is given back on exit."""
        if self.active >= self.limit:
            yield False
            return
        self.active += 1
        try:
            yield True
        finally:
            self.active -= 1


def truncate_attributes(request: ExportTraceServiceRequest, max_length: int, body_size: int) -> int:
    """Cut string values longer than ``max_length``; list the cut keys in
    ``agentledger.truncated_attributes`` on their span. Returns how many were cut.

    A body no larger than the limit cannot hold a value over it, so the scan is
    skipped for the common small request.
    """
    if body_size <= max_length:
        return 0
    cut = 0
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                keys = []
                for kv in span.attributes:
                    v = kv.value
                    if v.WhichOneof("value") == "string_value" and len(v.string_value) > max_length:
                        v.string_value = v.string_value[:max_length]
                        keys.append(kv.key)
                    elif v.WhichOneof("value") == "bytes_value" and len(v.bytes_value) > max_length:
                        v.bytes_value = v.bytes_value[:max_length]
                        keys.append(kv.key)
                if keys:
                    marker = span.attributes.add()
                    marker.key = AL.TRUNCATED
                    for k in keys:
                        marker.value.array_value.values.add().string_value = k
                    cut += len(keys)
    return cut

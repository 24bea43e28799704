"""The frame of every OTLP/HTTP export route (traces, logs, metrics), written once.

A signal's route says only what it does with a body (``ingest``: decode, check, hand to its
sink, answer); ``otlp_export`` does the rest the same way for all three, so that a limit or an
error answer changed for one cannot drift from the others:

- the media type (protobuf or JSON; another is a 415, answered in JSON);
- the app's concurrency gate, shared by the three routes: over it, 429 with ``Retry-After``;
- the body, read as sent (``limits.BodyLimit`` stops the read at the size limit, 413);
- ``ingest`` in a worker thread (decoding and parsing hold the GIL for milliseconds);
- errors as a ``google.rpc.Status`` in the request's encoding: ``OtlpError`` with its status,
  ``SinkRejected`` with its status (permanent), ``SinkUnavailable`` as 503 with ``Retry-After``
  (retryable).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector import otlp
from agentledger.collector.limits import ConcurrencyLimit
from agentledger.collector.settings import CollectorSettings
from agentledger.pipeline.sinks import SinkRejected, SinkUnavailable

__all__ = ["OTLP_ERRORS", "Ingest", "otlp_export"]

Ingest = Callable[[bytes, str, str | None], bytes]
"""``ingest(body, media, content_encoding)``: the encoded export response, or an exception above."""

OTLP_ERRORS: dict[int | str, dict[str, object]] = {
    400: {},
    401: {},
    413: {},
    415: {},
    429: {},
    503: {},
}
"""The error statuses an export route answers (its OpenAPI ``responses``)."""


async def otlp_export(request: Request, settings: CollectorSettings, ingest: Ingest) -> Response:
    """Answer one OTLP/HTTP export request with ``ingest`` (module docstring)."""
    try:
        media = otlp.media_type(request.headers.get("content-type"))
    except otlp.OtlpError as exc:
        return otlp.error_response(exc.status, exc.message, otlp.JSON)
    gate: ConcurrencyLimit = request.app.state.export_gate
    with gate.slot() as admitted:
        if not admitted:
            retry = str(settings.retry_after_seconds)
            return otlp.error_response(
                429,
                f"too many export requests in progress (limit {gate.limit}); retry after {retry}s",
                media,
                {"Retry-After": retry},
            )
        try:
            body = b"".join([chunk async for chunk in request.stream()])
            encoding = request.headers.get("content-encoding")
            payload = await run_in_threadpool(ingest, body, media, encoding)
        except otlp.OtlpError as exc:
            return otlp.error_response(exc.status, exc.message, media)
        except SinkRejected as exc:
            return otlp.error_response(exc.status, str(exc), media)
        except SinkUnavailable as exc:
            retry = str(max(1, int(round(exc.retry_after or settings.retry_after_seconds))))
            return otlp.error_response(
                503, f"not stored, retry later: {exc}", media, {"Retry-After": retry}
            )
    return Response(payload, media_type=media)

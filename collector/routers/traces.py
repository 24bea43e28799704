"""``POST /v1/traces``: OTLP/HTTP in, acknowledged only once the sink made it durable."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from starlette.concurrency import run_in_threadpool

from agentledger.collector import otlp
from agentledger.collector.deps import SettingsDep, SinkDep, TenantDep
from agentledger.collector.limits import truncate_attributes
from agentledger.collector.settings import CollectorSettings
from agentledger.pipeline.sinks import IngestBatch, Sink, SinkRejected, SinkUnavailable

__all__ = ["router"]

router = APIRouter(tags=["ingest"])

_STATUS_CODES = {400: 3, 401: 16, 413: 8, 415: 3, 429: 8, 503: 14}  # HTTP -> google.rpc.Code


def error_response(
    status: int, message: str, media: str, retry_after: int | None = None
) -> Response:
    """An OTLP error: ``google.rpc.Status`` in the request's encoding (JSON when unknown)."""
    from google.rpc.status_pb2 import Status

    body = otlp.encode_message(Status(code=_STATUS_CODES.get(status, 2), message=message), media)
    headers = {"Retry-After": str(retry_after)} if retry_after else None
    return Response(body, status_code=status, media_type=media, headers=headers)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise otlp.OtlpError(413, f"request body is {declared} bytes, over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise otlp.OtlpError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _ingest(
    body: bytes,
    media: str,
    encoding: str | None,
    tenant: str,
    settings: CollectorSettings,
    sink: Sink,
) -> bytes:
    received = time.time_ns()
    data = otlp.decode_body(body, encoding, settings.max_body_bytes)
    # a clean protobuf request (nothing to drop or cut) is accepted as received, never parsed here
    clean = (
        otlp.inspect_protobuf(data, settings.max_attribute_length)
        if media == otlp.PROTOBUF
        else None
    )
    request: ExportTraceServiceRequest | None
    if clean is None:
        request = otlp.parse_request(data, media)
        total = otlp.count_spans(request)
    else:
        request, total = None, clean
    if total > settings.max_spans_per_request:
        raise otlp.OtlpError(
            413,
            f"request holds {total} spans, over the limit of {settings.max_spans_per_request}; send smaller batches",
        )
    if request is None:
        if total:
            sink.write(IngestBatch(tenant, received, None, total, data))
        return otlp.encode_message(otlp.export_response(), media)
    rejected, reason = otlp.drop_invalid_spans(request)
    if total and rejected == total:
        raise otlp.OtlpError(400, f"no valid span in request: {reason}")
    truncate_attributes(request, settings.max_attribute_length, len(data))
    if total - rejected:
        sink.write(IngestBatch(tenant, received, request, total - rejected))
    response = otlp.export_response(rejected, reason)
    return otlp.encode_message(response, media)


@router.post(
    "/v1/traces",
    summary="OTLP/HTTP trace export (protobuf or JSON, optionally gzip)",
    responses={400: {}, 401: {}, 413: {}, 415: {}, 503: {}},
)
async def export_traces(
    request: Request, tenant: TenantDep, settings: SettingsDep, sink: SinkDep
) -> Response:
    try:
        media = otlp.media_type(request.headers.get("content-type"))
    except otlp.OtlpError as exc:
        return error_response(exc.status, exc.message, otlp.JSON)
    try:
        body = await _read_body(request, settings.max_body_bytes)
        payload = await run_in_threadpool(
            _ingest, body, media, request.headers.get("content-encoding"), tenant, settings, sink
        )
    except otlp.OtlpError as exc:
        return error_response(exc.status, exc.message, media)
    except SinkRejected as exc:
        return error_response(exc.status, str(exc), media)
    except SinkUnavailable as exc:
        retry = max(1, int(round(exc.retry_after or settings.retry_after_seconds)))
        return error_response(503, f"not stored, retry later: {exc}", media, retry_after=retry)
    return Response(payload, media_type=media)

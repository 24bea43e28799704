"""``POST /v1/logs`` and ``POST /v1/metrics``: the other two OTLP/HTTP signals.

Logs are taken as traces are (``routers/traces.py``): the same key check (ingest role), body and
decompression limits, JSON nesting and UTF-8 checks, the same concurrency gate and error answers
(``collector/otlp_route.py``, one frame for the three routes), and acknowledged
only once the log sink made them durable (stored, or acknowledged by Kafka). Records with ids of
the wrong length are dropped and counted as OTLP partial success; the tenant and the sending key's
name come from the API key, never from the payload.

Metrics are parsed (a malformed request is a 400, as anywhere) and answered 200 with nothing
stored: an SDK that exports GenAI token and duration metrics beside its spans then logs no errors,
and the same numbers are in the spans (tokens, latency) that usage reads. The README says so.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from agentledger.collector import otlp
from agentledger.collector.auth import Identity
from agentledger.collector.deps import IdentityDep, SettingsDep
from agentledger.collector.otlp_route import OTLP_ERRORS, otlp_export
from agentledger.collector.settings import CollectorSettings
from agentledger.pipeline.sinks.logs import LogBatch, LogSink

__all__ = ["router"]

router = APIRouter(tags=["ingest"])


def _problem(record: object) -> str:
    trace_id, span_id = getattr(record, "trace_id", b""), getattr(record, "span_id", b"")
    if trace_id and len(trace_id) != 16:
        return "invalid trace_id (must be 16 bytes or empty)"
    if span_id and len(span_id) != 8:
        return "invalid span_id (must be 8 bytes or empty)"
    return ""


def _drop_invalid(request: ExportLogsServiceRequest) -> tuple[int, str]:
    """Remove records whose ids cannot be stored; how many, and the first reason."""
    rejected, first = 0, ""
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            bad = [i for i, r in enumerate(sl.log_records) if _problem(r)]
            if bad and not first:
                first = f"log record {bad[0]}: {_problem(sl.log_records[bad[0]])}"
            for i in reversed(bad):
                del sl.log_records[i]
            rejected += len(bad)
    return rejected, first


def _truncate(request: ExportLogsServiceRequest, max_length: int) -> bool:
    """Cut string bodies and attribute values longer than ``max_length`` (as span attributes
    are cut); whether anything was cut."""
    cut = False
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                values = [kv.value for kv in record.attributes]
                if record.HasField("body"):
                    values.append(record.body)
                for v in values:
                    if v.WhichOneof("value") == "string_value" and len(v.string_value) > max_length:
                        v.string_value = v.string_value[:max_length]
                        cut = True
    return cut


def _first_trace_id(request: ExportLogsServiceRequest) -> bytes:
    for rl in request.resource_logs:
        for sl in rl.scope_logs:
            for record in sl.log_records:
                if record.trace_id:
                    return bytes(record.trace_id)
    return b""


def _ingest_logs(
    body: bytes,
    media: str,
    encoding: str | None,
    identity: Identity,
    settings: CollectorSettings,
    sink: LogSink,
) -> bytes:
    received = time.time_ns()
    data = otlp.decode_body(body, encoding, settings.max_body_bytes)
    request = otlp.parse_into(data, media, ExportLogsServiceRequest(), "resourceLogs")
    total = sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)
    if total > settings.max_spans_per_request:
        raise otlp.OtlpError(
            413,
            f"request holds {total} log records, over the limit of "
            f"{settings.max_spans_per_request}; send smaller batches",
        )
    rejected, reason = _drop_invalid(request)
    if total and rejected == total:
        raise otlp.OtlpError(400, f"no valid log record in request: {reason}")
    # a body no larger than the limit cannot hold a value over it
    changed = len(data) > settings.max_attribute_length and _truncate(
        request, settings.max_attribute_length
    )
    if total - rejected:
        raw = (
            data
            if media == otlp.PROTOBUF and not rejected and not changed
            else request.SerializeToString()
        )
        sink.write(
            LogBatch(
                identity.tenant,
                received,
                raw,
                total - rejected,
                sent_by=identity.actor,
                key=_first_trace_id(request),
            )
        )
    response = ExportLogsServiceResponse()
    if rejected:
        response.partial_success.rejected_log_records = rejected
        response.partial_success.error_message = reason
    return otlp.encode_message(response, media)


def _accept_metrics(body: bytes, media: str, encoding: str | None, max_bytes: int) -> bytes:
    data = otlp.decode_body(body, encoding, max_bytes)
    otlp.parse_into(data, media, ExportMetricsServiceRequest(), "resourceMetrics")
    return otlp.encode_message(ExportMetricsServiceResponse(), media)


@router.post(
    otlp.LOGS_PATH,
    summary="OTLP/HTTP log export (protobuf or JSON, optionally gzip)",
    description="GenAI log events (prompts, completions) become their model call's messages. "
    "Errors are a `google.rpc.Status` in the request's encoding.",
    responses=OTLP_ERRORS,
)
async def export_logs(request: Request, identity: IdentityDep, settings: SettingsDep) -> Response:
    sink: LogSink | None = getattr(request.app.state, "log_sink", None)
    if sink is None:
        return otlp.error_response(
            404,
            "this collector has no log sink (an edge over a span sink only)",
            otlp.error_media(request.headers.get("content-type")),
        )

    def ingest(body: bytes, media: str, encoding: str | None) -> bytes:
        return _ingest_logs(body, media, encoding, identity, settings, sink)

    return await otlp_export(request, settings, ingest)


@router.post(
    otlp.METRICS_PATH,
    summary="OTLP/HTTP metric export: accepted, not stored",
    description="Parsed and answered 200 so that SDKs exporting GenAI metrics log no errors; "
    "nothing is stored (tokens and latency are read from the spans).",
    responses=OTLP_ERRORS,
)
async def export_metrics(
    request: Request, identity: IdentityDep, settings: SettingsDep
) -> Response:
    def ingest(body: bytes, media: str, encoding: str | None) -> bytes:
        return _accept_metrics(body, media, encoding, settings.max_body_bytes)

    return await otlp_export(request, settings, ingest)

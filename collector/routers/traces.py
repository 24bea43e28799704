"""``POST /v1/traces``: OTLP/HTTP in, acknowledged only once the sink made it durable.

The answer's partial success counts the spans not stored as sent: invalid ones dropped here,
and those the sink reports (re-sent with a stored span's ids but other content, see
``EmbeddedSink``)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.collector import otlp
from agentledger.collector.auth import Authenticator, Identity
from agentledger.collector.deps import AuthDep, IdentityDep, SettingsDep, SinkDep
from agentledger.collector.limits import truncate_attributes
from agentledger.collector.otlp_route import OTLP_ERRORS, otlp_export
from agentledger.collector.settings import CollectorSettings
from agentledger.pipeline.sinks import IngestBatch, Sink
from agentledger.pipeline.sinks.base import SinkResult

__all__ = ["router"]

router = APIRouter(tags=["ingest"])


def _ingest(
    body: bytes,
    media: str,
    encoding: str | None,
    identity: Identity,
    settings: CollectorSettings,
    sink: Sink,
    auth: Authenticator | None = None,
) -> bytes:
    """Decode, check and hand the request to the sink as ``identity`` sent it; spans the sink
    refused for naming another agent than the key's are counted against the key (``auth``)."""
    received = time.time_ns()
    tenant, sent_by, agent = identity.tenant, identity.actor, identity.agent
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
        result = (
            sink.write(IngestBatch(tenant, received, None, total, data, sent_by, agent))
            if total
            else None
        )
        _count_foreign(result, identity, auth)
        response = otlp.export_response(*otlp.partial_success(0, "", result))
        return otlp.encode_message(response, media)
    rejected, reason = otlp.drop_invalid_spans(request)
    if total and rejected == total:
        raise otlp.OtlpError(400, f"no valid span in request: {reason}")
    truncate_attributes(request, settings.max_attribute_length, len(data))
    result = (
        sink.write(
            IngestBatch(tenant, received, request, total - rejected, sent_by=sent_by, agent=agent)
        )
        if total - rejected
        else None
    )
    _count_foreign(result, identity, auth)
    response = otlp.export_response(*otlp.partial_success(rejected, reason, result))
    return otlp.encode_message(response, media)


def _count_foreign(
    result: SinkResult | None, identity: Identity, auth: Authenticator | None
) -> None:
    if result is not None and result.foreign_agent and auth is not None:
        auth.refuse_agent(identity, "another agent", "spans", result.foreign_agent)


@router.post(
    otlp.TRACES_PATH,
    summary="OTLP/HTTP trace export (protobuf or JSON, optionally gzip)",
    description="Errors are a `google.rpc.Status` in the request's encoding (protobuf or JSON).",
    responses=OTLP_ERRORS,
)
async def export_traces(
    request: Request, identity: IdentityDep, settings: SettingsDep, sink: SinkDep, auth: AuthDep
) -> Response:
    def ingest(body: bytes, media: str, encoding: str | None) -> bytes:
        return _ingest(body, media, encoding, identity, settings, sink, auth)

    return await otlp_export(request, settings, ingest)

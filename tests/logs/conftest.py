"""The captured payloads of ``opentelemetry-instrumentation-openai-v2`` (``tests/fixtures/genai_logs``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "genai_logs"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
PB = {"content-type": "application/x-protobuf"}
MODES = ("events", "latest")


def payload(mode: str, signal: str) -> bytes:
    """The bodies the exporters posted for ``signal`` (traces or logs), as one request."""
    return (FIXTURES / f"{mode}.{signal}.pb").read_bytes()


def otlp_json(data: bytes, signal: str) -> bytes:
    """The protobuf request as OTLP/JSON (hex trace and span ids, as the spec writes them)."""
    message = (ExportLogsServiceRequest if signal == "logs" else ExportTraceServiceRequest)()
    message.ParseFromString(data)
    doc: Any = json_format.MessageToDict(message)

    def hexify(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("traceId", "spanId", "parentSpanId") and isinstance(value, str):
                    import base64

                    node[key] = base64.b64decode(value).hex()
                else:
                    hexify(value)
        elif isinstance(node, list):
            for item in node:
                hexify(item)

    hexify(doc)
    return json.dumps(doc).encode()


def ids(mode: str) -> tuple[str, str]:
    """(trace id, span id) of the chat span in the captured traces of ``mode``."""
    request = ExportTraceServiceRequest.FromString(payload(mode, "traces"))
    (span,) = [s for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans]
    return span.trace_id.hex(), span.span_id.hex()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)

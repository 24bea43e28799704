"""Contracts every AgentLedger stage shares: span row, canonical LLM call, contents, canonical JSON,
topics, prices.

Depends on nothing else of AgentLedger. Names are loaded on first use, so the
agent-side instrumentation can import ``agentledger.schemas.attributes`` and
``agentledger.schemas.canonical`` without pulling in pyarrow or pydantic
(server-side dependencies).
"""

from __future__ import annotations

import importlib as _importlib
from typing import Any as _Any

_EXPORTS = {
    "CanonicalMessage": "calls",
    "ToolDefinition": "calls",
    "request_hash": "calls",
    "CONTENT_ARROW_SCHEMA": "contents",
    "CONTENT_COLUMNS": "contents",
    "CONTENTS_TABLE": "contents",
    "ContentKind": "contents",
    "ContentRow": "contents",
    "canonical_bytes": "canonical",
    "canonical_json": "canonical",
    "canonical_text": "canonical",
    "content_hash": "canonical",
    "ModelPrice": "pricing",
    "PriceTable": "pricing",
    "CALL_COLUMN_NAMES": "spans",
    "SPAN_ARROW_SCHEMA": "spans",
    "SPAN_COLUMN_NAMES": "spans",
    "SPAN_COLUMNS": "spans",
    "SPANS_TABLE": "spans",
    "Column": "spans",
    "Convention": "spans",
    "CostSource": "spans",
    "DocumentRef": "spans",
    "SpanKind": "spans",
    "SpanRow": "spans",
    "ToolCallRef": "spans",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> _Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentledger.schemas' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"agentledger.schemas.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

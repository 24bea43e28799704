"""Contracts every AgentLedger stage shares: span row, contents, topics, prices.

Depends on nothing else of AgentLedger.
"""

from agentledger.schemas.contents import (
    CONTENT_ARROW_SCHEMA,
    CONTENT_COLUMNS,
    CONTENTS_TABLE,
    ContentKind,
    ContentRow,
    canonical_json,
    canonical_text,
    content_hash,
)
from agentledger.schemas.pricing import ModelPrice, PriceTable
from agentledger.schemas.spans import (
    SPAN_ARROW_SCHEMA,
    SPAN_COLUMN_NAMES,
    SPAN_COLUMNS,
    SPANS_TABLE,
    Column,
    Convention,
    CostSource,
    DocumentRef,
    SpanKind,
    SpanRow,
    ToolCallRef,
)

__all__ = [
    "CONTENT_ARROW_SCHEMA",
    "CONTENT_COLUMNS",
    "CONTENTS_TABLE",
    "ContentKind",
    "ContentRow",
    "canonical_json",
    "canonical_text",
    "content_hash",
    "ModelPrice",
    "PriceTable",
    "SPAN_ARROW_SCHEMA",
    "SPAN_COLUMN_NAMES",
    "SPAN_COLUMNS",
    "SPANS_TABLE",
    "Column",
    "Convention",
    "CostSource",
    "DocumentRef",
    "SpanKind",
    "SpanRow",
    "ToolCallRef",
]

"""Content-addressed storage: the ``contents`` table.

Every prompt, message list, retrieved document, tool argument and tool result
is stored once in ``contents`` under the SHA-256 of its canonical form, and
span rows reference the hash. The canonical form is what an auditor re-hashes
to prove that a document is the one the agent saw:

* text: the UTF-8 bytes of the string as received;
* structured values (message lists, tool lists, JSON arguments and results): canonical JSON,
  RFC 8785 (JCS), as ``agentledger.schemas.canonical`` defines it (with golden
  fixtures); ``canonical_bytes``, ``canonical_json``, ``canonical_text`` and
  ``content_hash`` are that module's, re-exported here.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Final

import pyarrow as pa
from pydantic import BaseModel

from agentledger.schemas.canonical import (
    canonical_bytes,
    canonical_json,
    canonical_text,
    content_hash,
)
from agentledger.schemas.spans import Column, arrow_type

__all__ = [
    "ContentKind",
    "CONTENTS_TABLE",
    "CONTENT_COLUMNS",
    "CONTENT_ARROW_SCHEMA",
    "ContentRow",
    "canonical_bytes",
    "canonical_json",
    "canonical_text",
    "content_hash",
]

CONTENTS_TABLE: Final = "contents"
"""Name of the content-addressed table."""


class ContentKind(str, enum.Enum):
    """What a content record holds."""

    MESSAGES = "messages"
    TEXT = "text"
    DOCUMENT = "document"
    TOOL_ARGUMENTS = "tool_arguments"
    TOOL_RESULT = "tool_result"
    ATTRIBUTE = "attribute"
    TOOLS = "tools"
    """The canonical list of tools offered to a model call (``agentledger.schemas.calls``)."""


CONTENT_COLUMNS: Final[tuple[Column, ...]] = (
    Column("tenant", "LowCardinality(String)", "Tenant that stored the content."),
    Column("hash", "String", "SHA-256 of the canonical form, 64 lowercase hex digits."),
    Column("kind", "LowCardinality(String)", "ContentKind value."),
    Column("content", "String", "The canonical form itself."),
    Column("size", "UInt64", "Length of the canonical form in bytes."),
    Column("first_seen", "DateTime64(3, 'UTC')", "Ingest time of the first span that carried it."),
)
"""Columns of the ``contents`` table, in table order."""

CONTENT_ARROW_SCHEMA: Final[pa.Schema] = pa.schema(
    [pa.field(c.name, arrow_type(c.ch_type)) for c in CONTENT_COLUMNS]
)
"""Arrow schema of a batch of content rows."""


class ContentRow(BaseModel):
    """One content record as read back from the store."""

    tenant: str
    hash: str
    kind: ContentKind
    content: str
    size: int
    first_seen: datetime

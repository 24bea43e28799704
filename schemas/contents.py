"""Content-addressed storage: the canonical form and its SHA-256.

Every prompt, message list, retrieved document, tool argument and tool result
is stored once in ``contents`` under the SHA-256 of its canonical form, and
span rows reference the hash. The canonical form is what an auditor re-hashes
to prove that a document is the one the agent saw:

* text: the UTF-8 bytes of the string as received;
* structured values (message lists, JSON arguments and results): JSON with
  sorted keys, no insignificant whitespace, non-ASCII kept as UTF-8, numbers in
  shortest round-trip form: exactly what ``orjson.dumps(v, option=OPT_SORT_KEYS)``
  writes (lone surrogates, which UTF-8 cannot carry, become U+FFFD).
"""

from __future__ import annotations

import enum
import hashlib
import json
from datetime import datetime
from typing import Any, Final

import orjson
import pyarrow as pa
from pydantic import BaseModel

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


def _json_bytes(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # integers beyond 64 bits, lone surrogates
        text = json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
        )
        return text.encode("utf-8", "replace")


def canonical_bytes(value: Any) -> bytes:
    """The canonical form of any value as UTF-8: strings as they are, the rest as canonical JSON."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            return value.encode("utf-8", "replace")
    return _json_bytes(value)


def canonical_json(value: Any) -> str:
    """The canonical JSON text of a value (a string becomes a JSON string literal)."""
    return _json_bytes(value).decode("utf-8")


def canonical_text(value: Any) -> str:
    """The canonical text of any value: strings as they are, the rest as canonical JSON."""
    return canonical_bytes(value).decode("utf-8")


def content_hash(canonical: str | bytes) -> str:
    """SHA-256 (hex) of a canonical form."""
    data = canonical if isinstance(canonical, bytes) else canonical.encode("utf-8", "replace")
    return hashlib.sha256(data).hexdigest()

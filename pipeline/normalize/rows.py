"""Rows of one normalized batch: the column layout, the content store of a batch and the
Arrow builder (``_Builder``) that turns span tuples into record batches.

Kept apart from the span reading in :mod:`.otlp` so that the reading (which keys a convention
probes) and the storing (how columns are laid out, when contents are kept once) change
separately; both are on the hot path and stay free of per-span allocations they do not need.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from array import array
from collections.abc import Sequence
from itertools import accumulate, chain, pairwise
from typing import Any

import pyarrow as pa
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from agentledger.pipeline.normalize.base import (
    NormalizedBatch,
)
from agentledger.pipeline.normalize.fields import Fields, canonical_tool, parse_json
from agentledger.schemas import (
    CONTENT_ARROW_SCHEMA,
    SPAN_ARROW_SCHEMA,
    ContentKind,
    CostSource,
    canonical_bytes,
    canonical_text,
)
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.canonical import canonical_json, canonical_json_bytes

_STATUS = ("UNSET", "OK", "ERROR")
# A span row is a tuple of the columns but these (kept in lists of their own, see _Builder),
# converted to Arrow as one struct array.
_MAP_COLUMNS = ("attributes", "attribute_refs", "resource_attributes")
_ROW_COLUMNS = [n for n in SPAN_ARROW_SCHEMA.names if n != "agent_name" and n not in _MAP_COLUMNS]
_ROW_TYPE = pa.struct([SPAN_ARROW_SCHEMA.field(n) for n in _ROW_COLUMNS])
_KIND, _TRACE, _NAME = (_ROW_COLUMNS.index(n) for n in ("kind", "trace_id", "name"))
_K_ATTRIBUTE, _K_MESSAGES, _K_TEXT, _K_DOCUMENT, _K_ARGS, _K_RESULT, _K_TOOLS = (
    ContentKind.ATTRIBUTE.value,
    ContentKind.MESSAGES.value,
    ContentKind.TEXT.value,
    ContentKind.DOCUMENT.value,
    ContentKind.TOOL_ARGUMENTS.value,
    ContentKind.TOOL_RESULT.value,
    ContentKind.TOOLS.value,
)
_COST_SPAN, _COST_NONE, _COST_PRICE_TABLE = (
    CostSource.SPAN.value,
    CostSource.NONE.value,
    CostSource.PRICE_TABLE.value,
)
_SYSTEM_ROLES = ("system", "developer")
# looked up on every span, in one pass (see _row)
_AL_KEYS = (AL.COST_USD, AL.AGENT_NAME, AL.PRINCIPAL_ID, AL.PRINCIPAL_CHAIN, AL.POLICY_ID)
_PREVIEW = 200
_FLUSH_ROWS = 1024  # rows turned into Arrow at a time (see _Builder)
_MAX_STRING_BYTES = 2**31 - 1  # what 32-bit Arrow string offsets can address
_SHA256 = hashlib.sha256()


def _sha256_hex(data: bytes) -> str:
    """``hashlib.sha256(data).hexdigest()``, from a copy of an empty hash (cheaper than a new one
    with OpenSSL 3)."""
    h = _SHA256.copy()
    h.update(data)
    return h.hexdigest()


def anyvalue_to_python(v: AnyValue) -> Any:
    """An OTLP AnyValue as a plain Python value."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [anyvalue_to_python(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: anyvalue_to_python(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None


def anyvalue_to_str(v: AnyValue) -> str:
    """An OTLP AnyValue as the string stored in the attribute maps."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return str(v.int_value)
    if which == "double_value":
        d = v.double_value
        return repr(d) if math.isfinite(d) else str(d)
    if which == "bool_value":
        return "true" if v.bool_value else "false"
    if which is None:
        return ""
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return json.dumps(anyvalue_to_python(v), ensure_ascii=False, separators=(",", ":"))


_MODEL_JSON: dict[str, bytes] = {}  # model -> its canonical JSON string (few models, many calls)


def _request_hash(model: str, params_json: str, messages_hash: str, tools_hash: str) -> str:
    """``agentledger.schemas.calls.request_hash``, from the parameters' canonical JSON (no second
    serialization): the envelope's members are written in their canonical order."""
    model_json = _MODEL_JSON.get(model)
    if model_json is None:
        model_json = canonical_json_bytes(model)
        if len(_MODEL_JSON) < 4096:
            _MODEL_JSON[model] = model_json
    envelope = b'{"messages":"%s","model":%s,"params":%s,"tools":"%s"}' % (
        messages_hash.encode(),
        model_json,
        params_json.encode() if params_json else b"{}",
        tools_hash.encode(),
    )
    return _sha256_hex(envelope)


def _params_json(f: Fields, memo: dict[str, str]) -> str:
    """The canonical JSON of the request parameters; those read from one recorded JSON text
    (``Fields.params_text``) repeat across calls, so each text's is written once per batch."""
    key = f.params_text
    if key is None:
        return canonical_json(f.params)
    found = memo.get(key)
    if found is None:
        found = memo[key] = canonical_json(f.params)
    return found


def _message_text(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("text"))
    calls = msg.get("tool_calls")
    if calls:
        return "; ".join(f"{c['name']}({canonical_text(c['arguments'])})" for c in calls)
    return ""


def _map_array(dicts: Sequence[dict[str, str]], type_: pa.DataType) -> pa.Array:
    """A MapArray from Python dicts, built from flat key/value arrays (faster than per-dict conversion)."""
    offsets = list(accumulate(map(len, dicts), initial=0))
    keys = list(chain.from_iterable(dicts))
    values = list(chain.from_iterable(map(dict.values, dicts)))
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.array(keys, pa.string()),
        pa.array(values, pa.string()),
        type=type_,
    )


def _utf8_array(data: bytearray, sizes: Sequence[int]) -> pa.Array:
    """A string array of the UTF-8 values concatenated in ``data`` (no per-value decoding or copy)."""
    offsets = list(accumulate(sizes, initial=0))
    if offsets[-1] > _MAX_STRING_BYTES:  # beyond 32-bit offsets: let pyarrow split it into chunks
        values = [data[start:end].decode("utf-8") for start, end in pairwise(offsets)]
        return pa.array(values, type=pa.string())
    return pa.StringArray.from_buffers(
        len(sizes), pa.py_buffer(array("i", offsets)), pa.py_buffer(data)
    )


class _Builder:
    """Accumulates span rows and content records.

    Rows are tuples of the ``_ROW_COLUMNS``; ``agent_name`` (which
    ``_propagate_agent_names`` fills in) and the three attribute maps are lists
    of their own. They are turned into Arrow every ``_FLUSH_ROWS`` or so
    (between requests): converted while still in cache, and not left for the
    garbage collector to traverse over and over in a large batch. Content
    records are kept column-wise (parallel lists, in first-seen order: no
    object per record for the garbage collector to track), deduplicated per
    tenant by hash; their canonical forms are appended to one buffer as they
    come (no concatenation at the end).
    """

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []  # values of the _ROW_COLUMNS
        self.agent_names: list[str] = []
        self.attributes: list[dict[str, str]] = []
        self.attribute_refs: list[dict[str, str]] = []
        self.resource_attributes: list[dict[str, str]] = []
        self._span_batches: list[pa.RecordBatch] = []
        self._text_hashes: dict[str, str] = {}  # str -> hash: the same text hashed once per batch
        self.params_json: dict[str, str] = {}  # recorded parameters' text -> canonical JSON
        self._tools: dict[str, tuple[str, bytes]] = {}  # recorded tools -> hash, canonical form
        self._seen_by_tenant: dict[str, set[str]] = {}  # contents are per tenant
        self._seen: set[str] = set()
        self.tenant = ""
        self._seen_ms = 0
        # the contents columns; the canonical forms concatenated
        self._c_tenant: list[str] = []
        self._c_hash: list[str] = []
        self._c_kind: list[str] = []
        self._c_size: list[int] = []
        self._c_first_seen: list[int] = []
        self._content_data = bytearray()

    def start(self, tenant: str, received_at_ns: int) -> None:
        """Content recorded from now on belongs to ``tenant`` and was first seen at ``received_at_ns``."""
        self.tenant = tenant
        self._seen_ms = received_at_ns // 1_000_000
        seen = self._seen_by_tenant.get(tenant)
        if seen is None:
            seen = self._seen_by_tenant[tenant] = set()
        self._seen = seen

    def _add(self, h: str, kind: str, canonical: bytes) -> None:
        self._seen.add(h)
        self._c_tenant.append(self.tenant)
        self._c_hash.append(h)
        self._c_kind.append(kind)
        self._c_size.append(len(canonical))
        self._c_first_seen.append(self._seen_ms)
        self._content_data += canonical

    def content(self, value: Any, kind: str) -> str:
        """The hash of ``value``'s canonical form, recording the content the first time it is seen."""
        if isinstance(value, str):
            h = self._text_hashes.get(value)
            if h is None:
                canonical = canonical_bytes(value)
                h = self._text_hashes[value] = _sha256_hex(canonical)
                if h not in self._seen:
                    self._add(h, kind, canonical)
            elif h not in self._seen:
                self._add(h, kind, canonical_bytes(value))
            return h
        return self.canonical(canonical_bytes(value), kind)

    def canonical(self, canonical: bytes, kind: str) -> str:
        """The hash of a canonical form, recording the content the first time it is seen."""
        h = _sha256_hex(canonical)
        if h not in self._seen:
            self._add(h, kind, canonical)
        return h

    def tools(self, f: Fields) -> str:
        """The hash of the canonical list of the tools offered, recording it the first time it is
        seen; the same recorded definitions (``Fields.tools_text``) are made canonical once per
        batch (an agent offers the same tools on every call)."""
        key = f.tools_text
        found = self._tools.get(key) if key is not None else None
        if found is None:
            canonical = canonical_bytes([canonical_tool(t) for t in f.tools or ()])
            found = (_sha256_hex(canonical), canonical)
            if key is not None and len(self._tools) < 1024:
                self._tools[key] = found
        h, canonical = found
        if h not in self._seen:
            self._add(h, _K_TOOLS, canonical)
        return h

    def value(self, value: Any, kind: str) -> tuple[str, str]:
        """Hash and preview of an input or output value (not None). Tool arguments and results
        that are JSON text are stored as canonical JSON."""
        if isinstance(value, str):
            if kind in (_K_ARGS, _K_RESULT):
                parsed = parse_json(value)
                if isinstance(parsed, (dict, list)):
                    value = parsed
            if isinstance(value, str):
                return self.content(value, kind), value[:_PREVIEW]
        canonical = canonical_bytes(value)
        # the preview is the first _PREVIEW characters of the canonical JSON: at most 4 bytes each
        return self.canonical(canonical, kind), canonical[: 4 * _PREVIEW].decode("utf-8", "ignore")[
            :_PREVIEW
        ]

    def flush(self) -> None:
        """The rows so far as one Arrow record batch."""
        # one conversion for all row columns (a struct array's children are the columns)
        arrays = dict(zip(_ROW_COLUMNS, pa.array(self.rows, type=_ROW_TYPE).flatten()))
        arrays["agent_name"] = pa.array(self.agent_names, type=pa.string())
        for name in _MAP_COLUMNS:
            arrays[name] = _map_array(getattr(self, name), SPAN_ARROW_SCHEMA.field(name).type)
        self._span_batches.append(
            pa.RecordBatch.from_arrays(
                [arrays[name] for name in SPAN_ARROW_SCHEMA.names], schema=SPAN_ARROW_SCHEMA
            )
        )
        self.rows = []
        self.agent_names = []
        self.attributes = []
        self.attribute_refs = []
        self.resource_attributes = []

    def build(self) -> NormalizedBatch:
        if self.rows or not self._span_batches:
            self.flush()
        spans = pa.Table.from_batches(self._span_batches, schema=SPAN_ARROW_SCHEMA)
        if len(self._span_batches) > 1:
            spans = spans.combine_chunks()
        contents = pa.Table.from_arrays(
            [
                pa.array(self._c_tenant, type=pa.string()),
                pa.array(self._c_hash, type=pa.string()),
                pa.array(self._c_kind, type=pa.string()),
                _utf8_array(self._content_data, self._c_size),
                pa.array(self._c_size, type=pa.uint64()),
                pa.array(self._c_first_seen, type=pa.timestamp("ms", tz="UTC")),
            ],
            schema=CONTENT_ARROW_SCHEMA,
        )
        return NormalizedBatch(spans, contents)

"""The ledger's leaves: the one canonical form of every record kind, and its leaf hash.

ARCHITECTURE decision 8: every record of a tenant is a leaf of one append-only RFC 9162 Merkle
log, and anyone must be able to recompute a leaf without our engine. So a leaf is::

    leaf_hash = SHA-256(0x00 || canonical_record)            (RFC 9162 section 2.1.1)

where ``canonical_record`` is the RFC 8785 canonical JSON (``agentledger.schemas.canonical``) of
one object with exactly these members (RFC 8785 sorts them; shown here in that order)::

    actor           name of the API key that recorded it (or api, cli, pipeline, migration)
    body            the kind's fields, a JSON object (below)
    content_sha256  SHA-256 (64 lowercase hex) of every content record the record references,
                    sorted, each once; [] when none
    id              the record's id within its kind (span id, content hash, intent id...)
    kind            a ``LeafKind`` value
    tenant          the tenant whose log holds the leaf
    time            RFC 3339 UTC with exactly six fraction digits: 2026-01-02T03:04:05.123456Z
    v               1, the version of this form (a later form gets a new number, old leaves
                    keep theirs)

Why these choices: the tenant is inside the leaf so a proof binds a record to its tenant's log
(a verifier checks the checkpoint's origin ``agentledger/<tenant>`` against it); referenced
contents are listed by hash, never by text, so an erasure (which removes the text) leaves every
leaf recomputable; and the body holds no derived or transport fields (prices, previews, Kafka
offsets), so a span re-delivered or re-priced is still the same leaf.

The record kinds and their bodies:

* ``span``: ``SPAN_BODY_FIELDS`` of the normalized span row (``span_record``); id = span id,
  time = span start (microseconds; the body keeps the nanoseconds), actor = the key that sent it.
* ``content``: ``CONTENT_BODY_FIELDS`` (hash, kind, size: never the text); id = the hash,
  content_sha256 = [the hash].
* ``intent``, ``outcome``, ``control``, ``feedback``, ``dataset``, ``drift_report`` (a replay),
  ``api_key`` (a key event), ``access`` (an access-log entry), ``anomaly_label``: the record log's
  kinds (``agentledger.schemas.records``); body = the record's canonical body parsed, so
  SHA-256 of the body's canonical JSON is the record's ``body_sha256`` (``from_record``).
* ``erasure``: ``ERASURE_BODY_FIELDS``; content_sha256 = the erased contents.
* ``retention_expiry``: ``RETENTION_EXPIRY_BODY_FIELDS``.

``fixtures.json``'s sibling ``ledger_fixtures.json`` holds golden cases (record -> canonical bytes
-> leaf hash) that a test checks. This module imports only the standard library and the canonical
JSON module, so offline verifiers can use it without the server's dependencies.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any, Final, NamedTuple, Protocol

from agentledger.schemas.canonical import canonical_json, canonical_json_bytes, loads

__all__ = [
    "CONTENT_BODY_FIELDS",
    "ERASURE_BODY_FIELDS",
    "FIXTURES",
    "FORMAT_VERSION",
    "LEAF_PREFIX",
    "NODE_PREFIX",
    "RETENTION_EXPIRY_BODY_FIELDS",
    "SPAN_BODY_FIELDS",
    "BodyField",
    "LeafKind",
    "LedgerRecord",
    "RecordLike",
    "canonical_record",
    "content_record",
    "fixtures",
    "from_record",
    "leaf_hash",
    "origin",
    "parse_canonical_record",
    "span_record",
]

FORMAT_VERSION: Final = 1
"""The ``v`` member of every canonical record of this form."""
LEAF_PREFIX: Final = b"\x00"
"""RFC 9162 domain separation: a leaf hash is SHA-256 of this byte and the leaf's bytes."""
NODE_PREFIX: Final = b"\x01"
"""RFC 9162 domain separation: an interior node is SHA-256 of this byte, left and right."""
FIXTURES: Final = "ledger_fixtures.json"
"""Golden cases in ``agentledger.schemas.canonical`` (``fixtures()`` reads them)."""

_TIME: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_TIME9: Final = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{9}Z")
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_MEMBERS: Final = frozenset(
    {"actor", "body", "content_sha256", "id", "kind", "tenant", "time", "v"}
)
_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


class RecordLike(Protocol):
    """What ``from_record`` reads of a ``schemas.records.Record`` (named structurally: that
    module pulls in pyarrow, which offline verifiers must not need)."""

    @property
    def kind(self) -> enum.Enum: ...
    @property
    def tenant(self) -> str: ...
    @property
    def record_id(self) -> str: ...
    @property
    def recorded_at_ns(self) -> int: ...
    @property
    def actor(self) -> str: ...
    @property
    def body(self) -> str: ...


class LeafKind(str, enum.Enum):
    """What a leaf records; the ``kind`` member. The record log's kinds keep their values."""

    SPAN = "span"
    CONTENT = "content"
    INTENT = "intent"
    OUTCOME = "outcome"
    CONTROL = "control"
    FEEDBACK = "feedback"
    DATASET = "dataset"
    DRIFT_REPORT = "drift_report"
    """A replay run's drift report."""
    API_KEY = "api_key"
    """A key event: a key created or revoked."""
    ACCESS = "access"
    """An access-log entry: one read of content."""
    ANOMALY_LABEL = "anomaly_label"
    ERASURE = "erasure"
    """Content of a subject erased (its leaves keep their hashes)."""
    RETENTION_EXPIRY = "retention_expiry"
    """Records past the tenant's retention pruned (their leaves keep their hashes)."""


class BodyField(NamedTuple):
    """One member of a kind's body and what it holds."""

    name: str
    doc: str


SPAN_BODY_FIELDS: Final[tuple[BodyField, ...]] = (
    BodyField("trace_id", "Trace id, 32 lowercase hex digits."),
    BodyField("span_id", "Span id, 16 lowercase hex digits."),
    BodyField("parent_span_id", "Parent span id; empty for a root span."),
    BodyField("start_time", "Start, RFC 3339 UTC with nine fraction digits."),
    BodyField("end_time", "End, RFC 3339 UTC with nine fraction digits."),
    BodyField("name", "Span name."),
    BodyField("kind", "LLM, TOOL, RETRIEVER, AGENT... (schemas.spans.SpanKind)."),
    BodyField("status_code", "UNSET, OK or ERROR."),
    BodyField("service", "service.name of the emitting resource."),
    BodyField("agent_name", "Agent that produced the span."),
    BodyField("session_id", "Session or conversation id."),
    BodyField("user_id", "End-user id."),
    BodyField("principal_id", "Who the agent acted for: the authority."),
    BodyField("principal_chain", "Delegation chain, outermost first."),
    BodyField("policy_id", "Policy the action ran under."),
    BodyField("provider", "Model provider."),
    BodyField("operation", "chat, embeddings, execute_tool..."),
    BodyField("request_model", "Model the caller asked for."),
    BodyField("response_model", "Model that answered: which model version decided."),
    BodyField("system_fingerprint", "Provider's system fingerprint, where given."),
    BodyField("input_tokens", "Input tokens."),
    BodyField("output_tokens", "Output tokens."),
    BodyField("tool_name", "Tool a TOOL span executed."),
    BodyField("tool_call_id", "Tool call id a TOOL span executed."),
    BodyField("tool_calls", "Tool calls an LLM chose, in order: {id, name, arguments_hash}."),
    BodyField("finish_reasons", "Why the model stopped, one per choice."),
    BodyField("input_hash", "Content hash of the input: what the agent saw."),
    BodyField("output_hash", "Content hash of the output."),
    BodyField("system_prompt_hash", "Content hash of the system prompt."),
    BodyField("tools_hash", "Content hash of the tools offered."),
    BodyField("request_hash", "schemas.calls.request_hash of the call (replay key)."),
    BodyField("raw_request_hash", "Content hash of the request as recorded verbatim."),
    BodyField("documents", "Retrieved documents in rank order: {id, content_hash}."),
    BodyField("attribute_refs", "Attribute name -> content hash of a large attribute value."),
    BodyField("convention", "Instrumentation convention the span came in."),
)
"""A span leaf's body: what an auditor needs to say who acted, for whom, under which policy, with
which model, on which inputs (by hash). Left out: previews, attribute values and events (text that
an erasure must be able to remove), cost (a price table's opinion), ingest time and Kafka
coordinates (transport, not the span)."""

CONTENT_BODY_FIELDS: Final[tuple[BodyField, ...]] = (
    BodyField("hash", "SHA-256 of the canonical form, 64 lowercase hex digits."),
    BodyField("kind", "messages, text, document, tool_arguments, tool_result, attribute, tools."),
    BodyField("size", "Length of the canonical form in bytes."),
)
"""A content leaf's body: the hash stands for the text, which is never in the leaf."""

ERASURE_BODY_FIELDS: Final[tuple[BodyField, ...]] = (
    BodyField("erasure_id", "Erasure id, 32 hex digits."),
    BodyField("subject_attribute", "What identified the subject: user.id, session.id..."),
    BodyField(
        "subject_sha256",
        "HMAC-SHA256 of the subject's value under the tenant's erasure key (never the value: a "
        "short id's plain hash would let a proof's holder confirm a guess).",
    ),
    BodyField("reason", "Why (the request's reason)."),
    BodyField("contents", "How many content records were erased."),
)
"""An erasure leaf's body; its ``content_sha256`` lists the erased contents."""

RETENTION_EXPIRY_BODY_FIELDS: Final[tuple[BodyField, ...]] = (
    BodyField("expiry_id", "Expiry id, 32 hex digits."),
    BodyField("retention_days", "The tenant's retention when the records were pruned."),
    BodyField("cutoff", "Records older than this were pruned; RFC 3339 UTC, six digits."),
    BodyField("spans", "Spans pruned."),
    BodyField("contents", "Content records pruned."),
)
"""A retention expiry leaf's body."""


@dataclasses.dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One leaf's record. Construction checks the form, so any instance has one canonical form."""

    kind: LeafKind
    tenant: str
    id: str
    time: str
    """RFC 3339 UTC with six fraction digits."""
    actor: str
    body: Mapping[str, Any]
    content_sha256: tuple[str, ...] = ()
    """Sorted, each once (``canonical_record`` rejects anything else rather than reorder)."""

    def __post_init__(self) -> None:
        if not isinstance(self.kind, LeafKind):
            raise ValueError(f"kind {self.kind!r} is not a LeafKind")
        for name in ("tenant", "id", "actor"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        if not isinstance(self.time, str) or not _TIME.fullmatch(self.time):
            raise ValueError(f"time {self.time!r} is not RFC 3339 UTC with six fraction digits")
        if not isinstance(self.body, Mapping):
            raise ValueError("body must be a JSON object")
        hashes = self.content_sha256
        if not isinstance(hashes, tuple) or not all(
            isinstance(h, str) and _SHA256.fullmatch(h) for h in hashes
        ):
            raise ValueError("content_sha256 must be a tuple of 64 lowercase hex digits each")
        if list(hashes) != sorted(set(hashes)):
            raise ValueError("content_sha256 must be sorted, each hash once")

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> LedgerRecord:
        """The record of a JSON object with these members (``v`` may be left out)."""
        try:
            kind = LeafKind(value["kind"])
        except ValueError as exc:
            raise ValueError(f"unknown record kind {value['kind']!r}") from exc
        hashes = value["content_sha256"]
        if not isinstance(hashes, list):
            raise ValueError("content_sha256 must be an array")
        return cls(
            kind=kind,
            tenant=value["tenant"],
            id=value["id"],
            time=value["time"],
            actor=value["actor"],
            body=value["body"],
            content_sha256=tuple(hashes),
        )

    def to_json(self) -> dict[str, Any]:
        """The object whose canonical JSON is the leaf's record."""
        return {
            "actor": self.actor,
            "body": dict(self.body),
            "content_sha256": list(self.content_sha256),
            "id": self.id,
            "kind": self.kind.value,
            "tenant": self.tenant,
            "time": self.time,
            "v": FORMAT_VERSION,
        }


def canonical_record(record: LedgerRecord) -> bytes:
    """The leaf's bytes: RFC 8785 canonical JSON of ``record.to_json()``, UTF-8."""
    return canonical_json_bytes(record.to_json())


def leaf_hash(canonical: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || canonical), 32 bytes."""
    return hashlib.sha256(LEAF_PREFIX + canonical).digest()


def origin(tenant: str) -> str:
    """The checkpoint origin line of a tenant's log."""
    return f"agentledger/{tenant}"


def parse_canonical_record(data: bytes) -> LedgerRecord:
    """The record ``data`` is the canonical form of; raises ValueError when it is not exactly
    such a form (other members, another version, not canonical), so a verifier that accepts it
    knows what the leaf says."""
    try:
        value = loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"record is not JSON: {exc}") from exc
    if not isinstance(value, dict) or value.keys() != _MEMBERS:
        raise ValueError(f"record must be an object with exactly {sorted(_MEMBERS)}")
    if value["v"] != FORMAT_VERSION or type(value["v"]) is not int:
        raise ValueError(f"record version {value['v']!r} is not {FORMAT_VERSION}")
    record = LedgerRecord.from_json(value)
    if canonical_record(record) != bytes(data):
        raise ValueError("record is not in canonical form (RFC 8785)")
    return record


# -- building records of each kind --------------------------------------------------------------


def _micros(value: int | _dt.datetime | str) -> str:
    """RFC 3339 UTC, six digits, from Unix nanoseconds, a datetime (naive = UTC) or RFC 3339 UTC
    text with six or nine digits (cut to six, as the leaf's ``time`` has)."""
    if isinstance(value, str):
        return value[:26] + "Z" if _TIME9.fullmatch(value) else value
    if isinstance(value, _dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
    else:
        moment = _EPOCH + _dt.timedelta(microseconds=int(value) // 1000)
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _nanos(value: int | _dt.datetime | str) -> str:
    """RFC 3339 UTC, nine digits, from Unix nanoseconds, a datetime or RFC 3339 UTC text with
    six or nine digits."""
    if isinstance(value, str):
        return value[:26] + "000Z" if _TIME.fullmatch(value) else value
    if isinstance(value, _dt.datetime):
        return _micros(value)[:-1] + "000Z"
    seconds, frac = divmod(int(value), 1_000_000_000)
    whole = (_EPOCH + _dt.timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{whole}.{frac:09d}Z"


def _hashes(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({v for v in values if v}))


def _get(row: Mapping[str, Any], name: str, default: Any) -> Any:
    value = row.get(name, default)
    return default if value is None else value


def span_record(tenant: str, row: Mapping[str, Any]) -> LedgerRecord:
    """The leaf of a normalized span row (column names of ``schemas.spans``; times as Unix
    nanoseconds, datetimes or RFC 3339 text; tool calls and documents as mappings or tuples).
    Its ``content_sha256`` lists every content hash the span references."""
    tool_calls = [
        {"id": str(c[0]), "name": str(c[1]), "arguments_hash": str(c[2])}
        if isinstance(c, (tuple, list))
        else {k: str(c[k]) for k in ("id", "name", "arguments_hash")}
        for c in _get(row, "tool_calls", [])
    ]
    documents = [
        {"id": str(d[0]), "content_hash": str(d[1])}
        if isinstance(d, (tuple, list))
        else {k: str(d[k]) for k in ("id", "content_hash")}
        for d in _get(row, "documents", [])
    ]
    refs = {str(k): str(v) for k, v in dict(_get(row, "attribute_refs", {})).items()}
    body: dict[str, Any] = {}
    for field in SPAN_BODY_FIELDS:
        name = field.name
        if name in ("start_time", "end_time"):
            body[name] = _nanos(row[name])
        elif name in ("principal_chain", "finish_reasons"):
            body[name] = [str(x) for x in _get(row, name, [])]
        elif name in ("input_tokens", "output_tokens"):
            body[name] = int(_get(row, name, 0))
        elif name == "tool_calls":
            body[name] = tool_calls
        elif name == "documents":
            body[name] = documents
        elif name == "attribute_refs":
            body[name] = refs
        else:
            body[name] = str(_get(row, name, ""))
    referenced = [
        body["input_hash"],
        body["output_hash"],
        body["system_prompt_hash"],
        body["tools_hash"],
        body["raw_request_hash"],
        *(c["arguments_hash"] for c in tool_calls),
        *(d["content_hash"] for d in documents),
        *refs.values(),
    ]
    return LedgerRecord(
        kind=LeafKind.SPAN,
        tenant=tenant,
        id=body["span_id"],
        time=_micros(row["start_time"]),
        actor=str(_get(row, "sent_by", "")) or "pipeline",
        body=body,
        content_sha256=_hashes(h for h in referenced if _SHA256.fullmatch(h)),
    )


def content_record(
    tenant: str,
    content_sha256: str,
    kind: str,
    size: int,
    first_seen: int | _dt.datetime | str,
    *,
    actor: str = "pipeline",
) -> LedgerRecord:
    """The leaf of a content record: its hash, kind and size, never its text."""
    return LedgerRecord(
        kind=LeafKind.CONTENT,
        tenant=tenant,
        id=content_sha256,
        time=_micros(first_seen),
        actor=actor,
        body={"hash": content_sha256, "kind": str(kind), "size": int(size)},
        content_sha256=(content_sha256,),
    )


def from_record(record: RecordLike, content_sha256: Iterable[str] = ()) -> LedgerRecord:
    """The leaf of a record of the record log (``schemas.records``): its envelope and parsed
    body; ``content_sha256``: the content records it references (the caller knows which)."""
    body = loads(record.body)
    if not isinstance(body, dict):
        raise ValueError(f"{record.kind.value} {record.record_id}: body is not an object")
    if canonical_json(body) != record.body:
        raise ValueError(f"{record.kind.value} {record.record_id}: body is not canonical")
    return LedgerRecord(
        kind=LeafKind(record.kind.value),
        tenant=record.tenant,
        id=record.record_id,
        time=_micros(record.recorded_at_ns),
        actor=record.actor,
        body=body,
        content_sha256=_hashes(content_sha256),
    )


def fixtures() -> list[dict[str, Any]]:
    """The golden cases: each has ``name``, ``record`` (members for ``LedgerRecord.from_json``),
    ``canonical`` (the text whose UTF-8 bytes are the leaf's record) and ``leaf_hash`` (hex)."""
    package = resources.files("agentledger.schemas.canonical")
    cases: list[dict[str, Any]] = json.loads(package.joinpath(FIXTURES).read_text("utf-8"))["cases"]
    return cases

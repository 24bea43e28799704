"""The record log: intents, outcomes, controls, feedback, dataset manifests and drift reports as one
insert-only table (ARCHITECTURE decision 9: history is insert-only).

A record is an envelope around a canonical body::

    kind         what the record is (``RecordKind``)
    record_id    the id of what it is about, within its kind (an intent id, a control id, a
                 feedback id, a dataset id, a replay run id); a change is a new record with the
                 same id and another body
    tenant       stamped by the collector from the API key, never taken from a body
    recorded_at  when the server recorded it (UTC, microseconds)
    actor        who recorded it: the API key's name or id (``key:<id>``), else ``api`` / ``cli``
                 / ``pipeline`` (records the pipeline derives) / ``migration`` (carried over
                 from the per-kind tables of migrations 0002-0006 by migration 0008)
    body         the record's fields as RFC 8785 canonical JSON (``agentledger.schemas.canonical``)
    body_sha256  SHA-256 of the body's UTF-8 bytes: anyone can recompute it from the body

Nothing updates, replaces or collapses a record. A re-sent identical record (same kind, tenant,
record id and body) may be stored twice (the insert's deduplication token drops most such
repeats); readers count it once by de-duplicating ``(record_id, body_sha256)``, and compute the
current state of anything from the log (the latest record per key).

``BODY_FIELDS`` is the one definition of each kind's body: its field names and the ClickHouse type
the typed view over ``records`` (``VIEWS``, migration 0008) extracts each with. Times travel in the
body as RFC 3339 text (``rfc3339``); ``Float64`` fields hold ``null`` where the value is NaN; fields
typed ``JSON`` hold any JSON value (the view gives its JSON text). A test applies the migrations and
checks that each view's columns are the envelope's followed by ``BODY_FIELDS``.
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from agentledger.schemas.canonical import canonical_json, loads
from agentledger.schemas.spans import Column

__all__ = [
    "BODY_FIELDS",
    "DRIFT_CALL_FIELDS",
    "ENVELOPE_VIEW_COLUMNS",
    "ID_FIELDS",
    "LATER_FIELDS",
    "LATEST_FEEDBACK_VIEW",
    "LISTED_CONTENTS",
    "RECORDS_TABLE",
    "RECORD_COLUMNS",
    "VIEWS",
    "Actor",
    "Record",
    "RecordKind",
    "body_sha256",
    "from_rfc3339",
    "leaf_parts",
    "make_record",
    "rfc3339",
]

RECORDS_TABLE: Final = "records"
"""The insert-only table every record kind is appended to (migration 0008)."""


class RecordKind(str, enum.Enum):
    """What a record is; the ``kind`` column."""

    INTENT = "intent"
    """An ask to run a governed tool (one record per ask; a parked call asks again)."""
    OUTCOME = "outcome"
    """What a governed tool returned or raised."""
    CONTROL = "control"
    """A pause or a resume of the runs of a trace, session, agent or principal."""
    FEEDBACK = "feedback"
    """A score, label, comment or correction on a trace or span."""
    DATASET = "dataset"
    """The manifest of an exported dataset."""
    DRIFT_REPORT = "drift_report"
    """A replay run's drift report, with each replayed call."""
    API_KEY = "api_key"
    """An API key created or revoked (its SHA-256, never the secret); the latest record per key
    name is the key as it stands."""
    ACCESS = "access"
    """One read of content (traces, spans, contents, audit reports, exports, the key list)."""
    ANOMALY_LABEL = "anomaly_label"
    """An operator's ack, mute, unmute or true/false-alarm label of a detected anomaly."""
    ERASURE = "erasure"
    """The contents of a subject erased (GDPR art. 17): who, when, which hashes, why."""
    RETENTION_EXPIRY = "retention_expiry"
    """Spans and contents past the tenant's retention pruned by the retention job."""


class Actor:
    """Values of the ``actor`` column other than a key's name or id."""

    API = "api"
    """The collector's API, without API keys (single-tenant, ``--no-auth``)."""
    CLI = "cli"
    """The command line, writing to its store directly."""
    PIPELINE = "pipeline"
    """The pipeline, from what it stored (feedback carried on spans)."""
    MIGRATION = "migration"
    """Migration 0008, from the per-kind tables of earlier versions."""
    KEY_PREFIX = "key:"
    """An API key's id follows: the first 12 hex digits of the SHA-256 of the key."""


RECORD_COLUMNS: Final[tuple[Column, ...]] = (
    Column(
        "tenant", "LowCardinality(String)", "Tenant, stamped by the collector from the API key."
    ),
    Column("kind", "LowCardinality(String)", "intent, outcome, control, feedback, dataset..."),
    Column("recorded_at", "DateTime64(6, 'UTC')", "When the server recorded the record."),
    Column("record_id", "String", "Id of what the record is about, within its kind."),
    Column("actor", "String", "Who recorded it: the API key's name or id, api, cli, pipeline."),
    Column("body", "String", "The record's fields as RFC 8785 canonical JSON."),
    Column("body_sha256", "String", "SHA-256 of the body's UTF-8 bytes, 64 hex digits."),
)
"""Columns of ``records``, in table order."""

ENVELOPE_VIEW_COLUMNS: Final[tuple[Column, ...]] = tuple(
    c for c in RECORD_COLUMNS if c.name != "kind"
)
"""The envelope columns every typed view starts with (its kind is fixed)."""

_DT6: Final = "DateTime64(6, 'UTC')"
_DT3: Final = "DateTime64(3, 'UTC')"

BODY_FIELDS: Final[Mapping[RecordKind, tuple[Column, ...]]] = {
    RecordKind.INTENT: (
        Column("intent_id", "String", "Intent id chosen by the agent, 32 hex digits."),
        Column("attempt", "UInt32", "Ask number, 0 first; a parked call re-asks with attempt + 1."),
        Column("requested_at", _DT6, "When the agent first asked (same for every re-ask)."),
        Column("received_at", _DT6, "When the collector acknowledged this ask."),
        Column("decision", "String", "proceed or paused, as answered to this ask."),
        Column("control_id", "String", "Pause control that held the call; empty when none."),
        Column("tool_name", "String", "Name of the governed tool."),
        Column("tool_call_id", "String", "Tool call id the model chose, when known."),
        Column("arguments", "String", "Canonical JSON of the arguments as sent."),
        Column("arguments_sha256", "String", "SHA-256 of the arguments the tool received."),
        Column("arguments_redacted", "Bool", "Arguments redacted or not captured."),
        Column("trace_id", "String", "Trace id of the run."),
        Column("span_id", "String", "Span id of the governed tool span."),
        Column("parent_span_id", "String", "Span that chose the call."),
        Column("principal_id", "String", "Named principal the agent acted for."),
        Column("principal_name", "String", "Display name of the principal."),
        Column("principal_role", "String", "Role of the principal."),
        Column("principal_chain", "Array(String)", "Delegation chain, outermost first."),
        Column("policy_id", "String", "Policy the call ran under."),
        Column("agent_name", "String", "Agent that asked."),
        Column("session_id", "String", "Session or conversation id."),
        Column("user_id", "String", "End-user id."),
    ),
    RecordKind.OUTCOME: (
        Column("intent_id", "String", "Intent the outcome belongs to."),
        Column("finished_at", _DT6, "When the tool finished (or gave up waiting)."),
        Column("received_at", _DT6, "When the collector received the outcome."),
        Column("status", "String", "ok, error or not_run."),
        Column("result", "String", "Canonical JSON of the result; empty when not captured."),
        Column("result_sha256", "String", "SHA-256 of the canonical JSON of the result."),
        Column("error_type", "String", "Exception class, when the tool raised or did not run."),
        Column("error_message", "String", "Exception message."),
        Column("duration_ms", "Float64", "Time the tool body ran, milliseconds."),
        Column("paused_ms", "Float64", "Time the call waited parked, milliseconds."),
    ),
    RecordKind.CONTROL: (
        Column("control_id", "String", "Server's id (from the client's key, if any), 32 hex."),
        Column("created_at", _DT6, "When the collector recorded the control."),
        Column("action", "String", "pause or resume."),
        Column("scope", "String", "trace, session, agent or principal."),
        Column("target", "String", "Trace id, session id, agent name or principal id."),
        Column("by", "String", "Name of the API key that recorded it (api, cli without keys)."),
        Column("reason", "String", "Why."),
        Column("note", "String", "Who the client said asked (its `by`): a note, not identity."),
    ),
    RecordKind.FEEDBACK: (
        Column("feedback_id", "String", "Server's: from the client's key, else SHA-256 of it."),
        Column("trace_id", "String", "Trace the feedback is about."),
        Column("span_id", "String", "Span it is about; empty for the whole trace."),
        Column("name", "String", "What was judged (helpfulness, correctness, thumbs...)."),
        Column("score", "Nullable(Float64)", "Numeric value, if any."),
        Column("label", "String", "Categorical value, if any."),
        Column("comment", "String", "Free text."),
        Column("correction", "String", "Corrected output the annotator supplied."),
        Column("annotator", "String", "Who gave it: a person, a model or a program."),
        Column("annotator_kind", "String", "HUMAN, LLM or CODE."),
        Column("source", "String", "api, cli, span_attribute or span_event."),
        Column("metadata", "Map(String, String)", "Extra key/values."),
        Column("created_at", _DT3, "When it was given; the latest version of an id wins."),
    ),
    RecordKind.DATASET: (
        Column("dataset_id", "String", "Dataset id (ds-<UTC time>-<random>)."),
        Column("name", "String", "Human name given at export."),
        Column("format", "String", "chat, preference, openai-dpo, parquet or trajectory."),
        Column("created_at", _DT3, "When the export finished."),
        Column("creator", "String", "Who ran the export."),
        Column("path", "String", "Directory the files were written to."),
        Column("examples", "UInt64", "Examples written, all splits."),
        Column("train_examples", "UInt64", "Examples in the train split."),
        Column("validation_examples", "UInt64", "Examples in the validation split."),
        Column("source_spans", "UInt64", "Production spans the examples were built from."),
        Column("content_digest", "String", "SHA-256 over the example content hashes."),
        Column("redaction_policy", "String", "Redaction policy applied."),
        Column("filters", "JSON", "Export filters."),
        Column("manifest", "JSON", "The manifest as written next to the files."),
    ),
    RecordKind.DRIFT_REPORT: (
        Column("run_id", "String", "Replay run id, 32 hex digits."),
        Column("created_at", _DT3, "When the replay ran."),
        Column("candidate_model", "String", "Model the calls were replayed against."),
        Column("base_url", "String", "Provider base URL used; empty = the SDK default."),
        Column("filter", "JSON", "The filters that chose the recorded calls."),
        Column("replayed", "UInt32", "Calls replayed and answered."),
        Column("errors", "UInt32", "Calls whose replay failed (provider error)."),
        Column("drifted", "UInt32", "Answered calls whose answer differs."),
        Column("tool_agreement", "Float64", "Share choosing the same tools; NaN when none."),
        Column("argument_agreement", "Float64", "Share choosing the same tools and arguments."),
        Column("text_similarity_mean", "Float64", "Mean text similarity of the answers."),
        Column("text_similarity_p10", "Float64", "10th percentile of the text similarity."),
        Column("text_similarity_p50", "Float64", "Median text similarity."),
        Column("text_similarity_min", "Float64", "Lowest text similarity."),
        Column("summary", "JSON", "The full summary, worst cases included."),
        Column("calls", "JSON", "Each replayed call, linked to its source span."),
    ),
    RecordKind.API_KEY: (
        Column("name", "String", "Key name, unique across tenants; the actor of what it sends."),
        Column("role", "String", "ingest, reader, operator, auditor or admin."),
        Column("agent", "String", "The one agent the key may send for; empty = any."),
        Column("key_sha256", "String", "SHA-256 of the secret, 64 hex digits (never the secret)."),
        Column("status", "String", "active, or revoked (a revoked key is refused everywhere)."),
        Column("created_at", _DT6, "When the key was created."),
        Column("changed_at", _DT6, "When this record was made (creation or revocation)."),
    ),
    RecordKind.ACCESS: (
        Column("access_id", "String", "Entry id, 32 hex digits."),
        Column("accessed_at", _DT6, "When the read was answered."),
        Column("key_name", "String", "Name of the key that read."),
        Column("role", "String", "Role of that key."),
        Column("method", "String", "HTTP method (or cli for a local read)."),
        Column("route", "String", "Route template, e.g. /api/v1/traces/{trace_id}."),
        Column("object_ids", "Array(String)", "Ids of what was read (trace, content, dataset...)."),
        Column("rows", "UInt64", "Rows (spans, items, examples) the answer carried."),
        Column("prev_sha256", "String", "body_sha256 of this writer's previous entry (a chain)."),
        Column("writer", "String", "The process that wrote the entry and its chain."),
    ),
    RecordKind.ANOMALY_LABEL: (
        Column("action_id", "String", "Action id, 32 hex digits."),
        Column("anomaly_id", "String", "The anomaly acted on (anomalies.anomaly_id)."),
        Column("action", "String", "ack, mute, unmute or label."),
        Column("label", "String", "true_alarm or false_alarm for a label; empty otherwise."),
        Column("mute_key", "String", "Type and dimensions a mute or unmute covers; else empty."),
        Column("until", _DT6, "When a mute ends; zero = until unmuted."),
        Column("note", "String", "Free text: why."),
        Column("created_at", _DT6, "When the operator acted."),
    ),
    RecordKind.ERASURE: (
        Column("erasure_id", "String", "Erasure id, 32 hex digits."),
        Column(
            "subject_attribute", "String", "What identified the subject: user.id, session.id..."
        ),
        Column("subject_sha256", "String", "HMAC-SHA256 of the subject's value, tenant's key."),
        Column("reason", "String", "Why (the request's reason)."),
        Column("contents", "UInt64", "How many content records were erased."),
        Column(
            "content_sha256", "Array(String)", "The erased contents (the leaf's content_sha256)."
        ),
    ),
    RecordKind.RETENTION_EXPIRY: (
        Column("expiry_id", "String", "Expiry id, 32 hex digits."),
        Column("retention_days", "UInt32", "The tenant's retention when the records were pruned."),
        Column("cutoff", _DT6, "Spans ingested before this were pruned (unless held)."),
        Column("spans", "UInt64", "Spans pruned."),
        Column("contents", "UInt64", "Content records pruned."),
    ),
}
"""Each kind's body fields, with the type its typed view gives them."""

DRIFT_CALL_FIELDS: Final[tuple[Column, ...]] = (
    Column("trace_id", "String", "Trace of the source span."),
    Column("span_id", "String", "The recorded LLM span replayed."),
    Column("source_start_time", "String", "Start of the source span, RFC 3339 with nine digits."),
    Column("agent_name", "String", "Agent of the source span."),
    Column("api", "String", "Wire API the request was sent in: openai or anthropic."),
    Column("recorded_model", "String", "Model the recorded call requested."),
    Column("recorded_answered_model", "String", "Model that answered the recorded call."),
    Column("replay_model", "String", "Model the replay requested."),
    Column("replay_answered_model", "String", "Model that answered the replay."),
    Column("request_source", "String", "recorded (the request as captured) or reconstructed."),
    Column("request_sha256", "String", "SHA-256 of the canonical JSON of the rebuilt request."),
    Column("input_hash", "String", "input_hash of the source span (canonical messages)."),
    Column("messages_match", "Bool", "The rebuilt request's messages hash to input_hash."),
    Column("status", "String", "ok or error."),
    Column("error", "String", "Provider error of a failed replay."),
    Column("same_tools", "Bool", "Same tools chosen, in the same order."),
    Column("same_arguments", "Bool", "Same tools with equal arguments."),
    Column("text_similarity", "Float64", "difflib ratio of the two texts; null on error."),
    Column("token_jaccard", "Float64", "Jaccard index of the two texts' word sets; null on error."),
    Column("drift", "Bool", "The replayed answer differs (or the replay failed)."),
    Column("recorded_tools", "Array(String)", "Tools the recorded answer chose, in order."),
    Column("replayed_tools", "Array(String)", "Tools the replayed answer chose, in order."),
    Column("recorded_output_hash", "String", "output_hash of the source span."),
    Column(
        "replayed_answer", "JSON", "The replayed answer (text, tool calls, model); null on error."
    ),
)
"""The fields of each object in a drift report's ``calls``."""

LATER_FIELDS: Final[Mapping[RecordKind, Mapping[str, Any]]] = {
    RecordKind.CONTROL: {"note": ""},
}
"""Body fields added after a kind's first version, with the value a record made before holds
(``make_record`` fills them in for a body that lacks them: a journal line or topic value written by
an earlier version, a row carried over from a per-kind table)."""

ID_FIELDS: Final[Mapping[RecordKind, str]] = {
    RecordKind.INTENT: "intent_id",
    RecordKind.OUTCOME: "intent_id",
    RecordKind.CONTROL: "control_id",
    RecordKind.FEEDBACK: "feedback_id",
    RecordKind.DATASET: "dataset_id",
    RecordKind.DRIFT_REPORT: "run_id",
    RecordKind.API_KEY: "name",
    RecordKind.ACCESS: "access_id",
    RecordKind.ANOMALY_LABEL: "action_id",
    RecordKind.ERASURE: "erasure_id",
    RecordKind.RETENTION_EXPIRY: "expiry_id",
}
"""The body field a record's ``record_id`` is (the view names ``record_id`` so)."""

VIEWS: Final[Mapping[RecordKind, str]] = {
    RecordKind.INTENT: "intents_v",
    RecordKind.OUTCOME: "intent_outcomes_v",
    RecordKind.CONTROL: "controls_v",
    RecordKind.FEEDBACK: "feedback_v",
    RecordKind.DATASET: "datasets_v",
    RecordKind.DRIFT_REPORT: "drift_reports_v",
    RecordKind.API_KEY: "api_keys_v",
    RecordKind.ACCESS: "access_log_v",
    RecordKind.ANOMALY_LABEL: "anomaly_labels_v",
    RecordKind.ERASURE: "erasures_v",
    RecordKind.RETENTION_EXPIRY: "retention_expiries_v",
}
"""The typed view of each kind: one row per stored record (a re-sent one may appear twice)."""

LISTED_CONTENTS: Final = "content_sha256"
"""The body field of an erasure that lists content hashes: its leaf carries them as the leaf's
``content_sha256`` (``schemas.ledger``), not in the leaf's body (``leaf_parts``)."""

LATEST_FEEDBACK_VIEW: Final = "feedback_latest_v"
"""Feedback as it stands: the latest version of each (tenant, trace, span, name, feedback id)."""

_TIME_TYPES: Final = frozenset({_DT3, _DT6})
_TIMES: Final[Mapping[RecordKind, frozenset[str]]] = {
    kind: frozenset(c.name for c in cols if c.ch_type in _TIME_TYPES)
    for kind, cols in BODY_FIELDS.items()
}
_NAMES: Final[Mapping[RecordKind, frozenset[str]]] = {
    kind: frozenset(c.name for c in cols) for kind, cols in BODY_FIELDS.items()
}
_EPOCH: Final = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def rfc3339(value: int | _dt.datetime | str, *, nanos: bool = False) -> str:
    """A time as RFC 3339 UTC text with microseconds (``2026-01-02T03:04:05.123456Z``): Unix
    nanoseconds, an aware datetime, or such text already (kept). ``nanos``: nine digits, for Unix
    nanoseconds that locate a span (``2026-01-02T03:04:05.123456789Z``)."""
    if isinstance(value, str):
        return value
    if nanos and isinstance(value, int):
        whole = (_EPOCH + _dt.timedelta(seconds=value // 1_000_000_000)).strftime(
            "%Y-%m-%dT%H:%M:%S"
        )
        return f"{whole}.{value % 1_000_000_000:09d}Z"
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        moment = value.astimezone(_dt.timezone.utc)
    else:
        moment = _EPOCH + _dt.timedelta(microseconds=int(value) // 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def from_rfc3339(text: str) -> int:
    """Unix nanoseconds of RFC 3339 text (microsecond precision)."""
    moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def body_sha256(body: str) -> str:
    """SHA-256 (64 lowercase hex digits) of a body's UTF-8 bytes."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class Record:
    """One record of the log. Build it with ``make_record``; it is never changed once built."""

    kind: RecordKind
    tenant: str
    record_id: str
    recorded_at_ns: int
    """Unix nanoseconds, a whole number of microseconds (what the table keeps)."""
    actor: str
    body: str
    body_sha256: str

    def fields(self) -> dict[str, Any]:
        """The body, parsed."""
        parsed: dict[str, Any] = loads(self.body)
        return parsed

    def verify(self) -> bool:
        """True when ``body_sha256`` is the SHA-256 of ``body``."""
        return body_sha256(self.body) == self.body_sha256

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (the governance journal, the intents topic)."""
        return {
            "kind": self.kind.value,
            "tenant": self.tenant,
            "record_id": self.record_id,
            "recorded_at_ns": self.recorded_at_ns,
            "actor": self.actor,
            "body": self.body,
            "body_sha256": self.body_sha256,
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> Record:
        """The record ``to_json`` wrote; raises ValueError when the body does not match its hash
        or does not name the record's id. Fields a newer version added are kept (the body is what
        was recorded; the views read the fields they know)."""
        record = cls(
            kind=RecordKind(value["kind"]),
            tenant=str(value["tenant"]),
            record_id=str(value["record_id"]),
            recorded_at_ns=int(value["recorded_at_ns"]),
            actor=str(value["actor"]),
            body=str(value["body"]),
            body_sha256=str(value["body_sha256"]),
        )
        if not record.verify():
            raise ValueError(
                f"body_sha256 of {record.kind.value} {record.record_id} does not match"
            )
        fields = record.fields()
        if not isinstance(fields, dict) or ID_FIELDS[record.kind] not in fields:
            raise ValueError(f"not a {record.kind.value} body")
        if str(fields[ID_FIELDS[record.kind]]) != record.record_id:
            raise ValueError(f"record_id {record.record_id} is not the body's id")
        return record


def make_record(
    kind: RecordKind,
    tenant: str,
    fields: Mapping[str, Any],
    *,
    actor: str,
    recorded_at_ns: int | None = None,
) -> Record:
    """A record of ``kind`` with these body ``fields`` (exactly ``BODY_FIELDS[kind]``; times as
    Unix nanoseconds, datetimes or RFC 3339 text), recorded now unless ``recorded_at_ns`` is given.

    Raises ValueError when the fields are not those of the kind.
    """
    names = _NAMES[kind]
    later = LATER_FIELDS.get(kind, {})
    if later and not later.keys() <= fields.keys():
        fields = {**{k: v for k, v in later.items() if k not in fields}, **fields}
    if fields.keys() != names:
        missing, extra = sorted(names - fields.keys()), sorted(fields.keys() - names)
        raise ValueError(f"{kind.value} body: missing {missing}, unknown {extra}")
    times = _TIMES[kind]
    body = canonical_json({k: (rfc3339(v) if k in times else v) for k, v in fields.items()})
    at = time.time_ns() if recorded_at_ns is None else int(recorded_at_ns)
    return Record(
        kind=kind,
        tenant=tenant,
        record_id=str(fields[ID_FIELDS[kind]]),
        recorded_at_ns=at - at % 1000,
        actor=actor,
        body=body,
        body_sha256=body_sha256(body),
    )


def leaf_parts(record: Record) -> tuple[Record, tuple[str, ...]]:
    """What a record's ledger leaf is made of: the record whose body is the leaf's body, and the
    content hashes the leaf lists. An erasure stores the hashes it erased in its body (the only
    place they survive the erasure) while its leaf lists them beside the body, as every leaf lists
    the contents it references; every other record is its own leaf body and lists none."""
    if record.kind is not RecordKind.ERASURE:
        return record, ()
    fields = record.fields()
    if not isinstance(fields, dict) or canonical_json(fields) != record.body:
        raise ValueError(f"erasure {record.record_id}: body is not canonical")
    listed = fields.pop(LISTED_CONTENTS, [])
    if not isinstance(listed, list) or not all(isinstance(h, str) for h in listed):
        raise ValueError(f"erasure {record.record_id}: {LISTED_CONTENTS} is not a list of hashes")
    body = canonical_json(fields)
    rest = Record(
        kind=record.kind,
        tenant=record.tenant,
        record_id=record.record_id,
        recorded_at_ns=record.recorded_at_ns,
        actor=record.actor,
        body=body,
        body_sha256=body_sha256(body),
    )
    return rest, tuple(listed)

"""Feedback: named scores, labels, comments and corrections on a trace or a span.

Feedback arrives three ways and is appended to the record log (``records``, kind
``feedback``; read through the typed views ``feedback_v``, every version, and
``feedback_latest_v``, feedback as it stands):

* ``POST /v1/feedback`` and ``agentledger feedback add`` (through Kafka when it
  is configured, see :mod:`.feedback_kafka`);
* evaluation and annotation attributes on spans (``annotation.<name>.score``,
  ``evaluation.<name>.label``, ``eval.<name>.explanation``...) and OpenTelemetry
  GenAI ``gen_ai.evaluation.result`` span events, picked up by
  :func:`feedback_from_spans`.

Identity: the server gives a feedback its ``feedback_id``. The ``id`` a client sends is an
idempotency key, never the id itself: the id is derived from it and the tenant
(``idempotency.derived_id``), so no client can pick another feedback's id. Sent again under the
same key with the same fields, it is the feedback recorded then (nothing new is stored); with
other fields, it is refused (``FeedbackConflict``, HTTP 409) where the store can be read (the
embedded server, a collector with a store); through Kafka the retry lands on the same id.
Without a key, the id is the SHA-256 of what the feedback says (tenant, target, name, values,
annotator), so the same feedback sent twice counts once (an exact repeat is not stored again).

A span's *effective score* for a feedback name is the mean of its span-level
feedback of that name, or, when it has none, of its trace's trace-level
feedback. Labels count as scores where they say yes or no (``thumbs_up`` = 1,
``thumbs_down`` = 0...); see :data:`POSITIVE_LABELS`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
from datetime import datetime, timezone
from typing import Any, Final, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from agentledger.pipeline.governance.idempotency import derived_id, request_sha256
from agentledger.pipeline.store import Store, StoreError, StoreUnavailable
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.attributes import Evaluation as EV
from agentledger.schemas.records import (
    LATEST_FEEDBACK_VIEW,
    Actor,
    Record,
    RecordKind,
    make_record,
)

__all__ = [
    "FEEDBACK_COLUMNS",
    "FeedbackConflict",
    "FeedbackLog",
    "FeedbackRejected",
    "FeedbackUnavailable",
    "FeedbackUnknownSpan",
    "StoreFeedbackLog",
    "FEEDBACK_VIEW",
    "NEGATIVE_LABELS",
    "POSITIVE_LABELS",
    "FeedbackIn",
    "FeedbackRecord",
    "effective_score_sql",
    "feedback_record",
    "feedback_from_spans",
    "list_feedback",
    "resolve_trace_ids",
    "to_record",
    "write_feedback",
]

log = logging.getLogger(__name__)

FEEDBACK_VIEW: Final = LATEST_FEEDBACK_VIEW
"""Feedback as it stands (the latest version of each feedback), a view of the record log
(migration 0008). Read it without ``FINAL``: nothing collapses in the record log."""

FEEDBACK_COLUMNS: Final = (
    "tenant, trace_id, span_id, name, feedback_id, score, label, comment, correction, "
    "annotator, annotator_kind, source, metadata, created_at"
)
"""The columns of a feedback as ``list_feedback`` answers them."""

POSITIVE_LABELS: Final = (
    "up",
    "thumbs_up",
    "thumbsup",
    "good",
    "positive",
    "correct",
    "pass",
    "passed",
    "accept",
    "accepted",
    "yes",
    "true",
    "helpful",
    "approve",
    "approved",
)
"""Labels read as score 1 where a score is needed."""
NEGATIVE_LABELS: Final = (
    "down",
    "thumbs_down",
    "thumbsdown",
    "bad",
    "negative",
    "incorrect",
    "fail",
    "failed",
    "reject",
    "rejected",
    "no",
    "false",
    "unhelpful",
    "hallucinated",
    "hallucination",
)
"""Labels read as score 0 where a score is needed."""

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


class FeedbackIn(BaseModel):
    """Feedback as a client sends it (``POST /v1/feedback``, ``feedback add``)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Idempotency key: sent again with the same fields, the same feedback; with "
        "other fields, 409. The server derives the feedback's id from it.",
    )
    trace_id: str = Field("", description="Trace (32 hex digits). Optional when span_id is given.")
    span_id: str = Field(
        "", description="Span (16 hex digits); empty = feedback on the whole trace."
    )
    name: str = Field(
        ..., min_length=1, max_length=200, description="What is judged: helpfulness, thumbs..."
    )
    score: float | None = Field(None, description="Numeric value.")
    label: str = Field("", max_length=500, description="Categorical value.")
    comment: str = Field("", max_length=100_000, description="Free text.")
    correction: str = Field(
        "", max_length=1_000_000, description="The answer the model should have given."
    )
    annotator: str = Field(
        "", max_length=500, description="Who gave it (person, model or program)."
    )
    annotator_kind: Literal["HUMAN", "LLM", "CODE"] = "HUMAN"
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = Field(
        None, description="When it was given (default: when received)."
    )

    @field_validator("trace_id", "span_id")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("score must be a finite number")
        return value

    @model_validator(mode="after")
    def _target_and_value(self) -> FeedbackIn:
        if not self.trace_id and not self.span_id:
            raise ValueError("give trace_id, span_id, or both")
        if self.trace_id and not _HEX32.match(self.trace_id):
            raise ValueError(f"trace_id {self.trace_id!r} must be 32 hex digits")
        if self.span_id and not _HEX16.match(self.span_id):
            raise ValueError(f"span_id {self.span_id!r} must be 16 hex digits")
        if self.score is None and not (self.label or self.comment or self.correction):
            raise ValueError("give a score, a label, a comment or a correction")
        return self


class FeedbackRecord(BaseModel):
    """A stored feedback row (also the JSON body of a feedback-topic record)."""

    tenant: str
    trace_id: str
    span_id: str
    name: str
    feedback_id: str
    score: float | None = None
    label: str = ""
    comment: str = ""
    correction: str = ""
    annotator: str = ""
    annotator_kind: str = "HUMAN"
    source: str = "api"
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    _key: str | None = PrivateAttr(None)
    """The client's idempotency key (API feedback sent with an ``id``)."""
    _time_given: bool = PrivateAttr(True)
    """False when ``created_at`` is the time it was received (the client gave none)."""

    def to_json(self) -> bytes:
        """The record as a feedback-topic value (tenant travels in a header as well)."""
        return orjson.dumps(self.model_dump(mode="json"))


def _identity(tenant: str, fb: FeedbackIn | FeedbackRecord, source: str) -> str:
    fields = [
        tenant,
        fb.trace_id,
        fb.span_id,
        fb.name,
        repr(fb.score),
        fb.label,
        fb.comment,
        fb.correction,
        fb.annotator,
        fb.annotator_kind,
        source,
    ]
    return hashlib.sha256("\x1f".join(fields).encode("utf-8", "replace")).hexdigest()


def to_record(
    tenant: str, fb: FeedbackIn, source: str = "api", *, now: datetime | None = None
) -> FeedbackRecord:
    """The row a client's feedback becomes: tenant stamped, id and time filled in."""
    created = fb.created_at or now or datetime.now(timezone.utc)
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    record = FeedbackRecord(
        tenant=tenant,
        trace_id=fb.trace_id,
        span_id=fb.span_id,
        name=fb.name,
        feedback_id=(
            derived_id(RecordKind.FEEDBACK, tenant, fb.id)
            if fb.id
            else _identity(tenant, fb, source)
        ),
        score=fb.score,
        label=fb.label,
        comment=fb.comment,
        correction=fb.correction,
        annotator=fb.annotator,
        annotator_kind=fb.annotator_kind,
        source=source,
        metadata=fb.metadata,
        created_at=created,
    )
    record._key = fb.id
    record._time_given = fb.created_at is not None
    return record


def feedback_record(
    feedback: FeedbackRecord, *, actor: str, recorded_at_ns: int | None = None
) -> Record:
    """The record of the record log a feedback is stored as."""
    fields = feedback.model_dump(exclude={"tenant"})
    fields["metadata"] = dict(feedback.metadata)
    return make_record(
        RecordKind.FEEDBACK,
        feedback.tenant,
        fields,
        actor=actor,
        recorded_at_ns=recorded_at_ns,
    )


def write_feedback(
    store: Store,
    records: list[FeedbackRecord],
    *,
    dedup_token: str | None = None,
    actor: str = Actor.API,
    recorded_at_ns: int | None = None,
) -> None:
    """Append feedback to the record log; safe to repeat (a repeat counts once: same id and body;
    ``dedup_token``, naming exactly these records, drops a repeated insert)."""
    if not records:
        return
    append_records(
        store,
        [feedback_record(r, actor=actor, recorded_at_ns=recorded_at_ns) for r in records],
        dedup_token=dedup_token,
    )


def resolve_trace_ids(store: Store, records: list[FeedbackRecord]) -> list[FeedbackRecord]:
    """Fill in the trace of span-only feedback from the spans table; returns those still unknown."""
    missing = [r for r in records if r.span_id and not r.trace_id]
    if not missing:
        return []
    by_tenant: dict[str, list[FeedbackRecord]] = {}
    for r in missing:
        by_tenant.setdefault(r.tenant, []).append(r)
    unknown: list[FeedbackRecord] = []
    for tenant, group in by_tenant.items():
        rows = store.query_rows(
            "SELECT span_id, any(trace_id) AS trace_id FROM spans WHERE tenant = {tenant:String} "
            "AND span_id IN {ids:Array(String)} GROUP BY span_id",
            {"tenant": tenant, "ids": sorted({r.span_id for r in group})},
        )
        found = {row["span_id"]: row["trace_id"] for row in rows}
        for r in group:
            if r.span_id in found:
                r.trace_id = found[r.span_id]
            else:
                unknown.append(r)
    return unknown


class FeedbackUnavailable(Exception):
    """Where feedback is kept cannot take it now (HTTP 503, retry)."""


class FeedbackRejected(Exception):
    """The store refused the feedback (HTTP 400)."""


class FeedbackUnknownSpan(FeedbackRejected):
    """Span-only feedback names a span the store does not know (HTTP 404)."""


class FeedbackConflict(ValueError):
    """A feedback's idempotency key was used for another feedback (HTTP 409)."""


class FeedbackLog(Protocol):
    """Where accepted feedback is made durable before the collector answers.

    Contract: ``append`` returns only once every record is durable (in the store, or
    acknowledged by the broker); appending the same records twice keeps them once.
    ``actor`` (who sent them: an API key's name or id) is recorded with them; None is the
    log's own (``api``, or ``cli`` for the command line's).
    """

    durable_in: str
    """``store`` or ``kafka``: what the API tells the client."""

    def append(
        self, records: list[FeedbackRecord], received_at_ns: int, *, actor: str | None = None
    ) -> None: ...

    def close(self) -> None: ...


class StoreFeedbackLog:
    """Feedback inserted into the store (the embedded server, or a collector reading ClickHouse)."""

    durable_in = "store"

    def __init__(self, store: Store, *, actor: str = Actor.API) -> None:
        self.store = store
        self.actor = actor
        self._lock = threading.Lock()  # a key's check and its write, one request at a time

    def append(
        self, records: list[FeedbackRecord], received_at_ns: int, *, actor: str | None = None
    ) -> None:
        """Store ``records``, but not those stored before (same id, same fields); raises
        FeedbackConflict, storing nothing, when a key was used for other fields."""
        try:
            unknown = resolve_trace_ids(self.store, records)
            if unknown:
                raise FeedbackUnknownSpan(
                    f"no span {unknown[0].span_id} for this tenant; give its trace_id too"
                )
            with self._lock:
                write_feedback(
                    self.store,
                    _new_feedback(self.store, records),
                    actor=actor or self.actor,
                    recorded_at_ns=received_at_ns,
                )
        except StoreUnavailable as exc:
            raise FeedbackUnavailable(f"store unavailable: {exc}") from exc
        except StoreError as exc:
            raise FeedbackRejected(f"store refused the feedback: {exc}") from exc

    def close(self) -> None:
        """The store is the process's, closed by whoever opened it."""


def _request(record: FeedbackRecord) -> str:
    fields = feedback_record(record, actor=Actor.API).fields()
    return request_sha256(RecordKind.FEEDBACK, fields)


def _new_feedback(store: Store, records: list[FeedbackRecord]) -> list[FeedbackRecord]:
    """``records`` less those stored before (or earlier in ``records``); FeedbackConflict when a
    key was used for other fields. A record without a time of its own is compared with the
    time of the one stored before."""
    by_tenant: dict[str, set[str]] = {}
    for r in records:
        by_tenant.setdefault(r.tenant, set()).add(r.feedback_id)
    before: dict[tuple[str, str], list[tuple[str, datetime]]] = {}
    for tenant, ids in by_tenant.items():
        rows = store.query_rows(
            "SELECT record_id, any(body) AS body FROM records WHERE tenant = {t:String} "
            "AND kind = 'feedback' AND record_id IN {ids:Array(String)} "
            "GROUP BY record_id, body_sha256",
            {"t": tenant, "ids": sorted(ids)},
        )
        for row in rows:
            fields = orjson.loads(row["body"])
            created = datetime.fromisoformat(str(fields["created_at"]).replace("Z", "+00:00"))
            sha = request_sha256(RecordKind.FEEDBACK, fields)
            before.setdefault((tenant, row["record_id"]), []).append((sha, created))
    fresh: list[FeedbackRecord] = []
    for r in records:
        known = before.setdefault((r.tenant, r.feedback_id), [])
        if known and not r._time_given:
            r.created_at = known[0][1]
        sha = _request(r)
        if any(s == sha for s, _ in known):
            continue
        if known and r._key is not None:
            raise FeedbackConflict(
                f"feedback id {r._key!r} was already used for other feedback "
                f"({r.feedback_id}); send new feedback under a new id"
            )
        known.append((sha, r.created_at))
        fresh.append(r)
    return fresh


def list_feedback(
    store: Store,
    tenant: str,
    *,
    trace_id: str | None = None,
    span_id: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Feedback on a trace (all its spans too) or on one span, newest first."""
    where = ["tenant = {tenant:String}"]
    params: dict[str, Any] = {"tenant": tenant, "limit": int(limit)}
    if trace_id:
        where.append("trace_id = {trace_id:String}")
        params["trace_id"] = trace_id.lower()
    if span_id:
        where.append("span_id = {span_id:String}")
        params["span_id"] = span_id.lower()
    rows = store.query_rows(
        f"SELECT {FEEDBACK_COLUMNS} FROM {FEEDBACK_VIEW} WHERE {' AND '.join(where)} "
        "ORDER BY created_at DESC, feedback_id LIMIT {limit:UInt32}",
        params,
    )
    for r in rows:
        r["metadata"] = dict(r["metadata"])
        r["created_at"] = r["created_at"].isoformat()
        if r["score"] is not None and isinstance(r["score"], float) and math.isnan(r["score"]):
            r["score"] = None
    return rows


def effective_score_sql(name_param: str | None) -> str:
    """SQL (over the feedback table) for one row's score: the score, else 1/0 for yes/no labels.

    ``name_param``: a ``{param:String}`` placeholder name restricting the feedback
    name, or None for every name.
    """
    pos = ", ".join(f"'{v}'" for v in POSITIVE_LABELS)
    neg = ", ".join(f"'{v}'" for v in NEGATIVE_LABELS)
    value = (
        f"if(isNotNull(score), score, multiIf(lower(label) IN ({pos}), 1., "
        f"lower(label) IN ({neg}), 0., NULL))"
    )
    return value if name_param is None else f"if(name = {{{name_param}:String}}, {value}, NULL)"


# -- feedback carried on spans -------------------------------------------------------------------

_PREFIXES: Final = (EV.ANNOTATION_PREFIX, EV.EVALUATION_PREFIX, EV.EVAL_PREFIX)
_SUFFIXES: Final = (EV.SCORE, EV.LABEL, EV.EXPLANATION, EV.ANNOTATOR_KIND, EV.ANNOTATOR)


def _parse_attributes(attrs: dict[str, str]) -> dict[tuple[str, str], dict[str, str]]:
    """(prefix, name) -> {suffix: value} from flattened evaluation attributes."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for key, value in attrs.items():
        prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
        if prefix is None:
            continue
        rest = key[len(prefix) :]
        name, _, suffix = rest.rpartition(".")
        if suffix not in _SUFFIXES or not name:
            name, suffix = rest, EV.SCORE if _float(value) is not None else EV.LABEL
        out.setdefault((prefix, name), {})[suffix] = value
    return out


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _span_records(row: dict[str, Any], refs: dict[str, str]) -> list[FeedbackRecord]:
    tenant, trace_id, span_id = row["tenant"], row["trace_id"], row["span_id"]
    created = row["ingest_time"]
    attrs = {**dict(row["attrs"]), **{k: refs.get(h, "") for k, h in row["refs"]}}
    records = []
    for (prefix, name), values in _parse_attributes(attrs).items():
        score = _float(values.get(EV.SCORE))
        label = values.get(EV.LABEL, "")
        comment = values.get(EV.EXPLANATION, "")
        if score is None and not label and not comment:
            continue
        kind = values.get(EV.ANNOTATOR_KIND, "").upper()
        kind = (
            kind
            if kind in ("HUMAN", "LLM", "CODE")
            else ("HUMAN" if prefix == EV.ANNOTATION_PREFIX else "LLM")
        )
        records.append(
            FeedbackRecord(
                tenant=tenant,
                trace_id=trace_id,
                span_id=span_id,
                name=name,
                feedback_id=hashlib.sha256(
                    f"{tenant}\x1f{span_id}\x1f{prefix}{name}".encode()
                ).hexdigest(),
                score=score,
                label=label,
                comment=comment,
                annotator=values.get(EV.ANNOTATOR, ""),
                annotator_kind=kind,
                source="span_attribute",
                created_at=created,
            )
        )
    if row["events"]:
        try:
            events = orjson.loads(row["events"])
        except orjson.JSONDecodeError:
            events = []
        for i, ev in enumerate(events if isinstance(events, list) else []):
            if not isinstance(ev, dict) or ev.get("name") != EV.GENAI_EVENT:
                continue
            ea = ev.get("attributes") or {}
            name = str(ea.get(EV.GENAI_NAME) or "evaluation")
            score = _float(ea.get(EV.GENAI_SCORE_VALUE))
            label = str(ea.get(EV.GENAI_SCORE_LABEL) or "")
            comment = str(ea.get(EV.GENAI_EXPLANATION) or "")
            if score is None and not label and not comment:
                continue
            records.append(
                FeedbackRecord(
                    tenant=tenant,
                    trace_id=trace_id,
                    span_id=span_id,
                    name=name,
                    feedback_id=hashlib.sha256(
                        f"{tenant}\x1f{span_id}\x1fevent{i}\x1f{name}".encode()
                    ).hexdigest(),
                    score=score,
                    label=label,
                    comment=comment,
                    annotator_kind="LLM",
                    source="span_event",
                    created_at=created,
                )
            )
    return records


def feedback_from_spans(
    store: Store, since: datetime | None = None, *, tenant: str | None = None, page_size: int = 5000
) -> tuple[int, datetime | None]:
    """Ingest evaluation/annotation attributes and GenAI evaluation events of spans stored since
    ``since`` (ingest time) as feedback. Idempotent (ids derive from span and name).

    Returns (feedback rows written, newest ingest time seen): pass the latter as
    ``since`` next time to continue where this run stopped.
    """
    keys_cond = " OR ".join(f"startsWith(k, '{p}')" for p in _PREFIXES)
    where = [
        (
            f"(arrayExists(k -> {keys_cond}, mapKeys(attributes)) "
            f"OR arrayExists(k -> {keys_cond}, mapKeys(attribute_refs)) "
            f"OR position(events, '{EV.GENAI_EVENT}') > 0)"
        )
    ]
    params: dict[str, Any] = {"limit": page_size}
    if tenant is not None:
        where.append("tenant = {tenant:String}")
        params["tenant"] = tenant
    if since is not None:
        where.append("ingest_time >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    written = 0
    newest: datetime | None = None
    last: tuple[Any, ...] | None = None
    while True:
        cond = list(where)
        if last is not None:
            cond.append(
                "(ingest_time, tenant, span_id) > ({lt:DateTime64(3, 'UTC')}, {ltn:String}, {ls:String})"
            )
            params.update(lt=last[0].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], ltn=last[1], ls=last[2])
        rows = store.query_rows(
            f"""SELECT tenant, trace_id, span_id, ingest_time,
                   mapFilter((k, v) -> {keys_cond}, attributes) AS attrs,
                   mapFilter((k, v) -> {keys_cond}, attribute_refs) AS refs,
                   if(position(events, '{EV.GENAI_EVENT}') > 0, events, '') AS events
            FROM spans WHERE {" AND ".join(cond)}
            ORDER BY ingest_time, tenant, span_id LIMIT {{limit:UInt32}}""",
            params,
        )
        if not rows:
            break
        ref_hashes = [h for r in rows for _, h in r["refs"]]
        contents: dict[str, str] = {}
        if ref_hashes:
            for r in store.query_rows(
                "SELECT hash, any(content) AS content FROM contents WHERE hash IN "
                "(SELECT arrayJoin({h:Array(String)})) GROUP BY hash",
                {"h": sorted(set(ref_hashes))},
            ):
                contents[r["hash"]] = r["content"]
        records = [rec for r in rows for rec in _span_records(r, contents)]
        if records:
            first, final = rows[0], rows[-1]
            write_feedback(
                store,
                records,
                dedup_token=f"span-feedback-{first['tenant']}-{first['span_id']}-"
                f"{final['span_id']}-{len(records)}",
                actor=Actor.PIPELINE,
            )
            written += len(records)
        last = (rows[-1]["ingest_time"], rows[-1]["tenant"], rows[-1]["span_id"])
        newest = rows[-1]["ingest_time"]
        if len(rows) < page_size:
            break
    if written:
        log.info("ingested %d feedback rows from span attributes and events", written)
    return written, newest

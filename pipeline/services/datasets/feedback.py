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

import logging
import math
import threading
from datetime import datetime
from typing import Any, Protocol

import orjson

from agentledger.pipeline.governance.idempotency import request_sha256
from agentledger.pipeline.services.datasets.feedback_model import (
    FEEDBACK_COLUMNS,
    FEEDBACK_VIEW,
    NEGATIVE_LABELS,
    POSITIVE_LABELS,
    FeedbackIn,
    FeedbackRecord,
    feedback_record,
    to_record,
    write_feedback,
)
from agentledger.pipeline.services.datasets.feedback_spans import feedback_from_spans
from agentledger.pipeline.store import Store, StoreError, StoreUnavailable
from agentledger.schemas.records import Actor, RecordKind

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

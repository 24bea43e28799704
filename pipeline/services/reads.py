"""The read API as functions: each answers one read with a model of ``schemas.read``.

The collector's routers and the CLI's local client (``agentledger.cli.client``) call
these same functions, so a command asks the same thing of a running server as of a
data directory, with the same defaults (``schemas.read.defaults``). Each function
wraps the service that does the work (``queries``, ``derive``, ``datasets``,
``audit``, ``replay``, ``governance``) and turns its answer into the model, and its
errors into two kinds every caller maps alike::

    ReadError
     +-- ReadNotFound   nothing matches (HTTP 404)
     +-- ReadRejected   the read cannot be answered as asked (HTTP 400)

Store errors (``StoreError``) and unavailable services (``GovernanceUnavailable``,
``FeedbackUnavailable``) pass through unchanged. A few writes the CLI shares with the
API (feedback, dataset export, drift reports, controls, a detection pass) are here too.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentledger.pipeline.services import queries
from agentledger.pipeline.store import Store
from agentledger.schemas.read import (
    Anomaly,
    AnomalyActionDone,
    AnomalyActionIn,
    AuditReport,
    Content,
    ControlEvent,
    ControlList,
    DatasetManifest,
    DatasetSpan,
    DatasetSummary,
    DetectionResult,
    FeedbackAccepted,
    FeedbackItem,
    IntentRecord,
    LedgerReport,
    PatternsReport,
    RebuiltRequest,
    RebuiltRequests,
    ReplayRun,
    ReplayRunSummary,
    ReplayStored,
    SpanDataset,
    TraceDetail,
    TraceSummary,
    UsageReport,
)
from agentledger.schemas.read import defaults as D
from agentledger.schemas.records import Actor

if TYPE_CHECKING:
    from agentledger.pipeline.governance import ControlIn, GovernanceService
    from agentledger.pipeline.services.datasets.feedback import FeedbackIn, FeedbackLog

__all__ = [
    "ReadError",
    "ReadNotFound",
    "ReadRejected",
    "add_feedback",
    "anomalies",
    "audit",
    "content",
    "control",
    "controls",
    "dataset",
    "dataset_spans",
    "datasets",
    "detect_anomalies",
    "export_dataset",
    "feedback",
    "intent",
    "intents",
    "patterns",
    "replay_request",
    "replay_requests",
    "replay_run",
    "replays",
    "save_replay",
    "span_datasets",
    "trace",
    "traces",
    "usage",
    "verify_ledger",
]


class ReadError(Exception):
    """A read that cannot be answered."""


class ReadNotFound(ReadError):
    """Nothing matches the read (HTTP 404)."""


class ReadRejected(ReadError):
    """The read cannot be answered as asked: a malformed id, an unknown dimension (HTTP 400)."""


_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


_EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
_LATEST = datetime(2106, 2, 7, 6, 28, 15, tzinfo=timezone.utc)
"""The times every time column and parameter of the store can hold (UInt32 seconds)."""


def _utc(t: datetime | None, name: str = "time") -> datetime | None:
    """``t`` in UTC (naive: taken as UTC), refused when the store cannot hold it."""
    if t is None:
        return None
    try:
        t = t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    except OverflowError as exc:
        raise ReadRejected(f"{name} {t} is out of range") from exc
    return _bounded(t, name)


def _bounded(t: datetime, name: str) -> datetime:
    if not _EARLIEST <= t <= _LATEST:
        raise ReadRejected(
            f"{name} {t.isoformat()} is outside the times the store keeps "
            f"({_EARLIEST.isoformat()} to {_LATEST.isoformat()})"
        )
    return t


def _before(t: datetime, hours: int, name: str) -> datetime:
    """``hours`` before ``t``, refused when that is before the store's earliest time."""
    try:
        return _bounded(t - timedelta(hours=hours), name)
    except OverflowError as exc:
        raise ReadRejected(f"{name}: {hours} hours before {t.isoformat()} is out of range") from exc


def _now() -> datetime:
    return datetime.now(timezone.utc)


# -- traces ------------------------------------------------------------------------------------


def traces(
    store: Store,
    tenant: str,
    *,
    limit: int = D.TRACES_LIMIT,
    since: datetime | None = None,
    service: str | None = None,
) -> list[TraceSummary]:
    """Recent traces, newest first."""
    rows = queries.list_traces(
        store, tenant, limit=limit, since=_utc(since, "since"), service=service
    )
    return [TraceSummary.model_validate(r) for r in rows]


def trace(store: Store, tenant: str, trace_id: str) -> TraceDetail:
    """Every span of one trace, as a list and a tree."""
    if not _HEX32.fullmatch(trace_id):
        raise ReadRejected(f"trace id {trace_id!r} must be 32 hex digits")
    spans = queries.get_trace(store, tenant, trace_id)
    if not spans:
        raise ReadNotFound(f"no trace {trace_id} for tenant {tenant!r}")
    return TraceDetail.model_validate(
        {"trace_id": trace_id.lower(), "spans": spans, "tree": queries.trace_tree(spans)}
    )


def content(store: Store, tenant: str, content_hash: str) -> Content:
    """A content record by its SHA-256."""
    found = queries.get_contents(store, tenant, [content_hash.lower()])
    if not found:
        raise ReadNotFound(f"no content {content_hash} for tenant {tenant!r}")
    return Content.model_validate(next(iter(found.values())))


# -- analytics ---------------------------------------------------------------------------------


def usage(
    store: Store,
    tenant: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    group_by: Sequence[str] = (),
    interval: str | None = None,
    top: int = D.USAGE_TOP,
    order_by: str = D.USAGE_ORDER_BY,
    filters: Mapping[str, str] | None = None,
    tail_hours: int | None = None,
) -> UsageReport:
    """Usage over ``[since, until)`` (default: the last ``USAGE_WINDOW_HOURS``), grouped by
    dimensions, optionally a time series; ``top`` 0 keeps every group.

    Reads the hourly rollup and never runs it (that is the background job's work, or the
    caller's). ``tail_hours``: also count the spans the rollup does not hold yet, read raw
    over at most that many recent hours (None: the rollup as it is).
    """
    from agentledger.pipeline.derive import UsageQuery, UsageQueryError
    from agentledger.pipeline.derive import usage_report as report

    now = _now()
    end = _utc(until, "until") or now
    start = _utc(since, "since") or _before(end, D.USAGE_WINDOW_HOURS, "since")
    dims = tuple(group_by)
    chosen = dict(filters or {})
    q = UsageQuery(start, end, dims, interval, top or None, order_by, chosen)
    try:
        q.validate()
        rows = report(store, tenant, q, tail_hours=tail_hours, now=now)
    except UsageQueryError as exc:
        raise ReadRejected(str(exc)) from exc
    return UsageReport.model_validate(
        {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "group_by": list(dims),
            "interval": interval,
            "order_by": order_by,
            "filters": chosen,
            "rows": rows,
        }
    )


def patterns(
    store: Store,
    tenant: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    baseline_hours: int = D.PATTERNS_BASELINE_HOURS,
    agent: str | None = None,
    n: int = D.PATTERNS_NGRAM,
    top: int = D.PATTERNS_TOP,
    k: int | None = None,
) -> PatternsReport:
    """Tool sequences, n-grams, input topics and new use of the window ``[since, until)`` (default:
    the last ``PATTERNS_WINDOW_HOURS``) against the ``baseline_hours`` before it."""
    from agentledger.pipeline.derive import UsageQueryError, patterns_report

    end = _utc(until, "until") or _now()
    start = _utc(since, "since") or _before(end, D.PATTERNS_WINDOW_HOURS, "since")
    baseline = (_before(start, baseline_hours, "baseline"), start)
    try:
        found = patterns_report(
            store, tenant, (start, end), baseline, agent=agent, n_max=n, top=top, k=k
        )
    except (UsageQueryError, ValueError) as exc:
        raise ReadRejected(str(exc)) from exc
    return PatternsReport.model_validate(found)


def anomalies(
    store: Store,
    tenant: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    type: str | None = None,
    limit: int = D.ANOMALIES_LIMIT,
) -> list[Anomaly]:
    """Stored anomalies of windows ending after ``since`` and starting before ``until``, newest
    window first."""
    from agentledger.pipeline.derive import list_anomalies

    rows = list_anomalies(
        store,
        tenant,
        since=_utc(since, "since"),
        until=_utc(until, "until"),
        type=type,
        limit=limit,
    )
    return [Anomaly.model_validate(r) for r in rows]


def anomaly_action(
    store: Store, tenant: str, ref: str, body: AnomalyActionIn, *, actor: str
) -> AnomalyActionDone:
    """Acknowledge, mute, unmute or label (true or false alarm) the anomaly ``ref`` (its id or
    its first 8+ characters); recorded as the key ``actor``."""
    from agentledger.pipeline.derive.labels import find_anomaly, label_anomaly

    anomaly = find_anomaly(store, tenant, ref)
    if anomaly is None:
        raise ReadNotFound(f"no single anomaly with an id starting {ref!r} (8 characters or more)")
    try:
        action_id = label_anomaly(
            store,
            tenant,
            anomaly,
            body.action,
            label=body.label,
            note=body.note,
            until=_utc(body.until, "until"),
            actor=actor,
        )
    except ValueError as exc:
        raise ReadRejected(str(exc)) from exc
    return AnomalyActionDone(action_id=action_id, action=body.action, label=body.label, **anomaly)


def detect_anomalies(
    store: Store,
    tenant: str,
    *,
    now: datetime | None = None,
    window_hours: int | None = None,
    baseline_hours: int | None = None,
) -> DetectionResult:
    """One detection pass for ``tenant`` now (or as of ``now``); job settings otherwise."""
    from agentledger.pipeline.derive import AnomalyDetectionJob, JobSettings, UsageQueryError

    overrides: dict[str, Any] = {
        k: v for k, v in (("window_hours", window_hours), ("baseline_hours", baseline_hours)) if v
    }
    at = _utc(now, "now") or _now()
    try:
        result = AnomalyDetectionJob(JobSettings(**overrides), tenant=tenant).run(store, at)
    except UsageQueryError as exc:
        raise ReadRejected(str(exc)) from exc
    return DetectionResult.model_validate(
        {"now": at.isoformat(), "seconds": round(result.seconds, 3), **result.info}
    )


# -- feedback and datasets ---------------------------------------------------------------------


def feedback(
    store: Store,
    tenant: str,
    *,
    trace_id: str | None = None,
    span_id: str | None = None,
    limit: int = D.FEEDBACK_LIMIT,
) -> list[FeedbackItem]:
    """Feedback on a trace (its spans' too) or on one span, newest first."""
    from agentledger.pipeline.services.datasets.feedback import list_feedback

    if not trace_id and not span_id:
        raise ReadRejected("give trace_id or span_id")
    rows = list_feedback(store, tenant, trace_id=trace_id, span_id=span_id, limit=limit)
    return [FeedbackItem.model_validate(r) for r in rows]


def add_feedback(
    log: FeedbackLog,
    tenant: str,
    items: Sequence[FeedbackIn],
    *,
    source: str = "api",
    actor: str | None = None,
) -> FeedbackAccepted:
    """Make feedback durable in ``log`` (the store, or the feedback topic) before answering.
    ``actor``: who sent it (recorded with it; None: the log's own)."""
    from agentledger.pipeline.services.datasets import feedback as fb

    records = [fb.to_record(tenant, item, source) for item in items]
    try:
        log.append(records, time.time_ns(), actor=actor)
    except fb.FeedbackUnknownSpan as exc:
        raise ReadNotFound(str(exc)) from exc
    except fb.FeedbackRejected as exc:
        raise ReadRejected(str(exc)) from exc
    return FeedbackAccepted(
        accepted=len(records), ids=[r.feedback_id for r in records], durable_in=log.durable_in
    )


def datasets(store: Store, tenant: str, *, limit: int = D.DATASETS_LIMIT) -> list[DatasetSummary]:
    """Recorded datasets, newest first."""
    from agentledger.pipeline.services.datasets import lineage

    return [DatasetSummary.model_validate(r) for r in lineage.list_datasets(store, tenant, limit)]


def dataset(store: Store, tenant: str, dataset_id: str) -> DatasetManifest:
    """A recorded dataset's manifest, with what the store recorded of it."""
    from agentledger.pipeline.services.datasets import lineage

    found = lineage.get_dataset(store, tenant, dataset_id)
    if found is None:
        raise ReadNotFound(f"no dataset {dataset_id} for tenant {tenant!r}")
    return DatasetManifest.model_validate(found)


def dataset_spans(
    store: Store, tenant: str, dataset_id: str, *, limit: int = D.DATASET_SPANS_LIMIT
) -> list[DatasetSpan]:
    """The production spans in a recorded dataset."""
    from agentledger.pipeline.services.datasets import lineage

    dataset(store, tenant, dataset_id)  # an unknown dataset is not found, not empty
    rows = lineage.dataset_spans(store, tenant, dataset_id, limit=limit)
    return [DatasetSpan.model_validate(r) for r in rows]


def span_datasets(store: Store, tenant: str, span_id: str) -> list[SpanDataset]:
    """The recorded datasets that contain a span, newest first."""
    from agentledger.pipeline.services.datasets import lineage

    return [SpanDataset.model_validate(r) for r in lineage.datasets_of_span(store, tenant, span_id)]


def export_dataset(
    store: Store,
    tenant: str,
    out_dir: str | Path,
    request: Mapping[str, Any],
    *,
    progress: Callable[[int, int | None], None] | None = None,
    actor: str | None = None,
) -> DatasetManifest:
    """Export the spans an export request (as JSON) selects into ``out_dir``; its manifest.
    ``actor``: who asked (recorded on the dataset record)."""
    from agentledger.pipeline.services.datasets import export

    try:
        req = export.ExportRequest.from_json(dict(request))
        manifest = export.export_dataset(
            store, tenant, out_dir, req, progress=progress, actor=actor
        )
    except (export.ExportError, ValueError, TypeError) as exc:
        raise ReadRejected(str(exc)) from exc
    return DatasetManifest.model_validate(manifest)


# -- audit, ledger, replay ---------------------------------------------------------------------


def audit(store: Store, tenant: str, ref: str, *, last: bool = False) -> AuditReport:
    """The audit of a span (16 hex digits), or of every tool call of a trace (32; ``last``: the
    last one only)."""
    from agentledger.pipeline.services import audit as audits

    try:
        found = audits.audit(store, tenant, ref, last=last)
    except audits.AuditNotFound as exc:
        raise ReadNotFound(str(exc)) from exc
    except ValueError as exc:
        raise ReadRejected(str(exc)) from exc
    return AuditReport.model_validate(found)


def verify_ledger(
    store: Store, tenant: str, *, since: str | None = None, key: bytes | None = None
) -> LedgerReport:
    """The tenant's ledger recomputed (``key``: the checkpoints' HMAC key, if they are signed),
    and the access log's chains checked with it: an edited or removed read entry fails verify."""
    from agentledger.pipeline.derive.ledger import verify
    from agentledger.pipeline.services.access import read_access_log

    report = verify(store, tenant, key=key, since=since).as_dict()
    access = read_access_log(store, tenant, limit=0)
    for problem in access.problems:
        report["problems"].append(
            {"kind": "access_log", "stream": "access", "seq": 0, "detail": problem, "spans": []}
        )
    report["ok"] = report["ok"] and access.intact
    return LedgerReport.model_validate(report)


def replay_request(
    store: Store, tenant: str, span_id: str, *, api: str | None = None
) -> RebuiltRequest:
    """The rebuilt provider request of a recorded LLM call (in ``api``'s wire format if given)."""
    from agentledger.pipeline.services import replay

    try:
        rebuilt = replay.rebuild_request(store, tenant, span_id, api=api)
    except replay.ReplayNotFound as exc:
        raise ReadNotFound(str(exc)) from exc
    except replay.ReplayError as exc:
        raise ReadRejected(str(exc)) from exc
    return RebuiltRequest.model_validate(rebuilt.as_dict())


def replay_requests(
    store: Store,
    tenant: str,
    *,
    agent: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tools_only: bool = False,
    limit: int = D.REPLAY_REQUESTS_LIMIT,
    api: str | None = None,
) -> RebuiltRequests:
    """The rebuilt requests of the recorded LLM calls matching the filters; those that cannot be
    rebuilt (content capture was off...) are listed as skipped, with the reason."""
    from agentledger.pipeline.services import replay

    try:
        ids = replay.select_calls(
            store,
            tenant,
            agent=agent,
            model=model,
            since=_utc(since, "since"),
            until=_utc(until, "until"),
            tools_only=tools_only,
            limit=limit,
        )
        skipped: list[dict[str, str]] = []
        rebuilt = replay.rebuild_requests(store, tenant, ids, api=api, errors=skipped)
    except replay.ReplayError as exc:
        raise ReadRejected(str(exc)) from exc
    return RebuiltRequests.model_validate(
        {"requests": [r.as_dict() for r in rebuilt], "skipped": skipped}
    )


def replays(store: Store, tenant: str, *, limit: int = D.REPLAYS_LIMIT) -> list[ReplayRunSummary]:
    """Stored drift reports, newest first."""
    from agentledger.pipeline.services import replay

    return [ReplayRunSummary.model_validate(r) for r in replay.list_reports(store, tenant, limit)]


def replay_run(store: Store, tenant: str, run_id: str) -> ReplayRun:
    """One stored drift report with its replayed calls."""
    from agentledger.pipeline.services import replay

    found = replay.get_report(store, tenant, run_id)
    if found is None:
        raise ReadNotFound(f"no replay run {run_id} for tenant {tenant!r}")
    return ReplayRun.model_validate(found)


def save_replay(
    store: Store, tenant: str, report: Mapping[str, Any], *, actor: str | None = None
) -> ReplayStored:
    """Store a drift report (as ``DriftReport.as_dict`` wrote it) under ``tenant``; ``actor``:
    who sent it (recorded on the drift report record)."""
    from agentledger.pipeline.services import replay

    try:
        drift = replay.DriftReport.from_dict(dict(report), tenant=tenant)
    except (KeyError, TypeError, ValueError) as exc:
        raise ReadRejected(f"not a drift report: {exc!r}") from exc
    replay.save_report(store, drift, actor=actor or Actor.API)
    return ReplayStored.model_validate(
        {"run_id": drift.run_id, "stored": True, "summary": drift.summary}
    )


# -- governance --------------------------------------------------------------------------------


def intents(
    service: GovernanceService,
    tenant: str,
    *,
    trace_id: str | None = None,
    session_id: str | None = None,
    tool_name: str | None = None,
    limit: int = D.INTENTS_LIMIT,
) -> list[IntentRecord]:
    """Recent intents with their outcomes, newest first."""
    rows = service.list_intents(
        tenant, trace_id=trace_id, session_id=session_id, tool_name=tool_name, limit=limit
    )
    return [IntentRecord.model_validate(r) for r in rows]


def intent(service: GovernanceService, tenant: str, intent_id: str) -> IntentRecord:
    """One intent with its outcome."""
    found = service.intent(tenant, intent_id)
    if found is None:
        raise ReadNotFound(f"no intent {intent_id} for tenant {tenant!r}")
    return IntentRecord.model_validate(found)


def controls(
    service: GovernanceService,
    tenant: str,
    *,
    everything: bool = False,
    limit: int = D.CONTROLS_LIMIT,
) -> ControlList:
    """The pauses in force (``everything``: every pause and resume), newest first."""
    found = service.list_controls(tenant, everything=everything, limit=limit)
    return ControlList(
        controls=[ControlEvent.model_validate(c.model_dump(mode="json")) for c in found],
        shared=service.controls.shared,
    )


def control(service: GovernanceService, tenant: str, request: ControlIn) -> ControlEvent:
    """Record a pause or resume (durable before it returns) and enforce it at once."""
    return ControlEvent.model_validate(service.control(tenant, request).model_dump(mode="json"))

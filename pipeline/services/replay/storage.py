"""Drift reports in the record log (kind ``drift_report``, typed view ``drift_reports_v``): a
report's summary and each replayed call, linked to its source span so a regression can be traced
back to the recorded decision.

A report is stored once: its ``run_id`` (the replay run's, chosen where the replay ran) is the
key. Sent again unchanged, nothing new is stored; another report under a stored run id is
refused (``ReportConflict``, HTTP 409), so no report replaces another."""

from __future__ import annotations

import json
import math
import threading
from typing import Any, Final

import orjson

from agentledger.pipeline.services.replay.drift import DriftReport
from agentledger.pipeline.store import Store
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.records import (
    DRIFT_CALL_FIELDS,
    VIEWS,
    Actor,
    Record,
    RecordKind,
    make_record,
)

__all__ = [
    "DRIFT_REPORTS_VIEW",
    "ReportConflict",
    "drift_record",
    "get_report",
    "list_reports",
    "save_report",
]


DRIFT_REPORTS_VIEW: Final = VIEWS[RecordKind.DRIFT_REPORT]
"""Typed view of the drift report records: one row per stored record."""

_CALL_NAMES: Final = tuple(c.name for c in DRIFT_CALL_FIELDS)


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def drift_record(report: DriftReport, *, actor: str = Actor.API) -> Record:
    """The record a drift report is stored as: its summary, and each replayed call."""
    s = report.summary
    sims = s["text_similarity"]
    calls = []
    for o in report.outcomes:
        r, d = o.request, o.diff
        call = {
            "trace_id": r.trace_id,
            "span_id": r.span_id,
            "source_start_time": r.started_at,
            "agent_name": r.agent_name,
            "api": r.api,
            "recorded_model": r.request_model,
            "recorded_answered_model": r.response_model,
            "replay_model": o.replay_model,
            "replay_answered_model": o.replayed.model if o.replayed else "",
            "request_source": r.source,
            "request_sha256": r.checks.get("request_sha256", ""),
            "input_hash": r.checks.get("input_hash", ""),
            "messages_match": bool(r.checks.get("messages_match")),
            "status": "ok" if o.ok else "error",
            "error": o.error,
            "same_tools": bool(d and d.same_tools),
            "same_arguments": bool(d and d.same_arguments),
            "text_similarity": d.text_similarity if d else None,
            "token_jaccard": d.token_jaccard if d else None,
            "drift": bool(d.drift) if d else True,
            "recorded_tools": [n for n, _ in r.recorded.tool_calls],
            "replayed_tools": [n for n, _ in o.replayed.tool_calls] if o.replayed else [],
            "recorded_output_hash": r.output_hash,
            "replayed_answer": o.replayed.as_dict() if o.replayed else None,
        }
        calls.append(call)
    return make_record(
        RecordKind.DRIFT_REPORT,
        report.tenant,
        {
            "run_id": report.run_id,
            "created_at": report.created_at_ns,
            "candidate_model": report.candidate_model,
            "base_url": report.base_url,
            "filter": report.filter,
            "replayed": s["replayed"],
            "errors": s["errors"],
            "drifted": s["drifted"],
            "tool_agreement": _nan(s["tool_agreement"]),
            "argument_agreement": _nan(s["argument_agreement"]),
            "text_similarity_mean": _nan(sims["mean"]),
            "text_similarity_p10": _nan(sims["p10"]),
            "text_similarity_p50": _nan(sims["p50"]),
            "text_similarity_min": _nan(sims["min"]),
            "summary": s,
            "calls": calls,
        },
        actor=actor,
    )


class ReportConflict(ValueError):
    """Another drift report is stored under this run id (HTTP 409)."""


_SAVING = threading.Lock()  # a run id's check and its insert, one report at a time


def save_report(store: Store, report: DriftReport, *, actor: str = Actor.API) -> None:
    """Append the report to the record log; a report stored before (same run id, same report)
    is not stored again. ReportConflict when the run id is stored with another report."""
    record = drift_record(report, actor=actor)
    with _SAVING:
        stored = store.query_rows(
            "SELECT DISTINCT body_sha256 FROM records WHERE tenant = {t:String} "
            "AND kind = {k:String} AND record_id = {r:String}",
            {"t": record.tenant, "k": record.kind.value, "r": record.record_id},
        )
        if any(row["body_sha256"] == record.body_sha256 for row in stored):
            return
        if stored:
            raise ReportConflict(
                f"drift report {record.record_id} is stored with another report; "
                "a new replay run needs a new run_id"
            )
        append_records(store, [record])


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and math.isnan(v):
            v = None
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        out[k] = v
    return out


_LATEST: Final = f"""
    SELECT {{columns}} FROM {DRIFT_REPORTS_VIEW} WHERE {{where}}
    ORDER BY recorded_at DESC, body_sha256 DESC LIMIT 1 BY run_id
"""


def _filter_text(raw: str) -> str:
    """The filters as JSON text, keys sorted (as reports were always listed)."""
    return json.dumps(orjson.loads(raw) if raw else {}, sort_keys=True, default=str)


def list_reports(store: Store, tenant: str, limit: int = 20) -> list[dict[str, Any]]:
    """Stored drift reports of ``tenant``, newest first (summaries)."""
    latest = _LATEST.format(
        columns="run_id, created_at, candidate_model, base_url, filter, replayed, errors, drifted, "
        "tool_agreement, argument_agreement, text_similarity_mean, text_similarity_p50, "
        "text_similarity_min",
        where="tenant = {tenant:String}",
    )
    rows = store.query_rows(
        f"SELECT * FROM ({latest}) ORDER BY created_at DESC, run_id LIMIT {{limit:UInt32}}",
        {"tenant": tenant, "limit": int(limit)},
    )
    for r in rows:
        r["filter"] = _filter_text(r["filter"])
    return [_plain(r) for r in rows]


def _call(call: dict[str, Any]) -> dict[str, Any]:
    out = {name: call.get(name) for name in _CALL_NAMES}
    answer = out["replayed_answer"]
    out["replayed_answer"] = "" if answer is None else json.dumps(answer, ensure_ascii=False)
    return out


def _call_order(call: dict[str, Any]) -> tuple[bool, float, str]:
    similarity = call["text_similarity"]
    missing = similarity is None or (isinstance(similarity, float) and math.isnan(similarity))
    return (missing, 0.0 if missing else float(similarity), call["span_id"])


def get_report(store: Store, tenant: str, run_id: str) -> dict[str, Any] | None:
    """A stored drift report: its summary and every replayed call with the link to its source span."""
    runs = store.query_rows(
        _LATEST.format(
            columns="run_id, created_at, candidate_model, base_url, body",
            where="tenant = {tenant:String} AND run_id = {run_id:String}",
        ),
        {"tenant": tenant, "run_id": run_id},
    )
    if not runs:
        return None
    run = _plain(runs[0])
    body = orjson.loads(run["body"])
    calls = sorted((_call(c) for c in body["calls"]), key=_call_order)
    return {
        "run_id": run["run_id"],
        "created_at": run["created_at"],
        "candidate_model": run["candidate_model"],
        "base_url": run["base_url"],
        "filter": body["filter"] or {},
        "summary": body["summary"] or {},
        "calls": calls,
    }

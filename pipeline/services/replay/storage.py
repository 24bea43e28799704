"""Drift reports in the store (``replay_runs``, ``replays``), each replayed call linked to
its source span so a regression can be traced back to the recorded decision."""

from __future__ import annotations

import json
import math
from typing import Any

import pyarrow as pa

from agentledger.pipeline.services.replay.drift import DriftReport, _ns_of
from agentledger.pipeline.store import Store

__all__ = ["REPLAYS_TABLE", "REPLAY_RUNS_TABLE", "get_report", "list_reports", "save_report"]


REPLAY_RUNS_TABLE = "replay_runs"
"""One row per batch replay: the drift report's summary."""
REPLAYS_TABLE = "replays"
"""One row per replayed LLM call, linked to its source span."""


_RUN_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("run_id", pa.string()),
        ("candidate_model", pa.string()),
        ("base_url", pa.string()),
        ("filter", pa.string()),
        ("replayed", pa.uint32()),
        ("errors", pa.uint32()),
        ("drifted", pa.uint32()),
        ("tool_agreement", pa.float64()),
        ("argument_agreement", pa.float64()),
        ("text_similarity_mean", pa.float64()),
        ("text_similarity_p10", pa.float64()),
        ("text_similarity_p50", pa.float64()),
        ("text_similarity_min", pa.float64()),
        ("report", pa.string()),
    ]
)
_REPLAY_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("run_id", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("source_start_time", pa.timestamp("ns", tz="UTC")),
        ("agent_name", pa.string()),
        ("api", pa.string()),
        ("recorded_model", pa.string()),
        ("recorded_answered_model", pa.string()),
        ("replay_model", pa.string()),
        ("replay_answered_model", pa.string()),
        ("request_source", pa.string()),
        ("request_sha256", pa.string()),
        ("input_hash", pa.string()),
        ("messages_match", pa.bool_()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("same_tools", pa.bool_()),
        ("same_arguments", pa.bool_()),
        ("text_similarity", pa.float64()),
        ("token_jaccard", pa.float64()),
        ("drift", pa.bool_()),
        ("recorded_tools", pa.list_(pa.string())),
        ("replayed_tools", pa.list_(pa.string())),
        ("recorded_output_hash", pa.string()),
        ("replayed_answer", pa.string()),
    ]
)


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def save_report(store: Store, report: DriftReport) -> None:
    """Store the report: its summary in ``replay_runs``, each replayed call in ``replays``
    (idempotent: the run id is the insert's deduplication token)."""
    created_ms = report.created_at_ns // 1_000_000
    s = report.summary
    sims = s["text_similarity"]
    run = {
        "tenant": [report.tenant],
        "created_at": [created_ms],
        "run_id": [report.run_id],
        "candidate_model": [report.candidate_model],
        "base_url": [report.base_url],
        "filter": [json.dumps(report.filter, sort_keys=True, default=str)],
        "replayed": [s["replayed"]],
        "errors": [s["errors"]],
        "drifted": [s["drifted"]],
        "tool_agreement": [_nan(s["tool_agreement"])],
        "argument_agreement": [_nan(s["argument_agreement"])],
        "text_similarity_mean": [_nan(sims["mean"])],
        "text_similarity_p10": [_nan(sims["p10"])],
        "text_similarity_p50": [_nan(sims["p50"])],
        "text_similarity_min": [_nan(sims["min"])],
        "report": [json.dumps(s, ensure_ascii=False, default=str)],
    }
    rows: dict[str, list[Any]] = {name: [] for name in _REPLAY_SCHEMA.names}
    for o in report.outcomes:
        r, d = o.request, o.diff
        values = {
            "tenant": report.tenant,
            "created_at": created_ms,
            "run_id": report.run_id,
            "trace_id": r.trace_id,
            "span_id": r.span_id,
            "source_start_time": _ns_of(r.started_at),
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
            "text_similarity": _nan(d.text_similarity if d else None),
            "token_jaccard": _nan(d.token_jaccard if d else None),
            "drift": bool(d.drift) if d else True,
            "recorded_tools": [n for n, _ in r.recorded.tool_calls],
            "replayed_tools": [n for n, _ in o.replayed.tool_calls] if o.replayed else [],
            "recorded_output_hash": r.output_hash,
            "replayed_answer": json.dumps(o.replayed.as_dict(), ensure_ascii=False, default=str)
            if o.replayed
            else "",
        }
        for name in _REPLAY_SCHEMA.names:
            rows[name].append(values[name])
    store.insert_arrow(
        REPLAY_RUNS_TABLE,
        pa.table(run, schema=_RUN_SCHEMA),
        dedup_token=f"replay-run-{report.run_id}",
    )
    if report.outcomes:
        store.insert_arrow(
            REPLAYS_TABLE,
            pa.table(rows, schema=_REPLAY_SCHEMA),
            dedup_token=f"replays-{report.run_id}",
        )


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and math.isnan(v):
            v = None
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        out[k] = v
    return out


def list_reports(store: Store, tenant: str, limit: int = 20) -> list[dict[str, Any]]:
    """Stored drift reports of ``tenant``, newest first (summaries)."""
    rows = store.query_rows(
        f"""SELECT run_id, created_at, candidate_model, base_url, filter, replayed, errors, drifted, tool_agreement,
                   argument_agreement, text_similarity_mean, text_similarity_p50, text_similarity_min
            FROM {REPLAY_RUNS_TABLE} FINAL WHERE tenant = {{tenant:String}}
            ORDER BY created_at DESC, run_id LIMIT {{limit:UInt32}}""",
        {"tenant": tenant, "limit": int(limit)},
    )
    return [_plain(r) for r in rows]


def get_report(store: Store, tenant: str, run_id: str) -> dict[str, Any] | None:
    """A stored drift report: its summary and every replayed call with the link to its source span."""
    runs = store.query_rows(
        f"SELECT run_id, created_at, candidate_model, base_url, filter, report FROM {REPLAY_RUNS_TABLE} FINAL "
        "WHERE tenant = {tenant:String} AND run_id = {run_id:String}",
        {"tenant": tenant, "run_id": run_id},
    )
    if not runs:
        return None
    run = _plain(runs[0])
    calls = store.query_rows(
        f"""SELECT trace_id, span_id, source_start_time, agent_name, api, recorded_model, recorded_answered_model,
                   replay_model, replay_answered_model, request_source, request_sha256, input_hash, messages_match,
                   status, error, same_tools, same_arguments, text_similarity, token_jaccard, drift, recorded_tools,
                   replayed_tools, recorded_output_hash, replayed_answer
            FROM {REPLAYS_TABLE} FINAL WHERE tenant = {{tenant:String}} AND run_id = {{run_id:String}}
            ORDER BY text_similarity, span_id""",
        {"tenant": tenant, "run_id": run_id},
    )
    return {
        "run_id": run["run_id"],
        "created_at": run["created_at"],
        "candidate_model": run["candidate_model"],
        "base_url": run["base_url"],
        "filter": json.loads(run["filter"] or "{}"),
        "summary": json.loads(run["report"] or "{}"),
        "calls": [_plain(c) for c in calls],
    }

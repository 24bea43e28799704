"""Read-side queries shared by the HTTP API and the CLI: traces, one trace, contents.

All run the same SQL on either store and read with ``FINAL`` so that rows
delivered twice (at-least-once) are counted once.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from agentledger.pipeline.services.recent import newest_first
from agentledger.pipeline.services.recorded import iso
from agentledger.pipeline.services.span_logs import join_messages, span_logs
from agentledger.pipeline.store import Store
from agentledger.schemas.analytics import NOT_SPANS_LOST_SQL

__all__ = ["list_traces", "get_trace", "get_contents", "trace_tree"]

_TRACE_COLUMNS = """
    trace_id,
    if(countIf(parent_span_id = '') > 0, argMinIf(name, start_time, parent_span_id = ''),
       argMin(name, start_time)) AS root_name,
    argMin(service, start_time) AS service,
    argMin(agent_name, start_time) AS agent_name,
    argMin(principal_id, start_time) AS principal_id,
    min(start_time) AS trace_start,
    (toUnixTimestamp64Nano(max(end_time)) - toUnixTimestamp64Nano(min(start_time))) / 1e6 AS duration_ms,
    count() AS span_count,
    countIf(kind = 'LLM') AS llm_calls,
    sum(input_tokens) AS input_tokens,
    sum(output_tokens) AS output_tokens,
    sum(cost_usd) AS cost_usd,
    if(countIf(status_code = 'ERROR') > 0, 'ERROR', 'OK') AS status
"""


def list_traces(
    store: Store,
    tenant: str,
    *,
    limit: int = 20,
    since: datetime | None = None,
    service: str | None = None,
) -> list[dict[str, Any]]:
    """Most recent traces first, one summary row each (agent activity only: the agents' reports of
    lost spans are left out of the list, but :func:`get_trace` still reads them)."""
    where = ["tenant = {tenant:String}", NOT_SPANS_LOST_SQL]
    params: dict[str, Any] = {"tenant": tenant, "limit": int(limit), "scan": int(limit) * 200}
    if since is not None:
        where.append("start_time >= {since:DateTime64(9, 'UTC')}")
        params["since"] = since.strftime("%Y-%m-%d %H:%M:%S.%f")
    if service:
        # qualified: the summary's ``service`` alias (an aggregate) would shadow the bare column
        where.append("spans.service = {service:String}")
        params["service"] = service
    cond = " AND ".join(where)

    def run(inner: str, outer: str, bound: dict[str, Any]) -> list[dict[str, Any]]:
        return store.query_rows(
            f"""
            SELECT {_TRACE_COLUMNS}
            FROM spans FINAL
            WHERE {cond} AND {outer} AND trace_id IN (
                SELECT trace_id FROM spans WHERE {cond} AND {inner}
                ORDER BY start_time DESC LIMIT {{scan:UInt32}}
            )
            GROUP BY trace_id
            ORDER BY trace_start DESC
            LIMIT {{limit:UInt32}}
            """,
            bound,
        )

    rows = [_plain(r) for r in newest_first(store, cond, params, run, int(limit))]
    for r in rows:
        r["start_time"] = r.pop("trace_start")
    return rows


_SPAN_FIELDS = """
    trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, name, kind,
    status_code, status_message, service, agent_name, session_id, user_id, principal_id,
    principal_chain, policy_id, provider, operation, request_model, response_model,
    system_fingerprint, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
    reasoning_tokens, cost_usd, cost_source, tool_name, tool_call_id, tool_calls, input_hash,
    output_hash, system_prompt_hash, request_params, tools_hash, finish_reasons, request_hash,
    raw_request_hash, input_preview, output_preview, documents, convention,
    scope_name, attributes, attribute_refs, resource_attributes, events, ingest_time,
    source_topic, source_partition, source_offset, sent_by
"""


def get_trace(store: Store, tenant: str, trace_id: str) -> list[dict[str, Any]]:
    """Every span of one trace, in start order, each with its log records (``logs``); an LLM call
    that recorded no messages of its own has those of its GenAI log events (``span_logs``)."""
    sql = f"""
        SELECT {_SPAN_FIELDS}
        FROM spans FINAL
        WHERE tenant = {{tenant:String}} AND trace_id = {{trace_id:String}}
        ORDER BY start_time, span_id
    """
    spans = [
        _plain(r) for r in store.query_rows(sql, {"tenant": tenant, "trace_id": trace_id.lower()})
    ]
    if spans:
        _attach_logs(store, tenant, trace_id.lower(), spans)
    return spans


def _attach_logs(store: Store, tenant: str, trace_id: str, spans: list[dict[str, Any]]) -> None:
    logs = span_logs(store, tenant, [trace_id])
    if logs:
        join_messages(
            [s for s in spans if s["kind"] == "LLM"],
            logs,
            lambda hashes: get_contents(store, tenant, list(hashes)),
        )
    for span in spans:
        span["logs"] = [
            {
                "time": iso(r["time_ns"]),
                "observed_time": iso(r["observed_ns"]),
                **{k: r[k] for k in _LOG_FIELDS},
            }
            for r in logs.get(span["span_id"], ())
        ]


_LOG_FIELDS = (
    "event_name",
    "severity_number",
    "severity_text",
    "body",
    "body_hash",
    "attributes",
    "attribute_refs",
    "scope_name",
)


def get_contents(store: Store, tenant: str, hashes: list[str]) -> dict[str, dict[str, Any]]:
    """Content records by hash (kind, content, size)."""
    if not hashes:
        return {}
    rows = store.query_rows(
        """
        SELECT hash, kind, content, size FROM contents FINAL
        WHERE tenant = {tenant:String} AND hash IN {hashes:Array(String)}
        """,
        {"tenant": tenant, "hashes": sorted(set(hashes))},
    )
    return {r["hash"]: r for r in rows}


def trace_tree(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Spans nested under their parents (``children`` lists); orphans become roots."""
    by_id = {s["span_id"]: {**s, "children": []} for s in spans}
    roots: list[dict[str, Any]] = []
    for span in by_id.values():
        parent = by_id.get(span["parent_span_id"])
        (parent["children"] if parent is not None else roots).append(span)
    return roots


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """JSON-friendly values: datetimes as ISO strings, maps as dicts, NaN as None."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in _MAPS:
            out[key] = {k: v for k, v in value}
        else:
            out[key] = _plain_value(value)
    return out


_MAPS = frozenset({"attributes", "attribute_refs", "resource_attributes"})


def _plain_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat") and hasattr(value, "value"):  # pandas Timestamp
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, list):
        return [_plain_value(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain_value(v) for k, v in value.items()}
    return value

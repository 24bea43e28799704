"""Usage patterns: per-agent tool-call sequences and n-grams, input topics, new or unexpected use.

Reads ``spans`` directly. Tool sequences are built from distinct
``(start_time, tool)`` tuples per trace, so a span delivered twice appears
once without paying for ``FINAL``; sets of values (which tools,
models, principals a baseline had) are duplicate-insensitive by nature.

"New or unexpected use" compares a current window with the baseline window
before it: sequences, tools, models, principals, agents and topic clusters
present now and absent then, ranked by volume with example trace ids. With
an empty baseline nothing is called new (there is nothing to compare with).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from agentledger.pipeline.derive.topics import Doc, find_topics
from agentledger.pipeline.store import Store
from agentledger.schemas.analytics import NOT_SPANS_LOST_SQL

__all__ = [
    "SEQUENCE_SEPARATOR",
    "tool_sequences",
    "ngrams",
    "user_inputs",
    "new_use",
    "patterns_report",
    "ENTITY_COLUMNS",
]

SEQUENCE_SEPARATOR = " > "
"""How a tool sequence is written as one string (dimension values, tables)."""

ENTITY_COLUMNS = {
    "tool": "tool_name",
    "model": "response_model",
    "principal": "principal_id",
    "agent": "agent_name",
    "provider": "provider",
}
"""Entities whose first appearance counts as new use -> their ``spans`` column."""

_RANGE = (
    "tenant = {tenant:String} AND start_time >= toDateTime64({lo:Int64}, 9, 'UTC') "
    f"AND start_time < toDateTime64({{hi:Int64}}, 9, 'UTC') AND {NOT_SPANS_LOST_SQL}"
)
"""The window's agent activity (agents' loss reports are bookkeeping: no sequence, no new use)."""

_SEQUENCES = f"""
SELECT agent, seq, count() AS traces, groupArray(3)(trace_id) AS examples,
       toUInt32(min(first_start)) AS first_seen
FROM (
    SELECT trace_id, anyIf(agent_name, agent_name != '') AS agent, min(start_time) AS first_start,
           arrayMap(x -> x.2, arraySort(groupUniqArrayIf((start_time, tool_name),
                                                         kind = 'TOOL' AND tool_name != ''))) AS tools,
           arrayFlatten(arrayMap(x -> x.2, arraySort(groupUniqArrayIf(
               (start_time, arrayMap(c -> c.name, tool_calls)), kind = 'LLM' AND notEmpty(tool_calls))))) AS chosen,
           if(notEmpty(tools), tools, chosen) AS seq
    FROM spans
    WHERE {_RANGE} {{tools_only}}
    GROUP BY trace_id
)
WHERE {{agent_filter:UInt8}} = 0 OR agent = {{agent:String}}
GROUP BY agent, seq
ORDER BY traces DESC, agent, seq
"""


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()


_TOOLS_ONLY = "AND (kind = 'TOOL' OR (kind = 'LLM' AND notEmpty(tool_calls)))"


def _range(start: datetime, end: datetime) -> dict[str, int]:
    return {"lo": int(start.timestamp()), "hi": int(end.timestamp())}


def tool_sequences(
    store: Store,
    tenant: str,
    start: datetime,
    end: datetime,
    agent: str | None = None,
    *,
    tools_only: bool = False,
) -> list[dict[str, Any]]:
    """Per agent, each distinct ordered tool sequence of its traces: traces, examples, first seen.

    A trace's sequence is its TOOL spans in start order; a trace without TOOL
    spans falls back to the tool calls its LLM spans chose. ``tools_only``
    reads only the spans that carry tools (much less data: what a baseline
    set of sequences needs), so traces without any tool are left out.
    """
    rows = store.query_rows(
        _SEQUENCES.replace("{tools_only}", _TOOLS_ONLY if tools_only else ""),
        {
            "tenant": tenant,
            **_range(start, end),
            "agent_filter": int(agent is not None),
            "agent": agent or "",
        },
    )
    return [
        {
            "agent": r["agent"],
            "sequence": list(r["seq"]),
            "traces": r["traces"],
            "example_trace_ids": list(r["examples"]),
            "first_seen": _iso(r["first_seen"]),
        }
        for r in rows
    ]


def ngrams(sequences: list[dict[str, Any]], n_max: int = 3, top: int = 10) -> list[dict[str, Any]]:
    """Per agent, the most frequent contiguous tool n-grams (n = 1..n_max), weighted by traces."""
    per_agent: dict[str, Counter[tuple[str, ...]]] = {}
    for s in sequences:
        counter = per_agent.setdefault(s["agent"], Counter())
        seq = s["sequence"]
        for n in range(1, n_max + 1):
            for i in range(len(seq) - n + 1):
                counter[tuple(seq[i : i + n])] += s["traces"]
    out = []
    for agent in sorted(per_agent):
        for gram, count in sorted(
            per_agent[agent].items(), key=lambda kv: (-kv[1], len(kv[0]), kv[0])
        )[:top]:
            out.append({"agent": agent, "ngram": list(gram), "n": len(gram), "count": count})
    return out


_INPUTS = f"""
SELECT trace_id,
       argMinIf(input_preview, start_time, parent_span_id = '' AND input_preview != '') AS root_text,
       argMinIf(input_preview, start_time, kind = 'LLM' AND input_preview != '') AS llm_text
FROM spans
WHERE {_RANGE}
GROUP BY trace_id
HAVING root_text != '' OR llm_text != ''
ORDER BY cityHash64(trace_id)
LIMIT {{limit:UInt32}}
"""


def user_inputs(
    store: Store, tenant: str, start: datetime, end: datetime, limit: int = 2000
) -> list[Doc]:
    """One input text per trace (the root span's input, else the first LLM call's user message),
    a deterministic sample of at most ``limit`` traces."""
    rows = store.query_rows(_INPUTS, {"tenant": tenant, **_range(start, end), "limit": limit})
    return [Doc(r["trace_id"], r["root_text"] or r["llm_text"]) for r in rows]


_ENTITIES = f"""
SELECT {{col:Identifier}} AS value, uniqExact(trace_id) AS traces, uniqExact(span_id) AS spans,
       groupUniqArray(3)(trace_id) AS examples, toUInt32(min(start_time)) AS first_seen
FROM spans
WHERE {_RANGE} AND value != ''
  AND value NOT IN (SELECT DISTINCT {{col:Identifier}} FROM spans
                    WHERE tenant = {{tenant:String}} AND start_time >= toDateTime64({{blo:Int64}}, 9, 'UTC')
                      AND start_time < toDateTime64({{bhi:Int64}}, 9, 'UTC')
                      AND {NOT_SPANS_LOST_SQL})
GROUP BY value
ORDER BY traces DESC, value
"""


def _has_spans(store: Store, tenant: str, start: datetime, end: datetime) -> bool:
    return bool(
        store.query_scalar(
            f"SELECT count() > 0 FROM spans WHERE {_RANGE}",
            {"tenant": tenant, **_range(start, end)},
        )
    )


def new_use(
    store: Store,
    tenant: str,
    window: tuple[datetime, datetime],
    baseline: tuple[datetime, datetime],
    *,
    topics: bool = True,
    min_topic_size: int = 3,
) -> dict[str, Any]:
    """What the current window has that the baseline had not, ranked by traces."""
    result: dict[str, Any] = {
        "window": [window[0].isoformat(), window[1].isoformat()],
        "baseline": [baseline[0].isoformat(), baseline[1].isoformat()],
        "baseline_empty": not _has_spans(store, tenant, *baseline),
        "sequences": [],
        "topics": [],
        **{f"{entity}s": [] for entity in ENTITY_COLUMNS},
    }
    if result["baseline_empty"]:
        return result
    known = {
        (s["agent"], tuple(s["sequence"]))
        for s in tool_sequences(store, tenant, *baseline, tools_only=True)
    }
    result["sequences"] = [
        {
            **s,
            "description": f"agent {s['agent'] or '(unnamed)'} ran the tool sequence "
            f"{SEQUENCE_SEPARATOR.join(s['sequence'])} in {s['traces']} traces, never in the baseline",
        }
        for s in tool_sequences(store, tenant, *window, tools_only=True)
        if (s["agent"], tuple(s["sequence"])) not in known
    ]
    b = _range(*baseline)
    for entity, col in ENTITY_COLUMNS.items():
        rows = store.query_rows(
            _ENTITIES,
            {"tenant": tenant, "col": col, **_range(*window), "blo": b["lo"], "bhi": b["hi"]},
        )
        result[f"{entity}s"] = [
            {
                "value": r["value"],
                "traces": r["traces"],
                "spans": r["spans"],
                "example_trace_ids": sorted(r["examples"]),
                "first_seen": _iso(r["first_seen"]),
                "description": _DESCRIBE[entity].format(**r),
            }
            for r in rows
        ]
    if topics:
        report = find_topics(
            user_inputs(store, tenant, *baseline),
            user_inputs(store, tenant, *window),
            min_size=min_topic_size,
        )
        result["topics"] = [_new_topic(t) for t in report.new_topics]
    return result


_DESCRIBE = {
    "tool": "tool {value} was called in {spans} spans of {traces} traces; never in the baseline",
    "model": "model {value} answered {spans} calls; never in the baseline: a new or silently changed model",
    "principal": "principal {value} made {traces} runs; not active in the baseline: a new user or account",
    "agent": "agent {value} ran {traces} traces; not in the baseline: a new deployment",
    "provider": "provider {value} served {spans} calls; not in the baseline: check it is approved",
}
"""One line per kind of new entity, formatted with the entity's row."""


def _new_topic(t: Any) -> dict[str, Any]:
    return {
        "terms": t.terms,
        "traces": t.current,
        "example_trace_ids": t.examples,
        "description": f"{t.current} inputs about {', '.join(t.terms[:5])}: no baseline topic resembles them",
    }


def patterns_report(
    store: Store,
    tenant: str,
    window: tuple[datetime, datetime],
    baseline: tuple[datetime, datetime],
    *,
    agent: str | None = None,
    n_max: int = 3,
    top: int = 10,
    k: int | None = None,
) -> dict[str, Any]:
    """Everything ``agentledger patterns`` shows: sequences, n-grams, topics, new use."""
    sequences = tool_sequences(store, tenant, *window, agent=agent)
    report = find_topics(
        user_inputs(store, tenant, *baseline), user_inputs(store, tenant, *window), k=k
    )
    unexpected = new_use(store, tenant, window, baseline, topics=False)
    if not unexpected["baseline_empty"]:
        unexpected["topics"] = [_new_topic(t) for t in report.new_topics]
    return {
        "window": [window[0].isoformat(), window[1].isoformat()],
        "baseline": [baseline[0].isoformat(), baseline[1].isoformat()],
        "sequences": sequences[: top * 5],
        "ngrams": ngrams(sequences, n_max=n_max, top=top),
        "topics": [asdict(t) for t in report.topics],
        "new_use": unexpected,
    }

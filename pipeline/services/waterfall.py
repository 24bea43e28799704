"""A trace too large to send whole: its outline, paged, and one span in full at a time.

``reads.trace`` answers every column of every span (attributes, events, logs) as models: right for
a run of dozens of spans, seconds and megabytes for a batch job of tens of thousands. The console
shows such a trace as a virtualized waterfall: the outline (the few columns a bar needs, in tree
order, placed on the time axis) is read in one narrow query and cut into pages, and a span's full
row is read only when it is opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from agentledger.pipeline.services.queries import _SPAN_FIELDS, _attach_logs, _plain
from agentledger.pipeline.services.reads import ReadNotFound, ReadRejected
from agentledger.pipeline.store import Store
from agentledger.schemas.attributes import Governance
from agentledger.schemas.read import Span

__all__ = ["Bar", "Outline", "outline", "span"]

MIN_WIDTH: Final = 0.4
"""Narrowest bar, in % of the trace: a span of no measurable time stays visible."""

_OUTLINE_SQL: Final = """
    SELECT span_id, parent_span_id, name, kind, status_code, duration_ms,
           toUnixTimestamp64Nano(start_time) AS s, toUnixTimestamp64Nano(end_time) AS e,
           input_tokens, output_tokens, cost_usd, agent_name, service, principal_id, session_id,
           attributes[{intent:String}] AS intent, attributes[{paused:String}] AS paused
    FROM spans FINAL
    WHERE tenant = {tenant:String} AND trace_id = {trace_id:String}
    ORDER BY start_time, span_id
"""


@dataclass(frozen=True)
class Bar:
    """One span of the waterfall: what its row shows, its depth, its bar in % of the trace."""

    span_id: str
    name: str
    kind: str
    status_code: str
    duration_ms: float
    depth: int
    left: float
    width: float
    governed: bool
    paused_s: float

    def as_json(self) -> dict[str, Any]:
        """Short keys: a page of a thousand rows travels as ~100 KB."""
        return {
            "id": self.span_id,
            "n": self.name,
            "k": self.kind,
            "st": self.status_code,
            "ms": self.duration_ms,
            "d": self.depth,
            "l": self.left,
            "w": self.width,
            "g": self.governed,
            "p": self.paused_s,
        }


@dataclass(frozen=True)
class Outline:
    """Every span of a trace as bars in tree order (depth first, children by start), and the
    totals the trace's header shows."""

    trace_id: str
    bars: list[Bar]
    root: dict[str, Any]
    """The first root's name, agent, service, principal, session and start time."""
    total_ms: float
    totals: dict[str, float] = field(default_factory=dict)


def _paused(value: str) -> float:
    try:
        return float(value or 0)
    except ValueError:
        return 0.0


def outline(store: Store, tenant: str, trace_id: str) -> Outline:
    """The trace's bars: one narrow query read as columns (a 10,000-span trace as Python dicts
    costs several times the query), the tree ordered without recursion (a chain of thousands of
    spans is as deep as it is long)."""
    if len(trace_id) != 32 or any(c not in "0123456789abcdefABCDEF" for c in trace_id):
        raise ReadRejected(f"trace id {trace_id!r} must be 32 hex digits")
    trace_id = trace_id.lower()
    table = store.query_arrow(
        _OUTLINE_SQL,
        {
            "tenant": tenant,
            "trace_id": trace_id,
            "intent": Governance.INTENT_ID,
            "paused": Governance.INTENT_PAUSED_S,
        },
    )
    if table.num_rows == 0:
        raise ReadNotFound(f"no trace {trace_id} for tenant {tenant!r}")
    c = {name: table.column(name).to_pylist() for name in table.column_names}
    ids, starts, ends = c["span_id"], c["s"], c["e"]
    start = min(starts)
    total = max(max(ends) - start, 1)
    known = set(ids)
    children: dict[str, list[int]] = {}
    roots = []
    for i, parent in enumerate(c["parent_span_id"]):  # in start order: children come out sorted
        if parent and parent in known and parent != ids[i]:
            children.setdefault(parent, []).append(i)
        else:
            roots.append(i)
    bars: list[Bar] = []
    seen: set[str] = set()
    stack = [(i, 0) for i in reversed(roots)]
    while stack:
        i, depth = stack.pop()
        if ids[i] in seen:  # a cycle of parent ids: each span is shown once
            continue
        seen.add(ids[i])
        left = (starts[i] - start) / total * 100
        width = max((ends[i] - starts[i]) / total * 100, MIN_WIDTH)
        bars.append(
            Bar(
                ids[i],
                c["name"][i],
                c["kind"][i],
                c["status_code"][i],
                float(c["duration_ms"][i]),
                depth,
                round(left, 3),
                round(min(width, 100 - left), 3) or MIN_WIDTH,
                bool(c["intent"][i]),
                _paused(c["paused"][i]),
            )
        )
        stack.extend((k, depth + 1) for k in reversed(children.get(ids[i], ())))
    first = roots[0] if roots else 0
    return Outline(
        trace_id,
        bars,
        root={
            "name": c["name"][first],
            "agent_name": c["agent_name"][first],
            "service": c["service"][first],
            "principal_id": c["principal_id"][first],
            "session_id": c["session_id"][first],
            "start_ns": start,
        },
        total_ms=max(float(d) for d in c["duration_ms"]),
        totals={
            "input_tokens": sum(int(v) for v in c["input_tokens"]),
            "output_tokens": sum(int(v) for v in c["output_tokens"]),
            "cost_usd": sum(float(v or 0) for v in c["cost_usd"]),
            "errors": sum(1 for v in c["status_code"] if v == "ERROR"),
        },
    )


def span(store: Store, tenant: str, trace_id: str, span_id: str) -> Span:
    """One span of a trace in full, as ``reads.trace`` answers each (its log records too)."""
    rows = store.query_rows(
        f"SELECT {_SPAN_FIELDS} FROM spans FINAL WHERE tenant = {{tenant:String}} "
        "AND trace_id = {trace_id:String} AND span_id = {span_id:String} LIMIT 1",
        {"tenant": tenant, "trace_id": trace_id.lower(), "span_id": span_id.lower()},
    )
    if not rows:
        raise ReadNotFound(f"no span {span_id} in trace {trace_id}")
    found = [_plain(rows[0])]
    _attach_logs(store, tenant, trace_id.lower(), found)
    return Span.model_validate(found[0])

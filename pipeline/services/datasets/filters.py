"""Which spans go into a dataset: the export's filters, and the SQL conditions they become.

Filters become one SQL condition over ``spans`` (plus ``feedback`` for the feedback
thresholds); a sample is a deterministic hash threshold, so the same seed picks the same spans.
``selection.py`` reads what these conditions select, in pages.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Final

from agentledger.pipeline.services.datasets.feedback import FEEDBACK_VIEW, effective_score_sql
from agentledger.pipeline.store import Store

__all__ = [
    "ExportFilters",
    "FeedbackFilter",
    "feedback_condition",
    "span_conditions",
]

_OPS: Final = (">=", "<=", "!=", "=", ">", "<")
_FILTER = re.compile(r"^\s*([^<>=!]+?)\s*(>=|<=|!=|=|>|<)\s*(.+?)\s*$")


@dataclass(frozen=True)
class FeedbackFilter:
    """``name OP value``: a feedback threshold (``helpfulness>=0.7``) or label (``thumbs=up``).

    ``!=`` is the negation of ``=``: it keeps what has no such feedback at all
    (``hallucination!=hallucinated`` keeps the unjudged too); the other operators
    keep only what was judged.
    """

    name: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> FeedbackFilter:
        m = _FILTER.match(text)
        if m is None:
            raise ValueError(
                f"feedback filter {text!r} is not NAME OP VALUE (OP one of {', '.join(_OPS)})"
            )
        name, op, value = m.groups()
        if op not in ("=", "!=") and _number(value) is None:
            raise ValueError(f"feedback filter {text!r}: {op} needs a number")
        return cls(name, op, value)

    @property
    def numeric(self) -> bool:
        return _number(self.value) is not None

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value}"


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class ExportFilters:
    """What to export. Empty tuples and None mean "no restriction"."""

    since: datetime | None = None
    until: datetime | None = None
    agents: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    """Requested or answered model."""
    principals: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    """Span kinds; the format decides the default (LLM for chat formats, any for trajectories)."""
    successful_only: bool = True
    has_tool_calls: bool | None = None
    feedback: tuple[FeedbackFilter, ...] = ()
    sample_size: int | None = None
    seed: str = "0"
    """Seed of the sample (and, by default, of the split)."""
    trace_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["since"] = self.since.isoformat() if self.since else None
        out["until"] = self.until.isoformat() if self.until else None
        out["feedback"] = [str(f) for f in self.feedback]
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportFilters:
        def when(v: Any) -> datetime | None:
            if not v:
                return None
            d = v if isinstance(v, datetime) else datetime.fromisoformat(str(v))
            return d if d.tzinfo else d.replace(tzinfo=timezone.utc)

        return cls(
            since=when(data.get("since")),
            until=when(data.get("until")),
            agents=tuple(data.get("agents") or ()),
            models=tuple(data.get("models") or ()),
            principals=tuple(data.get("principals") or ()),
            kinds=tuple(k.upper() for k in data.get("kinds") or ()),
            successful_only=bool(data.get("successful_only", True)),
            has_tool_calls=data.get("has_tool_calls"),
            feedback=tuple(
                f if isinstance(f, FeedbackFilter) else FeedbackFilter.parse(str(f))
                for f in data.get("feedback") or ()
            ),
            sample_size=data.get("sample_size"),
            seed=str(data.get("seed", "0")),
            trace_ids=tuple(t.lower() for t in data.get("trace_ids") or ()),
        )


def _ts(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def feedback_condition(
    i: int, f: FeedbackFilter, *, per: str = "span"
) -> tuple[str, dict[str, Any]]:
    """SQL that is true for spans (``per="span"``) or traces (``per="trace"``) meeting ``f``.

    A span meets it by its own feedback of that name, else by its trace's; a
    trace by its trace-level feedback, else by any of its spans'.
    """
    n, v = f"fb{i}_name", f"fb{i}_value"
    params: dict[str, Any] = {n: f.name}
    negate = f.op == "!="
    op = "=" if negate else f.op
    if f.numeric:
        params[v] = float(f.value)
        test = f"val {op} {{{v}:Float64}}"
        agg = f"avg({effective_score_sql(None)})"
        having = "isNotNull(val)"
    else:
        params[v] = f.value
        agg = "groupArray(label)"
        test = f"has(val, {{{v}:String}})"
        having = "1"
    fb = (
        f"SELECT trace_id, span_id, {agg} AS val FROM {FEEDBACK_VIEW} "
        f"WHERE tenant = {{tenant:String}} AND name = {{{n}:String}} GROUP BY trace_id, span_id HAVING {having}"
    )
    if per == "span":
        sql = (
            f"(span_id IN (SELECT span_id FROM ({fb}) WHERE span_id != '' AND {test}) "
            f"OR (span_id NOT IN (SELECT span_id FROM ({fb}) WHERE span_id != '') "
            f"AND trace_id IN (SELECT trace_id FROM ({fb}) WHERE span_id = '' AND {test})))"
        )
    else:
        sql = (
            f"(trace_id IN (SELECT trace_id FROM ({fb}) WHERE span_id = '' AND {test}) "
            f"OR (trace_id NOT IN (SELECT trace_id FROM ({fb}) WHERE span_id = '') "
            f"AND trace_id IN (SELECT trace_id FROM ({fb}) WHERE span_id != '' AND {test})))"
        )
    return (f"NOT {sql}" if negate else sql), params


_MEMBERSHIP: Final = (
    ("agents", "agent_name IN {agents:Array(String)}"),
    (
        "models",
        "(request_model IN {models:Array(String)} OR response_model IN {models:Array(String)})",
    ),
    ("principals", "principal_id IN {principals:Array(String)}"),
)
"""Filters that say which values a span must have: (attribute of ExportFilters = parameter, condition)."""


def _membership(f: ExportFilters, kinds: tuple[str, ...]) -> list[tuple[str, str, list[str]]]:
    """(condition on one span, parameter name, values) of the kind and membership filters set."""
    found = [("kind IN {kinds:Array(String)}", "kinds", list(kinds))] if kinds else []
    return found + [
        (cond, name, list(getattr(f, name))) for name, cond in _MEMBERSHIP if getattr(f, name)
    ]


def span_conditions(
    tenant: str, f: ExportFilters, kinds: tuple[str, ...]
) -> tuple[list[str], dict[str, Any]]:
    """Conditions on ``spans`` rows for the filters (without the trace-level ones of trajectories)."""
    conds = ["tenant = {tenant:String}"]
    params: dict[str, Any] = {"tenant": tenant}
    if f.since:
        conds.append("start_time >= {since:DateTime64(9, 'UTC')}")
        params["since"] = _ts(f.since)
    if f.until:
        conds.append("start_time < {until:DateTime64(9, 'UTC')}")
        params["until"] = _ts(f.until)
    for cond, name, values in _membership(f, kinds):
        conds.append(cond)
        params[name] = values
    if f.trace_ids:
        conds.append("trace_id IN {trace_ids:Array(String)}")
        params["trace_ids"] = list(f.trace_ids)
    if f.successful_only:
        conds.append("status_code != 'ERROR'")
    if f.has_tool_calls is True:
        # the example calls a tool, or its trace ran one (its input then carries tool results);
        # the exporter checks the example's messages themselves.
        conds.append(
            "(notEmpty(tool_calls) OR trace_id IN (SELECT trace_id FROM spans WHERE "
            "tenant = {tenant:String} AND kind = 'TOOL'))"
        )
    elif f.has_tool_calls is False:
        conds.append("empty(tool_calls)")
    for i, fb in enumerate(f.feedback):
        sql, p = feedback_condition(i, fb, per="span")
        conds.append(sql)
        params.update(p)
    return conds, params


def _sampled_span_conditions(
    store: Store, tenant: str, f: ExportFilters, kinds: tuple[str, ...]
) -> tuple[list[str], dict[str, Any]]:
    """``span_conditions`` plus the deterministic sample of ``sample_size`` spans, if asked for."""
    conds, params = span_conditions(tenant, f, kinds)
    sample, sparams = _sample_condition(store, "span_id", conds, params, f)
    if sample:
        conds.append(sample)
        params.update(sparams)
    return conds, params


def _sample_condition(
    store: Store,
    key: str,
    conds: list[str],
    params: dict[str, Any],
    f: ExportFilters,
    having: str = "",
) -> tuple[str | None, dict[str, Any]]:
    """``cityHash64(seed, key) <= T`` where T keeps ``sample_size`` keys: a deterministic sample."""
    if not f.sample_size:
        return None, {}
    p = {**params, "sample_seed": f.seed, "sample_n": int(f.sample_size)}
    threshold = store.query_scalar(
        f"""SELECT max(h) FROM (
              SELECT cityHash64({{sample_seed:String}}, {key}) AS h FROM spans
              WHERE {" AND ".join(conds)} GROUP BY {key} {having} ORDER BY h LIMIT {{sample_n:UInt64}})""",
        p,
    )
    return f"cityHash64({{sample_seed:String}}, {key}) <= {{sample_max:UInt64}}", {
        "sample_seed": f.seed,
        "sample_max": int(threshold or 0),
    }

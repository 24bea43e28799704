"""Read models of analytics: usage rows and totals, the patterns report, anomalies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from agentledger.schemas.analytics import AnomalyType
from agentledger.schemas.read._base import IsoTime, ReadModel, absent

__all__ = [
    "Anomaly",
    "AnomalyActionDone",
    "AnomalyActionIn",
    "DetectionResult",
    "NewEntity",
    "NewSequence",
    "NewTopic",
    "NewUse",
    "NGram",
    "PatternsReport",
    "ToolSequence",
    "Topic",
    "UsageDimensions",
    "UsageReport",
    "UsageRow",
    "UsageTotals",
]

# -- usage -------------------------------------------------------------------------------------


class UsageTotals(ReadModel):
    """Every usage metric (``schemas.analytics.USAGE_METRICS``) of a group, or of the whole range."""

    calls: int
    errors: int
    error_rate: float
    input_tokens: int
    output_tokens: int
    tokens: int
    cost_usd: float
    latency_p50_ms: float | None = Field(description="Null when no latency is known.")
    latency_p95_ms: float | None
    latency_p99_ms: float | None
    latency_avg_ms: float
    spans_lost: int = Field(
        0, description="Spans the agent reported lost before they reached the collector."
    )


def _dimension(description: str) -> Any:
    return Field(None, exclude_if=absent, description=description)


class UsageDimensions(ReadModel):
    """The dimension values of a usage group: only those grouped by are present ("" = none)."""

    principal: str | None = _dimension("Principal id.")
    agent: str | None = _dimension("Agent name.")
    provider: str | None = _dimension("Model provider.")
    model: str | None = _dimension("Model (answered, else requested).")
    kind: str | None = _dimension("Span kind.")
    tool: str | None = _dimension("Tool name.")
    bucket: IsoTime | None = _dimension("Start of the time bucket (a series only).")


class UsageRow(UsageTotals, UsageDimensions):
    """One usage group (and time bucket, for a series) with every metric."""


class UsageReport(ReadModel):
    """``GET /api/v1/usage``: what was asked, and the rows."""

    start: IsoTime = Field(description="Range start as asked (the rollup floors it to the hour).")
    end: IsoTime = Field(description="Range end as asked (the rollup ceils it to the hour).")
    group_by: list[str]
    interval: Literal["hour", "day"] | None
    order_by: str
    filters: dict[str, str]
    rows: list[UsageRow]


# -- patterns ----------------------------------------------------------------------------------


class ToolSequence(ReadModel):
    """The tools one agent's traces called, in order, and how many traces did so."""

    agent: str
    sequence: list[str]
    traces: int
    example_trace_ids: list[str]
    first_seen: IsoTime


class NGram(ReadModel):
    """A run of ``n`` consecutive tool calls of one agent, counted over its sequences."""

    agent: str
    ngram: list[str]
    n: int
    count: int


class Topic(ReadModel):
    """A cluster of user inputs: its top terms and its volume in both windows."""

    topic: int
    terms: list[str]
    baseline: int
    current: int
    examples: list[str]
    new: bool


class NewEntity(ReadModel):
    """A tool, model, principal, agent or provider of the window that the baseline never saw."""

    value: str
    traces: int
    spans: int
    example_trace_ids: list[str]
    first_seen: IsoTime
    description: str = Field("", description="One line saying what is new and what it may mean.")


class NewTopic(ReadModel):
    """A topic of user inputs of the window that matches none of the baseline."""

    terms: list[str]
    traces: int
    example_trace_ids: list[str]
    description: str = Field("", description="One line saying what is new.")


class NewSequence(ToolSequence):
    """A tool sequence of the window that the agent never ran in the baseline."""

    description: str = Field("", description="One line saying what is new.")


class NewUse(ReadModel):
    """What the window has that the baseline had not (nothing is new without a baseline)."""

    window: tuple[IsoTime, IsoTime]
    baseline: tuple[IsoTime, IsoTime]
    baseline_empty: bool
    sequences: list[NewSequence]
    topics: list[NewTopic]
    tools: list[NewEntity]
    models: list[NewEntity]
    principals: list[NewEntity]
    agents: list[NewEntity]
    providers: list[NewEntity]


class PatternsReport(ReadModel):
    """``GET /api/v1/patterns``: tool sequences, n-grams, input topics, new or unexpected use."""

    window: tuple[IsoTime, IsoTime]
    baseline: tuple[IsoTime, IsoTime]
    sequences: list[ToolSequence]
    ngrams: list[NGram]
    topics: list[Topic]
    new_use: NewUse


# -- anomalies ---------------------------------------------------------------------------------


class Anomaly(ReadModel):
    """A stored anomaly (``GET /api/v1/anomalies``; also what the webhook posts)."""

    anomaly_id: str
    tenant: str
    type: AnomalyType
    metric: str
    dimensions: dict[str, str]
    window_start: IsoTime
    window_end: IsoTime
    score: float
    expected: float
    observed: float
    example_trace_ids: list[str]
    detail: str
    first_detected: IsoTime
    detected_at: IsoTime
    acked: bool = Field(False, description="An operator acknowledged (or labelled) it.")
    muted: bool = Field(False, description="Its type and dimensions are muted: no alert is sent.")
    label: Literal["true_alarm", "false_alarm", ""] = Field(
        "", description="The latest operator label, if any."
    )


class DetectionResult(ReadModel):
    """``POST /api/v1/anomalies/detect``: what one detection pass found."""

    now: IsoTime = Field(description="The clock the pass detected at.")
    seconds: float
    anomalies: dict[str, int] = Field(description="Anomalies found, by type.")
    new: list[Anomaly] = Field(description="Those never stored before this pass.")
    tests: dict[str, int] = Field(description="Statistical tests run, by detector.")
    timings: dict[str, float] = Field(description="Seconds spent, by detector.")


class AnomalyActionIn(BaseModel):
    """The body of ``POST /api/v1/anomalies/{anomaly_id}/actions``."""

    model_config = {"extra": "forbid"}

    action: Literal["ack", "mute", "unmute", "label"]
    label: Literal["", "true_alarm", "false_alarm"] = Field(
        "", description="For a label action: true_alarm (a real problem) or false_alarm."
    )
    note: str = Field("", max_length=4096, description="Why (kept with the record).")
    until: datetime | None = Field(None, description="For a mute: until when (default: for good).")


class AnomalyActionDone(ReadModel):
    """An action recorded on an anomaly (by the key that sent it)."""

    action_id: str
    action: str
    label: str
    anomaly_id: str
    type: str
    dimensions: dict[str, str]

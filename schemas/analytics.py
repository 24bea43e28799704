"""Derived tables of the analytics jobs: usage rollup, its state, anomalies.

Names here are the contract between the migration (``0003_usage.sql``), the
jobs that write the tables (``pipeline/jobs``) and the readers (HTTP API,
CLI, Grafana, users' own SQL in ``docs/queries.md``).
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "USAGE_TABLE",
    "USAGE_STATE_TABLE",
    "ANOMALIES_TABLE",
    "USAGE_DIMENSIONS",
    "USAGE_METRICS",
    "SPANS_LOST_NAME",
    "SPANS_LOST_COUNT",
    "SPANS_LOST_SCOPE",
    "IS_SPANS_LOST_SQL",
    "NOT_SPANS_LOST_SQL",
    "AnomalyType",
    "LATENCY_BUCKET_BASE",
    "latency_bucket_sql",
    "latency_quantile_sql",
]

LATENCY_BUCKET_BASE: Final = 1.05
"""Growth factor of the latency histogram buckets: bucket k holds 1.05^k <= ms < 1.05^(k+1)."""


def latency_bucket_sql(ms: str) -> str:
    """SQL: the histogram bucket (Int16) of a duration in milliseconds (below 0.01 ms: the 0.01 bucket)."""
    return f"toInt16(floor(log(greatest({ms}, 0.01)) / log({LATENCY_BUCKET_BASE})))"


def latency_quantile_sql(hist: str, level: float) -> str:
    """SQL: quantile ``level`` of a merged histogram (``sumMap`` of ``latency_ms_hist``), the bucket's
    geometric middle (within 2.5% of the true value); NaN for an empty histogram."""
    cum = f"arrayCumSum(mapValues({hist}))"
    idx = f"arrayFirstIndex(x -> x >= {level} * arraySum(mapValues({hist})), {cum})"
    return f"if(empty(mapKeys({hist})), nan, pow({LATENCY_BUCKET_BASE}, arrayElement(mapKeys({hist}), {idx}) + 0.5))"


USAGE_TABLE: Final = "usage_hourly"
"""Hourly usage per tenant x principal x agent x provider x model x kind x tool."""
USAGE_STATE_TABLE: Final = "usage_hourly_state"
"""Per (tenant, hour): the raw-span fingerprint the rollup of that hour was computed from."""
ANOMALIES_TABLE: Final = "anomalies"
"""Anomalies found by detection, one row per deterministic anomaly id."""

USAGE_DIMENSIONS: Final[dict[str, str]] = {
    "principal": "principal_id",
    "agent": "agent_name",
    "provider": "provider",
    "model": "model",
    "kind": "kind",
    "tool": "tool_name",
}
"""Public dimension name -> column of ``usage_hourly`` (and of ``spans``, except ``model``)."""

USAGE_METRICS: Final[tuple[str, ...]] = (
    "calls",
    "errors",
    "error_rate",
    "input_tokens",
    "output_tokens",
    "tokens",
    "cost_usd",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "latency_avg_ms",
    "spans_lost",
)
"""Metrics a usage query returns (and may order by). ``spans_lost``: spans the agents reported lost
before they reached the collector (``SPANS_LOST_NAME`` spans); never counted as calls."""

SPANS_LOST_NAME: Final = "agentledger.spans_lost"
"""Name of the span an agent sends to report spans it had to drop (``instrumentation/losses.py``)."""
SPANS_LOST_COUNT: Final = "agentledger.spans_lost.count"
"""Attribute of that span: how many spans were lost since the previous report."""
SPANS_LOST_SCOPE: Final = "agentledger.instrumentation"
"""Instrumentation scope the report spans come from (a user's span of the same name is activity)."""
IS_SPANS_LOST_SQL: Final = f"(name = '{SPANS_LOST_NAME}' AND scope_name = '{SPANS_LOST_SCOPE}')"
"""SQL over ``spans``: the row is a loss report, bookkeeping rather than agent activity."""
NOT_SPANS_LOST_SQL: Final = f"NOT {IS_SPANS_LOST_SQL}"
"""SQL over ``spans``: the row is agent activity. Reads meant for activity (trace list, patterns,
detectors) add it, so an agent that loses spans does not look busier or new for reporting it."""


class AnomalyType(str, enum.Enum):
    """What kind of anomaly a row records."""

    COST_SPIKE = "cost_spike"
    """Hourly cost of a dimension value far above its baseline (robust z-score)."""
    TOKENS_SPIKE = "tokens_spike"
    """Hourly tokens of a dimension value far above its baseline (robust z-score)."""
    VOLUME_SPIKE = "volume_spike"
    """Hourly call volume far above its baseline (robust z-score)."""
    LATENCY_SPIKE = "latency_spike"
    """Hourly median latency far above its baseline (robust z-score): a regression."""
    ERROR_RATE_SPIKE = "error_rate_spike"
    """Hourly error rate far above its baseline (robust z-score)."""
    SPAN_OUTLIER = "span_outlier"
    """Single spans whose latency or cost is extreme against their model's baseline."""
    ERROR_BURST = "error_burst"
    """Many errors in a few minutes, improbable under the baseline error rate (Poisson)."""
    FIRST_SEEN = "first_seen"
    """A principal, agent, model, provider or tool seen for the first time."""
    NEW_SEQUENCE = "new_sequence"
    """A tool-call sequence an agent never ran in the baseline window."""
    SENSITIVE_EGRESS = "sensitive_egress"
    """Spans that sent detected PII or secrets to an external model provider."""
    NEW_TOPIC = "new_topic"
    """A cluster of user inputs that fits no topic of the baseline."""
    MODEL_CHANGED = "model_changed"
    """A provider answered requests for a model with a model it never answered them with before."""
    COHORT = "cohort"
    """New principals sending near-duplicate (templated) prompts: a likely extraction campaign."""
    OFF_HOURS = "off_hours"
    """A principal active in an hour of day in which their baseline has (almost) no activity."""
    UNUSUAL_AGENT = "unusual_agent"
    """A principal running an agent they never ran in the baseline."""

"""Every default of the read API, defined once: page sizes, their maxima, time windows.

The routers declare their query parameters with these (``Query(default=..., le=...)``)
and the CLI its options, so a command asks the same thing of a server as of a data
directory, and the two cannot drift apart.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACCESS_LOG_LIMIT",
    "ACCESS_LOG_MAX",
    "ANOMALIES_LIMIT",
    "ANOMALIES_LOOKBACK_HOURS",
    "ANOMALIES_MAX",
    "CONTROLS_LIMIT",
    "CONTROLS_MAX",
    "DATASETS_LIMIT",
    "DATASETS_MAX",
    "DATASET_SPANS_LIMIT",
    "DATASET_SPANS_MAX",
    "DETECT_BASELINE_MAX_HOURS",
    "DETECT_WINDOW_MAX_HOURS",
    "FEEDBACK_LIMIT",
    "GRAPH_WINDOW_HOURS",
    "FEEDBACK_MAX",
    "INTENTS_LIMIT",
    "INTENTS_MAX",
    "PATTERNS_BASELINE_HOURS",
    "PATTERNS_BASELINE_MAX_HOURS",
    "PATTERNS_NGRAM",
    "PATTERNS_NGRAM_MAX",
    "PATTERNS_TOPICS_MAX",
    "PATTERNS_TOP",
    "PATTERNS_TOP_MAX",
    "PATTERNS_WINDOW_HOURS",
    "REPLAYS_LIMIT",
    "REPLAYS_MAX",
    "REPLAY_REQUESTS_LIMIT",
    "REPLAY_REQUESTS_MAX",
    "TRACES_LIMIT",
    "TRACES_MAX",
    "USAGE_ORDER_BY",
    "USAGE_TOP",
    "USAGE_TOP_MAX",
    "USAGE_WINDOW_HOURS",
]

# -- traces ------------------------------------------------------------------------------------

TRACES_LIMIT: Final = 20
"""Traces listed when the caller does not say how many (newest first)."""
TRACES_MAX: Final = 1000
"""Most traces one list answers."""

# -- access ------------------------------------------------------------------------------------

ACCESS_LOG_LIMIT: Final = 100
"""Access-log entries listed by default (newest first)."""
ACCESS_LOG_MAX: Final = 10_000
"""Most access-log entries one read answers."""

# -- analytics ---------------------------------------------------------------------------------

USAGE_WINDOW_HOURS: Final = 24
"""Usage range when no start is given: this many hours before its end (which defaults to now)."""
USAGE_TOP: Final = 20
"""Usage groups kept (the highest by ``order_by``); 0 asks for all."""
USAGE_TOP_MAX: Final = 10_000
"""Most usage groups one answer keeps."""
USAGE_ORDER_BY: Final = "cost_usd"
"""The usage metric groups are ranked by."""

GRAPH_WINDOW_HOURS: Final = 24
"""Range of the agent graph when no start is given: this many hours before its end."""

PATTERNS_WINDOW_HOURS: Final = 24
"""Current window of the patterns report when no start is given: this many hours before its end."""
PATTERNS_BASELINE_HOURS: Final = 168
"""Baseline of the patterns report: this many hours before the current window (a week)."""
PATTERNS_BASELINE_MAX_HOURS: Final = 24 * 366
"""Longest baseline (a year)."""
PATTERNS_NGRAM: Final = 3
"""Longest tool n-gram counted."""
PATTERNS_NGRAM_MAX: Final = 6
"""Longest tool n-gram that may be asked for."""
PATTERNS_TOP: Final = 10
"""N-grams kept per agent."""
PATTERNS_TOP_MAX: Final = 1000
"""Most n-grams per agent that may be asked for."""
PATTERNS_TOPICS_MAX: Final = 50
"""Most topics of user inputs that may be asked for (default: chosen by silhouette)."""

ANOMALIES_LIMIT: Final = 100
"""Anomalies listed (newest window first)."""
ANOMALIES_MAX: Final = 10_000
"""Most anomalies one list answers."""
ANOMALIES_LOOKBACK_HOURS: Final = 168
"""The CLI lists the anomalies of windows ending in the last this many hours (the API, unless
``since`` is given, every one)."""
DETECT_WINDOW_MAX_HOURS: Final = 24 * 31
"""Longest window an on-demand detection pass may examine."""
DETECT_BASELINE_MAX_HOURS: Final = 24 * 366
"""Longest baseline an on-demand detection pass may compare with."""

# -- feedback and datasets ---------------------------------------------------------------------

FEEDBACK_LIMIT: Final = 1000
"""Feedback items listed for a trace or span (newest first)."""
FEEDBACK_MAX: Final = 10_000
"""Most feedback items one list answers."""
DATASETS_LIMIT: Final = 50
"""Datasets listed (newest first)."""
DATASETS_MAX: Final = 1000
"""Most datasets one list answers."""
DATASET_SPANS_LIMIT: Final = 1000
"""Production spans of a dataset listed."""
DATASET_SPANS_MAX: Final = 100_000
"""Most spans of a dataset one list answers."""

# -- audit and replay --------------------------------------------------------------------------

REPLAYS_LIMIT: Final = 20
"""Stored drift reports listed (newest first)."""
REPLAYS_MAX: Final = 1000
"""Most drift reports one list answers."""
REPLAY_REQUESTS_LIMIT: Final = 50
"""Recorded LLM calls rebuilt for a filtered replay."""
REPLAY_REQUESTS_MAX: Final = 10_000
"""Most recorded calls one filtered replay rebuilds."""

# -- governance --------------------------------------------------------------------------------

INTENTS_LIMIT: Final = 100
"""Intents listed (newest first)."""
INTENTS_MAX: Final = 10_000
"""Most intents one list answers."""
CONTROLS_LIMIT: Final = 100
"""Run controls listed (newest first)."""
CONTROLS_MAX: Final = 10_000
"""Most run controls one list answers."""

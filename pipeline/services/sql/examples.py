"""Example queries an analyst starts from: the console's SQL page offers each one click away, and
``docs/queries.md`` prints them (a test holds the two equal and runs every one)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["EXAMPLES", "Example"]


class Example(NamedTuple):
    title: str
    why: str
    sql: str


EXAMPLES: tuple[Example, ...] = (
    Example(
        "Cost by agent and day",
        "Which agent spends what, day by day: the first question when costs move.",
        """SELECT toDate(start_time) AS day, agent_name,
       round(sum(cost_usd), 4) AS cost_usd,
       sum(input_tokens + output_tokens) AS tokens
FROM spans
WHERE start_time >= now() - INTERVAL 30 DAY
GROUP BY day, agent_name
ORDER BY day, cost_usd DESC""",
    ),
    Example(
        "Spend and errors per hour",
        "A time series to chart: cost, tokens and errors per hour.",
        """SELECT toStartOfHour(start_time) AS hour,
       round(sum(cost_usd), 4) AS cost_usd,
       sum(input_tokens + output_tokens) AS tokens,
       countIf(status_code = 'ERROR') AS errors
FROM spans
GROUP BY hour
ORDER BY hour""",
    ),
    Example(
        "Slowest tools",
        "Tool calls by p95 latency, with their error counts.",
        """SELECT tool_name, count() AS calls,
       round(quantile(0.5)(duration_ms), 1) AS p50_ms,
       round(quantile(0.95)(duration_ms), 1) AS p95_ms,
       countIf(status_code = 'ERROR') AS errors
FROM spans
WHERE tool_name != ''
GROUP BY tool_name
ORDER BY p95_ms DESC
LIMIT 20""",
    ),
    Example(
        "Models requested vs answered",
        "Did the provider answer with the model that was asked for (a pinned version)?",
        """SELECT request_model, response_model, count() AS calls,
       response_model != '' AND response_model != request_model AS differs
FROM spans
WHERE request_model != ''
GROUP BY request_model, response_model
ORDER BY request_model, calls DESC""",
    ),
    Example(
        "Principals by spend",
        "Who the agents acted for, by what it cost.",
        """SELECT principal_id, round(sum(cost_usd), 4) AS cost_usd,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       uniqExact(trace_id) AS runs
FROM spans
WHERE principal_id != ''
GROUP BY principal_id
ORDER BY cost_usd DESC
LIMIT 20""",
    ),
    Example(
        "Tokens per session",
        "The conversations that used the most tokens.",
        """SELECT session_id, min(start_time) AS started, uniqExact(trace_id) AS runs,
       sum(input_tokens + output_tokens) AS tokens,
       round(sum(cost_usd), 4) AS cost_usd
FROM spans
WHERE session_id != ''
GROUP BY session_id
ORDER BY tokens DESC
LIMIT 50""",
    ),
    Example(
        "New tools this week",
        "Tools an agent called for the first time in the last seven days.",
        """SELECT tool_name, min(start_time) AS first_seen, count() AS calls
FROM spans
WHERE tool_name != ''
GROUP BY tool_name
HAVING first_seen >= now() - INTERVAL 7 DAY
ORDER BY first_seen DESC""",
    ),
    Example(
        "Error rate by agent",
        "Which agents fail most often.",
        """SELECT agent_name, count() AS spans,
       countIf(status_code = 'ERROR') AS errors,
       round(errors / spans, 4) AS error_rate
FROM spans
GROUP BY agent_name
ORDER BY error_rate DESC""",
    ),
    Example(
        "Most retrieved documents",
        "What the retrievers handed the models most often, with the mean score.",
        """SELECT doc.id AS document, count() AS retrievals,
       round(avg(doc.score), 3) AS mean_score
FROM spans
ARRAY JOIN documents AS doc
GROUP BY document
ORDER BY retrievals DESC
LIMIT 20""",
    ),
)
"""The examples, in the order the page and ``docs/queries.md`` show them."""

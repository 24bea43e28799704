"""Spans lost in the agent: counted, warned about with totals, and reported to the collector.

Why: a span that never reaches the collector is a missing audit record, and
a missing record nobody knows about is worse than one that is counted. So a
loss (export queue and spool both full, the collector refusing a request for
good, a span that could not be redacted) is never silent:

- :class:`LossLedger` counts it per agent and reason;
- a warning with the totals is logged at the first loss and then at most every
  ``warn_every`` seconds (and once at exit);
- the export thread sends the counts to the collector as one small span per
  agent, ``agentledger.spans_lost`` with ``agentledger.spans_lost.count``, so the
  collector can show spans lost in the agent per agent and hour. A report that
  cannot be delivered is kept and added to the next one, not counted again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from agentledger.instrumentation.version import VERSION
from agentledger.schemas.attributes import AgentLedger as AL

__all__ = ["LOSS_SPAN", "LOST_COUNT", "LOST_REASONS", "LossLedger"]

logger = logging.getLogger("agentledger.instrumentation")

LOSS_SPAN = "agentledger.spans_lost"
LOST_COUNT = "agentledger.spans_lost.count"
LOST_REASONS = "agentledger.spans_lost.reasons"
LOST_SINCE = "agentledger.spans_lost.since_unix_nano"
_SCOPE = InstrumentationScope("agentledger.instrumentation", VERSION)


class LossLedger:
    """Counts lost spans per agent and reason; thread-safe; cheap (losses are rare)."""

    def __init__(self, default_agent: str = "", warn_every: float = 10.0) -> None:
        self.default_agent = default_agent
        self.warn_every = warn_every
        self.total = 0
        self.by_reason: Counter[str] = Counter()
        self.by_agent: Counter[str] = Counter()
        self._unreported: Counter[tuple[str, str]] = Counter()
        self._since = time.time_ns()
        self._lock = threading.Lock()
        self._warned_at = 0.0
        self._warned_total = 0

    def agent_of(self, span: ReadableSpan) -> str:
        try:
            return str((span.attributes or {}).get(AL.AGENT_NAME) or self.default_agent)
        except Exception:  # deferred attributes that fail to build: still a loss, of no agent
            return self.default_agent

    def add_spans(self, spans: Iterable[ReadableSpan], reason: str) -> None:
        """Count ``spans`` as lost for ``reason`` (report spans are not counted: see :meth:`restore`)."""
        agents = Counter(self.agent_of(s) for s in spans if s.name != LOSS_SPAN)
        for agent, n in agents.items():
            self.add(n, reason, agent)

    def add(self, n: int, reason: str, agent: str | None = None) -> None:
        if n <= 0:
            return
        agent = self.default_agent if agent is None else agent
        with self._lock:
            self.total += n
            self.by_reason[reason] += n
            self.by_agent[agent] += n
            self._unreported[(agent, reason)] += n
        self.maybe_warn()

    def maybe_warn(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.total == self._warned_total:
            return
        if not force and self._warned_total and now - self._warned_at < self.warn_every:
            return
        self._warned_at, self._warned_total = now, self.total
        logger.warning(
            "AgentLedger lost %d spans in this agent process so far (%s); by agent: %s",
            self.total,
            ", ".join(f"{reason}: {n}" for reason, n in self.by_reason.most_common()),
            ", ".join(f"{a or '(unnamed)'}: {n}" for a, n in self.by_agent.most_common()),
        )

    def report_spans(self, resource: Any) -> list[ReadableSpan]:
        """The counts not yet reported, as one ``agentledger.spans_lost`` span per agent (taken out)."""
        with self._lock:
            if not self._unreported:
                return []
            pending, self._unreported = self._unreported, Counter()
            since, self._since = self._since, time.time_ns()
        per_agent: dict[str, Counter[str]] = {}
        for (agent, reason), n in pending.items():
            per_agent.setdefault(agent, Counter())[reason] += n
        now = time.time_ns()
        out = []
        for agent, reasons in per_agent.items():
            attrs: dict[str, Any] = {
                LOST_COUNT: sum(reasons.values()),
                LOST_REASONS: tuple(f"{r}={n}" for r, n in sorted(reasons.items())),
                LOST_SINCE: since,
            }
            if agent:
                attrs[AL.AGENT_NAME] = agent
            ctx = SpanContext(
                random.getrandbits(128),
                random.getrandbits(64),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            out.append(
                ReadableSpan(
                    name=LOSS_SPAN,
                    context=ctx,
                    resource=resource,
                    attributes=attrs,
                    kind=SpanKind.INTERNAL,
                    start_time=since,
                    end_time=now,
                    instrumentation_scope=_SCOPE,
                )
            )
        return out

    def restore(self, reports: Iterable[ReadableSpan]) -> None:
        """Put back counts whose report span could not be delivered (sent with the next report)."""
        with self._lock:
            for span in reports:
                attrs = span.attributes or {}
                agent = str(attrs.get(AL.AGENT_NAME, ""))
                reasons = attrs.get(LOST_REASONS)
                for item in reasons if isinstance(reasons, (tuple, list)) else ():
                    reason, _, n = str(item).rpartition("=")
                    self._unreported[(agent, reason)] += int(n)
                if span.start_time is not None:
                    self._since = min(self._since, span.start_time)

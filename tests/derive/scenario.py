"""Several simulated days of agent traffic, with or without injected anomalies.

Written through the real path: OTLP requests built with ``bench.traffic.add_run``,
normalized by ``OtlpNormalizer`` and stored by ``StoreWriter``. Everything is
seeded, so a scenario is the same on every run.

Clean traffic: five principals, two agents with their usual tool sequences,
two models on two providers, ~3 runs per principal and hour (Poisson),
log-normal latency jitter, 1% tool errors, questions from four finance topics.

Injected (all in the last day, the detection window):

* ``cost_spike``: principal bob, one hour, 12 runs with 25x the prompt tokens;
* ``latency``: model claude-3-5-sonnet, three hours at 3x the latency;
* ``new_sequence``: the finance agent runs lookup > export_ledger > send_report, 4 times;
* ``error_burst``: the payables agent's match_purchase_order fails 8 times in 8 minutes;
* ``email``: three questions carry an e-mail address, sent to openai;
* ``new_use``: a new principal (mallory) asks, three times, an off-topic question.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.normalize import NormalizedBatch, OtlpNormalizer, SourcePosition
from agentledger.pipeline.store.writer import StoreWriter
from bench.traffic import add_run

START = datetime(2026, 3, 2, tzinfo=timezone.utc)
"""Midnight of the first simulated day."""
DAYS = 4
NOW = START + timedelta(days=DAYS)
"""Detection runs as of the end of the last day."""

FINANCE, PAYABLES = "finance-controls-agent", "payables-agent"
AGENTS = {
    FINANCE: {
        "model": "gpt-4o",
        "provider": "openai",
        "sequences": [("lookup_journal_entry",), ("lookup_journal_entry", "check_policy")],
    },
    PAYABLES: {
        "model": "claude-3-5-sonnet",
        "provider": "anthropic",
        "sequences": [("fetch_invoice", "match_purchase_order"), ("fetch_invoice",)],
    },
}
PRINCIPALS = {
    "alice@acme.example": FINANCE,
    "bob@acme.example": FINANCE,
    "carol@acme.example": FINANCE,
    "dave@acme.example": PAYABLES,
    "erin@acme.example": PAYABLES,
}
TOPICS = (
    "review the accrual reversal for journal entry {n} before the quarter close and confirm the reversal date",
    "is vendor invoice {n} approved for payment under the purchase order threshold and three way match",
    "check expense report {n} for travel and meals policy compliance and missing receipts",
    "should software project {n} costs be capitalised or expensed under the amortisation policy",
)
NEW_TOPIC = "write a funny birthday poem about my cat {n} with rhymes"
NEW_SEQUENCE = ("lookup_journal_entry", "export_ledger", "send_report")
EMAIL = "jane.doe@contoso.com"
MALLORY = "mallory@acme.example"

# injected anomalies: hour offsets from NOW (negative), chosen inside the last day
COST_SPIKE_HOUR = NOW - timedelta(hours=10)
LATENCY_HOURS = [NOW - timedelta(hours=h) for h in (7, 6, 5)]
NEW_SEQUENCE_HOUR = NOW - timedelta(hours=14)
ERROR_BURST_AT = NOW - timedelta(hours=3) + timedelta(minutes=21)
EMAIL_HOUR = NOW - timedelta(hours=18)
NEW_USE_HOUR = NOW - timedelta(hours=20)


@dataclass
class Scenario:
    """What was generated: the normalized batch (for independent sums) and the injected traces."""

    batches: list[NormalizedBatch] = field(default_factory=list)
    injected: dict[str, list[str]] = field(default_factory=dict)

    @cached_property
    def rows(self) -> list[dict[str, object]]:
        """Every generated span row, each span once."""
        out: dict[tuple[str, str], dict[str, object]] = {}
        for b in self.batches:
            for r in b.spans.to_pylist():
                out[(r["trace_id"], r["span_id"])] = r
        return list(out.values())


def _poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def _question(rng: random.Random, template: str) -> str:
    return template.format(n=rng.randrange(10_000))


def generate(
    store, *, inject: bool, days: int = DAYS, seed: int = 5, runs_per_hour: float = 3.0
) -> Scenario:
    """Write ``days`` days of traffic ending at ``NOW`` into ``store``; return what was written."""
    rng = random.Random(seed)
    normalizer = OtlpNormalizer()
    writer = StoreWriter(store)
    scenario = Scenario()
    start = NOW - timedelta(days=days)
    run = 0
    pending: list[tuple[ExportTraceServiceRequest, SourcePosition]] = []
    for hour_index in range(days * 24):
        hour = start + timedelta(hours=hour_index)
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        kv = rs.resource.attributes.add()
        kv.key, kv.value.string_value = "service.name", "finance-controls"
        scope = rs.scope_spans.add()
        scope.scope.name = "openinference.instrumentation.openai"
        hour_ns = int(hour.timestamp()) * 1_000_000_000

        def emit(principal: str, *, offset_s: float | None = None, **kwargs: object) -> str:
            nonlocal run
            agent = kwargs.pop("agent", PRINCIPALS.get(principal, FINANCE))
            spec = AGENTS[agent]  # type: ignore[index]
            kwargs.setdefault("tools", rng.choice(spec["sequences"]))
            kwargs.setdefault("question", _question(rng, rng.choice(TOPICS)))
            kwargs.setdefault("latency_scale", 1.0)
            if "tool_error" not in kwargs and rng.random() < 0.01:
                kwargs["tool_error"] = "upstream timeout"
            t = hour_ns + int((offset_s if offset_s is not None else rng.uniform(0, 3300)) * 1e9)  # noqa: B023 - emit is called within its hour
            trace = add_run(
                scope,  # noqa: B023
                rng,
                run,
                t,
                model=spec["model"],
                provider=spec["provider"],
                principal=principal,
                agent=agent,
                latency_jitter=0.15,
                **kwargs,
            )
            run += 1
            return trace

        slow = 3.0 if inject and hour in LATENCY_HOURS else 1.0
        for principal, agent in PRINCIPALS.items():
            for _ in range(_poisson(rng, runs_per_hour)):
                emit(principal, latency_scale=slow if agent == PAYABLES else 1.0)
        if inject:
            if hour == COST_SPIKE_HOUR:
                scenario.injected["cost_spike"] = [
                    emit("bob@acme.example", token_scale=25.0) for _ in range(12)
                ]
            if hour == NEW_SEQUENCE_HOUR:
                scenario.injected["new_sequence"] = [
                    emit("alice@acme.example", tools=NEW_SEQUENCE) for _ in range(4)
                ]
            if hour == ERROR_BURST_AT.replace(minute=0):
                scenario.injected["error_burst"] = [
                    emit(
                        "dave@acme.example",
                        tools=("fetch_invoice", "match_purchase_order"),
                        tool_error="PO service returned 500",
                        offset_s=ERROR_BURST_AT.minute * 60 + 50 * i,
                    )
                    for i in range(8)
                ]
            if hour == EMAIL_HOUR:
                scenario.injected["email"] = [
                    emit(
                        "carol@acme.example",
                        question=f"please forward the approval for invoice {i} to {EMAIL} "
                        "and check the purchase order threshold",
                    )
                    for i in range(3)
                ]
            if hour == NEW_USE_HOUR:
                scenario.injected["new_use"] = [
                    emit(MALLORY, agent=FINANCE, question=_question(rng, NEW_TOPIC))
                    for _ in range(3)
                ]
        pending.append((req, SourcePosition("default", hour_ns, "test", 0, hour_index)))
        if len(pending) == 24 or hour_index == days * 24 - 1:  # one insert per simulated day
            batch = normalizer.normalize(pending)
            writer.write(batch, f"scenario-{seed}-{hour_index}")
            scenario.batches.append(batch)
            pending = []
    return scenario

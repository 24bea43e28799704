"""Many replays against one candidate summed up as a drift report, so that switching models
can be run as a regression test."""

from __future__ import annotations

import re
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from agentledger.pipeline.services.recorded import iso
from agentledger.pipeline.services.replay.answers import Diff
from agentledger.pipeline.services.replay.rebuild import RebuiltRequest
from agentledger.pipeline.services.replay.send import (
    ReplayOutcome,
    Sender,
    replay_request,
    send_request,
)

__all__ = ["DriftReport", "replay_many", "summarize"]


@dataclass
class DriftReport:
    """The outcome of replaying many recorded calls against one candidate."""

    run_id: str
    tenant: str
    created_at_ns: int
    candidate_model: str
    base_url: str
    filter: dict[str, Any]
    outcomes: list[ReplayOutcome]
    summary: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tenant": self.tenant,
            "created_at": iso(self.created_at_ns),
            "candidate_model": self.candidate_model,
            "base_url": self.base_url,
            "filter": self.filter,
            "summary": self.summary,
            "outcomes": [o.as_dict() for o in self.outcomes],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, tenant: str | None = None) -> DriftReport:
        """A report as ``as_dict`` wrote it (``tenant`` overrides the one it names); the summary is recomputed."""
        outcomes = [ReplayOutcome.from_dict(o) for o in d.get("outcomes", [])]
        run_id = str(d["run_id"])
        if not re.fullmatch(r"[0-9a-f]{32}", run_id):
            raise ValueError(f"run_id {run_id!r} is not 32 lowercase hex digits")
        created = d.get("created_at")
        return cls(
            run_id,
            tenant or d["tenant"],
            _ns_of(created) if created else time.time_ns(),
            d.get("candidate_model", ""),
            d.get("base_url", ""),
            dict(d.get("filter") or {}),
            outcomes,
            summarize(outcomes),
        )


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarize(outcomes: list[ReplayOutcome], worst: int = 5) -> dict[str, Any]:
    """Agreement on tool choice and arguments, the text-similarity distribution, and the worst cases."""
    done = [o for o in outcomes if o.diff is not None]
    sims = [o.diff.text_similarity for o in done if o.diff is not None]
    n = len(done)

    def share(pred: Callable[[Diff], bool]) -> float | None:
        return (
            round(sum(1 for o in done if o.diff is not None and pred(o.diff)) / n, 6) if n else None
        )

    ranked = sorted(
        done,
        key=lambda o: (o.diff.same_tools, o.diff.same_arguments, o.diff.text_similarity),  # type: ignore[union-attr]
    )[:worst]
    return {
        "replayed": n,
        "errors": len(outcomes) - n,
        "drifted": sum(1 for o in done if o.diff is not None and o.diff.drift),
        "tool_agreement": share(lambda d: d.same_tools),
        "argument_agreement": share(lambda d: d.same_arguments),
        "inexact_requests": sum(1 for o in outcomes if not o.request.exact),
        "text_similarity": {
            "mean": round(statistics.fmean(sims), 6) if sims else None,
            "min": min(sims) if sims else None,
            "p10": _quantile(sims, 0.10),
            "p50": _quantile(sims, 0.50),
            "p90": _quantile(sims, 0.90),
        },
        "worst": [
            {
                "span_id": o.request.span_id,
                "trace_id": o.request.trace_id,
                **(o.diff.as_dict() if o.diff else {}),
                "recorded_tools": [c for c, _ in o.request.recorded.tool_calls],
                "replayed_tools": [c for c, _ in o.replayed.tool_calls] if o.replayed else [],
                "recorded_text": o.request.recorded.text[:300],
                "replayed_text": (o.replayed.text if o.replayed else "")[:300],
            }
            for o in ranked
            if o.diff is not None and o.diff.drift
        ],
        "error_spans": [
            {"span_id": o.request.span_id, "error": o.error} for o in outcomes if o.error
        ][:worst],
    }


def replay_many(
    requests: list[RebuiltRequest],
    *,
    tenant: str,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    filter: dict[str, Any] | None = None,
    timeout: float = 120.0,
    sender: Sender = send_request,
) -> DriftReport:
    """Replay every request (one after another) against the candidate and sum up the drift."""
    outcomes = [
        replay_request(
            r, model=model, base_url=base_url, api_key=api_key, timeout=timeout, sender=sender
        )
        for r in requests
    ]
    return DriftReport(
        uuid.uuid4().hex,
        tenant,
        time.time_ns(),
        model or "",
        base_url or "",
        dict(filter or {}),
        outcomes,
        summarize(outcomes),
    )


def _ns_of(iso_text: str) -> int:
    whole, _, frac = iso_text.rstrip("Z").partition(".")
    seconds = int(
        datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    )
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])

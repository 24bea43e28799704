"""How well does detection catch what matters, and at what false-alarm rate? A labelled evaluation.

Run: ``.venv/bin/python -m bench.detection`` (about two to four minutes on two cores).

Method. ``bench/detection_traffic.py`` generates a week and a day of
multi-agent traffic (seasonal, noisy, with its own regular users) and, in the
last day, the stories of ``SCHEDULE``: three of every kind, of known sizes.
The traffic goes through the real path (OTLP protobuf -> ``OtlpNormalizer``
-> ``StoreWriter`` -> chDB) with back-dated timestamps: the baseline days in
one batch a day, then the test day hour by hour, with a detection pass
(``AnomalyDetectionJob``, window one hour, baseline seven days) at the end of
every hour, as the scheduler would run it with an hourly interval. The same
is done a second time without the stories (a different random day of the
same population): every anomaly found there is a false alarm.

Scoring. An anomaly *matches* a story when its window overlaps the story's
hour and it names one of the story's traces (example traces) or one of its
key values (agent, model, principals) in its dimensions.

* recall of a kind: share of its stories matched by an anomaly of the kind's
  own types (``OWN_TYPES``: a campaign found only as a volume spike does not
  count);
* precision of a kind: share of the anomalies of its own types that match a
  story (of that kind, or another story: a true alarm of another shape);
* time to detect: from the story's start to the end of the pass that first
  reported it (a pass runs at the end of each hour: the interval is 60 min);
* false alarms per agent-day: anomalies of the clean run / (agents x days).

Operator labels: after the injected run every anomaly is labelled true or
false alarm (a record of kind ``anomaly_label``, as an operator would), and
precision per anomaly type is read back from those labels
(``labels.label_precision``): the path by which real operators' labels
become precision figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from agentledger.pipeline.derive import AnomalyDetectionJob, JobSettings
from agentledger.pipeline.derive.labels import label_anomaly, label_precision
from agentledger.pipeline.normalize import OtlpNormalizer, SourcePosition
from agentledger.pipeline.store import migrate
from agentledger.pipeline.store.embedded import EmbeddedStore
from agentledger.pipeline.store.writer import StoreWriter
from bench.detection_traffic import AGENTS, KINDS, Story, Traffic, default_stories

__all__ = ["OWN_TYPES", "Evaluation", "evaluate", "main", "matches", "score"]

TEST_DAY = datetime(2026, 3, 11, tzinfo=timezone.utc)
"""A Wednesday; the baseline week before it has a weekend."""
INTERVAL = timedelta(hours=1)
OWN_TYPES: dict[str, set[str]] = {
    "extraction_campaign": {"cohort"},
    "new_sequence": {"new_sequence"},
    "new_topic": {"new_topic"},
    "token_spike": {"tokens_spike", "cost_spike"},
    "error_burst": {"error_burst", "error_rate_spike"},
    "latency_burst": {"latency_spike", "span_outlier"},
    "model_change": {"model_changed"},
    "sensitive_egress": {"sensitive_egress"},
    "off_hours": {"off_hours", "unusual_agent"},
}
"""The anomaly types that count as finding a story of each kind."""


def settings() -> JobSettings:
    return JobSettings(
        window_hours=1, baseline_hours=7 * 24, internal_providers="internal-vllm", interval_s=0
    )


@dataclass
class Evaluation:
    """Detections of one run: (end of the pass that first reported it, anomaly record)."""

    stories: list[Story]
    detections: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    label_precision: dict[str, dict[str, float]] = field(default_factory=dict)


def _when(value: str) -> datetime:
    return datetime.fromisoformat(value)


def matches(anomaly: dict[str, Any], story: Story) -> bool:
    """Overlapping windows, and a shared trace or a story value among the anomaly's dimensions."""
    assert story.start is not None
    start, end = _when(anomaly["window_start"]), _when(anomaly["window_end"])
    if not (start < story.start + INTERVAL and end > story.start):
        return False
    if story.traces & set(anomaly["example_trace_ids"]):
        return True
    return any(v in story.values for v in anomaly["dimensions"].values())


def evaluate(
    store: EmbeddedStore, *, inject: bool, seed: int = 11, baseline_days: int = 8
) -> Evaluation:
    """Generate and ingest the traffic, run the hourly passes over the test day, collect detections."""
    stories = default_stories() if inject else []
    start = TEST_DAY - timedelta(days=baseline_days)
    traffic = Traffic(start, TEST_DAY, stories, seed=seed)
    normalizer, writer = OtlpNormalizer(), StoreWriter(store)
    ev = Evaluation(stories)
    t0 = time.monotonic()

    def ingest(hours: list[datetime], tag: str) -> None:
        pending = [
            (traffic.hour(h), SourcePosition("default", int(h.timestamp()) * 10**9, "bench", 0, i))
            for i, h in enumerate(hours)
        ]
        writer.write(normalizer.normalize(pending), tag)

    for day in range(baseline_days):
        d0 = start + timedelta(days=day)
        ingest([d0 + timedelta(hours=h) for h in range(24)], f"baseline-{day}")
    ev.seconds["ingest_baseline"] = time.monotonic() - t0
    job = AnomalyDetectionJob(settings(), tenant="default")
    detect = 0.0
    for h in range(24):
        hour = TEST_DAY + timedelta(hours=h)
        ingest([hour], f"test-{h}")
        t1 = time.monotonic()
        result = job.run(store, hour + INTERVAL)
        detect += time.monotonic() - t1
        ev.detections.extend((hour + INTERVAL, a) for a in result.info["new"])
    ev.seconds["detect_24_passes"] = detect
    if stories:  # the operator's turn: label every alarm, then read precision back from the labels
        last = TEST_DAY + timedelta(days=1)
        for _, a in ev.detections:
            true = any(matches(a, s) for s in stories)
            label = "true_alarm" if true else "false_alarm"
            label_anomaly(store, "default", a, "label", label=label, actor="bench", now=last)
        ev.label_precision = label_precision(store, "default")
    return ev


def score(injected: Evaluation, clean: Evaluation, days: int = 1) -> dict[str, Any]:
    """Per-kind recall, precision and time to detect; false alarms per agent-day of the clean run."""
    kinds: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        own = OWN_TYPES[kind]
        stories = [s for s in injected.stories if s.kind == kind]
        ttd, missed = [], []
        for s in stories:
            hits = [t for t, a in injected.detections if a["type"] in own and matches(a, s)]
            if hits:
                ttd.append((min(hits) - s.start).total_seconds() / 60)  # type: ignore[operator]
            else:
                missed.append(s.name)
        alarms = [a for _, a in injected.detections if a["type"] in own]
        same = sum(1 for a in alarms if any(matches(a, s) for s in stories))
        other = sum(
            1
            for a in alarms
            if not any(matches(a, s) for s in stories)
            and any(matches(a, s) for s in injected.stories)
        )
        kinds[kind] = {
            "stories": len(stories),
            "recall": len(ttd) / len(stories) if stories else None,
            "alarms": len(alarms),
            "true_same_kind": same,
            "true_other_story": other,
            "precision": (same + other) / len(alarms) if alarms else None,
            "ttd_median_min": statistics.median(ttd) if ttd else None,
            "ttd_max_min": max(ttd) if ttd else None,
            "missed": missed,
        }
    unmatched = [
        a for _, a in injected.detections if not any(matches(a, s) for s in injected.stories)
    ]
    agent_days = len(AGENTS) * days
    return {
        "kinds": kinds,
        "injected_run": {
            "anomalies": len(injected.detections),
            "unmatched": len(unmatched),
            "unmatched_by_type": dict(Counter(a["type"] for a in unmatched)),
            "unmatched_details": [a["detail"] for a in unmatched][:20],
        },
        "clean_run": {
            "anomalies": len(clean.detections),
            "false_alarms_per_agent_day": len(clean.detections) / agent_days,
            "by_type": dict(Counter(a["type"] for _, a in clean.detections)),
            "details": [a["detail"] for _, a in clean.detections][:20],
        },
        "labelled_precision_by_type": injected.label_precision,
        "seconds": {"injected": injected.seconds, "clean": clean.seconds},
    }


def _fmt(v: float | None, pattern: str = "{:.2f}") -> str:
    return "-" if v is None else pattern.format(v)


def render(result: dict[str, Any]) -> str:
    lines = [
        f"{'story kind':<22}{'n':>3}{'recall':>8}{'precision':>11}{'alarms':>8}{'ttd med':>9}{'ttd max':>9}  missed",
    ]
    for kind, k in result["kinds"].items():
        lines.append(
            f"{kind:<22}{k['stories']:>3}{_fmt(k['recall']):>8}{_fmt(k['precision']):>11}{k['alarms']:>8}"
            f"{_fmt(k['ttd_median_min'], '{:.0f}m'):>9}{_fmt(k['ttd_max_min'], '{:.0f}m'):>9}  {', '.join(k['missed'])}"
        )
    c, i = result["clean_run"], result["injected_run"]
    lines.append(
        f"clean traffic: {c['anomalies']} anomalies = {c['false_alarms_per_agent_day']:.2f} false alarms per "
        f"agent-day {c['by_type'] or ''}"
    )
    lines.extend(f"  - {d}" for d in c["details"])
    lines.append(
        f"injected traffic: {i['anomalies']} anomalies, {i['unmatched']} matching no story {i['unmatched_by_type'] or ''}"
    )
    lines.extend(f"  - {d}" for d in i["unmatched_details"])
    labelled = result["labelled_precision_by_type"]
    lines.append(
        "precision from operator labels (anomaly_label records), by type: "
        + ", ".join(
            f"{t} {v['precision']:.2f} ({v['true_alarm']:.0f}/{v['true_alarm'] + v['false_alarm']:.0f})"
            for t, v in sorted(labelled.items())
        )
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--baseline-days", type=int, default=8)
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="chDB directory (default: a temp dir)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data_dir or Path(tmp)
        runs = {}
        for inject in (True, False):
            store = EmbeddedStore(path, database=f"detection_{uuid.uuid4().hex[:8]}")
            try:
                migrate(store)
                runs[inject] = evaluate(
                    store,
                    inject=inject,
                    seed=args.seed + (0 if inject else 1),
                    baseline_days=args.baseline_days,
                )
            finally:
                store.command(f"DROP DATABASE IF EXISTS {store.database}")
                store.close()
    result = score(runs[True], runs[False])
    print(json.dumps(result, indent=2, default=str) if args.json else render(result))
    ok = (
        all(
            (k["recall"] or 0) >= 0.9 and (k["precision"] or 0) >= 0.8
            for k in result["kinds"].values()
        )
        and result["clean_run"]["false_alarms_per_agent_day"] <= 1.0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

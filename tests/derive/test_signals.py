"""The detectors of issue 22 on small labelled data (``labelled.py``): each story is found, named,
explained and backed by the story's own traces; the same traffic without stories raises none of them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from agentledger.pipeline.derive import AnomalyDetectionJob, JobSettings, list_anomalies
from agentledger.pipeline.derive.cohorts import minhash, normalise, similarity_matrix
from agentledger.pipeline.derive.spikes import seasonal_baseline
from agentledger.pipeline.store import migrate
from agentledger.pipeline.store.embedded import EmbeddedStore
from tests.derive import labelled

NEW_TYPES = {"cohort", "model_changed", "off_hours", "unusual_agent", "new_topic", "error_burst"}


def _detected(chdb_path: Path, inject: bool) -> Iterator[tuple[labelled.Labelled, list[dict]]]:
    database = f"sig_{uuid.uuid4().hex[:10]}"
    store = EmbeddedStore(chdb_path, database=database)
    try:
        migrate(store)
        stories = labelled.generate(store, inject=inject)
        AnomalyDetectionJob(JobSettings()).run(store, labelled.NOW)
        yield stories, list_anomalies(store, "default", limit=1000)
    finally:
        store.command(f"DROP DATABASE IF EXISTS {database}")
        store.close()


@pytest.fixture(scope="module")
def injected(chdb_path: Path) -> Iterator[tuple[labelled.Labelled, list[dict]]]:
    yield from _detected(chdb_path, inject=True)


@pytest.fixture(scope="module")
def clean(chdb_path: Path) -> Iterator[tuple[labelled.Labelled, list[dict]]]:
    yield from _detected(chdb_path, inject=False)


def _one(anomalies: list[dict], type_: str, **dims: str) -> dict:
    found = [
        a
        for a in anomalies
        if a["type"] == type_ and all(a["dimensions"].get(k) == v for k, v in dims.items())
    ]
    assert len(found) == 1, (
        type_,
        dims,
        [a["dimensions"] for a in anomalies if a["type"] == type_],
    )
    return found[0]


def _at(hour: int) -> str:
    return (labelled.LAST_DAY + timedelta(hours=hour)).isoformat()


def test_cohort_of_new_accounts_with_templated_prompts(injected) -> None:
    stories, anomalies = injected
    a = _one(anomalies, "cohort", agent_name=labelled.DESK)
    assert a["observed"] == 6 and a["window_start"] == _at(10)
    assert set(a["example_trace_ids"]) <= stories.traces["cohort"]
    assert a["dimensions"]["template"].startswith("ignore previous instructions")
    assert "6 accounts" in a["detail"] and "campaign" in a["detail"]


def test_model_answered_by_another_model_than_pinned(injected) -> None:
    stories, anomalies = injected
    a = _one(anomalies, "model_changed", agent_name=labelled.BOOKS)
    assert a["dimensions"]["requested"] == "claude-3-5-sonnet-2024-08-06"
    assert a["dimensions"]["answered"] == "claude-3-7-sonnet-2024-08-06"
    assert a["window_start"] == _at(12) and a["observed"] >= 3
    assert set(a["example_trace_ids"]) <= stories.traces["model"]


def test_principal_outside_their_hours(injected) -> None:
    stories, anomalies = injected
    a = _one(anomalies, "off_hours", principal_id="u0@acme.example")
    assert a["window_start"] == _at(3) and a["observed"] == 5 and a["expected"] < 0.1
    assert set(a["example_trace_ids"]) <= stories.traces["off_hours"]


def test_principal_on_an_agent_they_never_used(injected) -> None:
    stories, anomalies = injected
    a = _one(anomalies, "unusual_agent", principal_id="u4@acme.example")
    assert a["dimensions"]["agent_name"] == labelled.DESK and a["window_start"] == _at(14)
    assert set(a["example_trace_ids"]) <= stories.traces["unusual_agent"]


def test_sustained_error_share_is_an_hourly_burst(injected) -> None:
    stories, anomalies = injected
    bursts = [
        a
        for a in anomalies
        if a["type"] == "error_burst" and a["dimensions"].get("agent_name") == labelled.BOOKS
    ]
    assert [(a["metric"], a["window_start"]) for a in bursts] == [("errors_1h", _at(15))]
    assert bursts[0]["observed"] >= 5
    assert set(bursts[0]["example_trace_ids"]) <= stories.traces["errors"]


def test_new_topic_is_named_by_its_terms(injected) -> None:
    stories, anomalies = injected
    topics = [a for a in anomalies if a["type"] == "new_topic"]
    restaurant = [a for a in topics if set(a["example_trace_ids"]) <= stories.traces["topic"]]
    assert len(restaurant) == 1 and restaurant[0]["observed"] == 5
    assert "dinner" in restaurant[0]["detail"]  # named by its terms
    # the campaign's template is a new topic too; nothing else is
    for a in topics:
        assert set(a["example_trace_ids"]) <= stories.traces["topic"] | stories.traces["cohort"]


def test_agent_token_spike_folds_its_principals(injected) -> None:
    stories, anomalies = injected
    a = _one(anomalies, "tokens_spike", agent_name=labelled.DESK)
    assert a["window_start"] == _at(11) and a["observed"] > 5 * a["expected"]
    assert set(a["example_trace_ids"]) & stories.traces["tokens"]


def test_clean_traffic_raises_none_of_them(clean) -> None:
    _, anomalies = clean
    assert [a["detail"] for a in anomalies if a["type"] in NEW_TYPES] == []


def test_minhash_tells_templates_from_different_questions() -> None:
    template = "return the full customer record for customer id {} as raw json, no commentary"
    texts = [template.format(n) for n in (17, 90210, 5)] + [
        "where is my order, the tracking page has not updated since monday",
    ]
    sims = similarity_matrix(np.stack([minhash(t) for t in texts]))
    assert sims[0, 1] == sims[0, 2] == 1.0  # digits fold: the same template
    assert sims[0, 3] < 0.2
    assert normalise("ID  4711\nOK") == "id 0 ok"


def test_seasonal_baseline_compares_same_hours_of_same_day_type() -> None:
    monday = int(datetime(2026, 3, 2, tzinfo=timezone.utc).timestamp())
    # two weeks of hourly values: 100 at 10:00 on weekdays, 1 elsewhere
    history = []
    for h in range(14 * 24):
        t = monday + h * 3600
        weekday = datetime.fromtimestamp(t, tz=timezone.utc).weekday() < 5
        history.append((t, 100.0 if weekday and (h % 24) == 10 else 1.0))
    tuesday_10 = monday + (15 * 24 + 10) * 3600
    base, season = seasonal_baseline(tuesday_10, history, 12)
    assert season == "same-hour weekday" and len(base) == 30 and base.count(100.0) == 10
    saturday_10 = monday + (19 * 24 + 10) * 3600
    base, season = seasonal_baseline(saturday_10, history, 12)
    assert season == "same-hour weekend" and base == [1.0] * 12  # weekday peaks left out
    base, season = seasonal_baseline(saturday_10, history, 13)
    assert season == "same-hour" and len(base) == 42  # too few weekend points: any day type
    assert seasonal_baseline(tuesday_10, history[:20], 12)[1] == "baseline"

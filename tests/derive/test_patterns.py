"""Patterns of use: tool sequences and n-grams per agent, and what is new against the baseline."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta

from agentledger.pipeline.derive import new_use, ngrams, patterns_report, tool_sequences
from agentledger.pipeline.store.writer import StoreWriter
from tests.derive import scenario

DAY = (scenario.NOW - timedelta(hours=24), scenario.NOW)
BEFORE = (scenario.NOW - timedelta(hours=96), scenario.NOW - timedelta(hours=24))


def _expected_sequences(rows: list[dict], start, end) -> Counter:
    tools: dict[str, list[tuple]] = defaultdict(list)
    agents: dict[str, str] = {}
    for r in rows:
        if start <= r["start_time"] < end:
            agents.setdefault(r["trace_id"], r["agent_name"])
            if r["kind"] == "TOOL":
                tools[r["trace_id"]].append((r["start_time"], r["tool_name"]))
    return Counter((agents[t], tuple(name for _, name in sorted(tools[t]))) for t in agents)


def test_sequences_are_counted_per_agent(injected) -> None:
    store, generated = injected
    got = {
        (s["agent"], tuple(s["sequence"])): s["traces"]
        for s in tool_sequences(store, "default", *DAY)
    }
    assert got == dict(_expected_sequences(generated.rows, *DAY))
    only = tool_sequences(store, "default", *DAY, agent=scenario.PAYABLES)
    assert {s["agent"] for s in only} == {scenario.PAYABLES}
    for s in only:
        assert s["example_trace_ids"] and s["first_seen"] >= DAY[0].isoformat()


def test_ngrams_are_weighted_by_traces() -> None:
    seqs = [
        {"agent": "a", "sequence": ["x", "y", "z"], "traces": 3},
        {"agent": "a", "sequence": ["x", "y"], "traces": 2},
    ]
    grams = {(tuple(g["ngram"])): g["count"] for g in ngrams(seqs, n_max=3)}
    assert (
        grams[("x",)] == 5
        and grams[("x", "y")] == 5
        and grams[("y", "z")] == 3
        and grams[("x", "y", "z")] == 3
    )


def test_new_use_names_what_the_baseline_never_had(injected) -> None:
    store, generated = injected
    found = new_use(store, "default", DAY, BEFORE)
    assert not found["baseline_empty"]
    (seq,) = found["sequences"]
    assert (seq["agent"], tuple(seq["sequence"]), seq["traces"]) == (
        scenario.FINANCE,
        scenario.NEW_SEQUENCE,
        4,
    )
    assert set(seq["example_trace_ids"]) <= set(generated.injected["new_sequence"])
    assert [t["value"] for t in found["tools"]] == ["export_ledger", "send_report"]
    (who,) = found["principals"]
    assert who["value"] == scenario.MALLORY and who["traces"] == 3
    assert set(who["example_trace_ids"]) == set(generated.injected["new_use"])
    assert found["models"] == found["agents"] == found["providers"] == []
    (topic,) = found["topics"]
    assert {"birthday", "poem", "cat"} <= set(topic["terms"]) and topic["traces"] == 3
    assert set(topic["example_trace_ids"]) == set(generated.injected["new_use"])


def test_clean_traffic_has_no_new_use(clean) -> None:
    store, _ = clean
    found = new_use(store, "default", DAY, BEFORE)
    assert {
        k: v
        for k, v in found.items()
        if isinstance(v, list) and v and k not in ("window", "baseline")
    } == {}


def test_nothing_is_new_without_a_baseline(injected) -> None:
    store, _ = injected
    empty = (scenario.START - timedelta(days=30), scenario.START - timedelta(days=29))
    found = new_use(store, "default", DAY, empty)
    assert found["baseline_empty"] and found["sequences"] == found["principals"] == []


def test_report_bundles_sequences_ngrams_topics_and_new_use(injected) -> None:
    store, _ = injected
    report = patterns_report(store, "default", DAY, BEFORE)
    assert report["sequences"] and report["ngrams"] and report["topics"]
    assert len(report["topics"]) == len(scenario.TOPICS)
    assert report["new_use"]["sequences"][0]["sequence"] == list(scenario.NEW_SEQUENCE)
    assert report["new_use"]["topics"]


def test_duplicates_do_not_change_sequences(store) -> None:
    generated = scenario.generate(store, inject=False, days=1, seed=31)
    before = tool_sequences(store, "default", scenario.START, scenario.NOW + timedelta(days=1))
    for i, batch in enumerate(generated.batches):
        StoreWriter(store).write(batch, f"again-{i}")
    after = tool_sequences(store, "default", scenario.START, scenario.NOW + timedelta(days=1))
    assert [(s["agent"], s["sequence"], s["traces"]) for s in after] == [
        (s["agent"], s["sequence"], s["traces"]) for s in before
    ]

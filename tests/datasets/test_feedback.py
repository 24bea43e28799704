"""Feedback: through the API onto the right span, from span evaluations, as export filters and
as preference pairs."""

from __future__ import annotations

import json
import subprocess
import sys

import httpx

from agentledger.pipeline.services import queries
from agentledger.pipeline.services.datasets import (
    ExportFilters,
    ExportRequest,
    FeedbackFilter,
    export_dataset,
    feedback_from_spans,
    list_feedback,
)
from tests.datasets import otlp
from tests.datasets.conftest import read_lines
from tests.datasets.openai_rules import openai_dpo_problems, preference_problems


def test_feedback_through_the_api_appears_on_the_right_span(server, run_agent) -> None:
    run = run_agent()
    spans = queries.get_trace(server.store, "default", run.trace_id)
    llm = [s for s in spans if s["kind"] == "LLM"]
    target = llm[1]  # the deciding call

    resp = httpx.post(
        f"{server.url}/v1/feedback",
        json={
            "span_id": target["span_id"],
            "name": "correctness",
            "score": 0.25,
            "label": "incorrect",
            "comment": "FIN-12 does not apply here",
            "annotator": "controller@acme.example",
        },
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["durable_in"] == "store" and resp.json()["accepted"] == 1
    trace_level = httpx.post(
        f"{server.url}/v1/feedback",
        json=[{"trace_id": run.trace_id, "name": "thumbs", "label": "up", "annotator": "end-user"}],
        timeout=30,
    )
    assert trace_level.status_code == 200

    on_span = httpx.get(
        f"{server.url}/api/v1/feedback", params={"span_id": target["span_id"]}, timeout=30
    ).json()
    assert len(on_span) == 1
    row = on_span[0]
    assert (
        row["trace_id"],
        row["span_id"],
        row["name"],
        row["score"],
        row["label"],
        row["annotator"],
        row["source"],
    ) == (
        run.trace_id,
        target["span_id"],
        "correctness",
        0.25,
        "incorrect",
        "controller@acme.example",
        "api",
    )
    on_trace = list_feedback(server.store, "default", trace_id=run.trace_id)
    assert sorted((r["span_id"], r["name"]) for r in on_trace) == sorted(
        [(target["span_id"], "correctness"), ("", "thumbs")]
    )
    assert list_feedback(server.store, "default", span_id=llm[0]["span_id"]) == []

    # a retry of the same feedback is stored once
    again = httpx.post(
        f"{server.url}/v1/feedback",
        json={
            "span_id": target["span_id"],
            "name": "correctness",
            "score": 0.25,
            "label": "incorrect",
            "comment": "FIN-12 does not apply here",
            "annotator": "controller@acme.example",
        },
        timeout=30,
    )
    assert again.json()["ids"] == resp.json()["ids"]
    assert len(list_feedback(server.store, "default", span_id=target["span_id"])) == 1

    bad = [
        {"name": "x", "score": 1},  # no target
        {"span_id": target["span_id"], "name": "x"},  # no value
        {"trace_id": "xyz", "name": "x", "score": 1},  # not an id
        {"span_id": target["span_id"], "name": "x", "score": "high"},
    ]
    for body in bad:
        assert httpx.post(f"{server.url}/v1/feedback", json=body, timeout=30).status_code == 422, (
            body
        )
    unknown = httpx.post(
        f"{server.url}/v1/feedback", json={"span_id": "ab" * 8, "name": "x", "score": 1}, timeout=30
    )
    assert unknown.status_code == 404


def test_cli_feedback_add_goes_through_the_server(server, run_agent) -> None:
    run = run_agent()
    llm_span = next(
        s for s in queries.get_trace(server.store, "default", run.trace_id) if s["kind"] == "LLM"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentledger.cli",
            "feedback",
            "add",
            "--url",
            server.url,
            "--span-id",
            llm_span["span_id"],
            "--name",
            "helpfulness",
            "--score",
            "0.9",
            "--comment",
            "clear",
            "--annotator",
            "qa@acme.example",
            "-m",
            "ticket=T-1",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["durable_in"] == "store"
    rows = list_feedback(server.store, "default", span_id=llm_span["span_id"])
    assert [
        (r["trace_id"], r["score"], r["annotator"], r["metadata"], r["source"]) for r in rows
    ] == [(run.trace_id, 0.9, "qa@acme.example", {"ticket": "T-1"}, "api")]
    listed = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentledger.cli",
            "feedback",
            "list",
            "--url",
            server.url,
            "--trace-id",
            run.trace_id,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert [r["name"] for r in json.loads(listed.stdout)] == ["helpfulness"]


def test_feedback_thresholds_select_examples(server, tmp_path) -> None:
    up = otlp.chat_span("Is the refund policy 30 days?", "Yes, 30 days from delivery.")
    down = otlp.chat_span("Can I return opened software?", "Yes, always.")
    unrated = otlp.chat_span("Do you ship to Norway?", "Yes, within 5 days.")
    rated_trace = otlp.chat_span("What is the warranty?", "Two years.")
    otlp.send(server.url, [up, down, unrated, rated_trace])
    feedback = [
        {"span_id": up.span_id, "trace_id": up.trace_id, "name": "thumbs", "label": "up"},
        {"span_id": down.span_id, "name": "thumbs", "label": "down"},
        {"span_id": up.span_id, "name": "quality", "score": 0.9},
        {"span_id": down.span_id, "name": "quality", "score": 0.2},
        {
            "trace_id": rated_trace.trace_id,
            "name": "quality",
            "score": 0.8,
        },  # trace-level: its spans inherit it
    ]
    assert httpx.post(f"{server.url}/v1/feedback", json=feedback, timeout=30).status_code == 200

    def exported(*filters: str) -> list[str]:
        out = tmp_path / f"e{len(list(tmp_path.iterdir()))}"
        export_dataset(
            server.store,
            "default",
            out,
            ExportRequest(
                validation_fraction=0.0,
                filters=ExportFilters(feedback=tuple(FeedbackFilter.parse(f) for f in filters)),
            ),
        )
        return sorted(json.loads(line)["span_id"] for line in read_lines(out / "members.jsonl"))

    assert exported("thumbs=up") == [up.span_id]
    assert exported("thumbs=down") == [down.span_id]
    # != negates =: the unrated stay (and a trace rated only on "quality" has no "thumbs")
    assert exported("thumbs!=up") == sorted([down.span_id, unrated.span_id, rated_trace.span_id])
    assert exported("quality>=0.5") == sorted([up.span_id, rated_trace.span_id])
    assert exported("quality<0.5") == [down.span_id]
    assert exported("quality>=0.5", "thumbs=up") == [up.span_id]
    assert exported("thumbs>=0.5") == [up.span_id]  # yes/no labels count as 1/0


def test_evaluations_carried_on_spans_become_feedback(server, tmp_path) -> None:
    evaluated = otlp.chat_span(
        "Summarise policy FIN-7.",
        "FIN-7 needs CFO approval above 1M.",
        extra={
            "annotation.correctness.score": 0.95,
            "annotation.correctness.label": "correct",
            "annotation.correctness.annotator": "reviewer@acme.example",
            "evaluation.hallucination.label": "hallucinated",
            "evaluation.hallucination.explanation": "cites a policy that does not exist",
            "eval.relevance.score": 0.7,
        },
    )
    evaluated.events.append(
        (
            "gen_ai.evaluation.result",
            {
                "gen_ai.evaluation.name": "groundedness",
                "gen_ai.evaluation.score.value": 0.4,
                "gen_ai.evaluation.explanation": "partly supported",
            },
        )
    )
    plain = otlp.chat_span("Hello?", "Hi.")
    otlp.send(server.url, [evaluated, plain])

    written, newest = feedback_from_spans(server.store, tenant="default")
    assert written == 4 and newest is not None
    rows = {r["name"]: r for r in list_feedback(server.store, "default", span_id=evaluated.span_id)}
    assert set(rows) == {"correctness", "hallucination", "relevance", "groundedness"}
    assert (
        rows["correctness"]["score"],
        rows["correctness"]["label"],
        rows["correctness"]["annotator"],
        rows["correctness"]["annotator_kind"],
    ) == (0.95, "correct", "reviewer@acme.example", "HUMAN")
    assert rows["hallucination"]["comment"] == "cites a policy that does not exist"
    assert rows["hallucination"]["annotator_kind"] == "LLM"
    assert rows["groundedness"]["score"] == 0.4 and rows["groundedness"]["source"] == "span_event"
    assert all(r["trace_id"] == evaluated.trace_id for r in rows.values())
    assert list_feedback(server.store, "default", span_id=plain.span_id) == []

    again, _ = feedback_from_spans(server.store, tenant="default")  # idempotent: same ids collapse
    assert again == 4
    assert len(list_feedback(server.store, "default", span_id=evaluated.span_id)) == 4
    later, _ = feedback_from_spans(
        server.store, newest.replace(year=newest.year + 1), tenant="default"
    )
    assert later == 0

    out = tmp_path / "good"
    export_dataset(
        server.store,
        "default",
        out,
        ExportRequest(
            validation_fraction=0.0,
            filters=ExportFilters(feedback=(FeedbackFilter.parse("hallucination!=hallucinated"),)),
        ),
    )
    assert [json.loads(m)["span_id"] for m in read_lines(out / "members.jsonl")] == [plain.span_id]


def test_preference_pairs_from_scores_and_corrections(server, tmp_path) -> None:
    system = "You answer refund questions."
    question = "Can I get a refund after 40 days?"
    best = otlp.chat_span(
        question,
        "Refunds are possible within 30 days; after 40 days we offer store credit.",
        system=system,
    )
    worst = otlp.chat_span(question, "Sure, any time!", system=system)
    middle = otlp.chat_span(question, "No.", system=system)
    corrected = otlp.chat_span(
        "How long does shipping take?", "Shipping takes a while.", system=system
    )
    lonely = otlp.chat_span(
        "Is there a warranty?", "Yes.", system=system
    )  # scored, but no alternative
    otlp.send(server.url, [best, worst, middle, corrected, lonely])
    feedback = [
        {"span_id": best.span_id, "name": "quality", "score": 0.9},
        {"span_id": worst.span_id, "name": "quality", "score": 0.1},
        {"span_id": middle.span_id, "name": "quality", "score": 0.5},
        {"span_id": lonely.span_id, "name": "quality", "score": 1.0},
        {
            "span_id": corrected.span_id,
            "name": "quality",
            "label": "bad",
            "correction": "Shipping takes 2-4 business days within the EU.",
        },
    ]
    assert httpx.post(f"{server.url}/v1/feedback", json=feedback, timeout=30).status_code == 200

    out = tmp_path / "pairs"
    manifest = export_dataset(
        server.store, "default", out, ExportRequest(format="preference", validation_fraction=0.0)
    )
    lines = read_lines(out / "train.jsonl")
    assert manifest["counts"]["examples"] == len(lines) == 2
    for line in lines:
        assert preference_problems(line) == [], line
    pairs = {json.loads(line)["prompt"][-1]["content"]: json.loads(line) for line in lines}
    refund = pairs[question]
    assert refund["prompt"][0] == {"role": "system", "content": system}
    assert refund["chosen"][0]["content"].startswith("Refunds are possible within 30 days")
    assert refund["rejected"][0]["content"] == "Sure, any time!"
    shipping = pairs["How long does shipping take?"]
    assert shipping["chosen"] == [
        {"role": "assistant", "content": "Shipping takes 2-4 business days within the EU."}
    ]
    assert shipping["rejected"] == [{"role": "assistant", "content": "Shipping takes a while."}]
    roles = sorted(
        (json.loads(m)["span_id"], json.loads(m)["role"]) for m in read_lines(out / "members.jsonl")
    )
    assert roles == sorted(
        [(best.span_id, "chosen"), (worst.span_id, "rejected"), (corrected.span_id, "rejected")]
    )

    dpo = export_dataset(
        server.store,
        "default",
        tmp_path / "dpo",
        ExportRequest(format="openai-dpo", validation_fraction=0.0),
    )
    dpo_lines = read_lines(tmp_path / "dpo" / "train.jsonl")
    assert dpo["counts"]["examples"] == 2
    for line in dpo_lines:
        assert openai_dpo_problems(line) == [], line
    margin = export_dataset(
        server.store,
        "default",
        tmp_path / "margin",
        ExportRequest(format="preference", validation_fraction=0.0, preference_margin=0.9),
    )
    assert (
        margin["counts"]["examples"] == 1
    )  # 0.9 - 0.1 is not above 0.9: only the correction pair remains

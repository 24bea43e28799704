"""The agent graph from spans the real instrumentation recorded: handoffs through a queue and a
synchronous call, normalized and stored in the real engine, read back as nodes and edges."""

from __future__ import annotations

import time
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from agentledger.instrumentation import acting_for, as_agent, inject_handoff, receive_handoff
from agentledger.pipeline.normalize import OtlpNormalizer, SourcePosition
from agentledger.pipeline.services.graph import agents_graph
from agentledger.pipeline.services.reads import ReadNotFound, ReadRejected
from agentledger.pipeline.store.writer import StoreWriter
from agentledger.schemas.attributes import GenAI


def _llm(recorded, tokens: tuple[int, int]) -> None:
    with recorded.tracer.start_as_current_span("chat gpt-4o") as span:
        span.set_attribute(GenAI.OPERATION_NAME, "chat")
        span.set_attribute(GenAI.REQUEST_MODEL, "gpt-4o")
        span.set_attribute(GenAI.INPUT_TOKENS, tokens[0])
        span.set_attribute(GenAI.OUTPUT_TOKENS, tokens[1])


def _store(store, spans: list[Any]) -> None:
    request = encode_spans(spans)
    batch = OtlpNormalizer().normalize(
        [(request, SourcePosition("acme", time.time_ns(), "t", 0, 1))]
    )
    StoreWriter(store).write(batch, f"graph-{time.time_ns()}")


@pytest.fixture
def run(recorded, store) -> dict[str, Any]:
    """planner hands three entries to executor over a queue (one fails), executor asks reviewer
    synchronously once; another tenant has a handoff of its own."""
    messages = []
    with acting_for("alice@acme.example"), as_agent("planner"):
        with recorded.tracer.start_as_current_span("plan"):
            _llm(recorded, (50, 5))
            for _ in range(3):
                messages.append(
                    inject_handoff({}, to_agent="executor", tracer_provider=recorded.provider)
                )
    for i, carrier in enumerate(messages):
        try:
            with receive_handoff(carrier, agent_name="executor", tracer_provider=recorded.provider):
                _llm(recorded, (100, 10))
                if i == 0:
                    review = inject_handoff(
                        {}, to_agent="reviewer", tracer_provider=recorded.provider
                    )
                    with receive_handoff(
                        review,
                        agent_name="reviewer",
                        synchronous=True,
                        tracer_provider=recorded.provider,
                    ):
                        _llm(recorded, (7, 3))
                if i == 2:
                    raise RuntimeError("ledger closed")
        except RuntimeError:
            pass
    _store(store, recorded.spans())
    planner_trace = format(recorded.named("plan").context.trace_id, "032x")
    return {"planner_trace": planner_trace}


def test_edges_count_handoffs_and_what_the_receiver_spent(run, store) -> None:
    graph = agents_graph(store, "acme", since=None, until=None)
    edges = {(e.source, e.target): e for e in graph.edges}
    assert set(edges) == {("planner", "executor"), ("executor", "reviewer")}
    to_executor = edges[("planner", "executor")]
    assert to_executor.handoffs == 3 and to_executor.errors == 1
    assert to_executor.error_rate == pytest.approx(1 / 3, abs=1e-3)
    # the executor's three LLM calls, not the reviewer's (its chain ends executor -> reviewer)
    assert (to_executor.input_tokens, to_executor.output_tokens) == (300, 30)
    assert to_executor.wait_ms_p50 is not None and to_executor.wait_ms_p50 >= 0
    assert to_executor.duration_ms_p50 is not None
    to_reviewer = edges[("executor", "reviewer")]
    assert (to_reviewer.handoffs, to_reviewer.input_tokens, to_reviewer.output_tokens) == (1, 7, 3)
    nodes = {n.agent: n for n in graph.nodes}
    assert set(nodes) == {"planner", "executor", "reviewer"}
    assert nodes["planner"].input_tokens == 50
    assert agents_graph(store, "other").edges == []  # another tenant sees nothing of it


def test_the_graph_of_one_trace_follows_its_run(run, store) -> None:
    graph = agents_graph(store, "acme", trace_id=run["planner_trace"])
    edges = {(e.source, e.target): e.handoffs for e in graph.edges}
    # the planner's trace holds only the sending side; the run id brings the receivers in
    assert edges == {("planner", "executor"): 3, ("executor", "reviewer"): 1}
    with pytest.raises(ReadNotFound):
        agents_graph(store, "other", trace_id=run["planner_trace"])
    with pytest.raises(ReadRejected):
        agents_graph(store, "acme", trace_id="not-a-trace")


def test_the_cli_prints_the_graph_as_table_json_mermaid_and_dot(
    run, store, chdb_path, monkeypatch
) -> None:
    import json

    from typer.testing import CliRunner

    from agentledger.cli import app

    monkeypatch.setenv("AGENTLEDGER_DATABASE", store.database)  # the session's data dir

    def cli(*args: str) -> str:
        result = CliRunner().invoke(app, [*args, "--data-dir", str(chdb_path), "--tenant", "acme"])
        assert result.exit_code == 0, result.output
        return result.output

    found = json.loads(cli("agents", "graph", "--json"))
    assert {(e["source"], e["target"], e["handoffs"]) for e in found["edges"]} == {
        ("planner", "executor", 3),
        ("executor", "reviewer", 1),
    }
    mermaid = cli("agents", "graph", "--format", "mermaid")
    assert mermaid.startswith("flowchart LR")
    assert '-->|"3 handoffs, 33% errors, $' in mermaid  # the cost of the executor's calls
    assert '-->|"1 handoff"| a2_reviewer' in mermaid
    dot = cli("agents", "graph", "--format", "dot")
    assert '"planner" -> "executor" [label="3 handoffs, 33% errors, $' in dot
    table = cli("agents", "graph")
    assert "planner" in table and "reviewer" in table
    by_trace = json.loads(cli("trace", run["planner_trace"], "--graph", "--json"))
    assert by_trace["trace_id"] == run["planner_trace"] and len(by_trace["edges"]) == 2

"""The pure parts of the step-2 pages, without a browser: the agent graph's layout, the replay
diff, a turn's text."""

from __future__ import annotations

from agentledger.collector.console.conversations import turn_text
from agentledger.collector.console.graph_layout import layout
from agentledger.collector.console.replays import answer_lines, side_by_side
from agentledger.pipeline.services.replay.answers import Answer
from agentledger.schemas.read.graph import AgentEdge, AgentGraph, AgentNode


def _node(name: str) -> AgentNode:
    return AgentNode(
        agent=name, spans=1, traces=1, errors=0, input_tokens=0, output_tokens=0, cost_usd=0.0
    )


def _edge(a: str, b: str) -> AgentEdge:
    return AgentEdge(
        source=a,
        target=b,
        handoffs=1,
        errors=0,
        error_rate=0.0,
        wait_ms_p50=None,
        wait_ms_p95=None,
        duration_ms_p50=None,
        duration_ms_p95=None,
        spans=1,
        input_tokens=0,
        output_tokens=0,
        cost_usd=0.0,
    )


def _graph(nodes: list[str], edges: list[tuple[str, str]]) -> AgentGraph:
    return AgentGraph(
        since=None,
        until=None,
        trace_id=None,
        nodes=[_node(n) for n in nodes],
        edges=[_edge(a, b) for a, b in edges],
    )


def test_agents_are_laid_out_left_to_right_in_handoff_order() -> None:
    drawing = layout(_graph(["c", "b", "a", "d"], [("a", "b"), ("b", "c"), ("a", "c"), ("a", "d")]))
    x = {box.node.agent: box.x for box in drawing.boxes}
    assert x["a"] < x["b"] < x["c"] and x["b"] == x["d"]
    assert all(not line.back for line in drawing.lines)
    assert all(0 <= b.x and b.x + b.w <= drawing.width for b in drawing.boxes)
    assert all(0 <= b.y and b.y + b.h <= drawing.height for b in drawing.boxes)
    same_column = [b for b in drawing.boxes if b.x == x["b"]]
    assert abs(same_column[0].y - same_column[1].y) >= same_column[0].h  # no overlap


def test_a_cycle_and_a_self_handoff_still_draw_and_an_edge_names_an_unseen_agent() -> None:
    drawing = layout(_graph(["a", "b"], [("a", "b"), ("b", "a"), ("b", "b"), ("b", "ghost")]))
    assert {box.node.agent for box in drawing.boxes} == {"a", "b", "ghost"}
    back = {(line.edge.source, line.edge.target) for line in drawing.lines if line.back}
    assert back == {("b", "a"), ("b", "b")}
    assert len(drawing.lines) == 4


def test_an_empty_graph_is_an_empty_drawing() -> None:
    drawing = layout(_graph([], []))
    assert drawing.boxes == [] and drawing.lines == []


def test_the_diff_pairs_changed_lines_and_marks_only_changed_words() -> None:
    rows = side_by_side(
        ["ESCALATE: route it.", "same line"], ["APPROVE: route it.", "same line", "new"]
    )
    assert [r.tag for r in rows] == ["replace", "equal", "insert"]
    assert [t for t, changed in rows[0].left if changed] == ["ESCALATE"]
    assert [t for t, changed in rows[0].right if changed] == ["APPROVE"]
    assert "".join(t for t, _ in rows[0].right) == "APPROVE: route it."
    assert rows[2].left == [] and rows[2].right == [("new", True)]
    assert [r.tag for r in side_by_side(["gone"], [])] == ["delete"]


def test_an_answer_compares_by_text_then_tool_calls() -> None:
    lines = answer_lines(Answer("one\ntwo", [("lookup", {"id": 1}), ("post", '{"x":2}')]))
    assert lines == ["one", "two", '→ lookup({"id": 1})', '→ post({"x":2})']


def test_a_turn_shows_the_last_user_message_and_the_assistant_answer() -> None:
    messages = (
        '[{"role":"system","content":"be brief"},{"role":"user","content":"first"},'
        '{"role":"assistant","content":"ok"},{"role":"user","content":"second?"}]'
    )
    assert turn_text({"kind": "messages", "content": messages}, "user") == "second?"
    assert turn_text({"kind": "messages", "content": messages}, "assistant") == "ok"
    assert turn_text({"kind": "text", "content": '"quoted"'}, "user") == "quoted"
    assert turn_text({"kind": "text", "content": "plain text"}, "user") == "plain text"
    assert turn_text({"kind": "text", "content": None}, "user") == ""
    assert turn_text(None, "user") == ""

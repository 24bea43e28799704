"""A layered, left-to-right layout of the agent graph, drawn by the server as SVG.

Why not a library: agent graphs are small (a handful to a few dozen agents), and a layered
layout of that size is a few dozen lines: layers by longest path from the agents nobody hands
work to (edges that close a cycle are set aside first), then a few barycenter sweeps to cut
crossings. Server-rendered SVG needs no script (the page works before any JavaScript runs and
under the console's strict CSP), its nodes are ordinary links (Tab reaches them, Enter opens
the agent's traces), and its colours come from the stylesheet's variables, so light and dark
follow the system setting. A vendored graph library (Cytoscape.js, ~400 KB) would buy
interactive panning that graphs of this size do not need.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentledger.schemas.read.graph import AgentEdge, AgentGraph, AgentNode

__all__ = ["Box", "Drawing", "Line", "layout"]

NODE_W, NODE_H = 190, 62
GAP_X, GAP_Y = 210, 36
MARGIN = 24


@dataclass(frozen=True)
class Box:
    """An agent, placed: its top-left corner and size."""

    node: AgentNode
    x: float
    y: float
    w: float = NODE_W
    h: float = NODE_H


@dataclass(frozen=True)
class Line:
    """A handoff edge: an SVG path, where its label sits, and whether it runs backwards."""

    edge: AgentEdge
    d: str
    label_x: float
    label_y: float
    back: bool


@dataclass(frozen=True)
class Drawing:
    """The whole picture: boxes, lines and the canvas size."""

    boxes: list[Box]
    lines: list[Line]
    width: float
    height: float


def _back_edges(names: list[str], edges: list[AgentEdge]) -> set[tuple[str, str]]:
    """Edges that close a cycle in a depth-first walk (self-loops included)."""
    out: dict[str, list[str]] = {n: [] for n in names}
    for e in edges:
        out.setdefault(e.source, []).append(e.target)
    state: dict[str, int] = {}
    back: set[tuple[str, str]] = set()
    for start in names:
        if start in state:
            continue
        stack = [(start, iter(out.get(start, [])))]
        state[start] = 1
        while stack:
            node, children = stack[-1]
            nxt = next(children, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(out.get(nxt, []))))
    return back


def layout(graph: AgentGraph) -> Drawing:
    """Place every agent in a column by how many handoffs lead to it, then every edge."""
    nodes = {n.agent: n for n in graph.nodes}
    for e in graph.edges:  # an edge names an agent the range holds no span of: draw it anyway
        for name in (e.source, e.target):
            nodes.setdefault(
                name,
                AgentNode(
                    agent=name,
                    spans=0,
                    traces=0,
                    errors=0,
                    input_tokens=0,
                    output_tokens=0,
                    cost_usd=0.0,
                ),
            )
    names = sorted(nodes, key=lambda n: (-nodes[n].spans, n))
    back = _back_edges(names, graph.edges)
    forward = [e for e in graph.edges if (e.source, e.target) not in back]
    layer = {n: 0 for n in names}
    for _ in range(len(names)):
        changed = False
        for e in forward:
            if layer[e.target] < layer[e.source] + 1:
                layer[e.target] = layer[e.source] + 1
                changed = True
        if not changed:
            break
    columns: dict[int, list[str]] = {}
    for n in names:
        columns.setdefault(layer[n], []).append(n)
    for _ in range(4):  # barycenter sweeps: an agent moves towards those that hand it work
        for col in sorted(columns)[1:]:
            rank = {n: i for c in columns.values() for i, n in enumerate(c)}
            preds = {n: [rank[e.source] for e in forward if e.target == n] for n in columns[col]}
            columns[col].sort(key=lambda n: (sum(preds[n]) / len(preds[n])) if preds[n] else 1e9)
    tallest = max(len(c) for c in columns.values()) if columns else 0
    height = MARGIN * 2 + tallest * NODE_H + max(tallest - 1, 0) * GAP_Y + 40
    boxes: dict[str, Box] = {}
    for col, members in columns.items():
        span = len(members) * NODE_H + (len(members) - 1) * GAP_Y
        top = (height - span) / 2
        for i, n in enumerate(members):
            boxes[n] = Box(nodes[n], MARGIN + col * (NODE_W + GAP_X), top + i * (NODE_H + GAP_Y))
    width = MARGIN * 2 + (max(columns, default=0) + 1) * NODE_W + max(columns, default=0) * GAP_X
    lines = [
        _line(e, boxes[e.source], boxes[e.target], (e.source, e.target) not in back)
        for e in graph.edges
    ]
    return Drawing(list(boxes.values()), lines, width, height)


def _line(edge: AgentEdge, a: Box, b: Box, forward: bool) -> Line:
    if edge.source == edge.target:  # a self-handoff: a loop above the box
        x, y = a.x + a.w / 2, a.y
        d = f"M{x - 30:.1f},{y:.1f} C{x - 40:.1f},{y - 50:.1f} {x + 40:.1f},{y - 50:.1f} {x + 30:.1f},{y:.1f}"
        return Line(edge, d, x, y - 44, True)
    if forward:
        x1, y1 = a.x + a.w, a.y + a.h / 2
        x2, y2 = b.x, b.y + b.h / 2
        mid = (x1 + x2) / 2
        d = f"M{x1:.1f},{y1:.1f} C{mid:.1f},{y1:.1f} {mid:.1f},{y2:.1f} {x2:.1f},{y2:.1f}"
        return Line(edge, d, mid, (y1 + y2) / 2 - 6, False)
    # backwards (a cycle): leave from the bottom, swing below both boxes, enter from the bottom
    x1, y1 = a.x + a.w / 2, a.y + a.h
    x2, y2 = b.x + b.w / 2, b.y + b.h
    low = max(y1, y2) + 40
    d = f"M{x1:.1f},{y1:.1f} C{x1:.1f},{low:.1f} {x2:.1f},{low:.1f} {x2:.1f},{y2:.1f}"
    return Line(edge, d, (x1 + x2) / 2, low - 4, True)

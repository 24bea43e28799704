"""Read models of the agent graph: agents as nodes, handoffs between them as edges."""

from __future__ import annotations

from agentledger.schemas.read._base import IsoTime, ReadModel

__all__ = ["AgentEdge", "AgentGraph", "AgentNode"]


class AgentNode(ReadModel):
    """One agent's activity in the range: every span it recorded, handed work or not."""

    agent: str
    spans: int
    traces: int
    errors: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class AgentEdge(ReadModel):
    """Work handed from ``source`` to ``target``.

    ``handoffs`` counts received handoffs (distinct handoff ids). ``wait_ms_*``: from the
    sender's handoff span to the receiver picking the work up (a queue's wait; null where the
    sender's span is not stored); ``duration_ms_*``: the receiver's ``invoke_agent`` span.
    ``error_rate``: handoffs whose receiving span ended in error. Tokens, cost and ``spans``
    sum every span the target recorded while working on what the source handed over (the spans
    whose delegation chain ends ``source -> target``).
    """

    source: str
    target: str
    handoffs: int
    errors: int
    error_rate: float
    wait_ms_p50: float | None
    wait_ms_p95: float | None
    duration_ms_p50: float | None
    duration_ms_p95: float | None
    spans: int
    input_tokens: int
    output_tokens: int
    cost_usd: float


class AgentGraph(ReadModel):
    """Agents and handoffs of ``[since, until)``, or of one trace and the runs it belongs to."""

    since: IsoTime | None
    until: IsoTime | None
    trace_id: str | None
    nodes: list[AgentNode]
    edges: list[AgentEdge]

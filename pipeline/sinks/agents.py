"""Keys bound to one agent: spans they send for another agent are not stored.

A key made with ``--agent A`` may send spans for agent ``A`` only (issue: a leaked agent key must
not write another agent's record). The agent of a span is what the normalizer found
(``agent_name``, propagated from the run's root); a span that names no agent at all is kept, as a
span of the key's agent. The check runs where spans are normalized: the embedded sink, which
answers the refused spans in the request's OTLP partial success, and the Kafka pipeline, which
learns the bound agent from the record's header and counts the spans it drops.
"""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["drop_foreign_agents", "foreign_agent_message"]


def drop_foreign_agents(
    spans: pa.Table, bound: Mapping[tuple[str, int, int], str]
) -> tuple[pa.Table, dict[tuple[str, int, int], list[str]]]:
    """``spans`` without the rows whose request (topic, partition, offset) was sent by a key bound
    to another agent than the row's; and, per such request, the agents it named."""
    if not any(bound.values()) or spans.num_rows == 0:
        return spans, {}
    positions = zip(
        spans.column("source_topic").to_pylist(),
        spans.column("source_partition").to_pylist(),
        spans.column("source_offset").to_pylist(),
    )
    agents = spans.column("agent_name").to_pylist()
    keep: list[bool] = []
    refused: dict[tuple[str, int, int], list[str]] = {}
    for position, agent in zip(positions, agents):
        allowed = bound.get(position, "")
        ok = not allowed or not agent or agent == allowed
        keep.append(ok)
        if not ok:
            refused.setdefault(position, []).append(agent)
    if all(keep):
        return spans, {}
    return spans.filter(pc.equal(pa.array(keep), True)), refused


def foreign_agent_message(bound: str, agents: list[str]) -> str:
    """The partial-success message of spans refused for naming another agent."""
    named = ", ".join(sorted(set(agents))[:5])
    return (
        f"{len(agents)} span(s) refused: this API key may send spans for agent {bound!r} only, "
        f"not {named}"
    )

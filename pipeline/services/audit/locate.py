"""Finding what to audit: the trace of a span or trace id, the actions in it, and the content
records their audit will read (fetched in one query, before any report is assembled)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from agentledger.pipeline.services.recorded import Trace, span_rows
from agentledger.pipeline.store import Store

__all__ = ["AuditError", "AuditNotFound", "load_trace"]


_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


class AuditError(Exception):
    """The audit cannot be answered."""


class AuditNotFound(AuditError, LookupError):
    """No span or trace with that id for the tenant."""


def load_trace(store: Store, tenant: str, ref: str) -> tuple[Trace, dict[str, Any] | None]:
    """The trace of a span id (16 hex digits; returned with that span) or a trace id (32)."""
    ref = ref.strip().lower()
    if _HEX16.match(ref):
        found = store.query_rows(
            "SELECT trace_id FROM spans WHERE tenant = {tenant:String} AND span_id = {span_id:String} "
            "LIMIT 1 SETTINGS max_threads = 1",
            {"tenant": tenant, "span_id": ref},
        )
        if not found:
            raise AuditNotFound(f"no span {ref} for tenant {tenant!r}")
        trace_id = found[0]["trace_id"]
    elif _HEX32.match(ref):
        trace_id = ref
    else:
        raise ValueError(
            f"{ref!r} is neither a span id (16 hex digits) nor a trace id (32 hex digits)"
        )
    spans = span_rows(store, tenant, "trace_id = {trace_id:String}", {"trace_id": trace_id})
    if not spans:
        raise AuditNotFound(f"no trace {trace_id} for tenant {tenant!r}")
    trace = Trace(store, tenant, trace_id, spans)
    return trace, (trace.by_id.get(ref) if _HEX16.match(ref) else None)


def _hashes_for(spans: Iterable[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for s in spans:
        out += [s["input_hash"], s["output_hash"]]
        out += [d["content_hash"] for d in s["documents"]]
        out += [c["arguments_hash"] for c in s["tool_calls"]]
        if s["tools_hash"]:
            out.append(s["tools_hash"])
    return out


def _actions(trace: Trace, target: dict[str, Any] | None, last: bool) -> list[dict[str, Any]]:
    """The span asked for; or a trace's tool calls (outermost TOOL spans: a governed TOOL span inside
    the agent's own is the same call), or its last LLM call when it made none."""
    if target is not None:
        return [target]
    tools = [
        s
        for s in trace.spans
        if s["kind"] == "TOOL" and not any(a["kind"] == "TOOL" for a in trace.ancestors(s))
    ]
    actions = tools or [s for s in trace.spans if s["kind"] == "LLM"][-1:]
    return actions[-1:] if last else actions

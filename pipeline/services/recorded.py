"""Reading a recorded call: the spans of a trace, their content records, and what an LLM span
records of its request (parameters, tools offered, system fingerprint, finish reasons).

Everything here reads the canonical columns the normalizer wrote once at ingest
(``agentledger.schemas.calls``); no convention's attribute names are known here. Audit and
replay both read recorded calls this way; it lives below both so that neither imports the
other. Rows are not read with ``FINAL`` (which would merge across the whole tenant's parts):
a span delivered twice is the same row twice, so copies are dropped by ``span_id`` here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from agentledger.pipeline.normalize.fields import parse_json
from agentledger.pipeline.services.span_logs import join_messages, span_logs
from agentledger.pipeline.store import Store
from agentledger.schemas.contents import ContentKind

__all__ = [
    "ANTHROPIC",
    "OPENAI",
    "Trace",
    "api_of",
    "iso",
    "llm_parameters",
    "offered_tools",
    "span_rows",
    "span_tools",
    "system_fingerprint",
    "tool_for_api",
]


OPENAI, ANTHROPIC = "openai", "anthropic"
"""Provider APIs a recorded call is rendered for: OpenAI chat completions (and every
OpenAI-compatible provider), Anthropic messages."""

_LLM = "LLM"
_JSON_KINDS = frozenset(
    {
        ContentKind.MESSAGES.value,
        ContentKind.TOOL_ARGUMENTS.value,
        ContentKind.TOOL_RESULT.value,
        ContentKind.TOOLS.value,
    }
)


_SPAN_COLUMNS = """
    trace_id, span_id, parent_span_id,
    toUnixTimestamp64Nano(start_time) AS start_ns, toUnixTimestamp64Nano(end_time) AS end_ns,
    name, kind, status_code, status_message, service, agent_name, session_id, user_id,
    principal_id, principal_chain, policy_id, provider, convention, request_model, response_model,
    system_fingerprint, input_tokens, output_tokens, tool_name, tool_call_id, tool_calls,
    input_hash, output_hash, documents, attributes, attribute_refs,
    request_params, tools_hash, finish_reasons, request_hash, raw_request_hash
"""


def iso(ns: int) -> str:
    """UTC ISO-8601 text of a Unix time in nanoseconds, all nine digits kept."""
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000))
        + f".{ns % 1_000_000_000:09d}Z"
    )


def span_rows(store: Store, tenant: str, cond: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Spans matching ``cond``, once each (a span delivered twice is stored twice), in the
    order they started: an audit's timeline is read off that order."""
    rows = store.query_rows(
        f"SELECT {_SPAN_COLUMNS} FROM spans WHERE tenant = {{tenant:String}} AND {cond}",
        {"tenant": tenant, **params},
    )
    seen: set[str] = set()
    out = []
    for row in rows:
        if row["span_id"] in seen:  # at-least-once: a re-delivered span is the same row again
            continue
        seen.add(row["span_id"])
        row["attributes"] = dict(row["attributes"])
        row["attribute_refs"] = dict(row["attribute_refs"])
        out.append(row)
    out.sort(key=lambda r: (r["start_ns"], r["end_ns"], r["span_id"]))
    return out


class Trace:
    """The spans of one trace and the content records they reference (fetched on demand, in bulk)."""

    def __init__(
        self, store: Store, tenant: str, trace_id: str, spans: list[dict[str, Any]]
    ) -> None:
        self.store, self.tenant, self.trace_id, self.spans = store, tenant, trace_id, spans
        self.by_id = {s["span_id"]: s for s in spans}
        self.contents: dict[str, dict[str, Any]] = {}
        self._join_logs()

    def _join_logs(self) -> None:
        """LLM calls that recorded no messages of their own get those of their GenAI log events
        (``span_logs``: the read-time join, whichever arrived first); the messages built are
        held as loaded content records. One query, and only when such a call is present."""
        wanting = [
            s
            for s in self.spans
            if s["kind"] == _LLM and not (s["input_hash"] and s["output_hash"])
        ]
        if not wanting:
            return
        logs = span_logs(
            self.store,
            self.tenant,
            {s["trace_id"] for s in wanting},
            [s["span_id"] for s in wanting],
        )
        if logs:
            self.contents.update(join_messages(wanting, logs, self._loaded))

    def _loaded(self, hashes: Iterable[str]) -> dict[str, dict[str, Any]]:
        wanted = list(hashes)
        self.fetch(wanted)
        return {h: self.contents[h] for h in wanted if h in self.contents}

    def fetch(self, hashes: Iterable[str]) -> None:
        """Load the content records of ``hashes`` not loaded yet (one primary-key query)."""
        wanted = sorted({h for h in hashes if h and h not in self.contents})
        if not wanted:
            return
        rows = self.store.query_rows(  # point look-ups by primary key: one thread is the fastest (~15x here)
            "SELECT hash, kind, content FROM contents "
            "WHERE tenant = {tenant:String} AND hash IN {hashes:Array(String)} SETTINGS max_threads = 1",
            {"tenant": self.tenant, "hashes": wanted},
        )
        for row in rows:
            self.contents.setdefault(row["hash"], row)
        for h in wanted:
            self.contents.setdefault(h, {"hash": h, "kind": "", "content": None})

    def content(self, h: str) -> Any:
        """The stored value under ``h`` (JSON kinds parsed), or None when absent."""
        record = self.contents.get(h) if h else None
        if record is None or record["content"] is None:
            return None
        text = record["content"]
        if record["kind"] in _JSON_KINDS:
            parsed = parse_json(text)
            return text if parsed is None else parsed
        return text

    def text(self, h: str) -> str | None:
        """The stored text under ``h`` as it is (not parsed), or None when absent."""
        record = self.contents.get(h) if h else None
        return None if record is None else record["content"]

    def ancestors(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        """Enclosing spans, innermost first."""
        out: list[dict[str, Any]] = []
        parent = self.by_id.get(span["parent_span_id"])
        while parent is not None and parent not in out:
            out.append(parent)
            parent = self.by_id.get(parent["parent_span_id"])
        return out

    def descendants(self, span: dict[str, Any]) -> list[dict[str, Any]]:
        children: dict[str, list[dict[str, Any]]] = {}
        for s in self.spans:
            children.setdefault(s["parent_span_id"], []).append(s)
        out, todo = [], list(children.get(span["span_id"], ()))
        while todo:
            s = todo.pop()
            out.append(s)
            todo.extend(children.get(s["span_id"], ()))
        return out


def llm_parameters(trace: Trace, span: dict[str, Any]) -> dict[str, Any]:
    """Request parameters of an LLM call (temperature, max_tokens...) under their canonical names
    (``request_params``); the model is reported on its own and left out here."""
    params = parse_json(span["request_params"])
    return params if isinstance(params, dict) else {}


def span_tools(trace: Trace, span: dict[str, Any]) -> list[Any]:
    """Tool definitions offered to the model, canonical (``tools_hash``; fetched into ``trace``)."""
    tools = trace.content(span["tools_hash"])
    return tools if isinstance(tools, list) else []


def api_of(span: dict[str, Any]) -> str:
    """The provider API a recorded call was made on: Anthropic's for Anthropic and Claude models,
    else OpenAI's chat completions (the API most providers also offer)."""
    provider = (span["provider"] or "").lower()
    model = (span["request_model"] or span["response_model"] or "").lower()
    return ANTHROPIC if provider == ANTHROPIC or model.startswith("claude") else OPENAI


def _function_of(tool: Any) -> dict[str, Any] | None:
    """Name, description, JSON schema (and ``strict``) of a canonical function tool; None for
    other tools (a provider's built-in ones, kept as recorded)."""
    if not isinstance(tool, dict) or tool.get("type") != "function" or "name" not in tool:
        return None
    return {k: v for k, v in tool.items() if k in ("name", "description", "parameters", "strict")}


def tool_for_api(tool: Any, api: str) -> Any:
    """A canonical tool definition as the provider's API takes it: ``{"type": "function",
    "function": {...}}`` (OpenAI chat) or ``{"name", "description", "input_schema"}``
    (Anthropic); tools that are not functions as recorded."""
    function = _function_of(tool)
    if function is None:
        return tool
    if api != ANTHROPIC:
        return {"type": "function", "function": function}
    out = {
        "name": function.get("name", ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def offered_tools(trace: Trace, span: dict[str, Any]) -> list[Any]:
    """Tool definitions offered to the model, as the provider's API took them (``api_of``)."""
    api = api_of(span)
    return [tool_for_api(t, api) for t in span_tools(trace, span)]


def system_fingerprint(trace: Trace, span: dict[str, Any]) -> str:
    """The provider's system fingerprint (the normalizer found it wherever the convention put it,
    a raw response included)."""
    return str(span["system_fingerprint"] or "")

"""Reading a recorded call: the spans of a trace, their content records, and what an LLM span
records of its request (parameters, tools offered, system fingerprint) whichever convention
recorded it.

Audit and replay both read recorded calls this way; it lives below both so that neither
imports the other. Rows are not read with ``FINAL`` (which would merge across the whole
tenant's parts): a span delivered twice is the same row twice, so copies are dropped by
``span_id`` here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from agentledger.pipeline.normalize.fields import parse_json
from agentledger.pipeline.store import Store
from agentledger.schemas.attributes import Audit as AU
from agentledger.schemas.attributes import GenAI as G
from agentledger.schemas.attributes import Langfuse as LF
from agentledger.schemas.attributes import OpenInference as OI
from agentledger.schemas.attributes import Traceloop as TL
from agentledger.schemas.contents import ContentKind

__all__ = [
    "Trace",
    "iso",
    "llm_parameters",
    "offered_tools",
    "span_rows",
    "system_fingerprint",
]


_JSON_KINDS = frozenset(
    {ContentKind.MESSAGES.value, ContentKind.TOOL_ARGUMENTS.value, ContentKind.TOOL_RESULT.value}
)


_SPAN_COLUMNS = """
    trace_id, span_id, parent_span_id,
    toUnixTimestamp64Nano(start_time) AS start_ns, toUnixTimestamp64Nano(end_time) AS end_ns,
    name, kind, status_code, status_message, service, agent_name, session_id, user_id,
    principal_id, principal_chain, policy_id, provider, convention, request_model, response_model,
    system_fingerprint, input_tokens, output_tokens, tool_name, tool_call_id, tool_calls,
    input_hash, output_hash, documents, attributes, attribute_refs
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

    def attr(self, span: dict[str, Any], key: str) -> str | None:
        """An attribute's value, from the row or (when it was large) from its content record."""
        value = span["attributes"].get(key)
        if value is None:
            ref = span["attribute_refs"].get(key)
            if ref:
                record = self.contents.get(ref)
                value = record["content"] if record else None
        return None if value is None else str(value)

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


def _scalar(text: str) -> Any:
    parsed = parse_json(text)
    return text if parsed is None else parsed


def llm_parameters(trace: Trace, span: dict[str, Any]) -> dict[str, Any]:
    """Request parameters of an LLM call (temperature, max_tokens...), whichever convention recorded them:
    OpenInference ``llm.invocation_parameters``, Langfuse model parameters, GenAI ``gen_ai.request.*``.
    The model is reported on its own and left out here."""
    params: dict[str, Any] = {}
    for key in (OI.LLM_INVOCATION_PARAMETERS, LF.MODEL_PARAMETERS):
        value = parse_json(trace.attr(span, key))
        if isinstance(value, dict):
            params.update(value)
    for key, value in span["attributes"].items():
        if key.startswith(AU.GENAI_REQUEST_PREFIX) and key != G.REQUEST_MODEL:
            params.setdefault(key[len(AU.GENAI_REQUEST_PREFIX) :], _scalar(value))
    params.pop("model", None)
    return params


def offered_tools(trace: Trace, span: dict[str, Any]) -> list[Any]:
    """Tool definitions offered to the model, as recorded (OpenInference JSON schemas, GenAI
    definitions, or OpenLLMetry functions turned into OpenAI ``{"type": "function"}`` tools)."""
    tools: list[Any] = []
    i = 0
    while (schema := trace.attr(span, f"{OI.LLM_TOOLS}.{i}.{OI.TOOL_JSON_SCHEMA}")) is not None:
        tools.append(_scalar(schema))
        i += 1
    if tools:
        return tools
    defined = parse_json(trace.attr(span, G.TOOL_DEFINITIONS))
    if isinstance(defined, list):
        return defined
    i = 0
    while (name := trace.attr(span, f"{TL.FUNCTIONS_PREFIX}.{i}.{AU.FUNCTION_NAME}")) is not None:
        function: dict[str, Any] = {"name": name}
        description = trace.attr(span, f"{TL.FUNCTIONS_PREFIX}.{i}.{AU.FUNCTION_DESCRIPTION}")
        if description:
            function["description"] = description
        parameters = trace.attr(span, f"{TL.FUNCTIONS_PREFIX}.{i}.{AU.FUNCTION_PARAMETERS}")
        if parameters:
            function["parameters"] = _scalar(parameters)
        tools.append({"type": "function", "function": function})
        i += 1
    return tools


def system_fingerprint(trace: Trace, span: dict[str, Any]) -> str:
    """The provider's system fingerprint: the column, else the GenAI attributes, else the
    ``system_fingerprint`` of the raw response OpenInference keeps in ``output.value``."""
    if span["system_fingerprint"]:
        return str(span["system_fingerprint"])
    for key in (G.SYSTEM_FINGERPRINT_NEW, G.SYSTEM_FINGERPRINT):
        if span["attributes"].get(key):
            return str(span["attributes"][key])
    response = parse_json(trace.attr(span, OI.OUTPUT_VALUE))
    if isinstance(response, dict) and isinstance(response.get("system_fingerprint"), str):
        return str(response["system_fingerprint"])
    return ""

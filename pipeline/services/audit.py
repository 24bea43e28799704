"""Audit answers: what an agent saw before it acted, which model version decided, under whose authority.

An *action* is a TOOL span (a tool call the agent made) or an LLM span (a decision the
model made). Its audit lists, in order, everything of the same trace that had finished
before the action started, and nothing that started or finished later:

* every earlier LLM call: requested and answered model, system fingerprint, parameters,
  tools offered, the full input messages and the answer;
* every retrieved document: id, content hash, score, retrieval time and text;
* every earlier tool call: its arguments and its output;
* other finished steps, and the inputs of the steps still open around the action
  (the question that started the agent run);

plus the principal with its delegation chain and policy, the LLM call that chose the
action (its answered model and system fingerprint), the intent record of a governed
tool with its acknowledgement time, and the run controls (pauses, resumes) that applied
up to that acknowledgement. Every content record shown is re-hashed against its SHA-256.

"Before" is ``end_time <= action.start_time``: a span still running when the action
started (an enclosing agent span, a concurrent call) had not shown its output yet.
The action's own result is not part of what the agent saw and is left out.

Cost, whatever the table size: a handful of point queries, each served by the primary
key or a skip index: the span by ``span_id`` and the trace by ``trace_id`` (bloom
filters of ``spans``), contents by ``(tenant, hash)`` (primary key), intents by
``trace_id`` (bloom filter) and controls by tenant and time (primary key). Rows are not
read with ``FINAL`` (which would merge across the whole tenant's parts): a span
delivered twice is the same row twice, so copies are dropped by ``span_id`` here.
"""

from __future__ import annotations

import html
import json
import math
import re
import time
from collections.abc import Iterable
from typing import Any

from agentledger.pipeline.normalize.fields import parse_json
from agentledger.pipeline.store import Store
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import Audit as AU
from agentledger.schemas.attributes import GenAI as G
from agentledger.schemas.attributes import Governance as GOV
from agentledger.schemas.attributes import Langfuse as LF
from agentledger.schemas.attributes import OpenInference as OI
from agentledger.schemas.attributes import Traceloop as TL
from agentledger.schemas.contents import ContentKind, content_hash

__all__ = [
    "AuditError",
    "AuditNotFound",
    "Trace",
    "audit",
    "audit_span",
    "demo_audit",
    "iso",
    "llm_parameters",
    "load_trace",
    "offered_tools",
    "system_fingerprint",
    "to_html",
    "to_markdown",
]

_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_JSON_KINDS = frozenset(
    {ContentKind.MESSAGES.value, ContentKind.TOOL_ARGUMENTS.value, ContentKind.TOOL_RESULT.value}
)
_GOVERNANCE_TABLES = ("intents", "controls")


class AuditError(Exception):
    """The audit cannot be answered."""


class AuditNotFound(AuditError, LookupError):
    """No span or trace with that id for the tenant."""


# -- reading -----------------------------------------------------------------------------------

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


def _span_rows(
    store: Store, tenant: str, cond: str, params: dict[str, Any]
) -> list[dict[str, Any]]:
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
    spans = _span_rows(store, tenant, "trace_id = {trace_id:String}", {"trace_id": trace_id})
    if not spans:
        raise AuditNotFound(f"no trace {trace_id} for tenant {tenant!r}")
    trace = Trace(store, tenant, trace_id, spans)
    return trace, (trace.by_id.get(ref) if _HEX16.match(ref) else None)


# -- what a span records ------------------------------------------------------------------------

_LLM_REF_PREFIXES = (OI.LLM_TOOLS + ".", TL.FUNCTIONS_PREFIX + ".")
_LLM_REF_KEYS = frozenset({OI.LLM_INVOCATION_PARAMETERS, G.TOOL_DEFINITIONS, LF.MODEL_PARAMETERS})


def _wanted_refs(span: dict[str, Any]) -> list[str]:
    """Content hashes of the large attributes an LLM span's audit reads (parameters, tools, response)."""
    if span["kind"] != "LLM":
        return []
    out = []
    for key, h in span["attribute_refs"].items():
        if (
            key in _LLM_REF_KEYS
            or key.startswith(_LLM_REF_PREFIXES)
            or key == OI.OUTPUT_VALUE
            and not span["system_fingerprint"]
        ):
            out.append(h)
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


def _verified(trace: Trace, h: str) -> bool | None:
    record = trace.contents.get(h) if h else None
    if record is None or record["content"] is None:
        return None
    return content_hash(record["content"]) == h


def _tool_calls(trace: Trace, span: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": c["id"],
            "name": c["name"],
            "arguments": trace.content(c["arguments_hash"]),
            "arguments_hash": c["arguments_hash"],
        }
        for c in span["tool_calls"]
    ]


def _llm_entry(trace: Trace, span: dict[str, Any], *, with_output: bool = True) -> dict[str, Any]:
    finish = span["attributes"].get(OI.LLM_FINISH_REASON) or span["attributes"].get(
        G.FINISH_REASONS, ""
    )
    entry = {
        "span_id": span["span_id"],
        "name": span["name"],
        "started_at": iso(span["start_ns"]),
        "ended_at": iso(span["end_ns"]),
        "provider": span["provider"],
        "convention": span["convention"],
        "requested_model": span["request_model"],
        "answered_model": span["response_model"],
        "system_fingerprint": system_fingerprint(trace, span),
        "parameters": llm_parameters(trace, span),
        "tools": offered_tools(trace, span),
        "messages": trace.content(span["input_hash"]),
        "input_hash": span["input_hash"],
        "input_verified": _verified(trace, span["input_hash"]),
        "input_tokens": span["input_tokens"],
        "output_tokens": span["output_tokens"],
    }
    if with_output:
        entry.update(
            output=trace.content(span["output_hash"]),
            output_hash=span["output_hash"],
            output_verified=_verified(trace, span["output_hash"]),
            tool_calls=_tool_calls(trace, span),
            finish_reason=finish,
        )
    return entry


def _documents(trace: Trace, span: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "span_id": span["span_id"],
            "retriever": span["name"],
            "query": trace.content(span["input_hash"]),
            "rank": rank,
            "id": d["id"],
            "content_hash": d["content_hash"],
            "score": None if d["score"] is None or math.isnan(d["score"]) else d["score"],
            "retrieved_at": iso(span["end_ns"]),
            "content": trace.content(d["content_hash"]),
            "verified": _verified(trace, d["content_hash"]),
        }
        for rank, d in enumerate(span["documents"], 1)
    ]


def _tool_entry(trace: Trace, span: dict[str, Any], *, with_output: bool = True) -> dict[str, Any]:
    entry = {
        "span_id": span["span_id"],
        "tool_name": span["tool_name"] or span["name"],
        "tool_call_id": span["tool_call_id"],
        "started_at": iso(span["start_ns"]),
        "ended_at": iso(span["end_ns"]),
        "status": span["status_code"],
        "arguments": trace.content(span["input_hash"]),
        "arguments_hash": span["input_hash"],
    }
    if with_output:
        entry.update(
            output=trace.content(span["output_hash"]),
            output_hash=span["output_hash"],
            verified=_verified(trace, span["output_hash"]),
            error=span["status_message"] if span["status_code"] == "ERROR" else "",
        )
    return entry


def _step_entry(trace: Trace, span: dict[str, Any], *, with_output: bool = True) -> dict[str, Any]:
    entry = {
        "span_id": span["span_id"],
        "kind": span["kind"],
        "name": span["name"],
        "started_at": iso(span["start_ns"]),
        "input": trace.content(span["input_hash"]),
        "input_hash": span["input_hash"],
    }
    if with_output:
        entry.update(
            ended_at=iso(span["end_ns"]),
            output=trace.content(span["output_hash"]),
            output_hash=span["output_hash"],
            status=span["status_code"],
        )
    return entry


# -- governance (intents and controls, when their tables exist) ------------------------------------


def _governance_tables(store: Store) -> set[str]:
    rows = store.query_rows(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN {names:Array(String)}",
        {"names": list(_GOVERNANCE_TABLES)},
    )
    return {r["name"] for r in rows}


def _intents(store: Store, tenant: str, trace: Trace) -> list[dict[str, Any]]:
    """The trace's intents, one per intent id: its latest ask (the one the tool ran on), with
    ``asks`` listing every ask still stored. Not read with ``FINAL``, which keeps only the latest
    ask: earlier asks (parked by a pause) say which control held the call, until a merge drops them.
    Intents are asked during the trace (by the agent's clock, as spans are): the trace's time
    span, with a day's margin, lets the primary key skip all other days."""
    rows = store.query_rows(
        """
        SELECT intent_id, attempt, decision, control_id, tool_name, tool_call_id, arguments, arguments_sha256,
               arguments_redacted, span_id, parent_span_id, principal_id, principal_name, principal_role,
               principal_chain, policy_id, agent_name, session_id, user_id,
               toUnixTimestamp64Nano(requested_at) AS requested_ns, toUnixTimestamp64Nano(received_at) AS received_ns
        FROM intents
        WHERE tenant = {tenant:String} AND trace_id = {trace_id:String}
          AND requested_at >= fromUnixTimestamp64Nano({first:Int64}, 'UTC') - INTERVAL 1 DAY
          AND requested_at <= fromUnixTimestamp64Nano({last:Int64}, 'UTC') + INTERVAL 1 DAY
        """,
        {
            "tenant": tenant,
            "trace_id": trace.trace_id,
            "first": min(s["start_ns"] for s in trace.spans),
            "last": max(s["end_ns"] for s in trace.spans),
        },
    )
    by_id: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        by_id.setdefault(row["intent_id"], {})[int(row["attempt"])] = row
    out = []
    for asks in by_id.values():
        latest = dict(asks[max(asks)])
        latest["asks"] = [
            {
                "attempt": a,
                "decision": r["decision"],
                "control_id": r["control_id"],
                "acknowledged_at": iso(r["received_ns"]),
            }
            for a, r in sorted(asks.items())
        ]
        out.append(latest)
    return out


def _controls(
    store: Store, tenant: str, until_ns: int, keys: set[tuple[str, str]]
) -> list[dict[str, Any]]:
    if not keys:
        return []
    rows = store.query_rows(
        """
        SELECT control_id, action, scope, target, by, reason, toUnixTimestamp64Nano(created_at) AS created_ns
        FROM controls FINAL
        WHERE tenant = {tenant:String} AND created_at <= fromUnixTimestamp64Nano({until:Int64}, 'UTC')
          AND concat(scope, '/', target) IN {keys:Array(String)}
        ORDER BY created_at, control_id
        """,
        {
            "tenant": tenant,
            "until": until_ns,
            "keys": sorted(f"{scope}/{target}" for scope, target in keys),
        },
    )
    return rows


def _agent_of(trace: Trace, span: dict[str, Any]) -> str:
    """The span's agent, else that of the nearest enclosing span naming one (spans exported apart
    from their AGENT span are stored without its name)."""
    for s in [span, *trace.ancestors(span)]:
        if s["agent_name"]:
            return str(s["agent_name"])
    return ""


def _control_keys(
    trace: Trace, span: dict[str, Any], authority: dict[str, Any], intent: dict[str, Any] | None
) -> set[tuple[str, str]]:
    """The (scope, target) pairs a pause can hold this action by, as the collector matches them
    (``pipeline.governance.controls``): trace, session, agent, and the principal or anyone in its chain."""
    session = span["session_id"] or (intent or {}).get("session_id", "")
    agent = _agent_of(trace, span) or (intent or {}).get("agent_name", "")
    keys = {("trace", span["trace_id"])}
    if session:
        keys.add(("session", session))
    if agent:
        keys.add(("agent", agent))
    for principal in {authority["principal_id"], *authority["principal_chain"]}:
        if principal:
            keys.add(("principal", principal))
    return keys


# -- one action ----------------------------------------------------------------------------------


def _intent_for(
    trace: Trace, action: dict[str, Any], intents: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The intent of a governed tool call: named on the action (or a governed TOOL span inside it),
    else recorded against one of those spans, else against the same tool call id."""
    spans = [action, *trace.descendants(action)]
    by_id = {i["intent_id"]: i for i in intents}
    for s in spans:
        named = s["attributes"].get(GOV.INTENT_ID)
        if named and named in by_id:
            return by_id[named]
    ids = {s["span_id"] for s in spans}
    for intent in intents:
        if intent["span_id"] in ids:
            return intent
    if action["tool_call_id"]:
        for intent in intents:
            if intent["tool_call_id"] == action["tool_call_id"]:
                return intent
    return None


def _authority(
    trace: Trace, action: dict[str, Any], intent: dict[str, Any] | None
) -> dict[str, Any]:
    """Under whose authority: the action's principal, else the nearest enclosing span's, else the intent's."""
    for source, span in [("span", action)] + [
        ("enclosing_span", a) for a in trace.ancestors(action)
    ]:
        if span["principal_id"]:
            attrs = span["attributes"]
            return {
                "principal_id": span["principal_id"],
                "principal_name": attrs.get(AL.PRINCIPAL_NAME, "")
                or (intent or {}).get("principal_name", ""),
                "principal_role": attrs.get(AL.PRINCIPAL_ROLE, "")
                or (intent or {}).get("principal_role", ""),
                "principal_chain": list(span["principal_chain"]),
                "policy_id": span["policy_id"] or (intent or {}).get("policy_id", ""),
                "source": source,
                "source_span_id": span["span_id"],
                "attributed": True,
            }
    if intent is not None and intent["principal_id"]:
        return {
            "principal_id": intent["principal_id"],
            "principal_name": intent["principal_name"],
            "principal_role": intent["principal_role"],
            "principal_chain": list(intent["principal_chain"]),
            "policy_id": intent["policy_id"],
            "source": "intent",
            "source_span_id": "",
            "attributed": True,
        }
    return {
        "principal_id": "",
        "principal_name": "",
        "principal_role": "",
        "principal_chain": [],
        "policy_id": action["policy_id"],
        "source": "none",
        "source_span_id": "",
        "attributed": False,
    }


def _deciding_llm(
    trace: Trace, action: dict[str, Any], seen: list[dict[str, Any]], intent: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, str]:
    """The LLM call that chose this action, and how it was found."""
    if action["kind"] == "LLM":
        return action, "self"
    llms = [s for s in seen if s["kind"] == "LLM"]
    if action["tool_call_id"]:
        for span in reversed(llms):
            if any(c["id"] == action["tool_call_id"] for c in span["tool_calls"]):
                return span, "tool_call_id"
    if intent is not None and intent["parent_span_id"]:
        span = trace.by_id.get(intent["parent_span_id"])
        if span is not None and span["kind"] == "LLM":
            return span, "intent"
    name = action["tool_name"] or action["name"]
    for span in reversed(llms):
        if any(c["name"] == name for c in span["tool_calls"]):
            return span, "last_llm_choosing_tool"
    if llms:
        return llms[-1], "last_llm_before_action"
    return None, "none"


def _intent_entry(intent: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    arguments_match: bool | None = None
    if action["kind"] == "TOOL" and action["input_hash"]:
        arguments_match = action["input_hash"] == intent["arguments_sha256"]
    return {
        "intent_id": intent["intent_id"],
        "tool_name": intent["tool_name"],
        "tool_call_id": intent["tool_call_id"],
        "requested_at": iso(intent["requested_ns"]),
        "acknowledged_at": iso(intent["received_ns"]),
        "decision": intent["decision"],
        "attempts": int(intent["attempt"]) + 1,
        "control_id": intent["control_id"],
        "held_by": sorted(_holding(intent)),
        "asks": intent.get("asks", []),
        "arguments": intent["arguments"],
        "arguments_sha256": intent["arguments_sha256"],
        "arguments_redacted": bool(intent["arguments_redacted"]),
        "arguments_match_action": arguments_match,
        "chosen_by_span_id": intent["parent_span_id"],
    }


def _holding(intent: dict[str, Any]) -> set[str]:
    """Controls that parked any ask of the intent."""
    return {a["control_id"] for a in intent.get("asks", ()) if a["control_id"]} | (
        {intent["control_id"]} if intent["control_id"] else set()
    )


def _controls_entry(
    events: list[dict[str, Any]],
    keys: set[tuple[str, str]],
    until_ns: int,
    intent: dict[str, Any] | None,
) -> tuple[list[dict[str, Any]], list[str]]:
    applied, state = [], {}
    for e in events:
        if (e["scope"], e["target"]) not in keys or e["created_ns"] > until_ns:
            continue
        applied.append(
            {
                "control_id": e["control_id"],
                "action": e["action"],
                "scope": e["scope"],
                "target": e["target"],
                "by": e["by"],
                "reason": e["reason"],
                "at": iso(e["created_ns"]),
                "held_this_call": bool(intent and e["control_id"] in _holding(intent)),
            }
        )
        state[(e["scope"], e["target"])] = e
    in_force = sorted(e["control_id"] for e in state.values() if e["action"] == "pause")
    return applied, in_force


def audit_span(
    trace: Trace,
    action: dict[str, Any],
    *,
    intents: list[dict[str, Any]] | None = None,
    controls: list[dict[str, Any]] | None = None,
    governance: bool = False,
) -> dict[str, Any]:
    """The audit of one action of a loaded trace (contents must have been fetched, see ``audit``)."""
    start = action["start_ns"]
    excluded = {action["span_id"]} | {s["span_id"] for s in trace.descendants(action)}
    enclosing = trace.ancestors(action)
    enclosing_ids = {s["span_id"] for s in enclosing}
    seen = [
        s
        for s in trace.spans
        if s["end_ns"] <= start
        and s["span_id"] not in excluded
        and s["span_id"] not in enclosing_ids
    ]
    after = [
        s
        for s in trace.spans
        if s["span_id"] not in excluded
        and s["end_ns"] > start
        and s["span_id"] not in enclosing_ids
    ]
    intent = _intent_for(trace, action, intents or []) if action["kind"] == "TOOL" else None
    authority = _authority(trace, action, intent)
    decider, link = _deciding_llm(trace, action, seen, intent)

    timeline: list[dict[str, Any]] = []
    llm_calls: list[dict[str, Any]] = []
    documents: list[dict[str, Any]] = []
    tool_outputs: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for seq, span in enumerate(seen, 1):
        timeline.append(
            {
                "seq": seq,
                "span_id": span["span_id"],
                "kind": span["kind"],
                "name": span["name"],
                "started_at": iso(span["start_ns"]),
                "ended_at": iso(span["end_ns"]),
            }
        )
        if span["kind"] == "LLM":
            llm_calls.append({"seq": seq, **_llm_entry(trace, span)})
        elif span["kind"] in ("RETRIEVER", "RERANKER"):
            documents.extend({"seq": seq, **d} for d in _documents(trace, span))
        elif span["kind"] == "TOOL":
            tool_outputs.append({"seq": seq, **_tool_entry(trace, span)})
        else:
            steps.append({"seq": seq, **_step_entry(trace, span)})

    if action["kind"] == "LLM":
        action_entry = {"kind": "LLM", **_llm_entry(trace, action)}
    else:
        action_entry = {
            "kind": action["kind"],
            "name": action["name"],
            **_tool_entry(trace, action, with_output=False),
        }
    action_entry.update(
        agent_name=_agent_of(trace, action),
        session_id=action["session_id"],
        user_id=action["user_id"],
        service=action["service"],
    )

    decided_by: dict[str, Any] | None = None
    if decider is not None:
        chosen = next(
            (
                c
                for c in _tool_calls(trace, decider)
                if c["id"] and c["id"] == action["tool_call_id"]
            ),
            None,
        )
        if chosen is None and action["kind"] == "TOOL":
            name = action["tool_name"] or action["name"]
            chosen = next((c for c in _tool_calls(trace, decider) if c["name"] == name), None)
        decided_by = {
            "span_id": decider["span_id"],
            "found_by": link,
            "provider": decider["provider"],
            "requested_model": decider["request_model"],
            "answered_model": decider["response_model"],
            "system_fingerprint": system_fingerprint(trace, decider),
            "at": iso(decider["end_ns"]),
            "chose": chosen,
            "executed_as_chosen": (chosen["arguments_hash"] == action["input_hash"])
            if chosen and action["kind"] == "TOOL"
            else None,
        }

    until = max(start, intent["received_ns"]) if intent else start
    keys = _control_keys(trace, action, authority, intent)
    applied, in_force = _controls_entry(controls or [], keys, until, intent)
    return {
        "tenant": trace.tenant,
        "trace_id": trace.trace_id,
        "action": action_entry,
        "authority": authority,
        "decided_by": decided_by,
        "context": [_step_entry(trace, s, with_output=False) for s in reversed(enclosing)],
        "timeline": timeline,
        "llm_calls": llm_calls,
        "documents": documents,
        "tool_outputs": tool_outputs,
        "other_steps": steps,
        "intent": _intent_entry(intent, action) if intent else None,
        "controls": applied,
        "pauses_in_force_at_action": in_force,
        "governance_recorded": governance,
        "left_out": {"spans_after_action": len(after), "action_result": action["kind"] == "TOOL"},
        "integrity": _integrity(trace, seen + enclosing + [action]),
    }


def _integrity(trace: Trace, spans: list[dict[str, Any]]) -> dict[str, Any]:
    hashes: set[str] = set()
    for s in spans:
        hashes.update(h for h in (s["input_hash"], s["output_hash"]) if h)
        hashes.update(d["content_hash"] for d in s["documents"])
        hashes.update(c["arguments_hash"] for c in s["tool_calls"])
    missing = sorted(h for h in hashes if trace.contents.get(h, {}).get("content") is None)
    changed = sorted(h for h in hashes if h not in missing and not _verified(trace, h))
    return {
        "contents_checked": len(hashes) - len(missing),
        "contents_verified": len(hashes) - len(missing) - len(changed),
        "missing": missing,
        "changed": changed,
    }


def _hashes_for(spans: Iterable[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for s in spans:
        out += [s["input_hash"], s["output_hash"]]
        out += [d["content_hash"] for d in s["documents"]]
        out += [c["arguments_hash"] for c in s["tool_calls"]]
        out += _wanted_refs(s)
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


def audit(store: Store, tenant: str, ref: str, *, last: bool = False) -> dict[str, Any]:
    """Audit a span (16 hex digits) or every tool call of a trace (32; ``last``: only the last one).

    Returns ``{"tenant", "trace_id", "query", "actions": [report, ...]}``; raises ``AuditNotFound``
    for an unknown id and ``ValueError`` for one that is not an id at all.
    """
    from agentledger.pipeline.governance.journal import sync_all

    sync_all()  # intents this process acknowledged are in the store before it is read
    trace, target = load_trace(store, tenant, ref)
    actions = _actions(trace, target, last)
    if not actions:
        return {"tenant": tenant, "trace_id": trace.trace_id, "query": ref, "actions": []}
    horizon = max(a["start_ns"] for a in actions)
    involved = [s for s in trace.spans if s["start_ns"] <= horizon]
    trace.fetch(_hashes_for(involved))
    tables = _governance_tables(store)
    intents = _intents(store, tenant, trace) if "intents" in tables else []
    controls: list[dict[str, Any]] = []
    if "controls" in tables:
        keys: set[tuple[str, str]] = set()
        until = horizon
        for action in actions:
            intent = _intent_for(trace, action, intents) if action["kind"] == "TOOL" else None
            keys |= _control_keys(trace, action, _authority(trace, action, intent), intent)
            if intent:
                until = max(until, intent["received_ns"])
        controls = _controls(store, tenant, until, keys)
    reports = [
        audit_span(trace, a, intents=intents, controls=controls, governance=bool(tables))
        for a in actions
    ]
    return {"tenant": tenant, "trace_id": trace.trace_id, "query": ref, "actions": reports}


# -- rendering -----------------------------------------------------------------------------------


def _json_block(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, indent=2, ensure_ascii=False)
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}\n{text}\n{fence}"


def _message_lines(messages: Any) -> list[str]:
    if not isinstance(messages, list):
        return [_json_block(messages)] if messages is not None else ["_(not recorded)_"]
    lines = []
    for m in messages:
        if not isinstance(m, dict):
            lines.append(_json_block(m))
            continue
        head = f"**{m.get('role', '?')}**"
        if m.get("tool_call_id"):
            head += f" (answers tool call `{m['tool_call_id']}`)"
        lines.append(head + ":")
        if m.get("content") is not None:
            lines.append(_json_block(m["content"]))
        for call in m.get("tool_calls") or ():
            lines.append(
                f"- calls `{call.get('name')}` (id `{call.get('id')}`) with {json.dumps(call.get('arguments'), ensure_ascii=False)}"
            )
    return lines


def _action_markdown(r: dict[str, Any]) -> list[str]:
    a, who, by = r["action"], r["authority"], r["decided_by"]
    title = (
        f"tool call `{a.get('tool_name')}`"
        if a["kind"] != "LLM"
        else f"model decision `{a['name']}`"
    )
    out = [
        f"## Action: {title}",
        "",
        f"- span `{a['span_id']}` of trace `{r['trace_id']}`, started {a['started_at']}",
        f"- agent `{a.get('agent_name') or '?'}`, session `{a.get('session_id') or '-'}`, user `{a.get('user_id') or '-'}`",
    ]
    if a["kind"] != "LLM":
        out.append(
            f"- arguments: `{json.dumps(a.get('arguments'), ensure_ascii=False)}` (sha256 `{a.get('arguments_hash')}`)"
        )
    out += ["", "### Under whose authority", ""]
    if who["attributed"]:
        name = (
            f" ({who['principal_name']}{', ' + who['principal_role'] if who['principal_role'] else ''})"
            if who["principal_name"]
            else ""
        )
        out += [
            f"- principal `{who['principal_id']}`{name}",
            f"- delegation chain: {' → '.join(f'`{p}`' for p in who['principal_chain']) or '-'}",
            f"- policy `{who['policy_id'] or '-'}` (recorded on the {who['source'].replace('_', ' ')})",
        ]
    else:
        out.append("- **unattributed**: no principal was recorded for this action")
    out += ["", "### Which model version decided", ""]
    if by:
        out += [
            f"- LLM call `{by['span_id']}` at {by['at']} (found by {by['found_by'].replace('_', ' ')})",
            (
                f"- provider `{by['provider'] or '?'}`, requested `{by['requested_model']}`, "
                f"answered **`{by['answered_model']}`**, system fingerprint `{by['system_fingerprint'] or '-'}`"
            ),
        ]
        if by["chose"]:
            out.append(
                f"- chose `{by['chose']['name']}` with {json.dumps(by['chose']['arguments'], ensure_ascii=False)}"
                + (
                    ""
                    if by["executed_as_chosen"] is None
                    else f"; executed as chosen: **{'yes' if by['executed_as_chosen'] else 'NO'}**"
                )
            )
    else:
        out.append("- no LLM call precedes this action in the trace")
    out += ["", "### Intent and controls", ""]
    intent = r["intent"]
    if intent:
        out += [
            (
                f"- intent `{intent['intent_id']}` asked {intent['requested_at']}, acknowledged "
                f"**{intent['acknowledged_at']}** ({intent['decision']}, {intent['attempts']} ask(s))"
            ),
            f"- arguments sha256 `{intent['arguments_sha256']}`"
            + (
                ""
                if intent["arguments_match_action"] is None
                else f"; matches the tool span: **{'yes' if intent['arguments_match_action'] else 'NO'}**"
            ),
        ]
    elif r["governance_recorded"]:
        out.append("- no intent record (the tool was not governed)")
    else:
        out.append("- governance tables are not installed in this store")
    for c in r["controls"]:
        held = " — held this call" if c["held_this_call"] else ""
        out.append(
            f"- {c['at']}: **{c['action']}** {c['scope']} `{c['target']}` by {c['by'] or '?'}: {c['reason'] or '-'}{held}"
        )
    if not r["controls"]:
        out.append("- no pause or resume applied to this run")
    if r["pauses_in_force_at_action"]:
        out.append(
            f"- **pauses in force when it acted**: {', '.join(r['pauses_in_force_at_action'])}"
        )
    out += ["", "### What the agent saw, in order", ""]
    for c in r["context"]:
        out += [
            f"**Running {c['kind'].lower()} `{c['name']}`** (started {c['started_at']}), input:",
            _json_block(c["input"]),
            "",
        ]
    by_seq: dict[int, list[str]] = {}
    for llm in r["llm_calls"]:
        params = json.dumps(llm["parameters"], ensure_ascii=False)
        fingerprint = (
            f", fingerprint `{llm['system_fingerprint']}`" if llm["system_fingerprint"] else ""
        )
        lines = [
            (
                f"**{llm['seq']}. LLM call `{llm['span_id']}`** {llm['started_at']} → {llm['ended_at']}: "
                f"requested `{llm['requested_model']}`, answered `{llm['answered_model']}`{fingerprint}; "
                f"parameters {params}; {len(llm['tools'])} tool(s) offered; messages sha256 `{llm['input_hash']}`"
                f"{' (verified)' if llm['input_verified'] else ''}"
            ),
            "",
        ]
        lines += (
            _message_lines(llm["messages"]) + ["", "Answer:"] + _message_lines(llm["output"]) + [""]
        )
        by_seq.setdefault(llm["seq"], []).extend(lines)
    for d in r["documents"]:
        score = "-" if d["score"] is None else f"{d['score']:g}"
        by_seq.setdefault(d["seq"], []).extend(
            [
                (
                    f"**{d['seq']}.{d['rank']} Document `{d['id']}`** (rank {d['rank']}, score {score}, retrieved "
                    f"{d['retrieved_at']} by `{d['retriever']}`, sha256 `{d['content_hash']}`"
                    f"{' verified' if d['verified'] else ' NOT VERIFIED'})"
                ),
                _json_block(d["content"]),
                "",
            ]
        )
    for t in r["tool_outputs"]:
        by_seq.setdefault(t["seq"], []).extend(
            [
                (
                    f"**{t['seq']}. Tool `{t['tool_name']}`** (call `{t['tool_call_id'] or '-'}`, {t['status']}, "
                    f"ended {t['ended_at']}) with {json.dumps(t['arguments'], ensure_ascii=False)} returned:"
                ),
                _json_block(t["output"]),
                "",
            ]
        )
    for s in r["other_steps"]:
        by_seq.setdefault(s["seq"], []).extend(
            [
                f"**{s['seq']}. {s['kind'].title()} `{s['name']}`** ({s['started_at']} → {s['ended_at']}): input / output",
                _json_block(s["input"]),
                _json_block(s["output"]),
                "",
            ]
        )
    for seq in sorted(by_seq):
        out += by_seq[seq]
    if not by_seq:
        out += ["_nothing had finished before this action_", ""]
    integrity, left = r["integrity"], r["left_out"]
    out += [
        "### Integrity",
        "",
        f"- {integrity['contents_verified']} of {integrity['contents_checked']} content records match their SHA-256"
        + (f"; missing: {', '.join(integrity['missing'])}" if integrity["missing"] else "")
        + (f"; **changed**: {', '.join(integrity['changed'])}" if integrity["changed"] else ""),
        f"- left out: {left['spans_after_action']} span(s) that had not finished before the action"
        + ("; the action's own result" if left["action_result"] else ""),
        "",
    ]
    return out


def to_markdown(result: dict[str, Any]) -> str:
    """The audit (``audit``'s result) as a readable Markdown report."""
    out = [
        f"# Audit of {result['query']}",
        "",
        f"Tenant `{result['tenant']}`, trace `{result['trace_id']}`: {len(result['actions'])} action(s).",
        "",
    ]
    for report in result["actions"]:
        out += _action_markdown(report)
    return "\n".join(out).rstrip() + "\n"


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])_(.+?)_(?!\w)")


def _inline(text: str) -> str:
    """Markdown inline marks of the report as HTML: bold, then code spans (whose text is kept as is),
    then italics outside code."""
    parts = _BOLD.sub(r"<strong>\1</strong>", html.escape(text, quote=False)).split("`")
    return "".join(
        f"<code>{part}</code>" if i % 2 else _ITALIC.sub(r"<em>\1</em>", part)
        for i, part in enumerate(parts)
    )


def to_html(result: dict[str, Any]) -> str:
    """The audit as a self-contained HTML page (the Markdown report's structure, escaped)."""
    body: list[str] = []
    lines = to_markdown(result).splitlines()
    i, in_list = 0, False
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            fence, block = line, []
            i += 1
            while i < len(lines) and lines[i] != fence:
                block.append(lines[i])
                i += 1
            body.append(f"<pre>{html.escape(chr(10).join(block))}</pre>")
        elif line.startswith("- "):
            if not in_list:
                body.append("<ul>")
                in_list = True
            body.append(f"<li>{_inline(line[2:])}</li>")
        else:
            if in_list:
                body.append("</ul>")
                in_list = False
            level = len(line) - len(line.lstrip("#"))
            if level and line[level : level + 1] == " ":
                body.append(f"<h{level}>{_inline(line[level + 1 :])}</h{level}>")
            elif line.strip():
                body.append(f"<p>{_inline(line)}</p>")
        i += 1
    if in_list:
        body.append("</ul>")
    title = html.escape(f"Audit of {result['query']}")
    style = (
        "body{font-family:system-ui,sans-serif;max-width:70rem;margin:2rem auto;line-height:1.45}"
        "pre{background:#f5f5f5;padding:.6rem;white-space:pre-wrap;word-break:break-word}"
        "code{background:#f0f0f0;padding:0 .2rem}"
    )
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{title}</title><style>{style}</style></head>'
        f"<body>\n{chr(10).join(body)}\n</body></html>\n"
    )


# -- the product demo ------------------------------------------------------------------------------


def demo_audit(
    store: Store,
    tenant: str,
    trace_id: str,
    provider_base_url: str,
    *,
    api_key: str = "demo",
) -> dict[str, Any]:
    """The auditor's three questions about the demo's decision, and a replay of it.

    The decision is the trace's last LLM call (the ESCALATE/APPROVE answer); the action
    before it is the last tool call. Returns ``what_the_agent_saw`` (counts and ids of what
    preceded the decision, with every document re-hashed), ``which_model_decided``,
    ``under_whose_authority``, ``replay`` (the decision re-run against ``provider_base_url``
    through the provider's own SDK and diffed against the recorded answer), and
    ``report_markdown`` (the full audit of the decision).
    """
    from agentledger.pipeline.services import replay as replay_mod

    result = audit(store, tenant, trace_id)
    trace, _ = load_trace(store, tenant, trace_id)
    llms = [s for s in trace.spans if s["kind"] == "LLM"]
    if not llms:
        raise AuditNotFound(f"trace {trace_id} holds no LLM call to audit")
    decision = audit(store, tenant, llms[-1]["span_id"])
    report = decision["actions"][0]
    answer = report["action"].get("output") or []
    text = next(
        (m.get("content") for m in reversed(answer) if isinstance(m, dict) and m.get("content")), ""
    )
    saw = {
        "llm_calls": [
            {
                "span_id": c["span_id"],
                "answered_model": c["answered_model"],
                "messages": len(c["messages"] or []),
            }
            for c in report["llm_calls"]
        ],
        "messages_of_the_deciding_call": len(report["action"].get("messages") or []),
        "documents": [
            {
                "id": d["id"],
                "sha256": d["content_hash"],
                "score": d["score"],
                "verified": d["verified"],
            }
            for d in report["documents"]
        ],
        "tool_outputs": [
            {"tool": t["tool_name"], "arguments": t["arguments"], "output": t["output"]}
            for t in report["tool_outputs"]
        ],
        "question": next((c["input"] for c in report["context"] if c["kind"] == "AGENT"), None),
    }
    by = report["decided_by"] or {}
    outcome = replay_mod.replay_span(
        store, tenant, llms[-1]["span_id"], base_url=provider_base_url, api_key=api_key
    )
    return {
        "trace_id": trace_id,
        "decision": {"span_id": llms[-1]["span_id"], "text": text},
        "what_the_agent_saw": saw,
        "which_model_decided": {
            k: by.get(k)
            for k in (
                "span_id",
                "provider",
                "requested_model",
                "answered_model",
                "system_fingerprint",
            )
        },
        "under_whose_authority": report["authority"],
        "actions": [
            {
                "span_id": a["action"]["span_id"],
                "tool": a["action"].get("tool_name"),
                "intent": a["intent"],
                "controls": a["controls"],
            }
            for a in result["actions"]
        ],
        "replay": outcome.as_dict(),
        "report_markdown": to_markdown(decision),
    }

"""Recorded LLM calls rebuilt as requests to send again, with the hashes that hold a rebuilt
request to the one recorded (see the package docstring), and the selection of calls to replay."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from agentledger.pipeline.normalize.fields import parse_json
from agentledger.pipeline.services.recorded import (
    Trace,
    api_of,
    iso,
    llm_parameters,
    span_rows,
    span_tools,
)
from agentledger.pipeline.services.replay.answers import Answer
from agentledger.pipeline.services.replay.wire import (
    ANTHROPIC,
    OPENAI,
    _reconstruct,
    _sendable,
    canonical_messages,
)
from agentledger.pipeline.store import Store
from agentledger.schemas.contents import canonical_bytes, content_hash

__all__ = [
    "RebuiltRequest",
    "ReplayError",
    "ReplayNotFound",
    "rebuild_request",
    "rebuild_requests",
    "select_calls",
]


_NOT_BODY = (
    "extra_headers",
    "extra_query",
    "timeout",
)  # SDK call options recorded with the arguments


class ReplayError(Exception):
    """The span cannot be replayed (not an LLM call, no recorded input)."""


class ReplayNotFound(ReplayError, LookupError):
    """No span with that id for the tenant."""


def _sha(value: Any) -> str:
    return content_hash(canonical_bytes(value))


@dataclass
class RebuiltRequest:
    """A recorded LLM call, ready to send again: the request body, its checks, the recorded answer."""

    span_id: str
    trace_id: str
    started_at: str
    agent_name: str
    api: str
    """``openai`` (chat completions, any OpenAI-compatible provider) or ``anthropic`` (messages)."""
    provider: str
    request_model: str
    response_model: str
    system_fingerprint: str
    body: dict[str, Any]
    source: str
    """``recorded`` (the request the instrumentation recorded) or ``reconstructed``."""
    checks: dict[str, Any]
    recorded: Answer
    output_hash: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """The body's messages hash to the recorded ``input_hash`` and no reconstruction disagrees."""
        return (
            bool(self.checks.get("messages_match"))
            and self.checks.get("reconstruction_exact") is not False
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id,
            "trace_id": self.trace_id,
            "started_at": self.started_at,
            "agent_name": self.agent_name,
            "api": self.api,
            "provider": self.provider,
            "request_model": self.request_model,
            "response_model": self.response_model,
            "system_fingerprint": self.system_fingerprint,
            "body": self.body,
            "source": self.source,
            "checks": self.checks,
            "exact": self.exact,
            "recorded": self.recorded.as_dict(),
            "output_hash": self.output_hash,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RebuiltRequest:
        return cls(
            d["span_id"],
            d["trace_id"],
            d["started_at"],
            d.get("agent_name", ""),
            d["api"],
            d.get("provider", ""),
            d.get("request_model", ""),
            d.get("response_model", ""),
            d.get("system_fingerprint", ""),
            d["body"],
            d["source"],
            d.get("checks", {}),
            Answer.from_dict(d.get("recorded", {})),
            d.get("output_hash", ""),
            list(d.get("notes", [])),
        )


def _api_of(span: dict[str, Any], recorded: dict[str, Any] | None) -> str:
    if api_of(span) == ANTHROPIC:
        return ANTHROPIC
    if (
        recorded is not None
        and "max_tokens" in recorded
        and "system" in recorded
        and "messages" in recorded
    ):
        return ANTHROPIC
    return OPENAI


def _wire(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON body an SDK call with these arguments sends: call options dropped, ``extra_body`` merged."""
    out = {
        k: v for k, v in body.items() if k not in _NOT_BODY and k != "extra_body" and v is not None
    }
    extra = body.get("extra_body")
    if isinstance(extra, dict):
        out.update(extra)
    return out


def _raw_arguments(recorded: dict[str, Any] | None) -> Callable[[int, int], str | None]:
    """The argument text of an earlier tool call as the recorded request spelled it (the canonical
    form keeps the JSON value, not its spelling): message ``i``'s call ``k`` of the recorded
    request's messages, which the canonical messages follow one for one."""
    messages = recorded.get("messages") if recorded is not None else None

    def get(i: int, k: int) -> str | None:
        if not isinstance(messages, list) or i >= len(messages):
            return None
        message = messages[i]
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if not isinstance(calls, list) or k >= len(calls) or not isinstance(calls[k], dict):
            return None
        function = calls[k].get("function")
        arguments = function.get("arguments") if isinstance(function, dict) else None
        return arguments if isinstance(arguments, str) else None

    return get


def _rebuild(trace: Trace, span: dict[str, Any], api: str | None) -> RebuiltRequest:
    if span["kind"] != "LLM":
        raise ReplayError(f"span {span['span_id']} is a {span['kind']} span, not an LLM call")
    messages = trace.content(span["input_hash"])
    if not isinstance(messages, list):
        raise ReplayError(f"span {span['span_id']} has no recorded input messages to replay")
    notes: list[str] = []
    ref = span["raw_request_hash"]  # the request as the instrumentation recorded it, if it did
    recorded_text = trace.text(ref)
    recorded = parse_json(recorded_text)
    if not (isinstance(recorded, dict) and isinstance(recorded.get("messages"), list)):
        recorded = None
    native = _api_of(span, recorded)
    target = api or native
    tools = span_tools(trace, span)
    params, dropped = _sendable(llm_parameters(trace, span))
    if dropped:
        notes.append(f"parameters recorded without a usable value left out: {dropped}")
    model = span["request_model"] or span["response_model"]
    rebuilt = _reconstruct(target, model, messages, tools, params, _raw_arguments(recorded))
    checks: dict[str, Any] = {
        "input_hash": span["input_hash"],
        "request_hash": span["request_hash"],
    }
    if recorded is not None and target == native:
        body, source = _wire(recorded), "recorded"
        checks["recorded_request_sha256"] = _sha(body)
        checks["recorded_request_intact"] = content_hash(recorded_text or "") == ref
        checks["reconstructed_sha256"] = _sha(rebuilt)
        checks["reconstruction_exact"] = (
            checks["reconstructed_sha256"] == checks["recorded_request_sha256"]
        )
        if not checks["reconstruction_exact"]:
            differing = sorted(k for k in set(body) | set(rebuilt) if body.get(k) != rebuilt.get(k))
            notes.append(
                f"rebuilt from messages, tools, parameters and model, the request differs in {differing}; "
                "the recorded request is sent"
            )
    else:
        body, source = rebuilt, "reconstructed"
        if target != native:
            notes.append(f"translated from the {native} format to {target}")
        elif not tools and any(c for c in span["tool_calls"]):
            notes.append(
                "the model chose a tool but no tool definitions were recorded; the request has none"
            )
    checks["request_sha256"] = _sha(body)
    checks["messages_sha256"] = _sha(canonical_messages(target, body))
    checks["messages_match"] = checks["messages_sha256"] == span["input_hash"]
    if target != native:
        checks["messages_match"] = None  # a translated request cannot carry the recorded hash
    return RebuiltRequest(
        span_id=span["span_id"],
        trace_id=span["trace_id"],
        started_at=iso(span["start_ns"]),
        agent_name=span["agent_name"],
        api=target,
        provider=span["provider"],
        request_model=span["request_model"],
        response_model=span["response_model"],
        system_fingerprint=span["system_fingerprint"],
        body=body,
        source=source,
        checks=checks,
        recorded=Answer.from_messages(trace.content(span["output_hash"]), span["response_model"]),
        output_hash=span["output_hash"],
        notes=notes,
    )


def rebuild_requests(
    store: Store,
    tenant: str,
    span_ids: list[str],
    *,
    api: str | None = None,
    errors: list[dict[str, str]] | None = None,
) -> list[RebuiltRequest]:
    """Rebuilt requests of several LLM spans, in the order given (two queries in all).

    A span that cannot be rebuilt raises (``ReplayNotFound`` when unknown), or, when an
    ``errors`` list is given, is reported there (``{"span_id", "error"}``) and skipped.
    """
    ids = [s.strip().lower() for s in span_ids]
    if not ids:
        return []
    spans = span_rows(store, tenant, "span_id IN {ids:Array(String)}", {"ids": sorted(set(ids))})
    holder = Trace(store, tenant, "", spans)
    hashes = []
    for s in spans:
        hashes += [s["input_hash"], s["output_hash"], s["tools_hash"], s["raw_request_hash"]]
    holder.fetch(hashes)
    out = []
    for span_id in ids:
        try:
            span = holder.by_id.get(span_id)
            if span is None:
                raise ReplayNotFound(f"no span {span_id} for tenant {tenant!r}")
            out.append(_rebuild(holder, span, api))
        except ReplayError as exc:
            if errors is None:
                raise
            errors.append({"span_id": span_id, "error": str(exc)})
    return out


def rebuild_request(
    store: Store, tenant: str, span_id: str, *, api: str | None = None
) -> RebuiltRequest:
    """The request of one recorded LLM call, rebuilt (see the module docstring for its checks)."""
    return rebuild_requests(store, tenant, [span_id], api=api)[0]


def select_calls(
    store: Store,
    tenant: str,
    *,
    agent: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tools_only: bool = False,
    limit: int = 100,
) -> list[str]:
    """Span ids of recorded LLM calls matching the filters, newest first (``model`` matches the
    requested or the answered model; ``tools_only`` keeps the calls that chose a tool)."""
    where = ["tenant = {tenant:String}", "kind = 'LLM'", "input_hash != ''"]
    params: dict[str, Any] = {"tenant": tenant, "limit": int(limit)}
    if model:
        where.append("(request_model = {model:String} OR response_model = {model:String})")
        params["model"] = model
    if since is not None:
        where.append("start_time >= {since:DateTime64(9, 'UTC')}")
        params["since"] = _ch_time(since)
    if until is not None:
        where.append("start_time < {until:DateTime64(9, 'UTC')}")
        params["until"] = _ch_time(until)
    if tools_only:
        where.append("notEmpty(tool_calls)")
    if agent:
        # a span exported apart from its AGENT span is stored without the agent's name: match its trace
        timed = [w for w in where if w.startswith("start_time")]
        agent_traces = " AND ".join(
            ["tenant = {tenant:String}", "kind = 'AGENT'", "agent_name = {agent:String}", *timed]
        )
        where.append(
            f"(agent_name = {{agent:String}} OR (agent_name = '' AND trace_id IN "
            f"(SELECT trace_id FROM spans WHERE {agent_traces})))"
        )
        params["agent"] = agent
    rows = store.query_rows(  # LIMIT 1 BY: a span delivered twice is listed once
        f"SELECT span_id FROM spans WHERE {' AND '.join(where)} "
        "ORDER BY start_time DESC, span_id LIMIT 1 BY span_id LIMIT {limit:UInt32}",
        params,
    )
    return [r["span_id"] for r in rows]


def _ch_time(t: datetime) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")

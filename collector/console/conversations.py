"""The Sessions pages: conversations by ``session.id``, and one session's turns in order.

A turn is one trace of the session; the page shows what it was asked and what it answered (the
root span's content, read in full and logged as a read), its time, tokens and cost, and links to
the trace. The list is paged on the server like the trace list.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector.console import views, web
from agentledger.collector.console.sessions import PREFIX
from agentledger.collector.console.traces import RANGES
from agentledger.collector.deps import ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.pipeline.services import conversations, queries

__all__ = ["router", "turn_text"]

router = APIRouter(prefix=PREFIX)
PAGE = 50


@router.get("/sessions")
async def sessions_page(
    request: Request,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    range: Literal["1h", "24h", "7d", "30d", "all"] = "7d",
    agent: Annotated[str, Query(max_length=512)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    window = RANGES[range]
    since = datetime.now(timezone.utc) - window if window is not None else None
    found = await run_in_threadpool(
        partial(
            conversations.list_sessions,
            store,
            tenant,
            since=since,
            agent=agent.strip(),
            offset=offset,
            limit=PAGE,
        )
    )
    await read_log.record([s.session_id for s in found.sessions], len(found.sessions))
    return web.page(
        request,
        "sessions.html",
        nav="sessions",
        page_of=found,
        range=range,
        ranges=list(RANGES),
        agent=agent.strip(),
    )


@router.get("/sessions/{session_id}")
async def session_page(
    request: Request, session_id: str, tenant: TenantDep, store: StoreDep, read_log: ReadLogDep
) -> Response:
    """Every turn in order, each with its question and answer in full."""
    with read_errors():
        found = await run_in_threadpool(conversations.session_turns, store, tenant, session_id)
    hashes = sorted({h for t in found.turns for h in (t.input_hash, t.output_hash) if h})
    contents = await run_in_threadpool(queries.get_contents, store, tenant, hashes)
    turns = [
        {
            "turn": t,
            "asked": turn_text(contents.get(t.input_hash), "user") or t.input_preview,
            "answered": turn_text(contents.get(t.output_hash), "assistant") or t.output_preview,
        }
        for t in found.turns
    ]
    await read_log.record([session_id, *[t.trace_id for t in found.turns], *hashes], len(turns))
    return web.page(
        request,
        "session.html",
        nav="sessions",
        session=found,
        turns=turns,
        totals={
            "tokens": sum(t.input_tokens + t.output_tokens for t in found.turns),
            "cost_usd": sum(t.cost_usd for t in found.turns),
        },
    )


def turn_text(record: dict[str, Any] | None, role: str) -> str:
    """A content record as one turn's text: for a message list, the last message of ``role``
    (the user's question, the assistant's answer or the tool calls it chose); a JSON string
    unquoted; anything else as stored."""
    if not record or record.get("content") is None:
        return ""
    text = str(record["content"])
    if record.get("kind") == "messages":
        chosen = [m for m in views.chat_messages(text) if m.role == role]
        if not chosen:
            return ""
        last = chosen[-1]
        calls = "\n".join(f"{c['name']}({c['arguments']})" for c in last.tool_calls)
        return "\n".join(p for p in (last.text, calls) if p)
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, str) else views.pretty_json(text)

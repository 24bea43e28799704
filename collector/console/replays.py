"""The Replays pages: stored drift reports, and one report with each replayed call's answer set
beside the recorded one.

The diff is computed here with ``difflib`` (line by line, then word by word inside changed lines):
a drift report stores the recorded answer by content hash and the replayed answer as JSON, so the
page reads the recorded content (a logged read) and compares what decides, the text and the tool
calls with their arguments, exactly as the drift summary does.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector.console import web
from agentledger.collector.console.sessions import PREFIX
from agentledger.collector.deps import ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.pipeline.services import queries, reads
from agentledger.pipeline.services.replay.answers import Answer

__all__ = ["DiffRow", "answer_lines", "router", "side_by_side"]

router = APIRouter(prefix=PREFIX)
DIFFED_CALLS = 50
"""Calls whose answers are read and diffed on one page (the most drifted first)."""


@dataclass
class DiffRow:
    """One row of a side-by-side diff: each side's pieces as (text, changed)."""

    tag: str
    """equal, replace, delete (only recorded) or insert (only replayed)."""
    left: list[tuple[str, bool]] = field(default_factory=list)
    right: list[tuple[str, bool]] = field(default_factory=list)


_WORDS = re.compile(r"\s+|\w+|[^\w\s]")


def _words(a: str, b: str) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    wa, wb = _WORDS.findall(a), _WORDS.findall(b)
    left: list[tuple[str, bool]] = []
    right: list[tuple[str, bool]] = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, wa, wb, autojunk=False).get_opcodes():
        if i2 > i1:
            left.append(("".join(wa[i1:i2]), tag != "equal"))
        if j2 > j1:
            right.append(("".join(wb[j1:j2]), tag != "equal"))
    return left, right


def side_by_side(recorded: list[str], replayed: list[str]) -> list[DiffRow]:
    """Two answers' lines aligned: equal lines once per side, changed lines paired with their
    changed words marked, lines only one side has against a blank."""
    rows: list[DiffRow] = []
    matcher = difflib.SequenceMatcher(None, recorded, replayed, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            rows += [DiffRow("equal", [(line, False)], [(line, False)]) for line in recorded[i1:i2]]
            continue
        left, right = recorded[i1:i2], replayed[j1:j2]
        for k in range(max(len(left), len(right))):
            a = left[k] if k < len(left) else None
            b = right[k] if k < len(right) else None
            if a is not None and b is not None:
                rows.append(DiffRow("replace", *_words(a, b)))
            elif a is not None:
                rows.append(DiffRow("delete", [(a, True)], []))
            elif b is not None:
                rows.append(DiffRow("insert", [], [(b, True)]))
    return rows


def answer_lines(answer: Answer) -> list[str]:
    """An answer as the lines a reader compares: its text, then each tool call it chose."""
    lines = answer.text.splitlines() if answer.text else []
    for name, arguments in answer.tool_calls:
        args = arguments if isinstance(arguments, str) else json.dumps(arguments, sort_keys=True)
        lines.append(f"→ {name}({args})")
    return lines


def _replayed(text: str) -> Answer | None:
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return Answer(text, [])
    return Answer.from_dict(value) if isinstance(value, dict) else Answer(str(value), [])


def _recorded(record: dict[str, Any] | None) -> Answer | None:
    if not record or record.get("content") is None:
        return None
    try:
        return Answer.from_messages(json.loads(str(record["content"])))
    except ValueError:
        return Answer(str(record["content"]), [])


@router.get("/replays")
async def replays_page(
    request: Request, tenant: TenantDep, store: StoreDep, read_log: ReadLogDep
) -> Response:
    found = await run_in_threadpool(reads.replays, store, tenant, limit=200)
    await read_log.record([r.run_id for r in found], len(found))
    return web.page(request, "replays.html", nav="replays", runs=found)


@router.get("/replays/{run_id}")
async def replay_page(
    request: Request, run_id: str, tenant: TenantDep, store: StoreDep, read_log: ReadLogDep
) -> Response:
    with read_errors():
        run = await run_in_threadpool(reads.replay_run, store, tenant, run_id)
    shown = run.calls[:DIFFED_CALLS]
    hashes = sorted({c.recorded_output_hash for c in shown if c.recorded_output_hash})
    contents = await run_in_threadpool(queries.get_contents, store, tenant, hashes)
    calls = []
    for call in shown:
        recorded = _recorded(contents.get(call.recorded_output_hash))
        replayed = _replayed(call.replayed_answer)
        calls.append(
            {
                "call": call,
                "recorded": recorded is not None,
                "replayed": replayed is not None,
                "rows": side_by_side(
                    answer_lines(recorded) if recorded else [],
                    answer_lines(replayed) if replayed else [],
                ),
            }
        )
    await read_log.record([run_id, *[c.span_id for c in shown], *hashes], len(shown))
    filters = {k: v for k, v in run.filter.items() if v not in (None, "", [], False)}
    return web.page(
        request,
        "replay.html",
        nav="replays",
        run=run,
        calls=calls,
        more=len(run.calls) - len(shown),
        filters=filters,
    )

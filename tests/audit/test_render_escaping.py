"""The Markdown (and HTML) audit report quotes recorded values inertly: a prompt, tool argument or
name holding Markdown, HTML, pipes, backticks or newlines cannot restyle the report, inject
markup or forge lines of its own."""

from __future__ import annotations

import re
from typing import Any

from agentledger.pipeline.services.audit import to_html, to_markdown

EVIL = "x | y <script>alert(1)</script> **bold** `tick` ``two`` _it_ [l](javascript:x)\n# forged\n- verified: yes"


def _result(evil: str = EVIL) -> dict[str, Any]:
    action = {
        "kind": "TOOL",
        "name": evil,
        "tool_name": evil,
        "span_id": "a" * 16,
        "started_at": "2026-03-01T10:00:00+00:00",
        "agent_name": evil,
        "session_id": evil,
        "user_id": None,
        "arguments": {"q": evil},
        "arguments_hash": "b" * 64,
    }
    return {
        "query": evil,
        "tenant": "acme",
        "trace_id": "c" * 32,
        "actions": [
            {
                "trace_id": "c" * 32,
                "action": action,
                "authority": {
                    "attributed": True,
                    "principal_id": evil,
                    "principal_name": evil,
                    "principal_role": evil,
                    "principal_chain": [evil, "ok"],
                    "policy_id": evil,
                    "source": "tool_span",
                },
                "decided_by": {
                    "span_id": "d" * 16,
                    "at": "2026-03-01T09:59:59+00:00",
                    "found_by": "tool_call_id",
                    "provider": evil,
                    "requested_model": evil,
                    "answered_model": evil,
                    "system_fingerprint": evil,
                    "chose": {"name": evil, "arguments": {"q": evil}},
                    "executed_as_chosen": True,
                },
                "intent": None,
                "governance_recorded": True,
                "controls": [
                    {
                        "at": "2026-03-01T09:00:00+00:00",
                        "action": "pause",
                        "scope": "session",
                        "target": evil,
                        "by": evil,
                        "reason": evil,
                        "held_this_call": False,
                    }
                ],
                "pauses_in_force_at_action": [],
                "context": [
                    {"kind": "AGENT", "name": evil, "started_at": "t", "input": evil},
                ],
                "llm_calls": [
                    {
                        "seq": 1,
                        "span_id": "e" * 16,
                        "started_at": "t0",
                        "ended_at": "t1",
                        "requested_model": evil,
                        "answered_model": evil,
                        "system_fingerprint": None,
                        "parameters": {"temperature": evil},
                        "tools": [],
                        "input_hash": "f" * 64,
                        "input_verified": True,
                        "messages": [
                            {"role": evil, "content": evil + "\n```\n" + evil},
                            {
                                "role": "assistant",
                                "content": None,
                                "tool_calls": [{"name": evil, "id": evil, "arguments": evil}],
                            },
                        ],
                        "output": [{"role": "assistant", "content": evil, "tool_call_id": evil}],
                    }
                ],
                "documents": [
                    {
                        "seq": 2,
                        "rank": 1,
                        "id": evil,
                        "score": 0.5,
                        "retrieved_at": "t2",
                        "retriever": evil,
                        "content_hash": "0" * 64,
                        "verified": False,
                        "content": evil,
                    }
                ],
                "tool_outputs": [
                    {
                        "seq": 3,
                        "tool_name": evil,
                        "tool_call_id": evil,
                        "status": "OK",
                        "ended_at": "t3",
                        "arguments": {"q": evil},
                        "output": evil,
                    }
                ],
                "other_steps": [],
                "integrity": {
                    "contents_verified": 1,
                    "contents_checked": 2,
                    "missing": [],
                    "changed": [evil],
                },
                "left_out": {"spans_after_action": 0, "action_result": True},
            }
        ],
    }


def _outside_fences(markdown: str) -> list[str]:
    """The report's lines that are not inside a fenced block (those are inert as a whole)."""
    lines, fence = [], None
    for line in markdown.splitlines():
        if fence is None and line.startswith("```"):
            fence = line
        elif fence is not None and line == fence:
            fence = None
        elif fence is None:
            lines.append(line)
    assert fence is None, "a fence was left open"
    return lines


def test_markdown_quotes_values_inertly() -> None:
    markdown = to_markdown(_result())
    lines = _outside_fences(markdown)
    # no quoted value starts a line of its own: the only headings and items are the report's
    assert not [line for line in lines if line.startswith(("# forged", "- verified"))]
    assert sum(line.startswith("# ") for line in lines) == 1  # the title alone
    prose = [re.sub(r"(`+).+?(?<!`)\1(?!`)", "", line) for line in lines]  # code spans removed
    for line in prose:
        # outside code spans, every Markdown or HTML character of a value is backslash-escaped
        assert "<script>" not in line and not re.search(r"(?<!\\)[|`<>\[]", line), line
    assert "\\<script\\>" in markdown and "\\*\\*bold\\*\\*" in markdown  # prose, escaped
    # a code span is fenced with more backticks than the value holds (it has `` inside)
    assert "```x | y <script>alert(1)</script> **bold** `tick` ``two`` _it_" in markdown
    assert "\u240a# forged\u240a- verified" in markdown  # newlines shown, on the value's line


def test_html_report_escapes_what_it_quotes() -> None:
    page = to_html(_result())
    body = page[page.index("<body>") :]
    assert "<script" not in body and "&lt;script&gt;" in body
    assert "<a " not in body and "href" not in body  # the [l](javascript:x) stays text
    # the value's ** and _ stay text: the only bold and italics are the report's own marks
    assert "<strong>bold</strong>" not in body and "<em>it</em>" not in body
    assert "**bold**" in body and "_it_" in body
    # code spans: the whole value, backticks included, in one <code>, never split apart
    assert "<code>x | y &lt;script&gt;alert(1)&lt;/script&gt; **bold** `tick` ``two`` _it_" in body
    assert not re.search(r"<h1>forged|<li>verified", body)
    assert "<h1>Audit of x | y &lt;script&gt;" in body  # the escapes read as the plain value
    prose = re.sub(r"<(pre|code)>.*?</\1>", "", body, flags=re.S)  # JSON keeps its own escapes
    assert "\\" not in prose and "\u240a# forged" in prose  # no Markdown escape shows


def test_plain_values_read_as_before() -> None:
    result = _result("lookup_journal_entry")
    markdown = to_markdown(result)
    assert "## Action: tool call `lookup_journal_entry`" in markdown
    assert "**1. LLM call `eeeeeeeeeeeeeeee`**" in markdown
    assert "<h2>Action: tool call <code>lookup_journal_entry</code></h2>" in to_html(result)

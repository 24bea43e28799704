"""The audit as a report a person reads: Markdown, and HTML built from that Markdown so the
two never say different things."""

from __future__ import annotations

import html
import json
import re
from typing import Any

__all__ = ["to_html", "to_markdown"]


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

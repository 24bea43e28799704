"""The audit as a report a person reads: Markdown, and HTML built from that Markdown so the
two never say different things.

Everything the report quotes was recorded from an agent: prompts, tool arguments, names,
reasons. Rendered as is, a value holding ``**``, ``<script>``, a backtick, a pipe or a newline
would restyle the report, inject HTML into whatever renders it, or forge lines of its own
(a heading, a list item saying "verified"). So every quoted value goes through one of three
doors: ``_text`` (inline prose: Markdown and HTML characters backslash-escaped), ``_code`` (a
code span fenced with more backticks than the value holds) or ``_json_block`` (a fenced block
whose fence the value cannot contain); ``_one_line`` turns line breaks and other control
characters of inline values into visible symbols first, so a value never leaves its line.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

__all__ = ["to_html", "to_markdown"]


_CONTROL = {c: chr(0x2400 + c) for c in range(0x20)} | {0x7F: "\u2421"}
"""Control characters as their Unicode control pictures (newline: U+240A)."""
_CONTROL.update({0x85: "\u2424", 0x2028: "\u2424", 0x2029: "\u2424"})  # other line breaks

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>#|~&!])")
"""Characters that start Markdown inline syntax, a table cell or HTML (escaped by ``_text``)."""


def _one_line(value: Any) -> str:
    """``value`` as text that stays on one line: control characters become visible symbols."""
    return str(value).translate(_CONTROL)


def _text(value: Any) -> str:
    """``value`` as inert inline Markdown prose (every Markdown or HTML character escaped)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _one_line(value))


def _code(value: Any) -> str:
    """``value`` as a Markdown code span: fenced with one backtick more than its longest run of
    backticks, padded with a space where it starts or ends with one (CommonMark)."""
    text = _one_line(value)
    if not text.strip():
        return "` `" if not text else f"`{text}`"
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", text)), default=0) + 1)
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _json(value: Any) -> str:
    """A JSON value inline, as a code span."""
    return _code(json.dumps(value, ensure_ascii=False))


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
        head = f"**{_text(m.get('role', '?'))}**"
        if m.get("tool_call_id"):
            head += f" (answers tool call {_code(m['tool_call_id'])})"
        lines.append(head + ":")
        if m.get("content") is not None:
            lines.append(_json_block(m["content"]))
        for call in m.get("tool_calls") or ():
            lines.append(
                f"- calls {_code(call.get('name'))} (id {_code(call.get('id'))}) "
                f"with {_json(call.get('arguments'))}"
            )
    return lines


def _yes_no(value: Any) -> str:
    return "yes" if value else "NO"


def _action_markdown(r: dict[str, Any]) -> list[str]:
    a, who, by = r["action"], r["authority"], r["decided_by"]
    title = (
        f"tool call {_code(a.get('tool_name'))}"
        if a["kind"] != "LLM"
        else f"model decision {_code(a['name'])}"
    )
    out = [
        f"## Action: {title}",
        "",
        f"- span {_code(a['span_id'])} of trace {_code(r['trace_id'])}, "
        f"started {_text(a['started_at'])}",
        f"- agent {_code(a.get('agent_name') or '?')}, session {_code(a.get('session_id') or '-')}, "
        f"user {_code(a.get('user_id') or '-')}",
    ]
    if a["kind"] != "LLM":
        out.append(
            f"- arguments: {_json(a.get('arguments'))} (sha256 {_code(a.get('arguments_hash'))})"
        )
    out += ["", "### Under whose authority", ""]
    if who["attributed"]:
        role = f", {_text(who['principal_role'])}" if who["principal_role"] else ""
        name = f" ({_text(who['principal_name'])}{role})" if who["principal_name"] else ""
        chain = " → ".join(_code(p) for p in who["principal_chain"]) or "-"
        out += [
            f"- principal {_code(who['principal_id'])}{name}",
            f"- delegation chain: {chain}",
            f"- policy {_code(who['policy_id'] or '-')} "
            f"(recorded on the {_text(who['source'].replace('_', ' '))})",
        ]
    else:
        out.append("- **unattributed**: no principal was recorded for this action")
    out += ["", "### Which model version decided", ""]
    if by:
        out += [
            f"- LLM call {_code(by['span_id'])} at {_text(by['at'])} "
            f"(found by {_text(by['found_by'].replace('_', ' '))})",
            (
                f"- provider {_code(by['provider'] or '?')}, requested {_code(by['requested_model'])}, "
                f"answered **{_code(by['answered_model'])}**, "
                f"system fingerprint {_code(by['system_fingerprint'] or '-')}"
            ),
        ]
        if by["chose"]:
            executed = by["executed_as_chosen"]
            out.append(
                f"- chose {_code(by['chose']['name'])} with {_json(by['chose']['arguments'])}"
                + ("" if executed is None else f"; executed as chosen: **{_yes_no(executed)}**")
            )
    else:
        out.append("- no LLM call precedes this action in the trace")
    out += ["", "### Intent and controls", ""]
    intent = r["intent"]
    if intent:
        match = intent["arguments_match_action"]
        out += [
            (
                f"- intent {_code(intent['intent_id'])} asked {_text(intent['requested_at'])}, "
                f"acknowledged **{_text(intent['acknowledged_at'])}** "
                f"({_text(intent['decision'])}, {_text(intent['attempts'])} ask(s))"
            ),
            f"- arguments sha256 {_code(intent['arguments_sha256'])}"
            + ("" if match is None else f"; matches the tool span: **{_yes_no(match)}**"),
        ]
    elif r["governance_recorded"]:
        out.append("- no intent record (the tool was not governed)")
    else:
        out.append("- governance tables are not installed in this store")
    for c in r["controls"]:
        held = " — held this call" if c["held_this_call"] else ""
        out.append(
            f"- {_text(c['at'])}: **{_text(c['action'])}** {_text(c['scope'])} "
            f"{_code(c['target'])} by {_text(c['by'] or '?')}: {_text(c['reason'] or '-')}{held}"
        )
    if not r["controls"]:
        out.append("- no pause or resume applied to this run")
    if r["pauses_in_force_at_action"]:
        pauses = ", ".join(_code(p) for p in r["pauses_in_force_at_action"])
        out.append(f"- **pauses in force when it acted**: {pauses}")
    out += ["", "### What the agent saw, in order", ""]
    for c in r["context"]:
        out += [
            f"**Running {_text(str(c['kind']).lower())} {_code(c['name'])}** "
            f"(started {_text(c['started_at'])}), input:",
            _json_block(c["input"]),
            "",
        ]
    by_seq: dict[int, list[str]] = {}
    for llm in r["llm_calls"]:
        fingerprint = (
            f", fingerprint {_code(llm['system_fingerprint'])}" if llm["system_fingerprint"] else ""
        )
        lines = [
            (
                f"**{_text(llm['seq'])}. LLM call {_code(llm['span_id'])}** "
                f"{_text(llm['started_at'])} → {_text(llm['ended_at'])}: "
                f"requested {_code(llm['requested_model'])}, "
                f"answered {_code(llm['answered_model'])}{fingerprint}; "
                f"parameters {_json(llm['parameters'])}; {len(llm['tools'])} tool(s) offered; "
                f"messages sha256 {_code(llm['input_hash'])}"
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
                    f"**{_text(d['seq'])}.{_text(d['rank'])} Document {_code(d['id'])}** "
                    f"(rank {_text(d['rank'])}, score {_text(score)}, retrieved "
                    f"{_text(d['retrieved_at'])} by {_code(d['retriever'])}, "
                    f"sha256 {_code(d['content_hash'])}"
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
                    f"**{_text(t['seq'])}. Tool {_code(t['tool_name'])}** "
                    f"(call {_code(t['tool_call_id'] or '-')}, {_text(t['status'])}, "
                    f"ended {_text(t['ended_at'])}) with {_json(t['arguments'])} returned:"
                ),
                _json_block(t["output"]),
                "",
            ]
        )
    for s in r["other_steps"]:
        by_seq.setdefault(s["seq"], []).extend(
            [
                f"**{_text(s['seq'])}. {_text(str(s['kind']).title())} {_code(s['name'])}** "
                f"({_text(s['started_at'])} → {_text(s['ended_at'])}): input / output",
                _json_block(s["input"]),
                _json_block(s["output"]),
                "",
            ]
        )
    for seq in sorted(by_seq):
        out += by_seq[seq]
    if not by_seq:
        out += ["_nothing had finished before this action_", ""]
    out += _upstream_markdown(r.get("upstream") or [])
    integrity, left = r["integrity"], r["left_out"]
    missing = ", ".join(_code(h) for h in integrity["missing"])
    changed = ", ".join(_code(h) for h in integrity["changed"])
    out += [
        "### Integrity",
        "",
        f"- {_text(integrity['contents_verified'])} of {_text(integrity['contents_checked'])} "
        "content records match their SHA-256"
        + (f"; missing: {missing}" if missing else "")
        + (f"; **changed**: {changed}" if changed else ""),
        f"- left out: {_text(left['spans_after_action'])} span(s) that had not finished before "
        "the action" + ("; the action's own result" if left["action_result"] else ""),
        "",
    ]
    return out


def _upstream_markdown(hops: list[dict[str, Any]]) -> list[str]:
    """What the agents before this one saw and handed on, one section per handoff."""
    if not hops:
        return []
    out = ["### What upstream agents saw and handed on", ""]
    for hop in hops:
        head = f"#### {_code(hop['delegation_step'])} (handoff {_code(hop['handoff_id'])})"
        if not hop["sender_recorded"]:
            out += [
                head,
                "",
                f"received {_text(hop['received_at'])} by span {_code(hop['received_span_id'])}; "
                f"the spans of {_code(hop['from_agent'])} are not in the store",
                "",
            ]
            continue
        out += [
            head,
            "",
            f"handed off {_text(hop['handed_off_at'])} by span {_code(hop['handoff_span_id'])} "
            f"(trace {_code(hop['trace_id'])}), received {_text(hop['received_at'])}, for "
            f"principal {_code(hop['principal_id'] or '-')}",
            "",
        ]
        items: list[tuple[int, list[str]]] = []
        for llm in hop["llm_calls"]:
            lines = [
                f"**{_text(llm['seq'])}. {_text(llm['agent'])}: LLM call {_code(llm['span_id'])}** "
                f"{_text(llm['started_at'])}: answered {_code(llm['answered_model'])}",
                "",
            ]
            lines += _message_lines(llm["messages"]) + ["", "Answer:"]
            items.append((llm["seq"], lines + _message_lines(llm["output"]) + [""]))
        for d in hop["documents"]:
            items.append(
                (
                    d["seq"],
                    [
                        f"**{_text(d['seq'])}. {_text(d['agent'])}: document {_code(d['id'])}** "
                        f"(sha256 {_code(d['content_hash'])}"
                        f"{' verified' if d['verified'] else ' NOT VERIFIED'})",
                        _json_block(d["content"]),
                        "",
                    ],
                )
            )
        for t in hop["tool_outputs"]:
            items.append(
                (
                    t["seq"],
                    [
                        f"**{_text(t['seq'])}. {_text(t['agent'])}: tool {_code(t['tool_name'])}** "
                        f"with {_json(t['arguments'])} returned:",
                        _json_block(t["output"]),
                        "",
                    ],
                )
            )
        for _seq, lines in sorted(items, key=lambda item: item[0]):
            out += lines
        if not items:
            out += ["_nothing had finished before the handoff_", ""]
    return out


def to_markdown(result: dict[str, Any]) -> str:
    """The audit (``audit``'s result) as a readable Markdown report."""
    out = [
        f"# Audit of {_text(result['query'])}",
        "",
        f"Tenant {_code(result['tenant'])}, trace {_code(result['trace_id'])}: "
        f"{len(result['actions'])} action(s).",
        "",
    ]
    for report in result["actions"]:
        out += _action_markdown(report)
    return "\n".join(out).rstrip() + "\n"


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])_(.+?)_(?!\w)")
_ATOM = re.compile(r"(`+)(.+?)(?<!`)\1(?!`)|\\([!-/:-@\[-`{-~])")
"""A code span (a run of backticks, its text, the same run again) or a backslash escape."""
_SLOT = "\ue000{}\ue001"


def _inline(text: str) -> str:
    """The report's inline Markdown as HTML: code spans (their text kept as is) and backslash
    escapes are set aside first, so bold and italics apply only to the report's own marks,
    never to a quoted value's; everything is HTML-escaped."""
    text = text.replace("\ue000", "\ufffd").replace("\ue001", "\ufffd")  # ours alone
    atoms: list[str] = []

    def set_aside(m: re.Match[str]) -> str:
        if m.group(3) is not None:
            atoms.append(html.escape(m.group(3)))
        else:
            code = m.group(2)
            if code.startswith(" ") and code.endswith(" ") and code.strip():
                code = code[1:-1]
            atoms.append(f"<code>{html.escape(code)}</code>")
        return _SLOT.format(len(atoms) - 1)

    marked = _BOLD.sub(r"<strong>\1</strong>", html.escape(_ATOM.sub(set_aside, text)))
    marked = _ITALIC.sub(r"<em>\1</em>", marked)
    return re.sub("\ue000(\\d+)\ue001", lambda m: atoms[int(m.group(1))], marked)


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

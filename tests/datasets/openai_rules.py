"""OpenAI's documented rules for fine-tuning files, as a validator independent of the exporter.

Sources: the fine-tuning guide (chat format, function calling examples), the
chat completions API reference (message and tool-call shapes), and the
preference fine-tuning (DPO) guide. Each rule is one check that returns the
problem in words, so a failing test says which rule broke.
"""

from __future__ import annotations

import json
import re
from typing import Any

ROLES = {"system", "user", "assistant", "tool"}
FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
MESSAGE_KEYS = {
    "system": {"role", "content", "name"},
    "user": {"role", "content", "name"},
    "assistant": {"role", "content", "name", "tool_calls", "weight"},
    "tool": {"role", "content", "tool_call_id"},
}
EXAMPLE_KEYS = {"messages", "tools", "parallel_tool_calls"}


def _content_ok(role: str, content: Any) -> bool:
    if isinstance(content, str):
        return True
    if role == "user" and isinstance(content, list) and content:
        for part in content:
            if (
                part.get("type") == "text"
                and isinstance(part.get("text"), str)
                and set(part) == {"type", "text"}
            ):
                continue
            if (
                part.get("type") == "image_url"
                and set(part) == {"type", "image_url"}
                and isinstance(part["image_url"], dict)
                and isinstance(part["image_url"].get("url"), str)
            ):
                continue
            return False
        return True
    return False


def _tool_call_problems(call: Any, where: str) -> list[str]:
    if not isinstance(call, dict) or set(call) != {"id", "type", "function"}:
        return [f"{where}: a tool call has exactly id, type, function"]
    problems = []
    if not isinstance(call["id"], str) or not call["id"]:
        problems.append(f"{where}: tool call id must be a non-empty string")
    if call["type"] != "function":
        problems.append(f"{where}: tool call type must be 'function'")
    fn = call["function"]
    if not isinstance(fn, dict) or set(fn) != {"name", "arguments"}:
        return problems + [f"{where}: function has exactly name and arguments"]
    if not isinstance(fn["name"], str) or not FUNCTION_NAME.match(fn["name"]):
        problems.append(f"{where}: function name {fn['name']!r} must match {FUNCTION_NAME.pattern}")
    if not isinstance(fn["arguments"], str):
        problems.append(f"{where}: arguments must be a JSON-encoded string")
    else:
        try:
            if not isinstance(json.loads(fn["arguments"]), dict):
                problems.append(f"{where}: arguments must encode a JSON object")
        except ValueError:
            problems.append(f"{where}: arguments must be valid JSON")
    return problems


def message_problems(messages: Any, *, must_end_with_assistant: bool = True) -> list[str]:
    """Roles, shapes, and the tool-call protocol: every tool turn answers a call of the assistant
    turn right before it (or before the tool turns in between), and every call is answered before
    the conversation goes on."""
    if not isinstance(messages, list) or not messages:
        return ["messages must be a non-empty list"]
    problems: list[str] = []
    open_calls: list[str] = []
    seen_ids: set[str] = set()
    for i, m in enumerate(messages):
        where = f"message {i}"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            problems.append(f"{where}: role must be one of {sorted(ROLES)}")
            continue
        role = m["role"]
        extra = set(m) - MESSAGE_KEYS[role]
        if extra:
            problems.append(f"{where}: keys {sorted(extra)} not allowed for role {role}")
        if role != "tool" and open_calls:
            problems.append(
                f"{where}: tool calls {open_calls} not answered before a {role} message"
            )
            open_calls = []
        if role == "tool":
            if not isinstance(m.get("content"), str):
                problems.append(f"{where}: tool content must be a string")
            call_id = m.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in open_calls:
                problems.append(
                    f"{where}: tool_call_id {call_id!r} answers no open call of the previous assistant turn"
                )
            else:
                open_calls.remove(call_id)
            continue
        if role == "assistant":
            calls = m.get("tool_calls")
            if calls is not None:
                if not isinstance(calls, list) or not calls:
                    problems.append(f"{where}: tool_calls must be a non-empty list")
                    calls = []
                for call in calls:
                    problems.extend(_tool_call_problems(call, where))
                    cid = call.get("id") if isinstance(call, dict) else None
                    if isinstance(cid, str):
                        if cid in seen_ids:
                            problems.append(f"{where}: tool call id {cid!r} used twice")
                        seen_ids.add(cid)
                        open_calls.append(cid)
            if "content" in m and m["content"] is not None and not isinstance(m["content"], str):
                problems.append(f"{where}: assistant content must be a string")
            if not calls and not (isinstance(m.get("content"), str) and m["content"]):
                problems.append(f"{where}: an assistant message needs content or tool_calls")
            if "weight" in m and m["weight"] not in (0, 1):
                problems.append(f"{where}: weight must be 0 or 1")
            continue
        if "content" not in m or not _content_ok(role, m["content"]):
            problems.append(
                f"{where}: {role} content must be a string"
                + (" or text/image parts" if role == "user" else "")
            )
        if "name" in m and not (isinstance(m["name"], str) and FUNCTION_NAME.match(m["name"])):
            problems.append(f"{where}: name must match {FUNCTION_NAME.pattern}")
    if must_end_with_assistant:
        if messages[-1].get("role") != "assistant":
            problems.append("the last message must be the assistant turn to learn")
        elif open_calls and open_calls != [c["id"] for c in messages[-1].get("tool_calls") or ()]:
            problems.append(f"tool calls {open_calls} left unanswered before the last turn")
    elif open_calls:
        problems.append(f"tool calls {open_calls} left unanswered")
    if (
        not any(m.get("role") == "assistant" for m in messages if isinstance(m, dict))
        and must_end_with_assistant
    ):
        problems.append("at least one assistant message is required")
    return problems


def tools_problems(tools: Any, messages: list[dict[str, Any]]) -> list[str]:
    if not isinstance(tools, list) or not tools:
        return ["tools must be a non-empty list"]
    problems = []
    names = []
    for i, tool in enumerate(tools):
        if (
            not isinstance(tool, dict)
            or set(tool) != {"type", "function"}
            or tool["type"] != "function"
        ):
            problems.append(f"tool {i}: must be {{'type': 'function', 'function': {{...}}}}")
            continue
        fn = tool["function"]
        if not isinstance(fn, dict) or not set(fn) <= {
            "name",
            "description",
            "parameters",
            "strict",
        }:
            problems.append(f"tool {i}: function has name, description, parameters (strict) only")
            continue
        if not isinstance(fn.get("name"), str) or not FUNCTION_NAME.match(fn["name"]):
            problems.append(f"tool {i}: bad function name {fn.get('name')!r}")
        names.append(fn.get("name"))
        if "description" in fn and not isinstance(fn["description"], str):
            problems.append(f"tool {i}: description must be a string")
        if "parameters" in fn and not (
            isinstance(fn["parameters"], dict) and fn["parameters"].get("type") == "object"
        ):
            problems.append(f"tool {i}: parameters must be a JSON schema object")
    if len(set(names)) != len(names):
        problems.append("tool names must be unique")
    for m in messages:
        for call in m.get("tool_calls") or ():
            if call["function"]["name"] not in names:
                problems.append(
                    f"tool call to {call['function']['name']!r}, which tools does not declare"
                )
    return problems


def chat_example_problems(line: str) -> list[str]:
    """Every problem of one line of a chat fine-tuning file (empty list = valid)."""
    try:
        example = json.loads(line)
    except ValueError as exc:
        return [f"not JSON: {exc}"]
    if not isinstance(example, dict):
        return ["a line must be a JSON object"]
    problems = [f"unknown top-level key {k!r}" for k in set(example) - EXAMPLE_KEYS]
    problems += message_problems(example.get("messages"))
    if "tools" in example and isinstance(example.get("messages"), list):
        problems += tools_problems(example["tools"], example["messages"])
    return problems


def _single_assistant(value: Any, key: str) -> list[str]:
    if not isinstance(value, list) or len(value) != 1 or value[0].get("role") != "assistant":
        return [f"{key} must hold exactly one assistant message"]
    return [f"{key}: {p}" for p in message_problems(value)]


def preference_problems(line: str) -> list[str]:
    """TRL's conversational preference format: prompt (messages ending with the user's turn),
    chosen and rejected (one assistant message each)."""
    example = json.loads(line)
    problems = [f"unknown key {k!r}" for k in set(example) - {"prompt", "chosen", "rejected"}]
    prompt = example.get("prompt")
    problems += [f"prompt: {p}" for p in message_problems(prompt, must_end_with_assistant=False)]
    if isinstance(prompt, list) and prompt and prompt[-1].get("role") not in ("user", "tool"):
        problems.append("prompt must end with a user (or tool) turn")
    problems += _single_assistant(example.get("chosen"), "chosen")
    problems += _single_assistant(example.get("rejected"), "rejected")
    if example.get("chosen") == example.get("rejected"):
        problems.append("chosen and rejected are the same")
    return problems


def openai_dpo_problems(line: str) -> list[str]:
    """OpenAI preference fine-tuning: input.messages (+ tools), preferred_output and
    non_preferred_output with one assistant message each."""
    example = json.loads(line)
    problems = [
        f"unknown key {k!r}"
        for k in set(example) - {"input", "preferred_output", "non_preferred_output"}
    ]
    inp = example.get("input") or {}
    problems += [
        f"unknown input key {k!r}" for k in set(inp) - {"messages", "tools", "parallel_tool_calls"}
    ]
    problems += [
        f"input: {p}" for p in message_problems(inp.get("messages"), must_end_with_assistant=False)
    ]
    problems += _single_assistant(example.get("preferred_output"), "preferred_output")
    problems += _single_assistant(example.get("non_preferred_output"), "non_preferred_output")
    return problems

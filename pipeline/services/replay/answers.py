"""Answers reduced to what decides (the text, the tools chosen and their arguments) and their
difference: providers mint new ids and reword freely, so drift is judged on these alone."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

from agentledger.pipeline.normalize.fields import parse_arguments

__all__ = ["Answer", "Diff", "compare"]


@dataclass(frozen=True)
class Answer:
    """What a model answered, reduced to what decides: the text, and the tools it chose with arguments."""

    text: str
    tool_calls: list[tuple[str, Any]]
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tool_calls": [{"name": n, "arguments": a} for n, a in self.tool_calls],
            "model": self.model,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Answer:
        return cls(
            d.get("text", ""),
            [(c["name"], c.get("arguments")) for c in d.get("tool_calls", [])],
            d.get("model", ""),
        )

    @classmethod
    def from_messages(cls, messages: Any, model: str = "") -> Answer:
        """From canonical output messages (as the store holds them)."""
        texts: list[str] = []
        calls: list[tuple[str, Any]] = []
        for m in messages if isinstance(messages, list) else ():
            if not isinstance(m, dict):
                continue
            content = m.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts += [
                    p["text"]
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "text" and p.get("text")
                ]
            calls += [
                (c.get("name", ""), parse_arguments(c.get("arguments")))
                for c in m.get("tool_calls") or ()
            ]
        return cls("\n".join(texts), calls, model)


@dataclass(frozen=True)
class Diff:
    """How a replayed answer differs from the recorded one."""

    same_tools: bool
    """The same tool names, in the same order (both empty counts as the same)."""
    same_arguments: bool
    """The same tools with equal arguments (JSON values compared, not text)."""
    text_similarity: float
    """``difflib.SequenceMatcher`` ratio of the two texts, 1.0 when both are empty."""
    token_jaccard: float
    """Jaccard index of the two texts' lower-case word sets, 1.0 when both are empty."""

    @property
    def drift(self) -> bool:
        return not (self.same_tools and self.same_arguments and self.text_similarity == 1.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "same_tools": self.same_tools,
            "same_arguments": self.same_arguments,
            "text_similarity": self.text_similarity,
            "token_jaccard": self.token_jaccard,
            "drift": self.drift,
        }


_WORD = re.compile(r"\w+")


def compare(recorded: Answer, replayed: Answer) -> Diff:
    """The difference between two answers (ids of tool calls are ignored: providers mint new ones)."""
    same_tools = [n for n, _ in recorded.tool_calls] == [n for n, _ in replayed.tool_calls]
    same_arguments = same_tools and all(
        parse_arguments(a) == parse_arguments(b)
        for (_, a), (_, b) in zip(recorded.tool_calls, replayed.tool_calls)
    )
    a, b = recorded.text, replayed.text
    similarity = 1.0 if a == b else difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    jaccard = 1.0 if not wa and not wb else len(wa & wb) / len(wa | wb)
    return Diff(same_tools, same_arguments, round(similarity, 6), round(jaccard, 6))

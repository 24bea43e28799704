"""OpenLIT: GenAI attributes plus OpenLIT's cost and content shapes."""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.normalize.conventions import genai
from agentledger.pipeline.normalize.fields import Fields, message
from agentledger.schemas.attributes import GenAI as G
from agentledger.schemas.attributes import Resource

__all__ = ["extract", "matches"]


def matches(attrs: dict[str, str], resource: dict[str, str], scope_name: str) -> bool:
    return resource.get(Resource.SDK_NAME) == "openlit" or scope_name.startswith("openlit")


def extract(attrs: dict[str, str], f: Fields, events: list[dict[str, Any]] | None = None) -> None:
    genai.extract(attrs, f, events)
    # Older OpenLIT releases put flattened "role: text" transcripts in these attributes.
    if f.input_messages is None and isinstance(attrs.get(G.PROMPT_PREFIX), str):
        f.input_messages = [message("user", attrs[G.PROMPT_PREFIX])]
    if f.output_messages is None and isinstance(attrs.get(G.COMPLETION_PREFIX), str):
        f.output_messages = [message("assistant", attrs[G.COMPLETION_PREFIX])]

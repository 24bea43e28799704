"""The OpenInference instrumentors AgentLedger enables, each only when its target library is installed.

The instrumentor packages are optional (``pip install agentledger[instrument]``);
a library that is installed without its instrumentor is reported, not an error.
Presence is checked with ``importlib.util.find_spec`` so nothing is imported
for a library the agent does not use.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from dataclasses import dataclass
from typing import Any

__all__ = ["INSTRUMENTORS", "Instrumentor", "installed"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Instrumentor:
    """One framework: its name, the module whose presence means it is used, and its instrumentor."""

    name: str
    target: str
    """Module of the instrumented library (``find_spec`` must find it)."""
    module: str
    """Module of the OpenInference instrumentor."""
    cls: str
    """Class name of the instrumentor in ``module``."""
    package: str
    """PyPI package that provides ``module``."""

    def target_installed(self) -> bool:
        return _has_module(self.target)

    def load(self) -> Any | None:
        """A new instance of the instrumentor, or None when its package is missing."""
        if not _has_module(self.module):
            return None
        return getattr(importlib.import_module(self.module), self.cls)()


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a parent package that fails to import, or a broken spec
        return False


INSTRUMENTORS: tuple[Instrumentor, ...] = (
    Instrumentor(
        "openai",
        "openai",
        "openinference.instrumentation.openai",
        "OpenAIInstrumentor",
        "openinference-instrumentation-openai",
    ),
    Instrumentor(
        "anthropic",
        "anthropic",
        "openinference.instrumentation.anthropic",
        "AnthropicInstrumentor",
        "openinference-instrumentation-anthropic",
    ),
    Instrumentor(
        "langchain",
        "langchain_core",
        "openinference.instrumentation.langchain",
        "LangChainInstrumentor",
        "openinference-instrumentation-langchain",
    ),
    Instrumentor(
        "llama_index",
        "llama_index.core",
        "openinference.instrumentation.llama_index",
        "LlamaIndexInstrumentor",
        "openinference-instrumentation-llama-index",
    ),
    Instrumentor(
        "litellm",
        "litellm",
        "openinference.instrumentation.litellm",
        "LiteLLMInstrumentor",
        "openinference-instrumentation-litellm",
    ),
    Instrumentor(
        "openai_agents",
        "agents",
        "openinference.instrumentation.openai_agents",
        "OpenAIAgentsInstrumentor",
        "openinference-instrumentation-openai-agents",
    ),
    Instrumentor(
        "mcp",
        "mcp",
        "openinference.instrumentation.mcp",
        "MCPInstrumentor",
        "openinference-instrumentation-mcp",
    ),
    Instrumentor(
        "bedrock",
        "botocore",
        "openinference.instrumentation.bedrock",
        "BedrockInstrumentor",
        "openinference-instrumentation-bedrock",
    ),
    Instrumentor(
        "google_genai",
        "google.genai",
        "openinference.instrumentation.google_genai",
        "GoogleGenAIInstrumentor",
        "openinference-instrumentation-google-genai",
    ),
    Instrumentor(
        "mistralai",
        "mistralai",
        "openinference.instrumentation.mistralai",
        "MistralAIInstrumentor",
        "openinference-instrumentation-mistralai",
    ),
    Instrumentor(
        "groq",
        "groq",
        "openinference.instrumentation.groq",
        "GroqInstrumentor",
        "openinference-instrumentation-groq",
    ),
    Instrumentor(
        "crewai",
        "crewai",
        "openinference.instrumentation.crewai",
        "CrewAIInstrumentor",
        "openinference-instrumentation-crewai",
    ),
    Instrumentor(
        "dspy",
        "dspy",
        "openinference.instrumentation.dspy",
        "DSPyInstrumentor",
        "openinference-instrumentation-dspy",
    ),
    Instrumentor(
        "haystack",
        "haystack",
        "openinference.instrumentation.haystack",
        "HaystackInstrumentor",
        "openinference-instrumentation-haystack",
    ),
    Instrumentor(
        "smolagents",
        "smolagents",
        "openinference.instrumentation.smolagents",
        "SmolagentsInstrumentor",
        "openinference-instrumentation-smolagents",
    ),
)
"""Every framework ``instrument()`` knows, by name."""


def installed() -> list[Instrumentor]:
    """The frameworks whose library is installed in this environment."""
    return [i for i in INSTRUMENTORS if i.target_installed()]

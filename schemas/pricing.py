"""Provider price table: cost of a call from its token counts.

Prices are US dollars per million tokens, keyed by provider and model-name
prefix (the longest prefix wins, so ``gpt-4o-2024-08-06`` prices as
``gpt-4o`` and ``gpt-4o-mini-...`` as ``gpt-4o-mini``). Users override or
extend the shipped table with a JSON file of the same shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Final

__all__ = ["ModelPrice", "PriceTable", "PRICE_TABLE_ENV"]

PRICE_TABLE_ENV: Final = "AGENTLEDGER_PRICE_TABLE"
"""Environment variable naming a JSON file merged over the shipped prices."""

_PROVIDER_ALIASES: Final = {
    "openai": "openai",
    "azure": "openai",
    "azure.ai.openai": "openai",
    "az.ai.openai": "openai",
    "anthropic": "anthropic",
    "aws.bedrock": "anthropic",
    "google": "google",
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "vertexai": "google",
    "gemini": "google",
    "mistral": "mistral",
    "mistralai": "mistral",
    "mistral_ai": "mistral",
}


@dataclass(frozen=True)
class ModelPrice:
    """USD per million tokens for one model."""

    input: float
    output: float
    cache_read: float | None = None
    cache_write: float | None = None

    def cost(
        self, input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0
    ) -> float:
        """Cost of one call; cached input is priced separately when the table has a price for it."""
        uncached = input_tokens
        total = 0.0
        if self.cache_read is not None and cache_read:
            uncached -= min(cache_read, uncached)
            total += cache_read * self.cache_read
        if self.cache_write is not None and cache_write:
            total += cache_write * self.cache_write
        total += uncached * self.input + output_tokens * self.output
        return total / 1_000_000


class PriceTable:
    """Prices by provider and model prefix."""

    def __init__(self, table: dict[str, dict[str, ModelPrice]]) -> None:
        self._table = table
        self._cache: dict[tuple[str, str], ModelPrice | None] = {}

    @classmethod
    def load(cls, override: str | Path | None = None) -> PriceTable:
        """The shipped table, with ``override`` (a JSON file) merged over it."""
        raw = json.loads(resources.files("agentledger.schemas").joinpath("prices.json").read_text())
        if override:
            for provider, models in json.loads(Path(override).read_text()).items():
                if not provider.startswith("_"):
                    raw.setdefault(provider, {}).update(models)
        table = {
            provider: {model: ModelPrice(**price) for model, price in models.items()}
            for provider, models in raw.items()
            if not provider.startswith("_")
        }
        return cls(table)

    def entries(self) -> list[tuple[str, str, ModelPrice]]:
        """(provider, model prefix, price) in table order (what a compiled normalizer loads)."""
        return [
            (provider, prefix, price)
            for provider, models in self._table.items()
            for prefix, price in models.items()
        ]

    @staticmethod
    def aliases() -> dict[str, str]:
        """Provider names as spans give them -> providers of the table."""
        return dict(_PROVIDER_ALIASES)

    def lookup(self, provider: str, model: str) -> ModelPrice | None:
        """Price of ``model`` at ``provider`` (any provider when it is unknown), or None."""
        key = (provider, model)
        if key in self._cache:
            return self._cache[key]
        found: ModelPrice | None = None
        canonical = _PROVIDER_ALIASES.get(provider.lower(), provider.lower()) if provider else ""
        name = model.lower().rsplit("/", 1)[-1]
        candidates = [canonical] if canonical in self._table else list(self._table)
        best = -1
        for prov in candidates:
            for prefix, price in self._table[prov].items():
                if name.startswith(prefix) and len(prefix) > best:
                    best, found = len(prefix), price
        if len(self._cache) < 10_000:
            self._cache[key] = found
        return found

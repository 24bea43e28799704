"""The export request: what to export and how to clean it, and its validation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

from agentledger.pipeline.services.datasets.hygiene import DatasetRedactor
from agentledger.pipeline.services.datasets.selection import ExportFilters

__all__ = [
    "FORMATS",
    "INLINE_LIMIT",
    "MANIFEST_NAME",
    "ExportError",
    "ExportRequest",
    "Progress",
    "with_filters",
]

FORMATS: Final = ("chat", "parquet", "preference", "openai-dpo", "trajectory")
"""Export formats."""
MANIFEST_NAME: Final = "manifest.json"
INLINE_LIMIT: Final = 1_000
"""Up to this many members, the manifest lists source span ids and content hashes itself
(``members.jsonl`` always lists them)."""
_CHAT_KINDS: Final = ("LLM", "AGENT", "CHAIN")

Progress = Callable[[int, int | None], None]
"""``progress(done, total)``: candidates processed so far, and how many there are."""


class ExportError(ValueError):
    """The export request cannot be carried out as given."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how to clean it."""

    format: str = "chat"
    filters: ExportFilters = field(default_factory=ExportFilters)
    name: str = ""
    creator: str = ""
    redact: str = "all"
    """``all``, ``none`` or comma-separated presets (secret, iban, card, email, phone)."""
    dedup: bool = True
    near_dedup: bool = True
    quality: bool = True
    """Drop empty, truncated and content-filtered outputs (errored calls: ``filters.successful_only``)."""
    validation_fraction: float = 0.1
    split_by: str = "trace"
    """``trace``, ``session`` or ``example``: what stays together on one side of the split."""
    split_seed: str | None = None
    """Default: the filters' seed."""
    preference_feedback: str | None = None
    """Feedback name that ranks answers for preference pairs (default: every name)."""
    preference_margin: float = 0.0
    """A scored pair needs best - worst > margin."""
    page_size: int = 50_000
    """Spans read per page: memory holds two pages of examples; each page costs one pass over the
    contents the store holds, so larger pages make large exports faster."""
    record: bool = True
    """Record the dataset and its members in the store."""

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "filters"}
        out["filters"] = self.filters.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportRequest:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "filters"}
        return cls(filters=ExportFilters.from_json(data.get("filters") or {}), **known)

    def check(self) -> None:
        if self.format not in FORMATS:
            raise ExportError(f"unknown format {self.format!r}; one of {', '.join(FORMATS)}")
        if not 0 <= self.validation_fraction < 1:
            raise ExportError("validation_fraction must be in [0, 1)")
        if self.split_by not in ("trace", "session", "example"):
            raise ExportError("split_by must be trace, session or example")
        if self.page_size < 1:
            raise ExportError("page_size must be positive")
        if self.format != "trajectory":
            bad = [k for k in self.filters.kinds if k not in _CHAT_KINDS]
            if bad:
                raise ExportError(
                    f"{self.format} examples come from {', '.join(_CHAT_KINDS)} spans, not {bad}"
                )
        try:
            DatasetRedactor.parse(self.redact)
        except ValueError as exc:
            raise ExportError(str(exc)) from exc


def with_filters(request: ExportRequest, **changes: Any) -> ExportRequest:
    """``request`` with some filters changed."""
    return replace(request, filters=replace(request.filters, **changes))

"""What every read model shares: the base class, ISO times, optional keys."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, WithJsonSchema

__all__ = ["IsoTime", "ReadModel", "absent"]


class ReadModel(BaseModel):
    """Base of every answer of the read API.

    The declared fields are what a reader may rely on. A key the model does not
    name yet (a column a migration just added to a table that is read whole)
    is carried through, never dropped: a read must not lose data because a model
    lags a table. The tests hold the models complete for the data they record.
    """

    model_config = ConfigDict(extra="allow")


IsoTime = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""A time as ISO 8601 text, UTC, exactly as the store's reader rendered it (the text is kept, not
re-rendered, so an answer is byte-for-byte what the service returned)."""


def absent(value: Any) -> bool:
    """``exclude_if`` of a key that is left out of an answer rather than sent as null (a usage
    dimension that was not grouped by, a manifest part an export did not write)."""
    return value is None

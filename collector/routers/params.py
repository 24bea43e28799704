"""Page-size query parameters (``limit``, ``top``) whose out-of-range values answer 400.

A read's page size is the one parameter a client can turn into a large query and a large
answer; each has a maximum in ``schemas.read.defaults``. FastAPI's own ``Query(le=...)``
would refuse a value above it with the app's 422 validation error, a list of pydantic
locations; here the range is checked by a dependency instead, so a client asking for too
much gets a 400 that says the allowed range in one sentence. The bounds stay in the
OpenAPI document (``minimum``/``maximum`` of the parameter), so generated clients and the
CLI options (which mirror ``defaults``) know them too. A value that is not an integer at
all is still FastAPI's 422.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, HTTPException, Query

__all__ = ["page_size"]


def page_size(
    default: int, maximum: int, *, name: str = "limit", minimum: int = 1, description: str = ""
) -> Any:
    """A route parameter ``name`` (an int query parameter, ``default`` when absent) that must
    lie in ``[minimum, maximum]``; outside, the request answers 400.

    Use as the parameter's default: ``limit: int = page_size(D.TRACES_LIMIT, D.TRACES_MAX)``.
    """
    if not minimum <= default <= maximum:
        raise ValueError(f"{name}: default {default} outside [{minimum}, {maximum}]")
    text = description or f"How many ({minimum} to {maximum})."

    def read(
        value: int = Query(
            default,
            alias=name,
            description=text,
            json_schema_extra={"minimum": minimum, "maximum": maximum},
        ),
    ) -> int:
        if not minimum <= value <= maximum:
            raise HTTPException(400, f"{name} must be between {minimum} and {maximum}, not {value}")
        return value

    read.__name__ = f"{name}_{minimum}_to_{maximum}"
    return Depends(read)

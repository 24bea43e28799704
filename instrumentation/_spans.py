"""Setting span attributes without the SDK's per-value checks (the hot path's one trick)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span

from agentledger.instrumentation._lean import fast_path_supported

__all__ = ["set_attributes"]


def set_attributes(span: Span, attrs: Mapping[str, Any]) -> None:
    """``span.set_attributes(attrs)`` for values known to be valid, without re-validating each one.

    The SDK checks and copies every value under a lock (about 1 µs an attribute);
    values built here are already plain str/int/float/bool. When the span's
    limits could truncate or drop something, the SDK's own path is taken so
    they are honoured. Writing the SDK span's private container is part of the
    fast path (``_lean.fast_path_supported()``): off it, the public call.
    """
    update = getattr(span, "update_attributes", None)
    if update is not None:  # AgentLedger's lean span: a plain dict until it ends
        update(attrs)
        return
    bounded = getattr(span, "_attributes", None) if fast_path_supported() else None
    d = getattr(bounded, "_dict", None)
    if (
        type(d) is dict
        and getattr(bounded, "max_value_len", 0) is None
        and (bounded.maxlen is None or len(d) + len(attrs) <= bounded.maxlen)  # type: ignore[union-attr]
        and span.is_recording()
    ):
        with bounded._lock:  # type: ignore[union-attr]
            d.update(attrs)
    else:
        span.set_attributes(attrs)

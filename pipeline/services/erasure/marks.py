"""Where erased content was: the mark an audit shows in place of the text.

An audit reads contents by hash; an erased one is gone from ``contents`` but its hash is in an
erasure record (``erasures_v``), which says when and by whose key. The mark is that sentence, so
a reader of the report sees the gap explained instead of a text that silently vanished.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from agentledger.pipeline.store import Store
from agentledger.schemas.records import VIEWS, RecordKind

__all__ = ["erasure_marks", "mark_erased"]

_VIEW = VIEWS[RecordKind.ERASURE]


def erasure_marks(store: Store, tenant: str, hashes: Iterable[str]) -> dict[str, str]:
    """hash -> ``erased on <date> by <key>`` for each of ``hashes`` an erasure record covers (the
    first erasure, when several did)."""
    wanted = sorted({h for h in hashes if h})
    if not wanted:
        return {}
    rows = store.query_rows(
        "SELECT h, toString(toDate(min(recorded_at))) AS day, argMin(actor, recorded_at) AS actor "
        f"FROM {_VIEW} ARRAY JOIN content_sha256 AS h WHERE tenant = {{t:String}} "
        "AND h IN {hs:Array(String)} GROUP BY h",
        {"t": tenant, "hs": wanted},
    )
    return {str(r["h"]): f"erased on {r['day']} by {r['actor']}" for r in rows}


def mark_erased(store: Store, tenant: str, contents: dict[str, dict[str, Any]]) -> None:
    """Put the mark in place of each fetched content that is absent because it was erased:
    ``{"kind": "erased", "content": <mark>, "erased": True}`` (an audit shows the mark where the
    text was and leaves it out of its integrity counts)."""
    absent = [h for h, record in contents.items() if record.get("content") is None]
    for h, mark in erasure_marks(store, tenant, absent).items():
        contents[h] = {"hash": h, "kind": "erased", "content": mark, "erased": True}

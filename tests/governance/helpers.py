"""Reading the governance tables in tests."""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.governance.journal import sync_all
from agentledger.pipeline.store import Store


def intents(store: Store, **where: str) -> list[dict[str, Any]]:
    """Intent rows (FINAL) matching ``where``, oldest first."""
    sync_all()  # acknowledged intents may still be in the server's journal (stored within 50 ms)
    cond = " AND ".join(f"{k} = {{{k}:String}}" for k in where) or "1"
    return store.query_rows(
        f"SELECT * FROM intents FINAL WHERE {cond} ORDER BY requested_at", dict(where)
    )


def outcomes(store: Store, intent_id: str) -> list[dict[str, Any]]:
    sync_all()
    return store.query_rows(
        "SELECT * FROM intent_outcomes FINAL WHERE intent_id = {i:String}", {"i": intent_id}
    )

"""Reading the governance tables in tests."""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.store import Store


def intents(store: Store, **where: str) -> list[dict[str, Any]]:
    """Intent rows (FINAL) matching ``where``, oldest first."""
    store.flush_write_behind()  # acknowledged intents may still be in the server's journal
    cond = " AND ".join(f"{k} = {{{k}:String}}" for k in where) or "1"
    return store.query_rows(
        f"SELECT * FROM intents FINAL WHERE {cond} ORDER BY requested_at", dict(where)
    )


def outcomes(store: Store, intent_id: str) -> list[dict[str, Any]]:
    store.flush_write_behind()
    return store.query_rows(
        "SELECT * FROM intent_outcomes FINAL WHERE intent_id = {i:String}", {"i": intent_id}
    )

"""Reading the governance records in tests (the record log's typed views)."""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.store import Store


def intents(store: Store, **where: str) -> list[dict[str, Any]]:
    """The latest ask of each intent matching ``where``, oldest first."""
    store.flush_write_behind()  # acknowledged intents may still be in the server's journal
    cond = " AND ".join(f"{k} = {{{k}:String}}" for k in where) or "1"
    return store.query_rows(
        f"SELECT * FROM (SELECT * FROM intents_v WHERE {cond} "
        "ORDER BY attempt DESC, received_at DESC LIMIT 1 BY intent_id) ORDER BY requested_at",
        dict(where),
    )


def outcomes(store: Store, intent_id: str) -> list[dict[str, Any]]:
    """The outcomes recorded against an intent, each once."""
    store.flush_write_behind()
    return store.query_rows(
        "SELECT * FROM intent_outcomes_v WHERE intent_id = {i:String} "
        "LIMIT 1 BY record_id, body_sha256",
        {"i": intent_id},
    )

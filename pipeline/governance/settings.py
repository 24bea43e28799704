"""Governance configuration: argument, then ``AGENTLEDGER_*`` environment, then default."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["GovernanceSettings"]


class GovernanceSettings(BaseSettings):
    """How the collector answers intents and keeps run controls."""

    model_config = SettingsConfigDict(env_prefix="AGENTLEDGER_", extra="ignore")

    controls_ttl_s: float = Field(1.0, gt=0)
    """How long a replica trusts the controls it read from the store: a pause recorded on
    another replica holds here at most this much later."""
    pause_retry_after_s: float = Field(1.0, gt=0)
    """``retry_after_s`` answered to a paused call: the longest it waits before asking again."""
    write_timeout_s: float = Field(10.0, gt=0)
    """Longest an intent waits for the store (embedded) before the collector answers 503."""
    memory_controls_history: int = Field(10_000, gt=0)
    """Control events kept for listing when controls live in memory (Kafka mode without a store)."""
    journal: bool = True
    """Embedded store: acknowledge intents and outcomes once fsynced in a journal beside the data
    (inserted into the store within ``journal_flush_s``), not after the ~10 ms insert itself."""
    journal_flush_s: float = Field(0.05, gt=0)
    """How often the journal is inserted into the store."""

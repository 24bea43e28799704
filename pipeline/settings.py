"""Pipeline and store configuration: argument, then ``AGENTLEDGER_*`` environment, then default."""

from __future__ import annotations

from typing import Optional

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["StoreSettings"]


class StoreSettings(BaseSettings):
    """Where the rows go: a ClickHouse server when ``clickhouse_url`` is set, else embedded."""

    model_config = SettingsConfigDict(env_prefix="AGENTLEDGER_", extra="ignore")

    clickhouse_url: Optional[str] = None
    """``http(s)://user:password@host:port`` of a ClickHouse server; unset = embedded chDB."""
    database: str = Field("agentledger", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    data_dir: str = ".agentledger"
    """Embedded store directory (one process owns it at a time)."""
    price_table: Optional[str] = None
    """JSON file of model prices merged over the shipped table."""

"""Collector configuration: argument, then ``AGENTLEDGER_*`` environment, then default."""

from __future__ import annotations

import hashlib

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["CollectorSettings", "parse_api_keys"]


def parse_api_keys(spec: str) -> dict[str, str]:
    """``tenant=key,tenant2=sha256:<hex>`` -> {sha256(key) hex: tenant}.

    Keys may be given in clear or as their SHA-256 (``sha256:`` prefix) so that
    configuration need not hold the secrets themselves.
    """
    table: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        tenant, sep, key = item.partition("=")
        tenant, key = tenant.strip(), key.strip()
        if not sep or not tenant or not key:
            raise ValueError(f"API key entry {item.split('=')[0]!r}... must be 'tenant=key'")
        if key.startswith("sha256:"):
            digest = key[len("sha256:") :].lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"API key hash for tenant {tenant!r} is not 64 hex digits")
        else:
            digest = hashlib.sha256(key.encode()).hexdigest()
        table[digest] = tenant
    return table


class CollectorSettings(BaseSettings):
    """Settings of the OTLP/HTTP collector."""

    model_config = SettingsConfigDict(env_prefix="AGENTLEDGER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(4318, ge=0, le=65535)
    api_keys: SecretStr | None = None
    """``tenant=key`` pairs, comma separated; keys in clear or ``sha256:<hex>``."""
    no_auth: bool = False
    """Single-tenant local mode: every request belongs to ``default_tenant``."""
    default_tenant: str = "default"
    max_body_bytes: int = Field(32 * 1024 * 1024, gt=0)
    """Largest request body accepted on any route, compressed or not, and largest OTLP body
    once decompressed (HTTP 413 beyond)."""
    max_concurrent_exports: int = Field(64, gt=0)
    """Most OTLP export requests in progress at once, each holding its body in memory
    (HTTP 429 with Retry-After beyond)."""
    max_spans_per_request: int = Field(20_000, gt=0)
    """Most spans in one request (HTTP 413 beyond)."""
    max_attribute_length: int = Field(128 * 1024, gt=0)
    """Longer attribute values are truncated and the key listed on the span."""
    retry_after_seconds: int = Field(2, ge=1)
    """The ``Retry-After`` of a 429 or 503 whose cause names no better wait."""

    @field_validator("api_keys")
    @classmethod
    def _keys_parse(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None:
            parse_api_keys(v.get_secret_value())
        return v

    def key_table(self) -> dict[str, str]:
        return parse_api_keys(self.api_keys.get_secret_value()) if self.api_keys else {}

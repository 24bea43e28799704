"""Collector configuration: argument, then ``AGENTLEDGER_*`` environment, then default."""

from __future__ import annotations

import hashlib
import ipaddress
from typing import NamedTuple

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentledger.schemas.access import Role
from agentledger.schemas.names import validate_name

__all__ = ["BootstrapKey", "CollectorSettings", "parse_api_keys"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` names only this machine (``localhost`` or a loopback address)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BootstrapKey(NamedTuple):
    """A key given in configuration (``AGENTLEDGER_API_KEYS``) rather than made in the store."""

    tenant: str
    role: Role
    name: str
    legacy: bool
    """Given in the old ``tenant=key`` form: an admin key, named after its digest."""


def parse_api_keys(spec: str) -> dict[str, BootstrapKey]:
    """``tenant:role:name=key,...`` -> {sha256(key) hex: BootstrapKey}.

    Keys may be given in clear or as their SHA-256 (``sha256:<hex>``) so that configuration need
    not hold the secrets themselves. The old form ``tenant=key`` still works: an admin key named
    ``key:<first 12 hex digits of its SHA-256>`` (the collector warns at start-up).
    """
    table: dict[str, BootstrapKey] = {}
    for item in filter(None, (p.strip() for p in spec.split(","))):
        who, sep, key = item.partition("=")
        who, key = who.strip(), key.strip()
        if not sep or not who or not key:
            raise ValueError(
                f"API key entry {item.split('=')[0]!r}... must be 'tenant:role:name=key'"
            )
        if key.startswith("sha256:"):
            digest = key[len("sha256:") :].lower()
            if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
                raise ValueError(f"API key hash for {who!r} is not 64 hex digits")
        else:
            digest = hashlib.sha256(key.encode()).hexdigest()
        parts = who.split(":")
        if len(parts) == 1:
            tenant, role, name, legacy = parts[0], Role.ADMIN.value, f"key:{digest[:12]}", True
        elif len(parts) == 3:
            (tenant, role, name), legacy = parts, False
            validate_name("key", name)
        else:
            raise ValueError(f"API key entry {who!r}... must be 'tenant:role:name=key'")
        validate_name("tenant", tenant)  # a tenant becomes a folder and a query value
        try:
            parsed_role = Role(role)
        except ValueError:
            roles = ", ".join(r.value for r in Role)
            raise ValueError(f"API key {name!r}: role {role!r} is not one of {roles}") from None
        if digest in table:
            raise ValueError(f"API key {name!r}: the same secret is configured twice")
        table[digest] = BootstrapKey(tenant, parsed_role, name, legacy)
    names = [k.name for k in table.values()]
    if len(names) != len(set(names)):
        raise ValueError("API key names must be unique")
    return table


class CollectorSettings(BaseSettings):
    """Settings of the OTLP/HTTP collector."""

    model_config = SettingsConfigDict(env_prefix="AGENTLEDGER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(4318, ge=0, le=65535)
    api_keys: SecretStr | None = None
    """Bootstrap keys, ``tenant:role:name=key`` comma separated, keys in clear or
    ``sha256:<hex>`` (the old ``tenant=key`` form is an admin key). Keys made with ``agentledger
    keys create`` live in the store and need no configuration."""
    keys_refresh_s: float = Field(5.0, gt=0, le=10)
    """How often each replica re-reads the store's keys: a revoked key is refused everywhere
    within this (and at most 10 s)."""
    no_auth: bool = False
    """Single-tenant local mode: every request belongs to ``default_tenant``, with every role.
    Refused unless ``host`` is a loopback address."""
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

    @model_validator(mode="after")
    def _no_auth_on_loopback_only(self) -> CollectorSettings:
        if self.no_auth and not is_loopback(self.host):
            raise ValueError(
                f"--no-auth lets anyone who can reach the port do everything, so it is refused "
                f"on {self.host!r}: bind a loopback address (127.0.0.1, ::1, localhost) or "
                "configure API keys"
            )
        return self

    @field_validator("default_tenant")
    @classmethod
    def _tenant_name(cls, v: str) -> str:
        return validate_name("tenant", v)

    def key_table(self) -> dict[str, BootstrapKey]:
        return parse_api_keys(self.api_keys.get_secret_value()) if self.api_keys else {}

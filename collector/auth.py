"""API keys to tenants. Keys are compared as SHA-256 digests, in constant time."""

from __future__ import annotations

import hashlib
import hmac
from typing import NamedTuple

from agentledger.schemas.records import Actor

__all__ = ["Authenticator", "AuthError", "Identity"]


class Identity(NamedTuple):
    """Who sent a request: the tenant of its API key, and the actor recorded on what it writes
    (the key's id, ``key:`` and the first 12 hex digits of its SHA-256, until keys have names;
    ``api`` without API keys)."""

    tenant: str
    actor: str


class AuthError(Exception):
    """Missing or unknown API key (HTTP 401)."""


class Authenticator:
    """Maps a presented API key to its tenant; the tenant never comes from the payload."""

    def __init__(self, key_table: dict[str, str], *, no_auth: bool, default_tenant: str) -> None:
        self._table = dict(key_table)
        self.no_auth = no_auth
        self.default_tenant = default_tenant
        if not no_auth and not self._table:
            raise ValueError(
                "no API keys configured: set AGENTLEDGER_API_KEYS='tenant=key,...' "
                "or run single-tenant with --no-auth"
            )

    def tenant(self, authorization: str | None, api_key: str | None) -> str:
        return self.identify(authorization, api_key).tenant

    def identify(self, authorization: str | None, api_key: str | None) -> Identity:
        """The tenant and actor of the presented key; raises AuthError."""
        if self.no_auth:
            return Identity(self.default_tenant, Actor.API)
        key = api_key
        if not key and authorization:
            scheme, _, value = authorization.partition(" ")
            key = value.strip() if scheme.lower() in ("bearer", "apikey") else None
        if not key:
            raise AuthError(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        digest = hashlib.sha256(key.encode()).hexdigest()
        found = None
        for known, tenant in self._table.items():
            if hmac.compare_digest(known, digest):
                found = tenant
        if found is None:
            raise AuthError("unknown API key: it maps to no tenant")
        return Identity(found, f"{Actor.KEY_PREFIX}{digest[:12]}")

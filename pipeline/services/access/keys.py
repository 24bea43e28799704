"""The key book: API keys as records of the insert-only record log.

A key is created once (a record with status ``active``) and revoked once (a second record for the
same name with status ``revoked``); nothing is updated, so who made or revoked which key, and when,
stays readable. Only the SHA-256 of a secret is recorded: the secret holds 256 random bits, so the
digest cannot be reversed and needs no salt, and a stolen store yields no usable key.

Names are unique across tenants (a revoked name is not reused), so ``agentledger keys revoke N``
needs no tenant and an actor name in any record means one key.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, replace
from typing import Any

from agentledger.pipeline.store import Store
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.access import Role
from agentledger.schemas.canonical import loads
from agentledger.schemas.names import validate_name
from agentledger.schemas.read import ApiKeyCreated, ApiKeyInfo
from agentledger.schemas.records import RecordKind, from_rfc3339, make_record, rfc3339

__all__ = ["ApiKey", "KeyBook", "KeyConflict", "KeyNotFound", "new_secret", "secret_digest"]

_SECRET_PREFIX = "al_"


class KeyConflict(ValueError):
    """The name is taken (by a key of any tenant, active or revoked): HTTP 409."""


class KeyNotFound(ValueError):
    """No such key (in this tenant): HTTP 404."""


def new_secret() -> str:
    """A new key's secret: ``al_`` and 43 URL-safe characters (256 random bits)."""
    return _SECRET_PREFIX + secrets.token_urlsafe(32)


def secret_digest(secret: str) -> str:
    """SHA-256 of a secret, 64 lowercase hex digits: what the record and the key table hold."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key as it stands: its latest record."""

    name: str
    tenant: str
    role: Role
    agent: str
    key_sha256: str
    status: str
    created_at_ns: int
    changed_at_ns: int
    changed_by: str

    @property
    def active(self) -> bool:
        return self.status == "active"

    def info(self) -> ApiKeyInfo:
        return ApiKeyInfo(
            name=self.name,
            tenant=self.tenant,
            role=self.role.value,
            agent=self.agent,
            status=self.status,
            key_sha256_prefix=self.key_sha256[:12],
            created_at=rfc3339(self.created_at_ns),
            changed_at=rfc3339(self.changed_at_ns),
            changed_by=self.changed_by,
        )


class KeyBook:
    """Creates, revokes and lists keys in ``store``; ``active`` is what the collector checks
    requests against (re-read every few seconds by each replica)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def create(
        self, tenant: str, role: Role | str, name: str, *, agent: str = "", actor: str
    ) -> ApiKeyCreated:
        """A new key; the answer holds its secret, which nothing keeps. Raises ValueError for a bad
        tenant, role, name or agent, KeyConflict when the name is taken."""
        validate_name("tenant", tenant)
        validate_name("key", name)
        role = Role(role)
        if agent:
            validate_name("agent", agent)
        if name in self._latest():
            raise KeyConflict(f"a key named {name!r} exists already (names are never reused)")
        secret = new_secret()
        now = time.time_ns()
        self._append(
            tenant,
            name=name,
            role=role,
            agent=agent,
            key_sha256=secret_digest(secret),
            status="active",
            created_at=now,
            changed_at=now,
            actor=actor,
        )
        return ApiKeyCreated(name=name, tenant=tenant, role=role.value, agent=agent, key=secret)

    def revoke(self, name: str, *, actor: str, tenant: str | None = None) -> ApiKey:
        """Revoke ``name`` (only within ``tenant`` when given); revoking a revoked key is a no-op
        that answers the key as it stands. Raises KeyNotFound."""
        key = self._latest().get(name)
        if key is None or (tenant is not None and key.tenant != tenant):
            raise KeyNotFound(
                f"no key named {name!r}" + (f" in tenant {tenant!r}" if tenant else "")
            )
        if not key.active:
            return key
        revoked = replace(
            key, status="revoked", changed_at_ns=time.time_ns() // 1000 * 1000, changed_by=actor
        )  # microseconds, as the record keeps the time
        self._append(
            key.tenant,
            name=key.name,
            role=key.role,
            agent=key.agent,
            key_sha256=key.key_sha256,
            status=revoked.status,
            created_at=key.created_at_ns,
            changed_at=revoked.changed_at_ns,
            actor=actor,
        )
        return revoked

    def list_keys(self, tenant: str | None = None) -> list[ApiKey]:
        """Every key (of ``tenant`` when given), active and revoked, by name."""
        keys = self._latest().values()
        return sorted(
            (k for k in keys if tenant is None or k.tenant == tenant), key=lambda k: k.name
        )

    def active(self) -> list[ApiKey]:
        """The keys requests may use now."""
        return [k for k in self._latest().values() if k.active]

    def _append(self, tenant: str, *, actor: str, **fields: Any) -> None:
        fields = {**fields, "role": Role(fields["role"]).value}
        record = make_record(RecordKind.API_KEY, tenant, fields, actor=actor)
        append_records(self._store, [record])

    def _latest(self) -> dict[str, ApiKey]:
        """Each name's latest record: a revocation always follows its creation, so the record
        with the later ``changed_at`` (then revoked over active) is the key as it stands."""
        rows = self._store.query_rows(
            "SELECT tenant, actor, body FROM records WHERE kind = 'api_key'"
        )
        latest: dict[str, ApiKey] = {}
        for row in rows:
            body = loads(row["body"])
            key = ApiKey(
                name=str(body["name"]),
                tenant=str(row["tenant"]),
                role=Role(body["role"]),
                agent=str(body["agent"]),
                key_sha256=str(body["key_sha256"]),
                status=str(body["status"]),
                created_at_ns=from_rfc3339(body["created_at"]),
                changed_at_ns=from_rfc3339(body["changed_at"]),
                changed_by=str(row["actor"]),
            )
            seen = latest.get(key.name)
            if seen is None or (key.changed_at_ns, key.status == "revoked") > (
                seen.changed_at_ns,
                seen.status == "revoked",
            ):
                latest[key.name] = key
        return latest

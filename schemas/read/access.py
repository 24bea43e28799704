"""Read models of access control: API keys as they stand, a created key's one-time secret, and the
access log."""

from __future__ import annotations

from pydantic import BaseModel, Field

from agentledger.schemas.access import Role
from agentledger.schemas.read._base import IsoTime, ReadModel

__all__ = ["AccessEntry", "AccessLog", "ApiKeyCreated", "ApiKeyInfo", "ApiKeyList", "NewApiKey"]


class NewApiKey(BaseModel):
    """The body of ``POST /api/v1/keys``. The tenant is the admin key's own; a key for another
    tenant is made with ``agentledger keys create`` on the store."""

    model_config = {"extra": "forbid"}

    name: str = Field(description="Unique key name: letters, digits, '.', '_' or '-' (1-64).")
    role: Role
    agent: str = Field("", description="The one agent the key may send spans and intents for.")
    tenant: str | None = Field(None, description="Must be the admin key's own tenant when given.")


class ApiKeyInfo(ReadModel):
    """An API key as it stands; its secret is never stored or shown again."""

    name: str
    tenant: str
    role: str
    agent: str = Field(description="The one agent the key may send for; empty = any.")
    status: str = Field(description="active or revoked.")
    key_sha256_prefix: str = Field(description="First 12 hex digits of the secret's SHA-256.")
    created_at: IsoTime
    changed_at: IsoTime
    changed_by: str = Field(description="Name of the key (or cli) that created or revoked it.")
    refused_here: int = Field(
        0, description="Requests or spans this server refused as sent for another agent."
    )


class ApiKeyList(ReadModel):
    keys: list[ApiKeyInfo]


class ApiKeyCreated(ReadModel):
    """A new key: ``key`` is the secret, shown this once."""

    name: str
    tenant: str
    role: str
    agent: str
    key: str


class AccessEntry(ReadModel):
    """One read of content, as the access log keeps it."""

    access_id: str
    accessed_at: IsoTime
    key_name: str
    role: str
    method: str
    route: str
    object_ids: list[str]
    rows: int
    writer: str
    prev_sha256: str
    body_sha256: str


class AccessLog(ReadModel):
    entries: list[AccessEntry] = Field(description="Newest first.")
    intact: bool = Field(description="Every writer's chain of this tenant checked out whole.")
    problems: list[str] = Field(description="What broke a chain: a changed or missing entry.")

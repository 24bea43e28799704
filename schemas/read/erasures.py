"""Erasure (GDPR art. 17), retention and legal holds: the request and answer models.

An erasure names its subject as ``KEY=VALUE`` (``user.id=u-42``, ``session.id=s-1``,
``principal.id=p-7``) and a reason; what it answers is what the erasure record in the ledger
says (who, when, why, which content hashes) plus what else it removed.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from agentledger.schemas.read._base import IsoTime, ReadModel

__all__ = [
    "ErasureRequest",
    "ErasureResult",
    "HoldList",
    "LegalHold",
    "NewHold",
    "RetentionChange",
    "RetentionPass",
    "RetentionPolicy",
]


class ErasureRequest(BaseModel):
    """``POST /api/v1/erasures``: whose content to erase, and why (both required)."""

    subject: str = Field(
        min_length=3,
        max_length=1024,
        description="KEY=VALUE with KEY one of user.id, session.id, principal.id.",
    )
    reason: str = Field(min_length=1, max_length=2000, description="Why: kept in the ledger.")


class ErasureResult(ReadModel):
    """What an erasure removed, and the ledger record that says so."""

    erasure_id: str
    tenant: str
    subject_attribute: str
    subject_sha256: str = Field(
        description="HMAC-SHA256 of the subject's value under the tenant's erasure key."
    )
    reason: str
    erased_by: str = Field(description="Name of the API key that asked (the record's actor).")
    erased_at: IsoTime
    spans: int = Field(
        description="Spans of the subject whose previews and attributes were cleared."
    )
    contents: int = Field(description="Content records erased.")
    content_sha256: list[str] = Field(
        description="The erased content hashes (the leaf lists them)."
    )
    shared_kept: int = Field(
        description="Contents the subject's spans reference that other subjects' spans reference "
        "too (a shared system prompt): not the subject's, kept."
    )
    logs: int = Field(
        description="Log records (prompt and completion events) of those spans deleted."
    )
    dataset_files: list[str] = Field(
        description="Dataset files on this machine scrubbed: the subject's examples taken out, or "
        "the file deleted where that cannot be done line by line."
    )


class RetentionPolicy(ReadModel):
    """A tenant's retention: spans ingested more than ``days`` ago are pruned (0: kept forever)."""

    tenant: str
    days: int
    set_at: IsoTime | None = None
    set_by: str = ""


class LegalHold(ReadModel):
    """A trace, session or principal whose data retention must not prune."""

    hold_id: str
    tenant: str
    scope: str
    target: str
    active: bool
    reason: str
    at: IsoTime
    actor: str


class HoldList(ReadModel):
    """The holds of a tenant as they stand (the latest row of each hold id)."""

    holds: list[LegalHold]


class RetentionPass(ReadModel):
    """One pass of the retention job over a tenant."""

    tenant: str
    retention_days: int
    cutoff: IsoTime | None = None
    spans: int = 0
    contents: int = 0
    held_spans: int = Field(0, description="Spans past the cutoff kept because of a legal hold.")
    expiry_id: str = Field(
        "", description="The retention_expiry record; empty when nothing was pruned."
    )


class RetentionChange(BaseModel):
    """``PUT /api/v1/retention``: the caller's tenant's retention in days (0 keeps forever)."""

    days: int = Field(ge=0, le=36_500, description="Prune spans ingested more than N days ago.")


class NewHold(BaseModel):
    """``POST /api/v1/holds``: what to hold and why."""

    scope: Literal["trace", "session", "principal"]
    target: str = Field(
        min_length=1, max_length=1024, description="The trace, session or principal id."
    )
    reason: str = Field(min_length=1, max_length=2000, description="The matter the hold is for.")

"""Read models of the ledger's proofs: what ``agentledger prove`` writes and an outsider checks
with nothing but the file and the public key (docs/verifying.md)."""

from __future__ import annotations

from pydantic import Field

from agentledger.schemas.read._base import ReadModel

__all__ = ["ConsistencyProofFile", "InclusionProofFile"]


class InclusionProofFile(ReadModel):
    """One record's inclusion in a signed checkpoint of its tenant's log."""

    checkpoint: str = Field(description="The C2SP signed note (tlog-checkpoint) as text.")
    tree_size: int
    leaf_index: int
    record: str = Field(description="Base64 of the record's RFC 8785 canonical JSON.")
    inclusion_path: list[str] = Field(description="Base64 hashes, leaf to root (RFC 9162).")


class ConsistencyProofFile(ReadModel):
    """That the log at ``second_size`` extends the log at ``first_size`` (RFC 9162 2.1.4)."""

    first_size: int
    second_size: int
    consistency_path: list[str] = Field(description="Base64 hashes (RFC 9162).")

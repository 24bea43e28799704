"""Read models of feedback and datasets: feedback items, dataset manifests, lists and lineage."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentledger.schemas.read._base import IsoTime, ReadModel, absent

__all__ = [
    "DatasetCounts",
    "DatasetDedup",
    "DatasetFile",
    "DatasetHygiene",
    "DatasetManifest",
    "DatasetMembers",
    "DatasetRecorded",
    "DatasetSpan",
    "DatasetSplit",
    "DatasetSummary",
    "FeedbackAccepted",
    "FeedbackItem",
    "SpanDataset",
]

# -- feedback ----------------------------------------------------------------------------------


class FeedbackItem(ReadModel):
    """One feedback (score, label, comment, correction) on a trace or a span."""

    tenant: str
    trace_id: str
    span_id: str = Field(description="Empty for feedback on the whole trace.")
    name: str
    feedback_id: str
    score: float | None
    label: str
    comment: str
    correction: str
    annotator: str
    annotator_kind: str = Field(description="HUMAN, LLM or CODE.")
    source: str = Field(description="api, cli, span_attribute or span_event.")
    metadata: dict[str, str]
    created_at: IsoTime


class FeedbackAccepted(ReadModel):
    """What ``POST /v1/feedback`` answers."""

    accepted: int
    ids: list[str]
    durable_in: str = Field(description="store (embedded) or kafka (the feedback topic).")


# -- datasets ----------------------------------------------------------------------------------


class DatasetSummary(ReadModel):
    """One recorded dataset in a list (its ``datasets`` row)."""

    dataset_id: str
    name: str
    format: str
    created_at: IsoTime
    creator: str
    path: str = Field(description="Directory the files were written to (on the exporting machine).")
    examples: int
    train_examples: int
    validation_examples: int
    source_spans: int
    content_digest: str
    redaction_policy: str


class SpanDataset(ReadModel):
    """A recorded dataset that contains a span, with the span's split and role in it."""

    dataset_id: str
    name: str
    format: str
    created_at: IsoTime
    creator: str
    path: str
    split: str
    role: str
    example_hash: str


class DatasetSpan(ReadModel):
    """A production span in a dataset."""

    span_id: str
    trace_id: str
    kind: str
    name: str
    response_model: str
    start_time: str = Field(description="Start of the span as the store renders it.")


class DatasetFile(ReadModel):
    """A file of a dataset: a split's examples (``split``, ``examples``) or the lineage list
    (``role``, ``rows``)."""

    path: str
    bytes: int
    sha256: str
    split: str | None = Field(None, exclude_if=absent)
    examples: int | None = Field(None, exclude_if=absent)
    role: str | None = Field(None, exclude_if=absent)
    rows: int | None = Field(None, exclude_if=absent)


class DatasetSplit(ReadModel):
    """How examples were split between train and validation."""

    by: str
    validation_fraction: float
    seed: str
    method: str


class DatasetDedup(ReadModel):
    """How duplicates were found ("off" when not)."""

    exact: str = Field(description="Exact duplicates: the key hashed.")
    near: str = Field(description="Near duplicates: the normalization before hashing.")


class DatasetHygiene(ReadModel):
    """What was done to the data before it was written: redaction, deduplication, quality filters."""

    redaction: dict[str, Any] = Field(
        description="The redaction policy (name, version, presets); its shape is the policy's own."
    )
    redaction_policy: str
    dedup: DatasetDedup
    quality_filters: list[str]
    split: DatasetSplit


class DatasetCounts(ReadModel):
    """Candidates read, examples written, and why the others were dropped."""

    candidates: int
    examples: int
    splits: dict[str, int]
    source_spans: int
    dropped: dict[str, int]


class DatasetMembers(ReadModel):
    """Where the lineage (one row per span and example) is, and the SQL that reads it back."""

    file: str
    rows: int
    sql: str


class DatasetRecorded(ReadModel):
    """What the store recorded of an export (datasets read back from the store only)."""

    path: str
    member_rows: int
    spans: int
    traces: int


class DatasetManifest(ReadModel):
    """A dataset's manifest: what was exported, how, and from what (``manifest.json``)."""

    id: str
    name: str
    format: str
    tenant: str
    created_at: IsoTime
    creator: str
    agentledger_version: str
    source: dict[str, Any] = Field(description="Where the spans were read (the store's database).")
    filters: dict[str, Any] = Field(
        description="The export's filters as JSON (the export request's own schema)."
    )
    hygiene: DatasetHygiene
    counts: DatasetCounts
    content_digest: str
    content_digest_method: str
    files: list[DatasetFile]
    members: DatasetMembers
    elapsed_seconds: float
    source_span_ids: list[str] | None = Field(
        None, exclude_if=absent, description="Inline when the dataset is small."
    )
    content_hashes: list[str] | None = Field(
        None, exclude_if=absent, description="Inline when the dataset is small."
    )
    recorded: DatasetRecorded | None = Field(None, exclude_if=absent)

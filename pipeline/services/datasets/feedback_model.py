"""What a feedback is (as a client sends it, as it is stored) and how it is appended to the log.

The base of ``feedback.py`` (whose docstring says how feedback arrives and how its id is given)
and of ``feedback_spans.py`` (feedback carried on spans): it imports neither.
"""

from __future__ import annotations

import hashlib
import math
import re
from datetime import datetime, timezone
from typing import Final, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from agentledger.pipeline.governance.idempotency import derived_id
from agentledger.pipeline.store import Store
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.records import (
    LATEST_FEEDBACK_VIEW,
    Actor,
    Record,
    RecordKind,
    make_record,
)

__all__ = [
    "FEEDBACK_COLUMNS",
    "FEEDBACK_VIEW",
    "NEGATIVE_LABELS",
    "POSITIVE_LABELS",
    "FeedbackIn",
    "FeedbackRecord",
    "feedback_record",
    "to_record",
    "write_feedback",
]

FEEDBACK_VIEW: Final = LATEST_FEEDBACK_VIEW
"""Feedback as it stands (the latest version of each feedback), a view of the record log
(migration 0008). Read it without ``FINAL``: nothing collapses in the record log."""

FEEDBACK_COLUMNS: Final = (
    "tenant, trace_id, span_id, name, feedback_id, score, label, comment, correction, "
    "annotator, annotator_kind, source, metadata, created_at"
)
"""The columns of a feedback as ``list_feedback`` answers them."""

POSITIVE_LABELS: Final = (
    "up",
    "thumbs_up",
    "thumbsup",
    "good",
    "positive",
    "correct",
    "pass",
    "passed",
    "accept",
    "accepted",
    "yes",
    "true",
    "helpful",
    "approve",
    "approved",
)
"""Labels read as score 1 where a score is needed."""
NEGATIVE_LABELS: Final = (
    "down",
    "thumbs_down",
    "thumbsdown",
    "bad",
    "negative",
    "incorrect",
    "fail",
    "failed",
    "reject",
    "rejected",
    "no",
    "false",
    "unhelpful",
    "hallucinated",
    "hallucination",
)
"""Labels read as score 0 where a score is needed."""

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")


class FeedbackIn(BaseModel):
    """Feedback as a client sends it (``POST /v1/feedback``, ``feedback add``)."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Idempotency key: sent again with the same fields, the same feedback; with "
        "other fields, 409. The server derives the feedback's id from it.",
    )
    trace_id: str = Field("", description="Trace (32 hex digits). Optional when span_id is given.")
    span_id: str = Field(
        "", description="Span (16 hex digits); empty = feedback on the whole trace."
    )
    name: str = Field(
        ..., min_length=1, max_length=200, description="What is judged: helpfulness, thumbs..."
    )
    score: float | None = Field(None, description="Numeric value.")
    label: str = Field("", max_length=500, description="Categorical value.")
    comment: str = Field("", max_length=100_000, description="Free text.")
    correction: str = Field(
        "", max_length=1_000_000, description="The answer the model should have given."
    )
    annotator: str = Field(
        "", max_length=500, description="Who gave it (person, model or program)."
    )
    annotator_kind: Literal["HUMAN", "LLM", "CODE"] = "HUMAN"
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = Field(
        None, description="When it was given (default: when received)."
    )

    @field_validator("trace_id", "span_id")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.strip().lower()

    @field_validator("score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("score must be a finite number")
        return value

    @model_validator(mode="after")
    def _target_and_value(self) -> FeedbackIn:
        if not self.trace_id and not self.span_id:
            raise ValueError("give trace_id, span_id, or both")
        if self.trace_id and not _HEX32.match(self.trace_id):
            raise ValueError(f"trace_id {self.trace_id!r} must be 32 hex digits")
        if self.span_id and not _HEX16.match(self.span_id):
            raise ValueError(f"span_id {self.span_id!r} must be 16 hex digits")
        if self.score is None and not (self.label or self.comment or self.correction):
            raise ValueError("give a score, a label, a comment or a correction")
        return self


class FeedbackRecord(BaseModel):
    """A stored feedback row (also the JSON body of a feedback-topic record)."""

    tenant: str
    trace_id: str
    span_id: str
    name: str
    feedback_id: str
    score: float | None = None
    label: str = ""
    comment: str = ""
    correction: str = ""
    annotator: str = ""
    annotator_kind: str = "HUMAN"
    source: str = "api"
    metadata: dict[str, str] = Field(default_factory=dict)
    created_at: datetime
    _key: str | None = PrivateAttr(None)
    """The client's idempotency key (API feedback sent with an ``id``)."""
    _time_given: bool = PrivateAttr(True)
    """False when ``created_at`` is the time it was received (the client gave none)."""

    def to_json(self) -> bytes:
        """The record as a feedback-topic value (tenant travels in a header as well)."""
        return orjson.dumps(self.model_dump(mode="json"))


def _identity(tenant: str, fb: FeedbackIn | FeedbackRecord, source: str) -> str:
    fields = [
        tenant,
        fb.trace_id,
        fb.span_id,
        fb.name,
        repr(fb.score),
        fb.label,
        fb.comment,
        fb.correction,
        fb.annotator,
        fb.annotator_kind,
        source,
    ]
    return hashlib.sha256("\x1f".join(fields).encode("utf-8", "replace")).hexdigest()


def to_record(
    tenant: str, fb: FeedbackIn, source: str = "api", *, now: datetime | None = None
) -> FeedbackRecord:
    """The row a client's feedback becomes: tenant stamped, id and time filled in."""
    created = fb.created_at or now or datetime.now(timezone.utc)
    if created.tzinfo is None:
        created = created.replace(tzinfo=timezone.utc)
    record = FeedbackRecord(
        tenant=tenant,
        trace_id=fb.trace_id,
        span_id=fb.span_id,
        name=fb.name,
        feedback_id=(
            derived_id(RecordKind.FEEDBACK, tenant, fb.id)
            if fb.id
            else _identity(tenant, fb, source)
        ),
        score=fb.score,
        label=fb.label,
        comment=fb.comment,
        correction=fb.correction,
        annotator=fb.annotator,
        annotator_kind=fb.annotator_kind,
        source=source,
        metadata=fb.metadata,
        created_at=created,
    )
    record._key = fb.id
    record._time_given = fb.created_at is not None
    return record


def feedback_record(
    feedback: FeedbackRecord, *, actor: str, recorded_at_ns: int | None = None
) -> Record:
    """The record of the record log a feedback is stored as."""
    fields = feedback.model_dump(exclude={"tenant"})
    fields["metadata"] = dict(feedback.metadata)
    return make_record(
        RecordKind.FEEDBACK,
        feedback.tenant,
        fields,
        actor=actor,
        recorded_at_ns=recorded_at_ns,
    )


def write_feedback(
    store: Store,
    records: list[FeedbackRecord],
    *,
    dedup_token: str | None = None,
    actor: str = Actor.API,
    recorded_at_ns: int | None = None,
) -> None:
    """Append feedback to the record log; safe to repeat (a repeat counts once: same id and body;
    ``dedup_token``, naming exactly these records, drops a repeated insert)."""
    if not records:
        return
    append_records(
        store,
        [feedback_record(r, actor=actor, recorded_at_ns=recorded_at_ns) for r in records],
        dedup_token=dedup_token,
    )

"""Read models of replays: rebuilt provider requests, and stored drift reports with their calls."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentledger.schemas.read._base import IsoTime, ReadModel

__all__ = [
    "AnswerToolCall",
    "DriftSummary",
    "RebuiltRequest",
    "RebuiltRequests",
    "RecordedAnswer",
    "ReplayCall",
    "ReplayRun",
    "ReplayRunSummary",
    "ReplayStored",
    "SimilarityStats",
    "SkippedCall",
    "WorstCase",
]


class AnswerToolCall(ReadModel):
    """A tool call of an answer, with its arguments as JSON values."""

    name: str
    arguments: Any = Field(description="The arguments as the model gave them (any JSON).")


class RecordedAnswer(ReadModel):
    """What a model answered: text, tool calls, the answering model."""

    text: str
    tool_calls: list[AnswerToolCall]
    model: str


class RebuiltRequest(ReadModel):
    """A recorded LLM call, rebuilt as the provider request to send again."""

    span_id: str
    trace_id: str
    started_at: IsoTime
    agent_name: str
    api: str = Field(description="openai (chat completions) or anthropic (messages).")
    provider: str
    request_model: str
    response_model: str
    system_fingerprint: str
    body: dict[str, Any] = Field(description="The request body in the provider's wire format.")
    source: str = Field(
        description="recorded (as the instrumentation captured it) or reconstructed."
    )
    checks: dict[str, Any] = Field(
        description="Hashes and their agreement (messages_sha256, messages_match, request_sha256, "
        "reconstruction_exact...); which are present depends on what was recorded."
    )
    exact: bool
    recorded: RecordedAnswer
    output_hash: str
    notes: list[str]


class SkippedCall(ReadModel):
    """A recorded call a filtered replay could not rebuild (content capture was off...)."""

    span_id: str
    error: str


class RebuiltRequests(ReadModel):
    """``GET /api/v1/replay/requests``: the rebuilt requests of the calls matching filters."""

    requests: list[RebuiltRequest]
    skipped: list[SkippedCall]


class SimilarityStats(ReadModel):
    """The distribution of text similarity between recorded and replayed answers."""

    mean: float | None
    min: float | None
    p10: float | None
    p50: float | None
    p90: float | None


class WorstCase(ReadModel):
    """A replayed call among those that drifted most."""

    span_id: str
    trace_id: str
    same_tools: bool
    same_arguments: bool
    text_similarity: float
    token_jaccard: float
    drift: bool
    recorded_tools: list[str]
    replayed_tools: list[str]
    recorded_text: str
    replayed_text: str


class DriftSummary(ReadModel):
    """A drift report's summary: agreement on tools and arguments, similarity, worst cases."""

    replayed: int
    errors: int
    drifted: int
    tool_agreement: float | None
    argument_agreement: float | None
    inexact_requests: int
    text_similarity: SimilarityStats
    worst: list[WorstCase]
    error_spans: list[SkippedCall]


class ReplayRunSummary(ReadModel):
    """One stored drift report in a list."""

    run_id: str
    created_at: IsoTime
    candidate_model: str = Field(description="Empty: each call's recorded model.")
    base_url: str
    filter: str = Field(description="The filters that chose the calls, as JSON text.")
    replayed: int
    errors: int
    drifted: int
    tool_agreement: float | None
    argument_agreement: float | None
    text_similarity_mean: float | None
    text_similarity_p50: float | None
    text_similarity_min: float | None


class ReplayCall(ReadModel):
    """One replayed call of a stored drift report, linked to its source span."""

    trace_id: str
    span_id: str
    source_start_time: IsoTime
    agent_name: str
    api: str
    recorded_model: str
    recorded_answered_model: str
    replay_model: str
    replay_answered_model: str
    request_source: str
    request_sha256: str
    input_hash: str
    messages_match: bool
    status: str
    error: str
    same_tools: bool
    same_arguments: bool
    text_similarity: float | None
    token_jaccard: float | None
    drift: bool
    recorded_tools: list[str]
    replayed_tools: list[str]
    recorded_output_hash: str
    replayed_answer: str = Field(description="The replayed answer as JSON text.")


class ReplayRun(ReadModel):
    """``GET /api/v1/replays/{run_id}``: a stored drift report with its replayed calls."""

    run_id: str
    created_at: IsoTime
    candidate_model: str
    base_url: str
    filter: dict[str, Any] = Field(description="The filters that chose the calls.")
    summary: DriftSummary
    calls: list[ReplayCall]


class ReplayStored(ReadModel):
    """What ``POST /api/v1/replays`` answers."""

    run_id: str
    stored: bool
    summary: DriftSummary

"""The client contracts: the ``ReadClient`` and ``LedgerClient`` protocols, and ``ClientError``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from agentledger.schemas.read import (
    AccessLog,
    AgentGraph,
    Anomaly,
    AnomalyActionDone,
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyList,
    AuditReport,
    Content,
    ControlEvent,
    ControlList,
    DatasetManifest,
    DatasetSpan,
    DatasetSummary,
    DetectionResult,
    FeedbackAccepted,
    FeedbackItem,
    IntentRecord,
    LedgerReport,
    PatternsReport,
    RebuiltRequest,
    RebuiltRequests,
    ReplayRun,
    ReplayRunSummary,
    ReplayStored,
    SpanDataset,
    TraceDetail,
    TraceSummary,
    UsageReport,
)
from agentledger.schemas.read import defaults as D

__all__ = ["ClientError", "LedgerClient", "Progress", "ReadClient"]

Progress = Callable[[int, int | None], None]
"""Export progress: examples done, and the total when known."""


class ClientError(Exception):
    """A read or write the client could not carry out; the message says why, for the user."""


class ReadClient(Protocol):
    """Every read of the API, answered with ``schemas.read`` models.

    Contract: a read changes nothing a later read could see (usage brings its rollup up to
    date first, which only makes it exact); an unknown id raises ``ClientError``, an empty
    list is an answer. Safe to call any number of times; ``close`` once, at the end.
    """

    where: str
    """What is read: the server's URL, or the data directory or ClickHouse URL."""

    def traces(
        self,
        *,
        limit: int = D.TRACES_LIMIT,
        since: datetime | None = None,
        service: str | None = None,
    ) -> list[TraceSummary]: ...

    def trace(self, trace_id: str) -> TraceDetail: ...

    def content(self, content_hash: str) -> Content: ...

    def usage(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        group_by: Sequence[str] = (),
        interval: str | None = None,
        top: int = D.USAGE_TOP,
        order_by: str = D.USAGE_ORDER_BY,
        filters: Mapping[str, str] | None = None,
        refresh: bool = True,
    ) -> UsageReport: ...

    def agents_graph(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        trace_id: str | None = None,
    ) -> AgentGraph: ...

    def patterns(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        baseline_hours: int = D.PATTERNS_BASELINE_HOURS,
        agent: str | None = None,
        n: int = D.PATTERNS_NGRAM,
        top: int = D.PATTERNS_TOP,
        k: int | None = None,
    ) -> PatternsReport: ...

    def anomalies(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        type: str | None = None,
        limit: int = D.ANOMALIES_LIMIT,
    ) -> list[Anomaly]: ...

    def feedback(
        self,
        *,
        trace_id: str | None = None,
        span_id: str | None = None,
        limit: int = D.FEEDBACK_LIMIT,
    ) -> list[FeedbackItem]: ...

    def datasets(self, *, limit: int = D.DATASETS_LIMIT) -> list[DatasetSummary]: ...

    def dataset(self, dataset_id: str) -> DatasetManifest: ...

    def dataset_spans(
        self, dataset_id: str, *, limit: int = D.DATASET_SPANS_LIMIT
    ) -> list[DatasetSpan]: ...

    def span_datasets(self, span_id: str) -> list[SpanDataset]: ...

    def audit(self, ref: str, *, last: bool = False) -> AuditReport: ...

    def verify_ledger(self, *, since: str | None = None) -> LedgerReport: ...

    def replay_request(self, span_id: str, *, api: str | None = None) -> RebuiltRequest: ...

    def replay_requests(
        self,
        *,
        agent: str | None = None,
        model: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        tools_only: bool = False,
        limit: int = D.REPLAY_REQUESTS_LIMIT,
        api: str | None = None,
    ) -> RebuiltRequests: ...

    def replays(self, *, limit: int = D.REPLAYS_LIMIT) -> list[ReplayRunSummary]: ...

    def replay(self, run_id: str) -> ReplayRun: ...

    def intents(
        self,
        *,
        trace_id: str | None = None,
        session_id: str | None = None,
        tool_name: str | None = None,
        limit: int = D.INTENTS_LIMIT,
    ) -> list[IntentRecord]: ...

    def intent(self, intent_id: str) -> IntentRecord: ...

    def controls(
        self, *, everything: bool = False, limit: int = D.CONTROLS_LIMIT
    ) -> ControlList: ...

    def sql(
        self, query: str, *, fmt: str = "JSON", params: Mapping[str, str] | None = None
    ) -> bytes:
        """A read-only SQL query on the tenant's views (``pipeline.services.sql``), its answer in
        ClickHouse's output format ``fmt`` unless the query names its own ``FORMAT``."""
        ...

    def close(self) -> None: ...


class LedgerClient(ReadClient, Protocol):
    """The reads, and the few writes the CLI makes: each durable before it returns."""

    reports_progress: bool
    """Whether ``export_dataset`` calls its ``progress`` (it runs in this process)."""

    def detect_anomalies(
        self,
        *,
        now: datetime | None = None,
        window_hours: int | None = None,
        baseline_hours: int | None = None,
    ) -> DetectionResult: ...

    def add_feedback(self, items: Sequence[Mapping[str, Any]]) -> FeedbackAccepted: ...

    def export_dataset(
        self, out_dir: str, request: Mapping[str, Any], progress: Progress | None = None
    ) -> DatasetManifest: ...

    def save_replay(self, report: Mapping[str, Any]) -> ReplayStored: ...

    def control(
        self, *, action: str, scope: str, target: str, by: str, reason: str
    ) -> ControlEvent: ...

    def anomaly_action(
        self,
        ref: str,
        action: str,
        *,
        label: str = "",
        note: str = "",
        until: datetime | None = None,
    ) -> AnomalyActionDone:
        """Acknowledge, mute, unmute or label an anomaly (its id or first 8+ characters)."""
        ...

    def create_key(self, *, tenant: str, role: str, name: str, agent: str = "") -> ApiKeyCreated:
        """A new API key (its secret in the answer, once). Over HTTP the tenant must be the admin
        key's own."""
        ...

    def keys(self, *, tenant: str | None = None) -> ApiKeyList:
        """API keys, active and revoked: over HTTP the admin key's tenant; locally ``tenant``,
        or every tenant when None."""
        ...

    def revoke_key(self, name: str) -> ApiKeyInfo: ...

    def access_log(
        self, *, limit: int = D.ACCESS_LOG_LIMIT, key: str | None = None
    ) -> AccessLog: ...

    def ledger_checkpoint(self) -> str:
        """The latest signed checkpoint of the tenant's log (C2SP signed note text)."""
        ...

    def ledger_proof(self, kind: str, record_id: str) -> dict[str, Any]:
        """The inclusion proof file (JSON object) of a span (kind ``span``) or record."""
        ...

    def ledger_consistency(self, first: int, second: int) -> dict[str, Any]:
        """The consistency proof (JSON object) between two sizes of the tenant's log."""
        ...

    def __enter__(self) -> LedgerClient: ...

    def __exit__(self, *exc: object) -> None: ...

"""What the CLI reads through: one client protocol, over HTTP or over a data directory.

chDB locks a data directory to one process, so while ``agentledger serve`` runs the
commands ask its API (``HttpReadClient``); when none runs they open the directory, or a
ClickHouse server, themselves (``LocalReadClient``, built by the composition root). Both
answer with the models of ``agentledger.schemas.read``, and the local client calls the
same read services (``pipeline.services.reads``) the routers call, so every command has
one code path and the same defaults (``schemas.read.defaults``) whichever it talks to.

Errors reach a command as one type, ``ClientError``, whose message is the answer to show.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from agentledger.schemas.read import (
    Anomaly,
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
from agentledger.schemas.records import Actor

if TYPE_CHECKING:
    from agentledger.pipeline.governance import GovernanceService
    from agentledger.pipeline.services.datasets.feedback import FeedbackLog
    from agentledger.pipeline.store import Store

__all__ = [
    "ClientError",
    "HttpReadClient",
    "LedgerClient",
    "LocalReadClient",
    "Progress",
    "ReadClient",
    "open_client",
]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

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

    def __enter__(self) -> LedgerClient: ...

    def __exit__(self, *exc: object) -> None: ...


# -- over HTTP ---------------------------------------------------------------------------------


def _param(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class HttpReadClient:
    """The API of a running server (``agentledger serve``, or a collector with a store)."""

    reports_progress = False

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        timeout: float = 30,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.where = url
        self._client = httpx.Client(
            base_url=url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> HttpReadClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        params = kwargs.pop("params", None)
        if params is not None:
            kwargs["params"] = {k: _param(v) for k, v in params.items() if v is not None}
        try:
            resp = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(
                f"cannot reach the server at {self.where}: {exc} "
                "(is `agentledger serve` running? --url)"
            ) from exc
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            if resp.status_code == 404:
                raise ClientError(str(detail))
            raise ClientError(f"{self.where} answered {resp.status_code}: {str(detail)[:500]}")
        return resp.json()

    def _get(self, answer: type[M], path: str, /, **params: Any) -> M:
        return answer.model_validate(self._send("GET", path, params=params))

    def _list(self, answer: type[M], path: str, /, **params: Any) -> list[M]:
        return TypeAdapter(list[answer]).validate_python(  # type: ignore[valid-type]
            self._send("GET", path, params=params)
        )

    # -- reads --

    def traces(
        self,
        *,
        limit: int = D.TRACES_LIMIT,
        since: datetime | None = None,
        service: str | None = None,
    ) -> list[TraceSummary]:
        return self._list(TraceSummary, "/api/v1/traces", limit=limit, since=since, service=service)

    def trace(self, trace_id: str) -> TraceDetail:
        return self._get(TraceDetail, f"/api/v1/traces/{trace_id}")

    def content(self, content_hash: str) -> Content:
        return self._get(Content, f"/api/v1/contents/{content_hash}")

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
    ) -> UsageReport:
        return self._get(
            UsageReport,
            "/api/v1/usage",
            since=since,
            until=until,
            group_by=",".join(group_by),
            interval=interval,
            top=top,
            order_by=order_by,
            refresh=refresh,
            **dict(filters or {}),
        )

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
    ) -> PatternsReport:
        return self._get(
            PatternsReport,
            "/api/v1/patterns",
            since=since,
            until=until,
            baseline_hours=baseline_hours,
            agent=agent,
            n=n,
            top=top,
            k=k,
        )

    def anomalies(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        type: str | None = None,
        limit: int = D.ANOMALIES_LIMIT,
    ) -> list[Anomaly]:
        return self._list(
            Anomaly, "/api/v1/anomalies", since=since, until=until, type=type, limit=limit
        )

    def feedback(
        self,
        *,
        trace_id: str | None = None,
        span_id: str | None = None,
        limit: int = D.FEEDBACK_LIMIT,
    ) -> list[FeedbackItem]:
        return self._list(
            FeedbackItem, "/api/v1/feedback", trace_id=trace_id, span_id=span_id, limit=limit
        )

    def datasets(self, *, limit: int = D.DATASETS_LIMIT) -> list[DatasetSummary]:
        return self._list(DatasetSummary, "/api/v1/datasets", limit=limit)

    def dataset(self, dataset_id: str) -> DatasetManifest:
        return self._get(DatasetManifest, f"/api/v1/datasets/{dataset_id}")

    def dataset_spans(
        self, dataset_id: str, *, limit: int = D.DATASET_SPANS_LIMIT
    ) -> list[DatasetSpan]:
        return self._list(DatasetSpan, f"/api/v1/datasets/{dataset_id}/spans", limit=limit)

    def span_datasets(self, span_id: str) -> list[SpanDataset]:
        return self._list(SpanDataset, f"/api/v1/spans/{span_id}/datasets")

    def audit(self, ref: str, *, last: bool = False) -> AuditReport:
        return self._get(AuditReport, f"/api/v1/audit/{ref}", format="json", last=last)

    def verify_ledger(self, *, since: str | None = None) -> LedgerReport:
        return self._get(LedgerReport, "/api/v1/ledger/verify", since=since)

    def replay_request(self, span_id: str, *, api: str | None = None) -> RebuiltRequest:
        return self._get(RebuiltRequest, f"/api/v1/replay/requests/{span_id}", api=api)

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
    ) -> RebuiltRequests:
        return self._get(
            RebuiltRequests,
            "/api/v1/replay/requests",
            agent=agent,
            model=model,
            since=since,
            until=until,
            tools_only=tools_only,
            limit=limit,
            api=api,
        )

    def replays(self, *, limit: int = D.REPLAYS_LIMIT) -> list[ReplayRunSummary]:
        return self._list(ReplayRunSummary, "/api/v1/replays", limit=limit)

    def replay(self, run_id: str) -> ReplayRun:
        return self._get(ReplayRun, f"/api/v1/replays/{run_id}")

    def intents(
        self,
        *,
        trace_id: str | None = None,
        session_id: str | None = None,
        tool_name: str | None = None,
        limit: int = D.INTENTS_LIMIT,
    ) -> list[IntentRecord]:
        return self._list(
            IntentRecord,
            "/v1/intents",
            trace_id=trace_id,
            session_id=session_id,
            tool_name=tool_name,
            limit=limit,
        )

    def intent(self, intent_id: str) -> IntentRecord:
        return self._get(IntentRecord, f"/v1/intents/{intent_id}")

    def controls(self, *, everything: bool = False, limit: int = D.CONTROLS_LIMIT) -> ControlList:
        return self._get(ControlList, "/v1/controls", all=everything, limit=limit)

    # -- writes --

    def detect_anomalies(
        self,
        *,
        now: datetime | None = None,
        window_hours: int | None = None,
        baseline_hours: int | None = None,
    ) -> DetectionResult:
        params = {"now": now, "window_hours": window_hours, "baseline_hours": baseline_hours}
        found = self._send("POST", "/api/v1/anomalies/detect", params=params, timeout=600)
        return DetectionResult.model_validate(found)

    def add_feedback(self, items: Sequence[Mapping[str, Any]]) -> FeedbackAccepted:
        found = self._send("POST", "/v1/feedback", json=[dict(i) for i in items])
        return FeedbackAccepted.model_validate(found)

    def export_dataset(
        self, out_dir: str, request: Mapping[str, Any], progress: Progress | None = None
    ) -> DatasetManifest:
        """The server exports (into ``out_dir`` on its machine); files it wrote where this process
        cannot see them are downloaded into ``out_dir`` here."""
        target = os.path.abspath(out_dir)
        body = {"out_dir": target, "request": dict(request)}
        try:
            found = self._send("POST", "/api/v1/datasets", json=body, timeout=None)
        except ClientError as exc:
            if " 403:" not in str(exc):
                raise
            # the server keeps authenticated exports in its datasets directory: export there, download
            body["out_dir"] = f"{os.path.basename(target)}-{os.getpid()}-{int(time.time())}"
            found = self._send("POST", "/api/v1/datasets", json=body, timeout=None)
        manifest = DatasetManifest.model_validate(found)
        if not os.path.isfile(os.path.join(target, "manifest.json")):
            os.makedirs(target, exist_ok=True)
            for name in [f.path for f in manifest.files] + ["manifest.json"]:
                self._download(f"/api/v1/datasets/{manifest.id}/files/{name}", target, name)
        return manifest

    def _download(self, path: str, target: str, name: str) -> None:
        with self._client.stream("GET", path, timeout=None) as r:
            if r.status_code >= 400:
                raise ClientError(f"{self.where} answered {r.status_code} for {name}")
            with open(os.path.join(target, name), "wb") as fh:
                for chunk in r.iter_bytes():
                    fh.write(chunk)

    def save_replay(self, report: Mapping[str, Any]) -> ReplayStored:
        found = self._send("POST", "/api/v1/replays", json=dict(report))
        return ReplayStored.model_validate(found)

    def control(
        self, *, action: str, scope: str, target: str, by: str, reason: str
    ) -> ControlEvent:
        body = {"action": action, "scope": scope, "target": target, "by": by, "reason": reason}
        return ControlEvent.model_validate(self._send("POST", "/v1/controls", json=body))


# -- over the store ----------------------------------------------------------------------------


class LocalReadClient:
    """A data directory or ClickHouse server read (and written) in this process, through the read
    services the routers call. Built by ``agentledger.compose.build_local_reader``.

    A data directory has no background jobs: ``usage`` with ``refresh`` brings every hour of the
    rollup up to date (a server's route does the recent hours; its jobs the rest).
    """

    reports_progress = True

    def __init__(
        self,
        store: Store,
        tenant: str,
        *,
        where: str,
        governance: Callable[[], GovernanceService] | None = None,
        feedback_log: FeedbackLog | None = None,
        ledger_key: bytes | None = None,
        on_close: Sequence[Callable[[], None]] = (),
    ) -> None:
        self.store = store
        self.tenant = tenant
        self.where = where
        self._governance = governance
        self._feedback_log = feedback_log
        self._ledger_key = ledger_key
        self._on_close = list(on_close)

    def __enter__(self) -> LocalReadClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for closer in self._on_close:
            closer()
        self._on_close = []

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(...)``, its errors as ClientError (what is missing, with where it was looked for)."""
        from agentledger.pipeline.governance import GovernanceRejected, GovernanceUnavailable
        from agentledger.pipeline.services.datasets.feedback import FeedbackUnavailable
        from agentledger.pipeline.services.reads import ReadError, ReadNotFound
        from agentledger.pipeline.store import StoreError

        try:
            return fn(*args, **kwargs)
        except ReadNotFound as exc:
            raise ClientError(f"{exc} in {self.where}") from exc
        except (
            ReadError,
            StoreError,
            GovernanceUnavailable,
            GovernanceRejected,
            FeedbackUnavailable,
            ValueError,
        ) as exc:
            raise ClientError(str(exc)) from exc

    def _service(self) -> GovernanceService:
        if self._governance is None:
            raise ClientError(f"no governance records can be read from {self.where}")
        return self._call(self._governance)

    # -- reads --

    def traces(
        self,
        *,
        limit: int = D.TRACES_LIMIT,
        since: datetime | None = None,
        service: str | None = None,
    ) -> list[TraceSummary]:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.traces, self.store, self.tenant, limit=limit, since=since, service=service
        )

    def trace(self, trace_id: str) -> TraceDetail:
        from agentledger.pipeline.services import reads

        return self._call(reads.trace, self.store, self.tenant, trace_id)

    def content(self, content_hash: str) -> Content:
        from agentledger.pipeline.services import reads

        return self._call(reads.content, self.store, self.tenant, content_hash)

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
    ) -> UsageReport:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.usage,
            self.store,
            self.tenant,
            since=since,
            until=until,
            group_by=group_by,
            interval=interval,
            top=top,
            order_by=order_by,
            filters=filters,
            refresh_hours=0 if refresh else None,
        )

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
    ) -> PatternsReport:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.patterns,
            self.store,
            self.tenant,
            since=since,
            until=until,
            baseline_hours=baseline_hours,
            agent=agent,
            n=n,
            top=top,
            k=k,
        )

    def anomalies(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        type: str | None = None,
        limit: int = D.ANOMALIES_LIMIT,
    ) -> list[Anomaly]:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.anomalies,
            self.store,
            self.tenant,
            since=since,
            until=until,
            type=type,
            limit=limit,
        )

    def feedback(
        self,
        *,
        trace_id: str | None = None,
        span_id: str | None = None,
        limit: int = D.FEEDBACK_LIMIT,
    ) -> list[FeedbackItem]:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.feedback, self.store, self.tenant, trace_id=trace_id, span_id=span_id, limit=limit
        )

    def datasets(self, *, limit: int = D.DATASETS_LIMIT) -> list[DatasetSummary]:
        from agentledger.pipeline.services import reads

        return self._call(reads.datasets, self.store, self.tenant, limit=limit)

    def dataset(self, dataset_id: str) -> DatasetManifest:
        from agentledger.pipeline.services import reads

        return self._call(reads.dataset, self.store, self.tenant, dataset_id)

    def dataset_spans(
        self, dataset_id: str, *, limit: int = D.DATASET_SPANS_LIMIT
    ) -> list[DatasetSpan]:
        from agentledger.pipeline.services import reads

        return self._call(reads.dataset_spans, self.store, self.tenant, dataset_id, limit=limit)

    def span_datasets(self, span_id: str) -> list[SpanDataset]:
        from agentledger.pipeline.services import reads

        return self._call(reads.span_datasets, self.store, self.tenant, span_id)

    def audit(self, ref: str, *, last: bool = False) -> AuditReport:
        from agentledger.pipeline.services import reads

        return self._call(reads.audit, self.store, self.tenant, ref, last=last)

    def verify_ledger(self, *, since: str | None = None) -> LedgerReport:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.verify_ledger, self.store, self.tenant, since=since, key=self._ledger_key
        )

    def replay_request(self, span_id: str, *, api: str | None = None) -> RebuiltRequest:
        from agentledger.pipeline.services import reads

        return self._call(reads.replay_request, self.store, self.tenant, span_id, api=api)

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
    ) -> RebuiltRequests:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.replay_requests,
            self.store,
            self.tenant,
            agent=agent,
            model=model,
            since=since,
            until=until,
            tools_only=tools_only,
            limit=limit,
            api=api,
        )

    def replays(self, *, limit: int = D.REPLAYS_LIMIT) -> list[ReplayRunSummary]:
        from agentledger.pipeline.services import reads

        return self._call(reads.replays, self.store, self.tenant, limit=limit)

    def replay(self, run_id: str) -> ReplayRun:
        from agentledger.pipeline.services import reads

        return self._call(reads.replay_run, self.store, self.tenant, run_id)

    def intents(
        self,
        *,
        trace_id: str | None = None,
        session_id: str | None = None,
        tool_name: str | None = None,
        limit: int = D.INTENTS_LIMIT,
    ) -> list[IntentRecord]:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.intents,
            self._service(),
            self.tenant,
            trace_id=trace_id,
            session_id=session_id,
            tool_name=tool_name,
            limit=limit,
        )

    def intent(self, intent_id: str) -> IntentRecord:
        from agentledger.pipeline.services import reads

        return self._call(reads.intent, self._service(), self.tenant, intent_id)

    def controls(self, *, everything: bool = False, limit: int = D.CONTROLS_LIMIT) -> ControlList:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.controls, self._service(), self.tenant, everything=everything, limit=limit
        )

    # -- writes --

    def detect_anomalies(
        self,
        *,
        now: datetime | None = None,
        window_hours: int | None = None,
        baseline_hours: int | None = None,
    ) -> DetectionResult:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.detect_anomalies,
            self.store,
            self.tenant,
            now=now,
            window_hours=window_hours,
            baseline_hours=baseline_hours,
        )

    def add_feedback(self, items: Sequence[Mapping[str, Any]]) -> FeedbackAccepted:
        from agentledger.pipeline.services import reads
        from agentledger.pipeline.services.datasets import FeedbackIn

        if self._feedback_log is None:
            raise ClientError(f"feedback cannot be stored in {self.where}")
        log = self._feedback_log

        def add() -> FeedbackAccepted:
            parsed = [FeedbackIn.model_validate(dict(i)) for i in items]
            return reads.add_feedback(log, self.tenant, parsed, source="cli")

        return self._call(add)

    def export_dataset(
        self, out_dir: str, request: Mapping[str, Any], progress: Progress | None = None
    ) -> DatasetManifest:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.export_dataset,
            self.store,
            self.tenant,
            out_dir,
            request,
            progress=progress,
            actor=Actor.CLI,
        )

    def save_replay(self, report: Mapping[str, Any]) -> ReplayStored:
        from agentledger.pipeline.services import reads

        return self._call(reads.save_replay, self.store, self.tenant, report, actor=Actor.CLI)

    def control(
        self, *, action: str, scope: str, target: str, by: str, reason: str
    ) -> ControlEvent:
        from agentledger.pipeline.governance import ControlIn
        from agentledger.pipeline.services import reads

        def record() -> ControlEvent:
            request = ControlIn.model_validate(
                {"action": action, "scope": scope, "target": target, "by": by, "reason": reason}
            )
            return reads.control(self._service(), self.tenant, request)

        return self._call(record)


# -- choosing one ------------------------------------------------------------------------------


def _server_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _local(data_dir: str, tenant: str, clickhouse_url: str | None) -> LedgerClient:
    from agentledger.compose import build_local_reader
    from agentledger.pipeline.settings import StoreSettings
    from agentledger.pipeline.store import StoreError

    try:
        settings = StoreSettings(data_dir=data_dir, clickhouse_url=clickhouse_url)
        return build_local_reader(settings, tenant)
    except (StoreError, ValueError) as exc:
        raise ClientError(str(exc)) from exc


def open_client(
    *,
    url: str,
    data_dir: str | None,
    default_data_dir: str,
    api_key: str | None,
    tenant: str,
    clickhouse_url: str | None = None,
    server_only: bool = False,
) -> LedgerClient:
    """An explicit ``--data-dir`` (or ClickHouse URL) is read directly; otherwise the server at
    ``url`` when it answers, else the default data directory. ``server_only``: always the
    server (run controls act on the running collectors)."""
    if server_only:
        return HttpReadClient(url, api_key)
    if data_dir is not None or clickhouse_url:
        return _local(data_dir or default_data_dir, tenant, clickhouse_url)
    if _server_up(url):
        return HttpReadClient(url, api_key)
    return _local(default_data_dir, tenant, None)

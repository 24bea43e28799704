"""The client over the store: a data directory or ClickHouse server read in this process."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from agentledger.cli.client.base import ClientError, Progress
from agentledger.schemas.read import (
    AccessLog,
    AgentGraph,
    Anomaly,
    AnomalyActionDone,
    AnomalyActionIn,
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
from agentledger.schemas.records import Actor

if TYPE_CHECKING:
    from agentledger.pipeline.governance import GovernanceService
    from agentledger.pipeline.services.access import AccessRecorder
    from agentledger.pipeline.services.datasets.feedback import FeedbackLog
    from agentledger.pipeline.store import Store

__all__ = ["LocalReadClient"]

T = TypeVar("T")


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
        self._access: AccessRecorder | None = None

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

    def _logged(self, what: str, object_ids: Sequence[str], rows: int, answer: T) -> T:
        """``answer``, once its read is in the access log (as ``cli``: a local reader holds the
        whole store, but what it read is still on record)."""
        from agentledger.pipeline.services.access import AccessRecorder

        if self._access is None:
            self._access = AccessRecorder(self.store, writer=f"cli-{os.getpid()}")
        recorder = self._access
        self._call(
            lambda: recorder.record(
                self.tenant,
                key_name=Actor.CLI,
                role="admin",
                method="cli",
                route=what,
                object_ids=object_ids,
                rows=rows,
            )
        )
        return answer

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

        found = self._call(
            reads.traces, self.store, self.tenant, limit=limit, since=since, service=service
        )
        return self._logged("traces", [t.trace_id for t in found], len(found), found)

    def trace(self, trace_id: str) -> TraceDetail:
        from agentledger.pipeline.services import reads

        found = self._call(reads.trace, self.store, self.tenant, trace_id)
        return self._logged("trace", [trace_id], len(found.spans), found)

    def content(self, content_hash: str) -> Content:
        from agentledger.pipeline.services import reads

        found = self._call(reads.content, self.store, self.tenant, content_hash)
        return self._logged("content", [content_hash], 1, found)

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
        from agentledger.pipeline.derive import UsageRollupJob
        from agentledger.pipeline.services import reads

        if refresh:  # no background job here: this command is the rollup's one pass
            self._call(UsageRollupJob().run, self.store, datetime.now(timezone.utc))
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
        )

    def agents_graph(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        trace_id: str | None = None,
    ) -> AgentGraph:
        from agentledger.pipeline.services import graph

        return self._call(
            graph.agents_graph, self.store, self.tenant, since=since, until=until, trace_id=trace_id
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

        found = self._call(reads.audit, self.store, self.tenant, ref, last=last)
        return self._logged("audit", [ref], len(found.actions), found)

    def verify_ledger(self, *, since: str | None = None) -> LedgerReport:
        from agentledger.pipeline.services import reads

        return self._call(
            reads.verify_ledger, self.store, self.tenant, since=since, key=self._ledger_key
        )

    def replay_request(self, span_id: str, *, api: str | None = None) -> RebuiltRequest:
        from agentledger.pipeline.services import reads

        found = self._call(reads.replay_request, self.store, self.tenant, span_id, api=api)
        return self._logged("replay request", [span_id], 1, found)

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

        found = self._call(
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
        ids = [r.span_id for r in found.requests]
        return self._logged("replay requests", ids, len(ids), found)

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

        found = self._call(
            reads.export_dataset,
            self.store,
            self.tenant,
            out_dir,
            request,
            progress=progress,
            actor=Actor.CLI,
        )
        return self._logged("dataset export", [found.id], found.counts.examples, found)

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

    def anomaly_action(
        self,
        ref: str,
        action: str,
        *,
        label: str = "",
        note: str = "",
        until: datetime | None = None,
    ) -> AnomalyActionDone:
        from agentledger.pipeline.services import reads

        def act() -> AnomalyActionDone:
            body = AnomalyActionIn.model_validate(
                {"action": action, "label": label, "note": note, "until": until}
            )
            return reads.anomaly_action(self.store, self.tenant, ref, body, actor=Actor.CLI)

        return self._call(act)

    # -- access --

    def create_key(self, *, tenant: str, role: str, name: str, agent: str = "") -> ApiKeyCreated:
        from agentledger.pipeline.services.access import KeyBook

        book = KeyBook(self.store)
        return self._call(book.create, tenant, role, name, agent=agent, actor=Actor.CLI)

    def keys(self, *, tenant: str | None = None) -> ApiKeyList:
        from agentledger.pipeline.services.access import KeyBook

        found = self._call(KeyBook(self.store).list_keys, tenant)
        listed = ApiKeyList(keys=[k.info() for k in found])
        return self._logged("keys", [k.name for k in found], len(found), listed)

    def revoke_key(self, name: str) -> ApiKeyInfo:
        from agentledger.pipeline.services.access import KeyBook

        return self._call(KeyBook(self.store).revoke, name, actor=Actor.CLI).info()

    def sql(
        self, query: str, *, fmt: str = "JSON", params: Mapping[str, str] | None = None
    ) -> bytes:
        from agentledger.pipeline.services.sql import SqlError, SqlService, SqlUnavailable

        try:
            service = SqlService(self.store)
        except SqlUnavailable as exc:
            raise ClientError(str(exc)) from exc
        try:
            answer = service.run(self.tenant, query, params=params, fmt=fmt)
        except SqlError as exc:
            self._logged("sql", [f"sql refused: {query[:4000]}"], 0, None)
            raise ClientError(str(exc)) from exc
        finally:
            service.close()
        return self._logged("sql", [f"sql: {query[:4000]}"], answer.rows_read, answer.body)

    def access_log(self, *, limit: int = D.ACCESS_LOG_LIMIT, key: str | None = None) -> AccessLog:
        from agentledger.pipeline.services.access import read_access_log

        return self._call(read_access_log, self.store, self.tenant, limit=limit, key_name=key)

    # -- the verifiable ledger --

    def ledger_checkpoint(self) -> str:
        from agentledger.pipeline.services import ledger

        return self._call(ledger.checkpoint, self.store, self.tenant)

    def ledger_proof(self, kind: str, record_id: str) -> dict[str, Any]:
        from agentledger.pipeline.services import ledger

        proof = self._call(ledger.prove, self.store, self.tenant, kind, record_id)
        return self._logged("ledger proof", [record_id], 1, proof.to_json())

    def ledger_consistency(self, first: int, second: int) -> dict[str, Any]:
        from agentledger.pipeline.services import ledger

        return self._call(ledger.consistency, self.store, self.tenant, first, second).to_json()

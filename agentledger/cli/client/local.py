"""The client over the store: a data directory or ClickHouse server read in this process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from agentledger.cli.client.local_writes import LocalWrites
from agentledger.schemas.read import (
    AgentGraph,
    Anomaly,
    AuditReport,
    Content,
    ControlList,
    DatasetManifest,
    DatasetSpan,
    DatasetSummary,
    FeedbackItem,
    IntentRecord,
    LedgerReport,
    PatternsReport,
    RebuiltRequest,
    RebuiltRequests,
    ReplayRun,
    ReplayRunSummary,
    SpanDataset,
    TraceDetail,
    TraceSummary,
    UsageReport,
)
from agentledger.schemas.read import defaults as D

__all__ = ["LocalReadClient"]


class LocalReadClient(LocalWrites):
    """A data directory or ClickHouse server read (and written) in this process, through the read
    services the routers call. Built by ``agentledger.compose.build_local_reader``.

    A data directory has no background jobs: ``usage`` with ``refresh`` brings every hour of the
    rollup up to date (a server's route does the recent hours; its jobs the rest).
    """

    reports_progress = True

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

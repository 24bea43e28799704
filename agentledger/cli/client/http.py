"""The client over HTTP: the API of a running server."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from agentledger.cli.client.base import ClientError, Progress
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

__all__ = ["HttpReadClient"]

M = TypeVar("M", bound=BaseModel)


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

    def agents_graph(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        trace_id: str | None = None,
    ) -> AgentGraph:
        return self._get(
            AgentGraph, "/api/v1/agents/graph", since=since, until=until, trace_id=trace_id
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
        """One file of a dataset into ``target``; a name the server sends that would land outside
        it (``..``, an absolute path, a NUL) is refused, whoever answers at the URL."""
        root = os.path.realpath(target)
        dest = "" if "\x00" in name else os.path.realpath(os.path.join(root, name))
        if not dest or os.path.isabs(name) or os.path.commonpath([root, dest]) != root:
            raise ClientError(f"{self.where} listed a file outside the dataset folder: {name!r}")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with self._client.stream("GET", path, timeout=None) as r:
            if r.status_code >= 400:
                raise ClientError(f"{self.where} answered {r.status_code} for {name}")
            with open(dest, "wb") as fh:
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

    def anomaly_action(
        self,
        ref: str,
        action: str,
        *,
        label: str = "",
        note: str = "",
        until: datetime | None = None,
    ) -> AnomalyActionDone:
        body = {"action": action, "label": label, "note": note, "until": _param(until)}
        found = self._send("POST", f"/api/v1/anomalies/{ref}/actions", json=body)
        return AnomalyActionDone.model_validate(found)

    # -- access --

    def create_key(self, *, tenant: str, role: str, name: str, agent: str = "") -> ApiKeyCreated:
        body = {"name": name, "role": role, "agent": agent, "tenant": tenant}
        return ApiKeyCreated.model_validate(self._send("POST", "/api/v1/keys", json=body))

    def keys(self, *, tenant: str | None = None) -> ApiKeyList:
        return self._get(ApiKeyList, "/api/v1/keys")

    def revoke_key(self, name: str) -> ApiKeyInfo:
        return ApiKeyInfo.model_validate(self._send("DELETE", f"/api/v1/keys/{name}"))

    def sql(
        self, query: str, *, fmt: str = "JSON", params: Mapping[str, str] | None = None
    ) -> bytes:
        args = {"default_format": fmt, **{f"param_{k}": v for k, v in (params or {}).items()}}
        try:
            resp = self._client.post("/clickhouse", params=args, content=query.encode())
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the server at {self.where}: {exc}") from exc
        if resp.status_code >= 400:
            raise ClientError(resp.text.strip() or f"HTTP {resp.status_code}")
        return resp.content

    def access_log(self, *, limit: int = D.ACCESS_LOG_LIMIT, key: str | None = None) -> AccessLog:
        return self._get(AccessLog, "/api/v1/access-log", limit=limit, key=key)

    # -- the verifiable ledger --

    def ledger_checkpoint(self) -> str:
        try:
            resp = self._client.get("/api/v1/ledger/checkpoint")
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach the server at {self.where}: {exc}") from exc
        if resp.status_code >= 400:
            self._send("GET", "/api/v1/ledger/checkpoint")  # raises with the server's detail
        return resp.text

    def ledger_proof(self, kind: str, record_id: str) -> dict[str, Any]:
        params = {"span_id": record_id} if kind == "span" else {"record": f"{kind}:{record_id}"}
        found: dict[str, Any] = self._send("GET", "/api/v1/ledger/proof", params=params)
        return found

    def ledger_consistency(self, first: int, second: int) -> dict[str, Any]:
        found: dict[str, Any] = self._send(
            "GET", "/api/v1/ledger/consistency", params={"first": first, "second": second}
        )
        return found

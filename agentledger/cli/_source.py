"""Where query commands read from: a running server's HTTP API, or the data directory.

chDB locks a data directory to one process, so while ``agentledger serve``
runs, queries go through its API; when none runs, they open the directory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, ParamSpec, Protocol, TypeVar

import httpx

from agentledger.pipeline.services import queries

__all__ = ["QuerySource", "open_source", "SourceError"]

P = ParamSpec("P")
T = TypeVar("T")


class SourceError(Exception):
    """Neither the server nor the data directory can be read."""


def _iso(t: Any) -> str | None:
    return None if t is None else t.isoformat()


def _store_call(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a jobs function on the store, its errors as SourceError."""
    from agentledger.pipeline.derive import UsageQueryError
    from agentledger.pipeline.store import StoreError

    try:
        return fn(*args, **kwargs)
    except (UsageQueryError, StoreError) as exc:
        raise SourceError(str(exc)) from exc


class QuerySource(Protocol):
    where: str

    def traces(self, limit: int, service: str | None) -> list[dict[str, Any]]: ...

    def trace(self, trace_id: str) -> dict[str, Any]: ...

    def usage(self, q: Any, refresh: bool = True) -> list[dict[str, Any]]: ...

    def patterns(
        self,
        start: Any,
        end: Any,
        baseline_hours: int,
        agent: str | None = None,
        n: int = 3,
        top: int = 10,
        k: int | None = None,
    ) -> dict[str, Any]: ...

    def anomalies(
        self, since: Any = None, until: Any = None, type: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]: ...

    def detect_anomalies(
        self, now: Any = None, window_hours: int | None = None, baseline_hours: int | None = None
    ) -> dict[str, Any]: ...

    # datasets and feedback (agentledger feedback / dataset)

    def feedback_add(self, items: list[dict[str, Any]]) -> dict[str, Any]: ...

    def feedback_list(self, trace_id: str | None, span_id: str | None) -> list[dict[str, Any]]: ...

    def dataset_export(
        self, out_dir: str, request: dict[str, Any], progress: Any = None
    ) -> dict[str, Any]: ...

    def dataset_show(self, dataset_id: str) -> dict[str, Any]: ...

    def dataset_spans(self, dataset_id: str, limit: int) -> list[dict[str, Any]]: ...

    def dataset_of_span(self, span_id: str) -> list[dict[str, Any]]: ...

    def dataset_list(self, limit: int) -> list[dict[str, Any]]: ...

    def close(self) -> None: ...


class HttpSource:
    def __init__(self, url: str, api_key: str | None) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.where = url
        self._client = httpx.Client(base_url=url, headers=headers, timeout=30)

    def _get(self, path: str, **params: Any) -> Any:
        resp = self._client.get(path, params={k: v for k, v in params.items() if v is not None})
        if resp.status_code == 404:
            raise SourceError(resp.json().get("detail", "not found"))
        if resp.status_code >= 400:
            raise SourceError(f"{self.where} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def traces(self, limit: int, service: str | None) -> list[dict[str, Any]]:
        return self._get("/api/v1/traces", limit=limit, service=service)  # type: ignore[no-any-return]

    def trace(self, trace_id: str) -> dict[str, Any]:
        return self._get(f"/api/v1/traces/{trace_id}")  # type: ignore[no-any-return]

    # analytics (agentledger usage / patterns / anomalies)

    def usage(self, q: Any, refresh: bool = True) -> list[dict[str, Any]]:
        params = {
            "since": _iso(q.start),
            "until": _iso(q.end),
            "group_by": ",".join(q.group_by),
            "interval": q.interval,
            "top": q.top or 0,
            "order_by": q.order_by,
            "refresh": str(refresh).lower(),
            **q.filters,
        }
        return self._get("/api/v1/usage", **params)["rows"]  # type: ignore[no-any-return]

    def patterns(
        self,
        start: Any,
        end: Any,
        baseline_hours: int,
        agent: str | None = None,
        n: int = 3,
        top: int = 10,
        k: int | None = None,
    ) -> dict[str, Any]:
        return self._get(  # type: ignore[no-any-return]
            "/api/v1/patterns",
            since=_iso(start),
            until=_iso(end),
            baseline_hours=baseline_hours,
            agent=agent,
            n=n,
            top=top,
            k=k,
        )

    def anomalies(
        self, since: Any = None, until: Any = None, type: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        return self._get(  # type: ignore[no-any-return]
            "/api/v1/anomalies",
            since=_iso(since),
            until=_iso(until),
            type=type,
            limit=limit,
        )

    def detect_anomalies(
        self, now: Any = None, window_hours: int | None = None, baseline_hours: int | None = None
    ) -> dict[str, Any]:
        params = {
            k: v
            for k, v in (
                ("now", _iso(now)),
                ("window_hours", window_hours),
                ("baseline_hours", baseline_hours),
            )
            if v is not None
        }
        resp = self._client.post("/api/v1/anomalies/detect", params=params, timeout=600)
        if resp.status_code >= 400:
            raise SourceError(f"{self.where} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()  # type: ignore[no-any-return]

    # datasets and feedback (agentledger feedback / dataset)

    def _send(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            resp = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise SourceError(f"cannot reach {self.where}: {exc}") from exc
        if resp.status_code >= 400:
            try:
                detail = resp.json().get("detail", resp.text)
            except ValueError:
                detail = resp.text
            raise SourceError(f"{self.where} answered {resp.status_code}: {str(detail)[:500]}")
        return resp.json()

    def feedback_add(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        return self._send("POST", "/v1/feedback", json=items)  # type: ignore[no-any-return]

    def feedback_list(self, trace_id: str | None, span_id: str | None) -> list[dict[str, Any]]:
        return self._get("/api/v1/feedback", trace_id=trace_id, span_id=span_id)  # type: ignore[no-any-return]

    def dataset_export(
        self, out_dir: str, request: dict[str, Any], progress: Any = None
    ) -> dict[str, Any]:
        """The server exports (into ``out_dir`` on its machine); files it wrote where this process
        cannot see them are downloaded into ``out_dir`` here."""
        import os

        target = os.path.abspath(out_dir)
        try:
            manifest: dict[str, Any] = self._send(
                "POST",
                "/api/v1/datasets",
                json={"out_dir": target, "request": request},
                timeout=None,
            )
        except SourceError as exc:
            if " 403:" not in str(exc):
                raise
            # the server keeps authenticated exports in its datasets directory: export there, download
            manifest = self._send(
                "POST",
                "/api/v1/datasets",
                json={
                    "out_dir": f"{os.path.basename(target)}-{os.getpid()}-{int(time.time())}",
                    "request": request,
                },
                timeout=None,
            )
        if not os.path.isfile(os.path.join(target, "manifest.json")):
            os.makedirs(target, exist_ok=True)
            for name in [f["path"] for f in manifest["files"]] + ["manifest.json"]:
                with self._client.stream(
                    "GET", f"/api/v1/datasets/{manifest['id']}/files/{name}", timeout=None
                ) as r:
                    if r.status_code >= 400:
                        raise SourceError(f"{self.where} answered {r.status_code} for {name}")
                    with open(os.path.join(target, name), "wb") as fh:
                        for chunk in r.iter_bytes():
                            fh.write(chunk)
        return manifest

    def dataset_show(self, dataset_id: str) -> dict[str, Any]:
        return self._get(f"/api/v1/datasets/{dataset_id}")  # type: ignore[no-any-return]

    def dataset_spans(self, dataset_id: str, limit: int) -> list[dict[str, Any]]:
        return self._get(f"/api/v1/datasets/{dataset_id}/spans", limit=limit)  # type: ignore[no-any-return]

    def dataset_of_span(self, span_id: str) -> list[dict[str, Any]]:
        return self._get(f"/api/v1/spans/{span_id}/datasets")  # type: ignore[no-any-return]

    def dataset_list(self, limit: int) -> list[dict[str, Any]]:
        return self._get("/api/v1/datasets", limit=limit)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._client.close()


class StoreSource:
    def __init__(self, data_dir: str, tenant: str, clickhouse_url: str | None = None) -> None:
        from agentledger.pipeline.store import StoreError, migrate, open_store

        try:
            self.store = open_store(clickhouse_url=clickhouse_url, data_dir=data_dir)
            migrate(self.store)
        except StoreError as exc:
            raise SourceError(str(exc)) from exc
        self.tenant = tenant
        self.where = clickhouse_url or data_dir

    def traces(self, limit: int, service: str | None) -> list[dict[str, Any]]:
        return queries.list_traces(self.store, self.tenant, limit=limit, service=service)

    def trace(self, trace_id: str) -> dict[str, Any]:
        spans = queries.get_trace(self.store, self.tenant, trace_id)
        if not spans:
            raise SourceError(f"no trace {trace_id} for tenant {self.tenant!r} in {self.where}")
        return {"trace_id": trace_id.lower(), "spans": spans, "tree": queries.trace_tree(spans)}

    # analytics (agentledger usage / patterns / anomalies)

    def usage(self, q: Any, refresh: bool = True) -> list[dict[str, Any]]:
        from agentledger.pipeline.derive import UsageRollupJob, usage_report

        if refresh:  # a data dir has no background pass: bring every hour up to date
            _store_call(UsageRollupJob().run, self.store, datetime.now(timezone.utc))
        return _store_call(usage_report, self.store, self.tenant, q)

    def patterns(
        self,
        start: Any,
        end: Any,
        baseline_hours: int,
        agent: str | None = None,
        n: int = 3,
        top: int = 10,
        k: int | None = None,
    ) -> dict[str, Any]:
        from agentledger.pipeline.derive import patterns_report

        baseline = (start - timedelta(hours=baseline_hours), start)
        return _store_call(
            patterns_report,
            self.store,
            self.tenant,
            (start, end),
            baseline,
            agent=agent,
            n_max=n,
            top=top,
            k=k,
        )

    def anomalies(
        self, since: Any = None, until: Any = None, type: str | None = None, limit: int = 100
    ) -> list[dict[str, Any]]:
        from agentledger.pipeline.derive import list_anomalies

        return _store_call(
            list_anomalies,
            self.store,
            self.tenant,
            since=since,
            until=until,
            type=type,
            limit=limit,
        )

    def detect_anomalies(
        self, now: Any = None, window_hours: int | None = None, baseline_hours: int | None = None
    ) -> dict[str, Any]:
        from agentledger.pipeline.derive import AnomalyDetectionJob, JobSettings

        overrides: dict[str, Any] = {
            k: v
            for k, v in (("window_hours", window_hours), ("baseline_hours", baseline_hours))
            if v
        }
        at = now or datetime.now(timezone.utc)
        job = AnomalyDetectionJob(JobSettings(**overrides), tenant=self.tenant)
        result = _store_call(job.run, self.store, at)
        return {"now": at.isoformat(), "seconds": round(result.seconds, 3), **result.info}

    # datasets and feedback (agentledger feedback / dataset)

    def _datasets_call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        from agentledger.pipeline.services.datasets import ExportError
        from agentledger.pipeline.store import StoreError

        try:
            return fn(*args, **kwargs)
        except (ExportError, StoreError, ValueError) as exc:
            raise SourceError(str(exc)) from exc

    def feedback_add(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        from agentledger.pipeline.services.datasets import (
            FeedbackIn,
            resolve_trace_ids,
            to_record,
            write_feedback,
        )

        def add() -> dict[str, Any]:
            records = [
                to_record(self.tenant, FeedbackIn.model_validate(item), "cli") for item in items
            ]
            unknown = resolve_trace_ids(self.store, records)
            if unknown:
                raise SourceError(
                    f"no span {unknown[0].span_id} for tenant {self.tenant!r}; give --trace-id too"
                )
            write_feedback(self.store, records)
            return {
                "accepted": len(records),
                "ids": [r.feedback_id for r in records],
                "durable_in": "store",
            }

        return self._datasets_call(add)

    def feedback_list(self, trace_id: str | None, span_id: str | None) -> list[dict[str, Any]]:
        from agentledger.pipeline.services.datasets import list_feedback

        return self._datasets_call(
            list_feedback,
            self.store,
            self.tenant,
            trace_id=trace_id,
            span_id=span_id,
        )

    def dataset_export(
        self, out_dir: str, request: dict[str, Any], progress: Any = None
    ) -> dict[str, Any]:
        from agentledger.pipeline.services.datasets import ExportRequest, export_dataset

        return self._datasets_call(
            lambda: export_dataset(
                self.store,
                self.tenant,
                out_dir,
                ExportRequest.from_json(request),
                progress=progress,
            )
        )

    def dataset_show(self, dataset_id: str) -> dict[str, Any]:
        from agentledger.pipeline.services.datasets import get_dataset

        found = self._datasets_call(get_dataset, self.store, self.tenant, dataset_id)
        if found is None:
            raise SourceError(f"no dataset {dataset_id} for tenant {self.tenant!r} in {self.where}")
        return found

    def dataset_spans(self, dataset_id: str, limit: int) -> list[dict[str, Any]]:
        from agentledger.pipeline.services.datasets import dataset_spans

        return self._datasets_call(
            dataset_spans,
            self.store,
            self.tenant,
            dataset_id,
            limit=limit,
        )

    def dataset_of_span(self, span_id: str) -> list[dict[str, Any]]:
        from agentledger.pipeline.services.datasets import datasets_of_span

        return self._datasets_call(datasets_of_span, self.store, self.tenant, span_id)

    def dataset_list(self, limit: int) -> list[dict[str, Any]]:
        from agentledger.pipeline.services.datasets import list_datasets

        return self._datasets_call(list_datasets, self.store, self.tenant, limit)

    def close(self) -> None:
        self.store.close()


def _server_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def open_source(
    *,
    url: str,
    data_dir: str | None,
    default_data_dir: str,
    api_key: str | None,
    tenant: str,
    clickhouse_url: str | None = None,
) -> QuerySource:
    """An explicit ``--data-dir`` (or ClickHouse URL) is read directly; otherwise the server
    at ``url`` when it answers, else the default data directory."""
    if data_dir is not None or clickhouse_url:
        return StoreSource(data_dir or default_data_dir, tenant, clickhouse_url)
    if _server_up(url):
        return HttpSource(url, api_key)
    return StoreSource(default_data_dir, tenant)

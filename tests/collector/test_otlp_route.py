"""Traces, logs and metrics are answered by one frame (``collector/otlp_route.py``): they share
one concurrency gate, so a trace export holding the last slot turns a log or metric export away
with the same 429 and ``Retry-After``, and the slot, once free, serves them again."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from agentledger.collector import otlp
from agentledger.pipeline.sinks.logs import StoreLogSink
from agentledger.pipeline.store.embedded import EmbeddedStore
from tests.collector.test_otlp_errors import AUTH, PB, _app, _BlockingSink, _encoded, _status

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("path", [otlp.LOGS_PATH, otlp.METRICS_PATH])
def test_a_trace_export_holding_the_gate_turns_logs_and_metrics_away_alike(
    path: str, store: EmbeddedStore
) -> None:
    sink = _BlockingSink()
    app = _app(sink, max_concurrent_exports=1, retry_after_seconds=3)
    app.state.log_sink = StoreLogSink(store)
    empty = {"Content-Type": otlp.JSON, **AUTH}

    async def scenario() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            first = asyncio.create_task(
                http.post(
                    otlp.TRACES_PATH, content=_encoded(PB), headers={"Content-Type": PB, **AUTH}
                )
            )
            await asyncio.to_thread(sink.entered.wait, 10)
            turned_away = await http.post(path, content=b"{}", headers=empty)
            sink.release.set()
            traces = await first
            served = await http.post(path, content=b"{}", headers=empty)
            return traces, turned_away, served

    traces, turned_away, served = asyncio.run(scenario())
    assert traces.status_code == 200
    assert turned_away.status_code == 429
    assert turned_away.headers["retry-after"] == "3"
    status = _status(turned_away, otlp.JSON)
    assert status.code == 8 and "too many export requests in progress (limit 1)" in status.message
    assert served.status_code == 200, served.text
    assert served.headers["content-type"].startswith(otlp.JSON)

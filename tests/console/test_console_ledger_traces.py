"""The rest of issue 18's trace pages: the trace list's anomaly filter and the virtualized
waterfall of a trace of thousands of spans.

The filter is checked on a real store (exactly the traces an anomaly names, of any kind or of one)
and in the browser against the demo's stored anomaly; the waterfall with a 2,551-span trace sent
through the real instrumentation to the real ``serve``: only the rows in view are in the
document, scrolling to the end loads the last page from the server, the last span opens in the
panel, j moves on, and the pages read land in the access log.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from agentledger.pipeline.services.trace_search import TraceFilters, search_traces
from agentledger.pipeline.services.waterfall import outline
from tests.console.conftest import KEYS, Served, sign_in

STEPS, CALLS = 50, 50
"""The big trace: a root, 50 steps under it, 50 calls under each (2,551 spans)."""


def _get(served: Served, role: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(
        served.url + path,
        params=params,
        headers={"Authorization": f"Bearer {KEYS[role]}"},
        timeout=60,
    )


# -- on a store, no browser ----------------------------------------------------------------------


def _spans(store, trace_id: str, count: int, *, chain: bool = False) -> None:  # type: ignore[no-untyped-def]
    """``count`` spans of one trace: under one root, or each under the one before (``chain``)."""
    parent = (
        "if(number = 0, '', leftPad(lower(hex(number)), 16, '0'))"
        if chain
        else "if(number = 0, '', leftPad('1', 16, '0'))"
    )
    store.command(
        "INSERT INTO spans (tenant, trace_id, span_id, parent_span_id, start_time, end_time, "
        "duration_ms, name, kind, status_code) "
        f"SELECT 'acme', {{t:String}}, leftPad(lower(hex(number + 1)), 16, '0'), {parent}, "
        "now64(9) - toIntervalSecond(60) + toIntervalMillisecond(number), "
        "now64(9) - toIntervalSecond(60) + toIntervalMillisecond(number + 1), 1.0, "
        "concat('op-', toString(number)), if(number % 2 = 0, 'LLM', 'TOOL'), "
        "if(number = 7, 'ERROR', 'OK') FROM numbers({n:UInt32})",
        {"t": trace_id, "n": count},
    )


@pytest.mark.integration
def test_the_anomaly_filter_keeps_exactly_the_traces_an_anomaly_names(store) -> None:  # type: ignore[no-untyped-def]
    named, other = "a" * 32, "b" * 32
    _spans(store, named, 3)
    _spans(store, other, 3)
    store.command(
        "INSERT INTO anomalies (tenant, window_start, window_end, type, anomaly_id, metric, "
        "example_trace_ids, detail, first_detected, detected_at) VALUES ('acme', "
        "toStartOfHour(now()), toStartOfHour(now()) + 3600, 'cost_spike', 'x1', 'cost_usd', "
        "[{t:String}], 'test', now64(3), now64(3))",
        {"t": named},
    )

    def found(anomaly: str) -> set[str]:
        page = search_traces(store, "acme", TraceFilters(anomaly=anomaly))
        return {t.trace_id for t in page.traces}

    assert found("") == {named, other}
    assert found("any") == {named}
    assert found("cost_spike") == {named}
    assert found("latency_spike") == set()


@pytest.mark.integration
def test_the_outline_orders_a_deep_trace_without_recursion(store) -> None:  # type: ignore[no-untyped-def]
    trace_id = "c" * 32
    _spans(store, trace_id, 3000, chain=True)  # 3,000 deep: past Python's recursion limit
    got = outline(store, "acme", trace_id)
    assert [b.depth for b in got.bars] == list(range(3000))
    assert got.bars[0].left == 0 and all(0 < b.width <= 100 for b in got.bars)
    assert got.totals["errors"] == 1 and got.root["name"] == "op-0"
    wide = "d" * 32
    _spans(store, wide, 5)
    assert [b.depth for b in outline(store, "acme", wide).bars] == [0, 1, 1, 1, 1]


# -- in the browser --------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_reader_lists_the_traces_with_an_anomaly(context: Any, served: Served) -> None:
    stored = _get(served, "reader", "/api/v1/anomalies", limit=500).json()
    named = [a for a in stored if a["example_trace_ids"]]
    assert named, "the demo's recording stores no anomaly with example traces"
    kind = named[0]["type"]
    of_kind = {t for a in named if a["type"] == kind for t in a["example_trace_ids"]}
    of_any = {t for a in named for t in a["example_trace_ids"]}
    page = context.new_page()
    sign_in(page, "reader", "/console/anomalies?range=30d")
    page.get_by_test_id("traces-of-kind").first.click()
    page.wait_for_url(f"**/console/traces?*anomaly={kind}*")
    expect(page.get_by_label("Anomaly")).to_have_value(kind)
    rows = page.get_by_test_id("traces").locator("tbody tr")
    expect(rows.first).to_be_visible()
    shown = {rows.nth(i).get_attribute("data-trace-id") for i in range(rows.count())}
    assert shown and shown <= of_kind, (shown, of_kind)
    page.get_by_label("Anomaly").select_option("any")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**anomaly=any*")
    expect(rows.first).to_be_visible()
    shown = {rows.nth(i).get_attribute("data-trace-id") for i in range(rows.count())}
    assert shown and shown <= of_any, (shown, of_any)
    everything = _get(served, "reader", "/api/v1/traces", limit=200).json()
    assert len(everything) > len(of_any)  # the filter left traces out
    bad = _get(served, "reader", "/console/traces", anomaly="everything")
    assert bad.status_code == 400 and "anomaly must be one of" in bad.text


def _send_big_trace(served: Served) -> str:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "batch-reconciliation"}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{served.url}/v1/traces",
                headers={"Authorization": f"Bearer {KEYS['ingest']}"},
            ),
            max_queue_size=4096,
        )
    )
    tracer = provider.get_tracer("console-big-trace")
    with tracer.start_as_current_span("reconcile month-end batch") as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
        for i in range(STEPS):
            with tracer.start_as_current_span(f"step-{i}"):
                for j in range(CALLS):
                    with tracer.start_as_current_span(f"call-{i}-{j}"):
                        pass
    provider.shutdown()
    deadline = time.monotonic() + 60
    while True:
        got = _get(served, "reader", f"/console/traces/{trace_id}/rows", offset=0, limit=1)
        if got.status_code == 200 and got.json()["total"] == 1 + STEPS * (1 + CALLS):
            return trace_id
        assert time.monotonic() < deadline, f"the big trace was not stored: {got.text[:200]}"
        time.sleep(0.5)


@pytest.mark.integration
def test_a_trace_of_thousands_of_spans_is_a_virtualized_waterfall(
    context: Any, served: Served
) -> None:
    trace_id = _send_big_trace(served)
    total = 1 + STEPS * (1 + CALLS)
    page = context.new_page()
    sign_in(page, "reader", f"/console/traces/{trace_id}")
    waterfall = page.get_by_test_id("waterfall")
    expect(waterfall.get_by_test_id("wf-note")).to_contain_text(f"{total} spans")
    expect(page.locator("[data-testid=waterfall][data-booted]")).to_have_count(1)  # script ran
    rows = waterfall.locator("[data-span-id]")
    expect(rows.first).to_contain_text("reconcile month-end batch")
    in_document = rows.count()
    assert 0 < in_document < 200, in_document  # the rows in view, not all 2,551
    # scroll to the end: the last page is asked of the server and its rows drawn
    page.locator(".wf-scroll").evaluate("el => { el.scrollTop = el.scrollHeight; }")
    last = waterfall.locator("[data-span-id]", has_text=f"call-{STEPS - 1}-{CALLS - 1}")
    expect(last).to_be_visible()
    assert rows.count() < 200
    last.click()
    panel = page.get_by_test_id("span-panel")
    expect(panel.locator("h2")).to_contain_text(f"call-{STEPS - 1}-{CALLS - 1}")
    assert page.url.endswith(f"?span={last.get_attribute('data-span-id')}")
    # keyboard: k moves up one span, even across rows not drawn yet
    page.keyboard.press("k")
    expect(page.locator(":focus")).to_contain_text(f"call-{STEPS - 1}-{CALLS - 2}")
    page.keyboard.press("Enter")
    expect(panel.locator("h2")).to_contain_text(f"call-{STEPS - 1}-{CALLS - 2}")
    # a link to a span deep in the trace opens with that span in view, selected
    deep = _get(served, "reader", f"/console/traces/{trace_id}/rows", offset=1200, limit=1)
    deep_id, deep_name = deep.json()["rows"][0]["id"], deep.json()["rows"][0]["n"]
    page.goto(f"/console/traces/{trace_id}?span={deep_id}")
    expect(panel.locator("h2")).to_contain_text(deep_name)
    expect(waterfall.locator(f'.wf-row.selected[data-span-id="{deep_id}"]')).to_be_visible()
    logged = _get(served, "auditor", "/api/v1/access-log", key="reader", limit=1000).json()
    pages = [e for e in logged["entries"] if e["route"] == "/console/traces/{trace_id}/rows"]
    assert pages and trace_id in pages[0]["object_ids"]
    bad = _get(served, "reader", f"/console/traces/{trace_id}/rows", limit=0)
    assert bad.status_code in (400, 422) and "limit" in bad.text

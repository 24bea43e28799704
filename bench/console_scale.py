"""The console at real volume: the trace list, a 2,000-span trace and a 10,000-span trace in a
real browser, with 10 million spans stored (issue 18: each within 1 s).

Builds (once, cached by size under ~/.cache/agentledger/console-scale/) an embedded data directory
holding ``--spans`` synthetic spans in traces of five (agent, retriever, two LLM calls, a tool)
over 30 days, plus one batch-reconciliation trace of 2,000 spans and one of 10,000, inserted as
Arrow batches straight into the store (the ingest path is measured by bench/ingest.py; here only
reads matter). Then runs ``agentledger serve`` on it with a reader key and, in Debian's chromium
driven by Playwright, times: the trace list page until its rows are shown; the 2,000-span trace's
page until its waterfall holds all 2,000 spans (rendered whole); the 10,000-span trace's page
until its virtualized waterfall shows its first rows, and then a scroll to its end until the
last span is drawn (its page of rows asked of the server); and the JSON API behind each. Prints
median and worst of ``--repeat`` loads.

Run: ``.venv/bin/python bench/console_scale.py`` (``--spans 1000000`` for a quicker look).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.kafka_path import _free_port, _wait_ready  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
_KEY = "bench-console-reader-0123456789abcdef"
_KINDS = ["AGENT", "RETRIEVER", "LLM", "TOOL", "LLM"]
_NAMES = [
    "run_controls_agent",
    "retrieve_policies",
    "ChatCompletion",
    "lookup_journal_entry",
    "ChatCompletion",
]
_BIG = "b" * 32  # the 2,000-span trace's id
_HUGE = "c" * 32  # the 10,000-span trace's id
_HUGE_SPANS = 10_000


def _hex_ids(rng: np.random.Generator, n: int, width: int) -> pa.Array:
    """``n`` random lowercase hex ids of ``width`` digits, built as one buffer (no Python loop)."""
    raw = rng.integers(0, 16, size=n * width, dtype=np.uint8)
    digits = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)[raw]
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(digits.tobytes())
    )


def _table(schema: pa.Schema, columns: dict[str, pa.Array], n: int) -> pa.Table:
    """The spans table's columns: those given, and empty values for the rest."""
    arrays = []
    for field in schema:
        if field.name in columns:
            arrays.append(columns[field.name].cast(field.type))
        elif pa.types.is_string(field.type):
            arrays.append(
                pa.array([""] * n, field.type) if n < 10 else pa.repeat("", n).cast(field.type)
            )
        elif pa.types.is_list(field.type) or pa.types.is_map(field.type):
            arrays.append(pa.array([[]] * n, field.type))
        elif pa.types.is_floating(field.type):
            arrays.append(pa.array(np.zeros(n), field.type))
        else:  # integers and times
            arrays.append(pa.array(np.zeros(n, dtype=np.int64)).cast(field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _chunk(
    schema: pa.Schema, rng: np.random.Generator, first_trace: int, traces: int, t0_ns: int
) -> pa.Table:
    n = traces * 5
    trace_ids = _hex_ids(rng, traces, 32)
    trace_col = pa.array(
        np.repeat(np.asarray(trace_ids.to_numpy(zero_copy_only=False), dtype=object), 5)
    )
    span_ids = _hex_ids(rng, n, 16)
    roots = np.asarray(span_ids.to_numpy(zero_copy_only=False), dtype=object)[::5]
    parents = np.repeat(roots, 5).astype(object)
    parents[::5] = ""
    starts = (
        t0_ns
        + (first_trace + np.repeat(np.arange(traces), 5)) * 1_300_000_000
        + np.tile([0, 5_000_000, 20_000_000, 900_000_000, 950_000_000], traces)
    )
    durations_ms = np.tile([2400.0, 12.0, 850.0, 30.0, 1400.0], traces)
    kind = np.tile(_KINDS, traces)
    agents = np.repeat(rng.integers(0, 20, traces), 5)
    principals = np.repeat(rng.integers(0, 200, traces), 5)
    llm = kind == "LLM"
    columns = {
        "tenant": pa.repeat("default", n),
        "trace_id": trace_col,
        "span_id": span_ids,
        "parent_span_id": pa.array(parents, pa.string()),
        "start_time": pa.array(starts, pa.timestamp("ns", tz="UTC")),
        "end_time": pa.array(
            starts + (durations_ms * 1e6).astype(np.int64), pa.timestamp("ns", tz="UTC")
        ),
        "duration_ms": pa.array(durations_ms),
        "name": pa.array(np.tile(_NAMES, traces), pa.string()),
        "kind": pa.array(kind, pa.string()),
        "status_code": pa.repeat("OK", n),
        "service": pa.repeat("finance-controls", n),
        "agent_name": pa.array([f"agent-{a}" for a in agents], pa.string()),
        "principal_id": pa.array([f"user{p}@acme.example" for p in principals], pa.string()),
        "request_model": pa.array(np.where(llm, "gpt-4o", ""), pa.string()),
        "response_model": pa.array(np.where(llm, "gpt-4o-2024-08-06", ""), pa.string()),
        "input_tokens": pa.array(np.where(llm, rng.integers(500, 1500, n), 0).astype(np.uint64)),
        "output_tokens": pa.array(np.where(llm, rng.integers(20, 200, n), 0).astype(np.uint64)),
        "cost_usd": pa.array(np.where(llm, rng.random(n) / 100, 0.0)),
        "tool_name": pa.array(np.where(kind == "TOOL", "lookup_journal_entry", ""), pa.string()),
        "convention": pa.repeat("openinference", n),
        "source_topic": pa.repeat("bench", n),
        "source_offset": pa.array(np.arange(first_trace * 5, first_trace * 5 + n, dtype=np.int64)),
    }
    return _table(schema, columns, n)


def _big_trace(
    schema: pa.Schema,
    rng: np.random.Generator,
    t_ns: int,
    spans: int = 2000,
    trace_id: str = _BIG,
) -> pa.Table:
    ids = np.asarray(_hex_ids(rng, spans, 16).to_numpy(zero_copy_only=False), dtype=object)
    parents = np.empty(spans, dtype=object)
    parents[0] = ""
    parents[1:41] = ids[0]  # 40 steps under the root, each with 49 calls under it
    for i in range(41, spans):
        parents[i] = ids[1 + (i - 41) % 40]
    starts = t_ns + np.arange(spans, dtype=np.int64) * 2_000_000
    kind = np.where(np.arange(spans) % 3 == 0, "LLM", "TOOL")
    kind[0] = "AGENT"
    columns = {
        "tenant": pa.repeat("default", spans),
        "trace_id": pa.repeat(trace_id, spans),
        "span_id": pa.array(ids, pa.string()),
        "parent_span_id": pa.array(parents, pa.string()),
        "start_time": pa.array(starts, pa.timestamp("ns", tz="UTC")),
        "end_time": pa.array(starts + 1_500_000, pa.timestamp("ns", tz="UTC")),
        "duration_ms": pa.repeat(1.5, spans),
        "name": pa.array([f"step-{i}" for i in range(spans)], pa.string()),
        "kind": pa.array(kind, pa.string()),
        "status_code": pa.repeat("OK", spans),
        "service": pa.repeat("finance-controls", spans),
        "agent_name": pa.repeat("batch-reconciliation", spans),
        "convention": pa.repeat("openinference", spans),
        "source_topic": pa.repeat(f"bench-{trace_id[0]}", spans),
        "source_offset": pa.array(np.arange(spans, dtype=np.int64)),
    }
    return _table(schema, columns, spans)


def build(data_dir: Path, spans: int) -> None:
    """Fill ``data_dir`` with ``spans`` synthetic spans and the big traces (once; a directory
    built before the 10,000-span trace existed gets that trace added)."""
    from agentledger.pipeline.store import load_migrations, migrate
    from agentledger.pipeline.store.embedded import EmbeddedStore
    from agentledger.schemas import SPAN_ARROW_SCHEMA

    done, huge = data_dir / ".built", data_dir / ".built-huge"
    if done.exists() and huge.exists():
        return
    rng = np.random.default_rng(18)
    started = time.perf_counter()
    if not done.exists():
        shutil.rmtree(data_dir, ignore_errors=True)
        with EmbeddedStore(data_dir) as store:
            migrate(store, load_migrations())
            traces = spans // 5
            t0 = time.time_ns() - 30 * 86_400 * 10**9
            step = 200_000
            for first in range(0, traces, step):
                store.insert_arrow(
                    "spans", _chunk(SPAN_ARROW_SCHEMA, rng, first, min(step, traces - first), t0)
                )
                print(f"  {min(first + step, traces) * 5:,} spans stored", flush=True)
            t_big = time.time_ns() - 60 * 10**9
            store.insert_arrow("spans", _big_trace(SPAN_ARROW_SCHEMA, rng, t_big))
            store.command("OPTIMIZE TABLE spans FINAL")
        done.write_text(str(spans))
    with EmbeddedStore(data_dir) as store:
        t_huge = time.time_ns() - 120 * 10**9
        table = _big_trace(SPAN_ARROW_SCHEMA, rng, t_huge, _HUGE_SPANS, _HUGE)
        store.insert_arrow("spans", table)
    huge.write_text(str(_HUGE_SPANS))
    print(f"built {spans:,} spans in {time.perf_counter() - started:.0f} s", flush=True)


def _timed(fn, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), max(times)


def measure(data_dir: Path, repeat: int) -> None:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    env = {
        **os.environ,
        "AGENTLEDGER_API_KEYS": f"default:reader:bench-reader={_KEY}",
        # reads only: the background jobs (the ledger appending 10 M leaves, the rollup) would
        # otherwise start one interval in, in the middle of the measurement
        "AGENTLEDGER_JOBS_INTERVAL_S": "0",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentledger.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
        ]
        + ["--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, server)
        headers = {"Authorization": f"Bearer {_KEY}"}
        with httpx.Client(base_url=url, headers=headers, timeout=60) as api:
            list_api = _timed(
                lambda: api.get("/api/v1/traces", params={"limit": 50}).raise_for_status(), repeat
            )
            trace_api = _timed(lambda: api.get(f"/api/v1/traces/{_BIG}").raise_for_status(), repeat)
            huge_api = _timed(lambda: api.get(f"/api/v1/traces/{_HUGE}").raise_for_status(), repeat)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 800}, base_url=url)
            page.goto("/console/traces")
            page.get_by_label("API key").fill(_KEY)
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_selector("[data-testid=traces] tbody tr")

            def trace_list() -> None:
                page.goto("/console/traces")
                page.wait_for_selector("[data-testid=traces] tbody tr")

            def big_trace() -> None:  # virtualized past waterfall.FULL spans: its first screen
                page.goto(f"/console/traces/{_BIG}")
                page.wait_for_selector("[data-testid=waterfall][data-booted] [data-span-id]")

            last = _HUGE_SPANS - 1
            drawn = (  # a function, not an expression: the page's CSP forbids eval
                "() => [...document.querySelectorAll('[data-testid=waterfall] li[data-index]')]"
                f".some(li => li.dataset.index == '{last}' && li.querySelector('[data-span-id]'))"
            )

            def huge_trace() -> None:
                page.goto(f"/console/traces/{_HUGE}")
                page.wait_for_selector("[data-testid=waterfall][data-booted] [data-span-id]")
                rows = page.locator("[data-testid=waterfall] [data-span-id]").count()
                assert rows < _HUGE_SPANS, f"{rows} rows in the document: not virtualized"

            def huge_scroll() -> None:
                page.locator(".wf-scroll").evaluate("el => { el.scrollTop = el.scrollHeight; }")
                page.wait_for_function(drawn, timeout=60_000)

            list_page = _timed(trace_list, repeat)
            trace_page = _timed(big_trace, repeat)
            huge_page, huge_end = [], []
            for _ in range(repeat):
                huge_page.append(_timed(huge_trace, 1)[0])
                huge_end.append(_timed(huge_scroll, 1)[0])
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=60)
    print(
        f"trace list: page {list_page[0] * 1e3:.0f} ms median, {list_page[1] * 1e3:.0f} ms worst; "
        f"API {list_api[0] * 1e3:.0f} / {list_api[1] * 1e3:.0f} ms (target: 1 s)"
    )
    print(
        f"2,000-span trace: page {trace_page[0] * 1e3:.0f} ms median, {trace_page[1] * 1e3:.0f} ms worst; "
        f"API {trace_api[0] * 1e3:.0f} / {trace_api[1] * 1e3:.0f} ms (target: 1 s)"
    )
    print(
        f"10,000-span trace (virtualized): page {statistics.median(huge_page) * 1e3:.0f} ms "
        f"median, {max(huge_page) * 1e3:.0f} ms worst; scroll to its last span "
        f"{statistics.median(huge_end) * 1e3:.0f} ms median, {max(huge_end) * 1e3:.0f} ms worst; "
        f"API (every span in full) {huge_api[0] * 1e3:.0f} / {huge_api[1] * 1e3:.0f} ms"
    )


def compare_reads(data_dir: Path, repeat: int) -> None:
    """The trace page's read, in one process, alternated: every span in full (``reads.trace``,
    what the page read before the outline) against the outline and the one span the panel
    shows (``services.waterfall``), on the 2,000- and the 10,000-span trace."""
    from agentledger.pipeline.services import reads, waterfall
    from agentledger.pipeline.store.embedded import EmbeddedStore

    with EmbeddedStore(data_dir) as store:
        for trace_id, spans in ((_BIG, 2000), (_HUGE, _HUGE_SPANS)):
            full, outline = [], []
            for _ in range(repeat + 1):  # the first of each warms the caches, then dropped
                started = time.perf_counter()
                reads.trace(store, "default", trace_id)
                full.append(time.perf_counter() - started)
                started = time.perf_counter()
                found = waterfall.outline(store, "default", trace_id)
                waterfall.span(store, "default", trace_id, found.bars[0].span_id)
                outline.append(time.perf_counter() - started)
            print(
                f"{spans:,}-span trace read: every span in full "
                f"{statistics.median(full[1:]) * 1e3:.0f} ms median; outline + one span "
                f"{statistics.median(outline[1:]) * 1e3:.0f} ms median"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--spans", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--data-dir", type=Path, default=None, help="default: a cache dir by size")
    ap.add_argument(
        "--reads", action="store_true", help="time the trace page's read in-process instead"
    )
    args = ap.parse_args()
    data_dir = args.data_dir or Path.home() / ".cache" / "agentledger" / "console-scale" / str(
        args.spans
    )
    print(f"machine: {os.cpu_count()} cores; {args.spans:,} spans in {data_dir}")
    build(data_dir, args.spans)
    if args.reads:
        compare_reads(data_dir, args.repeat)
    else:
        measure(data_dir, args.repeat)


if __name__ == "__main__":
    main()

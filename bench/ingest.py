"""Ingest benchmark: OTLP protobuf of agent traffic into the embedded server over HTTP.

Prints, end to end (HTTP -> parse -> normalize -> chDB insert -> 200): stored spans/s, the
server process's CPU-seconds per 10,000 spans, and acknowledgement latency p50/p95/p99; and
the normalizer's cost per span. The default load is the realistic mix of ``bench.traffic``
(every text unique, ~4 KB of text per span) in 200-span requests from 4 concurrent senders;
``--mix light`` sends the lighter mix earlier figures were measured on.
Run: ``.venv/bin/python bench/ingest.py`` (``--runs`` agent runs of 5 spans each).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (  # noqa: E402
    ExportLogsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (  # noqa: E402
    ExportTraceServiceRequest,
)

from bench.sender import process_cpu_seconds, send_all  # noqa: E402
from bench.traffic import (  # noqa: E402
    LIGHT,
    LLM_SPANS_PER_RUN,
    REALISTIC,
    SPANS_PER_RUN,
    Mix,
    requests,
)

_MIXES = {m.name: m for m in (REALISTIC, LIGHT)}


def bench_normalizer(n_runs: int, mix: Mix) -> dict[str, dict[str, float]]:
    """Cost per span of each normalizer on the same requests: the Python one from parsed messages
    (parsing timed apart), the compiled one from the serialized bytes it is handed in production."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    from agentledger.pipeline.normalize import (
        NativeNormalizer,
        OtlpNormalizer,
        SourcePosition,
        native_available,
    )

    bodies = [r.SerializeToString() for r in requests(n_runs, runs_per_request=100, mix=mix)]
    spans = n_runs * SPANS_PER_RUN
    t0 = time.perf_counter()
    parsed = [ExportTraceServiceRequest.FromString(b) for b in bodies]
    parse_us = (time.perf_counter() - t0) / spans * 1e6
    candidates = {"python": (OtlpNormalizer(), parsed)}
    if native_available():
        candidates["native"] = (NativeNormalizer(), bodies)
    results: dict[str, dict[str, float]] = {}
    for name, (normalizer, inputs) in candidates.items():
        runs = []
        for _ in range(5):
            t0 = time.perf_counter()
            batch = normalizer.normalize(
                [(r, SourcePosition("t", 0, "bench", 0, i)) for i, r in enumerate(inputs)]
            )
            runs.append(time.perf_counter() - t0)
            assert batch.span_count == spans
        results[name] = {
            "spans": spans,
            "parse_us": parse_us if name == "python" else 0.0,
            "normalize_us": min(runs) / spans * 1e6,
            "normalize_us_median": statistics.median(runs) / spans * 1e6,
        }
    return results


def matching_logs(request: ExportTraceServiceRequest) -> ExportLogsServiceRequest:
    """The OTLP log events OpenTelemetry's GenAI instrumentations would send beside ``request``:
    for every LLM span, one ``gen_ai.<role>.message`` event per input message and one
    ``gen_ai.choice``, linked by trace and span id, content in the body (as
    ``opentelemetry-instrumentation-openai-v2`` sends them with content capture on)."""
    out = ExportLogsServiceRequest()
    rl = out.resource_logs.add()
    kv = rl.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "finance-controls"
    scope = rl.scope_logs.add()
    scope.scope.name = "opentelemetry.instrumentation.openai_v2"
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                attrs = {a.key: a.value.string_value for a in span.attributes}
                if attrs.get("openinference.span.kind") != "LLM":
                    continue
                j = 0
                while f"llm.input_messages.{j}.message.role" in attrs:
                    role = attrs[f"llm.input_messages.{j}.message.role"]
                    content = attrs.get(f"llm.input_messages.{j}.message.content", "")
                    _event(scope, span, f"gen_ai.{role}.message", {"content": content})
                    j += 1
                answer = attrs.get("llm.output_messages.0.message.content", "")
                _event(
                    scope,
                    span,
                    "gen_ai.choice",
                    {"index": 0, "finish_reason": "stop", "message": {"content": answer}},
                )
    return out


def _event(scope: Any, span: Any, name: str, body: dict[str, Any]) -> None:
    record = scope.log_records.add()
    record.trace_id, record.span_id, record.event_name = span.trace_id, span.span_id, name
    record.observed_time_unix_nano = span.end_time_unix_nano
    kv = record.attributes.add()
    kv.key, kv.value.string_value = "gen_ai.system", "openai"
    _fill(record.body, body)


def _fill(value: Any, v: Any) -> None:
    if isinstance(v, dict):
        for k, item in v.items():
            kv = value.kvlist_value.values.add()
            kv.key = k
            _fill(kv.value, item)
    elif isinstance(v, int):
        value.int_value = v
    else:
        value.string_value = str(v)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_SECRET = "bench-secret-0123456789abcdef"


def bench_end_to_end(
    n_runs: int,
    runs_per_request: int,
    clients: int,
    *,
    auth: bool = False,
    mix: Mix = REALISTIC,
    logs: bool = False,
) -> dict[str, float]:
    """``auth``: the server checks an ingest key on every request (as in production) instead of
    running with ``--no-auth``. ``logs``: each traces request is followed by its matching GenAI
    log events (``matching_logs``) on ``/v1/logs``, by the same sender."""
    data_dir = tempfile.mkdtemp(prefix="agentledger-bench-")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "AGENTLEDGER_API_KEYS"}
    if auth:
        env["AGENTLEDGER_API_KEYS"] = f"default:ingest:bench-agent={_SECRET}"
    headers = {"Content-Type": "application/x-protobuf"}
    if auth:
        headers["Authorization"] = f"Bearer {_SECRET}"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentledger.cli",
            "serve",
            *([] if auth else ["--no-auth"]),
            "--port",
            str(port),
            "--data-dir",
            data_dir,
            "--log-level",
            "warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.2)
        traffic = list(requests(n_runs, runs_per_request=runs_per_request, mix=mix))
        bodies = [r.SerializeToString() for r in traffic]
        log_requests = [matching_logs(r) for r in traffic] if logs else []
        log_bodies = [r.SerializeToString() for r in log_requests]
        log_records = sum(
            len(sl.log_records)
            for r in log_requests
            for rl in r.resource_logs
            for sl in rl.scope_logs
        )
        mb = (sum(map(len, bodies)) + sum(map(len, log_bodies))) / 1e6
        # warm-up request (imports, first insert) outside the timing
        warm = [r.SerializeToString() for r in requests(10, runs_per_request=10, seed=99)][0]
        httpx.post(
            f"{url}/v1/traces",
            content=warm,
            headers=headers,
            timeout=60,
        )
        items = [
            [("/v1/traces", body), *([("/v1/logs", log_bodies[i])] if log_bodies else [])]
            for i, body in enumerate(bodies)
        ]
        cpu0 = process_cpu_seconds(server.pid)
        sent = send_all(url, items, headers, clients)
        elapsed, latencies, errors = sent.seconds, sent.latencies, sent.errors
        server_cpu = process_cpu_seconds(server.pid) - cpu0
    finally:
        server.terminate()
        server.wait(timeout=60)
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed, first: {errors[0]}")
    from agentledger.pipeline.store.embedded import EmbeddedStore

    with EmbeddedStore(data_dir) as store:
        stored = store.query_scalar("SELECT count() FROM spans FINAL")
        stored_logs = store.query_scalar("SELECT count() FROM logs FINAL")
    spans = n_runs * SPANS_PER_RUN
    assert stored == spans + 50, f"stored {stored}, sent {spans} (+50 warm-up)"
    assert stored_logs == log_records, f"stored {stored_logs} log records, sent {log_records}"
    latencies.sort()
    return {
        "spans": spans,
        "requests": len(bodies),
        "mb": mb,
        "seconds": elapsed,
        "spans_per_s": spans / elapsed,
        "log_records": log_records,
        "spans_logs_per_s": (spans + log_records) / elapsed,
        "llm_spans_per_s": n_runs * LLM_SPANS_PER_RUN / elapsed,
        "mb_per_s": mb / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1e3,
        "p95_ms": latencies[int(len(latencies) * 0.95)] * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3,
        "cpu_s_per_10k": server_cpu / spans * 10_000,
        "cpu_us_per_span": server_cpu / spans * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=4000, help="agent runs (5 spans each)")
    ap.add_argument(
        "--runs-per-request", type=int, default=40, help="runs per OTLP request (40 = 200 spans)"
    )
    ap.add_argument("--mix", choices=sorted(_MIXES), default=REALISTIC.name)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument(
        "--auth",
        choices=("both", "on", "off"),
        default="both",
        help="with an API key checked on every request, --no-auth, or both (compared)",
    )
    ap.add_argument(
        "--logs",
        action="store_true",
        help="also send the matching GenAI log events of every LLM span to /v1/logs",
    )
    args = ap.parse_args()
    mix = _MIXES[args.mix]
    print(f"machine: {os.cpu_count()} cores, python {sys.version.split()[0]}; mix: {mix.name}")
    for name, n in bench_normalizer(min(args.runs, 4000), mix).items():
        parse = (
            f"parse {n['parse_us']:.1f} us/span apart, "
            if n["parse_us"]
            else "from serialized bytes, "
        )
        print(
            f"normalizer ({name}): {n['spans']} spans, {parse}"
            f"normalize {n['normalize_us']:.1f} us/span (best of 5; median {n['normalize_us_median']:.1f})"
        )
    modes = {"both": (False, True), "on": (True,), "off": (False,)}[args.auth]
    figures = {}
    for auth in modes:
        e = bench_end_to_end(
            args.runs, args.runs_per_request, args.clients, auth=auth, mix=mix, logs=args.logs
        )
        figures[auth] = e
        print(
            f"end to end ({'API key checked' if auth else '--no-auth'}): {e['spans']} spans in "
            f"{e['requests']} requests ({e['mb']:.0f} MB protobuf), {args.clients} clients, "
            f"{e['seconds']:.2f} s"
        )
        print(
            f"  {e['spans_per_s']:,.0f} spans/s ({e['llm_spans_per_s']:,.0f} LLM spans/s), {e['mb_per_s']:.1f} MB/s; "
            f"server CPU {e['cpu_s_per_10k']:.2f} s per 10,000 spans ({e['cpu_us_per_span']:.0f} us/span); "
            f"ack latency p50 {e['p50_ms']:.0f} ms, p95 {e['p95_ms']:.0f} ms, p99 {e['p99_ms']:.0f} ms; "
            "every span stored once: yes"
        )
        if args.logs:
            print(
                f"  with logs: {e['log_records']} log records beside the spans, "
                f"{e['spans_logs_per_s']:,.0f} spans+logs/s; every log record stored once: yes"
            )
    if len(figures) == 2:
        cost = 1 - figures[True]["spans_per_s"] / figures[False]["spans_per_s"]
        print(f"auth cost: {cost:+.1%} of --no-auth spans/s (budget: at most 5%)")


if __name__ == "__main__":
    main()

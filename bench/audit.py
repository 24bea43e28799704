"""Audit benchmark: audit and replay look-ups over millions of stored spans (not run in CI).

Fills an embedded store (chDB, a data directory of its own) with ``--spans`` spans
(default 10 million) of agent runs shaped like the demo's, five spans a trace
(AGENT, RETRIEVER with 3 documents, LLM choosing a tool, TOOL, answering LLM),
spread over four tenants and 30 days, with their content records (per-trace
messages, tool arguments and results; a shared pool of documents), one intent
per tool call and a few thousand controls. Rows are generated inside ClickHouse
(``INSERT ... SELECT ... FROM numbers()``), a million per statement, so filling
10 M spans takes minutes, not hours.

Then it times, on random samples, with warm caches after a few warm-up calls:
``audit`` of a tool call by span id, of a whole trace by trace id, and
``rebuild_request`` (replay's read side) of an LLM call, printing p50/p95/max.

Run: ``.venv/bin/python bench/audit.py`` (``--spans``, ``--samples``, ``--data-dir``
to keep or reuse the filled store with ``--reuse``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SPANS_PER_TRACE = 5
TENANTS = 4
DAYS = 30
DOCS = 1000
CHUNK = 1_000_000
BASE = "2026-09-01 00:00:00"

# per row n: trace t = n / 5, role r = n % 5 (0 AGENT, 1 RETRIEVER, 2 LLM, 3 TOOL, 4 LLM)
_COMMON = f"""
    intDiv(number, {SPANS_PER_TRACE}) AS t,
    number % {SPANS_PER_TRACE} AS r,
    concat('tenant-', toString(t % {TENANTS})) AS tenant_,
    lower(hex(MD5(concat('t', toString(t))))) AS trace_,
    toDateTime64('{BASE}', 9, 'UTC') + toIntervalMillisecond(intDiv(t * {DAYS} * 86400000, {{traces:UInt64}})) AS t0
"""

_MESSAGES_1 = (
    'concat(\'[{"content":"You are a finance-controls agent. Decide whether a journal entry may be '
    'approved.","role":"system"},{"content":"Should we approve journal entry JE-\', toString(t), '
    '\'? Relevant policy excerpts: FIN-7, FIN-12, SOX-3.","role":"user"}]\')'
)
_ARGS = "concat('{\"entry_id\":\"JE-', toString(t), '\"}')"
_RESULT = 'concat(\'{"amount":\', toString(t * 7919 % 10000000), \',"currency":"USD","entry_id":"JE-\', toString(t), \'"}\')'
_MESSAGES_2 = (
    f'concat(substring({_MESSAGES_1}, 1, length({_MESSAGES_1}) - 1), \',{{"role":"assistant","tool_calls":'
    f'[{{"arguments":\', {_ARGS}, \',"id":"call_\', toString(t), \'","name":"lookup_journal_entry"}}]}},'
    f'{{"content":\', toJSONString({_RESULT}), \',"role":"tool","tool_call_id":"call_\', toString(t), \'"}}]\')'
)
_ANSWER = 'concat(\'[{"content":"ESCALATE: JE-\', toString(t), \' exceeds the FIN-7 threshold.","role":"assistant"}]\')'
_DOC = "concat('Policy POL-', toString(d), ': reclassifications above USD 1,000,000 need Controller and CFO approval.')"


def _sha(expr: str) -> str:
    return f"lower(hex(SHA256({expr})))"


def _span_id(expr: str) -> str:
    return f"substring(lower(hex(MD5(concat('s', toString({expr}))))), 1, 16)"


SPANS_SQL = f"""
INSERT INTO spans (tenant, trace_id, span_id, parent_span_id, start_time, end_time, duration_ms, name, kind,
    status_code, service, agent_name, session_id, user_id, principal_id, principal_chain, policy_id, provider,
    operation, request_model, response_model, system_fingerprint, input_tokens, output_tokens, cost_usd, cost_source,
    tool_name, tool_call_id, tool_calls, input_hash, output_hash, input_preview, output_preview, documents,
    convention, scope_name, attributes, ingest_time, source_topic, source_offset)
SETTINGS async_insert = 0
SELECT
    tenant_, trace_, {_span_id("number")},
    if(r = 0, '', {_span_id("number - r")}),
    t0 + toIntervalMillisecond(r * 100) AS st,
    st + toIntervalMillisecond(if(r = 0, 500, 80)),
    if(r = 0, 500., 80.),
    ['finance-controls-agent', 'retrieve_policies', 'ChatCompletion', 'lookup_journal_entry', 'ChatCompletion'][r + 1],
    ['AGENT', 'RETRIEVER', 'LLM', 'TOOL', 'LLM'][r + 1],
    'OK', 'finance-controls', 'finance-controls-agent', concat('s-', toString(t % 5000)), concat('u-', toString(t % 500)),
    concat('user-', toString(t % 500), '@acme.example'), ['cfo@acme.example', concat('user-', toString(t % 500), '@acme.example')],
    'finance-controls-v3',
    if(r IN (2, 4), 'openai', ''), ['invoke_agent', 'retrieve', 'chat', 'execute_tool', 'chat'][r + 1],
    if(r IN (2, 4), 'gpt-4o', ''), if(r IN (2, 4), 'gpt-4o-2024-08-06', ''), if(r IN (2, 4), 'fp_bench', ''),
    if(r IN (2, 4), 700, 0), if(r IN (2, 4), 40, 0), if(r IN (2, 4), 0.002, 0.), if(r IN (2, 4), 'price_table', 'none'),
    if(r = 3, 'lookup_journal_entry', ''), if(r = 3, concat('call_', toString(t)), ''),
    if(r = 2, [tuple(concat('call_', toString(t)), 'lookup_journal_entry', {_sha(_ARGS)})],
       CAST([], 'Array(Tuple(id String, name String, arguments_hash String))')),
    multiIf(r = 2, {_sha(_MESSAGES_1)}, r = 3, {_sha(_ARGS)}, r = 4, {_sha(_MESSAGES_2)}, ''),
    multiIf(r = 3, {_sha(_RESULT)}, r = 4, {_sha(_ANSWER)}, ''),
    if(r IN (2, 4), concat('Should we approve journal entry JE-', toString(t)), ''),
    if(r = 4, concat('ESCALATE: JE-', toString(t)), ''),
    if(r = 1, arrayMap(d -> tuple(concat('POL-', toString(d)), {_sha(_DOC)}, 1. / (d % 7 + 1)),
                       [t % {DOCS}, (t + 1) % {DOCS}, (t + 2) % {DOCS}]),
       CAST([], 'Array(Tuple(id String, content_hash String, score Float64))')),
    'openinference', 'bench',
    if(r IN (2, 4), map('openinference.span.kind', 'LLM', 'llm.invocation_parameters', '{{"model":"gpt-4o","temperature":0}}',
                        'session.id', concat('s-', toString(t % 5000))),
       map('openinference.span.kind', ['AGENT', 'RETRIEVER', 'LLM', 'TOOL', 'LLM'][r + 1])),
    now64(3), 'embedded', number
FROM (SELECT number, {_COMMON} FROM numbers({{first:UInt64}}, {{count:UInt64}}))
"""

# one row per trace: number = trace index * 5, so that the _COMMON expressions apply unchanged
_PER_TRACE = f"(SELECT number, {_COMMON} FROM (SELECT number * {SPANS_PER_TRACE} AS number FROM numbers({{first:UInt64}}, {{count:UInt64}})))"

CONTENTS_SQL = f"""
INSERT INTO contents (tenant, hash, kind, content, size, first_seen) SETTINGS async_insert = 0
SELECT tenant_, {_sha("c")}, k, c, length(c), now64(3)
FROM {_PER_TRACE}
ARRAY JOIN [{_MESSAGES_1}, {_ARGS}, {_RESULT}, {_MESSAGES_2}, {_ANSWER}] AS c,
           ['messages', 'tool_arguments', 'tool_result', 'messages', 'messages'] AS k
"""

DOCS_SQL = f"""
INSERT INTO contents (tenant, hash, kind, content, size, first_seen) SETTINGS async_insert = 0
SELECT concat('tenant-', toString(tn)), {_sha("c")}, 'document', c, length(c), now64(3)
FROM (SELECT number AS d, {_DOC} AS c FROM numbers({DOCS})) AS docs CROSS JOIN (SELECT number AS tn FROM numbers({TENANTS})) AS tenants
"""


def _iso(expr: str) -> str:
    """RFC 3339 text with microseconds, as record bodies write times."""
    return f"toJSONString(formatDateTime(toDateTime64({expr}, 6, 'UTC'), '%Y-%m-%dT%H:%i:%S.%fZ'))"


def _body(fields: dict[str, str]) -> str:
    """A record body (canonical JSON: members sorted by name) from SQL expressions of JSON values."""
    parts = [
        f"'{',' if i else '{'}\"{name}\":', {fields[name]}" for i, name in enumerate(sorted(fields))
    ]
    return f"concat({', '.join(parts)}, '}}')"


def _text(expr: str) -> str:
    return f"toJSONString({expr})"


# one intent record per tool call, as the collector appends it (agentledger.schemas.records)
_INTENT_BODY = _body(
    {
        "agent_name": "'\"finance-controls-agent\"'",
        "arguments": _text(_ARGS),
        "arguments_redacted": "'false'",
        "arguments_sha256": _text(_sha(_ARGS)),
        "attempt": "'0'",
        "control_id": "'\"\"'",
        "decision": "'\"proceed\"'",
        "intent_id": _text("iid"),
        "parent_span_id": _text(_span_id("number + 2")),
        "policy_id": "'\"finance-controls-v3\"'",
        "principal_chain": "'[]'",
        "principal_id": _text("concat('user-', toString(t % 500), '@acme.example')"),
        "principal_name": "'\"\"'",
        "principal_role": "'\"\"'",
        "received_at": _iso("t0 + toIntervalMillisecond(302)"),
        "requested_at": _iso("t0 + toIntervalMillisecond(301)"),
        "session_id": _text("concat('s-', toString(t % 5000))"),
        "span_id": _text(_span_id("number + 3")),
        "tool_call_id": _text("concat('call_', toString(t))"),
        "tool_name": "'\"lookup_journal_entry\"'",
        "trace_id": _text("trace_"),
        "user_id": "'\"\"'",
    }
)
INTENTS_SQL = f"""
INSERT INTO records (tenant, kind, recorded_at, record_id, actor, body, body_sha256) SETTINGS async_insert = 0
SELECT tenant_, 'intent', t0 + toIntervalMillisecond(302), iid, 'api', b, {_sha("b")}
FROM (SELECT *, lower(hex(MD5(concat('i', toString(t))))) AS iid, {_INTENT_BODY} AS b FROM {_PER_TRACE})
"""

_CONTROL_BODY = _body(
    {
        "action": "toJSONString(action_)",
        "by": "'\"ops@acme.example\"'",
        "control_id": "toJSONString(cid)",
        "created_at": _iso("at"),
        "reason": "'\"bench drill\"'",
        "scope": "'\"session\"'",
        "target": "toJSONString(concat('s-', toString(intDiv(number, 2) % 5000)))",
    }
)

CONTROLS_SQL = f"""
INSERT INTO records (tenant, kind, recorded_at, record_id, actor, body, body_sha256) SETTINGS async_insert = 0
SELECT concat('tenant-', toString(number % {TENANTS})), 'control', at, cid, 'cli', b, {_sha("b")}
FROM (SELECT number, toDateTime64('{BASE}', 6, 'UTC') + toIntervalSecond(number * 600) AS at,
             lower(hex(MD5(concat('c', toString(number))))) AS cid,
             if(number % 2 = 0, 'pause', 'resume') AS action_, {_CONTROL_BODY} AS b
      FROM numbers({{count:UInt64}}))
"""


def fill(store, spans: int) -> dict[str, float]:
    traces = spans // SPANS_PER_TRACE
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    for first in range(0, spans, CHUNK):
        store.command(
            SPANS_SQL, {"traces": traces, "first": first, "count": min(CHUNK, spans - first)}
        )
        print(
            f"  spans {min(first + CHUNK, spans):>11,} / {spans:,}  ({time.perf_counter() - t0:.0f}s)",
            flush=True,
        )
    timings["spans_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    per = CHUNK // SPANS_PER_TRACE
    for first in range(0, traces, per):
        store.command(
            CONTENTS_SQL, {"traces": traces, "first": first, "count": min(per, traces - first)}
        )
        store.command(
            INTENTS_SQL, {"traces": traces, "first": first, "count": min(per, traces - first)}
        )
    store.command(DOCS_SQL)
    store.command(CONTROLS_SQL, {"count": DAYS * 144})
    timings["contents_intents_s"] = time.perf_counter() - t0
    return timings


def _span_id(n: int) -> str:
    return hashlib.md5(f"s{n}".encode()).hexdigest()[:16]


def _trace_id(t: int) -> str:
    return hashlib.md5(f"t{t}".encode()).hexdigest()


def _timed(fn, args_list: list[tuple], warmup: int = 5) -> dict[str, float]:
    for args in args_list[:warmup]:
        fn(*args)
    times = []
    for args in args_list[warmup:]:
        t0 = time.perf_counter()
        fn(*args)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "n": len(times),
        "p50_ms": statistics.median(times),
        "p95_ms": times[int(0.95 * (len(times) - 1))],
        "max_ms": times[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=10_000_000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument(
        "--data-dir", default=None, help="Keep the filled store here (default: a temporary one)."
    )
    parser.add_argument(
        "--reuse", action="store_true", help="Do not fill: --data-dir already holds the spans."
    )
    args = parser.parse_args()

    from agentledger.pipeline.services import audit, replay
    from agentledger.pipeline.store import migrate
    from agentledger.pipeline.store.embedded import EmbeddedStore

    data_dir = args.data_dir or tempfile.mkdtemp(prefix="agentledger-bench-audit-")
    store = EmbeddedStore(data_dir, database="bench")
    try:
        spans = args.spans - args.spans % SPANS_PER_TRACE
        if not args.reuse:
            migrate(store)
            print(f"filling {data_dir} with {spans:,} spans ...", flush=True)
            print("  fill:", {k: round(v, 1) for k, v in fill(store, spans).items()}, flush=True)
        counts = store.query_rows(
            "SELECT table, sum(rows) AS rows, round(sum(bytes_on_disk) / 1e9, 2) AS gb, count() AS parts "
            "FROM system.parts WHERE database = 'bench' AND active AND table IN ('spans', 'contents', 'intents') "
            "GROUP BY table ORDER BY table"
        )
        for c in counts:
            print(f"  {c['table']}: {c['rows']:,} rows, {c['gb']} GB on disk, {c['parts']} parts")
        traces = spans // SPANS_PER_TRACE
        rng = random.Random(7)
        picks = [rng.randrange(traces) for _ in range(args.samples + 5)]

        def tenant(t: int) -> str:
            return f"tenant-{t % TENANTS}"

        tool_args = [(store, tenant(t), _span_id(t * 5 + 3)) for t in picks]
        report = audit.audit(*tool_args[0])
        action = report["actions"][0]
        assert action["action"]["tool_name"] == "lookup_journal_entry", action["action"]
        assert (
            len(action["documents"]) == 3
            and len(action["llm_calls"]) == 1
            and action["intent"] is not None
        )
        assert action["integrity"]["changed"] == [] and not action["integrity"]["missing"], action[
            "integrity"
        ]
        results = {
            "audit(tool span id)": _timed(audit.audit, tool_args),
            "audit(trace id)": _timed(
                audit.audit, [(store, tenant(t), _trace_id(t)) for t in picks]
            ),
            "rebuild_request(llm span id)": _timed(
                replay.rebuild_request, [(store, tenant(t), _span_id(t * 5 + 4)) for t in picks]
            ),
        }
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(
            f"\n{spans:,} spans, {args.samples} samples each, warm (load average {load} on {os.cpu_count()} CPUs):"
        )
        for name, r in results.items():
            print(
                f"  {name:<30} p50 {r['p50_ms']:7.1f} ms   p95 {r['p95_ms']:7.1f} ms   max {r['max_ms']:7.1f} ms"
            )
    finally:
        store.close()
        if args.data_dir is None:
            shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()

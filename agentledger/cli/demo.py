"""``agentledger demo``: two sample agents, recorded end to end on the embedded default.

Wiring of the demo process: a scripted OpenAI-compatible model server, the embedded
AgentLedger server (collector + pipeline + chDB), and two agents instrumented with
OpenInference exporting OTLP/HTTP to that server: a planner that hands a journal entry over a
queue to the finance-controls executor (``agentledger.demo.team``). After the run it shows what
AgentLedger derives from the recording: the handoff and the delegation chain, the executor's
governed posting parked by a pause inside its run and resumed, the usage summary, the ledger
verified, the auditor's answers (with what the planner saw before it handed over, and a replay
of the decision), and a fine-tuning dataset.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from rich.panel import Panel

from agentledger.cli import render
from agentledger.cli.client import ClientError
from agentledger.pipeline.services import queries, reads

__all__ = ["run_demo"]


def run_demo(data_dir: str, *, as_json: bool = False) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from agentledger.collector import CollectorSettings
    from agentledger.demo.agent import AGENT_NAME
    from agentledger.demo.facts import team_facts
    from agentledger.demo.provider import ScriptedProvider, default_script
    from agentledger.demo.team import run_team
    from agentledger.instrumentation.processors import AttributionProcessor
    from agentledger.pipeline.settings import StoreSettings
    from agentledger.pipeline.store import StoreError
    from agentledger.server import EmbeddedServer

    console = render.console(stderr=as_json)
    store_settings = StoreSettings(data_dir=data_dir)
    try:
        server = EmbeddedServer(CollectorSettings(no_auth=True, port=0), store_settings)
    except StoreError as exc:
        raise ClientError(
            f"{exc}\n(stop the server using {data_dir!r}, or pass --data-dir)"
        ) from exc
    with server, ScriptedProvider(default_script()) as provider:
        console.print(
            f"[bold]AgentLedger demo[/bold]: embedded server at {server.url}, scripted model at {provider.base_url}"
        )
        tracer_provider = TracerProvider(
            resource=Resource.create({"service.name": "finance-controls"})
        )
        # principal, agent name and delegation chain on every span
        tracer_provider.add_span_processor(AttributionProcessor())
        tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces"))
        )
        team = run_team(server.url, provider.base_url, tracer_provider)
        tracer_provider.force_flush()
        tracer_provider.shutdown()

        run = team.executor
        store, tenant = server.store, server.collector.default_tenant
        spans = queries.get_trace(store, tenant, run.trace_id)
        hashes = [d["content_hash"] for s in spans for d in s["documents"]]
        contents = queries.get_contents(store, tenant, hashes)
        summary: dict[str, Any] = {
            "agent": AGENT_NAME,
            "trace_id": run.trace_id,
            "decision": run.decision,
            "spans_recorded": len(spans),
            "llm_calls": sum(1 for s in spans if s["kind"] == "LLM"),
            "tool_calls": [s["tool_name"] for s in spans if s["kind"] == "TOOL"],
            "documents": [
                {
                    "id": d["id"],
                    "sha256": d["content_hash"],
                    "stored": d["content_hash"] in contents,
                }
                for s in spans
                for d in s["documents"]
            ],
            "models": sorted(
                {
                    f"{s['request_model']} -> {s['response_model']}"
                    for s in spans
                    if s["kind"] == "LLM"
                }
            ),
            "tokens": sum(s["input_tokens"] + s["output_tokens"] for s in spans),
            "cost_usd": round(sum(s["cost_usd"] for s in spans), 6),
            "data_dir": os.path.abspath(data_dir),
        }
        summary.update(team_facts(store, tenant, team, spans))
        summary.update(
            _derived(
                store,
                tenant,
                store_settings,
                run.trace_id,
                provider.base_url,
                team.governed,
                summary["_posting_report"],
                data_dir,
            )
        )
        if as_json:
            print(
                json.dumps(
                    {k: v for k, v in summary.items() if not k.startswith("_")},
                    indent=2,
                    default=str,
                )
            )
            return summary
        _print_team(console, summary)
        console.print(Panel(run.decision, title="Executor's decision", border_style="green"))
        console.print(render.trace_tree(reads.trace(store, tenant, run.trace_id)))
        console.print(render.traces_table(reads.traces(store, tenant, limit=5), "Recent traces"))
        console.print(
            f"\nThe executor's trace: {summary['spans_recorded']} spans ({summary['llm_calls']} LLM "
            f"calls, tools: {', '.join(summary['tool_calls']) or 'none'}), {summary['tokens']} tokens, "
            f"${summary['cost_usd']:.4f}."
        )
        _print_derived(console, summary)
        planner_trace = summary["planner"]["trace_id"]
        console.print(
            f"\nData lives in [bold]{summary['data_dir']}[/bold] (embedded ClickHouse). Look again with:\n"
            f"  agentledger traces --data-dir {data_dir}\n"
            f"  agentledger trace {run.trace_id} --data-dir {data_dir}\n"
            f"  agentledger trace {planner_trace} --graph --data-dir {data_dir}\n"
            f"  agentledger agents graph --data-dir {data_dir}\n"
            f"  agentledger usage --data-dir {data_dir}\n"
            f"  agentledger anomalies --data-dir {data_dir}\n"
            f"  agentledger audit {summary['governance']['span_id']} --data-dir {data_dir}\n"
            f"  agentledger dataset show {summary['dataset']['id']} --data-dir {data_dir}\n"
            f"  agentledger verify --data-dir {data_dir}"
        )
        return summary


def _derived(
    store: Any,
    tenant: str,
    store_settings: Any,
    trace_id: str,
    provider_url: str,
    governed: Any,
    posting: Any,
    data_dir: str,
) -> dict[str, Any]:
    """What AgentLedger derives from the recording, in the demo's JSON shape."""
    from agentledger.pipeline.derive.ledger import verify
    from agentledger.pipeline.derive.summary import usage_summary
    from agentledger.pipeline.services.audit import to_markdown
    from agentledger.pipeline.services.datasets.export import demo_dataset
    from agentledger.pipeline.services.demo_audit import demo_audit

    intent = governed.intent
    outcome = intent.get("outcome") or {}
    governance = {
        "intent_id": intent["intent_id"],
        "tool": intent["tool_name"],
        "arguments": intent["arguments"],
        "agent": intent["agent_name"],
        "trace_id": intent["trace_id"],
        "span_id": intent["span_id"],
        "principal_id": intent["principal_id"],
        "principal_chain": intent["principal_chain"],
        "policy_id": intent["policy_id"],
        "decision": intent["decision"],
        "asks": intent["attempt"] + 1,
        "parked_seconds": round(governed.parked_seconds, 3),
        "outcome": outcome.get("status"),
        "result": governed.result,
        "controls": [
            {"action": c["action"], "by": c["by"], "reason": c["reason"]} for c in governed.controls
        ],
    }
    now = datetime.now(timezone.utc)
    usage = usage_summary(store, tenant, now - timedelta(hours=1), now + timedelta(minutes=1))
    key = (
        store_settings.ledger_key.get_secret_value().encode() if store_settings.ledger_key else None
    )
    ledger = verify(store, tenant, key=key).as_dict()
    answers = demo_audit(store, tenant, trace_id, provider_url)
    # the full report is the posting's: the decision before it, and what the planner saw
    report_path = Path(data_dir) / f"audit-{intent['span_id']}.md"
    report_path.write_text(to_markdown(posting.model_dump()))
    replay = answers["replay"]
    manifest = demo_dataset(store, Path(data_dir) / "datasets", tenant=tenant)
    shown = (
        "id",
        "name",
        "format",
        "created_at",
        "creator",
        "filters",
        "counts",
        "content_digest",
        "files",
    )
    return {
        "governance": governance,
        "usage": usage["totals"],
        "anomalies": [
            {
                "type": a["type"],
                "dimensions": a["dimensions"],
                "detail": a["detail"],
                "example_trace_ids": a["example_trace_ids"],
            }
            for a in usage["anomalies"]
        ],
        "_usage": usage,
        "ledger": {
            "ok": ledger["ok"],
            "checkpoints": ledger["checkpoints"],
            "rows": ledger["rows"],
            "problems": ledger["problems"],
        },
        "audit": {
            "which_model_decided": answers["which_model_decided"],
            "under_whose_authority": answers["under_whose_authority"],
            "documents_verified": all(
                d["verified"] for d in answers["what_the_agent_saw"]["documents"]
            ),
            "replay": {
                "exact": replay["exact"],
                "replay_answered_model": replay["replay_answered_model"],
                "diff": replay["diff"],
                "error": replay["error"],
            },
            "report": str(report_path.resolve()),
        },
        "dataset": {
            "id": manifest["id"],
            "format": manifest["format"],
            "examples": manifest["counts"]["examples"],
            "files": [f["path"] for f in manifest["files"]],
            "redaction": manifest["hygiene"]["redaction_policy"],
            "source_span_ids": manifest.get("source_span_ids", []),
        },
        "_manifest": {
            **{k: manifest[k] for k in shown},
            "redaction_policy": manifest["hygiene"]["redaction_policy"],
            "source_span_ids": manifest.get("source_span_ids", []),
        },
    }


def _print_team(console: Any, s: dict[str, Any]) -> None:
    h, p = s["handoff"], s["planner"]
    console.print(
        f"\n[bold]Two agents[/bold]: {h['from_agent']} (trace {p['trace_id']}, {p['spans_recorded']} spans) "
        f"saw {', '.join(p['documents'])} and its model ({p['model']}), then handed {h['entry_id']} to "
        f'{h["to_agent"]} over a {h["over"]}: "{h["task"]}"\n'
        f"  handoff {h['handoff_id']}: sent from span {h['sent_span_id']}, received by span "
        f"{h['received_span_id']} in the executor's own trace {h['received_in_trace']} (linked), "
        f"scopes handed on: {', '.join(h['scopes_handed']) or 'none'}\n"
        f"  delegation chain: {' -> '.join(s['delegation_chain'])}"
    )
    for e in s["graph"]["edges"]:
        plural = "" if e["handoffs"] == 1 else "s"
        console.print(
            f"  agent graph: {e['source']} -> {e['target']} ({e['handoffs']} handoff{plural})"
        )


def _print_derived(console: Any, s: dict[str, Any]) -> None:
    from agentledger.cli.usage import print_usage_summary

    g = s["governance"]
    controls = "; ".join(f"{c['action']} by {c['by']} ({c['reason']})" for c in g["controls"])
    inside = " inside ".join(f"{a['name']}" for a in s["posting"]["inside"])
    console.print(
        f"\n[bold]Governed tool[/bold] {g['tool']}({g['arguments']}) of {g['agent']} for {g['principal_id']} "
        f"under policy {g['policy_id']}: intent {g['intent_id']} logged before it ran, parked "
        f"{g['parked_seconds']}s while paused ({g['asks']} asks) as span {g['span_id']} inside {inside} "
        f"(trace {g['trace_id']}), then {g['decision']}, outcome {g['outcome']}. Controls: {controls}."
    )
    print_usage_summary(console, s["_usage"])
    led = s["ledger"]
    console.print(
        f"\n[bold]Ledger[/bold]: {'OK' if led['ok'] else 'BROKEN'}, {led['rows']} rows under "
        f"{led['checkpoints']} chained checkpoints."
    )
    a = s["audit"]
    m = a["which_model_decided"]
    who = a["under_whose_authority"] or {}
    r = a["replay"]
    console.print(
        f"\n[bold]Audit[/bold]: decided by {m.get('answered_model')} ({m.get('provider')}, requested "
        f"{m.get('requested_model')}), for {who.get('principal_id') or who.get('user_id') or 'nobody named'}; "
        f"documents re-hashed and {'verified' if a['documents_verified'] else 'NOT verified'}. Replay of the "
        f"decision: {'error: ' + str(r['error']) if r['error'] else ('same answer' if (r['diff'] or {}).get('text_similarity') == 1.0 else 'drift: ' + json.dumps(r['diff']))}. "
        f"Full report: {a['report']}"
    )
    for hop in s["posting"]["upstream"]:
        console.print(
            f"  what the posting's upstream saw ({hop['delegation_step']}, trace {hop['trace_id']}): "
            f"documents {', '.join(d['id'] for d in hop['documents']) or 'none'} "
            f"({'verified' if all(d['verified'] for d in hop['documents']) else 'NOT verified'}), "
            f"{len(hop['llm_calls'])} LLM call(s) of {hop['from_agent']}"
        )
    d = s["dataset"]
    console.print(
        f"\n[bold]Dataset[/bold] {d['id']}: {d['examples']} {d['format']} examples, redaction "
        f"{d['redaction']}; its manifest (lineage: the source spans, every file's SHA-256):"
    )
    console.print_json(json.dumps(s["_manifest"], default=str))

"""``agentledger demo``: a sample agent, recorded end to end on the embedded default.

Wiring of the demo process: a scripted OpenAI-compatible model server, the
embedded AgentLedger server (collector + pipeline + chDB), and the sample
agent instrumented with OpenInference exporting OTLP/HTTP to that server.
"""

from __future__ import annotations

import json
import os
from typing import Any

from rich.panel import Panel

from agentledger.cli import render
from agentledger.cli._source import SourceError
from agentledger.pipeline import queries

__all__ = ["run_demo"]


def run_demo(data_dir: str, *, as_json: bool = False) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from agentledger.collector import CollectorSettings
    from agentledger.demo.agent import AGENT_NAME, run_finance_agent
    from agentledger.demo.provider import ScriptedProvider, default_script
    from agentledger.pipeline.settings import StoreSettings
    from agentledger.pipeline.stores import StoreError
    from agentledger.server import EmbeddedServer

    console = render.console(stderr=as_json)
    try:
        server = EmbeddedServer(CollectorSettings(no_auth=True, port=0), StoreSettings(data_dir=data_dir))
    except StoreError as exc:
        raise SourceError(f"{exc}\n(stop the server using {data_dir!r}, or pass --data-dir)") from exc
    with server, ScriptedProvider(default_script()) as provider:
        console.print(f"[bold]AgentLedger demo[/bold]: embedded server at {server.url}, scripted model at {provider.base_url}")
        tracer_provider = TracerProvider(resource=Resource.create({"service.name": "finance-controls"}))
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces")))
        run = run_finance_agent(provider.base_url, tracer_provider)
        tracer_provider.force_flush()
        tracer_provider.shutdown()

        store, tenant = server.store, server.collector.default_tenant
        spans = queries.get_trace(store, tenant, run.trace_id)
        trace = {"trace_id": run.trace_id, "spans": spans, "tree": queries.trace_tree(spans)}
        hashes = [d["content_hash"] for s in spans for d in s["documents"]]
        contents = queries.get_contents(store, tenant, hashes)
        summary = {
            "agent": AGENT_NAME,
            "trace_id": run.trace_id,
            "decision": run.decision,
            "spans_recorded": len(spans),
            "llm_calls": sum(1 for s in spans if s["kind"] == "LLM"),
            "tool_calls": [s["tool_name"] for s in spans if s["kind"] == "TOOL"],
            "documents": [
                {"id": d["id"], "sha256": d["content_hash"], "stored": d["content_hash"] in contents}
                for s in spans for d in s["documents"]
            ],
            "models": sorted({f"{s['request_model']} -> {s['response_model']}" for s in spans if s["kind"] == "LLM"}),
            "tokens": sum(s["input_tokens"] + s["output_tokens"] for s in spans),
            "cost_usd": round(sum(s["cost_usd"] for s in spans), 6),
            "data_dir": os.path.abspath(data_dir),
        }
        if as_json:
            print(json.dumps(summary, indent=2))
            return summary
        console.print(Panel(run.decision, title="Agent decision", border_style="green"))
        console.print(render.trace_tree(trace))
        console.print(render.traces_table(queries.list_traces(store, tenant, limit=5), "Recent traces"))
        console.print(
            f"\nRecorded {summary['spans_recorded']} spans ({summary['llm_calls']} LLM calls, "
            f"tools: {', '.join(summary['tool_calls']) or 'none'}), {summary['tokens']} tokens, "
            f"${summary['cost_usd']:.4f}.\n"
            f"Data lives in [bold]{summary['data_dir']}[/bold] (embedded ClickHouse, tables "
            "[cyan]spans[/cyan] and [cyan]contents[/cyan]). Look again with:\n"
            f"  agentledger traces --data-dir {data_dir}\n"
            f"  agentledger trace {run.trace_id} --data-dir {data_dir}"
        )
        return summary

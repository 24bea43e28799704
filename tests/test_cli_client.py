"""The CLI's one client protocol: over HTTP and over the store, the same answers on the same data."""

from __future__ import annotations

import hashlib
import inspect
import json
import typing
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from pydantic import BaseModel

from agentledger.cli.client import ClientError, HttpReadClient, LedgerClient, LocalReadClient
from agentledger.compose import build_local_reader
from agentledger.demo.agent import AgentRun, run_finance_agent
from agentledger.pipeline.settings import StoreSettings
from agentledger.schemas.read import ReadModel, TraceDetail


def _record(server: Any, provider: Any) -> AgentRun:
    tp = TracerProvider(resource=Resource.create({"service.name": "finance-controls"}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces")))
    try:
        return run_finance_agent(provider.base_url, tp)
    finally:
        tp.shutdown()


@pytest.fixture
def clients(server: Any) -> Iterator[tuple[LedgerClient, LedgerClient]]:
    """The HTTP client of the embedded server, and the local client of the store it serves
    (built by the composition root; governance through the server's own service, whose journal
    one process owns)."""
    local = build_local_reader(StoreSettings(), "default", store=server.store)
    local._governance = server.app.state.services.governance.get  # one journal per data dir
    with HttpReadClient(server.url) as http, local:
        yield http, local


def _extras(value: Any, path: str = "") -> list[str]:
    """Keys a model carried through without naming them (the models must name all they get)."""
    if isinstance(value, BaseModel):
        found = [f"{path}.{k}" for k in (value.model_extra or {})]
        for name in type(value).model_fields:
            found += _extras(getattr(value, name), f"{path}.{name}")
        return found
    if isinstance(value, (list, tuple)):
        return [e for i, v in enumerate(value) for e in _extras(v, f"{path}[{i}]")]
    return []


def _same(http: Any, local: Any) -> Any:
    assert http == local
    assert not _extras(http), _extras(http)
    return http


def test_http_and_local_clients_answer_alike(
    server: Any, provider: Any, clients: tuple[LedgerClient, LedgerClient], tmp_path: Path
) -> None:
    run = _record(server, provider)
    http, local = clients

    listed = _same(http.traces(), local.traces())
    assert [t.trace_id for t in listed] == [run.trace_id] and listed[0].span_count == 5
    trace = _same(http.trace(run.trace_id), local.trace(run.trace_id))
    assert isinstance(trace, TraceDetail) and trace.tree[0].kind == "AGENT"
    doc = next(d for s in trace.spans for d in s.documents)
    _same(http.content(doc.content_hash), local.content(doc.content_hash))

    now = datetime.now(timezone.utc)
    window = {"since": now - timedelta(hours=1), "until": now + timedelta(hours=1)}
    usage = _same(http.usage(group_by=["kind"], **window), local.usage(group_by=["kind"], **window))
    assert {r.kind for r in usage.rows} == {"AGENT", "LLM", "TOOL", "RETRIEVER"}
    assert all(r.principal is None for r in usage.rows)  # not grouped by: absent, not null
    assert "principal" not in usage.rows[0].model_dump()
    _same(http.patterns(**window), local.patterns(**window))
    _same(http.anomalies(), local.anomalies())

    (tool,) = [s for s in trace.spans if s.kind == "TOOL"]
    audit = _same(http.audit(tool.span_id), local.audit(tool.span_id))
    assert audit.actions[0].action.span_id == tool.span_id
    _same(http.audit(run.trace_id, last=True), local.audit(run.trace_id, last=True))
    _same(http.verify_ledger(), local.verify_ledger())
    rebuilt = _same(http.replay_requests(tools_only=True), local.replay_requests(tools_only=True))
    assert [r.span_id for r in rebuilt.requests] == [s.span_id for s in trace.spans if s.tool_calls]
    llm = rebuilt.requests[0].span_id
    _same(http.replay_request(llm), local.replay_request(llm))

    http.add_feedback([{"trace_id": run.trace_id, "name": "thumbs", "label": "up"}])
    local.add_feedback([{"span_id": llm, "name": "correctness", "score": 1}])
    feedback = _same(http.feedback(trace_id=run.trace_id), local.feedback(trace_id=run.trace_id))
    assert sorted((f.name, f.source) for f in feedback) == [
        ("correctness", "cli"),
        ("thumbs", "api"),
    ]

    manifest = local.export_dataset(str(tmp_path / "ds"), {"format": "chat", "name": "same"})
    assert _same(http.dataset(manifest.id), local.dataset(manifest.id)).name == "same"
    _same(http.datasets(), local.datasets())
    spans = _same(http.dataset_spans(manifest.id), local.dataset_spans(manifest.id))
    assert sorted(s.span_id for s in spans) == sorted(
        s.span_id for s in trace.spans if s.kind == "LLM"
    )
    _same(http.span_datasets(llm), local.span_datasets(llm))

    arguments = json.dumps({"entry_id": "JE-1"})
    intent = {
        "intent_id": uuid.uuid4().hex,
        "tool_name": "lookup_journal_entry",
        "arguments": arguments,
        "arguments_sha256": hashlib.sha256(arguments.encode()).hexdigest(),
        "trace_id": run.trace_id,
    }
    assert httpx.post(f"{server.url}/v1/intents", json=intent).status_code == 200
    intents = _same(http.intents(trace_id=run.trace_id), local.intents(trace_id=run.trace_id))
    assert [i.intent_id for i in intents] == [intent["intent_id"]] and intents[0].outcome is None
    _same(http.intent(intent["intent_id"]), local.intent(intent["intent_id"]))
    event = http.control(action="pause", scope="agent", target="nobody", by="ops", reason="test")
    controls = _same(http.controls(everything=True), local.controls(everything=True))
    assert [c.control_id for c in controls.controls] == [event.control_id] and controls.shared


def test_both_clients_fail_alike_on_what_is_not_there(
    clients: tuple[LedgerClient, LedgerClient],
) -> None:
    for client in clients:
        with pytest.raises(ClientError, match="no trace"):
            client.trace("0" * 32)
        with pytest.raises(ClientError, match="32 hex digits"):
            client.trace("nonsense")
        with pytest.raises(ClientError, match="no dataset"):
            client.dataset("ds-nope")
        with pytest.raises(ClientError, match="give trace_id or span_id"):
            client.feedback()
        with pytest.raises(ClientError, match="no replay run"):
            client.replay("0" * 32)


@pytest.mark.parametrize("client", [HttpReadClient, LocalReadClient])
def test_every_read_of_the_protocol_answers_a_read_model(client: type) -> None:
    from agentledger.cli.client import ReadClient

    reads = [
        n for n, f in vars(ReadClient).items() if inspect.isfunction(f) and not n.startswith("_")
    ]
    assert len(reads) >= 20 and "close" in reads
    for name in reads:
        if name in ("close", "sql"):  # sql answers the engine's own output format, as asked
            continue
        answer = typing.get_type_hints(getattr(client, name))["return"]
        models = typing.get_args(answer) if typing.get_origin(answer) is list else (answer,)
        assert all(issubclass(m, ReadModel) for m in models), (name, answer)


def test_a_download_cannot_land_outside_the_dataset_folder(tmp_path) -> None:
    import httpx

    from agentledger.cli.client import ClientError, HttpReadClient

    served = httpx.MockTransport(lambda request: httpx.Response(200, content=b"payload"))
    client = HttpReadClient("http://server.test", transport=served)
    target = tmp_path / "ds"
    target.mkdir()
    for name in ("../evil.txt", "/tmp/evil.txt", "a/../../evil.txt", "x\x00y"):
        with pytest.raises(ClientError, match="outside the dataset folder"):
            client._download("/api/v1/datasets/d/files/x", str(target), name)
    assert not (tmp_path / "evil.txt").exists()
    client._download("/api/v1/datasets/d/files/x", str(target), "train/data.jsonl")
    assert (target / "train" / "data.jsonl").read_bytes() == b"payload"

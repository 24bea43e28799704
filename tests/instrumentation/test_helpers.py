"""retrieval / llm_call / tool as context managers and decorators (sync and async): stored rows
in the same shape as OpenInference's instrumentors produce."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import agentledger
from agentledger.demo.documents import lookup_journal_entry, search_policies
from agentledger.pipeline.services import queries


def _rows(server: Any) -> list[dict[str, Any]]:
    assert agentledger.flush()
    (trace,) = queries.list_traces(server.store, "default")
    return queries.get_trace(server.store, "default", trace["trace_id"])


def _content(server: Any, h: str) -> Any:
    text = queries.get_contents(server.store, "default", [h])[h]["content"]
    return json.loads(text) if text[:1] in "[{" else text


@agentledger.retrieval
def find_policies(query: str) -> list[Any]:
    return search_policies(query, top_k=2)


@agentledger.tool(description="Fetch a journal entry.")
def lookup(entry_id: str) -> dict[str, Any]:
    return lookup_journal_entry(entry_id)


@agentledger.tool
async def lookup_async(entry_id: str) -> dict[str, Any]:
    await asyncio.sleep(0)
    return lookup_journal_entry(entry_id)


@agentledger.llm_call(model="house-model-v1", provider="acme-llm")
def ask(messages: list[dict[str, Any]]) -> str:
    return "ESCALATE: above the FIN-7 threshold."


@agentledger.tool(name="failing_tool")
def explode(x: int) -> int:
    raise KeyError("no such entry")


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
def test_decorators(server: Any, instrumented: Any, use_async: bool) -> None:
    instrumented(instrumentors=[])
    with agentledger.acting_for("controller@acme.example"), agentledger.tool("agent-run"):
        docs = find_policies("reclassification approval above USD 1,000,000")
        entry = asyncio.run(lookup_async("JE-4471")) if use_async else lookup("JE-4471")
        answer = ask([{"role": "user", "content": "Approve JE-4471?"}])
        with pytest.raises(KeyError):
            explode(1)
    rows = {r["name"]: r for r in _rows(server)}
    assert all(r["principal_id"] == "controller@acme.example" for r in rows.values())

    retr = rows["find_policies"]
    assert retr["kind"] == "RETRIEVER" and retr["convention"] == "openinference"
    assert [d["id"] for d in retr["documents"]] == [d.id for d in docs]
    assert [d["score"] for d in retr["documents"]] == pytest.approx([d.score for d in docs])
    assert _content(server, retr["documents"][0]["content_hash"]) == docs[0].document.content
    assert _content(server, retr["input_hash"]) == "reclassification approval above USD 1,000,000"

    tool = rows["lookup_async" if use_async else "lookup"]
    assert tool["kind"] == "TOOL" and tool["tool_name"] == tool["name"]
    assert _content(server, tool["input_hash"]) == {"entry_id": "JE-4471"}
    assert _content(server, tool["output_hash"]) == entry
    if not use_async:
        assert tool["attributes"]["tool.description"] == "Fetch a journal entry."

    llm = rows["ask"]
    assert (
        llm["kind"] == "LLM"
        and llm["request_model"] == "house-model-v1"
        and llm["provider"] == "acme-llm"
    )
    assert _content(server, llm["input_hash"]) == [{"role": "user", "content": "Approve JE-4471?"}]
    assert _content(server, llm["output_hash"]) == [{"role": "assistant", "content": answer}]

    failed = rows["failing_tool"]
    assert failed["status_code"] == "ERROR" and "KeyError" in failed["status_message"]
    assert "exception" in failed["events"]
    parent = rows["agent-run"]
    assert {r["parent_span_id"] for n, r in rows.items() if n != "agent-run"} == {parent["span_id"]}


def test_context_managers_with_everything_recorded(server: Any, instrumented: Any) -> None:
    instrumented(instrumentors=[], model_pins={"*": "house-model-v1-0601"})

    async def agent() -> None:
        async with agentledger.retrieval("JE-4471 policy", name="vector-search") as r:
            r.documents(
                [("FIN-7", "Reclassifications above USD 1M need CFO approval.", 0.92, {"v": "4.2"})]
            )
        with agentledger.llm_call(
            model="house-model-v1",
            provider="acme-llm",
            messages=[
                {"role": "system", "content": "Be strict."},
                {"role": "user", "content": "JE-4471?"},
            ],
            tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
            invocation_parameters={"temperature": 0},
        ) as call:
            call.output(
                messages=[
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c1",
                                "type": "function",
                                "function": {
                                    "name": "lookup",
                                    "arguments": '{"entry_id": "JE-4471"}',
                                },
                            }
                        ],
                    }
                ],
                model="house-model-v1-0601",
                input_tokens=120,
                output_tokens=9,
                finish_reason="tool_calls",
                system_fingerprint="fp_house",
            )
        with agentledger.tool("lookup", call_id="c1", arguments={"entry_id": "JE-4471"}) as t:
            t.result({"amount": 4000000})

    with agentledger.acting_for("controller@acme.example"), agentledger.tool("agent"):
        asyncio.run(agent())
    rows = {r["name"]: r for r in _rows(server)}
    retr = rows["vector-search"]
    assert retr["documents"][0]["id"] == "FIN-7" and retr["documents"][0]["score"] == pytest.approx(
        0.92
    )
    llm = rows["llm_call"]
    assert (
        llm["response_model"] == "house-model-v1-0601" and llm["request_model"] == "house-model-v1"
    )
    assert llm["input_tokens"] == 120 and llm["output_tokens"] == 9
    assert llm["attributes"]["agentledger.model.pin_mismatch"] == "false"
    assert llm["attributes"]["openai.response.system_fingerprint"] == "fp_house"
    (call,) = llm["tool_calls"]
    assert call["id"] == "c1" and _content(server, call["arguments_hash"]) == {
        "entry_id": "JE-4471"
    }
    tool = rows["lookup"]
    assert (
        tool["tool_call_id"] == "c1" and tool["input_hash"] == call["arguments_hash"]
    )  # same content, same hash


def test_llm_call_pin_raise(server: Any, instrumented: Any) -> None:
    instrumented(instrumentors=[], model_pins={"*": "house-model-v2"}, on_pin_mismatch="raise")
    with pytest.raises(agentledger.ModelPinMismatch):
        with agentledger.llm_call(model="house-model") as call:
            call.output("hi", model="house-model-v1")
    (row,) = _rows(server)
    assert (
        row["status_code"] == "ERROR"
        and row["attributes"]["agentledger.model.pin_mismatch"] == "true"
    )

"""Real frameworks (Anthropic SDK, a LangChain agent with tools, a LlamaIndex query engine with
a retriever) instrumented by ``instrument()``, over HTTP to the scripted provider, spans over
OTLP to the embedded server: the stored rows carry principal, messages, documents, tool calls."""

from __future__ import annotations

import json
from typing import Any

import agentledger
from agentledger.demo.agent import SYSTEM_PROMPT
from agentledger.demo.documents import (
    LOOKUP_JOURNAL_ENTRY,
    LOOKUP_JOURNAL_ENTRY_SCHEMA,
    POLICY_CORPUS,
    lookup_journal_entry,
)
from agentledger.pipeline.services import queries

QUESTION = "Should we approve the USD 4,000,000 reclassification in journal entry JE-4471?"


def _spans(server: Any, traces: int = 1) -> list[dict[str, Any]]:
    """Every stored span, after checking how many traces they make."""
    assert agentledger.flush()
    found = queries.list_traces(server.store, "default")
    assert len(found) == traces, found
    return [s for t in found for s in queries.get_trace(server.store, "default", t["trace_id"])]


def _content(server: Any, h: str) -> Any:
    return json.loads(queries.get_contents(server.store, "default", [h])[h]["content"])


def test_anthropic_sdk(server: Any, provider: Any, instrumented: Any) -> None:
    import anthropic

    state = instrumented(instrumentors=["anthropic"])
    assert state.frameworks == ("anthropic",)
    with agentledger.acting_for("controller@acme.example", role="controller", policy="FIN-7"):
        with anthropic.Anthropic(base_url=provider.anthropic_base_url, api_key="test") as client:
            message = client.messages.create(
                model="claude-haiku-4-5",
                max_tokens=256,
                system=SYSTEM_PROMPT,
                messages=[{"role": "user", "content": QUESTION}],
                tools=[
                    {
                        "name": LOOKUP_JOURNAL_ENTRY,
                        "description": "Fetch a journal entry.",
                        "input_schema": LOOKUP_JOURNAL_ENTRY_SCHEMA,
                    }
                ],
            )
    assert message.stop_reason == "tool_use"
    (span,) = _spans(server)
    assert span["kind"] == "LLM" and span["provider"] == "anthropic"
    assert span["principal_id"] == "controller@acme.example" and span["policy_id"] == "FIN-7"
    assert span["request_model"] == "claude-haiku-4-5"
    assert span["response_model"] == "claude-haiku-4-5-20251001"
    assert span["input_tokens"] > 0 and span["output_tokens"] > 0
    stored = _content(server, span["input_hash"])
    assert stored[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert stored[-1] == {"role": "user", "content": QUESTION}
    (call,) = span["tool_calls"]
    assert call["name"] == LOOKUP_JOURNAL_ENTRY
    assert _content(server, call["arguments_hash"]) == {"entry_id": "JE-4471"}


def test_langchain_agent_with_tools(server: Any, provider: Any, instrumented: Any) -> None:
    from langchain.agents import create_agent
    from langchain_core.tools import tool as lc_tool
    from langchain_openai import ChatOpenAI

    state = instrumented(instrumentors=["openai", "langchain"])
    assert set(state.frameworks) == {"openai", "langchain"}

    @lc_tool(LOOKUP_JOURNAL_ENTRY)
    def lookup(entry_id: str) -> dict[str, Any]:
        """Fetch a journal entry from the ledger: amounts, accounts, preparer, approver."""
        return lookup_journal_entry(entry_id)

    model = ChatOpenAI(model="gpt-4o", base_url=provider.base_url, api_key="test", temperature=0)
    agent = create_agent(model, tools=[lookup], system_prompt=SYSTEM_PROMPT)
    with agentledger.acting_for("cfo@acme.example", name="Dana Reyes"):
        result = agent.invoke({"messages": [{"role": "user", "content": QUESTION}]})
    decision = result["messages"][-1].content
    assert decision.startswith("ESCALATE")

    # LangGraph runs model calls on worker threads whose context predates LangChain's LLM span,
    # so the SDK-level spans start traces of their own (as with OpenInference alone): 1 + 2 traces
    spans = _spans(server, traces=3)
    assert all(s["principal_id"] == "cfo@acme.example" for s in spans)
    assert all(s["attributes"].get("agentledger.unattributed") is None for s in spans)
    tools = [s for s in spans if s["kind"] == "TOOL"]
    assert [t["tool_name"] for t in tools] == [LOOKUP_JOURNAL_ENTRY]
    result_json = _content(server, tools[0]["output_hash"]) if tools[0]["output_hash"] else None
    assert result_json is not None and "JE-4471" in json.dumps(result_json)
    # the SDK-level LLM spans (AgentLedger's OpenAI wrapper) under LangChain's own LLM spans
    sdk_llm = [
        s for s in spans if s["kind"] == "LLM" and s["scope_name"] == "agentledger.instrumentation"
    ]
    assert len(sdk_llm) == 2
    first, second = sorted(sdk_llm, key=lambda s: s["start_time"])
    assert [c["name"] for c in first["tool_calls"]] == [LOOKUP_JOURNAL_ENTRY]
    assert second["output_preview"] == decision[:200]
    assert [m["role"] for m in _content(server, second["input_hash"])] == [
        "system",
        "user",
        "assistant",
        "tool",
    ]
    langchain_llm = [
        s for s in spans if s["kind"] == "LLM" and s["scope_name"] != "agentledger.instrumentation"
    ]
    assert len(langchain_llm) == 2 and all(s["input_hash"] for s in langchain_llm)
    assert [c["name"] for s in langchain_llm for c in s["tool_calls"]] == [LOOKUP_JOURNAL_ENTRY]
    assert (
        len({s["trace_id"] for s in spans if s["scope_name"] != "agentledger.instrumentation"}) == 1
    )


def test_llama_index_query_engine_with_retriever(
    server: Any, provider: Any, instrumented: Any
) -> None:
    import openai
    from llama_index.core import Settings, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.llms import CompletionResponse, CustomLLM, LLMMetadata
    from llama_index.core.llms.callbacks import llm_completion_callback
    from llama_index.core.schema import TextNode

    class ProviderLLM(CustomLLM):
        """An OpenAI-compatible LLM through the real OpenAI SDK (llama-index-llms-openai needs openai<3)."""

        base_url: str

        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(model_name="gpt-4o")

        @llm_completion_callback()
        def complete(
            self, prompt: str, formatted: bool = False, **kwargs: Any
        ) -> CompletionResponse:
            with openai.OpenAI(base_url=self.base_url, api_key="test") as client:
                r = client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": prompt}]
                )
            return CompletionResponse(text=r.choices[0].message.content or "")

        @llm_completion_callback()
        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            yield self.complete(prompt)

    state = instrumented(instrumentors=["openai", "llama_index"])
    assert set(state.frameworks) == {"openai", "llama_index"}
    Settings.tokenizer = str.split  # no tiktoken download (no network here)
    nodes = [TextNode(id_=doc.id, text=doc.content) for doc in POLICY_CORPUS]
    index = VectorStoreIndex(nodes, embed_model=MockEmbedding(embed_dim=8))
    engine = index.as_query_engine(llm=ProviderLLM(base_url=provider.base_url), similarity_top_k=2)
    with agentledger.acting_for("auditor@acme.example", role="auditor"):
        answer = engine.query("Who must approve a reclassification above USD 1,000,000?")
    assert str(answer)

    # two traces: building the index (before anyone asked: unattributed) and the query
    everything = _spans(server, traces=2)
    indexing = [s for s in everything if s["principal_id"] == ""]
    assert indexing and all(s["attributes"]["agentledger.unattributed"] == "true" for s in indexing)
    spans = [s for s in everything if s["principal_id"]]
    assert len({s["trace_id"] for s in spans}) == 1
    assert all(s["principal_id"] == "auditor@acme.example" for s in spans)
    retrievers = [s for s in spans if s["kind"] == "RETRIEVER"]
    assert retrievers
    docs = retrievers[0]["documents"]
    assert len(docs) == 2
    contents = queries.get_contents(server.store, "default", [d["content_hash"] for d in docs])
    corpus = {doc.content for doc in POLICY_CORPUS}
    assert {contents[d["content_hash"]]["content"] for d in docs} <= corpus
    sdk_llm = [
        s for s in spans if s["kind"] == "LLM" and s["scope_name"] == "agentledger.instrumentation"
    ]
    (llm,) = sdk_llm
    prompt = _content(server, llm["input_hash"])[0]["content"]
    assert all(
        contents[d["content_hash"]]["content"] in prompt for d in docs
    )  # the LLM saw what was retrieved
    assert llm["response_model"] == "gpt-4o-2024-08-06"

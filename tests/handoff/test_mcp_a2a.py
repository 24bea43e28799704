"""Handoffs through the official MCP and A2A Python SDKs, over their in-process transports: the
context rides in MCP's ``_meta`` and in an A2A message's ``metadata``, and the receiving agent's
span continues the sender's trace with the principal and the delegation chain."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
from a2a.server.agent_execution.agent_executor import AgentExecutor
from a2a.server.request_handlers import DefaultRequestHandler
from a2a.server.routes.jsonrpc_routes import create_jsonrpc_routes
from a2a.server.tasks import InMemoryTaskStore
from a2a.types import a2a_pb2 as a2a
from google.protobuf import json_format
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer
from starlette.applications import Starlette

from agentledger.instrumentation import acting_for, as_agent, inject_handoff, receive_handoff
from agentledger.schemas.attributes import AgentLedger as AL


def _check(recorded, receiver: str, seen: dict[str, Any]) -> None:
    sent = recorded.named(f"handoff {receiver}")
    received = recorded.named(f"invoke_agent {receiver}")
    assert seen["chain"] == ("executor", receiver)
    assert seen["principal"] == "alice@acme.example"
    assert received.context.trace_id == sent.context.trace_id  # a request answered in-line
    assert received.parent is not None and received.parent.span_id == sent.context.span_id
    assert received.attributes[AL.PRINCIPAL_ID] == "alice@acme.example"


def test_an_mcp_tool_call_carries_the_handoff_in_meta(recorded) -> None:
    server = MCPServer("ledger-tools")
    seen: dict[str, Any] = {}

    @server.tool()
    async def post_entry(entry_id: str, ctx: Context) -> str:
        meta = ctx.request_context.meta or {}
        with receive_handoff(
            meta, agent_name="ledger-tools", synchronous=True, tracer_provider=recorded.provider
        ) as handoff:
            seen.update(chain=handoff.chain, principal=handoff.principal and handoff.principal.id)
        return f"posted {entry_id}"

    async def call() -> Any:
        async with Client(server) as client:
            with acting_for("alice@acme.example"), as_agent("executor"):
                meta = inject_handoff(
                    {}, to_agent="ledger-tools", tracer_provider=recorded.provider
                )
                return await client.call_tool("post_entry", {"entry_id": "JE-1"}, meta=meta)

    result = asyncio.run(call())
    assert result.content[0].text == "posted JE-1"
    _check(recorded, "ledger-tools", seen)


def test_an_a2a_message_carries_the_handoff_in_metadata(recorded) -> None:
    seen: dict[str, Any] = {}

    class LedgerAgent(AgentExecutor):
        async def execute(self, context: Any, event_queue: Any) -> None:
            message = context.message
            with receive_handoff(
                message.metadata,  # a protobuf Struct
                agent_name="ledger-agent",
                synchronous=True,
                tracer_provider=recorded.provider,
            ) as handoff:
                seen.update(
                    chain=handoff.chain, principal=handoff.principal and handoff.principal.id
                )
            await event_queue.enqueue_event(
                a2a.Message(
                    message_id=uuid.uuid4().hex,
                    context_id=message.context_id,
                    role=a2a.ROLE_AGENT,
                    parts=[a2a.Part(text="posted")],
                )
            )

        async def cancel(self, context: Any, event_queue: Any) -> None:
            pass

    card = a2a.AgentCard(
        name="ledger-agent",
        description="posts journal entries",
        version="1",
        default_input_modes=["text"],
        default_output_modes=["text"],
        capabilities=a2a.AgentCapabilities(),
        skills=[a2a.AgentSkill(id="post", name="post", description="post", tags=["ledger"])],
        supported_interfaces=[
            a2a.AgentInterface(
                url="http://a2a/a2a", protocol_binding="JSONRPC", protocol_version="1.0"
            )
        ],
    )
    app = Starlette(
        routes=create_jsonrpc_routes(
            DefaultRequestHandler(LedgerAgent(), InMemoryTaskStore(), card), "/a2a"
        )
    )
    message = a2a.Message(
        message_id=uuid.uuid4().hex, role=a2a.ROLE_USER, parts=[a2a.Part(text="post JE-2")]
    )
    with acting_for("alice@acme.example"), as_agent("executor"):
        inject_handoff(message.metadata, to_agent="ledger-agent", tracer_provider=recorded.provider)
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": json_format.MessageToDict(a2a.SendMessageRequest(message=message)),
    }

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://a2a") as client:
            return await client.post("/a2a", json=body, headers={"A2A-Version": "1.0"})

    response = asyncio.run(send())
    assert response.status_code == 200, response.text
    assert response.json()["result"]["message"]["parts"] == [{"text": "posted"}]
    _check(recorded, "ledger-agent", seen)

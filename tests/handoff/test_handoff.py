"""Handoffs between agents in one process and over real HTTP: links or parenthood, the principal
and the delegation chain carried across, and carriers that cannot be read."""

from __future__ import annotations

import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from agentledger.instrumentation import (
    acting_for,
    as_agent,
    current_chain,
    inject_handoff,
    receive_handoff,
)
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import GenAI


def test_a_queue_handoff_links_b_to_a_and_carries_principal_and_chain(recorded) -> None:
    """The asynchronous case: B starts a trace of its own, linked to A's handoff span."""
    tasks: queue.Queue[dict[str, Any]] = queue.Queue()
    done = threading.Event()

    def executor() -> None:
        message = tasks.get(timeout=10)
        with receive_handoff(
            message["handoff"], agent_name="executor", tracer_provider=recorded.provider
        ) as handoff:
            assert handoff.from_agent == "planner" and handoff.chain == ("planner", "executor")
            assert current_chain() == ("planner", "executor")
            with recorded.tracer.start_as_current_span("post_journal_entry"):
                pass
        done.set()

    worker = threading.Thread(target=executor)
    worker.start()
    with acting_for("alice@acme.example", role="controller"), as_agent("planner"):
        with recorded.tracer.start_as_current_span("plan"):
            tasks.put(
                {
                    "task": "post JE-1",
                    "handoff": inject_handoff(
                        {}, to_agent="executor", tracer_provider=recorded.provider
                    ),
                }
            )
    assert done.wait(10)
    worker.join()

    sent = recorded.named("handoff executor")
    received = recorded.named("invoke_agent executor")
    work = recorded.named("post_journal_entry")
    plan = recorded.named("plan")
    assert sent.parent.span_id == plan.context.span_id  # A's handoff is part of A's run
    assert received.context.trace_id != sent.context.trace_id  # async: a trace of its own
    assert received.parent is None
    (link,) = received.links
    assert link.context.span_id == sent.context.span_id
    assert link.context.trace_id == sent.context.trace_id
    assert received.attributes[AL.HANDOFF_ID] == sent.attributes[AL.HANDOFF_ID]
    assert link.attributes[AL.HANDOFF_ID] == sent.attributes[AL.HANDOFF_ID]
    assert received.attributes[AL.RUN_ID] == sent.attributes[AL.RUN_ID]
    assert received.attributes[GenAI.OPERATION_NAME] == "invoke_agent"
    assert received.attributes[GenAI.AGENT_NAME] == "executor"
    assert received.attributes[AL.HANDOFF_FROM_AGENT] == "planner"
    assert sent.attributes[AL.HANDOFF_TO_AGENT] == "executor"
    assert tuple(sent.attributes[AL.DELEGATION_CHAIN]) == ("planner",)
    for span in (received, work):  # every span of B: A's principal, the chain, B's name
        assert span.attributes[AL.PRINCIPAL_ID] == "alice@acme.example"
        assert tuple(span.attributes[AL.DELEGATION_CHAIN]) == ("planner", "executor")
        assert span.attributes[AL.AGENT_NAME] == "executor"
        assert AL.UNATTRIBUTED not in span.attributes
    assert work.parent.span_id == received.context.span_id


def test_an_http_call_continues_the_trace(recorded) -> None:
    """The synchronous case over real HTTP: B's span is a child of A's handoff span."""
    seen: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", 0)))
            with receive_handoff(
                self.headers,
                agent_name="executor",
                synchronous=True,
                tracer_provider=recorded.provider,
            ) as handoff:
                seen["handoff"] = handoff
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with acting_for("bob@acme.example"), as_agent("planner"):
            headers = inject_handoff({}, to_agent="executor", tracer_provider=recorded.provider)
            response = httpx.post(
                f"http://127.0.0.1:{server.server_address[1]}/run", json={}, headers=headers
            )
        assert response.status_code == 204
    finally:
        server.shutdown()
        server.server_close()
    sent = recorded.named("handoff executor")
    received = recorded.named("invoke_agent executor")
    assert received.context.trace_id == sent.context.trace_id
    assert received.parent.span_id == sent.context.span_id
    assert not received.links
    assert received.attributes[AL.PRINCIPAL_ID] == "bob@acme.example"
    assert seen["handoff"].chain == ("planner", "executor")


def test_a_chain_of_three_keeps_one_run_id(recorded) -> None:
    with acting_for("carol@acme.example"), as_agent("intake"):
        first = inject_handoff([], tracer_provider=recorded.provider)  # kafka-python headers
    assert all(isinstance(v, bytes) for _, v in first)
    with receive_handoff(first, agent_name="planner", tracer_provider=recorded.provider):
        second = inject_handoff({}, to_agent="executor", tracer_provider=recorded.provider)
    with receive_handoff(
        second, agent_name="executor", tracer_provider=recorded.provider
    ) as handoff:
        assert handoff.chain == ("intake", "planner", "executor")
        assert handoff.principal is not None and handoff.principal.id == "carol@acme.example"
    runs = {s.attributes[AL.RUN_ID] for s in recorded.spans()}
    assert len(runs) == 1  # one piece of work, one run id across both handoffs
    planner_sent = recorded.named("handoff executor")
    assert tuple(planner_sent.attributes[AL.DELEGATION_CHAIN]) == ("intake", "planner")


def test_bytes_values_and_case_insensitive_headers_are_read(recorded) -> None:
    with as_agent("planner"):
        carrier = inject_handoff({"x": b"1"}, tracer_provider=recorded.provider)
    assert isinstance(carrier["traceparent"], bytes)  # a bytes mapping stays bytes
    shouted = httpx.Headers({k.upper(): v.decode() for k, v in carrier.items() if k != "x"})
    with receive_handoff(
        shouted, agent_name="executor", tracer_provider=recorded.provider
    ) as handoff:
        assert not handoff.broken and handoff.from_agent == "planner"


def test_a_carrier_without_context_starts_a_new_chain_and_says_so(recorded) -> None:
    ran = []
    with receive_handoff(
        {"unrelated": "1"}, agent_name="executor", tracer_provider=recorded.provider
    ) as handoff:
        ran.append(True)
    assert ran == [True] and handoff.broken and handoff.chain == ("executor",)
    span = recorded.named("invoke_agent executor")
    assert span.attributes[AL.HANDOFF_BROKEN] is True
    assert span.attributes[AL.UNATTRIBUTED] is True  # no principal arrived: never guessed


def test_an_unreadable_carrier_never_breaks_the_agent(recorded) -> None:
    class Exploding(dict):
        def get(self, *args: Any) -> Any:
            raise RuntimeError("ticket system down")

        def items(self) -> Any:
            raise RuntimeError("ticket system down")

    with receive_handoff(
        Exploding(), agent_name="executor", tracer_provider=recorded.provider
    ) as handoff:
        assert handoff.broken
    inject_handoff(None, tracer_provider=recorded.provider)  # type: ignore[arg-type]


def test_the_body_exception_is_recorded_and_reraised(recorded) -> None:
    with as_agent("planner"):
        carrier = inject_handoff({}, tracer_provider=recorded.provider)
    try:
        with receive_handoff(carrier, agent_name="executor", tracer_provider=recorded.provider):
            raise KeyError("JE-9")
    except KeyError as exc:
        assert exc.args == ("JE-9",)
    else:
        raise AssertionError("the exception was swallowed")
    span = recorded.named("invoke_agent executor")
    assert not span.status.is_ok
    assert any(e.name == "exception" for e in span.events)
    assert current_chain() == ()  # the context is restored after the block

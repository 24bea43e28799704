"""The two-agent run of ``agentledger demo``: a planner hands a journal entry to the
finance-controls executor over a queue; the executor reviews it and posts its decision through a
governed tool, which a compliance pause parks mid-run until the operator resumes it.

Threads, as in a real deployment where the agents are separate workers: the planner runs on the
caller's thread and puts a :class:`~agentledger.demo.planner.WorkItem` on a ``queue.Queue``; the
executor takes it on its own thread inside ``receive_handoff`` (a new trace linked to the
planner's handoff span, under the principal and the narrowed scopes the handoff carried); the
caller's thread then plays the operator. The demo stages the pause at one fixed point of the
executor's run, after the model's decision and before the posting, so that every run shows the
same thing: the posting's intent stored and answered ``paused``, the call parked inside the
executor's run span, then the resume and the posting done exactly once.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from openinference.semconv.trace import SpanAttributes
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from agentledger.demo.agent import (
    AGENT_NAME,
    DEFAULT_SESSION_ID,
    DEFAULT_USER_ID,
    AgentRun,
    ToolCallRecord,
    run_finance_agent,
)
from agentledger.demo.documents import POST_CONTROLS_DECISION, post_controls_decision
from agentledger.demo.governance import (
    CONTROLLER,
    HANDED_SCOPES,
    POLICY_ID,
    POSTING_SCOPE,
    ComplianceDesk,
    GovernedRun,
)
from agentledger.demo.planner import PlannerRun, WorkItem, run_planner
from agentledger.instrumentation.governance import (
    configure_governance,
    flush_outcomes,
    governed_call,
    governed_tool,
)
from agentledger.instrumentation.handoff import Handoff, receive_handoff

__all__ = ["TeamRun", "run_team"]

FIN7_APPROVERS = ["Corporate Controller", "CFO"]
"""Who an escalated reclassification goes to (FIN-7)."""


@dataclass(frozen=True)
class TeamRun:
    """What the two agents did, with the ids the demo's output and its tests follow."""

    planner: PlannerRun
    executor: AgentRun
    handoff: Handoff
    """What the executor received: chain, principal, run id, the link to the planner's span."""
    governed: GovernedRun


def run_team(
    server_url: str,
    openai_base_url: str,
    tracer_provider: TracerProvider,
    *,
    session_id: str = DEFAULT_SESSION_ID,
    api_key: str | None = None,
    timeout_s: float = 60.0,
) -> TeamRun:
    """Run planner and executor once against the collector at ``server_url``; spans go to
    ``tracer_provider`` (not flushed here). The pause and the resume target ``session_id``,
    the executor's session."""
    configure_governance(
        server_url,
        api_key=api_key,
        tracer_provider=tracer_provider,
        initial_backoff_s=0.05,
        max_backoff_s=0.25,
        max_pause_s=timeout_s,
    )
    post = governed_tool(name=POST_CONTROLS_DECISION, policy=POLICY_ID, scope=POSTING_SCOPE)(
        post_controls_decision
    )
    work: queue.Queue[WorkItem] = queue.Queue()
    decided, held = threading.Event(), threading.Event()
    done: dict[str, Any] = {}

    def act(decision: str) -> list[ToolCallRecord]:
        """The executor's action on its decision: post it, under governance."""
        decided.set()
        if not held.wait(timeout_s):  # the operator's pause lands here, mid-run
            raise RuntimeError("the operator never paused the run")
        entry_id = done["item"].entry_id
        escalate = decision.lstrip().upper().startswith("ESCALATE")
        arguments = {
            "entry_id": entry_id,
            "decision": "ESCALATE" if escalate else "APPROVE",
            "route_to": FIN7_APPROVERS if escalate else [],
        }
        with governed_call(session_id=session_id, agent=AGENT_NAME):
            started = time.monotonic()
            result = post(**arguments)
            done["seconds"] = time.monotonic() - started
        done["result"] = result
        return [
            ToolCallRecord(
                f"{POST_CONTROLS_DECISION}-{entry_id}", POST_CONTROLS_DECISION, arguments, result
            )
        ]

    def executor() -> None:
        try:
            item = done["item"] = work.get(timeout=timeout_s)
            with receive_handoff(
                item.handoff, agent_name=AGENT_NAME, tracer_provider=tracer_provider
            ) as handoff:
                # the span that opened the run belongs to the executor's session too (the
                # handoff starts it in a fresh context, without the planner's session)
                opened = trace.get_current_span()
                opened.set_attribute(SpanAttributes.SESSION_ID, session_id)
                opened.set_attribute(SpanAttributes.USER_ID, DEFAULT_USER_ID)
                done["handoff"] = handoff
                done["run"] = run_finance_agent(
                    openai_base_url,
                    tracer_provider,
                    session_id=session_id,
                    question=item.question,
                    act=act,
                )
        except Exception as exc:  # reported on the caller's thread
            done["error"] = exc
            decided.set()

    with CONTROLLER:
        planner = run_planner(openai_base_url, tracer_provider, work, handed_scopes=HANDED_SCOPES)
    worker = threading.Thread(target=executor, name="agentledger-demo-executor", daemon=True)
    worker.start()
    with ComplianceDesk(server_url, api_key=api_key, timeout_s=timeout_s) as desk:
        decided.wait(timeout_s)
        if "error" not in done:
            desk.control("pause", session_id, "hold postings of this session for a second review")
            held.set()
            parked = desk.wait_for(
                session_id, POST_CONTROLS_DECISION, lambda i: i["decision"] == "paused"
            )
            desk.control("resume", session_id, "second review done")
        worker.join(timeout_s)
        if "error" in done:
            raise RuntimeError(f"the executor failed: {done['error']}") from done["error"]
        if worker.is_alive() or "run" not in done:
            raise RuntimeError("the executor did not finish after the resume")
        flush_outcomes()
        intent = desk.wait_for(
            session_id,
            POST_CONTROLS_DECISION,
            lambda i: (
                i["intent_id"] == parked["intent_id"]
                and i["decision"] == "proceed"
                and i.get("outcome") is not None
            ),
        )
        controls = desk.controls(session_id)[:2]
    governed = GovernedRun(intent, controls, done["seconds"], done["result"])
    return TeamRun(planner, done["run"], done["handoff"], governed)

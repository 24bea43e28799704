"""The demo's governance step: a governed tool call, logged before it runs, parked by a pause.

An operator pauses the agent's session through the collector's ``/v1/controls``;
the agent, acting for a named controller, then calls its journal-entry lookup as
a ``@governed_tool``. The intent is stored first and answered ``paused``, so the
call waits (the agent's state untouched) until the operator resumes the session;
then the tool body runs exactly once and its outcome is recorded against the
intent. Every step goes through the same HTTP API a production agent uses.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import httpx
from openinference.instrumentation import using_attributes
from opentelemetry.sdk.trace import TracerProvider

from agentledger.demo.agent import AGENT_NAME, DEFAULT_SESSION_ID, DEFAULT_USER_ID
from agentledger.demo.documents import LOOKUP_JOURNAL_ENTRY, lookup_journal_entry
from agentledger.instrumentation.governance import (
    configure_governance,
    flush_outcomes,
    governed_call,
    governed_tool,
)
from agentledger.instrumentation.principal import acting_for

__all__ = ["CONTROLLER", "GovernedRun", "OPERATOR", "POLICY_ID", "run_governed_lookup"]

OPERATOR = "controls-operator@acme-corp.example"
POLICY_ID = "FIN-7"
CONTROLLER = acting_for(
    DEFAULT_USER_ID, name="Priya Natarajan", role="financial controller", policy=POLICY_ID
)
"""The named human the demo agent acts for (re-entrant: ``with CONTROLLER:``)."""


@dataclass(frozen=True)
class GovernedRun:
    """What the governed call did, as the collector recorded it."""

    intent: dict[str, Any]
    """The stored intent (decision ``proceed`` after the resume) with its ``outcome``."""
    controls: list[dict[str, Any]]
    """The pause and the resume, newest first."""
    parked_seconds: float
    """How long the tool call waited while the session was paused."""
    result: dict[str, Any]


def run_governed_lookup(
    server_url: str,
    tracer_provider: TracerProvider,
    *,
    session_id: str = DEFAULT_SESSION_ID,
    user_id: str = DEFAULT_USER_ID,
    entry_id: str = "JE-4471",
    api_key: str | None = None,
    timeout_s: float = 60.0,
) -> GovernedRun:
    """Pause ``session_id``, make the governed call, resume once it is parked; return the record."""
    configure_governance(
        server_url,
        api_key=api_key,
        tracer_provider=tracer_provider,
        initial_backoff_s=0.05,
        max_backoff_s=0.25,
        max_pause_s=timeout_s,
    )
    lookup = governed_tool(name=LOOKUP_JOURNAL_ENTRY, policy=POLICY_ID)(lookup_journal_entry)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    outcome: dict[str, Any] = {}

    def agent() -> None:
        try:
            with (
                CONTROLLER if user_id == DEFAULT_USER_ID else acting_for(user_id, policy=POLICY_ID),
                using_attributes(session_id=session_id, user_id=user_id),
                governed_call(session_id=session_id, agent=AGENT_NAME),
            ):
                started = time.monotonic()
                outcome["result"] = lookup(entry_id=entry_id)
                outcome["seconds"] = time.monotonic() - started
        except Exception as exc:  # reported by the caller
            outcome["error"] = exc

    with httpx.Client(base_url=server_url, headers=headers, timeout=10) as http:

        def control(action: str, reason: str) -> None:
            http.post(
                "/v1/controls",
                json={
                    "action": action,
                    "scope": "session",
                    "target": session_id,
                    "by": OPERATOR,
                    "reason": reason,
                },
            ).raise_for_status()

        control("pause", "hold postings of this session for a second review")
        worker = threading.Thread(target=agent, name="agentledger-demo-governed-agent", daemon=True)
        worker.start()
        intent = _wait_for(http, session_id, lambda i: i["decision"] == "paused", timeout_s)
        control("resume", "second review done")
        worker.join(timeout_s)
        if "error" in outcome:
            raise RuntimeError(f"the governed call failed: {outcome['error']}") from outcome[
                "error"
            ]
        if worker.is_alive() or "result" not in outcome:
            raise RuntimeError("the governed call did not finish after the resume")
        flush_outcomes()
        intent = _wait_for(
            http,
            session_id,
            lambda i: (
                i["intent_id"] == intent["intent_id"]
                and i["decision"] == "proceed"
                and i.get("outcome") is not None
            ),
            timeout_s,
        )
        controls = (
            http.get("/v1/controls", params={"all": "true"}).raise_for_status().json()["controls"]
        )
    return GovernedRun(
        intent,
        [c for c in controls if c.get("target") == session_id][:2],
        outcome["seconds"],
        outcome["result"],
    )


def _wait_for(http: httpx.Client, session_id: str, ok: Any, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        found: list[dict[str, Any]] = (
            http.get(
                "/v1/intents",
                params={"session_id": session_id, "tool_name": LOOKUP_JOURNAL_ENTRY, "limit": 10},
            )
            .raise_for_status()
            .json()
        )
        match = next((i for i in found if ok(i)), None)
        if match is not None:
            return match
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"no governed intent of session {session_id} reached the expected state: {found}"
            )
        time.sleep(0.05)

"""The demo's governance: who the agents act for, what authority reaches the executor, and the
compliance desk that pauses and resumes a run through the collector's HTTP API.

The planner acts for a named controller (``CONTROLLER``) who holds three scopes; its handoff
passes on only the two the executor needs (``HANDED_SCOPES``), and the executor's posting is a
``governed_tool`` that needs one of them (``POSTING_SCOPE``). The desk is what an operator's
script or the console sends: ``/v1/controls`` to pause and resume, ``/v1/intents`` to watch a
governed call park and finish. Every step goes through the same API a production agent uses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from agentledger.demo.agent import DEFAULT_USER_ID
from agentledger.instrumentation.principal import acting_for

__all__ = [
    "CONTROLLER",
    "HANDED_SCOPES",
    "OPERATOR",
    "POLICY_ID",
    "POSTING_SCOPE",
    "ComplianceDesk",
    "GovernedRun",
]

OPERATOR = "controls-operator@acme-corp.example"
POLICY_ID = "FIN-7"
POSTING_SCOPE = "decisions:post"
"""What the executor's governed posting needs."""
HANDED_SCOPES = ("entries:read", POSTING_SCOPE)
"""What the planner hands on: the controller's scopes without ``entries:approve``."""
CONTROLLER = acting_for(
    DEFAULT_USER_ID,
    name="Priya Natarajan",
    role="financial controller",
    policy=POLICY_ID,
    scopes=(*HANDED_SCOPES, "entries:approve"),
)
"""The named human the demo's agents act for (re-entrant: ``with CONTROLLER:``)."""


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


class ComplianceDesk:
    """The operator's side of the demo: controls sent and intents read over HTTP."""

    def __init__(
        self, server_url: str, *, api_key: str | None = None, timeout_s: float = 60.0
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=server_url, headers=headers, timeout=10)
        self.timeout_s = timeout_s

    def __enter__(self) -> ComplianceDesk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.http.close()

    def control(self, action: str, session_id: str, reason: str) -> None:
        """Pause or resume every governed call of ``session_id``."""
        self.http.post(
            "/v1/controls",
            json={
                "action": action,
                "scope": "session",
                "target": session_id,
                "by": OPERATOR,
                "reason": reason,
            },
        ).raise_for_status()

    def controls(self, session_id: str) -> list[dict[str, Any]]:
        """The controls sent for ``session_id``, newest first."""
        found = self.http.get("/v1/controls", params={"all": "true"}).raise_for_status().json()
        return [c for c in found["controls"] if c.get("target") == session_id]

    def wait_for(
        self, session_id: str, tool_name: str, ok: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        """The first intent of ``tool_name`` in ``session_id`` that ``ok`` accepts, polled until
        it appears (``RuntimeError`` after ``timeout_s``)."""
        deadline = time.monotonic() + self.timeout_s
        while True:
            found: list[dict[str, Any]] = (
                self.http.get(
                    "/v1/intents",
                    params={"session_id": session_id, "tool_name": tool_name, "limit": 10},
                )
                .raise_for_status()
                .json()
            )
            match = next((i for i in found if ok(i)), None)
            if match is not None:
                return match
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"no {tool_name} intent of session {session_id} reached the expected "
                    f"state: {found}"
                )
            time.sleep(0.05)

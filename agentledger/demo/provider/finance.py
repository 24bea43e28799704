"""The demo's script: the model behind both agents of the finance-controls demo. As the planner it
hands the journal entry named in the question to the agent that reviews entries; as that agent it
looks the entry up and then approves or escalates it under FIN-7 and FIN-12."""

from __future__ import annotations

import json
import re
from typing import Any

from agentledger.demo.documents import HAND_OFF, LOOKUP_JOURNAL_ENTRY, ROSTER
from agentledger.demo.provider.request import ProviderRequest
from agentledger.demo.provider.script import (
    Rule,
    ScriptedResponse,
    ToolCall,
    all_of,
    has_tool_result,
    last_user_contains,
    negate,
    offers_tool,
)
from agentledger.demo.provider.server import ScriptedProvider

__all__ = ["DEFAULT_RESPONSE", "FIN7_THRESHOLD", "default_script", "demo_provider"]


_ENTRY_ID = re.compile(r"\bJE-\d+\b", re.IGNORECASE)
FIN7_THRESHOLD = 1_000_000
"""FIN-7: reclassifications above this need Corporate Controller and CFO approval."""


def _plan(request: ProviderRequest) -> ScriptedResponse:
    """The planner's one turn: hand the entry named in the question to the reviewing agent."""
    found = _ENTRY_ID.search(request.last_user_text())
    entry_id = found.group(0).upper() if found else "JE-4471"
    agent = next(name for name, does in ROSTER.items() if "journal entry" in does)
    task = (
        f"Review {entry_id} against the approval policies (FIN-7, FIN-12) and post the "
        "controls decision."
    )
    return ScriptedResponse(
        tool_calls=[ToolCall(HAND_OFF, {"agent": agent, "entry_id": entry_id, "task": task})]
    )


def _request_lookup(request: ProviderRequest) -> ScriptedResponse:
    """First turn: the model asks to see the entry named in the question."""
    found = _ENTRY_ID.search(request.last_user_text())
    entry_id = found.group(0).upper() if found else "JE-4471"
    return ScriptedResponse(tool_calls=[ToolCall(LOOKUP_JOURNAL_ENTRY, {"entry_id": entry_id})])


def _decide(request: ProviderRequest) -> ScriptedResponse:
    """Second turn: the model reads the looked-up entry and decides, citing FIN-7/FIN-12."""
    results = [r for r in request.tool_results() if r.name == LOOKUP_JOURNAL_ENTRY]
    try:
        entry = json.loads(results[-1].content)
    except (ValueError, IndexError):
        entry = {}
    if not isinstance(entry, dict) or "amount" not in entry:
        entry_id = entry.get("entry_id", "the entry") if isinstance(entry, dict) else "the entry"
        return ScriptedResponse(
            text=(
                f"ESCALATE: {entry_id} could not be found in the ledger, so it cannot be "
                "checked against FIN-7. Route it to the Corporate Controller for review."
            )
        )
    amount = float(entry["amount"])
    currency = entry.get("currency", "USD")
    approver = entry.get("requested_approver") or {}
    limit = float(approver.get("approval_limit") or 0)
    who = f"{approver.get('name', 'the requested approver')} ({approver.get('role', 'approver')})"
    if amount > FIN7_THRESHOLD or amount > limit:
        text = (
            f"ESCALATE: {entry['entry_id']} reclassifies {currency} {amount:,.0f}. Under FIN-7, "
            f"reclassifications above {currency} {FIN7_THRESHOLD:,} require approval by the "
            f"Corporate Controller and the CFO, and under FIN-12 {who} may approve only up to "
            f"{currency} {limit:,.0f}. Route the entry to the Corporate Controller and the CFO "
            "with the attached reconciliation."
        )
    else:
        text = (
            f"APPROVE: {entry['entry_id']} reclassifies {currency} {amount:,.0f}, below the "
            f"FIN-7 threshold of {currency} {FIN7_THRESHOLD:,} and within the FIN-12 limit of "
            f"{who} ({currency} {limit:,.0f}); preparer and approver differ as SOX-3 requires."
        )
    return ScriptedResponse(text=text)


def default_script() -> list[Rule]:
    """Rules that play the model in the finance-controls demo.

    Order matters (first match wins): offered the planner's hand-off tool, the
    model hands the entry over; once the conversation carries the journal-entry
    lookup result the model decides; before that, a question naming a journal
    entry makes it call the lookup tool.
    """
    return [
        Rule(
            all_of(offers_tool(HAND_OFF), negate(has_tool_result(HAND_OFF))),
            _plan,
            name="hand-off",
        ),
        Rule(has_tool_result(LOOKUP_JOURNAL_ENTRY), _decide, name="decide"),
        Rule(
            all_of(last_user_contains("JE-"), offers_tool(LOOKUP_JOURNAL_ENTRY)),
            _request_lookup,
            name="lookup-entry",
        ),
    ]


DEFAULT_RESPONSE = ScriptedResponse(
    text="I can only review journal entries. Please name the entry, for example JE-4471."
)
"""What the demo model says when no rule of :func:`default_script` matches."""


def demo_provider(**kwargs: Any) -> ScriptedProvider:
    """A (not yet started) provider scripted for the finance demo; kwargs go to the constructor."""
    kwargs.setdefault("default", DEFAULT_RESPONSE)
    return ScriptedProvider(default_script(), **kwargs)

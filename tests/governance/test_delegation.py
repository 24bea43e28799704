"""Delegation is checked, not only recorded: authority flows down the chain of agents and only
narrows; a governed tool reached without it is refused before any intent is asked."""

from __future__ import annotations

from typing import Any

import pytest

from agentledger.instrumentation import (
    DelegationRefused,
    acting_for,
    as_agent,
    governed_tool,
    inject_handoff,
    receive_handoff,
)
from agentledger.instrumentation.principal import narrow
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import Governance as GOV
from tests.governance.helpers import intents

ran: list[str] = []


@governed_tool(scope="ledger.post")
def post_journal_entry(entry_id: str) -> str:
    ran.append(entry_id)
    return f"posted {entry_id}"


@pytest.fixture(autouse=True)
def _nothing_ran() -> None:
    ran.clear()


def _refused_span(spans: Any) -> Any:
    (span,) = [s for s in spans.get_finished_spans() if s.name == "post_journal_entry"]
    return span


def test_narrowing_never_widens() -> None:
    assert narrow(None, ["a"]) == ("a",)  # an unrestricted grant gives what is asked
    assert narrow(("a", "b"), None) == ("a", "b")  # asking nothing passes the grant on
    assert narrow(("a",), ["a", "b"]) == ("a",)  # asking for more gets no more
    assert narrow(("a",), []) == ()


def test_a_scope_granted_upstream_lets_the_tool_run(
    governed: Any, store: Any, tracer_provider
) -> None:
    with (
        acting_for("alice@acme.example", scopes=["ledger.read", "ledger.post"]),
        as_agent("planner"),
    ):
        carrier = inject_handoff(
            {}, to_agent="executor", scopes=["ledger.post"], tracer_provider=tracer_provider
        )
    with receive_handoff(
        carrier, agent_name="executor", tracer_provider=tracer_provider
    ) as handoff:
        assert handoff.principal is not None and handoff.principal.scopes == ("ledger.post",)
        assert post_journal_entry("JE-1") == "posted JE-1"
    assert ran == ["JE-1"]
    (intent,) = intents(store)
    assert intent["principal_id"] == "alice@acme.example"


def test_a_scope_not_granted_upstream_is_refused(
    governed: Any, store: Any, spans, tracer_provider
) -> None:
    with acting_for("alice@acme.example", scopes=["ledger.read"]), as_agent("planner"):
        # the planner asks to hand over more than alice granted: it gets no more
        carrier = inject_handoff(
            {},
            to_agent="executor",
            scopes=["ledger.read", "ledger.post"],
            tracer_provider=tracer_provider,
        )
    with receive_handoff(carrier, agent_name="executor", tracer_provider=tracer_provider):
        with pytest.raises(
            DelegationRefused,
            match="'ledger.post' was not granted by 'alice@acme.example' via planner -> executor",
        ):
            post_journal_entry("JE-2")
    assert ran == []  # fail closed: the body never ran
    assert intents(store) == []  # and nothing was asked of the collector
    span = _refused_span(spans)
    assert span.attributes[GOV.INTENT_STATUS] == "refused"
    assert "ledger.post" in span.attributes[AL.DELEGATION_REFUSED]
    assert not span.status.is_ok


def test_a_handoff_without_a_principal_delegates_nothing(
    governed: Any, spans, tracer_provider
) -> None:
    with as_agent("planner"):  # no acting_for: nobody is accountable upstream
        carrier = inject_handoff({}, to_agent="executor", tracer_provider=tracer_provider)
    with receive_handoff(carrier, agent_name="executor", tracer_provider=tracer_provider):
        with pytest.raises(DelegationRefused, match="no principal delegated"):
            post_journal_entry("JE-3")
    assert ran == []


def test_a_broken_handoff_delegates_nothing_even_inside_a_local_principal(
    governed: Any, tracer_provider
) -> None:
    with acting_for("mallory@acme.example", scopes=["ledger.post"]):
        with receive_handoff(
            {"garbage": "1"}, agent_name="executor", tracer_provider=tracer_provider
        ):
            with pytest.raises(DelegationRefused, match="carried no context"):
                post_journal_entry("JE-4")
    assert ran == []


def test_outside_any_handoff_a_restricted_principal_is_checked_too(
    governed: Any, tracer_provider
) -> None:
    with acting_for("bob@acme.example", scopes=["ledger.read"]):
        with pytest.raises(DelegationRefused, match="not granted by 'bob@acme.example'"):
            post_journal_entry("JE-5")
    assert ran == []

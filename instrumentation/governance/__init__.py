"""Logged before taken: governed tools, and runs that park while paused.

``@governed_tool`` wraps a tool function (sync or async). Before the body runs,
an intent record (tool, canonical arguments and their SHA-256, tool call id,
principal, the span that chose the call, policy, agent, session) is POSTed to
the collector's ``/v1/intents`` and must be acknowledged as durably stored. If
it is not (collector down, timeout, refused), the body does not run and
``IntentNotRecorded`` says why; ``fail_open=True`` runs the tool anyway and marks
its span ``unrecorded``. The outcome (result or exception, duration) is then
recorded against the intent by a background sender: best effort, never in the
way of the agent.

The acknowledgement also says whether the tool may run now. While a pause
holds the run (by trace, session, agent or principal), the call parks: it asks
again with the same intent id and a growing back-off, until the collector
answers ``proceed`` (the body then runs, once), the maximum wait passes
(``RunPaused``), or the wait is cancelled (``RunCancelled``: the tool's
``cancel_event``, ``cancel_paused_runs()``, or cancelling the asyncio task).
Nothing of the run's state is touched while it waits: the call simply returns
later.

Exceptions::

    GovernanceError
    ├── IntentNotRecorded   the intent was not acknowledged; the tool did not run
    ├── DelegationRefused   no authority was delegated for it; the tool did not run
    └── RunPaused           still paused after max_pause_s; the tool did not run
        └── RunCancelled    the parked call was cancelled; the tool did not run

Configuration: ``configure_governance(...)``; by default governed tools follow
``instrument()`` (its collector, API key, tracer provider and agent name), else the
environment (``AGENTLEDGER_ENDPOINT``, ``AGENTLEDGER_URL``, ``OTEL_EXPORTER_OTLP_*``,
``AGENTLEDGER_API_KEY``, ``AGENTLEDGER_AGENT_NAME``).
"""

from agentledger.instrumentation._outcomes import flush_outcomes
from agentledger.instrumentation.governance.call import _Call as _Call
from agentledger.instrumentation.governance.call import _Spec as _Spec
from agentledger.instrumentation.governance.config import _Config as _Config
from agentledger.instrumentation.governance.config import configure_governance
from agentledger.instrumentation.governance.context import _CallContext as _CallContext
from agentledger.instrumentation.governance.context import governed_call
from agentledger.instrumentation.governance.decorator import governed_tool
from agentledger.instrumentation.governance.errors import (
    DelegationRefused,
    GovernanceError,
    IntentNotRecorded,
    RunCancelled,
    RunPaused,
)
from agentledger.instrumentation.governance.parking import _Waiter as _Waiter
from agentledger.instrumentation.governance.parking import cancel_paused_runs
from agentledger.schemas.canonical import canonical_json

__all__ = [
    "DelegationRefused",
    "GovernanceError",
    "IntentNotRecorded",
    "RunCancelled",
    "RunPaused",
    "cancel_paused_runs",
    "canonical_json",
    "configure_governance",
    "flush_outcomes",
    "governed_call",
    "governed_tool",
]

"""What a governed tool raises when it did not run.

Exceptions::

    GovernanceError
    ├── IntentNotRecorded   the intent was not acknowledged; the tool did not run
    ├── DelegationRefused   no authority was delegated for it; the tool did not run
    └── RunPaused           still paused after max_pause_s; the tool did not run
        └── RunCancelled    the parked call was cancelled; the tool did not run
"""

from __future__ import annotations


class GovernanceError(Exception):
    """A governed tool did not run."""

    def __init__(self, message: str, *, tool: str, intent_id: str | None = None) -> None:
        super().__init__(message)
        self.tool = tool
        self.intent_id = intent_id


class IntentNotRecorded(GovernanceError):
    """The collector did not acknowledge the intent as stored, so the tool did not run."""


class DelegationRefused(GovernanceError):
    """The work reached this agent without the authority the tool needs (a broken or anonymous
    handoff, or a scope the principal did not grant upstream), so the tool did not run."""


class RunPaused(GovernanceError):
    """The run stayed paused longer than the tool's maximum wait; the tool did not run."""

    def __init__(
        self,
        message: str,
        *,
        tool: str,
        intent_id: str | None = None,
        control_id: str | None = None,
        waited_s: float = 0.0,
    ) -> None:
        super().__init__(message, tool=tool, intent_id=intent_id)
        self.control_id = control_id
        self.waited_s = waited_s


class RunCancelled(RunPaused):
    """The parked call was cancelled while it waited; the tool did not run."""

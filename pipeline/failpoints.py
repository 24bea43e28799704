"""Named failure points for crash tests: ``AGENTLEDGER_FAILPOINT=<name>`` kills the process
(SIGKILL, as ``kill -9`` would) when execution reaches that point. Unset in production."""

from __future__ import annotations

import os
import signal

__all__ = ["failpoint", "FAILPOINT_ENV"]

FAILPOINT_ENV = "AGENTLEDGER_FAILPOINT"


def failpoint(name: str) -> None:
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)

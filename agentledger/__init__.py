"""AgentLedger: the flight recorder for AI agents.

Importing this package has no side effects and pulls in nothing heavy: the
instrumentation that ships into agents stays light, and the server side
(collector, pipeline, stores) is imported only where it is used. The agent-side
API is re-exported here and loaded on first use::

    import agentledger
    agentledger.instrument(service_name="finance-agent")
    with agentledger.acting_for("controller@acme.example", role="controller"):
        ...
"""

from __future__ import annotations

import importlib as _importlib
from typing import Any as _Any

_EXPORTS = {
    "instrument": "agentledger.instrumentation.lifecycle",
    "uninstrument": "agentledger.instrumentation.lifecycle",
    "flush": "agentledger.instrumentation.lifecycle",
    "acting_for": "agentledger.instrumentation.principal",
    "current_principal": "agentledger.instrumentation.principal",
    "as_agent": "agentledger.instrumentation.processors",
    "retrieval": "agentledger.instrumentation.helpers",
    "llm_call": "agentledger.instrumentation.helpers",
    "tool": "agentledger.instrumentation.helpers",
    "ModelPinMismatch": "agentledger.instrumentation.pinning",
    "governed_tool": "agentledger.instrumentation.governance",
    "configure_governance": "agentledger.instrumentation.governance",
    "IntentNotRecorded": "agentledger.instrumentation.governance",
    "RunPaused": "agentledger.instrumentation.governance",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> _Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentledger' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

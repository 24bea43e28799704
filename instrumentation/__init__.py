"""Drop-in OpenTelemetry instrumentation for agents (ships into users' processes; stays light).

``instrument()`` records an existing agent; ``acting_for`` names who it acts
for; ``retrieval``/``llm_call``/``tool`` record code no framework instruments.
Names load on first use, so importing this package costs nothing until one is
used. Imports nothing from ``agentledger.collector`` or ``agentledger.pipeline``.
"""

from __future__ import annotations

import importlib as _importlib
from typing import Any as _Any

_EXPORTS = {
    "instrument": "lifecycle",
    "uninstrument": "lifecycle",
    "instrumentation": "lifecycle",
    "flush": "lifecycle",
    "Instrumentation": "lifecycle",
    "acting_for": "principal",
    "current_principal": "principal",
    "Principal": "principal",
    "as_agent": "processors",
    "current_agent": "processors",
    "AttributionProcessor": "processors",
    "inject_handoff": "handoff",
    "receive_handoff": "handoff",
    "Handoff": "handoff",
    "current_chain": "handoff",
    "delegation_refusal": "handoff",
    "retrieval": "helpers",
    "llm_call": "helpers",
    "tool": "helpers",
    "CaptureConfig": "capture",
    "RedactionPolicy": "redaction",
    "Redactor": "redaction",
    "EdgeExporter": "exporter",
    "SpanRewriter": "exporter",
    "ModelPinMismatch": "pinning",
    "ModelPins": "pinning",
    # part B (governance/): logged-before-taken tool calls, pause and resume
    "governed_tool": "governance",
    "governed_call": "governance",
    "configure_governance": "governance",
    "GovernanceError": "governance",
    "DelegationRefused": "governance",
    "IntentNotRecorded": "governance",
    "RunPaused": "governance",
    "RunCancelled": "governance",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> _Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'agentledger.instrumentation' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"agentledger.instrumentation.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__

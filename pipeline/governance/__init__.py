"""Governance: intents of governed tool calls, their outcomes, and run controls (pause, resume).

The collector answers intents through ``GovernanceService`` (stored before the
answer); in Kafka mode the pipeline stores the intents topic with ``IntentConsumer``.
"""

from agentledger.pipeline.governance.base import (
    GovernanceRejected,
    GovernanceUnavailable,
    RecordLog,
    RecordLogError,
)
from agentledger.pipeline.governance.controls import ControlBook
from agentledger.pipeline.governance.memory import MemoryLog
from agentledger.pipeline.governance.records import (
    ControlAction,
    ControlIn,
    ControlOut,
    ControlScope,
    Decision,
    IntentAck,
    IntentIn,
    OutcomeIn,
    OutcomeStatus,
    RecordType,
)
from agentledger.pipeline.governance.service import GovernanceService
from agentledger.pipeline.governance.settings import GovernanceSettings

__all__ = [
    "RecordLogError",
    "GovernanceRejected",
    "GovernanceUnavailable",
    "RecordLog",
    "MemoryLog",
    "ControlBook",
    "ControlAction",
    "ControlIn",
    "ControlOut",
    "ControlScope",
    "Decision",
    "IntentAck",
    "IntentIn",
    "OutcomeIn",
    "OutcomeStatus",
    "RecordType",
    "GovernanceService",
    "GovernanceSettings",
]

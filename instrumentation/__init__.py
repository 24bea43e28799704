"""Drop-in OpenTelemetry instrumentation for agents (ships into users' processes; stays light).

Imports nothing from ``agentledger.collector`` or ``agentledger.pipeline``.
"""

__all__: list[str] = []

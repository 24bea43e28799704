"""AgentLedger: the flight recorder for AI agents.

Importing this package has no side effects and pulls in nothing heavy: the
instrumentation that ships into agents stays light, and the server side
(collector, pipeline, stores) is imported only where it is used.
"""

__all__: list[str] = []

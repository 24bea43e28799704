"""The OTLP/HTTP collector (FastAPI): authenticates, validates, hands off to a sink."""

from agentledger.collector.main import create_app
from agentledger.collector.settings import CollectorSettings

__all__ = ["create_app", "CollectorSettings"]

"""Read-only, tenant-scoped, bounded SQL for analysts on the live embedded store.

``service`` runs a query (for the ClickHouse-compatible endpoint, ``agentledger sql`` and the
console); ``guard`` decides what a query may do with ClickHouse's own parser; ``tenants`` keeps each
tenant's database of views and its read-only session.
"""

from agentledger.pipeline.services.sql.examples import EXAMPLES, Example
from agentledger.pipeline.services.sql.guard import SYSTEM_TABLES, SqlError
from agentledger.pipeline.services.sql.service import (
    OUTPUT_FORMATS,
    SqlAnswer,
    SqlService,
    SqlUnavailable,
)
from agentledger.pipeline.services.sql.tenants import EXPOSED, Limits, database_for

__all__ = [
    "EXAMPLES",
    "EXPOSED",
    "Example",
    "OUTPUT_FORMATS",
    "SYSTEM_TABLES",
    "Limits",
    "SqlAnswer",
    "SqlError",
    "SqlService",
    "SqlUnavailable",
    "database_for",
]

"""Who may do what: the roles an API key carries and the permissions each role grants.

A route needs one permission (``collector/policy.py`` maps every route to one); a key's role
grants a set of them. The roles nest only where the README's table says so: ``operator`` and
``auditor`` each read what a ``reader`` reads, and add one power each; ``ingest`` reads nothing
(a leaked agent key exposes no prompt); ``admin`` holds every permission, keys, unredacted exports,
erasure and retention included.

Like all of ``schemas``, this module imports nothing else of AgentLedger, so the collector, the
pipeline's key book and the CLI share one definition.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final

__all__ = ["GRANTS", "Permission", "Role", "roles_granting"]


class Role(str, enum.Enum):
    """The role of an API key; chosen when the key is created and never changed."""

    INGEST = "ingest"
    """An agent: sends spans, intents, outcomes and feedback; reads nothing."""
    READER = "reader"
    """Reads traces, spans, contents, usage, patterns, anomalies, feedback and datasets."""
    OPERATOR = "operator"
    """A reader who may also pause and resume runs and run anomaly detection."""
    AUDITOR = "auditor"
    """A reader who may also read audit reports, ledger proofs, replays and the access log."""
    ADMIN = "admin"
    """Everything: keys, unredacted exports, erasure and retention too."""


class Permission(str, enum.Enum):
    """What a route needs; ``PUBLIC`` routes (health, the OpenAPI document) need no key."""

    PUBLIC = "public"
    INGEST = "ingest"
    READ = "read"
    OPERATE = "operate"
    AUDIT = "audit"
    ADMIN = "admin"
    METRICS = "metrics"
    """Scrape a process's Prometheus counters (volumes and latencies; no tenant, no content)."""


GRANTS: Final[Mapping[Role, frozenset[Permission]]] = {
    Role.INGEST: frozenset({Permission.INGEST}),
    Role.READER: frozenset({Permission.READ, Permission.METRICS}),
    Role.OPERATOR: frozenset({Permission.READ, Permission.OPERATE, Permission.METRICS}),
    Role.AUDITOR: frozenset({Permission.READ, Permission.AUDIT, Permission.METRICS}),
    Role.ADMIN: frozenset(Permission) - {Permission.PUBLIC},
}
"""The permissions each role holds (``PUBLIC`` needs none)."""


def roles_granting(permission: Permission) -> list[Role]:
    """The roles that hold ``permission``, narrowest first: what a 403 tells the caller to use."""
    return [role for role in Role if permission in GRANTS[role]]

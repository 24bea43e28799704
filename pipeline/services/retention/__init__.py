"""Retention settings and legal holds: written as insert-only rows (migration 0018), read as the
latest row per key. The pruning itself is the ``retention`` job (``pipeline.derive.retention``),
which reads the same tables.

A hold names a trace id, a session id or a principal id: what an investigation or a litigation
hold is about. While it is active, retention prunes none of the spans it covers; releasing it (a
new row) lets the next pass prune them. Erasure is not stopped by a hold: an erasure is a legal
obligation of its own, and the admin asking for it decides.
"""

from __future__ import annotations

import secrets
import time
from datetime import datetime
from typing import Any

import pyarrow as pa

from agentledger.pipeline.derive.retention import (
    HOLD_COLUMNS,
    HOLDS_TABLE,
    POLICIES_TABLE,
    prune,
    retention_days,
)
from agentledger.pipeline.store import Store
from agentledger.schemas.read.erasures import HoldList, LegalHold, RetentionPass, RetentionPolicy
from agentledger.schemas.records import rfc3339

__all__ = [
    "HoldNotFound",
    "add_hold",
    "list_holds",
    "release_hold",
    "retention_policy",
    "run_retention",
    "set_retention",
]

MAX_DAYS = 36_500
"""A hundred years: anything longer is a typo, not a policy."""

_POLICY = pa.schema(
    [
        ("tenant", pa.string()),
        ("days", pa.uint32()),
        ("set_at", pa.timestamp("us", tz="UTC")),
        ("actor", pa.string()),
    ]
)
_HOLD = pa.schema(
    [
        ("tenant", pa.string()),
        ("hold_id", pa.string()),
        ("scope", pa.string()),
        ("target", pa.string()),
        ("active", pa.bool_()),
        ("reason", pa.string()),
        ("at", pa.timestamp("us", tz="UTC")),
        ("actor", pa.string()),
    ]
)


class HoldNotFound(LookupError):
    """No hold of that id in the tenant."""


def _now_us() -> int:
    return time.time_ns() // 1000


def set_retention(store: Store, tenant: str, days: int, *, actor: str) -> RetentionPolicy:
    """Set the tenant's retention (0 keeps forever); raises ValueError outside 0..MAX_DAYS."""
    if not 0 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 0 (keep forever) and {MAX_DAYS}, not {days}")
    at = _now_us()
    row = {"tenant": [tenant], "days": [days], "set_at": [at], "actor": [actor]}
    store.insert_arrow(POLICIES_TABLE, pa.table(row, schema=_POLICY), dedup_token=None)
    return RetentionPolicy(tenant=tenant, days=days, set_at=rfc3339(at * 1000), set_by=actor)


def retention_policy(store: Store, tenant: str) -> RetentionPolicy:
    """The tenant's retention as it stands (days 0 when never set)."""
    rows = store.query_rows(
        f"SELECT argMax(days, set_at) AS days, max(set_at) AS at, argMax(actor, set_at) AS actor "
        f"FROM {POLICIES_TABLE} WHERE tenant = {{t:String}} HAVING count() > 0",
        {"t": tenant},
    )
    if not rows:
        return RetentionPolicy(tenant=tenant, days=0)
    r = rows[0]
    return RetentionPolicy(
        tenant=tenant, days=int(r["days"]), set_at=rfc3339(r["at"]), set_by=str(r["actor"])
    )


def _hold_row(hold: LegalHold) -> pa.Table:
    fields: dict[str, Any] = hold.model_dump()
    fields["at"] = int(datetime.fromisoformat(hold.at.replace("Z", "+00:00")).timestamp() * 1e6)
    return pa.table({k: [fields[k]] for k in _HOLD.names}, schema=_HOLD)


def add_hold(
    store: Store, tenant: str, scope: str, target: str, reason: str, *, actor: str
) -> LegalHold:
    """Place a hold on a trace, session or principal; raises ValueError for another scope, an
    empty target or an empty reason."""
    if scope not in HOLD_COLUMNS:
        raise ValueError(f"a hold is on one of {', '.join(HOLD_COLUMNS)}, not {scope!r}")
    if not target.strip():
        raise ValueError(f"a {scope} hold needs the {scope} id it holds")
    if not reason.strip():
        raise ValueError("a hold needs a reason (the matter it is for)")
    hold = LegalHold(
        hold_id=secrets.token_hex(16),
        tenant=tenant,
        scope=scope,
        target=target,
        active=True,
        reason=reason.strip(),
        at=rfc3339(_now_us() * 1000),
        actor=actor,
    )
    store.insert_arrow(HOLDS_TABLE, _hold_row(hold))
    return hold


def list_holds(store: Store, tenant: str, *, released: bool = False) -> HoldList:
    """The tenant's holds as they stand; ``released``: the released ones too."""
    rows = store.query_rows(
        "SELECT hold_id, argMax(scope, at) AS scope, argMax(target, at) AS target, "
        "argMax(active, at) AS active, argMax(reason, at) AS reason, max(at) AS latest, "
        f"argMax(actor, at) AS actor FROM {HOLDS_TABLE} WHERE tenant = {{t:String}} "
        "GROUP BY hold_id ORDER BY latest",
        {"t": tenant},
    )
    holds = [
        LegalHold(
            hold_id=str(r["hold_id"]),
            tenant=tenant,
            scope=str(r["scope"]),
            target=str(r["target"]),
            active=bool(r["active"]),
            reason=str(r["reason"]),
            at=rfc3339(r["latest"]),
            actor=str(r["actor"]),
        )
        for r in rows
    ]
    return HoldList(holds=[h for h in holds if released or h.active])


def release_hold(store: Store, tenant: str, hold_id: str, *, actor: str) -> LegalHold:
    """Release an active hold (a new row; the placing row stays); raises HoldNotFound."""
    found = [h for h in list_holds(store, tenant).holds if h.hold_id == hold_id]
    if not found:
        raise HoldNotFound(f"no active hold {hold_id!r} in tenant {tenant!r}")
    released = found[0].model_copy(
        update={"active": False, "at": rfc3339(_now_us() * 1000), "actor": actor}
    )
    store.insert_arrow(HOLDS_TABLE, _hold_row(released))
    return released


def run_retention(store: Store, now: datetime, tenant: str | None = None) -> list[RetentionPass]:
    """One retention pass now (what the background job does), over one tenant or all."""
    days = retention_days(store)
    tenants = [tenant] if tenant is not None else sorted(days)
    return [RetentionPass.model_validate(prune(store, t, days.get(t, 0), now)) for t in tenants]

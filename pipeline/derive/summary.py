"""A usage-and-anomalies summary of a time range: what the demo prints after its run.

One call: bring the rollup up to date, run a detection pass for the tenant,
and gather totals, the top models, principals and tools, and the anomalies
whose window overlaps the range.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from agentledger.pipeline.derive.anomalies import AnomalyDetectionJob, list_anomalies
from agentledger.pipeline.derive.settings import JobSettings
from agentledger.pipeline.derive.usage import UsageQuery, UsageRollupJob, usage_report, usage_totals
from agentledger.pipeline.store import Store

__all__ = ["usage_summary"]


def usage_summary(
    store: Store,
    tenant: str,
    start: datetime,
    end: datetime,
    *,
    detect: bool = True,
    settings: JobSettings | None = None,
    top: int = 5,
) -> dict[str, Any]:
    """Totals, top models / principals / tools, and anomalies over [start, end)."""
    now = datetime.now(timezone.utc)
    if detect:
        AnomalyDetectionJob(settings or JobSettings(), tenant=tenant).run(store, max(end, now))
    else:
        UsageRollupJob().run(store, now)
    by = {
        "models": usage_report(
            store,
            tenant,
            UsageQuery(start, end, ("provider", "model"), filters={"kind": "LLM"}, top=top),
        ),
        "principals": usage_report(store, tenant, UsageQuery(start, end, ("principal",), top=top)),
        "tools": usage_report(
            store,
            tenant,
            UsageQuery(start, end, ("tool",), filters={"kind": "TOOL"}, order_by="calls", top=top),
        ),
    }
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "totals": usage_totals(store, tenant, start, end),
        **by,
        "anomalies": list_anomalies(store, tenant, since=start, limit=50),
    }

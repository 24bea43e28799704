"""Sensitive-data egress: LLM and embedding inputs holding PII or secrets sent to an outside provider.

Content is matched by ``sensitive.py`` after a cheap SQL prefilter; providers
listed in ``internal_providers`` (self-hosted models) are not outside.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agentledger.pipeline.derive.sensitive import SQL_PREFILTER, detect_content
from agentledger.pipeline.derive.signals import Anomaly, Context, Found, utc
from agentledger.schemas.analytics import AnomalyType

__all__ = ["sensitive_egress"]

_EGRESS_SPANS = """
    tenant = {tenant:String} AND kind IN ('LLM', 'EMBEDDING') AND provider != ''
    AND lower(provider) NOT IN {internal:Array(String)}
    AND start_time >= toDateTime64({w0:Int64}, 9, 'UTC') AND start_time < toDateTime64({now:Int64}, 9, 'UTC')
"""
_EGRESS_CANDIDATES = f"""
SELECT hash, any(content) AS body FROM contents
WHERE tenant = {{tenant:String}} AND hash IN (SELECT input_hash FROM spans WHERE {_EGRESS_SPANS} AND input_hash != '')
  AND match(content, {{prefilter:String}})
GROUP BY hash
"""
_EGRESS_PREVIEWS = f"""
SELECT DISTINCT input_preview AS content FROM spans
WHERE {_EGRESS_SPANS} AND input_hash = '' AND match(input_preview, {{prefilter:String}})
"""
_EGRESS_HITS = f"""
SELECT provider, toUInt32(toStartOfHour(start_time)) AS h, if(input_hash != '', input_hash, input_preview) AS ref,
       uniqExact(span_id) AS spans, groupUniqArray(3)(trace_id) AS ex
FROM spans
WHERE {_EGRESS_SPANS} AND ref IN {{refs:Array(String)}}
GROUP BY provider, h, ref
"""


def sensitive_egress(ctx: Context) -> Found:
    """LLM/embedding inputs holding PII or secrets sent to an external provider, per provider, kind, hour."""
    found = Found()
    params = ctx.params(
        internal=sorted(ctx.settings.internal_provider_set), prefilter=SQL_PREFILTER
    )
    findings: dict[str, list[Any]] = {}
    for r in ctx.store.query_rows(_EGRESS_CANDIDATES, params):
        hits = detect_content(r["body"])
        if hits:
            findings[r["hash"]] = hits
    for r in ctx.store.query_rows(_EGRESS_PREVIEWS, params):
        hits = detect_content(r["content"])
        if hits:
            findings[r["content"]] = hits
    found.tests = int(
        ctx.store.query_scalar(f"SELECT count() FROM spans WHERE {_EGRESS_SPANS}", params) or 0
    )
    if not findings:
        return found
    groups: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in ctx.store.query_rows(_EGRESS_HITS, {**params, "refs": sorted(findings)}):
        for kind in sorted({f.kind for f in findings[r["ref"]]}):
            g = groups.setdefault(
                (r["provider"], r["h"], kind), {"spans": 0, "ex": set(), "masked": set()}
            )
            g["spans"] += r["spans"]
            g["ex"].update(r["ex"])
            g["masked"].update(f.masked for f in findings[r["ref"]] if f.kind == kind)
    for (provider, h, kind), g in sorted(groups.items()):
        start = utc(h)
        masked = sorted(g["masked"])
        found.anomalies.append(
            Anomaly(
                ctx.tenant,
                AnomalyType.SENSITIVE_EGRESS.value,
                "spans",
                {"provider": provider, "detector": kind},
                start,
                start + timedelta(hours=1),
                float(g["spans"]),
                0.0,
                float(g["spans"]),
                sorted(g["ex"])[:5],
                f"{g['spans']} spans sent {kind} data to {provider} ({len(masked)} distinct values, e.g. "
                f"{', '.join(masked[:3])}): redact these inputs or route the agent to an internal model.",
            )
        )
    return found

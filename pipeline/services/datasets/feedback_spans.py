"""Feedback carried on spans: evaluation and annotation attributes, GenAI evaluation events.

``annotation.<name>.score``, ``evaluation.<name>.label``, ``eval.<name>.explanation``... and
OpenTelemetry GenAI ``gen_ai.evaluation.result`` span events become feedback records with ids
derived from span and name, so reading the same spans again stores nothing new.
"""

from __future__ import annotations

import hashlib
import logging
import math
from datetime import datetime, timezone
from typing import Any, Final

import orjson

from agentledger.pipeline.services.datasets.feedback_model import FeedbackRecord, write_feedback
from agentledger.pipeline.store import Store
from agentledger.schemas.attributes import Evaluation as EV
from agentledger.schemas.records import Actor

__all__ = ["feedback_from_spans"]

log = logging.getLogger(__name__)


_PREFIXES: Final = (EV.ANNOTATION_PREFIX, EV.EVALUATION_PREFIX, EV.EVAL_PREFIX)
_SUFFIXES: Final = (EV.SCORE, EV.LABEL, EV.EXPLANATION, EV.ANNOTATOR_KIND, EV.ANNOTATOR)


def _parse_attributes(attrs: dict[str, str]) -> dict[tuple[str, str], dict[str, str]]:
    """(prefix, name) -> {suffix: value} from flattened evaluation attributes."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for key, value in attrs.items():
        prefix = next((p for p in _PREFIXES if key.startswith(p)), None)
        if prefix is None:
            continue
        rest = key[len(prefix) :]
        name, _, suffix = rest.rpartition(".")
        if suffix not in _SUFFIXES or not name:
            name, suffix = rest, EV.SCORE if _float(value) is not None else EV.LABEL
        out.setdefault((prefix, name), {})[suffix] = value
    return out


def _float(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _span_records(row: dict[str, Any], refs: dict[str, str]) -> list[FeedbackRecord]:
    tenant, trace_id, span_id = row["tenant"], row["trace_id"], row["span_id"]
    created = row["ingest_time"]
    attrs = {**dict(row["attrs"]), **{k: refs.get(h, "") for k, h in row["refs"]}}
    records = []
    for (prefix, name), values in _parse_attributes(attrs).items():
        score = _float(values.get(EV.SCORE))
        label = values.get(EV.LABEL, "")
        comment = values.get(EV.EXPLANATION, "")
        if score is None and not label and not comment:
            continue
        kind = values.get(EV.ANNOTATOR_KIND, "").upper()
        kind = (
            kind
            if kind in ("HUMAN", "LLM", "CODE")
            else ("HUMAN" if prefix == EV.ANNOTATION_PREFIX else "LLM")
        )
        records.append(
            FeedbackRecord(
                tenant=tenant,
                trace_id=trace_id,
                span_id=span_id,
                name=name,
                feedback_id=hashlib.sha256(
                    f"{tenant}\x1f{span_id}\x1f{prefix}{name}".encode()
                ).hexdigest(),
                score=score,
                label=label,
                comment=comment,
                annotator=values.get(EV.ANNOTATOR, ""),
                annotator_kind=kind,
                source="span_attribute",
                created_at=created,
            )
        )
    if row["events"]:
        try:
            events = orjson.loads(row["events"])
        except orjson.JSONDecodeError:
            events = []
        for i, ev in enumerate(events if isinstance(events, list) else []):
            if not isinstance(ev, dict) or ev.get("name") != EV.GENAI_EVENT:
                continue
            ea = ev.get("attributes") or {}
            name = str(ea.get(EV.GENAI_NAME) or "evaluation")
            score = _float(ea.get(EV.GENAI_SCORE_VALUE))
            label = str(ea.get(EV.GENAI_SCORE_LABEL) or "")
            comment = str(ea.get(EV.GENAI_EXPLANATION) or "")
            if score is None and not label and not comment:
                continue
            records.append(
                FeedbackRecord(
                    tenant=tenant,
                    trace_id=trace_id,
                    span_id=span_id,
                    name=name,
                    feedback_id=hashlib.sha256(
                        f"{tenant}\x1f{span_id}\x1fevent{i}\x1f{name}".encode()
                    ).hexdigest(),
                    score=score,
                    label=label,
                    comment=comment,
                    annotator_kind="LLM",
                    source="span_event",
                    created_at=created,
                )
            )
    return records


def feedback_from_spans(
    store: Store, since: datetime | None = None, *, tenant: str | None = None, page_size: int = 5000
) -> tuple[int, datetime | None]:
    """Ingest evaluation/annotation attributes and GenAI evaluation events of spans stored since
    ``since`` (ingest time) as feedback. Idempotent (ids derive from span and name).

    Returns (feedback rows written, newest ingest time seen): pass the latter as
    ``since`` next time to continue where this run stopped.
    """
    keys_cond = " OR ".join(f"startsWith(k, '{p}')" for p in _PREFIXES)
    where = [
        (
            f"(arrayExists(k -> {keys_cond}, mapKeys(attributes)) "
            f"OR arrayExists(k -> {keys_cond}, mapKeys(attribute_refs)) "
            f"OR position(events, '{EV.GENAI_EVENT}') > 0)"
        )
    ]
    params: dict[str, Any] = {"limit": page_size}
    if tenant is not None:
        where.append("tenant = {tenant:String}")
        params["tenant"] = tenant
    if since is not None:
        where.append("ingest_time >= {since:DateTime64(3, 'UTC')}")
        params["since"] = since.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    written = 0
    newest: datetime | None = None
    last: tuple[Any, ...] | None = None
    while True:
        cond = list(where)
        if last is not None:
            cond.append(
                "(ingest_time, tenant, span_id) > ({lt:DateTime64(3, 'UTC')}, {ltn:String}, {ls:String})"
            )
            params.update(lt=last[0].strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], ltn=last[1], ls=last[2])
        rows = store.query_rows(
            f"""SELECT tenant, trace_id, span_id, ingest_time,
                   mapFilter((k, v) -> {keys_cond}, attributes) AS attrs,
                   mapFilter((k, v) -> {keys_cond}, attribute_refs) AS refs,
                   if(position(events, '{EV.GENAI_EVENT}') > 0, events, '') AS events
            FROM spans WHERE {" AND ".join(cond)}
            ORDER BY ingest_time, tenant, span_id LIMIT {{limit:UInt32}}""",
            params,
        )
        if not rows:
            break
        ref_hashes = [h for r in rows for _, h in r["refs"]]
        contents: dict[str, str] = {}
        if ref_hashes:
            for r in store.query_rows(
                "SELECT hash, any(content) AS content FROM contents WHERE hash IN "
                "(SELECT arrayJoin({h:Array(String)})) GROUP BY hash",
                {"h": sorted(set(ref_hashes))},
            ):
                contents[r["hash"]] = r["content"]
        records = [rec for r in rows for rec in _span_records(r, contents)]
        if records:
            first, final = rows[0], rows[-1]
            write_feedback(
                store,
                records,
                dedup_token=f"span-feedback-{first['tenant']}-{first['span_id']}-"
                f"{final['span_id']}-{len(records)}",
                actor=Actor.PIPELINE,
            )
            written += len(records)
        last = (rows[-1]["ingest_time"], rows[-1]["tenant"], rows[-1]["span_id"])
        newest = rows[-1]["ingest_time"]
        if len(rows) < page_size:
            break
    if written:
        log.info("ingested %d feedback rows from span attributes and events", written)
    return written, newest

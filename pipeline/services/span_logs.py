"""The read-time join of log records to their spans.

A model call instrumented by OpenTelemetry's own GenAI instrumentations records its prompts and
completions as log events, not on its span. History is insert-only and either may arrive first,
so the two are joined where calls are read (``recorded.Trace`` for audit and replay, the trace
detail of ``queries``): a span that recorded no input (or no output) messages of its own and has
GenAI events gets the canonical messages built from them (``normalize.logs.genai_messages``), under
the content hash of their canonical form, exactly as if the normalizer had found them on the span.
Every other log record is listed on its span in the trace detail.

Rows are read without ``FINAL`` and deduplicated by ``log_id`` here (a record delivered twice is
the same row twice), then ordered as emitted: event time, then the request and position it came
in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from agentledger.pipeline.normalize.fields import parse_json
from agentledger.pipeline.normalize.logs import LogEvent, genai_messages, is_genai_event
from agentledger.pipeline.store import Store
from agentledger.schemas.canonical import canonical_json, content_hash
from agentledger.schemas.contents import ContentKind

__all__ = ["Fetch", "join_messages", "log_events", "span_logs"]

Fetch = Callable[[Iterable[str]], dict[str, dict[str, Any]]]
"""Content records by hash (``hash``, ``kind``, ``content``) for the hashes asked, as stored."""

_PREVIEW = 200

_COLUMNS = """
    trace_id, span_id, log_id, toUnixTimestamp64Nano(time) AS time_ns,
    toUnixTimestamp64Nano(observed_time) AS observed_ns, severity_number, severity_text,
    event_name, body, body_hash, attributes, attribute_refs, scope_name, source_offset, seq
"""


def span_logs(
    store: Store, tenant: str, trace_ids: Iterable[str], span_ids: Iterable[str] | None = None
) -> dict[str, list[dict[str, Any]]]:
    """The log records of the traces (of the spans, when given), by span id, each span's in the
    order they were emitted; one query. Records with no span id are left out."""
    traces = sorted({t for t in trace_ids if t})
    if not traces:
        return {}
    sql = (
        f"SELECT {_COLUMNS} FROM logs WHERE tenant = {{tenant:String}} "
        "AND trace_id IN {traces:Array(String)} AND span_id != ''"
    )
    params: dict[str, Any] = {"tenant": tenant, "traces": traces}
    if span_ids is not None:
        sql += " AND span_id IN {spans:Array(String)}"
        params["spans"] = sorted(set(span_ids))
    seen: set[str] = set()
    out: dict[str, list[dict[str, Any]]] = {}
    for row in store.query_rows(sql, params):
        if row["log_id"] in seen:
            continue
        seen.add(row["log_id"])
        row["attributes"] = dict(row["attributes"])
        row["attribute_refs"] = dict(row["attribute_refs"])
        out.setdefault(row["span_id"], []).append(row)
    for rows in out.values():
        rows.sort(key=lambda r: (r["time_ns"], r["source_offset"], r["seq"]))
    return out


def _stored(record: dict[str, Any] | None) -> Any:
    """A content record's value: text as it is, anything else parsed from canonical JSON."""
    if record is None or record.get("content") is None:
        return None
    if record.get("kind") == ContentKind.TEXT.value:
        return record["content"]
    parsed = parse_json(record["content"])
    return record["content"] if parsed is None else parsed


def log_events(rows: list[dict[str, Any]], fetch: Fetch) -> list[LogEvent]:
    """The GenAI events among ``rows`` as the message builder reads them, their large bodies and
    attribute values fetched from ``contents`` (one call of ``fetch``)."""
    genai = [r for r in rows if is_genai_event(r["event_name"])]
    refs = [r["body_hash"] for r in genai if r["body_hash"]]
    refs += [h for r in genai for h in r["attribute_refs"].values()]
    found = fetch(refs) if refs else {}
    events = []
    for r in genai:
        body = _stored(found.get(r["body_hash"])) if r["body_hash"] else parse_json(r["body"])
        attrs: dict[str, Any] = dict(r["attributes"])
        for key, h in r["attribute_refs"].items():
            record = found.get(h)
            attrs[key] = record.get("content") if record else None
        events.append(LogEvent(r["event_name"], body, attrs))
    return events


def _preview(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        content = m.get("content")
        if isinstance(content, str) and content:
            return content[:_PREVIEW]
    return ""


def join_messages(
    spans: Iterable[dict[str, Any]], logs: dict[str, list[dict[str, Any]]], fetch: Fetch
) -> dict[str, dict[str, Any]]:
    """Give each span without input (output) messages of its own those its GenAI log events
    carry: ``input_hash``/``output_hash`` (and the previews, where the row has them) are set on
    the span dicts in place. Returns the content records of the messages built, by hash, as
    ``contents`` holds them (``hash``, ``kind``, ``content``), for the reader to use without a
    store round trip."""
    made: dict[str, dict[str, Any]] = {}
    for span in spans:
        rows = logs.get(span["span_id"])
        if not rows or (span.get("input_hash") and span.get("output_hash")):
            continue
        inputs, outputs = genai_messages(log_events(rows, fetch))
        for side, messages in (("input", inputs), ("output", outputs)):
            if messages is None or span.get(f"{side}_hash"):
                continue
            text = canonical_json(messages)
            h = content_hash(text)
            made[h] = {"hash": h, "kind": ContentKind.MESSAGES.value, "content": text}
            span[f"{side}_hash"] = h
            if f"{side}_preview" in span and not span[f"{side}_preview"]:
                span[f"{side}_preview"] = _preview(messages)
    return made

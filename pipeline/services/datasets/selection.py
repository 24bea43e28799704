"""Reading the spans a dataset selects (``filters.py``) from the store, in pages.

Reading streams: pages follow the table's sorting key
(day, trace, span) with keyset pagination, so each page is a range read that
costs the same on the first page and the thousandth, and memory holds one page
(and the next, fetched while the exporter works on this one).

Pages are read without ``FINAL``: in sorting-key order the stored copies of a
re-delivered span are adjacent, and the reader keeps the first. Contents are
looked up per page with one ``IN`` over the page's hashes; the store also
tells, by the redactor's gate patterns (Vectorscan ``multiMatchAllIndices``,
else one RE2 ``match`` each), which presets could change each content, so the
exporter only runs those, on those contents.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

import pyarrow as pa

from agentledger.pipeline.services.datasets.feedback import FEEDBACK_VIEW, effective_score_sql
from agentledger.pipeline.services.datasets.filters import (
    ExportFilters,
    FeedbackFilter,
    _membership,
    _sample_condition,
    _sampled_span_conditions,
    feedback_condition,
    span_conditions,
)
from agentledger.pipeline.services.datasets.formats import TRUNCATED_KEY
from agentledger.pipeline.store import Store, StoreRejected

__all__ = [
    "ExportFilters",
    "FeedbackFilter",
    "Page",
    "PreferencePages",
    "SpanPages",
    "TracePages",
    "count_candidates",
    "feedback_condition",
    "span_conditions",
]


@dataclass
class Page:
    """One page of rows (Arrow) and the contents they reference: hash -> (text, mask of the
    redaction presets that may apply to it)."""

    rows: pa.Table
    contents: dict[str, tuple[str, int]] = field(default_factory=dict)


_CALL_COLUMNS: Final = (
    f"tools_hash, finish_reasons, mapContains(attributes, '{TRUNCATED_KEY}') AS truncated"
)
"""SQL columns a model call's example needs besides its messages: the tools offered (by content
hash; a few lists repeat across calls, each parsed once) and why it stopped."""
_TOOL_REF_HASHES: Final = "[tools_hash]"


class _Prefetching:
    """Runs ``self._pages()`` in a thread, one page ahead; iterating yields the pages.

    At most two pages exist at once: the one the caller works on and the next,
    which the thread starts reading only once the caller has taken the current one.
    """

    store: Store
    tenant: str
    params: dict[str, Any]
    page_size: int
    gates: tuple[str, ...]

    def _pages(self) -> Iterator[Page]:
        raise NotImplementedError

    def _keyed_pages(self, keys_sql: str, rows_sql: str, hashes_sql: str) -> Iterator[Page]:
        """Keyset paging: ``keys_sql`` gives the next ``{page}`` keys after ``{last_key}`` (one
        column, ordered); ``rows_sql`` and ``hashes_sql`` read the rows and the content hashes of
        the keys in ``{key_page}``."""
        last = ""
        while True:
            params = {**self.params, "page": self.page_size, "last_key": last}
            keys = self.store.query_arrow(keys_sql, params)
            if not keys.num_rows:
                return
            ids = keys.column(0).to_pylist()
            params["key_page"] = ids
            rows = self.store.query_arrow(rows_sql, params)
            yield Page(rows, _contents(self.store, self.tenant, hashes_sql, params, self.gates))
            if len(ids) < self.page_size:
                return
            last = ids[-1]

    def __iter__(self) -> Iterator[Page]:
        q: queue.Queue[Any] = queue.Queue()
        slot = threading.Semaphore(1)
        stop = threading.Event()
        done = object()

        def fetch() -> None:
            try:
                pages = self._pages()
                while True:
                    while not slot.acquire(timeout=0.2):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    page = next(pages, done)
                    q.put(page)
                    if page is done:
                        return
            except BaseException as exc:  # handed to the consumer, raised there
                q.put(exc)

        thread = threading.Thread(target=fetch, name="agentledger-dataset-reader", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is done:
                    return
                if isinstance(item, BaseException):
                    raise item
                slot.release()  # the caller has this page: read the next one meanwhile
                yield item
                del item
                pa.default_memory_pool().release_unused()  # hand the last page's buffers back
        finally:
            stop.set()
            thread.join(timeout=60)


_multimatch: bool | None = (
    None  # does the store have multiMatchAllIndices (Vectorscan)? learnt on first use
)


def _mask_sql(n: int, multimatch: bool) -> str:
    """SQL: bit i set when gate pattern i matches ``content``."""
    if multimatch:
        return (
            "arraySum(arrayMap(i -> bitShiftLeft(toUInt32(1), i - 1), "
            "multiMatchAllIndices(content, {gates:Array(String)})))"
        )
    return " + ".join(f"{1 << i} * match(content, {{gate{i}:String}})" for i in range(n))


def _contents(
    store: Store, tenant: str, hashes_sql: str, params: dict[str, Any], gates: tuple[str, ...]
) -> dict[str, tuple[str, int]]:
    """hash -> (content, mask of the redaction presets whose gate matched) for ``hashes_sql``."""
    global _multimatch
    p = {**params, "tenant": tenant}
    if gates:
        p["gates"] = list(gates)
        p.update({f"gate{i}": g for i, g in enumerate(gates)})
    while True:
        mask = _mask_sql(len(gates), _multimatch is not False) if gates else "0"
        try:
            table = store.query_arrow(
                f"SELECT hash, content, {mask} AS mask FROM contents "
                f"WHERE tenant = {{tenant:String}} AND hash IN ({hashes_sql})",
                p,
            )
            if gates and _multimatch is None:
                _multimatch = True
            break
        except StoreRejected:
            if not gates or _multimatch is not None:
                raise
            _multimatch = False  # no Vectorscan in this build: one RE2 match per preset
    if not table.num_rows:
        return {}
    return dict(
        zip(
            table.column("hash").to_pylist(),
            zip(table.column("content").to_pylist(), table.column("mask").to_pylist()),
        )
    )


def _after(d: str, t: str, s: str) -> str:
    """SQL: the row's sorting key (day, trace, span) is after the parameters' - spelled out as
    comparisons the primary index can use (a tuple comparison makes ClickHouse scan from the start)."""
    day = "toDate(start_time)"
    return (
        f"({day} > {{{d}:Date}} OR ({day} = {{{d}:Date}} AND (trace_id > {{{t}:String}} "
        f"OR (trace_id = {{{t}:String}} AND span_id > {{{s}:String}}))))"
    )


class SpanPages(_Prefetching):
    """Pages of matching spans in (day, trace, span) order, each with its contents."""

    COLUMNS: Final = (
        "trace_id, span_id, parent_span_id, start_time, kind, name, status_code, agent_name, "
        "principal_id, session_id, request_model, response_model, input_hash, output_hash, "
        "tool_calls.name AS tool_call_names"
    )

    def __init__(
        self,
        store: Store,
        tenant: str,
        filters: ExportFilters,
        kinds: tuple[str, ...],
        *,
        page_size: int = 50_000,
        gates: tuple[str, ...] = (),
    ) -> None:
        self.store, self.tenant, self.page_size, self.gates = store, tenant, page_size, gates
        self.conds, self.params = _sampled_span_conditions(store, tenant, filters, kinds)

    def count(self) -> int:
        """Matching spans (stored copies of a span counted once)."""
        return int(
            self.store.query_scalar(
                f"SELECT uniqExact(span_id) FROM spans WHERE {' AND '.join(self.conds)}",
                self.params,
            )
            or 0
        )

    def _pages(self) -> Iterator[Page]:
        last: tuple[date, str, str] | None = None
        key = "toDate(start_time) AS day, trace_id, span_id"
        order = "ORDER BY day, trace_id, span_id"
        while True:
            conds = list(self.conds)
            params = dict(self.params)
            if last is not None:
                conds.append(_after("ld", "lt", "ls"))
                params.update(ld=last[0].isoformat(), lt=last[1], ls=last[2])
            # where this page ends: found on the key columns alone, then the page is read as a key
            # range (computing the other columns only for its own rows)
            ends = self.store.query_rows(
                f"SELECT {key} FROM spans WHERE {' AND '.join(conds)} {order} "
                "LIMIT 1 OFFSET {offset:UInt64}",
                {**params, "offset": self.page_size - 1},
            )
            final = not ends
            if not final:
                params.update(
                    ud=ends[0]["day"].isoformat(), ut=ends[0]["trace_id"], us=ends[0]["span_id"]
                )
                conds.append(f"NOT {_after('ud', 'ut', 'us')}")
            where = " AND ".join(conds)
            rows = self.store.query_arrow(
                f"SELECT toDate(start_time) AS day, {self.COLUMNS}, {_CALL_COLUMNS} FROM spans WHERE {where} {order}",
                params,
            )
            if not rows.num_rows:
                return
            hashes = (
                f"SELECT arrayJoin(arrayConcat([input_hash, output_hash], {_TOOL_REF_HASHES})) "
                f"FROM spans WHERE {where}"
            )
            yield Page(rows, _contents(self.store, self.tenant, hashes, params, self.gates))
            if final:
                return
            last = (ends[0]["day"], ends[0]["trace_id"], ends[0]["span_id"])


class TracePages(_Prefetching):
    """Pages of whole matching traces (every span, in start order), each with its contents."""

    def __init__(
        self,
        store: Store,
        tenant: str,
        filters: ExportFilters,
        *,
        page_size: int = 2_000,
        gates: tuple[str, ...] = (),
    ) -> None:
        self.store, self.tenant, self.page_size, self.gates = store, tenant, page_size, gates
        f = filters
        # span-level conditions that select traces: time range and tenant; the rest judge the trace
        base = ExportFilters(
            since=f.since, until=f.until, trace_ids=f.trace_ids, successful_only=False
        )
        conds, params = span_conditions(tenant, base, ())
        having: list[str] = []
        for cond, name, values in _membership(f, tuple(f.kinds)):  # some span of the trace has it
            having.append(f"countIf({cond}) > 0")
            params[name] = values
        if f.successful_only:
            having.append("countIf(status_code = 'ERROR') = 0")
        if f.has_tool_calls is True:
            having.append("countIf(kind = 'TOOL' OR notEmpty(tool_calls)) > 0")
        elif f.has_tool_calls is False:
            having.append("countIf(kind = 'TOOL' OR notEmpty(tool_calls)) = 0")
        for i, fb in enumerate(f.feedback):
            sql, p = feedback_condition(i, fb, per="trace")
            conds.append(sql)
            params.update(p)
        self.having = " AND ".join(having) or "1"
        sample, sparams = _sample_condition(
            store, "trace_id", conds, params, f, f"HAVING {self.having}"
        )
        if sample:
            conds.append(sample)
            params.update(sparams)
        self.conds, self.params = conds, params

    def _trace_page_sql(self, extra: str = "") -> str:
        return (
            f"SELECT trace_id FROM spans WHERE {' AND '.join(self.conds)} {extra} "
            f"GROUP BY trace_id HAVING {self.having} ORDER BY trace_id LIMIT {{page:UInt32}}"
        )

    def count(self) -> int:
        """Matching traces."""
        return int(
            self.store.query_scalar(
                f"SELECT count() FROM (SELECT trace_id FROM spans WHERE {' AND '.join(self.conds)} "
                f"GROUP BY trace_id HAVING {self.having})",
                self.params,
            )
            or 0
        )

    def _pages(self) -> Iterator[Page]:
        page = "trace_id IN (SELECT arrayJoin({key_page:Array(String)}))"
        return self._keyed_pages(
            self._trace_page_sql("AND trace_id > {last_key:String}"),
            f"""SELECT {SpanPages.COLUMNS}, documents.content_hash AS document_hashes,
                   documents.id AS document_ids, documents.score AS document_scores,
                   tool_name, tool_call_id, tool_calls.id AS tool_call_ids,
                   tool_calls.arguments_hash AS tool_call_hashes, status_message
            FROM spans WHERE tenant = {{tenant:String}} AND {page}
            ORDER BY trace_id, start_time, span_id""",
            "SELECT arrayJoin(arrayConcat([input_hash, output_hash], documents.content_hash, "
            f"tool_calls.arguments_hash)) FROM spans WHERE tenant = {{tenant:String}} AND {page}",
        )


class PreferencePages(_Prefetching):
    """Pages of scored or corrected spans grouped by prompt (input hash): every candidate answer
    of a prompt is in the same page."""

    COLUMNS: Final = (
        "input_hash, span_id, trace_id, session_id, kind, output_hash, tools_hash, "
        "finish_reasons, truncated, ref_hashes, score, scored, corrections"
    )

    def __init__(
        self,
        store: Store,
        tenant: str,
        filters: ExportFilters,
        kinds: tuple[str, ...],
        *,
        feedback_name: str | None = None,
        page_size: int = 5_000,
        gates: tuple[str, ...] = (),
    ) -> None:
        self.store, self.tenant, self.page_size, self.gates = store, tenant, page_size, gates
        conds, params = _sampled_span_conditions(store, tenant, filters, kinds)
        eff = effective_score_sql("pref_name" if feedback_name else None)
        if feedback_name:
            params["pref_name"] = feedback_name
        fb = f"{FEEDBACK_VIEW} WHERE tenant = {{tenant:String}}"
        self.candidates = f"""
            SELECT s.input_hash AS input_hash, s.span_id AS span_id, s.trace_id AS trace_id,
                   s.session_id AS session_id, s.kind AS kind, s.output_hash AS output_hash,
                   s.tools_hash AS tools_hash, s.finish_reasons AS finish_reasons,
                   s.truncated AS truncated, s.ref_hashes AS ref_hashes,
                   if(ss.span_id != '', ss.v, ts.v) AS score, ss.span_id != '' OR ts.trace_id != '' AS scored,
                   c.corrections AS corrections
            FROM (SELECT input_hash, span_id, trace_id, session_id, kind, output_hash, {_CALL_COLUMNS},
                         {_TOOL_REF_HASHES} AS ref_hashes
                  FROM spans WHERE {" AND ".join(conds)} AND input_hash != '' AND output_hash != '') AS s
            LEFT JOIN (SELECT span_id, avg(e) AS v FROM (SELECT span_id, {eff} AS e FROM {fb} AND span_id != '')
                       WHERE isNotNull(e) GROUP BY span_id) AS ss ON ss.span_id = s.span_id
            LEFT JOIN (SELECT trace_id, avg(e) AS v FROM (SELECT trace_id, {eff} AS e FROM {fb} AND span_id = '')
                       WHERE isNotNull(e) GROUP BY trace_id) AS ts ON ts.trace_id = s.trace_id
            LEFT JOIN (SELECT span_id, arraySort(groupArray(correction)) AS corrections FROM {fb}
                       AND span_id != '' AND correction != '' GROUP BY span_id) AS c ON c.span_id = s.span_id
            WHERE ss.span_id != '' OR ts.trace_id != '' OR c.span_id != ''"""
        self.params = params

    def count(self) -> int:
        """Spans with feedback that could make a pair."""
        return int(
            self.store.query_scalar(
                f"SELECT uniqExact(span_id) FROM ({self.candidates})", self.params
            )
            or 0
        )

    def _pages(self) -> Iterator[Page]:
        page = "input_hash IN (SELECT arrayJoin({key_page:Array(String)}))"
        return self._keyed_pages(
            f"SELECT input_hash FROM ({self.candidates}) WHERE input_hash > {{last_key:String}} "
            "GROUP BY input_hash ORDER BY input_hash LIMIT {page:UInt32}",
            f"SELECT {self.COLUMNS} FROM ({self.candidates}) WHERE {page} ORDER BY input_hash, span_id",
            f"SELECT arrayJoin(arrayConcat([input_hash, output_hash], ref_hashes)) FROM ({self.candidates}) "
            f"WHERE {page}",
        )


def count_candidates(pages: SpanPages | TracePages) -> int:
    """How many spans (or traces) the filters select, before hygiene."""
    return pages.count()

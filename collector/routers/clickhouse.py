"""ClickHouse's HTTP interface, read-only and scoped to the key's tenant, on the live embedded store.

``GET``/``POST /clickhouse`` answers as a ClickHouse server's ``/`` does
(https://clickhouse.com/docs/interfaces/http), enough for clickhouse-connect
(``get_client(host, port, proxy_path="/clickhouse", password=<key>)``), ``curl`` and Grafana's
ClickHouse data source (HTTP protocol, path ``/clickhouse``):

* the query in ``query=`` and/or the body (joined by a newline, as ClickHouse does), or as
  ``multipart/form-data`` fields; ``param_<name>`` binds ``{name:Type}`` on the server;
  ``default_format`` or a ``FORMAT`` clause picks the output (Native, Arrow, TSV, CSV, JSON...);
  ``database`` may name the tenant's database, the store's or ``default`` (all mean the tenant's).
* the API key as ``Authorization: Bearer``, ``X-API-Key``, ``X-ClickHouse-Key`` or the password of
  basic auth (what clickhouse-connect sends for ``password=``; the user name is ignored); any role
  that reads (``reader`` and above).
* ClickHouse's headers (``X-ClickHouse-Format``, ``-Query-Id``, ``-Summary``, ``-Timezone``) and
  ClickHouse's error text with ``X-ClickHouse-Exception-Code``, always a 4xx for a bad query.
* settings in URL arguments are ignored: the session is ``readonly=1`` with the limits
  (``AGENTLEDGER_SQL_*``) already set, so no argument can raise one (Grafana's plugin sends its
  query timeout as ``max_execution_time``: refusing it would refuse every Grafana query).

Every query, refused ones included, lands in the access log with the key's name.
"""

from __future__ import annotations

import threading
import uuid
import zlib
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import IdentityDep, ReadLogDep, ServicesDep
from agentledger.pipeline.services.sql import (
    Limits,
    SqlAnswer,
    SqlError,
    SqlService,
    SqlUnavailable,
)

__all__ = ["SqlDep", "router", "sql_service"]

router = APIRouter(tags=["sql"])


_LOGGED_CHARS = 4000
_build_lock = threading.Lock()


def sql_service(request: Request, services: ServicesDep) -> SqlService:
    """The process's SQL service, built on first use over the store (501 without an embedded
    data directory) and closed with the app's other services."""
    state = request.app.state
    found: SqlService | None = getattr(state, "sql_service", None)
    if found is not None:
        return found
    if services.store is None:
        raise HTTPException(501, "this collector has no store attached; query ClickHouse itself")
    with _build_lock:
        found = getattr(state, "sql_service", None)
        if found is None:
            try:
                found = SqlService(services.store, Limits.from_env())
            except SqlUnavailable as exc:
                raise HTTPException(501, str(exc)) from exc
            except ValueError as exc:  # an AGENTLEDGER_SQL_* setting the operator must fix
                raise HTTPException(503, f"SQL is misconfigured: {exc}") from exc
            services.on_close.append(found.close)
            state.sql_service = found
    return found


SqlDep = Annotated[SqlService, Depends(sql_service)]


def _decoded(body: bytes, encoding: str | None, limit: int) -> bytes:
    """A request body without its ``Content-Encoding``, never inflated past ``limit`` bytes."""
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        return body
    if enc in ("gzip", "deflate"):
        inflater = zlib.decompressobj(wbits=47 if enc == "gzip" else 15)
        out = inflater.decompress(body, limit + 1)
    elif enc == "lz4":
        try:
            import lz4.frame
        except ImportError:  # pragma: no cover - lz4 comes with clickhouse-connect
            raise SqlError(
                "Code: 36. DB::Exception: lz4 is not installed here. (BAD_ARGUMENTS)", 36, 415
            ) from None
        out = lz4.frame.LZ4FrameDecompressor().decompress(body, max_length=limit + 1)
    else:
        raise SqlError(
            f"Code: 36. DB::Exception: Unsupported Content-Encoding {encoding!r}: send gzip, "
            "deflate, lz4 or none. (BAD_ARGUMENTS)",
            36,
            415,
        )
    if len(out) > limit:
        raise SqlError(
            f"Code: 62. DB::Exception: Max query size exceeded ({limit} bytes). (SYNTAX_ERROR)",
            62,
            413,
        )
    return bytes(out)


async def _arguments(request: Request, limit: int) -> tuple[dict[str, str], str]:
    """The request's URL arguments (and form fields) and its query text."""
    args = dict(request.query_params)
    body = _decoded(await request.body(), request.headers.get("content-encoding"), limit)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        for name, value in form.multi_items():
            if not isinstance(value, str):
                raise SqlError(
                    "Code: 36. DB::Exception: external data (file fields) is not accepted "
                    "here. (BAD_ARGUMENTS)",
                    36,
                    400,
                )
            args[name] = value
        body = b""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SqlError(
            f"Code: 36. DB::Exception: the query is not UTF-8 (byte {exc.start}). (BAD_ARGUMENTS)",
            36,
            400,
        ) from exc
    query = args.get("query", "")
    return args, f"{query}\n{text}" if query and text else query or text


def _database_check(args: dict[str, str], sql: SqlService, tenant_db: str) -> None:
    database = args.get("database", "")
    if database not in ("", "default", sql.store_database, tenant_db):
        raise SqlError(
            f"Code: 81. DB::Exception: Database {database} does not exist: your tables are in "
            f"{tenant_db}. (UNKNOWN_DATABASE)",
            81,
            404,
        )


def _answer(answer: SqlAnswer, query_id: str, timezone: str) -> Response:
    headers = {
        "X-ClickHouse-Query-Id": query_id,
        "X-ClickHouse-Format": answer.fmt,
        "X-ClickHouse-Timezone": timezone,
        "X-ClickHouse-Server-Display-Name": "agentledger",
        "X-ClickHouse-Summary": "{"
        + ",".join(f'"{k}":"{v}"' for k, v in answer.summary.items())
        + "}",
    }
    return Response(answer.body, media_type=_media(answer.fmt), headers=headers)


def _media(fmt: str) -> str:
    if fmt.startswith(("TabSeparated", "TSV")):
        return "text/tab-separated-values; charset=UTF-8"
    if fmt.startswith("CSV"):
        return "text/csv; charset=UTF-8; header=absent"
    if fmt.startswith(("JSON", "NDJSON")):
        return "application/json; charset=UTF-8"
    if fmt.startswith(("Pretty", "Markdown", "Values")):
        return "text/plain; charset=UTF-8"
    return "application/octet-stream"


def _error(exc: SqlError, query_id: str) -> Response:
    return PlainTextResponse(
        str(exc) + "\n",
        status_code=exc.status,
        headers={"X-ClickHouse-Exception-Code": str(exc.code), "X-ClickHouse-Query-Id": query_id},
    )


@router.get("/clickhouse/ping", summary="ClickHouse's liveness answer (no key needed)")
async def ping() -> PlainTextResponse:
    return PlainTextResponse("Ok.\n")


_RESPONSES: dict[int | str, dict[str, object]] = {400: {}, 403: {}, 404: {}, 413: {}, 501: {}}


@router.get(
    "/clickhouse",
    summary="Read-only SQL over ClickHouse's HTTP interface (query= in the URL)",
    responses=_RESPONSES,
)
async def clickhouse_get(
    request: Request, identity: IdentityDep, read_log: ReadLogDep, sql: SqlDep
) -> Response:
    return await clickhouse(request, identity, read_log, sql)


@router.post(
    "/clickhouse",
    summary="Read-only SQL over ClickHouse's HTTP interface (the query in the body)",
    responses=_RESPONSES,
)
async def clickhouse_post(
    request: Request, identity: IdentityDep, read_log: ReadLogDep, sql: SqlDep
) -> Response:
    return await clickhouse(request, identity, read_log, sql)


async def clickhouse(
    request: Request, identity: IdentityDep, read_log: ReadLogDep, sql: SqlDep
) -> Response:
    """Both methods: scoped to the key's tenant, bounded, every query in the access log."""
    query_id = request.query_params.get("query_id") or str(uuid.uuid4())
    query = ""
    try:
        args, query = await _arguments(request, sql.limits.max_query_bytes)
        if not query.strip():
            return PlainTextResponse("Ok.\n")  # what ClickHouse says to a bare GET
        tenant_db = await run_in_threadpool(sql.database, identity.tenant)
        _database_check(args, sql, tenant_db)
        params = {k[6:]: v for k, v in args.items() if k.startswith("param_")}
        answer = await run_in_threadpool(
            lambda: sql.run(
                identity.tenant, query, params=params, fmt=args.get("default_format") or None
            )
        )
    except SqlError as exc:
        if query.strip():
            await read_log.record([f"sql refused: {query[:_LOGGED_CHARS]}"], 0)
        return _error(exc, query_id)
    await read_log.record([f"sql: {query[:_LOGGED_CHARS]}"], answer.rows_read)
    return _answer(answer, query_id, await run_in_threadpool(sql.timezone))

"""A ClickHouse HTTP-protocol endpoint backed by chDB, for tests only.

chDB is the real ClickHouse engine in-process but cannot open network listeners,
so this module puts a small HTTP server in front of it that speaks enough of the
ClickHouse HTTP interface (https://clickhouse.com/docs/interfaces/http) for
clickhouse-connect 1.12 to run unchanged against it on loopback:

* request: ``GET``/``POST /`` with the SQL in the ``query`` URL parameter and/or
  the body (concatenated with a newline, as ClickHouse does), or as
  ``multipart/form-data`` fields (the client switches to that for long bind
  parameters); ``database``; ``param_<name>`` for ``{name:Type}`` placeholders;
  every other URL argument that is not HTTP-only is a query setting.
* request bodies: ``Content-Length`` or chunked (``client.insert`` streams its
  Native blocks chunked); ``Content-Encoding`` lz4 (concatenated frames, the
  client's default), zstd, gzip, deflate, br (if ``brotli`` is installed).
* inserts: ``INSERT INTO t (cols) [SETTINGS ...] FORMAT <fmt>`` followed by the
  data; the data is written to a temp file and loaded with
  ``INSERT INTO t (cols) FROM INFILE '<file>' FORMAT <fmt>``.
* responses: the bytes of the requested format, ``X-ClickHouse-Query-Id``,
  ``-Format`` (only for result-producing statements, which is how the client's
  ``command()`` tells "empty result" from "no result"), ``-Timezone``,
  ``-Summary``, ``-Server-Display-Name``; compressed per ``Accept-Encoding``.
* errors: ClickHouse's own message (``Code: N. DB::Exception: ... (NAME)``) with
  ``X-ClickHouse-Exception-Code`` and ClickHouse's HTTP status.
* sessions: each ``session_id`` gets its own chDB connection (chDB keeps
  ``SET``/``USE``/temporary tables per connection), requests without one share
  the main connection. Per-request settings are applied with ``SET`` and put
  back afterwards, because a ``SETTINGS`` clause cannot be appended to DDL.

Not emulated: authentication, ``compress=1``/``decompress=1`` (ClickHouse's
internal block compression; clickhouse-connect never sends them unless asked),
external data (file fields in form data), progress headers, streaming (results
are buffered), session timeouts/locking, per-query ``query_id`` cancellation.
"""

from __future__ import annotations

import email.parser
import email.policy
import gzip
import json
import os
import re
import socket
import sys
import tempfile
import threading
import uuid
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import chdb

try:  # zstd: the stdlib on 3.14+, the backport (a clickhouse-connect dependency) before
    from compression import zstd as _zstd  # type: ignore[import-not-found]
except ImportError:
    from backports import zstd as _zstd  # type: ignore[no-redef]
import lz4.frame

try:
    import brotli  # type: ignore[import-not-found]
except ImportError:
    brotli = None

# URL parameters the HTTP interface consumes itself; everything else that is not
# ``param_*`` is a ClickHouse setting for this one query.
HTTP_ONLY_PARAMS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "stacktrace",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "cancel_http_readonly_queries_on_client_close",
    }
)

# ``INSERT INTO t (cols) [SETTINGS ...] FORMAT fmt`` at the start of a request whose
# data follows inline. INSERT ... VALUES / ... SELECT do not match and run as-is.
_INSERT_RE = re.compile(
    rb"\s*INSERT\s+INTO\s+(?:TABLE\s+)?(?P<table>(?:`[^`]*`|\"[^\"]*\"|[\w.])+)\s*"
    rb"(?P<cols>\((?:`[^`]*`|[^()`])*\))?\s*(?P<settings>SETTINGS\s.*?)?FORMAT\s+(?P<fmt>\w+)",
    re.IGNORECASE | re.DOTALL,
)
_TRAILING_FORMAT_RE = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_CODE_RE = re.compile(r"Code: (\d+)\.")
# The subset of ClickHouse's exception-code -> HTTP status mapping a client may see here.
_HTTP_STATUS = {62: 400, 27: 400, 6: 400, 115: 400, 60: 404, 81: 404, 46: 404, 47: 404, 48: 501}


def _content_type(fmt: str | None) -> str:
    if not fmt:
        return "text/plain; charset=UTF-8"
    if fmt.startswith(("TabSeparated", "TSV")):
        return "text/tab-separated-values; charset=UTF-8"
    if fmt.startswith("CSV"):
        return "text/csv; charset=UTF-8; header=absent"
    if fmt.startswith("JSON"):
        return "application/json; charset=UTF-8"
    return "application/octet-stream"


def _decompress(data: bytes, encoding: str | None) -> bytes:
    """Undo a request ``Content-Encoding`` (clickhouse-connect: lz4 frame per block)."""
    enc = (encoding or "").strip().lower()
    if enc in ("", "identity"):
        return data
    if enc == "lz4":  # the client compresses each insert block as its own frame
        out = bytearray()
        while data:
            dec = lz4.frame.LZ4FrameDecompressor()
            out += dec.decompress(data)
            data = dec.unused_data
        return bytes(out)
    if enc == "zstd":
        return _zstd.decompress(data)  # handles concatenated frames
    if enc == "gzip":
        return gzip.decompress(data)  # handles concatenated members
    if enc == "deflate":
        return zlib.decompress(data)
    if enc == "br" and brotli is not None:
        return brotli.decompress(data)
    raise ValueError(f"Unsupported Content-Encoding: {encoding}")


_COMPRESSORS = {
    "lz4": lz4.frame.compress,
    "zstd": _zstd.compress,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
}
if brotli is not None:
    _COMPRESSORS["br"] = brotli.compress


def _error(message: str, code: int = 1001, name: str = "STD_EXCEPTION") -> tuple[int, str]:
    """ClickHouse error text and code for an exception raised by chDB (or by us)."""
    idx = message.find("Code: ")
    if idx >= 0 and (m := _CODE_RE.match(message, idx)):
        return int(m.group(1)), message[idx:].strip()
    return code, f"Code: {code}. DB::Exception: {message.strip()}. ({name})"


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _quote_str(value: str) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Session:
    """One chDB connection and the database it currently has selected with USE."""

    def __init__(self, conn: Any):
        self.conn = conn
        self.database = "default"


class ChdbHttpEndpoint:
    """ClickHouse HTTP interface on loopback, executing on chDB (see module doc)."""

    def __init__(self, data_dir: str, host: str = "127.0.0.1", port: int = 0):
        self.data_dir, self.host, self.port = data_dir, host, port
        self.queries: list[str] = []  # query texts received (insert data stripped)
        self._lock = threading.Lock()  # serializes every chDB call
        self._sessions: dict[str | None, _Session] = {}
        self._available, self._unavailable_mode = True, "503"
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._open_sockets: set[socket.socket] = set()
        self.timezone = "UTC"
        self.version = ""

    # ---- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        conn = chdb.connect(f"file:{self.data_dir}")
        self._sessions[None] = _Session(conn)
        self.version, self.timezone = (
            conn.query("SELECT version(), timezone()", "TabSeparated")
            .bytes()
            .decode()
            .strip()
            .split("\t")
        )
        server = _Server((self.host, self.port), _Handler)
        server.endpoint = self
        self._server, self.port = server, server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="chdb-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._drop_connections()  # keep-alive handler threads would otherwise still serve
        with self._lock:
            for session in self._sessions.values():
                session.conn.close()
            self._sessions.clear()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def set_available(self, available: bool, mode: str = "503") -> None:
        """Simulate an outage. mode "503": answer 503 Service Unavailable (the client
        retries read-only calls, then raises OperationalError); mode "close": drop
        every connection without answering (a transport error in the client)."""
        if mode not in ("503", "close"):
            raise ValueError(mode)
        self._available, self._unavailable_mode = available, mode
        if not available and mode == "close":
            self._drop_connections()

    def _drop_connections(self) -> None:
        for sock in list(self._open_sockets):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ---- query execution --------------------------------------------------------------

    def execute(self, params: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Run one HTTP-interface request; returns (status, headers, body)."""
        query_id = params.get("query_id") or str(uuid.uuid4())
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Server-Display-Name": "chdb-http",
            "X-ClickHouse-Timezone": params.get("session_timezone") or self.timezone,
        }
        # ClickHouse reads the query parameter, a newline, then the body as one stream.
        qparam = params.get("query", "").encode()
        raw = qparam + b"\n" + body if qparam and body else qparam or body
        bind = {k[6:]: v for k, v in params.items() if k.startswith("param_")}
        settings = {
            k: v
            for k, v in params.items()
            if k not in HTTP_ONLY_PARAMS and not k.startswith("param_")
        }
        insert = _INSERT_RE.match(raw[:65536])
        infile = None
        try:
            if insert:
                # Data starts after the first newline following FORMAT <fmt>, else after
                # the whitespace (ClickHouse's ParserInsertQuery rule).
                pos = insert.end()
                while pos < len(raw) and raw[pos] in b" \t\r\n":
                    pos += 1
                    if raw[pos - 1] == 0x0A:
                        break
                with tempfile.NamedTemporaryFile(suffix=".chdb-http", delete=False) as tmp:
                    tmp.write(raw[pos:])
                infile = tmp.name
                text = raw[: insert.end()].decode()
                g = {k: (v or b"").decode() for k, v in insert.groupdict().items()}
                sql = f"INSERT INTO {g['table']} {g['cols']} FROM INFILE {_quote_str(infile)} {g['settings']} FORMAT {g['fmt']}"
            else:
                sql = text = raw.decode()
            with self._lock:
                self.queries.append(text.strip())
                return self._run_locked(params, settings, bind, sql, insert is not None, headers)
        except Exception as ex:  # noqa: BLE001 - every failure becomes a ClickHouse error response
            code, message = _error(str(ex))
            headers.update(
                {
                    "X-ClickHouse-Exception-Code": str(code),
                    "Content-Type": "text/plain; charset=UTF-8",
                }
            )
            return _HTTP_STATUS.get(code, 500), headers, (message + "\n").encode()
        finally:
            if infile:
                os.unlink(infile)

    def _run_locked(self, params, settings, bind, sql, is_insert, headers):
        session_id = params.get("session_id") or None
        if session_id not in self._sessions:  # a new HTTP session: its own chDB connection
            self._sessions[session_id] = _Session(chdb.connect(f"file:{self.data_dir}"))
        session = self._sessions[session_id]
        # ``database`` selects the database; requests without it on the shared
        # connection run in ``default`` (a session keeps what it last USEd).
        database = params.get("database") or (session.database if session_id else "default")
        if database != session.database:
            session.conn.query(f"USE {_quote_ident(database)}", "TabSeparated")
            session.database = database
        restore = self._apply_settings(session.conn, settings)
        try:
            if is_insert:
                result = session.conn.query(sql, "TabSeparated")
                fmt, out = None, b""
            else:
                fmt = (
                    m.group(1) if (m := _TRAILING_FORMAT_RE.search(sql)) else None
                ) or params.get("default_format")
                if fmt:
                    result = session.conn.query(sql, fmt, params=bind)
                    out = result.bytes() or b""
                else:
                    # Only result-producing statements print a names line, which tells us
                    # whether to send X-ClickHouse-Format (the default TabSeparated).
                    result = session.conn.query(sql, "TabSeparatedWithNames", params=bind)
                    out = result.bytes() or b""
                    fmt = "TabSeparated" if out else None
                    out = out[out.find(b"\n") + 1 :] if out else b""
        finally:
            for stmt in restore:
                session.conn.query(stmt, "TabSeparated")
        headers["X-ClickHouse-Summary"] = json.dumps(
            {
                "read_rows": str(result.rows_read()),
                "read_bytes": str(result.bytes_read()),
                "written_rows": str(result.rows_written()),
                "written_bytes": str(result.bytes_written()),
                "total_rows_to_read": str(result.rows_read()),
                "result_bytes": str(len(out)),
                "elapsed_ns": str(int(result.elapsed() * 1e9)),
            }
        )
        headers["Content-Type"] = _content_type(fmt)
        if fmt:
            headers["X-ClickHouse-Format"] = fmt
        return 200, headers, out

    @staticmethod
    def _apply_settings(conn: Any, settings: dict[str, str]) -> list[str]:
        """SET the request's settings for this query; return the statements that put
        the connection back (values quoted: ClickHouse converts them to the type)."""
        if not settings:
            return []
        for name in settings:
            if not re.fullmatch(r"[A-Za-z_]\w*", name):
                raise ValueError(f"Invalid setting name {name!r}")
        names = ", ".join(_quote_str(n) for n in settings)
        rows = conn.query(
            f"SELECT name, value, changed FROM system.settings WHERE name IN ({names})",
            "JSONEachRow",
        )
        current = {r["name"]: r for r in map(json.loads, (rows.bytes() or b"").splitlines())}
        restore: list[str] = []
        try:
            for name, value in settings.items():
                row = current.get(name)
                if row is not None and row["value"] == value:
                    continue  # already in effect
                conn.query(f"SET {name} = {_quote_str(value)}", "TabSeparated")
                if row is not None and row["changed"]:  # an expression value comes back quoted
                    old = row["value"]
                    restore.append(
                        f"SET {name} = {old if old[:1] == old[-1:] == chr(39) and len(old) > 1 else _quote_str(old)}"
                    )
                else:
                    restore.append(f"SET {name} = DEFAULT")
        except Exception:
            for stmt in restore:
                conn.query(stmt, "TabSeparated")
            raise
        return restore


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # one thread per keep-alive connection, never blocks exit
    endpoint: ChdbHttpEndpoint

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # resets of pooled connections are normal
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler: reads the request, delegates to the endpoint."""

    protocol_version = "HTTP/1.1"  # urllib3 keeps pooled connections alive
    server_version = "chdb-http"

    def setup(self) -> None:
        super().setup()
        self.server.endpoint._open_sockets.add(self.connection)  # type: ignore[attr-defined]

    def finish(self) -> None:
        self.server.endpoint._open_sockets.discard(self.connection)  # type: ignore[attr-defined]
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = bytearray()  # the client streams generator bodies (client.insert) chunked
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                out += self.rfile.read(size)
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return bytes(out)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(
        self, status: int, headers: dict[str, str], payload: bytes, compress: bool = False
    ) -> None:
        if compress and payload:  # response compression: first Accept-Encoding we support
            accepted = [
                e.strip().split(";")[0] for e in self.headers.get("Accept-Encoding", "").split(",")
            ]
            encoding = next((e for e in accepted if e in _COMPRESSORS), None)
            if encoding:
                payload = _COMPRESSORS[encoding](payload)
                headers["Content-Encoding"] = encoding
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802
        endpoint: ChdbHttpEndpoint = self.server.endpoint  # type: ignore[attr-defined]
        if not endpoint._available and endpoint._unavailable_mode == "close":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            body = self._read_body()
        except (OSError, ValueError):
            self.close_connection = True
            return
        if not endpoint._available:
            return self._send(503, {"Content-Type": "text/plain"}, b"Service Unavailable\n")
        url = urlsplit(self.path)
        if url.path.rstrip("/") in ("/ping", "/replicas_status"):
            return self._send(200, {"Content-Type": "text/plain; charset=UTF-8"}, b"Ok.\n")
        if url.path not in ("", "/"):
            return self._send(
                404,
                {"Content-Type": "text/plain"},
                b"There is no handle " + url.path.encode() + b"\n",
            )
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        try:
            body = _decompress(body, self.headers.get("Content-Encoding"))
            ctype = self.headers.get("Content-Type", "")
            if ctype.startswith("multipart/form-data"):  # query and param_* as form fields
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
                )
                for part in msg.iter_parts():
                    if part.get_filename():
                        raise ValueError("external data (file fields) is not supported")
                    params[part.get_param("name", header="content-disposition")] = (
                        part.get_content()
                    )
                body = b""
        except Exception as ex:  # noqa: BLE001
            code, message = _error(str(ex))
            return self._send(
                400, {"X-ClickHouse-Exception-Code": str(code)}, (message + "\n").encode()
            )
        if not params.get("query") and not body:
            return self._send(200, {"Content-Type": "text/plain; charset=UTF-8"}, b"Ok.\n")
        status, headers, payload = endpoint.execute(params, body)
        # chDB's enable_http_compression default is 1, so only an explicit 0 disables it
        self._send(
            status,
            headers,
            payload,
            compress=status == 200 and params.get("enable_http_compression") != "0",
        )

    do_POST = do_GET

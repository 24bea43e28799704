"""A small HTTP client for the collector's governance API, on the standard library.

It ships into agents, so it stays light: ``http.client`` with one kept-alive
connection per thread (an intent round trip on loopback is then one request on
a warm socket, no handshake), JSON via orjson when installed.

Every failure comes out as ``CollectorError`` with the reason (connection
refused, timeout, HTTP status and the collector's ``detail``). A request on a
reused connection that the server had already closed (idle keep-alive timeout)
is sent once more on a fresh connection; that is safe because every call this
client makes is idempotent on the server (same intent id and attempt, same
outcome for an intent).
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CollectorError", "IntentClient", "dumps"]

try:  # orjson writes the same canonical JSON as the collector's; fall back to json without it
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is installed with the server extras
    _orjson = None  # type: ignore[assignment]

_STALE = (
    http.client.RemoteDisconnected,
    http.client.BadStatusLine,
    BrokenPipeError,
    ConnectionResetError,
    ConnectionAbortedError,
)


def dumps(value: Any) -> bytes:
    """Compact JSON bytes of a request body."""
    if _orjson is not None:
        return _orjson.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class CollectorError(Exception):
    """The collector could not be asked, or did not accept the request."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class IntentClient:
    """POSTs JSON to one collector; thread-safe (each thread has its own connection)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        timeout_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"collector URL {url!r} must be http(s)://host[:port]")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path
        self.timeout_s = timeout_s
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "agentledger-governance",
        }
        self._headers.update(headers or {})
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._local = threading.local()
        self._all: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def post(self, path: str, payload: Any, timeout_s: float | None = None) -> dict[str, Any]:
        """POST ``payload`` as JSON; the decoded JSON answer of a 2xx, else CollectorError."""
        body = dumps(payload)
        timeout = self.timeout_s if timeout_s is None else timeout_s
        conn, reused = self._connection(timeout)
        try:
            status, data, headers = self._exchange(conn, path, body, timeout)
        except _STALE as exc:
            self._drop(conn)
            if not reused:
                raise CollectorError(
                    f"collector at {self.url} closed the connection: {exc}"
                ) from exc
            conn, _ = self._connection(timeout)
            try:
                status, data, headers = self._exchange(conn, path, body, timeout)
            except (OSError, http.client.HTTPException) as exc2:
                self._drop(conn)
                raise CollectorError(self._describe(exc2, timeout)) from exc2
        except (OSError, http.client.HTTPException) as exc:
            self._drop(conn)
            raise CollectorError(self._describe(exc, timeout)) from exc
        if 200 <= status < 300:
            try:
                answer: dict[str, Any] = json.loads(data) if data else {}
                return answer
            except ValueError as exc:
                raise CollectorError(
                    f"collector at {self.url} answered {status} with a body that is not JSON",
                    status,
                ) from exc
        raise CollectorError(
            f"collector at {self.url} answered HTTP {status}: {_detail(data)}",
            status,
            _retry_after(headers),
        )

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()

    # -- connections -----------------------------------------------------------------------------

    def _connection(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            conn.sock.settimeout(timeout)
            return conn, True
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=timeout)
        try:
            conn.connect()
        except OSError as exc:
            conn.close()
            raise CollectorError(self._describe(exc, timeout)) from exc
        if conn.sock is not None:
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn, False

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()
        if getattr(self._local, "conn", None) is conn:
            self._local.conn = None
        with self._lock:
            if conn in self._all:
                self._all.remove(conn)

    def _exchange(
        self, conn: http.client.HTTPConnection, path: str, body: bytes, timeout: float
    ) -> tuple[int, bytes, http.client.HTTPMessage]:
        conn.request("POST", self._prefix + path, body=body, headers=self._headers)
        resp = conn.getresponse()
        data = resp.read()
        if resp.getheader("connection", "").lower() == "close":
            self._drop(conn)
        return resp.status, data, resp.headers

    def _describe(self, exc: BaseException, timeout: float) -> str:
        if isinstance(exc, (socket.timeout, TimeoutError)):
            return f"collector at {self.url} did not answer within {timeout:g}s"
        if isinstance(exc, ConnectionRefusedError):
            return f"collector at {self.url} refused the connection (is it running?)"
        return f"collector at {self.url} unreachable: {type(exc).__name__}: {exc}"


def _detail(data: bytes) -> str:
    try:
        detail = json.loads(data).get("detail")
    except (ValueError, AttributeError):
        detail = None
    if detail is None:
        return data[:300].decode("utf-8", "replace") or "(no body)"
    return detail if isinstance(detail, str) else json.dumps(detail)[:500]


def _retry_after(headers: http.client.HTTPMessage) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return float(value) if value else None
    except ValueError:
        return None

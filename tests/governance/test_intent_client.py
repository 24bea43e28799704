"""The agent-side HTTP client: stale kept-alive connections are retried once; errors say why."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from agentledger.instrumentation._intent_client import CollectorError, IntentClient


class _OneShotServer:
    """Answers each connection's first request, then closes it silently (as an idle keep-alive
    timeout does), without announcing ``Connection: close``."""

    def __init__(self, status: int = 200, body: bytes = b'{"ok": true}') -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.status, self.body = status, body
        self.connections = 0
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(
                    next(
                        line.split(b":")[1]
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    )
                )
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(body)
                conn.sendall(
                    b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                    % (self.status, len(self.body), self.body)
                )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def one_shot() -> Iterator[_OneShotServer]:
    srv = _OneShotServer()
    yield srv
    srv.close()


def test_a_connection_the_server_closed_is_retried_once(one_shot: _OneShotServer) -> None:
    client = IntentClient(one_shot.url, api_key="k")
    assert client.post("/v1/intents", {"n": 1}) == {"ok": True}
    assert client.post("/v1/intents", {"n": 2}) == {
        "ok": True
    }  # the kept connection was closed: retried
    assert [json.loads(b)["n"] for b in one_shot.requests] == [1, 2]
    assert one_shot.connections == 2
    client.close()


def test_errors_name_the_status_and_the_collectors_reason() -> None:
    srv = _OneShotServer(401, b'{"detail": "unknown API key: it maps to no tenant"}')
    try:
        with pytest.raises(CollectorError, match="HTTP 401: unknown API key") as caught:
            IntentClient(srv.url).post("/v1/intents", {})
        assert caught.value.status == 401
    finally:
        srv.close()
    with pytest.raises(ValueError, match="must be http"):
        IntentClient("ftp://example")

"""Fixtures: ``instrument()`` pointed at the embedded server through a recording OTLP proxy.

The proxy keeps every raw OTLP body the agent process sent (so tests can assert
on exactly what left the process, e.g. that no planted secret did) and forwards
it to the embedded server (so they can assert on the stored rows too).
"""

from __future__ import annotations

import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import agentledger
from agentledger.instrumentation import lifecycle


class RecordingProxy:
    """An OTLP/HTTP endpoint on 127.0.0.1 that records bodies and forwards them to ``upstream``.

    ``port``: listen on that port (a test's collector coming back where it was), else any.
    """

    def __init__(self, upstream: str, port: int = 0) -> None:
        self.upstream = upstream.rstrip("/")
        self.bodies: list[bytes] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                proxy.bodies.append(body)
                req = urllib.request.Request(
                    proxy.upstream + self.path,
                    data=body,
                    method="POST",
                    headers={"content-type": self.headers.get("content-type", "")},
                )
                with urllib.request.urlopen(req, timeout=30) as resp:
                    answer, status = resp.read(), resp.status
                self.send_response(status)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def raw(self) -> bytes:
        return b"".join(self.bodies)

    def spans(self) -> list[Any]:
        out = []
        for body in self.bodies:
            req = ExportTraceServiceRequest()
            req.ParseFromString(body)
            out += [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]
        return out

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(autouse=True)
def _spool_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's own spool: never the user's cache directory, never another test's leftovers."""
    monkeypatch.setenv("AGENTLEDGER_SPOOL_DIR", str(tmp_path_factory.mktemp("spool")))


@pytest.fixture
def proxy(server: Any) -> Iterator[RecordingProxy]:
    p = RecordingProxy(server.url)
    yield p
    p.close()


@pytest.fixture
def instrumented(proxy: RecordingProxy) -> Iterator[Callable[..., Any]]:
    """``instrumented(**kwargs)``: ``instrument()`` exporting through the proxy; undone after the test.

    It joins a TracerProvider of the test's own rather than setting the global
    one: the embedded server runs in this process, and FastAPI traces its own
    requests through the global provider, which would export the collector's
    spans to itself in a loop. (The global-provider path is tested in a
    subprocess, see test_run.py.)
    """

    def start(**kwargs: Any) -> Any:
        kwargs.setdefault("endpoint", proxy.url)
        kwargs.setdefault(
            "tracer_provider",
            TracerProvider(resource=Resource.create({"service.name": "instrumentation-tests"})),
        )
        return agentledger.instrument(**kwargs)

    yield start
    agentledger.uninstrument()
    assert lifecycle.instrumentation() is None


def free_port() -> int:
    """A loopback port nothing listens on (connections to it are refused until a test listens)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def attrs_of(span: Any) -> dict[str, Any]:
    """A protobuf span's attributes as plain values."""
    from agentledger.pipeline.normalize.otlp import anyvalue_to_python

    return {kv.key: anyvalue_to_python(kv.value) for kv in span.attributes}

"""The spool and the sender, piece by piece: order, bound, a directory that cannot be written, and
which collector answers are worth a retry."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import agentledger
from agentledger.instrumentation.sender import OTLPSender, Outcome
from agentledger.instrumentation.spool import Spool
from tests.instrumentation import chat_agent


def test_entries_come_back_in_the_order_written_and_survive_a_new_spool(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, "http://collector/v1/traces\nBearer k", 1 << 20)
    assert spool is not None
    for i in range(30):
        assert spool.append(f"request {i}".encode(), i + 1)
    again = Spool.open(tmp_path, "http://collector/v1/traces\nBearer k", 1 << 20)  # next process
    assert again is not None and again.directory == spool.directory
    entries = again.entries()
    assert [again.read(e) for e in entries] == [f"request {i}".encode() for i in range(30)]
    assert [e.spans for e in entries] == list(range(1, 31))
    other = Spool.open(tmp_path, "http://collector/v1/traces\nBearer other-key", 1 << 20)
    assert other is not None and other.entries() == []  # another key never sends these


def test_the_bound_refuses_and_removing_makes_room(tmp_path: Path) -> None:
    spool = Spool.open(tmp_path, "k", 100)
    assert spool is not None
    assert spool.append(b"x" * 60, 1)
    assert not spool.append(b"y" * 60, 1)  # 120 > 100: refused, nothing written
    assert len(spool.entries()) == 1
    spool.remove(spool.entries()[0])
    assert spool.append(b"y" * 60, 1)


def test_an_unwritable_directory_turns_the_spool_off_with_a_warning_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    with caplog.at_level(logging.WARNING):
        assert Spool.open(blocked, "k", 1 << 20) is None
    assert "spool is off" in caplog.text and "not writable" in caplog.text
    monkeypatch.setenv("AGENTLEDGER_SPOOL_DIR", str(blocked))
    state = agentledger.instrument(endpoint="http://127.0.0.1:1", instrumentors=["openai"])
    try:
        assert state.export_queue is not None and state.export_queue.sink.spool is None
        chat_agent.calls(3)  # the agent runs on
    finally:
        agentledger.uninstrument()


class _Answers:
    """An HTTP endpoint that answers each POST with the next status in ``codes``."""

    def __init__(self, codes: list[int]) -> None:
        self.codes = list(codes)
        answers = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                code = answers.codes.pop(0)
                self.send_response(code)
                if code in (429, 503):
                    self.send_header("retry-after", "3")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"


@pytest.fixture
def answers() -> Iterator[_Answers]:
    a = _Answers([200, 429, 503, 500, 408, 400, 401, 413])
    yield a
    a.server.shutdown()
    a.server.server_close()


def test_which_answers_are_retried(answers: _Answers) -> None:
    sender = OTLPSender(answers.url, timeout=5.0)
    results = [sender.send(b"") for _ in range(8)]
    assert [r.outcome for r in results] == [Outcome.DELIVERED] + [Outcome.RETRY] * 4 + [
        Outcome.REFUSED
    ] * 3
    assert results[1].retry_after == 3.0 and results[2].retry_after == 3.0
    down = OTLPSender(answers.url.replace(str(answers.server.server_address[1]), "1"), timeout=1.0)
    assert down.send(b"").outcome is Outcome.RETRY  # connection refused: later, not never

"""The console's parts without a browser: sessions, redirects, messages, what it ships."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from agentledger.collector.console import views
from agentledger.collector.console.sessions import SessionBook
from agentledger.collector.console.web import safe_next

pytestmark = pytest.mark.unit

CONSOLE = Path(__file__).resolve().parents[2] / "collector" / "console"


def test_a_session_ends_at_sign_out_and_at_expiry_and_holds_no_key() -> None:
    book = SessionBook(ttl_s=0.2)
    session_id, session = book.open("ab" * 32)
    assert book.get(session_id) == session and session.key_sha256 == "ab" * 32
    assert book.get("forged") is None and book.get(None) is None
    other_id, _ = book.open("cd" * 32)
    assert other_id != session_id and len(session_id) >= 40
    book.close(session_id)
    assert book.get(session_id) is None
    deadline = time.monotonic() + 5
    while book.get(other_id) is not None:
        assert time.monotonic() < deadline, "an expired session still opens"
        time.sleep(0.05)


def test_the_table_is_bounded() -> None:
    book = SessionBook(max_sessions=3)
    ids = [book.open("00" * 32)[0] for _ in range(5)]
    assert sum(book.get(i) is not None for i in ids) == 3
    assert book.get(ids[-1]) is not None  # the newest stays


@pytest.mark.parametrize(
    ("asked", "lands"),
    [
        ("/console/traces/abc?span=1", "/console/traces/abc?span=1"),
        ("https://evil.example/", "/console/traces"),
        ("//evil.example/console/", "/console/traces"),
        ("/api/v1/keys", "/console/traces"),
        ("", "/console/traces"),
    ],
)
def test_signing_in_leads_only_to_a_console_page(asked: str, lands: str) -> None:
    assert safe_next(asked) == lands


def test_messages_read_as_a_chat_whatever_their_shape() -> None:
    canonical = (
        '[{"role":"system","content":"Be brief."},'
        '{"role":"user","content":[{"type":"text","text":"Post JE-1?"}]},'
        '{"role":"assistant","tool_calls":[{"id":"c1","name":"post","arguments":{"id":"JE-1"}}]},'
        '{"role":"tool","tool_call_id":"c1","content":"ok"}]'
    )
    chat = views.chat_messages(canonical)
    assert [m.role for m in chat] == ["system", "user", "assistant", "tool"]
    assert chat[1].text == "Post JE-1?"
    assert chat[2].tool_calls == [{"id": "c1", "name": "post", "arguments": '{"id": "JE-1"}'}]
    assert chat[3].tool_call_id == "c1"
    assert [m.text for m in views.chat_messages("not json")] == ["not json"]
    assert views.chat_messages(None) == []


def test_the_console_loads_nothing_from_elsewhere() -> None:
    shipped = [*CONSOLE.glob("templates/*.html"), *CONSOLE.glob("static/*.*")]
    assert len(shipped) > 8
    remote = re.compile(r"""(src|href|url)\s*[=(]\s*["']?(https?:)?//""", re.IGNORECASE)
    for path in shipped:
        assert not remote.search(path.read_text()), f"{path.name} loads from another host"
    vendored = {p.name for p in CONSOLE.glob("static/vendor/*")}
    assert {"htmx.min.js", "uPlot.iife.min.js", "htmx.LICENSE", "uPlot.LICENSE"} <= vendored

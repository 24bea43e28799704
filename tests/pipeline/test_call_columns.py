"""The canonical LLM call (``agentledger.schemas.calls``): request parameters, tools offered, finish
reasons, the request hash and the recorded request, computed once by the normalizer for every
convention, by both normalizers alike (every case runs through ``normalize_both``).

The peer fixtures (tests/fixtures/peers) are the same two OpenAI calls recorded by each library;
the synthetic spans cover the spellings and shapes the fixtures do not.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, get_type_hints

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.normalize import SourcePosition
from agentledger.schemas import CALL_COLUMN_NAMES, SPAN_COLUMN_NAMES, content_hash
from agentledger.schemas.calls import CanonicalMessage, ToolCall, request_hash
from tests.pipeline.test_normalizer import _request
from tests.support.normalizers import normalize_both

PEERS = Path(__file__).parent.parent / "fixtures" / "peers"

LOOKUP_TOOL = {
    "type": "function",
    "name": "lookup_journal_entry",
    "description": "Look up a general-ledger journal entry by id.",
    "parameters": {
        "type": "object",
        "properties": {
            "entry_id": {"type": "string", "description": "Journal entry id, e.g. JE-1234"}
        },
        "required": ["entry_id"],
    },
}
"""The tool every fixture's calls offer, in the canonical shape."""


def _batch(requests: list[ExportTraceServiceRequest]) -> tuple[list[dict], dict[str, dict]]:
    batch = normalize_both(
        [(r, SourcePosition("t", time.time_ns(), "test", 0, i)) for i, r in enumerate(requests)]
    )
    return batch.spans.to_pylist(), {r["hash"]: r for r in batch.contents.to_pylist()}


def _fixture(name: str) -> tuple[list[dict], dict[str, dict]]:
    return _batch([ExportTraceServiceRequest.FromString((PEERS / f"{name}.otlp.pb").read_bytes())])


def _llm(rows: list[dict]) -> list[dict]:
    return sorted((r for r in rows if r["kind"] == "LLM"), key=lambda r: r["start_time"])


def _one(attrs: dict[str, Any], events=()) -> tuple[dict, dict[str, dict]]:
    rows, contents = _batch([_request(attrs, events=events, name="edge")])
    return rows[0], contents


def _params(row: dict) -> dict[str, Any] | None:
    return json.loads(row["request_params"]) if row["request_params"] else None


def _tools(row: dict, contents: dict[str, dict]) -> list[Any] | None:
    if not row["tools_hash"]:
        return None
    record = contents[row["tools_hash"]]
    assert record["kind"] == "tools" and content_hash(record["content"]) == row["tools_hash"]
    return json.loads(record["content"])


# -- the peer fixtures, column by column ----------------------------------------------------------

# per fixture: (request_params of each call, tools offered, finish reasons of each call)
NO_PARAMS: list[Any] = [None, None]
OPENLIT_PARAMS = {
    "frequency_penalty": 0,
    "presence_penalty": 0,
    "seed": 0,
    "stream": False,  # gen_ai.request.stream
    "temperature": 1,
    "top_p": 1,
    "user": "",
}
LANGFUSE_PARAMS = {
    "frequency_penalty": 0,
    "max_tokens": "Infinity",  # as the Langfuse SDK records an unset max_tokens
    "presence_penalty": 0,
    "temperature": 1,
    "top_p": 1,
}
STREAMED = {"stream": True, "stream_options": {"include_usage": True}}
FIXTURES = {
    "openinference": (NO_PARAMS, [LOOKUP_TOOL], [["tool_calls"], ["stop"]]),
    "openinference_stream": ([STREAMED] * 2, [LOOKUP_TOOL], [["tool_calls"], ["stop"]]),
    "openllmetry": (NO_PARAMS, [LOOKUP_TOOL], [["tool_call"], ["stop"]]),
    "openllmetry_stream": (NO_PARAMS, [LOOKUP_TOOL], [["tool_call"], ["stop"]]),
    "openlit": ([OPENLIT_PARAMS] * 2, None, [["tool_calls"], ["stop"]]),
    "openlit_stream": (
        [{**OPENLIT_PARAMS, "stream": True}] * 2,
        None,
        [["tool_calls"], ["stop"]],
    ),
    "langfuse": ([LANGFUSE_PARAMS] * 2, [LOOKUP_TOOL], [[], []]),  # not recorded unstreamed
    "langfuse_stream": ([LANGFUSE_PARAMS] * 2, [LOOKUP_TOOL], [["tool_calls"], ["stop"]]),
    "otel_genai": (NO_PARAMS, None, [["tool_calls"], ["stop"]]),
    "otel_genai_latest": (NO_PARAMS, None, [["tool_calls"], ["stop"]]),
    # no finish_reasons attribute when streamed: read from the output messages' finish_reason
    "otel_genai_latest_stream": (NO_PARAMS, None, [["tool_calls"], ["stop"]]),
}


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_request_params_per_convention(name: str) -> None:
    rows, _ = _fixture(name)
    assert [_params(r) for r in _llm(rows)] == FIXTURES[name][0]
    assert all(not r["request_params"] for r in rows if r["kind"] not in ("LLM", "AGENT"))


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_tools_offered_per_convention(name: str) -> None:
    rows, contents = _fixture(name)
    expected = FIXTURES[name][1]
    assert [_tools(r, contents) for r in _llm(rows)] == [expected, expected]
    assert all(not r["tools_hash"] for r in rows if r["kind"] != "LLM")


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_finish_reasons_per_convention(name: str) -> None:
    rows, _ = _fixture(name)
    assert [r["finish_reasons"] for r in _llm(rows)] == FIXTURES[name][2]


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_request_hash_per_convention(name: str) -> None:
    rows, _ = _fixture(name)
    for row in rows:
        if row["kind"] != "LLM" or not row["input_hash"]:
            assert row["request_hash"] == ""
            continue
        # anyone can recompute it from the row (schemas.calls.request_hash)
        assert row["request_hash"] == request_hash(
            row["request_model"], _params(row), row["input_hash"], row["tools_hash"]
        )


def test_the_same_request_hashes_the_same_whichever_library_recorded_it() -> None:
    """OpenInference and OpenLLMetry record the same model, messages and tools (and no parameters
    besides the model) for both calls: one request hash. Langfuse records other parameters."""
    (oi, _), (ol, _) = _fixture("openinference"), _fixture("openllmetry")
    assert [r["request_hash"] for r in _llm(oi)] == [r["request_hash"] for r in _llm(ol)]
    assert all(r["request_hash"] for r in _llm(oi))
    assert [r["tools_hash"] for r in _llm(oi)] == [r["tools_hash"] for r in _llm(ol)]
    lf, _ = _fixture("langfuse")
    assert [r["tools_hash"] for r in _llm(lf)] == [r["tools_hash"] for r in _llm(oi)]
    assert _llm(lf)[0]["request_hash"] != _llm(oi)[0]["request_hash"]


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_raw_request_per_convention(name: str) -> None:
    rows, contents = _fixture(name)
    for row in _llm(rows):
        if not name.startswith("openinference"):
            assert row["raw_request_hash"] == ""  # only OpenInference records the request itself
            continue
        text = contents[row["raw_request_hash"]]["content"]
        assert content_hash(text) == row["raw_request_hash"]
        request = json.loads(text)
        assert (
            request["model"] == "gpt-4o"
            and request["tools"][0]["function"]["name"] == (LOOKUP_TOOL["name"])
        )
        assert len(request["messages"]) in (2, 4)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_system_fingerprint_per_convention(name: str) -> None:
    """Wherever the convention put it; OpenInference's OpenAI instrumentor only in the raw
    response (``output.value``). Streamed calls do not carry it everywhere."""
    rows, _ = _fixture(name)
    found = {r["system_fingerprint"] for r in _llm(rows)}
    has_it = name in (
        "openinference",
        "openinference_stream",
        "openllmetry",
        "openlit",
        "openlit_stream",
        "otel_genai_latest",
    )
    assert found == ({"fp_demo01"} if has_it else {""})


def test_messages_follow_the_one_canonical_schema() -> None:
    """Every message list any convention stored validates against ``CanonicalMessage``."""
    allowed = set(get_type_hints(CanonicalMessage))
    call_keys = set(get_type_hints(ToolCall))
    for name in FIXTURES:
        rows, contents = _fixture(name)
        for record in contents.values():
            if record["kind"] != "messages":
                continue
            for m in json.loads(record["content"]):
                assert set(m) <= allowed and isinstance(m["role"], str), (name, m)
                assert all(v not in ("", [], None) for v in m.values()), (name, m)
                if "content" in m:
                    assert isinstance(m["content"], (str, list)), (name, m)
                    if isinstance(m["content"], list):
                        assert all(isinstance(p, dict) and "type" in p for p in m["content"])
                for call in m.get("tool_calls", ()):
                    assert set(call) == call_keys, (name, call)


# -- spellings and shapes the fixtures do not show ------------------------------------------------


def test_parameter_spellings_become_the_canonical_names() -> None:
    oi, _ = _one(
        {
            "openinference.span.kind": "LLM",
            "llm.invocation_parameters": json.dumps(
                {
                    "model": "gpt-4o",
                    "stop": ["END"],
                    "n": 2,
                    "seed": 7,
                    "max_completion_tokens": 300,
                    "response_format": {"type": "json_object"},
                    "tool_choice": "auto",
                    "tools": [{"type": "function", "function": {"name": "f"}}],
                }
            ),
        }
    )
    assert _params(oi) == {
        "stop_sequences": ["END"],
        "choice.count": 2,
        "seed": 7,
        "max_completion_tokens": 300,
        "response_format": {"type": "json_object"},
        "tool_choice": "auto",
    }
    genai, _ = _one(
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.request.temperature": 0.2,
            "gen_ai.request.max_tokens": 100,
            "gen_ai.request.stop_sequences": ["a", "b"],
            "gen_ai.request.choice.count": 1,
            "gen_ai.request.is_stream": True,
            "gen_ai.openai.request.seed": 3,
            "gen_ai.openai.request.response_format": "json_object",
        }
    )
    assert _params(genai) == {
        "temperature": 0.2,
        "max_tokens": 100,
        "stop_sequences": ["a", "b"],
        "choice.count": 1,
        "stream": True,
        "seed": 3,
        "response_format": "json_object",
    }
    openllmetry, _ = _one(
        {
            "llm.request.type": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.request.top_p": 0.9,
            "llm.top_k": 40,
            "llm.frequency_penalty": 0.5,
            "llm.presence_penalty": 0.0,
            "llm.chat.stop_sequences": ["x"],
            "llm.is_streaming": False,
            "llm.request.repetition_penalty": 1.1,
        }
    )
    assert _params(openllmetry) == {
        "top_p": 0.9,
        "top_k": 40,
        "frequency_penalty": 0.5,
        "presence_penalty": 0,
        "stop_sequences": ["x"],
        "stream": False,
        "repetition_penalty": 1.1,
    }
    langfuse, _ = _one(
        {
            "langfuse.observation.type": "generation",
            "gen_ai.request.temperature": 0.1,
            "langfuse.observation.model.parameters": json.dumps({"temperature": 0.7, "stop": "\n"}),
        }
    )
    assert _params(langfuse) == {"temperature": 0.7, "stop_sequences": "\n"}  # Langfuse's wins


def test_tool_shapes_become_the_canonical_shape() -> None:
    anthropic = {
        "name": "lookup",
        "description": "Find it.",
        "input_schema": {"type": "object", "properties": {"id": {"type": "string"}}},
    }
    openai = {
        "type": "function",
        "function": {"name": "post", "description": "", "parameters": "{}", "strict": True},
    }
    builtin = {"type": "web_search_preview"}
    row, contents = _one(
        {
            "openinference.span.kind": "LLM",
            **{
                f"llm.tools.{i}.tool.json_schema": json.dumps(t)
                for i, t in enumerate([anthropic, openai, builtin])
            },
        }
    )
    assert _tools(row, contents) == [
        {
            "type": "function",
            "name": "lookup",
            "description": "Find it.",
            "parameters": anthropic["input_schema"],
        },
        {"type": "function", "name": "post", "parameters": {}, "strict": True},
        builtin,
    ]
    # OpenLLMetry's indexed functions; OpenInference's tools of the invocation parameters
    functions, contents = _one(
        {
            "llm.request.type": "chat",
            "llm.request.functions.0.name": "f",
            "llm.request.functions.0.parameters": '{"type": "object"}',
            "llm.request.functions.1.name": "g",
            "llm.request.functions.1.description": "",
            "llm.request.functions.1.parameters": "not json",
        }
    )
    assert _tools(functions, contents) == [
        {"type": "function", "name": "f", "parameters": {"type": "object"}},
        {"type": "function", "name": "g", "parameters": "not json"},
    ]
    from_params, contents = _one(
        {
            "openinference.span.kind": "LLM",
            "llm.invocation_parameters": json.dumps(
                {"functions": [{"name": "h", "parameters": {"type": "object"}}]}
            ),
        }
    )
    assert _tools(from_params, contents) == [
        {"type": "function", "name": "h", "parameters": {"type": "object"}}
    ]


def test_finish_reasons_wherever_the_convention_put_them() -> None:
    plain, _ = _one({"gen_ai.operation.name": "chat", "gen_ai.response.finish_reasons": "length"})
    assert plain["finish_reasons"] == ["length"]
    listed, _ = _one(
        {"gen_ai.operation.name": "chat", "gen_ai.response.finish_reasons": ["stop", "length"]}
    )
    assert listed["finish_reasons"] == ["stop", "length"]
    indexed, _ = _one(
        {
            "llm.request.type": "chat",
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.content": "a",
            "gen_ai.completion.0.finish_reason": "stop",
            "gen_ai.completion.1.role": "assistant",
            "gen_ai.completion.1.content": "b",
            "gen_ai.completion.1.finish_reason": "content_filter",
        }
    )
    assert indexed["finish_reasons"] == ["stop", "content_filter"]
    events, _ = _one(
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"},
        events=[("gen_ai.choice", {"index": 0, "finish_reason": "max_tokens", "content": "x"})],
    )
    assert events["finish_reasons"] == ["max_tokens"]
    both, _ = _one(
        {
            "openinference.span.kind": "LLM",
            "llm.finish_reason": "stop",
            "gen_ai.response.finish_reasons": '["length"]',
        }
    )
    assert both["finish_reasons"] == ["stop", "length"]


def test_request_hash_needs_input_messages_and_commits_to_every_part() -> None:
    base = {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.input.messages": json.dumps(
            [{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]
        ),
        "gen_ai.tool.definitions": json.dumps([LOOKUP_TOOL]),
        "gen_ai.request.temperature": 0,
    }
    row, _ = _one(base)
    assert row["request_hash"] == request_hash(
        "gpt-4o", {"temperature": 0}, row["input_hash"], row["tools_hash"]
    )
    changed = [
        {**base, "gen_ai.request.model": "gpt-4o-mini"},
        {**base, "gen_ai.request.temperature": 1},
        {**base, "gen_ai.tool.definitions": "[]"},
        {**base, "gen_ai.input.messages": base["gen_ai.input.messages"].replace("hi", "ho")},
    ]
    hashes = {_one(attrs)[0]["request_hash"] for attrs in changed}
    assert len(hashes) == 4 and row["request_hash"] not in hashes
    no_input, _ = _one({k: v for k, v in base.items() if k != "gen_ai.input.messages"})
    assert no_input["request_hash"] == ""


def test_recorded_request_is_stored_by_hash_whatever_its_size() -> None:
    small = json.dumps({"model": "m", "messages": [{"role": "user", "content": "q"}]})
    large = json.dumps({"model": "m", "messages": [{"role": "user", "content": "q" * 2000}]})
    for text in (small, large):
        row, contents = _one(
            {
                "openinference.span.kind": "LLM",
                "input.value": text,
                "llm.input_messages.0.message.role": "user",
                "llm.input_messages.0.message.content": "q",
            }
        )
        assert row["raw_request_hash"] == content_hash(text)
        assert contents[row["raw_request_hash"]]["content"] == text
    text_input, _ = _one({"openinference.span.kind": "LLM", "input.value": "just a question"})
    assert text_input["raw_request_hash"] == ""


# -- storage: the columns, the upgrade, the ledger ----------------------------------------------


def test_call_columns_are_span_columns() -> None:
    assert set(CALL_COLUMN_NAMES) <= set(SPAN_COLUMN_NAMES)


def test_an_existing_data_directory_upgrades_and_its_rows_keep_their_hash(
    chdb_path, database
) -> None:
    """Migration 0007 adds the columns to a store made before it; the rows stored before read
    them empty, and their ledger row hash is the one their checkpoint holds."""
    from agentledger.pipeline.derive.ledger import _BASE, ROW_HASH_SQL
    from agentledger.pipeline.store import load_migrations, migrate
    from agentledger.pipeline.store.embedded import EmbeddedStore

    store = EmbeddedStore(chdb_path, database=database)
    try:
        migrate(store, [m for m in load_migrations() if m.version < 7])
        rows, _ = _fixture("openinference")
        batch = normalize_both(
            [
                (
                    ExportTraceServiceRequest.FromString(
                        (PEERS / "openinference.otlp.pb").read_bytes()
                    ),
                    SourcePosition("t", time.time_ns(), "test"),
                )
            ]
        ).spans
        store.insert_arrow("spans", batch.drop_columns(list(CALL_COLUMN_NAMES)))
        old_sql = "lower(hex(SHA256(toJSONString(tuple({})))))".format(
            ", ".join(f"`{c}`" for c in _BASE)
        )
        before = store.query_rows(f"SELECT span_id, {old_sql} AS h FROM spans ORDER BY span_id")
        assert 7 in migrate(store)
        described = [r["name"] for r in store.query_rows("DESCRIBE TABLE spans")]
        assert described == [*SPAN_COLUMN_NAMES, "sent_by"]  # stamped by the server (0013)
        after = store.query_rows(f"SELECT span_id, {ROW_HASH_SQL} AS h FROM spans ORDER BY span_id")
        assert after == before and len(after) == len(rows)
        empty = store.query_scalar(
            "SELECT count() FROM spans WHERE request_params = '' AND tools_hash = '' "
            "AND empty(finish_reasons) AND request_hash = '' AND raw_request_hash = ''"
        )
        assert empty == len(rows)
    finally:
        store.command(f"DROP DATABASE IF EXISTS {database}")
        store.close()


def test_the_row_hash_covers_the_call_columns(store) -> None:
    from agentledger.pipeline.derive.ledger import ROW_HASH_SQL

    rows, _ = _fixture("openinference")
    batch = normalize_both(
        [
            (
                ExportTraceServiceRequest.FromString(
                    (PEERS / "openinference.otlp.pb").read_bytes()
                ),
                SourcePosition("t", time.time_ns(), "test"),
            )
        ]
    ).spans
    store.insert_arrow("spans", batch)
    llm = next(r for r in rows if r["kind"] == "LLM")
    sql = f"SELECT {ROW_HASH_SQL} AS h FROM spans WHERE span_id = {{s:String}}"
    before = store.query_scalar(sql, {"s": llm["span_id"]})
    store.command(
        "ALTER TABLE spans UPDATE request_params = '{\"temperature\":2}' "
        "WHERE span_id = {s:String} SETTINGS mutations_sync = 2",
        {"s": llm["span_id"]},
    )
    assert store.query_scalar(sql, {"s": llm["span_id"]}) != before
    assert re.fullmatch(r"[0-9a-f]{64}", before)


def test_read_services_know_no_convention_attribute_names() -> None:
    """Audit, replay and datasets read the canonical columns; only the normalizer (and the
    instrumentation) knows the conventions' attribute names."""
    import ast
    import gc

    services = Path(__file__).parent.parent.parent / "pipeline" / "services"
    conventions = {"OpenInference", "GenAI", "Traceloop", "Langfuse"}
    prefixes = ("llm.", "gen_ai.", "traceloop.", "langfuse.", "openinference.", "input.value")
    found = []
    for path in sorted(services.rglob("*.py")):
        # Python 3.11's AST constructor fails ("recursion depth mismatch") when a finalizer
        # runs mid-parse, e.g. a Kafka client another test left to the garbage collector
        gc.collect()
        gc.disable()
        try:
            tree = ast.parse(path.read_text())
        finally:
            gc.enable()
        docstrings = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "agentledger.schemas.attributes":
                found += [(path.name, a.name) for a in node.names if a.name in conventions]
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and id(node) not in docstrings
                and node.value.startswith(prefixes)
            ):
                found.append((path.name, node.value))
    assert found == []

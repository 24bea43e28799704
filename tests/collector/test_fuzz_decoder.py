"""Property tests of the OTLP decoder and of ``POST /v1/traces`` on malformed input.

Inputs: random bytes; the peers' captured requests (``tests/fixtures/peers``) truncated,
bit-flipped, spliced and gzipped; protobuf nested past every parser's recursion limit; random
JSON values; the captured OTLP/JSON with a random field given a random value; JSON nested
deeper than ``MAX_JSON_DEPTH``; invalid UTF-8.

Properties: the decoder raises nothing but ``OtlpError`` (a 4xx status and a message), the
app never answers 5xx, every error body is a ``google.rpc.Status`` in the request's encoding,
and each input takes bounded time. ``AGENTLEDGER_FUZZ_EXAMPLES`` sets the examples per test
for a deeper run by hand.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from google.rpc.status_pb2 import Status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentledger.collector import CollectorSettings, otlp
from agentledger.compose import build_edge_app
from agentledger.pipeline.sinks.memory import MemorySink

PEERS = Path(__file__).resolve().parents[1] / "fixtures" / "peers"
PB_SEEDS = [p.read_bytes() for p in sorted(PEERS.glob("*.otlp.pb")) if ".logs." not in p.name]
JSON_SEEDS = [
    json.loads(p.read_text()) for p in sorted(PEERS.glob("*.otlp.json")) if ".logs." not in p.name
]
MAX_BYTES = 1 << 20
SECONDS_PER_INPUT = 2.0
"""CPU seconds (this process's, so other load on the machine does not count) one input may take."""
FUZZ = settings(
    max_examples=int(os.environ.get("AGENTLEDGER_FUZZ_EXAMPLES", "300")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ERROR_STATUSES = {400, 413, 415}


# -- protobuf inputs ---------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field, written by hand (the message may be too deep to build)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_any_value(depth: int) -> bytes:
    """A request whose one span attribute is an array nested ``depth`` levels deep."""
    value = _field(1, b"x")  # AnyValue.string_value
    for _ in range(depth):
        value = _field(5, _field(1, value))  # AnyValue.array_value -> ArrayValue.values
    span = (
        _field(1, bytes(range(1, 17)))  # trace_id
        + _field(2, bytes(range(1, 9)))  # span_id
        + _field(5, b"deep")  # name
        + _field(9, _field(1, b"k") + _field(2, value))  # attributes: KeyValue(key, value)
    )
    return _field(1, _field(2, _field(2, span)))  # resource_spans.scope_spans.spans


@st.composite
def mutated_protobuf(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(PB_SEEDS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "splice", "delete"]))
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip":
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "splice":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at : at + draw(st.integers(1, 16))]
    return bytes(data)


protobuf_bodies = st.one_of(
    st.binary(max_size=2048),
    mutated_protobuf(),
    st.integers(0, 3000).map(nested_any_value),
)


# -- JSON inputs -------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
    | st.sampled_from(["", "0102030405060708", "01" * 16, "zz", "AAAAAAAAAAAAAAAAAAAAAA=="]),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children)
    ),
    max_leaves=20,
)


def _paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            out += _paths(value, (*path, i))
    return out


@st.composite
def wrong_typed_json(draw: st.DrawFn) -> bytes:
    """A captured OTLP/JSON request with one field (any depth) given a random JSON value."""
    doc = json.loads(json.dumps(draw(st.sampled_from(JSON_SEEDS))))
    path = draw(st.sampled_from(_paths(doc)[1:]))
    node = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = draw(json_values)
    return json.dumps(doc).encode()


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(otlp.MAX_JSON_DEPTH - 2, 5000))
    opener, closer = draw(
        st.sampled_from([("[", "]"), ('{"a":', "}"), ('{"resourceSpans":[', "]}")])
    )
    closed = draw(st.booleans())
    return (opener * depth + "1" + (closer * depth if closed else "")).encode()


@st.composite
def bad_utf8_json(draw: st.DrawFn) -> bytes:
    data = bytearray(json.dumps(draw(st.sampled_from(JSON_SEEDS))).encode())
    at = draw(st.integers(0, len(data)))
    data[at:at] = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"]))
    return bytes(data)


json_bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    wrong_typed_json(),
    deep_json(),
    bad_utf8_json(),
    st.binary(max_size=512),
)


# -- the decoder -------------------------------------------------------------------------------


def _decode(body: bytes, media: str, encoding: str | None = None) -> None:
    started, clean = time.process_time(), None
    try:
        data = otlp.decode_body(body, encoding, MAX_BYTES)
        # a request the compiled check accepts as received is one the pipeline can parse
        clean = otlp.inspect_protobuf(data, 1024) if media == otlp.PROTOBUF else None
        request = otlp.parse_request(data, media)
        assert clean is None or clean == otlp.count_spans(request)
    except otlp.OtlpError as exc:
        assert clean is None, "accepted as received, yet it does not parse"
        assert exc.status in ERROR_STATUSES and exc.message
    assert time.process_time() - started < SECONDS_PER_INPUT


@FUZZ
@given(body=protobuf_bodies)
def test_protobuf_decoder_raises_only_otlp_errors(body: bytes) -> None:
    _decode(body, otlp.PROTOBUF)


@FUZZ
@given(body=protobuf_bodies, truncate=st.integers(0, 64))
def test_gzip_decoder_raises_only_otlp_errors(body: bytes, truncate: int) -> None:
    packed = gzip.compress(body)
    _decode(packed[: len(packed) - truncate], otlp.PROTOBUF, "gzip")


@FUZZ
@given(body=json_bodies)
def test_json_decoder_raises_only_otlp_errors(body: bytes) -> None:
    _decode(body, otlp.JSON)


def test_deep_nesting_is_named() -> None:
    deep = b'{"resourceSpans":' + b"[" * 100 + b"]" * 100 + b"}"
    with pytest.raises(otlp.OtlpError, match=f"nested deeper than {otlp.MAX_JSON_DEPTH} levels"):
        otlp.parse_request(deep, otlp.JSON)
    with pytest.raises(otlp.OtlpError, match="malformed OTLP protobuf"):
        otlp.parse_request(nested_any_value(500), otlp.PROTOBUF)
    with pytest.raises(otlp.OtlpError, match="not valid UTF-8 at byte 1"):
        otlp.parse_request(b"{\xff}", otlp.JSON)


# -- the app -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = build_edge_app(CollectorSettings(no_auth=True, max_body_bytes=MAX_BYTES), MemorySink())
    return TestClient(app, raise_server_exceptions=False)


def _post(client: TestClient, body: bytes, content_type: str, encoding: str | None = None) -> None:
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    started = time.process_time()
    resp = client.post("/v1/traces", content=body, headers=headers)
    assert time.process_time() - started < SECONDS_PER_INPUT
    assert resp.status_code == 200 or resp.status_code in ERROR_STATUSES, resp.content[:300]
    media = resp.headers["content-type"]
    assert media == otlp.error_media(content_type)  # the request's encoding, else JSON
    if resp.status_code == 200:
        answer = ExportTraceServiceResponse()
        if media == otlp.PROTOBUF:
            answer.ParseFromString(resp.content)
        return
    if media == otlp.PROTOBUF:
        message = Status.FromString(resp.content).message
    else:
        message = resp.json()["message"]
    assert message


@FUZZ
@given(body=protobuf_bodies, gzipped=st.booleans())
def test_app_answers_malformed_protobuf_with_a_4xx_status(
    client: TestClient, body: bytes, gzipped: bool
) -> None:
    if gzipped:
        _post(client, gzip.compress(body), otlp.PROTOBUF, "gzip")
    else:
        _post(client, body, otlp.PROTOBUF)


@FUZZ
@given(body=json_bodies)
def test_app_answers_malformed_json_with_a_4xx_status(client: TestClient, body: bytes) -> None:
    _post(client, body, otlp.JSON)


@FUZZ
@given(
    body=st.binary(max_size=64),
    content_type=st.text(max_size=40).filter(lambda t: t.isprintable() and t.isascii()),
    encoding=st.sampled_from([None, "gzip", "deflate", "br", "identity", "x-unknown"]),
)
def test_app_answers_odd_headers_with_a_4xx_status(
    client: TestClient, body: bytes, content_type: str, encoding: str | None
) -> None:
    _post(client, body, content_type, encoding)

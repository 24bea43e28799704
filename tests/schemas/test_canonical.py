"""Canonical JSON is a spec: RFC 8785 with golden fixtures, one Python definition, and the
compiled normalizer's code path held to the same bytes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import hashlib
import json
import math
import subprocess
import sys
import uuid
from types import MappingProxyType
from typing import Any

import pytest
import rfc8785
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentledger.schemas import canonical as c

CASES = c.fixtures()
IDS = [case["name"] for case in CASES]


def _native() -> Any:
    import agentledger_native

    return agentledger_native


# -- the fixtures -------------------------------------------------------------------------------


def test_fixture_file_is_well_formed() -> None:
    assert len(CASES) >= 25
    assert len(set(IDS)) == len(IDS)
    for case in CASES:
        json.loads(case["input"])
        assert case["sha256"] == hashlib.sha256(case["canonical"].encode("utf-8")).hexdigest()
        assert isinstance(case["rfc8785"], bool)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_python_definition_reproduces_the_fixture(case: dict[str, Any]) -> None:
    got = c.canonicalize(case["input"])
    assert got == case["canonical"].encode("utf-8")
    assert c.content_hash(got) == case["sha256"]
    # canonical JSON is a fixed point
    assert c.canonicalize(got) == got


@pytest.mark.parametrize("case", [k for k in CASES if k["rfc8785"]], ids=lambda k: k["name"])
def test_plain_rfc8785_cases_agree_with_the_reference_library(case: dict[str, Any]) -> None:
    assert rfc8785.dumps(json.loads(case["input"])) == case["canonical"].encode("utf-8")


def test_the_compiled_normalizer_is_installed() -> None:
    from agentledger.pipeline.normalize import native_available

    assert native_available()
    assert hasattr(_native(), "canonical_json")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_native_reproduces_the_fixture(case: dict[str, Any]) -> None:
    native = _native()
    want = case["canonical"].encode("utf-8")
    assert native.canonical_json(case["input"]) == want
    assert native.canonical_json(want.decode("utf-8")) == want


# -- conversion rules ---------------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    BLUE = 2


class Level(enum.IntEnum):
    HIGH = 3


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name


@dataclasses.dataclass
class Point:
    y: float
    x: Any


def test_numbers_outside_i_json() -> None:
    assert c.canonical_json([math.nan, math.inf, -math.inf]) == "[null,null,null]"
    assert c.canonical_json([-0.0, 0.0, 1.0, 1e21, 1e-7, 2.5]) == "[0,0,1,1e+21,1e-7,2.5]"
    assert c.canonical_json(2**53 - 1) == "9007199254740991"
    assert c.canonical_json(2**53) == "9007199254740992"
    assert c.canonical_json(2**53 + 1) == '"9007199254740993"'
    assert c.canonical_json(-(2**63)) == '"-9223372036854775808"'
    assert c.canonical_json(10**20) == "100000000000000000000"
    assert c.canonical_json(10**400) == '"1' + "0" * 400 + '"'
    assert c.canonical_json(float(2**60)) == "1152921504606847000"


def test_strings_and_names() -> None:
    assert c.canonical_json("a\ud800b") == '"a\ufffdb"'
    assert c.canonical_bytes("a\udfffb") == "a\ufffdb".encode()
    assert c.canonical_json({"k\ud800": 1}) == '{"k\ufffd":1}'
    assert c.canonical_json({1: "a", 1.5: "b", 2.0: "c", None: "d", (1, 2): "e"}) == (
        '{"1":"a","1.5":"b","2":"c","[1,2]":"e","null":"d"}'
    )
    assert c.canonical_json({True: 1, False: 0}) == '{"false":0,"true":1}'
    # colliding names: a string name wins, else the value whose canonical JSON sorts first
    assert c.canonical_json({1: "int", "1": "str"}) == '{"1":"str"}'
    assert c.canonical_json({"1": "str", 1: "int"}) == '{"1":"str"}'
    assert c.canonical_json({Color.RED: "b", _Named("red"): "a"}) == '{"red":"a"}'
    assert c.canonical_json({_Named("red"): "a", Color.RED: "b"}) == '{"red":"a"}'
    assert c.canonical_json({Color.RED: 1}) == '{"red":1}'


def test_python_types_json_has_no_type_for() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=dt.timezone.utc)
    value = {
        "bytes": b"\x00\xffhi",
        "bytearray": bytearray(b"ab"),
        "view": memoryview(b"abc"),
        "when": when,
        "day": dt.date(2026, 1, 2),
        "time": dt.time(3, 4),
        "enum": [Color.RED, Color.BLUE, Level.HIGH],
        "id": uuid.UUID(int=1),
        "amount": decimal.Decimal("1.10"),
        "set": {3, "a", 1.5},
        "frozen": frozenset({"b", "a"}),
        "tuple": (1, (2,)),
        "mapping": MappingProxyType({"b": 1, "a": 2}),
        "point": Point(y=1.0, x={2}),
        "other": _Named("opaque"),
    }
    assert c.canonical_json(value) == (
        '{"amount":"1.10","bytearray":"YWI=","bytes":"AP9oaQ==","day":"2026-01-02",'
        '"enum":["red",2,3],"frozen":["a","b"],"id":"00000000-0000-0000-0000-000000000001",'
        '"mapping":{"a":2,"b":1},"other":"opaque","point":{"x":[2],"y":1},"set":["a",1.5,3],'
        '"time":"03:04:00","tuple":[1,[2]],"view":"YWJj",'
        '"when":"2026-01-02T03:04:05.600000+00:00"}'
    )


def test_pydantic_models_by_their_json_dump() -> None:
    from pydantic import BaseModel

    class Model(BaseModel):
        b: dt.date
        a: int

    assert c.canonical_json([Model(b=dt.date(2026, 1, 2), a=1)]) == '[{"a":1,"b":"2026-01-02"}]'


def test_subclasses_write_as_their_base() -> None:
    class Text(str):
        def __str__(self) -> str:
            return "not this"

    class StrColor(str, enum.Enum):
        GREEN = "green"

    assert c.canonical_json([Text("x"), StrColor.GREEN, Level.HIGH]) == '["x","green",3]'
    assert c.canonical_json({Text("k"): Text("v")}) == '{"k":"v"}'


def test_stored_forms() -> None:
    assert c.canonical_bytes("plain \u00e9 text") == "plain \u00e9 text".encode()
    assert c.canonical_text({"b": [1.0], "a": "x"}) == '{"a":"x","b":[1]}'
    assert c.canonical_json("text") == '"text"'
    assert c.content_hash("abc") == hashlib.sha256(b"abc").hexdigest()
    assert c.content_hash(b"abc") == hashlib.sha256(b"abc").hexdigest()


def test_circular_values_raise_recursion_error() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(RecursionError):
        c.canonical_json(loop)


def test_reading_json_text() -> None:
    assert c.loads("[18446744073709551615, 18446744073709551616]") == [2**64 - 1, 2.0**64]
    for text in ["NaN", "[Infinity]", "1e400", '"\\ud800"', '{"a":"\\udc00"}', "[1,]"]:
        with pytest.raises(ValueError):
            c.loads(text)
        with pytest.raises(ValueError):
            _native().canonical_json(text)
    assert c.loads('"\\ud83d\\ude00"') == "\U0001f600"


def test_one_definition_everywhere() -> None:
    from agentledger import schemas
    from agentledger.instrumentation import governance
    from agentledger.schemas import contents

    for name in ("canonical_bytes", "canonical_json", "canonical_text", "content_hash"):
        assert getattr(schemas, name) is getattr(c, name)
        assert getattr(contents, name) is getattr(c, name)
    assert governance.canonical_json is c.canonical_json
    assert "canonical_json" in governance.__all__


def test_importing_the_definition_is_light() -> None:
    code = (
        "import sys\n"
        "from agentledger.schemas.canonical import canonical_json\n"
        "canonical_json({'a': 1.0})\n"
        "print(sorted({'pyarrow', 'pydantic', 'agentledger.schemas.contents'} & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# -- the fast path and the compiled code path, on generated values -------------------------------

_NAMES = st.text(
    alphabet=st.sampled_from(["a", "b", "B", "_", "\u00e9", "\ue000", "\uffff", "\U0001f600", "1"]),
    max_size=4,
)
_FLOATS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1.0, 1e-5, 9.99e-6, 1e-6, 1e-7, 1e16, 1e21, 2.0**53, 0.1, 1e300]),
    st.integers(-(2**60), 2**60).map(float),
)
_INTS = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**53 - 1, 2**53, 2**53 + 1, -(2**53), 10**19, 2**64 - 1, -(2**63)]),
)
_SCALARS = st.one_of(st.none(), st.booleans(), _INTS, _FLOATS, st.text(max_size=12))
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(_NAMES, inner, max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_VALUES)
def test_every_path_writes_the_reference_bytes(value: Any) -> None:
    """orjson's fast path and rfc8785 on the value as given write what rfc8785 writes for the
    converted value."""
    assert c.canonical_json_bytes(value) == rfc8785.dumps(c._prepare(value))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_VALUES, st.booleans())
def test_native_and_python_agree_on_json_text(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    try:
        want = c.canonicalize(text)
    except ValueError:
        with pytest.raises(ValueError):
            _native().canonical_json(text)
        return
    assert _native().canonical_json(text) == want

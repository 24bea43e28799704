"""AgentLedger's canonical JSON: RFC 8785, the JSON Canonicalization Scheme (JCS).

Content hashes (the ``contents`` table) and governed tools' argument and result hashes
are SHA-256 digests of this form (ARCHITECTURE decision 8 makes it the form ledger leaves
hash too), so anyone can recompute them with any RFC 8785 implementation. ``fixtures.json`` beside this module holds golden cases (JSON text ->
canonical bytes -> SHA-256); the Python definition here and the compiled normalizer
(``agentledger_native.canonical_json``) are both tested against every one of them.

The canonical JSON of a value, as RFC 8785 writes it:

* no whitespace; ``null``, ``true``, ``false`` as such;
* object members sorted by their names compared as UTF-16 code units (so U+10000 and
  above sort before U+E000..U+FFFF);
* strings: ``"`` and ``\\`` escaped, U+0000..U+001F escaped as ``\\b \\t \\n \\f \\r`` or
  ``\\u00xx`` (lowercase hex); everything else, including non-ASCII, U+007F and U+2028,
  written raw as UTF-8;
* numbers as IEEE 754 doubles, written as ECMAScript's ``Number.prototype.toString``
  does: shortest round-trip digits, plain notation for 1e-6 <= |x| < 1e21 (``1``,
  ``0.000001``, ``100000000000000000000``), exponent notation outside it (``1e+21``,
  ``1e-7``, ``1.5e+300``), no ``.0``, ``-0`` as ``0``.

RFC 8785 takes only I-JSON (RFC 7493). Everything else is converted first, by these
fixed rules (values already in I-JSON are untouched, so for them the result is exactly
RFC 8785):

* integers beyond the I-JSON range (|n| > 2^53 - 1): written as the number when the
  double nearest to n is written with exactly n's digits (2^53 -> ``9007199254740992``,
  10^20 -> ``100000000000000000000``); otherwise, as RFC 7493 section 2.2 recommends for
  numbers a double cannot carry, as a JSON string of n's decimal digits (2^53 + 1 ->
  ``"9007199254740993"``). Nothing is rounded away, and the result is itself RFC 8785
  canonical (re-canonicalizing it with any implementation gives the same bytes);
* NaN, Infinity, -Infinity: ``null`` (as ECMAScript's ``JSON.stringify`` writes them);
* strings holding surrogate code points U+D800..U+DFFF (which UTF-8 cannot carry): each
  becomes U+FFFD;
* object names that are not strings: the name converted by these rules, then a string
  stays as it is and anything else becomes its canonical JSON text (``1`` -> ``"1"``,
  ``1.0`` -> ``"1"``, ``True`` -> ``"true"``, ``None`` -> ``"null"``). When two names
  become the same text, the member whose name was a string wins, else the one whose
  value's canonical JSON sorts first (by bytes);
* tuples: arrays; sets and frozensets: arrays sorted by the canonical JSON bytes of their
  items; other mappings: objects;
* bytes, bytearray, memoryview: a string, standard base64 with padding (RFC 4648 section 4;
  how OTLP/JSON and the normalizers write bytes);
* ``datetime``, ``date``, ``time``: a string, ``isoformat()``;
* enums: their value (converted); ``UUID`` and ``Decimal``: a string, ``str(v)``;
* pydantic models: ``model_dump(mode="json")`` (converted); dataclass instances: an
  object of their fields (converted);
* anything else: a string, ``str(v)``.

A circular or too deeply nested value raises ``RecursionError``.

JSON text is read (``loads``, ``canonicalize``) as the normalizers read it: integer
literals exactly when they fit 64 bits (-2^63 <= n <= 2^64 - 1; the rules above apply),
as the nearest double beyond that; other numbers as the nearest double (a literal beyond
the double range, ``NaN`` or ``Infinity`` is not JSON); a repeated member name keeps its
last value; a string escape that leaves a lone surrogate is not JSON.

``canonical_bytes`` / ``canonical_text`` are the forms content is stored in: a string as
its own UTF-8 bytes (surrogates as U+FFFD), anything else as canonical JSON.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import decimal
import enum
import hashlib
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from importlib import resources
from typing import Any, Final

import rfc8785

try:  # the same bytes, faster, for the values orjson writes exactly as RFC 8785 does
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson comes with the server extras
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "FIXTURES",
    "canonical_bytes",
    "canonical_json",
    "canonical_json_bytes",
    "canonical_text",
    "canonicalize",
    "content_hash",
    "fixtures",
    "loads",
]

FIXTURES: Final = "fixtures.json"
"""Name of the golden fixtures file in this package (``fixtures()`` reads it)."""

_SAFE: Final = 2**53 - 1
_I64_MIN: Final = -(2**63)
_U64_MAX: Final = 2**64 - 1
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_LONE_ESCAPE: Final = re.compile(r"\\u[dD][89a-fA-F]")


# -- the conversion of what RFC 8785 cannot take --------------------------------------------


def _string(s: str) -> str:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = _SURROGATE.sub("\ufffd", s)
    return s if type(s) is str else str.__str__(s)


def _integer(n: int) -> int | float | str:
    if -_SAFE <= n <= _SAFE:
        return n
    try:
        f = float(n)
    except OverflowError:
        return str(n)
    return f if rfc8785.dumps(f) == str(n).encode() else str(n)


def _key(k: Any) -> str:
    if isinstance(k, str):
        return _string(k)
    prepared = _prepare(k)
    if isinstance(prepared, str):
        return prepared
    return rfc8785.dumps(prepared).decode("utf-8")


def _object(items: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    from_other: set[str] = set()  # names that came from a non-string name
    for k, v in items:
        key, value, other = _key(k), _prepare(v), not isinstance(k, str)
        if key in out:
            old = (key in from_other, rfc8785.dumps(out[key]))
            if (other, rfc8785.dumps(value)) >= old:
                continue
        out[key] = value
        if other:
            from_other.add(key)
        else:
            from_other.discard(key)
    return out


def _prepare(v: Any) -> Any:
    """``v`` converted to what RFC 8785 takes, by the rules in the module docstring."""
    if v is None or v is True or v is False:
        return v
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, int):
        return _integer(int(v))
    if isinstance(v, float):
        return float(v) if math.isfinite(v) else None
    if isinstance(v, Mapping):
        return _object(v.items())
    if isinstance(v, (list, tuple)):
        return [_prepare(x) for x in v]
    if isinstance(v, enum.Enum):
        return _prepare(v.value)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(v).decode("ascii")
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, AbstractSet):
        return sorted((_prepare(x) for x in v), key=rfc8785.dumps)
    if isinstance(v, (uuid.UUID, decimal.Decimal)):
        return str(v)
    dump = getattr(v, "model_dump", None)
    if callable(dump) and not isinstance(v, type):
        return _prepare(dump(mode="json"))
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return _object((f.name, getattr(v, f.name)) for f in dataclasses.fields(v))
    return _string(str(v))


# -- the fast path ----------------------------------------------------------------------------


def _orjson_exact(v: Any) -> bool:
    """True when ``orjson.dumps(v, option=OPT_SORT_KEYS)`` writes exactly RFC 8785's bytes:
    plain JSON types only, integers in the I-JSON range, non-integral finite floats in
    1e-5 <= |x| < 1e16 (where both write plain decimals), and no member name with a
    character at or above U+E000 (where code-point order and UTF-16 order can differ).
    Strings orjson cannot encode (surrogates) make it raise instead."""
    t = type(v)
    if t is str or v is None or t is bool:
        return True
    if t is dict:
        for k, x in v.items():
            if type(k) is not str or (not k.isascii() and max(k) >= "\ue000"):
                return False
            if not _orjson_exact(x):
                return False
        return True
    if t is list or t is tuple:
        for x in v:
            if not _orjson_exact(x):
                return False
        return True
    if t is int:
        return bool(-_SAFE <= v <= _SAFE)
    if t is float:
        return bool(1e-5 <= abs(v) < 1e16 and not v.is_integer())
    return False


# -- the canonical forms ------------------------------------------------------------------------


def canonical_json_bytes(value: Any) -> bytes:
    """The canonical JSON of ``value`` as UTF-8 bytes (a string becomes a JSON string)."""
    if _orjson is not None and _orjson_exact(value):
        try:
            return _orjson.dumps(value, option=_orjson.OPT_SORT_KEYS)
        except _orjson.JSONEncodeError:  # surrogates, too deep: the general path decides
            pass
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, UnicodeError):  # a name with a surrogate: UnicodeError
        return rfc8785.dumps(_prepare(value))


def canonical_json(value: Any) -> str:
    """The canonical JSON text of ``value`` (a string becomes a JSON string literal)."""
    return canonical_json_bytes(value).decode("utf-8")


def canonical_bytes(value: Any) -> bytes:
    """The stored form of ``value``: a string as its UTF-8 bytes, anything else as canonical
    JSON."""
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError:
            return _string(value).encode("utf-8")
    return canonical_json_bytes(value)


def canonical_text(value: Any) -> str:
    """The stored form of ``value`` as text: a string as it is, anything else as canonical
    JSON."""
    return canonical_bytes(value).decode("utf-8")


def content_hash(canonical: str | bytes) -> str:
    """SHA-256 (64 lowercase hex digits) of a canonical form."""
    data = canonical if isinstance(canonical, bytes) else canonical_bytes(canonical)
    return hashlib.sha256(data).hexdigest()


# -- JSON text --------------------------------------------------------------------------------


def _parse_int(text: str) -> int | float:
    n = int(text)
    return n if _I64_MIN <= n <= _U64_MAX else _parse_float(text)


def _parse_float(text: str) -> float:
    f = float(text)
    if not math.isfinite(f):
        raise ValueError(f"number {text[:40]} is beyond the range of a double")
    return f


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _has_surrogate(v: Any) -> bool:
    if isinstance(v, str):
        return _SURROGATE.search(v) is not None
    if isinstance(v, dict):
        return any(_has_surrogate(k) or _has_surrogate(x) for k, x in v.items())
    if isinstance(v, list):
        return any(_has_surrogate(x) for x in v)
    return False


def loads(text: str | bytes) -> Any:
    """A JSON text read as the normalizers read it (see the module docstring); raises
    ``ValueError`` for what is not JSON."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    value = json.loads(
        text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_not_json
    )
    if _LONE_ESCAPE.search(text) and _has_surrogate(value):
        raise ValueError("a string escape leaves a lone surrogate")
    return value


def canonicalize(text: str | bytes) -> bytes:
    """The canonical JSON bytes of a JSON text: what ``agentledger_native.canonical_json``
    returns for the same text."""
    return canonical_json_bytes(loads(text))


def fixtures() -> list[dict[str, Any]]:
    """The golden cases: each has ``name``, ``input`` (JSON text), ``canonical`` (the
    canonical text; its UTF-8 bytes are the canonical form), ``sha256`` (of those bytes),
    and ``rfc8785``: False when the input is outside I-JSON, so the result depends on this
    module's conversion rules rather than on RFC 8785 alone."""
    data = resources.files(__name__).joinpath(FIXTURES).read_text(encoding="utf-8")
    cases: list[dict[str, Any]] = json.loads(data)["cases"]
    return cases

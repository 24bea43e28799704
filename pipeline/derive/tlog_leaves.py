"""Span leaf hashes computed by the engine, in the query that reads the spans.

Building a span's leaf in Python (``schemas.ledger.span_record``, then RFC 8785, then SHA-256)
costs about 100 µs a span, most of it turning the row into objects: that bounded both the
appender and ``ledger verify`` (ten million spans were hours of one core). The engine writes the
same bytes vectorized: ``span_leaf_hash()`` is one SQL expression over a ``spans`` row giving
``SHA-256(0x00 || canonical record)`` as hex, exactly the leaf ``schemas.ledger`` defines.

It is generated from ``SPAN_BODY_FIELDS`` (a field without a rendering below fails at import, so
the definition cannot grow without this following), and covers the rows whose canonical form is
plain to write in SQL: valid UTF-8 without control characters (only ``"`` and ``\\`` need
escaping then), attribute-reference names whose byte order is their UTF-16 order (not both a
character of U+E000..U+FFFF and one above U+FFFF among them) and none repeated, token counts
below 2^53, times from 1970. Any other row gets NULL and its leaf is built by ``schemas.ledger``
(the definition, and the oracle a property test holds this expression to on many rows:
tests/ledger/test_leaf_sql.py).
"""

from __future__ import annotations

from typing import Final

from agentledger.schemas.ledger import FORMAT_VERSION, LEAF_PREFIX, SPAN_BODY_FIELDS

__all__ = ["span_content_hashes", "span_leaf_hash"]


def _str(expr: str) -> str:
    """A JSON string of a value known to hold no control character and valid UTF-8."""
    return f"concat('\"', replaceAll(replaceAll(toString({expr}), '\\\\', '\\\\\\\\'), '\"', '\\\\\"'), '\"')"


def _array(items: str, render: str) -> str:
    return f"concat('[', arrayStringConcat(arrayMap(x -> {render}, {items}), ','), ']')"


def _nanos(column: str) -> str:
    return f"concat('\"', replaceOne(toString({column}), ' ', 'T'), 'Z\"')"


_HASHES: Final = (
    "arraySort(arrayDistinct(arrayFilter(h -> match(h, '^[0-9a-f]{64}$'), arrayConcat("
    "[§.input_hash, §.output_hash, §.system_prompt_hash, §.tools_hash, §.raw_request_hash], "
    "arrayMap(t -> tupleElement(t, 3), §.tool_calls), arrayMap(d -> tupleElement(d, 2), §.documents), "
    "mapValues(§.attribute_refs)))))"
)
"""What ``span_record`` lists in ``content_sha256``: every referenced hash, sorted, each once."""

_BODY: Final[dict[str, str]] = {
    "start_time": _nanos("§.start_time"),
    "end_time": _nanos("§.end_time"),
    "principal_chain": _array("§.principal_chain", _str("x")),
    "finish_reasons": _array("§.finish_reasons", _str("x")),
    "input_tokens": "toString(§.input_tokens)",
    "output_tokens": "toString(§.output_tokens)",
    "tool_calls": _array(
        "§.tool_calls",
        f"concat('{{\"arguments_hash\":', {_str('tupleElement(x, 3)')}, ',\"id\":', "
        f"{_str('tupleElement(x, 1)')}, ',\"name\":', {_str('tupleElement(x, 2)')}, '}}')",
    ),
    "documents": _array(
        "§.documents",
        f"concat('{{\"content_hash\":', {_str('tupleElement(x, 2)')}, ',\"id\":', "
        f"{_str('tupleElement(x, 1)')}, '}}')",
    ),
    "attribute_refs": (
        "concat('{', arrayStringConcat(arrayMap(x -> concat("
        f"{_str('tupleElement(x, 1)')}, ':', {_str('tupleElement(x, 2)')}), "
        "arraySort(x -> tupleElement(x, 1), arrayZip(mapKeys(§.attribute_refs), "
        "mapValues(§.attribute_refs)))), ','), '}')"
    ),
}
_STRINGS: Final = [f.name for f in SPAN_BODY_FIELDS if f.name not in _BODY]
_KNOWN_STRINGS: Final = frozenset(
    "trace_id span_id parent_span_id name kind status_code service agent_name session_id user_id "
    "principal_id policy_id provider operation request_model response_model system_fingerprint "
    "tool_name tool_call_id input_hash output_hash system_prompt_hash tools_hash request_hash "
    "raw_request_hash convention".split()
)
if set(_STRINGS) != _KNOWN_STRINGS:  # a new body field needs its rendering here
    raise RuntimeError(
        f"span body fields without a SQL rendering: {set(_STRINGS) ^ _KNOWN_STRINGS}"
    )


def _record() -> str:
    body = ", ',', ".join(
        f"'\"{name}\":', {_BODY.get(name) or _str('§.' + name)}"
        for name in sorted(f.name for f in SPAN_BODY_FIELDS)  # ASCII names: UTF-16 order
    )
    actor = _str("if(§.sent_by = '', 'pipeline', toString(§.sent_by))")
    micros = "concat('\"', substring(replaceOne(toString(§.start_time), ' ', 'T'), 1, 26), 'Z\"')"
    hashes = (
        f"concat('[', arrayStringConcat(arrayMap(h -> concat('\"', h, '\"'), {_HASHES}), ','), ']')"
    )
    return (
        f"concat('{{\"actor\":', {actor}, ',\"body\":{{', {body}, '}},\"content_sha256\":', "
        f'{hashes}, \',"id":\', {_str("§.span_id")}, \',"kind":"span","tenant":\', '
        f"{_str('§.tenant')}, ',\"time\":', {micros}, ',\"v\":{FORMAT_VERSION}}}')"
    )


def _plain() -> str:
    """The rows the expression covers (module docstring)."""
    text = ", ".join(
        [f"toString(§.{name})" for name in _STRINGS]
        + ["toString(§.sent_by)", "toString(§.tenant)"]
        + [f"arrayStringConcat(§.{a})" for a in ("principal_chain", "finish_reasons")]
        + [
            "arrayStringConcat(arrayMap(t -> concat(tupleElement(t, 1), tupleElement(t, 2), "
            "tupleElement(t, 3)), §.tool_calls))",
            "arrayStringConcat(arrayMap(d -> concat(tupleElement(d, 1), tupleElement(d, 2)), "
            "§.documents))",
            "arrayStringConcat(mapKeys(§.attribute_refs))",
            "arrayStringConcat(mapValues(§.attribute_refs))",
        ]
    )
    keys = "arrayStringConcat(mapKeys(§.attribute_refs))"
    bmp_high = f"multiSearchAny({keys}, [char(0xEE), char(0xEF)])"
    astral = f"multiSearchAny({keys}, [char(0xF0), char(0xF1), char(0xF2), char(0xF3), char(0xF4)])"
    return (
        f"isValidUTF8(concat({text})) AND NOT match(concat({text}), '[\\\\x00-\\\\x1f]') "
        f"AND NOT ({bmp_high} AND {astral}) "
        "AND length(mapKeys(§.attribute_refs)) = length(arrayDistinct(mapKeys(§.attribute_refs))) "
        "AND §.input_tokens < 9007199254740992 AND §.output_tokens < 9007199254740992 "
        "AND §.start_time >= toDateTime64(0, 9, 'UTC') AND §.end_time >= toDateTime64(0, 9, 'UTC') "
        "AND §.span_id != '' AND §.tenant != ''"
    )


_EXPRESSION: Final = (
    f"if({_plain()}, lower(hex(SHA256(concat(unhex('{LEAF_PREFIX.hex()}'), {_record()})))), NULL)"
)


def span_leaf_hash(table: str = "spans") -> str:
    """SQL over a row of ``table`` (a name or alias of ``spans``; its columns are qualified, so
    aliases such as ``SPAN_SELECT``'s times cannot shadow them): the row's leaf hash as 64
    lowercase hex digits, or NULL when the expression does not cover the row (module docstring)
    and ``schemas.ledger`` must build the leaf."""
    return _EXPRESSION.replace("§", table)


def span_content_hashes(table: str = "spans") -> str:
    """SQL over a row of ``table``: the array ``span_record`` lists as ``content_sha256`` (every
    referenced content hash, sorted, each once)."""
    return _HASHES.replace("§", table)

"""PII and secret detectors: real values found (checksums validated), look-alikes refused,
findings masked, and the store's RE2 prefilter lets every finding through."""

from __future__ import annotations

import json
import random
import re

import pytest

from agentledger.pipeline.derive.sensitive import (
    DETECTORS,
    SQL_PREFILTER,
    detect,
    detect_content,
    iban_valid,
    luhn_valid,
    mask,
)
from agentledger.schemas import pii
from bench.traffic import SYSTEM_PROMPT, _text
from tests.schemas.pii_inputs import EVERY_TEXT, LIMIT, best_of_3

POSITIVE = [
    ("write to jane.doe@contoso.com today", "email", "jane.doe@contoso.com"),
    ("cc: ops+alerts@mail.example.co.uk", "email", "ops+alerts@mail.example.co.uk"),
    ("card 4111 1111 1111 1111 exp 12/29", "credit_card", "4111111111111111"),
    ("amex 3782-822463-10005", "credit_card", "378282246310005"),
    ("mc 5555555555554444", "credit_card", "5555555555554444"),
    ("pay to DE89 3704 0044 0532 0130 00 now", "iban", "DE89 3704 0044 0532 0130 00"),
    ("iban GB82WEST12345698765432", "iban", "GB82WEST12345698765432"),
    ("call +1 415 555 2671", "phone", "+1 415 555 2671"),
    ("call (415) 555-2671 after 5", "phone", "(415) 555-2671"),
    ("ring +44 20 7946 0958", "phone", "+44 20 7946 0958"),
    (
        "OPENAI_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
        "api_key",
        "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z",
    ),
    ("aws AKIAIOSFODNN7EXAMPLE key", "api_key", "AKIAIOSFODNN7EXAMPLE"),
    ("token ghp_" + "a1B2c3D4e5" * 4, "api_key", "ghp_" + "a1B2c3D4e5" * 4),
    ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow", "private_key", "-----BEGIN RSA PRIVATE KEY-----"),
    (
        '{"password": "Xk9#q"} and api_key = "a8f9s7d6f5g4h3j2k1l0q9w8"',
        "secret",
        "a8f9s7d6f5g4h3j2k1l0q9w8",
    ),
]

NEGATIVE = [
    "card 4111 1111 1111 1112 (bad Luhn)",
    "order 1234567890123 shipped",  # 13 digits, no card prefix
    "IBAN GB82WEST12345698765433 (bad mod-97)",
    "IBAN DE89 3704 0044 0532 0130 0 (wrong length)",
    "amount 5234123, entry JE-1234, model gpt-4o-2024-08-06, date 2024-08-06",
    "version 1.2.3.4 and ticket 12-34-56",
    "password = aaaaaaaaaaaaaaaaaaaa",  # no entropy
    "an @ sign alone, user@localhost",
]


@pytest.mark.parametrize(("text", "kind", "value"), POSITIVE)
def test_detects_real_values_masked(text: str, kind: str, value: str) -> None:
    found = detect(text)
    assert [f.kind for f in found if f.kind == kind] == [kind], found
    finding = next(f for f in found if f.kind == kind)
    assert finding.masked == mask(value) and value not in finding.masked


@pytest.mark.parametrize("text", NEGATIVE)
def test_refuses_look_alikes(text: str) -> None:
    assert detect(text) == []


@pytest.mark.parametrize("name", sorted(EVERY_TEXT))
def test_detects_in_linear_time_on_pathological_text(name: str) -> None:
    elapsed = best_of_3(detect, EVERY_TEXT[name])
    assert elapsed < LIMIT, f"{name}: {elapsed * 1000:.0f} ms"


def test_every_detector_is_a_schema_rule_on_re2() -> None:
    assert [kind for kind, _, _ in DETECTORS] == [
        "email",
        "credit_card",
        "iban",
        "phone",
        "api_key",
        "private_key",
        "secret",
    ]
    assert all(isinstance(pattern, pii.Rule) for _, pattern, _ in DETECTORS)


def test_synthetic_finance_traffic_is_clean() -> None:
    rng = random.Random(3)
    texts = [SYSTEM_PROMPT] + [
        json.dumps(
            {
                "entry_id": f"JE-{rng.randrange(10_000)}",
                "amount": rng.randrange(10**7),
                "memo": _text(rng, 300),
            }
        )
        for _ in range(300)
    ]
    assert [t for t in texts if detect_content(t)] == []


def test_checksums() -> None:
    assert luhn_valid("79927398713") and not luhn_valid("79927398710")
    assert iban_valid("FR14 2004 1010 0505 0001 3M02 606") and not iban_valid(
        "FR14 2004 1010 0505 0001 3M02 607"
    )
    assert iban_valid("NO9386011117947") and not iban_valid("XX00")
    assert mask("abcdefgh") == "ab****gh" and mask("abc") == "***"


def test_json_content_is_scanned_string_by_string() -> None:
    messages = json.dumps(
        [
            {"role": "user", "content": "line one\n+1 415 555 2671"},
            {"role": "assistant", "content": "noted\njane@contoso.com"},
        ]
    )
    assert "\\n+1" in messages  # the escape glues letters to the number in the raw JSON
    assert sorted(f.kind for f in detect_content(messages)) == ["email", "phone"]


def test_prefilter_passes_every_finding(store) -> None:
    """What ClickHouse's match() keeps is a superset of what the detectors report."""
    texts = [text for text, _, _ in POSITIVE]
    kept = store.query_scalar(
        "SELECT arrayMap(t -> match(t, {p:String}), {texts:Array(String)})",
        {"p": SQL_PREFILTER, "texts": texts},
    )
    assert kept == [1] * len(texts)
    assert all(re.search(SQL_PREFILTER, t) for t in texts)
    clean = [SYSTEM_PROMPT, "the quarter close and the reversal date"]
    assert store.query_scalar(
        "SELECT arrayMap(t -> match(t, {p:String}), {texts:Array(String)})",
        {"p": SQL_PREFILTER, "texts": clean},
    ) == [0, 0]

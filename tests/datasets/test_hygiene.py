"""Redaction presets, the store-side redaction gate, fingerprints and the split."""

from __future__ import annotations

import importlib
import inspect
import random
import re

import pytest

from agentledger.pipeline.services.datasets import hygiene
from agentledger.pipeline.services.datasets.hygiene import (
    DatasetRedactor,
    Deduplicator,
    fingerprint,
    iban_valid,
    luhn_valid,
    normalized_text,
    split_of,
)
from agentledger.schemas import pii
from tests.schemas.pii_inputs import LIMIT, PATHOLOGICAL, best_of_3

REDACT = [
    ("mail me: a.b-c+d@mail.example.co.uk today", "mail me: [REDACTED:EMAIL] today"),
    ("call +1 (415) 555-0132 now", "call [REDACTED:PHONE] now"),
    ("or 415-555-0132", "or [REDACTED:PHONE]"),
    ("card 5555-5555-5555-4444 ok", "card [REDACTED:CARD] ok"),
    ("card 378282246310005", "card [REDACTED:CARD]"),
    ("iban GB82 WEST 1234 5698 7654 32.", "iban [REDACTED:IBAN]."),
    ("key sk-ant-api03-abcdefghijklmnopqrstuvwxyz012345", "key [REDACTED:SECRET]"),
    ("aws AKIAIOSFODNN7EXAMPLE here", "aws [REDACTED:SECRET] here"),
    ("Authorization: Bearer abcdefghijklmnop1234", "Authorization: Bearer [REDACTED:SECRET]"),
    ('{"api_key": "q8Wz3RtY9uIo"}', '{"api_key": "[REDACTED:SECRET]"}'),
    ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789", "token [REDACTED:SECRET]"),
]
KEEP = [
    "invoice 2024-01-15 for USD 4,000,000",
    "order 1234 5678 9012 3456 (not a card: fails Luhn)",
    "GB00 WEST 1234 5698 7654 32 has wrong check digits",
    "version 1.2.3.4 and build 20240115",
    "JE-4471 and FIN-7",
]


@pytest.mark.parametrize(("text", "expected"), REDACT)
def test_presets_redact(text: str, expected: str) -> None:
    assert DatasetRedactor().text(text) == expected


@pytest.mark.parametrize("text", KEEP)
def test_presets_keep_what_is_not_personal(text: str) -> None:
    assert DatasetRedactor().text(text) == text


@pytest.mark.parametrize(
    ("preset", "name"), [(preset, name) for preset, texts in PATHOLOGICAL.items() for name in texts]
)
def test_each_preset_redacts_pathological_text_in_linear_time(preset: str, name: str) -> None:
    text = PATHOLOGICAL[preset][name]
    for redactor in (DatasetRedactor([preset]), DatasetRedactor()):
        elapsed = best_of_3(redactor.text, text)
        assert elapsed < LIMIT, f"{redactor.presets} on {name}: {elapsed * 1000:.0f} ms"


def test_the_presets_run_the_schema_rules_on_re2() -> None:
    assert isinstance(hygiene._IBAN_HINT, pii.Rule)
    assert not any(value is re for value in vars(hygiene).values())


def test_checksums() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE88370400440532013000")


def test_choosing_presets_and_counting() -> None:
    r = DatasetRedactor.parse("email,card")
    assert r.presets == ("card", "email")
    out = r.text("x@y.example 4111 1111 1111 1111 +44 20 7946 0958")
    assert out == "[REDACTED:EMAIL] [REDACTED:CARD] +44 20 7946 0958"
    assert r.policy["replaced"] == {"card": 1, "email": 1}
    assert (
        DatasetRedactor.parse("none").text("x@y.example") == "x@y.example"
        and DatasetRedactor.parse("none").gate is None
    )
    assert r.value({"to": ["x@y.example"], "n": 3}) == {"to": ["[REDACTED:EMAIL]"], "n": 3}
    with pytest.raises(ValueError):
        DatasetRedactor.parse("email,ssn")


def test_the_store_side_gate_flags_everything_a_preset_would_change(store) -> None:
    """The export only rewrites content the store flagged with the RE2 gate: the gate must match
    every text any preset changes (and it should let plain text through)."""
    r = DatasetRedactor()
    flagged = [text for text, _ in REDACT]
    rng = random.Random(3)
    words = ["alpha", "beta", "Gamma", "policy", "review", "the", "of", "-", ",", "."]
    plain = [" ".join(rng.choice(words) for _ in range(40)) for _ in range(20)]
    rows = store.query_rows(
        "SELECT t, match(t, {g:String}) AS m FROM (SELECT arrayJoin({ts:Array(String)}) AS t)",
        {"g": r.gate, "ts": flagged + plain + KEEP},
    )
    result = {row["t"]: bool(row["m"]) for row in rows}
    assert all(result[t] for t in flagged)
    assert not any(result[t] for t in plain)


@pytest.mark.parametrize("multimatch", [True, False])
def test_the_store_tells_which_presets_can_apply(store, multimatch: bool) -> None:
    """Per content, the store computes a mask of the presets whose pattern matched (Vectorscan, or
    RE2 per preset): every preset that changes a text must be in its mask."""
    from agentledger.pipeline.services.datasets.selection import _mask_sql

    r = DatasetRedactor()
    texts = [text for text, _ in REDACT] + KEEP + ["x@y.example and 4111 1111 1111 1111"]
    params = {"ts": texts, "gates": list(r.gates), **{f"gate{i}": g for i, g in enumerate(r.gates)}}
    rows = store.query_rows(
        f"SELECT content, {_mask_sql(len(r.gates), multimatch)} AS mask "
        "FROM (SELECT arrayJoin({ts:Array(String)}) AS content)",
        params,
    )
    masks = {row["content"]: row["mask"] for row in rows}
    for text in texts:
        for i, preset in enumerate(r.presets):
            if DatasetRedactor([preset]).text(text) != text:
                assert masks[text] >> i & 1, (preset, text)
        apply = r.for_mask(masks[text])
        assert (apply(text) if apply else text) == r.text(text)


def test_normalized_text_and_dedup() -> None:
    assert normalized_text("Hello,   WORLD!!\n(again)") == normalized_text("hello world again")
    d = Deduplicator()

    def near(text: str) -> int:
        return fingerprint(normalized_text(text))

    assert d.filter(
        [1, 1, 2], [near("Reset the router."), near("x"), near("reset -- the ROUTER")]
    ) == [None, "duplicate", "near_duplicate"]
    assert d.filter([3, 1, 4], [near("Reset the modem."), near("y"), near("RESET THE ROUTER")]) == [
        None,
        "duplicate",
        "near_duplicate",
    ]
    off = Deduplicator(exact=False, near=False)
    assert off.filter([1, 1], [5, 5]) == [None, None]


def test_dedup_over_many_batches_matches_a_python_set() -> None:
    rng = random.Random(5)
    d = Deduplicator(near=False)
    seen: set[int] = set()
    for _ in range(20):
        batch = [
            rng.getrandbits(64) if rng.random() < 0.7 else rng.choice(sorted(seen) or [1])
            for _ in range(300)
        ]
        expected = []
        for key in batch:
            expected.append("duplicate" if key in seen else None)
            seen.add(key)
        assert d.filter(batch, [0] * len(batch)) == expected
    assert d.nbytes == 8 * len(seen)


def test_split_is_deterministic_and_close_to_the_fraction() -> None:
    keys = [f"{i:032x}" for i in range(20_000)]
    first = [split_of(k, 0.2, "s") for k in keys]
    assert first == [split_of(k, 0.2, "s") for k in keys]
    share = first.count("validation") / len(keys)
    assert 0.18 < share < 0.22
    assert split_of("x", 0.0) == "train"
    assert first != [split_of(k, 0.2, "other seed") for k in keys]


def test_public_surface_is_complete() -> None:
    module = importlib.import_module("agentledger.pipeline.services.datasets")
    exported = set(module.__all__)
    assert all(hasattr(module, name) for name in exported)
    public = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and not inspect.ismodule(v) and n != "annotations"
    }
    assert public <= exported, sorted(public - exported)

"""Detectors of personal data and secrets in text that left for a model provider.

Each detector is a pattern for candidates (a ``DETECT_*`` rule of
:mod:`agentledger.schemas.pii`, matched by RE2 in time linear in the text) plus a
validator that removes most false positives — Luhn for card numbers and ISO 13616
mod-97 for IBANs (the checks of :mod:`agentledger.schemas.pii`, which the redaction
presets use too), card issuer prefixes, digit counts for phone numbers, an entropy
floor for generic secrets. Detection is stricter than redaction on purpose: an anomaly
should name real findings, while redaction errs on the side of removing. Findings are masked: the raw value is never returned, so an
anomaly row cannot itself become a leak.

``SQL_PREFILTER`` is a cheap RE2 expression the store evaluates first
(``match(content, ...)``): every value a detector reports also matches it,
so only candidate contents travel to Python.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from agentledger.schemas import pii
from agentledger.schemas.pii import iban_valid, luhn_valid

__all__ = [
    "Finding",
    "DETECTORS",
    "SQL_PREFILTER",
    "detect",
    "detect_content",
    "luhn_valid",
    "iban_valid",
    "mask",
]


@dataclass(frozen=True)
class Finding:
    """One detected value: its kind and a masked form (never the value itself)."""

    kind: str
    masked: str


def mask(value: str) -> str:
    """First two and last two characters, the rest as ``*`` (short values fully masked)."""
    if len(value) <= 6:
        return "*" * len(value)
    return value[:2] + "*" * (len(value) - 4) + value[-2:]


_CARD_PREFIX = re.compile(
    r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9])|35)"
)
"""Issuer prefixes (Python's ``re``: it only ever sees the 13-19 digits of a candidate)."""


def _card(candidate: str) -> str | None:
    digits = candidate.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19 or len(set(digits)) < 2:
        return None
    if not _CARD_PREFIX.match(digits) or not luhn_valid(digits):
        return None
    return digits


def _phone(candidate: str) -> str | None:
    digits = sum(ch.isdecimal() for ch in candidate)
    return candidate.strip() if 10 <= digits <= 15 else None


def _entropy(s: str) -> float:
    counts: dict[str, int] = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _generic_secret(candidate: str) -> str | None:
    start = len(candidate)  # the value: the run of [A-Za-z0-9_-] the candidate ends with
    while start and candidate[start - 1] in _TOKEN_CHARS:
        start -= 1
    token = candidate[start:]
    if len(token) < 16:
        return None
    has_digit, has_alpha = any(c.isdigit() for c in token), any(c.isalpha() for c in token)
    return token if has_digit and has_alpha and _entropy(token) >= 3.5 else None


def _identity(candidate: str) -> str | None:
    return candidate


_Detector = tuple[str, pii.Rule, Callable[[str], "str | None"]]

DETECTORS: tuple[_Detector, ...] = (
    ("email", pii.DETECT_EMAIL, _identity),
    ("credit_card", pii.DETECT_CARD, _card),
    ("iban", pii.DETECT_IBAN, lambda c: c if iban_valid(c) else None),
    ("phone", pii.DETECT_PHONE, _phone),
    ("api_key", pii.DETECT_API_KEY, _identity),
    ("private_key", pii.DETECT_PRIVATE_KEY, _identity),
    ("secret", pii.DETECT_SECRET, _generic_secret),
)
"""(kind, candidate pattern, validator returning the value or None), in reporting order."""

SQL_PREFILTER = (
    r"@[A-Za-z0-9-]+\.|\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d[ -]?\d|[A-Z]{2}\d{2} ?[A-Z0-9]"
    r"|\+[1-9]|\(\d{3}\)|\d{3}[.-]\d{3}[.-]\d{4}|sk-|AKIA|ASIA|gh[pousr]_|xox[abprs]-|AIza|k_live_|eyJ"
    r"|PRIVATE KEY|(?i:api[_-]?key|secret|token|password|passwd)"
)
"""RE2 superset of the detectors, evaluated in ClickHouse before any text is fetched."""


def detect(text: str) -> list[Finding]:
    """Every finding in ``text``, each distinct (kind, masked value) once, in detector order."""
    seen: set[tuple[str, str]] = set()
    out = []
    for kind, pattern, validate in DETECTORS:
        for m in pattern.finditer(text):
            value = validate(m.group(0))
            if value is None:
                continue
            finding = Finding(kind, mask(value))
            if (finding.kind, finding.masked) not in seen:
                seen.add((finding.kind, finding.masked))
                out.append(finding)
    return out


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


def detect_content(content: str) -> list[Finding]:
    """Findings in a stored content record: JSON (message lists, arguments) is scanned
    string by string, so escapes such as ``\\n`` do not glue words to numbers."""
    texts: Iterable[str] = (content,)
    if content[:1] in ("[", "{"):
        try:
            texts = list(_strings(json.loads(content)))
        except ValueError:
            pass
    found: list[Finding] = []
    for text in texts:
        for f in detect(text):
            if f not in found:
                found.append(f)
    return found

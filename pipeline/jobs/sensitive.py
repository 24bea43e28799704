"""Detectors of personal data and secrets in text that left for a model provider.

Self-contained on purpose (the instrumentation's redaction presets are built
independently): each detector is a regular expression for candidates plus a
validator that removes most false positives — Luhn for card numbers, ISO
13616 mod-97 for IBANs, digit counts for phone numbers, an entropy floor for
generic secrets. Findings are masked: the raw value is never returned, so an
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


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a digit string (card numbers) is 0 mod 10."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28, "CZ": 24,
    "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FR": 27, "GB": 22, "GR": 27, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IS": 26, "IT": 27, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31,
    "NL": 18, "NO": 15, "PL": 28, "PT": 25, "RO": 24, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27,
    "TR": 26,
}


def iban_valid(iban: str) -> bool:
    """ISO 13616: known country length (15-34 otherwise) and mod-97 of the rearranged number is 1."""
    iban = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", iban):
        return False
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9])|35)")


def _card(candidate: str) -> str | None:
    digits = re.sub(r"[ -]", "", candidate)
    if not 13 <= len(digits) <= 19 or len(set(digits)) < 2:
        return None
    if not _CARD_PREFIX.match(digits) or not luhn_valid(digits):
        return None
    return digits


def _phone(candidate: str) -> str | None:
    digits = re.sub(r"\D", "", candidate)
    return candidate.strip() if 10 <= len(digits) <= 15 else None


def _entropy(s: str) -> float:
    counts: dict[str, int] = {}
    for ch in s:
        counts[ch] = counts.get(ch, 0) + 1
    return -sum(c / len(s) * math.log2(c / len(s)) for c in counts.values())


def _generic_secret(candidate: str) -> str | None:
    m = re.search(r"[A-Za-z0-9_\-]{16,}$", candidate)
    if m is None:
        return None
    token = m.group(0)
    has_digit, has_alpha = any(c.isdigit() for c in token), any(c.isalpha() for c in token)
    return token if has_digit and has_alpha and _entropy(token) >= 3.5 else None


def _identity(candidate: str) -> str | None:
    return candidate


_Detector = tuple[str, "re.Pattern[str]", Callable[[str], "str | None"]]

DETECTORS: tuple[_Detector, ...] = (
    ("email", re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}\b"), _identity),
    ("credit_card", re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])"), _card),
    ("iban", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"), lambda c: c if iban_valid(c) else None),
    ("phone", re.compile(r"(?<![\w+])(?:\+[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,4}"
                         r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w])"), _phone),
    ("api_key", re.compile(
        r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}"
        r"|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|[sr]k_live_[0-9A-Za-z]{24,}"
        r"|eyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"), _identity),
    ("private_key", re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"), _identity),
    ("secret", re.compile(r"(?i)\b(?:api[_-]?key|secret|access[_-]?token|auth[_-]?token|password|passwd)\b"
                          r"[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_\-]{16,}"), _generic_secret),
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

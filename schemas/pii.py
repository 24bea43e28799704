"""Rules for personal data and secrets in text, shared by every stage that looks for them.

The agent-side redaction (``agentledger.instrumentation.redaction``), the export
redaction of datasets (``agentledger.pipeline.services.datasets.hygiene``) and the
sensitive-egress detector (``agentledger.pipeline.derive.sensitive``) use these
patterns and validators, so a preset means the same thing wherever it is
applied. Standard library only: the instrumentation ships into agents.

Presets, in the order they apply (secrets and account numbers before the
looser patterns that could eat them): ``secret`` (API keys, tokens, private
keys, ``password=...`` assignments), ``iban`` (ISO 13616 mod-97 checked),
``card`` (13-19 digits passing Luhn), ``email``, ``phone`` (international or
grouped, 9-15 digits; ISO dates left alone). Each is replaced by its marker,
``[REDACTED:<NAME>]``.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = [
    "CARD",
    "DATE",
    "EMAIL",
    "IBAN",
    "PHONE",
    "PRESETS",
    "SECRET",
    "card_number",
    "iban_valid",
    "luhn_valid",
    "marker",
    "phone_number",
    "secret_replacement",
]

PRESETS: Final[tuple[str, ...]] = ("secret", "iban", "card", "email", "phone")
"""Preset names, in the order they apply."""


def marker(preset: str) -> str:
    """What a match of ``preset`` is replaced by: ``[REDACTED:EMAIL]``..."""
    return f"[REDACTED:{preset.upper()}]"


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (digits only) pass the Luhn checksum of payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


_IBAN_LENGTHS: Final = {
    "AD": 24,
    "AE": 23,
    "AT": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "EE": 20,
    "ES": 24,
    "FI": 18,
    "FR": 27,
    "GB": 22,
    "GR": 27,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MT": 31,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "RO": 24,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TR": 26,
}
_IBAN_SHAPE = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", re.ASCII)


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country's length (15-34 for countries not listed) and mod-97 of the
    rearranged number equal to 1. Spaces are ignored."""
    iban = iban.replace(" ", "").upper()
    if not _IBAN_SHAPE.fullmatch(iban):
        return False
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    return int("".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])) % 97 == 1


SECRET: Final = re.compile(
    r"\bsk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_\-]{20,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{30,}"
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}"
    r"|\bAIza[0-9A-Za-z_\-]{35}"
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
    r"|(?P<bearer>(?i:\bbearer\s+))[A-Za-z0-9._~+/\-]{16,}=*"
    r"|(?P<assign>(?i:\b(?:api[_-]?key|secret|access[_-]?token|auth[_-]?token|password|passwd)\b)"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]{8,}"
)
"""Secret-looking values; for ``Bearer x`` and ``api_key=x`` only the value is secret."""
EMAIL: Final = re.compile(
    r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"
)
IBAN: Final = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", re.ASCII)
CARD: Final = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])", re.ASCII)
PHONE: Final = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
    r"|\(\d{2,4}\)[ .\-]?\d{3,4}[ .\-]?\d{3,4}"
    r"|\d{3}[ .\-]\d{3}[ .\-]\d{4})(?!\w)",
    re.ASCII,
)
DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")


def secret_replacement(m: re.Match[str]) -> str:
    """The redacted form of a ``SECRET`` match: the marker, after ``Bearer ``/``api_key=`` if present."""
    return (m.group("bearer") or m.group("assign") or "") + marker("secret")


def card_number(candidate: str) -> str | None:
    """The digits of a ``CARD`` match when they are a card number (13-19 digits, Luhn), else None."""
    digits = candidate.replace(" ", "").replace("-", "")
    return digits if 13 <= len(digits) <= 19 and luhn_valid(digits) else None


def phone_number(candidate: str) -> bool:
    """True when a ``PHONE`` match is a phone number (9-15 digits, not an ISO date)."""
    return 9 <= sum(ch.isdigit() for ch in candidate) <= 15 and not DATE.fullmatch(candidate)

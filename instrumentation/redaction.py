"""Redaction at the edge: rewrite secrets and personal data before a span leaves the process.

A :class:`RedactionPolicy` is a list of presets plus an optional hook, with a
name and a version that are stamped on every exported span
(``agentledger.redaction.policy`` = ``name@version``), so an auditor can tell
which rules a stored span went through. Bump the version whenever the rules
change.

Presets (``PRESETS``), each a pattern plus, where a pattern alone would
over-match, a checksum:

* ``email``: e-mail addresses;
* ``phone``: phone numbers (international ``+CC``, or 10-15 digits in groups);
  ISO dates and plain numbers are left alone;
* ``card``: payment card numbers, 13-19 digits (spaces or dashes allowed) that
  pass the Luhn check;
* ``iban``: IBANs whose mod-97 check digits are valid;
* ``secret``: API keys and tokens that look like secrets (``sk-...``,
  ``sk-ant-...``, ``AKIA...``, ``ghp_...``, ``github_pat_...``, ``xox?-...``,
  ``AIza...``, JWTs, ``Bearer ...``, and ``api_key=...``-style assignments).

Matches are replaced by ``[REDACTED:<PRESET>]`` (no quotes, so JSON stays valid).

The hook is called after the presets for every string value, as
``hook(attribute_key, value)``, and returns the new value (``None`` drops the
attribute). Keys under ``agentledger.`` (principal, policy, pin) are never
rewritten: they are the attribution, not content.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Union

__all__ = ["PRESETS", "RedactionHook", "RedactionPolicy", "Redactor", "iban_valid", "luhn_valid"]

RedactionHook = Callable[[str, str], str | None]
"""``hook(attribute_key, value) -> new value`` (``None`` drops the attribute)."""


def luhn_valid(digits: str) -> bool:
    """True when ``digits`` (only digits) pass the Luhn checksum used by payment cards."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """True when ``iban`` (no spaces, upper case) has valid ISO 13616 mod-97 check digits."""
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


_SECRET = re.compile(
    r"(?:"
    r"\bsk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_\-]{20,}"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
    r"|\bgithub_pat_[A-Za-z0-9_]{40,}"
    r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
    r"|\bAIza[0-9A-Za-z_\-]{35}"
    r"|\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
    r"|(?i:\bbearer\s+)[A-Za-z0-9._~+/\-]{16,}=*"
    r"|(?i:\b(?:api[_-]?key|secret|access[_-]?token|auth[_-]?token|password|passwd)\b"
    r"[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]{8,}"
    r")"
)
_EMAIL = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
_CARD = re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}\b")
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
    r"|\(\d{2,4}\)[ .\-]?\d{3,4}[ .\-]?\d{3,4}"
    r"|\d{3}[ .\-]\d{3}[ .\-]\d{4})(?![\w])"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _sub_secret(m: re.Match[str]) -> str:
    text = m.group(0)
    # keep the "api_key=" part of an assignment, replace only the value
    sep = max(text.rfind("="), text.rfind(":")) if not text.startswith(("sk-", "eyJ")) else -1
    if sep > 0 and not text[:sep].lower().startswith("bearer"):
        head = text[: sep + 1]
        rest = text[sep + 1:]
        quote = rest[: len(rest) - len(rest.lstrip("\"' "))]
        return f"{head}{quote}[REDACTED:SECRET]"
    if text[:6].lower() == "bearer":
        return text[:7] + "[REDACTED:SECRET]"
    return "[REDACTED:SECRET]"


def _sub_card(m: re.Match[str]) -> str:
    digits = re.sub(r"[ \-]", "", m.group(0))
    return "[REDACTED:CARD]" if 13 <= len(digits) <= 19 and luhn_valid(digits) else m.group(0)


def _sub_iban(m: re.Match[str]) -> str:
    return "[REDACTED:IBAN]" if iban_valid(m.group(0).replace(" ", "")) else m.group(0)


def _sub_phone(m: re.Match[str]) -> str:
    text = m.group(0)
    digits = sum(ch.isdigit() for ch in text)
    if not 9 <= digits <= 15 or _DATE.fullmatch(text):
        return text
    return "[REDACTED:PHONE]"


_Sub = Union[str, Callable[[re.Match[str]], str]]

PRESETS: dict[str, tuple[re.Pattern[str], _Sub, str]] = {
    # order matters: secrets and account numbers before the looser patterns that could eat them
    "secret": (_SECRET, _sub_secret, "[REDACTED:SECRET]"),
    "iban": (_IBAN, _sub_iban, "[REDACTED:IBAN]"),
    "card": (_CARD, _sub_card, "[REDACTED:CARD]"),
    "email": (_EMAIL, "[REDACTED:EMAIL]", "[REDACTED:EMAIL]"),
    "phone": (_PHONE, _sub_phone, "[REDACTED:PHONE]"),
}
"""Preset name -> (pattern, replacement, marker)."""

_PRESET_ORDER = tuple(PRESETS)


@dataclass(frozen=True)
class RedactionPolicy:
    """Which presets and hook apply, under a name and version recorded on each span."""

    presets: Sequence[str] = _PRESET_ORDER
    hook: RedactionHook | None = None
    name: str = "agentledger-default"
    version: str = "1"
    exempt_prefixes: tuple[str, ...] = field(default=("agentledger.",))

    def __post_init__(self) -> None:
        unknown = [p for p in self.presets if p not in PRESETS]
        if unknown:
            raise ValueError(f"unknown redaction presets {unknown}; known: {sorted(PRESETS)}")

    @property
    def label(self) -> str:
        """``name@version``, the value of ``agentledger.redaction.policy``."""
        return f"{self.name}@{self.version}"

    @classmethod
    def of(cls, spec: None | bool | str | Iterable[str] | RedactionHook | RedactionPolicy) -> RedactionPolicy | None:
        """A policy from what ``instrument(redact=...)`` accepts.

        ``None``/``False``/``"none"``: no redaction; ``True``/``"all"``: every
        preset; a comma-separated string or list of preset names; a callable
        hook (presets off); or a policy.
        """
        if spec is None or spec is False:
            return None
        if isinstance(spec, RedactionPolicy):
            return spec
        if spec is True:
            return cls()
        if callable(spec):
            return cls(presets=(), hook=spec)
        names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else [str(s) for s in spec]
        names = [n for n in names if n]
        if names in ([], ["none"]):
            return None
        if names == ["all"]:
            return cls()
        return cls(presets=tuple(n for n in _PRESET_ORDER if n in names) + tuple(n for n in names if n not in PRESETS))


_SECRET_HINTS = ("sk-", "akia", "asia", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox", "aiza",
                 "eyj", "bearer", "api_key", "api-key", "apikey", "secret", "token", "passw")
"""Lower-case literals one of which every ``secret`` match contains: a cheap test before the regex."""
_SECRET_HINT = re.compile("|".join(map(re.escape, _SECRET_HINTS)))
_NUMBER_RUN = re.compile(r"\d[\d \-().]{7,}\d|[A-Z]{2}\d{2}[A-Z0-9 ]{11,}")
"""A run of digits long enough to be a card, phone or IBAN: without one those presets cannot match."""


class Redactor:
    """Applies a :class:`RedactionPolicy` to strings; counts what it changed.

    Runs on the export thread for every string attribute, so each preset is
    guarded by a test that costs far less than its pattern (a literal or a
    short regex); typical text with nothing to redact never reaches the
    patterns.
    """

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy
        chosen = [name for name in _PRESET_ORDER if name in policy.presets]
        self._secret = PRESETS["secret"][:2] if "secret" in chosen else None
        self._email = PRESETS["email"][:2] if "email" in chosen else None
        self._numbers = [PRESETS[name][:2] for name in chosen if name in ("iban", "card", "phone")]

    def text(self, value: str) -> str:
        """``value`` with every preset match replaced."""
        if len(value) < 6:  # shorter than anything a preset matches (a@b.cc)
            return value
        if self._secret is not None:
            if _SECRET_HINT.search(value.lower()):
                pattern, repl = self._secret
                value = pattern.sub(repl, value)
        if self._numbers and _NUMBER_RUN.search(value):
            for pattern, repl in self._numbers:
                value = pattern.sub(repl, value)
        if self._email is not None and "@" in value:
            pattern, repl = self._email
            value = pattern.sub(repl, value)
        return value

    def value(self, key: str, value: str) -> str | None:
        """The exported form of one string attribute (``None``: drop it)."""
        if key.startswith(self.policy.exempt_prefixes):
            return value
        out = self.text(value)
        hook = self.policy.hook
        if hook is not None:
            out = hook(key, out)
        return out

"""Redaction at the edge: rewrite secrets and personal data before a span leaves the process.

A :class:`RedactionPolicy` is a list of presets plus an optional hook, with a
name and a version that are stamped on every exported span
(``agentledger.redaction.policy`` = ``name@version``), so an auditor can tell
which rules a stored span went through. Bump the version whenever the rules
change.

Presets (``PRESETS``; the rules are :mod:`agentledger.schemas.pii`'s, shared with the
export redaction and the egress detector), each a pattern plus, where a pattern
alone would over-match, a checksum:

* ``email``: e-mail addresses;
* ``phone``: phone numbers (international ``+CC``, or 10-15 digits in groups);
  ISO dates and plain numbers are left alone;
* ``card``: payment card numbers, 13-19 digits (spaces or dashes allowed) that
  pass the Luhn check;
* ``iban``: IBANs whose mod-97 check digits are valid;
* ``secret``: API keys and tokens that look like secrets (``sk-...``,
  ``sk-ant-...``, ``AKIA...``, ``ghp_...``, ``github_pat_...``, ``xox?-...``,
  ``AIza...``, JWTs, private keys, ``Bearer ...``, and ``api_key=...``-style assignments).

Matches are replaced by ``[REDACTED:<PRESET>]`` (no quotes, so JSON stays valid).

The hook is called after the presets for every string value, as
``hook(attribute_key, value)``, and returns the new value (``None`` drops the
attribute). Keys under ``agentledger.`` (principal, policy, pin) are never
rewritten: they are the attribution, not content.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Union

from agentledger.schemas import pii
from agentledger.schemas.pii import iban_valid, luhn_valid

__all__ = ["PRESETS", "RedactionHook", "RedactionPolicy", "Redactor", "iban_valid", "luhn_valid"]

RedactionHook = Callable[[str, str], str | None]
"""``hook(attribute_key, value) -> new value`` (``None`` drops the attribute)."""


def _sub_card(m: pii.Match) -> str:
    return pii.marker("card") if pii.card_number(m.group(0)) else m.group(0)


def _sub_iban(m: pii.Match) -> str:
    return pii.marker("iban") if iban_valid(m.group(0)) else m.group(0)


def _sub_phone(m: pii.Match) -> str:
    return pii.marker("phone") if pii.phone_number(m.group(0)) else m.group(0)


_Sub = Union[str, Callable[[pii.Match], str]]  # noqa: UP007 - a runtime alias

PRESETS: dict[str, tuple[pii.Rule, _Sub, str]] = {
    # order matters (pii.PRESETS): secrets and account numbers before the looser patterns
    "secret": (pii.SECRET, pii.secret_replacement, pii.marker("secret")),
    "iban": (pii.IBAN, _sub_iban, pii.marker("iban")),
    "card": (pii.CARD, _sub_card, pii.marker("card")),
    "email": (pii.EMAIL, pii.marker("email"), pii.marker("email")),
    "phone": (pii.PHONE, _sub_phone, pii.marker("phone")),
}
"""Preset name -> (pattern, replacement, marker); the rules are :mod:`agentledger.schemas.pii`'s."""

_PRESET_ORDER = pii.PRESETS


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
    def of(
        cls, spec: None | bool | str | Iterable[str] | RedactionHook | RedactionPolicy
    ) -> RedactionPolicy | None:
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
        names = (
            [s.strip() for s in spec.split(",")]
            if isinstance(spec, str)
            else [str(s) for s in spec]
        )
        names = [n for n in names if n]
        if names in ([], ["none"]):
            return None
        if names == ["all"]:
            return cls()
        return cls(
            presets=tuple(n for n in _PRESET_ORDER if n in names)
            + tuple(n for n in names if n not in PRESETS)
        )


_SECRET_HINTS = (
    "sk-",
    "akia",
    "asia",
    "ghp_",
    "gho_",
    "ghu_",
    "ghs_",
    "ghr_",
    "github_pat_",
    "xox",
    "aiza",
    "eyj",
    "bearer",
    "api_key",
    "api-key",
    "apikey",
    "secret",
    "token",
    "passw",
    "private key",
)
"""Lower-case literals one of which every ``secret`` match contains: a cheap test before the pattern."""
# The tests are RE2 as well: on long text, Python's re spent longer on them than RE2 on the presets.
_SECRET_HINT = pii.Rule((None, "|".join(_SECRET_HINTS), None))  # the hints hold no metacharacter
_NUMBER_RUN = pii.Rule(
    (None, r"\p{Nd}[\p{Nd} \-().]{7,}\p{Nd}|[A-Z]{2}\p{Nd}{2}[A-Z0-9 ]{11,}", None)
)
"""A run of digits long enough to be a card, phone or IBAN: without one those presets cannot match
(``\\p{Nd}``: any decimal digit, as Python's ``\\d``)."""


class Redactor:
    """Applies a :class:`RedactionPolicy` to strings; counts what it changed.

    Runs on the export thread for every string attribute, so each preset is
    guarded by a test that costs less than its pattern (a literal or one
    RE2 pass); typical text with nothing to redact never reaches the
    patterns. Every pattern runs in time linear in the text (RE2).
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
            if _SECRET_HINT.test(value.lower()):
                pattern, repl = self._secret
                value = pattern.sub(repl, value)
        if self._numbers and _NUMBER_RUN.test(value):
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
            return hook(key, out)
        return out

"""Dataset hygiene: redaction, duplicate removal, deterministic splits, quality checks.

Everything here is applied per example while an export streams, so each piece
is cheap and keeps no state proportional to the data except the duplicate
detector (two 64-bit fingerprints per candidate, 16 bytes).

* **Redaction** (:class:`DatasetRedactor`): the presets the instrumentation uses, by
  the same names, rules and markers (``[REDACTED:EMAIL]``...; both take them from
  :mod:`agentledger.schemas.pii`): ``secret`` (API keys and tokens), ``iban`` (mod-97 checked), ``card`` (13-19
  digits passing Luhn), ``email``, ``phone`` (international or grouped; ISO
  dates left alone). The policy (name, version, presets) goes into the manifest.
* **Exact duplicates**: SHA-256 of the example's JSON line.
* **Near duplicates**: SHA-256 of the example's *normalized text* (lower-cased,
  ASCII whitespace, punctuation and symbols removed). It catches copies that
  differ in case, spacing, punctuation or markup; it does not catch paraphrases
  (MinHash would, at a per-example cost and memory this streaming exporter does
  not pay).
* **Split**: a hash of (seed, group key) decides train or validation, so an
  example lands in the same split on every run and as the dataset grows, and
  every example of one group (a trace, by default) lands on the same side.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import numpy as np

from agentledger.schemas import pii
from agentledger.schemas.pii import PRESETS, iban_valid, luhn_valid

__all__ = [
    "PRESETS",
    "REDACTION_POLICY_NAME",
    "REDACTION_POLICY_VERSION",
    "TRAIN",
    "VALIDATION",
    "Deduplicator",
    "DatasetRedactor",
    "fingerprint",
    "iban_valid",
    "luhn_valid",
    "normalized_text",
    "split_of",
]

REDACTION_POLICY_NAME: Final = "agentledger-export"
"""Name of the export redaction policy, recorded in every manifest."""
REDACTION_POLICY_VERSION: Final = "1"
"""Bump when a preset's rules change: manifests name the version they went through."""

TRAIN: Final = "train"
VALIDATION: Final = "validation"


# -- presets (the rules are agentledger.schemas.pii's, as the instrumentation's) ---------------

_SECRET_HINTS = ("sk-", "AKIA", "ASIA", "gh", "xox", "AIza", "eyJ", "PRIVATE KEY")
_SECRET_HINTS_LOWER = ("bearer", "key", "secret", "token", "passw")
_IBAN_HINT = pii.Rule((None, r"[A-Z]{2}\d{2}", None))


def _digits(text: str) -> int:
    """How many ASCII digits ``text`` holds."""
    return sum(map(text.count, "0123456789"))


# Patterns (RE2 and Vectorscan syntax alike) that every text a preset could rewrite matches: the
# store tests them while it reads content, and a preset runs only on content its pattern matched.
_GATES: Final[dict[str, str]] = {
    "secret": r"sk-|AKIA|ASIA|gh[pousr]_|github_pat_|xox[abposr]-|AIza|eyJ|PRIVATE KEY"
    r"|(?i:bearer|api[_-]?key|secret|access[_-]?token|auth[_-]?token|passw)",
    "iban": r"\b[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]){11}",
    "card": r"(?:^|[^0-9-])[0-9](?:[ -]?[0-9]){12}",
    "email": r"[A-Za-z0-9._%+-]@[A-Za-z0-9-]",
    "phone": r"(?:^|[^A-Za-z0-9_+])[+(]?[0-9](?:[ ().-]{0,2}[0-9]){8}",
}

_marker = pii.marker


class DatasetRedactor:
    """Rewrites strings (and the strings inside JSON-like values) by the chosen presets.

    Not thread-safe (it counts what it replaced); one per export.
    """

    def __init__(self, presets: Iterable[str] = PRESETS) -> None:
        chosen = [p.strip() for p in presets if p.strip()]
        unknown = sorted(set(chosen) - set(PRESETS))
        if unknown:
            raise ValueError(f"unknown redaction presets {unknown}; known: {list(PRESETS)}")
        self.presets: tuple[str, ...] = tuple(p for p in PRESETS if p in chosen)
        self.counts: Counter[str] = Counter()
        steps: dict[str, Callable[[str], str]] = {
            "secret": self._secret,
            "iban": self._iban,
            "card": self._card,
            "email": self._email,
            "phone": self._phone,
        }
        self._steps = [steps[p] for p in self.presets]
        self._by_mask: dict[int, Callable[[Any], Any]] = {}

    @classmethod
    def parse(cls, spec: str | Sequence[str] | None) -> DatasetRedactor:
        """From ``"all"``, ``"none"`` or a comma-separated list of preset names."""
        if spec is None:
            return cls()
        names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
        names = [n for n in names if n]
        if names == ["all"]:
            return cls()
        if names in ([], ["none"]):
            return cls(())
        return cls(names)

    @property
    def policy(self) -> dict[str, Any]:
        """What the manifest records: name, version, presets, markers, and how much was replaced."""
        return {
            "name": REDACTION_POLICY_NAME,
            "version": REDACTION_POLICY_VERSION,
            "presets": list(self.presets),
            "markers": {p: _marker(p) for p in self.presets},
            "replaced": {p: self.counts.get(p, 0) for p in self.presets},
        }

    @property
    def gate(self) -> str | None:
        """An RE2 pattern any text this redactor would change matches (None: it changes nothing)."""
        return "|".join(f"(?:{_GATES[p]})" for p in self.presets) or None

    @property
    def gates(self) -> tuple[str, ...]:
        """One pattern per preset (in ``presets`` order) that any text the preset would change
        matches: the store evaluates them while reading content, and :meth:`for_mask` then applies
        only the presets whose pattern matched (bit i = ``presets[i]``)."""
        return tuple(_GATES[p] for p in self.presets)

    def for_mask(self, mask: int) -> Callable[[Any], Any] | None:
        """A function redacting a JSON-like value with the presets of ``mask`` (None when mask is 0)."""
        if not mask:
            return None
        found = self._by_mask.get(mask)
        if found is None:
            steps = [step for i, step in enumerate(self._steps) if mask >> i & 1]

            def apply(value: Any, steps: list[Callable[[str], str]] = steps) -> Any:
                if isinstance(value, str):
                    for step in steps:
                        value = step(value)
                    return value
                if isinstance(value, dict):
                    return {k: apply(v) for k, v in value.items()}
                if isinstance(value, list):
                    return [apply(v) for v in value]
                return value

            found = self._by_mask[mask] = apply
        return found

    @property
    def label(self) -> str:
        """``name@version:preset,preset`` (``...:none`` when nothing is redacted)."""
        return (
            f"{REDACTION_POLICY_NAME}@{REDACTION_POLICY_VERSION}:{','.join(self.presets) or 'none'}"
        )

    def text(self, value: str) -> str:
        """``value`` with every preset match replaced by its marker."""
        if len(value) < 6:
            return value
        for step in self._steps:
            value = step(value)
        return value

    def value(self, value: Any) -> Any:
        """A JSON-like value with every string in it (not the keys) redacted."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        return value

    # -- one preset each; a cheap test first, since most text holds no match ----------------------

    def _secret(self, text: str) -> str:
        if not any(h in text for h in _SECRET_HINTS):
            lower = text.lower()
            if not any(h in lower for h in _SECRET_HINTS_LOWER):
                return text
        return pii.SECRET.sub(self._sub_secret, text)

    def _sub_secret(self, m: pii.Match) -> str:
        self.counts["secret"] += 1
        return pii.secret_replacement(m)

    def _iban(self, text: str) -> str:
        if not _IBAN_HINT.test(text):
            return text
        return pii.IBAN.sub(self._sub_iban, text)

    def _sub_iban(self, m: pii.Match) -> str:
        if not iban_valid(m.group(0)):
            return m.group(0)
        self.counts["iban"] += 1
        return _marker("iban")

    def _card(self, text: str) -> str:
        if _digits(text) < 13:
            return text
        return pii.CARD.sub(self._sub_card, text)

    def _sub_card(self, m: pii.Match) -> str:
        if pii.card_number(m.group(0)) is None:
            return m.group(0)
        self.counts["card"] += 1
        return _marker("card")

    def _email(self, text: str) -> str:
        if "@" not in text:
            return text
        text, n = pii.EMAIL.subn(_marker("email"), text)
        self.counts["email"] += n
        return text

    def _phone(self, text: str) -> str:
        if _digits(text) < 9:
            return text
        return pii.PHONE.sub(self._sub_phone, text)

    def _sub_phone(self, m: pii.Match) -> str:
        text = m.group(0)
        if not pii.phone_number(text):
            return text
        self.counts["phone"] += 1
        return _marker("phone")


# -- duplicates ----------------------------------------------------------------------------------

_SEPARATORS: Final = bytes(b for b in range(128) if not chr(b).isalnum())


def normalized_text(text: str) -> bytes:
    """Lower-cased UTF-8 with ASCII whitespace, punctuation and symbols removed.

    (Byte-level, for speed: characters outside ASCII are kept as they are.)
    """
    return text.lower().encode("utf-8", "replace").translate(None, _SEPARATORS)


def fingerprint(data: bytes) -> int:
    """A 64-bit fingerprint of ``data`` (the first 8 bytes of its SHA-256)."""
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "little")


def _seen_in(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    if not len(sorted_keys):
        return np.zeros(len(keys), dtype=bool)
    pos = np.searchsorted(sorted_keys, keys)
    pos[pos == len(sorted_keys)] = 0
    found: np.ndarray = sorted_keys[pos] == keys
    return found


def _repeats(keys: np.ndarray) -> np.ndarray:
    """True where a key already occurred earlier in ``keys``."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    repeat = np.zeros(len(keys), dtype=bool)
    repeat[order[1:]] = ordered[1:] == ordered[:-1]
    return repeat


class _Keys:
    """A growing set of 64-bit keys as sorted NumPy runs, merged like a binary counter (a run
    absorbs the previous one once that is no larger), so adding n keys costs O(n log n) in all
    and a lookup searches at most log2(n) runs."""

    def __init__(self) -> None:
        self.runs: list[np.ndarray] = []

    def contains(self, keys: np.ndarray) -> np.ndarray:
        found = np.zeros(len(keys), dtype=bool)
        for run in self.runs:
            found |= _seen_in(run, keys)
        return found

    def add(self, keys: np.ndarray) -> None:
        run = np.unique(keys)
        while self.runs and len(self.runs[-1]) <= len(run):
            run = np.concatenate([self.runs.pop(), run])
            run.sort(kind="stable")
        self.runs.append(run)

    @property
    def nbytes(self) -> int:
        return sum(int(r.nbytes) for r in self.runs)


class Deduplicator:
    """Drops exact and near duplicates of earlier candidates, first one kept.

    Works a batch of candidates at a time: ``filter(exact_keys, near_keys)``
    gives, per candidate in order, None (keep) or the reason (``duplicate``,
    ``near_duplicate``). Keys are 64-bit fingerprints: of the example's JSON
    line (exact) and of its normalized text (near). Every candidate's keys are
    remembered in sorted NumPy arrays, 8 bytes each.
    """

    def __init__(self, *, exact: bool = True, near: bool = True) -> None:
        self.exact = exact
        self.near = near
        self._exact = _Keys()
        self._near = _Keys()

    @property
    def method(self) -> dict[str, str]:
        return {
            "exact": "sha256 of the example's JSON line" if self.exact else "off",
            "near": "sha256 of the normalized text (lower-cased; ASCII whitespace, punctuation and symbols "
            "removed)"
            if self.near
            else "off",
        }

    @property
    def nbytes(self) -> int:
        """Memory the remembered keys take (a run may hold a key of an earlier run again)."""
        return self._exact.nbytes + self._near.nbytes

    def filter(self, exact_keys: Sequence[int], near_keys: Sequence[int]) -> list[str | None]:
        n = len(exact_keys)
        reasons: list[str | None] = [None] * n
        if not n:
            return reasons
        dup = np.zeros(n, dtype=bool)
        if self.exact:
            keys = np.fromiter(exact_keys, dtype=np.uint64, count=n)
            dup = self._exact.contains(keys) | _repeats(keys)
            self._exact.add(keys[~dup])
        near = np.zeros(n, dtype=bool)
        if self.near:
            keys = np.fromiter(near_keys, dtype=np.uint64, count=n)
            near = (self._near.contains(keys) | _repeats(keys)) & ~dup
            self._near.add(keys[~(dup | near)])
        for i in np.flatnonzero(dup):
            reasons[i] = "duplicate"
        for i in np.flatnonzero(near):
            reasons[i] = "near_duplicate"
        return reasons


# -- split ---------------------------------------------------------------------------------------


def split_of(group_key: str, validation_fraction: float, seed: str = "") -> str:
    """``train`` or ``validation`` for a group, the same on every run (hash of seed and key)."""
    if validation_fraction <= 0:
        return TRAIN
    h = int.from_bytes(
        hashlib.blake2b(
            f"{seed}\x00{group_key}".encode("utf-8", "replace"), digest_size=8
        ).digest(),
        "little",
    )
    return VALIDATION if h < validation_fraction * 2**64 else TRAIN

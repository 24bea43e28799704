"""Rules for personal data and secrets in text, shared by every stage that looks for them.

The agent-side redaction (``agentledger.instrumentation.redaction``), the export
redaction of datasets (``agentledger.pipeline.services.datasets.hygiene``) and the
sensitive-egress detector (``agentledger.pipeline.derive.sensitive``) use these
patterns and validators, so a preset means the same thing wherever it is
applied. Apart from the standard library the rules need only ``google-re2``:
the instrumentation ships into agents.

Presets, in the order they apply (secrets and account numbers before the
looser patterns that could eat them): ``secret`` (API keys, tokens, private
keys, ``password=...`` assignments), ``iban`` (ISO 13616 mod-97 checked),
``card`` (13-19 digits passing Luhn), ``email``, ``phone`` (international or
grouped, 9-15 digits; ISO dates left alone). Each is replaced by its marker,
``[REDACTED:<NAME>]``. The egress detector's candidates (``DETECT_*``) are
stricter: a finding should be real, while redaction errs on the side of removing.

Every pattern is a :class:`Rule`, matched by RE2 in time linear in the text: the
rules run on untrusted text (prompts, tool output, documents), on which a
backtracking engine can take quadratic time (64 KB of ``a.a.a…@x`` held Python's
``re`` in ``EMAIL`` for 7-16 s). RE2 has no look-around and ASCII-only ``\\b``,
``\\w``, ``\\d`` and ``\\s``, so a rule says what must precede or follow a match as
a context character of its own, and spells Python's Unicode classes out
(``_WORD``, ``_SPACE``, ``\\p{Nd}``): the rules match exactly what the same
patterns written for Python's ``re`` (look-arounds, Unicode classes) match, up
to the Unicode version of each engine's tables; one rule is narrower, on purpose:
a JWT's header is at most 1,000 characters (``_JWT_HEADER`` says why).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, Literal, overload

__all__ = [
    "Branch",
    "CARD",
    "DETECT_API_KEY",
    "DETECT_CARD",
    "DETECT_EMAIL",
    "DETECT_IBAN",
    "DETECT_PHONE",
    "DETECT_PRIVATE_KEY",
    "DETECT_SECRET",
    "EMAIL",
    "IBAN",
    "Match",
    "PHONE",
    "PRESETS",
    "Rule",
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
_LETTERS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS: Final = frozenset("0123456789")
_ALNUM: Final = _LETTERS | _DIGITS


def iban_valid(iban: str) -> bool:
    """ISO 13616: the country's length (15-34 for countries not listed) and mod-97 of the
    rearranged number equal to 1. Spaces are ignored."""
    iban = iban.replace(" ", "").upper()
    # the shape [A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}
    if not (
        15 <= len(iban) <= 34
        and _LETTERS.issuperset(iban[:2])
        and _DIGITS.issuperset(iban[2:4])
        and _ALNUM.issuperset(iban[4:])
    ):
        return False
    expected = _IBAN_LENGTHS.get(iban[:2])
    if expected is not None and len(iban) != expected:
        return False
    return int("".join(str(int(ch, 36)) for ch in iban[4:] + iban[:4])) % 97 == 1


# -- matching: RE2 over the text's UTF-8, context characters in place of look-arounds -------------

_EDGE: Final = b"\n"
"""Put before and after the text, so that its ends read as a character for the contexts: one that
is not a word character, digit, ``+``, ``-`` or ``.`` (the ends of a text pass a look-behind or
look-ahead that excludes those, and fail one that requires a word character, as in ``re``), and
that no core starts or ends with."""
_ENCODING: Final = "utf-8"
_ERRORS: Final = "surrogatepass"
"""Lone surrogates (JSON's ``\\ud800``) survive the round trip through bytes."""

Branch = tuple[str | None, str, str | None]
"""``(before, core, after)``: a match covers ``core``; the character just before it must match
the RE2 class ``before`` and the one just after it ``after`` (``None``: any, or nothing)."""

_Spans = list[tuple[int, int]]


class Match:
    """One match of a :class:`Rule`, read like ``re.Match``: ``group()`` is the text matched,
    ``group(name)`` a named group (``None`` when it took no part)."""

    __slots__ = ("_data", "_spans", "_names", "_start", "_end")

    def __init__(
        self, data: bytes, spans: _Spans, names: dict[str, int], start: int, end: int
    ) -> None:
        self._data = data
        self._spans = spans
        self._names = names
        self._start = start
        self._end = end

    @overload
    def group(self, name: Literal[0] = 0) -> str: ...
    @overload
    def group(self, name: str) -> str | None: ...
    def group(self, name: int | str = 0) -> str | None:
        if name == 0:
            return self._data[self._start : self._end].decode(_ENCODING, _ERRORS)
        if not isinstance(name, str) or name not in self._names:
            raise IndexError(f"no such group: {name!r}")
        start, end = self._spans[self._names[name]]
        return None if start < 0 else self._data[start:end].decode(_ENCODING, _ERRORS)

    def __repr__(self) -> str:
        return f"<pii.Match {self.group()!r}>"


class _Program:
    """One compiled RE2 expression of a rule and where to find its groups."""

    __slots__ = ("regex", "match", "cores", "names")

    def __init__(self, re2: Any, pattern: str) -> None:
        self.regex: Any = re2.compile(pattern.encode(_ENCODING))
        # The binding's own matcher returns every group's span in one call (the module's
        # search() builds a generator and a match object per call: twice the time per match).
        self.match: Callable[[Any, bytes, int, int], _Spans] = self.regex._regexp.Match
        index = {name.decode(): i for name, i in self.regex.groupindex.items()}
        self.cores = tuple(i for name, i in index.items() if name.startswith("_"))
        self.names = {name: i for name, i in index.items() if not name.startswith("_")}


_Programs = tuple[_Program, _Program | None, tuple[_Program, _Program] | None, Any]
"""A rule compiled: all branches; those not closed by a pattern (None: no ``closed_by``); that
pattern, anywhere and last; RE2's anchor kinds."""


class Rule:
    """A pattern of these rules: alternatives (:data:`Branch`) tried in order at each position,
    matched by RE2 in time linear in the text.

    Each branch matches its context character before the core (any character when ``before``
    is ``None``), so the leftmost core wins and, at one position, the first branch; after a
    match the search resumes at its last character, which the next match may take as its
    context. The matches are those of ``(?<!...)core(?!...)`` (or ``\\b``) in Python's ``re``.
    (A rule with no context at all is one plain expression.) Cores never match the empty string.

    RE2 searches again from each match, and a search reads on while an earlier-starting
    attempt is alive: a branch whose failing attempts read far (``.*?`` up to a closing line)
    is read again for every later match. ``closed_by`` gives such a branch a pattern that each
    of its matches holds, starting after the match's own start; once the search has passed the
    last place that pattern starts, the branch is left out.

    The RE2 expressions are compiled, and ``re2`` imported, on first use.
    """

    __slots__ = ("branches", "closed_by", "pattern", "_bare", "_programs")

    def __init__(self, *branches: Branch, closed_by: dict[int, str] | None = None) -> None:
        self.branches: tuple[Branch, ...] = branches
        self.closed_by: dict[int, str] = dict(closed_by or {})
        self._bare = all(before is None and after is None for before, _, after in branches)
        self.pattern: str = self._alternation(range(len(branches)))
        """The RE2 expression, over ``_EDGE + text + _EDGE`` (group ``_i``: branch i's core)."""
        self._programs: _Programs | None = None

    def _alternation(self, indices: Iterable[int]) -> str:
        if self._bare:  # no context anywhere: the match is the core, no groups to extract
            return "|".join(f"(?:{self.branches[i][1]})" for i in indices)
        # consecutive branches with the same context before share it
        runs: list[tuple[str, list[str]]] = []
        for i in indices:
            before, core, after = self.branches[i]
            alternative = f"(?P<_{i}>{core}){after or ''}"
            if runs and runs[-1][0] == (before or "(?s:.)"):
                runs[-1][1].append(alternative)
            else:
                runs.append((before or "(?s:.)", [alternative]))
        return "|".join(f"{before}(?:{'|'.join(alts)})" for before, alts in runs)

    def _compiled(self) -> _Programs:
        programs = self._programs
        if programs is None:
            import re2  # here: an agent pays the import on its first redaction, not at start-up

            full = _Program(re2, self.pattern)
            reduced = closer = None
            if self.closed_by:
                rest = [i for i in range(len(self.branches)) if i not in self.closed_by]
                reduced = _Program(re2, self._alternation(rest))
                closers = "|".join(f"(?:{p})" for p in self.closed_by.values())
                any_closer = _Program(re2, closers)
                last_closer = _Program(re2, f"(?s:.*)(?P<last>{closers})")  # greedy: the last
                closer = (any_closer, last_closer)
            programs = self._programs = (full, reduced, closer, re2._re2.RE2.Anchor)
        return programs

    @property
    def regex(self) -> Any:
        """The compiled RE2 expression (a ``re2`` object; compiled on first use)."""
        return self._compiled()[0].regex

    def _scan(self, data: bytes) -> Iterator[tuple[_Spans, dict[str, int], int, int]]:
        """(group spans, group names, core start, core end) of each match in ``data`` (the
        edged UTF-8 text)."""
        full, reduced, closer, anchor = self._compiled()
        program, size, pos = full, len(data), 0
        last_closer = size
        if closer is not None:
            # (one DFA pass tells whether there is any; finding the last one costs more)
            any_closer, last = closer
            last_closer = -1
            if any_closer.match(anchor.UNANCHORED, data, 0, size)[0][0] >= 0:
                last_closer = last.match(anchor.ANCHOR_START, data, 0, size)[1][0]
        while True:
            if pos >= last_closer and reduced is not None:
                program = reduced  # no closing pattern ahead: those branches cannot match
            spans = program.match(anchor.UNANCHORED, data, pos, size)
            if spans[0][0] < 0:
                return
            start, end = spans[0]
            for group in program.cores:
                start, end = spans[group]
                if start >= 0:
                    break
            yield spans, program.names, start, end
            if program.cores:
                pos = end - 1  # resume at the last character: the next match may take it as context
                while data[pos] & 0xC0 == 0x80:  # (its first byte)
                    pos -= 1
            else:
                pos = end

    def finditer(self, text: str) -> Iterator[Match]:
        """Every match in ``text``, left to right, not overlapping."""
        data = _EDGE + text.encode(_ENCODING, _ERRORS) + _EDGE
        for spans, names, start, end in self._scan(data):
            yield Match(data, spans, names, start, end)

    def search(self, text: str) -> Match | None:
        """The first match in ``text``, or None."""
        return next(self.finditer(text), None)

    def test(self, text: str) -> bool:
        """Whether ``text`` holds a match (:meth:`search` without building the match)."""
        data = _EDGE + text.encode(_ENCODING, _ERRORS) + _EDGE
        return next(self._scan(data), None) is not None

    def subn(self, repl: str | Callable[[Match], str], text: str) -> tuple[str, int]:
        """``text`` with every match replaced, and the number of matches: ``repl`` is the
        replacement (literal: no group references) or a function of the match."""
        data = _EDGE + text.encode(_ENCODING, _ERRORS) + _EDGE
        call = None if isinstance(repl, str) else repl
        literal = repl.encode(_ENCODING, _ERRORS) if isinstance(repl, str) else b""
        pieces: list[bytes] = []
        done, n = len(_EDGE), 0
        for spans, names, start, end in self._scan(data):
            pieces.append(data[done:start])
            if call is None:
                pieces.append(literal)
            else:
                pieces.append(
                    call(Match(data, spans, names, start, end)).encode(_ENCODING, _ERRORS)
                )
            done, n = end, n + 1
        if not n:
            return text, 0
        pieces.append(data[done : -len(_EDGE)])
        return b"".join(pieces).decode(_ENCODING, _ERRORS), n

    def sub(self, repl: str | Callable[[Match], str], text: str) -> str:
        """``text`` with every match replaced (see :meth:`subn`)."""
        return self.subn(repl, text)[0]

    def __repr__(self) -> str:
        return f"Rule({self.pattern!r})"


# -- the rules ------------------------------------------------------------------------------------
# RE2's \d, \w, \s and \b are ASCII. Where Python's re read them as Unicode, they are spelled out:
_WORD: Final = r"\p{L}\p{N}_"
"""Python's Unicode ``\\w`` (inside a class)."""
_SPACE: Final = (
    r"\t-\r\x1c-\x20\x85\xa0\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
)
"""Python's Unicode ``\\s`` (inside a class)."""
_NOT_WORD: Final = f"[^{_WORD}]"
"""Context for ``\\b`` next to a word character: not a (Unicode) word character."""
_IS_WORD: Final = f"[{_WORD}]"
_KEYWORDS: Final = (
    r"ap[i\x{130}\x{131}][_-]?key|secret|access[_-]?token|auth[_-]?token|password|passwd"
)
"""Assignment keywords, case-insensitive as Python folds them (``i`` also matches ``İ`` and ``ı``)."""
_JWT_HEADER: Final = r"[A-Za-z0-9_\-]{8,1000}"
"""A JWT's first segment, at most 1,000 characters (a header, even with a key id and URLs, is a
few hundred): unbounded, every attempt at an ``eyJ`` in a long run of token characters reads to
the end of the run again for each later match in it (quadratic). Longer headers (``x5c``
certificate chains) are not matched as JWTs."""
_JWT_TAIL: Final = r"\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8}"
"""What every JWT match holds after its header: where none is left, no JWT can start."""
_PEM_END: Final = r"-----END [A-Z ]*PRIVATE KEY-----"

SECRET: Final = Rule(
    (_NOT_WORD, r"sk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_\-]{20,}", None),
    (_NOT_WORD, r"(?:AKIA|ASIA)[0-9A-Z]{16}", _NOT_WORD),
    (_NOT_WORD, r"gh[pousr]_[A-Za-z0-9]{30,}", None),
    (_NOT_WORD, r"github_pat_[A-Za-z0-9_]{30,}", None),
    (_NOT_WORD, r"xox[abposr]-[A-Za-z0-9\-]{10,}", None),
    (_NOT_WORD, r"AIza[0-9A-Za-z_\-]{35}", None),
    (_NOT_WORD, rf"eyJ{_JWT_HEADER}\.[A-Za-z0-9_\-]{{8,}}\.[A-Za-z0-9_\-]{{8,}}", None),
    (None, rf"-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.)*?{_PEM_END}", None),
    (_NOT_WORD, rf"(?P<bearer>(?i:bearer)[{_SPACE}]+)[A-Za-z0-9._~+/\-]{{16,}}=*", None),
    (
        _NOT_WORD,
        rf"(?P<assign>(?i:{_KEYWORDS})[\"']?[{_SPACE}]*[:=][{_SPACE}]*[\"']?)[^{_SPACE}\"',;]{{8,}}",
        None,
    ),
    closed_by={6: _JWT_TAIL, 7: _PEM_END},
)
"""Secret-looking values; for ``Bearer x`` and ``api_key=x`` only the value is secret."""
_AT_DOMAIN: Final = r"@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
EMAIL: Final = Rule(
    # \b before the local part: after a non-word character when it starts with a word character,
    # after a word character when it starts with . % + -
    (_NOT_WORD, rf"[A-Za-z0-9_][A-Za-z0-9._%+\-]*{_AT_DOMAIN}", _NOT_WORD),
    (_IS_WORD, rf"[.%+\-][A-Za-z0-9._%+\-]*{_AT_DOMAIN}", _NOT_WORD),
)
"""E-mail addresses."""
IBAN: Final = Rule((None, r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", None))
"""IBAN-shaped text (ASCII); :func:`iban_valid` decides."""
CARD: Final = Rule((r"[^\d\-]", r"\d(?:[ \-]?\d){12,18}", r"[^\d\-]"))
"""13-19 digits, spaces or dashes between (ASCII); :func:`card_number` decides."""
PHONE: Final = Rule(
    (
        r"[^\w+]",
        r"(?:\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
        r"|\(\d{2,4}\)[ .\-]?\d{3,4}[ .\-]?\d{3,4}"
        r"|\d{3}[ .\-]\d{3}[ .\-]\d{4})",
        r"[^\w]",
    )
)
"""Phone-number-shaped text (ASCII); :func:`phone_number` decides."""

DETECT_EMAIL: Final = Rule(
    (
        r"[^A-Za-z0-9._%+\-]",
        r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}",
        _NOT_WORD,
    )
)
"""Egress detector: e-mail addresses (a whole local part, RFC lengths)."""
DETECT_CARD: Final = Rule((r"[^\p{Nd}\-]", r"\p{Nd}(?:[ \-]?\p{Nd}){12,18}", r"[^\p{Nd}]"))
"""Egress detector: card-number candidates (issuer prefix and Luhn are checked after)."""
DETECT_IBAN: Final = Rule((_NOT_WORD, r"[A-Z]{2}\p{Nd}{2}(?: ?[A-Z0-9]){11,30}", _NOT_WORD))
"""Egress detector: IBAN candidates (:func:`iban_valid` decides)."""
DETECT_PHONE: Final = Rule(
    (
        f"[^{_WORD}+]",
        r"(?:\+[1-9]\p{Nd}{0,2}[ .\-]?(?:\(\p{Nd}{1,4}\)[ .\-]?)?\p{Nd}{1,4}(?:[ .\-]?\p{Nd}{2,4}){2,4}"
        r"|\(\p{Nd}{3}\)[ .\-]?\p{Nd}{3}[ .\-]\p{Nd}{4}"
        r"|\p{Nd}{3}[.\-]\p{Nd}{3}[.\-]\p{Nd}{4})",
        _NOT_WORD,
    )
)
"""Egress detector: phone numbers (international, ``(415) 555-2671``, ``415-555-2671``)."""
DETECT_API_KEY: Final = Rule(
    (_NOT_WORD, r"sk-(?:ant-|proj-)?[A-Za-z0-9_\-]{20,}", None),
    (_NOT_WORD, r"(?:AKIA|ASIA)[0-9A-Z]{16}", None),
    (_NOT_WORD, r"gh[pousr]_[A-Za-z0-9]{36,}", None),
    (_NOT_WORD, r"xox[abprs]-[A-Za-z0-9\-]{10,}", None),
    (_NOT_WORD, r"AIza[0-9A-Za-z_\-]{35}", None),
    (_NOT_WORD, r"[sr]k_live_[0-9A-Za-z]{24,}", None),
    (_NOT_WORD, r"eyJ[A-Za-z0-9_\-]{10,1000}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}", None),
    closed_by={6: r"\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10}"},
)
"""Egress detector: API keys and tokens of known shapes (a JWT header bounded as ``_JWT_HEADER``)."""
DETECT_PRIVATE_KEY: Final = Rule(
    (None, r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----", None)
)
"""Egress detector: the first line of a PEM private key."""
DETECT_SECRET: Final = Rule(
    (
        _NOT_WORD,
        rf"(?i:{_KEYWORDS})[\"']?[{_SPACE}]*[:=][{_SPACE}]*[\"']?"
        r"(?i:[A-Za-z0-9_\-\x{130}\x{131}]){16,}",
        None,
    )
)
"""Egress detector: ``api_key = value``-style assignments (case-insensitive, as Python folds)."""


def secret_replacement(m: Match) -> str:
    """The redacted form of a ``SECRET`` match: the marker, after ``Bearer ``/``api_key=`` if present."""
    return (m.group("bearer") or m.group("assign") or "") + marker("secret")


def card_number(candidate: str) -> str | None:
    """The digits of a ``CARD`` match when they are a card number (13-19 digits, Luhn), else None."""
    digits = candidate.replace(" ", "").replace("-", "")
    return digits if 13 <= len(digits) <= 19 and luhn_valid(digits) else None


def _iso_date(text: str) -> bool:
    # \d{4}-\d{2}-\d{2} (Unicode digits, as Python's \d)
    return (
        len(text) == 10
        and text[4] == text[7] == "-"
        and (text[:4] + text[5:7] + text[8:]).isdecimal()
    )


def phone_number(candidate: str) -> bool:
    """True when a ``PHONE`` match is a phone number (9-15 digits, not an ISO date)."""
    return 9 <= sum(ch.isdigit() for ch in candidate) <= 15 and not _iso_date(candidate)

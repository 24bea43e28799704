"""The PII and secret rules: RE2 only, linear time on pathological text, and the same matches as
the same patterns written for Python's ``re`` (look-arounds, Unicode classes) give."""

from __future__ import annotations

import inspect
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentledger.schemas import pii
from tests.schemas.pii_inputs import EVERY_TEXT, LIMIT, best_of_3, fill

RULES = {name: value for name, value in vars(pii).items() if isinstance(value, pii.Rule)}

# The rules as Python's re writes them: the specification the RE2 rules are held to, on short
# text where backtracking costs nothing.
_KW = r"api[_-]?key|secret|access[_-]?token|auth[_-]?token|password|passwd"
ORACLE: dict[str, re.Pattern[str]] = {
    "SECRET": re.compile(
        r"\bsk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_\-]{20,}"
        r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
        r"|\bgithub_pat_[A-Za-z0-9_]{30,}"
        r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}"
        r"|\bAIza[0-9A-Za-z_\-]{35}"
        r"|\beyJ[A-Za-z0-9_\-]{8,1000}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
        r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"
        r"|(?P<bearer>(?i:\bbearer\s+))[A-Za-z0-9._~+/\-]{16,}=*"
        rf"|(?P<assign>(?i:\b(?:{_KW})\b)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]{{8,}}"
    ),
    "EMAIL": re.compile(
        r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b"
    ),
    "IBAN": re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b", re.ASCII),
    "CARD": re.compile(r"(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d\-])", re.ASCII),
    "PHONE": re.compile(
        r"(?<![\w+])(?:\+\d{1,3}[ .\-]?(?:\(\d{1,4}\)[ .\-]?)?\d{1,4}(?:[ .\-]?\d{2,4}){1,4}"
        r"|\(\d{2,4}\)[ .\-]?\d{3,4}[ .\-]?\d{3,4}"
        r"|\d{3}[ .\-]\d{3}[ .\-]\d{4})(?!\w)",
        re.ASCII,
    ),
    "DETECT_EMAIL": re.compile(
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
        r"\.[A-Za-z]{2,24}\b"
    ),
    "DETECT_CARD": re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])"),
    "DETECT_IBAN": re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b"),
    "DETECT_PHONE": re.compile(
        r"(?<![\w+])(?:\+[1-9]\d{0,2}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,4}(?:[ .-]?\d{2,4}){2,4}"
        r"|\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4})(?![\w])"
    ),
    "DETECT_API_KEY": re.compile(
        r"\b(?:sk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}|(?:AKIA|ASIA)[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{36,}"
        r"|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35}|[sr]k_live_[0-9A-Za-z]{24,}"
        r"|eyJ[A-Za-z0-9_-]{10,1000}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,})"
    ),
    "DETECT_PRIVATE_KEY": re.compile(
        r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"
    ),
    "DETECT_SECRET": re.compile(rf"(?i)\b(?:{_KW})\b[\"']?\s*[:=]\s*[\"']?[A-Za-z0-9_\-]{{16,}}"),
}

# Pieces of text the rules care about, ASCII and not: words and digits in other scripts (a word
# boundary or \d in Python's sense), Unicode spaces, case folds (K and ſ fold to k and s, İ and ı
# to i), a lone surrogate.
ATOMS = [
    *"abZxkKs140 -.@+()_%=:\"',;\n/~",
    *"éü中٣²\u00a0\u2003\u212a\u017f\u0130\u0131\ud800\U0001d7d8",
    "sk-",
    "sk-ant-",
    "AKIA",
    "ASIA",
    "ghp_",
    "github_pat_",
    "xoxb-",
    "AIza",
    "eyJ",
    "rk_live_",
    "Bearer ",
    "bearer\u00a0",
    "api_key",
    "apı-key",
    "password",
    "PASSWD",
    "ſecret",
    "token",
    "access_token",
    "Auth-Token",
    "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----",
    "-----BEGIN PRIVATE KEY-----",
    "-----END PRIVATE KEY-----",
    "4111 1111 1111 1111",
    "4111111111111111",
    "5555-5555-5555-4444",
    "378282246310005",
    "GB82 WEST 1234 5698 7654 32",
    "DE89370400440532013000",
    "GB82",
    "+1 415 555 2671",
    "(415) 555-2671",
    "415-555-2671",
    "415.555.2671",
    "+44 20 7946 0958",
    "2024-01-15",
    "jane.doe@contoso.com",
    "a@b.cc",
    "mail.example.co.uk",
    ".com",
    "@x",
    "AAAAAAAAAAAAAAAA",
    "aaaaaaaaaaaaaaaaaaaa",
    "0123456789",
    "1234",
]
TEXTS = st.lists(st.sampled_from(ATOMS), max_size=14).map("".join)
# JWT- and PEM-shaped pieces: the branches matched apart past their last closing pattern
STRUCTURES = st.lists(
    st.sampled_from(
        [
            *ATOMS[:8],
            "eyJ",
            "eyJaaaaaaaa.",
            ".eyJ",
            "aaaaaaaa",
            "bbbbbbbbbbbb",
            "AKIA0123456789ABCDEF",
            "sk-aaaaaaaaaaaaaaaaaaaaaaa",
            "ghp_" + "a" * 36,
            "-----BEGIN PRIVATE KEY-----",
            "-----END PRIVATE KEY-----",
            "-----END RSA PRIVATE KEY-----",
        ]
    ),
    max_size=30,
).map("".join)


def _groups(match: re.Match[str] | pii.Match, named: bool) -> tuple[str | None, ...]:
    return (match.group(0), *(match.group(n) for n in ("bearer", "assign") if named))


def test_every_rule_is_re2_and_no_python_re_is_left() -> None:
    assert set(ORACLE) <= set(RULES)
    for name, rule in RULES.items():
        assert type(rule.regex).__module__ == "re2", name
    assert not any(isinstance(v, re.Pattern) for v in vars(pii).values())
    assert not re.search(r"^\s*(import re|from re import)\b(?!2)", inspect.getsource(pii), re.M)


def test_all_is_complete() -> None:
    ours = {
        name
        for name, value in vars(pii).items()
        if not name.startswith("_")
        and (isinstance(value, pii.Rule) or getattr(value, "__module__", "") == pii.__name__)
    }
    assert ours <= set(pii.__all__) and all(hasattr(pii, name) for name in pii.__all__)


@pytest.mark.parametrize("name", sorted(ORACLE))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=TEXTS)
def test_the_same_matches_as_python_re(name: str, text: str) -> None:
    rule, oracle, named = RULES[name], ORACLE[name], name == "SECRET"
    expected = [_groups(m, named) for m in oracle.finditer(text)]
    assert [_groups(m, named) for m in rule.finditer(text)] == expected


@pytest.mark.parametrize("name", ["SECRET", "DETECT_API_KEY"])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=STRUCTURES)
def test_the_same_matches_around_jwts_and_pem_blocks(name: str, text: str) -> None:
    expected = [m.group() for m in ORACLE[name].finditer(text)]
    assert [m.group() for m in RULES[name].finditer(text)] == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("café.bar@example.com", "café[E]"),  # é is a word character: \b before the dot
        ("x_y@example.com", "[E]"),
        ("中a@example.com", "中a@example.com"),  # no word boundary inside 中a
        ("a@example.comé", "a@example.comé"),  # nor after the TLD
        ("a@b.cc a@b.cc", "[E] [E]"),
    ],
)
def test_word_boundaries_are_unicode_as_in_python(text: str, expected: str) -> None:
    assert pii.EMAIL.sub("[E]", text) == expected


def test_unicode_spaces_digits_and_case_folds() -> None:
    assert pii.SECRET.sub(pii.secret_replacement, "Bearer\u00a0abcdefghijklmnop1234") == (
        "Bearer\u00a0[REDACTED:SECRET]"
    )
    assert pii.SECRET.sub(pii.secret_replacement, "apı_key=s3cr3tValue99") == (
        "apı_key=[REDACTED:SECRET]"
    )
    assert pii.SECRET.sub(pii.secret_replacement, "\u017fecret: s3cr3tValue99") == (
        "\u017fecret: [REDACTED:SECRET]"
    )
    assert [m.group() for m in pii.DETECT_CARD.finditer("٣4111111111111111")] == [
        "٣4111111111111111"  # a digit too, as Python's \d reads it
    ]
    assert [m.group() for m in pii.CARD.finditer("٣4111111111111111")] == ["4111111111111111"]


def test_matches_sub_and_lone_surrogates() -> None:
    text = "\ud800 api_key=abcdefgh12 and Bearer abcdefghijklmnop1234 \ud800"
    assert pii.SECRET.sub(pii.secret_replacement, text) == (
        "\ud800 api_key=[REDACTED:SECRET] and Bearer [REDACTED:SECRET] \ud800"
    )
    first = pii.SECRET.search(text)
    assert first is not None and first.group() == "api_key=abcdefgh12"
    assert first.group("assign") == "api_key=" and first.group("bearer") is None
    with pytest.raises(IndexError):
        first.group("nope")
    assert pii.EMAIL.subn("[E]", "a@b.cc, c@d.ee") == ("[E], [E]", 2)
    assert pii.EMAIL.subn("[E]", "nothing here") == ("nothing here", 0)
    assert pii.EMAIL.test("x a@b.cc") and not pii.EMAIL.test("x a@b")
    assert pii.CARD.sub(lambda m: f"<{m.group()}>", "4111 1111 1111 1111 ok") == (
        "<4111 1111 1111 1111> ok"
    )


def test_pem_blocks_and_jwt_headers() -> None:
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow sk-aaaaaaaaaaaaaaaaaaaaaaaa\n-----END RSA PRIVATE KEY-----"
    assert pii.SECRET.sub(pii.secret_replacement, f"a {key} b") == "a [REDACTED:SECRET] b"
    unclosed = "-----BEGIN PRIVATE KEY----- sk-" + "a" * 22 + " "
    text = unclosed * 3 + key + " " + unclosed * 2
    assert [m.group() for m in pii.SECRET.finditer(text)] == [
        m.group() for m in ORACLE["SECRET"].finditer(text)
    ]
    # a JWT's header is at most 1,000 characters (see pii._JWT_HEADER)
    jwt = "eyJ{}.eyJpayloadpayload.signaturesignature"
    assert pii.SECRET.search(jwt.format("h" * 1000)) is not None
    assert pii.SECRET.search(jwt.format("h" * 1001)) is None


@given(st.text(alphabet="GBDE0123456789AZaz \u0131\u017f", max_size=40))
def test_iban_shape_as_the_pattern_says(text: str) -> None:
    shape = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}", re.ASCII)
    compact = text.replace(" ", "").upper()
    if not shape.fullmatch(compact):
        assert not pii.iban_valid(text)
    assert pii.iban_valid("GB82 WEST 1234 5698 7654 32") and not pii.iban_valid("GB82 WEST")


@given(st.text(alphabet="0123456789-٣ ", max_size=12))
def test_phone_numbers_leave_iso_dates_alone(text: str) -> None:
    date = re.fullmatch(r"\d{4}-\d{2}-\d{2}", text) is not None
    digits = sum(ch.isdigit() for ch in text)
    assert pii.phone_number(text) == (9 <= digits <= 15 and not date)


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("text", sorted(EVERY_TEXT))
def test_linear_time_on_pathological_text(rule: str, text: str) -> None:
    elapsed = best_of_3(lambda t: sum(1 for _ in RULES[rule].finditer(t)), EVERY_TEXT[text])
    assert elapsed < LIMIT, f"{rule} on {text}: {elapsed * 1000:.0f} ms"


def test_work_is_bounded_on_jwt_shaped_runs() -> None:
    """The worst case of the JWT header bound: keys in a long run of ``eyJ-...``, and a real JWT
    at the end, so JWT attempts stay on. Each attempt reads at most 1,000 characters (CPU time:
    this is about work, not about how loaded the machine is)."""
    text = fill("eyJ-AKIA0123456789ABCDEF-", " eyJhhhhhhhh.pppppppp.ssssssss")
    best = float("inf")
    for _ in range(3):
        start = time.thread_time()
        found = sum(1 for _ in pii.SECRET.finditer(text))
        best = min(best, time.thread_time() - start)
    assert found == text.count("AKIA") + 1
    assert best < LIMIT, f"{best * 1000:.0f} ms"


def test_matches_dense_text_in_linear_time() -> None:
    """Many matches (each one an RE2 search) cost time per match, not per text: 64 KB of them."""
    text = fill("a@b.cc 4111 1111 1111 1111 ")
    assert sum(1 for _ in pii.EMAIL.finditer(text)) == text.count("a@b.cc")
    assert best_of_3(lambda t: pii.CARD.sub("[C]", t), text) < LIMIT

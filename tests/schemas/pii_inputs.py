"""Pathological text for the PII and secret rules (``agentledger.schemas.pii``), shared by the tests
of the three stages that run them: 64 KB each, in the shapes on which a backtracking engine takes
quadratic time (Python's ``re`` took 7-16 s on ``a.a.a…@x`` in the e-mail pattern)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

SIZE = 64 * 1024
LIMIT = 0.1
"""Seconds one stage may take on one 64 KB pathological text."""


def fill(unit: str, tail: str = "") -> str:
    """``unit`` repeated to ``SIZE`` characters, ending with ``tail``."""
    return (unit * (SIZE // len(unit) + 1))[: SIZE - len(tail)] + tail


PATHOLOGICAL: dict[str, dict[str, str]] = {
    "secret": {
        "sk- runs": fill("sk-"),
        "sk- and one long token": "sk-" + fill("a")[3:],
        "JWT-like segments": fill("eyJaaaaaaaa-"),
        "eyJ runs around keys": fill("eyJ-AKIA0123456789ABCDEF-"),
        "PEM BEGIN lines": fill("-----BEGIN PRIVATE KEY-----\n"),
        "PEM BEGIN lines around keys": fill("-----BEGIN PRIVATE KEY----- sk-" + "a" * 22 + " "),
        "PEM BEGIN lines around keys, one END": fill(
            "-----BEGIN PRIVATE KEY----- sk-" + "a" * 22 + " ", " -----END PRIVATE KEY-----"
        ),
        "bearer runs": fill("bearer "),
        "api_key runs": fill("api_key"),
    },
    "iban": {
        "GB82 runs": fill("GB82 "),
        "GB82 and letters": "GB82" + fill("A")[4:],
        "digit and space runs": fill("1 "),
    },
    "card": {
        "digits": fill("1"),
        "digit and space runs": fill("1 "),
        "digit and dash runs": fill("1-"),
        "digit groups": fill("12 "),
    },
    "email": {
        "a.a.a…@x": fill("a.", "@x"),
        "x@a.a.a…": "x@" + fill("a.")[2:],
        "many @": fill("a@"),
        "many @ and dots": fill("a@a."),
        "1-1-1…@x": fill("1-", "@x"),
        "sk-sk-sk…@x": fill("sk-", "@x"),
    },
    "phone": {
        "+1 runs": fill("+1 "),
        "(1) runs": fill("(1) "),
        "digit and space runs": fill("1 "),
    },
}
"""Preset -> name -> text: for each preset, the text its pattern (or a backtracking one) is worst on."""

EVERY_TEXT: dict[str, str] = {
    f"{preset}: {name}": text
    for preset, texts in PATHOLOGICAL.items()
    for name, text in texts.items()
}


def best_of_3(fn: Callable[[str], Any], text: str) -> float:
    """Seconds ``fn(text)`` took, the best of three runs (a loaded machine slows some runs)."""
    fn(text[:100])  # compile the rules first: that cost is paid once per process
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - start)
    return best

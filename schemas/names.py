"""One rule for the names clients choose and the server uses as path parts or query values.

A tenant name becomes a folder (``<datasets dir>/<tenant>``, the governance journal's
``<dir>/<tenant>``) and a key name travels into logs and audit rows. Checked once, here,
before either use, a name cannot be ``..``, hold a slash, a NUL, a newline or a thousand
characters, so no caller needs its own escaping and a bad name is refused with a message
that says what is allowed rather than failing somewhere deeper (or worse, succeeding).

Depends on nothing: the agent-side package, the settings parser and the routers all import it.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["NAME_MAX_LENGTH", "NAME_PATTERN", "NAME_RULE", "is_valid_name", "validate_name"]

NAME_MAX_LENGTH: Final = 64
"""Longest name accepted."""

NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
"""A letter or digit, then letters, digits, ``.``, ``_`` or ``-``: 1 to 64 characters.

The first character cannot be a dot or dash, so neither ``.``, ``..`` nor a name read
as a command-line option is possible; no character is a path separator."""

NAME_RULE: Final = (
    f"1 to {NAME_MAX_LENGTH} characters: letters, digits, '.', '_' or '-', "
    "starting with a letter or digit"
)
"""The rule in words, for error messages."""


def is_valid_name(value: object) -> bool:
    """Whether ``value`` is a string that follows :data:`NAME_RULE`."""
    # fullmatch, not match with $: $ also matches before a trailing newline.
    return isinstance(value, str) and NAME_PATTERN.fullmatch(value) is not None


def validate_name(kind: str, value: object) -> str:
    """Return ``value`` if it follows :data:`NAME_RULE`, else raise ValueError naming ``kind``.

    ``kind`` says what the name is for ("tenant", "key name") so the message tells the
    caller which setting or field to fix. The bad value is quoted with ``repr`` (and cut
    short) so a control character in it shows rather than acts in a log or terminal.
    """
    if isinstance(value, str) and NAME_PATTERN.fullmatch(value):
        return value
    shown = repr(value[:80]) + "..." if isinstance(value, str) and len(value) > 80 else repr(value)
    raise ValueError(f"invalid {kind} name {shown}: must be {NAME_RULE}")

"""Whose data an erasure is about: ``KEY=VALUE`` turned into the span column that names it.

The key is what a data subject is known by in the recorded attributes (``user.id``,
``session.id``) or AgentLedger's principal; each is stamped into a column of ``spans`` by the
normalizer, so a subject is found by a column filter and never by text search.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from typing import Final

from agentledger.schemas.attributes import AgentLedger

__all__ = ["SUBJECT_KEYS", "Subject", "parse_subject"]

SUBJECT_KEYS: Final = {
    "user.id": "user_id",  # the names a user gives a subject by; the normalizer filled the
    "session.id": "session_id",  # columns from whichever convention the spans came in
    AgentLedger.PRINCIPAL_ID: "principal_id",
    "principal.id": "principal_id",  # the short spelling the CLI's help shows
}
"""Subject key -> the ``spans`` column that holds it."""


@dataclasses.dataclass(frozen=True)
class Subject:
    """One data subject: the key it was named by, its column and value."""

    key: str
    column: str
    value: str

    def keyed_sha256(self, key: bytes) -> str:
        """HMAC-SHA256 of the value under the tenant's erasure key: what the erasure record keeps
        instead of the value. Keyed because a subject id is short: a plain SHA-256 in a leaf would
        let anyone holding its proof confirm a guess of who was erased."""
        return hmac.new(key, self.value.encode("utf-8"), hashlib.sha256).hexdigest()


def parse_subject(text: str) -> Subject:
    """``KEY=VALUE`` as a Subject; raises ValueError naming what is wrong (an unknown key, an
    empty value: an empty user id would match every span recorded without one)."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep:
        raise ValueError(f"subject must be KEY=VALUE, got {text!r}")
    if key not in SUBJECT_KEYS:
        raise ValueError(
            f"unknown subject key {key!r}: use one of {', '.join(sorted(SUBJECT_KEYS))}"
        )
    if not value.strip():
        raise ValueError(
            f"subject {key} needs a value: an empty one would match unattributed spans"
        )
    return Subject(key, SUBJECT_KEYS[key], value)

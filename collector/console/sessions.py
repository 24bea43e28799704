"""Console sessions: a browser signs in with an API key once and then holds a random session id.

The cookie carries only that id. The table here maps it to the SHA-256 of the key (what the key
table is indexed by, never the secret), so every request re-resolves the key's identity: a key
revoked anywhere ends its console sessions within the key refresh interval, as it does for API
calls. Sessions live in this process's memory: a restart signs everyone out, and replicas behind
a load balancer need sticky sessions (a signed stateless token would trade this for a shared
secret and no server-side sign-out).

Each session has its own CSRF token, required on every state-changing console request that
authenticates with the cookie. Without API keys (``--no-auth``) there is no session, so the token
is derived from a per-process secret: a page on another site still cannot read it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from starlette.requests import Request

from agentledger.collector.auth import Authenticator, AuthError, Identity

__all__ = ["COOKIE", "PREFIX", "Session", "SessionBook", "session_identity"]

COOKIE = "agentledger_session"
"""The session cookie's name (HttpOnly, SameSite=Strict, Secure over TLS, path ``/console``)."""


@dataclass(frozen=True)
class Session:
    """One signed-in browser."""

    key_sha256: str
    csrf: str
    expires_at: float
    """``time.monotonic()`` after which the session is gone (absolute: no silent extension)."""


class SessionBook:
    """The process's console sessions, keyed by the SHA-256 of their id so that the table itself
    holds nothing a cookie could be forged from."""

    def __init__(self, ttl_s: float = 8 * 3600, max_sessions: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self._secret = secrets.token_bytes(32)

    @staticmethod
    def _slot(session_id: str) -> str:
        return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()

    def open(self, key_sha256: str) -> tuple[str, Session]:
        """A new session for the key with this digest: its id (the cookie value) and record."""
        session_id = secrets.token_urlsafe(32)
        session = Session(key_sha256, secrets.token_urlsafe(32), time.monotonic() + self.ttl_s)
        with self._lock:
            self._drop_expired()
            if len(self._sessions) >= self.max_sessions:  # bounded: oldest first out
                oldest = min(self._sessions, key=lambda s: self._sessions[s].expires_at)
                del self._sessions[oldest]
            self._sessions[self._slot(session_id)] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of this id, else None (unknown, signed out or expired)."""
        if not session_id:
            return None
        slot = self._slot(session_id)
        with self._lock:
            found = self._sessions.get(slot)
            if found is not None and found.expires_at <= time.monotonic():
                del self._sessions[slot]
                return None
            return found

    def close(self, session_id: str | None) -> None:
        """Sign out: the id is worthless from now on."""
        if session_id:
            with self._lock:
                self._sessions.pop(self._slot(session_id), None)

    def anonymous_csrf(self) -> str:
        """The CSRF token of a console without API keys (one per process)."""
        return hmac.new(self._secret, b"no-auth console", hashlib.sha256).hexdigest()

    def _drop_expired(self) -> None:
        now = time.monotonic()
        for slot in [s for s, v in self._sessions.items() if v.expires_at <= now]:
            del self._sessions[slot]


PREFIX = "/console"
"""Where the console's pages live; only there does a session cookie stand for a key."""


def session_identity(request: Request, auth: Authenticator) -> Identity | None:
    """The identity a console request's session cookie stands for; None where a cookie does not
    count (off the console, a key in the headers, ``--no-auth``). API routes never accept the
    cookie, so a page elsewhere cannot ride a signed-in browser into the JSON API.

    Raises ``AuthError`` for a console request with no live session, or whose key was revoked."""
    if (
        auth.no_auth
        or not str(request.scope["path"]).startswith(PREFIX + "/")
        or request.headers.get("authorization")
        or request.headers.get("x-api-key")
    ):
        return None
    sessions: SessionBook | None = getattr(request.app.state, "console_sessions", None)
    if sessions is None:
        return None
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise AuthError("not signed in to the console (or the session ended): sign in with a key")
    found = auth.identify_sha256(session.key_sha256)
    request.state.console_session = session
    return found

"""API keys to identities: the tenant, name, role and agent of the key a request presents.

Keys come from two places: the bootstrap keys of the configuration (``AGENTLEDGER_API_KEYS``) and
the store's key book (``agentledger keys create``), re-read every ``refresh_s`` seconds by a
background thread so that a key revoked through any replica is refused by every replica within
that time. A presented key is looked up by its SHA-256 (the table never holds a secret): how long the
dictionary lookup takes depends on the digest, which tells nothing of any secret.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import NamedTuple, Protocol

from agentledger.collector.settings import BootstrapKey
from agentledger.schemas.access import Role
from agentledger.schemas.records import Actor

__all__ = ["Authenticator", "AuthError", "Identity", "KeySource", "StoredKey"]

log = logging.getLogger(__name__)


class Identity(NamedTuple):
    """Who sent a request. ``actor`` is the key's name: it is recorded on everything the request
    writes and in the access log (``api`` without API keys)."""

    tenant: str
    actor: str
    role: Role = Role.ADMIN
    agent: str = ""
    """The one agent the key may send spans and intents for; empty = any."""


class StoredKey(Protocol):
    """A key of the store's key book, as the authenticator needs it."""

    @property
    def name(self) -> str: ...
    @property
    def tenant(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def agent(self) -> str: ...
    @property
    def key_sha256(self) -> str: ...


KeySource = Callable[[], Iterable[StoredKey]]
"""The store's active keys, read again on every refresh."""


class AuthError(Exception):
    """Missing, unknown or revoked API key (HTTP 401)."""


class Authenticator:
    """Maps a presented API key to its identity; the identity never comes from the payload."""

    def __init__(
        self,
        bootstrap: Mapping[str, BootstrapKey],
        *,
        no_auth: bool,
        default_tenant: str,
        source: KeySource | None = None,
        refresh_s: float = 5.0,
    ) -> None:
        self.no_auth = no_auth
        self.default_tenant = default_tenant
        self.refresh_s = refresh_s
        self._bootstrap = {
            digest: Identity(k.tenant, k.name, k.role) for digest, k in bootstrap.items()
        }
        self._source = source
        self._table = dict(self._bootstrap)
        self._loaded_at = float("-inf")
        self._refused: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        for key in bootstrap.values():
            if key.legacy:
                log.warning(
                    "API key %s of tenant %s is in the old 'tenant=key' form: it is an admin key; "
                    "give each key a role and a name ('tenant:role:name=key') or make keys with "
                    "'agentledger keys create'",
                    key.name,
                    key.tenant,
                )
        if source is not None:
            self.refresh()
        if not no_auth and not self._table:
            raise ValueError(
                "no API keys: make one with 'agentledger keys create --tenant T --role admin "
                "--name N', set AGENTLEDGER_API_KEYS='tenant:role:name=key,...', or run "
                "single-tenant on a loopback address with --no-auth"
            )

    # -- the key table ------------------------------------------------------------------------

    def refresh(self) -> None:
        """Re-read the store's keys (bootstrap keys always stay). A failed read keeps the table
        as it was and is logged: an outage of the store must not lock every agent out."""
        if self._source is None:
            return
        try:
            stored = {
                k.key_sha256: Identity(k.tenant, k.name, Role(k.role), k.agent)
                for k in self._source()
            }
        except Exception as exc:  # noqa: BLE001 - any store failure: keep serving
            log.warning("API keys not re-read from the store (keeping the last table): %s", exc)
            return
        with self._lock:
            self._table = {**stored, **self._bootstrap}
            self._loaded_at = time.monotonic()

    def start(self) -> Callable[[], None]:
        """Re-read the store's keys every ``refresh_s`` in a daemon thread; returns its stop."""
        if self._source is None or self._thread is not None:
            return lambda: None

        def run() -> None:
            while not self._stop.wait(self.refresh_s):
                self.refresh()

        self._thread = threading.Thread(target=run, name="agentledger-keys", daemon=True)
        self._thread.start()
        return self.stop

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- requests -----------------------------------------------------------------------------

    def identify(self, authorization: str | None, api_key: str | None) -> Identity:
        """The identity of the presented key; raises AuthError."""
        if self.no_auth:
            return Identity(self.default_tenant, Actor.API, Role.ADMIN)
        key = api_key
        if not key and authorization:
            scheme, _, value = authorization.partition(" ")
            key = value.strip() if scheme.lower() in ("bearer", "apikey") else None
        if not key:
            raise AuthError(
                "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            )
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        found = self._table.get(digest)
        if found is None:
            raise AuthError("unknown API key, or a revoked one")
        return found

    def identify_sha256(self, digest: str) -> Identity:
        """The identity of the key whose SHA-256 is ``digest``: a console session keeps the
        digest, never the key, and is re-checked on every request. Raises AuthError once the key
        is revoked."""
        found = self._table.get(digest)
        if found is None:
            raise AuthError("unknown API key, or a revoked one: sign in again")
        return found

    def refuse_agent(self, identity: Identity, agent: str, what: str, count: int = 1) -> str:
        """Count ``count`` refusals of ``what`` sent for ``agent`` by a key bound to another agent;
        returns the message to answer. The counts are this replica's (``refusals``)."""
        with self._lock:
            self._refused[identity.actor] = self._refused.get(identity.actor, 0) + count
        log.warning(
            "key %s (agent %s) sent %s for agent %r: refused",
            identity.actor,
            identity.agent,
            what,
            agent,
        )
        return f"key {identity.actor!r} may send for agent {identity.agent!r} only, not {agent!r}"

    def refusals(self) -> dict[str, int]:
        """Requests (or spans) refused per key name for naming another agent, since start."""
        with self._lock:
            return dict(self._refused)

    def may_refresh(self) -> bool:
        """Whether an unknown key may trigger a re-read now (a key made a moment ago on another
        replica): at most once a second, so a flood of wrong keys cannot flood the store."""
        if self._source is None:
            return False
        with self._lock:  # one caller claims the re-read; the others are refused at once
            now = time.monotonic()
            if now - self._loaded_at <= 1.0:
                return False
            self._loaded_at = now
            return True

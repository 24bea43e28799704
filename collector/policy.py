"""Which permission each route needs: one table, checked on every request before the route runs.

``ROUTES`` is the single source of the README's role table (a test holds the two equal, and a
table-driven test sends every role to every route). ``create_app`` refuses to start when a route
has no entry, so a new route cannot ship unguarded; ``authorize`` is the app-wide dependency that
resolves the key once per request and answers 401 (no or unknown key) or 403 naming the roles that
may call the route.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Final

from fastapi import HTTPException, Request
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from agentledger.collector.auth import Authenticator, AuthError, Identity
from agentledger.collector.console.sessions import session_identity
from agentledger.schemas.access import GRANTS, Permission, roles_granting

__all__ = [
    "ROUTES",
    "authorize",
    "forbid_unless",
    "identity_of",
    "missing_routes",
    "route_permission",
    "route_template",
]

P = Permission

ROUTES: Final[Mapping[tuple[str, str], Permission]] = {
    ("GET", "/healthz"): P.PUBLIC,
    ("GET", "/readyz"): P.PUBLIC,
    ("GET", "/metrics"): P.METRICS,  # Prometheus scrapes with a reader (or wider) key
    # what an agent sends
    ("POST", "/v1/traces"): P.INGEST,
    ("POST", "/v1/logs"): P.INGEST,
    ("POST", "/v1/metrics"): P.INGEST,  # accepted, not stored (README)
    ("POST", "/v1/intents"): P.INGEST,
    ("POST", "/v1/intents/{intent_id}/outcome"): P.INGEST,
    ("POST", "/v1/feedback"): P.INGEST,
    # reads of what agents did
    ("GET", "/api/v1/traces"): P.READ,
    ("GET", "/api/v1/traces/{trace_id}"): P.READ,
    ("GET", "/api/v1/contents/{content_hash}"): P.READ,
    ("GET", "/v1/intents"): P.READ,
    ("GET", "/v1/intents/{intent_id}"): P.READ,
    ("GET", "/v1/controls"): P.READ,
    ("GET", "/api/v1/usage"): P.READ,
    ("GET", "/api/v1/patterns"): P.READ,
    ("GET", "/api/v1/agents/graph"): P.READ,
    ("GET", "/clickhouse"): P.READ,  # read-only SQL for analysts (collector/routers/clickhouse.py)
    ("POST", "/clickhouse"): P.READ,
    ("GET", "/clickhouse/ping"): P.PUBLIC,
    ("GET", "/api/v1/anomalies"): P.READ,
    ("GET", "/api/v1/feedback"): P.READ,
    ("POST", "/api/v1/datasets"): P.READ,  # redacted; anything less than "all" needs admin
    ("GET", "/api/v1/datasets"): P.READ,
    ("GET", "/api/v1/datasets/{dataset_id}"): P.READ,
    ("GET", "/api/v1/datasets/{dataset_id}/spans"): P.READ,
    ("GET", "/api/v1/datasets/{dataset_id}/files/{name}"): P.READ,
    ("GET", "/api/v1/spans/{span_id}/datasets"): P.READ,
    # operating agents
    ("POST", "/v1/controls"): P.OPERATE,
    ("POST", "/api/v1/anomalies/detect"): P.OPERATE,
    ("POST", "/api/v1/anomalies/{anomaly_id}/actions"): P.OPERATE,
    # audit
    ("GET", "/api/v1/ledger/verify"): P.AUDIT,
    ("GET", "/api/v1/ledger/checkpoint"): P.AUDIT,
    ("GET", "/api/v1/ledger/proof"): P.AUDIT,
    ("GET", "/api/v1/ledger/consistency"): P.AUDIT,
    ("GET", "/api/v1/audit/{ref}"): P.AUDIT,
    ("GET", "/api/v1/replay/requests/{span_id}"): P.AUDIT,
    ("GET", "/api/v1/replay/requests"): P.AUDIT,
    ("POST", "/api/v1/replays"): P.AUDIT,
    ("GET", "/api/v1/replays"): P.AUDIT,
    ("GET", "/api/v1/replays/{run_id}"): P.AUDIT,
    ("GET", "/api/v1/access-log"): P.AUDIT,
    # administration
    ("POST", "/api/v1/keys"): P.ADMIN,
    ("GET", "/api/v1/keys"): P.ADMIN,
    ("DELETE", "/api/v1/keys/{name}"): P.ADMIN,
    ("POST", "/api/v1/erasures"): P.ADMIN,  # GDPR art. 17 (pipeline/services/erasure)
    ("GET", "/api/v1/retention"): P.AUDIT,
    ("PUT", "/api/v1/retention"): P.ADMIN,
    ("GET", "/api/v1/holds"): P.AUDIT,
    ("POST", "/api/v1/holds"): P.ADMIN,
    ("DELETE", "/api/v1/holds/{hold_id}"): P.ADMIN,
    # the web console (collector/console): signing in is public, each page needs what its reads do
    ("GET", "/"): P.PUBLIC,
    ("GET", "/console/login"): P.PUBLIC,
    ("POST", "/console/login"): P.PUBLIC,
    ("POST", "/console/logout"): P.PUBLIC,
    ("GET", "/console/static/{path:path}"): P.PUBLIC,
    ("GET", "/console/traces"): P.READ,
    ("GET", "/console/traces/{trace_id}"): P.READ,
    ("GET", "/console/traces/{trace_id}/spans/{span_id}"): P.READ,
    ("GET", "/console/traces/{trace_id}/rows"): P.READ,
    ("GET", "/console/governance"): P.READ,
    ("GET", "/console/governance/live"): P.READ,
    ("POST", "/console/governance/controls"): P.OPERATE,
    ("GET", "/console/usage"): P.READ,
    ("GET", "/console/sql"): P.READ,
    ("GET", "/console/audit"): P.AUDIT,
    ("GET", "/console/audit/{ref}"): P.AUDIT,
    ("GET", "/console/audit/{ref}/download"): P.AUDIT,
    ("GET", "/console/audit/{ref}/proof"): P.AUDIT,
    ("GET", "/console/ledger"): P.AUDIT,
    ("GET", "/console/ledger/verify"): P.AUDIT,
    ("GET", "/console/sessions"): P.READ,
    ("GET", "/console/sessions/{session_id}"): P.READ,
    ("GET", "/console/graph"): P.READ,
    ("GET", "/console/anomalies"): P.READ,
    ("POST", "/console/anomalies/{anomaly_id}/actions"): P.OPERATE,
    ("POST", "/console/anomalies/detect"): P.OPERATE,
    ("GET", "/console/patterns"): P.READ,
    ("GET", "/console/datasets"): P.READ,
    ("POST", "/console/datasets"): P.READ,  # redacted; anything less than "all" needs admin
    ("GET", "/console/datasets/{dataset_id}"): P.READ,
    ("GET", "/console/spans/{span_id}/datasets"): P.READ,
    ("GET", "/console/replays"): P.AUDIT,
    ("GET", "/console/replays/{run_id}"): P.AUDIT,
}
"""(method, path template) -> the permission the route needs."""


def route_permission(method: str, path: str) -> Permission:
    """What ``method path`` needs; a route the table does not know needs ``admin`` (fail closed)."""
    return ROUTES.get((method.upper(), path), P.ADMIN)


def api_routes(routes: Iterable[object]) -> Iterator[APIRoute]:
    """Every API route of an app, including those of included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None) or getattr(route, "app", None)
        if inner is not None and hasattr(inner, "routes"):
            yield from api_routes(inner.routes)


def missing_routes(routes: Iterable[object]) -> list[str]:
    """The app's routes without an entry in ``ROUTES`` (``create_app`` refuses to start)."""
    return sorted(
        f"{method} {route.path}"
        for route in api_routes(routes)
        for method in route.methods or ()
        if method != "HEAD" and (method, route.path) not in ROUTES
    )


def _forbidden(identity: Identity, needed: Permission, what: str) -> HTTPException:
    roles = " or ".join(r.value for r in roles_granting(needed))
    return HTTPException(
        403,
        f"forbidden: {what} needs the {roles} role; key {identity.actor!r} has the "
        f"{identity.role.value} role",
    )


def forbid_unless(identity: Identity, needed: Permission, what: str) -> None:
    """403 unless the key's role grants ``needed``: for a check that depends on the request's
    content (an unredacted export needs ``admin`` where a redacted one needs ``read``)."""
    if needed not in GRANTS[identity.role]:
        raise _forbidden(identity, needed, what)


async def identity_of(request: Request) -> Identity:
    """The request's identity, resolved once per request (401 without a valid key)."""
    found: Identity | None = getattr(request.state, "identity", None)
    if found is not None:
        return found
    auth: Authenticator = request.app.state.auth
    authorization = request.headers.get("authorization")
    api_key = request.headers.get("x-api-key") or clickhouse_key(request)
    try:
        found = session_identity(request, auth)  # a console page: its session cookie
        if found is not None:
            request.state.identity = found
            return found
    except AuthError as exc:
        raise HTTPException(401, str(exc)) from exc
    try:
        try:
            found = auth.identify(authorization, api_key)
        except AuthError:
            if not auth.may_refresh():
                raise
            await run_in_threadpool(auth.refresh)  # a key made a moment ago elsewhere
            found = auth.identify(authorization, api_key)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc
    request.state.identity = found
    return found


def clickhouse_key(request: Request) -> str | None:
    """On the ClickHouse-compatible endpoint, the API key as ClickHouse clients send a password:
    ``X-ClickHouse-Key`` (Grafana's plugin) or basic auth (clickhouse-connect); the user name is
    ignored. Elsewhere None: the other routes take Bearer or ``X-API-Key`` only."""
    if not str(request.scope["path"]).startswith("/clickhouse"):
        return None
    key = request.headers.get("x-clickhouse-key")
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    if not key and scheme.lower() == "basic":
        import base64
        import binascii

        try:
            key = base64.b64decode(value.strip(), validate=True).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            return None
    return key or None


def route_template(request: Request) -> str:
    """The matched route's path template (``/api/v1/traces/{trace_id}``), else the raw path."""
    route = request.scope.get("route")
    return route.path if isinstance(route, APIRoute) else str(request.scope["path"])


async def authorize(request: Request) -> None:
    """The app-wide guard: every route's permission checked against the key's role."""
    path = route_template(request)
    needed = route_permission(request.method, path)
    if needed is P.PUBLIC:
        return
    identity = await identity_of(request)
    forbid_unless(identity, needed, f"{request.method} {path}")

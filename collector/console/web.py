"""What every console page shares: the templates, the page context, the CSRF guard, error pages.

Pages are rendered on the server (Jinja2) and enhanced by htmx for partial updates and polling;
the only scripts are the vendored htmx and uPlot and ``static/console.js``, all served from the
package. Every answer carries a Content-Security-Policy that allows nothing from elsewhere and no
inline script, so a value an agent recorded (a prompt, a tool argument) can never run in the
browser of the person reading it, even if a template forgot to escape it.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from agentledger.collector.auth import Authenticator, Identity
from agentledger.collector.console.sessions import PREFIX, SessionBook
from agentledger.schemas.access import GRANTS, Permission, Role

__all__ = [
    "CSP",
    "STATIC_DIR",
    "LOGIN_COOKIE",
    "csrf_token",
    "error_page",
    "login_page",
    "owns",
    "page",
    "require_csrf",
    "safe_next",
    "secure",
    "templates",
]

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; frame-ancestors 'self'; form-action 'self'; "
    "base-uri 'none'; object-src 'none'"
)

templates = Jinja2Templates(directory=HERE / "templates")


def _time(value: Any) -> str:
    """ISO text or datetime -> ``2026-12-07 20:00:42`` (UTC, as stored)."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    text = str(value or "")
    return text[:19].replace("T", " ")


def _duration(ms: Any) -> str:
    if ms is None:
        return "-"
    ms = float(ms)
    if ms >= 60_000:
        return f"{ms / 60_000:.1f} min"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def _usd(value: Any) -> str:
    v = float(value or 0)
    return f"${v:.4f}" if v < 1 else f"${v:,.2f}"


templates.env.filters["when"] = _time
templates.env.filters["duration"] = _duration
templates.env.filters["usd"] = _usd
templates.env.filters["ns_when"] = lambda ns: _time(
    datetime.fromtimestamp(int(ns) / 1e9, tz=timezone.utc)
)
templates.env.filters["urlquote"] = lambda v: quote(str(v), safe="")


def owns(request: Request) -> bool:
    """Whether the console answers this request (its errors are pages, not JSON)."""
    path = str(request.scope["path"])
    return path == "/" or path == PREFIX or path.startswith(PREFIX + "/")


def _sessions(request: Request) -> SessionBook:
    return request.app.state.console_sessions  # type: ignore[no-any-return]


def csrf_token(request: Request) -> str:
    """The token this browser's forms carry: its session's, or the process's without keys."""
    session = getattr(request.state, "console_session", None)
    if session is not None:
        return str(session.csrf)
    return _sessions(request).anonymous_csrf()


async def require_csrf(request: Request) -> None:
    """Every state-changing console request that a browser's cookie (or ``--no-auth``) vouches
    for must also carry the page's CSRF token, as a form field or an htmx header. A request
    with a key in its headers is exempt: another site cannot make a browser send one."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    auth: Authenticator = request.app.state.auth
    keyed = request.headers.get("authorization") or request.headers.get("x-api-key")
    if keyed and not auth.no_auth:
        return
    sent = request.headers.get("x-csrf-token")
    if not sent:
        form = await request.form()
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent, csrf_token(request)):
        raise HTTPException(
            403, "CSRF token missing or wrong: reload the page and submit the form again"
        )


def may(identity: Identity | None) -> dict[str, bool]:
    """What the signed-in key's role allows, by permission name (``may.operate`` ...)."""
    granted = GRANTS[identity.role] if identity is not None else frozenset()
    return {p.value: p in granted for p in Permission}


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """A console page, with who is signed in and what they may do."""
    identity: Identity | None = getattr(request.state, "identity", None)
    auth: Authenticator = request.app.state.auth
    response = templates.TemplateResponse(
        request,
        template,
        {
            "identity": identity,
            "may": may(identity),
            "csrf": csrf_token(request),
            "no_auth": auth.no_auth,
            "prefix": PREFIX,
            **context,
        },
        status_code=status,
    )
    secure(response)
    return response


def secure(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


LOGIN_COOKIE = "agentledger_login"
"""Double-submit token of the sign-in form: another site cannot sign a browser in to its key."""


def login_page(
    request: Request, *, status: int = 200, message: str = "", next_url: str = ""
) -> Response:
    """The sign-in form; ``next_url`` is where signing in leads (a console page only)."""
    token = secrets.token_urlsafe(24)
    response = page(
        request,
        "login.html",
        status=status,
        message=message,
        next=safe_next(next_url),
        login_csrf=token,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        max_age=3600,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


def safe_next(target: str) -> str:
    """Only a console page of this server, never another host (``//evil`` or ``/\\evil``)."""
    if target.startswith(PREFIX + "/") and not target.startswith(("//", "/\\")):
        return target
    return PREFIX + "/traces"


def error_page(request: Request, status: int, detail: str) -> Response:
    """A console error as a page: sign-in for 401 (at the same address, so signing in comes
    back here), the reason and the way on for the rest."""
    if status == 401:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return login_page(request, status=401, message=detail, next_url=target)
    hint = {
        403: "Sign in with a key whose role allows this page, or ask an admin for one.",
        404: "It may belong to another tenant, or was never recorded. Go back to the traces.",
    }.get(status, "")
    return page(request, "error.html", status=status, detail=detail, hint=hint, code=status)


ROLES_THAT_READ = [r.value for r in Role if Permission.READ in GRANTS[r]]
"""The roles that may use the console at all (``ingest`` reads nothing)."""

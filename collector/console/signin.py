"""Signing in and out, the way in (``/``) and the console's static files.

Signing in turns an API key into a session: the key is checked once, here, against the same key
table as every API call, and is then forgotten; only the SHA-256 the key table is indexed by is
kept beside the session (``sessions.SessionBook``). The key is never logged nor stored, and the
cookie holds a random session id only. An ``ingest`` key is refused: it reads nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector.auth import Authenticator, AuthError, Identity
from agentledger.collector.console import web
from agentledger.collector.console.sessions import COOKIE, PREFIX, SessionBook
from agentledger.schemas.access import GRANTS, Permission

__all__ = ["router"]

router = APIRouter()


@router.get("/")
async def root() -> Response:
    return RedirectResponse(PREFIX + "/login", status_code=303)


def _book(request: Request) -> SessionBook:
    return request.app.state.console_sessions  # type: ignore[no-any-return]


@router.get(PREFIX + "/login")
async def login_form(request: Request, next: str = "") -> Response:
    auth: Authenticator = request.app.state.auth
    if auth.no_auth or _book(request).get(request.cookies.get(COOKIE)) is not None:
        return RedirectResponse(web.safe_next(next), status_code=303)
    return web.login_page(request, next_url=next)


async def _identify(auth: Authenticator, key: str) -> Identity:
    """The key's identity; a key made a moment ago on another replica is looked up once more."""
    try:
        return auth.identify(None, key)
    except AuthError:
        if not auth.may_refresh():
            raise
    await run_in_threadpool(auth.refresh)
    return auth.identify(None, key)


@router.post(PREFIX + "/login")
async def login(
    request: Request,
    api_key: Annotated[str, Form(max_length=4096)] = "",
    login_csrf: Annotated[str, Form(max_length=200)] = "",
    next: Annotated[str, Form(max_length=2048)] = "",
) -> Response:
    auth: Authenticator = request.app.state.auth
    expected = request.cookies.get(web.LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(login_csrf, expected):
        return web.login_page(
            request,
            status=400,
            message="The sign-in form expired or came from another site: sign in again.",
            next_url=next,
        )
    key = api_key.strip()
    if not key:
        return web.login_page(
            request, status=400, message="Enter an API key to sign in.", next_url=next
        )
    try:
        identity = await _identify(auth, key)
    except AuthError:
        return web.login_page(
            request, status=401, message="Unknown or revoked API key.", next_url=next
        )
    if Permission.READ not in GRANTS[identity.role]:
        request.state.identity = None
        return web.page(
            request,
            "error.html",
            status=403,
            code=403,
            detail=(
                f"Key {identity.actor!r} has the {identity.role.value} role: it sends spans "
                "and intents and reads nothing, so it cannot use the console."
            ),
            hint="Sign in with a key of the " + ", ".join(web.ROLES_THAT_READ) + " role.",
        )
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    session_id, _ = _book(request).open(digest)
    response = RedirectResponse(web.safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(_book(request).ttl_s),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(web.LOGIN_COOKIE, path=PREFIX)
    return web.secure(response)


@router.post(PREFIX + "/logout")
async def logout(request: Request) -> Response:
    book = _book(request)
    session_id = request.cookies.get(COOKIE)
    session = book.get(session_id)
    if session is not None:
        form = await request.form()
        sent = form.get("csrf")
        if not isinstance(sent, str) or not hmac.compare_digest(sent, session.csrf):
            raise HTTPException(403, "CSRF token missing or wrong: reload the page and try again")
        book.close(session_id)
    response = RedirectResponse(PREFIX + "/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return web.secure(response)


@router.get(PREFIX + "/static/{path:path}")
async def static(path: str) -> Response:
    """A file of ``static/``: public (no data in it), cached for a day."""
    root = web.STATIC_DIR
    target = (root / path).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(404, f"no console file {path!r}")
    media = {".js": "text/javascript", ".css": "text/css"}.get(target.suffix)
    response = FileResponse(target, media_type=media)
    response.headers["Cache-Control"] = "public, max-age=86400"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response

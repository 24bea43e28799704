"""``agentledger erase --subject KEY=VALUE --reason TEXT``: GDPR art. 17 erasure.

Against a running server (``--url``) the command calls ``POST /api/v1/erasures`` with an admin key
(``--api-key``), which is then the erasure's recorded actor. With ``--data-dir`` (or
``AGENTLEDGER_CLICKHOUSE_URL``) it erases in the store directly, as ``cli``: whoever can open the
store's files holds every role anyway, as with ``agentledger keys create``.
"""

from __future__ import annotations

import os
from typing import Any, TypeVar

import httpx
import typer
from pydantic import BaseModel

from agentledger.cli._common import (
    DEFAULT_DATA_DIR,
    ApiKeyOpt,
    JsonOpt,
    TenantOpt,
    UrlOpt,
    fail,
    local_store,
    print_json,
)
from agentledger.schemas.read.erasures import ErasureResult

__all__ = ["register", "server_call"]

M = TypeVar("M", bound=BaseModel)

_SUBJECTS = "user.id, session.id or principal.id"


def server_call(
    url: str, api_key: str | None, method: str, path: str, answer: type[M], **kwargs: Any
) -> M:
    """``method path`` on the server, its answer as ``answer``; an error ends the command with
    the server's words (exit 2 for a refused request, 1 when the server cannot be reached)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.request(method, f"{url}{path}", headers=headers, timeout=600, **kwargs)
    except httpx.HTTPError as exc:
        fail(f"cannot reach the server at {url}: {exc} (is `agentledger serve` running? --url)")
    if resp.status_code >= 400:
        try:
            detail: Any = resp.json().get("detail", resp.text)
        except ValueError:
            detail = resp.text
        fail(f"{url} answered {resp.status_code}: {str(detail)[:500]}", 2)
    return answer.model_validate(resp.json())


def _in_store(data_dir: str, tenant: str, subject: str, reason: str) -> ErasureResult:
    from agentledger.pipeline.services.erasure import erase, parse_subject
    from agentledger.pipeline.store import StoreError
    from agentledger.schemas.records import Actor

    try:
        parsed = parse_subject(subject)
    except ValueError as exc:
        fail(str(exc), 2)
    with local_store(data_dir) as store:
        try:
            return erase(store, tenant, parsed, reason, actor=Actor.CLI)
        except ValueError as exc:
            fail(str(exc), 2)
        except StoreError as exc:
            fail(str(exc))


def erase_command(
    subject: str = typer.Option(..., "--subject", help=f"KEY=VALUE, KEY one of {_SUBJECTS}."),
    reason: str = typer.Option(..., "--reason", help="Why (kept in the ledger)."),
    url: str = UrlOpt,
    data_dir: str | None = typer.Option(
        None, "--data-dir", help="Erase in this data directory directly (no server running)."
    ),
    api_key: str | None = ApiKeyOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Erase every copy of a subject's content (admin); the erasure is recorded in the ledger."""
    if not reason.strip():
        fail("--reason must not be empty: it is kept in the ledger", 2)
    if data_dir is not None or os.environ.get("AGENTLEDGER_CLICKHOUSE_URL"):
        result = _in_store(data_dir or DEFAULT_DATA_DIR, tenant, subject, reason)
    else:
        body = {"subject": subject, "reason": reason}
        result = server_call(url, api_key, "POST", "/api/v1/erasures", ErasureResult, json=body)
    if as_json:
        print_json(result)
        return
    typer.echo(
        f"erasure {result.erasure_id} of {result.subject_attribute} (sha256 "
        f"{result.subject_sha256[:12]}...) by {result.erased_by} at {result.erased_at}: "
        f"{result.contents} contents erased, {result.spans} spans cleared, {result.logs} log "
        f"records and {len(result.dataset_files)} dataset files deleted; {result.shared_kept} "
        "shared contents kept"
    )


def register(app: typer.Typer) -> None:
    app.command("erase")(erase_command)

"""The reference witness as an HTTP process: ``agentledger witness serve``.

A deployment's witness must live outside what the log's operator controls, so it is its own small
process (run it on another machine, under another account) around ``pipeline.tlog.witness``:

* ``POST /add-checkpoint``: C2SP ``tlog-witness`` (statuses in ``pipeline/tlog/witness.py``);
* ``GET /checkpoint?origin=<origin>``: the latest cosigned checkpoint of a log (404 when none), what
  ``agentledger ledger verify --witness-url`` compares the store with. The spec leaves reading
  back open ("monitor retrieval"), so this route is this witness's own;
* ``GET /``: the witness's name and public key (``vkey``), for the log's configuration.

No authentication beyond the log's signature on each checkpoint, as in the spec: anyone may submit,
only a checkpoint signed by a trusted log key that extends the witnessed one is cosigned.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from agentledger.pipeline.tlog import KeyFileError, NoteError, Verifier
from agentledger.pipeline.tlog.witness import SIZE_CONTENT_TYPE, Cosigner, WitnessError, WitnessLog

__all__ = ["WITNESS_KEY_FILE", "create_witness_app", "load_cosigner"]

WITNESS_KEY_FILE = "witness.key"
"""The witness's private key file in its directory, created on first start."""
MAX_BODY = 64 * 1024
"""Largest request accepted: a checkpoint, up to 63 proof lines and a few signatures."""


def load_cosigner(directory: str | os.PathLike[str], name: str) -> Cosigner:
    """The cosigner in ``<directory>/witness.key`` (mode 0600), created with ``name`` when missing;
    raises KeyFileError when the file is unreadable or not a witness key."""
    path = Path(directory) / WITNESS_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        cosigner = Cosigner.generate(name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(cosigner.skey + "\n")
        return cosigner
    try:
        return Cosigner.parse(path.read_text(encoding="utf-8"))
    except (OSError, NoteError) as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


def create_witness_app(
    directory: str | os.PathLike[str],
    log_keys: Sequence[Verifier],
    *,
    name: str = "agentledger-witness",
    origin_prefix: str = "agentledger/",
) -> Starlette:
    """The witness's ASGI app over ``directory`` (its key and its checkpoints), trusting
    checkpoints signed by ``log_keys`` for origins starting with ``origin_prefix``."""
    witness = WitnessLog(directory, load_cosigner(directory, name), log_keys, origin_prefix)

    async def add_checkpoint(request: Request) -> Response:
        body = b""
        async for chunk in request.stream():  # stop reading at the bound, not after the body
            body += chunk
            if len(body) > MAX_BODY:
                return PlainTextResponse(f"body over {MAX_BODY} bytes\n", status_code=413)
        try:
            return PlainTextResponse(witness.add_checkpoint(body))
        except WitnessError as exc:
            if exc.status == 409 and exc.size is not None:
                return Response(f"{exc.size}\n", 409, media_type=SIZE_CONTENT_TYPE)
            return PlainTextResponse(f"{exc}\n", status_code=exc.status)

    async def checkpoint(request: Request) -> Response:
        origin = request.query_params.get("origin", "")
        if not origin:
            return PlainTextResponse("give the log's origin: ?origin=agentledger/<tenant>\n", 400)
        note = witness.latest(origin)
        if note is None:
            return PlainTextResponse(f"no checkpoint of {origin} witnessed\n", 404)
        return PlainTextResponse(note)

    async def about(request: Request) -> Response:
        return JSONResponse(
            {
                "name": witness.cosigner.name,
                "vkey": witness.cosigner.verifier().vkey,
                "origin_prefix": origin_prefix,
                "log_keys": [k.vkey for k in witness.log_keys],
            }
        )

    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/checkpoint", checkpoint, methods=["GET"]),
            Route("/", about, methods=["GET"]),
        ]
    )

"""``agentledger witness serve|public-key|latest``: the reference C2SP witness, for tests and for
deployments that have no public witness to send their checkpoints to.

Run it where the log's operator cannot write (another machine, another account), give it the
log's public key (``agentledger ledger public-key``), and point the log at it with
``AGENTLEDGER_WITNESS_URL`` (and ``AGENTLEDGER_WITNESS_KEY``, the vkey ``public-key`` prints here).
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from agentledger.cli._common import fail
from agentledger.pipeline.tlog import KeyFileError, NoteError, Verifier, read_keyring

__all__ = ["register", "witness_app"]

witness_app = typer.Typer(
    help="A C2SP tlog witness: keeps each log's latest size, refuses a rewritten history.",
    no_args_is_help=True,
)

_DirOpt = typer.Option(
    ..., "--dir", envvar="AGENTLEDGER_WITNESS_STATE_DIR", help="The witness's key and checkpoints."
)
_NameOpt = typer.Option(
    "agentledger-witness", "--name", help="Name of the witness key (a new key only)."
)


def _log_keys(keys: list[str], keyring: str | None) -> list[Verifier]:
    try:
        found = [Verifier.parse(k) for k in keys]
        if keyring:
            if not Path(keyring).is_file():
                fail(f"no keyring file {keyring}", 2)
            found += read_keyring(keyring)
    except (NoteError, KeyFileError) as exc:
        fail(f"log key: {exc}", 2)
    if not found:
        fail("give the log's public key with --key (agentledger ledger public-key prints it)", 2)
    return found


@witness_app.command("serve")
def serve(
    directory: str = _DirOpt,
    key: list[str] = typer.Option(
        [], "--key", help="The log's verifier key <name>+<id>+<base64> (repeatable)."
    ),
    keyring: str | None = typer.Option(None, "--keyring", help="File of log keys, one a line."),
    name: str = _NameOpt,
    origin_prefix: str = typer.Option(
        "agentledger/", "--origin-prefix", help="Logs followed: origins starting with this."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(7380, help="Port."),
    log_level: str = typer.Option("info", help="Log level."),
) -> None:
    """Serve POST /add-checkpoint and GET /checkpoint?origin=... over the directory ``--dir``."""
    import uvicorn

    from agentledger.witness import create_witness_app, load_cosigner

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    trusted = _log_keys(key, keyring)
    try:
        app = create_witness_app(directory, trusted, name=name, origin_prefix=origin_prefix)
        vkey = load_cosigner(directory, name).verifier().vkey
    except (KeyFileError, NoteError, OSError) as exc:
        fail(str(exc), 2)
    typer.echo(f"witness {vkey} listening on http://{host}:{port} (state in {directory})")
    uvicorn.run(app, host=host, port=port, log_level=log_level.lower())


@witness_app.command("public-key")
def public_key(directory: str = _DirOpt, name: str = _NameOpt) -> None:
    """Print the witness's verifier key (set it as AGENTLEDGER_WITNESS_KEY on the log's side);
    creates the key on first use."""
    from agentledger.witness import load_cosigner

    try:
        typer.echo(load_cosigner(directory, name).verifier().vkey)
    except (KeyFileError, OSError) as exc:
        fail(str(exc), 2)


@witness_app.command("latest")
def latest(
    url: str = typer.Option(..., "--url", envvar="AGENTLEDGER_WITNESS_URL", help="Witness URL."),
    tenant: str = typer.Option("default", "--tenant", help="Tenant whose log to show."),
) -> None:
    """Print the witness's latest cosigned checkpoint of a tenant's log (exit 1 when none)."""
    from agentledger.pipeline.derive.witness_http import witnessed_note

    try:
        note = witnessed_note(tenant, None, url)
    except ValueError as exc:
        fail(str(exc), 2)
    if note is None:
        fail(f"the witness at {url} holds no checkpoint of {tenant}")
    typer.echo(note, nl=False)


def register(app: typer.Typer) -> None:
    """Add the ``witness`` group to ``app``."""
    app.add_typer(witness_app, name="witness")

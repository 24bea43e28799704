"""``agentledger verify-proof`` and ``agentledger ledger public-key|create-key|rotate-key|
verify-consistency``: the ledger's offline commands; ``agentledger prove`` and ``agentledger ledger
checkpoint|consistency|append``: what the store's log answers.

The offline commands open no store and call no server: a proof is checked with the file and the
public key alone (an auditor's machine has neither our data nor our engine), and the signing key is
a file (``AGENTLEDGER_LEDGER_SIGNING_KEY_FILE``, else ``ledger-signing.key`` in the data
directory). The others read through the client, a running server's API (auditor key) or a data
directory, like every read command.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from agentledger.cli._common import (
    DEFAULT_DATA_DIR,
    ApiKeyOpt,
    DataDirOpt,
    TenantOpt,
    UrlOpt,
    ask,
    connect,
    fail,
)
from agentledger.pipeline.tlog import (
    DEFAULT_KEY_FILE,
    DEFAULT_KEY_NAME,
    KeyFileError,
    Verifier,
    create_signing_key,
    keyring_path,
    read_keyring,
    read_signing_key,
    rotate_signing_key,
    signing_key_path,
    verify_consistency_proof,
    verify_inclusion_proof,
)

__all__ = ["ledger_app", "register"]

ledger_app = typer.Typer(
    help="The verifiable ledger: signing keys and offline proof checks.", no_args_is_help=True
)

_KeyFileOpt = typer.Option(
    None,
    "--key-file",
    help="Signing key file (default: $AGENTLEDGER_LEDGER_SIGNING_KEY_FILE, else "
    f"<data dir>/{DEFAULT_KEY_FILE}).",
)
_DataDirOpt = typer.Option(
    DEFAULT_DATA_DIR, "--data-dir", envvar="AGENTLEDGER_DATA_DIR", help="Embedded data directory."
)
_VerifierKeysOpt = typer.Option(
    [],
    "--key",
    help="Verifier key <name>+<key id>+<base64> of the log (repeat for retired keys).",
)
_KeyringOpt = typer.Option(
    None, "--keyring", help="File of verifier keys, one per line (# comments), also trusted."
)


def _key_file(key_file: str | None, data_dir: str) -> Path:
    configured = signing_key_path(key_file)
    return configured if configured is not None else Path(data_dir) / DEFAULT_KEY_FILE


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read {what} {path}: {exc}")


def _verifiers(keys: list[str], keyring: str | None) -> list[Verifier]:
    try:
        found = [Verifier.parse(k) for k in keys]
        if keyring:
            if not Path(keyring).is_file():
                fail(f"no keyring file {keyring}", 2)
            found += read_keyring(keyring)
    except ValueError as exc:
        fail(f"verifier key: {exc}", 2)
    if not found:
        fail("give the log's public key with --key (agentledger ledger public-key prints it)", 2)
    return found


def verify_proof(
    file: str = typer.Argument(
        ..., help="Proof file (JSON): checkpoint, tree_size, leaf_index, record, inclusion_path."
    ),
    key: list[str] = _VerifierKeysOpt,
    keyring: str | None = _KeyringOpt,
) -> None:
    """Check an inclusion proof with nothing but the file and the log's public key."""
    verifiers = _verifiers(key, keyring)
    try:
        result = verify_inclusion_proof(_read(file, "proof"), verifiers)
    except ValueError as exc:
        fail(f"proof rejected: {exc}")
    typer.echo(result.summary())


@ledger_app.command("public-key")
def public_key(
    key_file: str | None = _KeyFileOpt,
    data_dir: str = _DataDirOpt,
    all_keys: bool = typer.Option(
        False, "--all", help="Also print the retired keys of the keyring (newest last)."
    ),
) -> None:
    """Print the verifier key of the signing key: what auditors pass to verify-proof --key."""
    path = _key_file(key_file, data_dir)
    try:
        typer.echo(read_signing_key(path).verifier().vkey)
        if all_keys:
            for retired in read_keyring(keyring_path(path)):
                typer.echo(retired.vkey)
    except KeyFileError as exc:
        fail(str(exc))


@ledger_app.command("create-key")
def create_key(
    key_file: str | None = _KeyFileOpt,
    data_dir: str = _DataDirOpt,
    name: str = typer.Option(DEFAULT_KEY_NAME, "--name", help="Key name in signature lines."),
) -> None:
    """Create the signing key file (mode 0600); never replaces one."""
    path = _key_file(key_file, data_dir)
    try:
        signer = create_signing_key(path, name)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"created {path}; verifier key:")
    typer.echo(signer.verifier().vkey)


@ledger_app.command("rotate-key")
def rotate_key(
    key_file: str | None = _KeyFileOpt,
    data_dir: str = _DataDirOpt,
    name: str | None = typer.Option(None, "--name", help="New key name (default: keep it)."),
) -> None:
    """Replace the signing key with a new one; the old public key goes into the keyring file
    beside it, so checkpoints it signed stay verifiable."""
    path = _key_file(key_file, data_dir)
    try:
        retired, signer = rotate_signing_key(path, name)
    except ValueError as exc:
        fail(str(exc))
    typer.echo(f"retired {retired.vkey} into {keyring_path(path)}")
    typer.echo(f"new verifier key: {signer.verifier().vkey}")


@ledger_app.command("verify-consistency")
def verify_consistency(
    proof: str = typer.Argument(..., help="Consistency proof file (JSON)."),
    first: str = typer.Option(..., "--first", help="File with the older signed checkpoint."),
    second: str = typer.Option(..., "--second", help="File with the newer signed checkpoint."),
    key: list[str] = _VerifierKeysOpt,
    keyring: str | None = _KeyringOpt,
) -> None:
    """Check that an older checkpoint's log is a prefix of a newer one's (nothing rewritten)."""
    verifiers = _verifiers(key, keyring)
    try:
        old, new = verify_consistency_proof(
            _read(proof, "proof"),
            _read(first, "checkpoint"),
            _read(second, "checkpoint"),
            verifiers,
        )
    except ValueError as exc:
        fail(f"proof rejected: {exc}")
    typer.echo(f"OK: {old.origin} at size {old.size} is a prefix of size {new.size}")


def prove(
    span: str | None = typer.Option(None, "--span", help="Span id (16 hex digits)."),
    record: str | None = typer.Option(
        None, "--record", help="KIND:ID of a record, e.g. intent:<intent id>, api_key:<name>."
    ),
    out: str | None = typer.Option(None, "--out", help="Write the proof here (default: print)."),
    tenant: str = TenantOpt,
    url: str = UrlOpt,
    data_dir: str | None = DataDirOpt,
    api_key: str | None = ApiKeyOpt,
) -> None:
    """Write the inclusion proof of a stored span or record in the latest signed checkpoint;
    anyone checks it with agentledger verify-proof FILE --key VKEY (or examples/verify_proof.py)."""
    if (span is None) == (record is None):
        fail("give exactly one of --span or --record KIND:ID", 2)
    if span is not None:
        kind, record_id = "span", span
    else:
        kind, _, record_id = (record or "").partition(":")
        if not record_id:
            fail("--record is KIND:ID", 2)
    client = connect(url, data_dir, api_key, tenant, code=2)
    proof = ask(client, lambda c: c.ledger_proof(kind, record_id))
    text = json.dumps(proof, indent=2, ensure_ascii=False) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    Path(out).write_text(text, encoding="utf-8")
    typer.echo(
        f"wrote {out}: {kind} {record_id} is leaf {proof['leaf_index']} of {proof['tree_size']}"
    )


@ledger_app.command("checkpoint")
def checkpoint(
    tenant: str = TenantOpt,
    url: str = UrlOpt,
    data_dir: str | None = DataDirOpt,
    api_key: str | None = ApiKeyOpt,
) -> None:
    """Print the latest signed checkpoint of the tenant's log (a C2SP signed note)."""
    client = connect(url, data_dir, api_key, tenant, code=2)
    typer.echo(ask(client, lambda c: c.ledger_checkpoint()), nl=False)


@ledger_app.command("consistency")
def consistency(
    first: int = typer.Argument(..., min=0, help="Older tree size."),
    second: int = typer.Argument(..., min=0, help="Newer tree size."),
    tenant: str = TenantOpt,
    url: str = UrlOpt,
    data_dir: str | None = DataDirOpt,
    api_key: str | None = ApiKeyOpt,
) -> None:
    """Print the consistency proof between two sizes of the tenant's log (JSON; check it with
    agentledger ledger verify-consistency)."""
    client = connect(url, data_dir, api_key, tenant, code=2)
    found = ask(client, lambda c: c.ledger_consistency(first, second))
    typer.echo(json.dumps(found, indent=2))


@ledger_app.command("append")
def append(
    data_dir: str = _DataDirOpt,
) -> None:
    """Append every tenant's new spans and records to its log and sign a checkpoint now (what
    the server's background job does each interval); on a data directory no server holds."""
    from datetime import datetime, timezone

    from agentledger.compose import build_ledger_log, open_configured_store
    from agentledger.pipeline.settings import StoreSettings
    from agentledger.pipeline.store import StoreError

    try:
        store = open_configured_store(StoreSettings(data_dir=data_dir))
    except (StoreError, ValueError) as exc:
        fail(str(exc))
    try:
        job = build_ledger_log(store)
        if job is None:
            fail("no signing key: set AGENTLEDGER_LEDGER_SIGNING_KEY_FILE")
        result = job.run(store, datetime.now(timezone.utc))
    except (StoreError, ValueError) as exc:
        fail(str(exc))
    finally:
        store.close()
    for tenant, added in sorted(result.info["appended"].items()):
        typer.echo(f"{tenant}: {added} leaves appended")
    for tenant, state in sorted(result.info.get("witness", {}).items()):
        typer.echo(f"{tenant}: witness {json.dumps(state, sort_keys=True)}")


@ledger_app.command("verify")
def verify_log(
    tenant: str = TenantOpt,
    data_dir: str = _DataDirOpt,
    key_file: str | None = _KeyFileOpt,
    key: list[str] = _VerifierKeysOpt,
    keyring: str | None = _KeyringOpt,
    witness_dir: str | None = typer.Option(
        None,
        "--witness-dir",
        envvar="AGENTLEDGER_WITNESS_DIR",
        help="Witness directory (default: <data dir>/witness/<database>).",
    ),
    witness_url: str | None = typer.Option(
        None,
        "--witness-url",
        envvar="AGENTLEDGER_WITNESS_URL",
        help="C2SP witness to compare with too (its cosignature checked with AGENTLEDGER_WITNESS_KEY).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Recompute the tenant's log from the stored spans and records, streamed, and check it
    against the latest signed checkpoint and the witnessed one: OK, or each problem (exit 1)."""
    import os

    from agentledger.compose import open_configured_store
    from agentledger.pipeline.derive.witness_http import witnessed_note
    from agentledger.pipeline.services import ledger
    from agentledger.pipeline.settings import StoreSettings
    from agentledger.pipeline.store import StoreError
    from agentledger.pipeline.tlog import verifiers as key_history

    trusted: list[Verifier] = []
    path = _key_file(key_file, data_dir)
    try:
        if path.is_file():
            trusted = key_history(path)
    except KeyFileError as exc:
        fail(str(exc), 2)
    if key or keyring or not trusted:
        trusted += _verifiers(key, keyring)
    try:
        settings = StoreSettings(
            data_dir=data_dir, clickhouse_url=os.environ.get("AGENTLEDGER_CLICKHOUSE_URL")
        )
        store = open_configured_store(settings)
    except (StoreError, ValueError) as exc:
        fail(str(exc), 2)
    try:
        where = witness_dir or os.path.join(data_dir, "witness", store.database)
        witnessed = witnessed_note(tenant, where, witness_url)
        report = ledger.verify(store, tenant, trusted, witnessed)
    except (StoreError, ValueError) as exc:
        fail(str(exc), 2)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    elif report.ok:
        typer.echo(
            f"OK: tenant {tenant}: {report.leaves} leaves recomputed, signed checkpoint at "
            f"{report.checkpoint_size}, witnessed at {report.witnessed_size}, "
            f"{report.pending} stored since (pending)"
        )
    else:
        counts = ", ".join(f"{k} {n}" for k, n in sorted(report.counts.items()))
        typer.echo(f"BROKEN: tenant {tenant}: {counts}")
        for problem in report.problems:
            typer.echo(f"  {problem.kind}: {problem.detail}")
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``verify-proof``, ``prove`` and the ``ledger`` group to ``app``."""
    app.command("verify-proof")(verify_proof)
    app.command("prove")(prove)
    app.add_typer(ledger_app, name="ledger")

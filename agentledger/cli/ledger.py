"""``agentledger verify-proof`` and ``agentledger ledger public-key|create-key|rotate-key|
verify-consistency``: the ledger's offline commands.

None of them opens a store or calls a server: a proof is checked with the file and the public key
alone (an auditor's machine has neither our data nor our engine), and the signing key is a file
(``AGENTLEDGER_LEDGER_SIGNING_KEY_FILE``, else ``ledger-signing.key`` in the data directory).
"""

from __future__ import annotations

from pathlib import Path

import typer

from agentledger.cli._common import DEFAULT_DATA_DIR, fail
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


def register(app: typer.Typer) -> None:
    """Add ``verify-proof`` and the ``ledger`` group to ``app``."""
    app.command("verify-proof")(verify_proof)
    app.add_typer(ledger_app, name="ledger")

"""The ledger's signing key on disk, and the keyring of public keys that verify its checkpoints.

The signing key file holds one line, Go's and C2SP's note signer key form::

    PRIVATE+KEY+<name>+<8 hex digits key id>+<base64(0x01 || 32-byte Ed25519 seed)>

Chosen over PEM because it carries the key's name and id (a PEM file would need a second file for
the name), Go's ``note.NewSigner`` and every sumdb/tlog tool read it as it is, and the tests check
it against the published vector. The file is created with mode 0600 and written atomically; it is
never stored in ClickHouse.

Where the key comes from: ``AGENTLEDGER_LEDGER_SIGNING_KEY_FILE`` when set (the file must exist:
a configured path that is missing is an error, not a reason to make a new identity); otherwise
``ledger-signing.key`` in the embedded data directory, created on first use.

Rotation (``rotate``) appends the old key's verifier key to the keyring file beside the key file
(``<key file without suffix>.keyring``: one verifier key per line, ``#`` comments) and then
replaces the key file with a new key of the same name. The old private key is gone, so nothing can
sign backdated checkpoints with it; its public key still verifies every checkpoint it signed.
"""

from __future__ import annotations

import datetime as _dt
import os
import tempfile
from pathlib import Path
from typing import Final

from agentledger.pipeline.tlog.note import NoteError, Signer, Verifier

__all__ = [
    "DEFAULT_KEY_FILE",
    "DEFAULT_KEY_NAME",
    "SIGNING_KEY_ENV",
    "KeyFileError",
    "create_signing_key",
    "ensure_signing_key",
    "keyring_path",
    "load_signing_key",
    "read_keyring",
    "read_signing_key",
    "rotate_signing_key",
    "signing_key_path",
    "verifiers",
]

SIGNING_KEY_ENV: Final = "AGENTLEDGER_LEDGER_SIGNING_KEY_FILE"
"""Environment variable naming the signing key file."""
DEFAULT_KEY_FILE: Final = "ledger-signing.key"
"""File name of the key created in an embedded data directory."""
DEFAULT_KEY_NAME: Final = "agentledger"
"""Key name of a new key unless one is given (it appears in every signature line)."""


class KeyFileError(ValueError):
    """A key or keyring file that is missing, unreadable or malformed; the message names it."""


def signing_key_path(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The configured key file: ``explicit``, then ``AGENTLEDGER_LEDGER_SIGNING_KEY_FILE``;
    None when neither is set."""
    value = os.fspath(explicit) if explicit else os.environ.get(SIGNING_KEY_ENV, "")
    return Path(value) if value else None


def keyring_path(key_file: str | os.PathLike[str]) -> Path:
    """The keyring file beside a key file: the same name with the suffix ``.keyring``."""
    return Path(key_file).with_suffix(".keyring")


def read_signing_key(path: str | os.PathLike[str]) -> Signer:
    """The signer in a key file; raises KeyFileError naming the file and the problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise KeyFileError(f"no ledger signing key at {path}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read the ledger signing key {path}: {exc}") from exc
    try:
        return Signer.parse(text.strip())
    except NoteError as exc:
        raise KeyFileError(f"{path}: {exc}") from exc


def _write_private(path: Path, text: str, *, replace: bool) -> None:
    """Write ``text`` to ``path`` with mode 0600, all or nothing; without ``replace``, raise
    FileExistsError rather than overwrite."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # fails when the file exists: never two keys for one path
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def create_signing_key(path: str | os.PathLike[str], name: str = DEFAULT_KEY_NAME) -> Signer:
    """A new key written to ``path`` (mode 0600); raises KeyFileError when a file is there."""
    signer = Signer.generate(name)
    try:
        _write_private(Path(path), signer.skey + "\n", replace=False)
    except FileExistsError as exc:
        raise KeyFileError(f"{path} exists: not replacing a signing key") from exc
    return signer


def ensure_signing_key(
    directory: str | os.PathLike[str], name: str = DEFAULT_KEY_NAME
) -> tuple[Signer, bool]:
    """The key in ``directory/ledger-signing.key``, created when missing; and whether it was
    created now. Two processes racing get the same key."""
    path = Path(directory) / DEFAULT_KEY_FILE
    if path.exists():
        return read_signing_key(path), False
    try:
        return create_signing_key(path, name), True
    except KeyFileError:
        return read_signing_key(path), False


def load_signing_key(data_dir: str | os.PathLike[str] | None = None) -> tuple[Signer, Path]:
    """The configured key and its file: ``AGENTLEDGER_LEDGER_SIGNING_KEY_FILE`` (which must
    exist), else the key in ``data_dir`` (created on first use). Raises KeyFileError when neither
    is available."""
    configured = signing_key_path()
    if configured is not None:
        return read_signing_key(configured), configured
    if data_dir is None:
        raise KeyFileError(f"set {SIGNING_KEY_ENV} to the ledger signing key file")
    signer, _ = ensure_signing_key(data_dir)
    return signer, Path(data_dir) / DEFAULT_KEY_FILE


def read_keyring(path: str | os.PathLike[str]) -> list[Verifier]:
    """The verifier keys in a keyring file (none when it does not exist)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    found = []
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            found.append(Verifier.parse(line))
        except NoteError as exc:
            raise KeyFileError(f"{path}:{number}: {exc}") from exc
    return found


def verifiers(key_file: str | os.PathLike[str]) -> list[Verifier]:
    """Every public key of a key file's history: the current key's, then the retired ones."""
    return [read_signing_key(key_file).verifier(), *read_keyring(keyring_path(key_file))]


def rotate_signing_key(
    key_file: str | os.PathLike[str], name: str | None = None
) -> tuple[Verifier, Signer]:
    """Retire the key in ``key_file`` into its keyring and replace it with a new one (same name
    unless ``name``); returns the retired public key and the new signer. The keyring line is on
    disk before the key changes, so a crash in between loses no public key."""
    key_file = Path(key_file)
    old = read_signing_key(key_file)
    new = Signer.generate(name or old.name)
    ring = keyring_path(key_file)
    when = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    with open(ring, "a", encoding="utf-8") as f:
        f.write(f"# retired {when}\n{old.verifier().vkey}\n")
        f.flush()
        os.fsync(f.fileno())
    _write_private(key_file, new.skey + "\n", replace=True)
    return old.verifier(), new

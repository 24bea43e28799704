"""A C2SP transparency-log witness (https://c2sp.org/tlog-witness): the ``add-checkpoint`` body,
Ed25519 cosignatures (https://c2sp.org/tlog-cosignature, ``cosignature/v1``) and the witness's
own rule, with no HTTP in it (``agentledger/witness.py`` serves it, ``pipeline/derive/
witness_http.py`` is the log's client).

Why a witness at all: whoever can write the store can rebuild a tenant's log and sign it again.
A witness keeps, per log origin, the latest checkpoint it cosigned and never cosigns one that does
not extend it, so a rebuilt or forked log is refused where the operator cannot reach, and the
witness's copy shows a restored or truncated store for what it is.

``add-checkpoint`` (the spec's section of that name)::

    old <size the log believes the witness has>
    <base64 consistency proof hash, one a line, at most 63>
    <empty line>
    <signed checkpoint note>

answered 200 with the witness's cosignature line(s); 400 for a malformed body or an old size above
the new one; 403 when no trusted log key signed it; 404 for an origin the witness does not follow;
409 (body: the size it has, ``text/x.tlog.size``) when the old size is not the witness's, or a
same-size checkpoint has another root; 422 when the consistency proof does not verify.

A cosignature is a note signature line by the witness key, key id
``SHA-256(name || 0x0A || 0x04 || public key)[:4]``, over ``cosignature/v1\\ntime <t>\\n`` followed
by the checkpoint text, carrying ``timestamp (8 bytes, big-endian) || Ed25519 signature``. Keys are
written as note keys with the algorithm byte 0x04: ``<name>+<id>+<base64(0x04 || key)>`` (public)
and ``PRIVATE+KEY+<name>+<id>+<base64(0x04 || seed)>`` (private).
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import logging
import os
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agentledger.pipeline.tlog.merkle import ProofError, verify_consistency
from agentledger.pipeline.tlog.note import (
    Checkpoint,
    NoteError,
    NoteSignature,
    Verifier,
    b64decode_strict,
    open_note,
    parse_note,
    valid_key_name,
)

__all__ = [
    "write_atomically",
    "ALG_COSIGNATURE_V1",
    "MAX_PROOF_LINES",
    "SIZE_CONTENT_TYPE",
    "AddCheckpoint",
    "CosignatureVerifier",
    "Cosigner",
    "WitnessError",
    "WitnessLog",
]

log = logging.getLogger(__name__)

ALG_COSIGNATURE_V1: Final = 0x04
"""Algorithm byte of Ed25519 ``cosignature/v1`` keys (key ids and key strings)."""
MAX_PROOF_LINES: Final = 63
"""Most consistency proof lines a request may carry (the spec's bound)."""
SIZE_CONTENT_TYPE: Final = "text/x.tlog.size"
"""Content type of a 409 answer: the witness's size and a newline."""


class WitnessError(ValueError):
    """A refused ``add-checkpoint``: the HTTP status the spec gives the reason, the reason, and
    (409 only) the size the witness holds."""

    def __init__(self, status: int, message: str, size: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.size = size


def _cosigned_message(text: str, timestamp: int) -> bytes:
    return f"cosignature/v1\ntime {timestamp}\n{text}".encode()


def _key_id(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_COSIGNATURE_V1]) + public_key)
    return int.from_bytes(digest.digest()[:4], "big")


def _key_parts(text: str, fields: int, what: str) -> tuple[str, int, bytes]:
    parts = text.strip().split("+", fields - 1)
    if len(parts) != fields or not valid_key_name(parts[-3]) or len(parts[-2]) != 8:
        raise NoteError(f"a {what} is {'PRIVATE+KEY+' if fields == 5 else ''}<name>+<id>+<base64>")
    raw = b64decode_strict(parts[-1], what)
    if len(raw) != 33 or raw[0] != ALG_COSIGNATURE_V1:
        raise NoteError(f"{what} is not an Ed25519 cosignature/v1 key (0x04 and 32 bytes)")
    try:
        return parts[-3], int(parts[-2], 16), raw[1:]
    except ValueError as exc:
        raise NoteError(f"{what} id is not 8 hex digits") from exc


@dataclasses.dataclass(frozen=True)
class CosignatureVerifier:
    """A witness's public key: checks its cosignatures of checkpoints."""

    name: str
    public_key: bytes

    @property
    def key_id(self) -> int:
        """The key id its signature lines carry."""
        return _key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """``<name>+<key id hex>+<base64(0x04 || public key)>``."""
        data = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.public_key).decode()
        return f"{self.name}+{self.key_id:08x}+{data}"

    @classmethod
    def parse(cls, vkey: str) -> CosignatureVerifier:
        """The verifier of a vkey string; raises NoteError naming what is wrong."""
        name, kid, public_key = _key_parts(vkey, 3, "witness key")
        verifier = cls(name, public_key)
        if verifier.key_id != kid:
            raise NoteError("witness key id does not match its name and key")
        return verifier

    def timestamp(self, text: str, signature: NoteSignature) -> int | None:
        """The time (POSIX seconds) of this key's valid cosignature of the checkpoint ``text``;
        None when the line is by another key or does not verify."""
        if (signature.name, signature.key_id) != (self.name, self.key_id):
            return None
        if len(signature.signature) != 72:
            return None
        timestamp = int.from_bytes(signature.signature[:8], "big")
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(
                signature.signature[8:], _cosigned_message(text, timestamp)
            )
        except InvalidSignature:
            return None
        return timestamp

    def verified_time(self, note: str) -> int | None:
        """The time of this witness's valid cosignature in a signed note; None when absent."""
        text, signatures = parse_note(note)
        times = [self.timestamp(text, s) for s in signatures]
        return max((t for t in times if t is not None), default=None)


@dataclasses.dataclass(frozen=True)
class Cosigner:
    """A witness's private key. Its ``repr`` never shows the key."""

    name: str
    seed: bytes = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        if not valid_key_name(self.name) or len(self.seed) != 32:
            raise NoteError("a cosigner is a valid key name and a 32-byte Ed25519 seed")

    @classmethod
    def generate(cls, name: str) -> Cosigner:
        """A new random key."""
        return cls(name, Ed25519PrivateKey.generate().private_bytes_raw())

    @classmethod
    def parse(cls, skey: str) -> Cosigner:
        """The cosigner of a ``PRIVATE+KEY+...`` string (algorithm 0x04); raises NoteError."""
        if not skey.strip().startswith("PRIVATE+KEY+"):
            raise NoteError("a witness private key is PRIVATE+KEY+<name>+<id>+<base64>")
        name, kid, seed = _key_parts(skey, 5, "witness private key")
        cosigner = cls(name, seed)
        if cosigner.verifier().key_id != kid:
            raise NoteError("witness private key id does not match its name and key")
        return cosigner

    @property
    def skey(self) -> str:
        """The secret key string (keep it out of logs)."""
        data = base64.b64encode(bytes([ALG_COSIGNATURE_V1]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier().key_id:08x}+{data}"

    def verifier(self) -> CosignatureVerifier:
        """The public half."""
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        return CosignatureVerifier(
            self.name, private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        )

    def cosign(self, text: str, timestamp: int | None = None) -> NoteSignature:
        """This witness's cosignature of the checkpoint ``text`` at ``timestamp`` (now)."""
        when = int(time.time()) if timestamp is None else timestamp
        signature = Ed25519PrivateKey.from_private_bytes(self.seed).sign(
            _cosigned_message(text, when)
        )
        return NoteSignature(self.name, self.verifier().key_id, when.to_bytes(8, "big") + signature)


@dataclasses.dataclass(frozen=True)
class AddCheckpoint:
    """One ``add-checkpoint`` request: the old size, the consistency proof, the signed note."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: str

    def body(self) -> bytes:
        """The request body."""
        lines = [f"old {self.old_size}", *(base64.b64encode(h).decode() for h in self.proof)]
        return ("\n".join(lines) + "\n\n" + self.checkpoint).encode()

    @classmethod
    def parse(cls, body: bytes) -> AddCheckpoint:
        """The request in a body; raises WitnessError(400) naming what is malformed."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WitnessError(400, "body is not UTF-8") from exc
        head, sep, note = text.partition("\n\n")
        lines = head.split("\n")
        if not sep or not lines[0].startswith("old "):
            raise WitnessError(400, "body must start 'old <size>', proof lines, an empty line")
        size = lines[0][4:]
        if not size.isdigit() or (size != "0" and size.startswith("0")):
            raise WitnessError(400, f"old size {size[:24]!r} is not a decimal without zeros")
        if len(lines) - 1 > MAX_PROOF_LINES:
            raise WitnessError(400, f"more than {MAX_PROOF_LINES} consistency proof lines")
        try:
            proof = tuple(b64decode_strict(h, f"proof line {i}") for i, h in enumerate(lines[1:]))
        except NoteError as exc:
            raise WitnessError(400, str(exc)) from exc
        if any(len(h) != 32 for h in proof):
            raise WitnessError(400, "a consistency proof line is not a 32-byte hash")
        return cls(int(size), proof, note)


class WitnessLog:
    """The witness's rule and memory: per log origin, the latest checkpoint it cosigned (a file
    ``<directory>/<origin, URL-quoted>.checkpoint`` holding the cosigned note, replaced
    atomically), checked and replaced under one lock as the spec requires; refused requests by a
    trusted key are appended to ``<origin>.refused`` as evidence."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        cosigner: Cosigner,
        log_keys: Sequence[Verifier],
        origin_prefix: str = "agentledger/",
    ) -> None:
        if not log_keys:
            raise ValueError("a witness needs at least one log key to trust")
        self.directory = Path(directory)
        self.cosigner = cosigner
        self.log_keys = list(log_keys)
        self.origin_prefix = origin_prefix
        self._lock = threading.Lock()

    def _path(self, origin: str, suffix: str) -> Path:
        return self.directory / f"{urllib.parse.quote(origin, safe='')}.{suffix}"

    def latest(self, origin: str) -> str | None:
        """The latest cosigned note of the log ``origin``; None when none was cosigned."""
        try:
            return self._path(origin, "checkpoint").read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def add_checkpoint(self, body: bytes, now: int | None = None) -> str:
        """Cosign the request's checkpoint when it extends the latest one; returns the
        cosignature line. Raises WitnessError with the spec's status otherwise."""
        request = AddCheckpoint.parse(body)
        try:
            text, _ = parse_note(request.checkpoint)
            new = Checkpoint.parse(text)
        except NoteError as exc:
            raise WitnessError(400, f"checkpoint: {exc}") from exc
        if not new.origin.startswith(self.origin_prefix):
            raise WitnessError(404, f"unknown log {new.origin!r}")
        try:
            open_note(request.checkpoint, self.log_keys)
        except NoteError as exc:
            raise WitnessError(403, f"checkpoint of {new.origin}: {exc}") from exc
        if request.old_size > new.size:
            raise WitnessError(400, f"old size {request.old_size} is above the size {new.size}")
        with self._lock:
            try:
                self._check(request, new)
            except WitnessError as exc:
                if exc.status == 422 or (exc.status == 409 and exc.size == new.size):
                    self._evidence(new.origin, request, str(exc))
                raise
            cosignature = self.cosigner.cosign(text, now)
            write_atomically(
                self._path(new.origin, "checkpoint"), request.checkpoint + cosignature.line()
            )
        return cosignature.line()

    def _check(self, request: AddCheckpoint, new: Checkpoint) -> None:
        latest = self.latest(new.origin)
        known = Checkpoint.parse(parse_note(latest)[0]) if latest is not None else None
        size = known.size if known is not None else 0
        if request.old_size != size:
            raise WitnessError(409, f"the witness has size {size}, not {request.old_size}", size)
        if known is None:
            if request.proof:
                raise WitnessError(400, "the consistency proof from size 0 must be empty")
            return
        if new.size == known.size:
            if new.root_hash != known.root_hash:
                raise WitnessError(409, f"another root at the witnessed size {size}", size)
            return
        try:
            verify_consistency(size, new.size, request.proof, known.root_hash, new.root_hash)
        except ProofError as exc:
            raise WitnessError(
                422, f"not an extension of the witnessed size {size}: {exc}"
            ) from exc

    def _evidence(self, origin: str, request: AddCheckpoint, reason: str) -> None:
        log.warning("witness refused a checkpoint of %s: %s", origin, reason)
        path = self._path(origin, "refused")
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"# {int(time.time())} {reason}\n{request.body().decode()}\n")


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a crash) sees the old file or the new one,
    never half of one: a witness's latest checkpoint must never be torn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)

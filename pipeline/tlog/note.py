"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys, and C2SP tlog checkpoints
(https://c2sp.org/tlog-checkpoint) as their text. The byte format is Go's
``golang.org/x/mod/sumdb/note``, whose published test vectors the tests check.

A signed note::

    <text: one or more lines, each ending in a newline>
    <an empty line>
    — <key name> <base64(4-byte big-endian key id || Ed25519 signature of the text)>
    ... (one line per signature)

* key id = the first 4 bytes of SHA-256(key name || 0x0A || 0x01 || 32-byte public key);
* a verifier key is ``<name>+<8 hex digits of the key id>+<base64(0x01 || public key)>``;
* a signer key is ``PRIVATE+KEY+<name>+<key id hex>+<base64(0x01 || 32-byte seed)>``;
* the whole note is UTF-8 without control characters other than newline; key names are
  non-empty, without Unicode spaces or ``+``;
* a signature by a key the verifier does not know is ignored (that is how witnesses cosign and
  keys rotate); a signature by a known key must verify, else the note is rejected; a note with no
  verified signature is rejected.

Parsing is strict: base64 must be canonical (the encoding of what it decodes to), sizes have no
leading zeros, so one note has exactly one spelling and a flipped bit is never ignored.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

__all__ = [
    "ALG_ED25519",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteError",
    "NoteSignature",
    "OpenedNote",
    "SignatureError",
    "Signer",
    "UnverifiedNoteError",
    "Verifier",
    "b64decode_strict",
    "key_id",
    "open_note",
    "parse_note",
    "sign_note",
    "valid_key_name",
]

ALG_ED25519: Final = 0x01
"""Signature type byte of Ed25519 in key ids and key encodings."""
MAX_SIGNATURES: Final = 100
"""More signature lines than this make a note malformed (the spec asks for at least 16)."""
_DASH: Final = "\u2014 "
_HEX8: Final = re.compile(r"[0-9a-fA-F]{8}")
_SIZE: Final = re.compile(r"0|[1-9][0-9]*")


class NoteError(ValueError):
    """A malformed note, key or checkpoint."""


class SignatureError(NoteError):
    """A signature by a known key that does not verify."""


class UnverifiedNoteError(NoteError):
    """A well-formed note that no known key signed."""


def valid_key_name(name: str) -> bool:
    """Non-empty, no Unicode space, no ``+``: what the spec allows as a key name."""
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def b64decode_strict(text: str, what: str) -> bytes:
    """Standard base64 (RFC 4648 section 4) that must be the canonical encoding of its bytes."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise NoteError(f"{what} is not base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not canonical base64")
    return raw


def key_id(name: str, public_key: bytes) -> int:
    """The key id of an Ed25519 public key under ``name``."""
    digest = hashlib.sha256(name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key)
    return int.from_bytes(digest.digest()[:4], "big")


@dataclasses.dataclass(frozen=True)
class Verifier:
    """A named Ed25519 public key that checks note signatures."""

    name: str
    public_key: bytes

    def __post_init__(self) -> None:
        if not valid_key_name(self.name):
            raise NoteError(f"invalid key name {self.name!r}")
        if len(self.public_key) != 32:
            raise NoteError("an Ed25519 public key is 32 bytes")

    @property
    def key_id(self) -> int:
        """The key id signatures by this key carry."""
        return key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """``<name>+<key id hex>+<base64(0x01 || public key)>``."""
        data = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id:08x}+{data}"

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """The verifier of a verifier key string; raises NoteError naming what is wrong."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3:
            raise NoteError("a verifier key is <name>+<8 hex digits>+<base64 key>")
        name, hex_id, data = parts
        if not valid_key_name(name) or not _HEX8.fullmatch(hex_id):
            raise NoteError("a verifier key is <name>+<8 hex digits>+<base64 key>")
        raw = b64decode_strict(data, "verifier key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("verifier key is not an Ed25519 key (0x01 and 32 bytes)")
        verifier = cls(name, raw[1:])
        if verifier.key_id != int(hex_id, 16):
            raise NoteError(f"verifier key id {hex_id} does not match its name and key")
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        """True when ``signature`` is this key's Ed25519 signature of ``message``."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


@dataclasses.dataclass(frozen=True)
class Signer:
    """A named Ed25519 private key that signs notes. Its ``repr`` never shows the key."""

    name: str
    seed: bytes = dataclasses.field(repr=False)

    def __post_init__(self) -> None:
        if not valid_key_name(self.name):
            raise NoteError(f"invalid key name {self.name!r}")
        if len(self.seed) != 32:
            raise NoteError("an Ed25519 private key (seed) is 32 bytes")

    @classmethod
    def generate(cls, name: str) -> Signer:
        """A new random key."""
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        return cls(name, seed)

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """The signer of a ``PRIVATE+KEY+<name>+<id>+<base64>`` string; raises NoteError."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
            raise NoteError("a signer key is PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>")
        name, hex_id, data = parts[2:]
        if not valid_key_name(name) or not _HEX8.fullmatch(hex_id):
            raise NoteError("a signer key is PRIVATE+KEY+<name>+<8 hex digits>+<base64 key>")
        raw = b64decode_strict(data, "signer key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise NoteError("signer key is not an Ed25519 key (0x01 and a 32-byte seed)")
        signer = cls(name, raw[1:])
        if signer.key_id != int(hex_id, 16):
            raise NoteError(f"signer key id {hex_id} does not match its name and key")
        return signer

    @property
    def skey(self) -> str:
        """The secret ``PRIVATE+KEY+...`` string (keep it out of logs and stores)."""
        data = base64.b64encode(bytes([ALG_ED25519]) + self.seed).decode("ascii")
        return f"PRIVATE+KEY+{self.name}+{self.key_id:08x}+{data}"

    @property
    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        private = Ed25519PrivateKey.from_private_bytes(self.seed)
        return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_id(self) -> int:
        """The key id of this key under its name."""
        return key_id(self.name, self.public_key)

    def verifier(self) -> Verifier:
        """The public half."""
        return Verifier(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The Ed25519 signature of ``message`` (64 bytes; deterministic, RFC 8032)."""
        return Ed25519PrivateKey.from_private_bytes(self.seed).sign(message)


@dataclasses.dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, key id, signature bytes (without the id)."""

    name: str
    key_id: int
    signature: bytes

    def line(self) -> str:
        """The signature line, newline included."""
        data = base64.b64encode(self.key_id.to_bytes(4, "big") + self.signature).decode("ascii")
        return f"{_DASH}{self.name} {data}\n"


@dataclasses.dataclass(frozen=True)
class OpenedNote:
    """A note whose signatures were checked: the text and who signed it."""

    text: str
    verified: tuple[NoteSignature, ...]
    unverified: tuple[NoteSignature, ...]
    """Signatures by keys the verifier did not know (witnesses, other logs, retired keys)."""


def sign_note(text: str, signers: Sequence[Signer], existing: Sequence[NoteSignature] = ()) -> str:
    """The signed note of ``text`` (which must end in a newline): signatures already present
    first (less any by the same key as a new one), then one per signer."""
    if not text.endswith("\n"):
        raise NoteError("note text must end with a newline")
    _check_characters(text)
    data = text.encode("utf-8")
    new = [NoteSignature(s.name, s.key_id, s.sign(data)) for s in signers]
    replaced = {(s.name, s.key_id) for s in new}
    kept = [s for s in existing if (s.name, s.key_id) not in replaced]
    return text + "\n" + "".join(s.line() for s in [*kept, *new])


def _check_characters(message: str) -> None:
    if any(c < " " and c != "\n" for c in message):
        raise NoteError("malformed note: control character")
    try:
        message.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError("malformed note: not UTF-8") from exc


def parse_note(message: str | bytes) -> tuple[str, tuple[NoteSignature, ...]]:
    """The text and signature lines of a signed note, checking its syntax but no signature."""
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NoteError("malformed note: not UTF-8") from exc
    _check_characters(message)
    split = message.rfind("\n\n")
    if split < 0:
        raise NoteError("malformed note: no empty line before the signatures")
    text, block = message[: split + 1], message[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("malformed note: no signature lines, or no newline after the last")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"malformed note: more than {MAX_SIGNATURES} signatures")
    signatures = []
    for line in lines:
        if not line.startswith(_DASH):
            raise NoteError("malformed note: a signature line must start with an em dash")
        name, _, data = line[len(_DASH) :].partition(" ")
        if not valid_key_name(name) or not data:
            raise NoteError("malformed note: a signature line is '\u2014 <name> <base64>'")
        raw = b64decode_strict(data, f"signature of {name}")
        if len(raw) < 5:
            raise NoteError(f"malformed note: signature of {name} is too short")
        signatures.append(NoteSignature(name, int.from_bytes(raw[:4], "big"), raw[4:]))
    return text, tuple(signatures)


def open_note(message: str | bytes, verifiers: Iterable[Verifier]) -> OpenedNote:
    """The note, once every signature by a known key verified and at least one did. Raises
    NoteError (malformed), SignatureError (a known key's signature fails) or
    UnverifiedNoteError (no known key signed)."""
    known: dict[tuple[str, int], Verifier] = {}
    for v in verifiers:
        other = known.setdefault((v.name, v.key_id), v)
        if other.public_key != v.public_key:
            raise NoteError(f"ambiguous key {v.name}+{v.key_id:08x}")
    text, signatures = parse_note(message)
    data = text.encode("utf-8")
    verified: list[NoteSignature] = []
    unverified: list[NoteSignature] = []
    for sig in signatures:
        verifier = known.get((sig.name, sig.key_id))
        if verifier is None:
            if sig not in unverified:
                unverified.append(sig)
            continue
        if any((s.name, s.key_id) == (sig.name, sig.key_id) for s in verified):
            continue
        if not verifier.verify(data, sig.signature):
            raise SignatureError(f"invalid signature for key {sig.name}+{sig.key_id:08x}")
        verified.append(sig)
    if not verified:
        raise UnverifiedNoteError("note has no signature by a known key")
    return OpenedNote(text, tuple(verified), tuple(unverified))


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    """A C2SP tlog checkpoint: origin, tree size, root hash, optional extension lines."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.origin or "\n" in self.origin:
            raise NoteError("checkpoint origin must be one non-empty line")
        if not 0 <= self.size < 2**64:
            raise NoteError("checkpoint tree size must be in 0..2^64-1")
        if len(self.root_hash) != 32:
            raise NoteError("checkpoint root hash must be 32 bytes")
        if any(not e or "\n" in e for e in self.extensions):
            raise NoteError("checkpoint extension lines must be non-empty lines")

    def text(self) -> str:
        """The note text: origin, size, base64 root, extensions, each line ending in newline."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        return "".join(
            f"{line}\n" for line in (self.origin, str(self.size), root, *self.extensions)
        )

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """The checkpoint a note text holds; raises NoteError naming the malformed line."""
        if not text.endswith("\n"):
            raise NoteError("checkpoint text must end with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3 or any(not line for line in lines):
            raise NoteError("checkpoint text is at least three non-empty lines")
        origin, size, root, *extensions = lines
        if not _SIZE.fullmatch(size) or int(size) >= 2**64:
            raise NoteError(f"checkpoint tree size {size[:24]!r} is not a decimal in 0..2^64-1")
        root_hash = b64decode_strict(root, "checkpoint root hash")
        if len(root_hash) != 32:
            raise NoteError("checkpoint root hash is not 32 bytes")
        return cls(origin, int(size), root_hash, tuple(extensions))

"""The transparency log's primitives: RFC 9162 Merkle trees, C2SP signed notes and checkpoints,
the signing key on disk, and proof files.

Small and spec-driven on purpose (STYLE: Go's ``sumdb/tlog`` and ``sumdb/note``, transparency-dev
``formats/log``): bytes in, hashes and signatures out, no store, no network. It imports only the
standard library, ``cryptography`` and ``agentledger.schemas.ledger``, so an offline verifier
(``agentledger verify-proof``, or ``python -m agentledger.pipeline.tlog verify-proof`` without
the command line's own dependencies) needs nothing of the server; an import-linter contract keeps
it so.
Named ``tlog`` (as Go's package) to keep it apart from the checkpoint job in
``pipeline/derive/ledger*.py``, which will build on it.
"""

from agentledger.pipeline.tlog.keys import (
    DEFAULT_KEY_FILE,
    DEFAULT_KEY_NAME,
    SIGNING_KEY_ENV,
    KeyFileError,
    create_signing_key,
    ensure_signing_key,
    keyring_path,
    load_signing_key,
    read_keyring,
    read_signing_key,
    rotate_signing_key,
    signing_key_path,
    verifiers,
)
from agentledger.pipeline.tlog.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    CompactRange,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from agentledger.pipeline.tlog.note import (
    Checkpoint,
    NoteError,
    NoteSignature,
    OpenedNote,
    SignatureError,
    Signer,
    UnverifiedNoteError,
    Verifier,
    key_id,
    open_note,
    parse_note,
    sign_note,
)
from agentledger.pipeline.tlog.proof import (
    ConsistencyProof,
    InclusionProof,
    ProofFileError,
    VerifiedInclusion,
    build_consistency_proof,
    build_inclusion_proof,
    verify_consistency_proof,
    verify_inclusion_proof,
)

__all__ = [
    "DEFAULT_KEY_FILE",
    "DEFAULT_KEY_NAME",
    "EMPTY_ROOT",
    "HASH_SIZE",
    "SIGNING_KEY_ENV",
    "Checkpoint",
    "CompactRange",
    "ConsistencyProof",
    "InclusionProof",
    "KeyFileError",
    "NoteError",
    "NoteSignature",
    "OpenedNote",
    "ProofError",
    "ProofFileError",
    "SignatureError",
    "Signer",
    "UnverifiedNoteError",
    "VerifiedInclusion",
    "Verifier",
    "build_consistency_proof",
    "build_inclusion_proof",
    "consistency_proof",
    "create_signing_key",
    "ensure_signing_key",
    "inclusion_proof",
    "key_id",
    "keyring_path",
    "leaf_hash",
    "load_signing_key",
    "node_hash",
    "open_note",
    "parse_note",
    "read_keyring",
    "read_signing_key",
    "root",
    "root_from_inclusion_proof",
    "rotate_signing_key",
    "sign_note",
    "signing_key_path",
    "verifiers",
    "verify_consistency",
    "verify_consistency_proof",
    "verify_inclusion",
    "verify_inclusion_proof",
]

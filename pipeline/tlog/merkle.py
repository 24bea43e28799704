"""RFC 9162 Merkle trees: tree hashes, inclusion and consistency proofs, and a streaming root.

Section 2.1 of RFC 9162 (Certificate Transparency 2.0, the same tree as RFC 6962) is followed
literally, so any CT or transparency-dev implementation agrees with these functions:

* ``MTH({}) = SHA-256()``; ``MTH({d0}) = SHA-256(0x00 || d0)``; for n > 1, with k the largest
  power of two smaller than n, ``MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.
* Inclusion proofs are ``PATH(m, D[n])`` (2.1.3.1), checked by the algorithm of 2.1.3.2.
* Consistency proofs are ``PROOF(m, D[n])`` (2.1.4.1), checked by the algorithm of 2.1.4.2.

The functions take leaf hashes (``agentledger.schemas.ledger.leaf_hash`` of each record), not
records. ``CompactRange`` computes the root of a log of any length in O(log n) memory, as a
verifier streaming millions of leaves must. Verification failures raise ``ProofError`` with the
reason; nothing here returns a boolean that a caller could forget to check.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Final

from agentledger.schemas.ledger import NODE_PREFIX as _NODE_PREFIX
from agentledger.schemas.ledger import leaf_hash

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "CompactRange",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

_sha256 = hashlib.sha256

HASH_SIZE: Final = 32
"""Bytes of a SHA-256 hash: every leaf, node and proof element."""
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
"""MTH of the empty tree (RFC 9162: the hash of the empty string)."""


class ProofError(ValueError):
    """A proof, size or hash that does not verify; the message says which check failed."""


def node_hash(left: bytes, right: bytes) -> bytes:
    """An interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (n > 1): where RFC 9162 splits a tree."""
    return 1 << ((n - 1).bit_length() - 1)


class CompactRange:
    """The root of a growing log in O(log n) memory: the roots of the perfect subtrees that the
    log's size decomposes into (its binary digits), largest first. Appending merges equal-sized
    neighbours; the root folds them right to left, which is exactly RFC 9162's split."""

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @property
    def size(self) -> int:
        """Leaves appended so far."""
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """The roots of the perfect subtrees, largest first: with ``size``, all ``resume``
        needs to continue the log (what a checkpoint row keeps, so an appender restarts without
        reading every leaf again)."""
        return tuple(self._stack)

    @classmethod
    def resume(cls, size: int, hashes: Sequence[bytes]) -> CompactRange:
        """The range of a log of ``size`` leaves whose perfect subtrees have these roots
        (``hashes`` of a range of that size); raises ValueError when they cannot be (one root per
        binary 1 digit of ``size``, 32 bytes each)."""
        if size < 0 or len(hashes) != bin(size).count("1"):
            raise ValueError(f"a log of {size} leaves has {bin(max(size, 0)).count('1')} subtrees")
        _check_hashes("compact range", hashes)
        compact = cls()
        compact._size, compact._stack = size, list(hashes)
        return compact

    def append(self, leaf: bytes) -> None:
        """Add one leaf hash at the end of the log."""
        if len(leaf) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, not {len(leaf)}")
        stack = self._stack
        stack.append(leaf)
        self._size += 1
        n = self._size
        while not n & 1:  # inlined node_hash: this loop is a verifier's whole cost per leaf
            right = stack.pop()
            stack[-1] = _sha256(_NODE_PREFIX + stack[-1] + right).digest()
            n >>= 1

    def extend(self, leaves: Iterable[bytes]) -> None:
        """Append each leaf hash in order."""
        for leaf in leaves:
            self.append(leaf)

    def root(self) -> bytes:
        """MTH of the leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        acc = self._stack[-1]
        for left in reversed(self._stack[:-1]):
            acc = node_hash(left, acc)
        return acc


def root(leaves: Iterable[bytes]) -> bytes:
    """MTH of a sequence of leaf hashes."""
    compact = CompactRange()
    compact.extend(leaves)
    return compact.root()


def _subtree(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    return root(leaves[i] for i in range(lo, hi))


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """``PATH(index, D[n])``: the audit path of leaf ``index``, leaf side first."""
    n = len(leaves)
    if not 0 <= index < n:
        raise ValueError(f"leaf index {index} is not in a tree of {n}")
    path: list[bytes] = []
    lo, hi = 0, n
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(_subtree(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree(leaves, lo, lo + k))
            lo += k
    path.reverse()
    return path


def consistency_proof(first: int, leaves: Sequence[bytes]) -> list[bytes]:
    """``PROOF(first, D[n])``: that the tree of the first ``first`` leaves is a prefix of this
    one. Empty when ``first`` is 0 or ``n`` (nothing to prove)."""
    n = len(leaves)
    if not 0 <= first <= n:
        raise ValueError(f"size {first} is not in 0..{n}")
    if first in (0, n):
        return []
    proof: list[bytes] = []
    lo, hi, m, whole = 0, n, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(_subtree(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_subtree(leaves, lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        proof.append(_subtree(leaves, lo, hi))
    proof.reverse()
    return proof


def _check_hashes(what: str, hashes: Sequence[bytes]) -> None:
    for i, h in enumerate(hashes):
        if len(h) != HASH_SIZE:
            raise ProofError(f"{what}[{i}] is {len(h)} bytes, not {HASH_SIZE}")


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf`` at ``index`` in a tree of ``size``
    (RFC 9162 2.1.3.2 steps 1-4); raises ProofError when the proof has the wrong shape."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not in a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf)} bytes, not {HASH_SIZE}")
    _check_hashes("inclusion path", proof)
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion path is longer than the tree is high")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion path is shorter than the tree is high")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """RFC 9162 2.1.3.2: raises ProofError unless ``proof`` shows ``leaf`` at ``index`` in the
    tree of ``size`` whose root is ``expected_root``."""
    if root_from_inclusion_proof(index, size, leaf, proof) != expected_root:
        raise ProofError(f"inclusion path does not lead to the root of the tree of size {size}")


def verify_consistency(
    first: int, second: int, proof: Sequence[bytes], first_root: bytes, second_root: bytes
) -> None:
    """RFC 9162 2.1.4.2: raises ProofError unless ``proof`` shows the tree of ``first`` leaves
    with ``first_root`` is a prefix of the tree of ``second`` leaves with ``second_root``."""
    if not 0 <= first <= second:
        raise ProofError(f"size {first} is not in 0..{second}")
    _check_hashes("consistency path", proof)
    if first == second:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError(f"two different roots for the same size {first}")
        return
    if first == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("consistency path is empty")
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency path is longer than the tree is high")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency path is shorter than the tree is high")
    if fr != first_root:
        raise ProofError(f"consistency path does not lead to the root of size {first}")
    if sr != second_root:
        raise ProofError(f"consistency path does not lead to the root of size {second}")

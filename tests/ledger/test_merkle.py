"""RFC 9162 trees against the published transparency-dev/merkle vectors (proof/verify_test.go,
rfc6962/rfc6962_test.go: the CT reference tests' 8-leaf tree), plus properties over random trees."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentledger.pipeline.tlog import merkle as M

LEAF_DATA = ["", "00", "10", "2021", "3031", "40414243", "5051525354555657",
             "606162636465666768696a6b6c6d6e6f"]  # fmt: skip
LEAVES = [M.leaf_hash(bytes.fromhex(d)) for d in LEAF_DATA]
ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# (1-based leaf, tree size, path) as published
INCLUSION = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (3, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (2, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def _h(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(h) for h in hexes]


def test_hasher_vectors() -> None:
    assert M.EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert M.node_hash(b"N123", b"N456").hex() == (
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )
    assert M.root([]) == M.EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_of_the_reference_tree(size: int) -> None:
    assert M.root(LEAVES[:size]).hex() == ROOTS[size - 1]


@pytest.mark.parametrize(("leaf", "size", "path"), INCLUSION)
def test_published_inclusion_proofs(leaf: int, size: int, path: list[str]) -> None:
    index, proof, expected = leaf - 1, _h(path), bytes.fromhex(ROOTS[size - 1])
    assert M.inclusion_proof(index, LEAVES[:size]) == proof
    M.verify_inclusion(index, size, LEAVES[index], proof, expected)
    # the corruptions of verify_test.go's corruptInclusionProof: none may verify
    probes = [
        (index - 1, size, LEAVES[index], proof, expected),
        (index + 1, size, LEAVES[index], proof, expected),
        (index ^ 2, size, LEAVES[index], proof, expected),
        (index, size * 2, LEAVES[index], proof, expected),
        (index, size // 2, LEAVES[index], proof, expected),
        (index, size, hashlib.sha256(b"WrongLeaf").digest(), proof, expected),
        (index, size, LEAVES[index], proof, M.EMPTY_ROOT),
        (index, size, LEAVES[index], proof, SOME_HASH),
        (index, size, LEAVES[index], [*proof, b""], expected),
        (index, size, LEAVES[index], [*proof, expected], expected),
        (index, size, LEAVES[index], [b"", *proof], expected),
        (index, size, LEAVES[index], [expected, *proof], expected),
    ]
    for i in range(len(proof)):
        flipped = bytearray(proof[i])
        flipped[0] ^= 8
        probes.append((index, size, LEAVES[index], [*proof[:i], bytes(flipped), *proof[i + 1 :]], expected))  # fmt: skip
    if proof:
        probes.append((index, size, LEAVES[index], proof[:-1], expected))
    if len(proof) > 1:
        probes.append((index, size, LEAVES[index], [proof[0], SOME_HASH, *proof[1:]], expected))
    for probe in probes:
        with pytest.raises(M.ProofError):
            M.verify_inclusion(*probe)


@pytest.mark.parametrize(("first", "second", "path"), CONSISTENCY)
def test_published_consistency_proofs(first: int, second: int, path: list[str]) -> None:
    proof = _h(path)
    r1, r2 = bytes.fromhex(ROOTS[first - 1]), bytes.fromhex(ROOTS[second - 1])
    assert M.consistency_proof(first, LEAVES[:second]) == proof
    M.verify_consistency(first, second, proof, r1, r2)
    if not proof:
        return
    probes = [
        (first - 1, second, proof, r1, r2),
        (first + 1, second, proof, r1, r2),
        (first ^ 2, second, proof, r1, r2),
        (first, second * 2, proof, r1, r2),
        (first, second // 2, proof, r1, r2),
        (first, second, proof, b"WrongRoot", r2),
        (first, second, proof, r1, b"WrongRoot"),
        (first, second, proof, r2, r1),
        (first, second, [], r1, r2),
        (first, second, [*proof, b""], r1, r2),
        (first, second, [*proof, r1], r1, r2),
        (first, second, [*proof, r2], r1, r2),
        (first, second, [b"", *proof], r1, r2),
        (first, second, [r1, *proof], r1, r2),
        (first, second, [r2, *proof], r1, r2),
        (first, second, [proof[0], *proof], r1, r2),
        (first, second, proof[:-1], r1, r2),
    ]
    for i in range(len(proof)):
        flipped = bytearray(proof[i])
        flipped[0] ^= 16
        probes.append((first, second, [*proof[:i], bytes(flipped), *proof[i + 1 :]], r1, r2))
    for probe in probes:
        with pytest.raises(M.ProofError):
            M.verify_consistency(*probe)


def test_trivial_consistency_cases_of_the_reference_tests() -> None:
    r1, r2 = b"don't care 1", b"don't care 2"
    M.verify_consistency(0, 0, [], r1, r1)
    M.verify_consistency(0, 1, [], r1, r2)
    M.verify_consistency(1, 1, [], r2, r2)
    for probe in [
        (0, 0, [], r1, r2),
        (1, 1, [], r1, r2),
        (1, 0, [], r1, r2),
        (2, 1, [], r1, r2),
        (1, 2, [], r1, r2),
        (0, 0, [M.EMPTY_ROOT], M.EMPTY_ROOT, M.EMPTY_ROOT),
        (0, 1, [M.EMPTY_ROOT], M.EMPTY_ROOT, M.EMPTY_ROOT),
        (1, 1, [M.EMPTY_ROOT], M.EMPTY_ROOT, M.EMPTY_ROOT),
    ]:
        with pytest.raises(M.ProofError):
            M.verify_consistency(*probe)


def test_inclusion_outside_the_tree_is_refused() -> None:
    for index, size in [(0, 0), (1, 0), (2, 1), (1, 1)]:
        with pytest.raises(M.ProofError):
            M.verify_inclusion(index, size, SOME_HASH, [], M.EMPTY_ROOT)


def _tree(n: int) -> list[bytes]:
    return [M.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n - 1))))
def test_every_inclusion_proof_verifies_and_no_mutation_does(case: tuple[int, int]) -> None:
    n, index = case
    leaves = _tree(n)
    top = M.root(leaves)
    proof = M.inclusion_proof(index, leaves)
    M.verify_inclusion(index, n, leaves[index], proof, top)
    for i in range(len(proof)):
        for bit in (0, 77, 255):
            mutated = bytearray(proof[i])
            mutated[bit // 8] ^= 1 << (bit % 8)
            with pytest.raises(M.ProofError):
                M.verify_inclusion(index, n, leaves[index], [*proof[:i], bytes(mutated), *proof[i + 1 :]], top)  # fmt: skip
    for other in {index - 1, index + 1} & set(range(n)):
        with pytest.raises(M.ProofError):
            M.verify_inclusion(other, n, leaves[index], proof, top)
    with pytest.raises(M.ProofError):  # a size of another height (the checkpoint binds the size)
        M.verify_inclusion(index, 2 * n, leaves[index], proof, top)


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 300).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))))
def test_every_consistency_proof_verifies_and_no_mutation_does(case: tuple[int, int]) -> None:
    m, n = case
    leaves = _tree(n)
    r1, r2 = M.root(leaves[:m]), M.root(leaves)
    proof = M.consistency_proof(m, leaves)
    M.verify_consistency(m, n, proof, r1, r2)
    for i in range(len(proof)):
        mutated = bytearray(proof[i])
        mutated[31] ^= 0x80
        with pytest.raises(M.ProofError):
            M.verify_consistency(m, n, [*proof[:i], bytes(mutated), *proof[i + 1 :]], r1, r2)
    if m < n:
        forked = [*leaves[: m - 1], M.leaf_hash(b"rewritten"), *leaves[m:]]
        with pytest.raises(M.ProofError):  # history rewritten under the old checkpoint
            M.verify_consistency(m, n, M.consistency_proof(m, forked), r1, M.root(forked))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 600))
def test_the_streaming_root_is_the_tree_hash_at_every_size(n: int) -> None:
    leaves = _tree(n)
    compact = M.CompactRange()
    compact.extend(leaves)
    assert compact.size == n
    assert compact.root() == M.root(leaves) == _reference_mth(leaves)
    assert len(compact._stack) == bin(n).count("1")  # O(log n): one root per binary digit


def _reference_mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 2.1.1 written as the recursion in the text."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return M.node_hash(_reference_mth(leaves[:k]), _reference_mth(leaves[k:]))

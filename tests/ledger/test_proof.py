"""Proof files over a real tenant log: built, verified with the public key alone, and refused when
any bit of the record, the path, the checkpoint or its signature is flipped."""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from agentledger.pipeline.tlog import (
    Checkpoint,
    ConsistencyProof,
    InclusionProof,
    Signer,
    build_consistency_proof,
    build_inclusion_proof,
    root,
    sign_note,
    verify_consistency_proof,
    verify_inclusion_proof,
)
from agentledger.pipeline.tlog.note import parse_note
from tests.ledger.conftest import TenantLog, make_log, mutations


def _proof(log: TenantLog, index: int) -> InclusionProof:
    return build_inclusion_proof(log.note, log.leaves, index, log.records[index])


def test_every_leaf_of_the_log_is_proven(tenant_log: TenantLog) -> None:
    key = tenant_log.signer.verifier()
    for index, record in enumerate(tenant_log.records):
        text = _proof(tenant_log, index).dumps()
        assert set(json.loads(text)) == {
            "checkpoint",
            "tree_size",
            "leaf_index",
            "record",
            "inclusion_path",
        }
        result = verify_inclusion_proof(text, [key])
        assert (result.leaf_index, result.tree_size) == (index, len(tenant_log.leaves))
        assert result.origin == "agentledger/acme" and result.record.tenant == "acme"
        assert base64.b64decode(json.loads(text)["record"]) == record
        assert [s.key_id for s in result.signatures] == [key.key_id]


def test_any_flipped_bit_is_refused(tenant_log: TenantLog) -> None:
    key = tenant_log.signer.verifier()
    proof = _proof(tenant_log, 5)
    counted: dict[str, int] = {}
    for where, mutated in mutations(proof):
        with pytest.raises(ValueError):
            verify_inclusion_proof(mutated, [key])
        counted[where] = counted.get(where, 0) + 1
    assert counted["record"] == 8 * len(proof.record)
    assert counted["signature"] == 8 * 68
    assert set(counted) >= {"record", "path[0]", "checkpoint", "signature", "tree_size"}


def test_a_proof_names_why_it_fails(tenant_log: TenantLog) -> None:
    key = tenant_log.signer.verifier()
    good = _proof(tenant_log, 3).to_json()
    cases = [
        ({**good, "tree_size": good["tree_size"] + 1}, "not the checkpoint's size"),
        ({**good, "leaf_index": 4}, "does not lead to the root"),
        ({**good, "extra": 1}, "unknown \\['extra'\\]"),
        ({k: v for k, v in good.items() if k != "record"}, "missing \\['record'\\]"),
        ({**good, "leaf_index": -1}, "non-negative"),
        ({**good, "inclusion_path": ["%%%"]}, "inclusion_path\\[0\\] is not base64"),
    ]
    for data, reason in cases:
        with pytest.raises(ValueError, match=reason):
            verify_inclusion_proof(json.dumps(data), [key])
    with pytest.raises(ValueError, match="not JSON"):
        verify_inclusion_proof("{", [key])
    with pytest.raises(ValueError, match="no signature by a known key"):
        verify_inclusion_proof(json.dumps(good), [Signer.generate("agentledger").verifier()])


def test_a_record_cannot_be_proven_in_another_tenants_log(signer: Signer) -> None:
    acme, other = make_log("acme", signer), make_log("globex", signer)
    # globex's checkpoint and path, acme's record at the same place: the leaf differs anyway,
    # and a log whose origin is not the record's tenant is refused before the path is run
    forged = Checkpoint("agentledger/globex", len(acme.leaves), root(acme.leaves))
    proof = build_inclusion_proof(
        sign_note(forged.text(), [signer]), acme.leaves, 0, acme.records[0]
    )
    with pytest.raises(ValueError, match="tenant 'acme' is not in the log 'agentledger/globex'"):
        verify_inclusion_proof(proof, [signer.verifier()])
    assert verify_inclusion_proof(_proof(other, 0), [signer.verifier()]).origin.endswith("globex")


def test_witness_cosignatures_are_ignored_and_a_retired_key_still_verifies(
    tenant_log: TenantLog,
) -> None:
    witness = Signer.generate("witness.example/w1")
    cosigned = sign_note(parse_note(tenant_log.note)[0], [witness], parse_note(tenant_log.note)[1])
    proof = dataclasses.replace(_proof(tenant_log, 0), checkpoint=cosigned)
    new_key = Signer.generate("agentledger").verifier()
    result = verify_inclusion_proof(proof, [new_key, tenant_log.signer.verifier()])
    assert [s.name for s in result.signatures] == ["agentledger"]


def test_a_proof_is_only_built_for_what_the_checkpoint_covers(tenant_log: TenantLog) -> None:
    with pytest.raises(ValueError, match="not leaf 1"):
        build_inclusion_proof(tenant_log.note, tenant_log.leaves, 1, tenant_log.records[0])
    with pytest.raises(ValueError, match="size"):
        build_inclusion_proof(tenant_log.note, tenant_log.leaves[:-1], 0, tenant_log.records[0])


def test_consistency_between_two_signed_checkpoints(tenant_log: TenantLog) -> None:
    signer, leaves = tenant_log.signer, tenant_log.leaves
    key = signer.verifier()
    for first in (1, 4, 7, len(leaves)):
        old = sign_note(
            Checkpoint("agentledger/acme", first, root(leaves[:first])).text(), [signer]
        )
        text = build_consistency_proof(first, leaves).dumps()
        a, b = verify_consistency_proof(text, old, tenant_log.note, [key])
        assert (a.size, b.size) == (first, len(leaves))
    rewritten = [*leaves[:2], bytes(32), *leaves[3:7]]
    old = sign_note(Checkpoint("agentledger/acme", 7, root(rewritten)).text(), [signer])
    with pytest.raises(ValueError, match="root of size 7"):
        verify_consistency_proof(build_consistency_proof(7, leaves), old, tenant_log.note, [key])
    other = sign_note(Checkpoint("agentledger/globex", 7, root(leaves[:7])).text(), [signer])
    with pytest.raises(ValueError, match="two logs"):
        verify_consistency_proof(build_consistency_proof(7, leaves), other, tenant_log.note, [key])
    with pytest.raises(ValueError, match="sizes 6->"):
        verify_consistency_proof(
            build_consistency_proof(6, leaves),
            sign_note(Checkpoint("agentledger/acme", 7, root(leaves[:7])).text(), [signer]),
            tenant_log.note,
            [key],
        )
    assert ConsistencyProof.loads(build_consistency_proof(3, leaves).dumps()).first_size == 3

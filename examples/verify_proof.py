"""Check an AgentLedger inclusion proof with nothing but the file and the log's public key.

    python verify_proof.py proof.json 'agentledger+1a2b3c4d+AUx...'

Standard library and `cryptography` only; docs/verifying.md explains each step.
Exit 0 and "OK ..." when the proof holds, 1 and the reason when it does not.
"""

import base64
import hashlib
import json
import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


def b64(text):  # strict: only the canonical spelling of the bytes is accepted
    raw = base64.b64decode(text, validate=True)
    if base64.b64encode(raw).decode() != text:
        raise ValueError("non-canonical base64")
    return raw


def sha256(data):
    return hashlib.sha256(data).digest()


def verify(proof_text, vkey):
    # 1. The verifier key: <name>+<key id hex>+<base64(0x01 || Ed25519 public key)>.
    name, key_id_hex, key_b64 = vkey.split("+", 2)
    key = b64(key_b64)
    if len(key) != 33 or key[0] != 1:
        raise ValueError("not an Ed25519 verifier key")
    key_id = sha256(name.encode() + b"\n" + key)[:4]
    if key_id.hex() != key_id_hex.lower():
        raise ValueError("verifier key id does not match")

    # 2. The proof file and the signed note: text, empty line, signature lines.
    proof = json.loads(proof_text)
    note = proof["checkpoint"]
    if any(c < " " and c != "\n" for c in note):
        raise ValueError("control character in note")
    text, _, sigs = note.rpartition("\n\n")
    text += "\n"
    if not sigs.endswith("\n"):
        raise ValueError("malformed signature lines")
    verified = False
    for line in sigs[:-1].split("\n"):
        if not line.startswith("\u2014 "):
            raise ValueError("malformed signature line")
        sig_name, _, sig_b64 = line[2:].partition(" ")
        sig = b64(sig_b64)
        if sig_name != name or sig[:4] != key_id:
            continue  # another key's signature (a witness, a retired key): ignored
        Ed25519PublicKey.from_public_bytes(key[1:]).verify(sig[4:], text.encode())  # raises
        verified = True
    if not verified:
        raise ValueError("checkpoint has no signature by this key")

    # 3. The checkpoint: origin, tree size, base64 root hash (then optional extension lines).
    origin, size, root_b64, *_ = text[:-1].split("\n")
    if size != str(int(size)) or int(size) != proof["tree_size"]:
        raise ValueError("tree size does not match the checkpoint")
    root = b64(root_b64)

    # 4. The record: RFC 8785 canonical JSON naming its tenant, whose log the origin must be.
    record = b64(proof["record"])
    fields = json.loads(record)
    if origin != "agentledger/" + fields["tenant"]:
        raise ValueError("record belongs to another tenant's log")

    # 5. RFC 9162 2.1.3.2: from the leaf hash up the path to the root.
    index, n = proof["leaf_index"], proof["tree_size"]
    if type(index) is not int or not 0 <= index < n:
        raise ValueError("leaf index outside the tree")
    fn, sn, r = index, n - 1, sha256(b"\x00" + record)
    for p in map(b64, proof["inclusion_path"]):
        if sn == 0 or len(p) != 32:
            raise ValueError("inclusion path too long")
        if fn & 1 or fn == sn:
            r = sha256(b"\x01" + p + r)
            while fn and not fn & 1:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = sha256(b"\x01" + r + p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0 or r != root:
        raise ValueError("inclusion path does not lead to the checkpoint's root")
    return f"OK: {fields['kind']} {fields['id']} is leaf {index} of {origin} at size {n}"


if __name__ == "__main__":
    try:
        with open(sys.argv[1], encoding="utf-8") as f:
            print(verify(f.read(), sys.argv[2]))
    except Exception as exc:  # any failure at all means: not verified
        print(f"REJECTED: {type(exc).__name__}: {exc}")
        sys.exit(1)

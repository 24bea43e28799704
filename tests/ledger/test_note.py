"""C2SP signed notes and checkpoints against golang.org/x/mod/sumdb/note's published vectors
(note_test.go: PeterNeumann and EnochRoot) and the tlog-checkpoint spec."""

from __future__ import annotations

import base64

import pytest

from agentledger.pipeline.tlog import note as N

PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdn"
    "gotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "\u2014 EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwn"
    "WLox33WWd1RvMc+QQ=\n"
)


def test_go_signer_key_gives_the_published_verifier_key_and_signature() -> None:
    signer = N.Signer.parse(PETER_SKEY)
    assert signer.skey == PETER_SKEY
    assert signer.key_id == 0xC74F20A3
    assert signer.verifier().vkey == PETER_VKEY
    assert N.sign_note(TEXT, [signer]) == TEXT + "\n" + PETER_SIG
    assert PETER_SKEY not in repr(signer)


def test_a_signature_by_the_same_key_is_replaced_not_repeated() -> None:
    signer = N.Signer.parse(PETER_SKEY)
    old = N.NoteSignature("PeterNeumann", 0xC74F20A3, b"BADSIGN")
    assert N.sign_note(TEXT, [signer], [old]) == TEXT + "\n" + PETER_SIG


def test_the_verifier_key_parses_and_every_mangling_is_refused() -> None:
    verifier = N.Verifier.parse(PETER_VKEY)
    assert (verifier.name, verifier.key_id) == ("PeterNeumann", 0xC74F20A3)
    b = PETER_VKEY.encode()
    bad = {b[i:j].decode() for i in range(len(b) + 1) for j in range(i + 1, len(b) + 1)}
    bad.discard(PETER_VKEY)
    for i in range(len(b)):
        bad.add((b[:i] + bytes([b[i] + 1]) + b[i + 1 :]).decode("utf-8", "replace"))
    bad.add("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    bad.add("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
    for mangled in bad:
        with pytest.raises(N.NoteError):
            N.Verifier.parse(mangled)


def test_every_mangling_of_the_signer_key_is_refused() -> None:
    b = PETER_SKEY.encode()
    for i in range(len(b)):
        with pytest.raises(N.NoteError):
            N.Signer.parse((b[:i] + bytes([b[i] + 1]) + b[i + 1 :]).decode())
    for i, j in [(0, len(b) - 1), (1, len(b)), (12, len(b)), (0, 30)]:
        with pytest.raises(N.NoteError):
            N.Signer.parse(b[i:j].decode())


def test_open_checks_known_keys_and_ignores_unknown_ones() -> None:
    peter, enoch = N.Verifier.parse(PETER_VKEY), N.Verifier.parse(ENOCH_VKEY)
    message = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    opened = N.open_note(message, [peter])
    assert opened.text == TEXT
    assert [s.name for s in opened.verified] == ["PeterNeumann"]
    assert [(s.name, s.key_id) for s in opened.unverified] == [("EnochRoot", 0xAF0CFE78)]
    both = N.open_note(message.encode(), [peter, enoch])
    assert [s.name for s in both.verified] == ["PeterNeumann", "EnochRoot"]
    assert both.unverified == ()
    with pytest.raises(N.UnverifiedNoteError):
        N.open_note(message, [])
    # same name, other key: an unknown key, ignored (the spec: name and id both must match)
    other = N.Signer.generate("PeterNeumann").verifier()
    with pytest.raises(N.UnverifiedNoteError):
        N.open_note(message, [other])


def test_a_bad_signature_by_a_known_key_rejects_the_note() -> None:
    peter = N.Verifier.parse(PETER_VKEY)
    broken = PETER_SIG[:60] + "ABCD" + PETER_SIG[60:]
    with pytest.raises(N.SignatureError, match="PeterNeumann\\+c74f20a3"):
        N.open_note(TEXT + "\n" + broken, [peter])
    with pytest.raises(N.SignatureError):
        N.open_note(TEXT.replace("problem", "answer") + "\n" + PETER_SIG, [peter])


@pytest.mark.parametrize(
    "message",
    [
        TEXT.encode(),
        (TEXT + "\n").encode(),
        (TEXT + "\n" + PETER_SIG[:-1]).encode(),
        ("\x01" + TEXT + "\n" + PETER_SIG).encode(),
        b"\xff" + (TEXT + "\n" + PETER_SIG).encode(),
        (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Bad Name")[:-1]).encode(),
        (TEXT + "\n" + PETER_SIG + "Unexpected line.\n").encode(),
        (TEXT + "\n" + PETER_SIG * 101).encode(),
        (TEXT + "\n" + PETER_SIG.replace("AM=", "AN=")).encode(),  # non-canonical base64
    ],
)
def test_malformed_notes_are_refused(message: bytes) -> None:
    with pytest.raises(N.NoteError):
        N.open_note(message, [N.Verifier.parse(PETER_VKEY)])


def test_the_spec_example_checkpoint_parses() -> None:
    text = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    checkpoint = N.Checkpoint.parse(text)
    assert (checkpoint.origin, checkpoint.size) == ("example.com/behind-the-sofa", 20852163)
    assert checkpoint.root_hash == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert checkpoint.text() == text
    with_ext = N.Checkpoint.parse(text + "ext one\n")
    assert with_ext.extensions == ("ext one",) and with_ext.text() == text + "ext one\n"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("o\n1\n" + "A" * 43 + "=", "newline"),
        ("o\n1\n", "three"),
        ("o\n01\n" + "A" * 43 + "=\n", "size"),
        ("o\n-1\n" + "A" * 43 + "=\n", "size"),
        ("o\n18446744073709551616\n" + "A" * 43 + "=\n", "size"),
        ("o\n1\n" + "A" * 42 + "==\n", "32 bytes|base64"),
        ("o\n1\n" + "A" * 42 + "B=\n", "canonical base64"),
        ("\n1\n" + "A" * 43 + "=\n", "non-empty"),
        ("o\n1\n" + "A" * 43 + "=\n\n", "non-empty"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str, reason: str) -> None:
    with pytest.raises(N.NoteError, match=reason):
        N.Checkpoint.parse(text)


def test_a_checkpoint_round_trips_through_a_signed_note() -> None:
    signer = N.Signer.generate("agentledger")
    checkpoint = N.Checkpoint("agentledger/acme", 0, bytes(32))
    note = N.sign_note(checkpoint.text(), [signer])
    opened = N.open_note(note, [signer.verifier()])
    assert N.Checkpoint.parse(opened.text) == checkpoint

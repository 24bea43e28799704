"""The signing key file: created 0600 and never replaced, loaded from the environment, rotated
with the old public key kept so old checkpoints still verify."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from agentledger.pipeline.tlog import keys as K
from agentledger.pipeline.tlog.note import Checkpoint, Signer, open_note, sign_note


def test_a_created_key_is_private_and_in_the_go_note_form(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "ledger.key"
    signer = K.create_signing_key(path, "ledger.example/acme")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert text == signer.skey + "\n" and text.startswith("PRIVATE+KEY+ledger.example/acme+")
    assert K.read_signing_key(path) == signer
    with pytest.raises(K.KeyFileError, match="exists"):
        K.create_signing_key(path)
    assert K.read_signing_key(path) == signer  # untouched
    assert [p.name for p in path.parent.iterdir()] == ["ledger.key"]  # no temp file left


def test_ensure_creates_once_then_reads(tmp_path: Path) -> None:
    first, created = K.ensure_signing_key(tmp_path)
    again, created_again = K.ensure_signing_key(tmp_path)
    assert created and not created_again and first == again
    assert (tmp_path / K.DEFAULT_KEY_FILE).exists()
    assert first.name == K.DEFAULT_KEY_NAME


def test_the_environment_names_the_key_and_a_missing_one_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    configured = tmp_path / "configured.key"
    monkeypatch.setenv(K.SIGNING_KEY_ENV, str(configured))
    with pytest.raises(K.KeyFileError, match="no ledger signing key at .*configured.key"):
        K.load_signing_key(tmp_path / "data")
    assert not (tmp_path / "data").exists()  # a configured key is never made up
    signer = K.create_signing_key(configured)
    assert K.load_signing_key(tmp_path / "data") == (signer, configured)
    monkeypatch.delenv(K.SIGNING_KEY_ENV)
    made, where = K.load_signing_key(tmp_path / "data")
    assert where == tmp_path / "data" / K.DEFAULT_KEY_FILE and made != signer
    with pytest.raises(K.KeyFileError, match=K.SIGNING_KEY_ENV):
        K.load_signing_key(None)


def test_a_malformed_key_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_text("PRIVATE+KEY+x+00000000+AAAA\n")
    with pytest.raises(K.KeyFileError, match="bad.key"):
        K.read_signing_key(path)


def test_rotation_keeps_old_checkpoints_verifiable(tmp_path: Path) -> None:
    path = tmp_path / "ledger.key"
    old = K.create_signing_key(path)
    old_note = sign_note(Checkpoint("agentledger/acme", 1, bytes(32)).text(), [old])
    retired, new = K.rotate_signing_key(path)
    assert retired == old.verifier() and new != old and new.name == old.name
    assert K.read_signing_key(path) == new
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert K.read_keyring(K.keyring_path(path)) == [old.verifier()]
    assert K.keyring_path(path) == tmp_path / "ledger.keyring"
    second, _ = K.rotate_signing_key(path, "renamed")
    assert K.read_signing_key(path).name == "renamed"
    everyone = K.verifiers(path)
    assert everyone[1:] == [old.verifier(), second] == [old.verifier(), new.verifier()]
    assert open_note(old_note, everyone).verified[0].key_id == old.key_id
    new_note = sign_note(
        Checkpoint("agentledger/acme", 2, bytes(32)).text(), [K.read_signing_key(path)]
    )
    assert open_note(new_note, everyone).verified
    with pytest.raises(ValueError):  # the retired keys alone do not verify the new checkpoint
        open_note(new_note, everyone[1:])


def test_a_keyring_line_that_is_not_a_key_is_named(tmp_path: Path) -> None:
    ring = tmp_path / "x.keyring"
    ring.write_text(f"# comment\n{Signer.generate('a').verifier().vkey}\nnot a key\n")
    with pytest.raises(K.KeyFileError, match="x.keyring:3"):
        K.read_keyring(ring)

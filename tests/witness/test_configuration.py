"""Which witnesses the appender gets from the environment, and a bad key failing at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentledger.pipeline.derive.tlog_witness import WitnessDir, WitnessSet
from agentledger.pipeline.derive.witness_http import HttpWitness, configured_witness
from agentledger.pipeline.tlog.witness import Cosigner

pytestmark = pytest.mark.unit


def test_directory_url_both_or_neither(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AGENTLEDGER_WITNESS_URL", raising=False)
    monkeypatch.delenv("AGENTLEDGER_WITNESS_KEY", raising=False)
    assert configured_witness(None) is None
    assert isinstance(configured_witness(str(tmp_path)), WitnessDir)
    monkeypatch.setenv("AGENTLEDGER_WITNESS_URL", "http://witness.example:7380/")
    key = Cosigner.generate("witness.example/w1").verifier()
    monkeypatch.setenv("AGENTLEDGER_WITNESS_KEY", key.vkey)
    http = configured_witness(None)
    assert isinstance(http, HttpWitness) and http.url == "http://witness.example:7380"
    assert http.key == key
    both = configured_witness(str(tmp_path))
    assert isinstance(both, WitnessSet) and len(both.witnesses) == 2


def test_a_malformed_witness_key_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTLEDGER_WITNESS_URL", "http://witness.example:7380")
    monkeypatch.setenv("AGENTLEDGER_WITNESS_KEY", "not-a-key")
    with pytest.raises(ValueError, match="AGENTLEDGER_WITNESS_KEY"):
        configured_witness(None)

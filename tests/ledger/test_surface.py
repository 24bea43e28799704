"""The ledger's modules: explicit public surface, and light enough for an offline verifier."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "agentledger.schemas.ledger",
        "agentledger.pipeline.tlog",
        "agentledger.pipeline.tlog.merkle",
        "agentledger.pipeline.tlog.note",
        "agentledger.pipeline.tlog.keys",
        "agentledger.pipeline.tlog.proof",
    ],
)
def test_all_is_complete_and_resolvable(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert all(hasattr(module, attr) for attr in exported)
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and not inspect.ismodule(value)
        and attr != "annotations"
        and getattr(value, "__module__", name) in (name, None)
    }
    assert public <= exported, sorted(public - exported)


@pytest.mark.integration
def test_verifying_imports_nothing_of_the_server() -> None:
    code = (
        "import sys\n"
        "import agentledger.pipeline.tlog, agentledger.schemas.ledger\n"
        "heavy = {'chdb', 'pyarrow', 'kafka', 'clickhouse_connect', 'fastapi', 'numpy',\n"
        "         'pydantic', 'agentledger.pipeline.store', 'agentledger.schemas.records'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

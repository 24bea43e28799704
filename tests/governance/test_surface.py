"""Public surface and weight: the agent side stays light; ``__all__`` lists what is public."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest


def test_governed_tools_import_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "import sys, agentledger.instrumentation.governance;"
        "heavy = {'chdb', 'fastapi', 'uvicorn', 'kafka', 'clickhouse_connect', 'pyarrow', 'pydantic', 'httpx',"
        " 'agentledger.collector', 'agentledger.pipeline'};"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "name", ["agentledger.instrumentation.governance", "agentledger.pipeline.governance"]
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
        and getattr(value, "__module__", name).startswith(name)
    }
    assert public <= exported, sorted(public - exported)

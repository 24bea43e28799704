"""The agent-side public surface: explicit, resolvable, and light to import."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest


@pytest.mark.parametrize("name", ["agentledger", "agentledger.instrumentation"])
def test_all_names_resolve(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__ == sorted(module.__all__)
    for attr in module.__all__:
        assert getattr(module, attr) is not None, attr
    for attr in (
        "instrument",
        "uninstrument",
        "acting_for",
        "retrieval",
        "llm_call",
        "tool",
        "governed_tool",
    ):
        assert attr in module.__all__


def test_using_the_agent_api_imports_nothing_heavy(tmp_path: object) -> None:
    code = (
        "import sys, agentledger\n"
        "agentledger.instrument, agentledger.acting_for, agentledger.tool, agentledger.llm_call\n"
        "import agentledger.instrumentation.lifecycle, agentledger.instrumentation.exporter\n"
        "import agentledger.instrumentation.run\n"
        "heavy = {'chdb', 'fastapi', 'uvicorn', 'kafka', 'clickhouse_connect', 'pyarrow', 'pydantic', 'openai',\n"
        "         'agentledger.collector', 'agentledger.pipeline', 'openinference.instrumentation'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

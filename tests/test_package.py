"""Package shape: layout, light imports, explicit public surface."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def test_layout_shows_the_architecture() -> None:
    for folder in (
        "instrumentation",
        "collector",
        "pipeline",
        "schemas",
        "deploy",
        "tests",
        "bench",
    ):
        assert (ROOT / folder).is_dir(), folder
    for pkg in ("instrumentation", "collector", "pipeline", "schemas"):
        module = importlib.import_module(f"agentledger.{pkg}")
        assert Path(module.__file__).parent == ROOT / pkg


def _python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=60
    )


def test_no_generic_top_level_names_are_installed(tmp_path: Path) -> None:
    for name in ("pipeline", "schemas", "collector", "instrumentation"):
        out = _python(f"import {name}", tmp_path)
        assert "ModuleNotFoundError" in out.stderr, name


def test_importing_the_agent_side_stays_light(tmp_path: Path) -> None:
    out = _python(
        "import sys, agentledger, agentledger.instrumentation, agentledger.schemas.attributes;"
        "heavy = {'chdb', 'fastapi', 'uvicorn', 'kafka', 'clickhouse_connect', 'pyarrow', 'agentledger.collector',"
        " 'agentledger.pipeline'};"
        "print(sorted(heavy & set(sys.modules)))",
        tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


PUBLIC_PACKAGES = [
    "agentledger.schemas",
    "agentledger.schemas.read",
    "agentledger.collector",
    "agentledger.pipeline.store",
    "agentledger.pipeline.sinks",
    "agentledger.pipeline.transport",
    "agentledger.pipeline.normalize",
    "agentledger.pipeline.governance",
    "agentledger.pipeline.services.datasets",
    "agentledger.pipeline.services.audit",
    "agentledger.pipeline.services.replay",
    "agentledger.demo.provider",
    "agentledger.instrumentation",
]


@pytest.mark.parametrize("name", PUBLIC_PACKAGES)
def test_all_is_complete_and_resolvable(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    for attr in exported:
        assert hasattr(module, attr), f"{name}.__all__ names missing {attr}"
    public = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_") and not inspect.ismodule(value) and attr not in ("annotations",)
    }
    assert public <= exported, (
        f"{name} exposes names missing from __all__: {sorted(public - exported)}"
    )


def test_every_package_is_listed_for_the_wheel() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = {v: k for k, v in config["package-dir"].items()}
    found = set()
    for init in ROOT.glob("*/**/__init__.py"):
        rel = init.parent.relative_to(ROOT)
        top = rel.parts[0]
        if top in mapping:
            found.add(".".join([mapping[top], *rel.parts[1:]]))
    assert found <= set(config["packages"]), sorted(found - set(config["packages"]))

"""The jobs package's public surface is explicit and complete."""

from __future__ import annotations

import importlib
import inspect

import pytest


@pytest.mark.parametrize(
    "name",
    [
        "agentledger.pipeline.derive",
        "agentledger.pipeline.derive.sensitive",
        "agentledger.pipeline.derive.topics",
        "agentledger.schemas.analytics",
    ],
)
def test_all_is_complete_and_resolvable(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert all(hasattr(module, attr) for attr in exported)
    public = {
        a
        for a, v in vars(module).items()
        if not a.startswith("_")
        and not inspect.ismodule(v)
        and a != "annotations"
        and getattr(v, "__module__", name) == name
    }
    assert public <= exported, sorted(public - exported)

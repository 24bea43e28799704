"""Schemathesis over the collector's OpenAPI: requests generated from the schema (valid ones and
ones that break it) against the embedded app over a real chDB store never get a 5xx.

Every operation is fuzzed with a key of each role (never ``no_auth``: with no auth, a dataset
export writes wherever the client names, and generated paths would land anywhere on this
machine). Exports go inside a temporary ``AGENTLEDGER_DATASETS_DIR``, and the working directory
is a temporary one too.

Schemathesis's own pytest integration (``from_fixture``) does not run under pytest 9, so each
operation's strategies are driven by a Hypothesis test of ours; every failing operation is
reported, with the request that failed, before the test fails. ``AGENTLEDGER_FUZZ_EXAMPLES``
raises the number of examples per operation for a deeper run by hand.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi

from agentledger.collector import CollectorSettings
from agentledger.compose import build_embedded_app
from agentledger.pipeline.settings import StoreSettings
from agentledger.schemas.access import Role

KEYS = {role: f"fuzz-{role.value}-0123456789" for role in Role}
MAX_EXAMPLES = int(os.environ.get("AGENTLEDGER_FUZZ_EXAMPLES", "25"))
"""Examples per operation for the admin key (which reaches every route's body); the other roles,
mostly refused before their body is read, get a fifth as many."""

# Server errors found by this test in code outside the collector's edge, reported to their
# owners; each is tolerated only in its own operation and with its own message, so any other
# 5xx still fails. Remove an entry once its fix lands.
KNOWN: dict[str, re.Pattern[str]] = {}


@pytest.fixture
def api_schema(store, tmp_path, monkeypatch) -> Iterator[schemathesis.BaseSchema]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGENTLEDGER_DATASETS_DIR", str(tmp_path / "datasets"))
    app = build_embedded_app(
        CollectorSettings(
            api_keys=",".join(f"fuzz:{r.value}:fz-{r.value}={k}" for r, k in KEYS.items())
        ),
        StoreSettings(data_dir=str(tmp_path)),
        store,
    )
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    yield schema
    asgi.shutdown_lifespans()  # closes the app's services before the store goes


def _check(operation, key: str, examples: int) -> list[str]:
    """Run one operation's generated cases; the server errors found, each with its request."""
    found: list[str] = []
    known = KNOWN.get(operation.label)
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )

    @given(case=strategy)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case) -> None:
        headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "x-api-key"}
        case.headers = {**headers, "Authorization": f"Bearer {key}"}
        try:
            response = case.call()
        except Exception as exc:  # the app raised: a 500 on a real server
            detail = f"{type(exc).__name__}: {str(exc)[:600]}"
        else:
            if response.status_code < 500:
                return
            detail = f"{response.status_code}: {response.text[:600]}"
        if known is not None and known.search(detail):
            return
        found.append(f"{detail}\n    {case.as_curl_command()}")
        raise AssertionError(found[-1])

    try:
        run()
    except AssertionError:
        pass
    return found


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_no_generated_request_gets_a_server_error(api_schema, role: Role) -> None:
    failures = {}
    examples = MAX_EXAMPLES if role is Role.ADMIN else max(1, MAX_EXAMPLES // 5)
    for result in api_schema.get_all_operations():
        operation = result.ok()
        found = _check(operation, KEYS[role], examples)
        if found:
            failures[operation.label] = found[-1]
    assert not failures, "\n\n".join(f"{label}: {p}" for label, p in failures.items())

"""``agentledger-run``: zero-code instrumentation of a script run in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from agentledger.pipeline.services import queries

SCRIPT = """
import os, sys
import openai
import agentledger
from agentledger.instrumentation import lifecycle

state = lifecycle.instrumentation()
print("instrumented", state is not None and state.owns_provider, ",".join(state.frameworks if state else ()))
print("user sitecustomize", os.environ.get("USER_SITECUSTOMIZE_LOADED"))
with agentledger.acting_for("ops@acme.example", role="operator"):
    with openai.OpenAI(base_url=sys.argv[1], api_key="test") as client:
        answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "Hello?"}])
print("answer", answer.choices[0].message.content)
"""


def test_agentledger_run_instruments_an_unmodified_script(
    server: Any, provider: Any, tmp_path: Path
) -> None:
    script = tmp_path / "my_agent.py"
    script.write_text(SCRIPT)
    user_site = tmp_path / "site"
    user_site.mkdir()
    (user_site / "sitecustomize.py").write_text(
        "import os\nos.environ['USER_SITECUSTOMIZE_LOADED'] = 'yes'\n"
    )
    env = {**os.environ, "PYTHONPATH": str(user_site)}
    env.pop("AGENTLEDGER_ENDPOINT", None)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentledger.instrumentation.run",
            "--endpoint",
            server.url,
            "--service-name",
            "run-test",
            "--agent-name",
            "ops-agent",
            "--redact",
            "email",
            "--instrumentors",
            "openai,anthropic",
            sys.executable,
            str(script),
            provider.base_url,
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("instrumented True") and "openai" in lines[0]
    assert lines[1] == "user sitecustomize yes"  # an existing sitecustomize still runs
    assert lines[2].startswith("answer ")
    (trace,) = queries.list_traces(server.store, "default")  # flushed at exit
    (row,) = queries.get_trace(server.store, "default", trace["trace_id"])
    assert row["service"] == "run-test" and row["agent_name"] == "ops-agent"
    assert row["principal_id"] == "ops@acme.example" and row["kind"] == "LLM"
    assert row["attributes"]["agentledger.redaction.policy"] == "agentledger-default@1"


def test_agentledger_run_needs_a_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "agentledger.instrumentation.run"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "command to run is required" in out.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "agentledger.instrumentation.run", "no-such-program-xyz"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 127 and "cannot run" in missing.stderr


def test_instrumenting_breaks_nothing_when_the_collector_is_down(
    provider: Any, tmp_path: Path
) -> None:
    """Own provider, global, nothing listening: the agent runs and exits normally."""
    script = tmp_path / "agent.py"
    script.write_text(
        textwrap.dedent("""
        import sys, openai, agentledger
        agentledger.instrument(endpoint="http://127.0.0.1:9", service_name="offline", instrumentors=["openai"])
        with openai.OpenAI(base_url=sys.argv[1], api_key="test") as client:
            print(client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}]).model)
    """)
    )
    env = {**os.environ, "OTEL_BSP_EXPORT_TIMEOUT": "2000", "OTEL_EXPORTER_OTLP_TIMEOUT": "2"}
    out = subprocess.run(
        [sys.executable, str(script), provider.base_url],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "gpt-4o-2024-08-06"

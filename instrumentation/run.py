"""``agentledger-run``: run a program with AgentLedger instrumentation and no code change.

    agentledger-run --service-name finance-agent --endpoint http://127.0.0.1:4318 python my_agent.py

Like ``opentelemetry-instrument``: the options become ``AGENTLEDGER_*``
variables, a ``sitecustomize`` that calls ``instrument()`` is put first on
``PYTHONPATH``, and the command replaces this process. Every Python process the
command starts is instrumented the same way. Options left out fall back to the
environment (see :mod:`agentledger.instrumentation.config`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

AUTO_DIR = Path(__file__).resolve().parent / "_auto"

_OPTIONS = {
    "endpoint": "AGENTLEDGER_ENDPOINT",
    "api_key": "AGENTLEDGER_API_KEY",
    "service_name": "AGENTLEDGER_SERVICE_NAME",
    "agent_name": "AGENTLEDGER_AGENT_NAME",
    "redact": "AGENTLEDGER_REDACT",
    "model_pins": "AGENTLEDGER_MODEL_PINS",
    "on_pin_mismatch": "AGENTLEDGER_ON_PIN_MISMATCH",
    "instrumentors": "AGENTLEDGER_INSTRUMENTORS",
    "disabled_instrumentors": "AGENTLEDGER_DISABLED_INSTRUMENTORS",
    "capture_content": "AGENTLEDGER_CAPTURE_CONTENT",
    "capture_messages": "AGENTLEDGER_CAPTURE_MESSAGES",
    "capture_documents": "AGENTLEDGER_CAPTURE_DOCUMENTS",
    "capture_tool_io": "AGENTLEDGER_CAPTURE_TOOL_IO",
    "on_full": "AGENTLEDGER_ON_FULL",
    "spool_dir": "AGENTLEDGER_SPOOL_DIR",
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="agentledger-run",
        description="Run a command with AgentLedger instrumentation (spans to the collector over OTLP/HTTP).",
    )
    p.add_argument(
        "--endpoint",
        help="collector URL (default: $AGENTLEDGER_ENDPOINT, $OTEL_EXPORTER_OTLP_*, "
        "else http://127.0.0.1:4318)",
    )
    p.add_argument("--api-key", help="tenant API key (default: $AGENTLEDGER_API_KEY)")
    p.add_argument("--service-name", help="service.name of the spans")
    p.add_argument("--agent-name", help="agent name stamped on every span")
    p.add_argument("--redact", help="redaction presets: all, none, or email,phone,card,iban,secret")
    p.add_argument("--model-pins", help='agent=model,... ("*" for any agent)')
    p.add_argument("--on-pin-mismatch", choices=("flag", "raise"))
    p.add_argument(
        "--instrumentors", help="comma-separated frameworks to instrument (default: all installed)"
    )
    p.add_argument("--disabled-instrumentors", help="comma-separated frameworks not to instrument")
    p.add_argument(
        "--on-full",
        choices=("spool", "block"),
        help="export queue full: spool after a few ms (default), or block the caller (never drop)",
    )
    p.add_argument("--spool-dir", help="where spans the collector cannot take yet are kept")
    for kind in ("content", "messages", "documents", "tool-io"):
        dest = "capture_" + kind.replace("-", "_")
        g = p.add_mutually_exclusive_group()
        g.add_argument(f"--capture-{kind}", dest=dest, action="store_const", const="true")
        g.add_argument(f"--no-capture-{kind}", dest=dest, action="store_const", const="false")
    p.add_argument("command", nargs=argparse.REMAINDER, help="the program and its arguments")
    return p


def environment(args: argparse.Namespace, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the command runs in."""
    env = dict(os.environ if base is None else base)
    for dest, var in _OPTIONS.items():
        value = getattr(args, dest, None)
        if value is not None:
            env[var] = str(value)
    env["AGENTLEDGER_AUTO_INSTRUMENT"] = "1"
    paths = [str(AUTO_DIR)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        _parser().error("a command to run is required, e.g. agentledger-run python my_agent.py")
    env = environment(args)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"agentledger-run: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())

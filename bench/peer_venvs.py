"""One virtual environment per peer for the instrumentation benchmark, made once and cached.

Why one each: the peers' dependencies conflict. OpenLIT 1.45 needs ``openai<3``
and OpenTelemetry SDK >= 1.39; traceloop-sdk (OpenLLMetry) depends on ~40
instrumentation packages and sends pip backtracking for a long time unless it
is installed with ``--no-deps`` beside its OpenAI instrumentor and its plain
dependencies. Each venv is kept under
``~/.cache/agentledger/bench-venvs/<peer>-<hash>`` (``AGENTLEDGER_BENCH_VENVS``
moves the root), where the hash covers the install steps and the Python
version: changing a pin makes a new venv instead of patching an old one, and a
venv counts as ready only once every step succeeded (an interrupted install is
redone from scratch). Everything comes from PyPI by pinned version.

AgentLedger itself runs in the interpreter that runs the benchmark (the
project's environment, where the checkout is installed with its native
normalizer) rather than in a copy built again per run.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import IO

__all__ = ["PEERS", "SERVERS", "cache_root", "peer_python"]

OTEL_SDK = "1.45.1"
_OTEL = (f"opentelemetry-sdk=={OTEL_SDK}", f"opentelemetry-exporter-otlp-proto-http=={OTEL_SDK}")

PEERS: dict[str, tuple[tuple[str, ...], ...]] = {
    "openinference": (
        (
            "openinference-instrumentation-openai==0.1.66",
            "openinference-instrumentation==0.1.72",
            "openinference-semantic-conventions==0.1.42",
            *_OTEL,
            "openai==3.54.0",
            "httpx",
        ),
    ),
    "openllmetry": (
        ("--no-deps", "traceloop-sdk==0.62.4"),
        (
            "aiohttp<4,>=3.11.11",
            "colorama<0.5.0,>=0.4.6",
            "cuid<0.5,>=0.4",
            "deprecated<2,>=1.2.14",
            "jinja2<4,>=3.1.5",
            "opentelemetry-exporter-otlp-proto-grpc<2,>=1.38.0",
            "opentelemetry-semantic-conventions-ai==0.5.1",
            "pydantic>=1",
            "tenacity<10.0,>=8.2.3",
            "opentelemetry-instrumentation-openai==0.62.4",
            "opentelemetry-instrumentation-threading>=0.59b0",
            "opentelemetry-instrumentation-logging>=0.59b0",
            *_OTEL,
            "openai==3.54.0",
            "httpx",  # traceloop imports it; openai 3.x brings httpx2 instead
        ),
    ),
    "openlit": (("openlit==1.45.0", "openai==2.54.0", *_OTEL),),
}
"""pip install steps per peer, run in order in the peer's own venv."""

SERVERS: dict[str, tuple[tuple[str, ...], ...]] = {
    # Arize Phoenix's server (OTLP/HTTP receiver, sqlite by default) for bench/vs_phoenix.py: kept
    # apart from PEERS, the instrumentors bench/instrumentation_overhead.py runs one by one
    "phoenix": (("arize-phoenix==20.26.1",),),
}
"""pip install steps per peer server, made and cached the same way as the peers'."""


def _steps(name: str) -> tuple[tuple[str, ...], ...]:
    return PEERS[name] if name in PEERS else SERVERS[name]


def cache_root() -> Path:
    return Path(
        os.environ.get("AGENTLEDGER_BENCH_VENVS")
        or Path.home() / ".cache" / "agentledger" / "bench-venvs"
    )


def _digest(name: str) -> str:
    recipe = repr((_steps(name), sys.version_info[:2]))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def peer_python(name: str, log: IO[str]) -> Path:
    """The interpreter of ``name``'s venv, creating it first if needed (minutes, first run only)."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / f"{name}-{_digest(name)}"
    python, ready = venv / "bin" / "python", venv / ".ready"
    with open(root / f".{name}.lock", "w") as lock:  # two benchmark runs never build one venv twice
        fcntl.flock(lock, fcntl.LOCK_EX)
        if ready.exists():
            return python
        print(f"creating {venv} (first run only; pip log in {log.name})...", file=sys.stderr)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        for step in _steps(name):
            done = subprocess.run([*pip, *step], stdout=log, stderr=log, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{name}: pip install {' '.join(step)} failed; see {log.name}")
        ready.write_text("\n".join(" ".join(step) for step in _steps(name)) + "\n")
    return python


if __name__ == "__main__":  # python bench/peer_venvs.py [peer ...]: build the venvs ahead of time
    with open(cache_root().parent / "bench-venvs-install.log", "a") as out:
        for peer in sys.argv[1:] or PEERS:
            print(peer, peer_python(peer, out))

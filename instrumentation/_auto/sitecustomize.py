"""Instruments a Python process at start-up; put on ``PYTHONPATH`` by ``agentledger-run``.

Configuration comes from the environment (``AGENTLEDGER_*``, ``OTEL_*``), which
``agentledger-run`` filled in from its options. Any ``sitecustomize`` the
environment already had is loaded afterwards, as if this one were not there.
A failure is logged, never raised: the program runs uninstrumented instead.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys


def _instrument() -> None:
    if os.environ.get("AGENTLEDGER_AUTO_INSTRUMENT") != "1":
        return
    try:
        from agentledger.instrumentation.lifecycle import instrument

        instrument()
    except Exception:
        logging.getLogger("agentledger.instrumentation").exception(
            "agentledger-run: instrumentation failed"
        )


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    saved = list(sys.path)
    module = sys.modules.pop("sitecustomize", None)
    try:
        sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
        importlib.import_module("sitecustomize")
    except ImportError:
        if module is not None:
            sys.modules["sitecustomize"] = module
    finally:
        sys.path[:] = saved


_instrument()
_chain()

"""AgentLedger's compiled OTLP normalizer (Rust, ``native/src``), built by every install of the
``agentledger`` distribution (setuptools-rust). The compiled module sits beside this file; its
names are re-exported here, so ``import agentledger_native`` finds it in editable installs too."""

from .agentledger_native import *  # noqa: F403
from .agentledger_native import __doc__  # noqa: F401

#!/usr/bin/env bash
# Fresh machine -> AgentLedger installed -> the two sample agents (planner, executor) recorded on the
# embedded default.
source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
al_install all
al_install_native optional
cd "$ROOT"
exec "$VENV/bin/agentledger" demo "$@"

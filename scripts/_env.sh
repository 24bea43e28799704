# Shared by the set-up scripts: create .venv and install AgentLedger with the given extras.
# Usage: source scripts/_env.sh; al_install EXTRAS
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${AGENTLEDGER_PYTHON:-python3}"
VENV="${AGENTLEDGER_VENV:-$ROOT/.venv}"

al_install() {
    local extras="$1"
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip >/dev/null
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -c "$ROOT/scripts/constraints.txt" -e "$ROOT[$extras]"
}

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

# The compiled normalizer (native/, Rust via maturin; cargo fetches its crates). Usage:
# al_install_native required|optional. Optional: without a Rust toolchain the pure-Python
# normalizer serves (slower, same rows).
al_install_native() {
    local need="$1"
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$ROOT/native"; then
        return 0
    fi
    if [ "$need" = required ]; then
        echo "agentledger-native did not build (needs cargo/rustc: https://rustup.rs)" >&2
        return 1
    fi
    echo "agentledger-native did not build; using the pure-Python normalizer" >&2
}

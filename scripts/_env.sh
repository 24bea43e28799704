# Shared by the set-up scripts: create .venv and install AgentLedger with the given extras.
# Usage: source scripts/_env.sh; al_install EXTRAS
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${AGENTLEDGER_PYTHON:-python3}"
VENV="${AGENTLEDGER_VENV:-$ROOT/.venv}"

# Installing AgentLedger compiles its normalizer (native/, Rust, through setuptools-rust; cargo
# fetches the crates from crates.io), so cargo must be on PATH: rustup's ~/.cargo/bin is added
# when cargo is not already there.
al_cargo() {
    if ! command -v cargo >/dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "cargo not found: installing AgentLedger compiles its normalizer (native/, Rust)." >&2
        echo "Install a Rust toolchain (https://rustup.rs), then run this again." >&2
        return 1
    fi
}

al_install() {
    local extras="$1"
    al_cargo
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -U pip >/dev/null
    # earlier set-ups installed the normalizer as a distribution of its own: it would shadow this build
    if "$VENV/bin/python" -m pip show -q agentledger-native >/dev/null 2>&1; then
        "$VENV/bin/python" -m pip uninstall -q -y --disable-pip-version-check agentledger-native
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        -c "$ROOT/scripts/constraints.txt" -e "$ROOT[$extras]"
    if [ "$extras" = dev ]; then
        # not fatal here: without a browser the console's tests fail (never skip) and say why,
        # and every other test still runs
        al_chromium || true
    fi
}

# The console's browser tests (tests/console/) drive Debian's chromium through Playwright; the
# browser comes from apt, never from `playwright install` (which downloads one).
al_chromium() {
    if [ -x /usr/bin/chromium ]; then
        return 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium (apt) for the console's browser tests" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null \
            || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }
    fi
    if [ ! -x /usr/bin/chromium ]; then
        echo "/usr/bin/chromium is missing: the console's browser tests need it." >&2
        echo "Install Debian's chromium as root (apt-get install -y chromium), then run this again." >&2
        return 1
    fi
}

# The compiled normalizer is built by al_install (above); this checks that it imports. Usage:
# al_install_native required|optional (optional: only a warning; the pure-Python normalizer then
# serves, slower, same rows).
al_install_native() {
    local need="$1"
    if "$VENV/bin/python" -c "import agentledger_native" 2>/dev/null; then
        return 0
    fi
    if [ "$need" = required ]; then
        echo "agentledger_native does not import: reinstall AgentLedger with cargo on PATH" >&2
        return 1
    fi
    echo "agentledger_native does not import; using the pure-Python normalizer" >&2
}

#!/usr/bin/env bash
# Static checks run by scripts/test.sh (and by hand): ruff lint and format, import-linter
# contracts, mypy. The top-level folders are subpackages of agentledger (pyproject's
# package-dir), which neither grimp nor mypy can follow through an editable install, so the
# Python files are copied once into the installed layout and checked there; mypy's paths are
# mapped back to the repository's in its report.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${AGENTLEDGER_VENV:-$ROOT/.venv}"
TREE="$(mktemp -d)"
trap 'rm -rf "$TREE"' EXIT
status=0

echo "lint: ruff check"
"$VENV/bin/ruff" check --quiet "$ROOT" || status=1
echo "lint: ruff format --check"
"$VENV/bin/ruff" format --check --quiet "$ROOT" || status=1

copy_py() { (cd "$1" && find . -name '*.py' -not -path '*/__pycache__/*' -exec cp --parents {} "$2" \;); }
mkdir -p "$TREE/agentledger"
copy_py "$ROOT/agentledger" "$TREE/agentledger"
for pkg in schemas collector pipeline instrumentation; do
    mkdir -p "$TREE/agentledger/$pkg"
    copy_py "$ROOT/$pkg" "$TREE/agentledger/$pkg"
done
cp "$ROOT"/schemas/*.json "$TREE/agentledger/schemas/" 2>/dev/null || true
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"

echo "lint: import-linter contracts"
(cd "$TREE" && PYTHONPATH="$TREE" PYTHONNOUSERSITE=1 "$VENV/bin/python" -S -c '
import sys
# the venv site-packages without its .pth hooks (the editable finder would shadow the tree)
sys.path.append(sys.argv[1])
sys.argv = ["lint-imports", sys.argv[2]]
from importlinter.cli import lint_imports_command
sys.exit(lint_imports_command())
' "$SITE" "$ROOT/pyproject.toml") || status=1

echo "lint: mypy"
(cd "$TREE" && "$VENV/bin/python" -m mypy --config-file "$ROOT/pyproject.toml" -p agentledger \
    | sed -e "s|agentledger/schemas/|schemas/|; s|agentledger/collector/|collector/|" \
          -e "s|agentledger/pipeline/|pipeline/|; s|agentledger/instrumentation/|instrumentation/|") \
    || status=1
exit $status

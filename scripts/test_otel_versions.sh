#!/usr/bin/env bash
# The lean span fast path (instrumentation/_lean.py) reads private OpenTelemetry SDK internals,
# so its tests run against several opentelemetry-sdk releases: the oldest supported (the floor
# in pyproject.toml), the pinned one (scripts/constraints.txt) and the newest on PyPI.
#
# Each release gets a virtual environment of its own, <cache>/otel-sdk-<version>, outside the
# work tree (so CI's fresh clones reuse them, and git never sees them), reused while its inputs
# (the release, pyproject.toml's dependencies, the constraints, the Python) are unchanged and it
# holds that release: a rerun only runs the tests. AgentLedger itself is not installed there (no
# build, so no native/ compile and no egg-info in the tree): an import hook maps the folders of
# the work tree named in $AGENTLEDGER_WORK_TREE to `agentledger.*`, as pyproject's
# [tool.setuptools.package-dir] does, so one environment serves any clone. The tests are those
# that drive the lean path without the embedded server, Kafka or ClickHouse, collected without
# the root conftest (which needs the server extras). Python 3.11 or later (tomllib).
#
# Usage: scripts/test_otel_versions.sh [pytest args]
#   AGENTLEDGER_OTEL_VERSIONS="1.30.0 1.40.0"  test these releases instead
#   AGENTLEDGER_OTEL_CACHE=dir                 where the environments live
#                                              (default ${XDG_CACHE_HOME:-~/.cache}/agentledger)
# A release newer than TESTED_SDK's upper end runs the fast path with the range widened (the
# differential tests do so themselves), to vet it; its failures are reported, not fatal: the
# shipped gate keeps that release on the SDK's own path. Exit status: non-zero when a release
# inside the tested range fails, or an environment cannot be built.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${AGENTLEDGER_PYTHON:-python3}"
CACHE="${AGENTLEDGER_OTEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/agentledger}"
TESTS=(tests/instrumentation/test_lean.py)
PIP=(-m pip --disable-pip-version-check -q)
mkdir -p "$CACHE"
if command -v flock >/dev/null; then  # one run at a time builds or uses the environments
    exec 9>"$CACHE/.lock"
    flock 9
fi
cd "$ROOT"
export AGENTLEDGER_WORK_TREE="$ROOT"

constraint() { sed -n "s/^$1==\([^ ;]*\).*/\1/p" scripts/constraints.txt | head -1; }
floor() { grep -oE "\"$1>=[0-9][0-9.]*" pyproject.toml | head -1 | sed 's/.*>=//'; }
semver() { local v="$1"; while [ "$(tr -cd . <<<"$v" | wc -c)" -lt 2 ]; do v="$v.0"; done; echo "$v"; }

PIN="$(constraint opentelemetry-sdk)"
OLDEST="$(semver "$(floor opentelemetry-sdk)")"
if [ -n "${AGENTLEDGER_OTEL_VERSIONS:-}" ]; then
    read -r -a VERSIONS <<<"$AGENTLEDGER_OTEL_VERSIONS"
else
    NEWEST="$("$PY" -m pip --disable-pip-version-check --timeout 20 index versions opentelemetry-sdk 2>/dev/null |
        sed -n 's/^opentelemetry-sdk (\(.*\))$/\1/p' || true)"
    if [ -z "$NEWEST" ]; then
        echo "otel-versions: could not ask PyPI for the newest opentelemetry-sdk; testing without it" >&2
    fi
    VERSIONS=()
    for v in "$OLDEST" "$PIN" $NEWEST; do
        [[ " ${VERSIONS[*]} " == *" $v "* ]] || VERSIONS+=("$v")
    done
fi
read -r TESTED_LOW TESTED_HIGH < <(sed -n 's/^TESTED_SDK.*= ("\([^"]*\)", "\([^"]*\)").*/\1 \2/p' instrumentation/_lean.py)

# Requirements of the tests: pyproject's runtime dependencies and its `demo` extra (openai and
# OpenInference's instrumentor), pytest; the OpenTelemetry distributions at the release's own
# versions (the SDK pins api and semantic-conventions exactly; the resolver picks the matching
# opentelemetry-instrumentation, 0.(minor+21)b(patch)).
requirements() {
    "$PY" - "$1" <<'EOF'
import re, sys, tomllib
version = sys.argv[1]
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
wanted = project["dependencies"] + project["optional-dependencies"]["demo"]
lockstep = ["opentelemetry-api", "opentelemetry-sdk", "opentelemetry-proto",
            "opentelemetry-exporter-otlp-proto-http", "opentelemetry-exporter-otlp-proto-common"]
out = [f"{name}=={version}" for name in lockstep] + ["opentelemetry-instrumentation"]
for req in wanted:
    name = re.match(r"[A-Za-z0-9._-]+", req).group(0).lower()
    if name != "agentledger" and name not in lockstep:
        out.append(req)
print("\n".join(out + ["pytest", "pytest-timeout"]))
EOF
}

# The import hook: with AGENTLEDGER_WORK_TREE set, `agentledger.*` from that tree's folders as its
# pyproject.toml maps them (read at start-up: a new top-level folder needs no new environment).
# Written on every run, replaced only when it changed (atomically: another run may be using it).
map_work_tree() {
    local site="$1" tmp
    tmp="$(mktemp "$site/.work_tree.XXXXXX")"
    cat >"$tmp" <<'EOF'
"""AgentLedger's work tree in $AGENTLEDGER_WORK_TREE as agentledger.* (scripts/test_otel_versions.sh)."""

import os
import sys
import tomllib
from importlib.util import spec_from_file_location

ROOT = os.environ.get("AGENTLEDGER_WORK_TREE")
if ROOT:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        MAPPING = tomllib.load(f)["tool"]["setuptools"]["package-dir"]

    class WorkTree:
        @classmethod
        def find_spec(cls, fullname, path=None, target=None):
            where = MAPPING.get(fullname)
            if where is None:
                return None
            folder = os.path.join(ROOT, where)
            return spec_from_file_location(
                fullname, os.path.join(folder, "__init__.py"), submodule_search_locations=[folder]
            )

    sys.meta_path.append(WorkTree)
EOF
    if cmp -s "$tmp" "$site/_agentledger_work_tree.py"; then rm -f "$tmp"; else mv "$tmp" "$site/_agentledger_work_tree.py"; fi
    [ -f "$site/_agentledger_work_tree.pth" ] ||
        echo "import _agentledger_work_tree" >"$site/_agentledger_work_tree.pth"
}

# Build (or reuse) the environment of one release; prints how it got it.
environment() {
    local v="$1" venv="$CACHE/otel-sdk-$1" reqs constraints stamp
    reqs="$(requirements "$v")"
    if [ "$v" = "$PIN" ]; then
        constraints="$(cat scripts/constraints.txt)"  # the pinned set, exactly as in .venv
    else  # every other pin kept, except the OpenTelemetry family's own
        constraints="$(grep -v -i '^opentelemetry-' scripts/constraints.txt)"
    fi
    stamp="$(printf '%s\n' "$v" "$reqs" "$constraints" "$("$PY" -VV)" | sha256sum | cut -c1-16)"
    if [ -f "$venv/.stamp" ] && [ "$(cat "$venv/.stamp")" = "$stamp" ] &&
        [ "$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("opentelemetry-sdk"), m.version("opentelemetry-api"))' 2>/dev/null)" = "$v $v" ]; then
        echo cached
        return 0
    fi
    # (called as a condition, so set -e does not apply inside: each step checks itself)
    rm -rf "$venv"
    "$PY" -m venv "$venv" || return 1
    "$venv/bin/python" "${PIP[@]}" install -U pip >&2 || return 1
    printf '%s\n' "$reqs" >"$venv/requirements.txt"
    printf '%s\n' "$constraints" >"$venv/constraints.txt"
    if ! "$venv/bin/python" "${PIP[@]}" install -r "$venv/requirements.txt" -c "$venv/constraints.txt" \
        2>"$venv/pinned-attempt.log" >&2; then
        # An old release bounds what the pins may not satisfy (opentelemetry-proto 1.30 wants
        # protobuf<6, its opentelemetry-instrumentation wrapt<2): let those float within bounds.
        echo "otel-versions: $v conflicts with the pinned protobuf/googleapis-common-protos/wrapt; letting them float (see $venv/pinned-attempt.log)" >&2
        grep -v -i -E '^(protobuf|googleapis-common-protos|wrapt)==' "$venv/constraints.txt" >"$venv/constraints.loose"
        "$venv/bin/python" "${PIP[@]}" install -r "$venv/requirements.txt" -c "$venv/constraints.loose" >&2 || return 1
    fi
    "$venv/bin/python" "${PIP[@]}" check >&2 || return 1
    echo "$stamp" >"$venv/.stamp"
    echo built
}

status=0
summary=()
for v in "${VERSIONS[@]}"; do
    venv="$CACHE/otel-sdk-$v"
    echo "== opentelemetry-sdk $v" >&2
    t0=$SECONDS
    if ! how="$(environment "$v")"; then
        summary+=("$(printf '%-9s %-12s %-40s %s' "$v" failed "environment did not build" -)")
        status=1
        continue
    fi
    map_work_tree "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    t1=$SECONDS
    fast="$("$venv/bin/python" -c 'from agentledger.instrumentation import _lean
ok, why = _lean.fast_path_status()
print(("on" if ok else "off") + ": " + why)' 2>&1 | tail -1)"
    log="$(mktemp)"
    set +e
    "$venv/bin/python" -m pytest "${TESTS[@]}" -q -p no:cacheprovider \
        --confcutdir=tests/instrumentation "$@" >"$log" 2>&1
    rc=$?
    set -e
    t2=$SECONDS
    result="$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|skipped)|no tests ran' "$log" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')"
    in_range="$("$venv/bin/python" -c "
from agentledger.instrumentation._lean import _release
print(_release('$TESTED_LOW') <= (_release('$v') or ()) <= _release('$TESTED_HIGH'))")"
    if [ "$rc" -ne 0 ]; then
        tail -40 "$log" >&2
        if [ "$in_range" = True ]; then
            status=1
        else
            echo "otel-versions: $v is outside TESTED_SDK ($TESTED_LOW to $TESTED_HIGH): failure reported, not fatal" >&2
        fi
    fi
    if grep -q "the fast path is off here" "$log"; then
        fast="$fast (its lean-span tests skipped)"
    elif [ "$in_range" != True ]; then
        fast="$fast (the tests widened the range to vet it)"
    fi
    rm -f "$log"
    summary+=("$(printf '%-9s %-12s %-40s %s' "$v" "$how $((t1 - t0))s" "${result:-exit $rc}, $((t2 - t1))s" "$fast")")
done

echo
printf '%-9s %-12s %-40s %s\n' "otel-sdk" "environment" "tests" "fast path (TESTED_SDK $TESTED_LOW to $TESTED_HIGH)"
printf '%s\n' "${summary[@]}"
exit "$status"

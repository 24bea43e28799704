#!/usr/bin/env bash
# Builds the OpenTelemetry Collector of deploy/otel-collector/builder.yaml with the
# OpenTelemetry Collector Builder (from the Go module proxy) once per release and manifest,
# and prints the binary's path on stdout.
#
#   bin="$(bash scripts/otelcol.sh)"      # ~5 minutes the first time on 2 cores, then instant
#
# Cache: ${AGENTLEDGER_OTELCOL_CACHE:-~/.cache/agentledger/otelcol}/<version>/otelcol-agentledger,
# rebuilt when the manifest changes. Concurrent calls wait on one lock, so scripts/test.sh can
# start the build in the background and the tests that need the binary call this again: they
# wait for that build instead of starting a second. A failed build exits non-zero with the
# tail of its log (kept as build.log beside the binary).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MANIFEST="${AGENTLEDGER_OTELCOL_MANIFEST:-$ROOT/deploy/otel-collector/builder.yaml}"
VERSION="$(sed -n 's/^  version: *//p' "$MANIFEST" | head -n1)"
NAME="$(sed -n 's/^  name: *//p' "$MANIFEST" | head -n1)"
if [ -z "$VERSION" ] || [ -z "$NAME" ]; then
    echo "otelcol: $MANIFEST has no dist.name or dist.version" >&2
    exit 2
fi
CACHE="${AGENTLEDGER_OTELCOL_CACHE:-$HOME/.cache/agentledger/otelcol}/$VERSION"
BIN="$CACHE/$NAME"
LOG="$CACHE/build.log"
mkdir -p "$CACHE"

built() { [ -x "$BIN" ] && cmp -s "$MANIFEST" "$CACHE/builder.yaml"; }

exec 9>"$CACHE/.lock"
flock 9  # another build of this version in progress: wait for it
if built; then
    echo "$BIN"
    exit 0
fi

command -v go >/dev/null 2>&1 || { echo "otelcol: the go command is needed (Go 1.24+)" >&2; exit 2; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# the manifest with the build folder of this run (the builder takes it only from the manifest)
sed "/^dist:/a\\  output_path: $WORK/dist" "$MANIFEST" > "$WORK/builder.yaml"
echo "otelcol: building $NAME $VERSION (log: $LOG)" >&2
# (chained with &&: errexit does not apply inside an `if` condition)
if ! (
    export GOTOOLCHAIN=local CGO_ENABLED=0 GOBIN="$CACHE/tools" &&
        go install "go.opentelemetry.io/collector/cmd/builder@v$VERSION" &&
        "$GOBIN/builder" --config "$WORK/builder.yaml"
) >"$LOG" 2>&1; then
    echo "otelcol: the build of $NAME $VERSION failed; last lines of $LOG:" >&2
    tail -n 40 "$LOG" >&2
    exit 1
fi
mv "$WORK/dist/$NAME" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
cp "$MANIFEST" "$CACHE/builder.yaml"
echo "$BIN"

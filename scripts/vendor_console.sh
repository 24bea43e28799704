#!/usr/bin/env bash
# Fetches the console's browser libraries from the npm registry, once, into the package
# (collector/console/static/vendor/), with their licenses. The files are committed: installing
# or running AgentLedger never downloads them, and the browser loads nothing from elsewhere.
# Run again only to change a version (then run tests/console/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/collector/console/static/vendor"
UPLOT_VERSION="1.6.32"     # charts (MIT): small, fast canvas time series
HTMX_VERSION="2.0.11"       # partial page updates and polling (BSD-2-Clause / 0BSD)
VIRTUAL_VERSION="3.19.11"   # @tanstack/virtual-core (MIT): the waterfall of a trace of many spans

command -v npm >/dev/null || { echo "npm is needed to fetch the console's libraries" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "uplot@$UPLOT_VERSION" "htmx.org@$HTMX_VERSION" \
  "@tanstack/virtual-core@$VIRTUAL_VERSION" >/dev/null
mkdir uplot htmx virtual
tar -xzf "uplot-$UPLOT_VERSION.tgz" -C uplot
tar -xzf "htmx.org-$HTMX_VERSION.tgz" -C htmx
tar -xzf "tanstack-virtual-core-$VIRTUAL_VERSION.tgz" -C virtual
mkdir -p "$DEST"
cp uplot/package/dist/uPlot.iife.min.js "$DEST/uPlot.iife.min.js"
cp uplot/package/dist/uPlot.min.css "$DEST/uPlot.min.css"
cp uplot/package/LICENSE "$DEST/uPlot.LICENSE"
cp htmx/package/dist/htmx.min.js "$DEST/htmx.min.js"
cp htmx/package/LICENSE "$DEST/htmx.LICENSE"
# ES modules importing each other by relative path: kept as a folder, loaded by static/waterfall.js
rm -rf "$DEST/virtual-core" && mkdir -p "$DEST/virtual-core"
cp virtual/package/dist/esm/*.js "$DEST/virtual-core/"
sed -i '/^\/\/# sourceMappingURL=/d' "$DEST"/virtual-core/*.js  # the maps are not shipped
cp virtual/package/LICENSE "$DEST/virtual-core/LICENSE"
printf 'uplot %s\nhtmx.org %s\n@tanstack/virtual-core %s\n' "$UPLOT_VERSION" "$HTMX_VERSION" \
  "$VIRTUAL_VERSION" > "$DEST/VERSIONS"
echo "vendored into $DEST:"
ls -l "$DEST"

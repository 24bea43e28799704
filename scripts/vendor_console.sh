#!/usr/bin/env bash
# Fetches the console's two browser libraries from the npm registry, once, into the package
# (collector/console/static/vendor/), with their licenses. The files are committed: installing
# or running AgentLedger never downloads them, and the browser loads nothing from elsewhere.
# Run again only to change a version (then run tests/console/).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/collector/console/static/vendor"
UPLOT_VERSION="1.6.32"     # charts (MIT): small, fast canvas time series
HTMX_VERSION="2.0.11"       # partial page updates and polling (BSD-2-Clause / 0BSD)

command -v npm >/dev/null || { echo "npm is needed to fetch the console's libraries" >&2; exit 1; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "uplot@$UPLOT_VERSION" "htmx.org@$HTMX_VERSION" >/dev/null
mkdir uplot htmx
tar -xzf "uplot-$UPLOT_VERSION.tgz" -C uplot
tar -xzf "htmx.org-$HTMX_VERSION.tgz" -C htmx
mkdir -p "$DEST"
cp uplot/package/dist/uPlot.iife.min.js "$DEST/uPlot.iife.min.js"
cp uplot/package/dist/uPlot.min.css "$DEST/uPlot.min.css"
cp uplot/package/LICENSE "$DEST/uPlot.LICENSE"
cp htmx/package/dist/htmx.min.js "$DEST/htmx.min.js"
cp htmx/package/LICENSE "$DEST/htmx.LICENSE"
printf 'uplot %s\nhtmx.org %s\n' "$UPLOT_VERSION" "$HTMX_VERSION" > "$DEST/VERSIONS"
echo "vendored into $DEST:"
ls -l "$DEST"

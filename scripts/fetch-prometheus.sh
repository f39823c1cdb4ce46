#!/usr/bin/env bash
# Unpack Debian's `prometheus` package (prometheus + promtool 2.42) into target/tools/prometheus
# without installing it system-wide; the server tests check /metrics with promtool and scrape
# the server with a real Prometheus. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=target/tools/prometheus
if [[ -x "$DEST/usr/bin/promtool" && -x "$DEST/usr/bin/prometheus" ]]; then
    echo "prometheus and promtool are in $DEST/usr/bin"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 777 "$tmp"   # apt's sandbox user must be able to write the download
if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
    apt-get update -qq && (cd "$tmp" && apt-get download prometheus >/dev/null)
fi
mkdir -p "$DEST"
dpkg -x "$tmp"/prometheus_*.deb "$DEST"
echo "prometheus and promtool are in $DEST/usr/bin"

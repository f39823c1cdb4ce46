#!/usr/bin/env bash
# Node.js (18 or newer) and npm for the jco test (tests/e2e/node_host.rs runs the component in
# Node through jco): nothing when they are there, else Debian's nodejs and npm packages.
set -euo pipefail

major() { node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/'; }
if command -v npm >/dev/null 2>&1 && [[ $(major) -ge 18 ]] 2>/dev/null; then
    echo "node: $(node --version), npm $(npm --version); nothing to do"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-node: Node.js 18+ and npm are needed for the jco test; install them" >&2
    exit 1
fi
echo "node: installing Debian's nodejs and npm"
bash "$(dirname "$0")/apt-install.sh" nodejs npm
if [[ $(major) -lt 18 ]]; then
    echo "install-node: $(node --version) is too old for jco; install Node.js 18 or newer" >&2
    exit 1
fi
echo "node: $(node --version), npm $(npm --version)"

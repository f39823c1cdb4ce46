#!/usr/bin/env bash
# Install Debian packages non-interactively, through sudo unless running as root. Shared by the
# install-* scripts, which decide what is missing.
set -euo pipefail
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --allow-downgrades "$@"

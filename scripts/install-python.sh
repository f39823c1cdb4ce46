#!/usr/bin/env bash
# Python 3.8+ and pip for the Python client's tests (clients/python/tests: the client needs the
# standard library only; pip installs its wheel offline): nothing when both are there, else
# Debian's python3 and python3-pip packages.
set -euo pipefail

has_python() { python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; }
has_pip() { python3 -m pip --version >/dev/null 2>&1; }

if has_python && has_pip; then
    echo "python: $(python3 --version), $(python3 -m pip --version | cut -d' ' -f1-2); nothing to do"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-python: Python 3.8 or newer with pip is needed for the Python client's tests; install them" >&2
    exit 1
fi
echo "python: installing Debian's python3 and python3-pip"
bash "$(dirname "$0")/apt-install.sh" python3 python3-pip
python3 --version

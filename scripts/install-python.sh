#!/usr/bin/env bash
# Python 3.8+ for the Python client's tests (clients/python/tests, standard library only):
# nothing when it is there, else Debian's python3 package.
set -euo pipefail

if python3 -c 'import sys; sys.exit(sys.version_info < (3, 8))' 2>/dev/null; then
    echo "python: $(python3 --version); nothing to do"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-python: Python 3.8 or newer is needed for the Python client's tests; install it" >&2
    exit 1
fi
echo "python: installing Debian's python3"
bash "$(dirname "$0")/apt-install.sh" python3
python3 --version

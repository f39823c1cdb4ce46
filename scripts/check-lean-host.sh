#!/usr/bin/env bash
# Prove what a platform team gets when it depends on vector-service-runtime alone, using
# examples/own-linker (a host that owns its Engine, Linker and Store):
# 1. its dependency tree has none of the heavy backends (SQLite, usearch, PostgreSQL, r2d2,
#    candle, ureq);
# 2. with `--build`, it builds from nothing (its own empty target dir, so every build script
#    runs) and runs with no wasm toolchain on the machine (scripts/without-wasm-toolchain.sh).
# CI (scripts/test.sh) runs part 1 here and gets part 2 from its one release build, which runs
# in a fresh clone under scripts/without-wasm-toolchain.sh; its tests run own-linker.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== lean host: dependency tree of examples/own-linker"
tree=$(cargo tree --locked -p own-linker -e normal,build --prefix none --format '{p}')
heavy=$(grep -E '^(rusqlite|libsqlite3-sys|usearch|cxx|postgres|tokio-postgres|r2d2|r2d2_postgres|pgvector|candle-core|candle-nn|candle-transformers|tokenizers|ureq|rustls|vector-service-(sqlite|postgres|embed-http|embed-minilm|component-builder)) ' <<<"$tree" | sort -u || true)
if [[ -n "$heavy" ]]; then
    echo "own-linker pulls in crates a lean host must not need:" >&2
    echo "$heavy" >&2
    exit 1
fi
echo "none of rusqlite, usearch, postgres, tokio-postgres, r2d2, candle, ureq ($(sort -u <<<"$tree" | wc -l) crates in all)"

[[ "${1:-}" == --build ]] || exit 0
echo "== lean host: build from nothing and run with no wasm toolchain"
target=${CARGO_TARGET_DIR:-$PWD/target}/lean-host
rm -rf "$target"
CARGO_TARGET_DIR=$target bash scripts/without-wasm-toolchain.sh \
    bash -c 'cargo build --locked --quiet -p own-linker && "$CARGO_TARGET_DIR/debug/own-linker"'
rm -rf "$target"

#!/usr/bin/env bash
# Prove what a platform team gets when it depends on vector-service-runtime alone, using
# examples/own-linker (a host that owns its Engine, Linker and Store):
# 1. its dependency tree has none of the heavy backends (SQLite, usearch, PostgreSQL, r2d2,
#    candle, ureq);
# 2. it builds from nothing and runs with no wasm toolchain on the machine: Debian's rustc-web
#    and std source, wasm-ld and lld are hidden in a private mount namespace, and its own target
#    dir is empty, so every build script runs without them.
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

echo "== lean host: build and run with no wasm toolchain"
hide=(/usr/bin/rustc /usr/bin/cargo /usr/lib/rustlib /usr/lib/llvm-19/bin/lld /usr/lib/llvm-19/bin/wasm-ld)
sysroot=$(rustc --print sysroot)
[[ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown" ]] && hide+=("$sysroot/lib/rustlib/wasm32-unknown-unknown")
unshare_args=(--mount)
[[ $(id -u) == 0 ]] || unshare_args=(--map-root-user --mount)
target=${CARGO_TARGET_DIR:-$PWD/target}/lean-host
rm -rf "$target"
unshare "${unshare_args[@]}" bash -euo pipefail -c '
    target=$1; shift
    for path in "$@"; do
        [[ -e $path ]] || continue
        if [[ -d $path ]]; then mount -t tmpfs none "$path"; else mount --bind /dev/null "$path"; fi
    done
    if /usr/bin/rustc --version >/dev/null 2>&1 || command -v wasm-ld-19 >/dev/null && wasm-ld-19 --version >/dev/null 2>&1; then
        echo "the wasm toolchain is still visible" >&2; exit 1
    fi
    echo "hidden: $*"
    CARGO_TARGET_DIR=$target cargo build --locked --quiet -p own-linker
    "$target/debug/own-linker"
' lean-host "$target" "${hide[@]}"
rm -rf "$target"

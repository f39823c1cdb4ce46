#!/usr/bin/env bash
# Run a command with no wasm toolchain visible: Debian's rustc-web and its std source, wasm-ld
# and lld, and the current toolchain's wasm32 target are hidden in a private mount namespace.
# What builds under it needs none of them (the host uses the checked-in components).
# Usage: scripts/without-wasm-toolchain.sh COMMAND [ARG...]
set -euo pipefail
hide=(/usr/bin/rustc /usr/bin/cargo /usr/lib/rustlib /usr/lib/llvm-19/bin/lld /usr/lib/llvm-19/bin/wasm-ld)
sysroot=$(rustc --print sysroot)
[[ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown" ]] && hide+=("$sysroot/lib/rustlib/wasm32-unknown-unknown")
unshare_args=(--mount)
[[ $(id -u) == 0 ]] || unshare_args=(--map-root-user --mount)
exec unshare "${unshare_args[@]}" bash -euo pipefail -c '
    count=$1; shift
    hidden=("${@:1:$count}"); shift "$count"
    for path in "${hidden[@]}"; do
        [[ -e $path ]] || continue
        if [[ -d $path ]]; then mount -t tmpfs none "$path"; else mount --bind /dev/null "$path"; fi
    done
    if /usr/bin/rustc --version >/dev/null 2>&1 || command -v wasm-ld-19 >/dev/null && wasm-ld-19 --version >/dev/null 2>&1; then
        echo "the wasm toolchain is still visible" >&2; exit 1
    fi
    echo "hidden: ${hidden[*]}"
    exec "$@"
' without-wasm-toolchain "${#hide[@]}" "${hide[@]}" "$@"

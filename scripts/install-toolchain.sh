#!/usr/bin/env bash
# Install the toolchain that builds the guest components, only what is missing (safe to run
# again). Only scripts/build-component.sh needs it: the CLI, the server and every host crate
# use the checked-in component and build with no wasm toolchain at all.
#
# The pinned toolchain is Debian bookworm's rustc-web 1.85 with its std source and lld-19: the
# build compiles std for wasm32-unknown-unknown from source, and the checked-in components are
# its output byte for byte. Without --pinned, rustup's official wasm32-unknown-unknown target is
# accepted instead where it is installed (a working component, different bytes).
set -euo pipefail

PINNED="1.85.0+dfsg3-1~deb12u3"
PACKAGES=(rustc-web cargo-web libstd-rust-web-dev rust-web-src)

if [ "${1:-}" != --pinned ] && sysroot=$(rustc --print sysroot 2>/dev/null) && [ -d "$sysroot/lib/rustlib/wasm32-unknown-unknown/lib" ]; then
  echo "toolchain: rustup's wasm32-unknown-unknown target is installed; nothing to do"
  exit 0
fi

missing=()
for package in "${PACKAGES[@]}"; do
  installed=$(dpkg-query -W -f='${Version}' "$package" 2>/dev/null || true)
  [ "$installed" = "$PINNED" ] || missing+=("$package=$PINNED")
done
command -v wasm-ld-19 >/dev/null 2>&1 || missing+=(lld-19)

if [ ${#missing[@]} -eq 0 ]; then
  echo "toolchain: Debian's rustc-web $PINNED and lld-19 are installed; nothing to do"
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "toolchain: no wasm32-unknown-unknown target and no apt-get." >&2
  echo "  Install the target with: rustup target add wasm32-unknown-unknown" >&2
  exit 1
fi
echo "toolchain: installing ${missing[*]}"
bash "$(dirname "$0")/apt-install.sh" "${missing[@]}"
